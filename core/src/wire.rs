//! The BitTorrent peer wire protocol codec: handshake, framed messages and the BEP 10
//! extension handshake. Pure byte-in / byte-out code: no sockets, no clocks.
//!
//! A connection's life on the wire:
//! 1. Both sides send a [`Handshake`] (BEP 3): protocol name, 8 [`Reserved`] bytes whose bits
//!    announce extensions (BEP 10 extension protocol, BEP 6 fast, BEP 5 DHT), the torrent's
//!    info-hash and the sender's [`PeerId`]. [`Handshake::decode`] parses it incrementally.
//! 2. Then a stream of length-prefixed [`Message`]s. A [`Decoder`], configured with the
//!    torrent's [`PieceGeometry`] (when known) and [`Limits`], frames and validates them one at
//!    a time from the connection's receive `BytesMut`, giving the same messages for any way
//!    the stream is split into reads.
//! 3. Extended messages (id 20, BEP 10) carry an extension id and an opaque payload; id 0 is
//!    the [`ExtensionHandshake`] dictionary, which is typed here, as are the payloads of the
//!    two extensions we speak: [`MetadataMessage`] (BEP 9 `ut_metadata`) and [`PexMessage`]
//!    (BEP 11 `ut_pex`).
//!
//! Invariants worth keeping:
//! - Every length read from the wire is checked against [`Decoder::max_message_len`] and the
//!   message id's own bound *before* the decoder reserves buffer space for it, so a hostile
//!   length prefix costs nothing but an error.
//! - Block data (`piece`) and other large payloads are split out of the receive buffer as
//!   [`bytes::Bytes`] without copying; uploads are sent as a 13-byte header from
//!   [`encode_piece_header`] followed by the block's `Bytes`.
//! - Any decoding failure is a [`WireError`]; the session answers every one of them by
//!   dropping the peer (a peer that sends an unknown message id, a malformed message or an
//!   out-of-range request is either broken or hostile, and the stream cannot be resynchronised
//!   reliably after a framing error anyway).
//! - Negotiation is the session's job: the decoder accepts BEP 6 and BEP 10 messages whether
//!   or not the handshakes announced them; the session compares them with both sides'
//!   [`Reserved`] bits.

mod decoder;
mod error;
mod extension;
mod handshake;
mod message;
mod peer_id;
#[cfg(test)]
mod tests;
mod ut_metadata;
mod ut_pex;

pub use decoder::{Decoder, Limits, PieceGeometry, validate_bitfield};
pub use error::WireError;
pub use extension::ExtensionHandshake;
pub use handshake::{HANDSHAKE_LEN, Handshake, PROTOCOL, Reserved};
pub use message::{
    BlockRequest, EXTENDED_HANDSHAKE_ID, HASH_REQUEST_LEN, HashRequest, MAX_BLOCK_LEN, MAX_HASHES,
    Message, PIECE_HEADER_LEN, decode_piece_header, encode_piece_header,
};
pub use peer_id::PeerId;
pub use ut_metadata::{
    METADATA_PIECE_LEN, MetadataMessage, MetadataMessageError, UT_METADATA, metadata_piece_count,
    metadata_piece_len,
};
pub use ut_pex::{MAX_PEX_PEERS, PexMessage, PexMessageError, UT_PEX, is_dialable, pex_flags};

/// How many more bytes finish the length-prefixed message that `partial` begins with, or
/// `None` when `partial` is shorter than the 4-byte prefix or already holds the whole
/// message.
///
/// For drivers that receive into chunks of separate allocations: when a session leaves a
/// partial message at the end of one chunk, copying just these bytes of the next chunk
/// onto it completes the message, and the rest of the next chunk can be handed over in
/// place instead of being copied behind the partial one. It is only a guess about framing
/// (during the handshake the first bytes are not a length), so a driver must still cope
/// with a message left unfinished; the decoder alone decides what the bytes are.
pub fn bytes_to_finish_message(partial: &[u8]) -> Option<usize> {
    let prefix: [u8; 4] = partial.get(..4)?.try_into().ok()?;
    let total = 4usize.saturating_add(u32::from_be_bytes(prefix) as usize);
    total.checked_sub(partial.len()).filter(|&n| n > 0)
}
