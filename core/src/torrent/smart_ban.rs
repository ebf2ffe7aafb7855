//! Smart ban: remember who sent which bytes of a piece that failed its hash, and when the
//! piece later verifies, name the senders whose bytes were wrong.
//!
//! A failed piece only says that *some* block of it was bad. Counting the failure against
//! every sender gets honest peers banned beside a liar that corrupts one block of every
//! piece. So, for each failed piece, we keep each block's sender and the SHA-1 of the block
//! it sent. Once the piece verifies, the verified bytes are the truth: a sender whose
//! recorded digest differs from the verified block's sent a wrong block — proof, so it is
//! banned at once — and everyone else is cleared.
//!
//! Memory is bounded: at most [`MAX_RECORDED_PIECES`] pieces are remembered (the oldest
//! record goes first), and at most [`MAX_COPIES_PER_BLOCK`] different (sender, digest)
//! pairs per block (a piece that fails again adds what is new). A record costs about
//! 40 bytes per block per copy: with 64 pieces of 4 MiB (256 blocks) and four copies that is
//! at most ~2.6 MB, and typically one copy of small pieces, a few kilobytes.

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::Bytes;
use sha1::{Digest, Sha1};

/// Failed pieces whose senders are remembered; older records are dropped (the evidence
/// they held is lost, never turned into a strike).
pub(super) const MAX_RECORDED_PIECES: usize = 64;

/// Different copies of one block remembered (a piece may fail several times with several
/// senders); further copies are not recorded.
pub(super) const MAX_COPIES_PER_BLOCK: usize = 4;

/// SHA-1 of one block.
type BlockDigest = [u8; 20];

/// Who sent a block: a peer (known by its address; evidence counts against its IP) or a
/// web seed of the torrent (BEP 19, known by its id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sender {
    /// A peer connection from this address.
    Peer(SocketAddr),
    /// A web seed.
    WebSeed(crate::vocab::WebSeedId),
}

impl Sender {
    /// Whether two senders are the same source for trust: peers by IP, web seeds by id.
    pub(super) fn same_source(&self, other: &Sender) -> bool {
        match (self, other) {
            (Sender::Peer(a), Sender::Peer(b)) => a.ip() == b.ip(),
            (Sender::WebSeed(a), Sender::WebSeed(b)) => a == b,
            _ => false,
        }
    }
}

/// What a failed piece's blocks were and who sent them, per block index.
#[derive(Debug)]
struct Record {
    piece: u32,
    blocks: Vec<Vec<(Sender, BlockDigest)>>,
}

/// The records of recently failed pieces, oldest first. See the module docs.
#[derive(Debug, Default)]
pub(super) struct SmartBan {
    records: VecDeque<Record>,
}

/// The SHA-1 of a block.
fn digest(data: &[u8]) -> BlockDigest {
    Sha1::digest(data).into()
}

impl SmartBan {
    /// Records the blocks of `piece`, which failed its hash: `blocks[i]` is block `i`'s data
    /// and `senders[i]` the address it came from (`None` for a block we do not have or
    /// whose sender is unknown, which records nothing). A piece already recorded keeps its
    /// earlier copies and becomes the newest record.
    pub(super) fn record_failure(
        &mut self,
        piece: u32,
        blocks: &[Option<Bytes>],
        senders: &[Option<Sender>],
    ) {
        let mut record = self
            .records
            .iter()
            .position(|r| r.piece == piece)
            .and_then(|i| self.records.remove(i))
            .unwrap_or(Record {
                piece,
                blocks: Vec::new(),
            });
        if record.blocks.len() < blocks.len() {
            record.blocks.resize_with(blocks.len(), Vec::new);
        }
        for ((data, sender), copies) in blocks.iter().zip(senders).zip(&mut record.blocks) {
            let (Some(data), Some(sender)) = (data, sender) else {
                continue;
            };
            let d = digest(data);
            let known = copies.iter().any(|(a, c)| a.same_source(sender) && *c == d);
            if !known && copies.len() < MAX_COPIES_PER_BLOCK {
                copies.push((*sender, d));
            }
        }
        self.records.push_back(record);
        while self.records.len() > MAX_RECORDED_PIECES {
            self.records.pop_front();
        }
    }

    /// `piece` verified with these blocks: returns the senders (one address per IP, in
    /// the order first recorded) of recorded blocks that differ from the verified ones,
    /// and forgets the piece. Empty when the piece was never recorded.
    pub(super) fn piece_verified(&mut self, piece: u32, blocks: &[Option<Bytes>]) -> Vec<Sender> {
        let Some(record) = self
            .records
            .iter()
            .position(|r| r.piece == piece)
            .and_then(|i| self.records.remove(i))
        else {
            return Vec::new();
        };
        let mut culprits: Vec<Sender> = Vec::new();
        for (copies, data) in record.blocks.iter().zip(blocks) {
            let Some(data) = data else {
                continue;
            };
            if copies.is_empty() {
                continue;
            }
            let truth = digest(data);
            for (sender, d) in copies {
                if *d != truth && !culprits.iter().any(|c| c.same_source(sender)) {
                    culprits.push(*sender);
                }
            }
        }
        culprits
    }

    /// Whether `piece` has a record (tests and invariants).
    #[cfg(test)]
    fn is_recorded(&self, piece: u32) -> bool {
        self.records.iter().any(|r| r.piece == piece)
    }
}

/// The distinct IPs among a piece's block senders, in order of first appearance, each with
/// the first address seen for it.
pub(super) fn distinct_senders(senders: &[Option<Sender>]) -> Vec<Sender> {
    let mut out: Vec<Sender> = Vec::new();
    for s in senders.iter().flatten() {
        if !out.iter().any(|a: &Sender| a.same_source(s)) {
            out.push(*s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> Sender {
        Sender::Peer(SocketAddr::from(([10, 0, 0, last], 6881)))
    }

    fn block(fill: u8) -> Option<Bytes> {
        Some(Bytes::from(vec![fill; 16 * 1024]))
    }

    #[test]
    fn the_sender_of_the_differing_block_is_the_culprit() {
        let (liar, honest) = (addr(1), addr(2));
        let mut sb = SmartBan::default();
        sb.record_failure(
            3,
            &[block(0xff), block(1), block(2)],
            &[Some(liar), Some(honest), Some(honest)],
        );
        assert!(sb.is_recorded(3));
        let culprits = sb.piece_verified(3, &[block(0), block(1), block(2)]);
        assert_eq!(culprits, vec![liar], "the honest co-sender is cleared");
        assert!(!sb.is_recorded(3), "a verified piece is forgotten");
        assert!(
            sb.piece_verified(3, &[block(0), block(1), block(2)])
                .is_empty()
        );
    }

    #[test]
    fn matching_blocks_name_nobody_and_unrecorded_pieces_name_nobody() {
        let mut sb = SmartBan::default();
        sb.record_failure(0, &[block(1), block(2)], &[Some(addr(1)), Some(addr(2))]);
        assert!(sb.piece_verified(7, &[block(1), block(2)]).is_empty());
        assert!(sb.piece_verified(0, &[block(1), block(2)]).is_empty());
    }

    #[test]
    fn repeated_failures_keep_every_distinct_copy() {
        // Two failures of piece 5: first liar A corrupts block 0, then liar B block 1. The
        // verified piece names both, each once, and honest C not at all.
        let (a, b, c) = (addr(1), addr(2), addr(3));
        let mut sb = SmartBan::default();
        sb.record_failure(5, &[block(9), block(1)], &[Some(a), Some(c)]);
        sb.record_failure(5, &[block(0), block(8)], &[Some(c), Some(b)]);
        sb.record_failure(5, &[block(9), block(8)], &[Some(a), Some(b)]);
        let culprits = sb.piece_verified(5, &[block(0), block(1)]);
        assert_eq!(culprits, vec![a, b]);
    }

    #[test]
    fn copies_per_block_are_bounded() {
        let mut sb = SmartBan::default();
        for i in 0..20u8 {
            sb.record_failure(1, &[block(i)], &[Some(addr(i))]);
        }
        let r = sb
            .records
            .iter()
            .find(|r| r.piece == 1)
            .map(|r| r.blocks[0].len());
        assert_eq!(r, Some(MAX_COPIES_PER_BLOCK));
        // The first copies are kept: senders 0..4 sent bytes other than 0xee.
        let culprits = sb.piece_verified(1, &[block(0xee)]);
        assert_eq!(culprits, (0..4).map(addr).collect::<Vec<_>>());
    }

    #[test]
    fn records_are_bounded_oldest_first() {
        let mut sb = SmartBan::default();
        for p in 0..(MAX_RECORDED_PIECES as u32 + 10) {
            sb.record_failure(p, &[block(1)], &[Some(addr(1))]);
        }
        assert_eq!(sb.records.len(), MAX_RECORDED_PIECES);
        assert!(!sb.is_recorded(0) && !sb.is_recorded(9));
        assert!(sb.is_recorded(10));
        // Failing again refreshes a record: piece 10 survives the next eviction.
        sb.record_failure(10, &[block(1)], &[Some(addr(1))]);
        sb.record_failure(1000, &[block(1)], &[Some(addr(1))]);
        assert!(sb.is_recorded(10));
        assert!(!sb.is_recorded(11));
    }

    #[test]
    fn unknown_senders_and_missing_blocks_record_nothing() {
        let mut sb = SmartBan::default();
        sb.record_failure(2, &[block(9), None], &[None, Some(addr(1))]);
        assert!(sb.piece_verified(2, &[block(0), block(0)]).is_empty());
    }

    #[test]
    fn senders_are_distinct_by_ip() {
        let a1 = addr(1);
        let a2 = Sender::Peer(SocketAddr::from(([10, 0, 0, 1], 7000)));
        let b = addr(2);
        assert_eq!(distinct_senders(&[Some(a1), None, Some(a2)]), vec![a1]);
        assert_eq!(
            distinct_senders(&[Some(a1), Some(b), Some(a2)]),
            vec![a1, b]
        );
    }
}
