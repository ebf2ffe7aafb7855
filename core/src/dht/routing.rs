//! The routing table (BEP 5): buckets of [`K`] nodes over the 160-bit id space, detailed near
//! our own id and sparse far from it.
//!
//! Layout: `buckets[i]` for `i < last` holds the nodes whose XOR distance to our id has
//! exactly `i` leading zero bits (they share an `i`-bit prefix with us and differ in the
//! next bit); the last bucket holds everything closer. Only that last bucket (the one whose
//! range contains our id) ever splits, so there are at most 160 buckets of `K` nodes, plus
//! at most [`REPLACEMENTS`] standby nodes each: the table is bounded by construction.
//!
//! Only nodes that have answered one of our queries enter a bucket; so every entry was
//! reachable once. States, from the times kept per node:
//! - **good**: answered us within `good_for` (15 min), or answered us at some point and
//!   queried us within `good_for`;
//! - **bad**: failed `max_failures` queries in a row;
//! - **questionable**: neither.
//!
//! A full bucket takes a new node in place of a bad one; failing that, the new node waits in
//! the bucket's replacement cache and the caller is asked to ping the questionable nodes (a
//! failed ping makes them bad, and a bad node is replaced by the freshest standby).

use std::net::SocketAddr;
use std::time::Duration;

use super::node_id::NodeId;
use crate::time::Instant;

/// Nodes per bucket (Kademlia's k; BEP 5 uses 8).
pub const K: usize = 8;

/// Standby nodes kept per bucket, to refill it when a node goes bad.
pub const REPLACEMENTS: usize = 4;

/// The most buckets: one per bit of the id.
pub const MAX_BUCKETS: usize = 160;

/// A node's standing in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Recently heard from: trusted in answers and lookups.
    Good,
    /// Silent for a while: pinged when its bucket needs room.
    Questionable,
    /// Failed several queries in a row: replaced at the first chance.
    Bad,
}

/// One known node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeEntry {
    /// Its id.
    pub id: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
    /// When it last answered one of our queries.
    pub last_response: Option<Instant>,
    /// When it last queried us.
    pub last_query: Option<Instant>,
    /// Queries it failed to answer since its last answer.
    pub failures: u8,
}

impl NodeEntry {
    /// Its state at `now` (see the module docs).
    pub fn state(&self, now: Instant, config: &RoutingConfig) -> NodeState {
        if self.failures >= config.max_failures {
            return NodeState::Bad;
        }
        let recent = |t: Option<Instant>| t.is_some_and(|t| now - t < config.good_for);
        if self.last_response.is_some() && (recent(self.last_response) || recent(self.last_query)) {
            NodeState::Good
        } else {
            NodeState::Questionable
        }
    }
}

/// Timings of the node states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoutingConfig {
    /// How long a node stays good after it answered (or queried us). BEP 5: 15 minutes.
    pub good_for: Duration,
    /// Consecutive failed queries that make a node bad.
    pub max_failures: u8,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            good_for: Duration::from_secs(15 * 60),
            max_failures: 2,
        }
    }
}

/// What [`RoutingTable::heard_from`] did with a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Insert {
    /// It was already in a bucket: refreshed.
    Refreshed,
    /// It took a free slot (or a bad node's).
    Added,
    /// The bucket is full of good nodes: kept as a standby at most.
    Full,
    /// The bucket is full but holds questionable nodes: the new node waits as a standby;
    /// the caller should ping these to find out whether they are still there.
    PingQuestionable(Vec<(NodeId, SocketAddr)>),
    /// Not inserted: our own id, or a known id claimed from another address.
    Ignored,
}

#[derive(Clone, Debug)]
struct Bucket {
    nodes: Vec<NodeEntry>,
    replacements: Vec<NodeEntry>,
    last_changed: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Bucket {
            nodes: Vec::with_capacity(K),
            replacements: Vec::new(),
            last_changed: now,
        }
    }
}

/// The routing table. See the module docs.
#[derive(Clone, Debug)]
pub struct RoutingTable {
    own: NodeId,
    config: RoutingConfig,
    buckets: Vec<Bucket>,
}

impl RoutingTable {
    /// An empty table around `own`.
    pub fn new(own: NodeId, config: RoutingConfig, now: Instant) -> Self {
        RoutingTable {
            own,
            config,
            buckets: vec![Bucket::new(now)],
        }
    }

    /// The state timings.
    pub fn config(&self) -> &RoutingConfig {
        &self.config
    }

    /// The bucket index for `id`.
    fn index(&self, id: &NodeId) -> usize {
        let lz = self.own.distance(id).leading_zeros() as usize;
        lz.min(self.buckets.len() - 1)
    }

    /// Number of buckets (1 to 160).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Nodes in buckets (standbys not counted).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    /// Whether no node is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Standby nodes over all buckets.
    pub fn replacement_count(&self) -> usize {
        self.buckets.iter().map(|b| b.replacements.len()).sum()
    }

    /// The nodes of bucket `i` (empty if there is no such bucket).
    pub fn bucket(&self, i: usize) -> &[NodeEntry] {
        self.buckets.get(i).map_or(&[], |b| &b.nodes)
    }

    /// The node with `id`, if it is in a bucket.
    pub fn get(&self, id: &NodeId) -> Option<&NodeEntry> {
        self.buckets[self.index(id)]
            .nodes
            .iter()
            .find(|n| n.id == *id)
    }

    /// Every node in a bucket, bucket by bucket.
    pub fn entries(&self) -> impl Iterator<Item = &NodeEntry> {
        self.buckets.iter().flat_map(|b| b.nodes.iter())
    }

    /// Records that `id` at `addr` answered one of our queries, inserting it if it fits.
    pub fn heard_from(&mut self, id: NodeId, addr: SocketAddr, now: Instant) -> Insert {
        if id == self.own {
            return Insert::Ignored;
        }
        loop {
            let i = self.index(&id);
            let bucket = &mut self.buckets[i];
            if let Some(n) = bucket.nodes.iter_mut().find(|n| n.id == id) {
                if n.addr != addr {
                    // Keep the address we verified; a node that truly moved will go bad at
                    // the old one and come back through a standby slot.
                    return Insert::Ignored;
                }
                n.last_response = Some(now);
                n.failures = 0;
                bucket.last_changed = now;
                return Insert::Refreshed;
            }
            let fresh = NodeEntry {
                id,
                addr,
                last_response: Some(now),
                last_query: None,
                failures: 0,
            };
            if let Some(done) = self.place(fresh, now) {
                return done;
            }
        }
    }

    /// Puts `fresh` (not in its bucket yet) where it fits: a free slot, a bad node's slot,
    /// or the standby list of a full bucket. Returns `None` when the last bucket was split
    /// to make room, and the caller should try again.
    fn place(&mut self, fresh: NodeEntry, now: Instant) -> Option<Insert> {
        let id = fresh.id;
        let i = self.index(&id);
        let last = self.buckets.len() - 1;
        let config = self.config;
        let splittable = i == last && self.buckets.len() < MAX_BUCKETS;
        let bucket = &mut self.buckets[i];
        if bucket.nodes.len() < K {
            bucket.replacements.retain(|r| r.id != id);
            bucket.nodes.push(fresh);
            bucket.last_changed = now;
            return Some(Insert::Added);
        }
        if let Some(slot) = bucket
            .nodes
            .iter_mut()
            .find(|n| n.state(now, &config) == NodeState::Bad)
        {
            *slot = fresh;
            bucket.replacements.retain(|r| r.id != id);
            bucket.last_changed = now;
            return Some(Insert::Added);
        }
        if splittable {
            self.split(now);
            return None;
        }
        // Full: keep the newcomer as the freshest standby.
        bucket.replacements.retain(|r| r.id != id);
        if bucket.replacements.len() >= REPLACEMENTS {
            bucket.replacements.remove(0);
        }
        bucket.replacements.push(fresh);
        let questionable: Vec<(NodeId, SocketAddr)> = bucket
            .nodes
            .iter()
            .filter(|n| n.state(now, &config) == NodeState::Questionable)
            .map(|n| (n.id, n.addr))
            .collect();
        Some(if questionable.is_empty() {
            Insert::Full
        } else {
            Insert::PingQuestionable(questionable)
        })
    }

    /// Our own id.
    pub fn own_id(&self) -> NodeId {
        self.own
    }

    /// Re-centres the table on a new own id (BEP 42: our id changed to match our external
    /// address). The buckets are laid out relative to our id, so they are rebuilt: every
    /// node that is not bad is placed again, keeping what we know of it (its times and
    /// failures), bucket nodes before standbys, in their old order; a node that no longer
    /// fits becomes a standby of its new bucket (bounded as ever), and one equal to the new
    /// id is dropped. Simple, and correct whatever the distance between the two ids: the
    /// table may lose some far nodes to full buckets, which refreshes fill again.
    pub fn set_own_id(&mut self, own: NodeId, now: Instant) {
        if own == self.own {
            return;
        }
        let config = self.config;
        let old = std::mem::replace(&mut self.buckets, vec![Bucket::new(now)]);
        self.own = own;
        let (nodes, standbys): (Vec<NodeEntry>, Vec<NodeEntry>) = old
            .into_iter()
            .map(|b| (b.nodes, b.replacements))
            .fold((Vec::new(), Vec::new()), |(mut n, mut r), (bn, br)| {
                n.extend(bn);
                r.extend(br);
                (n, r)
            });
        for entry in nodes.into_iter().chain(standbys) {
            if entry.id == own
                || entry.state(now, &config) == NodeState::Bad
                || self.get(&entry.id).is_some()
            {
                continue;
            }
            // A split only ever moves the last bucket: at most 160 rounds.
            while self.place(entry, now).is_none() {}
        }
    }

    /// Splits the last bucket: nodes sharing one more bit with our id move to a new last
    /// bucket.
    fn split(&mut self, now: Instant) {
        let depth = self.buckets.len() - 1;
        let own = self.own;
        let closer = |n: &NodeEntry| own.distance(&n.id).leading_zeros() as usize > depth;
        let old = &mut self.buckets[depth];
        let mut new = Bucket::new(now);
        let (near, far): (Vec<NodeEntry>, Vec<NodeEntry>) = old.nodes.drain(..).partition(closer);
        old.nodes = far;
        new.nodes = near;
        let (near, far): (Vec<NodeEntry>, Vec<NodeEntry>) =
            old.replacements.drain(..).partition(closer);
        old.replacements = far;
        new.replacements = near;
        old.last_changed = now;
        self.buckets.push(new);
    }

    /// Records that `id` at `addr` queried us. Returns whether the node is in a bucket (if
    /// not, the caller may ping it to verify it and add it).
    pub fn queried_by(&mut self, id: NodeId, addr: SocketAddr, now: Instant) -> bool {
        let i = self.index(&id);
        match self.buckets[i]
            .nodes
            .iter_mut()
            .find(|n| n.id == id && n.addr == addr)
        {
            Some(n) => {
                n.last_query = Some(now);
                true
            }
            None => false,
        }
    }

    /// Whether a node with `id`, if it answered, would get a slot now (a free one, a bad
    /// node's, or by a split), as opposed to waiting as a standby.
    pub fn has_room_for(&self, id: &NodeId, now: Instant) -> bool {
        if *id == self.own {
            return false;
        }
        let i = self.index(id);
        let b = &self.buckets[i];
        b.nodes.len() < K
            || b.nodes
                .iter()
                .any(|n| n.state(now, &self.config) == NodeState::Bad)
            || (i == self.buckets.len() - 1 && self.buckets.len() < MAX_BUCKETS)
    }

    /// Records that `id` at `addr` failed to answer a query. A node that thereby goes bad
    /// is replaced by the bucket's freshest standby, if any.
    pub fn failed(&mut self, id: NodeId, addr: SocketAddr, now: Instant) {
        let i = self.index(&id);
        let config = self.config;
        let bucket = &mut self.buckets[i];
        bucket.replacements.retain(|r| r.id != id);
        let Some(pos) = bucket
            .nodes
            .iter()
            .position(|n| n.id == id && n.addr == addr)
        else {
            return;
        };
        let n = &mut bucket.nodes[pos];
        n.failures = n.failures.saturating_add(1);
        if n.state(now, &config) == NodeState::Bad {
            if let Some(standby) = bucket.replacements.pop() {
                bucket.nodes[pos] = standby;
                bucket.last_changed = now;
            }
        }
    }

    /// Up to `n` non-bad nodes closest to `target`, closest first.
    pub fn closest(&self, target: &NodeId, n: usize, now: Instant) -> Vec<(NodeId, SocketAddr)> {
        let mut all: Vec<(NodeId, NodeId, SocketAddr)> = self
            .entries()
            .filter(|e| e.state(now, &self.config) != NodeState::Bad)
            .map(|e| (target.distance(&e.id), e.id, e.addr))
            .collect();
        all.sort_unstable_by_key(|a| a.0);
        all.into_iter().take(n).map(|(_, id, a)| (id, a)).collect()
    }

    /// Every good node.
    pub fn good_nodes(&self, now: Instant) -> Vec<(NodeId, SocketAddr)> {
        self.entries()
            .filter(|e| e.state(now, &self.config) == NodeState::Good)
            .map(|e| (e.id, e.addr))
            .collect()
    }

    /// Indexes of buckets unchanged for `after` or longer.
    pub fn stale_buckets(&self, after: Duration, now: Instant) -> Vec<usize> {
        (0..self.buckets.len())
            .filter(|&i| now - self.buckets[i].last_changed >= after)
            .collect()
    }

    /// When the next bucket becomes stale (unchanged for `after`).
    pub fn next_stale(&self, after: Duration) -> Option<Instant> {
        self.buckets.iter().map(|b| b.last_changed + after).min()
    }

    /// Marks bucket `i` as just changed (a refresh was started for it).
    pub fn touch(&mut self, i: usize, now: Instant) {
        if let Some(b) = self.buckets.get_mut(i) {
            b.last_changed = now;
        }
    }

    /// A random id in bucket `i`'s range, for a refresh lookup.
    pub fn random_id_in(&self, i: usize, rng: &mut fastrand::Rng) -> NodeId {
        let last = self.buckets.len() - 1;
        let i = i.min(last) as u32;
        self.own.random_with_prefix(i, (i as usize) < last, rng)
    }
}
