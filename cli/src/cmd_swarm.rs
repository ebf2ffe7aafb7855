//! `unchoke swarm`: a whole BitTorrent swarm on 127.0.0.1 in one command.
//!
//! It makes a random payload and a torrent naming an embedded tracker (HTTP and UDP in one
//! tier, so clients use both), starts one seed and N leechers — each a full client with
//! its own listener — that learn about each other **only from the tracker**, shows the
//! swarm's progress, then checks every leecher's copy byte for byte (SHA-1 of the whole
//! file against the original) and sums up: how long distribution to all N took, and how
//! much the seed uploaded versus the leechers (peers redistributing is the point of
//! BitTorrent).

use std::fs::File;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sha1::{Digest, Sha1};
use unchoke_core::create::{Content, CreateOptions, TorrentPlan};
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{Event, SessionConfig};
use unchoke_core::torrent::TorrentStats;
use unchoke_core::tracker::server::ServerConfig;
use unchoke_driver::tracker_service::TrackerServiceConfig;
use unchoke_driver::{AddTorrent, ClientConfig, ClientEvent, TorrentHandle};

use crate::cmd_transfer::interrupt_flag;
use crate::human;
use crate::output::print;
use crate::runtime::{Client, Runtime, Tracker};

/// The payload's file name.
const PAYLOAD_NAME: &str = "swarm-payload.bin";
/// How long the seed may take to register with the tracker.
const SEED_ANNOUNCE_WAIT: Duration = Duration::from_secs(15);
/// The tracker's announce interval: short, so a swarm that runs for minutes stays fresh.
const TRACKER_INTERVAL: Duration = Duration::from_secs(30);

/// Arguments of `unchoke swarm`.
#[derive(clap::Args, Debug)]
pub(crate) struct SwarmArgs {
    /// Leechers to start (each a full client with its own listener).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    leechers: u32,

    /// Size of the payload (e.g. 256MiB, 1G, 65536).
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_payload_size)]
    size: u64,

    /// Piece length (a power of two, at least 16K); default: chosen from the size.
    #[arg(long, value_name = "SIZE", value_parser = human::parse_piece_length)]
    piece_length: Option<u32>,

    /// The driver every client and the tracker run on.
    #[arg(long, value_enum, default_value = "mio")]
    runtime: Runtime,

    /// Keep the payload, the torrent and every copy in DIR (absent or empty) instead of a
    /// temporary directory removed at the end.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Give up (exit status 1) if distribution takes longer than this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    timeout: u64,

    /// Transport between the members: `both` (uTP first, TCP when uTP fails, as
    /// libtorrent), `utp` (uTP only) or `tcp` (TCP only).
    #[arg(long, value_name = "tcp|utp|both", default_value = "both")]
    transport: unchoke_core::session::Transport,

    /// One JSON object per line on stdout instead of human output.
    #[arg(long, conflicts_with = "quiet")]
    json: bool,

    /// Only the summary (and errors).
    #[arg(short, long)]
    quiet: bool,
}

fn parse_payload_size(text: &str) -> Result<u64, String> {
    human::parse_nonzero_size(text, "the payload")
}

/// One client of the swarm and what is known about it.
struct Member {
    name: String,
    client: Client,
    handle: TorrentHandle,
    stats: Option<TorrentStats>,
    completed_after: Option<Duration>,
    tracker_replies: u32,
    last_tracker_error: Option<String>,
    save_path: PathBuf,
}

impl Member {
    /// Reads the client's events (so none pile up) and its counters.
    fn poll(&mut self, since: Instant) -> Result<(), String> {
        while let Ok(event) = self.client.events().try_recv() {
            match event {
                ClientEvent::Session(Event::TrackerReply { .. }) => self.tracker_replies += 1,
                ClientEvent::Session(Event::TrackerError { url, message, .. }) => {
                    self.last_tracker_error = Some(format!("{url}: {message}"));
                }
                ClientEvent::Session(Event::StorageError { error, .. }) => {
                    return Err(format!("{}: writing failed: {error}", self.name));
                }
                ClientEvent::Session(Event::TorrentComplete { .. }) => {
                    self.completed_after.get_or_insert_with(|| since.elapsed());
                }
                _ => {}
            }
        }
        let stats = self
            .client
            .stats(self.handle.id)
            .map_err(|e| format!("{}: {e}", self.name))?;
        if stats.as_ref().is_some_and(|s| s.complete) {
            self.completed_after.get_or_insert_with(|| since.elapsed());
        }
        self.stats = stats;
        Ok(())
    }

    fn uploaded(&self) -> u64 {
        self.stats.as_ref().map_or(0, |s| s.uploaded)
    }
}

/// Where the run keeps its files: a directory given by the user, or a temporary one
/// (removed when the guard drops).
fn work_dir(dir: Option<&Path>) -> Result<(PathBuf, Option<tempfile::TempDir>), String> {
    match dir {
        Some(d) => {
            if let Ok(mut entries) = std::fs::read_dir(d) {
                if entries.next().is_some() {
                    return Err(format!(
                        "{}: the directory is not empty (the swarm would overwrite it)",
                        d.display()
                    ));
                }
            }
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            Ok((d.to_path_buf(), None))
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("unchoke-swarm-")
                .tempdir()
                .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
    }
}

/// Writes a random payload of `size` bytes into `seed_dir`, hashing pieces as it goes, and
/// the torrent announcing to `trackers` (one tier). Returns the metainfo and the SHA-1 of
/// the whole payload.
fn make_payload(
    seed_dir: &Path,
    torrent_path: &Path,
    size: u64,
    piece_length: Option<u32>,
    trackers: Vec<String>,
    interrupted: &AtomicBool,
) -> Result<(Metainfo, [u8; 20]), String> {
    let plan = TorrentPlan::new(Content::SingleFile { length: size }, piece_length)
        .map_err(|e| e.to_string())?;
    std::fs::create_dir_all(seed_dir).map_err(|e| format!("{}: {e}", seed_dir.display()))?;
    let path = seed_dir.join(PAYLOAD_NAME);
    let io_err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = File::create(&path).map_err(io_err)?;
    let mut rng = fastrand::Rng::new();
    let mut whole = Sha1::new();
    let mut hashes = Vec::with_capacity(plan.piece_count() as usize);
    let mut buf = vec![0u8; plan.piece_length() as usize];
    for piece in 0..plan.piece_count() {
        // Making a large payload takes a while: Ctrl-C stops it too.
        if interrupted.load(Ordering::SeqCst) {
            return Err("interrupted while making the payload".into());
        }
        let chunk = &mut buf[..plan.piece_len(piece) as usize];
        rng.fill(chunk);
        whole.update(&*chunk);
        hashes.push(Sha1::digest(&*chunk).into());
        file.write_all(chunk).map_err(io_err)?;
    }
    file.sync_all().map_err(io_err)?;
    let options = CreateOptions {
        trackers: vec![trackers],
        piece_length: Some(plan.piece_length()),
        comment: Some("made by unchoke swarm".into()),
        ..CreateOptions::new(PAYLOAD_NAME)
    };
    let bytes = plan.finish(&hashes, &options).map_err(|e| e.to_string())?;
    std::fs::write(torrent_path, &bytes).map_err(|e| format!("{}: {e}", torrent_path.display()))?;
    let metainfo = Metainfo::from_bytes(&bytes).map_err(|e| e.to_string())?;
    Ok((metainfo, whole.finalize().into()))
}

/// SHA-1 of a whole file.
fn sha1_file(path: &Path) -> std::io::Result<[u8; 20]> {
    let mut f = File::open(path)?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

fn client_config(transport: unchoke_core::session::Transport) -> ClientConfig {
    ClientConfig {
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        // Nine or more clients share the machine's cores: two disk threads each is plenty.
        disk_threads: 2,
        // Every member connects from 127.0.0.1: the per-IP caps, meant for one remote
        // host, would refuse the swarm its own members (at most 64 leechers and a seed).
        session: SessionConfig {
            max_inbound_per_ip: 65,
            max_handshaking_per_ip: 65,
            transport,
            ..SessionConfig::default()
        },
        ..ClientConfig::default()
    }
}

/// What the user sees while the swarm runs.
enum Display {
    Bars {
        /// Kept for the life of the display: it owns the bars' shared drawing state.
        _multi: indicatif::MultiProgress,
        seed: indicatif::ProgressBar,
        leechers: Vec<indicatif::ProgressBar>,
    },
    Lines {
        last: Instant,
    },
    Json {
        last: Instant,
    },
    Quiet,
}

impl Display {
    fn new(args: &SwarmArgs, piece_count: u32) -> Display {
        use std::io::IsTerminal;
        if args.json {
            return Display::Json {
                last: Instant::now(),
            };
        }
        if args.quiet {
            return Display::Quiet;
        }
        if !std::io::stderr().is_terminal() {
            return Display::Lines {
                last: Instant::now(),
            };
        }
        let multi = indicatif::MultiProgress::new();
        let seed = multi.add(indicatif::ProgressBar::new_spinner());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{prefix:>10} {msg}") {
            seed.set_style(style);
        }
        seed.set_prefix("seed");
        let leechers = (1..=args.leechers)
            .map(|i| {
                let bar = multi.add(indicatif::ProgressBar::new(u64::from(piece_count)));
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{prefix:>10} [{bar:30}] {percent:>3}% {msg}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_prefix(format!("leecher {i}"));
                bar
            })
            .collect();
        Display::Bars {
            _multi: multi,
            seed,
            leechers,
        }
    }

    /// A line after the bars are finished (see [`Display::finish`]): printed below them, in
    /// the order things happened, as the bars no longer redraw.
    fn message(&self, text: &str) {
        match self {
            Display::Bars { .. } | Display::Lines { .. } => {
                let _ = print(&format!("{text}\n"));
            }
            Display::Json { .. } | Display::Quiet => {}
        }
    }

    fn update(&mut self, seed: &Member, leechers: &[Member], elapsed: Duration) {
        match self {
            Display::Bars {
                seed: seed_bar,
                leechers: bars,
                ..
            } => {
                if let Some(s) = &seed.stats {
                    // The ratio: how many copies' worth the seed has sent.
                    seed_bar.set_message(format!(
                        "up {}/s, {} uploaded (ratio {:.2}), {}",
                        human::size(s.upload_rate),
                        human::size(s.uploaded),
                        s.uploaded as f64 / s.total_length.max(1) as f64,
                        human::count(s.peers, "peer")
                    ));
                }
                for (bar, m) in bars.iter().zip(leechers) {
                    if let Some(s) = &m.stats {
                        bar.set_position(u64::from(s.pieces_have));
                        bar.set_message(match m.completed_after {
                            Some(t) => format!(
                                "done in {:.1} s, {} uploaded, {}",
                                t.as_secs_f64(),
                                human::size(s.uploaded),
                                human::count(s.peers, "peer")
                            ),
                            None => format!(
                                "down {}/s up {}/s, {}",
                                human::size(s.download_rate),
                                human::size(s.upload_rate),
                                human::count(s.peers, "peer")
                            ),
                        });
                    }
                }
            }
            Display::Lines { last } => {
                if last.elapsed() < Duration::from_secs(2) {
                    return;
                }
                *last = Instant::now();
                let done = leechers
                    .iter()
                    .filter(|m| m.completed_after.is_some())
                    .count();
                let (have, total) = leechers
                    .iter()
                    .filter_map(|m| m.stats.as_ref())
                    .fold((0u64, 0u64), |(h, t), s| {
                        (h + s.bytes_have, t + s.total_length)
                    });
                let peers_up: u64 = leechers.iter().map(Member::uploaded).sum();
                let _ = print(&format!(
                    "{:6.1} s: {done}/{} leechers complete, {:5.1}% of all copies, seed uploaded {}, peers uploaded {}\n",
                    elapsed.as_secs_f64(),
                    leechers.len(),
                    if total == 0 {
                        0.0
                    } else {
                        have as f64 * 100.0 / total as f64
                    },
                    human::size(seed.uploaded()),
                    human::size(peers_up)
                ));
            }
            Display::Json { last } => {
                if last.elapsed() < Duration::from_secs(1) {
                    return;
                }
                *last = Instant::now();
                let members: Vec<_> = leechers
                    .iter()
                    .map(|m| {
                        let s = m.stats.as_ref();
                        json!({
                            "name": m.name,
                            "pieces_have": s.map_or(0, |s| s.pieces_have),
                            "uploaded": s.map_or(0, |s| s.uploaded),
                            "downloaded": s.map_or(0, |s| s.downloaded),
                            "peers": s.map_or(0, |s| s.peers),
                            "complete": m.completed_after.is_some(),
                        })
                    })
                    .collect();
                crate::output::emit(json!({
                    "event": "progress",
                    "seconds": elapsed.as_secs_f64(),
                    "seed_uploaded": seed.uploaded(),
                    "leechers": members,
                }));
            }
            Display::Quiet => {}
        }
    }

    fn finish(&self) {
        if let Display::Bars { seed, leechers, .. } = self {
            seed.finish();
            for b in leechers {
                b.finish();
            }
        }
    }
}

/// `unchoke swarm`.
pub(crate) fn run(args: &SwarmArgs) -> Result<(), String> {
    crate::output::set_json_mode(args.json);
    let interrupted = interrupt_flag()?;
    let (dir, _temp_guard) = work_dir(args.dir.as_deref())?;
    let localhost = SocketAddr::from(([127, 0, 0, 1], 0));
    let tracker = Tracker::start(
        args.runtime,
        TrackerServiceConfig {
            http: Some(localhost),
            udp: Some(localhost),
            server: ServerConfig {
                interval: TRACKER_INTERVAL,
                min_interval: Duration::from_secs(10),
                ..ServerConfig::default()
            },
            ..TrackerServiceConfig::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let urls = tracker.announce_urls();

    let made = Instant::now();
    let torrent_path = dir.join("swarm.torrent");
    let (metainfo, payload_sha1) = make_payload(
        &dir.join("seed"),
        &torrent_path,
        args.size,
        args.piece_length,
        urls.clone(),
        &interrupted,
    )?;
    let piece_count = metainfo.info.piece_count();
    if args.json {
        crate::output::emit(json!({
            "event": "setup",
            "dir": dir.display().to_string(),
            "size": args.size,
            "piece_length": metainfo.info.piece_length,
            "pieces": piece_count,
            "trackers": urls,
            "leechers": args.leechers,
            "runtime": format!("{:?}", args.runtime).to_lowercase(),
            "seconds": made.elapsed().as_secs_f64(),
        }));
    } else if !args.quiet {
        let _ = print(&format!(
            "swarm: {} payload in {piece_count} pieces of {}, made in {:.1} s under {}\n\
             swarm: tracker {}; 1 seed and {} leechers on 127.0.0.1 ({} runtime)\n",
            human::size(args.size),
            human::size(u64::from(metainfo.info.piece_length)),
            made.elapsed().as_secs_f64(),
            dir.display(),
            urls.join(" and "),
            args.leechers,
            format!("{:?}", args.runtime).to_lowercase(),
        ));
    }
    // Only now, below the set-up lines: bars drawn before them would be left behind as a
    // stale block of 0 % bars, and their redraws would overwrite the set-up lines (the
    // bars only know the lines they drew).
    let mut display = Display::new(args, piece_count);

    // The seed registers first, so every leecher's first announce already lists it.
    let mut seed = start_member(
        args.runtime,
        args.transport,
        "seed",
        &metainfo,
        &dir.join("seed"),
    )?;
    if seed.handle.check.pieces_have != piece_count {
        return Err("the seed's data failed its own check".into());
    }
    let since = Instant::now();
    while seed.tracker_replies == 0 {
        seed.poll(since)?;
        if since.elapsed() > SEED_ANNOUNCE_WAIT {
            return Err(format!(
                "the seed could not announce to the tracker within {} s{}",
                SEED_ANNOUNCE_WAIT.as_secs(),
                seed.last_tracker_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let start = Instant::now();
    let mut leechers = Vec::new();
    for i in 1..=args.leechers {
        let name = format!("leecher {i}");
        let path = dir.join(format!("leecher-{i:02}"));
        leechers.push(start_member(
            args.runtime,
            args.transport,
            &name,
            &metainfo,
            &path,
        )?);
    }
    let limit = Duration::from_secs(args.timeout);
    let mut failure = None;
    loop {
        let elapsed = start.elapsed();
        for m in std::iter::once(&mut seed).chain(leechers.iter_mut()) {
            if let Err(e) = m.poll(start) {
                failure = Some(e);
            }
        }
        display.update(&seed, &leechers, elapsed);
        if failure.is_some() {
            break;
        }
        if leechers.iter().all(|m| m.completed_after.is_some()) {
            break;
        }
        if interrupted.load(Ordering::SeqCst) {
            failure = Some("interrupted".into());
            break;
        }
        if elapsed > limit {
            let done = leechers
                .iter()
                .filter(|m| m.completed_after.is_some())
                .count();
            failure = Some(format!(
                "timed out after {} s with {done} of {} leechers complete",
                limit.as_secs(),
                leechers.len()
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let distribution = leechers
        .iter()
        .filter_map(|m| m.completed_after)
        .max()
        .unwrap_or_else(|| start.elapsed());
    display.update(&seed, &leechers, start.elapsed());
    display.finish();

    // Final counters from the shutdown reports (they include the last blocks sent).
    for m in std::iter::once(&mut seed).chain(leechers.iter_mut()) {
        if let Ok(reports) = m.client.shutdown() {
            if let Some(s) = reports
                .into_iter()
                .find(|r| r.torrent == m.handle.id)
                .and_then(|r| r.stats)
            {
                m.stats = Some(s);
            }
        }
    }
    // Every client has left (its shutdown waits for its `stopped` announce): a tracker
    // that still lists peers missed a `stopped`.
    let peers_left = tracker.stats().peers;
    let tracker_stats = tracker.shutdown().map_err(|e| e.to_string())?;
    if let Some(f) = failure {
        return Err(f);
    }

    display.message("swarm: verifying every copy against the original...");
    let verified = verify_copies(&leechers, payload_sha1)?;
    summarise(
        args,
        &seed,
        &leechers,
        distribution,
        verified,
        TrackerCounts {
            http_requests: tracker_stats.http_requests,
            udp_packets: tracker_stats.udp_packets,
            peers_left,
        },
    );
    Ok(())
}

fn start_member(
    runtime: Runtime,
    transport: unchoke_core::session::Transport,
    name: &str,
    metainfo: &Metainfo,
    save_path: &Path,
) -> Result<Member, String> {
    let client =
        Client::new(runtime, client_config(transport)).map_err(|e| format!("{name}: {e}"))?;
    let mut add = AddTorrent::new(metainfo.clone(), save_path);
    // Ctrl-C stops the seed's check of its data too.
    add.cancel = interrupt_flag()?;
    let handle = client
        .add_torrent(add, &|_| {})
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(Member {
        name: name.to_string(),
        client,
        handle,
        stats: None,
        completed_after: None,
        tracker_replies: 0,
        last_tracker_error: None,
        save_path: save_path.to_path_buf(),
    })
}

/// Hashes every leecher's file (two at a time) and compares with the original's SHA-1.
fn verify_copies(leechers: &[Member], expected: [u8; 20]) -> Result<usize, String> {
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = leechers
            .chunks(leechers.len().div_ceil(2).max(1))
            .map(|group| {
                scope.spawn(move || {
                    group
                        .iter()
                        .map(|m| {
                            let path = m.save_path.join(PAYLOAD_NAME);
                            match sha1_file(&path) {
                                Ok(h) if h == expected => Ok(()),
                                Ok(_) => Err(format!(
                                    "{}: {} differs from the original",
                                    m.name,
                                    path.display()
                                )),
                                Err(e) => Err(format!("{}: {}: {e}", m.name, path.display())),
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err("a verifying thread panicked".to_string())])
            })
            .collect()
    });
    let mut ok = 0;
    for r in results {
        r?;
        ok += 1;
    }
    Ok(ok)
}

/// What the tracker saw, for the summary.
struct TrackerCounts {
    http_requests: u64,
    udp_packets: u64,
    /// Peers still registered after every client shut down.
    peers_left: usize,
}

fn summarise(
    args: &SwarmArgs,
    seed: &Member,
    leechers: &[Member],
    distribution: Duration,
    verified: usize,
    tracker: TrackerCounts,
) {
    let TrackerCounts {
        http_requests,
        udp_packets,
        peers_left,
    } = tracker;
    let n = leechers.len() as u64;
    let secs = distribution.as_secs_f64().max(1e-3);
    let delivered = args.size * n;
    let seed_up = seed.uploaded();
    let peers_up: u64 = leechers.iter().map(Member::uploaded).sum();
    let mut times: Vec<f64> = leechers
        .iter()
        .filter_map(|m| m.completed_after)
        .map(|d| d.as_secs_f64())
        .collect();
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(secs);
    let first = times.first().copied().unwrap_or(secs);
    let seed_share = if seed_up + peers_up == 0 {
        0.0
    } else {
        seed_up as f64 * 100.0 / (seed_up + peers_up) as f64
    };
    // A single server sending N copies at the rate this seed actually uploaded would need
    // N·F / (seed_up / T) seconds: T scaled by how many copies' worth the seed sent.
    let server_secs = if seed_up == 0 {
        f64::INFINITY
    } else {
        secs * delivered as f64 / seed_up as f64
    };
    if args.json {
        crate::output::emit(json!({
            "event": "summary",
            "leechers": n,
            "size": args.size,
            "seconds": secs,
            "first_complete_seconds": first,
            "median_complete_seconds": median,
            "throughput_bytes_per_second": delivered as f64 / secs,
            "seed_uploaded": seed_up,
            "peers_uploaded": peers_up,
            "peers_uploaded_more": peers_up > seed_up,
            "verified": verified,
            "server_equivalent_seconds": server_secs,
            "tracker_http_requests": http_requests,
            "tracker_udp_packets": udp_packets,
            "tracker_peers_left": peers_left,
            "per_leecher": leechers.iter().map(|m| json!({
                "name": m.name,
                "seconds": m.completed_after.map(|d| d.as_secs_f64()),
                "uploaded": m.uploaded(),
                "downloaded": m.stats.as_ref().map_or(0, |s| s.downloaded),
            })).collect::<Vec<_>>(),
        }));
        return;
    }
    let verdict = if peers_up > seed_up {
        "the peers uploaded more than the seed"
    } else {
        "the seed uploaded more than the peers"
    };
    let _ = print(&format!(
        "swarm: {n} leechers each got {} in {secs:.1} s (first {first:.1} s, median {median:.1} s)\n\
         swarm: {} delivered, {}/s across the swarm\n\
         swarm: seed uploaded {} ({seed_share:.0}%), peers uploaded {} ({:.0}%): {verdict}\n\
         swarm: one server at the seed's upload rate would have needed {server_secs:.1} s for the same {n} copies\n\
         swarm: {verified} of {n} copies verified against the original (SHA-1 of the whole file); \
         tracker answered {http_requests} HTTP requests and {udp_packets} UDP packets\n",
        human::size(args.size),
        human::size(delivered),
        human::size((delivered as f64 / secs) as u64),
        human::size(seed_up),
        human::size(peers_up),
        100.0 - seed_share,
    ));
}
