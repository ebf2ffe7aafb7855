//! The swarm simulator's guarantees: never faster than the theory allows, everyone
//! completes with every piece verified, same seed ⇒ same run, and churn loses nothing.

mod common;

use std::time::Duration;

use common::run;
use unchoke_sim::{Churn, Loss, SimConfig, SimReport, Simulation};

/// A small study that runs quickly in a debug build: 2 MiB in 64 KiB pieces, peers that
/// upload 16 KiB/s (F/u = 128 s), a server ten times faster, downloads as fast as the server.
///
/// (The study's `F/u = 1 h` on a 2 MiB file would mean links of 580 B/s, where a block
/// shared among a few flows takes longer than the 30 s request time-out.)
fn small(peers: usize) -> SimConfig {
    common::small_swarm(peers, 2, 16.0)
}

fn assert_sound(r: &SimReport) {
    assert!(r.violations.is_empty(), "violations: {:#?}", r.violations);
    assert!(r.complete, "not complete: {r:#?}");
    assert_eq!(r.completion_times.len(), r.peers);
    assert!(r.completion_times.iter().all(Option::is_some), "{r:#?}");
}

fn assert_not_below_bound(r: &SimReport) {
    let measured = r
        .distribution_time
        .expect("complete run has a time")
        .as_secs_f64();
    assert!(
        measured >= r.bounds.p2p,
        "measured {measured} s beats the lower bound {} s: the simulator is wrong",
        r.bounds.p2p
    );
}

#[test]
fn measured_time_never_beats_the_lower_bound() {
    for peers in [1, 2, 5, 8] {
        let r = run(small(peers));
        assert_sound(&r);
        assert_not_below_bound(&r);
        // Everyone holds a full copy, so at least N copies crossed the network.
        let sent = r.server_uploaded + r.peers_uploaded;
        assert!(sent >= peers as u64 * 2 * 1024 * 1024, "{r:#?}");
        assert!(r.utilisation <= 1.0 + 1e-9, "{r:#?}");
    }
}

#[test]
fn a_slow_download_link_binds_and_is_respected() {
    // d = u: the slowest download dominates the bound (F/d = 128 s); P2P cannot beat it.
    let mut c = small(4);
    c.peer_download = c.peer_upload;
    let r = run(c);
    assert_sound(&r);
    assert_not_below_bound(&r);
    assert!((r.bounds.p2p - 128.0).abs() < 1e-6, "{:?}", r.bounds);
}

#[test]
fn the_swarm_shares_the_load_as_it_grows() {
    // With 8 peers the server alone would need 8 × F/u_s; the peers' uploads cut that,
    // and they carry a good share of the copies although the server is ten times faster.
    let r = run(small(8));
    assert_sound(&r);
    let measured = r.distribution_time.expect("complete").as_secs_f64();
    assert!(
        measured < r.bounds.client_server,
        "P2P {measured} s is no better than client-server {} s",
        r.bounds.client_server
    );
    assert!(
        r.peers_uploaded * 3 > r.server_uploaded,
        "peers {} vs server {}",
        r.peers_uploaded,
        r.server_uploaded
    );
}

#[test]
fn same_seed_same_numbers_other_seed_other_run() {
    let a = run(small(6));
    let b = run(small(6));
    assert_sound(&a);
    assert_eq!(a, b, "same configuration, different outcome");
    let mut c = small(6);
    c.seed = 2;
    let c = run(c);
    assert_sound(&c);
    assert_ne!(a.digest, c.digest, "the seed changed nothing");
}

#[test]
fn churn_loses_nothing_and_everyone_completes() {
    let mut c = small(8);
    c.churn = Some(Churn {
        fraction: 0.5,
        away: Duration::from_secs(120),
    });
    // The server leaves as soon as the online peers hold a full copy between them: from
    // then on, every piece lives only on peers that come and go.
    c.server_departs = true;
    c.seed = 7;
    let r = run(c);
    // A peer that came back and downloaded a piece it already had would be reported as a
    // piece verified twice; a block served by a host that lacks it, as a violation too.
    assert_sound(&r);
    assert!(
        r.leaves >= 2,
        "the server and at least one peer left: {r:#?}"
    );
    assert!(r.rejoins >= 1, "{r:#?}");
    assert!(
        r.rejoins + 1 >= r.leaves,
        "every churned peer came back: {r:#?}"
    );
    assert_not_below_bound(&r);
}

#[test]
fn the_swarm_finishes_after_the_server_left() {
    let mut c = small(6);
    c.server_departs = true;
    let r = run(c);
    assert_sound(&r);
    assert_eq!(r.leaves, 1, "only the server left");
    // The server sent less than it would have had it stayed to the end: the peers finished
    // the job among themselves.
    let full = run(small(6));
    assert!(
        r.server_uploaded < full.server_uploaded,
        "{r:#?}\n{full:#?}"
    );
}

#[test]
fn no_peers_no_time_and_bad_parameters_refused() {
    let r = run(small(0));
    assert!(r.complete);
    assert_eq!(r.distribution_time, Some(Duration::ZERO));
    let mut c = small(2);
    c.peer_upload = 0.0;
    assert!(Simulation::new(c).is_err());
    let mut c = small(2);
    c.churn = Some(Churn {
        fraction: 1.5,
        away: Duration::from_secs(1),
    });
    assert!(Simulation::new(c).is_err());
    let mut c = small(2);
    c.piece_length = 1000;
    assert!(Simulation::new(c).is_err());
}

#[test]
fn an_unreachable_goal_stops_at_the_time_limit() {
    let mut c = small(3);
    c.time_limit = Duration::from_secs(10);
    let mut sim = Simulation::new(c).expect("valid");
    while !sim.run_for(10_000) {}
    let r = sim.report();
    assert!(!r.complete);
    assert_eq!(r.distribution_time, None);
    assert_eq!(r.end, Duration::from_secs(10));
    assert!(sim.progress().completed < 3);
}

#[test]
fn a_corrupt_peer_is_caught_and_the_others_still_complete() {
    use unchoke_sim::{Disruption, DisruptionKind};
    let mut c = small(5);
    c.disruptions = vec![Disruption {
        at: Duration::ZERO,
        host: 1,
        kind: DisruptionKind::Corrupt,
    }];
    let r = run(c);
    // Hash failures and bans are expected now, so they are not violations; everything
    // else still is, and every piece anyone keeps was compared with the original.
    assert_sound(&r);
    assert!(
        r.hash_failures > 0,
        "the corrupt peer's data was never caught: {r:#?}"
    );
    assert_not_below_bound(&r);
}

#[test]
fn stalls_and_a_server_that_leaves_and_returns_delay_but_lose_nothing() {
    use unchoke_sim::{Disruption, DisruptionKind};
    let at = Duration::from_secs;
    let mut c = small(4);
    c.disruptions = vec![
        Disruption {
            at: at(20),
            host: 0,
            kind: DisruptionKind::Leave,
        },
        Disruption {
            at: at(50),
            host: 2,
            kind: DisruptionKind::Stall(at(30)),
        },
        Disruption {
            at: at(90),
            host: 0,
            kind: DisruptionKind::Rejoin,
        },
        Disruption {
            at: at(95),
            host: 0,
            kind: DisruptionKind::Rejoin,
        },
    ];
    let r = run(c);
    assert_sound(&r);
    assert_eq!((r.leaves, r.rejoins), (1, 1), "a second rejoin is ignored");
    let undisturbed = run(small(4));
    assert!(
        r.distribution_time > undisturbed.distribution_time,
        "the disruptions cost nothing? {r:#?}"
    );
    let mut bad = small(2);
    bad.disruptions = vec![Disruption {
        at: Duration::ZERO,
        host: 3,
        kind: DisruptionKind::Leave,
    }];
    assert!(Simulation::new(bad).is_err(), "host 3 of 2 peers");
}

#[test]
fn peers_find_each_other_through_the_dht_alone() {
    // No tracker at all: every session runs a DHT node joining through the server's, and
    // the swarm still completes with every piece verified.
    let mut c = small(12);
    c.dht = true;
    c.seed = 11;
    let r = run(c);
    assert_sound(&r);
    assert_not_below_bound(&r);
    assert_eq!(r.tracker_announces, 0, "nobody asked the tracker: {r:#?}");
    assert!(r.datagrams > 0, "{r:#?}");
    // The peers found each other, not only the server: they uploaded to each other.
    assert!(r.peers_uploaded > 0, "{r:#?}");

    // The same swarm through the tracker asks it, and carries no datagram.
    let r = run(small(12));
    assert!(r.tracker_announces > 0 && r.datagrams == 0, "{r:#?}");
}

/// Churn, a peer whose dials go unanswered for a while and a peer that stops reading: the
/// session's own rules run under simulation (connect time-outs and cancelled dials, slow
/// readers dropped, peer events, socket accounting, resume saves, closes that drain).
fn adversarial(seed: u64) -> SimConfig {
    use unchoke_sim::{Disruption, DisruptionKind};
    let at = Duration::from_secs;
    let mut c = small(6);
    c.seed = seed;
    c.churn = Some(Churn {
        fraction: 0.34,
        away: at(60),
    });
    c.disruptions = vec![
        Disruption {
            at: Duration::ZERO,
            host: 1,
            kind: DisruptionKind::BlackHole(at(45)),
        },
        Disruption {
            at: at(30),
            host: 2,
            kind: DisruptionKind::StopReading(at(150)),
        },
    ];
    c
}

#[test]
fn the_sessions_rules_run_and_the_digest_covers_them() {
    let a = run(adversarial(3));
    assert_sound(&a);
    let p = &a.policies;
    assert!(p.connect_timeouts > 0, "no dial timed out: {p:#?}");
    assert!(p.cancelled_dials > 0, "no dial cancelled: {p:#?}");
    assert!(
        p.slow_reader_drops > 0,
        "the peer that stopped reading was kept: {p:#?}"
    );
    assert!(p.peer_connected > 0 && p.peer_disconnected > 0, "{p:#?}");
    assert!(p.sent_reports > 0, "{p:#?}");
    // Every byte a socket accepted left its host: at least the payload uploaded.
    assert!(
        p.sent_bytes >= a.server_uploaded + a.peers_uploaded,
        "{a:#?}"
    );
    assert!(p.saves > 0, "{p:#?}");
    // Every host closes at the end (all 7 were online), and each leave was a close too;
    // every close drained before its deadline.
    assert_eq!(p.closes, 7 + a.leaves, "{a:#?}");
    assert_eq!(p.drained, p.closes, "{a:#?}");
    assert!(p.longest_drain < Duration::from_secs(10), "{p:#?}");

    let b = run(adversarial(3));
    assert_eq!(a, b, "same seed, different run");
    let c = run(adversarial(4));
    assert_sound(&c);
    assert_ne!(a.digest, c.digest, "the seed changed nothing");
    assert_ne!(
        a.policies, c.policies,
        "the seed changed none of the policies' counts"
    );
}

#[test]
fn the_dht_finds_the_swarm_through_lost_and_reordered_datagrams() {
    // A fifth of all datagrams lost and up to 80 ms of jitter (so replies overtake each
    // other): the DHT's retransmissions and lookups still find the swarm.
    let mut c = small(12);
    c.dht = true;
    c.seed = 11;
    c.loss = Loss {
        packet_loss: 0.2,
        jitter: Duration::from_millis(80),
    };
    let r = run(c.clone());
    assert_sound(&r);
    assert_not_below_bound(&r);
    assert!(r.peers_uploaded > 0, "{r:#?}");
    let sent = r.datagrams + r.datagrams_lost;
    let share = r.datagrams_lost as f64 / sent as f64;
    assert!(
        (0.15..0.25).contains(&share),
        "{} of {sent} datagrams lost ({share:.3}), not about 20 %",
        r.datagrams_lost
    );
    assert_eq!(run(c).digest, r.digest, "losses come from the seed");
    // Without loss nothing is lost.
    let mut plain = small(12);
    plain.dht = true;
    plain.seed = 11;
    let p = run(plain);
    assert_eq!(p.datagrams_lost, 0);
    assert_ne!(p.digest, r.digest);
}

#[test]
fn loss_caps_each_tcp_flow_at_what_tcp_sustains() {
    let loss = Loss {
        packet_loss: 0.01,
        jitter: Duration::ZERO,
    };
    // 1 % loss, 100 ms round trip: 1.22 · 1460 / (0.1 · 0.1) = 178,120 B/s.
    let cap = loss.tcp_cap(Duration::from_millis(50));
    assert!((cap - 178_120.0).abs() < 1.0, "{cap}");
    assert_eq!(
        Loss::default().tcp_cap(Duration::from_millis(50)),
        f64::INFINITY
    );
    // A swarm whose links are far faster than that cap is slowed down to it.
    let mut fast = small(3);
    fast.peer_upload = 4.0 * 1024.0 * 1024.0;
    fast.server_upload = 4.0 * fast.peer_upload;
    fast.peer_download = fast.server_upload;
    fast.latency = Duration::from_millis(25);
    let free = run(fast.clone());
    fast.loss = Loss {
        packet_loss: 0.05,
        jitter: Duration::ZERO,
    };
    let lossy = run(fast);
    assert_sound(&free);
    assert_sound(&lossy);
    let (a, b) = (
        free.distribution_time.expect("complete"),
        lossy.distribution_time.expect("complete"),
    );
    assert!(b > a * 2, "5 % loss: {b:?}, no loss: {a:?}");
}

#[test]
fn impossible_loss_is_refused() {
    for p in [1.0, -0.1, f64::NAN] {
        let mut c = small(2);
        c.loss.packet_loss = p;
        assert!(Simulation::new(c).is_err(), "{p}");
    }
}
