//! The give-up rule in virtual time: an incomplete torrent with no peer, no address left to
//! dial, no usable tracker and no DHT says so once, after `give_up_after`, with the reason;
//! a usable tracker, a DHT that may find peers or a connected peer keeps it from giving up. Also: a refused
//! peer is given up in tens of seconds, and unsupported trackers are named once each.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use unchoke_core::dht::DhtConfig;
use unchoke_core::session::{
    Action, Direction, Event, FailedPeer, GiveUpReason, Session, SessionConfig, TorrentId,
};
use unchoke_core::time::Instant;
use unchoke_core::wire::{Handshake, PeerId, Reserved};
use unchoke_sim::lab::{make_content, make_metainfo};

/// Longest a test runs in virtual time; every loop below is bounded by it.
const HORIZON: Duration = Duration::from_secs(600);

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// A session holding one incomplete torrent whose trackers are `tiers`.
fn session(config: SessionConfig, tiers: Vec<Vec<String>>) -> (Session, TorrentId) {
    let metainfo = make_metainfo(&make_content(100_000, 3), 16 * 1024);
    let mut s = Session::new(config, 7, Instant::ZERO);
    let t = s
        .add_torrent(&metainfo, None, Instant::ZERO)
        .expect("add torrent");
    s.set_trackers(t, tiers, Instant::ZERO);
    (s, t)
}

/// What a run saw, each with the virtual time it happened at.
#[derive(Default)]
struct Seen {
    connects: Vec<(Instant, SocketAddr)>,
    announces: Vec<(Instant, String)>,
    gave_up: Vec<(Instant, GiveUpReason)>,
    unsupported: Vec<(String, String)>,
}

/// Drives `s` from `from` to `until` as a driver would (to each deadline, then
/// `handle_timeout`), refusing every dial at once and failing every announce.
fn run(s: &mut Session, from: Instant, until: Instant, seen: &mut Seen) {
    let mut now = from;
    loop {
        while let Some(action) = s.poll_action() {
            match action {
                Action::Connect { torrent, addr } => {
                    seen.connects.push((now, addr));
                    s.connect_failed(torrent, addr, now);
                }
                Action::Announce { torrent, url, .. } => {
                    seen.announces.push((now, url.clone()));
                    s.announce_done(
                        torrent,
                        &url,
                        Err(unchoke_core::tracker::TrackerFailure::Io(
                            "connection refused".into(),
                        )),
                        now,
                    );
                }
                Action::Event(Event::GaveUp { reason, .. }) => seen.gave_up.push((now, reason)),
                Action::Event(Event::TrackerUnsupported { url, scheme, .. }) => {
                    seen.unsupported.push((url, scheme));
                }
                _ => {}
            }
        }
        let next = s.poll_timeout().unwrap_or(until).max(now);
        if next >= until {
            return;
        }
        // A deadline at `now` still moves time on: the loop is bounded by `until`.
        now = next.max(now + Duration::from_millis(1));
        s.handle_timeout(now);
    }
}

fn at(secs: u64) -> Instant {
    Instant::ZERO + Duration::from_secs(secs)
}

#[test]
fn a_refused_peer_is_given_up_within_tens_of_seconds_then_the_torrent_gives_up_once() {
    let (mut s, t) = session(SessionConfig::default(), Vec::new());
    let peer = addr("127.0.0.1:1");
    s.add_peers(t, &[peer], Instant::ZERO);
    let mut seen = Seen::default();
    run(&mut s, Instant::ZERO, Instant::ZERO + HORIZON, &mut seen);

    let tries = SessionConfig::default().max_connect_failures;
    assert_eq!(seen.connects.len(), tries as usize, "{:?}", seen.connects);
    let last_dial = seen.connects.last().expect("dialled").0;
    assert!(
        last_dial - Instant::ZERO <= Duration::from_secs(20),
        "a refusing peer must be given up in tens of seconds, last dial at {last_dial:?}"
    );
    assert_eq!(seen.gave_up.len(), 1, "one give-up: {:?}", seen.gave_up);
    let (when, reason) = &seen.gave_up[0];
    let grace = SessionConfig::default().give_up_after;
    assert!(
        *when - last_dial >= grace && *when - last_dial <= grace + Duration::from_secs(1),
        "the give-up comes one grace period after the last failure: {when:?} vs {last_dial:?}"
    );
    assert_eq!(
        reason,
        &GiveUpReason::PeersFailed {
            peers: vec![FailedPeer {
                addr: peer,
                failures: tries,
                connected: false,
            }],
            total: 1,
            unsupported_schemes: Vec::new(),
        }
    );
}

#[test]
fn peer_retries_are_configurable() {
    let config = SessionConfig {
        max_connect_failures: 5,
        ..SessionConfig::default()
    };
    let (mut s, t) = session(config, Vec::new());
    s.add_peers(t, &[addr("127.0.0.1:1")], Instant::ZERO);
    let mut seen = Seen::default();
    run(&mut s, Instant::ZERO, Instant::ZERO + HORIZON, &mut seen);
    assert_eq!(seen.connects.len(), 5);
    assert!(
        matches!(&seen.gave_up[..], [(_, GiveUpReason::PeersFailed { peers, .. })] if peers[0].failures == 5),
        "{:?}",
        seen.gave_up
    );
}

#[test]
fn nothing_given_gives_up_after_the_grace_period_saying_so() {
    let (mut s, _) = session(SessionConfig::default(), Vec::new());
    let mut seen = Seen::default();
    run(&mut s, Instant::ZERO, at(9), &mut seen);
    assert!(seen.gave_up.is_empty(), "not before the grace period");
    run(&mut s, at(9), at(120), &mut seen);
    assert_eq!(seen.gave_up.len(), 1, "{:?}", seen.gave_up);
    assert_eq!(seen.gave_up[0].1, GiveUpReason::NothingGiven);
    assert!(seen.gave_up[0].0 <= at(12), "{:?}", seen.gave_up[0].0);
}

#[test]
fn only_unsupported_trackers_are_named_once_never_announced_and_give_up() {
    let tiers = vec![
        vec!["wss://t.example/announce".to_string()],
        vec![
            "ftp://f.example/x".to_string(),
            "WSS://u.example/a".to_string(),
        ],
    ];
    let (mut s, t) = session(SessionConfig::default(), tiers);
    let mut seen = Seen::default();
    run(&mut s, Instant::ZERO, Instant::ZERO + HORIZON, &mut seen);
    assert!(seen.announces.is_empty(), "{:?}", seen.announces);
    let named: BTreeSet<(String, String)> = seen.unsupported.iter().cloned().collect();
    assert_eq!(
        seen.unsupported.len(),
        3,
        "each once: {:?}",
        seen.unsupported
    );
    assert_eq!(
        named,
        BTreeSet::from([
            ("wss://t.example/announce".into(), "wss".into()),
            ("ftp://f.example/x".into(), "ftp".into()),
            ("WSS://u.example/a".into(), "wss".into()),
        ])
    );
    assert!(s.trackers(t).is_empty(), "{:?}", s.trackers(t));
    assert_eq!(seen.gave_up.len(), 1, "{:?}", seen.gave_up);
    assert_eq!(
        seen.gave_up[0].1,
        GiveUpReason::TrackersUnsupported {
            schemes: vec!["ftp".into(), "wss".into()]
        }
    );
}

#[test]
fn a_usable_tracker_among_unsupported_ones_is_announced_to_and_prevents_giving_up() {
    let tiers = vec![
        vec!["wss://t.example/announce".to_string()],
        // HTTP: a UDP tracker's exchange is the session's own (no `Action::Announce`).
        vec!["http://127.0.0.1:6969/announce".to_string()],
    ];
    let (mut s, t) = session(SessionConfig::default(), tiers);
    s.add_peers(t, &[addr("127.0.0.1:1")], Instant::ZERO);
    let mut seen = Seen::default();
    run(&mut s, Instant::ZERO, Instant::ZERO + HORIZON, &mut seen);
    assert!(
        seen.announces
            .iter()
            .all(|(_, u)| u == "http://127.0.0.1:6969/announce"),
        "{:?}",
        seen.announces
    );
    assert!(seen.announces.len() >= 2, "failing tracker retried");
    assert_eq!(seen.unsupported.len(), 1);
    assert!(
        seen.gave_up.is_empty(),
        "a usable tracker may find peers later: {:?}",
        seen.gave_up
    );
}

/// A DHT counts only while it may find peers (it knows a node, or a join is under way):
/// one whose every bootstrap address stayed silent keeps nobody waiting, so the torrent
/// gives up once its peer is given up too (core/tests/dht_join.rs: a DHT that knows a
/// node keeps it waiting).
#[test]
fn a_dht_whose_join_failed_does_not_keep_the_torrent_from_giving_up() {
    let config = SessionConfig {
        dht: Some(DhtConfig::default()),
        ..SessionConfig::default()
    };
    let (mut s, t) = session(config, Vec::new());
    s.dht_bootstrap(&[addr("127.0.0.2:6881")], Instant::ZERO);
    s.add_peers(t, &[addr("127.0.0.1:1")], Instant::ZERO);
    let mut seen = Seen::default();
    run(&mut s, Instant::ZERO, Instant::ZERO + HORIZON, &mut seen);
    assert_eq!(seen.connects.len(), 3, "the peer is given up");
    let last_dial = seen.connects.last().map(|c| c.0).unwrap_or(Instant::ZERO);
    let (gave_up_at, _) = seen.gave_up.first().expect("gave up");
    assert!(*gave_up_at > last_dial, "{gave_up_at:?} vs {last_dial:?}");
}

#[test]
fn a_connected_peer_prevents_giving_up_and_its_leaving_starts_the_grace_period() {
    let metainfo = make_metainfo(&make_content(100_000, 3), 16 * 1024);
    let (mut s, t) = session(SessionConfig::default(), Vec::new());
    let peer = addr("127.0.0.1:7000");
    let conn = s.connection_opened(peer, Direction::Inbound, Instant::ZERO);
    let mut buf = BytesMut::new();
    Handshake {
        reserved: Reserved::NONE,
        info_hash: metainfo.info_hash,
        peer_id: PeerId([9; 20]),
    }
    .encode(&mut buf);
    s.handle_bytes(conn, &mut buf, Instant::ZERO);
    assert_eq!(s.connections(t), vec![conn], "the handshake completed");

    let mut seen = Seen::default();
    // Keep the peer alive (a keep-alive every 60 s) for two minutes.
    let mut now = Instant::ZERO;
    for _ in 0..2 {
        run(&mut s, now, now + Duration::from_secs(60), &mut seen);
        now += Duration::from_secs(60);
        let mut keepalive = BytesMut::from(&[0u8, 0, 0, 0][..]);
        s.handle_bytes(conn, &mut keepalive, now);
    }
    assert_eq!(s.connections(t), vec![conn], "still connected");
    assert!(seen.gave_up.is_empty(), "{:?}", seen.gave_up);

    s.connection_closed(conn, now);
    let left = now;
    run(&mut s, now, now + Duration::from_secs(60), &mut seen);
    assert_eq!(seen.gave_up.len(), 1, "{:?}", seen.gave_up);
    let (when, reason) = &seen.gave_up[0];
    assert!(*when - left >= Duration::from_secs(10), "{when:?}");
    assert!(
        matches!(reason, GiveUpReason::PeersFailed { total: 0, .. }),
        "a peer was there, so this is not 'nothing given': {reason:?}"
    );
}

#[test]
fn a_complete_torrent_never_gives_up() {
    let metainfo = make_metainfo(&make_content(100_000, 3), 16 * 1024);
    let mut s = Session::new(SessionConfig::default(), 7, Instant::ZERO);
    let have = unchoke_core::bitfield::Bitfield::full(metainfo.info.piece_count());
    let t = s
        .add_torrent(&metainfo, Some(have), Instant::ZERO)
        .expect("add");
    s.set_trackers(t, Vec::new(), Instant::ZERO);
    let mut seen = Seen::default();
    run(&mut s, Instant::ZERO, Instant::ZERO + HORIZON, &mut seen);
    assert!(seen.gave_up.is_empty(), "{:?}", seen.gave_up);
}
