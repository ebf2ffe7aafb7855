//! An in-process network of 120 DHT nodes over an in-memory packet router with a small,
//! deterministic virtual latency (no sockets, no clock): nodes bootstrap from a few seed
//! nodes, one announces an info-hash, and get_peers lookups from others must find it.
//! The same scenario runs over IPv4 and over IPv6 (BEP 32: `nodes6`, 18-byte peers,
//! `want: ["n6"]`).
//!
//! Run with `cargo test -p unchoke-core --test dht_network -- --nocapture` to see the
//! median hops and queries per lookup.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use sha1::{Digest, Sha1};
use unchoke_core::InfoHash;
use unchoke_core::dht::krpc::{Body, Message, Query};
use unchoke_core::dht::{Dht, DhtAction, DhtConfig, Family, LookupId, LookupStats};
use unchoke_core::time::Instant;

const NODES: usize = 120;
const SEEDS: usize = 3;

fn addr_of(i: usize) -> SocketAddr {
    let n = i as u32 + 1;
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(10, 0, (n >> 8) as u8, n as u8),
        6881,
    ))
}

/// Unique-local IPv6 addresses (`fd00::/8`): a private network, as `10.0.0.0/8` is for
/// IPv4, so BEP 42 checks no ids here (the nodes' ids are random).
fn addr6_of(i: usize) -> SocketAddr {
    let n = i as u16 + 1;
    SocketAddr::new(Ipv6Addr::new(0xfd00, 0xdb8, 0, 0, 0, 0, 0, n).into(), 6881)
}

fn addr_in(family: Family, i: usize) -> SocketAddr {
    match family {
        Family::V4 => addr_of(i),
        Family::V6 => addr6_of(i),
    }
}

/// A datagram in flight: delivered at `.0`; `.1` keeps equal times in send order.
type InFlight = Reverse<(Instant, u64, usize, SocketAddr, Vec<u8>)>;

struct Net {
    family: Family,
    nodes: Vec<Dht>,
    index: BTreeMap<SocketAddr, usize>,
    queue: BinaryHeap<InFlight>,
    seq: u64,
    now: Instant,
    rng: fastrand::Rng,
    /// Every action, hashed in order: the run's fingerprint.
    digest: Sha1,
    found: BTreeMap<(usize, LookupId), Vec<SocketAddr>>,
    done: BTreeMap<(usize, LookupId), LookupStats>,
    packets: u64,
}

impl Net {
    fn new(seed: u64, family: Family) -> Net {
        let now = Instant::from_secs(1);
        let config = DhtConfig {
            family,
            ..DhtConfig::default()
        };
        let nodes = (0..NODES)
            .map(|i| Dht::new(config.clone(), seed.wrapping_add(i as u64), now))
            .collect();
        Net {
            family,
            nodes,
            index: (0..NODES).map(|i| (addr_in(family, i), i)).collect(),
            queue: BinaryHeap::new(),
            seq: 0,
            now,
            rng: fastrand::Rng::with_seed(seed ^ 0x5eed),
            digest: Sha1::new(),
            found: BTreeMap::new(),
            done: BTreeMap::new(),
            packets: 0,
        }
    }

    /// Takes node `i`'s actions: datagrams go on the wire with 5–40 ms of latency.
    fn drain(&mut self, i: usize) {
        while let Some(a) = self.nodes[i].poll_action() {
            self.digest.update((i as u64).to_be_bytes());
            match a {
                DhtAction::Send { to, bytes } => {
                    self.digest.update(to.to_string());
                    self.digest.update(&bytes);
                    assert_eq!(Family::of(&to), self.family, "sent across families");
                    // An IPv6 node asks for IPv6 nodes; an IPv4 node asks as in BEP 5.
                    if let Ok(Message {
                        body:
                            Body::Query(Query::FindNode { want, .. } | Query::GetPeers { want, .. }),
                        ..
                    }) = Message::decode(&bytes, 1500)
                    {
                        assert_eq!(want.n6, self.family == Family::V6);
                        assert!(!want.n4);
                    }
                    if let Some(&j) = self.index.get(&to) {
                        let at = self.now + Duration::from_millis(self.rng.u64(5..=40));
                        self.seq += 1;
                        let from = addr_in(self.family, i);
                        self.queue
                            .push(Reverse((at, self.seq, j, from, bytes.to_vec())));
                    }
                }
                DhtAction::Peers { lookup, peers, .. } => {
                    self.digest.update(format!("{lookup:?}{peers:?}"));
                    self.found.entry((i, lookup)).or_default().extend(peers);
                }
                DhtAction::LookupDone { id, stats, .. } => {
                    self.digest.update(format!("{id:?}{stats:?}"));
                    self.done.insert((i, id), stats);
                }
            }
        }
    }

    fn drain_all(&mut self) {
        for i in 0..NODES {
            self.drain(i);
        }
    }

    /// Runs events in time order until `until` or until nothing is left before it.
    fn run_until(&mut self, until: Instant) {
        loop {
            let next_packet = self.queue.peek().map(|Reverse((t, ..))| *t);
            let next_timer = self.nodes.iter().filter_map(Dht::poll_timeout).min();
            let next = match (next_packet, next_timer) {
                (Some(p), Some(t)) => p.min(t),
                (p, t) => match p.or(t) {
                    Some(x) => x,
                    None => break,
                },
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            while let Some(Reverse((t, ..))) = self.queue.peek() {
                if *t > self.now {
                    break;
                }
                let Some(Reverse((_, _, to, from, bytes))) = self.queue.pop() else {
                    break;
                };
                self.packets += 1;
                self.nodes[to].handle_packet(from, &bytes, self.now);
                self.drain(to);
            }
            for i in 0..NODES {
                if self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now) {
                    self.nodes[i].handle_timeout(self.now);
                    self.drain(i);
                }
            }
        }
        self.now = self.now.max(until);
    }

    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }
}

fn median(mut v: Vec<u32>) -> u32 {
    v.sort_unstable();
    v[v.len() / 2]
}

struct Outcome {
    digest: [u8; 20],
    lookups: Vec<(LookupStats, bool)>,
    bootstraps: Vec<LookupStats>,
    table_sizes: Vec<usize>,
    packets: u64,
}

fn scenario(seed: u64, family: Family) -> Outcome {
    let mut net = Net::new(seed, family);
    let addr_of = |i| addr_in(family, i);
    // The seed nodes know each other; everyone else bootstraps from one of them,
    // joining 100 ms apart.
    let seeds: Vec<SocketAddr> = (0..SEEDS).map(addr_of).collect();
    let mut boots = Vec::new();
    for i in 0..SEEDS {
        let others: Vec<SocketAddr> = seeds.iter().copied().filter(|a| *a != addr_of(i)).collect();
        let now = net.now;
        boots.push((i, net.nodes[i].bootstrap(&others, now).expect("bootstrap")));
    }
    net.drain_all();
    for i in SEEDS..NODES {
        net.advance(Duration::from_millis(100));
        let now = net.now;
        let via = [seeds[i % SEEDS]];
        boots.push((i, net.nodes[i].bootstrap(&via, now).expect("bootstrap")));
        net.drain(i);
    }
    net.advance(Duration::from_secs(30));
    let bootstraps: Vec<LookupStats> = boots
        .iter()
        .map(|k| *net.done.get(k).expect("every bootstrap finished"))
        .collect();

    // Node 50 announces itself for the torrent on TCP port 7000.
    let info_hash = InfoHash(*b"unchoke-dht-test-ih!");
    let announcer = 50;
    let now = net.now;
    let a = net.nodes[announcer]
        .announce(info_hash, Some(7000), now)
        .expect("announce");
    net.drain(announcer);
    net.advance(Duration::from_secs(20));
    let astats = *net.done.get(&(announcer, a)).expect("announce finished");
    assert!(
        astats.announces >= 4,
        "announced to {} nodes",
        astats.announces
    );

    // Twenty other nodes look for peers.
    let expected = SocketAddr::new(addr_of(announcer).ip(), 7000);
    let mut lookups = Vec::new();
    let askers: Vec<usize> = (0..20).map(|k| 7 + k * 5).collect();
    let mut ids = Vec::new();
    for &i in &askers {
        let now = net.now;
        ids.push((i, net.nodes[i].get_peers(info_hash, now).expect("lookup")));
        net.drain(i);
        net.advance(Duration::from_millis(50));
    }
    net.advance(Duration::from_secs(20));
    for key in &ids {
        let stats = *net.done.get(key).expect("lookup finished");
        let found = net.found.get(key).is_some_and(|p| p.contains(&expected));
        lookups.push((stats, found));
    }
    Outcome {
        digest: net.digest.finalize().into(),
        lookups,
        bootstraps,
        table_sizes: net.nodes.iter().map(|n| n.routing_table().len()).collect(),
        packets: net.packets,
    }
}

#[test]
fn a_hundred_nodes_find_the_announced_peer() {
    check_network(Family::V4);
}

#[test]
fn a_hundred_ipv6_nodes_find_the_announced_peer() {
    check_network(Family::V6);
}

fn check_network(family: Family) {
    let out = scenario(1000, family);
    let found = out.lookups.iter().filter(|(_, f)| *f).count();
    let hops = median(out.lookups.iter().map(|(s, _)| s.hops).collect());
    let queries = median(out.lookups.iter().map(|(s, _)| s.queries).collect());
    let responses = median(out.lookups.iter().map(|(s, _)| s.responses).collect());
    let boot_queries = median(out.bootstraps.iter().map(|s| s.queries).collect());
    let boot_hops = median(out.bootstraps.iter().map(|s| s.hops).collect());
    let table = median(out.table_sizes.iter().map(|&n| n as u32).collect());
    let ms = median(
        out.lookups
            .iter()
            .map(|(s, _)| s.elapsed.as_millis() as u32)
            .collect(),
    );
    println!(
        "dht network ({family:?}): {NODES} nodes, {SEEDS} seed nodes, {} get_peers lookups: {found} found the \
         announcer; per lookup median {hops} hops, {queries} queries, {responses} responses, \
         {ms} ms (virtual); bootstrap median {boot_hops} hops, {boot_queries} queries; median \
         routing table {table} nodes; {} datagrams delivered",
        out.lookups.len(),
        out.packets
    );
    assert_eq!(found, out.lookups.len(), "every lookup finds the announcer");
    assert!((1..=6).contains(&hops), "median hops {hops}");
    assert!((3..=60).contains(&queries), "median queries {queries}");
    assert!(table >= 8, "median routing table of {table} nodes");
    assert!(
        out.table_sizes.iter().all(|&n| n > 0),
        "every node knows someone"
    );
}

#[test]
fn the_same_seed_gives_the_same_run() {
    for family in [Family::V4, Family::V6] {
        let a = scenario(77, family);
        let b = scenario(77, family);
        assert_eq!(a.digest, b.digest, "same seed, same actions byte for byte");
        assert_eq!(a.packets, b.packets);
        let c = scenario(78, family);
        assert_ne!(a.digest, c.digest, "another seed, another run");
    }
}
