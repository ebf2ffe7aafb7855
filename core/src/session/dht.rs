//! The session's side of the DHT (BEP 5, BEP 32): one [`Dht`] node per address family the
//! driver can send over ([`SessionConfig::dht_families`](crate::SessionConfig)) serving
//! every torrent, when each torrent next looks itself up and announces, and the peers
//! found handed to the torrent like a tracker's. The node itself — KRPC, routing table, lookups, tokens, peer store —
//! is [`crate::dht`]; the driver only moves datagrams ([`Action::SendDatagram`],
//! [`Session::handle_datagram`]) and keeps the node list between runs
//! ([`Session::dht_nodes`], [`Session::dht_bootstrap`]).
//!
//! When a torrent looks itself up:
//! - at once when it is added (or as soon as the node knows any other node);
//! - after a lookup that no node answered (so nothing was announced either), or that found
//!   no peer while the torrent is incomplete, again after [`RETRY_MIN`], doubling up to
//!   [`RETRY_MAX`]: a downloader with nobody to download from keeps asking, as the first
//!   announcer may only just be joining, and a seed that could not announce tries again;
//! - while the torrent is incomplete and connected to fewer than half the peers it may
//!   have, every [`LOOK_AGAIN`]: early lookups see only the first announcers, and the
//!   swarm fills in as the others announce (the simulator measured a 30-peer swarm 40 %
//!   over the P2P bound with 15-minute lookups alone);
//! - otherwise every [`REANNOUNCE`], well inside the 30 minutes a DHT node keeps an
//!   announced peer.
//!
//! IPv6 (BEP 32): each family's node keeps its own routing table. A datagram goes to the
//! node of its sender's family (an IPv4-mapped IPv6 sender, as a dual-stack socket
//! reports IPv4, counts as IPv4); each node answers a `want` for the other family with the
//! other node's nodes too. A torrent's lookup runs in every family's node whose table
//! holds a node (in all of them while none does), and counts as done — rescheduled, one
//! [`Event::DhtLookupDone`] with the sums — when all of them are. Bootstrap and router
//! addresses go to the node of their family.
//!
//! Every lookup is an announce (`get_peers`, then `announce_peer` to the closest nodes)
//! when the session listens on a known port, a plain `get_peers` otherwise. Private
//! torrents (BEP 27) never use the DHT.
//!
//! Joining: the node joins through bootstrap addresses ([`Session::dht_bootstrap`]: saved
//! nodes, `--dht-bootstrap`) and through *routers* named by host
//! ([`Session::dht_join_routers`], e.g. [`crate::dht::PUBLIC_ROUTERS`]), whose names the
//! driver resolves ([`Action::Resolve`], [`Session::handle_resolved`]); a name not
//! resolved within [`ROUTER_RESOLVE_TIMEOUT`] counts as failed. A join that ends with an
//! empty routing table — every name failed and no address answered — is reported once
//! ([`Event::DhtJoinFailed`], naming each router's failure) and retried every
//! [`REBOOTSTRAP`] while the table stays empty.
//!
//! Invariant (the give-up rule relies on it, see `give_up.rs`): the DHT can find peers —
//! [`SessionDht::can_find_peers`] — only while a routing table holds a node or a first
//! join is under way (a name being resolved or a bootstrap lookup running; the retries
//! after a failed join do not count until the table holds a node again). A node with no
//! way in is no source, so a download with nothing else gives up instead of waiting
//! forever, once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Action, DhtRouterFailure, Event, Session, TorrentId};
use crate::dht::{
    Dht, DhtAction, DhtConfig, DhtFamilies, DhtStats, Family, LookupId, LookupStats, canonical,
};
use crate::info_hash::InfoHash;
use crate::time::Instant;

/// A torrent's regular re-announce (libtorrent: 15 min; stored peers live 30 min).
pub(super) const REANNOUNCE: Duration = Duration::from_secs(15 * 60);
/// Wait between lookups of an incomplete torrent short of peers.
pub(super) const LOOK_AGAIN: Duration = Duration::from_secs(60);
/// First wait before looking again after a lookup that found nobody.
pub(super) const RETRY_MIN: Duration = Duration::from_secs(5);
/// Longest wait between lookups of an incomplete torrent that keeps finding nobody.
pub(super) const RETRY_MAX: Duration = Duration::from_secs(5 * 60);
/// How long a due lookup waits for the bootstrap when the routing table is still empty.
const JOIN_WAIT: Duration = Duration::from_millis(250);
/// Shortest wait between two bootstraps started because the routing table was empty.
const REBOOTSTRAP: Duration = Duration::from_secs(30);
/// A router's name not resolved within this long counts as failed (a driver's resolver
/// may hang on an unreachable name server far longer).
pub(super) const ROUTER_RESOLVE_TIMEOUT: Duration = Duration::from_secs(15);

/// A DHT router named by host: resolved by the driver, its addresses bootstrapped from.
#[derive(Debug)]
struct Router {
    host: String,
    port: u16,
    state: RouterState,
}

/// Where a router's name stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RouterState {
    /// An [`Action::Resolve`] is out since this moment.
    Resolving { since: Instant },
    /// Resolved; its addresses are among the bootstrap nodes.
    Resolved,
    /// Not resolved, for this reason (tried again at the next bootstrap).
    Failed(String),
}

/// When one torrent next looks itself up.
#[derive(Debug)]
struct Schedule {
    torrent: TorrentId,
    /// When the next lookup is due (ignored while one runs).
    next: Instant,
    /// The wait after the next fruitless lookup.
    retry: Duration,
    /// The lookups running for it, one per family at most; the schedule waits for all.
    running: Vec<(Family, LookupId)>,
    /// The counters of this round's lookups that already finished, summed.
    so_far: LookupStats,
}

/// The node and the per-torrent schedules.
#[derive(Debug)]
pub(super) struct SessionDht {
    /// The IPv4 node, when the driver sends over IPv4.
    v4: Option<Dht>,
    /// The IPv6 node (BEP 32), when the driver sends over IPv6. Invariant: at least one of
    /// `v4`/`v6` is set, each with the [`DhtConfig::family`] of its name.
    v6: Option<Dht>,
    schedules: BTreeMap<InfoHash, Schedule>,
    /// Which torrent a running lookup is for (lookup ids are per node, hence the family).
    lookups: BTreeMap<(Family, LookupId), InfoHash>,
    /// Nodes to bootstrap from again when the routing table runs empty.
    bootstrap_nodes: Vec<SocketAddr>,
    last_bootstrap: Option<Instant>,
    /// Each family's bootstrap lookup while it runs: torrents wait for them, since a
    /// lookup through a table that holds only the first few nodes ends at the wrong
    /// "closest" nodes.
    joining: BTreeMap<Family, LookupId>,
    /// Routers named by host, in the order given.
    routers: Vec<Router>,
    /// Whether the failure of the current join was reported (reset when the table fills
    /// or a new join starts), so one failed join is one [`Event::DhtJoinFailed`].
    join_failure_reported: bool,
    /// Resolve requests to hand out as actions.
    resolves: Vec<(String, u16)>,
    /// A join failed since the table last held a node (or a way in was last given): the
    /// retries every [`REBOOTSTRAP`] go on, but do not count as a source (else a torrent
    /// with nothing else would give up again after every retry).
    failed_join: bool,
}

impl SessionDht {
    /// Nodes for `families` (IPv4 alone when neither is set). Both are seeded with `seed`:
    /// an IPv4-only session is what it was before BEP 32, and the two nodes start with one
    /// node id, as BEP 32 recommends (their token secrets match too, which is harmless: a
    /// token is bound to the asker's IP, and each node checks only its own family's
    /// askers). Once a node learns its external address (BEP 42) it may take an id derived
    /// from it, so the two ids part then: an id can match one address only.
    pub(super) fn new(config: DhtConfig, families: DhtFamilies, seed: u64, now: Instant) -> Self {
        let with = |family| DhtConfig {
            family,
            ..config.clone()
        };
        let v4_wanted = families.v4 || !families.v6;
        SessionDht {
            v4: v4_wanted.then(|| Dht::new(with(Family::V4), seed, now)),
            v6: families.v6.then(|| Dht::new(with(Family::V6), seed, now)),
            schedules: BTreeMap::new(),
            lookups: BTreeMap::new(),
            bootstrap_nodes: Vec::new(),
            last_bootstrap: None,
            joining: BTreeMap::new(),
            routers: Vec::new(),
            join_failure_reported: false,
            resolves: Vec::new(),
            failed_join: false,
        }
    }

    /// The nodes, IPv4 first.
    fn nodes(&self) -> impl Iterator<Item = &Dht> {
        self.v4.iter().chain(self.v6.iter())
    }

    /// The node of `family`, if run.
    fn node_mut(&mut self, family: Family) -> Option<&mut Dht> {
        match family {
            Family::V4 => self.v4.as_mut(),
            Family::V6 => self.v6.as_mut(),
        }
    }

    /// The families run, IPv4 first.
    fn families(&self) -> Vec<Family> {
        self.nodes().map(Dht::family).collect()
    }

    /// Whether every node's routing table is empty.
    fn all_empty(&self) -> bool {
        self.nodes().all(|n| n.routing_table().is_empty())
    }

    /// Whether some node's routing table is empty.
    fn any_empty(&self) -> bool {
        self.nodes().any(|n| n.routing_table().is_empty())
    }

    /// Whether some node can use `addr` (a real address of its family).
    fn accepts(&self, addr: &SocketAddr) -> bool {
        self.nodes().any(|n| n.accepts(addr))
    }

    /// Whether this node may find peers: it knows a node, or a join is under way (see the
    /// module's invariant).
    pub(super) fn can_find_peers(&self) -> bool {
        !self.all_empty() || !self.failed_join && (!self.joining.is_empty() || self.resolving())
    }

    /// Whether a router's name is being resolved.
    fn resolving(&self) -> bool {
        self.routers
            .iter()
            .any(|r| matches!(r.state, RouterState::Resolving { .. }))
    }

    /// Asks for `router`'s name to be resolved (again).
    fn resolve(&mut self, index: usize, now: Instant) {
        let Some(r) = self.routers.get_mut(index) else {
            return;
        };
        r.state = RouterState::Resolving { since: now };
        self.resolves.push((r.host.clone(), r.port));
    }

    /// The earliest moment the DHT or a schedule needs `handle_timeout`.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let due = self
            .schedules
            .values()
            .filter(|s| s.running.is_empty())
            .map(|s| s.next)
            .min();
        let resolve_deadline = self
            .routers
            .iter()
            .filter_map(|r| match r.state {
                RouterState::Resolving { since } => Some(since + ROUTER_RESOLVE_TIMEOUT),
                _ => None,
            })
            .min();
        self.nodes()
            .map(Dht::poll_timeout)
            .chain([due, resolve_deadline])
            .flatten()
            .min()
    }

    fn track(&mut self, info_hash: InfoHash, torrent: TorrentId, now: Instant) {
        self.schedules.entry(info_hash).or_insert(Schedule {
            torrent,
            next: now,
            retry: RETRY_MIN,
            running: Vec::new(),
            so_far: LookupStats::default(),
        });
    }

    /// Joins through the bootstrap nodes (and resolves failed routers again), at most
    /// every [`REBOOTSTRAP`]: every node with a bootstrap address of its family, or with
    /// a table to start from, when `all`; else only the nodes whose table is empty.
    fn bootstrap(&mut self, all: bool, now: Instant) {
        if (self.bootstrap_nodes.is_empty() && self.routers.is_empty())
            || self.last_bootstrap.is_some_and(|at| now - at < REBOOTSTRAP)
        {
            return;
        }
        self.last_bootstrap = Some(now);
        self.join_failure_reported = false;
        // Names that failed get another chance: the network may have come up since.
        for i in 0..self.routers.len() {
            if matches!(self.routers[i].state, RouterState::Failed(_)) {
                self.resolve(i, now);
            }
        }
        if self.bootstrap_nodes.is_empty() {
            return;
        }
        for family in self.families() {
            let seeds = self.bootstrap_nodes.clone();
            let Some(node) = self.node_mut(family) else {
                continue;
            };
            let empty = node.routing_table().is_empty();
            let way_in = seeds.iter().any(|a| node.accepts(a));
            // A node with nothing to start from would only run an empty lookup.
            if !(all || empty) || (empty && !way_in) {
                continue;
            }
            // A full lookup table only delays the bootstrap to the next due lookup.
            match node.bootstrap(&seeds, now) {
                Ok(id) => self.joining.insert(family, id),
                Err(_) => self.joining.remove(&family),
            };
        }
    }

    /// A router's name answered: its addresses join the bootstrap nodes and are tried at
    /// once (a join through other nodes may already be running: this one runs beside it).
    /// Returns whether `host:port` was one of ours.
    fn router_resolved(
        &mut self,
        host: &str,
        port: u16,
        result: &Result<Vec<SocketAddr>, crate::tracker::ResolveError>,
        now: Instant,
    ) -> bool {
        // Addresses of a family this session runs a node for (computed before `r` borrows
        // the router list).
        let usable: Vec<SocketAddr> = match result {
            Ok(addrs) => addrs
                .iter()
                .map(|a| canonical(*a))
                .filter(|a| self.accepts(a))
                .take(MAX_ROUTER_ADDRS)
                .collect(),
            Err(_) => Vec::new(),
        };
        let Some(r) = self.routers.iter_mut().find(|r| {
            r.host == host && r.port == port && matches!(r.state, RouterState::Resolving { .. })
        }) else {
            return false;
        };
        let addrs: Vec<SocketAddr> = match result {
            Ok(_) => usable,
            Err(e) => {
                r.state = RouterState::Failed(e.to_string());
                return true;
            }
        };
        if addrs.is_empty() {
            r.state = RouterState::Failed("the name has no address the DHT node can use".into());
            return true;
        }
        r.state = RouterState::Resolved;
        for a in &addrs {
            if !self.bootstrap_nodes.contains(a) {
                self.bootstrap_nodes.push(*a);
            }
        }
        for family in self.families() {
            let Some(node) = self.node_mut(family) else {
                continue;
            };
            if !addrs.iter().any(|a| node.accepts(a)) {
                continue;
            }
            if let Ok(id) = node.bootstrap(&addrs, now) {
                self.joining.insert(family, id);
            }
        }
        true
    }

    /// Names unresolved past [`ROUTER_RESOLVE_TIMEOUT`] fail.
    fn expire_resolves(&mut self, now: Instant) {
        for r in &mut self.routers {
            if let RouterState::Resolving { since } = r.state {
                if now - since >= ROUTER_RESOLVE_TIMEOUT {
                    let secs = ROUTER_RESOLVE_TIMEOUT.as_secs();
                    r.state = RouterState::Failed(format!("the name was not resolved in {secs} s"));
                }
            }
        }
    }

    /// The join's failure, once: the table is empty, no name is being resolved and no
    /// bootstrap lookup runs, yet there was a way in to try.
    fn join_failure(&mut self) -> Option<Event> {
        if !self.all_empty() {
            self.failed_join = false;
            return None;
        }
        if self.join_failure_reported
            || !self.joining.is_empty()
            || self.resolving()
            || (self.routers.is_empty() && self.bootstrap_nodes.is_empty())
        {
            return None;
        }
        self.join_failure_reported = true;
        self.failed_join = true;
        let routers = self
            .routers
            .iter()
            .map(|r| DhtRouterFailure {
                router: format!("{}:{}", r.host, r.port),
                reason: match &r.state {
                    RouterState::Failed(why) => why.clone(),
                    _ => "no answer from its addresses".into(),
                },
            })
            .collect();
        Some(Event::DhtJoinFailed {
            nodes_tried: self.bootstrap_nodes.len(),
            routers,
        })
    }
}

/// The most addresses of one router's name tried (a name may list dozens).
const MAX_ROUTER_ADDRS: usize = 4;

/// `a` plus `b`, counter by counter.
fn add_stats(a: DhtStats, b: DhtStats) -> DhtStats {
    DhtStats {
        packets_in: a.packets_in + b.packets_in,
        bytes_in: a.bytes_in + b.bytes_in,
        packets_out: a.packets_out + b.packets_out,
        bytes_out: a.bytes_out + b.bytes_out,
        queries_in: a.queries_in + b.queries_in,
        queries_out: a.queries_out + b.queries_out,
        replies_out: a.replies_out + b.replies_out,
        responses_in: a.responses_in + b.responses_in,
        errors_in: a.errors_in + b.errors_in,
        rate_limited: a.rate_limited + b.rate_limited,
        too_large: a.too_large + b.too_large,
        malformed: a.malformed + b.malformed,
        unmatched: a.unmatched + b.unmatched,
        wrong_family: a.wrong_family + b.wrong_family,
        timeouts: a.timeouts + b.timeouts,
        bad_tokens: a.bad_tokens + b.bad_tokens,
        announces_stored: a.announces_stored + b.announces_stored,
        non_compliant: a.non_compliant + b.non_compliant,
        node_id_changes: a.node_id_changes + b.node_id_changes,
    }
}

impl Session {
    /// Whether this session runs a DHT node (`SessionConfig::dht` was set).
    pub fn dht_enabled(&self) -> bool {
        self.dht.is_some()
    }

    /// Joins the DHT through `nodes` (configured bootstrap nodes and those saved from the
    /// last run): a `find_node` lookup for our own id. The nodes are kept and used again
    /// whenever the routing table runs empty. Ignored without a DHT.
    pub fn dht_bootstrap(&mut self, nodes: &[SocketAddr], now: Instant) {
        let Some(d) = self.dht.as_mut() else {
            return;
        };
        for n in nodes {
            if !d.bootstrap_nodes.contains(n) {
                d.bootstrap_nodes.push(*n);
            }
        }
        d.last_bootstrap = None;
        d.failed_join = false;
        d.bootstrap(true, now);
        self.pump_dht(now);
    }

    /// Joins the DHT through routers named by host (`(host, port)`, e.g.
    /// [`crate::dht::PUBLIC_ROUTERS`]): each name is resolved by the driver
    /// ([`Action::Resolve`]; answer with [`Session::handle_resolved`]) and its addresses
    /// bootstrapped from, again whenever the routing table runs empty. A failure of every
    /// way in is reported as [`Event::DhtJoinFailed`]. Ignored without a DHT.
    pub fn dht_join_routers(&mut self, routers: &[(String, u16)], now: Instant) {
        let Some(d) = self.dht.as_mut() else {
            return;
        };
        for (host, port) in routers {
            if d.routers.iter().any(|r| &r.host == host && r.port == *port) {
                continue;
            }
            d.routers.push(Router {
                host: host.clone(),
                port: *port,
                state: RouterState::Failed(String::new()),
            });
            let index = d.routers.len() - 1;
            d.resolve(index, now);
        }
        d.join_failure_reported = false;
        d.failed_join = false;
        self.pump_dht(now);
    }

    /// A resolved name that may be one of the DHT's routers: `true` when it was.
    pub(super) fn dht_router_resolved(
        &mut self,
        host: &str,
        port: u16,
        result: &Result<Vec<SocketAddr>, crate::tracker::ResolveError>,
        now: Instant,
    ) -> bool {
        let Some(d) = self.dht.as_mut() else {
            return false;
        };
        if !d.router_resolved(host, port, result, now) {
            return false;
        }
        self.pump_dht(now);
        true
    }

    /// Whether the DHT may still find peers for a public torrent (see the module's
    /// invariant); `false` without a DHT.
    pub(super) fn dht_can_find_peers(&self) -> bool {
        self.dht.as_ref().is_some_and(|d| d.can_find_peers())
    }

    /// A datagram arrived on the session's UDP socket from `from`: a UDP tracker's reply
    /// (a BEP 15 response, starting with its 4-byte action 0..=3, from a tracker an
    /// announce talks to) goes to that announce; a valid uTP header (version 1, type 0–4)
    /// to the session's uTP streams (`utp_streams.rs`, as libtorrent demultiplexes);
    /// anything else (a DHT message is a bencoded dictionary, starting with `d`) to the
    /// DHT, ignored without one.
    ///
    /// An IPv4-mapped IPv6 sender (`::ffff:a.b.c.d`: what a dual-stack socket reports for
    /// IPv4) is taken as the IPv4 address it is, for trackers and DHT alike; a DHT message
    /// goes to the node of the sender's family (to the first node, which counts and drops
    /// it, when that family is not run).
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) {
        let from = canonical(from);
        if self.tracker_datagram(from, bytes, now) {
            return;
        }
        // uTP next, by its header (a bencoded dictionary never passes for one).
        if self.utp_datagram(from, bytes, now) {
            return;
        }
        let Some(d) = self.dht.as_mut() else {
            return;
        };
        // Disjoint fields: the receiving node, and its sibling for `want` of the other
        // family.
        let (own, other) = match Family::of(&from) {
            Family::V4 => (d.v4.as_mut(), d.v6.as_ref()),
            Family::V6 => (d.v6.as_mut(), d.v4.as_ref()),
        };
        match own {
            Some(node) => node.handle_packet_with(from, bytes, now, other),
            None => {
                if let Some(node) = d.v4.as_mut().or(d.v6.as_mut()) {
                    node.handle_packet(from, bytes, now);
                }
            }
        }
        self.pump_dht(now);
    }

    /// The DHT nodes worth saving for the next run (good nodes of the routing table).
    /// Both families' when both run, IPv4 first.
    pub fn dht_nodes(&self) -> Vec<SocketAddr> {
        self.dht
            .as_ref()
            .map(|d| {
                d.nodes()
                    .flat_map(|n| n.nodes().into_iter().map(|(_, a)| a))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The DHT's counters and routing-table size, summed over its nodes (`None` without
    /// a DHT).
    pub fn dht_stats(&self) -> Option<(DhtStats, usize)> {
        let d = self.dht.as_ref()?;
        Some(d.nodes().fold((DhtStats::default(), 0), |(s, len), n| {
            (add_stats(s, n.stats()), len + n.routing_table().len())
        }))
    }

    /// One family's DHT node: its counters and routing-table size (`None` without a DHT
    /// or without a node of that family).
    pub fn dht_family_stats(&self, family: Family) -> Option<(DhtStats, usize)> {
        let d = self.dht.as_ref()?;
        d.nodes()
            .find(|n| n.family() == family)
            .map(|n| (n.stats(), n.routing_table().len()))
    }

    /// Starts looking `torrent` up in the DHT (unless the DHT is off or the torrent is
    /// private). Called when a torrent is added.
    pub(super) fn dht_track(&mut self, torrent: TorrentId, now: Instant) {
        let Some(t) = self.torrents.get(&torrent) else {
            return;
        };
        if t.is_private() {
            return;
        }
        let info_hash = t.info_hash;
        if let Some(d) = self.dht.as_mut() {
            d.track(info_hash, torrent, now);
        }
        self.pump_dht(now);
    }

    /// Runs the DHT's timers and due lookups, then carries out what it asked for.
    pub(super) fn dht_timeout(&mut self, now: Instant) {
        if let Some(d) = self.dht.as_mut() {
            d.expire_resolves(now);
            for node in d.v4.iter_mut().chain(d.v6.iter_mut()) {
                node.handle_timeout(now);
            }
        }
        self.pump_dht(now);
    }

    /// Starts due lookups and turns the node's actions into session actions.
    fn pump_dht(&mut self, now: Instant) {
        let listen_port = self.config.listen_port;
        let Some(d) = self.dht.as_mut() else {
            return;
        };
        if d.any_empty() {
            d.bootstrap(false, now);
        }
        // While a bootstrap is out, a lookup would find nobody, or only the first nodes
        // to answer: look again shortly (not at once: a past deadline would spin).
        let joining = !d.joining.is_empty();
        let due: Vec<InfoHash> = d
            .schedules
            .iter()
            .filter(|(_, s)| s.running.is_empty() && s.next <= now)
            .map(|(h, _)| *h)
            .collect();
        for info_hash in due {
            if joining {
                if let Some(s) = d.schedules.get_mut(&info_hash) {
                    s.next = now + JOIN_WAIT;
                }
                continue;
            }
            // Torrents that became private once their metadata arrived stop here.
            let private = d
                .schedules
                .get(&info_hash)
                .and_then(|s| self.torrents.get(&s.torrent))
                .is_none_or(|t| t.is_private());
            if private {
                d.schedules.remove(&info_hash);
                continue;
            }
            // Every family whose table knows a node; all while none does (the lookups then
            // end at once, unanswered, and the torrent retries on the usual schedule).
            let all = d.all_empty();
            let mut started = Vec::new();
            for node in d.v4.iter_mut().chain(d.v6.iter_mut()) {
                if !all && node.routing_table().is_empty() {
                    continue;
                }
                let result = if listen_port != 0 {
                    node.announce(info_hash, Some(listen_port), now)
                } else {
                    node.get_peers(info_hash, now)
                };
                if let Ok(id) = result {
                    started.push((node.family(), id));
                }
            }
            let Some(s) = d.schedules.get_mut(&info_hash) else {
                continue;
            };
            if started.is_empty() {
                // Too many lookups at once: try again shortly.
                s.next = now + RETRY_MIN;
            }
            for key in started {
                s.running.push(key);
                d.lookups.insert(key, info_hash);
            }
        }
        for family in self
            .dht
            .as_ref()
            .map(SessionDht::families)
            .unwrap_or_default()
        {
            self.drain_dht(family, now);
        }
        let Some(d) = self.dht.as_mut() else {
            return;
        };
        for (host, port) in std::mem::take(&mut d.resolves) {
            self.out.push(Action::Resolve { host, port });
        }
        if let Some(event) = d.join_failure() {
            self.out.push(Action::Event(event));
        }
    }

    /// Carries out what the node of `family` asked for.
    fn drain_dht(&mut self, family: Family, now: Instant) {
        while let Some(action) = self
            .dht
            .as_mut()
            .and_then(|d| d.node_mut(family))
            .and_then(Dht::poll_action)
        {
            match action {
                DhtAction::Send { to, bytes } => self.out.push(Action::SendDatagram { to, bytes }),
                DhtAction::Peers {
                    info_hash, peers, ..
                } => {
                    if let Some(torrent) = self.by_hash.get(&info_hash).copied() {
                        self.add_peers_from(torrent, super::PeerSource::Dht, &peers, now);
                    }
                }
                DhtAction::LookupDone { id, stats, .. } => {
                    self.dht_lookup_done(family, id, stats, now);
                }
            }
        }
    }

    fn dht_lookup_done(&mut self, family: Family, id: LookupId, one: LookupStats, now: Instant) {
        let Some(d) = self.dht.as_mut() else {
            return;
        };
        if d.joining.get(&family) == Some(&id) {
            d.joining.remove(&family);
        }
        let Some(info_hash) = d.lookups.remove(&(family, id)) else {
            return;
        };
        let Some(s) = d.schedules.get_mut(&info_hash) else {
            return;
        };
        s.running.retain(|k| *k != (family, id));
        s.so_far = LookupStats {
            queries: s.so_far.queries + one.queries,
            responses: s.so_far.responses + one.responses,
            failures: s.so_far.failures + one.failures,
            hops: s.so_far.hops.max(one.hops),
            peers: s.so_far.peers + one.peers,
            announces: s.so_far.announces + one.announces,
            elapsed: s.so_far.elapsed.max(one.elapsed),
        };
        // The other family's lookup for this round is still out: wait for it.
        if !s.running.is_empty() {
            return;
        }
        let stats = std::mem::take(&mut s.so_far);
        let torrent = s.torrent;
        let (complete, peers) = self
            .torrents
            .get(&torrent)
            .map_or((true, 0), |t| (t.is_complete(), t.peer_count()));
        // Nobody answered (the table was empty, or every node timed out): the announce did
        // not happen either, so a seed too must try again soon, or nobody finds it.
        if stats.responses == 0 || stats.peers == 0 && !complete {
            s.next = now + s.retry;
            s.retry = (s.retry * 2).min(RETRY_MAX);
        } else {
            let short = !complete && peers < self.config.max_peers_per_torrent / 2;
            s.next = now + if short { LOOK_AGAIN } else { REANNOUNCE };
            s.retry = RETRY_MIN;
        }
        self.out.push(Action::Event(Event::DhtLookupDone {
            torrent,
            peers: stats.peers,
            queries: stats.queries,
            announced: stats.announces,
        }));
    }
}
