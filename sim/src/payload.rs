//! The simulated file: pseudo-random content made once from the seed, its torrent, and the
//! checks the simulated disks make against it.
//!
//! Every host serves blocks as slices of the one canonical copy (no host stores the file),
//! so a thousand peers cost the memory of one file. A piece a host downloads is verified by
//! comparing its blocks byte for byte with the canonical piece, whose SHA-1 was checked
//! against the torrent when the payload was made: that is the same verdict a SHA-1 of the
//! received bytes gives, without hashing every copy of the file again.

use bytes::Bytes;
use sha1::{Digest, Sha1};

use unchoke_core::bencode::{self, Dict, Value};
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::PieceHash;

/// The tracker URL written into the simulated torrent.
pub(crate) const TRACKER_URL: &str = "http://127.255.255.254:6969/announce";

/// The content and torrent of one simulation.
#[derive(Debug)]
pub(crate) struct Payload {
    pub(crate) metainfo: Metainfo,
    pieces: Vec<Bytes>,
}

/// A single-file torrent named `name` of `length` bytes in pieces of `piece_length` whose
/// SHA-1s are `hashes` (20 bytes each, in order), announcing to `announce`: the simulated
/// file's and the lab's test torrents.
pub(crate) fn single_file_torrent(
    name: &[u8],
    announce: &str,
    length: u64,
    piece_length: u32,
    hashes: &[u8],
) -> Result<Metainfo, String> {
    let length = i64::try_from(length).map_err(|_| format!("{length} bytes is too large"))?;
    let info = Value::Dict(Dict::new(vec![
        (b"length", Value::Int(length)),
        (b"name", Value::Bytes(name)),
        (b"piece length", Value::Int(i64::from(piece_length))),
        (b"pieces", Value::Bytes(hashes)),
    ]));
    let root = Value::Dict(Dict::new(vec![
        (b"announce", Value::Bytes(announce.as_bytes())),
        (b"info", info),
    ]));
    Metainfo::from_bytes(&bencode::encode(&root)).map_err(|e| e.to_string())
}

impl Payload {
    /// Makes `file_size` bytes of content from `seed` and a single-file torrent of it.
    pub(crate) fn new(file_size: u64, piece_length: u32, seed: u64) -> Result<Self, String> {
        if file_size == 0 {
            return Err("the file size must be positive".into());
        }
        if piece_length < 16 * 1024 || !piece_length.is_power_of_two() {
            return Err(format!(
                "piece length {piece_length} must be a power of two of at least 16 KiB"
            ));
        }
        let piece_count = file_size.div_ceil(u64::from(piece_length));
        if piece_count > 1_000_000 {
            return Err(format!(
                "{piece_count} pieces is too many: raise the piece length"
            ));
        }
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed_f11e);
        let mut pieces = Vec::with_capacity(piece_count as usize);
        let mut hashes = Vec::with_capacity(piece_count as usize * 20);
        let mut left = file_size;
        while left > 0 {
            let len = left.min(u64::from(piece_length)) as usize;
            left -= len as u64;
            let mut piece = vec![0u8; len];
            for chunk in piece.chunks_mut(8) {
                let word = rng.u64(..).to_le_bytes();
                chunk.copy_from_slice(&word[..chunk.len()]);
            }
            hashes.extend_from_slice(&Sha1::digest(&piece));
            pieces.push(Bytes::from(piece));
        }
        let metainfo = single_file_torrent(
            b"simulated.bin",
            TRACKER_URL,
            file_size,
            piece_length,
            &hashes,
        )
        .map_err(|e| format!("the simulated torrent does not parse: {e}"))?;
        Ok(Payload { metainfo, pieces })
    }

    /// Number of pieces.
    pub(crate) fn piece_count(&self) -> u32 {
        self.pieces.len() as u32
    }

    /// The bytes of a block, or `None` outside the file.
    pub(crate) fn block(&self, piece: u32, offset: u32, length: u32) -> Option<Bytes> {
        let p = self.pieces.get(piece as usize)?;
        let start = offset as usize;
        let end = start.checked_add(length as usize)?;
        (end <= p.len()).then(|| p.slice(start..end))
    }

    /// Whether `blocks`, concatenated, are exactly piece `piece` and `expected` is the
    /// torrent's hash of it.
    pub(crate) fn verifies(&self, piece: u32, expected: &PieceHash, blocks: &[Bytes]) -> bool {
        let Some(p) = self.pieces.get(piece as usize) else {
            return false;
        };
        let hash_ok = self
            .metainfo
            .info
            .piece_hashes
            .get(piece as usize)
            .is_some_and(|h| expected.v1 == Some(*h));
        let mut at = 0usize;
        for b in blocks {
            let end = at + b.len();
            if end > p.len() {
                return false;
            }
            // A block that is the canonical copy's own bytes (an honest disk's read, handed
            // through without a copy) is equal by where it points; anything else, a
            // corrupt host's blocks included, is compared byte by byte.
            let same_memory = b.as_ptr() == p[at..end].as_ptr();
            if !same_memory && p[at..end] != b[..] {
                return false;
            }
            at = end;
        }
        hash_ok && at == p.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torrent_matches_content() {
        let p = Payload::new(100_000, 32 * 1024, 7).expect("payload");
        assert_eq!(p.piece_count(), 4);
        assert_eq!(p.metainfo.info.piece_hashes.len(), 4);
        for i in 0..4u32 {
            let piece = p.pieces[i as usize].clone();
            let sha1 = p.metainfo.info.piece_hashes[i as usize];
            let expected = PieceHash::v1(sha1);
            assert_eq!(Sha1::digest(&piece)[..], sha1[..]);
            let halves = [
                piece.slice(..piece.len() / 2),
                piece.slice(piece.len() / 2..),
            ];
            assert!(p.verifies(i, &expected, &halves));
            let mut bad = piece.to_vec();
            bad[0] ^= 1;
            assert!(!p.verifies(i, &expected, &[Bytes::from(bad)]));
            assert!(!p.verifies(i, &expected, &halves[..1]), "short piece");
        }
        assert_eq!(
            p.block(3, 0, 100_000 - 3 * 32 * 1024).map(|b| b.len()),
            Some(1696)
        );
        assert!(p.block(3, 0, 32 * 1024).is_none());
        assert!(p.block(4, 0, 1).is_none());
    }

    #[test]
    fn same_seed_same_content() {
        let a = Payload::new(50_000, 16 * 1024, 1).expect("a");
        let b = Payload::new(50_000, 16 * 1024, 1).expect("b");
        let c = Payload::new(50_000, 16 * 1024, 2).expect("c");
        assert_eq!(a.metainfo.info_hash, b.metainfo.info_hash);
        assert_ne!(a.metainfo.info_hash, c.metainfo.info_hash);
        assert!(Payload::new(0, 16 * 1024, 1).is_err());
        assert!(Payload::new(10, 1000, 1).is_err());
    }
}
