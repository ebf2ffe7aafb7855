//! Iterative lookups (Kademlia): walk towards a target id, asking ever closer nodes.
//!
//! A [`Lookup`] holds a bounded candidate set ordered by XOR distance to the target. Its
//! *window* is the [`K`] closest candidates that have not failed. The lookup keeps up to α
//! queries in flight, always to the closest not-yet-queried candidates of the window, and
//! finishes when every node of the window has answered (failed ones drop out of it, letting
//! the next closest in), or when no candidate is left to ask and nothing is in flight.
//! Bootstrap addresses whose ids we do not know yet (*seeds*) are asked first.
//!
//! Bounds: at most [`MAX_CANDIDATES`] candidates (the farthest idle one is evicted for a
//! closer newcomer), [`MAX_SEEDS`] seeds, [`MAX_QUERIES`] queries per lookup (so a network
//! feeding us endless fake "closer" nodes cannot keep a lookup alive forever) and
//! [`MAX_PEERS`] distinct peers reported.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::krpc::Response;
use super::node_id::NodeId;
use super::routing::K;
use crate::time::Instant;

/// The most candidates a lookup keeps.
pub const MAX_CANDIDATES: usize = 64;
/// The most bootstrap addresses one lookup asks.
pub const MAX_SEEDS: usize = 32;
/// The most queries one lookup sends before it gives up on getting closer.
pub const MAX_QUERIES: u32 = 256;
/// The most distinct peers one lookup reports.
pub const MAX_PEERS: usize = 1000;

/// Identifies a lookup started by [`super::Dht::get_peers`], [`super::Dht::announce`] or
/// [`super::Dht::bootstrap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LookupId(pub u64);

/// What a lookup is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupKind {
    /// `find_node` towards the target (bootstrap, bucket refresh).
    FindNode,
    /// `get_peers` for the target info-hash.
    GetPeers,
    /// `get_peers`, then `announce_peer` to the closest nodes that gave a token.
    Announce {
        /// The TCP port to announce, or `None` for the query's source port (`implied_port`).
        port: Option<u16>,
    },
}

/// Counters of one lookup, reported in [`super::DhtAction::LookupDone`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Queries sent (announces not included).
    pub queries: u32,
    /// Answers received (responses that matched a query of this lookup).
    pub responses: u32,
    /// Queries that timed out or were answered with an error or a wrong id.
    pub failures: u32,
    /// The depth of the deepest responder. Depth is defined per candidate: a node taken
    /// from our routing table or a bootstrap address has depth 1; a node first learned
    /// from the answer of a node of depth `d` has depth `d + 1` (when several answers name
    /// it, the smallest). So `hops` is the longest chain of answers the lookup followed to
    /// reach a node that answered: 1 means the routing table already knew every responder.
    pub hops: u32,
    /// Distinct peers found (`get_peers`).
    pub peers: u32,
    /// `announce_peer` queries sent (announce lookups).
    pub announces: u32,
    /// From start to finish (announces not awaited).
    pub elapsed: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Fresh,
    InFlight,
    Responded { token: Option<Vec<u8>> },
    Failed,
}

#[derive(Clone, Debug)]
struct Candidate {
    id: NodeId,
    addr: SocketAddr,
    depth: u32,
    state: State,
}

/// A node a lookup wants queried next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// A candidate with a known id.
    Node(NodeId, SocketAddr),
    /// A bootstrap address.
    Seed(SocketAddr),
}

/// One lookup's state. See the module docs.
#[derive(Clone, Debug)]
pub struct Lookup {
    /// Its id.
    pub id: LookupId,
    /// The id or info-hash sought.
    pub target: NodeId,
    /// What it is for.
    pub kind: LookupKind,
    /// Started by the DHT itself (bucket refresh): no events are reported for it.
    pub internal: bool,
    started: Instant,
    /// Keyed by distance to the target.
    candidates: BTreeMap<NodeId, Candidate>,
    seeds: Vec<(SocketAddr, State)>,
    peers: BTreeSet<SocketAddr>,
    in_flight: usize,
    stats: LookupStats,
}

impl Lookup {
    /// A lookup for `target` starting from `start` (nodes from the routing table) and
    /// `seeds` (addresses of unknown id).
    pub fn new(
        id: LookupId,
        target: NodeId,
        kind: LookupKind,
        start: &[(NodeId, SocketAddr)],
        seeds: &[SocketAddr],
        now: Instant,
    ) -> Self {
        let mut l = Lookup {
            id,
            target,
            kind,
            internal: false,
            started: now,
            candidates: BTreeMap::new(),
            seeds: Vec::new(),
            peers: BTreeSet::new(),
            in_flight: 0,
            stats: LookupStats::default(),
        };
        for &(node, addr) in start {
            l.add_candidate(node, addr, 1);
        }
        for &addr in seeds {
            let known = l.candidates.values().any(|c| c.addr == addr);
            let dup = l.seeds.iter().any(|(a, _)| *a == addr);
            if !known && !dup && l.seeds.len() < MAX_SEEDS {
                l.seeds.push((addr, State::Fresh));
            }
        }
        l
    }

    /// Whether this is a `get_peers` lookup (plain or announce).
    pub fn wants_peers(&self) -> bool {
        !matches!(self.kind, LookupKind::FindNode)
    }

    /// Queries in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Candidates held (bounded by [`MAX_CANDIDATES`]).
    pub fn candidate_count(&self) -> usize {
        self.candidates.len()
    }

    /// The counters so far, with `elapsed` measured to `now`.
    pub fn stats(&self, now: Instant) -> LookupStats {
        LookupStats {
            elapsed: now - self.started,
            ..self.stats
        }
    }

    /// Counts `n` announces sent.
    pub fn count_announces(&mut self, n: u32) {
        self.stats.announces += n;
    }

    fn add_candidate(&mut self, id: NodeId, addr: SocketAddr, depth: u32) {
        let key = self.target.distance(&id);
        if let Some(c) = self.candidates.get_mut(&key) {
            c.depth = c.depth.min(depth);
            return;
        }
        if self.candidates.len() >= MAX_CANDIDATES {
            // Evict the farthest candidate that is farther than the newcomer and not
            // awaiting an answer; if there is none, the newcomer is not worth keeping.
            let victim = self
                .candidates
                .range(key..)
                .rev()
                .find(|(_, c)| c.state != State::InFlight)
                .map(|(k, _)| *k);
            match victim {
                Some(k) => {
                    self.candidates.remove(&k);
                }
                None => return,
            }
        }
        self.candidates.insert(
            key,
            Candidate {
                id,
                addr,
                depth,
                state: State::Fresh,
            },
        );
    }

    /// The candidates to query now (marked in flight), keeping at most `alpha` in flight
    /// and taking at most `budget` (the DHT's free outstanding-query slots).
    pub fn next_queries(&mut self, alpha: usize, budget: usize) -> Vec<Next> {
        let mut out = Vec::new();
        let room = |l: &Lookup, out: &Vec<Next>| {
            l.in_flight < alpha && out.len() < budget && l.stats.queries < MAX_QUERIES
        };
        for (addr, state) in &mut self.seeds {
            if !(self.in_flight < alpha && out.len() < budget && self.stats.queries < MAX_QUERIES) {
                return out;
            }
            if *state == State::Fresh {
                *state = State::InFlight;
                self.in_flight += 1;
                self.stats.queries += 1;
                out.push(Next::Seed(*addr));
            }
        }
        let mut window = 0;
        let keys: Vec<NodeId> = self.candidates.keys().copied().collect();
        for key in keys {
            if window >= K || !room(self, &out) {
                break;
            }
            let Some(c) = self.candidates.get_mut(&key) else {
                continue;
            };
            match c.state {
                State::Failed => continue,
                State::Fresh => {
                    c.state = State::InFlight;
                    out.push(Next::Node(c.id, c.addr));
                    self.in_flight += 1;
                    self.stats.queries += 1;
                }
                State::InFlight | State::Responded { .. } => {}
            }
            window += 1;
        }
        out
    }

    /// Whether the lookup has finished (see the module docs).
    pub fn is_done(&self) -> bool {
        if self.in_flight == 0 && self.stats.queries >= MAX_QUERIES {
            return true;
        }
        if self
            .seeds
            .iter()
            .any(|(_, s)| matches!(s, State::Fresh | State::InFlight))
        {
            return false;
        }
        let mut window = 0;
        for c in self.candidates.values() {
            match c.state {
                State::Failed => continue,
                State::Responded { .. } => window += 1,
                // Budget spent: only answers still in flight are awaited.
                State::Fresh if self.stats.queries >= MAX_QUERIES => continue,
                State::Fresh | State::InFlight => return false,
            }
            if window >= K {
                return true;
            }
        }
        true
    }

    fn settle(&mut self, state: &mut State, new: State) -> bool {
        if *state != State::InFlight {
            return false;
        }
        *state = new;
        self.in_flight = self.in_flight.saturating_sub(1);
        true
    }

    /// Takes an answer to a query this lookup sent to `to` (`expected` is the id we asked,
    /// `None` for a seed). Returns the peers in it not reported before.
    pub fn on_response(
        &mut self,
        to: SocketAddr,
        expected: Option<NodeId>,
        own: NodeId,
        response: &Response,
    ) -> Vec<SocketAddr> {
        let responded = State::Responded {
            token: response.token.clone(),
        };
        let depth = match expected {
            Some(id) => {
                let key = self.target.distance(&id);
                let Some(mut c) = self.candidates.remove(&key) else {
                    return Vec::new();
                };
                let ok = response.id == id;
                let new = if ok { responded } else { State::Failed };
                let settled = self.settle(&mut c.state, new);
                let depth = c.depth;
                self.candidates.insert(key, c);
                if !settled {
                    return Vec::new();
                }
                if !ok {
                    self.stats.failures += 1;
                    return Vec::new();
                }
                depth
            }
            None => {
                let Some(pos) = self.seeds.iter().position(|(a, _)| *a == to) else {
                    return Vec::new();
                };
                let mut state = std::mem::replace(&mut self.seeds[pos].1, State::Failed);
                let settled = self.settle(&mut state, State::Failed);
                self.seeds[pos].1 = state;
                if !settled {
                    return Vec::new();
                }
                // The seed becomes an ordinary, answered candidate under the id it gave.
                if response.id != own {
                    self.add_candidate(response.id, to, 1);
                    let key = self.target.distance(&response.id);
                    if let Some(c) = self.candidates.get_mut(&key) {
                        // A candidate already asked under its id keeps its own query's
                        // bookkeeping; only an unasked one is settled by the seed's answer.
                        if c.state == State::Fresh {
                            c.state = responded;
                        }
                    }
                }
                1
            }
        };
        self.stats.responses += 1;
        self.stats.hops = self.stats.hops.max(depth);
        // Only nodes of the family of the address asked become candidates: a lookup runs
        // in one family's DHT (BEP 32 keeps one table per family), and an answer may carry
        // both `nodes` and `nodes6`.
        let v4 = response
            .nodes
            .iter()
            .map(|n| (n.id, SocketAddr::V4(n.addr)));
        let v6 = response
            .nodes6
            .iter()
            .map(|n| (n.id, SocketAddr::V6(n.addr)));
        // An IPv4-mapped address in `nodes6` is an IPv4 node: not one for an IPv6 lookup.
        let same_family: Vec<(NodeId, SocketAddr)> = if to.is_ipv4() {
            v4.collect()
        } else {
            v6.filter(|(_, a)| super::canonical(*a).is_ipv6()).collect()
        };
        for (id, addr) in same_family {
            if id != own && addr.port() != 0 && !addr.ip().is_unspecified() {
                self.add_candidate(id, addr, depth.saturating_add(1));
            }
        }
        self.take_peers(&response.values)
    }

    /// Records peers found (in an answer, or in our own store); returns those not seen
    /// before by this lookup. Nothing for a `find_node` lookup.
    pub fn take_peers(&mut self, values: &[SocketAddr]) -> Vec<SocketAddr> {
        let mut fresh = Vec::new();
        if self.wants_peers() {
            for v in values {
                if v.port() != 0 && self.peers.len() < MAX_PEERS && self.peers.insert(*v) {
                    fresh.push(*v);
                }
            }
            self.stats.peers = self.peers.len() as u32;
        }
        fresh
    }

    /// Records that the query to `to` (`expected` id, or a seed) failed: timed out or
    /// answered with an error.
    pub fn on_failure(&mut self, to: SocketAddr, expected: Option<NodeId>) {
        let settled = match expected {
            Some(id) => {
                let key = self.target.distance(&id);
                match self.candidates.remove(&key) {
                    Some(mut c) => {
                        let s = self.settle(&mut c.state, State::Failed);
                        self.candidates.insert(key, c);
                        s
                    }
                    None => false,
                }
            }
            None => match self.seeds.iter().position(|(a, _)| *a == to) {
                Some(pos) => {
                    let mut state = std::mem::replace(&mut self.seeds[pos].1, State::Failed);
                    let s = self.settle(&mut state, State::Failed);
                    self.seeds[pos].1 = state;
                    s
                }
                None => false,
            },
        };
        if settled {
            self.stats.failures += 1;
        }
    }

    /// The up to [`K`] closest responders that gave a write token, closest first.
    pub fn announce_targets(&self) -> Vec<(NodeId, SocketAddr, Vec<u8>)> {
        self.candidates
            .values()
            .filter_map(|c| match &c.state {
                State::Responded { token: Some(t) } => Some((c.id, c.addr, t.clone())),
                _ => None,
            })
            .take(K)
            .collect()
    }
}
