//! Seeding limits in virtual time: a seed pauses itself when its upload ratio, its seeding
//! time or its idle time reaches the limit (the session's default or the torrent's own),
//! says which, and wakes for the time limits through `poll_timeout` alone.
//!
//! Ratio and idle-while-uploading run on the lab's network (`unchoke_sim::lab`) with real
//! leechers; the time limits drive a lone seed by hand from one deadline to the next, which
//! also counts how often it is woken.

use std::time::Duration;

use unchoke_core::session::{
    Event, Limit, SeedLimit, SeedLimits, SeedLimitsError, Session, SessionConfig, TorrentId,
    TorrentState, TransferTotals,
};
use unchoke_core::time::Instant;
use unchoke_sim::lab::{Behaviour, Swarm, make_content, make_metainfo};

mod common;
use common::drain;

const KIB: usize = 1024;
const BLOCK: u64 = 16 * 1024;
const PIECE: u32 = 32 * KIB as u32;

fn ratio(r: f64) -> SeedLimits {
    SeedLimits {
        ratio: Limit::Own(r),
        ..SeedLimits::default()
    }
}

/// Host `i`'s `SeedLimitReached` events: when, and which limit.
fn limit_events(s: &Swarm, i: usize) -> Vec<(Instant, SeedLimit)> {
    s.events(i)
        .filter_map(|(at, e)| match e {
            Event::SeedLimitReached { limit, .. } => Some((*at, *limit)),
            _ => None,
        })
        .collect()
}

fn uploaded(s: &Swarm, i: usize) -> u64 {
    s.session(i)
        .stats(s.torrent(i), s.now())
        .expect("the host has its torrent")
        .uploaded
}

/// A lone seed of a 64 KiB torrent (no tracker, no DHT, no peer) added at time 0 under
/// `config`, with `own` limits of its own if given.
fn lone_seed(config: SessionConfig, own: Option<SeedLimits>) -> (Session, TorrentId) {
    let content = make_content(64 * KIB, 3);
    let metainfo = make_metainfo(&content, PIECE);
    let now = Instant::ZERO;
    let mut s = Session::new(config, 9, now);
    let all = unchoke_core::bitfield::Bitfield::full(metainfo.info.piece_count());
    let t = s.add_torrent(&metainfo, Some(all), now).expect("add");
    // No tracker: nothing but the seed's own timers wakes it.
    s.set_trackers(t, Vec::new(), now);
    if let Some(own) = own {
        s.set_seed_limits(Some(t), own, now).expect("set");
    }
    drain(&mut s);
    (s, t)
}

/// Drives `s` from deadline to deadline until `until`, as a driver would: returns the
/// `SeedLimitReached` events with when they came, and how many times it was woken.
fn run_alone(s: &mut Session, until: Instant) -> (Vec<(Instant, SeedLimit)>, usize) {
    let mut events = Vec::new();
    let mut wakes = 0;
    while let Some(at) = s.poll_timeout() {
        if at > until {
            break;
        }
        wakes += 1;
        s.handle_timeout(at);
        for a in drain(s) {
            if let unchoke_core::session::Action::Event(Event::SeedLimitReached { limit, .. }) = a {
                events.push((at, limit));
            }
        }
        assert!(wakes < 100_000, "busy polling");
    }
    (events, wakes)
}

#[test]
fn a_seed_with_ratio_two_pauses_once_it_uploaded_twice_its_size_and_resumes_only_when_cleared() {
    let mut s = Swarm::new(make_content(256 * KIB, 7), PIECE, 256 * KIB);
    let seed = s.add_seed(Behaviour::Honest);
    let t = s.torrent(seed);
    let now = s.now();
    s.session_mut(seed)
        .set_seed_limits(Some(t), ratio(2.0), now)
        .expect("set");
    let size = s.session(seed).stats(t, now).expect("stats").total_length;

    // One leecher takes the whole torrent: ratio 1, the seed seeds on.
    let first = s.add_node(None, Behaviour::Honest);
    s.introduce_to(first, &[seed]);
    assert!(s.run_until(Duration::from_secs(60), |s| s.is_complete(first)));
    s.settle();
    let up = uploaded(&s, seed);
    assert!(up >= size && up < 2 * size, "uploaded {up} of {size}");
    assert_eq!(
        s.session(seed).torrent_state(t),
        Some(TorrentState::Seeding)
    );
    assert!(limit_events(&s, seed).is_empty(), "paused before the ratio");

    // A second takes it again: the seed stops at 2 × size, within the block that crossed.
    s.leave(first);
    let second = s.add_node(None, Behaviour::Honest);
    s.introduce_to(second, &[seed]);
    let paused = s.run_until(Duration::from_secs(60), |s| {
        s.session(seed).torrent_state(t) == Some(TorrentState::Paused)
    });
    assert!(paused, "never paused; uploaded {}", uploaded(&s, seed));
    s.settle();
    let up = uploaded(&s, seed);
    assert!(
        up >= 2 * size && up < 2 * size + BLOCK,
        "paused at {up} bytes uploaded for a limit of {}",
        2 * size
    );
    let events = limit_events(&s, seed);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1, SeedLimit::Ratio);
    assert!(s.session(seed).connections(t).is_empty(), "peers dropped");

    // Resumed with the ratio still reached: paused again at once, with the event again.
    let now = s.now();
    s.session_mut(seed).resume_torrent(t, now).expect("resume");
    assert_eq!(s.session(seed).torrent_state(t), Some(TorrentState::Paused));
    s.settle();
    let events = limit_events(&s, seed);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1], (now, SeedLimit::Ratio));

    // The limit cleared, a resume seeds on and serves a third leecher past the old limit.
    let now = s.now();
    let cleared = SeedLimits {
        ratio: Limit::Unlimited,
        ..SeedLimits::default()
    };
    s.session_mut(seed)
        .set_seed_limits(Some(t), cleared, now)
        .expect("clear");
    s.session_mut(seed).resume_torrent(t, now).expect("resume");
    assert_eq!(
        s.session(seed).torrent_state(t),
        Some(TorrentState::Seeding)
    );
    s.leave(second);
    let third = s.add_node(None, Behaviour::Honest);
    s.introduce_to(third, &[seed]);
    assert!(s.run_until(Duration::from_secs(60), |s| s.is_complete(third)));
    assert!(uploaded(&s, seed) >= 3 * size - BLOCK);
    assert_eq!(
        s.session(seed).torrent_state(t),
        Some(TorrentState::Seeding)
    );
    assert_eq!(limit_events(&s, seed).len(), 2);
}

#[test]
fn a_bad_ratio_or_an_unknown_torrent_is_refused() {
    let (mut s, t) = lone_seed(SessionConfig::default(), None);
    let now = Instant::ZERO;
    for bad in [f64::NAN, -1.0, f64::INFINITY] {
        assert_eq!(
            s.set_seed_limits(Some(t), ratio(bad), now),
            Err(SeedLimitsError::InvalidRatio)
        );
    }
    assert_eq!(
        s.set_seed_limits(Some(TorrentId(7)), ratio(1.0), now),
        Err(SeedLimitsError::UnknownTorrent)
    );
    assert_eq!(s.seed_limits(Some(t)), Some(SeedLimits::default()));
}

#[test]
fn a_lone_seed_pauses_after_exactly_its_idle_time_and_is_woken_for_it_alone() {
    // 59.5 s falls between two housekeeping ticks (whole seconds from 0): only
    // `poll_timeout` reporting the idle deadline can wake the session at that instant.
    let idle = Duration::from_millis(59_500);
    let config = SessionConfig {
        seed_limits: SeedLimits {
            idle: Limit::Own(idle),
            ..SeedLimits::default()
        },
        ..SessionConfig::default()
    };
    let (mut s, t) = lone_seed(config, None);
    let (events, wakes) = run_alone(&mut s, Instant::ZERO + idle);
    assert_eq!(events, vec![(Instant::ZERO + idle, SeedLimit::Idle)]);
    assert_eq!(s.torrent_state(t), Some(TorrentState::Paused));
    // The same seed without a limit, up to the same instant: the limit cost exactly one
    // wake-up, its own (no polling).
    let (mut control, _) = lone_seed(SessionConfig::default(), None);
    let (_, control_wakes) = run_alone(&mut control, Instant::ZERO + idle);
    assert_eq!(wakes, control_wakes + 1, "{wakes} wake-ups");
    let (events, _) = run_alone(&mut s, Instant::ZERO + Duration::from_secs(300));
    assert!(events.is_empty(), "paused once: {events:?}");
}

#[test]
fn a_seed_that_keeps_uploading_is_not_idle_and_stops_after_its_last_upload() {
    let idle = Duration::from_secs(3);
    let mut s = Swarm::new(make_content(512 * KIB, 5), PIECE, 64 * KIB);
    s.config = SessionConfig {
        seed_limits: SeedLimits {
            idle: Limit::Own(idle),
            ..SeedLimits::default()
        },
        ..Swarm::node_config()
    };
    let seed = s.add_seed(Behaviour::Honest);
    s.config = Swarm::node_config();
    let leech = s.add_node(None, Behaviour::Honest);
    s.introduce_to(leech, &[seed]);
    // 512 KiB at 64 KiB/s: about 8 s of steady uploading, far past the idle limit.
    assert!(s.run_until(Duration::from_secs(30), |s| s.is_complete(leech)));
    let done = s.now();
    assert!(
        done > Instant::ZERO + 2 * idle,
        "the download took {done:?}"
    );
    assert!(limit_events(&s, seed).is_empty(), "idle while uploading");
    let t = s.torrent(seed);
    assert_eq!(
        s.session(seed).torrent_state(t),
        Some(TorrentState::Seeding)
    );
    // The leecher is done and asks nothing more: the seed goes idle.
    s.run_until(Duration::from_secs(10), |_| false);
    let events = limit_events(&s, seed);
    assert_eq!(events.len(), 1, "{events:?}");
    let (at, limit) = events[0];
    assert_eq!(limit, SeedLimit::Idle);
    assert!(
        at >= done && at <= done + idle,
        "paused at {at:?}; the last upload was before {done:?}"
    );
}

#[test]
fn a_seeding_time_limit_pauses_and_a_torrents_own_or_unlimited_beats_the_sessions() {
    let session = |secs| SessionConfig {
        seed_limits: SeedLimits {
            seeding_time: Limit::Own(Duration::from_secs(secs)),
            ..SeedLimits::default()
        },
        ..SessionConfig::default()
    };
    let end = Instant::ZERO + Duration::from_secs(300);

    // The session's 20 s.
    let (mut s, t) = lone_seed(session(20), None);
    let (events, _) = run_alone(&mut s, end);
    let at = Instant::ZERO + Duration::from_secs(20);
    assert_eq!(events, vec![(at, SeedLimit::SeedingTime)]);
    assert_eq!(s.torrent_state(t), Some(TorrentState::Paused));

    // The torrent's own 5 s beats the session's 20 s.
    let own = SeedLimits {
        seeding_time: Limit::Own(Duration::from_secs(5)),
        ..SeedLimits::default()
    };
    let (mut s, _) = lone_seed(session(20), Some(own));
    let (events, _) = run_alone(&mut s, end);
    let at = Instant::ZERO + Duration::from_secs(5);
    assert_eq!(events, vec![(at, SeedLimit::SeedingTime)]);

    // "Unlimited" for the torrent beats the session's 5 s.
    let unlimited = SeedLimits {
        seeding_time: Limit::Unlimited,
        ..SeedLimits::default()
    };
    let (mut s, t) = lone_seed(session(5), Some(unlimited));
    let (events, _) = run_alone(&mut s, end);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(s.torrent_state(t), Some(TorrentState::Seeding));

    // A resume counts afresh: paused at 20 s, resumed at 100 s, paused again at 120 s.
    let (mut s, t) = lone_seed(session(20), None);
    let (events, _) = run_alone(&mut s, Instant::ZERO + Duration::from_secs(100));
    assert_eq!(events.len(), 1);
    let resumed = Instant::ZERO + Duration::from_secs(100);
    s.resume_torrent(t, resumed).expect("resume");
    assert_eq!(s.torrent_state(t), Some(TorrentState::Seeding));
    let (events, _) = run_alone(&mut s, end);
    assert_eq!(
        events,
        vec![(resumed + Duration::from_secs(20), SeedLimit::SeedingTime)]
    );
}

#[test]
fn a_limit_lowered_below_what_was_seeded_pauses_within_the_call() {
    let (mut s, t) = lone_seed(SessionConfig::default(), None);
    let (events, _) = run_alone(&mut s, Instant::ZERO + Duration::from_secs(30));
    assert!(events.is_empty());
    let now = Instant::ZERO + Duration::from_secs(30);
    let ten = SeedLimits {
        seeding_time: Limit::Own(Duration::from_secs(10)),
        ..SeedLimits::default()
    };
    s.set_seed_limits(None, ten, now).expect("set");
    assert_eq!(s.torrent_state(t), Some(TorrentState::Paused));
    let reached: Vec<_> = drain(&mut s)
        .into_iter()
        .filter(|a| {
            matches!(
                a,
                unchoke_core::session::Action::Event(Event::SeedLimitReached {
                    limit: SeedLimit::SeedingTime,
                    ..
                })
            )
        })
        .collect();
    assert_eq!(reached.len(), 1);
}

#[test]
fn what_earlier_runs_uploaded_counts_toward_the_ratio_but_is_not_announced() {
    // A lone seed of 64 KiB with a ratio limit of 2: nothing uploaded in this run.
    let (mut s, t) = lone_seed(SessionConfig::default(), Some(ratio(2.0)));
    let now = Instant::ZERO + Duration::from_secs(1);
    s.handle_timeout(now);
    drain(&mut s);
    assert_eq!(s.torrent_state(t), Some(TorrentState::Seeding));
    // 100 KiB uploaded before: ratio 100/64 < 2, it seeds on; the stats say both.
    let earlier = TransferTotals {
        uploaded: 100 * 1024,
        downloaded: 0,
    };
    s.set_earlier_transfers(t, earlier, now)
        .expect("known torrent");
    assert_eq!(s.torrent_state(t), Some(TorrentState::Seeding));
    let st = s.stats(t, now).expect("stats");
    assert_eq!((st.uploaded, st.uploaded_ever), (0, 100 * 1024));
    assert!((s.seed_ratio(t).expect("ratio") - 100.0 / 64.0).abs() < 1e-9);
    // 128 KiB before: the limit is reached within the call.
    let earlier = TransferTotals {
        uploaded: 128 * 1024,
        downloaded: 0,
    };
    s.set_earlier_transfers(t, earlier, now)
        .expect("known torrent");
    assert_eq!(s.torrent_state(t), Some(TorrentState::Paused));
    let reached = drain(&mut s)
        .into_iter()
        .filter(|a| {
            matches!(
                a,
                unchoke_core::session::Action::Event(Event::SeedLimitReached {
                    limit: SeedLimit::Ratio,
                    ..
                })
            )
        })
        .count();
    assert_eq!(reached, 1);
    assert_eq!(
        s.set_earlier_transfers(TorrentId(999), earlier, now),
        Err(SeedLimitsError::UnknownTorrent)
    );
}
