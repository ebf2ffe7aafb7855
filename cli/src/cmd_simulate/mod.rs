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
//!
//! The parts: [`args`] reads and checks the command line, [`runner`] runs the
//! simulations on threads, [`display`] shows their progress while they run, and
//! [`report`] turns their results into the table, the JSON, the files and the summary.

mod args;
mod display;
mod report;
mod runner;

use std::sync::atomic::Ordering;
use std::time::Instant;

pub(crate) use args::SimulateArgs;

use crate::cmd_transfer::interrupt_flag;
use crate::output::print;
use display::Display;
use report::{Row, Setup};

/// `unchoke simulate`.
pub(crate) fn run(args: &SimulateArgs) -> Result<(), String> {
    crate::output::set_json_mode(args.json);
    let interrupted = interrupt_flag()?;
    let plan = args.plan();
    let peers = args.peer_counts()?;
    // A configuration the simulator refuses is refused for every N: say so once, before
    // starting anything (the smallest swarm is the cheapest to set up).
    let smallest = peers.first().copied().unwrap_or_default();
    let config = plan.checked_config(smallest)?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let setup = Setup {
        plan: &plan,
        config: &config,
        jobs: args.jobs(peers.len()),
    };
    if !args.json && !args.quiet {
        let _ = print(&report::header(&setup, &peers));
    }

    // Largest swarms first: they take longest, and starting them early keeps every thread
    // busy until the end.
    let order: Vec<usize> = peers.iter().rev().copied().collect();
    let mut display = Display::new(args, order.len());
    let started = Instant::now();
    let mut rows = runner::run_all(&plan, &order, setup.jobs, &mut display, &interrupted);
    let wall = started.elapsed().as_secs_f64();
    display.finish();
    rows.sort_by_key(|r| r.peers);

    let files = report::write_files(&args.out, &plan, &rows)?;
    let problems: Vec<String> = rows.iter().flat_map(Row::problems).collect();
    let summary = report::summary(args, &setup, &rows, order.len(), &problems, wall, &files);
    let _ = print(&summary);

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
