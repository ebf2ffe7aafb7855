//! Pieces ordered by availability, in contiguous buckets, with O(1) moves between
//! neighbouring buckets.
//!
//! `order` holds piece indexes; bucket `a` (the pieces exactly `a` peers have) is
//! `order[starts[a]..starts[a + 1]]`. When a piece's availability goes up by one it is swapped
//! with the last member of its bucket and the boundary moves past it, so it becomes the first
//! member of the next bucket: O(1), no sorting, no allocation once the bucket count is reached.
//! Going down is the mirror image. The caller keeps `pos[piece]`, the piece's index in
//! `order`, which every swap updates.
//!
//! Within a bucket the order is arbitrary; the picker breaks ties by scanning from a random
//! starting point.

/// Marks a piece that is in no list (or, for download slots, not downloading).
pub(super) const NONE: u32 = u32::MAX;

/// One availability-ordered list of pieces. See the module docs.
#[derive(Clone, Debug)]
pub(super) struct Buckets {
    order: Vec<u32>,
    /// Bucket boundaries: `starts[0] == 0` and `starts.last() == order.len()`.
    starts: Vec<u32>,
}

impl Buckets {
    /// An empty list with no buckets.
    pub(super) fn new() -> Self {
        Buckets {
            order: Vec::new(),
            starts: vec![0],
        }
    }

    /// `true` when the list holds no piece.
    pub(super) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Number of buckets (one more than the highest availability seen).
    pub(super) fn bucket_count(&self) -> usize {
        self.starts.len() - 1
    }

    /// The pieces whose availability is `a`.
    pub(super) fn bucket(&self, a: usize) -> &[u32] {
        match (self.starts.get(a), self.starts.get(a + 1)) {
            (Some(&s), Some(&e)) => &self.order[s as usize..e as usize],
            _ => &[],
        }
    }

    /// The non-empty buckets, rarest first, found by jumping from bucket to bucket through
    /// `order` rather than stepping over every empty one: O(non-empty buckets). With
    /// thousands of peers the rarest piece may sit in bucket 500, above hundreds of empty
    /// ones. `availability` gives a piece's bucket.
    pub(super) fn non_empty<'a>(
        &'a self,
        availability: impl Fn(u32) -> u32 + 'a,
    ) -> impl Iterator<Item = usize> + 'a {
        let mut i = 0usize;
        std::iter::from_fn(move || {
            let &piece = self.order.get(i)?;
            let a = availability(piece) as usize;
            // The bucket's end; past the last bucket means the end of `order`.
            i = self
                .starts
                .get(a + 1)
                .map_or(self.order.len(), |&e| e as usize)
                .max(i + 1);
            Some(a)
        })
    }

    /// All pieces, rarest bucket first.
    pub(super) fn as_slice(&self) -> &[u32] {
        &self.order
    }

    /// Makes sure bucket `a` exists (empty buckets are appended at the end).
    fn ensure_bucket(&mut self, a: usize) {
        while self.starts.len() < a + 2 {
            self.starts.push(self.order.len() as u32);
        }
    }

    fn swap(&mut self, i: usize, j: usize, pos: &mut [u32]) {
        self.order.swap(i, j);
        pos[self.order[i] as usize] = i as u32;
        pos[self.order[j] as usize] = j as u32;
    }

    /// Adds `piece` with availability `a`. O(number of buckets above `a`).
    pub(super) fn insert(&mut self, piece: u32, a: u32, pos: &mut [u32]) {
        let a = a as usize;
        self.ensure_bucket(a);
        let last = self.bucket_count() - 1;
        self.order.push(piece);
        let mut i = self.order.len() - 1;
        pos[piece as usize] = i as u32;
        if let Some(s) = self.starts.last_mut() {
            *s = self.order.len() as u32;
        }
        // The piece sits at the end of the last bucket; walk it down one bucket at a time by
        // swapping it with each bucket's first member and moving that boundary up.
        for b in (a + 1..=last).rev() {
            let first = self.starts[b] as usize;
            self.swap(i, first, pos);
            self.starts[b] += 1;
            i = first;
        }
    }

    /// Removes `piece`, whose availability is `a`. O(number of buckets above `a`).
    pub(super) fn remove(&mut self, piece: u32, a: u32, pos: &mut [u32]) {
        let a = a as usize;
        let mut i = pos[piece as usize] as usize;
        let last = self.bucket_count() - 1;
        // Walk the piece up to the last bucket, then off the end of `order`.
        for b in a..last {
            let end = self.starts[b + 1] as usize - 1;
            self.swap(i, end, pos);
            self.starts[b + 1] -= 1;
            i = end;
        }
        let tail = self.order.len() - 1;
        self.swap(i, tail, pos);
        self.order.pop();
        pos[piece as usize] = NONE;
        if let Some(s) = self.starts.last_mut() {
            *s -= 1;
        }
    }

    /// Moves `piece` from bucket `a` to bucket `a + 1`. O(1).
    pub(super) fn increment(&mut self, piece: u32, a: u32, pos: &mut [u32]) {
        let a = a as usize;
        self.ensure_bucket(a + 1);
        let i = pos[piece as usize] as usize;
        let end = self.starts[a + 1] as usize - 1;
        self.swap(i, end, pos);
        self.starts[a + 1] -= 1;
    }

    /// Moves `piece` from bucket `a` (`a >= 1`) to bucket `a - 1`. O(1).
    pub(super) fn decrement(&mut self, piece: u32, a: u32, pos: &mut [u32]) {
        let a = a as usize;
        let i = pos[piece as usize] as usize;
        let first = self.starts[a] as usize;
        self.swap(i, first, pos);
        self.starts[a] += 1;
    }

    /// Replaces the contents with `pieces` (counting sort by `avail`). O(pieces + buckets).
    /// Every listed piece's `pos` is written; the caller resets the others.
    pub(super) fn rebuild<I>(&mut self, pieces: I, avail: &[u32], pos: &mut [u32])
    where
        I: Iterator<Item = u32> + Clone,
    {
        self.order.clear();
        self.starts.clear();
        // Count per bucket into starts[a + 1], then prefix-sum into boundaries.
        self.starts.push(0);
        for p in pieces.clone() {
            let a = avail[p as usize] as usize;
            while self.starts.len() < a + 2 {
                self.starts.push(0);
            }
            self.starts[a + 1] += 1;
        }
        for b in 1..self.starts.len() {
            self.starts[b] += self.starts[b - 1];
        }
        let total = self.starts.last().copied().unwrap_or(0) as usize;
        self.order.resize(total, NONE);
        // Fill using starts[a] as a cursor, then shift the cursors back into boundaries.
        for p in pieces {
            let a = avail[p as usize] as usize;
            let at = self.starts[a] as usize;
            self.order[at] = p;
            pos[p as usize] = at as u32;
            self.starts[a] += 1;
        }
        for b in (1..self.starts.len()).rev() {
            self.starts[b] = self.starts[b - 1];
        }
        self.starts[0] = 0;
    }

    /// Checks every invariant against `avail` and `pos` (tests only).
    #[cfg(test)]
    pub(super) fn check(&self, avail: &[u32], pos: &[u32]) {
        assert_eq!(self.starts[0], 0);
        assert_eq!(*self.starts.last().unwrap() as usize, self.order.len());
        for b in 0..self.bucket_count() {
            assert!(self.starts[b] <= self.starts[b + 1]);
            for &p in self.bucket(b) {
                assert_eq!(avail[p as usize] as usize, b, "piece {p} in wrong bucket");
            }
        }
        for (i, &p) in self.order.iter().enumerate() {
            assert_eq!(pos[p as usize] as usize, i, "stale pos for piece {p}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_operations_keep_buckets_consistent() {
        let n = 64usize;
        let mut rng = fastrand::Rng::with_seed(42);
        let mut avail = vec![0u32; n];
        let mut pos = vec![NONE; n];
        let mut b = Buckets::new();
        for _ in 0..5000 {
            let p = rng.u32(..n as u32);
            let listed = pos[p as usize] != NONE;
            match rng.u8(..4) {
                0 if !listed => b.insert(p, avail[p as usize], &mut pos),
                0 => b.remove(p, avail[p as usize], &mut pos),
                1 | 2 => {
                    if listed {
                        b.increment(p, avail[p as usize], &mut pos);
                    }
                    avail[p as usize] += 1;
                }
                _ => {
                    if avail[p as usize] > 0 {
                        if listed {
                            b.decrement(p, avail[p as usize], &mut pos);
                        }
                        avail[p as usize] -= 1;
                    }
                }
            }
            b.check(&avail, &pos);
            let expected: Vec<usize> = (0..b.bucket_count())
                .filter(|&a| !b.bucket(a).is_empty())
                .collect();
            let jumped: Vec<usize> = b.non_empty(|p| avail[p as usize]).collect();
            assert_eq!(jumped, expected, "non-empty buckets");
        }
        let listed: Vec<u32> = (0..n as u32).filter(|&p| pos[p as usize] != NONE).collect();
        assert_eq!(b.as_slice().len(), listed.len());
        let mut rebuilt = Buckets::new();
        let mut pos2 = vec![NONE; n];
        rebuilt.rebuild(listed.iter().copied(), &avail, &mut pos2);
        rebuilt.check(&avail, &pos2);
        for a in 0..b.bucket_count().max(rebuilt.bucket_count()) {
            let mut x = b.bucket(a).to_vec();
            let mut y = rebuilt.bucket(a).to_vec();
            x.sort_unstable();
            y.sort_unstable();
            assert_eq!(x, y, "bucket {a} differs after rebuild");
        }
    }
}
