//! `unchoke tracker`: serves the embedded tracker over HTTP and UDP until interrupted,
//! reporting its swarms and peers now and then.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use unchoke_core::InfoHash;
use unchoke_core::tracker::server::{ServerConfig, SwarmQuota};
use unchoke_driver::tracker_service::TrackerServiceConfig;

use crate::cmd_transfer::interrupt_flag;
use crate::output::print;
use crate::runtime::{Runtime, Tracker};

/// How often the counters are printed.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Arguments of `unchoke tracker`.
#[derive(clap::Args, Debug)]
pub(crate) struct TrackerArgs {
    /// Serve HTTP announces and scrapes (`/announce`, `/scrape`) here. Without --http and
    /// --udp, both are served on 127.0.0.1:6969; with only one of them, only that one.
    #[arg(long, value_name = "ADDR:PORT")]
    http: Option<SocketAddr>,

    /// Serve BEP 15 UDP announces and scrapes here.
    #[arg(long, value_name = "ADDR:PORT")]
    udp: Option<SocketAddr>,

    /// Seconds between a client's announces (peers silent for twice this long expire).
    /// libtorrent re-announces at most every 300 s whatever it is told, so below 150 its
    /// peers expire between announces.
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(10..=86_400))]
    interval: u64,

    /// Serve only the info-hashes listed in FILE (40 hex digits per line; `#` comments).
    #[arg(long, value_name = "FILE")]
    whitelist: Option<PathBuf>,

    /// Most swarms (info-hashes) tracked at once. A new swarm beyond it evicts the one
    /// with the fewest peers, among equals the least recently announced, so a flood of
    /// random info-hashes cannot lock honest torrents out: a new swarm is never refused for
    /// this limit.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    max_swarms: u64,

    /// Most new swarms one address (an IPv4 address, an IPv6 /64) may create per
    /// --swarm-quota-window; its further new info-hashes are refused ("too many new
    /// torrents from this address") while its announces into existing swarms still
    /// work. 0 turns the quota off (then only --max-swarms bounds the swarms).
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    max_swarms_per_ip: u32,

    /// The sliding window of --max-swarms-per-ip, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    swarm_quota_window: u64,

    /// The driver to run on.
    #[arg(long, value_enum, default_value = "mio")]
    runtime: Runtime,

    /// One JSON object per line on stdout instead of human output.
    #[arg(long)]
    json: bool,
}

/// `unchoke tracker`.
pub(crate) fn run(args: &TrackerArgs) -> Result<(), String> {
    crate::output::set_json_mode(args.json);
    let default_addr = SocketAddr::from(([127, 0, 0, 1], 6969));
    let (http, udp) = match (args.http, args.udp) {
        (None, None) => (Some(default_addr), Some(default_addr)),
        other => other,
    };
    let whitelist = match &args.whitelist {
        Some(path) => Some(read_whitelist(path)?),
        None => None,
    };
    let interval = Duration::from_secs(args.interval);
    let swarm_quota = (args.max_swarms_per_ip > 0).then(|| SwarmQuota {
        per_ip: args.max_swarms_per_ip,
        window: Duration::from_secs(args.swarm_quota_window),
    });
    let config = TrackerServiceConfig {
        http,
        udp,
        server: ServerConfig {
            interval,
            min_interval: (interval / 4).max(Duration::from_secs(5)),
            whitelist,
            max_swarms: usize::try_from(args.max_swarms).unwrap_or(usize::MAX),
            swarm_quota,
            ..ServerConfig::default()
        },
        ..TrackerServiceConfig::default()
    };
    let interrupted = interrupt_flag()?;
    let tracker = Tracker::start(args.runtime, config).map_err(|e| e.to_string())?;
    if args.json {
        crate::output::emit(json!({
            "event": "listening",
            "http": tracker.http_addr().map(|a| a.to_string()),
            "udp": tracker.udp_addr().map(|a| a.to_string()),
            "announce": tracker.announce_urls(),
        }));
    } else {
        for url in tracker.announce_urls() {
            let _ = print(&format!("tracker: announce URL {url}\n"));
        }
    }
    let mut last_report = Instant::now();
    let mut failed = false;
    while !interrupted.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if !tracker.is_running() {
            failed = true;
            break;
        }
        if last_report.elapsed() >= REPORT_EVERY {
            last_report = Instant::now();
            report(&tracker, args.json, "stats");
        }
    }
    report(&tracker, args.json, "stopped");
    let result = tracker.shutdown().map_err(|e| e.to_string());
    match result {
        Err(e) => Err(e),
        Ok(_) if failed => Err("the tracker stopped unexpectedly".into()),
        Ok(_) => Ok(()),
    }
}

fn report(tracker: &Tracker, as_json: bool, event: &str) {
    let s = tracker.stats();
    let line = if as_json {
        crate::output::json_line(json!({
            "event": event,
            "swarms": s.swarms,
            "peers": s.peers,
            "http_requests": s.http_requests,
            "udp_packets": s.udp_packets,
        }))
    } else {
        format!(
            "tracker {event}: {} swarm{}, {} peer{}, {} HTTP requests, {} UDP packets",
            s.swarms,
            if s.swarms == 1 { "" } else { "s" },
            s.peers,
            if s.peers == 1 { "" } else { "s" },
            s.http_requests,
            s.udp_packets
        ) + "\n"
    };
    let _ = print(&line);
}

/// Reads a whitelist: one 40-hex-digit info-hash per line (as opentracker's); blank lines
/// and lines starting with `#` are skipped; anything else is an error naming the line.
fn read_whitelist(path: &Path) -> Result<BTreeSet<InfoHash>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("--whitelist {}: no such file", path.display()),
        _ => format!("--whitelist {}: cannot read it: {e}", path.display()),
    })?;
    let mut set = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let hash = InfoHash::parse(line)
            .ok()
            .filter(|_| line.len() == 40)
            .ok_or_else(|| {
                format!(
                    "{}:{}: not an info-hash (expected 40 hex digits): {}",
                    path.display(),
                    n + 1,
                    crate::output::printable(line)
                )
            })?;
        set.insert(hash);
    }
    Ok(set)
}
