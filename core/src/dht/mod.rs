//! A sans-IO Mainline DHT node (BEP 5): finds peers for an info-hash without a tracker, and
//! answers other nodes' queries.
//!
//! Shaped like the [`session`](crate::session): inputs are method calls that carry `now`,
//! outputs are pulled.
//!
//! ```text
//! let mut dht = Dht::new(DhtConfig::default(), seed, now);
//! dht.bootstrap(&[router_addr], now)?;               // find_node(our id) via known nodes
//! let l = dht.get_peers(info_hash, now)?;            // → Peers …, LookupDone
//! let a = dht.announce(info_hash, Some(6881), now)?; // get_peers, then announce_peer
//! dht.handle_packet(from, &datagram, now);           // a UDP datagram arrived
//! dht.handle_timeout(now);                           // poll_timeout's deadline passed
//! while let Some(action) = dht.poll_action() { /* Send, Peers, LookupDone */ }
//! let deadline = dht.poll_timeout();
//! let to_persist = dht.nodes();                      // good nodes, for the next start
//! ```
//!
//! The driver owns the UDP socket, the clock and the persisted node list; everything else
//! is here: the KRPC codec ([`krpc`]), the routing table ([`routing`]), iterative lookups
//! ([`lookup`]), write tokens ([`token`]), the store of announced peers ([`peer_store`]) and
//! per-IP rate limiting ([`rate_limit`]).
//!
//! Rules this node keeps:
//! - **Determinism.** One RNG seeded by the caller (node id, token secrets, sampling);
//!   every map is ordered. The same seed and inputs give the same actions byte for byte.
//! - **No panics, bounded memory.** Datagrams over [`DhtConfig::max_packet`] are dropped
//!   unread; every field is length-checked; the routing table, candidate sets, outstanding
//!   queries, lookups, rate-limit table and peer store all have fixed bounds.
//! - **No amplification.** Every query is answered once or dropped. A source IP over its
//!   rate is dropped silently. Answers are at most a fixed size (8 nodes, or
//!   [`DhtConfig::max_values`] peers, and a token) whatever the query. Responses are only
//!   accepted from the address a query went to, with its transaction id.
//! - **Spurious calls are harmless**: an early `handle_timeout`, a late or duplicate
//!   answer, an answer to a finished lookup.
//!
//! IPv6 (BEP 32): a node speaks one address family, [`DhtConfig::family`]. BEP 32 keeps
//! a separate routing table per family, so a client running the DHT over both runs two
//! `Dht`s (the session does: `session/dht.rs`). A node only talks to addresses of its
//! family (datagrams from the other are counted in [`DhtStats::wrong_family`] and
//! dropped; IPv4-mapped IPv6 sources `::ffff:a.b.c.d` count as IPv4, see [`canonical`]),
//! answers with `nodes` (IPv4) or `nodes6` (IPv6), and an IPv6 node asks with
//! `want: ["n6"]`. A query wanting the other family too (`want: ["n4", "n6"]`) is answered
//! with the other node's nodes as well when the caller passes it
//! ([`Dht::handle_packet_with`]). An IPv4 node with no IPv6 sibling behaves, byte for
//! byte, as before BEP 32: it sends no `want` and no `nodes6`.
//!
//! Node-id security (BEP 42, [`node_id_security`]): every response carries the asker's
//! address (`ip`); the `ip` of answers to our queries vote on our external address, and
//! once enough agree ([`node_id_security::VOTES_NEEDED`]) our id is re-derived from it if
//! it does not match (a local address keeps any id). With
//! [`DhtConfig::enforce_node_id`], a node whose id does not match its public address
//! stays out of the routing table and is never announced to. Each family's node votes
//! and derives its id on its own (an id matches one address), so a dual-stack client's
//! two nodes share an id only until their external addresses are known.

pub mod krpc;
pub mod lookup;
pub mod node_id;
pub mod node_id_security;
pub mod peer_store;
pub mod rate_limit;
pub mod routing;
pub mod token;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;

use crate::info_hash::InfoHash;
use crate::time::Instant;
use krpc::{Body, CompactNode, CompactNode6, ErrorMessage, Message, Query, Response, Want};
use lookup::{Lookup, Next};
pub use lookup::{LookupId, LookupKind, LookupStats};
pub use node_id::NodeId;
use node_id_security::ExternalAddressVotes;
use peer_store::{PeerStore, PeerStoreLimits};
use rate_limit::{RateLimit, RateLimiter};
use routing::{Insert, K, RoutingConfig, RoutingTable};
use token::TokenSecrets;

/// The public DHT's well-known routers, `(host, port)`: nodes run to let newcomers in.
/// A client joins through them, beside any nodes saved from an earlier run
/// ([`crate::session::Session::dht_join_routers`]).
pub const PUBLIC_ROUTERS: [(&str, u16); 4] = [
    ("router.bittorrent.com", 6881),
    ("dht.transmissionbt.com", 6881),
    ("router.utorrent.com", 6881),
    ("dht.libtorrent.org", 25401),
];

/// How often housekeeping runs: token rotation, peer expiry, bucket refresh.
const MAINTENANCE: Duration = Duration::from_secs(5);

/// Bucket refreshes started per housekeeping round, so a long sleep does not start 160
/// lookups at once.
const REFRESHES_PER_ROUND: usize = 2;

/// An IP address family: which half of the DHT a [`Dht`] node is (BEP 32).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4: compact nodes in `nodes`, 6-byte peers.
    #[default]
    V4,
    /// IPv6: compact nodes in `nodes6`, 18-byte peers.
    V6,
}

impl Family {
    /// The family of `addr` (an IPv4-mapped IPv6 address is IPv6 here: [`canonical`] it
    /// first).
    pub fn of(addr: &SocketAddr) -> Family {
        match addr {
            SocketAddr::V4(_) => Family::V4,
            SocketAddr::V6(_) => Family::V6,
        }
    }
}

/// The address families a client runs DHT nodes for (the session's
/// `SessionConfig::dht_families`). Neither set means IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhtFamilies {
    /// Run an IPv4 node.
    pub v4: bool,
    /// Run an IPv6 node (BEP 32).
    pub v6: bool,
}

impl Default for DhtFamilies {
    /// IPv4 only, as before BEP 32.
    fn default() -> Self {
        DhtFamilies {
            v4: true,
            v6: false,
        }
    }
}

impl DhtFamilies {
    /// The families a UDP socket bound to `addr` can send to: its own; both for the
    /// IPv6 wildcard `[::]`, which is dual-stack (IPv4 peers appear as `::ffff:a.b.c.d`)
    /// unless the system sets `IPV6_V6ONLY` by default — then IPv4 sends fail, which the
    /// DHT survives as timeouts.
    pub fn of_socket(addr: &SocketAddr) -> DhtFamilies {
        match addr {
            SocketAddr::V4(_) => DhtFamilies {
                v4: true,
                v6: false,
            },
            SocketAddr::V6(a) => DhtFamilies {
                v4: a.ip().is_unspecified(),
                v6: true,
            },
        }
    }
}

/// `addr` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket
/// reports for IPv4 senders) turned into the IPv4 address it is; others unchanged.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), a.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// Limits and timings of a [`Dht`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhtConfig {
    /// Queries in flight per lookup (Kademlia's α; default 3).
    pub alpha: usize,
    /// How long to wait for an answer before counting the query as failed (default 3 s).
    pub query_timeout: Duration,
    /// Datagrams larger than this are dropped unread (default 1,500 bytes).
    pub max_packet: usize,
    /// Our queries awaiting an answer, over all purposes (default 256). Lookups wait for a
    /// free slot; pings are skipped when none is free.
    pub max_outstanding: usize,
    /// Lookups running at once (default 32).
    pub max_lookups: usize,
    /// Per-source-IP limit on incoming queries (default 20/s, bursts of 40, 4,096 IPs).
    pub rate_limit: RateLimit,
    /// Node-state timings (good for 15 min; bad after 2 failures in a row).
    pub routing: RoutingConfig,
    /// A bucket unchanged this long is refreshed with a `find_node` for a random id in its
    /// range (BEP 5: 15 min).
    pub bucket_refresh: Duration,
    /// How often the token secret rotates (BEP 5: 5 min; tokens live up to twice this).
    pub token_rotation: Duration,
    /// Announced peers: time to live (30 min), bounds (100 per hash, 1,000 hashes) and the
    /// quota on new info-hashes per address (20 per 30 min).
    pub peer_store: PeerStoreLimits,
    /// The most peers in one `get_peers` answer (default 50: 50 × 8 bytes keeps the answer
    /// well inside one datagram; 50 × 20 for IPv6 peers still fits in 1,280 bytes, the
    /// IPv6 minimum MTU).
    pub max_values: usize,
    /// The address family this node speaks (default IPv4). See the module docs.
    pub family: Family,
    /// BEP 42 enforcement (default on): a node answering us with an id that does not
    /// match its public IP is kept out of the routing table and its write token is not
    /// used. Nodes on local networks are exempt whatever this says
    /// ([`node_id_security::is_exempt`]). A driver turns it off when the DHT's socket is
    /// bound to a loopback address ([`DhtConfig::for_socket`], as libtorrent does). Our
    /// own id follows our external address either way.
    pub enforce_node_id: bool,
}

impl DhtConfig {
    /// This configuration for a node whose UDP socket is bound to `local`: BEP 42
    /// enforcement off on a loopback address ([`node_id_security::enforce_on_socket`]),
    /// everything else as it was.
    pub fn for_socket(mut self, local: &SocketAddr) -> Self {
        self.enforce_node_id &= node_id_security::enforce_on_socket(local);
        self
    }
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            alpha: 3,
            query_timeout: Duration::from_secs(3),
            max_packet: krpc::DEFAULT_MAX_PACKET,
            max_outstanding: 256,
            max_lookups: 32,
            rate_limit: RateLimit {
                per_sec: 20,
                burst: 40,
                max_ips: 4096,
            },
            routing: RoutingConfig::default(),
            bucket_refresh: Duration::from_secs(15 * 60),
            token_rotation: Duration::from_secs(5 * 60),
            peer_store: PeerStoreLimits {
                ttl: Duration::from_secs(30 * 60),
                max_per_hash: 100,
                max_hashes: 1000,
                quota: Some(peer_store::SwarmQuota::default()),
            },
            max_values: 50,
            family: Family::V4,
            enforce_node_id: true,
        }
    }
}

/// Why a lookup could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DhtError {
    /// [`DhtConfig::max_lookups`] lookups are already running.
    #[error("too many lookups running (limit {limit})")]
    TooManyLookups {
        /// The limit.
        limit: usize,
    },
}

/// What the DHT asks of its driver, or tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DhtAction {
    /// Send this datagram.
    Send {
        /// The destination (always of the node's [`DhtConfig::family`]).
        to: SocketAddr,
        /// The datagram.
        bytes: Bytes,
    },
    /// A lookup found peers not reported before for it.
    Peers {
        /// The lookup.
        lookup: LookupId,
        /// The torrent.
        info_hash: InfoHash,
        /// The new peers.
        peers: Vec<SocketAddr>,
    },
    /// A lookup finished (for an announce: after the `announce_peer` queries were sent).
    LookupDone {
        /// The lookup.
        id: LookupId,
        /// What it looked for: the info-hash of a `get_peers`/announce, the node id of a
        /// `find_node`.
        target: NodeId,
        /// What kind of lookup it was.
        kind: LookupKind,
        /// Its counters.
        stats: LookupStats,
    },
}

/// Counters over the DHT's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DhtStats {
    /// Datagrams handed to [`Dht::handle_packet`].
    pub packets_in: u64,
    /// Bytes in those datagrams.
    pub bytes_in: u64,
    /// Datagrams we asked to send.
    pub packets_out: u64,
    /// Bytes in those.
    pub bytes_out: u64,
    /// Well-formed queries received (rate-limited ones included).
    pub queries_in: u64,
    /// Queries we sent.
    pub queries_out: u64,
    /// Answers (responses and errors) we sent.
    pub replies_out: u64,
    /// Responses that matched one of our queries.
    pub responses_in: u64,
    /// Error messages that matched one of our queries.
    pub errors_in: u64,
    /// Queries dropped because their source IP was over its rate.
    pub rate_limited: u64,
    /// Datagrams over [`DhtConfig::max_packet`].
    pub too_large: u64,
    /// Datagrams that failed to decode.
    pub malformed: u64,
    /// Responses and errors matching no outstanding query (late, unsolicited, spoofed).
    pub unmatched: u64,
    /// Datagrams from a source of the other address family (dropped: the other family's
    /// node, if any, takes those).
    pub wrong_family: u64,
    /// Our queries that timed out.
    pub timeouts: u64,
    /// `announce_peer` queries refused for a bad token.
    pub bad_tokens: u64,
    /// `announce_peer` queries stored.
    pub announces_stored: u64,
    /// Responses from nodes whose id does not match their public IP (BEP 42), kept out of
    /// the routing table (counted only while [`DhtConfig::enforce_node_id`] is set).
    pub non_compliant: u64,
    /// Times our node id changed to match our external address (BEP 42).
    pub node_id_changes: u64,
}

/// Why a query of ours is outstanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Lookup(LookupId),
    /// A liveness check (routing-table maintenance, verifying a new node, `add_node`).
    Ping,
    Announce,
}

#[derive(Clone, Copy, Debug)]
struct Outstanding {
    deadline: Instant,
    /// The id we expect to answer (unknown for bootstrap addresses and `add_node`).
    node: Option<NodeId>,
    purpose: Purpose,
}

/// A DHT node as a pure state machine. See the module docs.
#[derive(Debug)]
pub struct Dht {
    config: DhtConfig,
    rng: fastrand::Rng,
    id: NodeId,
    routing: RoutingTable,
    tokens: TokenSecrets,
    store: PeerStore,
    limiter: RateLimiter,
    /// Keyed by (destination, transaction id): an answer must come from where we sent.
    outstanding: BTreeMap<(SocketAddr, u16), Outstanding>,
    lookups: BTreeMap<LookupId, Lookup>,
    next_tid: u16,
    next_lookup: u64,
    out: VecDeque<DhtAction>,
    next_maintenance: Instant,
    /// The latest `now` seen, for the calls that take none ([`Dht::nodes`]).
    last_now: Instant,
    stats: DhtStats,
    /// Votes on our external address from answers' `ip` (BEP 42).
    votes: ExternalAddressVotes,
}

impl Dht {
    /// A node with a random id and an empty routing table. `seed` seeds its only RNG.
    pub fn new(config: DhtConfig, seed: u64, now: Instant) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let id = NodeId::random(&mut rng);
        let tokens = TokenSecrets::new(&mut rng, config.token_rotation, now);
        let next_tid = rng.u16(..);
        Dht {
            routing: RoutingTable::new(id, config.routing, now),
            store: PeerStore::new(config.peer_store),
            limiter: RateLimiter::new(config.rate_limit),
            config,
            rng,
            id,
            tokens,
            outstanding: BTreeMap::new(),
            lookups: BTreeMap::new(),
            next_tid,
            next_lookup: 0,
            out: VecDeque::new(),
            next_maintenance: now + MAINTENANCE,
            last_now: now,
            stats: DhtStats::default(),
            votes: ExternalAddressVotes::new(),
        }
    }

    /// Our external IP as the nodes we queried agree to see it (BEP 42 votes; see
    /// [`node_id_security::ExternalAddressVotes`]), once confirmed.
    pub fn external_address(&self) -> Option<IpAddr> {
        self.votes.confirmed()
    }

    /// Our node id.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &DhtConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> DhtStats {
        self.stats
    }

    /// The routing table (read-only).
    pub fn routing_table(&self) -> &RoutingTable {
        &self.routing
    }

    /// The announced peers we store for others (read-only).
    pub fn peer_store(&self) -> &PeerStore {
        &self.store
    }

    /// Our queries awaiting an answer (at most [`DhtConfig::max_outstanding`]).
    pub fn outstanding_queries(&self) -> usize {
        self.outstanding.len()
    }

    /// Lookups running (at most [`DhtConfig::max_lookups`]).
    pub fn lookups_running(&self) -> usize {
        self.lookups.len()
    }

    /// The good nodes of the routing table, for the driver to persist and pass to
    /// [`Dht::add_node`] or [`Dht::bootstrap`] on the next start.
    pub fn nodes(&self) -> Vec<(NodeId, SocketAddr)> {
        self.routing.good_nodes(self.last_now)
    }

    fn tick(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
    }

    /// The address family this node speaks.
    pub fn family(&self) -> Family {
        self.config.family
    }

    /// Whether `addr` can be a node's address for this node: a real address and port of
    /// its family (IPv4-mapped IPv6 addresses are taken as IPv4).
    pub fn accepts(&self, addr: &SocketAddr) -> bool {
        let addr = canonical(*addr);
        Family::of(&addr) == self.config.family && usable(&addr)
    }

    /// The `want` of our `find_node`/`get_peers` queries: none for IPv4 (the default, as
    /// before BEP 32), `n6` for IPv6 — an answer over IPv6 without `want` may otherwise
    /// carry IPv4 nodes only, from nodes that see IPv6 as the exception.
    fn own_want(&self) -> Want {
        match self.config.family {
            Family::V4 => Want::default(),
            Family::V6 => Want {
                n4: false,
                n6: true,
            },
        }
    }

    /// Pings `addr`; if it answers, it enters the routing table. Addresses of the other
    /// family are ignored.
    pub fn add_node(&mut self, addr: SocketAddr, now: Instant) {
        self.tick(now);
        let addr = canonical(addr);
        if self.accepts(&addr) && !self.has_outstanding_to(addr) {
            let q = Query::Ping { id: self.id };
            self.send_query(addr, None, q, Purpose::Ping, now);
        }
    }

    /// Joins the network: a `find_node` lookup for our own id through `addrs` (and any
    /// nodes already in the table). Its end is reported like any lookup's.
    pub fn bootstrap(&mut self, addrs: &[SocketAddr], now: Instant) -> Result<LookupId, DhtError> {
        self.tick(now);
        let seeds: Vec<SocketAddr> = addrs
            .iter()
            .map(|a| canonical(*a))
            .filter(|a| self.accepts(a))
            .collect();
        self.start_lookup(self.id, LookupKind::FindNode, &seeds, false, now)
    }

    /// Looks up the nodes closest to `target` (`find_node`).
    pub fn find_node(&mut self, target: NodeId, now: Instant) -> Result<LookupId, DhtError> {
        self.tick(now);
        self.start_lookup(target, LookupKind::FindNode, &[], false, now)
    }

    /// Looks up peers for `info_hash`: [`DhtAction::Peers`] as they are found, then
    /// [`DhtAction::LookupDone`].
    pub fn get_peers(&mut self, info_hash: InfoHash, now: Instant) -> Result<LookupId, DhtError> {
        self.tick(now);
        self.start_lookup(info_hash.into(), LookupKind::GetPeers, &[], false, now)
    }

    /// Looks up peers for `info_hash` like [`Dht::get_peers`], then announces us to the
    /// closest nodes that gave a write token: as a peer on TCP `port`, or with
    /// `None`, on the UDP port our queries come from (`implied_port`, for NAT).
    pub fn announce(
        &mut self,
        info_hash: InfoHash,
        port: Option<u16>,
        now: Instant,
    ) -> Result<LookupId, DhtError> {
        self.tick(now);
        let kind = LookupKind::Announce { port };
        self.start_lookup(info_hash.into(), kind, &[], false, now)
    }

    fn start_lookup(
        &mut self,
        target: NodeId,
        kind: LookupKind,
        seeds: &[SocketAddr],
        internal: bool,
        now: Instant,
    ) -> Result<LookupId, DhtError> {
        if self.lookups.len() >= self.config.max_lookups {
            return Err(DhtError::TooManyLookups {
                limit: self.config.max_lookups,
            });
        }
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        // Twice k starting points: some may have gone away since they last answered.
        let start = self.routing.closest(&target, 2 * K, now);
        let mut lookup = Lookup::new(id, target, kind, &start, seeds, now);
        lookup.internal = internal;
        // Our own store is part of the DHT too: when we are among the nodes closest to the
        // info-hash, peers announced to us are found nowhere else (in a two-node DHT, the
        // other node's announce lives only here).
        let local = if lookup.wants_peers() {
            self.store
                .peers(&target, self.config.max_values, &mut self.rng, now)
        } else {
            Vec::new()
        };
        let fresh = lookup.take_peers(&local);
        if !fresh.is_empty() && !internal {
            self.out.push_back(DhtAction::Peers {
                lookup: id,
                info_hash: target.into(),
                peers: fresh,
            });
        }
        self.lookups.insert(id, lookup);
        self.pump(now);
        Ok(id)
    }

    /// Takes one datagram from `from`.
    pub fn handle_packet(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) {
        self.handle_packet_with(from, bytes, now, None);
    }

    /// Takes one datagram from `from`, with the node of the other address family, if the
    /// caller runs one: a query whose `want` names that family (BEP 32) is answered with
    /// its closest nodes too (`nodes6` from an IPv4 node, `nodes` from an IPv6 one).
    pub fn handle_packet_with(
        &mut self,
        from: SocketAddr,
        bytes: &[u8],
        now: Instant,
        other: Option<&Dht>,
    ) {
        self.tick(now);
        self.stats.packets_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        let from = canonical(from);
        if Family::of(&from) != self.config.family {
            self.stats.wrong_family += 1;
            return;
        }
        if bytes.len() > self.config.max_packet {
            self.stats.too_large += 1;
            return;
        }
        match Message::decode(bytes, self.config.max_packet) {
            Err(e) => {
                self.stats.malformed += 1;
                // A recognisable query is answered with its error code (BEP 5), under the
                // same rate limit as a good one; anything else is dropped.
                let code = e.code();
                if let Some(t) = e.reply_to.filter(|_| usable(&from)) {
                    if self.limiter.allow(from.ip(), now) {
                        let text = e.kind.to_string();
                        self.send_error(from, t, code, text.as_bytes());
                    } else {
                        self.stats.rate_limited += 1;
                    }
                }
            }
            Ok(Message {
                transaction,
                body: Body::Query(q),
            }) => {
                self.stats.queries_in += 1;
                if !usable(&from) {
                    return;
                }
                if !self.limiter.allow(from.ip(), now) {
                    self.stats.rate_limited += 1;
                    return;
                }
                // The sibling is only consulted for the other family; itself never.
                let other = other.filter(|o| o.config.family != self.config.family);
                self.answer(from, transaction, q, now, other);
            }
            Ok(Message {
                transaction,
                body: Body::Response(r),
            }) => self.on_response(from, &transaction, r, now),
            Ok(Message {
                transaction,
                body: Body::Error(_),
            }) => self.on_error(from, &transaction, now),
        }
        self.pump(now);
    }

    /// Runs what is due at `now`: query time-outs, token rotation, peer expiry, bucket
    /// refreshes. Harmless when nothing is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        let expired: Vec<((SocketAddr, u16), Outstanding)> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(k, o)| (*k, *o))
            .collect();
        for (key, o) in expired {
            self.outstanding.remove(&key);
            self.stats.timeouts += 1;
            if let Some(node) = o.node {
                self.routing.failed(node, key.0, now);
            }
            if let Purpose::Lookup(l) = o.purpose {
                if let Some(lookup) = self.lookups.get_mut(&l) {
                    lookup.on_failure(key.0, o.node);
                }
            }
        }
        if now >= self.next_maintenance {
            self.next_maintenance = now + MAINTENANCE;
            self.tokens.maybe_rotate(&mut self.rng, now);
            self.store.expire(now);
            self.refresh_buckets(now);
        }
        self.pump(now);
    }

    /// When [`Dht::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let first_deadline = self.outstanding.values().map(|o| o.deadline).min();
        Some(first_deadline.map_or(self.next_maintenance, |d| d.min(self.next_maintenance)))
    }

    /// The next thing for the driver to do, if any.
    pub fn poll_action(&mut self) -> Option<DhtAction> {
        self.out.pop_front()
    }

    fn refresh_buckets(&mut self, now: Instant) {
        let stale = self.routing.stale_buckets(self.config.bucket_refresh, now);
        for i in stale.into_iter().take(REFRESHES_PER_ROUND) {
            // Touched first, so a refresh that cannot start now is retried a period later
            // rather than every round.
            self.routing.touch(i, now);
            if self.routing.is_empty() {
                continue;
            }
            let target = self.routing.random_id_in(i, &mut self.rng);
            let _ = self.start_lookup(target, LookupKind::FindNode, &[], true, now);
        }
    }

    /// Sends what running lookups want sent, and finishes the lookups that are done.
    fn pump(&mut self, now: Instant) {
        let ids: Vec<LookupId> = self.lookups.keys().copied().collect();
        for id in ids {
            let free = self
                .config
                .max_outstanding
                .saturating_sub(self.outstanding.len());
            let Some(lookup) = self.lookups.get_mut(&id) else {
                continue;
            };
            let next = lookup.next_queries(self.config.alpha.max(1), free);
            let (target, peers) = (lookup.target, lookup.wants_peers());
            for n in next {
                let (addr, node) = match n {
                    Next::Node(node, addr) => (addr, Some(node)),
                    Next::Seed(addr) => (addr, None),
                };
                let want = self.own_want();
                let q = if peers {
                    Query::GetPeers {
                        id: self.id,
                        info_hash: target,
                        want,
                    }
                } else {
                    Query::FindNode {
                        id: self.id,
                        target,
                        want,
                    }
                };
                if !self.send_query(addr, node, q, Purpose::Lookup(id), now) {
                    // Cannot happen (the budget was the free slots), but never leave the
                    // lookup waiting for an answer to a query that was not sent.
                    if let Some(l) = self.lookups.get_mut(&id) {
                        l.on_failure(addr, node);
                    }
                }
            }
            if self.lookups.get(&id).is_some_and(Lookup::is_done) {
                self.finish(id, now);
            }
        }
    }

    fn finish(&mut self, id: LookupId, now: Instant) {
        let Some(mut lookup) = self.lookups.remove(&id) else {
            return;
        };
        if let LookupKind::Announce { port } = lookup.kind {
            let mut sent = 0;
            for (node, addr, token) in lookup.announce_targets() {
                let q = Query::AnnouncePeer {
                    id: self.id,
                    info_hash: lookup.target,
                    port: port.unwrap_or(0),
                    implied_port: port.is_none(),
                    token,
                };
                if self.send_query(addr, Some(node), q, Purpose::Announce, now) {
                    sent += 1;
                }
            }
            lookup.count_announces(sent);
        }
        if !lookup.internal {
            self.out.push_back(DhtAction::LookupDone {
                id,
                target: lookup.target,
                kind: lookup.kind,
                stats: lookup.stats(now),
            });
        }
    }

    fn has_outstanding_to(&self, addr: SocketAddr) -> bool {
        self.outstanding
            .range((addr, 0)..=(addr, u16::MAX))
            .next()
            .is_some()
    }

    /// Sends `query` to `to` if an outstanding slot is free; returns whether it was sent.
    fn send_query(
        &mut self,
        to: SocketAddr,
        node: Option<NodeId>,
        query: Query,
        purpose: Purpose,
        now: Instant,
    ) -> bool {
        if self.outstanding.len() >= self.config.max_outstanding {
            return false;
        }
        // Terminates: fewer than 65,536 queries are ever outstanding.
        while self.outstanding.contains_key(&(to, self.next_tid)) {
            self.next_tid = self.next_tid.wrapping_add(1);
        }
        let tid = self.next_tid;
        self.next_tid = self.next_tid.wrapping_add(1);
        self.outstanding.insert(
            (to, tid),
            Outstanding {
                deadline: now + self.config.query_timeout,
                node,
                purpose,
            },
        );
        self.stats.queries_out += 1;
        let msg = Message {
            transaction: tid.to_be_bytes().to_vec(),
            body: Body::Query(query),
        };
        self.send(to, &msg);
        true
    }

    fn send(&mut self, to: SocketAddr, msg: &Message) {
        let bytes = Bytes::from(msg.encode());
        self.stats.packets_out += 1;
        self.stats.bytes_out += bytes.len() as u64;
        self.out.push_back(DhtAction::Send { to, bytes });
    }

    fn send_error(&mut self, to: SocketAddr, transaction: Vec<u8>, code: i64, text: &[u8]) {
        self.stats.replies_out += 1;
        let msg = Message {
            transaction,
            body: Body::Error(ErrorMessage {
                code,
                message: text.to_vec(),
            }),
        };
        self.send(to, &msg);
    }

    fn reply(&mut self, to: SocketAddr, transaction: Vec<u8>, response: Response) {
        self.stats.replies_out += 1;
        // BEP 42: tell the asker where we see it, so it can derive its id.
        let response = Response {
            ip: Some(to),
            ..response
        };
        let msg = Message {
            transaction,
            body: Body::Response(response),
        };
        self.send(to, &msg);
    }

    /// The `K` closest nodes to `target` in compact form, leaving out the asker: IPv4
    /// nodes (`nodes`) and IPv6 nodes (`nodes6`). The table holds only nodes of this node's
    /// family, so one of the two lists is always empty.
    fn compact_closest(
        &self,
        target: &NodeId,
        asker: &NodeId,
        now: Instant,
    ) -> (Vec<CompactNode>, Vec<CompactNode6>) {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let closest = self.routing.closest(target, K + 1, now);
        for (id, addr) in closest.into_iter().filter(|(id, _)| id != asker).take(K) {
            match addr {
                SocketAddr::V4(addr) => v4.push(CompactNode { id, addr }),
                SocketAddr::V6(addr) => v6.push(CompactNode6 { id, addr }),
            }
        }
        (v4, v6)
    }

    /// The nodes answering a `find_node`/`get_peers` for `target` (BEP 32): without a
    /// `want`, those of the family the query came over (ours); with one, ours if wanted
    /// and the other family's from `other` if wanted and given.
    fn answer_nodes(
        &self,
        target: &NodeId,
        asker: &NodeId,
        want: Want,
        other: Option<&Dht>,
        now: Instant,
    ) -> (Vec<CompactNode>, Vec<CompactNode6>) {
        let (want4, want6) = if want.is_empty() {
            (
                self.config.family == Family::V4,
                self.config.family == Family::V6,
            )
        } else {
            (want.n4, want.n6)
        };
        let (own4, own6) = self.compact_closest(target, asker, now);
        let (other4, other6) = other.map_or((Vec::new(), Vec::new()), |o| {
            o.compact_closest(target, asker, now)
        });
        // Exactly one of `own4`/`own6` and one of `other4`/`other6` can be non-empty.
        let nodes = if want4 {
            [own4, other4].concat()
        } else {
            Vec::new()
        };
        let nodes6 = if want6 {
            [own6, other6].concat()
        } else {
            Vec::new()
        };
        (nodes, nodes6)
    }

    fn answer(
        &mut self,
        from: SocketAddr,
        transaction: Vec<u8>,
        q: Query,
        now: Instant,
        other: Option<&Dht>,
    ) {
        let asker = q.id();
        if asker != self.id {
            let known = self.routing.queried_by(asker, from, now);
            // A node we do not know yet is verified with a ping before it may enter the
            // table (an answer proves the address is really its own) — unless its id
            // could not enter it anyway (BEP 42). Its query is answered all the same.
            if !known
                && self.admissible(&asker, from)
                && self.routing.has_room_for(&asker, now)
                && !self.has_outstanding_to(from)
            {
                let ping = Query::Ping { id: self.id };
                self.send_query(from, Some(asker), ping, Purpose::Ping, now);
            }
        }
        let response = match q {
            Query::Ping { .. } => Response::id_only(self.id),
            Query::FindNode { target, want, .. } => {
                let (nodes, nodes6) = self.answer_nodes(&target, &asker, want, other, now);
                Response {
                    nodes,
                    nodes6,
                    ..Response::id_only(self.id)
                }
            }
            Query::GetPeers {
                info_hash, want, ..
            } => {
                self.tokens.maybe_rotate(&mut self.rng, now);
                let token = self.tokens.token(from.ip()).to_vec();
                let values =
                    self.store
                        .peers(&info_hash, self.config.max_values, &mut self.rng, now);
                let (nodes, nodes6) = if values.is_empty() {
                    self.answer_nodes(&info_hash, &asker, want, other, now)
                } else {
                    (Vec::new(), Vec::new())
                };
                Response {
                    id: self.id,
                    nodes,
                    nodes6,
                    values,
                    token: Some(token),
                    ip: None,
                }
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                ..
            } => {
                self.tokens.maybe_rotate(&mut self.rng, now);
                if !self.tokens.validate(from.ip(), &token) {
                    self.stats.bad_tokens += 1;
                    self.send_error(from, transaction, krpc::ERROR_PROTOCOL, b"bad token");
                    return;
                }
                let port = if implied_port { from.port() } else { port };
                // `from` is of this node's family (checked on arrival), so is the peer.
                let peer = SocketAddr::new(from.ip(), port);
                if let Err(e) = self.store.announce(info_hash, peer, now) {
                    let text = e.to_string();
                    self.send_error(from, transaction, krpc::ERROR_SERVER, text.as_bytes());
                    return;
                }
                self.stats.announces_stored += 1;
                Response::id_only(self.id)
            }
        };
        self.reply(from, transaction, response);
    }

    /// The query of ours that an answer from `from` with transaction id `t` answers, if
    /// any (taken off the outstanding list); otherwise the answer is counted as unmatched.
    fn take_outstanding(&mut self, from: SocketAddr, t: &[u8]) -> Option<Outstanding> {
        let found = <[u8; 2]>::try_from(t)
            .ok()
            .and_then(|tid| self.outstanding.remove(&(from, u16::from_be_bytes(tid))));
        if found.is_none() {
            self.stats.unmatched += 1;
        }
        found
    }

    /// Whether a node with `id` at `addr` may enter the routing table under BEP 42: always
    /// without enforcement; with it, when its IP is exempt or its id matches.
    fn admissible(&self, id: &NodeId, addr: SocketAddr) -> bool {
        !self.config.enforce_node_id || node_id_security::verify(id, addr.ip())
    }

    fn on_response(&mut self, from: SocketAddr, t: &[u8], mut r: Response, now: Instant) {
        let Some(o) = self.take_outstanding(from, t) else {
            return;
        };
        self.stats.responses_in += 1;
        let admissible = self.admissible(&r.id, from);
        if !admissible {
            self.stats.non_compliant += 1;
            // BEP 42 enforcement: no storage target, so its token is not kept.
            r.token = None;
        }
        match o.node {
            Some(expected) if expected != r.id => {
                // Someone else answers at that address now: the node we knew is gone.
                self.routing.failed(expected, from, now);
            }
            // Alive, but its id does not match its address: not in our table.
            _ if !admissible => {}
            _ => {
                if let Insert::PingQuestionable(nodes) = self.routing.heard_from(r.id, from, now) {
                    for (node, addr) in nodes {
                        if !self.has_outstanding_to(addr) {
                            let ping = Query::Ping { id: self.id };
                            self.send_query(addr, Some(node), ping, Purpose::Ping, now);
                        }
                    }
                }
            }
        }
        if let Purpose::Lookup(l) = o.purpose {
            let own = self.id;
            let Some(lookup) = self.lookups.get_mut(&l) else {
                return;
            };
            let fresh = lookup.on_response(from, o.node, own, &r);
            if !fresh.is_empty() && !lookup.internal {
                self.out.push_back(DhtAction::Peers {
                    lookup: l,
                    info_hash: lookup.target.into(),
                    peers: fresh,
                });
            }
        }
        if let Some(seen_as) = r.ip {
            self.on_address_vote(from, seen_as, now);
        }
    }

    /// Counts `voter`'s `ip` (BEP 42) and, when it confirms an external address our id
    /// does not match, takes a matching id. Votes for an address of another family, or
    /// one no node could have, are ignored.
    fn on_address_vote(&mut self, voter: SocketAddr, seen_as: SocketAddr, now: Instant) {
        let seen_as = canonical(seen_as);
        if Family::of(&seen_as) != self.config.family
            || seen_as.ip().is_unspecified()
            || seen_as.ip().is_multicast()
        {
            return;
        }
        let Some(external) = self.votes.vote(voter.ip(), seen_as.ip()) else {
            return;
        };
        // Any id is valid on a local network: keep ours.
        if node_id_security::is_exempt(external)
            || node_id_security::is_compliant(&self.id, external)
        {
            return;
        }
        let id = node_id_security::compliant_id(external, &mut self.rng);
        self.change_id(id, now);
    }

    /// Switches to node id `id`: the routing table is re-centred on it
    /// ([`RoutingTable::set_own_id`]), and a `find_node` for it (internal, like a bucket
    /// refresh) tells the nodes near our new place about us and fills the near buckets.
    /// Running lookups, outstanding queries, tokens and stored peers are unaffected (none
    /// depends on our id; lookups ask with the new one from now on).
    fn change_id(&mut self, id: NodeId, now: Instant) {
        self.id = id;
        self.routing.set_own_id(id, now);
        self.stats.node_id_changes += 1;
        if !self.routing.is_empty() {
            let _ = self.start_lookup(id, LookupKind::FindNode, &[], true, now);
        }
    }

    fn on_error(&mut self, from: SocketAddr, t: &[u8], _now: Instant) {
        let Some(o) = self.take_outstanding(from, t) else {
            return;
        };
        // The node is alive (it answered), so this is no routing failure; the lookup just
        // learns nothing from it.
        self.stats.errors_in += 1;
        if let Purpose::Lookup(l) = o.purpose {
            if let Some(lookup) = self.lookups.get_mut(&l) {
                lookup.on_failure(from, o.node);
            }
        }
    }
}

/// Whether `addr` can be a node's address in its family: a real unicast IP and a
/// non-zero port. (Which family a node speaks is [`Dht::accepts`].)
pub fn usable(addr: &SocketAddr) -> bool {
    match addr {
        SocketAddr::V4(a) => a.port() != 0 && !a.ip().is_unspecified() && !a.ip().is_broadcast(),
        SocketAddr::V6(a) => a.port() != 0 && !a.ip().is_unspecified() && !a.ip().is_multicast(),
    }
}
