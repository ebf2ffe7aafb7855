//! `unchoke simulate`: the distribution-time study on the deterministic swarm simulator.
//!
//! For each swarm size N it runs the real protocol (our sessions, choker and picker) over a
//! virtual network in which a server uploads at `u_s` and every peer uploads at `u` and
//! downloads at `d`, and measures the time until the last peer has verified the whole file.
//! Next to it stand the two theoretical times: client-server `D_cs = max{N·F/u_s, F/d_min}`
//! and the P2P lower bound `D_p2p = max{F/u_s, F/d_min, N·F/(u_s+Σu)}`. The claim the study
//! checks: D_cs grows linearly with N, while the measured P2P time stays close to its bound,
//! below `F/u`. A measured time *below* the bound is impossible, so it fails the run: the
//! simulator would be wrong.
//!
//! Output: a table on stdout (or one JSON object per N with `--json`), and `study.csv` and
//! `study.svg` in `--out`. Progress goes to stderr.

use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use unchoke_core::sim::{Churn, SimConfig, SimReport, Simulation, study};

use crate::cmd_transfer::interrupt_flag;
use crate::human;
use crate::output::print;
use crate::sim_chart::{self, ChartPoint, ChartText};

/// Most swarm sizes one study may list (a range typo such as `0..=10000000` would
/// otherwise queue ten million simulations).
const MAX_RUNS: usize = 10_000;
/// The largest swarm a study may ask for.
const MAX_PEERS: usize = 1_000_000;
/// How long peers that leave under `--churn F` stay away when no time is given.
const DEFAULT_CHURN_AWAY: Duration = Duration::from_secs(60);
/// The CSV's columns, in order.
const CSV_HEADER: &str = "peers,client_server_s,p2p_bound_s,measured_s,ratio,utilisation,\
                          server_uploaded,peers_uploaded,wasted,blocks,events,wall_s";

/// Arguments of `unchoke simulate`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Rates take a size per second: 18KiB/s, 1.5MiB/s, 20000 (bytes/s) or \
                        8Mbit/s. As for sizes, K/KB/KiB, M/MB/MiB and G/GB/GiB are powers of \
                        1024; kbit, Mbit and Gbit are powers of 1000 bits.\n\
                        Defaults reproduce the textbook study: one peer needs F/u = 1 hour to \
                        upload the file, the server uploads u_s = 10u, peers download d = u_s."
)]
pub(crate) struct SimulateArgs {
    /// Swarm sizes N to simulate: a comma list of numbers and ranges a..b (b excluded) or
    /// a..=b, e.g. 0..=30,100,1000 [default: 0..=30].
    #[arg(long, value_name = "LIST", value_parser = parse_peer_list)]
    peers: Option<PeerCounts>,

    /// Size of the file F (e.g. 64MiB, 1G, 65536) [default: 64MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_file_size)]
    file_size: Option<u64>,

    /// Piece length, a power of two of at least 16K [default: 256KiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_piece_length)]
    piece_length: Option<u32>,

    /// Every peer's upload rate u [default: F / 1 hour].
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    peer_upload: Option<f64>,

    /// The server's (the initial seed's) upload rate u_s [default: 10 × peer upload].
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    server_upload: Option<f64>,

    /// Every peer's download rate d [default: the server upload].
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    peer_download: Option<f64>,

    /// One-way latency of every host's link, e.g. 10ms, 0.2s, 0 [default: 10ms].
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    latency: Option<Duration>,

    /// Churn: a FRACTION (0 to 1) of the peers leaves once mid-download and rejoins after
    /// AWAY_SECS seconds [default away: 60].
    #[arg(long, value_name = "FRACTION[:AWAY_SECS]", value_parser = parse_churn)]
    churn: Option<ChurnArg>,

    /// The server leaves for good once the online peers hold every piece between them
    /// (the swarm must then finish on its own).
    #[arg(long)]
    server_departs: bool,

    /// Seed of every random choice: the same seed gives the same results [default: 1].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Directory for study.csv and study.svg (created if missing).
    #[arg(long, value_name = "DIR", default_value = "simulate-out")]
    out: PathBuf,

    /// Simulations to run at once [default: the number of CPUs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,

    /// One JSON object per swarm size on stdout as it finishes, then a summary object.
    #[arg(long, conflicts_with = "quiet")]
    json: bool,

    /// Only the summary (and errors).
    #[arg(short, long)]
    quiet: bool,
}

/// The parsed `--peers` list: sorted, without duplicates (a newtype so clap takes the
/// whole list as one value).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PeerCounts(Vec<usize>);

/// The parsed `--churn` value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ChurnArg {
    fraction: f64,
    away: Duration,
}

fn parse_peer_list(text: &str) -> Result<PeerCounts, String> {
    let mut counts = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let number = |s: &str| -> Result<usize, String> {
            let n = s.trim().parse::<usize>().map_err(|_| {
                format!("{s:?} is not a number of peers (expected e.g. 4, 0..=30 or 0..=30,100)")
            })?;
            if n > MAX_PEERS {
                return Err(format!("{n} peers: at most {MAX_PEERS} per swarm"));
            }
            Ok(n)
        };
        let (lo, hi) = if let Some((a, b)) = item.split_once("..=") {
            (number(a)?, number(b)?)
        } else if let Some((a, b)) = item.split_once("..") {
            let (a, b) = (number(a)?, number(b)?);
            if b == 0 {
                return Err(format!("the range {item} is empty"));
            }
            (a, b - 1)
        } else {
            let n = number(item)?;
            (n, n)
        };
        if lo > hi {
            return Err(format!("the range {item} is empty"));
        }
        if hi - lo >= MAX_RUNS || counts.len() + (hi - lo) >= MAX_RUNS {
            return Err(format!("--peers lists more than {MAX_RUNS} swarm sizes"));
        }
        counts.extend(lo..=hi);
    }
    counts.sort_unstable();
    counts.dedup();
    Ok(PeerCounts(counts))
}

fn parse_file_size(text: &str) -> Result<u64, String> {
    let n = human::parse_size(text)?;
    if n == 0 {
        return Err("the file must not be empty".into());
    }
    Ok(n)
}

fn parse_piece_length(text: &str) -> Result<u32, String> {
    let n = human::parse_size(text)?;
    u32::try_from(n)
        .ok()
        .filter(|n| n.is_power_of_two() && *n >= 16 * 1024)
        .ok_or_else(|| format!("{text}: a piece length must be a power of two of at least 16K"))
}

/// Splits `12.5MiB/s` into the number and the rest.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    text.split_at(end)
}

/// A non-negative decimal number: digits with at most one point (no sign, exponent, `inf`
/// or `nan`, which `f64::from_str` would accept).
fn parse_decimal(digits: &str) -> Option<f64> {
    if digits.is_empty() || digits == "." || digits.matches('.').count() > 1 {
        return None;
    }
    digits.parse::<f64>().ok()
}

/// Parses a rate in bytes per second: `18KiB/s`, `1.5M`, `20000`, `8Mbit/s`.
fn parse_rate(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let body = trimmed
        .strip_suffix("/s")
        .or_else(|| trimmed.strip_suffix("ps"))
        .unwrap_or(trimmed);
    let (digits, unit) = split_number(body);
    let Some(value) = parse_decimal(digits) else {
        return Err(format!(
            "{text:?} is not a rate (expected e.g. 18KiB/s, 1.5MiB/s, 8Mbit/s or 20000 bytes/s)"
        ));
    };
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "bit" => 1.0 / 8.0,
        "kbit" => 1e3 / 8.0,
        "mbit" => 1e6 / 8.0,
        "gbit" => 1e9 / 8.0,
        other => {
            return Err(format!(
                "unknown rate unit {other:?} in {text:?} (use e.g. KiB/s, MiB/s, Mbit/s)"
            ));
        }
    };
    let rate = value * factor;
    if !rate.is_finite() || rate <= 0.0 {
        return Err(format!("{text:?}: a rate must be positive and finite"));
    }
    Ok(rate)
}

/// Parses a time: `10ms`, `250us`, `1.5s`, `2m`, `1h`; a bare number is seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let (digits, unit) = split_number(trimmed);
    let Some(value) = parse_decimal(digits) else {
        return Err(format!(
            "{text:?} is not a time (expected e.g. 10ms, 1.5s, 2m; a bare number is seconds)"
        ));
    };
    let seconds = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown time unit {other:?} in {text:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is too long a time"))
}

/// Parses `FRACTION[:AWAY_SECS]`.
fn parse_churn(text: &str) -> Result<ChurnArg, String> {
    let (fraction_text, away) = match text.split_once(':') {
        Some((f, a)) => (f, parse_duration(a)?),
        None => (text, DEFAULT_CHURN_AWAY),
    };
    let fraction = parse_decimal(fraction_text.trim())
        .filter(|f| (0.0..=1.0).contains(f))
        .ok_or_else(|| {
            format!(
                "the fraction of peers that leave must be a number from 0 to 1 (e.g. 0.5 or \
                 0.5:60), not {fraction_text:?}"
            )
        })?;
    Ok(ChurnArg { fraction, away })
}

/// The rates of the study: `(server_upload, peer_upload, peer_download)` in bytes per
/// second. What the user did not give follows the textbook: `u = F / 1 h`, `u_s = 10·u`,
/// `d = u_s`.
fn resolve_rates(
    file_size: u64,
    server_upload: Option<f64>,
    peer_upload: Option<f64>,
    peer_download: Option<f64>,
) -> (f64, f64, f64) {
    let (default_server, default_peer, _) = study::default_rates(file_size);
    let peer_upload = peer_upload.unwrap_or(default_peer);
    // The study's server-to-peer ratio (10), kept when only the peers' rate is given.
    let server_upload = server_upload.unwrap_or(peer_upload * default_server / default_peer);
    (
        server_upload,
        peer_upload,
        peer_download.unwrap_or(server_upload),
    )
}

/// Everything every run of the study shares.
struct Plan {
    file_size: u64,
    piece_length: Option<u32>,
    server_upload: f64,
    peer_upload: f64,
    peer_download: f64,
    latency: Option<Duration>,
    churn: Option<ChurnArg>,
    server_departs: bool,
    seed: Option<u64>,
}

impl Plan {
    /// The simulator's configuration for `peers` peers: the study's defaults, with what
    /// the user chose.
    fn config(&self, peers: usize) -> SimConfig {
        let mut c = SimConfig::study(peers, self.file_size);
        c.server_upload = self.server_upload;
        c.peer_upload = self.peer_upload;
        c.peer_download = self.peer_download;
        if let Some(p) = self.piece_length {
            c.piece_length = p;
        }
        if let Some(l) = self.latency {
            c.latency = l;
        }
        if let Some(s) = self.seed {
            c.seed = s;
        }
        c.churn = self.churn.map(|c| Churn {
            fraction: c.fraction,
            away: c.away,
        });
        c.server_departs = self.server_departs;
        c
    }

    /// `F/u`: how long one peer needs to upload the file once.
    fn one_upload_time(&self) -> f64 {
        self.file_size as f64 / self.peer_upload
    }
}

/// What one worker's simulation is doing now, for the progress display.
#[derive(Clone, Copy)]
struct Running {
    peers: usize,
    now: Duration,
    completed: usize,
}

/// One swarm size's result.
struct Row {
    peers: usize,
    client_server: f64,
    p2p_bound: f64,
    wall: f64,
    /// The simulator's report, or why there is none.
    report: Result<SimReport, String>,
}

impl Row {
    fn measured(&self) -> Option<f64> {
        let r = self.report.as_ref().ok()?;
        r.distribution_time.map(|d| d.as_secs_f64())
    }

    fn ratio(&self) -> Option<f64> {
        self.report.as_ref().ok()?.ratio.filter(|r| r.is_finite())
    }

    fn utilisation(&self) -> Option<f64> {
        let r = self.report.as_ref().ok()?;
        (self.peers > 0 && r.utilisation.is_finite()).then_some(r.utilisation)
    }

    fn count(&self, field: impl Fn(&SimReport) -> u64) -> u64 {
        self.report.as_ref().map_or(0, field)
    }

    /// Why this run does not count as a success (empty when it does).
    fn problems(&self) -> Vec<String> {
        let n = self.peers;
        let r = match &self.report {
            Ok(r) => r,
            Err(e) => return vec![format!("N = {n}: {e}")],
        };
        let mut problems: Vec<String> = r
            .violations
            .iter()
            .take(5)
            .map(|v| format!("N = {n}: protocol violation: {v}"))
            .collect();
        if r.violations.len() > 5 {
            problems.push(format!(
                "N = {n}: {} more protocol violations",
                r.violations.len() - 5
            ));
        }
        let done = r.completion_times.iter().flatten().count();
        // A run with violations is not complete either; say "did not complete" only when
        // that adds something.
        if !r.complete && (done < n || r.violations.is_empty()) {
            problems.push(format!(
                "N = {n}: did not complete: {done} of {n} peers had the whole file at virtual \
                 time {}",
                duration_text(r.end.as_secs_f64())
            ));
        }
        match self.measured() {
            Some(m) if m < self.p2p_bound * (1.0 - 1e-9) - 1e-6 => problems.push(format!(
                "N = {n}: the measured time {} ({m} s) is below the P2P lower bound {} ({} s): \
                 the simulator is wrong",
                duration_text(m),
                duration_text(self.p2p_bound),
                self.p2p_bound
            )),
            None if r.complete && n > 0 => {
                problems.push(format!("N = {n}: complete, but no distribution time"));
            }
            _ => {}
        }
        problems
    }

    fn json(&self) -> Value {
        let r = self.report.as_ref().ok();
        let times: Vec<f64> = {
            let mut t: Vec<f64> = r
                .map(|r| {
                    r.completion_times
                        .iter()
                        .flatten()
                        .map(Duration::as_secs_f64)
                })
                .into_iter()
                .flatten()
                .collect();
            t.sort_by(f64::total_cmp);
            t
        };
        json!({
            "event": "run",
            "peers": self.peers,
            "ok": self.problems().is_empty(),
            "complete": r.is_some_and(|r| r.complete),
            "client_server_s": self.client_server,
            "p2p_bound_s": self.p2p_bound,
            "measured_s": self.measured(),
            "ratio": self.ratio(),
            "utilisation": self.utilisation(),
            "upload_busy": r.map(|r| r.upload_busy).filter(|b| self.peers > 0 && b.is_finite()),
            "first_complete_s": times.first(),
            "median_complete_s": times.get(times.len() / 2),
            "server_uploaded": self.count(|r| r.server_uploaded),
            "peers_uploaded": self.count(|r| r.peers_uploaded),
            "wasted": self.count(|r| r.wasted),
            "blocks": self.count(|r| r.blocks),
            "events": self.count(|r| r.events),
            "leaves": self.count(|r| r.leaves),
            "rejoins": self.count(|r| r.rejoins),
            "end_s": r.map(|r| r.end.as_secs_f64()),
            // Hex: a u64 does not survive JSON readers that use doubles.
            "digest": r.map(|r| format!("{:016x}", r.digest)),
            "violations": r.map_or(&[][..], |r| &r.violations[..]),
            "problems": self.problems(),
            "wall_s": self.wall,
        })
    }

    fn csv(&self) -> String {
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            self.peers,
            self.client_server,
            self.p2p_bound,
            opt(self.measured()),
            opt(self.ratio()),
            opt(self.utilisation()),
            self.count(|r| r.server_uploaded),
            self.count(|r| r.peers_uploaded),
            self.count(|r| r.wasted),
            self.count(|r| r.blocks),
            self.count(|r| r.events),
            self.wall
        )
    }
}

/// A time for people: `0.25 s`, `42.0 s`, `360 s`, `45m 10s`, `1h 02m`.
pub(crate) fn duration_text(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "-".into();
    }
    if secs < 10.0 {
        return format!("{secs:.2} s");
    }
    if secs < 100.0 {
        return format!("{secs:.1} s");
    }
    if secs < 600.0 {
        return format!("{secs:.0} s");
    }
    if secs < 3600.0 {
        let s = secs.round() as u64;
        // 3599.6 s rounds to a whole hour: say so rather than `60m 00s`.
        if s < 3600 {
            return format!("{}m {:02}s", s / 60, s % 60);
        }
    }
    let m = (secs / 60.0).round() as u64;
    format!("{}h {:02}m", m / 60, m % 60)
}

fn rate_text(bytes_per_second: f64) -> String {
    format!("{}/s", human::size(bytes_per_second.round() as u64))
}

/// The table of results, one row per N.
fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:>7}  {:>13}  {:>10}  {:>12}  {:>6}  {:>11}\n",
        "N", "client-server", "P2P bound", "measured P2P", "ratio", "upload used"
    );
    for row in rows {
        let measured = match (&row.report, row.measured()) {
            (_, Some(m)) => duration_text(m),
            (Ok(_), None) => "incomplete".into(),
            (Err(_), None) => "failed".into(),
        };
        out.push_str(&format!(
            "{:>7}  {:>13}  {:>10}  {:>12}  {:>6}  {:>11}{}\n",
            row.peers,
            duration_text(row.client_server),
            duration_text(row.p2p_bound),
            measured,
            row.ratio().map_or("-".into(), |r| format!("{r:.3}")),
            row.utilisation()
                .map_or("-".into(), |u| format!("{:.1}%", u * 100.0)),
            if row.problems().is_empty() { "" } else { "  !" }
        ));
    }
    out
}

/// What the user sees while the study runs (on stderr; stdout carries the results).
enum Display {
    Bar(indicatif::ProgressBar),
    Lines { last: Instant },
    Json,
    Quiet,
}

impl Display {
    fn new(args: &SimulateArgs, total: usize) -> Display {
        use std::io::IsTerminal;
        if args.json {
            return Display::Json;
        }
        if args.quiet {
            return Display::Quiet;
        }
        if !std::io::stderr().is_terminal() {
            return Display::Lines {
                last: Instant::now(),
            };
        }
        let bar = indicatif::ProgressBar::new(total as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "[{bar:25}] {pos}/{len} swarms {elapsed:>4} {wide_msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Display::Bar(bar)
    }

    /// A run finished.
    fn finished(&self, row: &Row) {
        let line = match (row.measured(), &row.report) {
            (Some(m), _) => format!(
                "N = {}: measured {} (P2P bound {}, client-server {}) in {:.1} s wall",
                row.peers,
                duration_text(m),
                duration_text(row.p2p_bound),
                duration_text(row.client_server),
                row.wall
            ),
            (None, Ok(_)) => format!("N = {}: incomplete after {:.1} s wall", row.peers, row.wall),
            (None, Err(e)) => format!("N = {}: failed: {e}", row.peers),
        };
        match self {
            Display::Bar(bar) => {
                bar.inc(1);
                bar.println(line);
            }
            Display::Lines { .. } => eprintln!("simulate: {line}"),
            Display::Json => {
                let _ = print(&format!("{}\n", row.json()));
            }
            Display::Quiet => {}
        }
    }

    /// The running simulations' state, `done` of `total` finished.
    fn tick(&mut self, running: &[Option<Running>], done: usize, total: usize) {
        let describe = || {
            let mut parts: Vec<String> = running
                .iter()
                .flatten()
                .take(3)
                .map(|r| {
                    format!(
                        "N = {}: {} virtual, {}/{} peers done",
                        r.peers,
                        duration_text(r.now.as_secs_f64()),
                        r.completed,
                        r.peers
                    )
                })
                .collect();
            let more = running.iter().flatten().count().saturating_sub(3);
            if more > 0 {
                parts.push(format!("{more} more"));
            }
            parts.join(", ")
        };
        match self {
            Display::Bar(bar) => bar.set_message(describe()),
            Display::Lines { last } => {
                if last.elapsed() >= Duration::from_secs(5) {
                    *last = Instant::now();
                    let running = describe();
                    if running.is_empty() {
                        eprintln!("simulate: {done}/{total} swarms done");
                    } else {
                        eprintln!("simulate: {done}/{total} swarms done; running {running}");
                    }
                }
            }
            Display::Json | Display::Quiet => {}
        }
    }

    fn finish(&self) {
        if let Display::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Runs the simulation for `peers` peers, publishing its progress into `slot`; `None`
/// when interrupted first.
fn simulate_one(
    plan: &Plan,
    peers: usize,
    slot: &Mutex<Option<Running>>,
    interrupted: &AtomicBool,
) -> Result<Option<SimReport>, String> {
    let mut sim = Simulation::new(plan.config(peers)).map_err(|e| e.to_string())?;
    // Events per call, adapted so one call takes about a tenth of a second: often enough
    // for the display and Ctrl-C, rarely enough to cost nothing.
    let mut chunk: u64 = 2_000;
    loop {
        let started = Instant::now();
        let finished = sim.run_for(chunk);
        let took = started.elapsed();
        if took < Duration::from_millis(50) {
            chunk = (chunk * 2).min(1 << 24);
        } else if took > Duration::from_millis(200) {
            chunk = (chunk / 2).max(100);
        }
        let p = sim.progress();
        if let Ok(mut s) = slot.lock() {
            *s = Some(Running {
                peers,
                now: p.now,
                completed: p.completed,
            });
        }
        if finished {
            return Ok(Some(sim.report()));
        }
        if interrupted.load(Ordering::SeqCst) {
            return Ok(None);
        }
    }
}

/// Runs every swarm size of `order` on `jobs` threads; returns the rows as they finish.
fn run_all(
    plan: &Plan,
    order: &[usize],
    jobs: usize,
    display: &mut Display,
    interrupted: &AtomicBool,
) -> Vec<Row> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Running>>> = (0..jobs).map(|_| Mutex::new(None)).collect();
    let (tx, rx) = mpsc::channel::<Row>();
    let mut rows = Vec::with_capacity(order.len());
    std::thread::scope(|scope| {
        for slot in &slots {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    if interrupted.load(Ordering::SeqCst) {
                        return;
                    }
                    let Some(&peers) = order.get(next.fetch_add(1, Ordering::SeqCst)) else {
                        return;
                    };
                    let started = Instant::now();
                    // A panic in the simulator is its bug: report it as this run's failure
                    // rather than losing the run (the default hook already printed it).
                    let report = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        simulate_one(plan, peers, slot, interrupted)
                    }))
                    .unwrap_or_else(|_| Err("the simulator panicked".into()));
                    let wall = started.elapsed().as_secs_f64();
                    if let Ok(mut s) = slot.lock() {
                        *s = None;
                    }
                    // An interrupted run has no result: it is left out, not failed.
                    let Some(report) = report.transpose() else {
                        return;
                    };
                    let b = study::bounds(
                        plan.file_size,
                        peers,
                        plan.server_upload,
                        plan.peer_upload,
                        plan.peer_download,
                    );
                    let row = Row {
                        peers,
                        client_server: b.client_server,
                        p2p_bound: b.p2p,
                        wall,
                        report,
                    };
                    if tx.send(row).is_err() {
                        return;
                    }
                }
            });
        }
        // Only the workers hold senders now: the channel closes when the last one ends.
        drop(tx);
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(row) => {
                    display.finished(&row);
                    rows.push(row);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let running: Vec<Option<Running>> = slots
                .iter()
                .map(|s| s.lock().ok().and_then(|s| *s))
                .collect();
            display.tick(&running, rows.len(), order.len());
        }
    });
    rows
}

fn write_file(path: &Path, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("{}: {e}", path.display()))
}

/// `unchoke simulate`.
pub(crate) fn run(args: &SimulateArgs) -> Result<(), String> {
    let interrupted = interrupt_flag()?;
    let file_size = args.file_size.unwrap_or(study::DEFAULT_FILE_SIZE);
    let (server_upload, peer_upload, peer_download) = resolve_rates(
        file_size,
        args.server_upload,
        args.peer_upload,
        args.peer_download,
    );
    let plan = Plan {
        file_size,
        piece_length: args.piece_length,
        server_upload,
        peer_upload,
        peer_download,
        latency: args.latency,
        churn: args.churn,
        server_departs: args.server_departs,
        seed: args.seed,
    };
    let peers = args
        .peers
        .clone()
        .map_or_else(study::default_peer_counts, |p| p.0);
    if peers.is_empty() {
        return Err("--peers lists no swarm size".into());
    }
    // A configuration the simulator refuses is refused for every N: say so once, before
    // starting anything (the smallest swarm is the cheapest to set up).
    let template = plan.config(peers[0]);
    let (piece_length, latency, seed) = (template.piece_length, template.latency, template.seed);
    Simulation::new(template).map_err(|e| format!("the simulation cannot start: {e}"))?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;

    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        usize::from,
    );
    let jobs = jobs.min(peers.len()).max(1);
    let churn_text = args.churn.map_or("no churn".to_string(), |c| {
        format!(
            "churn: {:.0}% of peers leave once for {}",
            c.fraction * 100.0,
            duration_text(c.away.as_secs_f64())
        )
    });
    if !args.json && !args.quiet {
        let sizes = match peers.as_slice() {
            [n] => format!("one swarm of N = {n}"),
            [first, .., last] => {
                format!("{} swarm sizes from N = {first} to {last}", peers.len())
            }
            [] => String::new(),
        };
        let _ = print(&format!(
            "simulate: F = {} in {} pieces; latency {} ms one way; {churn_text}{}; seed {seed}\n\
             simulate: server upload u_s = {}, peers upload u = {} and download d = {}\n\
             simulate: {sizes} on {jobs} thread{}\n",
            human::size(file_size),
            human::size(u64::from(piece_length)),
            latency.as_secs_f64() * 1e3,
            if args.server_departs {
                "; the server departs"
            } else {
                ""
            },
            rate_text(server_upload),
            rate_text(peer_upload),
            rate_text(peer_download),
            if jobs == 1 { "" } else { "s" },
        ));
    }

    // Largest swarms first: they take longest, and starting them early keeps every thread
    // busy until the end.
    let order: Vec<usize> = peers.iter().rev().copied().collect();
    let mut display = Display::new(args, order.len());
    let started = Instant::now();
    let mut rows = run_all(&plan, &order, jobs, &mut display, &interrupted);
    let wall = started.elapsed().as_secs_f64();
    display.finish();
    rows.sort_by_key(|r| r.peers);

    let csv_path = args.out.join("study.csv");
    let svg_path = args.out.join("study.svg");
    let mut csv = format!("{CSV_HEADER}\n");
    for row in &rows {
        csv.push_str(&row.csv());
        csv.push('\n');
    }
    write_file(&csv_path, &csv)?;
    let points: Vec<ChartPoint> = rows
        .iter()
        .map(|r| ChartPoint {
            peers: r.peers,
            client_server: r.client_server,
            p2p_bound: r.p2p_bound,
            measured: r.measured(),
        })
        .collect();
    let title = format!(
        "Time to distribute {} to N peers (u = {}, u_s = {}, d = {})",
        human::size(file_size),
        rate_text(peer_upload),
        rate_text(server_upload),
        rate_text(peer_download)
    );
    let reference_label = format!(
        "F/u = {}, one peer's upload time",
        duration_text(plan.one_upload_time())
    );
    let svg = sim_chart::render_svg(
        &points,
        &ChartText {
            title: &title,
            reference: Some((plan.one_upload_time(), &reference_label)),
        },
    )?;
    write_file(&svg_path, &svg)?;

    let problems: Vec<String> = rows.iter().flat_map(Row::problems).collect();
    let max_ratio = rows
        .iter()
        .filter_map(|r| r.ratio().map(|x| (x, r.peers)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let one_upload = plan.one_upload_time();
    // Swarm sizes whose time reached F/u (or that have no time at all).
    let not_below: Vec<usize> = rows
        .iter()
        .filter(|r| r.measured().is_none_or(|m| m >= one_upload))
        .map(|r| r.peers)
        .collect();
    let below_one_upload = !rows.is_empty() && not_below.is_empty();
    let blocks: u64 = rows.iter().map(|r| r.count(|r| r.blocks)).sum();
    let blocks_per_second = blocks as f64 / wall.max(1e-9);
    let ok = problems.is_empty() && rows.len() == order.len();

    if args.json {
        let _ = print(&format!(
            "{}\n",
            json!({
                "event": "summary",
                "ok": ok,
                "runs": rows.len(),
                "requested": order.len(),
                "complete": rows.iter().filter(|r| r.report.as_ref().is_ok_and(|r| r.complete)).count(),
                "max_ratio": max_ratio.map(|m| m.0),
                "max_ratio_peers": max_ratio.map(|m| m.1),
                "one_upload_time_s": one_upload,
                "all_below_one_upload_time": below_one_upload,
                "blocks": blocks,
                "wall_s": wall,
                "blocks_per_wall_second": blocks_per_second,
                "jobs": jobs,
                "file_size": file_size,
                "piece_length": piece_length,
                "server_upload": server_upload,
                "peer_upload": peer_upload,
                "peer_download": peer_download,
                "latency_s": latency.as_secs_f64(),
                "churn": args.churn.map(|c| json!({"fraction": c.fraction, "away_s": c.away.as_secs_f64()})),
                "server_departs": args.server_departs,
                "seed": seed,
                "csv": csv_path.display().to_string(),
                "svg": svg_path.display().to_string(),
                "problems": problems,
            })
        ));
    } else {
        let mut text = String::new();
        if rows.is_empty() {
            text.push_str("simulate: no simulation finished\n");
        } else if !args.quiet {
            text.push_str(&table(&rows));
        }
        if let Some((r, n)) = max_ratio {
            text.push_str(&format!(
                "simulate: largest ratio measured / P2P bound: {r:.3} (N = {n})\n"
            ));
        }
        text.push_str(&format!(
            "simulate: every measured time stayed below F/u = {}: {}\n\
             simulate: {blocks} block transfers simulated in {wall:.1} s wall ({:.0} per second, \
             {jobs} thread{})\n\
             simulate: wrote {} and {}\n",
            duration_text(one_upload),
            if below_one_upload {
                "yes".to_string()
            } else {
                let list: Vec<String> = not_below.iter().map(usize::to_string).collect();
                format!("no (N = {})", list.join(", "))
            },
            blocks_per_second,
            if jobs == 1 { "" } else { "s" },
            csv_path.display(),
            svg_path.display(),
        ));
        let _ = print(&text);
    }

    if interrupted.load(Ordering::SeqCst) {
        return Err(format!(
            "interrupted after {} of {} swarm sizes",
            rows.len(),
            order.len()
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    for p in &problems {
        eprintln!("unchoke: error: {p}");
    }
    Err(format!(
        "{} of {} simulations failed (see above)",
        rows.iter().filter(|r| !r.problems().is_empty()).count(),
        rows.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_lists() {
        assert_eq!(parse_peer_list("5"), Ok(PeerCounts(vec![5])));
        assert_eq!(
            parse_peer_list("0..=3, 10,2"),
            Ok(PeerCounts(vec![0, 1, 2, 3, 10]))
        );
        assert_eq!(parse_peer_list("1..4"), Ok(PeerCounts(vec![1, 2, 3])));
        assert_eq!(
            parse_peer_list("0..=30,100,1000").map(|p| p.0.len()),
            Ok(33)
        );
        assert_eq!(parse_peer_list("3..=3"), Ok(PeerCounts(vec![3])));
        for bad in [
            "x", "", "1,,2", "4..2", "3..3", "0..0", "-1", "1..=x", "2..=1",
        ] {
            assert!(parse_peer_list(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_peer_list("0..=10000000").is_err());
        assert!(parse_peer_list("2000000").is_err());
        let e = parse_peer_list("x").expect_err("x");
        assert!(e.contains("not a number of peers"), "{e}");
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("20000"), Ok(20000.0));
        assert_eq!(parse_rate("18KiB/s"), Ok(18.0 * 1024.0));
        assert_eq!(parse_rate("1MB/s"), Ok(1024.0 * 1024.0));
        assert_eq!(parse_rate("1.5mib"), Ok(1.5 * 1024.0 * 1024.0));
        assert_eq!(parse_rate("8Mbit/s"), Ok(1e6));
        assert_eq!(parse_rate("100 K/s"), Ok(102_400.0));
        for bad in [
            "0",
            "0KiB/s",
            "-5",
            "",
            "/s",
            "fast",
            "1e9",
            "inf",
            "nan",
            "1.2.3",
            "5 furlongs/s",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted");
        }
        assert!(
            parse_rate(&"9".repeat(400)).is_err(),
            "infinite rate accepted"
        );
        assert!(parse_rate("0").expect_err("0").contains("positive"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "ms", "-1s", "10 parsecs", "1e3"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_duration(&format!("{}h", "9".repeat(30))).is_err());
    }

    #[test]
    fn churn() {
        assert_eq!(
            parse_churn("0.5"),
            Ok(ChurnArg {
                fraction: 0.5,
                away: DEFAULT_CHURN_AWAY
            })
        );
        assert_eq!(
            parse_churn("0.25:30"),
            Ok(ChurnArg {
                fraction: 0.25,
                away: Duration::from_secs(30)
            })
        );
        assert_eq!(
            parse_churn("1:500ms").map(|c| c.away),
            Ok(Duration::from_millis(500))
        );
        for bad in ["2", "-0.1", "1.01", "x", "0.5:", "0.5:x", ":5"] {
            assert!(parse_churn(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_churn("2").expect_err("2").contains("from 0 to 1"));
    }

    #[test]
    fn sizes_and_pieces() {
        assert_eq!(parse_file_size("2MiB"), Ok(2 << 20));
        assert!(parse_file_size("0").is_err());
        assert_eq!(parse_piece_length("64KiB"), Ok(65536));
        assert!(parse_piece_length("48K").is_err());
        assert!(parse_piece_length("8K").is_err());
        assert!(parse_piece_length("8G").is_err());
    }

    #[test]
    fn default_rates_follow_the_textbook() {
        let f = study::DEFAULT_FILE_SIZE;
        let (us, u, d) = resolve_rates(f, None, None, None);
        assert!((f as f64 / u - 3600.0).abs() < 1e-6);
        assert!((us - 10.0 * u).abs() < 1e-6);
        assert_eq!(d, us);
        // Only the peers' upload given: the server uploads ten times that, peers download
        // as fast as the server uploads.
        assert_eq!(
            resolve_rates(f, None, Some(1000.0), None),
            (10_000.0, 1000.0, 10_000.0)
        );
        assert_eq!(
            resolve_rates(f, Some(5000.0), Some(1000.0), None),
            (5000.0, 1000.0, 5000.0)
        );
        assert_eq!(
            resolve_rates(f, Some(5000.0), Some(1000.0), Some(700.0)),
            (5000.0, 1000.0, 700.0)
        );
    }

    #[test]
    fn times_for_people() {
        assert_eq!(duration_text(0.0), "0.00 s");
        assert_eq!(duration_text(2.345), "2.35 s");
        assert_eq!(duration_text(42.04), "42.0 s");
        assert_eq!(duration_text(360.0), "360 s");
        assert_eq!(duration_text(2710.0), "45m 10s");
        assert_eq!(duration_text(3599.7), "1h 00m");
        assert_eq!(duration_text(3600.0 + 125.0), "1h 02m");
        assert_eq!(duration_text(30.0 * 3600.0), "30h 00m");
        assert_eq!(duration_text(f64::NAN), "-");
    }

    fn failed_row(peers: usize, bound: f64) -> Row {
        Row {
            peers,
            client_server: bound * 2.0,
            p2p_bound: bound,
            wall: 0.5,
            report: Err("fabricated failure".into()),
        }
    }

    /// A report as the simulator would give for `n` peers finishing at `time` seconds:
    /// a real (tiny) run's report with the figures under test replaced, so it keeps up
    /// with fields added to the report.
    fn report(n: usize, time: Option<f64>, bound: f64) -> SimReport {
        let mut config = SimConfig::study(n, 64 * 1024);
        config.piece_length = 16 * 1024;
        let mut r = Simulation::new(config).expect("valid").run();
        let t = time.map(Duration::from_secs_f64);
        r.complete = t.is_some();
        r.distribution_time = t;
        r.completion_times = vec![t; n];
        r.bounds = study::Bounds {
            client_server: bound * 2.0,
            p2p: bound,
        };
        r.ratio = time.map(|t| t / bound);
        r.utilisation = 0.9;
        r.server_uploaded = 10;
        r.peers_uploaded = 20;
        r.wasted = 1;
        r.blocks = 7;
        r.events = 99;
        r.violations = Vec::new();
        r.digest = 0xfeed;
        r.end = t.unwrap_or(Duration::from_secs(36_000));
        r
    }

    fn row_of(report: SimReport) -> Row {
        Row {
            peers: report.peers,
            client_server: report.bounds.client_server,
            p2p_bound: report.bounds.p2p,
            wall: 0.25,
            report: Ok(report),
        }
    }

    #[test]
    fn a_time_below_the_bound_is_an_error() {
        let sound = row_of(report(4, Some(1100.0), 1000.0));
        assert_eq!(sound.problems(), Vec::<String>::new());
        assert_eq!(
            sound.csv(),
            "4,2000,1000,1100,1.1,0.9,10,20,1,7,99,0.25",
            "CSV columns"
        );
        // Equal to the bound is possible (N = 1: the server's upload binds exactly).
        assert!(row_of(report(1, Some(360.0), 360.0)).problems().is_empty());
        let wrong = row_of(report(4, Some(999.0), 1000.0));
        let problems = wrong.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("below the P2P lower bound") && problems[0].contains("N = 4"),
            "{problems:?}"
        );
        assert!(
            table(&[wrong])
                .lines()
                .nth(1)
                .is_some_and(|l| l.ends_with('!'))
        );
    }

    #[test]
    fn incomplete_runs_and_violations_are_errors() {
        let stuck = row_of(report(3, None, 100.0));
        let problems = stuck.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("did not complete: 0 of 3 peers"),
            "{problems:?}"
        );
        assert!(table(&[stuck]).contains("incomplete"));
        let mut r = report(2, Some(200.0), 100.0);
        r.violations = (0..7).map(|i| format!("rule {i}")).collect();
        let problems = row_of(r).problems();
        // Five shown, the rest counted.
        assert_eq!(problems.len(), 6, "{problems:?}");
        assert_eq!(problems[0], "N = 2: protocol violation: rule 0");
        assert_eq!(problems[5], "N = 2: 2 more protocol violations");
        let json = row_of(report(2, Some(200.0), 100.0)).json();
        assert_eq!(json["digest"], "000000000000feed");
        assert_eq!(json["ok"], true);
        assert_eq!(json["measured_s"], 200.0);
    }

    #[test]
    fn failed_runs_are_problems_and_marked_in_the_table() {
        let rows = [failed_row(3, 100.0)];
        let problems = rows[0].problems();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0], "N = 3: fabricated failure");
        let t = table(&rows);
        assert!(t.contains("failed"), "{t}");
        assert!(t.lines().nth(1).is_some_and(|l| l.ends_with('!')), "{t}");
        let csv = rows[0].csv();
        assert_eq!(csv.split(',').count(), CSV_HEADER.split(',').count());
        assert!(csv.starts_with("3,200,100,,,,0,0,0,0,0,"), "{csv}");
    }
}
