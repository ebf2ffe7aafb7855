//! Piece verification: SHA-1 over a piece's blocks, as BEP 3's `pieces` hashes are taken,
//! and the whole check a `VerifyPiece` asks for ([`verify_piece`]).

use crate::piece_hashes::PieceHash;
use sha1::{Digest, Sha1};

/// The SHA-1 of the concatenation of `blocks`, computed without concatenating them.
pub fn piece_sha1<B: AsRef<[u8]>>(blocks: &[B]) -> [u8; 20] {
    let mut hasher = Sha1::new();
    for block in blocks {
        hasher.update(block.as_ref());
    }
    hasher.finalize().into()
}

/// Whether `blocks`, concatenated, are the piece `expected` describes (its SHA-1, its v2
/// merkle root, or both; see [`PieceHash::matches`]) — the answer a driver gives
/// [`crate::session::Session::piece_hashed`] for an
/// [`crate::session::Action::VerifyPiece`].
pub fn verify_piece<B: AsRef<[u8]>>(blocks: &[B], expected: &PieceHash) -> bool {
    expected.matches(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn hash_over_blocks_equals_hash_of_the_whole() {
        let whole: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let expected: [u8; 20] = Sha1::digest(&whole).into();
        let blocks: Vec<Bytes> = whole
            .chunks(16 * 1024)
            .map(Bytes::copy_from_slice)
            .collect();
        assert_eq!(blocks.len(), 3);
        assert_eq!(piece_sha1(&blocks), expected);
        assert!(verify_piece(&blocks, &PieceHash::v1(expected)));
    }

    #[test]
    fn one_changed_byte_or_a_missing_block_fails() {
        let whole = vec![7u8; 32 * 1024];
        let expected: [u8; 20] = Sha1::digest(&whole).into();
        let mut changed = whole.clone();
        changed[20_000] ^= 1;
        let expected = PieceHash::v1(expected);
        assert!(!verify_piece(
            &[&changed[..16384], &changed[16384..]],
            &expected
        ));
        assert!(!verify_piece(&[&whole[..16384]], &expected));
        let none: [&[u8]; 0] = [];
        assert!(!verify_piece(&none, &expected));
    }
}
