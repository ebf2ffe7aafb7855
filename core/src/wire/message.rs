//! Peer messages (BEP 3, BEP 6 fast, BEP 10 extended, BEP 52 hash messages) and their
//! encoders.
//!
//! Frame: a 4-byte big-endian length, then (unless the length is 0, a keep-alive) a one-byte
//! id and the payload. Decoding, which needs the torrent's limits, is in [`super::Decoder`].

use bytes::{BufMut, Bytes, BytesMut};

/// The largest block we request or serve, and the default limit on blocks we accept:
/// 16 KiB, which every client uses.
pub const MAX_BLOCK_LEN: u32 = 16 * 1024;

/// Size of a `piece` message's header: length (4) + id (1) + index (4) + begin (4).
pub const PIECE_HEADER_LEN: usize = 13;

/// The extension id of the BEP 10 extension handshake inside an `extended` message.
pub const EXTENDED_HANDSHAKE_ID: u8 = 0;

/// Message ids (BEP 3, BEP 5 `port`, BEP 6, BEP 10).
pub(super) mod id {
    pub(in crate::wire) const CHOKE: u8 = 0;
    pub(in crate::wire) const UNCHOKE: u8 = 1;
    pub(in crate::wire) const INTERESTED: u8 = 2;
    pub(in crate::wire) const NOT_INTERESTED: u8 = 3;
    pub(in crate::wire) const HAVE: u8 = 4;
    pub(in crate::wire) const BITFIELD: u8 = 5;
    pub(in crate::wire) const REQUEST: u8 = 6;
    pub(in crate::wire) const PIECE: u8 = 7;
    pub(in crate::wire) const CANCEL: u8 = 8;
    pub(in crate::wire) const PORT: u8 = 9;
    pub(in crate::wire) const SUGGEST_PIECE: u8 = 0x0d;
    pub(in crate::wire) const HAVE_ALL: u8 = 0x0e;
    pub(in crate::wire) const HAVE_NONE: u8 = 0x0f;
    pub(in crate::wire) const REJECT_REQUEST: u8 = 0x10;
    pub(in crate::wire) const ALLOWED_FAST: u8 = 0x11;
    pub(in crate::wire) const EXTENDED: u8 = 20;
    pub(in crate::wire) const HASH_REQUEST: u8 = 21;
    pub(in crate::wire) const HASHES: u8 = 22;
    pub(in crate::wire) const HASH_REJECT: u8 = 23;
}

/// Size of a `hash request` or `hash reject` payload: pieces root (32) + base layer,
/// index, length and proof layers (4 each).
pub const HASH_REQUEST_LEN: usize = 48;

/// The most hashes a `hashes` message may carry: 512 from the base layer (BEP 52: a
/// request SHOULD NOT ask for more, and we never do) plus one uncle per proof layer of a
/// tree at most 64 layers deep. Bounds the frame the decoder accepts.
pub const MAX_HASHES: u32 = 512 + 64;

/// A range of one file's merkle tree (BEP 52): what `hash request`, `hashes` and
/// `hash reject` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HashRequest {
    /// The file's `pieces root`.
    pub pieces_root: [u8; 32],
    /// The layer the hashes are from, counted from the leaves (0: 16 KiB blocks; the
    /// piece layer is log2(piece length / 16 KiB)).
    pub base_layer: u32,
    /// The first hash's index in that layer (a multiple of `length`).
    pub index: u32,
    /// How many hashes of the base layer (a power of two of at least 2, unless cut by
    /// the end of the layer).
    pub length: u32,
    /// How many layers above the base layer to give one uncle hash from.
    pub proof_layers: u32,
}

/// A block of a piece: what `request`, `cancel` and `reject request` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockRequest {
    /// The piece index.
    pub index: u32,
    /// Offset of the block's first byte in the piece.
    pub begin: u32,
    /// The block's length in bytes.
    pub length: u32,
}

/// One peer wire message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// An empty frame that only keeps the connection alive.
    KeepAlive,
    /// The sender will not serve our requests.
    Choke,
    /// The sender will serve our requests.
    Unchoke,
    /// The sender wants data from us.
    Interested,
    /// The sender wants nothing from us.
    NotInterested,
    /// The sender now has piece `index`.
    Have {
        /// The piece index.
        index: u32,
    },
    /// The pieces the sender has, one bit per piece, high bit of byte 0 first. Validated by
    /// the decoder (size and spare bits) when the torrent's geometry is known.
    Bitfield(Bytes),
    /// Please send this block.
    Request(BlockRequest),
    /// A block of data. `data` shares the receive buffer's memory.
    Piece {
        /// The piece index.
        index: u32,
        /// Offset of `data` in the piece.
        begin: u32,
        /// The block's bytes.
        data: Bytes,
    },
    /// Never mind an earlier request.
    Cancel(BlockRequest),
    /// BEP 5: the sender's DHT node listens on this UDP port.
    Port(u16),
    /// BEP 6: the sender will send this piece's blocks if asked, maybe soon.
    SuggestPiece {
        /// The piece index.
        index: u32,
    },
    /// BEP 6: the sender has every piece (instead of a bitfield).
    HaveAll,
    /// BEP 6: the sender has no piece (instead of a bitfield).
    HaveNone,
    /// BEP 6: the sender will not serve this request.
    RejectRequest(BlockRequest),
    /// BEP 6: the sender will serve requests for this piece even while choking us.
    AllowedFast {
        /// The piece index.
        index: u32,
    },
    /// BEP 10: an extension message. `id` 0 is the extension handshake (see
    /// [`super::ExtensionHandshake`]); other ids are those the receiver assigned in its own
    /// handshake's `m` dictionary.
    Extended {
        /// The extension message id.
        id: u8,
        /// The payload after the extension id.
        payload: Bytes,
    },
    /// BEP 52: please send these hashes of a file's merkle tree.
    HashRequest(HashRequest),
    /// BEP 52: the hashes a `hash request` asked for: the base layer's, then the uncle
    /// hashes up the tree. `hashes` is a whole number of 32-byte hashes and shares the
    /// receive buffer's memory.
    Hashes {
        /// What the hashes answer.
        request: HashRequest,
        /// The hashes, concatenated.
        hashes: Bytes,
    },
    /// BEP 52: the sender will not serve this `hash request`.
    HashReject(HashRequest),
}

impl Message {
    /// The message's name as the BEPs spell it, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Message::KeepAlive => "keep-alive",
            Message::Choke => "choke",
            Message::Unchoke => "unchoke",
            Message::Interested => "interested",
            Message::NotInterested => "not interested",
            Message::Have { .. } => "have",
            Message::Bitfield(_) => "bitfield",
            Message::Request(_) => "request",
            Message::Piece { .. } => "piece",
            Message::Cancel(_) => "cancel",
            Message::Port(_) => "port",
            Message::SuggestPiece { .. } => "suggest piece",
            Message::HaveAll => "have all",
            Message::HaveNone => "have none",
            Message::RejectRequest(_) => "reject request",
            Message::AllowedFast { .. } => "allowed fast",
            Message::Extended { .. } => "extended",
            Message::HashRequest(_) => "hash request",
            Message::Hashes { .. } => "hashes",
            Message::HashReject(_) => "hash reject",
        }
    }

    /// The message id byte; `None` for a keep-alive, which has none.
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => id::CHOKE,
            Message::Unchoke => id::UNCHOKE,
            Message::Interested => id::INTERESTED,
            Message::NotInterested => id::NOT_INTERESTED,
            Message::Have { .. } => id::HAVE,
            Message::Bitfield(_) => id::BITFIELD,
            Message::Request(_) => id::REQUEST,
            Message::Piece { .. } => id::PIECE,
            Message::Cancel(_) => id::CANCEL,
            Message::Port(_) => id::PORT,
            Message::SuggestPiece { .. } => id::SUGGEST_PIECE,
            Message::HaveAll => id::HAVE_ALL,
            Message::HaveNone => id::HAVE_NONE,
            Message::RejectRequest(_) => id::REJECT_REQUEST,
            Message::AllowedFast { .. } => id::ALLOWED_FAST,
            Message::Extended { .. } => id::EXTENDED,
            Message::HashRequest(_) => id::HASH_REQUEST,
            Message::Hashes { .. } => id::HASHES,
            Message::HashReject(_) => id::HASH_REJECT,
        })
    }

    /// The frame's size on the wire, length prefix included.
    pub fn encoded_len(&self) -> usize {
        4 + match self {
            Message::KeepAlive => 0,
            Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 1,
            Message::Port(_) => 3,
            Message::Have { .. } | Message::SuggestPiece { .. } | Message::AllowedFast { .. } => 5,
            Message::Request(_) | Message::Cancel(_) | Message::RejectRequest(_) => 13,
            Message::Bitfield(bits) => 1 + bits.len(),
            Message::Piece { data, .. } => 9 + data.len(),
            Message::Extended { payload, .. } => 2 + payload.len(),
            Message::HashRequest(_) | Message::HashReject(_) => 1 + HASH_REQUEST_LEN,
            Message::Hashes { hashes, .. } => 1 + HASH_REQUEST_LEN + hashes.len(),
        }
    }

    /// Appends the whole frame to `out`.
    ///
    /// For a `piece` this copies the block; the upload path should instead send
    /// [`encode_piece_header`] followed by the block's `Bytes` (a vectored write).
    ///
    /// # Panics
    /// If a payload is 4 GiB or more, which no frame can carry (a bug in the caller: every
    /// payload we build is far smaller).
    pub fn encode(&self, out: &mut BytesMut) {
        let total = self.encoded_len();
        out.reserve(total);
        let len = u32::try_from(total - 4).expect("peer message payload must be under 4 GiB");
        out.put_u32(len);
        if let Some(id) = self.id() {
            out.put_u8(id);
        }
        match self {
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => {}
            Message::Have { index }
            | Message::SuggestPiece { index }
            | Message::AllowedFast { index } => out.put_u32(*index),
            Message::Bitfield(bits) => out.put_slice(bits),
            Message::Request(block) | Message::Cancel(block) | Message::RejectRequest(block) => {
                out.put_u32(block.index);
                out.put_u32(block.begin);
                out.put_u32(block.length);
            }
            Message::Piece { index, begin, data } => {
                out.put_u32(*index);
                out.put_u32(*begin);
                out.put_slice(data);
            }
            Message::Port(port) => out.put_u16(*port),
            Message::Extended { id, payload } => {
                out.put_u8(*id);
                out.put_slice(payload);
            }
            Message::HashRequest(request) | Message::HashReject(request) => {
                request.encode(out);
            }
            Message::Hashes { request, hashes } => {
                request.encode(out);
                out.put_slice(hashes);
            }
        }
    }
}

impl HashRequest {
    /// Appends the 48-byte payload of a `hash request` (or `hash reject`).
    fn encode(&self, out: &mut BytesMut) {
        out.put_slice(&self.pieces_root);
        out.put_u32(self.base_layer);
        out.put_u32(self.index);
        out.put_u32(self.length);
        out.put_u32(self.proof_layers);
    }

    /// Reads a 48-byte `hash request` payload; `None` if `payload` is shorter.
    pub(super) fn decode(payload: &[u8]) -> Option<HashRequest> {
        let word = |at: usize| -> Option<u32> {
            let b = payload.get(at..at + 4)?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        Some(HashRequest {
            pieces_root: payload.get(..32)?.try_into().ok()?,
            base_layer: word(32)?,
            index: word(36)?,
            length: word(40)?,
            proof_layers: word(44)?,
        })
    }
}

/// Appends only the 13-byte header of a `piece` message carrying `len` bytes of piece
/// `index` from offset `begin`; the driver sends the block's `Bytes` right after it.
pub fn encode_piece_header(index: u32, begin: u32, len: u32, out: &mut BytesMut) {
    out.reserve(PIECE_HEADER_LEN);
    // The length prefix counts the id, index and begin (9 bytes) plus the data. A block
    // near 4 GiB cannot exist (blocks are at most a piece, and pieces are u32-sized), so
    // saturating only guards against nonsense input without panicking.
    out.put_u32(len.saturating_add(9));
    out.put_u8(id::PIECE);
    out.put_u32(index);
    out.put_u32(begin);
}

/// Reads a `piece` message's 13-byte header (what [`encode_piece_header`] writes): the
/// piece index, the offset and the payload's length, so a driver can read the payload
/// into a buffer of its own and hand it to
/// [`Session::handle_block`](crate::session::Session::handle_block). `None` if `header`
/// is not 13 bytes of a `piece` header. Nothing is validated beyond that: the session
/// checks the block as it checks a framed one.
pub fn decode_piece_header(header: &[u8]) -> Option<(u32, u32, u32)> {
    let header: &[u8; PIECE_HEADER_LEN] = header.try_into().ok()?;
    let be = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let len = be(0).checked_sub(9)?;
    (header[4] == id::PIECE).then_some((be(5), be(9), len))
}
