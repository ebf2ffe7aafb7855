//! BEP 42 across a network of real DHT nodes at public addresses, enforcement on (the
//! default) everywhere but on the three seed nodes: every node starts with a random id,
//! which no enforcing node accepts; the `ip` in the answers to its queries tells it where
//! it is, it takes an id derived from that address, the others let it in, and in the end
//! every node's id matches its address, every enforcing node's routing table holds only
//! such nodes, and lookups still find an announced peer. In-memory packet router with a
//! fixed latency; no sockets, no clock; deterministic.
//!
//! Why the seeds do not enforce: in a brand-new network where *every* node enforces and
//! none is compliant yet, nobody enters anybody's table, so the seeds can name nobody
//! and a newcomer hears from one node only — one vote, never enough to learn its
//! address. The public DHT is not like that (most nodes are compliant, and routers hand
//! out plenty), and one non-enforcing router is enough to start a fresh one.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use unchoke_core::InfoHash;
use unchoke_core::dht::node_id_security::{is_compliant, is_exempt};
use unchoke_core::dht::{Dht, DhtAction, DhtConfig};
use unchoke_core::time::Instant;

const NODES: usize = 40;
const SEEDS: usize = 3;
const LATENCY: Duration = Duration::from_millis(20);

/// Public IPv4 addresses, one per node, spread over several /8s so their hashes differ.
fn addr_of(i: usize) -> SocketAddr {
    let n = i as u8;
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(81 + n % 7, n.wrapping_mul(37), 3, n)),
        6881,
    )
}

/// A datagram in flight: delivered at `.0`; `.1` keeps equal times in send order; then
/// the receiving node, the sender's address and the bytes.
type InFlight = Reverse<(Instant, u64, usize, SocketAddr, Vec<u8>)>;

struct Net {
    nodes: Vec<Dht>,
    index: BTreeMap<SocketAddr, usize>,
    queue: BinaryHeap<InFlight>,
    seq: u64,
    now: Instant,
    found: Vec<SocketAddr>,
}

impl Net {
    fn drain(&mut self, i: usize) {
        while let Some(a) = self.nodes[i].poll_action() {
            match a {
                DhtAction::Send { to, bytes } => {
                    if let Some(&j) = self.index.get(&to) {
                        self.seq += 1;
                        let at = self.now + LATENCY;
                        self.queue
                            .push(Reverse((at, self.seq, j, addr_of(i), bytes.to_vec())));
                    }
                }
                DhtAction::Peers { peers, .. } => self.found.extend(peers),
                DhtAction::LookupDone { .. } => {}
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            let packet = self.queue.peek().map(|Reverse((t, ..))| *t);
            let timer = self.nodes.iter().filter_map(Dht::poll_timeout).min();
            let next = match (packet, timer) {
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
}

#[test]
fn a_network_at_public_addresses_converges_to_compliant_ids() {
    let now = Instant::from_secs(1);
    let config = DhtConfig::default();
    assert!(config.enforce_node_id);
    let mut net = Net {
        nodes: (0..NODES)
            .map(|i| {
                // The seed nodes (routers) do not enforce: they keep everyone who answers,
                // so newcomers hear of one another. Everyone else enforces.
                let config = DhtConfig {
                    enforce_node_id: i >= SEEDS,
                    ..config.clone()
                };
                Dht::new(config, 4200 + i as u64, now)
            })
            .collect(),
        index: (0..NODES).map(|i| (addr_of(i), i)).collect(),
        queue: BinaryHeap::new(),
        seq: 0,
        now,
        found: Vec::new(),
    };
    for i in 0..NODES {
        assert!(!is_exempt(addr_of(i).ip()));
        assert!(
            !is_compliant(&net.nodes[i].node_id(), addr_of(i).ip()),
            "node {i} starts with a random id"
        );
    }
    let seeds: Vec<SocketAddr> = (0..SEEDS).map(addr_of).collect();
    for i in 0..NODES {
        let via: Vec<SocketAddr> = if i < SEEDS {
            seeds.iter().copied().filter(|a| *a != addr_of(i)).collect()
        } else {
            vec![seeds[i % SEEDS]]
        };
        let t = net.now;
        net.nodes[i].bootstrap(&via, t).expect("bootstrap");
        net.drain(i);
        net.advance(Duration::from_millis(100));
    }
    // Long enough for bucket refreshes (15 min) to carry the last nodes over.
    net.advance(Duration::from_secs(40 * 60));

    for (i, node) in net.nodes.iter().enumerate() {
        let ip = addr_of(i).ip();
        assert_eq!(
            node.external_address(),
            Some(ip),
            "node {i} learned its address"
        );
        assert!(
            is_compliant(&node.node_id(), ip),
            "node {i}'s id matches it"
        );
        assert!(node.stats().node_id_changes >= 1, "node {i}");
        let rt = node.routing_table();
        assert!(!rt.is_empty(), "node {i} knows someone");
        if i >= SEEDS {
            for e in rt.entries() {
                assert!(is_compliant(&e.id, e.addr.ip()), "node {i} holds {e:?}");
            }
        }
    }
    let median = {
        let mut sizes: Vec<usize> = net.nodes.iter().map(|n| n.routing_table().len()).collect();
        sizes.sort_unstable();
        sizes[NODES / 2]
    };
    assert!(median >= 8, "median routing table of {median} nodes");

    // Announce and find, among compliant nodes only.
    let info_hash = InfoHash(*b"unchoke-bep42-test!!");
    let t = net.now;
    net.nodes[17]
        .announce(info_hash, Some(7000), t)
        .expect("announce");
    net.drain(17);
    net.advance(Duration::from_secs(20));
    let t = net.now;
    net.nodes[29].get_peers(info_hash, t).expect("lookup");
    net.drain(29);
    net.advance(Duration::from_secs(20));
    assert!(
        net.found.contains(&SocketAddr::new(addr_of(17).ip(), 7000)),
        "{:?}",
        net.found
    );
}
