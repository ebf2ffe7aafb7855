//! What the user sees on stderr while the study runs (stdout carries the results): a
//! progress bar on a terminal, a status line every few seconds otherwise, nothing with
//! `--quiet`; with `--json`, each run's JSON object on stdout as it finishes.

use std::time::{Duration, Instant};

use super::args::SimulateArgs;
use super::report::{Row, duration_text};
use super::runner::Running;

/// What the user sees while the study runs (on stderr; stdout carries the results).
pub(super) enum Display {
    /// A progress bar, the running swarms in its message (stderr is a terminal).
    Bar(indicatif::ProgressBar),
    /// A line per finished run, and a status line at most every five seconds.
    Lines {
        /// When the last status line went out.
        last: Instant,
    },
    /// Each finished run as a JSON object on stdout; nothing on stderr.
    Json,
    /// Nothing until the summary.
    Quiet,
}

impl Display {
    /// The display `args` ask for, for `total` runs.
    pub(super) fn new(args: &SimulateArgs, total: usize) -> Display {
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
    pub(super) fn finished(&self, row: &Row) {
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
                crate::output::emit(row.json());
            }
            Display::Quiet => {}
        }
    }

    /// The running simulations' state, `done` of `total` finished.
    pub(super) fn tick(&mut self, running: &[Option<Running>], done: usize, total: usize) {
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

    /// The study is over: clear the bar.
    pub(super) fn finish(&self) {
        if let Display::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
