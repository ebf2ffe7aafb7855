//! `unchoke dht`: a standalone DHT node (BEP 5) — the same node `download` and `seed` run,
//! without torrents — until interrupted. Useful to start a private DHT for tests or a LAN:
//! other clients bootstrap from it, and it stores and hands out their announces.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use unchoke_core::tracker::server::SwarmQuota;
use unchoke_driver::dht_node::DhtSettings;
use unchoke_driver::{ClientConfig, DhtStatus};

use crate::cmd_transfer::{interrupt_flag, resolve_addrs};
use crate::error::CliError;
use crate::output::print;
use crate::runtime::{Client, Runtime};

/// Arguments of `unchoke dht`.
#[derive(clap::Args, Debug)]
pub(crate) struct DhtArgs {
    /// The UDP address to run the node on. Its family is the DHT's (BEP 32): an IPv6
    /// address (`[::1]:6881`) runs an IPv6 node, `[::]` both families on one dual-stack
    /// socket.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:6881")]
    listen: SocketAddr,

    /// A node to join through; may be repeated. Without one the node waits for others to
    /// join through it.
    #[arg(long = "bootstrap", value_name = "HOST:PORT")]
    bootstrap: Vec<String>,

    /// Keep the good nodes in FILE between runs (read at start, written at exit).
    #[arg(long, value_name = "FILE")]
    nodes_file: Option<PathBuf>,

    /// Most info-hashes whose announced peers the node stores. A new one beyond it evicts
    /// the smallest, stalest swarm, so a flood of junk announces cannot lock an honest
    /// swarm out: a new info-hash is never refused for this limit.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_swarms: u64,

    /// Most new info-hashes one address may create in the store per
    /// --swarm-quota-window; its further new ones are not stored while its announces into
    /// existing swarms still are. 0 turns the quota off.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    max_swarms_per_ip: u32,

    /// The sliding window of --max-swarms-per-ip, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    swarm_quota_window: u64,

    /// Seconds between status lines.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    report_every: u64,

    /// The driver to run on.
    #[arg(long, value_enum, default_value = "mio")]
    runtime: Runtime,

    /// One JSON object per line on stdout instead of human output.
    #[arg(long)]
    json: bool,
}

/// `unchoke dht`.
pub(crate) fn run(args: &DhtArgs) -> Result<(), CliError> {
    crate::output::set_json_mode(args.json);
    let interrupted = interrupt_flag()?;
    let bootstrap = resolve_addrs("--bootstrap", &args.bootstrap).map_err(CliError::usage)?;
    let mut settings = DhtSettings::new(args.listen, bootstrap);
    settings.nodes_file = args.nodes_file.clone();
    let store = &mut settings.config.peer_store;
    store.max_hashes = usize::try_from(args.max_swarms).unwrap_or(usize::MAX);
    store.quota = (args.max_swarms_per_ip > 0).then(|| SwarmQuota {
        per_ip: args.max_swarms_per_ip,
        window: Duration::from_secs(args.swarm_quota_window),
    });
    let config = ClientConfig {
        // No torrents, so no peers to accept.
        listen: None,
        dht: Some(settings),
        ..ClientConfig::default()
    };
    let mut client = Client::new(args.runtime, config)
        .map_err(|e| format!("cannot start the DHT node on {}: {e}", args.listen))?;
    let addr = client
        .dht_addr()
        .ok_or_else(|| "the DHT socket was not bound".to_string())?;
    line(
        args.json,
        json!({"event": "listening", "addr": addr.to_string()}),
        &format!("DHT node on {addr} (UDP); Ctrl-C stops it"),
    );
    let every = Duration::from_secs(args.report_every);
    let mut next_report = Instant::now();
    let mut last = None;
    while !interrupted.load(Ordering::SeqCst) {
        if Instant::now() >= next_report {
            next_report = Instant::now() + every;
            match client.dht_status() {
                Ok(Some(status)) => {
                    report(args.json, &status);
                    last = Some(status);
                }
                Ok(None) => return Err("the client runs no DHT node".into()),
                Err(e) => return Err(format!("the DHT node stopped: {e}").into()),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    client.shutdown().map_err(|e| e.to_string())?;
    if let Some(status) = last {
        line(
            args.json,
            json!({"event": "stopped", "nodes": status.table_nodes}),
            &format!("stopped with {} nodes in the table", status.table_nodes),
        );
    }
    Ok(())
}

fn report(json: bool, s: &DhtStatus) {
    let c = &s.counters;
    line(
        json,
        json!({
            "event": "status",
            "nodes": s.table_nodes,
            "good_nodes": s.good_nodes,
            "packets_in": c.packets_in,
            "packets_out": c.packets_out,
            "queries_in": c.queries_in,
            "announces_stored": c.announces_stored,
            "rate_limited": c.rate_limited,
            "malformed": c.malformed,
        }),
        &format!(
            "{} nodes ({} good); {} datagrams in, {} out; {} queries answered, {} announces \
             stored; dropped: {} over the rate limit, {} malformed",
            s.table_nodes,
            s.good_nodes,
            c.packets_in,
            c.packets_out,
            c.replies_out,
            c.announces_stored,
            c.rate_limited,
            c.malformed
        ),
    );
}

/// One line: `value` (timestamped) with `--json`, else `text`.
fn line(json: bool, value: serde_json::Value, text: &str) {
    if json {
        crate::output::emit(value);
    } else {
        let _ = print(&format!("{text}\n"));
    }
}
