//! The session-wide bound on downloaded blocks waiting for the disk: while too many
//! `WriteBlock`s are unanswered, no torrent sends new block requests.
//!
//! What is counted: every [`crate::vocab::Action::WriteBlock`] emitted whose
//! `disk_write_done` has not come back, at 16 KiB each (a block is at most 16 KiB; only a
//! piece's last block may be shorter), so the count is an upper bound on the bytes. The
//! completion input names the piece, not the block, which is why blocks are counted rather
//! than bytes. Blocks already written but kept for hashing a piece still in progress are not
//! counted: holding requests back until those fall could leave a piece half-done forever,
//! whereas writes always come back.
//!
//! The memory bound, then: requests already sent still arrive while the session holds back,
//! so the count can reach `max_unwritten_bytes` plus the blocks outstanding when it crossed
//! the bound (at most one `max_pipeline` per peer) plus the missing blocks of pieces in
//! progress a peer sends unasked (taken only for pieces already buffered).

use crate::wire::MAX_BLOCK_LEN;

/// The count of unwritten blocks and whether requests are held back (see the module docs).
#[derive(Debug)]
pub(crate) struct WriteBudget {
    /// `WriteBlock`s emitted and not yet answered.
    blocks: usize,
    /// Requests stop at this many counted bytes (`SessionConfig::max_unwritten_bytes`).
    max_bytes: usize,
    /// Set when the count reaches the bound, cleared only when it falls to half: resuming at
    /// every written block would send one request per write, and the pipelines would never
    /// refill in a batch.
    held: bool,
    /// The hold was lifted and pipelines have not been topped up since.
    released: bool,
    /// The session closed: requests never resume.
    closed: bool,
}

impl WriteBudget {
    /// No writes pending; requests stop past `max_bytes` counted.
    pub(crate) fn new(max_bytes: usize) -> Self {
        WriteBudget {
            blocks: 0,
            max_bytes,
            held: false,
            released: false,
            closed: false,
        }
    }

    /// Bytes counted as waiting for the disk (an upper bound on the true bytes).
    pub(crate) fn bytes(&self) -> usize {
        self.blocks.saturating_mul(MAX_BLOCK_LEN as usize)
    }

    /// A `WriteBlock` was emitted.
    pub(crate) fn write_emitted(&mut self) {
        self.blocks += 1;
        if self.bytes() >= self.max_bytes {
            self.held = true;
        }
    }

    /// A `WriteBlock` was answered (written or failed: either way its memory is free).
    pub(crate) fn write_done(&mut self) {
        self.blocks = self.blocks.saturating_sub(1);
        if self.held && self.bytes() <= self.max_bytes / 2 {
            self.held = false;
            self.released = true;
        }
    }

    /// Whether new block requests may be sent.
    pub(crate) fn allows_requests(&self) -> bool {
        !self.held && !self.closed
    }

    /// The session is closing: no new request, ever again (writes still count down).
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }

    /// Whether the hold was lifted since the last call: the caller tops up every pipeline.
    pub(crate) fn take_released(&mut self) -> bool {
        std::mem::take(&mut self.released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_the_bound_and_releases_at_half() {
        let block = MAX_BLOCK_LEN as usize;
        let mut b = WriteBudget::new(4 * block);
        for _ in 0..3 {
            b.write_emitted();
        }
        assert!(b.allows_requests());
        b.write_emitted();
        assert!(!b.allows_requests(), "held at the bound");
        assert_eq!(b.bytes(), 4 * block);
        b.write_done();
        assert!(!b.allows_requests(), "still held above half");
        assert!(!b.take_released());
        b.write_done();
        assert!(b.allows_requests(), "released at half");
        assert!(b.take_released());
        assert!(!b.take_released(), "released once");
    }

    #[test]
    fn more_answers_than_writes_do_not_underflow() {
        let mut b = WriteBudget::new(MAX_BLOCK_LEN as usize);
        b.write_done();
        assert_eq!(b.bytes(), 0);
        assert!(b.allows_requests());
    }
}
