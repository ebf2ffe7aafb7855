//! BEP 9 `ut_metadata` messages: fetching a torrent's info dictionary from peers, for
//! torrents added from a magnet link.
//!
//! The info dictionary ("metadata") is cut into 16 KiB pieces, the last one shorter. Each
//! message is an extended message (BEP 10) whose payload is a bencoded dictionary with
//! `msg_type` (0 request, 1 data, 2 reject) and `piece`; a data message also carries
//! `total_size` (the whole metadata's size), and the piece's raw bytes follow the
//! dictionary, outside it.
//!
//! Decoding is lenient where BEP 10 asks (unknown keys ignored, an unknown `msg_type`
//! ignored rather than refused) and strict about lengths: a data message must carry exactly
//! the bytes its piece has (16 KiB, or the remainder for the last piece), so a peer can never
//! make us buffer more than the metadata's size.

use bytes::{Bytes, BytesMut};

use super::Message;
use crate::bencode::{self, DecodeOptions, Dict, Value};

/// The extension's name in the BEP 10 handshake's `m` dictionary.
pub const UT_METADATA: &str = "ut_metadata";

/// Size of every metadata piece but the last (BEP 9).
pub const METADATA_PIECE_LEN: u32 = 16 * 1024;

/// Nesting allowed in a `ut_metadata` dictionary: it is flat, one level is all a valid
/// message needs; a little more keeps unknown (ignored) keys lenient.
const MAX_DEPTH: usize = 4;

/// Number of metadata pieces in metadata of `total_size` bytes.
pub fn metadata_piece_count(total_size: u64) -> u64 {
    total_size.div_ceil(u64::from(METADATA_PIECE_LEN))
}

/// Length of metadata piece `piece` of metadata of `total_size` bytes; `None` past the end.
pub fn metadata_piece_len(total_size: u64, piece: u32) -> Option<u32> {
    let start = u64::from(piece) * u64::from(METADATA_PIECE_LEN);
    if start >= total_size {
        return None;
    }
    // At most METADATA_PIECE_LEN, which fits a u32.
    u32::try_from((total_size - start).min(u64::from(METADATA_PIECE_LEN))).ok()
}

/// One `ut_metadata` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataMessage {
    /// `msg_type` 0: please send metadata piece `piece`.
    Request {
        /// The metadata piece's index.
        piece: u32,
    },
    /// `msg_type` 1: metadata piece `piece` of metadata of `total_size` bytes.
    Data {
        /// The metadata piece's index.
        piece: u32,
        /// The whole metadata's size in bytes.
        total_size: u64,
        /// The piece's bytes (exactly [`metadata_piece_len`] of them; shares the receive
        /// buffer's memory).
        data: Bytes,
    },
    /// `msg_type` 2: the sender will not send metadata piece `piece`.
    Reject {
        /// The metadata piece's index.
        piece: u32,
    },
}

/// Why a `ut_metadata` payload was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataMessageError {
    /// The dictionary is not valid bencode.
    #[error("ut_metadata: {0}")]
    Bencode(bencode::DecodeError),
    /// The payload is valid bencode but not a dictionary.
    #[error("ut_metadata message is a {0}, expected a dictionary")]
    NotDict(&'static str),
    /// `msg_type` is missing or not an integer.
    #[error("ut_metadata message has no integer `msg_type`")]
    MissingType,
    /// `piece` is missing, negative or above `u32::MAX`.
    #[error("ut_metadata message has no valid `piece` (an integer in 0..2^32)")]
    BadPiece,
    /// A data message whose `total_size` is missing, not positive, or too small to hold
    /// `piece`.
    #[error("ut_metadata data for piece {piece} has no valid `total_size` (got {total_size:?})")]
    BadTotalSize {
        /// The piece index.
        piece: u32,
        /// The `total_size` value, if an integer was there.
        total_size: Option<i64>,
    },
    /// A data message whose bytes after the dictionary are not the piece's length.
    #[error("ut_metadata data for piece {piece} has {len} bytes, expected {expected}")]
    DataLength {
        /// The piece index.
        piece: u32,
        /// Bytes received after the dictionary.
        len: usize,
        /// The piece's length given `total_size`.
        expected: u32,
    },
}

impl MetadataMessage {
    /// The metadata piece the message is about.
    pub fn piece(&self) -> u32 {
        match self {
            MetadataMessage::Request { piece }
            | MetadataMessage::Data { piece, .. }
            | MetadataMessage::Reject { piece } => *piece,
        }
    }

    /// Parses the payload of an extended message that carries `ut_metadata`.
    ///
    /// `Ok(None)` for a well-formed message of a `msg_type` this codec does not know, which
    /// BEP 9 says to ignore. Bytes after the dictionary of a request or reject are ignored.
    pub fn decode(payload: &Bytes) -> Result<Option<Self>, MetadataMessageError> {
        let options = DecodeOptions {
            max_depth: MAX_DEPTH,
            strict: false,
        };
        let (value, used) =
            bencode::decode_prefix(payload, options).map_err(MetadataMessageError::Bencode)?;
        let Some(dict) = value.as_dict() else {
            return Err(MetadataMessageError::NotDict(value.type_name()));
        };
        let msg_type = dict
            .get(b"msg_type")
            .and_then(Value::as_int)
            .ok_or(MetadataMessageError::MissingType)?;
        let piece = dict
            .get(b"piece")
            .and_then(Value::as_int)
            .and_then(|p| u32::try_from(p).ok())
            .ok_or(MetadataMessageError::BadPiece)?;
        Ok(Some(match msg_type {
            0 => MetadataMessage::Request { piece },
            2 => MetadataMessage::Reject { piece },
            1 => {
                let raw = dict.get(b"total_size").and_then(Value::as_int);
                let bad = || MetadataMessageError::BadTotalSize {
                    piece,
                    total_size: raw,
                };
                let total_size = raw
                    .and_then(|t| u64::try_from(t).ok())
                    .filter(|&t| t > 0)
                    .ok_or_else(bad)?;
                let expected = metadata_piece_len(total_size, piece).ok_or_else(bad)?;
                let len = payload.len() - used;
                if len != expected as usize {
                    return Err(MetadataMessageError::DataLength {
                        piece,
                        len,
                        expected,
                    });
                }
                MetadataMessage::Data {
                    piece,
                    total_size,
                    data: payload.slice(used..),
                }
            }
            _ => return Ok(None),
        }))
    }

    /// Appends the payload (dictionary, then the piece's bytes for data) to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let (msg_type, total_size, data) = match self {
            MetadataMessage::Request { .. } => (0, None, None),
            MetadataMessage::Data {
                total_size, data, ..
            } => (1, Some(*total_size), Some(data)),
            MetadataMessage::Reject { .. } => (2, None, None),
        };
        let mut dict = Dict::new(vec![
            (b"msg_type".as_slice(), Value::Int(msg_type)),
            (b"piece".as_slice(), Value::Int(i64::from(self.piece()))),
        ]);
        if let Some(size) = total_size {
            // Sizes beyond i64 cannot be bencoded; no metadata we accept comes near.
            dict.insert(
                b"total_size",
                Value::Int(i64::try_from(size).unwrap_or(i64::MAX)),
            );
        }
        bencode::encode_into(&Value::Dict(dict), out);
        if let Some(data) = data {
            out.extend_from_slice(data);
        }
    }

    /// The whole extended message, sent under `ext_id` (the id the *receiver* gave
    /// `ut_metadata` in its handshake).
    pub fn to_message(&self, ext_id: u8) -> Message {
        let mut payload = BytesMut::new();
        self.encode(&mut payload);
        Message::Extended {
            id: ext_id,
            payload: payload.freeze(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: &MetadataMessage) -> MetadataMessage {
        let mut out = BytesMut::new();
        m.encode(&mut out);
        MetadataMessage::decode(&out.freeze())
            .expect("decodes")
            .expect("known type")
    }

    #[test]
    fn request_reject_and_data_round_trip() {
        for m in [
            MetadataMessage::Request { piece: 0 },
            MetadataMessage::Reject { piece: 7 },
            MetadataMessage::Data {
                piece: 1,
                total_size: 16_384 + 10,
                data: Bytes::from_static(b"0123456789"),
            },
            MetadataMessage::Data {
                piece: 0,
                total_size: 40_000,
                data: Bytes::from(vec![9u8; 16_384]),
            },
        ] {
            assert_eq!(round_trip(&m), m);
        }
    }

    #[test]
    fn encoding_is_canonical_bencode_and_matches_bep_9() {
        let mut out = BytesMut::new();
        MetadataMessage::Request { piece: 3 }.encode(&mut out);
        assert_eq!(&out[..], b"d8:msg_typei0e5:piecei3ee");
        let mut out = BytesMut::new();
        MetadataMessage::Data {
            piece: 0,
            total_size: 3,
            data: Bytes::from_static(b"abc"),
        }
        .encode(&mut out);
        assert_eq!(&out[..], b"d8:msg_typei1e5:piecei0e10:total_sizei3eeabc");
    }

    #[test]
    fn unknown_types_are_ignored_and_unknown_keys_skipped() {
        let p = Bytes::from_static(b"d8:msg_typei9e5:piecei0ee");
        assert_eq!(MetadataMessage::decode(&p), Ok(None));
        let p = Bytes::from_static(b"d5:piecei4e3:zzzli1ee8:msg_typei2ee");
        assert_eq!(
            MetadataMessage::decode(&p),
            Ok(Some(MetadataMessage::Reject { piece: 4 }))
        );
    }

    #[test]
    fn hostile_payloads_are_errors() {
        type Check = fn(&MetadataMessageError) -> bool;
        let cases: &[(&[u8], Check)] = &[
            (b"", |e| matches!(e, MetadataMessageError::Bencode(_))),
            (b"li1ee", |e| {
                matches!(e, MetadataMessageError::NotDict("list"))
            }),
            (b"d5:piecei0ee", |e| *e == MetadataMessageError::MissingType),
            (b"d8:msg_typei0ee", |e| *e == MetadataMessageError::BadPiece),
            (b"d8:msg_typei0e5:piecei-1ee", |e| {
                *e == MetadataMessageError::BadPiece
            }),
            (b"d8:msg_typei0e5:piecei4294967296ee", |e| {
                *e == MetadataMessageError::BadPiece
            }),
            // Data without total_size, with 0, negative, or a piece past the end.
            (b"d8:msg_typei1e5:piecei0eeab", |e| {
                matches!(e, MetadataMessageError::BadTotalSize { .. })
            }),
            (b"d8:msg_typei1e5:piecei0e10:total_sizei0ee", |e| {
                matches!(e, MetadataMessageError::BadTotalSize { .. })
            }),
            (b"d8:msg_typei1e5:piecei0e10:total_sizei-5eeab", |e| {
                matches!(e, MetadataMessageError::BadTotalSize { .. })
            }),
            (b"d8:msg_typei1e5:piecei1e10:total_sizei100eeab", |e| {
                matches!(e, MetadataMessageError::BadTotalSize { .. })
            }),
            // Too few and too many bytes after the dictionary.
            (b"d8:msg_typei1e5:piecei0e10:total_sizei3eeab", |e| {
                matches!(
                    e,
                    MetadataMessageError::DataLength {
                        len: 2,
                        expected: 3,
                        ..
                    }
                )
            }),
            (b"d8:msg_typei1e5:piecei0e10:total_sizei3eeabcd", |e| {
                matches!(e, MetadataMessageError::DataLength { len: 4, .. })
            }),
            // Nesting deeper than a flat dictionary needs.
            (b"d1:xlllllleeeeeee", |e| {
                matches!(e, MetadataMessageError::Bencode(_))
            }),
        ];
        for (payload, check) in cases {
            let err = MetadataMessage::decode(&Bytes::copy_from_slice(payload))
                .expect_err("must be refused");
            assert!(
                check(&err),
                "{:?}: {err:?}",
                String::from_utf8_lossy(payload)
            );
        }
    }

    #[test]
    fn a_full_piece_must_be_exactly_16_kib() {
        let mut body = b"d8:msg_typei1e5:piecei0e10:total_sizei20000ee".to_vec();
        body.extend(std::iter::repeat_n(1u8, 16_383));
        let err = MetadataMessage::decode(&Bytes::from(body.clone())).unwrap_err();
        assert!(matches!(
            err,
            MetadataMessageError::DataLength {
                expected: 16_384,
                ..
            }
        ));
        body.push(1);
        assert!(MetadataMessage::decode(&Bytes::from(body)).is_ok());
    }

    #[test]
    fn piece_geometry() {
        assert_eq!(metadata_piece_count(1), 1);
        assert_eq!(metadata_piece_count(16_384), 1);
        assert_eq!(metadata_piece_count(16_385), 2);
        assert_eq!(metadata_piece_len(16_385, 0), Some(16_384));
        assert_eq!(metadata_piece_len(16_385, 1), Some(1));
        assert_eq!(metadata_piece_len(16_385, 2), None);
        assert_eq!(metadata_piece_len(0, 0), None);
        assert_eq!(metadata_piece_len(u64::MAX, u32::MAX), Some(16_384));
    }
}
