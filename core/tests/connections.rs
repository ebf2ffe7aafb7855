//! Connection policy decided by the session, in virtual time: a peer that stops reading is
//! dropped after the stated bound while the others complete, uploads wait for the socket
//! instead of piling up, the inbound caps refuse extra connections, a dial not reported
//! by its deadline is failed with the time-out reason, and every peer event appears once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use unchoke_core::session::{
    Action, ConnectFailure, Direction, DisconnectReason, EncryptionPolicy, Event, PeerGone,
    Session, SessionConfig,
};
use unchoke_core::time::Instant;
use unchoke_sim::lab::{Behaviour, Swarm, make_content, make_metainfo};

const KIB: usize = 1024;
/// The old harness's 10 ms step: how far before the deaf peer stopped reading its socket may
/// have taken its last bytes.
const STEP: Duration = Duration::from_millis(10);

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], port))
}

/// A remote peer's handshake for `metainfo`'s torrent, with BEP 6 fast.
fn fast_handshake(metainfo: &unchoke_core::metainfo::Metainfo) -> bytes::BytesMut {
    let mut buf = bytes::BytesMut::new();
    unchoke_core::wire::Handshake {
        reserved: unchoke_core::wire::Reserved::NONE.with_fast(),
        info_hash: metainfo.info_hash,
        peer_id: unchoke_core::wire::PeerId([7; 20]),
    }
    .encode(&mut buf);
    buf
}

fn drain(s: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

#[test]
fn a_peer_that_stops_reading_is_dropped_after_the_stall_bound_while_the_others_complete() {
    let mut s = Swarm::new(make_content(2 * 1024 * KIB, 7), 64 * KIB as u32, 256 * KIB);
    s.config.send_accounting = true;
    s.config.peer_events = true;
    s.config.upload_read_ahead = 64 * KIB;
    let stall = s.config.send_stall_timeout;
    let seed = s.add_seed(Behaviour::Honest);
    let leechers: Vec<usize> = (0..3)
        .map(|_| s.add_node(None, Behaviour::Honest))
        .collect();
    let deaf = leechers[2];
    for &l in &leechers {
        s.introduce_to(l, &[seed]);
    }
    // The deaf peer downloads normally for a while, then stops reading its socket (it stays
    // online and keeps talking, so nothing but the send side can notice).
    assert!(s.run_until(Duration::from_secs(60), |s| {
        s.session(deaf)
            .stats(s.torrent(deaf), s.now())
            .is_some_and(|st| st.pieces_have >= 2)
    }));
    s.stop_reading(deaf);
    let stopped = s.now();
    // Memory for the deaf peer stays bounded by the read-ahead (plus the one block that
    // may cross it, and small messages such as rejects, bounded by `max_queued_uploads`)
    // while it is connected: uploads wait instead of queueing.
    let bound = 64 * KIB + 16 * KIB + 16 * KIB;
    let mut most_unsent = 0;
    let others = [leechers[0], leechers[1]];
    let done = s.run_until(Duration::from_secs(600), |s| {
        let torrent = s.torrent(seed);
        for conn in s.session(seed).connections(torrent) {
            let unsent = s.session(seed).unsent_bytes(conn).unwrap_or(0);
            most_unsent = most_unsent.max(unsent);
        }
        others.iter().all(|&i| s.is_complete(i))
            && s.disconnects()
                .iter()
                .any(|(_, node, why)| *node == seed && why.contains("does not read"))
    });
    assert!(done, "the others complete and the deaf peer is dropped");
    for &i in &others {
        assert!(s.disk_matches(i));
    }
    assert!(!s.is_complete(deaf));
    assert!(most_unsent <= bound, "{most_unsent} bytes unsent > {bound}");
    let slow: Vec<Instant> = s
        .disconnects()
        .iter()
        .filter(|(_, node, why)| *node == seed && *why == DisconnectReason::SlowReader.to_string())
        .map(|(at, _, _)| *at)
        .collect();
    assert_eq!(slow.len(), 1, "only the deaf peer is a slow reader");
    // The bound runs from the last bytes its socket took: at most one step before it
    // stopped reading.
    let after = slow[0] - stopped;
    assert!(
        after + STEP >= stall && after <= stall + Duration::from_secs(15),
        "dropped {after:?} after it stopped reading (bound {stall:?})"
    );
    // The seed tells its user once, with the reason.
    let deaf_addr = s.addr(deaf);
    let told: Vec<&PeerGone> = s
        .events(seed)
        .filter_map(|(_, e)| match e {
            Event::PeerDisconnected { addr, reason } if *addr == deaf_addr => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(told, vec![&PeerGone::Closed(DisconnectReason::SlowReader)]);
}

#[test]
fn the_unsent_cap_drops_a_connection_at_the_next_timer() {
    let metainfo = make_metainfo(&make_content(100_000, 3), 16 * KIB as u32);
    let config = SessionConfig {
        send_accounting: true,
        max_unsent_bytes: 50,
        encryption: EncryptionPolicy::Disable,
        ..SessionConfig::default()
    };
    let mut s = Session::new(config, 1, Instant::ZERO);
    let t = s.add_torrent(&metainfo, None, Instant::ZERO).expect("add");
    let c = s.connection_opened(addr(9, 6881), Direction::Outbound(t), Instant::ZERO);
    // The 68-byte handshake goes out; a socket that took 20 leaves 48 unsent: kept.
    let first = drain(&mut s);
    assert!(
        first
            .iter()
            .any(|a| matches!(a, Action::Send { conn, .. } if *conn == c))
    );
    s.handle_sent(c, 20, Instant::ZERO);
    assert_eq!(s.unsent_bytes(c), Some(48));
    assert!(
        !drain(&mut s)
            .iter()
            .any(|a| matches!(a, Action::Disconnect { .. }))
    );
    // The peer's handshake makes us say `have none` (5 bytes): 53 unsent, over the cap,
    // dropped as a slow reader at the next timer.
    let mut buf = fast_handshake(&metainfo);
    s.handle_bytes(c, &mut buf, Instant::ZERO);
    let _ = drain(&mut s);
    assert_eq!(s.unsent_bytes(c), Some(53));
    s.handle_timeout(Instant::ZERO + Duration::from_secs(1));
    let actions = drain(&mut s);
    assert!(
        actions.iter().any(|a| matches!(a,
            Action::Disconnect { conn, reason: DisconnectReason::SlowReader } if *conn == c)),
        "{actions:?}"
    );
}

#[test]
fn the_inbound_caps_refuse_extra_connections_as_they_open() {
    let config = SessionConfig {
        peer_events: true,
        max_inbound_handshaking: 2,
        max_inbound: 3,
        encryption: EncryptionPolicy::Disable,
        ..SessionConfig::default()
    };
    let mut s = Session::new(config, 1, Instant::ZERO);
    let now = Instant::ZERO;
    let a = s.connection_opened(addr(2, 1), Direction::Inbound, now);
    let b = s.connection_opened(addr(3, 1), Direction::Inbound, now);
    // A third while two are still handshaking: refused, and no event for it.
    let c = s.connection_opened(addr(4, 1), Direction::Inbound, now);
    let actions = drain(&mut s);
    let connected: Vec<SocketAddr> = actions
        .iter()
        .filter_map(|x| match x {
            Action::Event(Event::PeerConnected {
                addr,
                inbound: true,
                torrent: None,
            }) => Some(*addr),
            _ => None,
        })
        .collect();
    assert_eq!(connected, vec![addr(2, 1), addr(3, 1)]);
    let refused: Vec<_> = actions
        .iter()
        .filter_map(|x| match x {
            Action::Disconnect { conn, reason } => Some((*conn, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(refused, vec![(c, DisconnectReason::TooManyConnections)]);
    assert!(
        !actions
            .iter()
            .any(|x| matches!(x, Action::Event(Event::PeerDisconnected { .. })))
    );
    // One leaves: room again.
    s.connection_closed(a, now);
    let d = s.connection_opened(addr(5, 1), Direction::Inbound, now);
    assert!(
        !drain(&mut s)
            .iter()
            .any(|x| matches!(x, Action::Disconnect { conn, .. } if *conn == d))
    );
    let _ = b;
}

#[test]
fn a_dial_not_reported_by_its_deadline_fails_with_the_time_out_reason() {
    let metainfo = make_metainfo(&make_content(100_000, 3), 16 * KIB as u32);
    let events = SessionConfig {
        peer_events: true,
        encryption: EncryptionPolicy::Disable,
        ..SessionConfig::default()
    };
    let mut s = Session::new(events, 1, Instant::ZERO);
    let t = s.add_torrent(&metainfo, None, Instant::ZERO).expect("add");
    let peer = addr(9, 6881);
    s.add_peers(t, &[peer], Instant::ZERO);
    assert!(
        drain(&mut s)
            .iter()
            .any(|a| matches!(a, Action::Connect { addr, .. } if *addr == peer))
    );
    let deadline = Instant::ZERO + Duration::from_secs(10);
    assert!(s.poll_timeout().is_some_and(|d| d <= deadline));
    // Virtual time: step to each deadline the session asks for, up to just before 10 s.
    let mut guard = 0;
    while let Some(next) = s.poll_timeout().filter(|d| *d < deadline) {
        guard += 1;
        assert!(guard < 100, "bounded");
        s.handle_timeout(next);
        assert!(!drain(&mut s).iter().any(|a| matches!(
            a,
            Action::CancelConnect { .. } | Action::Event(Event::ConnectFailed { .. })
        )));
    }
    s.handle_timeout(deadline);
    let actions = drain(&mut s);
    assert!(actions.contains(&Action::CancelConnect {
        torrent: t,
        addr: peer
    }));
    let failed: Vec<String> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(Event::ConnectFailed { addr, reason, .. }) if *addr == peer => {
                Some(reason.to_string())
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec!["timed out after 10 s".to_string()]);
    // The driver's late report of the same dial is not counted or told twice.
    s.handle_connect_error(t, peer, ConnectFailure::Refused, deadline);
    assert!(
        !drain(&mut s)
            .iter()
            .any(|a| matches!(a, Action::Event(Event::ConnectFailed { .. })))
    );
}

#[test]
fn a_refused_dial_is_reported_once_with_the_drivers_reason() {
    let metainfo = make_metainfo(&make_content(100_000, 3), 16 * KIB as u32);
    let events = SessionConfig {
        peer_events: true,
        encryption: EncryptionPolicy::Disable,
        ..SessionConfig::default()
    };
    let mut s = Session::new(events, 1, Instant::ZERO);
    let t = s.add_torrent(&metainfo, None, Instant::ZERO).expect("add");
    let peer = addr(9, 6881);
    s.add_peers(t, &[peer], Instant::ZERO);
    let _ = drain(&mut s);
    s.handle_connect_error(t, peer, ConnectFailure::Refused, Instant::ZERO);
    let reasons: Vec<String> = drain(&mut s)
        .iter()
        .filter_map(|a| match a {
            Action::Event(Event::ConnectFailed { reason, .. }) => Some(reason.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, vec!["connection refused".to_string()]);
    // Its deadline is gone with it: no time-out later.
    s.handle_timeout(Instant::ZERO + Duration::from_secs(11));
    assert!(
        !drain(&mut s)
            .iter()
            .any(|a| matches!(a, Action::CancelConnect { .. }))
    );
}

#[test]
fn every_connection_is_announced_once_and_its_end_once() {
    let mut s = Swarm::new(make_content(512 * KIB, 9), 32 * KIB as u32, 1024 * KIB);
    s.config.peer_events = true;
    let seed = s.add_seed(Behaviour::Honest);
    let a = s.add_node(None, Behaviour::Honest);
    let b = s.add_node(None, Behaviour::Honest);
    s.introduce(a);
    s.introduce(b);
    assert!(s.run_until(Duration::from_secs(120), |s| {
        s.is_complete(a) && s.is_complete(b)
    }));
    // Once all are seeds every connection ends (nothing left to trade).
    assert!(s.run_until(Duration::from_secs(60), |s| {
        (0..3).all(|i| s.session(i).connections(s.torrent(i)).is_empty())
    }));
    s.settle();
    for i in [seed, a, b] {
        let mut up: BTreeMap<SocketAddr, i32> = BTreeMap::new();
        for (_, e) in s.events(i) {
            match e {
                // Two peers dialling each other at once are briefly up twice.
                Event::PeerConnected { addr, .. } => *up.entry(*addr).or_default() += 1,
                Event::PeerDisconnected { addr, .. } => {
                    let open = up.entry(*addr).or_default();
                    assert!(*open >= 1, "node {i}: {addr} ended without being up");
                    *open -= 1;
                }
                _ => {}
            }
        }
        assert!(!up.is_empty(), "node {i} saw peers");
        assert!(up.values().all(|&n| n == 0), "node {i}: {up:?}");
    }
}

#[test]
fn reads_answered_inside_the_action_loop_still_respect_the_read_ahead_bound() {
    // A driver with an in-memory disk answers each `ReadBlock` as soon as it sees it,
    // inside its `poll_action` loop. The block just read is then still in the outbox when
    // the next held read could be released: it must count against the bound all the same.
    let content = make_content(1024 * KIB, 5);
    let metainfo = make_metainfo(&content, 64 * KIB as u32);
    let pieces = content.len().div_ceil(64 * KIB) as u32;
    let config = SessionConfig {
        send_accounting: true,
        upload_read_ahead: 64 * KIB,
        encryption: EncryptionPolicy::Disable,
        ..SessionConfig::default()
    };
    let read_ahead = config.upload_read_ahead;
    let mut s = Session::new(config, 1, Instant::ZERO);
    s.add_torrent(
        &metainfo,
        Some(unchoke_core::bitfield::Bitfield::full(pieces)),
        Instant::ZERO,
    )
    .expect("add");
    let c = s.connection_opened(addr(9, 6881), Direction::Inbound, Instant::ZERO);
    let mut buf = fast_handshake(&metainfo);
    unchoke_core::wire::Message::Interested.encode(&mut buf);
    s.handle_bytes(c, &mut buf, Instant::ZERO);
    // The first choke round unchokes the only interested peer.
    let mut now = Instant::ZERO;
    // Nothing is ever reported sent: all that was handed out stays unsent.
    let drive = |s: &mut Session, now: Instant| {
        while let Some(action) = s.poll_action() {
            if let Action::ReadBlock { conn, block, .. } = action {
                let at = block.index as usize * 64 * KIB + block.begin as usize;
                let data = bytes::Bytes::copy_from_slice(&content[at..at + block.length as usize]);
                s.disk_read_done(conn, block, Ok(data), now);
            }
        }
    };
    for _ in 0..12 {
        now += Duration::from_secs(1);
        s.handle_timeout(now);
        drive(&mut s, now);
    }
    // 48 requests, 768 KiB: far past the 64 KiB bound.
    let mut buf = bytes::BytesMut::new();
    for piece in 0..12 {
        for block in 0..4 {
            unchoke_core::wire::Message::Request(unchoke_core::wire::BlockRequest {
                index: piece,
                begin: block * 16 * KIB as u32,
                length: 16 * KIB as u32,
            })
            .encode(&mut buf);
        }
    }
    s.handle_bytes(c, &mut buf, now);
    drive(&mut s, now);
    let unsent = s.unsent_bytes(c).unwrap_or(0);
    assert!(
        unsent > 0,
        "the unchoked peer's requests were read and handed out"
    );
    // The bound, plus the one block that may cross it (and the small messages sent).
    assert!(
        unsent <= read_ahead + 16 * KIB + KIB,
        "{unsent} bytes handed out unsent with a read-ahead of {read_ahead}"
    );
}
