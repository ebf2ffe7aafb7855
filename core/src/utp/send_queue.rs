//! The bytes written to a uTP connection and not yet cut into packets.
//!
//! A queue of the writes themselves, not one contiguous buffer: packets in flight keep
//! their payloads (for retransmission) as slices of what was written, so a contiguous
//! `BytesMut` would be shared with them, and every write behind them would copy the whole
//! unsent remainder into a new allocation — 90 % of a bulk transfer's time went to that
//! `memmove` before this queue. Here a write is copied once, and a packet's payload is a
//! slice of one write when it fits in one (the bulk case: no copy at all) or gathered from
//! several small ones.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Written, not yet packetised bytes, in write order.
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    chunks: VecDeque<Bytes>,
    /// Invariant: the sum of `chunks`' lengths; no chunk is empty.
    len: usize,
}

impl SendQueue {
    /// Bytes queued.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets everything queued.
    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// Queues a copy of `data`.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if !data.is_empty() {
            self.chunks.push_back(Bytes::copy_from_slice(data));
            self.len += data.len();
        }
    }

    /// The first `n` bytes queued (fewer if fewer are queued), removed from the queue.
    pub(crate) fn take(&mut self, n: usize) -> Bytes {
        let n = n.min(self.len);
        self.len -= n;
        let Some(front) = self.chunks.front_mut() else {
            return Bytes::new();
        };
        if front.len() > n {
            return front.split_to(n);
        }
        if front.len() == n {
            return self.chunks.pop_front().unwrap_or_default();
        }
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let want = n - out.len();
            if front.len() > want {
                out.extend_from_slice(&front.split_to(want));
            } else {
                out.extend_from_slice(front);
                self.chunks.pop_front();
            }
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_slice_one_write_and_gather_several_in_order() {
        let mut q = SendQueue::default();
        q.push(b"abc");
        q.push(b"");
        q.push(b"defgh");
        assert_eq!(q.len(), 8);
        assert_eq!(&q.take(2)[..], b"ab");
        assert_eq!(&q.take(4)[..], b"cdef", "across two writes");
        assert_eq!(&q.take(2)[..], b"gh", "exactly the rest of one");
        assert!(q.is_empty());
        assert!(q.take(5).is_empty());
        q.push(b"xy");
        assert_eq!(&q.take(10)[..], b"xy", "no more than is queued");
        assert_eq!(q.len(), 0);
    }
}
