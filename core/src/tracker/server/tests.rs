use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::*;
use crate::bencode::{self, Value};

fn hash(n: u8) -> InfoHash {
    InfoHash([n; 20])
}

fn pid(n: u32) -> PeerId {
    let mut id = [b'x'; 20];
    id[..4].copy_from_slice(&n.to_be_bytes());
    PeerId(id)
}

fn src(n: u32) -> SocketAddr {
    // Non-loopback sources, so the `ip` parameter is not trusted by default.
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)), 40_000)
}

fn req(h: InfoHash, n: u32, left: u64, event: AnnounceEvent) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: h,
        peer_id: pid(n),
        port: 6881,
        uploaded: 0,
        downloaded: 0,
        left,
        event,
        numwant: None,
        key: n,
        ip: None,
        ipv6: None,
        tracker_id: None,
    }
}

fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

/// A server with `n` leechers (peers 1..=n) in swarm `hash(1)`.
fn populated(n: u32, seed: u64) -> TrackerServer {
    let mut s = TrackerServer::new(ServerConfig::default(), seed);
    for i in 1..=n {
        s.announce(&req(hash(1), i, 100, AnnounceEvent::Started), src(i), t(0))
            .expect("room for the peer");
    }
    s
}

#[test]
fn random_subset_is_bounded_distinct_foreign_and_random() {
    let mut s = populated(100, 1);
    let mut r = req(hash(1), 7, 100, AnnounceEvent::None);
    r.numwant = Some(30);
    let swarm_addrs: BTreeSet<SocketAddr> = (1..=100)
        .map(|i| SocketAddr::new(src(i).ip(), 6881))
        .collect();
    let mut seen_sets = BTreeSet::new();
    for _ in 0..20 {
        let reply = s.announce(&r, src(7), t(1)).expect("announce");
        assert_eq!(reply.peers.len(), 30);
        let addrs: BTreeSet<SocketAddr> = reply.peers.iter().map(|p| p.addr).collect();
        assert_eq!(addrs.len(), 30, "duplicates in {:?}", reply.peers);
        assert!(reply.peers.iter().all(|p| p.peer_id != pid(7)));
        assert!(addrs.is_subset(&swarm_addrs));
        seen_sets.insert(addrs);
    }
    assert!(
        seen_sets.len() > 10,
        "subsets barely vary: {}",
        seen_sets.len()
    );

    // Same seed, same history: the same subsets.
    let mut a = populated(100, 9);
    let mut b = populated(100, 9);
    for _ in 0..5 {
        assert_eq!(
            a.announce(&r, src(7), t(1)).expect("a"),
            b.announce(&r, src(7), t(1)).expect("b")
        );
    }
}

#[test]
fn numwant_defaults_and_is_capped() {
    let mut s = populated(300, 2);
    let mut r = req(hash(1), 1, 100, AnnounceEvent::None);
    assert_eq!(s.announce(&r, src(1), t(1)).expect("a").peers.len(), 50);
    r.numwant = Some(10_000);
    assert_eq!(s.announce(&r, src(1), t(1)).expect("a").peers.len(), 200);
    r.numwant = Some(0);
    assert_eq!(s.announce(&r, src(1), t(1)).expect("a").peers.len(), 0);
    // A small swarm: everybody else, once.
    let mut small = populated(5, 3);
    let mut r = req(hash(1), 2, 100, AnnounceEvent::None);
    r.numwant = Some(50);
    let reply = small.announce(&r, src(2), t(1)).expect("a");
    let ids: BTreeSet<PeerId> = reply.peers.iter().map(|p| p.peer_id).collect();
    assert_eq!(ids, [1, 3, 4, 5].map(pid).into_iter().collect());
}

#[test]
fn counts_completed_and_stopped() {
    let mut s = populated(3, 4);
    let r = req(hash(1), 4, 0, AnnounceEvent::Started);
    let reply = s.announce(&r, src(4), t(1)).expect("seeder");
    assert_eq!((reply.complete, reply.incomplete), (1, 3));
    // Peer 1 finishes.
    let r = req(hash(1), 1, 0, AnnounceEvent::Completed);
    let reply = s.announce(&r, src(1), t(2)).expect("completed");
    assert_eq!((reply.complete, reply.incomplete), (2, 2));
    // A seeder is given leechers only.
    assert!(
        reply
            .peers
            .iter()
            .all(|p| p.peer_id == pid(2) || p.peer_id == pid(3))
    );
    // Re-sending "completed" does not count twice.
    s.announce(&r, src(1), t(3)).expect("again");
    let scraped = s.scrape(&[hash(1), hash(9)]);
    assert_eq!(
        scraped,
        vec![
            (
                hash(1),
                ScrapeEntry {
                    complete: 2,
                    downloaded: 1,
                    incomplete: 2
                }
            ),
            (hash(9), ScrapeEntry::default())
        ]
    );
    // Stopped removes at once; the last one leaving drops the swarm.
    for i in 1..=4 {
        s.announce(&req(hash(1), i, 0, AnnounceEvent::Stopped), src(i), t(4))
            .expect("stop");
    }
    assert_eq!(s.peer_count(), 0);
    assert_eq!(s.swarm_count(), 0);
}

#[test]
fn stopped_peer_is_not_handed_out() {
    let mut s = populated(2, 5);
    let reply = s
        .announce(&req(hash(1), 2, 1, AnnounceEvent::Stopped), src(2), t(1))
        .expect("stop");
    assert!(reply.peers.is_empty());
    let reply = s
        .announce(&req(hash(1), 1, 1, AnnounceEvent::None), src(1), t(1))
        .expect("a");
    assert!(reply.peers.is_empty());
    assert_eq!(reply.incomplete, 1);
}

#[test]
fn expiry_after_twice_the_interval_and_not_before() {
    let mut s = populated(3, 6);
    // Peer 3 keeps announcing.
    s.announce(&req(hash(1), 3, 1, AnnounceEvent::None), src(3), t(200))
        .expect("refresh");
    assert_eq!(s.next_expiry(), Some(t(240)));
    assert_eq!(s.expire(t(239)), 0);
    assert_eq!(s.peer_count(), 3);
    assert_eq!(s.expire(t(240)), 2);
    assert_eq!(s.peer_count(), 1);
    assert_eq!(s.swarm_count(), 1);
    assert_eq!(s.expire(t(439)), 0);
    assert_eq!(s.expire(t(440)), 1);
    assert_eq!(s.swarm_count(), 0);
    assert_eq!(s.next_expiry(), None);
}

#[test]
fn limits_refuse_cleanly() {
    let config = ServerConfig {
        max_swarms: 2,
        max_peers_per_swarm: 3,
        max_total_peers: 5,
        ..ServerConfig::default()
    };
    let mut s = TrackerServer::new(config, 7);
    let ok = |s: &mut TrackerServer, h: u8, n: u32| {
        s.announce(&req(hash(h), n, 1, AnnounceEvent::Started), src(n), t(0))
    };
    for n in 1..=3 {
        ok(&mut s, 1, n).expect("room");
    }
    assert_eq!(ok(&mut s, 1, 4), Err(ServerError::SwarmFull));
    // A known peer still refreshes in a full swarm.
    ok(&mut s, 1, 2).expect("refresh");
    ok(&mut s, 2, 10).expect("room");
    // A third swarm evicts the smaller one (swarm 2, one peer) instead of being refused.
    ok(&mut s, 3, 11).expect("evicts");
    assert_eq!(s.evicted_swarms(), 1);
    assert_eq!(s.scrape(&[hash(2)])[0].1, ScrapeEntry::default());
    assert_eq!((s.swarm_count(), s.peer_count()), (2, 4));
    ok(&mut s, 3, 12).expect("room");
    assert_eq!(ok(&mut s, 3, 13), Err(ServerError::TooManyPeers));
    assert_eq!((s.swarm_count(), s.peer_count()), (2, 5));

    let mut w = TrackerServer::new(
        ServerConfig {
            whitelist: Some([hash(1)].into_iter().collect()),
            ..ServerConfig::default()
        },
        8,
    );
    assert_eq!(ok(&mut w, 2, 1), Err(ServerError::UnknownTorrent));
    ok(&mut w, 1, 1).expect("listed");
    let mut r = req(hash(1), 2, 1, AnnounceEvent::None);
    r.port = 0;
    assert_eq!(w.announce(&r, src(2), t(0)), Err(ServerError::InvalidPort));
}

#[test]
fn ip_parameter_and_key() {
    let mut s = TrackerServer::new(ServerConfig::default(), 9);
    let mut r = req(hash(1), 1, 1, AnnounceEvent::Started);
    r.ip = Some(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)));
    s.announce(&r, src(1), t(0)).expect("a");
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 1);
    let mut r2 = req(hash(1), 2, 1, AnnounceEvent::Started);
    r2.ip = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)));
    let reply = s.announce(&r2, local, t(0)).expect("b");
    // Not trusted from a remote source; trusted from loopback.
    assert_eq!(reply.peers[0].addr, SocketAddr::new(src(1).ip(), 6881));
    let reply = s
        .announce(&req(hash(1), 3, 1, AnnounceEvent::None), src(3), t(0))
        .expect("c");
    assert!(
        reply
            .peers
            .iter()
            .any(|p| p.addr == "127.0.0.9:6881".parse().expect("addr"))
    );
    // Someone else taking over peer 1's id from another address, with another key.
    let mut thief = req(hash(1), 1, 1, AnnounceEvent::None);
    thief.key = 999;
    assert_eq!(
        s.announce(&thief, src(50), t(1)),
        Err(ServerError::KeyMismatch)
    );
    // The real peer, moved, with its key: accepted.
    s.announce(&req(hash(1), 1, 1, AnnounceEvent::None), src(51), t(1))
        .expect("moved");
}

// ---- HTTP ----

fn http_get(s: &mut TrackerServer, target: &str, from: SocketAddr) -> (u16, Vec<u8>) {
    let request = format!("GET {target} HTTP/1.1\r\nHost: tracker\r\n\r\n");
    match s.handle_http_request(request.as_bytes(), from, t(1)) {
        HttpOutcome::Respond(r) => split_response(&r),
        HttpOutcome::NeedMore => panic!("complete request reported incomplete"),
    }
}

/// Checks the response framing; returns the status and body.
fn split_response(r: &[u8]) -> (u16, Vec<u8>) {
    let end = r
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end")
        + 4;
    let head = std::str::from_utf8(&r[..end]).expect("ascii head");
    let status: u16 = head[9..12].parse().expect("status");
    assert!(head.starts_with("HTTP/1.1 "));
    assert!(head.contains("Connection: close\r\n"));
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("content length")
        .parse()
        .expect("number");
    assert_eq!(len, r.len() - end);
    (status, r[end..].to_vec())
}

fn enc(b: &[u8]) -> String {
    b.iter().map(|b| format!("%{b:02X}")).collect()
}

fn announce_target(h: InfoHash, n: u32, extra: &str) -> String {
    format!(
        "/announce?info_hash={}&peer_id={}&port={}&uploaded=0&downloaded=0&left=10{extra}",
        enc(&h.0),
        enc(&pid(n).0),
        7000 + n
    )
}

fn failure_reason(body: &[u8]) -> Option<String> {
    let v = bencode::decode(body).expect("bencoded body");
    v.as_dict()?
        .get(b"failure reason")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[test]
fn http_compact_announce_decodes() {
    let mut s = TrackerServer::new(ServerConfig::default(), 10);
    let v6: SocketAddr = "[2001:db8::1]:1".parse().expect("v6");
    http_get(&mut s, &announce_target(hash(1), 1, ""), src(1));
    http_get(&mut s, &announce_target(hash(1), 2, ""), v6);
    let (status, body) = http_get(&mut s, &announce_target(hash(1), 3, "&compact=1"), src(3));
    assert_eq!(status, 200);
    let v = bencode::decode(&body).expect("bencode");
    let d = v.as_dict().expect("dict");
    assert_eq!(d.get(b"interval").and_then(Value::as_int), Some(120));
    assert_eq!(d.get(b"incomplete").and_then(Value::as_int), Some(3));
    assert_eq!(d.get(b"complete").and_then(Value::as_int), Some(0));
    let peers = d.get(b"peers").and_then(Value::as_bytes).expect("peers");
    let mut expect4 = src(1)
        .ip()
        .to_string()
        .parse::<Ipv4Addr>()
        .expect("v4")
        .octets()
        .to_vec();
    expect4.extend_from_slice(&7001u16.to_be_bytes());
    assert_eq!(peers, &expect4[..]);
    let peers6 = d.get(b"peers6").and_then(Value::as_bytes).expect("peers6");
    let mut expect6 = "2001:db8::1"
        .parse::<Ipv6Addr>()
        .expect("v6")
        .octets()
        .to_vec();
    expect6.extend_from_slice(&7002u16.to_be_bytes());
    assert_eq!(peers6, &expect6[..]);
}

#[test]
fn http_dictionary_announce_decodes() {
    let mut s = TrackerServer::new(ServerConfig::default(), 11);
    http_get(&mut s, &announce_target(hash(1), 1, ""), src(1));
    let (_, body) = http_get(&mut s, &announce_target(hash(1), 2, "&compact=0"), src(2));
    let v = bencode::decode(&body).expect("bencode");
    let peers = v
        .as_dict()
        .and_then(|d| d.get(b"peers"))
        .and_then(Value::as_list)
        .expect("peer list");
    assert_eq!(peers.items().len(), 1);
    let p = peers.items()[0].as_dict().expect("peer dict");
    assert_eq!(p.get(b"ip").and_then(Value::as_str), Some("10.0.0.1"));
    assert_eq!(p.get(b"port").and_then(Value::as_int), Some(7001));
    assert_eq!(
        p.get(b"peer id").and_then(Value::as_bytes),
        Some(&pid(1).0[..])
    );
}

#[test]
fn http_malformed_requests_get_failures() {
    let mut s = TrackerServer::new(ServerConfig::default(), 12);
    let cases = [
        ("/announce?peer_id=x&port=1", "missing info_hash"),
        (
            "/announce?info_hash=abc&port=1",
            "info_hash must be 20 bytes",
        ),
        (
            "/announce?info_hash=%zz",
            "invalid percent-encoding in info_hash",
        ),
    ];
    for (target, why) in cases {
        let (status, body) = http_get(&mut s, target, src(1));
        assert_eq!(status, 200);
        assert_eq!(failure_reason(&body).as_deref(), Some(why), "{target}");
    }
    let bad_port = announce_target(hash(1), 1, "").replace("port=7001", "port=99999");
    let (_, body) = http_get(&mut s, &bad_port, src(1));
    assert_eq!(failure_reason(&body).as_deref(), Some("invalid port"));
    let (_, body) = http_get(&mut s, "/scrape", src(1));
    assert!(failure_reason(&body).is_some());
    assert_eq!(http_get(&mut s, "/nope", src(1)).0, 404);

    let bad = |s: &mut TrackerServer, raw: &[u8]| match s.handle_http_request(raw, src(1), t(1)) {
        HttpOutcome::Respond(r) => split_response(&r).0,
        HttpOutcome::NeedMore => 0,
    };
    assert_eq!(bad(&mut s, b"POST /announce HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(bad(&mut s, b"\x00\xff garbage\r\n\r\n"), 400);
    assert_eq!(bad(&mut s, b"GET /announce HTTP/1.1\r\nHost: x"), 0);
    assert_eq!(bad(&mut s, &[b'a'; MAX_HTTP_REQUEST]), 400);
}

#[test]
fn http_scrape_reports_counts() {
    let mut s = TrackerServer::new(ServerConfig::default(), 13);
    http_get(&mut s, &announce_target(hash(1), 1, ""), src(1));
    let target = format!(
        "/scrape?info_hash={}&info_hash={}",
        enc(&hash(1).0),
        enc(&hash(2).0)
    );
    let (_, body) = http_get(&mut s, &target, src(1));
    let v = bencode::decode(&body).expect("bencode");
    let files = v
        .as_dict()
        .and_then(|d| d.get(b"files"))
        .and_then(Value::as_dict)
        .expect("files");
    let one = files
        .get(&hash(1).0)
        .and_then(Value::as_dict)
        .expect("hash 1");
    assert_eq!(one.get(b"incomplete").and_then(Value::as_int), Some(1));
    let two = files
        .get(&hash(2).0)
        .and_then(Value::as_dict)
        .expect("hash 2");
    assert_eq!(two.get(b"incomplete").and_then(Value::as_int), Some(0));
}

// ---- UDP ----

fn connect(s: &mut TrackerServer, from: SocketAddr, now: Instant) -> u64 {
    let mut p = UDP_PROTOCOL_ID.to_be_bytes().to_vec();
    p.extend_from_slice(&0u32.to_be_bytes());
    p.extend_from_slice(&0xdead_beefu32.to_be_bytes());
    let r = s.handle_udp_packet(&p, from, now).expect("connect reply");
    assert_eq!(r.len(), 16);
    assert_eq!(&r[..8], &[0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
    u64::from_be_bytes(r[8..16].try_into().expect("8 bytes"))
}

fn udp_announce(cid: u64, h: InfoHash, n: u32, port: u16, numwant: i32) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&cid.to_be_bytes());
    p.extend_from_slice(&1u32.to_be_bytes());
    p.extend_from_slice(&77u32.to_be_bytes());
    p.extend_from_slice(&h.0);
    p.extend_from_slice(&pid(n).0);
    p.extend_from_slice(&5u64.to_be_bytes()); // downloaded
    p.extend_from_slice(&10u64.to_be_bytes()); // left
    p.extend_from_slice(&3u64.to_be_bytes()); // uploaded
    p.extend_from_slice(&2u32.to_be_bytes()); // started
    p.extend_from_slice(&0u32.to_be_bytes()); // ip
    p.extend_from_slice(&n.to_be_bytes()); // key
    p.extend_from_slice(&numwant.to_be_bytes());
    p.extend_from_slice(&port.to_be_bytes());
    assert_eq!(p.len(), 98);
    p
}

#[test]
fn udp_connect_announce_scrape_round_trip() {
    let mut s = TrackerServer::new(ServerConfig::default(), 14);
    let a = src(1);
    let b = src(2);
    let now = t(1000);
    let cid_a = connect(&mut s, a, now);
    let r = s
        .handle_udp_packet(&udp_announce(cid_a, hash(1), 1, 6001, -1), a, now)
        .expect("reply");
    assert_eq!(&r[..8], &[0, 0, 0, 1, 0, 0, 0, 77]);
    assert_eq!(&r[8..20], &[0, 0, 0, 120, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(r.len(), 20, "no other peers yet");
    let cid_b = connect(&mut s, b, now);
    let r = s
        .handle_udp_packet(&udp_announce(cid_b, hash(1), 2, 6002, 10), b, now)
        .expect("reply");
    assert_eq!(&r[12..16], &2u32.to_be_bytes(), "leechers");
    assert_eq!(&r[20..], &[10, 0, 0, 1, 0x17, 0x71]);

    let mut scrape = cid_a.to_be_bytes().to_vec();
    scrape.extend_from_slice(&2u32.to_be_bytes());
    scrape.extend_from_slice(&5u32.to_be_bytes());
    scrape.extend_from_slice(&hash(1).0);
    scrape.extend_from_slice(&hash(3).0);
    let r = s.handle_udp_packet(&scrape, a, now).expect("scrape");
    let mut expect = vec![0, 0, 0, 2, 0, 0, 0, 5];
    expect.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    expect.extend_from_slice(&[0; 12]);
    assert_eq!(r, expect);
}

#[test]
fn udp_ipv6_peers_are_18_bytes() {
    let mut s = TrackerServer::new(ServerConfig::default(), 15);
    let a: SocketAddr = "[2001:db8::1]:5000".parse().expect("v6");
    let b: SocketAddr = "[2001:db8::2]:5000".parse().expect("v6");
    let v4 = src(3);
    let now = t(10);
    for (from, n) in [(a, 1), (v4, 3), (b, 2)] {
        let cid = connect(&mut s, from, now);
        let r = s
            .handle_udp_packet(
                &udp_announce(cid, hash(1), n, 6000 + n as u16, 50),
                from,
                now,
            )
            .expect("reply");
        if n == 2 {
            let mut expect = "2001:db8::1"
                .parse::<Ipv6Addr>()
                .expect("v6")
                .octets()
                .to_vec();
            expect.extend_from_slice(&6001u16.to_be_bytes());
            assert_eq!(&r[20..], &expect[..], "only the IPv6 peer, 18 bytes");
        }
    }
}

#[test]
fn udp_connection_id_checks() {
    let mut s = TrackerServer::new(ServerConfig::default(), 16);
    let a = src(1);
    let cid = connect(&mut s, a, t(600));
    let is_error = |r: Option<Vec<u8>>| r.is_some_and(|r| r[..4] == [0, 0, 0, 3]);
    // Wrong id, right id from another address, and the id after two windows: refused.
    assert!(is_error(s.handle_udp_packet(
        &udp_announce(cid ^ 1, hash(1), 1, 1, 1),
        a,
        t(600)
    )));
    assert!(is_error(s.handle_udp_packet(
        &udp_announce(cid, hash(1), 1, 1, 1),
        src(2),
        t(600)
    )));
    assert!(is_error(s.handle_udp_packet(
        &udp_announce(cid, hash(1), 1, 1, 1),
        a,
        t(720)
    )));
    assert_eq!(s.peer_count(), 0);
    // Another port of the same IP may use the id (libtorrent shares ids between sessions).
    let same_ip_other_port = SocketAddr::new(a.ip(), a.port().wrapping_add(1));
    assert!(!is_error(s.handle_udp_packet(
        &udp_announce(cid, hash(1), 2, 2, 1),
        same_ip_other_port,
        t(600)
    )));
    assert_eq!(s.peer_count(), 1);
    // Valid through the next window (up to ~2 minutes).
    assert!(!is_error(s.handle_udp_packet(
        &udp_announce(cid, hash(1), 1, 1, 1),
        a,
        t(719)
    )));
    assert_eq!(s.peer_count(), 2);
    // Short, truncated and unknown packets.
    assert_eq!(s.handle_udp_packet(&[0; 15], a, t(600)), None);
    let mut bad_magic = 7u64.to_be_bytes().to_vec();
    bad_magic.extend_from_slice(&[0; 8]);
    assert_eq!(s.handle_udp_packet(&bad_magic, a, t(600)), None);
    let short = &udp_announce(cid, hash(1), 1, 1, 1)[..97];
    let r = s.handle_udp_packet(short, a, t(600)).expect("error reply");
    assert_eq!(&r[8..], b"announce too short");
    let mut unknown = cid.to_be_bytes().to_vec();
    unknown.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 1]);
    assert!(is_error(s.handle_udp_packet(&unknown, a, t(600))));
}

#[test]
fn sample_is_uniformish_and_exhaustive() {
    let mut rng = fastrand::Rng::with_seed(1);
    let all = sample(&mut rng, 10, 100, |_| true);
    let set: BTreeSet<usize> = all.iter().copied().collect();
    assert_eq!((all.len(), set.len()), (10, 10));
    let evens = sample(&mut rng, 10, 100, |i| i % 2 == 0);
    assert_eq!(evens.len(), 5);
    let mut counts = [0u32; 10];
    for _ in 0..10_000 {
        for i in sample(&mut rng, 10, 1, |_| true) {
            counts[i] += 1;
        }
    }
    assert!(
        counts.iter().all(|&c| (800..1200).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn eviction_takes_the_smallest_then_stalest_swarm() {
    let config = ServerConfig {
        max_swarms: 3,
        swarm_quota: None,
        ..ServerConfig::default()
    };
    let mut s = TrackerServer::new(config, 5);
    let at = |s: &mut TrackerServer, h: u8, n: u32, secs: u64| {
        s.announce(&req(hash(h), n, 1, AnnounceEvent::Started), src(n), t(secs))
    };
    // Swarm 1: two peers, old. Swarm 2: one peer, announced at 10. Swarm 3: one, at 20.
    at(&mut s, 1, 1, 0).expect("1a");
    at(&mut s, 1, 2, 0).expect("1b");
    at(&mut s, 2, 3, 10).expect("2");
    at(&mut s, 3, 4, 20).expect("3");
    // Swarm 2 is refreshed at 30: now swarm 3 is the stalest of the one-peer swarms.
    at(&mut s, 2, 3, 30).expect("2 again");
    at(&mut s, 4, 5, 40).expect("4 evicts 3");
    let alive: Vec<u32> = s
        .scrape(&[hash(1), hash(2), hash(3), hash(4)])
        .iter()
        .map(|(_, e)| e.complete + e.incomplete)
        .collect();
    assert_eq!(alive, vec![2, 1, 0, 1]);
    assert_eq!(
        (s.swarm_count(), s.peer_count(), s.evicted_swarms()),
        (3, 4, 1)
    );
    // The eviction index holds exactly one key per swarm, its current one.
    let consistent = |s: &TrackerServer| {
        s.by_eviction.len() == s.swarms.len()
            && s.swarms
                .iter()
                .all(|(h, w)| s.by_eviction.contains(&w.eviction_key(*h)))
    };
    assert!(consistent(&s));
    // A stopped peer shrinks its swarm, which moves in the order; a refused thief doesn't.
    s.announce(&req(hash(1), 2, 1, AnnounceEvent::Stopped), src(2), t(50))
        .expect("stop");
    let mut thief = req(hash(2), 3, 1, AnnounceEvent::None);
    thief.key = 99;
    assert_eq!(
        s.announce(&thief, src(77), t(50)),
        Err(ServerError::KeyMismatch)
    );
    assert!(consistent(&s));
    assert_eq!(s.peer_count(), 3);
    // The evicted peer is gone from the expiry index too: expiry never underflows.
    assert_eq!(s.expire(t(10_000)), 3);
    assert_eq!(
        (s.swarm_count(), s.peer_count(), s.next_expiry()),
        (0, 0, None)
    );
}

#[test]
fn quota_limits_new_swarms_per_address_not_announces() {
    let config = ServerConfig {
        swarm_quota: Some(SwarmQuota {
            per_ip: 3,
            window: Duration::from_secs(60),
        }),
        ..ServerConfig::default()
    };
    let mut s = TrackerServer::new(config, 6);
    let from = src(1);
    for h in 1..=3 {
        s.announce(&req(hash(h), 1, 1, AnnounceEvent::Started), from, t(0))
            .expect("within quota");
    }
    let refused = s.announce(&req(hash(4), 1, 1, AnnounceEvent::Started), from, t(1));
    assert_eq!(refused, Err(ServerError::QuotaExceeded));
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("too many new torrents")
    );
    // Existing swarms still take its announces, and other addresses still create.
    s.announce(&req(hash(1), 2, 1, AnnounceEvent::Started), from, t(1))
        .expect("existing swarm");
    s.announce(&req(hash(4), 3, 1, AnnounceEvent::Started), src(3), t(1))
        .expect("another address");
    // An IPv6 /64 is one address.
    let v6 = |last: u16| {
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last)),
            1,
        )
    };
    for h in 10..13 {
        s.announce(
            &req(hash(h), 9, 1, AnnounceEvent::Started),
            v6(u16::from(h)),
            t(1),
        )
        .expect("v6 within quota");
    }
    assert_eq!(
        s.announce(&req(hash(13), 9, 1, AnnounceEvent::Started), v6(99), t(1)),
        Err(ServerError::QuotaExceeded)
    );
    // The window slides.
    s.announce(&req(hash(5), 1, 1, AnnounceEvent::Started), from, t(60))
        .expect("window passed");
    assert!(s.creations.len() <= 256);
}
