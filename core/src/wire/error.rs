//! Why bytes from a peer were refused.

use crate::bencode;

/// A handshake or message that breaks the protocol or our limits. Every variant means the
/// peer is broken or hostile: the session drops the connection.
///
/// `message` fields hold the message's name as the BEP spells it (`"request"`,
/// `"reject request"`, …).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The handshake's first byte (the protocol name's length) is not 19.
    #[error("handshake: protocol name length is {0}, expected 19 (\"BitTorrent protocol\")")]
    HandshakeProtocolLength(u8),
    /// The handshake's protocol name is not `BitTorrent protocol`.
    #[error(
        "handshake: protocol name is not \"BitTorrent protocol\": byte {offset} is 0x{found:02x}"
    )]
    HandshakeProtocolName {
        /// Offset of the first differing byte from the start of the handshake.
        offset: usize,
        /// The byte found there.
        found: u8,
    },
    /// A length prefix larger than any message we accept; detected before reading on.
    #[error("message length prefix {len} exceeds the limit of {max} bytes")]
    LengthTooLarge {
        /// The declared length (id + payload).
        len: u32,
        /// The decoder's [`max_message_len`](super::Decoder::max_message_len).
        max: u32,
    },
    /// A message id this codec does not know.
    #[error("unknown message id {0}")]
    UnknownMessage(u8),
    /// A fixed-size message whose length prefix is not that size.
    #[error("{message} message has length {len}, expected {expected}")]
    WrongLength {
        /// The message's name.
        message: &'static str,
        /// The declared length (id + payload).
        len: u32,
        /// The only valid length for this message.
        expected: u32,
    },
    /// A variable-size message shorter than its fixed header.
    #[error("{message} message has length {len}, shorter than the minimum {min}")]
    TooShort {
        /// The message's name.
        message: &'static str,
        /// The declared length (id + payload).
        len: u32,
        /// The smallest valid length.
        min: u32,
    },
    /// A variable-size message longer than its limit.
    #[error("{message} message has length {len}, more than the limit of {max}")]
    TooLong {
        /// The message's name.
        message: &'static str,
        /// The declared length (id + payload).
        len: u32,
        /// The largest accepted length.
        max: u32,
    },
    /// A bitfield whose size does not match the torrent's piece count.
    #[error("bitfield of {len} bytes but torrent has {piece_count} pieces ({expected} bytes)")]
    BitfieldLength {
        /// The bitfield's size in bytes.
        len: usize,
        /// The torrent's piece count.
        piece_count: u32,
        /// The size `piece_count` needs: `ceil(piece_count / 8)`.
        expected: usize,
    },
    /// A bitfield with bits set past the last piece.
    #[error("bitfield has spare bits set after the last piece (torrent has {piece_count} pieces)")]
    BitfieldSpareBits {
        /// The torrent's piece count.
        piece_count: u32,
    },
    /// A piece index past the torrent's last piece.
    #[error("{message} for piece {index} but torrent has {piece_count} pieces")]
    PieceIndex {
        /// The message's name.
        message: &'static str,
        /// The index received.
        index: u32,
        /// The torrent's piece count.
        piece_count: u32,
    },
    /// A block of zero bytes or more than the block limit.
    #[error(
        "{message} for piece {index} at offset {begin} has length {length}; blocks must be 1..={max} bytes"
    )]
    BlockLength {
        /// The message's name.
        message: &'static str,
        /// The piece index.
        index: u32,
        /// The offset in the piece.
        begin: u32,
        /// The block length received.
        length: u32,
        /// The largest accepted block ([`Limits::max_block_len`](super::Limits::max_block_len)).
        max: u32,
    },
    /// A block that runs past the end of its piece.
    #[error(
        "{message} for piece {index} bytes {begin}..{end} runs past the piece's end at {piece_len}"
    )]
    BlockRange {
        /// The message's name.
        message: &'static str,
        /// The piece index.
        index: u32,
        /// The offset in the piece.
        begin: u32,
        /// One past the block's last byte (`begin + length`).
        end: u64,
        /// The piece's length.
        piece_len: u32,
    },
    /// An extension handshake that is not valid bencode.
    #[error("extension handshake: {0}")]
    ExtensionHandshakeBencode(bencode::DecodeError),
    /// An extension handshake that is valid bencode but not a dictionary.
    #[error("extension handshake is a {0}, expected a dictionary")]
    ExtensionHandshakeNotDict(&'static str),
    /// A malformed BEP 9 `ut_metadata` message.
    #[error(transparent)]
    Metadata(#[from] super::MetadataMessageError),
}
