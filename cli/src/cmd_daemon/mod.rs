//! `unchoke daemon`: one session holding many torrents, driven over Transmission's RPC so
//! `transmission-remote` and the tools that speak it work unchanged.
//!
//! - `rpc`: the JSON methods, pure (request body in, response out, over an `Engine`).
//! - `http`: the HTTP server on `--rpc`: the session-id handshake, body limits.
//! - `webui`: the web UI at `/`, static files embedded in the binary that speak the RPC.
//! - `daemon`: the engine over a running client; downloads confined to `--download-dir`.
//! - `state`: the session directory (the torrent list, .torrent copies), written
//!   atomically so a restart, even after `kill -9`, finds the list it had.
//!
//! The RPC has no authentication yet, so it binds only a loopback address.

mod daemon;
mod http;
/// The RPC's pure part lives in its own crate (fuzzed there); `rpc::` paths stay.
use unchoke_rpc as rpc;
mod state;
mod webui;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use unchoke_driver::ClientConfig;
use unchoke_driver::dht_node::DhtSettings;

use crate::error::CliError;
use crate::runtime::{Client, Runtime};

/// Transmission's RPC address.
const DEFAULT_RPC: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9091);

/// Transmission's peer port, on every IPv4 address.
const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 51413);

/// Arguments of `unchoke daemon`.
#[derive(clap::Args, Debug)]
pub(crate) struct DaemonArgs {
    /// Where the daemon keeps its torrent list and .torrent copies. Default:
    /// $XDG_CONFIG_HOME/unchoke, else ~/.config/unchoke.
    #[arg(long, value_name = "DIR")]
    session_dir: Option<PathBuf>,

    /// Where torrents are downloaded; an RPC `download-dir` must lie inside it. Default:
    /// ~/Downloads.
    #[arg(long, value_name = "DIR")]
    download_dir: Option<PathBuf>,

    /// Address of the Transmission-compatible RPC (`/transmission/rpc`) and the web UI
    /// (`/`); port 0 picks a free one (printed). Loopback only: the RPC has no authentication yet.
    #[arg(long, value_name = "ADDR:PORT", default_value_t = DEFAULT_RPC)]
    rpc: SocketAddr,

    /// Address and port to accept peers on (port 0: any free port).
    #[arg(long, value_name = "ADDR:PORT", default_value_t = DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// The driver to run on.
    #[arg(long, value_enum, default_value = "mio")]
    runtime: Runtime,

    /// No DHT node.
    #[arg(long)]
    no_dht: bool,

    /// DHT routers to join through, by name, comma-separated; `none` for none. Default:
    /// the public DHT's, except when --listen is a loopback address.
    #[arg(
        long = "dht-routers",
        value_name = "HOST:PORT,...",
        env = "UNCHOKE_DHT_ROUTERS"
    )]
    dht_routers: Option<String>,

    /// No local service discovery (BEP 14) multicast.
    #[arg(long)]
    no_lsd: bool,
}

/// `unchoke daemon`.
pub(crate) fn run(args: &DaemonArgs) -> Result<(), CliError> {
    if !args.rpc.ip().is_loopback() {
        return Err(CliError::usage(format!(
            "--rpc {}: the RPC has no authentication yet, so it binds only a loopback \
             address (127.0.0.1 or [::1]); reach it remotely through an SSH tunnel",
            args.rpc
        )));
    }
    let stop = crate::cmd_transfer::interrupt_flag()?;
    let routers = match &args.dht_routers {
        Some(list) => crate::cmd_transfer::parse_routers(list).map_err(CliError::usage)?,
        None if args.listen.ip().is_loopback() => Vec::new(),
        None => unchoke_core::dht::PUBLIC_ROUTERS
            .iter()
            .map(|(host, port)| (host.to_string(), *port))
            .collect(),
    };
    let session_path = match &args.session_dir {
        Some(d) => d.clone(),
        None => default_dir("XDG_CONFIG_HOME", ".config")?.join("unchoke"),
    };
    let dir = state::SessionDir::open(&session_path)?;
    let download_dir = match &args.download_dir {
        Some(d) => d.clone(),
        None => default_dir("HOME", "")?.join("Downloads"),
    };
    let root = std::fs::create_dir_all(&download_dir)
        .and_then(|()| download_dir.canonicalize())
        .map_err(|e| format!("download directory {}: {e}", download_dir.display()))?;
    let saved = dir.load()?;
    // The RPC's port first: if it is taken, nothing else has started.
    let server = http::RpcServer::bind(args.rpc)?;

    let mut config = ClientConfig {
        listen: Some(args.listen),
        ..ClientConfig::default()
    };
    let nodes_file = dir.path().join("dht.nodes");
    if !args.no_dht && (!routers.is_empty() || nodes_file.is_file()) {
        let mut dht = DhtSettings::new(SocketAddr::new(args.listen.ip(), 0), Vec::new());
        dht.routers = routers;
        dht.nodes_file = Some(nodes_file);
        config.dht = Some(dht);
    }
    config.lsd = !args.no_lsd;
    // The limits the RPC last set, from the start: the core holds them from its first
    // request on.
    config.session.upload_limit = saved.session.limits.upload_bytes();
    config.session.download_limit = saved.session.limits.download_bytes();
    let dht = config.dht.is_some();
    let lsd = config.lsd;
    let client = Client::new(args.runtime, config).map_err(|e| e.to_string())?;
    let peers_on = client.local_addr();
    let settings = rpc::PeerSettings {
        port: peers_on.map_or(0, |a| a.port()),
        dht,
        lsd,
    };
    let mut daemon =
        daemon::Daemon::new(client, dir, root.clone(), saved.session.clone(), settings);
    let running = daemon.restore(&saved);

    let rpc_addr = server.local_addr().unwrap_or(args.rpc);
    crate::output::print(&format!(
        "unchoke daemon: RPC on http://{rpc_addr}{}, peers on {}, downloads in {}, {running} of {} torrents restored; web UI at http://{rpc_addr}/\n",
        http::RPC_PATH,
        peers_on.map_or_else(|| "-".to_string(), |a| a.to_string()),
        root.display(),
        saved.torrents.len(),
    ))?;
    // Events are read between requests too: the client keeps a bounded backlog of them,
    // and a magnet's `MetadataReady` (its name, its files for a later delete) must not be
    // crowded out by peer events while nobody asks.
    server.serve(&mut daemon, &stop, daemon::Daemon::drain_events);
    daemon.shutdown()?;
    Ok(())
}

/// `$var`, else `$HOME/fallback`.
fn default_dir(var: &str, fallback: &str) -> Result<PathBuf, String> {
    if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(v));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|home| Path::new(&home).join(fallback))
        .ok_or_else(|| format!("${var} and $HOME are unset: give the directory explicitly"))
}
