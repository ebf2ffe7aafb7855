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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Action, Event, Session, TorrentId};
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
        }
    }

    /// The earliest moment the DHT or a schedule needs `handle_timeout`.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let due = self
            .schedules
            .values()
            .filter(|s| s.running.is_none())
            .map(|s| s.next)
            .min();
        [self.dht.poll_timeout(), due].into_iter().flatten().min()
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
        if self.bootstrap_nodes.is_empty()
            || self.last_bootstrap.is_some_and(|at| now - at < REBOOTSTRAP)
        {
            return;
        }
        self.last_bootstrap = Some(now);
        // A full lookup table only delays the bootstrap to the next due lookup.
        self.joining = self.dht.bootstrap(&self.bootstrap_nodes, now).ok();
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
        d.bootstrap(now);
        self.pump_dht(now);
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
