//! `unchoke download` and `unchoke seed`: run one torrent on a driver until it is done (or
//! interrupted), reporting progress as a bar, plain lines or JSON.
//!
//! Exit status: `download` exits 0 only once every piece is verified; `seed` exits 0 when
//! interrupted after serving. Ctrl-C (or SIGTERM) stops cleanly: pending writes finish and
//! resume data is saved, so the next run starts where this one stopped.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{Event, metainfo_tiers};
use unchoke_driver::{AddTorrent, ClientConfig, ClientEvent};

use crate::progress::Reporter;
use crate::runtime::{Client, Runtime};

/// How long a download waits with no peer connected or left to dial before giving up
/// (peers may still dial us meanwhile).
const NO_PEERS_GRACE: Duration = Duration::from_secs(10);

/// Options shared by `download` and `seed`.
#[derive(clap::Args, Debug)]
pub(crate) struct CommonArgs {
    /// Address and port to accept peers on (port 0: any free port; the chosen one is
    /// printed). Outgoing connections use the same address.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:6881")]
    listen: SocketAddr,

    /// The driver to run on.
    #[arg(long, value_enum, default_value = "mio")]
    runtime: Runtime,

    /// One JSON object per line on stdout instead of human output.
    #[arg(long, conflicts_with = "quiet")]
    json: bool,

    /// No progress output; errors still go to stderr.
    #[arg(short, long)]
    quiet: bool,

    /// Also report each peer connection, failed dial and disconnection (with the reason).
    #[arg(short, long)]
    verbose: bool,

    /// Failed dials (refused, unreachable, dropped) after which a peer is given up; the
    /// wait between dials starts at 5 s and doubles. A download with no peer connected or
    /// left to try stops with an error.
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=20))]
    peer_retries: u32,

    /// Hash all existing data, ignoring the resume file.
    #[arg(long)]
    recheck: bool,

    /// A peer to connect to; may be repeated.
    #[arg(long = "peer", value_name = "HOST:PORT")]
    peers: Vec<String>,

    /// A tracker to announce to (http:// or udp://) besides the torrent's own; may be
    /// repeated (each is a tier of its own, tried after the torrent's).
    #[arg(long = "tracker", value_name = "URL")]
    trackers: Vec<String>,

    /// Do not announce to the torrent's trackers (`--tracker` ones are still used).
    #[arg(long)]
    no_trackers: bool,
}

impl CommonArgs {
    /// The tracker tiers to announce to.
    fn tracker_tiers(&self, metainfo: &Metainfo) -> Vec<Vec<String>> {
        let mut tiers = if self.no_trackers {
            Vec::new()
        } else {
            metainfo_tiers(metainfo)
        };
        tiers.extend(self.trackers.iter().map(|t| vec![t.clone()]));
        tiers
    }
}

/// Arguments of `unchoke download`.
#[derive(clap::Args, Debug)]
pub(crate) struct DownloadArgs {
    /// The .torrent file.
    torrent: PathBuf,

    /// The save path: a single-file torrent's file becomes DIR/<name>, a multi-file
    /// torrent's tree DIR/<name>/...
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,

    /// Keep seeding once complete, until interrupted.
    #[arg(long)]
    seed: bool,

    #[command(flatten)]
    common: CommonArgs,
}

/// Arguments of `unchoke seed`.
#[derive(clap::Args, Debug)]
pub(crate) struct SeedArgs {
    /// The .torrent file.
    torrent: PathBuf,

    /// The save path holding the data (as given to `download -o`).
    data_dir: PathBuf,

    /// Serve the pieces present even if the data is incomplete.
    #[arg(long)]
    partial: bool,

    #[command(flatten)]
    common: CommonArgs,
}

/// What the run is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Goal {
    /// Exit when complete.
    Download,
    /// Serve until interrupted.
    Seed,
}

/// `unchoke download`.
pub(crate) fn download(args: &DownloadArgs) -> Result<(), String> {
    let goal = if args.seed {
        Goal::Seed
    } else {
        Goal::Download
    };
    run(&args.torrent, &args.output, &args.common, goal, false)
}

/// `unchoke seed`.
pub(crate) fn seed(args: &SeedArgs) -> Result<(), String> {
    run(
        &args.torrent,
        &args.data_dir,
        &args.common,
        Goal::Seed,
        !args.partial,
    )
}

fn run(
    torrent: &Path,
    save_path: &Path,
    common: &CommonArgs,
    goal: Goal,
    require_complete: bool,
) -> Result<(), String> {
    let bytes = std::fs::read(torrent).map_err(|e| format!("{}: {e}", torrent.display()))?;
    let metainfo =
        Metainfo::from_bytes(&bytes).map_err(|e| format!("{}: {e}", torrent.display()))?;
    let peers = resolve_peers(&common.peers)?;
    let interrupted = interrupt_flag()?;

    let mut report = Reporter::new(common.json, common.quiet, &metainfo);
    let mut config = ClientConfig {
        listen: Some(common.listen),
        ..ClientConfig::default()
    };
    config.session.max_connect_failures = common.peer_retries;
    let mut client = Client::new(common.runtime, config).map_err(|e| e.to_string())?;
    let mut add = AddTorrent::new(metainfo.clone(), save_path);
    add.peers = peers;
    add.recheck = common.recheck;
    let tiers = common.tracker_tiers(&metainfo);
    let has_trackers = !tiers.is_empty();
    add.trackers = Some(tiers);
    let handle = {
        let checking = report.checking();
        client
            .add_torrent(add, &|n| checking.set(n))
            .map_err(|e| format!("{}: {e}", save_path.display()))?
    };
    report.checked(&handle.check);
    if require_complete && handle.check.pieces_have < handle.check.piece_count {
        let _ = client.shutdown();
        return Err(format!(
            "{}: the data is incomplete ({} of {} pieces verified); use --partial to seed it \
             anyway, or `unchoke download` to complete it",
            save_path.display(),
            handle.check.pieces_have,
            handle.check.piece_count
        ));
    }
    if let Some(addr) = client.local_addr() {
        report.listening(addr);
    }

    let started = Instant::now();
    // Since when no peer has been connected, known or being dialled (download only).
    let mut alone_since: Option<Instant> = None;
    let mut last_report = Instant::now() - Duration::from_secs(60);
    let mut failure: Option<String> = None;
    let mut complete = handle.check.pieces_have == handle.check.piece_count;
    if complete {
        if let Ok(Some(stats)) = client.stats(handle.id) {
            report.complete(&stats, started.elapsed());
        }
    }
    while !(interrupted.load(Ordering::SeqCst) || complete && goal == Goal::Download) {
        match client.events().recv_timeout(Duration::from_millis(100)) {
            Ok(ClientEvent::Session(Event::TorrentComplete { torrent }))
                if torrent == handle.id =>
            {
                complete = true;
                if let Ok(Some(stats)) = client.stats(handle.id) {
                    report.complete(&stats, started.elapsed());
                }
            }
            Ok(ClientEvent::Session(Event::PeerBanned { addr, .. })) => report.banned(addr),
            Ok(ClientEvent::Session(Event::TrackerReply {
                url,
                peers,
                seeders,
                leechers,
                warning,
                ..
            })) => {
                report.tracker_reply(&url, peers, seeders, leechers, common.verbose);
                if let Some(w) = warning {
                    report.warn(&format!("tracker {url}: {w}"));
                }
            }
            Ok(ClientEvent::Session(Event::TrackerError { url, message, .. })) => {
                report.tracker_error(&url, &message);
            }
            Ok(ClientEvent::PeerConnected { addr, inbound }) if common.verbose => {
                report.peer(
                    "peer_connected",
                    addr,
                    if inbound { "inbound" } else { "outbound" },
                );
            }
            Ok(ClientEvent::ConnectFailed { addr, reason }) => {
                // Always shown: an unreachable peer is what a stalled download needs explained.
                report.peer("connect_failed", addr, &reason);
            }
            Ok(ClientEvent::PeerDisconnected { addr, reason }) if common.verbose => {
                report.peer("peer_disconnected", addr, &reason);
            }
            Ok(ClientEvent::Session(Event::StorageError { piece, message, .. })) => {
                // The core re-downloads a piece whose write failed, but the disk will not
                // get better by itself: stop and keep what is verified.
                failure = Some(format!(
                    "{}: writing piece {piece} failed: {message}; verified pieces are kept \
                     and the next run resumes from them",
                    save_path.display()
                ));
                break;
            }
            Ok(ClientEvent::ResumeSaveFailed { message, .. }) => report.warn(&format!(
                "could not save resume data (a restart will recheck the files): {message}"
            )),
            Ok(_) | Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                failure = Some("the client stopped unexpectedly".into());
                break;
            }
        }
        if last_report.elapsed() >= report.interval() {
            last_report = Instant::now();
            match client.stats(handle.id) {
                Ok(Some(stats)) => {
                    report.progress(&stats);
                    // With trackers, more peers may come at the next announce: only a
                    // download from given peers alone can run out of them for good.
                    if goal == Goal::Download
                        && !has_trackers
                        && !stats.complete
                        && stats.peers == 0
                        && stats.known_peers == 0
                    {
                        let since = *alone_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= NO_PEERS_GRACE {
                            failure = Some(format!(
                                "{}: no peers left: every peer given was unreachable or went away, and \
                                 none connected to us for {} s ({} of {} pieces verified; run again \
                                 with a reachable --peer to resume)",
                                torrent.display(),
                                NO_PEERS_GRACE.as_secs(),
                                stats.pieces_have,
                                stats.piece_count
                            ));
                            break;
                        }
                    } else {
                        alone_since = None;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
    }
    let reports = client.shutdown().map_err(|e| e.to_string())?;
    let end = reports.into_iter().find(|r| r.torrent == handle.id);
    if let Some(end) = &end {
        if let Some(stats) = &end.stats {
            report.stopped(stats);
            complete = stats.complete;
        }
        if let Err(e) = &end.saved {
            report.warn(&format!("could not save resume data: {e}"));
        }
    }
    if let Some(f) = failure {
        return Err(f);
    }
    match goal {
        Goal::Download if !complete => Err(format!(
            "{}: interrupted before the download completed; run the same command again to \
             resume",
            torrent.display()
        )),
        _ => Ok(()),
    }
}

/// `HOST:PORT` strings to addresses, with a clear error for each that does not resolve.
fn resolve_peers(peers: &[String]) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    for p in peers {
        let mut addrs = p
            .to_socket_addrs()
            .map_err(|e| format!("--peer {p}: {e} (expected HOST:PORT)"))?;
        let addr = addrs
            .next()
            .ok_or_else(|| format!("--peer {p}: the name has no address"))?;
        out.push(addr);
    }
    Ok(out)
}

/// A flag raised by Ctrl-C or SIGTERM.
pub(crate) fn interrupt_flag() -> Result<Arc<AtomicBool>, String> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    ctrlc::set_handler(move || f.store(true, Ordering::SeqCst))
        .map_err(|e| format!("cannot install the Ctrl-C handler: {e}"))?;
    Ok(flag)
}
