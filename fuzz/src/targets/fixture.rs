//! The small torrent the whole-session targets (`session_peer`, `session_hostile`) run on:
//! 8 pieces of 32 KiB (two blocks each) with a fixed payload, built once per process
//! because hashing it on every input would dominate the run time.

use std::sync::OnceLock;

use bytes::Bytes;
use sha1::{Digest, Sha1};
use unchoke_core::bencode::{self, Dict, Value};
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{DiskError, DiskErrorKind, PieceHash};

/// Bytes per piece.
pub(crate) const PIECE_LEN: u32 = 32 * 1024;
/// Pieces in the torrent.
pub(crate) const PIECES: u32 = 8;

fn metainfo(content: &[u8]) -> Metainfo {
    let mut pieces = Vec::new();
    for chunk in content.chunks(PIECE_LEN as usize) {
        pieces.extend_from_slice(&Sha1::digest(chunk));
    }
    let info = Value::Dict(Dict::new(vec![
        (b"length", Value::Int(content.len() as i64)),
        (b"name", Value::Bytes(b"fuzz.bin")),
        (b"piece length", Value::Int(i64::from(PIECE_LEN))),
        (b"pieces", Value::Bytes(&pieces)),
    ]));
    let root = Value::Dict(Dict::new(vec![(b"info", info)]));
    Metainfo::from_bytes(&bencode::encode(&root)).expect("the fixed torrent parses")
}

/// The fixed payload and its torrent.
pub(crate) fn fixture() -> &'static (Vec<u8>, Metainfo) {
    static FIXTURE: OnceLock<(Vec<u8>, Metainfo)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let content: Vec<u8> = (0..PIECES * PIECE_LEN)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        let meta = metainfo(&content);
        (content, meta)
    })
}

/// What a disk read of `block` answers in the whole-session targets: the payload's bytes,
/// or an injected read error when `fail`.
pub(crate) fn read_result(
    content: &[u8],
    block: unchoke_core::wire::BlockRequest,
    fail: bool,
) -> Result<Bytes, DiskError> {
    if fail {
        return Err(DiskError::new(
            DiskErrorKind::Io(std::io::ErrorKind::Other),
            "injected read error",
        ));
    }
    let start = (block.index * PIECE_LEN + block.begin) as usize;
    Ok(Bytes::copy_from_slice(
        &content[start..start + block.length as usize],
    ))
}

/// What a disk write answers in the whole-session targets: done, or an injected full disk
/// when `fail`.
pub(crate) fn write_result(fail: bool) -> Result<(), DiskError> {
    if fail {
        Err(DiskError::new(DiskErrorKind::NoSpace, "injected disk full"))
    } else {
        Ok(())
    }
}

/// Checks a `VerifyPiece` of the fixed torrent (the whole piece, every byte) and answers it
/// as a hasher would: whether the blocks' SHA-1 is `expected`.
pub(crate) fn verify_answer(piece: u32, expected: &PieceHash, blocks: &[Bytes]) -> bool {
    let len: usize = blocks.iter().map(|b| b.len()).sum();
    assert_eq!(
        len, PIECE_LEN as usize,
        "piece {piece} verified with {len} bytes"
    );
    unchoke_core::embed::verify_piece(blocks, expected)
}
