//! The `wire` target: the peer-message decoder on an arbitrary stream.
//!
//! The first 5 input bytes choose a torrent geometry (piece length, total length); the rest
//! is the stream. Invariants checked on every input:
//! 1. Decoding never panics, and every error is final (the buffer is left as it was).
//! 2. The stream decodes to the same messages (and the same final error) whether fed whole or
//!    in two parts split at a point the input chooses: framing is split-independent.
//! 3. Every decoded message re-encodes to exactly the bytes it was decoded from.
//! 4. Every request / cancel / reject / piece names a block inside the torrent, and every
//!    bitfield has exactly the torrent's size.
//! 5. The receive buffer never holds more than the input plus one maximal message.

use bytes::BytesMut;
use unchoke_core::wire::{Decoder, Limits, MAX_HASHES, Message, PieceGeometry, WireError};

/// Runs every wire-decoder invariant on `data`. Panics if one fails.
pub fn wire(data: &[u8]) {
    let Some((head, stream)) = data.split_first_chunk::<5>() else {
        return;
    };
    let piece_length = 1u32 << (14 + u32::from(head[0] % 6)); // 16 KiB .. 512 KiB
    let total =
        u64::from(u32::from_be_bytes([head[1], head[2], head[3], head[4]]) % (64 << 20)) + 1;
    let Some(geometry) = PieceGeometry::new(total, piece_length) else {
        return;
    };
    let decoder = Decoder::new(Some(geometry), Limits::default());

    let whole = decode_all(&decoder, &[stream], &geometry);
    let split_at = if stream.is_empty() {
        0
    } else {
        usize::from(head[0]).wrapping_mul(31) % stream.len()
    };
    let (a, b) = stream.split_at(split_at);
    let parts = decode_all(&decoder, &[a, b], &geometry);
    assert_eq!(whole, parts, "split at {split_at} changed the decoding");
}

fn decode_all(
    decoder: &Decoder,
    chunks: &[&[u8]],
    geometry: &PieceGeometry,
) -> (Vec<Message>, Option<WireError>) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let fed_total: usize = chunks.iter().map(|c| c.len()).sum();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.clone();
            match decoder.decode(&mut buf) {
                Ok(Some(m)) => {
                    let used = before.len() - buf.len();
                    let mut again = BytesMut::new();
                    m.encode(&mut again);
                    assert_eq!(
                        &again[..],
                        &before[..used],
                        "{} does not re-encode",
                        m.name()
                    );
                    check_in_range(&m, geometry);
                    out.push(m);
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(buf, before, "an error must leave the buffer as it was");
                    return (out, Some(e));
                }
            }
            let limit = fed_total + decoder.max_message_len() as usize + 4;
            assert!(
                buf.capacity() <= limit.max(64) * 2,
                "buffer grew to {}",
                buf.capacity()
            );
        }
    }
    (out, None)
}

fn check_in_range(m: &Message, g: &PieceGeometry) {
    let block = match m {
        Message::Request(r) | Message::Cancel(r) | Message::RejectRequest(r) => {
            Some((r.index, r.begin, r.length))
        }
        Message::Piece { index, begin, data } => Some((*index, *begin, data.len() as u32)),
        Message::Have { index }
        | Message::SuggestPiece { index }
        | Message::AllowedFast { index } => {
            assert!(*index < g.piece_count(), "index {index} out of range");
            None
        }
        Message::Bitfield(bits) => {
            assert_eq!(bits.len(), g.bitfield_len(), "bitfield size");
            None
        }
        Message::Hashes { hashes, .. } => {
            assert!(
                hashes.len() % 32 == 0 && hashes.len() <= 32 * MAX_HASHES as usize,
                "hashes of {} bytes",
                hashes.len()
            );
            None
        }
        _ => None,
    };
    if let Some((index, begin, len)) = block {
        let piece_len = g.piece_len(index).expect("index checked by the decoder");
        assert!(len > 0 && u64::from(begin) + u64::from(len) <= u64::from(piece_len));
    }
}
