//! The incremental message decoder: frames, bounds-checks and validates peer messages.
//!
//! The decoder keeps no state between calls besides its configuration: every call re-reads
//! the (at most 5-byte) frame header at the start of the buffer. That makes the result
//! independent of how the stream was split into reads, which the tests check at every split
//! point.

use bytes::{Buf, BytesMut};

use super::message::{HASH_REQUEST_LEN, HashRequest, MAX_BLOCK_LEN, MAX_HASHES, id};
use super::{BlockRequest, Message, WireError};

/// The shape of a torrent's pieces, which requests, `have`s and bitfields are checked
/// against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PieceGeometry {
    total_length: u64,
    piece_length: u32,
    piece_count: u32,
}

impl PieceGeometry {
    /// The geometry of a torrent of `total_length` bytes cut into pieces of `piece_length`
    /// bytes (the last one shorter when the division is not exact).
    ///
    /// `None` when `piece_length` is 0 or the torrent would have more than `u32::MAX`
    /// pieces, which the wire cannot address.
    pub fn new(total_length: u64, piece_length: u32) -> Option<Self> {
        if piece_length == 0 {
            return None;
        }
        let piece_count = u32::try_from(total_length.div_ceil(u64::from(piece_length))).ok()?;
        Some(PieceGeometry {
            total_length,
            piece_length,
            piece_count,
        })
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }

    /// The nominal piece length (every piece's but perhaps the last).
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// The torrent's size in bytes.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// Length of piece `index`; `None` past the last piece.
    pub fn piece_len(&self, index: u32) -> Option<u32> {
        if index >= self.piece_count {
            return None;
        }
        let start = u64::from(index) * u64::from(self.piece_length);
        let len = (self.total_length - start).min(u64::from(self.piece_length));
        // `len` is at most `piece_length`, a u32.
        u32::try_from(len).ok()
    }

    /// Size in bytes of a bitfield for this torrent: `ceil(piece_count / 8)`.
    pub fn bitfield_len(&self) -> usize {
        self.piece_count.div_ceil(8) as usize
    }
}

/// Size limits on what a peer may send, beyond what the torrent's geometry implies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest block in a `request`, `cancel`, `reject request` or `piece` (default
    /// [`MAX_BLOCK_LEN`], 16 KiB, the size every client requests).
    pub max_block_len: u32,
    /// Largest payload of an `extended` message after its extension id (default 1 MiB: BEP 9
    /// metadata pieces are 16 KiB plus a small header; PEX and handshakes are far smaller).
    pub max_extended_len: u32,
    /// Largest bitfield while the torrent's geometry is unknown (a magnet link before the
    /// metadata arrives). Default 256 KiB, enough for 2 Mi pieces.
    pub max_bitfield_len: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_block_len: MAX_BLOCK_LEN,
            max_extended_len: 1024 * 1024,
            max_bitfield_len: 256 * 1024,
        }
    }
}

/// The length prefix (id + payload) of a `hashes` message with [`MAX_HASHES`] hashes.
fn max_hashes_len() -> u32 {
    1 + HASH_REQUEST_LEN as u32 + 32 * MAX_HASHES
}

/// Checks a bitfield for a torrent of `piece_count` pieces: exactly `ceil(piece_count / 8)`
/// bytes, and the spare bits after the last piece clear (BEP 3 says a peer sending them
/// should be dropped).
///
/// The decoder calls this when it knows the geometry; a session that received a bitfield
/// before it had the metadata calls it once the metadata arrives.
pub fn validate_bitfield(bits: &[u8], piece_count: u32) -> Result<(), WireError> {
    let expected = piece_count.div_ceil(8) as usize;
    if bits.len() != expected {
        return Err(WireError::BitfieldLength {
            len: bits.len(),
            piece_count,
            expected,
        });
    }
    let spare = expected as u64 * 8 - u64::from(piece_count);
    if let Some(&last) = bits.last() {
        // The low `spare` bits of the last byte belong to no piece.
        let mask = ((1u16 << spare) - 1) as u8;
        if last & mask != 0 {
            return Err(WireError::BitfieldSpareBits { piece_count });
        }
    }
    Ok(())
}

/// Frames and validates peer messages from a connection's receive buffer.
///
/// Checks made before anything is buffered for a message: the length prefix against
/// [`max_message_len`](Self::max_message_len), then against the id's own size (exact for
/// fixed-size messages, a bitfield's exact size when the geometry is known, bounded by
/// [`Limits`] otherwise). Checks made once the message is complete: piece indices against
/// the piece count, blocks within `1..=max_block_len` bytes and inside their piece, and
/// bitfield spare bits. Without a geometry (before a magnet link's metadata arrives) only the
/// size limits apply.
#[derive(Clone, Debug)]
pub struct Decoder {
    geometry: Option<PieceGeometry>,
    limits: Limits,
}

impl Decoder {
    /// A decoder for a torrent of known (`Some`) or not yet known (`None`) geometry.
    pub fn new(geometry: Option<PieceGeometry>, limits: Limits) -> Self {
        Decoder { geometry, limits }
    }

    /// Sets the geometry once it is known (when a magnet link's metadata has arrived).
    pub fn set_geometry(&mut self, geometry: PieceGeometry) {
        self.geometry = Some(geometry);
    }

    /// The geometry messages are checked against, if known.
    pub fn geometry(&self) -> Option<&PieceGeometry> {
        self.geometry.as_ref()
    }

    /// The size limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The largest length prefix (id + payload) accepted for any message: the largest of a
    /// `piece` with a full block (9 + `max_block_len`), an `extended` message
    /// (2 + `max_extended_len`), a bitfield (1 + its exact size, or 1 + `max_bitfield_len`
    /// without a geometry), a `hashes` message of [`MAX_HASHES`] hashes and the fixed-size
    /// messages (49 at most).
    pub fn max_message_len(&self) -> u32 {
        [
            13,
            max_hashes_len(),
            self.limits.max_block_len.saturating_add(9),
            self.limits.max_extended_len.saturating_add(2),
            self.max_bitfield_len().saturating_add(1),
        ]
        .into_iter()
        .max()
        .unwrap_or(13)
    }

    /// Decodes one message from the start of `buf`.
    ///
    /// Returns `Ok(Some(message))` after consuming exactly its frame, or `Ok(None)` when the
    /// message is not complete yet: nothing is consumed, and once its length is validated
    /// `buf` has capacity reserved for the rest of it. Any `Err` means the peer must be
    /// dropped; `buf` is then left as it was.
    ///
    /// `piece`, `bitfield` and `extended` payloads are split out of `buf` without copying.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Message>, WireError> {
        let Some(header) = buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if len == 0 {
            buf.advance(4);
            return Ok(Some(Message::KeepAlive));
        }
        let max = self.max_message_len();
        if len > max {
            return Err(WireError::LengthTooLarge { len, max });
        }
        let Some(&id) = buf.get(4) else {
            return Ok(None);
        };
        self.check_length(id, len)?;
        let frame = 4 + len as usize;
        if buf.len() < frame {
            buf.reserve(frame - buf.len());
            return Ok(None);
        }
        let payload_len = len as usize - 1;
        let message = match id {
            id::BITFIELD => {
                if let Some(g) = &self.geometry {
                    validate_bitfield(&buf[5..frame], g.piece_count)?;
                }
                buf.advance(5);
                Message::Bitfield(buf.split_to(payload_len).freeze())
            }
            id::PIECE => {
                let index = be_u32(buf, 5);
                let begin = be_u32(buf, 9);
                let data_len = payload_len - 8;
                // `data_len` fits a u32: it is below the checked `len`.
                let block = BlockRequest {
                    index,
                    begin,
                    length: data_len as u32,
                };
                self.check_block("piece", block)?;
                buf.advance(13);
                Message::Piece {
                    index,
                    begin,
                    data: buf.split_to(data_len).freeze(),
                }
            }
            id::EXTENDED => {
                let ext = buf[5];
                buf.advance(6);
                Message::Extended {
                    id: ext,
                    payload: buf.split_to(payload_len - 1).freeze(),
                }
            }
            id::HASHES => {
                let request = HashRequest::decode(&buf[5..frame])
                    .ok_or(WireError::UnknownMessage(id::HASHES))?;
                buf.advance(5 + HASH_REQUEST_LEN);
                Message::Hashes {
                    request,
                    hashes: buf.split_to(payload_len - HASH_REQUEST_LEN).freeze(),
                }
            }
            _ => {
                let message = self.fixed_size(id, &buf[5..frame])?;
                buf.advance(frame);
                message
            }
        };
        Ok(Some(message))
    }

    /// The bitfield size bound: exact with a geometry, the configured limit without.
    fn max_bitfield_len(&self) -> u32 {
        match &self.geometry {
            // At most ceil(u32::MAX / 8), which fits a u32.
            Some(g) => g.bitfield_len() as u32,
            None => self.limits.max_bitfield_len,
        }
    }

    /// Checks a length prefix (id + payload) against message `id`'s size rules.
    fn check_length(&self, id: u8, len: u32) -> Result<(), WireError> {
        let exact = |message: &'static str, expected: u32| {
            if len == expected {
                Ok(())
            } else {
                Err(WireError::WrongLength {
                    message,
                    len,
                    expected,
                })
            }
        };
        let between = |message: &'static str, min: u32, max: u32| {
            if len < min {
                Err(WireError::TooShort { message, len, min })
            } else if len > max {
                Err(WireError::TooLong { message, len, max })
            } else {
                Ok(())
            }
        };
        match id {
            id::CHOKE => exact("choke", 1),
            id::UNCHOKE => exact("unchoke", 1),
            id::INTERESTED => exact("interested", 1),
            id::NOT_INTERESTED => exact("not interested", 1),
            id::HAVE_ALL => exact("have all", 1),
            id::HAVE_NONE => exact("have none", 1),
            id::HAVE => exact("have", 5),
            id::SUGGEST_PIECE => exact("suggest piece", 5),
            id::ALLOWED_FAST => exact("allowed fast", 5),
            id::REQUEST => exact("request", 13),
            id::CANCEL => exact("cancel", 13),
            id::REJECT_REQUEST => exact("reject request", 13),
            id::PORT => exact("port", 3),
            id::BITFIELD => match &self.geometry {
                Some(g) if len - 1 != g.bitfield_len() as u32 => Err(WireError::BitfieldLength {
                    len: len as usize - 1,
                    piece_count: g.piece_count,
                    expected: g.bitfield_len(),
                }),
                Some(_) => Ok(()),
                // Every torrent has a piece, so an empty bitfield can only be right for a
                // known 0-piece geometry.
                None => between("bitfield", 2, self.max_bitfield_len().saturating_add(1)),
            },
            // A piece with no data passes here and fails in `check_block`, which can name
            // the block.
            id::PIECE => between("piece", 9, self.limits.max_block_len.saturating_add(9)),
            id::EXTENDED => between(
                "extended",
                2,
                self.limits.max_extended_len.saturating_add(2),
            ),
            id::HASH_REQUEST => exact("hash request", 1 + HASH_REQUEST_LEN as u32),
            id::HASH_REJECT => exact("hash reject", 1 + HASH_REQUEST_LEN as u32),
            id::HASHES => {
                between("hashes", 1 + HASH_REQUEST_LEN as u32, max_hashes_len())?;
                // Whole hashes only.
                let hashes_len = len - 1 - HASH_REQUEST_LEN as u32;
                if hashes_len % 32 == 0 {
                    Ok(())
                } else {
                    Err(WireError::WrongLength {
                        message: "hashes",
                        len,
                        expected: len - hashes_len % 32,
                    })
                }
            }
            other => Err(WireError::UnknownMessage(other)),
        }
    }

    /// Parses a complete fixed-size message (`payload` has the size `check_length`
    /// enforced for `id`).
    fn fixed_size(&self, id: u8, payload: &[u8]) -> Result<Message, WireError> {
        let block = || BlockRequest {
            index: be_u32(payload, 0),
            begin: be_u32(payload, 4),
            length: be_u32(payload, 8),
        };
        Ok(match id {
            id::CHOKE => Message::Choke,
            id::UNCHOKE => Message::Unchoke,
            id::INTERESTED => Message::Interested,
            id::NOT_INTERESTED => Message::NotInterested,
            id::HAVE_ALL => Message::HaveAll,
            id::HAVE_NONE => Message::HaveNone,
            id::HAVE => Message::Have {
                index: self.check_index("have", be_u32(payload, 0))?,
            },
            id::SUGGEST_PIECE => Message::SuggestPiece {
                index: self.check_index("suggest piece", be_u32(payload, 0))?,
            },
            id::ALLOWED_FAST => Message::AllowedFast {
                index: self.check_index("allowed fast", be_u32(payload, 0))?,
            },
            id::REQUEST => Message::Request(self.check_block("request", block())?),
            id::CANCEL => Message::Cancel(self.check_block("cancel", block())?),
            id::REJECT_REQUEST => {
                Message::RejectRequest(self.check_block("reject request", block())?)
            }
            id::PORT => Message::Port(u16::from_be_bytes([payload[0], payload[1]])),
            id::HASH_REQUEST | id::HASH_REJECT => {
                let request = HashRequest::decode(payload).ok_or(WireError::UnknownMessage(id))?;
                if id == id::HASH_REQUEST {
                    Message::HashRequest(request)
                } else {
                    Message::HashReject(request)
                }
            }
            // `check_length` refused every other id already.
            other => return Err(WireError::UnknownMessage(other)),
        })
    }

    /// `index` if it names a piece of the torrent (or the geometry is unknown).
    fn check_index(&self, message: &'static str, index: u32) -> Result<u32, WireError> {
        match &self.geometry {
            Some(g) if index >= g.piece_count => Err(WireError::PieceIndex {
                message,
                index,
                piece_count: g.piece_count,
            }),
            _ => Ok(index),
        }
    }

    /// `block` if its piece exists, its length is within `1..=max_block_len` and it ends
    /// inside its piece.
    /// Validates a `piece` message whose payload of `len` bytes arrived outside the
    /// receive buffer ([`crate::session::Session::handle_block`]): the same checks
    /// [`Decoder::decode`] makes of a framed one (index, bounds, `1..=max_block_len`).
    pub fn check_piece(&self, index: u32, begin: u32, len: usize) -> Result<(), WireError> {
        let length = u32::try_from(len).unwrap_or(u32::MAX);
        self.check_block(
            "piece",
            BlockRequest {
                index,
                begin,
                length,
            },
        )
        .map(|_| ())
    }

    fn check_block(
        &self,
        message: &'static str,
        block: BlockRequest,
    ) -> Result<BlockRequest, WireError> {
        let BlockRequest {
            index,
            begin,
            length,
        } = block;
        self.check_index(message, index)?;
        if length == 0 || length > self.limits.max_block_len {
            return Err(WireError::BlockLength {
                message,
                index,
                begin,
                length,
                max: self.limits.max_block_len,
            });
        }
        if let Some(piece_len) = self.geometry.and_then(|g| g.piece_len(index)) {
            let end = u64::from(begin) + u64::from(length);
            if end > u64::from(piece_len) {
                return Err(WireError::BlockRange {
                    message,
                    index,
                    begin,
                    end,
                    piece_len,
                });
            }
        }
        Ok(block)
    }
}

/// The big-endian u32 at `at`; callers have checked `bytes` is long enough.
fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}
