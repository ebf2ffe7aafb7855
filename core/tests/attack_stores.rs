//! Issue 17, the stores under attack, in virtual time: floods of random info-hashes against
//! the tracker server and a DHT node's peer store must not lock a new honest swarm out.
//!
//! The rules under test (see `core/src/tracker/server/mod.rs` and
//! `core/src/dht/peer_store.rs`): a full store evicts its smallest, stalest swarm instead of
//! refusing a new one, and one address may create only a few swarms per window.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use unchoke_core::dht::krpc::{Body, Message, Query, Want};
use unchoke_core::dht::peer_store::SwarmQuota;
use unchoke_core::dht::{Dht, DhtAction, DhtConfig, NodeId};
use unchoke_core::info_hash::InfoHash;
use unchoke_core::time::Instant;
use unchoke_core::tracker::server::{ServerConfig, ServerError, TrackerServer};
use unchoke_core::tracker::{AnnounceEvent, AnnounceRequest};
use unchoke_core::wire::PeerId;

fn ip(n: u32) -> IpAddr {
    // 10.0.0.0/8: room for every attacker address, never loopback.
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
}

fn announce(hash: InfoHash, peer: u32, left: u64) -> AnnounceRequest {
    let mut id = [b'p'; 20];
    id[..4].copy_from_slice(&peer.to_be_bytes());
    AnnounceRequest {
        info_hash: hash,
        peer_id: PeerId(id),
        port: 6881,
        uploaded: 0,
        downloaded: 0,
        left,
        event: AnnounceEvent::Started,
        numwant: None,
        key: peer,
        ip: None,
        ipv6: None,
        tracker_id: None,
    }
}

fn random_hash(rng: &mut fastrand::Rng) -> InfoHash {
    let mut h = [0u8; 20];
    rng.fill(&mut h);
    InfoHash(h)
}

/// Addresses of the honest seed and leecher: outside every attacker range.
const SEED: u32 = 0x00ff_0001;
const LEECHER: u32 = 0x00ff_0002;

/// The honest pair: the seed announces, `gap` of virtual time passes while `flood` runs,
/// then the leecher announces and must be given the seed.
fn honest_pair_finds_each_other(
    s: &mut TrackerServer,
    now: &mut Instant,
    gap_flood: impl FnOnce(&mut TrackerServer, &mut Instant),
) {
    let honest = InfoHash([0x42; 20]);
    let seed_at = *now;
    s.announce(
        &announce(honest, SEED, 0),
        SocketAddr::new(ip(SEED), 40_000),
        *now,
    )
    .expect("the honest seed's swarm is created under pressure");
    gap_flood(s, now);
    let reply = s
        .announce(
            &announce(honest, LEECHER, 1000),
            SocketAddr::new(ip(LEECHER), 40_000),
            *now,
        )
        .expect("the honest leecher is admitted");
    let seed_addr = SocketAddr::new(ip(SEED), 6881);
    assert_eq!(
        reply.peers.iter().map(|p| p.addr).collect::<Vec<_>>(),
        vec![seed_addr],
        "the leecher gets the seed"
    );
    // The stated bound: the leecher has its seed at its first announce, within 60 s of
    // virtual time of the seed's, while the flood runs.
    assert!(now.saturating_duration_since(seed_at) <= Duration::from_secs(60));
}

#[test]
fn tracker_flood_from_a_few_addresses_is_stopped_by_the_quota() {
    let mut s = TrackerServer::new(ServerConfig::default(), 17);
    let mut rng = fastrand::Rng::with_seed(1);
    let mut now = Instant::from_secs(100);
    let mut quota_refusals = 0;
    // 12,000 random hashes from 4 addresses, 1 ms apart.
    for i in 0..12_000u32 {
        let from = SocketAddr::new(ip(1 + i % 4), 50_000);
        match s.announce(&announce(random_hash(&mut rng), i, 0), from, now) {
            Ok(_) => {}
            Err(ServerError::QuotaExceeded) => quota_refusals += 1,
            Err(e) => panic!("unexpected refusal {e}"),
        }
        now += Duration::from_millis(1);
    }
    // Each address created its 20; everything else was refused, and said why.
    assert_eq!(s.swarm_count(), 4 * 20);
    assert_eq!(quota_refusals, 12_000 - 80);
    assert_eq!(s.evicted_swarms(), 0);
    honest_pair_finds_each_other(&mut s, &mut now, |s, now| {
        // The flood goes on between the honest announces.
        for i in 0..1_000u32 {
            let from = SocketAddr::new(ip(1 + i % 4), 50_000);
            let r = s.announce(&announce(random_hash(&mut rng), i, 0), from, *now);
            assert_eq!(r.err(), Some(ServerError::QuotaExceeded));
            *now += Duration::from_millis(10);
        }
    });
}

#[test]
fn tracker_quota_message_says_why_and_the_window_slides() {
    let mut s = TrackerServer::new(ServerConfig::default(), 18);
    let from = SocketAddr::new(ip(7), 50_000);
    let mut now = Instant::from_secs(100);
    for h in 0..20u8 {
        s.announce(&announce(InfoHash([h; 20]), 1, 0), from, now)
            .expect("within the quota of 20");
    }
    let err = s
        .announce(&announce(InfoHash([99; 20]), 1, 0), from, now)
        .expect_err("the 21st new hash in 30 min is refused");
    assert_eq!(err, ServerError::QuotaExceeded);
    assert!(
        err.to_string()
            .contains("too many new torrents from this address")
    );
    // Re-announcing into its swarms is not creating: still served.
    s.announce(&announce(InfoHash([3; 20]), 1, 0), from, now)
        .expect("existing swarm");
    // 30 minutes after the first creations, the address may create again.
    now += Duration::from_secs(30 * 60);
    s.announce(&announce(InfoHash([99; 20]), 1, 0), from, now)
        .expect("the window slid");
}

#[test]
fn tracker_flood_from_many_addresses_evicts_junk_not_the_honest_swarm() {
    // 12,000 addresses, one hash each: the quota cannot help, eviction must.
    let mut s = TrackerServer::new(ServerConfig::default(), 19);
    let mut rng = fastrand::Rng::with_seed(2);
    let mut now = Instant::from_secs(100);
    for i in 0..12_000u32 {
        let from = SocketAddr::new(ip(0x1_0000 + i), 50_000);
        s.announce(&announce(random_hash(&mut rng), i, 0), from, now)
            .expect("a full tracker evicts instead of refusing");
        now += Duration::from_millis(1);
    }
    assert_eq!(s.swarm_count(), 10_000);
    assert_eq!(s.evicted_swarms(), 2_000);
    honest_pair_finds_each_other(&mut s, &mut now, |s, now| {
        // 5,000 more junk swarms while the honest seed waits for its leecher.
        for i in 0..5_000u32 {
            let from = SocketAddr::new(ip(0x2_0000 + i), 50_000);
            s.announce(&announce(random_hash(&mut rng), i, 0), from, *now)
                .expect("evicts");
            *now += Duration::from_millis(10);
        }
    });
    assert_eq!(s.swarm_count(), 10_000);
    assert!(s.peer_count() <= ServerConfig::default().max_total_peers);
}

// ---------------------------------------------------------------- DHT store

const MAX: usize = 1500;

fn node(n: u32) -> SocketAddr {
    SocketAddr::new(ip(n), 6881)
}

fn node_id(n: u32) -> NodeId {
    let mut id = [0x5a; 20];
    id[..4].copy_from_slice(&n.to_be_bytes());
    NodeId(id)
}

/// Sends `q` from `from`; returns the node's answer to it.
fn ask(d: &mut Dht, from: SocketAddr, q: Query, now: Instant) -> Body {
    let bytes = Message {
        transaction: b"aa".to_vec(),
        body: Body::Query(q),
    }
    .encode();
    d.handle_packet(from, &bytes, now);
    let mut answer = None;
    while let Some(action) = d.poll_action() {
        if let DhtAction::Send { to, bytes } = action {
            let m = Message::decode(&bytes, MAX).expect("the node sends valid KRPC");
            if to == from && !matches!(m.body, Body::Query(_)) {
                answer = Some(m.body);
            }
        }
    }
    answer.expect("every query is answered")
}

/// `get_peers` then `announce_peer` from `n` for `hash`: the announce's answer.
fn announce_peer(d: &mut Dht, n: u32, hash: NodeId, now: Instant) -> Body {
    let Body::Response(r) = ask(
        d,
        node(n),
        Query::GetPeers {
            id: node_id(n),
            info_hash: hash,
            want: Want::default(),
        },
        now,
    ) else {
        panic!("get_peers refused");
    };
    let token = r.token.expect("get_peers gives a token");
    ask(
        d,
        node(n),
        Query::AnnouncePeer {
            id: node_id(n),
            info_hash: hash,
            port: 6881,
            implied_port: false,
            token,
        },
        now,
    )
}

fn random_id(rng: &mut fastrand::Rng) -> NodeId {
    let mut h = [0u8; 20];
    rng.fill(&mut h);
    NodeId(h)
}

/// After the flood: an honest peer announces a new swarm and another one finds it.
fn honest_announce_then_get_peers(d: &mut Dht, now: Instant) {
    let honest = NodeId([0x42; 20]);
    let reply = announce_peer(d, SEED, honest, now);
    assert!(
        matches!(reply, Body::Response(_)),
        "the honest announce is stored: {reply:?}"
    );
    let Body::Response(r) = ask(
        d,
        node(LEECHER),
        Query::GetPeers {
            id: node_id(LEECHER),
            info_hash: honest,
            want: Want::default(),
        },
        now + Duration::from_millis(5),
    ) else {
        panic!("get_peers refused");
    };
    assert_eq!(
        r.values,
        vec![SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(0x0a00_0000 + SEED),
            6881
        ))]
    );
}

#[test]
fn dht_store_flood_from_a_few_addresses_is_stopped_by_the_quota() {
    let t0 = Instant::from_secs(10);
    let mut d = Dht::new(DhtConfig::default(), 3, t0);
    let mut rng = fastrand::Rng::with_seed(3);
    let mut now = t0;
    let mut refused = 0;
    // 1,000 junk announces from 5 addresses, each address under its rate limit (2
    // queries per announce, 20 queries/s per address).
    for i in 0..1_000u32 {
        let from = 1 + i % 5;
        match announce_peer(&mut d, from, random_id(&mut rng), now) {
            Body::Response(_) => {}
            Body::Error(e) => {
                assert!(
                    String::from_utf8_lossy(&e.message).contains("too many new info-hashes"),
                    "{e:?}"
                );
                refused += 1;
            }
            Body::Query(_) => unreachable!("filtered out by ask"),
        }
        now += Duration::from_millis(25);
    }
    assert_eq!(d.peer_store().hashes(), 5 * 20);
    assert_eq!(refused, 1_000 - 100);
    assert_eq!(
        d.stats().rate_limited,
        0,
        "the flood is not merely rate-limited"
    );
    // Bound: the honest swarm is stored and found at once, 25 s of virtual time into the
    // flood.
    honest_announce_then_get_peers(&mut d, now);
}

#[test]
fn dht_store_flood_from_many_addresses_evicts_junk() {
    let t0 = Instant::from_secs(10);
    let config = DhtConfig::default();
    assert_eq!(config.peer_store.max_hashes, 1_000);
    assert_eq!(config.peer_store.quota, Some(SwarmQuota::default()));
    let mut d = Dht::new(config, 4, t0);
    let mut rng = fastrand::Rng::with_seed(4);
    let mut now = t0;
    // 1,500 junk announces from 1,500 addresses: the store fills, then evicts.
    for i in 0..1_500u32 {
        let reply = announce_peer(&mut d, 0x1_0000 + i, random_id(&mut rng), now);
        assert!(matches!(reply, Body::Response(_)), "{reply:?}");
        now += Duration::from_millis(2);
    }
    assert_eq!(d.peer_store().hashes(), 1_000);
    assert_eq!(d.peer_store().evicted(), 500);
    honest_announce_then_get_peers(&mut d, now);
    assert_eq!(d.peer_store().hashes(), 1_000);
}
