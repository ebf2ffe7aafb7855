//! `unchoke daemon`: one session holding many torrents, driven over Transmission's RPC so
//! `transmission-remote` and the tools that speak it work unchanged.
//!
//! - `rpc`: the JSON methods, pure (request body in, response out, over an `Engine`).
//! - `http`: the HTTP server on `--rpc`: the session-id handshake, body limits.
//! - `webui`: the web UI at `/`, static files embedded in the binary that speak the RPC.
//! - `daemon`: the engine over a running client; downloads confined to `--download-dir`.
//! - `state`: the session directory (the torrent list, .torrent copies), written
//!   atomically so a restart, even after `kill -9`, finds the list it had.
//! - `auth`: basic authentication (`--rpc-auth`), required for a non-loopback `--rpc`.
//! - `config`: `--config FILE`, the same settings in TOML, the command line over it.
//! - `watch`: `--watch-dir`, .torrent files dropped in a folder are added.
//! - `fetch`: `torrent-add` of an http(s) URL.

mod auth;
mod config;
mod daemon;
mod fetch;
mod http;
/// The RPC's pure part lives in its own crate (fuzzed there); `rpc::` paths stay.
use unchoke_rpc as rpc;
mod state;
mod views;
mod watch;
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

/// Arguments of `unchoke daemon`. Each but `--config` may also be set in the config file,
/// under the flag's name (see [`config`]); the command line wins.
#[derive(clap::Args, Debug)]
pub(crate) struct DaemonArgs {
    /// A TOML file of settings, keys named as these flags (`download-dir = "/srv/dl"`,
    /// `rpc-auth = "user:password"`, `dht = false`, ...); flags given here override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Where the daemon keeps its torrent list and .torrent copies. Default:
    /// $XDG_CONFIG_HOME/unchoke, else ~/.config/unchoke.
    #[arg(long, value_name = "DIR")]
    session_dir: Option<PathBuf>,

    /// Where torrents are downloaded; an RPC `download-dir` must lie inside it. Default:
    /// ~/Downloads.
    #[arg(long, value_name = "DIR")]
    download_dir: Option<PathBuf>,

    /// Address of the Transmission-compatible RPC (`/transmission/rpc`) and the web UI
    /// (`/`); port 0 picks a free one (printed). Default: 127.0.0.1:9091. An address other
    /// than loopback needs --rpc-auth.
    #[arg(long, value_name = "ADDR:PORT")]
    rpc: Option<SocketAddr>,

    /// Require HTTP basic authentication for the RPC, the web UI and /metrics. Better
    /// given in $UNCHOKE_RPC_AUTH or the config file than here, where other users of the
    /// machine can read it in the process list. Basic auth sends the password in clear:
    /// off loopback, use it on a trusted network only.
    #[arg(
        long,
        value_name = "USER:PASSWORD",
        env = "UNCHOKE_RPC_AUTH",
        hide_env_values = true,
        value_parser = auth::Credentials::parse
    )]
    rpc_auth: Option<auth::Credentials>,

    /// Address and port to accept peers on (port 0: any free port). Default: 0.0.0.0:51413.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,

    /// The driver to run on. Default: mio.
    #[arg(long, value_enum)]
    runtime: Option<Runtime>,

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

    /// Transport of the peer connections the daemon dials: `both` (uTP first, TCP when
    /// the peer answers with a reset or not within 3 s, as libtorrent does), `utp` or
    /// `tcp` (which also refuses incoming uTP). Default: both.
    #[arg(long, value_name = "tcp|utp|both")]
    transport: Option<unchoke_core::session::Transport>,

    /// Add the .torrent files that appear in DIR (into the download directory, started),
    /// then rename each NAME.torrent.added, or NAME.torrent.invalid if it is not a
    /// torrent, as Transmission does. Looked at every 2 seconds.
    #[arg(long, value_name = "DIR")]
    watch_dir: Option<PathBuf>,
}

/// `unchoke daemon`.
pub(crate) fn run(args: &DaemonArgs) -> Result<(), CliError> {
    let settings = config::resolve(args)?;
    if !settings.rpc.ip().is_loopback() && settings.auth.is_none() {
        return Err(CliError::usage(format!(
            "--rpc {}: a non-loopback address needs credentials (--rpc-auth USER:PASSWORD, \
             $UNCHOKE_RPC_AUTH or the config file's rpc-auth): without them anyone who \
             reaches the port controls the daemon; or reach a loopback RPC through an SSH \
             tunnel",
            settings.rpc
        )));
    }
    let stop = crate::cmd_transfer::interrupt_flag()?;
    let routers = match &settings.dht_routers {
        Some(list) => crate::cmd_transfer::parse_routers(list).map_err(CliError::usage)?,
        None if settings.listen.ip().is_loopback() => Vec::new(),
        None => unchoke_core::dht::PUBLIC_ROUTERS
            .iter()
            .map(|(host, port)| (host.to_string(), *port))
            .collect(),
    };
    let session_path = match &settings.session_dir {
        Some(d) => d.clone(),
        None => default_dir("XDG_CONFIG_HOME", ".config")?.join("unchoke"),
    };
    let dir = state::SessionDir::open(&session_path)?;
    let download_dir = match &settings.download_dir {
        Some(d) => d.clone(),
        None => default_dir("HOME", "")?.join("Downloads"),
    };
    let root = std::fs::create_dir_all(&download_dir)
        .and_then(|()| download_dir.canonicalize())
        .map_err(|e| format!("download directory {}: {e}", download_dir.display()))?;
    let mut watch = match &settings.watch_dir {
        Some(d) => Some(watch::WatchDir::new(d).map_err(CliError::usage)?),
        None => None,
    };
    let saved = dir.load()?;
    // The RPC's port first: if it is taken, nothing else has started.
    let server = http::RpcServer::bind(settings.rpc, settings.auth.clone())?;

    let mut config = ClientConfig {
        listen: Some(settings.listen),
        ..ClientConfig::default()
    };
    let nodes_file = dir.path().join("dht.nodes");
    if settings.dht && (!routers.is_empty() || nodes_file.is_file()) {
        let mut dht = DhtSettings::new(SocketAddr::new(settings.listen.ip(), 0), Vec::new());
        dht.routers = routers;
        dht.nodes_file = Some(nodes_file);
        config.dht = Some(dht);
    }
    config.lsd = settings.lsd;
    config.session.transport = settings.transport;
    // The limits the RPC last set, from the start: the core holds them from its first
    // request on.
    config.session.upload_limit = saved.session.limits.upload_bytes();
    config.session.download_limit = saved.session.limits.download_bytes();
    config.session.seed_limits = views::session_seed_limits(&saved.session);
    config.session.queue_limits = views::queue_limits(&saved.session);
    let dht = config.dht.is_some();
    let lsd = config.lsd;
    let client = Client::new(settings.runtime, config).map_err(|e| e.to_string())?;
    let peers_on = client.local_addr();
    let peer_settings = rpc::PeerSettings {
        port: peers_on.map_or(0, |a| a.port()),
        dht,
        lsd,
    };
    let mut daemon = daemon::Daemon::new(
        client,
        dir,
        root.clone(),
        saved.session.clone(),
        peer_settings,
    );
    let running = daemon.restore(&saved);

    let rpc_addr = server.local_addr().unwrap_or(settings.rpc);
    // One write: a reader that takes only the first line and closes the pipe must not
    // fail a later print.
    let mut started = format!(
        "unchoke daemon: RPC on http://{rpc_addr}{}, peers on {}, downloads in {}, {running} of {} torrents restored; web UI at http://{rpc_addr}/\n",
        http::RPC_PATH,
        peers_on.map_or_else(|| "-".to_string(), |a| a.to_string()),
        root.display(),
        saved.torrents.len(),
    );
    if let Some(auth) = &settings.auth {
        started.push_str(&format!(
            "unchoke daemon: the RPC and the web UI ask for user {:?}'s password\n",
            auth.user()
        ));
    }
    if let Some(w) = &watch {
        started.push_str(&format!(
            "unchoke daemon: watching {} for .torrent files\n",
            w.path().display()
        ));
    }
    crate::output::print(&started)?;
    if settings.auth.is_some() && !settings.rpc.ip().is_loopback() {
        eprintln!(
            "unchoke daemon: warning: the RPC listens on {rpc_addr} over plain HTTP: basic \
             authentication sends the password in clear to anyone who can see the traffic; \
             use it on a trusted network only (or tunnel, or put a TLS proxy in front)"
        );
    }
    // Events are read between requests too: the client keeps a bounded backlog of them,
    // and a magnet's `MetadataReady` (its name, its files for a later delete) must not be
    // crowded out by peer events while nobody asks. The watch folder is looked at there
    // as well (it polls itself at most every 2 s).
    server.serve(&mut daemon, &stop, |d| {
        d.drain_events();
        if let Some(w) = &mut watch {
            w.poll(d);
        }
    });
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
