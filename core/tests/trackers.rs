//! The session's tracker lifecycle, deterministically: announces carry the right events and
//! counters, answers become peers to dial, a whole swarm finds itself through a tracker,
//! and our own address is never dialled.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use unchoke_core::session::{
    Action, Direction, EncryptionPolicy, Event, Session, SessionConfig, TorrentId,
};
use unchoke_core::time::Instant;
use unchoke_core::tracker::server::{ServerConfig, TrackerServer};
use unchoke_core::tracker::{AnnounceEvent, AnnounceRequest, AnnounceResponse, TrackerFailure};
use unchoke_core::wire::{Handshake, Reserved};
use unchoke_sim::lab::{Behaviour, Swarm, make_content, make_metainfo};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
const URL: &str = "http://127.0.0.1:6969/announce";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// Drains a session's actions.
fn drain(s: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

fn announces(actions: &[Action]) -> Vec<(String, AnnounceRequest)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Announce { url, request, .. } => Some((url.clone(), request.clone())),
            _ => None,
        })
        .collect()
}

fn connects(actions: &[Action]) -> Vec<SocketAddr> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Connect { addr, .. } => Some(*addr),
            _ => None,
        })
        .collect()
}

fn leecher_session(content_len: usize) -> (Session, TorrentId) {
    let metainfo = make_metainfo(&make_content(content_len, 9), 16 * KIB as u32);
    let config = SessionConfig {
        listen_port: 7000,
        encryption: EncryptionPolicy::Disable,
        ..SessionConfig::default()
    };
    let mut s = Session::new(config, 42, Instant::ZERO);
    let t = s
        .add_torrent(&metainfo, None, Instant::ZERO)
        .expect("add torrent");
    s.handle_timeout(Instant::ZERO);
    (s, t)
}

fn reply(peers: &[SocketAddr]) -> AnnounceResponse {
    AnnounceResponse {
        interval: 120,
        peers: peers.to_vec(),
        ..AnnounceResponse::default()
    }
}

#[test]
fn adding_a_torrent_announces_started_with_its_counters() {
    let (mut s, _) = leecher_session(100_000);
    let sent = announces(&drain(&mut s));
    assert_eq!(sent.len(), 1, "one announce at once: {sent:?}");
    let (url, req) = &sent[0];
    assert_eq!(url, URL);
    assert_eq!(req.event, AnnounceEvent::Started);
    assert_eq!(req.left, 100_000);
    assert_eq!(req.port, 7000);
    assert_eq!(req.peer_id, s.peer_id());
    assert_eq!(req.numwant, Some(80));
}

#[test]
fn trackers_set_right_after_adding_replace_the_metainfo_ones() {
    let metainfo = make_metainfo(&make_content(50_000, 3), 16 * KIB as u32);
    let mut s = Session::new(
        SessionConfig {
            encryption: EncryptionPolicy::Disable,
            ..SessionConfig::default()
        },
        1,
        Instant::ZERO,
    );
    let t = s
        .add_torrent(&metainfo, None, Instant::ZERO)
        .expect("add torrent");
    s.set_trackers(t, Vec::new(), Instant::ZERO);
    s.handle_timeout(Instant::ZERO + Duration::from_secs(5));
    assert!(
        announces(&drain(&mut s)).is_empty(),
        "no trackers: no announce"
    );
    let elsewhere = "http://127.0.0.1:7000/announce".to_string();
    s.set_trackers(t, vec![vec![elsewhere.clone()]], Instant::ZERO);
    let sent = announces(&drain(&mut s));
    assert_eq!(sent.len(), 1, "announced at once: {sent:?}");
    assert_eq!(sent[0].0, elsewhere);
    assert_eq!(s.trackers(t), vec![vec![elsewhere]]);
}

#[test]
fn peers_from_the_tracker_are_dialled_and_the_next_announce_waits_for_the_interval() {
    let (mut s, t) = leecher_session(100_000);
    drain(&mut s);
    let peers = [addr("127.0.0.5:6881"), addr("127.0.0.6:6881")];
    s.announce_done(t, URL, Ok(reply(&peers)), Instant::ZERO);
    let actions = drain(&mut s);
    // Both dialled (in a random order: candidates are picked at random).
    let mut dialled = connects(&actions);
    dialled.sort();
    assert_eq!(dialled, peers);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Event(Event::TrackerReply { peers: 2, .. })))
    );
    let mut now = Instant::ZERO;
    for _ in 0..119 {
        now += Duration::from_secs(1);
        s.handle_timeout(now);
    }
    assert!(announces(&drain(&mut s)).is_empty(), "nothing before 120 s");
    now += Duration::from_secs(1);
    s.handle_timeout(now);
    let next = announces(&drain(&mut s));
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].1.event, AnnounceEvent::None);
}

#[test]
fn a_failing_tracker_is_reported_and_retried_with_back_off() {
    let (mut s, t) = leecher_session(100_000);
    drain(&mut s);
    s.announce_done(
        t,
        URL,
        Err(TrackerFailure::Io("connection refused".into())),
        Instant::ZERO,
    );
    let actions = drain(&mut s);
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Event(Event::TrackerError { message, .. }) if message == "tracker connection failed: connection refused"
    )));
    assert!(announces(&actions).is_empty(), "the only tracker backs off");
    let mut retried_at = None;
    for sec in 1..=20 {
        let now = Instant::ZERO + Duration::from_secs(sec);
        s.handle_timeout(now);
        if let Some((_, req)) = announces(&drain(&mut s)).first() {
            assert_eq!(req.event, AnnounceEvent::Started, "still owed a started");
            retried_at = Some(sec);
            break;
        }
    }
    assert_eq!(retried_at, Some(15));
}

#[test]
fn our_own_address_is_never_dialled() {
    let (mut s, t) = leecher_session(100_000);
    drain(&mut s);
    let own = addr("127.0.0.9:7000");
    s.add_own_address(own);
    s.announce_done(t, URL, Ok(reply(&[own])), Instant::ZERO);
    assert!(connects(&drain(&mut s)).is_empty());

    // An address that turns out to be us (our own peer id answers) is learnt.
    let (mut s, t) = leecher_session(100_000);
    drain(&mut s);
    let me = addr("127.0.0.3:7000");
    s.add_peers(t, &[me], Instant::ZERO);
    assert_eq!(connects(&drain(&mut s)), [me]);
    let conn = s.connection_opened(me, Direction::Outbound(t), Instant::ZERO);
    let info_hash = s.stats(t, Instant::ZERO).expect("stats").info_hash;
    let mut hs = BytesMut::new();
    Handshake {
        reserved: Reserved::NONE,
        info_hash,
        peer_id: s.peer_id(),
    }
    .encode(&mut hs);
    s.handle_bytes(conn, &mut hs, Instant::ZERO);
    drain(&mut s);
    s.announce_done(t, URL, Ok(reply(&[me])), Instant::ZERO);
    let later = Instant::ZERO + Duration::from_secs(60);
    s.handle_timeout(later);
    assert!(connects(&drain(&mut s)).is_empty(), "own address redialled");
}

#[test]
fn stop_sends_stopped_once_and_then_nothing() {
    let (mut s, _) = leecher_session(100_000);
    drain(&mut s);
    let now = Instant::ZERO;
    s.stop_announces(now);
    assert!(
        announces(&drain(&mut s)).is_empty(),
        "no stopped owed before the tracker accepted a started"
    );

    let (mut s, t2) = leecher_session(100_000);
    drain(&mut s);
    s.announce_done(t2, URL, Ok(reply(&[])), now);
    drain(&mut s);
    s.stop_announces(now);
    let stopped = announces(&drain(&mut s));
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].1.event, AnnounceEvent::Stopped);
    assert_eq!(stopped[0].1.numwant, Some(0));
    s.stop_announces(now);
    s.handle_timeout(now + Duration::from_secs(3600));
    assert!(announces(&drain(&mut s)).is_empty());
}

#[test]
fn a_swarm_finds_itself_through_the_tracker_alone() {
    let mut s = Swarm::new(make_content(2 * MIB + 777, 5), 64 * KIB as u32, 8 * MIB);
    s.set_tracker(TrackerServer::new(ServerConfig::default(), 3));
    let seed = s.add_seed(Behaviour::Honest);
    let leechers: Vec<usize> = (0..6)
        .map(|_| s.add_node(None, Behaviour::Honest))
        .collect();
    // Nobody is introduced: every address comes from the tracker.
    assert!(s.run_until(Duration::from_secs(600), |s| {
        leechers.iter().all(|&l| s.is_complete(l))
    }));
    s.settle();
    for &l in &leechers {
        assert!(s.disk_matches(l), "node {l} has the wrong bytes");
        let events: Vec<AnnounceEvent> = s
            .announces()
            .iter()
            .filter(|(_, n, _, _)| *n == l)
            .map(|(_, _, _, r)| r.event)
            .collect();
        assert_eq!(events.first(), Some(&AnnounceEvent::Started));
        assert_eq!(
            events
                .iter()
                .filter(|e| **e == AnnounceEvent::Completed)
                .count(),
            1,
            "node {l}: {events:?}"
        );
        let last = s
            .announces()
            .iter()
            .rfind(|(_, n, _, _)| *n == l)
            .map(|(_, _, _, r)| r.clone())
            .expect("announced");
        assert_eq!(last.left, 0, "the completed announce says nothing is left");
    }
    let seed_events: Vec<AnnounceEvent> = s
        .announces()
        .iter()
        .filter(|(_, n, _, _)| *n == seed)
        .map(|(_, _, _, r)| r.event)
        .collect();
    assert_eq!(seed_events.first(), Some(&AnnounceEvent::Started));
    assert!(!seed_events.contains(&AnnounceEvent::Completed));
    // The leechers traded among themselves, not only with the seed.
    let leecher_upload: u64 = leechers
        .iter()
        .map(|&l| {
            s.session(l)
                .stats(s.torrent(l), s.now())
                .expect("stats")
                .uploaded
        })
        .sum();
    assert!(
        leecher_upload > 0,
        "peers found each other only via the seed?"
    );
}

#[test]
fn a_tracker_flooding_peers_cannot_grow_memory() {
    let (mut s, t) = leecher_session(100_000);
    drain(&mut s);
    let flood: Vec<SocketAddr> = (0..100_000u32)
        .map(|i| SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881)))
        .collect();
    s.announce_done(t, URL, Ok(reply(&flood)), Instant::ZERO);
    drain(&mut s);
    let config = SessionConfig {
        encryption: EncryptionPolicy::Disable,
        ..SessionConfig::default()
    };
    let stats = s.stats(t, Instant::ZERO).expect("stats");
    // One answer gives at most `max_peers_per_announce` of its peers.
    assert_eq!(stats.known_peers, config.max_peers_per_announce);
    // Fresh floods, answer after answer, stop at `max_candidates`.
    for round in 1..10 {
        let now = Instant::from_secs(round * 3600);
        s.handle_timeout(now);
        let due = announces(&drain(&mut s));
        assert_eq!(due.len(), 1, "round {round}: {due:?}");
        let start = round as usize * 10_000;
        s.announce_done(t, URL, Ok(reply(&flood[start..start + 10_000])), now);
        drain(&mut s);
    }
    let stats = s.stats(t, Instant::ZERO).expect("stats");
    assert_eq!(stats.known_peers, config.max_candidates);
}

#[test]
fn dialling_stops_short_of_the_limit_to_leave_slots_for_peers_that_dial_us() {
    let metainfo = make_metainfo(&make_content(100_000, 9), 16 * KIB as u32);
    let config = SessionConfig {
        max_peers_per_torrent: 12,
        inbound_slots: 4,
        max_connecting: 100,
        encryption: EncryptionPolicy::Disable,
        ..SessionConfig::default()
    };
    let mut s = Session::new(config, 42, Instant::ZERO);
    let t = s
        .add_torrent(&metainfo, None, Instant::ZERO)
        .expect("add torrent");
    drain(&mut s);
    let peers: Vec<SocketAddr> = (1..=20)
        .map(|i| addr(&format!("127.0.0.{i}:6881")))
        .collect();
    s.add_peers(t, &peers, Instant::ZERO);
    let dialled = connects(&drain(&mut s));
    assert_eq!(
        dialled.len(),
        8,
        "12 slots less 4 kept for inbound: {dialled:?}"
    );
    // A random choice of the 20, not the 8 lowest addresses.
    assert_ne!(dialled.iter().max(), Some(&peers[7]), "{dialled:?}");
}
