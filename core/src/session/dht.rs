//! The session's side of the DHT (BEP 5): one [`Dht`] node for every torrent, when each
//! torrent next looks itself up and announces, and the peers found handed to the torrent
//! like a tracker's. The node itself — KRPC, routing table, lookups, tokens, peer store —
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
//! [`SessionDht::can_find_peers`] — only while its routing table holds a node or a first
//! join is under way (a name being resolved or a bootstrap lookup running; the retries
//! after a failed join do not count until the table holds a node again). A node with no
//! way in is no source, so a download with nothing else gives up instead of waiting
//! forever, once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Action, DhtRouterFailure, Event, Session, TorrentId};
use crate::dht::{Dht, DhtAction, DhtConfig, DhtStats, LookupId, LookupStats};
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
    running: Option<LookupId>,
}

/// The node and the per-torrent schedules.
#[derive(Debug)]
pub(super) struct SessionDht {
    dht: Dht,
    schedules: BTreeMap<InfoHash, Schedule>,
    /// Which torrent a running lookup is for.
    lookups: BTreeMap<LookupId, InfoHash>,
    /// Nodes to bootstrap from again when the routing table runs empty.
    bootstrap_nodes: Vec<SocketAddr>,
    last_bootstrap: Option<Instant>,
    /// The bootstrap lookup while it runs: torrents wait for it, since a lookup through a
    /// table that holds only the first few nodes ends at the wrong "closest" nodes.
    joining: Option<LookupId>,
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
    pub(super) fn new(config: DhtConfig, seed: u64, now: Instant) -> Self {
        SessionDht {
            dht: Dht::new(config, seed, now),
            schedules: BTreeMap::new(),
            lookups: BTreeMap::new(),
            bootstrap_nodes: Vec::new(),
            last_bootstrap: None,
            joining: None,
            routers: Vec::new(),
            join_failure_reported: false,
            resolves: Vec::new(),
            failed_join: false,
        }
    }

    /// Whether this node may find peers: it knows a node, or a join is under way (see the
    /// module's invariant).
    pub(super) fn can_find_peers(&self) -> bool {
        !self.dht.routing_table().is_empty()
            || !self.failed_join && (self.joining.is_some() || self.resolving())
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
            .filter(|s| s.running.is_none())
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
        [self.dht.poll_timeout(), due, resolve_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    fn track(&mut self, info_hash: InfoHash, torrent: TorrentId, now: Instant) {
        self.schedules.entry(info_hash).or_insert(Schedule {
            torrent,
            next: now,
            retry: RETRY_MIN,
            running: None,
        });
    }

    fn bootstrap(&mut self, now: Instant) {
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
        // A full lookup table only delays the bootstrap to the next due lookup.
        self.joining = self.dht.bootstrap(&self.bootstrap_nodes, now).ok();
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
        let Some(r) = self.routers.iter_mut().find(|r| {
            r.host == host && r.port == port && matches!(r.state, RouterState::Resolving { .. })
        }) else {
            return false;
        };
        let addrs: Vec<SocketAddr> = match result {
            Ok(addrs) => addrs
                .iter()
                .copied()
                .filter(crate::dht::usable)
                .take(MAX_ROUTER_ADDRS)
                .collect(),
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
        if let Ok(id) = self.dht.bootstrap(&addrs, now) {
            self.joining = Some(id);
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
        if !self.dht.routing_table().is_empty() {
            self.failed_join = false;
            return None;
        }
        if self.join_failure_reported
            || self.joining.is_some()
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
        d.bootstrap(now);
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
    /// announce talks to) goes to that announce; anything else (a DHT message is a
    /// bencoded dictionary, starting with `d`) to the DHT, ignored without one.
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) {
        if self.tracker_datagram(from, bytes, now) {
            return;
        }
        let Some(d) = self.dht.as_mut() else {
            return;
        };
        d.dht.handle_packet(from, bytes, now);
        self.pump_dht(now);
    }

    /// The DHT nodes worth saving for the next run (good nodes of the routing table).
    pub fn dht_nodes(&self) -> Vec<SocketAddr> {
        self.dht
            .as_ref()
            .map(|d| d.dht.nodes().into_iter().map(|(_, a)| a).collect())
            .unwrap_or_default()
    }

    /// The DHT node's counters and table size (`None` without a DHT).
    pub fn dht_stats(&self) -> Option<(DhtStats, usize)> {
        self.dht
            .as_ref()
            .map(|d| (d.dht.stats(), d.dht.routing_table().len()))
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
            d.dht.handle_timeout(now);
        }
        self.pump_dht(now);
    }

    /// Starts due lookups and turns the node's actions into session actions.
    fn pump_dht(&mut self, now: Instant) {
        let listen_port = self.config.listen_port;
        let Some(d) = self.dht.as_mut() else {
            return;
        };
        if d.dht.routing_table().is_empty() {
            d.bootstrap(now);
        }
        // While the bootstrap is out, a lookup would find nobody, or only the first nodes
        // to answer: look again shortly (not at once: a past deadline would spin).
        let joining = d.joining.is_some();
        let due: Vec<InfoHash> = d
            .schedules
            .iter()
            .filter(|(_, s)| s.running.is_none() && s.next <= now)
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
            let started = if listen_port != 0 {
                d.dht.announce(info_hash, Some(listen_port), now)
            } else {
                d.dht.get_peers(info_hash, now)
            };
            let Some(s) = d.schedules.get_mut(&info_hash) else {
                continue;
            };
            match started {
                Ok(id) => {
                    s.running = Some(id);
                    d.lookups.insert(id, info_hash);
                }
                // Too many lookups at once: try again shortly.
                Err(_) => s.next = now + RETRY_MIN,
            }
        }
        while let Some(action) = self.dht.as_mut().and_then(|d| d.dht.poll_action()) {
            match action {
                DhtAction::Send { to, bytes } => self.out.push(Action::SendDatagram { to, bytes }),
                DhtAction::Peers {
                    info_hash, peers, ..
                } => {
                    if let Some(torrent) = self.by_hash.get(&info_hash).copied() {
                        self.add_peers_from(torrent, super::PeerSource::Dht, &peers, now);
                    }
                }
                DhtAction::LookupDone { id, stats, .. } => self.dht_lookup_done(id, stats, now),
            }
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

    fn dht_lookup_done(&mut self, id: LookupId, stats: LookupStats, now: Instant) {
        let Some(d) = self.dht.as_mut() else {
            return;
        };
        if d.joining == Some(id) {
            d.joining = None;
        }
        let Some(info_hash) = d.lookups.remove(&id) else {
            return;
        };
        let Some(s) = d.schedules.get_mut(&info_hash) else {
            return;
        };
        s.running = None;
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
