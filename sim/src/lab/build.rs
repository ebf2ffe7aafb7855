//! The lab's test torrents: deterministic content and a single-file torrent over it.

use sha1::{Digest, Sha1};
use unchoke_core::metainfo::Metainfo;

/// A single-file torrent (`payload.bin`) over `content`, announcing to a local tracker.
///
/// # Panics
/// If `piece_length` is 0 or the torrent does not parse (a bug here, not a test input).
pub fn make_metainfo(content: &[u8], piece_length: u32) -> Metainfo {
    assert!(piece_length > 0, "a piece length of 0");
    let mut pieces = Vec::new();
    for chunk in content.chunks(piece_length as usize) {
        pieces.extend_from_slice(&Sha1::digest(chunk));
    }
    let torrent = crate::payload::single_file_torrent(
        b"payload.bin",
        "http://127.0.0.1:6969/announce",
        content.len() as u64,
        piece_length,
        &pieces,
    );
    match torrent {
        Ok(m) => m,
        Err(e) => panic!("the lab's torrent does not parse: {e}"),
    }
}

/// `len` bytes of deterministic pseudo-random content drawn from `seed`.
pub fn make_content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}
