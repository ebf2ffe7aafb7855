//! The peers announced to us: info-hash → peers, each forgotten after a time to live.
//!
//! Bounded by construction: at most `max_hashes` info-hashes and `max_per_hash` peers for
//! each. A new peer in a full swarm evicts the one announced longest ago (a live swarm keeps
//! the freshest addresses); a new info-hash when every slot is taken by unexpired swarms is
//! refused. Expired entries are purged by [`PeerStore::expire`] and never returned.

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::time::Duration;

use super::node_id::NodeId;
use crate::time::Instant;

/// Why an announce was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Every info-hash slot holds a live swarm.
    #[error("peer store full: too many info-hashes")]
    TooManyHashes,
}

/// Limits of a [`PeerStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerStoreLimits {
    /// How long an announced peer is kept without re-announcing.
    pub ttl: Duration,
    /// The most peers kept for one info-hash.
    pub max_per_hash: usize,
    /// The most info-hashes kept.
    pub max_hashes: usize,
}

/// Announced peers by info-hash. See the module docs.
#[derive(Clone, Debug)]
pub struct PeerStore {
    limits: PeerStoreLimits,
    /// Each swarm maps a peer to its expiry time; a swarm is never left empty.
    swarms: BTreeMap<NodeId, BTreeMap<SocketAddrV4, Instant>>,
    total: usize,
}

impl PeerStore {
    /// An empty store.
    pub fn new(limits: PeerStoreLimits) -> Self {
        PeerStore {
            limits,
            swarms: BTreeMap::new(),
            total: 0,
        }
    }

    /// Records (or refreshes) `peer` in the swarm of `info_hash`.
    pub fn announce(
        &mut self,
        info_hash: NodeId,
        peer: SocketAddrV4,
        now: Instant,
    ) -> Result<(), StoreError> {
        if self.limits.max_per_hash == 0 {
            return Ok(());
        }
        if !self.swarms.contains_key(&info_hash) && self.swarms.len() >= self.limits.max_hashes {
            // Only a purge can make room; it costs a pass over the store, but only when
            // the store is full and someone announces yet another hash.
            self.expire(now);
            if self.swarms.len() >= self.limits.max_hashes {
                return Err(StoreError::TooManyHashes);
            }
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

    /// Up to `max` unexpired peers of `info_hash`, a random subset when there are more.
    pub fn peers(
        &self,
        info_hash: &NodeId,
        max: usize,
        rng: &mut fastrand::Rng,
        now: Instant,
    ) -> Vec<SocketAddrV4> {
        let Some(swarm) = self.swarms.get(info_hash) else {
            return Vec::new();
        };
        let mut live: Vec<SocketAddrV4> = swarm
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
