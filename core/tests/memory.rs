//! Download memory bounded by the session, in virtual time: a leecher whose disk is far
//! slower than its links stops requesting while too many blocks wait for the disk, keeps
//! what waits under the stated bound, and still completes with the right bytes.

use std::time::Duration;

use unchoke_sim::lab::{Behaviour, Swarm, make_content};

const KIB: usize = 1024;
const BLOCK: usize = 16 * KIB;

/// Peak bytes waiting for the leecher's disk (as the session counts them, and as the
/// emulated disk holds them), and whether it completed with the right bytes.
struct Run {
    peak_counted: usize,
    peak_queued: usize,
    complete: bool,
}

/// Two seeds, one leecher whose disk writes 16 KiB per 10 ms step (1.6 MB/s) behind links
/// of 10 MB/s each: without a bound, blocks pile up for the disk.
fn run(max_unwritten: usize, max_pipeline: usize) -> Run {
    let mut s = Swarm::new(
        make_content(8 * 1024 * KIB, 3),
        256 * KIB as u32,
        10_000 * KIB,
    );
    s.config.max_unwritten_bytes = max_unwritten;
    s.config.max_pipeline = max_pipeline;
    let seeds = [s.add_seed(Behaviour::Honest), s.add_seed(Behaviour::Honest)];
    let leecher = s.add_node(None, Behaviour::Honest);
    // One block per 10 ms (the old harness counted its slow disk per step).
    s.set_disk_rate(leecher, 100 * BLOCK);
    s.introduce_to(leecher, &seeds);
    let mut peak_counted = 0;
    let mut peak_queued = 0;
    let complete = s.run_until(Duration::from_secs(120), |s| {
        peak_counted = peak_counted.max(s.session(leecher).unwritten_bytes());
        peak_queued = peak_queued.max(s.unwritten(leecher));
        s.is_complete(leecher) && s.unwritten(leecher) == 0
    });
    Run {
        peak_counted,
        peak_queued,
        complete: complete && s.disk_matches(leecher),
    }
}

#[test]
fn a_slow_disk_holds_requests_back_and_the_unwritten_bytes_stay_under_the_bound() {
    let max_unwritten = 256 * KIB;
    let max_pipeline = 16;
    let peers = 2;
    // Requests already sent still arrive after the bound is reached: at most one full
    // pipeline per peer beyond it (honest seeds send nothing unasked).
    let bound = max_unwritten + peers * max_pipeline * BLOCK;
    let r = run(max_unwritten, max_pipeline);
    eprintln!(
        "peak counted {} B, queued {} B, bound {bound} B",
        r.peak_counted, r.peak_queued
    );
    assert!(r.complete, "the leecher completes with the right bytes");
    assert!(
        r.peak_counted >= max_unwritten,
        "the disk was slow enough to reach the bound (peak {} B)",
        r.peak_counted
    );
    assert!(
        r.peak_counted <= bound,
        "counted unwritten bytes peaked at {} B, over the stated bound {bound} B",
        r.peak_counted
    );
    assert!(
        r.peak_queued <= r.peak_counted,
        "the session's count ({} B) covers what the disk really holds ({} B)",
        r.peak_counted,
        r.peak_queued
    );
}

#[test]
fn without_a_tight_bound_the_same_slow_disk_piles_up_past_it() {
    // The control: the same swarm with the bound out of reach shows the hold is what kept
    // memory down above, not the links.
    let max_pipeline = 16;
    let bound = 256 * KIB + 2 * max_pipeline * BLOCK;
    let r = run(usize::MAX, max_pipeline);
    eprintln!("unbounded: peak queued {} B", r.peak_queued);
    assert!(r.complete);
    assert!(
        r.peak_queued > bound,
        "an unbounded leecher queued only {} B for its disk",
        r.peak_queued
    );
}

#[test]
fn the_default_bound_is_the_drivers_former_one() {
    let config = unchoke_core::session::SessionConfig::default();
    assert_eq!(config.max_unwritten_bytes, 32 << 20);
}
