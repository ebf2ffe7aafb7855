//! Unit tests of the DHT's parts and of one node driven by hand.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use super::krpc::{
    Body, CompactNode, ERROR_METHOD_UNKNOWN, ERROR_PROTOCOL, ErrorMessage, KrpcErrorKind, Message,
    Query, Response, Want,
};
use super::peer_store::{PeerStore, PeerStoreLimits, StoreError};
use super::rate_limit::{RateLimit, RateLimiter};
use super::routing::{Insert, K, NodeState, REPLACEMENTS, RoutingConfig, RoutingTable};
use super::token::TokenSecrets;
use super::*;
use crate::time::Instant;

const MAX: usize = krpc::DEFAULT_MAX_PACKET;

fn id(b: u8) -> NodeId {
    NodeId([b; 20])
}

fn v4a(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), port)
}

fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::V4(v4a(a, b, c, d, port))
}

fn addr(n: u32) -> SocketAddr {
    let [a, b, c, d] = (0x0a00_0000u32 + n + 1).to_be_bytes();
    v4(a, b, c, d, 6881)
}

fn roundtrip(m: &Message) {
    let bytes = m.encode();
    let back = Message::decode(&bytes, MAX).expect("our own encoding decodes");
    assert_eq!(&back, m);
    assert_eq!(back.encode(), bytes, "encoding is canonical");
}

// ---------------------------------------------------------------- codec

#[test]
fn every_message_kind_round_trips() {
    let t = b"aa".to_vec();
    let queries = [
        Query::Ping { id: id(1) },
        Query::FindNode {
            id: id(1),
            target: id(2),
            want: Want::default(),
        },
        Query::GetPeers {
            id: id(1),
            info_hash: id(3),
            want: Want::default(),
        },
        Query::AnnouncePeer {
            id: id(1),
            info_hash: id(3),
            port: 6881,
            implied_port: false,
            token: b"tok".to_vec(),
        },
        Query::AnnouncePeer {
            id: id(1),
            info_hash: id(3),
            port: 0,
            implied_port: true,
            token: vec![0; 8],
        },
    ];
    for q in queries {
        roundtrip(&Message {
            transaction: t.clone(),
            body: Body::Query(q),
        });
    }
    let full = Response {
        id: id(9),
        nodes: vec![
            CompactNode {
                id: id(4),
                addr: v4a(1, 2, 3, 4, 5),
            },
            CompactNode {
                id: id(5),
                addr: v4a(255, 255, 255, 254, 65535),
            },
        ],
        nodes6: Vec::new(),
        values: vec![v4(9, 8, 7, 6, 1), v4(1, 1, 1, 1, 2)],
        token: Some(b"secret".to_vec()),
        ip: Some(v4(124, 31, 75, 21, 6881)),
    };
    for r in [Response::id_only(id(9)), full] {
        roundtrip(&Message {
            transaction: vec![0xff, 0x00],
            body: Body::Response(r),
        });
    }
    roundtrip(&Message {
        transaction: b"x".to_vec(),
        body: Body::Error(ErrorMessage {
            code: 201,
            message: b"A Generic Error Ocurred".to_vec(),
        }),
    });
}

#[test]
fn bep5_examples_decode_and_reencode_identically() {
    let examples: [&[u8]; 4] = [
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
        b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
        b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
    ];
    for bytes in examples {
        let m = Message::decode(bytes, MAX).expect("BEP 5 example decodes");
        assert_eq!(m.encode(), bytes);
    }
    let announce = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
    match Message::decode(announce, MAX).expect("decodes").body {
        Body::Query(Query::AnnouncePeer {
            port,
            implied_port,
            token,
            ..
        }) => {
            assert_eq!((port, implied_port), (6881, true));
            assert_eq!(token, b"aoeusnth");
        }
        other => panic!("not an announce: {other:?}"),
    }
}

#[test]
fn hostile_inputs_are_errors_not_panics() {
    let valid = Message {
        transaction: b"aa".to_vec(),
        body: Body::Response(Response {
            id: id(1),
            nodes: vec![CompactNode {
                id: id(2),
                addr: v4a(1, 2, 3, 4, 5),
            }],
            nodes6: Vec::new(),
            values: vec![v4(1, 2, 3, 4, 5)],
            token: Some(b"tk".to_vec()),
            ip: None,
        }),
    }
    .encode();
    // Every truncation of a valid message fails cleanly.
    for n in 0..valid.len() {
        assert!(Message::decode(&valid[..n], MAX).is_err(), "prefix {n}");
    }
    let cases: Vec<Vec<u8>> = vec![
        b"d1:t2:aa1:y1:q1:q4:ping1:ad2:id99999999999999999999:xee".to_vec(),
        b"d1:t18446744073709551616:aae".to_vec(),
        b"d1:ti5e1:y1:re".to_vec(),
        b"d1:t2:aa1:yi1ee".to_vec(),
        b"d1:t2:aa1:y1:r1:rd2:idi5eee".to_vec(),
        b"d1:t2:aa1:y1:r1:rd2:id20:abcdefghij01234567895:nodes3:abcee".to_vec(),
        b"d1:t2:aa1:y1:r1:rd2:id20:abcdefghij01234567896:valuesi1eee".to_vec(),
        b"d1:t2:aa1:y1:r1:rd2:id20:abcdefghij01234567896:valuesli1eeee".to_vec(),
        b"d1:t2:aa1:y1:e1:eli201eee".to_vec(),
        b"d1:t2:aa1:y1:x1:rd2:id20:abcdefghij0123456789ee".to_vec(),
        b"l1:t2:aae".to_vec(),
        b"d1:t17:aaaaaaaaaaaaaaaaa1:y1:qe".to_vec(),
        [b"l".repeat(10_000), b"e".repeat(10_000)].concat(),
        [b"d1:ad2:id".as_slice(), b"l".repeat(300).as_slice()].concat(),
    ];
    for case in &cases {
        assert!(
            Message::decode(case, usize::MAX).is_err(),
            "{:?}",
            String::from_utf8_lossy(case)
        );
    }
    let big = vec![b'd'; 64 * 1024];
    let err = Message::decode(&big, MAX).expect_err("64 KiB is over the limit");
    assert_eq!(
        err.kind,
        KrpcErrorKind::TooLarge {
            len: 64 * 1024,
            limit: MAX
        }
    );
    // Random bytes never panic.
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..2000 {
        let mut b = valid.clone();
        for _ in 0..rng.usize(1..4) {
            let i = rng.usize(..b.len());
            b[i] = rng.u8(..);
        }
        if let Ok(m) = Message::decode(&b, MAX) {
            roundtrip(&m);
        }
    }
}

#[test]
fn malformed_queries_say_which_error_to_answer() {
    let missing_target = b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:xy1:y1:qe";
    let e = Message::decode(missing_target, MAX).expect_err("no target");
    assert_eq!(e.kind, KrpcErrorKind::Missing("target"));
    assert_eq!(e.reply_to.as_deref(), Some(&b"xy"[..]));
    assert_eq!(e.code(), ERROR_PROTOCOL);

    let short_id = b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe";
    let e = Message::decode(short_id, MAX).expect_err("short id");
    assert_eq!(e.kind, KrpcErrorKind::BadLength { key: "id", len: 3 });
    assert_eq!(e.code(), ERROR_PROTOCOL);

    let unknown = b"d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:xy1:y1:qe";
    let e = Message::decode(unknown, MAX).expect_err("unknown method");
    assert_eq!(e.code(), ERROR_METHOD_UNKNOWN);
    assert!(e.reply_to.is_some());

    let bad_port = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti70000e5:token1:xe1:q13:announce_peer1:t2:xy1:y1:qe";
    let e = Message::decode(bad_port, MAX).expect_err("port out of range");
    assert_eq!(e.kind, KrpcErrorKind::OutOfRange("port"));

    // A broken response is no query: nothing to answer.
    let e = Message::decode(b"d1:t2:xy1:y1:r1:ri1ee", MAX).expect_err("r not a dict");
    assert_eq!(e.reply_to, None);
}

// ---------------------------------------------------------------- node ids

#[test]
fn xor_distance_orders_ids() {
    let a = id(0);
    assert_eq!(a.distance(&a), NodeId([0; 20]));
    assert_eq!(a.distance(&a).leading_zeros(), 160);
    let mut near = [0u8; 20];
    near[19] = 1;
    let mut far = [0u8; 20];
    far[0] = 0x80;
    assert!(a.distance(&NodeId(near)) < a.distance(&NodeId(far)));
    assert_eq!(a.distance(&NodeId(far)).leading_zeros(), 0);
    assert_eq!(a.distance(&NodeId(near)).leading_zeros(), 159);
    let mut rng = fastrand::Rng::with_seed(1);
    let own = NodeId::random(&mut rng);
    for prefix in [0, 1, 7, 8, 63, 159] {
        for _ in 0..20 {
            let r = own.random_with_prefix(prefix, true, &mut rng);
            assert_eq!(own.distance(&r).leading_zeros(), prefix);
        }
    }
}

// ---------------------------------------------------------------- routing table

/// An id whose distance to the zero id has exactly `lz` leading zeros, distinguished by `n`.
fn id_at(lz: u32, n: u8) -> NodeId {
    let mut rng = fastrand::Rng::with_seed(u64::from(lz) << 8 | u64::from(n));
    NodeId([0; 20]).random_with_prefix(lz, true, &mut rng)
}

#[test]
fn only_the_bucket_holding_our_id_splits() {
    let t0 = Instant::from_secs(100);
    let mut rt = RoutingTable::new(NodeId([0; 20]), RoutingConfig::default(), t0);
    // Sixteen far nodes (first bit differs from ours): the first 8 fill bucket 0 after a
    // split, the others cannot get in because bucket 0 no longer holds our id.
    for n in 0..16 {
        rt.heard_from(id_at(0, n), addr(u32::from(n)), t0);
    }
    assert_eq!(rt.bucket(0).len(), K);
    assert_eq!(rt.len(), K);
    let buckets = rt.bucket_count();
    assert_eq!(
        buckets, 2,
        "one split made room, then the far bucket is full"
    );
    // Closer nodes keep splitting the last bucket.
    for lz in 1..6 {
        for n in 0..3 {
            let r = rt.heard_from(id_at(lz, n), addr(100 + lz * 10 + u32::from(n)), t0);
            assert_eq!(r, Insert::Added);
        }
    }
    assert_eq!(rt.len(), K + 15);
    assert!(rt.bucket_count() > buckets);
    for i in 0..rt.bucket_count() {
        assert!(rt.bucket(i).len() <= K);
    }
    // Our own id is never inserted.
    assert_eq!(
        rt.heard_from(NodeId([0; 20]), addr(999), t0),
        Insert::Ignored
    );
    // A known id from another address does not move.
    assert_eq!(rt.heard_from(id_at(0, 0), addr(998), t0), Insert::Ignored);
}

#[test]
fn full_bucket_keeps_good_nodes_pings_questionable_and_replaces_bad() {
    let t0 = Instant::from_secs(100);
    let config = RoutingConfig::default();
    let mut rt = RoutingTable::new(NodeId([0; 20]), config, t0);
    // Fill bucket 0 (force the first split with a close node).
    rt.heard_from(id_at(10, 0), addr(500), t0);
    for n in 0..8 {
        rt.heard_from(id_at(0, n), addr(u32::from(n)), t0);
    }
    let far: Vec<NodeId> = rt.bucket(0).iter().map(|e| e.id).collect();
    assert_eq!(far.len(), K);
    // All good: a newcomer is only a standby.
    assert_eq!(rt.heard_from(id_at(0, 100), addr(100), t0), Insert::Full);
    assert_eq!(rt.replacement_count(), 1);
    assert!(!rt.has_room_for(&id_at(0, 101), t0));

    // 15 minutes of silence: all questionable; a newcomer asks for pings.
    let t1 = t0 + Duration::from_secs(15 * 60);
    let e = *rt.get(&far[0]).expect("present");
    let just_before = t0 + Duration::from_secs(15 * 60 - 1);
    assert_eq!(e.state(just_before, &config), NodeState::Good);
    assert_eq!(e.state(t1, &config), NodeState::Questionable);
    match rt.heard_from(id_at(0, 101), addr(101), t1) {
        Insert::PingQuestionable(list) => assert_eq!(list.len(), K),
        other => panic!("expected pings, got {other:?}"),
    }
    // BEP 5: a node that has answered us before and now queries us is good again.
    assert!(rt.queried_by(far[1], addr(1), t1));
    assert_eq!(
        rt.get(&far[1]).expect("present").state(t1, &config),
        NodeState::Good
    );

    // One failure: still questionable; two: bad, and replaced by the freshest standby.
    rt.failed(far[0], addr(0), t1);
    assert_eq!(
        rt.get(&far[0]).expect("still there").state(t1, &config),
        NodeState::Questionable
    );
    rt.failed(far[0], addr(0), t1);
    assert!(rt.get(&far[0]).is_none(), "bad node replaced");
    assert!(rt.get(&id_at(0, 101)).is_some(), "by the freshest standby");
    assert_eq!(rt.bucket(0).len(), K);
    // An answer resets failures.
    rt.failed(far[2], addr(2), t1);
    rt.heard_from(far[2], addr(2), t1);
    assert_eq!(rt.get(&far[2]).expect("present").failures, 0);
    // Standbys are bounded.
    for n in 0..50 {
        rt.heard_from(id_at(0, 150 + n), addr(150 + u32::from(n)), t1);
    }
    assert!(rt.replacement_count() <= REPLACEMENTS * rt.bucket_count());
    // Bad nodes without standbys are replaced by newcomers directly.
    let mut rt2 = RoutingTable::new(NodeId([0; 20]), config, t0);
    rt2.heard_from(id_at(10, 0), addr(500), t0);
    for n in 0..8 {
        rt2.heard_from(id_at(0, n), addr(u32::from(n)), t0);
    }
    let victim = rt2.bucket(0)[3];
    rt2.failed(victim.id, victim.addr, t0);
    rt2.failed(victim.id, victim.addr, t0);
    assert!(rt2.has_room_for(&id_at(0, 200), t0));
    assert_eq!(rt2.heard_from(id_at(0, 200), addr(200), t0), Insert::Added);
    assert!(rt2.get(&victim.id).is_none());
}

#[test]
fn stale_buckets_are_found_and_random_ids_land_in_them() {
    let t0 = Instant::from_secs(0);
    let mut rng = fastrand::Rng::with_seed(3);
    let own = NodeId::random(&mut rng);
    let mut rt = RoutingTable::new(own, RoutingConfig::default(), t0);
    for n in 0..40u8 {
        let lz = u32::from(n % 5);
        let node = own.random_with_prefix(lz, true, &mut rng);
        rt.heard_from(node, addr(u32::from(n)), t0);
    }
    let refresh = Duration::from_secs(15 * 60);
    assert!(rt.stale_buckets(refresh, t0 + refresh / 2).is_empty());
    let stale = rt.stale_buckets(refresh, t0 + refresh);
    assert_eq!(stale.len(), rt.bucket_count());
    let last = rt.bucket_count() - 1;
    for i in 0..last {
        let target = rt.random_id_in(i, &mut rng);
        assert_eq!(own.distance(&target).leading_zeros() as usize, i);
    }
    rt.touch(0, t0 + refresh);
    assert!(!rt.stale_buckets(refresh, t0 + refresh).contains(&0));
}

// ---------------------------------------------------------------- tokens

#[test]
fn tokens_survive_one_rotation_not_two_and_are_bound_to_the_ip() {
    let mut rng = fastrand::Rng::with_seed(5);
    let t0 = Instant::from_secs(0);
    let rotation = Duration::from_secs(300);
    let mut s = TokenSecrets::new(&mut rng, rotation, t0);
    let ip = "10.0.0.1".parse().expect("ip");
    let other = "10.0.0.2".parse().expect("ip");
    let tok = s.token(ip);
    assert!(s.validate(ip, &tok));
    assert!(!s.validate(other, &tok), "another IP cannot use it");
    assert!(!s.validate(ip, &tok[..4]));
    s.maybe_rotate(&mut rng, t0 + Duration::from_secs(299));
    assert_eq!(s.token(ip), tok, "no rotation before 5 minutes");
    s.maybe_rotate(&mut rng, t0 + rotation);
    assert_ne!(s.token(ip), tok);
    assert!(s.validate(ip, &tok), "previous secret still accepted");
    s.maybe_rotate(&mut rng, t0 + rotation * 2);
    assert!(!s.validate(ip, &tok), "two rotations later it is refused");
    // A long sleep rotates both secrets away at once.
    let tok2 = s.token(ip);
    s.maybe_rotate(&mut rng, t0 + rotation * 50);
    assert!(!s.validate(ip, &tok2));
}

// ---------------------------------------------------------------- peer store

#[test]
fn peer_store_expires_and_stays_bounded() {
    let limits = PeerStoreLimits {
        ttl: Duration::from_secs(1800),
        max_per_hash: 3,
        max_hashes: 2,
        quota: None,
    };
    let mut s = PeerStore::new(limits);
    let mut rng = fastrand::Rng::with_seed(1);
    let t0 = Instant::from_secs(10);
    let h = id(1);
    for p in 1..=5u16 {
        s.announce(h, v4(1, 1, 1, 1, p), t0 + Duration::from_secs(u64::from(p)))
            .expect("stored");
    }
    let mut got = s.peers(&h, 50, &mut rng, t0 + Duration::from_secs(10));
    got.sort();
    assert_eq!(
        got,
        vec![v4(1, 1, 1, 1, 3), v4(1, 1, 1, 1, 4), v4(1, 1, 1, 1, 5)]
    );
    assert_eq!(s.len(), 3);
    // Re-announcing refreshes without growing.
    s.announce(h, v4(1, 1, 1, 1, 3), t0 + Duration::from_secs(100))
        .expect("stored");
    assert_eq!(s.len(), 3);
    // A sample is bounded by `max`.
    assert_eq!(s.peers(&h, 2, &mut rng, t0).len(), 2);
    // Hash bound: a third live hash evicts the smallest swarm (id 2, one peer), not id 1.
    s.announce(id(2), v4(2, 2, 2, 2, 1), t0)
        .expect("second hash");
    s.announce(id(3), v4(3, 3, 3, 3, 1), t0)
        .expect("third hash evicts");
    assert_eq!((s.hashes(), s.len(), s.evicted()), (2, 4, 1));
    assert!(s.peers(&id(2), 50, &mut rng, t0).is_empty());
    assert_eq!(s.peers(&id(3), 50, &mut rng, t0), vec![v4(3, 3, 3, 3, 1)]);
    // Expiry: peers announced at t0+4, t0+5 expire 30 minutes later; the refreshed one not.
    let later = t0 + Duration::from_secs(1806);
    assert_eq!(s.peers(&h, 50, &mut rng, later), vec![v4(1, 1, 1, 1, 3)]);
    s.expire(later);
    assert_eq!(s.len(), 1);
    assert_eq!(s.hashes(), 1, "the expired third hash is gone");
    assert!(s.peers(&id(9), 50, &mut rng, later).is_empty());
}

#[test]
fn peer_store_quota_counts_new_hashes_per_address() {
    let limits = PeerStoreLimits {
        ttl: Duration::from_secs(1800),
        max_per_hash: 3,
        max_hashes: 100,
        quota: Some(super::peer_store::SwarmQuota {
            per_ip: 2,
            window: Duration::from_secs(600),
        }),
    };
    let mut s = PeerStore::new(limits);
    let t0 = Instant::from_secs(10);
    s.announce(id(1), v4(5, 5, 5, 5, 1), t0).expect("first");
    s.announce(id(2), v4(5, 5, 5, 5, 2), t0).expect("second");
    assert_eq!(
        s.announce(id(3), v4(5, 5, 5, 5, 1), t0),
        Err(StoreError::QuotaExceeded)
    );
    // Existing hashes still take its announces; other addresses may create.
    s.announce(id(1), v4(5, 5, 5, 5, 9), t0).expect("existing");
    s.announce(id(3), v4(6, 6, 6, 6, 1), t0)
        .expect("other address");
    let later = t0 + Duration::from_secs(600);
    s.announce(id(4), v4(5, 5, 5, 5, 1), later)
        .expect("window passed");
    assert_eq!(s.hashes(), 4);
}

// ---------------------------------------------------------------- rate limiter

#[test]
fn rate_limiter_refills_and_is_bounded() {
    let mut r = RateLimiter::new(RateLimit {
        per_sec: 10,
        burst: 5,
        max_ips: 3,
    });
    let t0 = Instant::from_secs(1);
    let a = "1.1.1.1".parse().expect("ip");
    let allowed = (0..100).filter(|_| r.allow(a, t0)).count();
    assert_eq!(allowed, 5);
    // 10/s: after 300 ms, three more.
    let t1 = t0 + Duration::from_millis(300);
    assert_eq!((0..100).filter(|_| r.allow(a, t1)).count(), 3);
    for i in 0..10u8 {
        r.allow(std::net::IpAddr::V4(Ipv4Addr::new(2, 2, 2, i)), t1);
    }
    assert!(r.len() <= 3);
}

// ---------------------------------------------------------------- one node by hand

fn drain(d: &mut Dht) -> Vec<DhtAction> {
    std::iter::from_fn(|| d.poll_action()).collect()
}

fn sends(actions: &[DhtAction]) -> Vec<(SocketAddr, Message)> {
    actions
        .iter()
        .filter_map(|a| match a {
            DhtAction::Send { to, bytes } => Some((
                *to,
                Message::decode(bytes, MAX).expect("we send valid KRPC"),
            )),
            _ => None,
        })
        .collect()
}

fn query(t: &[u8], q: Query) -> Vec<u8> {
    Message {
        transaction: t.to_vec(),
        body: Body::Query(q),
    }
    .encode()
}

fn replies_to(actions: &[DhtAction], to: SocketAddr) -> Vec<Message> {
    sends(actions)
        .into_iter()
        .filter(|(a, m)| *a == to && !matches!(m.body, Body::Query(_)))
        .map(|(_, m)| m)
        .collect()
}

#[test]
fn queries_are_answered_and_malformed_ones_get_error_203_or_204() {
    let t0 = Instant::from_secs(1);
    let mut d = Dht::new(DhtConfig::default(), 1, t0);
    let from = addr(1);
    d.handle_packet(from, &query(b"p1", Query::Ping { id: id(7) }), t0);
    let acts = drain(&mut d);
    let replies = replies_to(&acts, from);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].transaction, b"p1");
    // BEP 42: the answer tells the asker where we see it.
    assert_eq!(
        replies[0].body,
        Body::Response(Response {
            ip: Some(from),
            ..Response::id_only(d.node_id())
        })
    );
    // Unknown querier with room in the table: we ping it to verify it.
    assert!(
        sends(&acts)
            .iter()
            .any(|(a, m)| *a == from && matches!(m.body, Body::Query(Query::Ping { .. })))
    );

    d.handle_packet(
        from,
        b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:xy1:y1:qe",
        t0,
    );
    let replies = replies_to(&drain(&mut d), from);
    match &replies[..] {
        [m] => match &m.body {
            Body::Error(e) => assert_eq!(e.code, ERROR_PROTOCOL),
            other => panic!("expected an error, got {other:?}"),
        },
        other => panic!("expected one reply, got {other:?}"),
    }
    d.handle_packet(
        from,
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:xy1:y1:qe",
        t0,
    );
    let replies = replies_to(&drain(&mut d), from);
    assert!(
        matches!(&replies[..], [Message { body: Body::Error(e), .. }] if e.code == ERROR_METHOD_UNKNOWN)
    );

    // Garbage, unsolicited responses, IPv6 sources and huge packets: no answer at all.
    let before = d.stats();
    d.handle_packet(from, b"garbage", t0);
    d.handle_packet(
        from,
        &Message {
            transaction: b"zz".to_vec(),
            body: Body::Response(Response::id_only(id(3))),
        }
        .encode(),
        t0,
    );
    let v6: SocketAddr = "[::1]:6881".parse().expect("addr");
    d.handle_packet(v6, &query(b"p2", Query::Ping { id: id(7) }), t0);
    d.handle_packet(from, &vec![b'x'; 64 * 1024], t0);
    assert!(drain(&mut d).is_empty());
    let s = d.stats();
    assert_eq!(s.malformed, before.malformed + 1);
    assert_eq!(s.unmatched, before.unmatched + 1);
    assert_eq!(s.wrong_family, 1);
    assert_eq!(s.too_large, 1);
}

#[test]
fn a_flood_from_one_ip_is_dropped_while_another_ip_is_answered() {
    let t0 = Instant::from_secs(1);
    let mut d = Dht::new(DhtConfig::default(), 2, t0);
    let flooder = addr(1);
    let other = addr(2);
    let burst = d.config().rate_limit.burst as usize;
    let mut answered = 0;
    for i in 0..1000u16 {
        let t = i.to_be_bytes();
        let q = Query::FindNode {
            id: id(7),
            target: id(8),
            want: Want::default(),
        };
        d.handle_packet(flooder, &query(&t, q), t0);
        answered += replies_to(&drain(&mut d), flooder).len();
    }
    assert_eq!(answered, burst, "only the burst is answered");
    assert_eq!(d.stats().rate_limited, 1000 - burst as u64);
    d.handle_packet(other, &query(b"ok", Query::Ping { id: id(9) }), t0);
    assert_eq!(replies_to(&drain(&mut d), other).len(), 1);
    // One second later the flooder gets its sustained rate, no more.
    let t1 = t0 + Duration::from_secs(1);
    let mut later = 0;
    for i in 0..100u16 {
        d.handle_packet(
            flooder,
            &query(&i.to_be_bytes(), Query::Ping { id: id(7) }),
            t1,
        );
        later += replies_to(&drain(&mut d), flooder).len();
    }
    assert_eq!(later, d.config().rate_limit.per_sec as usize);
}

#[test]
fn announce_needs_our_token_and_then_get_peers_returns_the_peer() {
    let t0 = Instant::from_secs(1);
    let mut d = Dht::new(DhtConfig::default(), 3, t0);
    let peer = addr(5);
    let ih = id(0x42);
    let gp = query(
        b"g1",
        Query::GetPeers {
            id: id(7),
            info_hash: ih,
            want: Want::default(),
        },
    );
    d.handle_packet(peer, &gp, t0);
    let reply = replies_to(&drain(&mut d), peer);
    let token = match &reply[..] {
        [
            Message {
                body: Body::Response(r),
                ..
            },
        ] => {
            assert!(r.values.is_empty());
            r.token.clone().expect("get_peers answers carry a token")
        }
        other => panic!("{other:?}"),
    };
    let announce = |token: Vec<u8>, implied: bool| {
        query(
            b"a1",
            Query::AnnouncePeer {
                id: id(7),
                info_hash: ih,
                port: 7000,
                implied_port: implied,
                token,
            },
        )
    };
    // A token from another IP, or a made-up one, is refused with 203.
    d.handle_packet(addr(6), &announce(token.clone(), false), t0);
    let r = replies_to(&drain(&mut d), addr(6));
    assert!(matches!(&r[..], [Message { body: Body::Error(e), .. }] if e.code == ERROR_PROTOCOL));
    assert_eq!(d.stats().bad_tokens, 1);
    d.handle_packet(peer, &announce(token.clone(), false), t0);
    let r = replies_to(&drain(&mut d), peer);
    assert!(matches!(
        &r[..],
        [Message {
            body: Body::Response(_),
            ..
        }]
    ));
    // implied_port stores the source port instead.
    d.handle_packet(peer, &announce(token.clone(), true), t0);
    drain(&mut d);
    assert_eq!(d.peer_store().len(), 2);

    d.handle_packet(addr(9), &gp, t0 + Duration::from_secs(60));
    let r = replies_to(&drain(&mut d), addr(9));
    let SocketAddr::V4(p4) = peer else {
        panic!("v4")
    };
    match &r[..] {
        [
            Message {
                body: Body::Response(r),
                ..
            },
        ] => {
            let mut values = r.values.clone();
            values.sort();
            assert_eq!(
                values,
                vec![
                    v4(10, 0, 0, 6, 6881),
                    SocketAddr::V4(SocketAddrV4::new(*p4.ip(), 7000))
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    // Still accepted after one rotation, refused after two.
    d.handle_packet(
        peer,
        &announce(token.clone(), false),
        t0 + Duration::from_secs(301),
    );
    assert!(matches!(
        &replies_to(&drain(&mut d), peer)[..],
        [Message {
            body: Body::Response(_),
            ..
        }]
    ));
    d.handle_packet(peer, &announce(token, false), t0 + Duration::from_secs(601));
    assert!(matches!(
        &replies_to(&drain(&mut d), peer)[..],
        [Message {
            body: Body::Error(_),
            ..
        }]
    ));
}

/// A tiny scripted exchange: bootstrap through one address that answers with nodes; the
/// lookup asks them, times out on silent ones, and finishes.
#[test]
fn bootstrap_lookup_follows_answers_and_counts_timeouts() {
    let t0 = Instant::from_secs(1);
    let mut d = Dht::new(DhtConfig::default(), 4, t0);
    let router = addr(100);
    let lid = d.bootstrap(&[router], t0).expect("starts");
    let acts = drain(&mut d);
    let s = sends(&acts);
    assert_eq!(s.len(), 1);
    let (to, m) = &s[0];
    assert_eq!(*to, router);
    assert!(matches!(m.body, Body::Query(Query::FindNode { target, .. }) if target == d.node_id()));
    // The router answers with three nodes, ids near ours.
    let own = d.node_id();
    let mut rng = fastrand::Rng::with_seed(9);
    let nodes: Vec<CompactNode> = (0..3)
        .map(|i| CompactNode {
            id: own.random_with_prefix(20 + i, true, &mut rng),
            addr: v4a(10, 1, 0, i as u8 + 1, 6881),
        })
        .collect();
    let answer = Message {
        transaction: m.transaction.clone(),
        body: Body::Response(Response {
            nodes: nodes.clone(),
            ..Response::id_only(id(0x55))
        }),
    };
    // From the wrong address it does not match.
    d.handle_packet(addr(101), &answer.encode(), t0);
    assert_eq!(d.stats().unmatched, 1);
    d.handle_packet(router, &answer.encode(), t0);
    let asked: Vec<SocketAddr> = sends(&drain(&mut d)).into_iter().map(|(a, _)| a).collect();
    assert_eq!(asked.len(), 3, "alpha = 3 queries to the new nodes");
    assert_eq!(
        d.routing_table().len(),
        1,
        "the router answered: it is in the table"
    );
    assert_eq!(d.outstanding_queries(), 3);
    // Nobody answers: after the timeout the lookup ends.
    let deadline = d.poll_timeout().expect("a deadline");
    assert!(deadline <= t0 + d.config().query_timeout);
    d.handle_timeout(deadline);
    let acts = drain(&mut d);
    let done = acts.iter().find_map(|a| match a {
        DhtAction::LookupDone { id, stats, .. } if *id == lid => Some(*stats),
        _ => None,
    });
    let stats = done.expect("the lookup finished");
    assert_eq!(stats.queries, 4);
    assert_eq!(stats.responses, 1);
    assert_eq!(stats.failures, 3);
    assert_eq!(stats.hops, 1);
    assert_eq!(d.stats().timeouts, 3);
    assert_eq!(d.outstanding_queries(), 0);
}

#[test]
fn lookups_and_outstanding_queries_are_bounded() {
    let t0 = Instant::from_secs(1);
    let config = DhtConfig {
        max_outstanding: 10,
        max_lookups: 4,
        ..DhtConfig::default()
    };
    let mut d = Dht::new(config, 5, t0);
    let seeds: Vec<SocketAddr> = (0..40).map(addr).collect();
    for i in 0..4 {
        d.bootstrap(&seeds[i * 10..], t0).expect("room");
    }
    assert_eq!(
        d.get_peers(crate::InfoHash([1; 20]), t0),
        Err(DhtError::TooManyLookups { limit: 4 })
    );
    for i in 0..50 {
        d.add_node(addr(200 + i), t0);
    }
    assert!(d.outstanding_queries() <= 10);
    drain(&mut d);
    // Time passes, every query times out, lookups drain their seeds and finish.
    let mut now = t0;
    for _ in 0..200 {
        now = d.poll_timeout().expect("deadline").max(now);
        d.handle_timeout(now);
        assert!(d.outstanding_queries() <= 10);
        drain(&mut d);
        if d.lookups_running() == 0 {
            break;
        }
    }
    assert_eq!(d.lookups_running(), 0);
}

#[test]
fn a_lookup_finds_peers_announced_to_ourselves() {
    // Two nodes: B announces to A (its only contact). A's own get_peers has nobody but B
    // to ask, and B stores nothing: the announce is found only in A's own store.
    let now = Instant::ZERO;
    let mut a = Dht::new(DhtConfig::default(), 1, now);
    let mut b = Dht::new(DhtConfig::default(), 2, now);
    let a_addr = SocketAddr::from(([10, 0, 0, 1], 6881));
    let b_addr = SocketAddr::from(([10, 0, 0, 2], 6881));
    let info_hash = crate::InfoHash([7; 20]);
    b.bootstrap(&[a_addr], now).expect("bootstrap");
    let mut t = now;
    let announce = {
        // Let the bootstrap settle, then announce.
        exchange(&mut a, a_addr, &mut b, b_addr, &mut t);
        b.announce(info_hash, Some(7000), t).expect("announce")
    };
    exchange(&mut a, a_addr, &mut b, b_addr, &mut t);
    let _ = announce;
    assert_eq!(a.stats().announces_stored, 1, "A stored B's announce");
    a.get_peers(info_hash, t).expect("lookup");
    let mut found = Vec::new();
    while let Some(action) = a.poll_action() {
        if let DhtAction::Peers { peers, .. } = action {
            found.extend(peers);
        }
    }
    assert_eq!(found, vec![SocketAddr::from(([10, 0, 0, 2], 7000))]);
}

/// Delivers datagrams between two nodes until neither sends, advancing time a little.
fn exchange(a: &mut Dht, a_addr: SocketAddr, b: &mut Dht, b_addr: SocketAddr, t: &mut Instant) {
    for _ in 0..100 {
        let mut moved = false;
        let mut to_b = Vec::new();
        let mut to_a = Vec::new();
        while let Some(action) = a.poll_action() {
            if let DhtAction::Send { to, bytes } = action {
                if to == b_addr {
                    to_b.push(bytes);
                }
            }
        }
        while let Some(action) = b.poll_action() {
            if let DhtAction::Send { to, bytes } = action {
                if to == a_addr {
                    to_a.push(bytes);
                }
            }
        }
        *t += Duration::from_millis(10);
        for p in to_b {
            moved = true;
            b.handle_packet(a_addr, &p, *t);
        }
        for p in to_a {
            moved = true;
            a.handle_packet(b_addr, &p, *t);
        }
        if !moved {
            return;
        }
    }
}

// ---------------------------------------------------------------- BEP 32 (IPv6)

fn v6(last: u16, port: u16) -> SocketAddr {
    SocketAddr::new(
        std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last).into(),
        port,
    )
}

fn v6a(last: u16, port: u16) -> std::net::SocketAddrV6 {
    match v6(last, port) {
        SocketAddr::V6(a) => a,
        SocketAddr::V4(_) => unreachable!("built as IPv6"),
    }
}

/// An IPv6 node. These BEP 32 tests run on documentation addresses (`2001:db8::/32`),
/// public as far as BEP 42 knows, with random ids: enforcement is off here (BEP 42 has
/// its own tests below).
fn config6() -> DhtConfig {
    DhtConfig {
        family: Family::V6,
        enforce_node_id: false,
        ..DhtConfig::default()
    }
}

#[test]
fn nodes6_values6_and_want_round_trip() {
    for want in [
        Want {
            n4: true,
            n6: false,
        },
        Want {
            n4: false,
            n6: true,
        },
        Want { n4: true, n6: true },
    ] {
        for q in [
            Query::FindNode {
                id: id(1),
                target: id(2),
                want,
            },
            Query::GetPeers {
                id: id(1),
                info_hash: id(3),
                want,
            },
        ] {
            roundtrip(&Message {
                transaction: b"w1".to_vec(),
                body: Body::Query(q),
            });
        }
    }
    let r = Response {
        id: id(9),
        nodes: vec![CompactNode {
            id: id(4),
            addr: v4a(1, 2, 3, 4, 5),
        }],
        nodes6: vec![
            krpc::CompactNode6 {
                id: id(5),
                addr: v6a(1, 6881),
            },
            krpc::CompactNode6 {
                id: id(6),
                addr: v6a(0xffff, 65535),
            },
        ],
        values: vec![v6(7, 7000), v4(9, 8, 7, 6, 1), v6(8, 1)],
        token: Some(b"tk".to_vec()),
        ip: Some(v6(0x42, 6881)),
    };
    let m = Message {
        transaction: vec![1, 2],
        body: Body::Response(r),
    };
    roundtrip(&m);
    let bytes = m.encode();
    // 2 × 38 bytes of nodes6; an 18-byte value each for the IPv6 peers.
    assert!(bytes.windows(11).any(|w| w == b"6:nodes676:"));
    assert!(bytes.windows(4).any(|w| w == b"18:\x20"));
    // The wire form of `want` is BEP 32's list of strings.
    let q = query(
        b"w2",
        Query::FindNode {
            id: id(1),
            target: id(2),
            want: Want { n4: true, n6: true },
        },
    );
    assert!(
        q.windows(19).any(|w| w == b"4:wantl2:n42:n6ee1:"),
        "{}",
        String::from_utf8_lossy(&q)
    );
}

#[test]
fn ipv4_messages_stay_as_before_bep32() {
    // No `want` key when nothing is wanted: the BEP 5 get_peers example re-encodes to
    // itself (checked above), and an IPv4 node's own lookups send no `want`.
    let t0 = Instant::from_secs(1);
    let mut d = Dht::new(DhtConfig::default(), 1, t0);
    d.bootstrap(&[addr(1), v6(1, 6881)], t0).expect("bootstrap");
    let sent = sends(&drain(&mut d));
    assert_eq!(
        sent.len(),
        1,
        "the IPv6 seed is not the IPv4 node's: {sent:?}"
    );
    assert_eq!(sent[0].0, addr(1));
    match &sent[0].1.body {
        Body::Query(Query::FindNode { want, .. }) => assert!(want.is_empty()),
        other => panic!("{other:?}"),
    }
    let raw = sent[0].1.encode();
    assert!(!raw.windows(6).any(|w| w == b"4:want"));
}

#[test]
fn malformed_bep32_fields_are_refused_or_skipped() {
    let resp = |key: &[u8], len: usize| {
        let mut b = b"d1:rd2:id20:aaaaaaaaaaaaaaaaaaaa".to_vec();
        b.extend_from_slice(format!("{}:", key.len()).as_bytes());
        b.extend_from_slice(key);
        b.extend_from_slice(format!("{len}:").as_bytes());
        b.extend(std::iter::repeat_n(b'x', len));
        b.extend_from_slice(b"e1:t2:aa1:y1:re");
        Message::decode(&b, MAX)
    };
    for len in [1, 26, 37, 39, 75] {
        assert_eq!(
            resp(b"nodes6", len).map_err(|e| e.kind),
            Err(KrpcErrorKind::BadLength { key: "nodes6", len }),
            "nodes6 of {len} bytes"
        );
    }
    for len in [0, 38, 76] {
        let m = resp(b"nodes6", len).expect("a multiple of 38 decodes");
        let Body::Response(r) = m.body else {
            panic!("response")
        };
        assert_eq!(r.nodes6.len(), len / 38);
    }
    // Values of other lengths than 6 and 18 are skipped, the rest kept.
    let b = b"d1:rd2:id20:aaaaaaaaaaaaaaaaaaaa6:valuesl6:abcdef17:aaaaaaaaaaaaaaaaa18:bbbbbbbbbbbbbbbbbb19:ccccccccccccccccccce5:token1:xe1:t2:aa1:y1:re";
    let Body::Response(r) = Message::decode(b, MAX).expect("decodes").body else {
        panic!("response")
    };
    assert_eq!(r.values.len(), 2);
    assert!(r.values[0].is_ipv4() && r.values[1].is_ipv6());
    // A `want` that is no list is a protocol error answered with 203; unknown items and
    // non-strings in the list are ignored.
    let bad = b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa6:target20:bbbbbbbbbbbbbbbbbbbb4:want2:n6e1:q9:find_node1:t2:aa1:y1:qe";
    let e = Message::decode(bad, MAX).expect_err("want must be a list");
    assert_eq!(e.kind, KrpcErrorKind::WrongType("want"));
    assert_eq!(
        (e.reply_to.as_deref(), e.code()),
        (Some(&b"aa"[..]), ERROR_PROTOCOL)
    );
    let odd = b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa6:target20:bbbbbbbbbbbbbbbbbbbb4:wantl2:n9i6eli1ee2:n6ee1:q9:find_node1:t2:aa1:y1:qe";
    match Message::decode(odd, MAX).expect("decodes").body {
        Body::Query(Query::FindNode { want, .. }) => {
            assert_eq!(
                want,
                Want {
                    n4: false,
                    n6: true
                }
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A v6 node `a` whose table holds `b` (another v6 node), after an exchange.
fn v6_pair(t: &mut Instant) -> (Dht, SocketAddr, Dht, SocketAddr) {
    let mut a = Dht::new(config6(), 1, *t);
    let mut b = Dht::new(config6(), 2, *t);
    let (a_addr, b_addr) = (v6(1, 6881), v6(2, 6881));
    b.bootstrap(&[a_addr], *t).expect("bootstrap");
    exchange(&mut a, a_addr, &mut b, b_addr, t);
    assert_eq!(a.routing_table().len(), 1, "A knows B");
    assert_eq!(b.routing_table().len(), 1, "B knows A");
    (a, a_addr, b, b_addr)
}

#[test]
fn an_ipv6_node_asks_with_want_n6_and_answers_with_nodes6() {
    let mut t = Instant::from_secs(1);
    let (mut a, _, b, b_addr) = v6_pair(&mut t);
    // Its own queries say `want: ["n6"]`, and only go to IPv6 addresses.
    a.find_node(id(0x33), t).expect("lookup");
    for (to, m) in sends(&drain(&mut a)) {
        assert!(to.is_ipv6());
        if let Body::Query(Query::FindNode { want, .. }) = m.body {
            assert_eq!(
                want,
                Want {
                    n4: false,
                    n6: true
                }
            );
        }
    }
    let asker = v6(3, 6881);
    let ask = |a: &mut Dht, want: Want, t: Instant| {
        let q = Query::FindNode {
            id: id(0x77),
            target: id(0x33),
            want,
        };
        a.handle_packet(asker, &query(b"f6", q), t);
        match &replies_to(&drain(a), asker)[..] {
            [
                Message {
                    body: Body::Response(r),
                    ..
                },
            ] => r.clone(),
            other => panic!("{other:?}"),
        }
    };
    let b_node = krpc::CompactNode6 {
        id: b.node_id(),
        addr: match b_addr {
            SocketAddr::V6(x) => x,
            SocketAddr::V4(_) => unreachable!(),
        },
    };
    // want n6, and no want at all over IPv6: nodes6.
    for want in [
        Want {
            n4: false,
            n6: true,
        },
        Want::default(),
    ] {
        let r = ask(&mut a, want, t);
        assert_eq!((r.nodes.clone(), r.nodes6.clone()), (vec![], vec![b_node]));
    }
    // want n4 alone, with no IPv4 sibling: nothing to give.
    let r = ask(
        &mut a,
        Want {
            n4: true,
            n6: false,
        },
        t,
    );
    assert!(r.nodes.is_empty() && r.nodes6.is_empty());
    // With an IPv4 sibling that knows an IPv4 node, want n4 + n6 gets both.
    let mut s4 = Dht::new(DhtConfig::default(), 3, t);
    let mut n4 = Dht::new(DhtConfig::default(), 4, t);
    let (s4_addr, n4_addr) = (addr(1), addr(2));
    n4.bootstrap(&[s4_addr], t).expect("bootstrap");
    exchange(&mut s4, s4_addr, &mut n4, n4_addr, &mut t);
    let q = Query::FindNode {
        id: id(0x77),
        target: id(0x33),
        want: Want { n4: true, n6: true },
    };
    a.handle_packet_with(asker, &query(b"f7", q.clone()), t, Some(&s4));
    let replies = replies_to(&drain(&mut a), asker);
    let [
        Message {
            body: Body::Response(r),
            ..
        },
    ] = &replies[..]
    else {
        panic!("{replies:?}")
    };
    assert_eq!(r.nodes6, vec![b_node]);
    assert_eq!(
        r.nodes.iter().map(|n| n.id).collect::<Vec<_>>(),
        vec![n4.node_id()]
    );
    // And the IPv4 side answers an IPv4 asker's `want n6` from the IPv6 sibling.
    s4.handle_packet_with(addr(9), &query(b"f8", q), t, Some(&a));
    let replies = replies_to(&drain(&mut s4), addr(9));
    let [
        Message {
            body: Body::Response(r),
            ..
        },
    ] = &replies[..]
    else {
        panic!("{replies:?}")
    };
    assert!(r.nodes6.contains(&b_node));
    assert_eq!(r.nodes.len(), 1);
}

#[test]
fn an_ipv6_node_stores_and_returns_18_byte_peers_and_drops_ipv4() {
    let mut t = Instant::from_secs(1);
    let (mut a, a_addr, mut b, b_addr) = v6_pair(&mut t);
    let info_hash = crate::InfoHash([7; 20]);
    b.announce(info_hash, Some(7000), t).expect("announce");
    exchange(&mut a, a_addr, &mut b, b_addr, &mut t);
    assert_eq!(a.stats().announces_stored, 1);
    // A third v6 node asks A and gets B's IPv6 peer address.
    let c_addr = v6(3, 6881);
    let mut c = Dht::new(config6(), 3, t);
    c.bootstrap(&[a_addr], t).expect("bootstrap");
    exchange(&mut a, a_addr, &mut c, c_addr, &mut t);
    c.get_peers(info_hash, t).expect("lookup");
    let mut found = Vec::new();
    for _ in 0..50 {
        let mut to_a = Vec::new();
        while let Some(action) = c.poll_action() {
            match action {
                DhtAction::Peers { peers, .. } => found.extend(peers),
                DhtAction::Send { to, bytes } if to == a_addr => to_a.push(bytes),
                _ => {}
            }
        }
        t += Duration::from_millis(10);
        for p in to_a {
            a.handle_packet(c_addr, &p, t);
        }
        while let Some(action) = a.poll_action() {
            if let DhtAction::Send { to, bytes } = action {
                if to == c_addr {
                    c.handle_packet(a_addr, &bytes, t);
                }
            }
        }
    }
    assert!(found.contains(&v6(2, 7000)), "{found:?}");
    // IPv4 (and IPv4-mapped) datagrams are the other family's: counted, not answered.
    let ping = query(b"p4", Query::Ping { id: id(7) });
    let mapped: SocketAddr = "[::ffff:10.0.0.1]:6881".parse().expect("addr");
    a.handle_packet(addr(1), &ping, t);
    a.handle_packet(mapped, &ping, t);
    assert!(sends(&drain(&mut a)).is_empty());
    assert_eq!(a.stats().wrong_family, 2);
    assert_eq!(canonical(mapped), addr(0));
}

// ---------------------------------------------------------------- BEP 42 (node-id security)

use super::node_id_security::{VOTES_NEEDED, compliant_id, is_compliant};

/// Pings each of `nodes` (as `add_node` does) and answers every ping sent with a response
/// from that node: id `id_of(addr)`, and `ip` = `seen_as` when given.
fn pinged_and_answered(
    d: &mut Dht,
    nodes: &[SocketAddr],
    id_of: &dyn Fn(SocketAddr) -> NodeId,
    seen_as: Option<SocketAddr>,
    t: Instant,
) {
    for &n in nodes {
        d.add_node(n, t);
    }
    for (to, m) in sends(&drain(d)) {
        if !nodes.contains(&to) || !matches!(m.body, Body::Query(Query::Ping { .. })) {
            continue;
        }
        let answer = Message {
            transaction: m.transaction,
            body: Body::Response(Response {
                ip: seen_as,
                ..Response::id_only(id_of(to))
            }),
        };
        d.handle_packet(to, &answer.encode(), t);
    }
}

/// Private voters (exempt, so any id is theirs to use): 10.0.1.n.
fn voters(range: std::ops::Range<u8>) -> Vec<SocketAddr> {
    range.map(|n| v4(10, 0, 1, n, 6881)).collect()
}

/// A voter's id: random, fixed by its address.
fn voter_id(addr: SocketAddr) -> NodeId {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v) => u64::from(u32::from(v)),
        std::net::IpAddr::V6(_) => 0,
    };
    NodeId::random(&mut fastrand::Rng::with_seed(
        ip << 16 | u64::from(addr.port()),
    ))
}

#[test]
fn answers_carry_the_askers_address_as_a_top_level_ip() {
    let t0 = Instant::from_secs(1);
    // IPv4: 6 bytes; IPv6: 18 bytes; on every kind of answer.
    for (config, from) in [
        (DhtConfig::default(), v4(81, 2, 3, 4, 6881)),
        (config6(), v6(9, 7000)),
    ] {
        let mut d = Dht::new(config, 1, t0);
        let queries = [
            Query::Ping { id: id(7) },
            Query::FindNode {
                id: id(7),
                target: id(8),
                want: Want::default(),
            },
            Query::GetPeers {
                id: id(7),
                info_hash: id(8),
                want: Want::default(),
            },
        ];
        for (i, q) in queries.into_iter().enumerate() {
            d.handle_packet(from, &query(&[b'q', i as u8], q), t0);
            let acts = drain(&mut d);
            let raw = acts
                .iter()
                .find_map(|a| match a {
                    DhtAction::Send { to, bytes } if *to == from => {
                        let m = Message::decode(bytes, MAX).expect("valid");
                        matches!(m.body, Body::Response(_)).then(|| bytes.clone())
                    }
                    _ => None,
                })
                .expect("an answer");
            let m = Message::decode(&raw, MAX).expect("valid");
            let Body::Response(r) = m.body else {
                panic!("a response")
            };
            assert_eq!(r.ip, Some(from));
            // On the wire: top level, compact, beside `r` (not inside it).
            let mut compact = Vec::new();
            krpc::put_compact_peer(&mut compact, &from);
            let mut key = format!("2:ip{}:", compact.len()).into_bytes();
            key.extend_from_slice(&compact);
            assert!(
                raw[1..].starts_with(&key),
                "`ip` leads the top-level dictionary"
            );
        }
    }
}

#[test]
fn ip_is_read_from_the_top_level_and_a_malformed_one_is_ignored() {
    // libtorrent's shape: `ip` beside `r`.
    let ok = b"d2:ip6:\x7c\x1f\x4b\x15\x1a\xe11:rd2:id20:abcdefghij0123456789e1:t2:aa1:y1:re";
    let Body::Response(r) = Message::decode(ok, MAX).expect("decodes").body else {
        panic!("a response")
    };
    assert_eq!(r.ip, Some(v4(124, 31, 75, 21, 6881)));
    // Five bytes, or not a string: the answer is still good, without `ip`.
    for bad in [
        &b"d2:ip5:\x7c\x1f\x4b\x15\x1a1:rd2:id20:abcdefghij0123456789e1:t2:aa1:y1:re"[..],
        b"d2:ipi5e1:rd2:id20:abcdefghij0123456789e1:t2:aa1:y1:re",
    ] {
        let Body::Response(r) = Message::decode(bad, MAX).expect("decodes").body else {
            panic!("a response")
        };
        assert_eq!(r.ip, None);
        assert_eq!(r.id, NodeId(*b"abcdefghij0123456789"));
    }
}

#[test]
fn agreeing_ip_votes_give_us_an_id_compliant_with_our_external_address() {
    let t0 = Instant::from_secs(1);
    let mut d = Dht::new(DhtConfig::default(), 11, t0);
    let first = d.node_id();
    let us = v4(124, 31, 75, 21, 6881);
    assert!(!is_compliant(&first, us.ip()), "a random id, as expected");
    // One short of the threshold: nothing changes.
    let early = voters(1..VOTES_NEEDED as u8);
    pinged_and_answered(&mut d, &early, &voter_id, Some(us), t0);
    assert_eq!(d.node_id(), first);
    assert_eq!(d.external_address(), None);
    assert_eq!(d.routing_table().len(), early.len());
    // One more distinct voter agrees: our id now matches our address.
    let last = voters(VOTES_NEEDED as u8..VOTES_NEEDED as u8 + 1);
    pinged_and_answered(&mut d, &last, &voter_id, Some(us), t0);
    let second = d.node_id();
    assert_ne!(second, first);
    assert!(is_compliant(&second, us.ip()));
    assert_eq!(d.external_address(), Some(us.ip()));
    assert_eq!(d.stats().node_id_changes, 1);
    // The table is re-centred on the new id and keeps every node.
    let rt = d.routing_table();
    assert_eq!(rt.own_id(), second);
    assert_eq!(rt.len(), VOTES_NEEDED);
    for v in voters(1..VOTES_NEEDED as u8 + 1) {
        assert!(rt.get(&voter_id(v)).is_some(), "{v} kept");
    }
    // A find_node for the new id goes out (to the nodes near our new place), with it.
    let sent = sends(&drain(&mut d));
    assert!(
        sent.iter().any(|(_, m)| matches!(
            m.body,
            Body::Query(Query::FindNode { id, target, .. }) if id == second && target == second
        )),
        "{sent:?}"
    );
    // Same seed, same inputs: the same new id.
    let mut again = Dht::new(DhtConfig::default(), 11, t0);
    pinged_and_answered(
        &mut again,
        &voters(1..VOTES_NEEDED as u8 + 1),
        &voter_id,
        Some(us),
        t0,
    );
    assert_eq!(again.node_id(), second);
}

#[test]
fn an_id_already_valid_for_the_confirmed_address_is_kept() {
    let t0 = Instant::from_secs(1);
    let mut d = Dht::new(DhtConfig::default(), 12, t0);
    let a = v4(124, 31, 75, 21, 6881);
    pinged_and_answered(&mut d, &voters(1..5), &voter_id, Some(a), t0);
    let id_for_a = d.node_id();
    assert!(is_compliant(&id_for_a, a.ip()));
    // Our address moves to one equal to it under the BEP 42 mask (124 & 0x03 == 128 &
    // 0x03, 31 & 0x0f == 47 & 0x0f): confirmed, and our id is valid there already.
    let b = v4(128, 47, 75, 21, 6881);
    assert!(is_compliant(&id_for_a, b.ip()));
    pinged_and_answered(&mut d, &voters(10..16), &voter_id, Some(b), t0);
    assert_eq!(d.external_address(), Some(b.ip()));
    assert_eq!(d.node_id(), id_for_a);
    assert_eq!(d.stats().node_id_changes, 1);
    // A local address is no reason to change either: any id is valid there.
    let mut l = Dht::new(DhtConfig::default(), 13, t0);
    let first = l.node_id();
    let lan = v4(192, 168, 1, 50, 6881);
    pinged_and_answered(&mut l, &voters(1..8), &voter_id, Some(lan), t0);
    assert_eq!(l.external_address(), Some(lan.ip()));
    assert_eq!(l.node_id(), first);
    assert_eq!(l.stats().node_id_changes, 0);
}

#[test]
fn votes_count_only_from_answers_to_our_queries_and_one_per_ip() {
    let t0 = Instant::from_secs(1);
    let mut d = Dht::new(DhtConfig::default(), 14, t0);
    let first = d.node_id();
    let us = v4(124, 31, 75, 21, 6881);
    // Unsolicited answers carrying `ip`: unmatched, no vote.
    for n in 1..20 {
        let forged = Message {
            transaction: vec![0, n],
            body: Body::Response(Response {
                ip: Some(us),
                ..Response::id_only(id(n))
            }),
        };
        d.handle_packet(v4(10, 0, 2, n, 6881), &forged.encode(), t0);
    }
    // One host on many ports is one voter.
    let ports: Vec<SocketAddr> = (1..10).map(|p| v4(10, 0, 3, 1, 6000 + p)).collect();
    pinged_and_answered(&mut d, &ports, &voter_id, Some(us), t0);
    assert_eq!(d.external_address(), None);
    assert_eq!(d.node_id(), first);
}

/// A node at `addr` with an id valid for it under BEP 42.
fn compliant_for(addr: SocketAddr) -> NodeId {
    let mut rng = fastrand::Rng::with_seed(u64::from(addr.port()));
    compliant_id(addr.ip(), &mut rng)
}

#[test]
fn with_enforcement_non_compliant_public_nodes_stay_out_of_the_table() {
    let t0 = Instant::from_secs(1);
    let public_bad = v4(81, 2, 3, 4, 6881);
    let public_good = v4(81, 2, 3, 5, 6882);
    let private = v4(192, 168, 1, 9, 6883);
    let loopback = v4(127, 0, 0, 9, 6884);
    let bad_id = id(7);
    assert!(!is_compliant(&bad_id, public_bad.ip()));
    let ids = move |a: SocketAddr| {
        if a == public_good {
            compliant_for(a)
        } else if a == private {
            id(8)
        } else if a == loopback {
            id(9)
        } else {
            bad_id
        }
    };
    let all = [public_bad, public_good, private, loopback];

    let mut d = Dht::new(DhtConfig::default(), 21, t0);
    assert!(d.config().enforce_node_id, "on by default");
    pinged_and_answered(&mut d, &all, &ids, None, t0);
    let rt = d.routing_table();
    assert!(
        rt.get(&bad_id).is_none(),
        "non-compliant public node kept out"
    );
    assert!(rt.get(&compliant_for(public_good)).is_some());
    assert!(rt.get(&id(8)).is_some(), "private addresses are exempt");
    assert!(rt.get(&id(9)).is_some(), "loopback is exempt");
    assert_eq!(rt.len(), 3);
    assert_eq!(d.stats().non_compliant, 1);
    // It is never handed out to others either.
    d.handle_packet(
        private,
        &query(
            b"fn",
            Query::FindNode {
                id: id(8),
                target: bad_id,
                want: Want::default(),
            },
        ),
        t0,
    );
    let replies = replies_to(&drain(&mut d), private);
    let Some(Body::Response(r)) = replies.first().map(|m| m.body.clone()) else {
        panic!("answered")
    };
    assert!(r.nodes.iter().all(|n| n.id != bad_id));
    // Its queries are still answered, but it is not pinged to enter the table.
    let asker = v4(81, 2, 3, 6, 6881);
    d.handle_packet(asker, &query(b"p1", Query::Ping { id: bad_id }), t0);
    let acts = drain(&mut d);
    assert_eq!(replies_to(&acts, asker).len(), 1, "answered");
    assert!(
        !sends(&acts)
            .iter()
            .any(|(to, m)| *to == asker && matches!(m.body, Body::Query(_))),
        "not pinged"
    );
    // A compliant asker is pinged, as before.
    let good_asker = v4(81, 2, 3, 7, 6885);
    let good_id = compliant_for(good_asker);
    d.handle_packet(good_asker, &query(b"p2", Query::Ping { id: good_id }), t0);
    assert!(
        sends(&drain(&mut d))
            .iter()
            .any(|(to, m)| *to == good_asker && matches!(m.body, Body::Query(Query::Ping { .. })))
    );

    // Enforcement off: everyone is in.
    let config = DhtConfig {
        enforce_node_id: false,
        ..DhtConfig::default()
    };
    let mut open = Dht::new(config, 21, t0);
    pinged_and_answered(&mut open, &all, &ids, None, t0);
    assert_eq!(open.routing_table().len(), 4);
    assert!(open.routing_table().get(&bad_id).is_some());
    assert_eq!(open.stats().non_compliant, 0);
}

#[test]
fn with_enforcement_a_non_compliant_node_gets_no_announce() {
    let t0 = Instant::from_secs(1);
    let bad = v4(81, 2, 3, 4, 6881);
    let good = v4(81, 2, 3, 5, 6881);
    let good_id = compliant_for(good);
    let ih = crate::InfoHash([0x42; 20]);
    // The good node is known; during the announce it names the bad one, which answers
    // with a token too.
    let run = |enforce_node_id: bool| {
        let config = DhtConfig {
            enforce_node_id,
            ..DhtConfig::default()
        };
        let mut d = Dht::new(config, 22, t0);
        pinged_and_answered(&mut d, &[good], &|_| good_id, None, t0);
        assert_eq!(d.routing_table().len(), 1);
        d.announce(ih, Some(7000), t0).expect("announce");
        let (mut asked_bad, mut announced) = (false, Vec::new());
        for _ in 0..6 {
            for (to, m) in sends(&drain(&mut d)) {
                match m.body {
                    Body::Query(Query::GetPeers { .. }) => {
                        asked_bad |= to == bad;
                        let (rid, nodes) = if to == good {
                            let SocketAddr::V4(b) = bad else {
                                unreachable!("IPv4")
                            };
                            (good_id, vec![CompactNode { id: id(7), addr: b }])
                        } else {
                            (id(7), Vec::new())
                        };
                        let answer = Message {
                            transaction: m.transaction,
                            body: Body::Response(Response {
                                token: Some(b"tok".to_vec()),
                                nodes,
                                ..Response::id_only(rid)
                            }),
                        };
                        d.handle_packet(to, &answer.encode(), t0);
                    }
                    Body::Query(Query::AnnouncePeer { .. }) => announced.push(to),
                    _ => {}
                }
            }
        }
        assert!(asked_bad, "the lookup asked the node it was told of");
        announced.sort();
        announced
    };
    assert_eq!(
        run(true),
        vec![good],
        "only the compliant node is a storage target"
    );
    assert_eq!(run(false), vec![bad, good], "without enforcement, both");
}

#[test]
fn enforcement_is_off_for_a_loopback_socket_only() {
    let on = DhtConfig::default();
    assert!(
        !on.clone()
            .for_socket(&v4(127, 0, 0, 1, 6881))
            .enforce_node_id
    );
    let lo6: SocketAddr = "[::1]:6881".parse().expect("addr");
    assert!(!on.clone().for_socket(&lo6).enforce_node_id);
    assert!(on.clone().for_socket(&v4(0, 0, 0, 0, 6881)).enforce_node_id);
    assert!(
        on.clone()
            .for_socket(&v4(192, 168, 1, 2, 6881))
            .enforce_node_id
    );
    // Never turned on by it.
    let off = DhtConfig {
        enforce_node_id: false,
        ..on
    };
    assert!(!off.for_socket(&v4(81, 2, 3, 4, 6881)).enforce_node_id);
}

#[test]
fn re_centring_the_table_keeps_its_shape_and_its_nodes() {
    let t0 = Instant::from_secs(1);
    let mut rng = fastrand::Rng::with_seed(5);
    let own = NodeId::random(&mut rng);
    let mut rt = RoutingTable::new(own, RoutingConfig::default(), t0);
    let ids: Vec<NodeId> = (0..300)
        .map(|i| {
            // Many near our id, so the table splits deep.
            own.random_with_prefix(i % 40, true, &mut rng)
        })
        .collect();
    for (i, n) in ids.iter().enumerate() {
        rt.heard_from(*n, addr(i as u32), t0);
    }
    let before = rt.len();
    let new_own = NodeId::random(&mut rng);
    let t1 = t0 + Duration::from_secs(1);
    rt.set_own_id(new_own, t1);
    assert_eq!(rt.own_id(), new_own);
    // Every bucket but the last holds exactly the nodes at its distance; none is lost to
    // a wrong bucket, and what fits is kept (the far buckets now take the old near ones).
    let last = rt.bucket_count() - 1;
    let mut kept = 0;
    for i in 0..rt.bucket_count() {
        assert!(rt.bucket(i).len() <= K);
        for e in rt.bucket(i) {
            let lz = new_own.distance(&e.id).leading_zeros() as usize;
            if i < last {
                assert_eq!(lz, i);
            } else {
                assert!(lz >= i);
            }
            assert_eq!(rt.get(&e.id), Some(e));
            kept += 1;
        }
    }
    assert_eq!(kept, rt.len());
    assert!(!rt.is_empty() && rt.len() <= before);
    assert!(
        rt.entries().all(|e| ids.contains(&e.id)),
        "no node invented"
    );
    // The state of each node survives: still good (answered at t0).
    assert!(rt.entries().all(|e| e.last_response == Some(t0)));
    assert_eq!(rt.good_nodes(t1).len(), rt.len());
}
