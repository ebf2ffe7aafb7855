//! The study's results for people and programs: one [`Row`] per swarm size and the checks
//! that make it a failure, the table, each run's JSON object, `study.csv`, `study.svg`,
//! and the header and summary lines around them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use unchoke_sim::{Arrivals, Loss, SimConfig, SimReport};

use super::args::SimulateArgs;
use super::runner::Plan;
use crate::human;
use crate::sim_chart::{self, ChartPoint, ChartText};

/// The CSV's columns, in order. Those after `wall_s` (issue 19) are the steady phase's
/// means of the swarm's samples (`unchoke_sim::Steady`: normalised entropy of the pieces'
/// copies, fewest and most copies, upload used) and what free riders got (their number,
/// their share of all payload received, over the run and while every peer still leeched,
/// their and the contributors' median completion).
const CSV_HEADER: &str = "peers,client_server_s,p2p_bound_s,measured_s,ratio,utilisation,\
                          server_uploaded,peers_uploaded,wasted,blocks,events,wall_s,\
                          steady_from_s,steady_until_s,steady_entropy,steady_min_copies,\
                          steady_max_copies,steady_utilisation,free_riders,free_rider_share,\
                          free_rider_share_leeching,free_rider_median_s,contributor_median_s";

/// One swarm size's result.
pub(super) struct Row {
    /// The swarm size N.
    pub(super) peers: usize,
    /// The client-server time `D_cs`, seconds.
    pub(super) client_server: f64,
    /// The P2P lower bound `D_p2p`, seconds.
    pub(super) p2p_bound: f64,
    /// How long the simulation took, seconds of wall time.
    pub(super) wall: f64,
    /// The simulator's report, or why there is none.
    pub(super) report: Result<SimReport, String>,
}

impl Row {
    /// The measured P2P time in seconds: when the last peer had the whole file.
    pub(super) fn measured(&self) -> Option<f64> {
        let r = self.report.as_ref().ok()?;
        r.distribution_time.map(|d| d.as_secs_f64())
    }

    /// The measured time over the P2P bound.
    pub(super) fn ratio(&self) -> Option<f64> {
        self.report.as_ref().ok()?.ratio.filter(|r| r.is_finite())
    }

    /// The share of the swarm's upload capacity used (none without peers).
    fn utilisation(&self) -> Option<f64> {
        let r = self.report.as_ref().ok()?;
        (self.peers > 0 && r.utilisation.is_finite()).then_some(r.utilisation)
    }

    /// A counter of the report; 0 when the run failed.
    pub(super) fn count(&self, field: impl Fn(&SimReport) -> u64) -> u64 {
        self.report.as_ref().map_or(0, field)
    }

    /// Why this run does not count as a success (empty when it does).
    pub(super) fn problems(&self) -> Vec<String> {
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

    /// The run's JSON object (`--json`).
    pub(super) fn json(&self) -> Value {
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
            "peer_connected": self.count(|r| r.policies.peer_connected),
            "peer_disconnected": self.count(|r| r.policies.peer_disconnected),
            "connect_failed": self.count(|r| r.policies.connect_failed),
            "slow_reader_drops": self.count(|r| r.policies.slow_reader_drops),
            "cancelled_dials": self.count(|r| r.policies.cancelled_dials),
            "saves": self.count(|r| r.policies.saves),
            "closes": self.count(|r| r.policies.closes),
            "drained": self.count(|r| r.policies.drained),
            "longest_drain_s": r.map(|r| r.policies.longest_drain.as_secs_f64()),
            "end_s": r.map(|r| r.end.as_secs_f64()),
            // Hex: a u64 does not survive JSON readers that use doubles.
            "digest": r.map(|r| format!("{:016x}", r.digest)),
            "steady": r.and_then(|r| r.steady).map(|s| json!({
                "from_s": s.from.as_secs_f64(),
                "until_s": s.until.as_secs_f64(),
                "samples": s.samples,
                "entropy": s.entropy,
                "min_copies": s.min_copies,
                "max_copies": s.max_copies,
                "utilisation": s.utilisation,
            })),
            "free_riding": r.and_then(|r| r.free_riding.as_ref()).map(|f| json!({
                "free_riders": f.free_riders,
                "received": f.received,
                "share": f.share,
                "share_while_leeching": f.share_while_leeching,
                "equal_share": f.free_riders as f64 / self.peers.max(1) as f64,
                "uploaded": f.uploaded,
                "median_complete_s": f.median_completion.map(|d| d.as_secs_f64()),
                "contributor_median_complete_s":
                    f.contributor_median_completion.map(|d| d.as_secs_f64()),
            })),
            // From each peer's arrival to its completion (`--arrivals`): the median.
            "median_download_s": r.and_then(|r| {
                let mut t: Vec<f64> =
                    r.download_times.iter().flatten().map(|d| d.as_secs_f64()).collect();
                t.sort_by(f64::total_cmp);
                t.get(t.len() / 2).copied()
            }),
            // Each bandwidth class's outcome (`--classes`), in the order given.
            "classes": r.map(|r| r.classes.iter().map(|c| json!({
                "peers": c.peers,
                "upload": c.upload,
                "download": c.download,
                "median_complete_s": c.median_completion.map(|d| d.as_secs_f64()),
                "uploaded": c.uploaded,
                "downloaded": c.downloaded,
            })).collect::<Vec<_>>()),
            // The swarm every 10 s of virtual time, one array per measure.
            "samples": r.map(|r| json!({
                "at_s": r.samples.iter().map(|s| s.at.as_secs_f64()).collect::<Vec<_>>(),
                "min_copies": r.samples.iter().map(|s| s.min_copies).collect::<Vec<_>>(),
                "max_copies": r.samples.iter().map(|s| s.max_copies).collect::<Vec<_>>(),
                "entropy": r.samples.iter().map(|s| s.entropy).collect::<Vec<_>>(),
                "utilisation": r.samples.iter().map(|s| s.utilisation).collect::<Vec<_>>(),
            })),
            "violations": r.map_or(&[][..], |r| &r.violations[..]),
            "problems": self.problems(),
            "wall_s": self.wall,
        })
    }

    /// The run's line of study.csv, in [`CSV_HEADER`]'s columns.
    fn csv(&self) -> String {
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let r = self.report.as_ref().ok();
        let steady = r.and_then(|r| r.steady);
        let steady_of = |f: fn(&unchoke_sim::Steady) -> f64| opt(steady.as_ref().map(f));
        let free = r.and_then(|r| r.free_riding.as_ref());
        let secs = |d: Option<Duration>| opt(d.map(|d| d.as_secs_f64()));
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
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
            self.wall,
            steady_of(|s| s.from.as_secs_f64()),
            steady_of(|s| s.until.as_secs_f64()),
            steady_of(|s| s.entropy),
            steady_of(|s| s.min_copies),
            steady_of(|s| s.max_copies),
            steady_of(|s| s.utilisation),
            free.map_or(0, |f| f.free_riders),
            opt(free.map(|f| f.share)),
            opt(free.and_then(|f| f.share_while_leeching)),
            secs(free.and_then(|f| f.median_completion)),
            secs(free.and_then(|f| f.contributor_median_completion)),
        )
    }
}

/// A time for people: `0.25 s`, `42.0 s`, `360 s`, `45m 10s`, `1h 02m`.
pub(super) fn duration_text(secs: f64) -> String {
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

/// A rate for people: `1.50 MiB/s`.
fn rate_text(bytes_per_second: f64) -> String {
    format!("{}/s", human::size(bytes_per_second.round() as u64))
}

/// The table of results, one row per N.
pub(super) fn table(rows: &[Row]) -> String {
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

/// The study's set-up, as the header and the summary describe it.
pub(super) struct Setup<'a> {
    /// What every run shares.
    pub(super) plan: &'a Plan,
    /// A run's configuration: the simulator's defaults for what the user left out.
    pub(super) config: &'a SimConfig,
    /// Simulations run at once.
    pub(super) jobs: usize,
}

/// The lines that open the table: what is simulated, at which rates, on how many threads.
pub(super) fn header(setup: &Setup<'_>, peers: &[usize]) -> String {
    let (plan, jobs) = (setup.plan, setup.jobs);
    let churn_text = plan.churn.map_or("no churn".to_string(), |c| {
        format!(
            "churn: {:.0}% of peers leave once for {}",
            c.fraction * 100.0,
            duration_text(c.away.as_secs_f64())
        )
    });
    let sizes = match peers {
        [n] => format!("one swarm of N = {n}"),
        [first, .., last] => {
            format!("{} swarm sizes from N = {first} to {last}", peers.len())
        }
        [] => String::new(),
    };
    let peer_rates = if plan.classes.is_empty() {
        format!(
            "peers upload u = {} and download d = {}",
            rate_text(plan.peer_upload),
            rate_text(plan.peer_download)
        )
    } else {
        let total: f64 = plan.classes.iter().map(|c| c.share).sum();
        let classes: Vec<String> = plan
            .classes
            .iter()
            .map(|c| {
                format!(
                    "{:.0}% up {} down {}",
                    c.share / total * 100.0,
                    rate_text(c.upload),
                    rate_text(c.download)
                )
            })
            .collect();
        format!("peer classes: {}", classes.join("; "))
    };
    format!(
        "simulate: F = {} in {} pieces; latency {} ms one way; {churn_text}{}; seed {}\n\
         simulate: server upload u_s = {}, {peer_rates}\n\
         simulate: {sizes} on {jobs} thread{}\n",
        human::size(plan.file_size),
        human::size(u64::from(setup.config.piece_length)),
        setup.config.latency.as_secs_f64() * 1e3,
        if plan.server_departs {
            "; the server departs"
        } else {
            ""
        }
        .to_string()
            + &plan
                .seed_time
                .map(|t| {
                    format!(
                        "; peers leave {} after completing",
                        duration_text(t.as_secs_f64())
                    )
                })
                .unwrap_or_default()
            + &if plan.loss != Loss::default() {
                format!(
                    "; packet loss {:.2}%, datagram jitter up to {}",
                    plan.loss.packet_loss * 100.0,
                    duration_text(plan.loss.jitter.as_secs_f64())
                )
            } else {
                String::new()
            }
            + &if plan.free_riders > 0.0 {
                format!(
                    "; {:.0}% of peers free-ride (the P2P bound counts contributors only)",
                    plan.free_riders * 100.0
                )
            } else {
                String::new()
            },
        setup.config.seed,
        rate_text(plan.server_upload),
        if jobs == 1 { "" } else { "s" },
    ) + &slow_link_warning(setup.config)
}

/// A warning when an upload slot is so slow that one 16 KiB block takes longer than the
/// sessions' request time-out: requests then time out and are sent again elsewhere before
/// anything arrives, and the swarm may never finish (the real protocol, faithfully
/// simulated, on links of a few hundred bytes per second).
fn slow_link_warning(config: &SimConfig) -> String {
    const BLOCK: f64 = 16.0 * 1024.0;
    let slots = (config.session.choker.regular_slots + 1) as f64;
    let per_slot = config.peer_upload / slots;
    let block_time = BLOCK / per_slot;
    let timeout = config.session.request_timeout.as_secs_f64();
    if block_time <= timeout {
        return String::new();
    }
    format!(
        "simulate: warning: a peer's upload split over {slots} unchoke slots is {} per slot, \
         so a 16 KiB block takes {block_time:.0} s, longer than the {timeout:.0} s request \
         time-out; expect re-requests and possibly no completion (use a larger --file-size \
         or faster rates)\n",
        rate_text(per_slot)
    )
}

/// Where the study's files went.
pub(super) struct Files {
    /// The table as CSV.
    csv: PathBuf,
    /// The chart.
    svg: PathBuf,
}

/// Writes `study.csv` and `study.svg` of `rows` (sorted by N) into `out`.
pub(super) fn write_files(out: &Path, plan: &Plan, rows: &[Row]) -> Result<Files, String> {
    let files = Files {
        csv: out.join("study.csv"),
        svg: out.join("study.svg"),
    };
    write_file(&files.csv, &csv(rows))?;
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
        human::size(plan.file_size),
        rate_text(plan.peer_upload),
        rate_text(plan.server_upload),
        rate_text(plan.peer_download)
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
    write_file(&files.svg, &svg)?;
    Ok(files)
}

/// study.csv: the header, then one line per row.
fn csv(rows: &[Row]) -> String {
    let mut csv = format!("{CSV_HEADER}\n");
    for row in rows {
        csv.push_str(&row.csv());
        csv.push('\n');
    }
    csv
}

fn write_file(path: &Path, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("{}: {e}", path.display()))
}

/// What the study found, for stdout: a JSON object with `--json`, otherwise the table
/// (unless `--quiet`) and the summary lines. `rows` are the finished runs of `requested`,
/// sorted by N; `problems` theirs; `wall` the seconds the study took.
pub(super) fn summary(
    args: &SimulateArgs,
    setup: &Setup<'_>,
    rows: &[Row],
    requested: usize,
    problems: &[String],
    wall: f64,
    files: &Files,
) -> String {
    let (plan, jobs) = (setup.plan, setup.jobs);
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
    let ok = problems.is_empty() && rows.len() == requested;

    if args.json {
        return crate::output::json_line(json!({
            "event": "summary",
            "ok": ok,
            "runs": rows.len(),
            "requested": requested,
            "complete": rows.iter().filter(|r| r.report.as_ref().is_ok_and(|r| r.complete)).count(),
            "max_ratio": max_ratio.map(|m| m.0),
            "max_ratio_peers": max_ratio.map(|m| m.1),
            "one_upload_time_s": one_upload,
            "all_below_one_upload_time": below_one_upload,
            "blocks": blocks,
            "wall_s": wall,
            "blocks_per_wall_second": blocks_per_second,
            "jobs": jobs,
            "file_size": plan.file_size,
            "piece_length": setup.config.piece_length,
            "server_upload": plan.server_upload,
            "peer_upload": plan.peer_upload,
            "peer_download": plan.peer_download,
            "latency_s": setup.config.latency.as_secs_f64(),
            "churn": plan.churn.map(|c| json!({"fraction": c.fraction, "away_s": c.away.as_secs_f64()})),
            "server_departs": plan.server_departs,
            "seed_time_s": plan.seed_time.map(|t| t.as_secs_f64()),
            "packet_loss": plan.loss.packet_loss,
            "jitter_s": plan.loss.jitter.as_secs_f64(),
            "free_riders": plan.free_riders,
            "arrivals": match plan.arrivals {
                Arrivals::FlashCrowd => json!("flash"),
                Arrivals::Poisson { mean_gap } => json!({"poisson_mean_gap_s": mean_gap.as_secs_f64()}),
            },
            "classes": plan.classes.iter().map(|c| json!({
                "share": c.share, "upload": c.upload, "download": c.download,
            })).collect::<Vec<_>>(),
            "seed": setup.config.seed,
            "csv": files.csv.display().to_string(),
            "svg": files.svg.display().to_string(),
            "problems": problems,
        }));
    }
    let mut text = String::new();
    if rows.is_empty() {
        text.push_str("simulate: no simulation finished\n");
    } else if !args.quiet {
        text.push_str(&table(rows));
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
        if rows.is_empty() {
            "no run finished".to_string()
        } else if below_one_upload {
            "yes".to_string()
        } else {
            let list: Vec<String> = not_below.iter().map(usize::to_string).collect();
            format!("no (N = {})", list.join(", "))
        },
        blocks_per_second,
        if jobs == 1 { "" } else { "s" },
        files.csv.display(),
        files.svg.display(),
    ));
    text
}

#[cfg(test)]
mod tests {
    use unchoke_sim::{Simulation, study};

    use super::*;

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
            // The study's columns, then the new measures': no steady phase, no samples and
            // no free riders in this made-up report (empty fields and a 0 count).
            "4,2000,1000,1100,1.1,0.9,10,20,1,7,99,0.25,,,,,,,0,,,,",
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
