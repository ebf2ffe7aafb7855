//! Local service discovery (BEP 14) in virtual time: each non-private torrent is announced
//! when added and every 5 minutes, batched, at most one datagram a second; our own
//! announces are ignored, a flooding sender is rate-limited, a private torrent is never
//! announced, and an announce for our torrent hands `sender IP:announced port` to it. Over
//! IPv6 too: each round goes to every group the driver has a socket for, and an IPv6
//! sender gives an IPv6 peer.

use std::net::{SocketAddr, SocketAddrV6};
use std::time::Duration;

use unchoke_core::InfoHash;
use unchoke_core::lsd::{LsdAnnounce, LsdFamilies, group_v4, group_v6};
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{Action, Event, Session, SessionConfig, TorrentId};
use unchoke_core::time::Instant;
use unchoke_sim::lab::{make_content, make_metainfo};

fn config() -> SessionConfig {
    SessionConfig {
        listen_port: 6881,
        lsd: true,
        ..SessionConfig::default()
    }
}

fn metainfo(seed: u64) -> Metainfo {
    make_metainfo(&make_content(50_000, seed), 16 * 1024)
}

/// Every LSD datagram and LSD event `s` has queued, with `now`.
#[derive(Default, Debug)]
struct Seen {
    /// IPv4 group only (most tests run IPv4 only).
    sent: Vec<(Instant, LsdAnnounce)>,
    /// Every group, with where each went.
    sent_to: Vec<(Instant, SocketAddr, LsdAnnounce)>,
    lsd_peers: Vec<(TorrentId, SocketAddr)>,
    connects: Vec<(TorrentId, SocketAddr)>,
}

fn drain(s: &mut Session, now: Instant, seen: &mut Seen) {
    while let Some(a) = s.poll_action() {
        match a {
            Action::SendLsd { to, bytes } => {
                assert!(to == group_v4() || to == group_v6(), "{to}");
                let text = String::from_utf8(bytes.to_vec()).expect("ASCII");
                assert!(text.contains(&format!("\r\nHost: {to}\r\n")), "{text}");
                let a = LsdAnnounce::parse(&bytes).expect("we send valid announces");
                if to == group_v4() {
                    seen.sent.push((now, a.clone()));
                }
                seen.sent_to.push((now, to, a));
            }
            Action::SendDatagram { .. } => panic!("no DHT, no UDP tracker: no datagram"),
            Action::Event(Event::LsdPeer { torrent, addr }) => seen.lsd_peers.push((torrent, addr)),
            Action::Connect { torrent, addr } => seen.connects.push((torrent, addr)),
            _ => {}
        }
    }
}

/// Drives `s` to each deadline up to `until`, as a driver would.
fn run(s: &mut Session, from: Instant, until: Instant, seen: &mut Seen) {
    let mut now = from;
    drain(s, now, seen);
    while let Some(t) = s.poll_timeout() {
        if t > until {
            break;
        }
        now = now.max(t);
        s.handle_timeout(now);
        drain(s, now, seen);
    }
}

fn hashes(a: &LsdAnnounce) -> Vec<InfoHash> {
    a.info_hashes.clone()
}

#[test]
fn announced_on_add_then_every_five_minutes() {
    let mut s = Session::new(config(), 1, Instant::ZERO);
    let m = metainfo(1);
    s.add_torrent(&m, None, Instant::ZERO).expect("add");
    let mut seen = Seen::default();
    run(
        &mut s,
        Instant::ZERO,
        Instant::from_secs(16 * 60),
        &mut seen,
    );
    let times: Vec<u64> = seen
        .sent
        .iter()
        .map(|(t, _)| t.as_micros() / 1_000_000)
        .collect();
    assert_eq!(times, vec![0, 300, 600, 900], "{seen:?}");
    for (_, a) in &seen.sent {
        assert_eq!(a.port, 6881);
        assert_eq!(hashes(a), vec![m.info_hash]);
        assert!(a.cookie.is_some());
    }
    assert_eq!(s.lsd_stats().expect("on").sent, 4);
}

#[test]
fn many_torrents_are_batched_and_at_most_one_datagram_a_second_goes_out() {
    let mut s = Session::new(config(), 2, Instant::ZERO);
    let mut all = Vec::new();
    for i in 0..40 {
        let m = metainfo(100 + i);
        s.add_torrent(&m, None, Instant::ZERO).expect("add");
        all.push(m.info_hash);
    }
    let mut seen = Seen::default();
    run(&mut s, Instant::ZERO, Instant::from_secs(10), &mut seen);
    // 40 torrents, 16 a datagram: 3 datagrams, a second apart.
    let times: Vec<u64> = seen
        .sent
        .iter()
        .map(|(t, _)| t.as_micros() / 1000)
        .collect();
    assert_eq!(times, vec![0, 1000, 2000], "{seen:?}");
    let mut announced: Vec<InfoHash> = seen.sent.iter().flat_map(|(_, a)| hashes(a)).collect();
    announced.sort();
    all.sort();
    assert_eq!(announced, all);
    for (_, a) in &seen.sent {
        assert!(a.encode(group_v4()).len() <= unchoke_core::lsd::MAX_DATAGRAM);
    }
    // Adding one more right after a send waits for the gap.
    let m = metainfo(999);
    let t = Instant::from_millis(2500);
    s.add_torrent(&m, None, t).expect("add");
    let mut seen = Seen::default();
    s.handle_timeout(t);
    drain(&mut s, t, &mut seen);
    assert!(seen.sent.is_empty(), "sent within the gap: {seen:?}");
    run(&mut s, t, Instant::from_secs(4), &mut seen);
    assert_eq!(seen.sent.len(), 1);
    assert_eq!(seen.sent[0].0, Instant::from_secs(3));
    assert_eq!(hashes(&seen.sent[0].1), vec![m.info_hash]);
}

#[test]
fn a_private_torrent_is_never_announced_nor_given_lsd_peers() {
    let mut s = Session::new(config(), 3, Instant::ZERO);
    let mut m = metainfo(3);
    m.info.private = true;
    let t = s.add_torrent(&m, None, Instant::ZERO).expect("add");
    let mut seen = Seen::default();
    run(
        &mut s,
        Instant::ZERO,
        Instant::from_secs(20 * 60),
        &mut seen,
    );
    assert!(seen.sent.is_empty(), "{seen:?}");
    let other = LsdAnnounce {
        port: 7000,
        info_hashes: vec![m.info_hash],
        cookie: Some("theirs".into()),
    };
    let now = Instant::from_secs(20 * 60);
    s.handle_lsd_datagram(
        "10.0.0.9:6771".parse().expect("addr"),
        &other.encode(group_v4()),
        now,
    );
    drain(&mut s, now, &mut seen);
    assert!(
        seen.lsd_peers.is_empty() && seen.connects.is_empty(),
        "{seen:?}"
    );
    let _ = t;
}

#[test]
fn off_or_without_a_listen_port_nothing_is_sent() {
    for config in [
        SessionConfig {
            lsd: false,
            ..config()
        },
        SessionConfig {
            listen_port: 0,
            ..config()
        },
    ] {
        let mut s = Session::new(config, 4, Instant::ZERO);
        s.add_torrent(&metainfo(4), None, Instant::ZERO)
            .expect("add");
        let mut seen = Seen::default();
        run(&mut s, Instant::ZERO, Instant::from_secs(700), &mut seen);
        assert!(seen.sent.is_empty(), "{seen:?}");
    }
}

#[test]
fn an_announce_for_our_torrent_gives_the_sender_as_a_peer_and_our_own_is_ignored() {
    let mut s = Session::new(config(), 5, Instant::ZERO);
    let m = metainfo(5);
    let t = s.add_torrent(&m, None, Instant::ZERO).expect("add");
    let mut seen = Seen::default();
    run(&mut s, Instant::ZERO, Instant::ZERO, &mut seen);
    let (_, ours) = seen.sent.pop().expect("announced on add");
    let now = Instant::from_millis(10);
    // Our own announce, looped back by the multicast loop: ignored.
    s.handle_lsd_datagram(
        "192.168.1.5:6771".parse().expect("addr"),
        &ours.encode(group_v4()),
        now,
    );
    drain(&mut s, now, &mut seen);
    assert!(
        seen.lsd_peers.is_empty() && seen.connects.is_empty(),
        "{seen:?}"
    );
    assert_eq!(s.lsd_stats().expect("on").own, 1);
    // Another client's: its IP (not the datagram's source port) with the announced port.
    let theirs = LsdAnnounce {
        port: 51413,
        info_hashes: vec![InfoHash([7; 20]), m.info_hash],
        cookie: Some("0123".into()),
    };
    s.handle_lsd_datagram(
        "192.168.1.6:6771".parse().expect("addr"),
        &theirs.encode(group_v4()),
        now,
    );
    drain(&mut s, now, &mut seen);
    let peer: SocketAddr = "192.168.1.6:51413".parse().expect("addr");
    assert_eq!(seen.lsd_peers, vec![(t, peer)]);
    assert_eq!(seen.connects, vec![(t, peer)]);
    // Garbage is counted and ignored.
    s.handle_lsd_datagram(
        "192.168.1.7:6771".parse().expect("addr"),
        b"\xff\x00BT-SEARCH",
        now,
    );
    assert_eq!(s.lsd_stats().expect("on").invalid, 1);
}

#[test]
fn a_flooding_sender_is_rate_limited() {
    let mut s = Session::new(config(), 6, Instant::ZERO);
    let mut ms = Vec::new();
    for i in 0..30 {
        let m = metainfo(600 + i);
        s.add_torrent(&m, None, Instant::ZERO).expect("add");
        ms.push(m);
    }
    let mut seen = Seen::default();
    drain(&mut s, Instant::ZERO, &mut seen);
    let from: SocketAddr = "10.1.1.1:6771".parse().expect("addr");
    let now = Instant::from_secs(1);
    for (i, m) in ms.iter().enumerate() {
        let a = LsdAnnounce {
            port: 2000 + i as u16,
            info_hashes: vec![m.info_hash],
            cookie: None,
        };
        s.handle_lsd_datagram(from, &a.encode(group_v4()), now);
    }
    drain(&mut s, now, &mut seen);
    // The first 10 (the burst) count, the other 20 in the same instant do not.
    assert_eq!(seen.lsd_peers.len(), 10, "{seen:?}");
    let stats = s.lsd_stats().expect("on");
    assert_eq!((stats.received, stats.rate_limited), (30, 20));
    // Another host is not held back by the first one's flood.
    let a = LsdAnnounce {
        port: 9000,
        info_hashes: vec![ms[29].info_hash],
        cookie: None,
    };
    s.handle_lsd_datagram(
        "10.1.1.2:6771".parse().expect("addr"),
        &a.encode(group_v4()),
        now,
    );
    drain(&mut s, now, &mut seen);
    assert_eq!(seen.lsd_peers.len(), 11);
    // A second later the flooder is heard once more.
    let later = now + Duration::from_secs(1);
    let a = LsdAnnounce {
        port: 9001,
        info_hashes: vec![ms[28].info_hash],
        cookie: None,
    };
    s.handle_lsd_datagram(from, &a.encode(group_v4()), later);
    s.handle_lsd_datagram(from, &a.encode(group_v4()), later);
    drain(&mut s, later, &mut seen);
    assert_eq!(seen.lsd_peers.len(), 12);
}

#[test]
fn a_paused_torrent_is_not_announced_until_it_resumes() {
    let mut s = Session::new(config(), 7, Instant::ZERO);
    let m = metainfo(7);
    let t = s.add_torrent(&m, None, Instant::ZERO).expect("add");
    let mut seen = Seen::default();
    run(&mut s, Instant::ZERO, Instant::ZERO, &mut seen);
    assert_eq!(seen.sent.len(), 1);
    s.pause_torrent(t, Instant::from_secs(1)).expect("pause");
    run(
        &mut s,
        Instant::from_secs(1),
        Instant::from_secs(900),
        &mut seen,
    );
    assert_eq!(seen.sent.len(), 1, "announced while paused: {seen:?}");
    let at = Instant::from_secs(901);
    s.resume_torrent(t, at).expect("resume");
    run(&mut s, at, at, &mut seen);
    assert_eq!(seen.sent.len(), 2);
    assert_eq!(seen.sent[1].0, at);
}

#[test]
fn a_newcomer_is_answered_at_once_but_only_once() {
    let mut s = Session::new(config(), 8, Instant::ZERO);
    let m = metainfo(8);
    s.add_torrent(&m, None, Instant::ZERO).expect("add");
    let mut seen = Seen::default();
    run(&mut s, Instant::ZERO, Instant::from_secs(10), &mut seen);
    assert_eq!(seen.sent.len(), 1);
    let theirs = LsdAnnounce {
        port: 7000,
        info_hashes: vec![m.info_hash],
        cookie: Some("new".into()),
    };
    let from: SocketAddr = "10.0.0.5:6771".parse().expect("addr");
    let at = Instant::from_secs(10);
    s.handle_lsd_datagram(from, &theirs.encode(group_v4()), at);
    run(&mut s, at, Instant::from_secs(20), &mut seen);
    // Answered within the send gap, not 5 minutes after the first announce.
    assert_eq!(seen.sent.len(), 2, "{seen:?}");
    assert_eq!(seen.sent[1].0, at);
    // The same peer again (it answers our answer): no second answer.
    let again = Instant::from_secs(20);
    s.handle_lsd_datagram(from, &theirs.encode(group_v4()), again);
    run(&mut s, again, Instant::from_secs(200), &mut seen);
    assert_eq!(seen.sent.len(), 2, "{seen:?}");
    // The regular schedule resumes from the answer.
    run(
        &mut s,
        Instant::from_secs(200),
        Instant::from_secs(320),
        &mut seen,
    );
    assert_eq!(seen.sent.len(), 3);
    assert_eq!(seen.sent[2].0, at + Duration::from_secs(300));
}

fn dual() -> SessionConfig {
    SessionConfig {
        lsd_families: LsdFamilies { v4: true, v6: true },
        ..config()
    }
}

#[test]
fn each_round_goes_to_both_groups_and_the_gap_is_per_round() {
    let mut s = Session::new(dual(), 20, Instant::ZERO);
    let mut all = Vec::new();
    for i in 0..20 {
        let m = metainfo(2000 + i);
        s.add_torrent(&m, None, Instant::ZERO).expect("add");
        all.push(m.info_hash);
    }
    let mut seen = Seen::default();
    run(&mut s, Instant::ZERO, Instant::from_secs(5), &mut seen);
    // 20 torrents: two rounds (16 + 4), a second apart, each to IPv4 then IPv6 with the
    // same torrents.
    let rounds: Vec<(u64, SocketAddr, usize)> = seen
        .sent_to
        .iter()
        .map(|(t, to, a)| (t.as_micros() / 1000, *to, a.info_hashes.len()))
        .collect();
    assert_eq!(
        rounds,
        vec![
            (0, group_v4(), 16),
            (0, group_v6(), 16),
            (1000, group_v4(), 4),
            (1000, group_v6(), 4)
        ],
        "{seen:?}"
    );
    for pair in seen.sent_to.chunks(2) {
        assert_eq!(pair[0].2, pair[1].2, "the same announce to both groups");
    }
    let mut v6: Vec<InfoHash> = seen
        .sent_to
        .iter()
        .filter(|(_, to, _)| *to == group_v6())
        .flat_map(|(_, _, a)| hashes(a))
        .collect();
    v6.sort();
    all.sort();
    assert_eq!(v6, all);
    assert_eq!(s.lsd_stats().expect("on").sent, 4);
    // Five minutes on, both groups hear them again.
    run(
        &mut s,
        Instant::from_secs(5),
        Instant::from_secs(302),
        &mut seen,
    );
    assert_eq!(seen.sent_to.len(), 8, "{seen:?}");
    assert_eq!(seen.sent_to[4].0, Instant::from_secs(300));
    assert_eq!(seen.sent_to[5].1, group_v6());
}

#[test]
fn ipv6_only_sends_only_to_the_ipv6_group_and_no_family_sends_nothing() {
    let v6_only = SessionConfig {
        lsd_families: LsdFamilies {
            v4: false,
            v6: true,
        },
        ..config()
    };
    let mut s = Session::new(v6_only, 21, Instant::ZERO);
    let m = metainfo(21);
    s.add_torrent(&m, None, Instant::ZERO).expect("add");
    let mut seen = Seen::default();
    run(&mut s, Instant::ZERO, Instant::from_secs(301), &mut seen);
    let to: Vec<(u64, SocketAddr)> = seen
        .sent_to
        .iter()
        .map(|(t, to, _)| (t.as_micros() / 1_000_000, *to))
        .collect();
    assert_eq!(to, vec![(0, group_v6()), (300, group_v6())]);
    assert_eq!(seen.sent_to[0].2.info_hashes, vec![m.info_hash]);
    assert_eq!(seen.sent_to[0].2.port, 6881);

    // No group at all: nothing is scheduled (no deadline that never passes).
    let none = SessionConfig {
        lsd_families: LsdFamilies {
            v4: false,
            v6: false,
        },
        ..config()
    };
    let mut s = Session::new(none, 22, Instant::ZERO);
    s.add_torrent(&metainfo(22), None, Instant::ZERO)
        .expect("add");
    let mut seen = Seen::default();
    run(&mut s, Instant::ZERO, Instant::from_secs(700), &mut seen);
    assert!(seen.sent_to.is_empty(), "{seen:?}");
    assert_eq!(s.lsd_stats().expect("on").sent, 0);
}

#[test]
fn an_ipv6_announce_gives_an_ipv6_peer_and_our_own_is_ignored() {
    let mut s = Session::new(dual(), 23, Instant::ZERO);
    let m = metainfo(23);
    let t = s.add_torrent(&m, None, Instant::ZERO).expect("add");
    let mut seen = Seen::default();
    run(&mut s, Instant::ZERO, Instant::ZERO, &mut seen);
    let (_, _, ours) = seen.sent_to.pop().expect("announced on add");
    let now = Instant::from_millis(10);
    // Our own, looped back over IPv6: ignored.
    s.handle_lsd_datagram(
        "[fd00::1]:6771".parse().expect("addr"),
        &ours.encode(group_v6()),
        now,
    );
    drain(&mut s, now, &mut seen);
    assert!(
        seen.lsd_peers.is_empty() && seen.connects.is_empty(),
        "{seen:?}"
    );
    assert_eq!(s.lsd_stats().expect("on").own, 1);
    // Another client's, from its IPv6 address and an ephemeral port.
    let theirs = LsdAnnounce {
        port: 51413,
        info_hashes: vec![m.info_hash],
        cookie: Some("lt".into()),
    };
    s.handle_lsd_datagram(
        "[fd00::2]:40000".parse().expect("addr"),
        &theirs.encode(group_v6()),
        now,
    );
    drain(&mut s, now, &mut seen);
    let peer: SocketAddr = "[fd00::2]:51413".parse().expect("addr");
    assert_eq!(seen.lsd_peers, vec![(t, peer)]);
    assert_eq!(seen.connects, vec![(t, peer)]);
    // A link-local sender keeps its scope id: the peer can be dialled on that link.
    let ll = SocketAddr::V6(SocketAddrV6::new(
        "fe80::9".parse().expect("ip"),
        6771,
        0,
        4,
    ));
    s.handle_lsd_datagram(ll, &theirs.encode(group_v6()), now);
    drain(&mut s, now, &mut seen);
    let peer_ll = SocketAddr::V6(SocketAddrV6::new(
        "fe80::9".parse().expect("ip"),
        51413,
        0,
        4,
    ));
    assert_eq!(seen.lsd_peers.last(), Some(&(t, peer_ll)));
    assert_eq!(seen.connects.last(), Some(&(t, peer_ll)));
    // An IPv4-mapped sender (a dual-stack socket's view of an IPv4 host) is that IPv4 host.
    s.handle_lsd_datagram(
        "[::ffff:192.168.1.9]:6771".parse().expect("addr"),
        &theirs.encode(group_v4()),
        now,
    );
    drain(&mut s, now, &mut seen);
    let peer_v4: SocketAddr = "192.168.1.9:51413".parse().expect("addr");
    assert_eq!(seen.lsd_peers.last(), Some(&(t, peer_v4)));
    assert_eq!(s.lsd_stats().expect("on").peers, 3);
}

#[test]
fn an_ipv6_newcomer_is_answered_on_both_groups_at_once() {
    let mut s = Session::new(dual(), 24, Instant::ZERO);
    let m = metainfo(24);
    s.add_torrent(&m, None, Instant::ZERO).expect("add");
    let mut seen = Seen::default();
    run(&mut s, Instant::ZERO, Instant::from_secs(10), &mut seen);
    assert_eq!(seen.sent_to.len(), 2);
    let theirs = LsdAnnounce {
        port: 7000,
        info_hashes: vec![m.info_hash],
        cookie: Some("new".into()),
    };
    let at = Instant::from_secs(10);
    s.handle_lsd_datagram(
        "[fd00::5]:6771".parse().expect("addr"),
        &theirs.encode(group_v6()),
        at,
    );
    run(&mut s, at, Instant::from_secs(20), &mut seen);
    let answers: Vec<(Instant, SocketAddr)> = seen.sent_to[2..]
        .iter()
        .map(|(t, to, _)| (*t, *to))
        .collect();
    assert_eq!(
        answers,
        vec![(at, group_v4()), (at, group_v6())],
        "{seen:?}"
    );
}
