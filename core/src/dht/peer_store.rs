//! The peers announced to us: info-hash → peers, each forgotten after a time to live.
//!
//! Bounded by construction: at most `max_hashes` info-hashes and `max_per_hash` peers for
//! each. A new peer in a full swarm evicts the one announced longest ago (a live swarm keeps
//! the freshest addresses). A new info-hash when every slot is taken is **not** refused
//! (1,000 junk announces would then lock every new honest swarm out): after a purge of
//! expired entries it evicts the smallest swarm, and among equals the stalest (its newest
//! announce the oldest), which is what a junk hash announced once looks like. So that a
//! flood cannot churn honest swarms out through eviction either, one address may create at
//! most [`PeerStoreLimits::quota`] new info-hashes per window (the tracker server's rule,
//! [`SwarmQuota`]); announces into existing swarms never count. Expired entries are purged
//! by [`PeerStore::expire`] and never returned.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::node_id::NodeId;
use crate::time::Instant;
pub use crate::tracker::server::SwarmQuota;
use crate::tracker::server::quota::CreationLog;

/// Why an announce was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The announcing address already created its quota of new info-hashes in the window.
    #[error("too many new info-hashes from this address: try again later")]
    QuotaExceeded,
}

/// Limits of a [`PeerStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerStoreLimits {
    /// How long an announced peer is kept without re-announcing.
    pub ttl: Duration,
    /// The most peers kept for one info-hash.
    pub max_per_hash: usize,
    /// The most info-hashes kept; a new one beyond it evicts the smallest, stalest swarm.
    pub max_hashes: usize,
    /// How many new info-hashes one address may create per window; `None`: no quota.
    pub quota: Option<SwarmQuota>,
}

/// Announced peers by info-hash. See the module docs.
#[derive(Clone, Debug)]
pub struct PeerStore {
    limits: PeerStoreLimits,
    /// Each swarm maps a peer to its expiry time; a swarm is never left empty.
    swarms: BTreeMap<NodeId, BTreeMap<SocketAddr, Instant>>,
    total: usize,
    /// Recent creations of info-hashes per address, for the quota.
    creations: CreationLog,
    evicted: u64,
}

impl PeerStore {
    /// An empty store.
    pub fn new(limits: PeerStoreLimits) -> Self {
        PeerStore {
            limits,
            swarms: BTreeMap::new(),
            total: 0,
            creations: CreationLog::default(),
            evicted: 0,
        }
    }

    /// Records (or refreshes) `peer` in the swarm of `info_hash`.
    pub fn announce(
        &mut self,
        info_hash: NodeId,
        peer: SocketAddr,
        now: Instant,
    ) -> Result<(), StoreError> {
        if self.limits.max_per_hash == 0 || self.limits.max_hashes == 0 {
            return Ok(());
        }
        let creating = !self.swarms.contains_key(&info_hash);
        if creating {
            let source = peer.ip();
            if let Some(quota) = self.limits.quota {
                if !self.creations.allows(quota, source, now) {
                    return Err(StoreError::QuotaExceeded);
                }
            }
            if self.swarms.len() >= self.limits.max_hashes {
                // A purge first (a pass over the store, only when it is full and someone
                // announces yet another hash), then eviction if still full.
                self.expire(now);
                while self.swarms.len() >= self.limits.max_hashes && self.evict_one() {}
            }
            let cap = self.limits.max_hashes.saturating_mul(4).max(256);
            self.creations.record(source, now, cap);
        }
        let expires = now + self.limits.ttl;
        let swarm = self.swarms.entry(info_hash).or_default();
        if swarm.insert(peer, expires).is_none() {
            self.total += 1;
            if swarm.len() > self.limits.max_per_hash {
                let oldest = swarm
                    .iter()
                    .min_by_key(|(addr, exp)| (**exp, **addr))
                    .map(|(addr, _)| *addr);
                if let Some(addr) = oldest {
                    swarm.remove(&addr);
                    self.total -= 1;
                }
            }
        }
        Ok(())
    }

    /// Drops the smallest swarm, the stalest among equals; false if the store is empty.
    /// A linear pass, bounded by `max_hashes`, only when a new hash finds the store full.
    fn evict_one(&mut self) -> bool {
        let victim = self
            .swarms
            .iter()
            .map(|(hash, swarm)| {
                let newest = swarm.values().max().copied();
                (swarm.len(), newest, *hash)
            })
            .min();
        let Some((len, _, hash)) = victim else {
            return false;
        };
        self.swarms.remove(&hash);
        self.total -= len;
        self.evicted += 1;
        true
    }

    /// Swarms evicted so far to make room for new info-hashes.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Up to `max` unexpired peers of `info_hash`, a random subset when there are more.
    pub fn peers(
        &self,
        info_hash: &NodeId,
        max: usize,
        rng: &mut fastrand::Rng,
        now: Instant,
    ) -> Vec<SocketAddr> {
        let Some(swarm) = self.swarms.get(info_hash) else {
            return Vec::new();
        };
        let mut live: Vec<SocketAddr> = swarm
            .iter()
            .filter(|(_, exp)| **exp > now)
            .map(|(addr, _)| *addr)
            .collect();
        if live.len() > max {
            // A partial Fisher–Yates shuffle: the first `max` become a uniform sample.
            for i in 0..max {
                let j = rng.usize(i..live.len());
                live.swap(i, j);
            }
            live.truncate(max);
        }
        live
    }

    /// Forgets every expired peer, and swarms left empty.
    pub fn expire(&mut self, now: Instant) {
        let mut removed = 0;
        self.swarms.retain(|_, swarm| {
            let before = swarm.len();
            swarm.retain(|_, exp| *exp > now);
            removed += before - swarm.len();
            !swarm.is_empty()
        });
        self.total -= removed;
    }

    /// Info-hashes held.
    pub fn hashes(&self) -> usize {
        self.swarms.len()
    }

    /// Peers held over all info-hashes (expired ones included until the next purge).
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}
