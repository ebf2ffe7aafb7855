//! A hash map keyed by [`ConnId`], for the per-message lookups of a connection's state
//! (its torrent, its send accounting, its handshake) that a B-tree made a search of a
//! few nodes on every message, every `handle_sent` and every send.
//!
//! Its iteration order is the hasher's, not the ids': a map of this kind is only walked
//! where order cannot show (counts, a minimum over a total key) or after sorting what was
//! collected, so every run stays the same.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use super::action::ConnId;

/// A map from connection to `V` ([`ConnHasher`]).
pub(crate) type ConnMap<V> = HashMap<ConnId, V, BuildHasherDefault<ConnHasher>>;

/// A set of connections ([`ConnHasher`]).
pub(crate) type ConnSet = HashSet<ConnId, BuildHasherDefault<ConnHasher>>;

/// Hashes a [`ConnId`] (the session's own counter, never chosen by a peer, so nobody can
/// make ids collide) with one multiplication: consecutive ids fall into distinct buckets
/// and the top bits are mixed. Deterministic, and far cheaper than SipHash.
#[derive(Default)]
pub(crate) struct ConnHasher(u64);

impl Hasher for ConnHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_hash_apart_and_the_map_finds_them() {
        let mut m: ConnMap<u64> = ConnMap::default();
        for i in 0..1000 {
            m.insert(ConnId(i), i * 2);
        }
        for i in 0..1000 {
            assert_eq!(m.get(&ConnId(i)), Some(&(i * 2)));
        }
        assert_eq!(m.get(&ConnId(1000)), None);
        let low: std::collections::BTreeSet<u64> = (0..64)
            .map(|i| {
                let mut h = ConnHasher::default();
                h.write_u64(i);
                h.finish() & 63
            })
            .collect();
        assert_eq!(low.len(), 64, "64 consecutive ids fill 64 buckets");
    }
}
