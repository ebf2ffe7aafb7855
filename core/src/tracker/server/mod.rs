//! The tracker *server*, sans-IO: swarms per info-hash that register announcing peers,
//! forget silent ones and answer each announce with a **random subset** of the swarm.
//!
//! [`TrackerServer`] holds all state; time comes in as [`Instant`] and randomness from a
//! [`fastrand::Rng`] seeded by the caller, so a run is reproducible. Two fronts turn bytes
//! into calls: [`TrackerServer::handle_http_request`] (BEP 3/23/48 over HTTP/1.1) and
//! [`TrackerServer::handle_udp_packet`] (BEP 15).
//!
//! Memory is bounded by [`ServerConfig`]: beyond `max_peers_per_swarm` or `max_total_peers`
//! a *new* peer is refused with a [`ServerError`] (already registered peers keep
//! refreshing), so a flood of fake announces cannot grow the server.
//!
//! Swarms are different: refusing a new swarm when `max_swarms` is reached would let 12,000
//! announces of random info-hashes lock every honest torrent out. So:
//! - under pressure the new swarm **evicts** the least useful one: the lowest population,
//!   and among equals the least recently announced (a junk hash has one peer and is never
//!   refreshed; a live swarm has several peers and re-announces every interval);
//! - one address (an IPv4 address, an IPv6 /64) may **create** at most
//!   [`SwarmQuota::per_ip`] swarms per [`SwarmQuota::window`]; beyond that its new hashes
//!   are refused with [`ServerError::QuotaExceeded`]. Announces into existing swarms never
//!   count, so a flood from a few addresses stops after a few dozen swarms and cannot
//!   churn out honest ones through eviction.
//!
//! Expiry is driven by the caller's timer through [`TrackerServer::expire`]; an index
//! ordered by last-seen time makes it cost O(expired · log n), never a scan of every peer.

mod http_front;
pub(crate) mod quota;
mod udp_front;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::info_hash::InfoHash;
use crate::time::Instant;
use crate::tracker::{AnnounceEvent, AnnounceRequest, ScrapeEntry};
use crate::wire::PeerId;

pub use http_front::{HttpOutcome, MAX_HTTP_REQUEST};
use quota::CreationLog;
pub use quota::SwarmQuota;
pub use udp_front::{CONNECTION_ID_WINDOW, UDP_PROTOCOL_ID};

/// Limits and timings of a [`TrackerServer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// The re-announce interval told to clients. Default 120 s: `unchoke tracker` is a
    /// small/local tracker where a short interval keeps swarms fresh at little cost; peers
    /// silent for twice this long are expired.
    pub interval: Duration,
    /// The `min interval` told to clients (default 30 s).
    pub min_interval: Duration,
    /// Peers returned when the client does not say how many it wants (default 50).
    pub default_numwant: u32,
    /// The most peers ever returned by one announce (default 200).
    pub max_numwant: u32,
    /// The most swarms tracked at once (default 10 000). A new swarm beyond it evicts the
    /// lowest-population, least recently announced one (see the module docs).
    pub max_swarms: usize,
    /// How many swarms one address may create per window (default 20 per 30 min); `None`
    /// lets anyone create any number (eviction alone then bounds memory).
    pub swarm_quota: Option<SwarmQuota>,
    /// The most peers in one swarm (default 5 000).
    pub max_peers_per_swarm: usize,
    /// The most peers over all swarms (default 200 000).
    pub max_total_peers: usize,
    /// When set, only these torrents are tracked; announces for others fail.
    pub whitelist: Option<BTreeSet<InfoHash>>,
    /// Whether to honour the `ip` a client asks to be advertised under when it differs
    /// from the packet's source. Off by default: it would let anyone point a swarm at a
    /// third party. Requests from loopback sources are always trusted, since a local
    /// test swarm commonly announces several 127.0.0.x addresses from one host.
    pub trust_ip_param: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            interval: Duration::from_secs(120),
            min_interval: Duration::from_secs(30),
            default_numwant: 50,
            max_numwant: 200,
            max_swarms: 10_000,
            swarm_quota: Some(SwarmQuota::default()),
            max_peers_per_swarm: 5_000,
            max_total_peers: 200_000,
            whitelist: None,
            trust_ip_param: false,
        }
    }
}

/// Why an announce was refused; its text is what the client sees as `failure reason`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    /// The whitelist does not list the torrent.
    #[error("torrent not tracked here")]
    UnknownTorrent,
    /// The announcing address already created its quota of swarms in the current window
    /// ([`ServerConfig::swarm_quota`]); announces into existing swarms still work.
    #[error("too many new torrents from this address: try again later")]
    QuotaExceeded,
    /// A new peer would exceed `max_peers_per_swarm`.
    #[error("swarm full")]
    SwarmFull,
    /// A new peer would exceed `max_total_peers`.
    #[error("tracker full: too many peers")]
    TooManyPeers,
    /// Port 0 cannot be connected to.
    #[error("invalid port 0")]
    InvalidPort,
    /// The peer id is registered from another address with another `key`: someone else
    /// is trying to take it over.
    #[error("peer id in use from another address with another key")]
    KeyMismatch,
}

/// One peer in an [`AnnounceReply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyPeer {
    /// Its peer id (for non-compact HTTP replies).
    pub peer_id: PeerId,
    /// Where to connect to it.
    pub addr: SocketAddr,
}

/// The server's answer to a successful announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceReply {
    /// Seconds until the next regular announce.
    pub interval: u32,
    /// Seconds wanted at least between announces.
    pub min_interval: u32,
    /// Seeders in the swarm (the requester included).
    pub complete: u32,
    /// Leechers in the swarm (the requester included).
    pub incomplete: u32,
    /// A random subset of the other peers: never the requester, no duplicates.
    pub peers: Vec<ReplyPeer>,
}

/// Which address families an announce reply may carry (UDP answers one family only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Families {
    Both,
    V4,
    V6,
}

impl Families {
    fn accepts(self, addr: &SocketAddr) -> bool {
        match self {
            Families::Both => true,
            Families::V4 => addr.is_ipv4(),
            Families::V6 => addr.is_ipv6(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Peer {
    peer_id: PeerId,
    addr: SocketAddr,
    seeder: bool,
    key: u32,
    last_seen: Instant,
}

/// One torrent's peers: a vector for O(1) random access when sampling, plus an index by
/// peer id (deterministic order, no hasher state).
#[derive(Debug, Default)]
struct Swarm {
    peers: Vec<Peer>,
    index: BTreeMap<PeerId, usize>,
    seeders: u32,
    downloaded: u32,
    /// The last announce into this swarm (stopped ones excluded): its eviction age.
    last_announce: Option<Instant>,
}

impl Swarm {
    fn leechers(&self) -> u32 {
        // `peers.len()` is bounded by `max_peers_per_swarm`, far below u32::MAX in
        // practice; saturate rather than wrap if someone configures it absurdly.
        u32::try_from(self.peers.len())
            .unwrap_or(u32::MAX)
            .saturating_sub(self.seeders)
    }

    /// Removes the peer at `i`, keeping `index` consistent after the swap.
    fn remove_at(&mut self, i: usize) -> Peer {
        let gone = self.peers.swap_remove(i);
        self.index.remove(&gone.peer_id);
        if let Some(moved) = self.peers.get(i) {
            self.index.insert(moved.peer_id, i);
        }
        if gone.seeder {
            self.seeders = self.seeders.saturating_sub(1);
        }
        gone
    }

    /// Its place in the eviction order: fewest peers first, then the least recently
    /// announced. Memory order (the hash) breaks ties deterministically.
    fn eviction_key(&self, hash: InfoHash) -> (usize, Option<Instant>, InfoHash) {
        (self.peers.len(), self.last_announce, hash)
    }

    fn entry(&self) -> ScrapeEntry {
        ScrapeEntry {
            complete: self.seeders,
            downloaded: self.downloaded,
            incomplete: self.leechers(),
        }
    }
}

/// The tracker's whole state. See the [module docs](self).
#[derive(Debug)]
pub struct TrackerServer {
    config: ServerConfig,
    rng: fastrand::Rng,
    /// Keys the UDP connection ids (see [`udp_front`]).
    secret: [u8; 32],
    swarms: BTreeMap<InfoHash, Swarm>,
    /// Every registered peer by last-seen time, oldest first: what `expire` walks.
    by_last_seen: BTreeSet<(Instant, InfoHash, PeerId)>,
    /// Every swarm by [`Swarm::eviction_key`]: its first is the one to evict.
    by_eviction: BTreeSet<(usize, Option<Instant>, InfoHash)>,
    /// Recent swarm creations per address, for [`ServerConfig::swarm_quota`].
    creations: CreationLog,
    total_peers: usize,
    evicted: u64,
}

impl TrackerServer {
    /// A server with `config`, drawing its randomness (peer subsets, the UDP connection-id
    /// secret) from `seed`. Production callers should seed from the OS's randomness.
    pub fn new(config: ServerConfig, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut secret = [0u8; 32];
        rng.fill(&mut secret);
        TrackerServer {
            config,
            rng,
            secret,
            swarms: BTreeMap::new(),
            by_last_seen: BTreeSet::new(),
            by_eviction: BTreeSet::new(),
            creations: CreationLog::default(),
            total_peers: 0,
            evicted: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Swarms currently tracked.
    pub fn swarm_count(&self) -> usize {
        self.swarms.len()
    }

    /// Peers currently registered, over all swarms.
    pub fn peer_count(&self) -> usize {
        self.total_peers
    }

    /// Swarms evicted so far to make room for new ones (see the module docs).
    pub fn evicted_swarms(&self) -> u64 {
        self.evicted
    }

    /// How long a peer may stay silent before [`TrackerServer::expire`] drops it.
    pub fn peer_timeout(&self) -> Duration {
        self.config.interval.saturating_mul(2)
    }

    /// When the next peer will be due for expiry, for the caller's timer.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_last_seen
            .first()
            .map(|(seen, _, _)| *seen + self.peer_timeout())
    }

    /// Registers, refreshes or removes the announcing peer and answers with a random subset
    /// of the swarm's other peers.
    ///
    /// The peer's address is `req.ip` when given and trusted (see
    /// [`ServerConfig::trust_ip_param`]), else `source`'s IP, with `req.port`.
    pub fn announce(
        &mut self,
        req: &AnnounceRequest,
        source: SocketAddr,
        now: Instant,
    ) -> Result<AnnounceReply, ServerError> {
        self.announce_for(req, source, now, Families::Both)
    }

    pub(crate) fn announce_for(
        &mut self,
        req: &AnnounceRequest,
        source: SocketAddr,
        now: Instant,
        families: Families,
    ) -> Result<AnnounceReply, ServerError> {
        if let Some(list) = &self.config.whitelist {
            if !list.contains(&req.info_hash) {
                return Err(ServerError::UnknownTorrent);
            }
        }
        let stopping = req.event == AnnounceEvent::Stopped;
        if req.port == 0 && !stopping {
            return Err(ServerError::InvalidPort);
        }
        let addr = SocketAddr::new(self.advertised_ip(req.ip, source.ip()), req.port);
        let seeder = req.left == 0;

        if !self.swarms.contains_key(&req.info_hash) {
            if stopping {
                // Nothing to remove and no reason to create a swarm for a leaving peer.
                return Ok(self.reply(None, Vec::new()));
            }
            if let Some(quota) = self.config.swarm_quota {
                if !self.creations.allows(quota, source.ip(), now) {
                    return Err(ServerError::QuotaExceeded);
                }
            }
            while self.swarms.len() >= self.config.max_swarms.max(1) {
                if !self.evict_one() {
                    break;
                }
            }
        }
        // Taken out of the eviction order while it changes; put back below.
        let old_key = self
            .swarms
            .get(&req.info_hash)
            .map(|s| s.eviction_key(req.info_hash));
        if let Some(key) = old_key {
            self.by_eviction.remove(&key);
        }
        let swarm_full = self
            .swarms
            .get(&req.info_hash)
            .is_some_and(|s| s.peers.len() >= self.config.max_peers_per_swarm);
        let total_full = self.total_peers >= self.config.max_total_peers;
        let swarm = self.swarms.entry(req.info_hash).or_default();

        let existing = swarm.index.get(&req.peer_id).copied();
        if let Some(i) = existing {
            let old = swarm.peers[i];
            if old.addr.ip() != addr.ip() && old.key != req.key {
                self.by_eviction.insert(swarm.eviction_key(req.info_hash));
                return Err(ServerError::KeyMismatch);
            }
            self.by_last_seen
                .remove(&(old.last_seen, req.info_hash, req.peer_id));
            if stopping {
                swarm.remove_at(i);
                self.total_peers -= 1;
            } else {
                if req.event == AnnounceEvent::Completed && !old.seeder {
                    swarm.downloaded = swarm.downloaded.saturating_add(1);
                }
                if seeder != old.seeder {
                    if seeder {
                        swarm.seeders += 1;
                    } else {
                        swarm.seeders = swarm.seeders.saturating_sub(1);
                    }
                }
                swarm.peers[i] = Peer {
                    peer_id: req.peer_id,
                    addr,
                    seeder,
                    key: req.key,
                    last_seen: now,
                };
                self.by_last_seen.insert((now, req.info_hash, req.peer_id));
            }
        } else if !stopping {
            let refusal = if swarm_full {
                Some(ServerError::SwarmFull)
            } else if total_full {
                Some(ServerError::TooManyPeers)
            } else {
                None
            };
            if let Some(err) = refusal {
                if swarm.peers.is_empty() {
                    self.swarms.remove(&req.info_hash);
                } else {
                    self.by_eviction.insert(swarm.eviction_key(req.info_hash));
                }
                return Err(err);
            }
            if req.event == AnnounceEvent::Completed {
                swarm.downloaded = swarm.downloaded.saturating_add(1);
            }
            swarm.index.insert(req.peer_id, swarm.peers.len());
            swarm.peers.push(Peer {
                peer_id: req.peer_id,
                addr,
                seeder,
                key: req.key,
                last_seen: now,
            });
            if seeder {
                swarm.seeders += 1;
            }
            self.total_peers += 1;
            self.by_last_seen.insert((now, req.info_hash, req.peer_id));
        }

        if let Some(swarm) = self.swarms.get_mut(&req.info_hash) {
            if !stopping {
                swarm.last_announce = Some(now);
                if old_key.is_none() {
                    // A swarm was created: it counts against the creator's quota. The
                    // log never holds more than a few times `max_swarms` entries.
                    let cap = self.config.max_swarms.saturating_mul(4).max(256);
                    self.creations.record(source.ip(), now, cap);
                }
            }
            if !swarm.peers.is_empty() {
                self.by_eviction.insert(swarm.eviction_key(req.info_hash));
            }
        }

        let want = if stopping {
            0
        } else {
            req.numwant
                .unwrap_or(self.config.default_numwant)
                .min(self.config.max_numwant) as usize
        };
        let swarm = self.swarms.get(&req.info_hash);
        let picked = match swarm {
            Some(s) => sample(&mut self.rng, s.peers.len(), want, |i| {
                let p = &s.peers[i];
                // Seeders have nothing to gain from other seeders.
                p.peer_id != req.peer_id && families.accepts(&p.addr) && !(seeder && p.seeder)
            })
            .into_iter()
            .map(|i| ReplyPeer {
                peer_id: s.peers[i].peer_id,
                addr: s.peers[i].addr,
            })
            .collect(),
            None => Vec::new(),
        };
        let entry = swarm.map(Swarm::entry);
        if swarm.is_some_and(|s| s.peers.is_empty()) {
            self.swarms.remove(&req.info_hash);
        }
        Ok(self.reply(entry, picked))
    }

    /// Drops the swarm first in the eviction order with all its peers; false if none.
    fn evict_one(&mut self) -> bool {
        let Some((_, _, hash)) = self.by_eviction.pop_first() else {
            return false;
        };
        if let Some(swarm) = self.swarms.remove(&hash) {
            for p in &swarm.peers {
                self.by_last_seen.remove(&(p.last_seen, hash, p.peer_id));
            }
            self.total_peers -= swarm.peers.len();
            self.evicted += 1;
        }
        true
    }

    fn reply(&self, entry: Option<ScrapeEntry>, peers: Vec<ReplyPeer>) -> AnnounceReply {
        let entry = entry.unwrap_or_default();
        AnnounceReply {
            interval: secs_u32(self.config.interval),
            min_interval: secs_u32(self.config.min_interval),
            complete: entry.complete,
            incomplete: entry.incomplete,
            peers,
        }
    }

    /// The IP to advertise: the requested one if it is usable and trusted, else the source.
    fn advertised_ip(&self, requested: Option<IpAddr>, source: IpAddr) -> IpAddr {
        match requested {
            Some(ip)
                if (self.config.trust_ip_param || source.is_loopback())
                    && !ip.is_unspecified()
                    && !ip.is_multicast() =>
            {
                ip
            }
            _ => source,
        }
    }

    /// Drops every peer not heard from for 2 × interval (and swarms left empty). Returns
    /// how many peers were dropped. Costs O(dropped · log n).
    pub fn expire(&mut self, now: Instant) -> usize {
        let timeout = self.peer_timeout();
        let mut dropped = 0;
        while let Some(&(seen, hash, id)) = self.by_last_seen.first() {
            if now.saturating_duration_since(seen) < timeout {
                break;
            }
            self.by_last_seen.pop_first();
            if let Some(swarm) = self.swarms.get_mut(&hash) {
                self.by_eviction.remove(&swarm.eviction_key(hash));
                if let Some(i) = swarm.index.get(&id).copied() {
                    swarm.remove_at(i);
                    self.total_peers -= 1;
                    dropped += 1;
                }
                if swarm.peers.is_empty() {
                    self.swarms.remove(&hash);
                } else {
                    self.by_eviction.insert(swarm.eviction_key(hash));
                }
            }
        }
        dropped
    }

    /// Counts for each of `hashes`, in order; torrents without peers get zero counts.
    pub fn scrape(&self, hashes: &[InfoHash]) -> Vec<(InfoHash, ScrapeEntry)> {
        hashes
            .iter()
            .map(|h| (*h, self.swarms.get(h).map(Swarm::entry).unwrap_or_default()))
            .collect()
    }
}

/// Whole seconds of `d`, saturating at `u32::MAX`.
fn secs_u32(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// Up to `k` distinct indices in `0..n` that `accept`, in uniformly random order.
///
/// A lazy Fisher–Yates shuffle: only the swapped positions are remembered, so drawing `k`
/// accepted items out of mostly-acceptable ones costs O(k log k), and the worst case (most
/// rejected) is O(n log n) with n bounded by `max_peers_per_swarm`.
fn sample(
    rng: &mut fastrand::Rng,
    n: usize,
    k: usize,
    mut accept: impl FnMut(usize) -> bool,
) -> Vec<usize> {
    let mut out = Vec::with_capacity(k.min(n));
    let mut moved: BTreeMap<usize, usize> = BTreeMap::new();
    let mut i = 0;
    while i < n && out.len() < k {
        let j = rng.usize(i..n);
        let at_j = moved.get(&j).copied().unwrap_or(j);
        let at_i = moved.remove(&i).unwrap_or(i);
        if j != i {
            moved.insert(j, at_i);
        }
        if accept(at_j) {
            out.push(at_j);
        }
        i += 1;
    }
    out
}
