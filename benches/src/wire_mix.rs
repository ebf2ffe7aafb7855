//! The peer messages one connection delivers during a download, for the `wire` bench.
//!
//! The proportions follow a download from a peer that is itself downloading (tit-for-tat:
//! both directions carry data). Per 256 KiB piece we receive:
//!
//! - 16 `piece` messages (16 KiB blocks: the data);
//! - 16 `request`s (the peer downloads from us at about the rate we download from it);
//! - 2 `have`s (the peer completes pieces from the whole swarm, faster than from us alone);
//! - one `cancel` every 4 pieces (~1.5 % of requests: endgame duplicates, requests withdrawn
//!   after a choke or a time-out);
//! - every 64 pieces (16 MiB) one keep-alive and one BEP 11 PEX `extended` message.
//!
//! and once, at the start: the BEP 10 extension handshake, a bitfield, `unchoke`,
//! `interested`. By count about 46 % of the messages are `piece`s and 46 % `request`s; by
//! bytes the `piece`s are 99.9 % of the stream, as on a real connection.

use bytes::Bytes;
use unchoke_core::wire::{BlockRequest, ExtensionHandshake, Message, PieceGeometry};

/// Piece length of the torrent the messages belong to (256 KiB: 16 blocks).
pub const PIECE_LENGTH: u32 = 256 * 1024;
/// Pieces in that torrent (1 GiB): a 512-byte bitfield.
pub const TORRENT_PIECES: u32 = 4096;
/// Block size of every `piece` and `request`.
pub const BLOCK: u32 = 16 * 1024;

/// The torrent's geometry, for a [`unchoke_core::wire::Decoder`] that checks indices.
pub fn geometry() -> Option<PieceGeometry> {
    PieceGeometry::new(
        u64::from(TORRENT_PIECES) * u64::from(PIECE_LENGTH),
        PIECE_LENGTH,
    )
}

/// The messages of a connection that delivers `pieces` whole pieces (see the module docs for
/// the mix), in the order they arrive. Deterministic for a given `seed`.
pub fn download_mix(pieces: u32, seed: u64) -> Vec<Message> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let blocks_per_piece = PIECE_LENGTH / BLOCK;
    let mut out = Vec::new();

    let mut handshake = ExtensionHandshake::default();
    handshake.m.insert("ut_metadata".into(), 1);
    handshake.m.insert("ut_pex".into(), 2);
    handshake.v = Some("unchoke-benches 0.1".into());
    handshake.p = Some(6881);
    handshake.reqq = Some(500);
    handshake.metadata_size = Some(82_000);
    out.push(handshake.to_message());
    let mut bits = vec![0u8; TORRENT_PIECES.div_ceil(8) as usize];
    rng.fill(&mut bits);
    out.push(Message::Bitfield(Bytes::from(bits)));
    out.push(Message::Unchoke);
    out.push(Message::Interested);

    let random_block = |rng: &mut fastrand::Rng| BlockRequest {
        index: rng.u32(..TORRENT_PIECES),
        begin: rng.u32(..blocks_per_piece) * BLOCK,
        length: BLOCK,
    };
    for n in 0..pieces {
        let index = rng.u32(..TORRENT_PIECES);
        for b in 0..blocks_per_piece {
            let mut data = vec![0u8; BLOCK as usize];
            rng.fill(&mut data);
            out.push(Message::Piece {
                index,
                begin: b * BLOCK,
                data: Bytes::from(data),
            });
            out.push(Message::Request(random_block(&mut rng)));
            // The two `have`s fall in the middle and at the end of the piece.
            if b == blocks_per_piece / 2 || b + 1 == blocks_per_piece {
                out.push(Message::Have {
                    index: rng.u32(..TORRENT_PIECES),
                });
            }
        }
        if n % 4 == 3 {
            out.push(Message::Cancel(random_block(&mut rng)));
        }
        if n % 64 == 63 {
            out.push(Message::KeepAlive);
            out.push(pex_message(&mut rng));
        }
    }
    out
}

/// A BEP 11 `ut_pex` message adding two IPv4 peers and dropping none.
fn pex_message(rng: &mut fastrand::Rng) -> Message {
    let mut payload = b"d5:added12:".to_vec();
    for _ in 0..12 {
        payload.push(rng.u8(..));
    }
    payload.extend_from_slice(b"7:added.f2:");
    payload.extend_from_slice(&[0x10, 0x00]);
    payload.extend_from_slice(b"7:dropped0:e");
    Message::Extended {
        id: 2,
        payload: Bytes::from(payload),
    }
}

/// The frames of `messages` back to back, as they arrive on the socket.
pub fn encode_stream(messages: &[Message]) -> Vec<u8> {
    let mut out = bytes::BytesMut::with_capacity(wire_len(messages));
    for m in messages {
        m.encode(&mut out);
    }
    out.to_vec()
}

/// Bytes `messages` take on the wire (length prefixes included).
pub fn wire_len(messages: &[Message]) -> usize {
    messages.iter().map(Message::encoded_len).sum()
}

/// Every message of `messages` but the `piece`s: the control traffic of the mix.
pub fn control_messages(messages: &[Message]) -> Vec<Message> {
    messages
        .iter()
        .filter(|m| !matches!(m, Message::Piece { .. }))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use unchoke_core::wire::{Decoder, Limits};

    fn count(messages: &[Message], name: &str) -> usize {
        messages.iter().filter(|m| m.name() == name).count()
    }

    #[test]
    fn mix_has_the_documented_proportions() {
        let mix = download_mix(64, 7);
        assert_eq!(count(&mix, "piece"), 64 * 16);
        assert_eq!(count(&mix, "request"), 64 * 16);
        assert_eq!(count(&mix, "have"), 64 * 2);
        assert_eq!(count(&mix, "cancel"), 16);
        assert_eq!(count(&mix, "keep-alive"), 1);
        assert_eq!(count(&mix, "extended"), 2);
        assert_eq!(count(&mix, "bitfield"), 1);
        let piece_bytes: usize = mix
            .iter()
            .filter(|m| m.name() == "piece")
            .map(Message::encoded_len)
            .sum();
        let share = piece_bytes as f64 / wire_len(&mix) as f64;
        assert!(share > 0.998 && share < 0.999, "piece share {share}");
    }

    #[test]
    fn stream_decodes_back_to_the_same_messages() {
        let mix = download_mix(8, 1);
        let stream = encode_stream(&mix);
        assert_eq!(stream.len(), wire_len(&mix));
        let decoder = Decoder::new(geometry(), Limits::default());
        let mut buf = BytesMut::from(&stream[..]);
        let mut decoded = Vec::new();
        while let Some(m) = decoder.decode(&mut buf).unwrap() {
            decoded.push(m);
        }
        assert!(buf.is_empty());
        assert_eq!(decoded, mix);
        assert_eq!(
            control_messages(&mix).len(),
            mix.len() - count(&mix, "piece")
        );
    }
}
