//! A [`Picker`] in the middle of a download, for the `picker` bench.
//!
//! The state a real download with many peers has:
//! - 256 KiB pieces (16 blocks); 30 % of the pieces already verified (past the random
//!   first pieces, so new pieces are chosen rarest first);
//! - every peer's bitfield counted for availability: 10 % of the peers are seeds, the others
//!   hold a random fraction of the pieces between 5 % and 95 % (each piece independently);
//! - [`IN_PROGRESS`] pieces in progress, each fully requested from one peer and half
//!   received, as when every connection has its pipeline full. A new pick therefore scans
//!   them, finds no free block, and opens a new piece rarest first; the next picks take that
//!   piece's free blocks.

use unchoke_core::bitfield::Bitfield;
use unchoke_core::picker::{BlockRequest, PeerKey, Picker, PickerError};

/// Piece length (16 blocks of 16 KiB).
pub const PIECE_LENGTH: u32 = 256 * 1024;
/// Pieces in progress at the start (each fully requested, half received).
pub const IN_PROGRESS: usize = 64;
/// Share of pieces already verified, in percent.
pub const HAVE_PERCENT: u32 = 30;

/// A picker mid-download and the bitfields of the peers it counted (peer `k` is
/// `peers[k]`).
#[derive(Clone, Debug)]
pub struct PickerScenario {
    /// The picker.
    pub picker: Picker,
    /// What each connected peer has; the index is its [`PeerKey`].
    pub peers: Vec<Bitfield>,
    /// The rng picks draw from (ties among equally rare pieces).
    pub rng: fastrand::Rng,
}

impl PickerScenario {
    /// A torrent of `pieces` pieces with `peers` connected peers (see the module docs).
    /// Deterministic for a given `seed`.
    pub fn build(pieces: u32, peers: usize, seed: u64) -> Result<Self, PickerError> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let total = u64::from(pieces) * u64::from(PIECE_LENGTH);
        let mut have = Bitfield::new(pieces);
        for p in 0..pieces {
            if rng.u32(..100) < HAVE_PERCENT {
                have.set(p);
            }
        }
        let mut picker = Picker::with_have(PIECE_LENGTH, total, have)?;
        let bitfields: Vec<Bitfield> = (0..peers)
            .map(|k| {
                if k % 10 == 9 {
                    return Bitfield::full(pieces);
                }
                let percent = rng.u32(5..=95);
                let mut b = Bitfield::new(pieces);
                for p in 0..pieces {
                    if rng.u32(..100) < percent {
                        b.set(p);
                    }
                }
                b
            })
            .collect();
        for b in &bitfields {
            picker.peer_bitfield(b);
        }
        // Pieces in progress: peer after peer fills a whole piece, then half of it arrives.
        let mut out = Vec::new();
        let blocks = PIECE_LENGTH / unchoke_core::picker::BLOCK_LEN;
        for i in 0..IN_PROGRESS.min(pieces as usize / 4) {
            let k = i % bitfields.len().max(1);
            let Some(has) = bitfields.get(k) else { break };
            out.clear();
            picker.pick_blocks(k as PeerKey, has, blocks as usize, &mut rng, &mut out);
            for b in out.iter().step_by(2) {
                picker.block_received(b.piece, b.offset, k as PeerKey);
            }
        }
        Ok(PickerScenario {
            picker,
            peers: bitfields,
            rng,
        })
    }

    /// Peer `k` picks up to `max` blocks (appended to `out`), as a connection refilling its
    /// request pipeline does.
    pub fn pick(&mut self, k: PeerKey, max: usize, out: &mut Vec<BlockRequest>) {
        if let Some(has) = self.peers.get(k as usize) {
            self.picker.pick_blocks(k, has, max, &mut self.rng, out);
        }
    }

    /// Withdraws `k`'s requests for `blocks` (as after a `cancel`), putting the picker back
    /// where it was before they were picked: untouched pieces return to the rarest-first
    /// lists.
    pub fn unpick(&mut self, k: PeerKey, blocks: &[BlockRequest]) {
        for b in blocks {
            self.picker.request_cancelled(b.piece, b.offset, k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_is_mid_download_with_pieces_in_progress() {
        let s = PickerScenario::build(10_000, 200, 3).unwrap();
        let have = s.picker.have().count_ones();
        assert!((2_700..3_300).contains(&have), "{have} pieces verified");
        assert_eq!(s.picker.downloading().count(), IN_PROGRESS);
        assert!(!s.picker.in_endgame());
        // Availability is counted: the seeds alone put every piece at 20 or more.
        assert!((0..10_000).all(|p| s.picker.availability(p) >= 20));
    }

    #[test]
    fn pick_then_unpick_restores_the_state() {
        let mut s = PickerScenario::build(1_000, 20, 5).unwrap();
        let before: Vec<u32> = s.picker.downloading().collect();
        let mut out = Vec::new();
        for k in 0..20u32 {
            out.clear();
            s.pick(k, 1, &mut out);
            // Nothing is free in the pieces in progress: every pick opens or continues a
            // piece that was not in progress.
            assert_eq!(out.len(), 1);
            assert!(!before.contains(&out[0].piece));
            s.unpick(k, &out);
        }
        let after: Vec<u32> = s.picker.downloading().collect();
        assert_eq!(before, after);
    }
}
