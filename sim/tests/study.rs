//! Issue 19's study measures: the bound is never beaten at any N (with churn and a server
//! that departs too), the spread of the pieces' copies over time, and free riders.

mod common;

use std::time::Duration;

use common::run;
use unchoke_sim::{Arrivals, BandwidthClass, Churn, SimConfig, SimReport, Simulation};

/// 1 MiB in 64 KiB pieces (16 pieces), peers uploading 8 KiB/s (F/u = 128 s), a server ten
/// times faster, downloads as fast as the server: quick in a debug build.
fn small(peers: usize) -> SimConfig {
    common::small_swarm(peers, 1, 8.0)
}

fn assert_complete_and_bounded(r: &SimReport, what: &str) {
    assert!(r.violations.is_empty(), "{what}: {:#?}", r.violations);
    assert!(r.complete, "{what}: not complete: {r:#?}");
    let measured = r.distribution_time.expect("complete").as_secs_f64();
    assert!(
        measured >= r.bounds.p2p,
        "{what}: measured {measured} s beats the P2P bound {} s",
        r.bounds.p2p
    );
}

#[test]
fn the_bound_is_never_beaten_at_any_n_and_runs_repeat() {
    for peers in [1, 2, 5, 13, 40] {
        let plain = small(peers);
        let mut churn = small(peers);
        // The bound still holds: hosts away only take capacity out of `u_s + Σu_i`.
        churn.churn = Some(Churn {
            fraction: 0.3,
            away: Duration::from_secs(20),
        });
        let mut departs = small(peers);
        // Likewise once the server is gone: it has sent at least one copy by then.
        departs.server_departs = true;
        for (what, config) in [("plain", plain), ("churn", churn), ("departs", departs)] {
            let what = format!("{what}, N = {peers}");
            let a = run(config.clone());
            assert_complete_and_bounded(&a, &what);
            if peers == 13 {
                let b = run(config);
                assert_eq!(a.digest, b.digest, "{what}: same seed, other run");
                assert_eq!(a.samples, b.samples, "{what}");
            }
        }
    }
}

#[test]
fn the_spread_of_copies_is_sampled_and_reaches_every_peer() {
    let peers = 13;
    let r = run(small(peers));
    assert_complete_and_bounded(&r, "spread");
    assert!(r.samples.len() >= 5, "{:#?}", r.samples);
    for (i, s) in r.samples.iter().enumerate() {
        assert_eq!(s.at, Duration::from_secs(10 * (i as u64 + 1)), "{s:?}");
        assert!((0.0..=1.0).contains(&s.entropy), "{s:?}");
        assert!(s.min_copies <= s.max_copies, "{s:?}");
        assert!(s.max_copies as usize <= peers, "{s:?}");
        assert!(s.utilisation >= 0.0 && s.utilisation <= 1.0 + 1e-9, "{s:?}");
    }
    // Nothing is held at first; copies only grow without churn.
    assert_eq!(r.samples[0].min_copies, 0);
    for w in r.samples.windows(2) {
        assert!(w[1].min_copies >= w[0].min_copies, "{w:?}");
    }
    // The last sample is taken before the last completion (up to a sampling period
    // before it): every peer complete by then holds every piece, most peers hold every
    // piece, and the copies are spread evenly.
    let last = r.samples.last().expect("samples");
    let complete_by_then = r
        .completion_times
        .iter()
        .flatten()
        .filter(|t| **t <= last.at)
        .count();
    assert!(
        last.min_copies as usize >= complete_by_then.max(peers / 2),
        "{last:?}, {complete_by_then} complete by then"
    );
    assert!(last.entropy > 0.99, "{last:?}");
    let steady = r.steady.expect("a steady phase");
    assert!(
        steady.from <= steady.until && steady.samples >= 1,
        "{steady:?}"
    );
    assert!(steady.min_copies >= 1.0 && steady.min_copies <= steady.max_copies);
    assert!((0.0..=1.0).contains(&steady.entropy), "{steady:?}");
    let first_done = r.completion_times.iter().flatten().min().expect("done");
    assert!(steady.until <= *first_done, "{steady:?}");
    assert!(r.free_riding.is_none());
}

#[test]
fn free_riders_upload_nothing_and_still_finish() {
    // The peers hold most of the capacity (the server uploads only twice a peer): where
    // the server is most of it, as in `small`, it serves everyone alike and free riders
    // get about their equal share (see RESULTS.md).
    let peers = 10;
    let mut c = small(peers);
    c.server_upload = 2.0 * c.peer_upload;
    c.free_riders = 0.3;
    assert_eq!(c.free_rider_hosts().len(), 3);
    assert_eq!(
        c.free_rider_hosts(),
        c.free_rider_hosts(),
        "chosen from the seed"
    );
    // The bound counts the contributors' upload only.
    let mut everyone = c.clone();
    everyone.free_riders = 0.0;
    assert!(c.bounds().p2p > everyone.bounds().p2p);
    let r = run(c);
    assert_complete_and_bounded(&r, "30 % free riders");
    let f = r.free_riding.expect("free riders");
    assert_eq!(f.free_riders, 3);
    assert_eq!(f.uploaded, 0, "a free rider uploaded: {f:?}");
    // Over the whole run every peer that completes receives one copy, so the share is the
    // equal share; while everyone is still leeching it is what the choker decided, and in a
    // swarm this small it is not reliably below the equal share (RESULTS.md: small swarms
    // at these rates barely tell free riders from contributors). Bounded, not ranked.
    assert!((f.share - 0.3).abs() < 0.05, "{f:?}");
    let leeching = f
        .share_while_leeching
        .expect("a sample before the first completion");
    assert!((0.0..=1.0).contains(&leeching), "{f:?}");
    assert!(
        f.received >= 3 * 1024 * 1024,
        "each got a whole copy: {f:?}"
    );
    // Not asserted: that they finish later. Peers that completed stay as seeds, and a
    // seed's choker ranks by what it sends, not what it gets, so free riders catch up at
    // the end (RESULTS.md has the numbers).
    assert!(f.median_completion.is_some() && f.contributor_median_completion.is_some());
}

#[test]
fn all_but_one_free_riding_still_completes() {
    let peers = 5;
    let mut c = small(peers);
    c.free_riders = 0.8;
    assert_eq!(c.free_rider_count(), 4);
    let r = run(c);
    assert_complete_and_bounded(&r, "all but one free ride");
    let f = r.free_riding.expect("free riders");
    assert_eq!(f.uploaded, 0, "{f:?}");
    // They finished on what the server and the one contributor gave them.
    assert!(f.received >= 4 * 1024 * 1024, "{f:?}");
    assert!(f.median_completion.is_some(), "{f:?}");
}

#[test]
fn free_rider_fractions_outside_zero_to_one_are_refused() {
    for bad in [-0.1, 1.5, f64::NAN] {
        let mut c = small(3);
        c.free_riders = bad;
        assert!(Simulation::new(c).is_err(), "{bad} accepted");
    }
    let mut c = small(3);
    c.free_riders = 1.0;
    assert_eq!(c.free_rider_count(), 3);
    c.free_riders = 0.0;
    assert!(c.free_rider_hosts().is_empty());
}

/// A heterogeneous swarm: a fifth of the peers upload ten times faster than the rest.
fn two_classes(peers: usize) -> SimConfig {
    let mut c = small(peers);
    let u = c.peer_upload;
    c.classes = vec![
        BandwidthClass {
            share: 0.2,
            upload: 10.0 * u,
            download: 20.0 * u,
        },
        BandwidthClass {
            share: 0.8,
            upload: u,
            download: 10.0 * u,
        },
    ];
    c
}

#[test]
fn bandwidth_classes_deal_every_peer_once_and_the_bound_uses_their_rates() {
    let c = two_classes(13);
    let classes = c.peer_classes();
    assert_eq!(classes.len(), 13);
    // 0.2 · 13 = 2.6 → 3 by largest remainder; 10.4 → 10.
    assert_eq!(classes.iter().filter(|&&k| k == 0).count(), 3);
    assert_eq!(classes.iter().filter(|&&k| k == 1).count(), 10);
    assert_eq!(
        classes,
        c.peer_classes(),
        "the same seed deals the same way"
    );
    let f = c.file_size as f64;
    let u = c.peer_upload;
    let bounds = c.bounds();
    let swarm = 13.0 * f / (c.server_upload + 3.0 * 10.0 * u + 10.0 * u);
    let slowest = f / (10.0 * u);
    assert!((bounds.p2p - swarm.max(slowest).max(f / c.server_upload)).abs() < 1e-6);
    for peers in [1, 5, 13] {
        let r = run(two_classes(peers));
        assert_complete_and_bounded(&r, &format!("{peers} peers in two classes"));
        assert_eq!(r.classes.len(), 2);
        assert_eq!(r.classes.iter().map(|k| k.peers).sum::<usize>(), peers);
        let report = run(two_classes(peers));
        assert_eq!(r.digest, report.digest, "{peers} peers: not deterministic");
    }
    // The fast class does upload more, per peer, than the slow one. Over several seeds:
    // in one 13-peer run the fast peers may finish first and leave little to upload
    // (seed 1 gives 557 KB per fast peer against 577 KB per slow one), so one run is
    // near a coin flip; four runs are not (about 3:1).
    let (mut fast, mut slow) = (0.0, 0.0);
    for seed in 1..=4 {
        let mut c = two_classes(13);
        c.seed = seed;
        let r = run(c);
        let per_peer = |k: usize| r.classes[k].uploaded as f64 / r.classes[k].peers as f64;
        fast += per_peer(0);
        slow += per_peer(1);
    }
    assert!(fast > 2.0 * slow, "fast {fast} slow {slow}");
}

#[test]
fn bad_bandwidth_classes_are_refused() {
    for (share, up, down) in [
        (0.0, 1e3, 1e3),
        (-1.0, 1e3, 1e3),
        (1.0, 0.0, 1e3),
        (1.0, 1e3, f64::NAN),
    ] {
        let mut c = small(3);
        c.classes = vec![BandwidthClass {
            share,
            upload: up,
            download: down,
        }];
        assert!(Simulation::new(c).is_err(), "{share} {up} {down} accepted");
    }
}

#[test]
fn peers_arriving_one_by_one_each_complete_after_they_arrive() {
    let mut c = small(8);
    c.arrivals = Arrivals::Poisson {
        mean_gap: Duration::from_secs(20),
    };
    let arrivals = c.arrival_times();
    assert_eq!(arrivals.len(), 8);
    assert!(arrivals.windows(2).all(|w| w[0] <= w[1]), "{arrivals:?}");
    assert!(arrivals[0] > 0, "the first gap comes before host 1");
    assert_eq!(arrivals, c.arrival_times(), "drawn from the seed");
    let r = run(c.clone());
    assert_complete_and_bounded(&r, "Poisson arrivals");
    for (i, (done, took)) in r.completion_times.iter().zip(&r.download_times).enumerate() {
        let (done, took) = (done.expect("complete"), took.expect("complete"));
        let arrived = Duration::from_micros(arrivals[i]);
        assert!(done > arrived, "peer {i} completed before it arrived");
        assert_eq!(done - arrived, took, "peer {i}");
    }
    // The last peer cannot finish before it arrives plus one file at its download rate.
    let last = Duration::from_micros(arrivals[7]);
    let one_copy = Duration::from_secs_f64(c.file_size as f64 / c.peer_download);
    assert!(r.distribution_time.expect("complete") >= last + one_copy);
    assert_eq!(run(c).digest, r.digest, "not deterministic");
    // A flash crowd's download times are its completion times.
    let flash = run(small(3));
    assert_eq!(flash.download_times, flash.completion_times);
}

#[test]
fn a_mean_arrival_gap_of_zero_is_refused() {
    let mut c = small(3);
    c.arrivals = Arrivals::Poisson {
        mean_gap: Duration::ZERO,
    };
    assert!(Simulation::new(c).is_err());
}

#[test]
fn peers_that_leave_after_seeding_a_while_take_only_their_upload_away() {
    let peers = 13;
    let stay = run(small(peers));
    let mut config = small(peers);
    config.seed_time = Some(Duration::from_secs(5));
    let leave = run(config.clone());
    assert_complete_and_bounded(&leave, "seed time 5 s");
    // Every peer but the last leaves 5 s after completing (the last one's completion stops
    // the swarm); nobody comes back.
    let completions: Vec<Duration> = leave.completion_times.iter().flatten().copied().collect();
    assert_eq!(completions.len(), peers);
    let last = completions.iter().max().copied().expect("complete");
    let early = completions
        .iter()
        .filter(|t| **t + Duration::from_secs(5) <= last)
        .count();
    assert!(
        leave.leaves as usize >= early && (leave.leaves as usize) < peers,
        "{} leaves, {early} peers completed at least 5 s before the last: {completions:?}",
        leave.leaves
    );
    assert!(leave.leaves >= 1, "{leave:#?}");
    assert_eq!(leave.rejoins, 0);
    // Not "never faster than staying": a departed seed also frees the receive share its
    // flows held (the model splits a receiver's download equally among its flows), so a
    // run may end a little sooner; the bound above is what must hold.
    assert!(stay.complete);
    assert_eq!(run(config).digest, leave.digest, "same seed, other run");
}
