//! The network's schedule of flow completions: an indexed binary min-heap, one entry per
//! active flow, keyed by `(time, sequence)`.
//!
//! Why indexed: a flow's completion time moves whenever its rate does, and a host's rates
//! move together (every flow of a sender and of the receivers it shares are reshared when
//! one starts or stops). A plain heap with lazy deletion kept every superseded entry until
//! it surfaced; at N = 1,000 those stale entries made popping the heap 6 % of the run.
//! Here an update moves the flow's one entry up or down in place, so the heap holds exactly
//! the flows that are due to finish.
//!
//! Invariants: `heap[i]` is never earlier than `heap[(i - 1) / 2]` (by `(at, seq)`);
//! `pos[slot] == Some(i)` exactly when `heap[i].2 == slot`.

/// A flow completion: `(at, seq, slot)` (microseconds, schedule order, flow slot).
type Entry = (u64, u64, usize);

/// An indexed min-heap of flow completions.
#[derive(Debug, Default)]
pub(crate) struct DueHeap {
    heap: Vec<Entry>,
    pos: Vec<Option<usize>>,
}

impl DueHeap {
    /// Schedules `slot` to finish at `at` (ties broken by `seq`, smaller first), replacing
    /// its previous time if it had one.
    pub(crate) fn set(&mut self, slot: usize, at: u64, seq: u64) {
        if self.pos.len() <= slot {
            self.pos.resize(slot + 1, None);
        }
        match self.pos[slot] {
            Some(i) => {
                let old = self.heap[i];
                self.heap[i] = (at, seq, slot);
                if (at, seq) < (old.0, old.1) {
                    self.sift_up(i);
                } else {
                    self.sift_down(i);
                }
            }
            None => {
                self.heap.push((at, seq, slot));
                let i = self.heap.len() - 1;
                self.pos[slot] = Some(i);
                self.sift_up(i);
            }
        }
    }

    /// Unschedules `slot` (no-op if it was not scheduled).
    pub(crate) fn remove(&mut self, slot: usize) {
        let Some(i) = self.pos.get(slot).copied().flatten() else {
            return;
        };
        self.take(i);
    }

    /// The earliest completion: its time and slot.
    pub(crate) fn peek(&self) -> Option<(u64, usize)> {
        self.heap.first().map(|&(at, _, slot)| (at, slot))
    }

    /// Takes the earliest completion: its time and slot.
    pub(crate) fn pop(&mut self) -> Option<(u64, usize)> {
        if self.heap.is_empty() {
            return None;
        }
        let (at, _, slot) = self.take(0);
        Some((at, slot))
    }

    /// Removes the entry at index `i` and returns it.
    fn take(&mut self, i: usize) -> Entry {
        let last = self.heap.len() - 1;
        self.swap(i, last);
        let entry = self.heap.pop().expect("the heap held index i");
        self.pos[entry.2] = None;
        if i < self.heap.len() {
            self.sift_down(i);
            self.sift_up(i);
        }
        entry
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a].2] = Some(a);
        self.pos[self.heap[b].2] = Some(b);
    }

    fn earlier(&self, a: usize, b: usize) -> bool {
        (self.heap[a].0, self.heap[a].1) < (self.heap[b].0, self.heap[b].1)
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.earlier(i, parent) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if l < self.heap.len() && self.earlier(l, least) {
                least = l;
            }
            if r < self.heap.len() && self.earlier(r, least) {
                least = r;
            }
            if least == i {
                break;
            }
            self.swap(i, least);
            i = least;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Random sets, moves and removals: the heap always yields what a sorted model of the
    /// live entries says is earliest, and holds nothing else.
    #[test]
    fn the_earliest_live_completion_comes_first_through_updates_and_removals() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut heap = DueHeap::default();
        let mut model: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
        let mut seq = 0;
        for _ in 0..20_000 {
            let slot = rng.usize(0..64);
            match rng.u8(0..10) {
                0..=5 => {
                    seq += 1;
                    let at = rng.u64(0..1_000);
                    heap.set(slot, at, seq);
                    model.insert(slot, (at, seq));
                }
                6 | 7 => {
                    heap.remove(slot);
                    model.remove(&slot);
                }
                _ => {
                    let want = model
                        .iter()
                        .min_by_key(|(_, k)| **k)
                        .map(|(&s, &(at, _))| (at, s));
                    assert_eq!(heap.pop(), want);
                    if let Some((_, s)) = want {
                        model.remove(&s);
                    }
                }
            }
            assert_eq!(heap.heap.len(), model.len());
            let want = model
                .iter()
                .min_by_key(|(_, k)| **k)
                .map(|(&s, &(at, _))| (at, s));
            assert_eq!(heap.peek(), want);
        }
    }
}
