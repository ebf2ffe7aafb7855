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
pub type ConnMap<V> = HashMap<ConnId, V, BuildHasherDefault<ConnHasher>>;

/// A set of connections ([`ConnHasher`]).
pub type ConnSet = HashSet<ConnId, BuildHasherDefault<ConnHasher>>;

/// Hashes a [`ConnId`] (the session's own counter, never chosen by a peer, so nobody can
/// make ids collide) with one multiplication: consecutive ids fall into distinct buckets
/// and the top bits are mixed. Deterministic, and far cheaper than SipHash.
#[derive(Default)]
pub struct ConnHasher(u64);

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

/// A map from connection to `V` kept in connection order, with a lookup by hash: what a
/// `BTreeMap<ConnId, V>` gives (iteration in id order, which the choker, the `have`s and
/// every walk over a torrent's peers depend on for the same run twice) without a tree
/// search per message. Values sit in one vector in id order, so walks are sequential;
/// the index maps an id to its position. Connections join mostly in id order (the
/// newest at the end); a removal shifts the later ones down and renumbers them, O(n) for
/// the few tens of peers a torrent has, against a lookup per message received and sent.
#[derive(Debug)]
pub(crate) struct OrderedConnMap<V> {
    keys: Vec<ConnId>,
    values: Vec<V>,
    index: ConnMap<usize>,
}

impl<V> Default for OrderedConnMap<V> {
    fn default() -> Self {
        OrderedConnMap {
            keys: Vec::new(),
            values: Vec::new(),
            index: ConnMap::default(),
        }
    }
}

impl<V> OrderedConnMap<V> {
    /// The value of `conn`.
    pub(crate) fn get(&self, conn: &ConnId) -> Option<&V> {
        self.index.get(conn).map(|&i| &self.values[i])
    }

    /// The value of `conn`, to change.
    pub(crate) fn get_mut(&mut self, conn: &ConnId) -> Option<&mut V> {
        self.index.get(conn).map(|&i| &mut self.values[i])
    }

    /// Whether `conn` is in the map.
    pub(crate) fn contains_key(&self, conn: &ConnId) -> bool {
        self.index.contains_key(conn)
    }

    /// How many connections.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Sets `conn`'s value; the old one, if it had one.
    pub(crate) fn insert(&mut self, conn: ConnId, value: V) -> Option<V> {
        if let Some(&i) = self.index.get(&conn) {
            return Some(std::mem::replace(&mut self.values[i], value));
        }
        let at = self.keys.partition_point(|&k| k < conn);
        self.keys.insert(at, conn);
        self.values.insert(at, value);
        self.renumber(at);
        None
    }

    /// Takes `conn` out; its value, if it was in.
    pub(crate) fn remove(&mut self, conn: &ConnId) -> Option<V> {
        let at = self.index.remove(conn)?;
        self.keys.remove(at);
        let value = self.values.remove(at);
        self.renumber(at);
        Some(value)
    }

    /// Points the index at every position from `from` on (they moved).
    fn renumber(&mut self, from: usize) {
        for (i, k) in self.keys.iter().enumerate().skip(from) {
            self.index.insert(*k, i);
        }
    }

    /// The connections, in id order.
    pub(crate) fn keys(&self) -> std::slice::Iter<'_, ConnId> {
        self.keys.iter()
    }

    /// The values, in id order.
    pub(crate) fn values(&self) -> std::slice::Iter<'_, V> {
        self.values.iter()
    }

    /// `(connection, value)` pairs, in id order.
    pub(crate) fn iter(
        &self,
    ) -> std::iter::Zip<std::slice::Iter<'_, ConnId>, std::slice::Iter<'_, V>> {
        self.keys.iter().zip(self.values.iter())
    }

    /// `(connection, value)` pairs, in id order, values to change.
    pub(crate) fn iter_mut(
        &mut self,
    ) -> std::iter::Zip<std::slice::Iter<'_, ConnId>, std::slice::IterMut<'_, V>> {
        self.keys.iter().zip(self.values.iter_mut())
    }
}

impl<'a, V> IntoIterator for &'a OrderedConnMap<V> {
    type Item = (&'a ConnId, &'a V);
    type IntoIter = std::iter::Zip<std::slice::Iter<'a, ConnId>, std::slice::Iter<'a, V>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
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

    /// Against a `BTreeMap` under a random mix of inserts (in and out of order),
    /// replacements and removals: the same contents, the same order, the same answers.
    #[test]
    fn the_ordered_map_behaves_as_a_btreemap() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut ours: OrderedConnMap<u32> = OrderedConnMap::default();
        let mut model: std::collections::BTreeMap<ConnId, u32> = Default::default();
        for step in 0..20_000u32 {
            let conn = ConnId(rng.u64(0..200));
            match rng.u8(0..10) {
                0..=4 => assert_eq!(ours.insert(conn, step), model.insert(conn, step)),
                5..=7 => assert_eq!(ours.remove(&conn), model.remove(&conn)),
                _ => {
                    if let Some(v) = ours.get_mut(&conn) {
                        *v += 1;
                    }
                    if let Some(v) = model.get_mut(&conn) {
                        *v += 1;
                    }
                }
            }
            assert_eq!(ours.len(), model.len());
            assert_eq!(ours.is_empty(), model.is_empty());
            assert_eq!(ours.get(&conn), model.get(&conn));
            assert_eq!(ours.contains_key(&conn), model.contains_key(&conn));
            if step % 97 == 0 {
                let a: Vec<(ConnId, u32)> = ours.iter().map(|(k, v)| (*k, *v)).collect();
                let b: Vec<(ConnId, u32)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                assert_eq!(a, b);
                assert!(ours.keys().copied().eq(model.keys().copied()));
                assert!(ours.values().copied().eq(model.values().copied()));
            }
        }
    }
}
