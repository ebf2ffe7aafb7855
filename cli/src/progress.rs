//! How `download` and `seed` report: a progress bar on a terminal, plain lines otherwise,
//! one JSON object per line with `--json` (each stamped with its time by
//! [`crate::output::emit`]; the schema is docs/json-events.md), nothing but errors with
//! `--quiet`.
//!
//! To report something new, add a method here that builds the JSON object (with its
//! `"event"`) and the human line, and calls [`Reporter::say`]; then document the event.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use unchoke_core::metainfo::Metainfo;
use unchoke_core::torrent::TorrentStats;
use unchoke_driver::CheckReport;

use crate::human;
use crate::output::{emit, print, printable};

enum Mode {
    Json,
    Bar(indicatif::ProgressBar),
    Plain,
    Quiet,
}

/// The reporter of one run.
pub(crate) struct Reporter {
    mode: Mode,
    name: String,
    piece_count: u32,
}

/// Progress of the start-up check; called from the checking threads.
pub(crate) struct Checking<'a> {
    reporter: &'a Reporter,
    started: Instant,
    /// Milliseconds after `started` of the last plain line (0: none yet).
    last_line_ms: AtomicU64,
}

/// In plain mode the check says nothing for its first seconds (most checks end by then:
/// a resume file, or nothing on disk), then one line per interval.
const PLAIN_CHECK_INTERVAL: Duration = Duration::from_secs(2);

impl Checking<'_> {
    /// `n` pieces checked so far.
    pub(crate) fn set(&self, n: u32) {
        let total = self.reporter.piece_count.max(1);
        match &self.reporter.mode {
            Mode::Bar(bar) => bar.set_position(u64::from(n)),
            Mode::Plain => {
                let now_ms = self.started.elapsed().as_millis() as u64;
                let last = self.last_line_ms.load(Ordering::Relaxed);
                let due = now_ms.saturating_sub(last) >= PLAIN_CHECK_INTERVAL.as_millis() as u64;
                // One thread wins the interval; the others skip it.
                if due
                    && n < total
                    && self
                        .last_line_ms
                        .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    eprintln!(
                        "checking: {}% ({n} of {total} pieces)",
                        u64::from(n) * 100 / u64::from(total)
                    );
                }
            }
            Mode::Json | Mode::Quiet => {}
        }
    }
}

impl Mode {
    /// From the flags and whether stderr is a terminal.
    fn pick(json: bool, quiet: bool) -> Mode {
        if json {
            Mode::Json
        } else if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bar(indicatif::ProgressBar::hidden())
        } else {
            Mode::Plain
        }
    }
}

impl Reporter {
    /// Picks the mode from the flags and whether stderr is a terminal.
    pub(crate) fn new(json: bool, quiet: bool, metainfo: &Metainfo) -> Self {
        let mode = Mode::pick(json, quiet);
        Reporter {
            mode,
            name: printable(&metainfo.info.name),
            piece_count: metainfo.info.piece_count(),
        }
    }

    /// For a magnet link: the name is the link's `dn` (else the info-hash) until
    /// [`Reporter::metadata_received`].
    pub(crate) fn awaiting_metadata(
        json: bool,
        quiet: bool,
        info_hash: unchoke_core::InfoHash,
        display_name: Option<&str>,
    ) -> Self {
        let mode = Mode::pick(json, quiet);
        let name = display_name.map_or_else(|| info_hash.to_hex(), printable);
        let r = Reporter {
            mode,
            name,
            piece_count: 0,
        };
        let line = format!("{}: fetching the metadata from peers", r.name);
        match &r.mode {
            Mode::Json => emit(json!({
                "event": "fetching_metadata",
                "info_hash": info_hash.to_hex(),
                "name": display_name,
            })),
            Mode::Bar(_) => eprintln!("{line}"),
            Mode::Plain => println_safe(&line),
            Mode::Quiet => {}
        }
        r
    }

    /// A magnet link's metadata arrived and was verified.
    pub(crate) fn metadata_received(&mut self, metainfo: &Metainfo, elapsed: Duration) {
        self.name = printable(&metainfo.info.name);
        self.piece_count = metainfo.info.piece_count();
        let line = format!(
            "{}: metadata received in {:.1} s ({}, {} pieces of {}, {} file{})",
            self.name,
            elapsed.as_secs_f64(),
            human::size(metainfo.info.total_length),
            self.piece_count,
            human::size(u64::from(metainfo.info.piece_length)),
            metainfo.info.files.len(),
            if metainfo.info.files.len() == 1 {
                ""
            } else {
                "s"
            }
        );
        self.say(
            json!({
                "event": "metadata",
                "info_hash": metainfo.info_hash.to_hex(),
                "name": metainfo.info.name,
                "piece_count": self.piece_count,
                "total_length": metainfo
                    .info
                    .files
                    .iter()
                    .filter(|f| !f.padding)
                    .map(|f| f.length)
                    .sum::<u64>(),
                "files": metainfo.info.files.iter().filter(|f| !f.padding).count(),
                "seconds": elapsed.as_secs_f64(),
            }),
            &line,
        );
    }

    /// The DHT node's UDP address.
    pub(crate) fn dht_listening(&self, addr: SocketAddr) {
        self.say(
            json!({"event": "dht_listening", "addr": addr.to_string()}),
            &format!("DHT node on {addr} (UDP)"),
        );
    }

    /// `value` in JSON mode, else `line` (above the bar on a terminal); nothing if quiet.
    fn say(&self, value: Value, line: &str) {
        match &self.mode {
            Mode::Json => emit(value),
            Mode::Bar(bar) => bar.println(line),
            Mode::Plain => println_safe(line),
            Mode::Quiet => {}
        }
    }

    /// A DHT lookup for the torrent finished (shown with `--verbose`, always in JSON).
    pub(crate) fn dht_lookup(&self, peers: u32, queries: u32, announced: u32, verbose: bool) {
        let line = format!(
            "DHT: {peers} peer{} from {queries} queries{}",
            if peers == 1 { "" } else { "s" },
            if announced > 0 {
                format!(", announced to {announced} nodes")
            } else {
                String::new()
            }
        );
        match &self.mode {
            Mode::Json => emit(json!({
                "event": "dht_lookup",
                "peers": peers,
                "queries": queries,
                "announced": announced,
            })),
            Mode::Bar(bar) if verbose => bar.println(line),
            Mode::Plain if verbose => println_safe(&line),
            Mode::Bar(_) | Mode::Plain | Mode::Quiet => {}
        }
    }

    /// Whether local service discovery runs on a group, and where, or why not (shown with
    /// `--verbose`, always in JSON): it is on by default, one line per group tried (IPv4,
    /// IPv6 or both, as the listen address says), and a LAN without multicast only turns
    /// that group off.
    pub(crate) fn lsd_status(
        &self,
        status: &Result<unchoke_driver::lsd_node::LsdSocketInfo, unchoke_driver::lsd_node::LsdOff>,
        verbose: bool,
    ) {
        let (value, line) = match status {
            Ok(info) => (
                json!({
                    "event": "lsd",
                    "group": info.group.to_string(),
                    "interface": info.interface.to_string(),
                    "interface_index": info.interface_index,
                }),
                format!(
                    "local service discovery on {} (interface {}{})",
                    info.group,
                    info.interface,
                    match info.interface_index {
                        0 => String::new(),
                        i => format!(", index {i}"),
                    }
                ),
            ),
            Err(off) => {
                let mut value = json!({"event": "lsd_off", "reason": off.reason});
                let line = match off.group {
                    Some(group) => {
                        value["group"] = json!(group.to_string());
                        format!(
                            "local service discovery off on {group}: {}",
                            printable(&off.reason)
                        )
                    }
                    None => format!("local service discovery off: {}", printable(&off.reason)),
                };
                (value, line)
            }
        };
        self.say_verbose(value, &line, verbose);
    }

    /// A peer on the LAN announced the torrent (shown with `--verbose`, always in JSON).
    pub(crate) fn lsd_peer(&self, addr: SocketAddr, verbose: bool) {
        self.say_verbose(
            json!({"event": "lsd_peer", "addr": addr.to_string()}),
            &format!("LSD: peer {addr} on the LAN"),
            verbose,
        );
    }

    /// `value` in JSON mode, `line` only with `verbose`.
    fn say_verbose(&self, value: Value, line: &str, verbose: bool) {
        match &self.mode {
            Mode::Json => emit(value),
            Mode::Bar(bar) if verbose => bar.println(line),
            Mode::Plain if verbose => println_safe(line),
            Mode::Bar(_) | Mode::Plain | Mode::Quiet => {}
        }
    }

    /// How often [`Reporter::progress`] wants fresh counters.
    pub(crate) fn interval(&self) -> Duration {
        match self.mode {
            Mode::Bar(_) => Duration::from_millis(250),
            Mode::Json => Duration::from_secs(1),
            Mode::Plain | Mode::Quiet => Duration::from_secs(5),
        }
    }

    /// Start of the check of existing data.
    pub(crate) fn checking(&mut self) -> Checking<'_> {
        if let Mode::Bar(_) = self.mode {
            let bar = indicatif::ProgressBar::new(u64::from(self.piece_count));
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("checking [{bar:40}] {pos}/{len} pieces")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            self.mode = Mode::Bar(bar);
        }
        Checking {
            reporter: self,
            started: Instant::now(),
            last_line_ms: AtomicU64::new(0),
        }
    }

    /// The check is done.
    pub(crate) fn checked(&mut self, c: &CheckReport) {
        match &self.mode {
            Mode::Json => emit(json!({
                "event": "checked",
                "pieces_have": c.pieces_have,
                "piece_count": c.piece_count,
                "trusted": c.trusted,
                "hashed": c.hashed,
                "skipped": c.skipped,
                "resumed": c.resumed,
                "seconds": c.elapsed.as_secs_f64(),
            })),
            Mode::Bar(bar) => {
                bar.finish_and_clear();
                eprintln!("{}", check_summary(&self.name, c));
                let bar = indicatif::ProgressBar::new(u64::from(c.piece_count));
                if let Ok(style) =
                    indicatif::ProgressStyle::with_template("[{bar:30}] {percent:>3}% {msg}")
                {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_position(u64::from(c.pieces_have));
                self.mode = Mode::Bar(bar);
            }
            Mode::Plain => println_safe(&check_summary(&self.name, c)),
            Mode::Quiet => {}
        }
    }

    /// Accepting peers on `addr`.
    pub(crate) fn listening(&self, addr: SocketAddr) {
        self.say(
            json!({"event": "listening", "addr": addr.to_string()}),
            &format!("listening on {addr}"),
        );
    }

    /// Periodic counters.
    pub(crate) fn progress(&self, s: &TorrentStats) {
        if !s.has_metadata {
            // A magnet link's torrent has no sizes yet: only the peer count says anything.
            if let Mode::Json = self.mode {
                emit(
                    json!({"event": "fetching_metadata", "info_hash": s.info_hash.to_hex(),
                             "peers": s.peers}),
                );
            }
            return;
        }
        match &self.mode {
            Mode::Json => emit(with_event("progress", s, None)),
            Mode::Bar(bar) => {
                bar.set_position(u64::from(s.pieces_have));
                bar.set_message(summary(s));
            }
            Mode::Plain => println_safe(&format!("{:5.1}% {}", percent(s), summary(s))),
            Mode::Quiet => {}
        }
    }

    /// Every piece is verified.
    pub(crate) fn complete(&self, s: &TorrentStats, elapsed: Duration) {
        match &self.mode {
            Mode::Json => emit(with_event("complete", s, Some(elapsed))),
            Mode::Bar(bar) => {
                bar.set_position(u64::from(s.pieces_have));
                bar.println(format!(
                    "{}: complete, {} verified in {:.1} s{}",
                    self.name,
                    human::size(s.total_length),
                    elapsed.as_secs_f64(),
                    sources(s)
                ));
            }
            Mode::Plain => println_safe(&format!(
                "{}: complete, {} verified in {:.1} s{}",
                self.name,
                human::size(s.total_length),
                elapsed.as_secs_f64(),
                sources(s)
            )),
            Mode::Quiet => {}
        }
    }

    /// A peer was banned for corrupt data.
    pub(crate) fn banned(&self, addr: SocketAddr) {
        match &self.mode {
            Mode::Json => emit(json!({"event": "banned", "addr": addr.to_string()})),
            Mode::Bar(bar) => bar.println(format!("banned {addr}: it sent corrupt data")),
            Mode::Plain => println_safe(&format!("banned {addr}: it sent corrupt data")),
            Mode::Quiet => {}
        }
    }

    /// A web seed (BEP 19) is used (shown with `--verbose`, always in JSON).
    pub(crate) fn web_seed_added(&self, url: &str, verbose: bool) {
        match &self.mode {
            Mode::Json => emit(json!({"event": "web_seed_added", "url": url})),
            _ if verbose => self.warn(&format!("web seed {url}: used")),
            _ => {}
        }
    }

    /// A request to a web seed failed; it is asked again after `retry_in` (zero: a file
    /// it lacks, its other files asked for at once).
    pub(crate) fn web_seed_failed(
        &self,
        url: &str,
        file: Option<&str>,
        reason: &str,
        retry_in: Duration,
    ) {
        match &self.mode {
            Mode::Json => emit(json!({
                "event": "web_seed_failed",
                "url": url,
                "file": file,
                "reason": reason,
                "retry_seconds": retry_in.as_secs_f64(),
            })),
            _ => {
                let file = file.map(|f| format!(" for file {f}")).unwrap_or_default();
                let next = if retry_in.is_zero() {
                    "going on with its other files".to_owned()
                } else {
                    format!("trying again in {} s", retry_in.as_secs_f64())
                };
                self.warn(&format!("web seed {url}: {reason}{file}; {next}"));
            }
        }
    }

    /// A web seed sent corrupt data and is not used again.
    pub(crate) fn web_seed_banned(&self, url: &str) {
        match &self.mode {
            Mode::Json => emit(json!({"event": "web_seed_banned", "url": url})),
            Mode::Bar(bar) => bar.println(format!("web seed {url}: banned, it sent corrupt data")),
            Mode::Plain => println_safe(&format!("web seed {url}: banned, it sent corrupt data")),
            Mode::Quiet => {}
        }
    }

    /// A peer connection came, went or failed (`--verbose`).
    pub(crate) fn peer(&self, event: &str, addr: SocketAddr, detail: &str) {
        self.say(
            json!({"event": event, "addr": addr.to_string(), "detail": detail}),
            &format!("{event} {addr}: {}", printable(detail)),
        );
    }

    /// A tracker answered (shown with `--verbose`, always in JSON).
    pub(crate) fn tracker_reply(
        &self,
        url: &str,
        peers: usize,
        seeders: Option<u32>,
        leechers: Option<u32>,
        verbose: bool,
    ) {
        match &self.mode {
            Mode::Json => emit(json!({
                "event": "tracker",
                "url": url,
                "peers": peers,
                "seeders": seeders,
                "leechers": leechers,
            })),
            Mode::Bar(_) | Mode::Plain if verbose => {
                let counts = match (seeders, leechers) {
                    (Some(s), Some(l)) => format!(" (swarm: {s} seeders, {l} leechers)"),
                    _ => String::new(),
                };
                let line = format!("tracker {}: {peers} peers{counts}", printable(url));
                match &self.mode {
                    Mode::Bar(bar) => bar.println(line),
                    _ => println_safe(&line),
                }
            }
            Mode::Bar(_) | Mode::Plain | Mode::Quiet => {}
        }
    }

    /// A tracker could not be reached or refused us (the download goes on).
    pub(crate) fn tracker_error(&self, url: &str, message: &str) {
        match &self.mode {
            Mode::Json => emit(json!({"event": "tracker_error", "url": url, "message": message})),
            _ => self.warn(&format!("tracker {url}: {message}")),
        }
    }

    /// The DHT node could not join (always shown: a magnet link depends on it).
    pub(crate) fn dht_join_failed(
        &self,
        nodes_tried: usize,
        routers: &[unchoke_core::session::DhtRouterFailure],
    ) {
        match &self.mode {
            Mode::Json => emit(json!({
                "event": "dht_join_failed",
                "nodes_tried": nodes_tried,
                "routers": routers
                    .iter()
                    .map(|r| json!({"router": r.router, "reason": r.reason}))
                    .collect::<Vec<_>>(),
            })),
            _ => {
                let mut line = String::from("DHT: could not join");
                for r in routers {
                    line.push_str(&format!("; router {}: {}", r.router, r.reason));
                }
                if nodes_tried > 0 {
                    let s = if nodes_tried == 1 { "" } else { "es" };
                    line.push_str(&format!("; no answer from {nodes_tried} node address{s}"));
                }
                line.push_str(" (trying again every 30 s)");
                self.warn(&line);
            }
        }
    }

    /// Something worth knowing that does not stop the run.
    pub(crate) fn warn(&self, message: &str) {
        match &self.mode {
            Mode::Json => emit(json!({"event": "warning", "message": message})),
            Mode::Bar(bar) => bar.println(format!("warning: {}", printable(message))),
            Mode::Plain | Mode::Quiet => eprintln!("unchoke: warning: {}", printable(message)),
        }
    }

    /// The final counters, after shutdown.
    pub(crate) fn stopped(&self, s: &TorrentStats) {
        match &self.mode {
            Mode::Json => emit(with_event("stopped", s, None)),
            Mode::Bar(bar) => {
                bar.finish_and_clear();
                eprintln!(
                    "{}: stopped at {:.1}%: {}",
                    self.name,
                    percent(s),
                    totals(s)
                );
            }
            Mode::Plain => println_safe(&format!(
                "{}: stopped at {:.1}%: {}",
                self.name,
                percent(s),
                totals(s)
            )),
            Mode::Quiet => {}
        }
    }
}

fn percent(s: &TorrentStats) -> f64 {
    if s.total_length == 0 {
        return 100.0;
    }
    s.bytes_have as f64 * 100.0 / s.total_length as f64
}

/// What the check found, in words that match what it did: pieces trusted from the resume
/// file, pieces actually read and hashed, and pieces not read because their files are
/// missing or short. An empty save path is "nothing on disk yet", not "N hashed in 0.0 s".
fn check_summary(name: &str, c: &CheckReport) -> String {
    if c.pieces_have == 0 && c.hashed == 0 && c.trusted == 0 {
        return format!(
            "{name}: nothing on disk yet ({} piece{} to download)",
            c.piece_count,
            plural(c.piece_count)
        );
    }
    let mut how = Vec::new();
    if c.trusted > 0 {
        how.push(format!("{} from resume data", c.trusted));
    }
    if c.hashed > 0 {
        how.push(format!(
            "{} hashed in {:.1} s",
            c.hashed,
            c.elapsed.as_secs_f64()
        ));
    }
    if c.skipped > 0 {
        how.push(format!("{} not on disk", c.skipped));
    }
    format!(
        "{name}: {} of {} pieces present ({})",
        c.pieces_have,
        c.piece_count,
        how.join(", ")
    )
}

/// The `s` of `3 peers`, none for one.
fn plural<T: PartialEq + From<u8>>(n: T) -> &'static str {
    if n == T::from(1) { "" } else { "s" }
}

/// Uploaded bytes over the torrent's size: how many copies' worth this client gave.
fn ratio(s: &TorrentStats) -> f64 {
    if s.total_length == 0 {
        return 0.0;
    }
    s.uploaded as f64 / s.total_length as f64
}

/// The bar's message: while downloading `1.20 GiB / 3.00 GiB, down 12.00 MiB/s up
/// 1.00 MiB/s, 3 peers, ETA 0:42`; once complete (seeding) what was given back:
/// `seeding 3.00 GiB: up 1.00 MiB/s, 6.00 GiB uploaded (ratio 2.00), 3 peers`.
fn summary(s: &TorrentStats) -> String {
    let peers = human::count(s.peers, "peer");
    if s.complete {
        return format!(
            "seeding {}: up {}/s, {} uploaded (ratio {:.2}), {peers}",
            human::size(s.total_length),
            human::size(s.upload_rate),
            human::size(s.uploaded),
            ratio(s)
        );
    }
    let eta = match eta_seconds(s) {
        Some(secs) => format!("ETA {}:{:02}", secs / 60, secs % 60),
        None => "ETA -".to_string(),
    };
    format!(
        "{} / {}, down {}/s up {}/s, {peers}, {eta}",
        human::size(s.bytes_have),
        human::size(s.total_length),
        human::size(s.download_rate),
        human::size(s.upload_rate),
    )
}

fn totals(s: &TorrentStats) -> String {
    format!(
        "{} downloaded, {} uploaded (ratio {:.2}), {} wasted, {} hash failure{}",
        human::size(s.downloaded),
        human::size(s.uploaded),
        ratio(s),
        human::size(s.wasted),
        s.hash_failures,
        plural(s.hash_failures)
    )
}

fn eta_seconds(s: &TorrentStats) -> Option<u64> {
    if s.complete || s.download_rate == 0 {
        return None;
    }
    Some(s.total_length.saturating_sub(s.bytes_have) / s.download_rate)
}

/// Where the bytes came from, when web seeds took part: `; from web seeds: 3.0 MiB from
/// http://…; from peers: 1.0 MiB` (empty without web seeds).
fn sources(s: &TorrentStats) -> String {
    if s.web_seeds.is_empty() {
        return String::new();
    }
    let mut out = String::from("; from web seeds:");
    for (i, w) in s.web_seeds.iter().enumerate() {
        let sep = if i == 0 { " " } else { ", " };
        let banned = if w.banned { " (banned)" } else { "" };
        out.push_str(&format!(
            "{sep}{} from {}{banned}",
            human::size(w.downloaded),
            w.url
        ));
    }
    out.push_str(&format!("; from peers: {}", human::size(from_peers(s))));
    out
}

/// Payload bytes received from peers: all received less what web seeds sent.
fn from_peers(s: &TorrentStats) -> u64 {
    let web: u64 = s.web_seeds.iter().map(|w| w.downloaded).sum();
    s.downloaded.saturating_sub(web)
}

fn with_event(event: &str, s: &TorrentStats, elapsed: Option<Duration>) -> Value {
    let mut v = json!({
        "event": event,
        "info_hash": s.info_hash.to_hex(),
        "pieces_have": s.pieces_have,
        "piece_count": s.piece_count,
        "bytes_have": s.bytes_have,
        "total_length": s.total_length,
        "downloaded": s.downloaded,
        "uploaded": s.uploaded,
        "wasted": s.wasted,
        "download_rate": s.download_rate,
        "upload_rate": s.upload_rate,
        "peers": s.peers,
        "encrypted_peers": s.encrypted_peers,
        "utp_peers": s.utp_peers,
        "unchoked": s.unchoked,
        "hash_failures": s.hash_failures,
        "hash_requests_answered": s.hash_requests_answered,
        "complete": s.complete,
        "ratio": ratio(s),
        "eta_seconds": eta_seconds(s),
        "downloaded_from_peers": from_peers(s),
        "web_seeds": s
            .web_seeds
            .iter()
            .map(|w| json!({
                "url": w.url,
                "downloaded": w.downloaded,
                "failures": w.failures,
                "banned": w.banned,
            }))
            .collect::<Vec<_>>(),
    });
    if let (Some(e), Some(map)) = (elapsed, v.as_object_mut()) {
        map.insert("seconds".into(), json!(e.as_secs_f64()));
    }
    v
}

fn println_safe(line: &str) {
    let _ = print(&format!("{line}\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(have: u32, trusted: u32, hashed: u32, skipped: u32) -> CheckReport {
        CheckReport {
            pieces_have: have,
            piece_count: trusted + hashed + skipped,
            trusted,
            hashed,
            skipped,
            resumed: trusted > 0,
            elapsed: Duration::from_millis(1500),
        }
    }

    fn stats(bytes_have: u64, uploaded: u64, complete: bool) -> TorrentStats {
        TorrentStats {
            info_hash: unchoke_core::InfoHash::of_info_bytes(b"d4:name1:xe"),
            piece_count: 4,
            pieces_have: u32::try_from(bytes_have / (1 << 20)).unwrap_or(4),
            pieces_missing: 0,
            bytes_have,
            bytes_left: (4 << 20) - bytes_have,
            total_length: 4 << 20,
            downloaded: bytes_have,
            uploaded,
            downloaded_ever: bytes_have,
            uploaded_ever: uploaded,
            wasted: 0,
            download_rate: 1 << 20,
            upload_rate: 512 << 10,
            peers: 1,
            encrypted_peers: 0,
            utp_peers: 0,
            known_peers: 1,
            unchoked: 1,
            hash_failures: 0,
            hash_requests_answered: 0,
            complete,
            endgame: false,
            web_seeds: Vec::new(),
            has_metadata: true,
        }
    }

    #[test]
    fn an_empty_directory_is_nothing_on_disk_not_a_fast_hash() {
        assert_eq!(
            check_summary("f", &check(0, 0, 0, 1200)),
            "f: nothing on disk yet (1200 pieces to download)"
        );
        assert_eq!(
            check_summary("f", &check(0, 0, 0, 1)),
            "f: nothing on disk yet (1 piece to download)"
        );
    }

    #[test]
    fn the_check_says_what_it_read_and_what_it_did_not() {
        assert_eq!(
            check_summary("f", &check(600, 0, 600, 600)),
            "f: 600 of 1200 pieces present (600 hashed in 1.5 s, 600 not on disk)"
        );
        assert_eq!(
            check_summary("f", &check(10, 10, 0, 0)),
            "f: 10 of 10 pieces present (10 from resume data)"
        );
        // Data that is there but wrong was read: it is not "nothing on disk".
        assert_eq!(
            check_summary("f", &check(0, 0, 3, 0)),
            "f: 0 of 3 pieces present (3 hashed in 1.5 s)"
        );
    }

    #[test]
    fn the_bar_shows_bytes_while_downloading_and_the_ratio_while_seeding() {
        assert_eq!(
            summary(&stats(3 << 19, 0, false)),
            "1.50 MiB / 4.00 MiB, down 1.00 MiB/s up 512.00 KiB/s, 1 peer, ETA 0:02"
        );
        assert_eq!(
            summary(&stats(4 << 20, 10 << 20, true)),
            "seeding 4.00 MiB: up 512.00 KiB/s, 10.00 MiB uploaded (ratio 2.50), 1 peer"
        );
        assert_eq!(
            with_event("progress", &stats(4 << 20, 2 << 20, true), None)["ratio"],
            0.5
        );
    }
}
