//! Codec-wide tests: round trips, streams split at every point, hostile input, zero copy.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::InfoHash;

/// 510 pieces of 32 KiB, the last one 1000 bytes: the bitfield is 64 bytes with 2 spare bits.
const PIECE_LEN: u32 = 32 * 1024;
const PIECES: u32 = 510;
const TOTAL: u64 = (PIECES as u64 - 1) * PIECE_LEN as u64 + 1000;

fn geometry() -> PieceGeometry {
    PieceGeometry::new(TOTAL, PIECE_LEN).unwrap()
}

fn decoder() -> Decoder {
    Decoder::new(Some(geometry()), Limits::default())
}

fn block(index: u32, begin: u32, length: u32) -> BlockRequest {
    BlockRequest {
        index,
        begin,
        length,
    }
}

/// Deterministic non-trivial bytes (so a misplaced slice would not compare equal).
fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

fn full_bitfield() -> Bytes {
    let mut bits = vec![0xffu8; 64];
    bits[63] = 0xfc; // 510 pieces: the 2 low bits of the last byte are spare.
    bits.into()
}

fn extension_handshake() -> ExtensionHandshake {
    ExtensionHandshake {
        m: BTreeMap::from([("ut_metadata".to_owned(), 2), ("ut_pex".to_owned(), 1)]),
        v: Some("unchoke 0.1.0".to_owned()),
        p: Some(51413),
        reqq: Some(500),
        metadata_size: Some(40_000),
        yourip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        upload_only: None,
    }
}

/// One of every message, with values at the edges the decoder checks.
fn every_message() -> Vec<Message> {
    vec![
        Message::KeepAlive,
        Message::Choke,
        Message::Unchoke,
        Message::Interested,
        Message::NotInterested,
        Message::Have { index: PIECES - 1 },
        Message::Bitfield(full_bitfield()),
        Message::Request(block(1, 16384, 16384)),
        Message::Piece {
            index: 2,
            begin: 16384,
            data: pattern(16384, 1),
        },
        // The short last piece, whole.
        Message::Piece {
            index: PIECES - 1,
            begin: 0,
            data: pattern(1000, 2),
        },
        Message::Cancel(block(PIECES - 1, 0, 1000)),
        Message::Port(6881),
        Message::SuggestPiece { index: 0 },
        Message::HaveAll,
        Message::HaveNone,
        Message::RejectRequest(block(3, 999, 1)),
        Message::AllowedFast { index: 7 },
        extension_handshake().to_message(),
        Message::Extended {
            id: 2,
            payload: Bytes::from_static(b"d8:msg_typei0e5:piecei0ee"),
        },
        Message::Extended {
            id: 9,
            payload: Bytes::new(),
        },
        Message::HashRequest(hash_request()),
        Message::Hashes {
            request: hash_request(),
            hashes: pattern(32 * 5, 3),
        },
        Message::HashReject(hash_request()),
    ]
}

fn hash_request() -> HashRequest {
    HashRequest {
        pieces_root: [0xab; 32],
        base_layer: 1,
        index: 4,
        length: 4,
        proof_layers: 2,
    }
}

fn handshake() -> Handshake {
    Handshake {
        reserved: Reserved::NONE.with_extension_protocol().with_fast(),
        info_hash: InfoHash([0x5a; 20]),
        peer_id: PeerId(*b"-TR2940-k8hj0wgej6ch"),
    }
}

/// A recorded connection: handshake, then a realistic opening and every other message.
fn recorded_stream() -> (Vec<u8>, Vec<Message>) {
    let mut messages = vec![
        Message::Bitfield(full_bitfield()),
        extension_handshake().to_message(),
        Message::Have { index: 5 },
        Message::Interested,
        Message::Unchoke,
        Message::Request(block(0, 0, 16384)),
        Message::Piece {
            index: 0,
            begin: 0,
            data: pattern(16384, 9),
        },
        Message::KeepAlive,
    ];
    messages.extend(every_message());
    let mut out = BytesMut::new();
    handshake().encode(&mut out);
    for m in &messages {
        m.encode(&mut out);
    }
    (out.to_vec(), messages)
}

/// Feeds `chunks` in order, decoding the handshake and then every complete message after
/// each chunk, as a session would.
fn decode_chunks<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(Option<Handshake>, Vec<Message>, usize), WireError> {
    let decoder = decoder();
    let mut buf = BytesMut::new();
    let mut hs = None;
    let mut messages = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            if hs.is_none() {
                match Handshake::decode(&mut buf)? {
                    Some(h) => hs = Some(h),
                    None => break,
                }
            } else {
                match decoder.decode(&mut buf)? {
                    Some(m) => messages.push(m),
                    None => break,
                }
            }
        }
    }
    Ok((hs, messages, buf.len()))
}

/// Decodes a message stream (no handshake) fed in one piece, until it stops or fails.
fn decode_messages(decoder: &Decoder, bytes: &[u8]) -> Result<Vec<Message>, WireError> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(m) = decoder.decode(&mut buf)? {
        out.push(m);
    }
    Ok(out)
}

/// The error a hostile message stream ends in; also checks that every 2-way split of the
/// stream ends in the very same error.
fn hostile(bytes: &[u8]) -> WireError {
    let d = decoder();
    let whole = decode_messages(&d, bytes).unwrap_err();
    for split in 0..=bytes.len() {
        let mut buf = BytesMut::new();
        let mut result = Ok(());
        'feed: for chunk in [&bytes[..split], &bytes[split..]] {
            buf.extend_from_slice(chunk);
            loop {
                match d.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        result = Err(e);
                        break 'feed;
                    }
                }
            }
        }
        assert_eq!(result, Err(whole.clone()), "split at {split}");
    }
    whole
}

/// A raw frame: length prefix, id, payload.
fn frame(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    out.push(id);
    out.extend_from_slice(payload);
    out
}

fn block_payload(index: u32, begin: u32, length: u32) -> Vec<u8> {
    [index, begin, length]
        .iter()
        .flat_map(|n| n.to_be_bytes())
        .collect()
}

#[test]
fn every_message_round_trips() {
    let d = decoder();
    for m in every_message() {
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        assert_eq!(buf.len(), m.encoded_len(), "{}", m.name());
        // A trailing byte must stay in the buffer: the decoder takes exactly one frame.
        buf.put_u8(0xee);
        assert_eq!(d.decode(&mut buf).unwrap(), Some(m.clone()), "{}", m.name());
        assert_eq!(&buf[..], &[0xee], "{}", m.name());
    }
}

#[test]
fn ids_match_the_beps() {
    let ids: Vec<Option<u8>> = every_message().iter().map(Message::id).collect();
    assert_eq!(
        ids,
        [
            None,
            Some(0),
            Some(1),
            Some(2),
            Some(3),
            Some(4),
            Some(5),
            Some(6),
            Some(7),
            Some(7),
            Some(8),
            Some(9),
            Some(0x0d),
            Some(0x0e),
            Some(0x0f),
            Some(0x10),
            Some(0x11),
            Some(20),
            Some(20),
            Some(20),
            Some(21),
            Some(22),
            Some(23),
        ]
    );
    let mut buf = BytesMut::new();
    Message::Request(block(1, 2, 3)).encode(&mut buf);
    assert_eq!(
        &buf[..],
        &[0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]
    );
}

#[test]
fn piece_header_plus_data_equals_whole_piece() {
    let data = pattern(16384, 4);
    let mut whole = BytesMut::new();
    Message::Piece {
        index: 8,
        begin: 32768 - 16384,
        data: data.clone(),
    }
    .encode(&mut whole);
    let mut header = BytesMut::new();
    encode_piece_header(8, 16384, data.len() as u32, &mut header);
    assert_eq!(header.len(), PIECE_HEADER_LEN);
    assert_eq!(&whole[..PIECE_HEADER_LEN], &header[..]);
    assert_eq!(&whole[PIECE_HEADER_LEN..], &data[..]);
}

#[test]
fn recorded_stream_decodes_the_same_at_every_split_point() {
    let (stream, expected) = recorded_stream();
    let (hs, messages, left) = decode_chunks([stream.as_slice()]).unwrap();
    assert_eq!(hs, Some(handshake()));
    assert_eq!(messages, expected);
    assert_eq!(left, 0);
    for split in 0..=stream.len() {
        let (hs, messages, left) = decode_chunks([&stream[..split], &stream[split..]]).unwrap();
        assert_eq!(hs, Some(handshake()), "split at {split}");
        assert_eq!(messages, expected, "split at {split}");
        assert_eq!(left, 0, "split at {split}");
    }
}

#[test]
fn recorded_stream_decodes_the_same_byte_by_byte() {
    let (stream, expected) = recorded_stream();
    let (hs, messages, left) = decode_chunks(stream.chunks(1)).unwrap();
    assert_eq!(hs, Some(handshake()));
    assert_eq!(messages, expected);
    assert_eq!(left, 0);
}

#[test]
fn recorded_stream_decodes_the_same_in_random_chunks() {
    let (stream, expected) = recorded_stream();
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    for _ in 0..200 {
        let mut chunks = Vec::new();
        let mut rest = stream.as_slice();
        while !rest.is_empty() {
            let n = rng.usize(1..=rest.len().min(3000));
            let (chunk, tail) = rest.split_at(n);
            chunks.push(chunk);
            rest = tail;
        }
        let (hs, messages, left) = decode_chunks(chunks).unwrap();
        assert_eq!(hs, Some(handshake()));
        assert_eq!(messages, expected);
        assert_eq!(left, 0);
    }
}

#[test]
fn truncated_stream_waits_and_consumes_nothing_partial() {
    let (stream, _) = recorded_stream();
    // Cut inside the handshake, then inside the bitfield after it.
    let (hs, messages, left) = decode_chunks([&stream[..40]]).unwrap();
    assert_eq!((hs, messages.len(), left), (None, 0, 40));
    let (hs, messages, left) = decode_chunks([&stream[..68 + 30]]).unwrap();
    assert_eq!((hs, messages.len(), left), (Some(handshake()), 0, 30));
}

#[test]
fn piece_data_is_split_out_without_copying() {
    let d = decoder();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    Message::Piece {
        index: 4,
        begin: 0,
        data: pattern(16384, 3),
    }
    .encode(&mut buf);
    Message::Bitfield(full_bitfield()).encode(&mut buf);
    Message::Extended {
        id: 1,
        payload: pattern(300, 5),
    }
    .encode(&mut buf);
    let base = buf.as_ptr() as usize;
    let Some(Message::Piece { data, .. }) = d.decode(&mut buf).unwrap() else {
        panic!("expected a piece");
    };
    assert_eq!(data.as_ptr() as usize, base + PIECE_HEADER_LEN);
    assert_eq!(data, pattern(16384, 3));
    let bitfield_at = base + PIECE_HEADER_LEN + 16384;
    let Some(Message::Bitfield(bits)) = d.decode(&mut buf).unwrap() else {
        panic!("expected a bitfield");
    };
    assert_eq!(bits.as_ptr() as usize, bitfield_at + 5);
    let Some(Message::Extended { payload, .. }) = d.decode(&mut buf).unwrap() else {
        panic!("expected an extended message");
    };
    assert_eq!(payload.as_ptr() as usize, bitfield_at + 5 + 64 + 6);
}

#[test]
fn incomplete_message_reserves_room_for_itself_once_validated() {
    let d = decoder();
    let mut buf = BytesMut::new();
    encode_piece_header(0, 0, 16384, &mut buf);
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    assert!(buf.capacity() >= 4 + 9 + 16384);
    assert_eq!(buf.len(), PIECE_HEADER_LEN, "nothing consumed");
}

#[test]
fn huge_length_prefix_fails_at_once_without_allocating() {
    let d = decoder();
    let mut buf = BytesMut::with_capacity(16);
    buf.put_slice(&[0xff, 0xff, 0xff, 0xff]);
    let capacity = buf.capacity();
    let err = d.decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        WireError::LengthTooLarge {
            len: u32::MAX,
            max: 1024 * 1024 + 2
        }
    );
    assert_eq!(
        err.to_string(),
        "message length prefix 4294967295 exceeds the limit of 1048578 bytes"
    );
    assert_eq!(buf.capacity(), capacity);
    assert_eq!(buf.len(), 4, "an error leaves the buffer alone");
}

#[test]
fn oversized_piece_fails_on_its_header_without_allocating() {
    let d = decoder();
    let mut buf = BytesMut::with_capacity(16);
    buf.put_u32(9 + 16384 + 1);
    buf.put_u8(7);
    let capacity = buf.capacity();
    assert_eq!(
        d.decode(&mut buf),
        Err(WireError::TooLong {
            message: "piece",
            len: 9 + 16385,
            max: 9 + 16384
        })
    );
    assert_eq!(buf.capacity(), capacity);
}

#[test]
fn max_message_len_follows_the_limits() {
    let small = Limits {
        max_block_len: 16384,
        max_extended_len: 100,
        max_bitfield_len: 10,
    };
    // A `hashes` message of MAX_HASHES hashes is the largest frame here, above a block.
    assert_eq!(
        Decoder::new(None, small).max_message_len(),
        1 + HASH_REQUEST_LEN as u32 + 32 * MAX_HASHES
    );
    assert!(Decoder::new(None, small).max_message_len() > 16393);
    let big_torrent = PieceGeometry::new(1 << 40, 16384).unwrap(); // 2^26 pieces
    assert_eq!(
        Decoder::new(Some(big_torrent), small).max_message_len(),
        1 + (1 << 23)
    );
}

#[test]
fn bad_bitfield_length_is_refused_on_its_header() {
    let mut bytes = frame(5, &[0xff; 10]);
    bytes.truncate(5); // the header alone is enough to know
    let err = hostile(&bytes);
    assert_eq!(
        err,
        WireError::BitfieldLength {
            len: 10,
            piece_count: PIECES,
            expected: 64
        }
    );
    assert_eq!(
        err.to_string(),
        "bitfield of 10 bytes but torrent has 510 pieces (64 bytes)"
    );
}

#[test]
fn bitfield_spare_bits_are_refused() {
    let mut bits = full_bitfield().to_vec();
    bits[63] |= 0x01;
    assert_eq!(
        hostile(&frame(5, &bits)),
        WireError::BitfieldSpareBits { piece_count: 510 }
    );
    // Each spare bit counts, not just the lowest.
    bits[63] = 0x02;
    assert_eq!(
        hostile(&frame(5, &bits)),
        WireError::BitfieldSpareBits { piece_count: 510 }
    );
}

#[test]
fn validate_bitfield_edges() {
    assert_eq!(validate_bitfield(&[], 0), Ok(()));
    assert_eq!(validate_bitfield(&[0xff], 8), Ok(()));
    assert_eq!(validate_bitfield(&[0x80], 1), Ok(()));
    assert_eq!(
        validate_bitfield(&[0x40], 1),
        Err(WireError::BitfieldSpareBits { piece_count: 1 })
    );
    assert!(matches!(
        validate_bitfield(&[0, 0], 8),
        Err(WireError::BitfieldLength { expected: 1, .. })
    ));
}

#[test]
fn out_of_range_requests_are_refused() {
    let err = hostile(&frame(6, &block_payload(900, 0, 16384)));
    assert_eq!(
        err,
        WireError::PieceIndex {
            message: "request",
            index: 900,
            piece_count: 510
        }
    );
    assert_eq!(
        err.to_string(),
        "request for piece 900 but torrent has 510 pieces"
    );
    // The first index past the end, not just far past it.
    assert!(matches!(
        hostile(&frame(6, &block_payload(PIECES, 0, 1))),
        WireError::PieceIndex { index: 510, .. }
    ));
    // Past the end of the short last piece.
    let err = hostile(&frame(6, &block_payload(PIECES - 1, 0, 1001)));
    assert_eq!(
        err,
        WireError::BlockRange {
            message: "request",
            index: 509,
            begin: 0,
            end: 1001,
            piece_len: 1000
        }
    );
    assert_eq!(
        err.to_string(),
        "request for piece 509 bytes 0..1001 runs past the piece's end at 1000"
    );
    // Offset past a full piece; an offset near u32::MAX must not wrap around.
    assert!(matches!(
        hostile(&frame(6, &block_payload(0, PIECE_LEN, 1))),
        WireError::BlockRange { .. }
    ));
    assert!(matches!(
        hostile(&frame(6, &block_payload(0, u32::MAX, 16384))),
        WireError::BlockRange {
            end: 4_294_983_679,
            ..
        }
    ));
    // Too long a block.
    assert_eq!(
        hostile(&frame(6, &block_payload(0, 0, 16385))),
        WireError::BlockLength {
            message: "request",
            index: 0,
            begin: 0,
            length: 16385,
            max: 16384
        }
    );
    // The same rules hold for cancel and reject request.
    assert!(matches!(
        hostile(&frame(8, &block_payload(0, 0, 32768))),
        WireError::BlockLength {
            message: "cancel",
            ..
        }
    ));
    assert!(matches!(
        hostile(&frame(0x10, &block_payload(600, 0, 1))),
        WireError::PieceIndex {
            message: "reject request",
            ..
        }
    ));
}

#[test]
fn zero_length_request_is_refused() {
    let err = hostile(&frame(6, &block_payload(3, 0, 0)));
    assert_eq!(
        err.to_string(),
        "request for piece 3 at offset 0 has length 0; blocks must be 1..=16384 bytes"
    );
}

#[test]
fn bad_pieces_are_refused() {
    let mut piece = Vec::new();
    piece.extend_from_slice(&PIECES.to_be_bytes());
    piece.extend_from_slice(&0u32.to_be_bytes());
    piece.extend_from_slice(&[1, 2, 3]);
    assert!(matches!(
        hostile(&frame(7, &piece)),
        WireError::PieceIndex {
            message: "piece",
            index: 510,
            ..
        }
    ));
    // A piece with no data at all.
    assert!(matches!(
        hostile(&frame(7, &[0; 8])),
        WireError::BlockLength {
            message: "piece",
            length: 0,
            ..
        }
    ));
    // Shorter than its index and offset.
    assert_eq!(
        hostile(&frame(7, &[0; 7])),
        WireError::TooShort {
            message: "piece",
            len: 8,
            min: 9
        }
    );
    // Data running past the last piece's end.
    let mut piece = Vec::new();
    piece.extend_from_slice(&(PIECES - 1).to_be_bytes());
    piece.extend_from_slice(&900u32.to_be_bytes());
    piece.extend_from_slice(&[0; 101]);
    assert!(matches!(
        hostile(&frame(7, &piece)),
        WireError::BlockRange {
            end: 1001,
            piece_len: 1000,
            ..
        }
    ));
}

#[test]
fn unknown_ids_are_typed_errors() {
    for id in [10u8, 11, 12, 18, 19, 24, 0x80, 255] {
        let err = hostile(&frame(id, &[1, 2, 3]));
        assert_eq!(err, WireError::UnknownMessage(id));
        assert_eq!(err.to_string(), format!("unknown message id {id}"));
    }
}

#[test]
fn fixed_size_messages_with_wrong_length_are_refused() {
    let err = hostile(&frame(4, &[0, 0, 0, 1, 0]));
    assert_eq!(
        err,
        WireError::WrongLength {
            message: "have",
            len: 6,
            expected: 5
        }
    );
    assert_eq!(err.to_string(), "have message has length 6, expected 5");
    assert!(matches!(
        hostile(&frame(4, &[0, 0, 1])),
        WireError::WrongLength {
            message: "have",
            len: 4,
            ..
        }
    ));
    for (id, name, payload_len) in [
        (0u8, "choke", 1usize),
        (1, "unchoke", 4),
        (2, "interested", 1),
        (3, "not interested", 2),
        (6, "request", 11),
        (8, "cancel", 8),
        (9, "port", 1),
        (0x0d, "suggest piece", 0),
        (0x0e, "have all", 1),
        (0x0f, "have none", 5),
        (0x10, "reject request", 13),
        (0x11, "allowed fast", 3),
    ] {
        let err = hostile(&frame(id, &vec![0; payload_len]));
        assert!(
            matches!(err, WireError::WrongLength { message, .. } if message == name),
            "{name}: {err}"
        );
    }
}

#[test]
fn have_style_indices_are_checked() {
    for (id, name) in [
        (4u8, "have"),
        (0x0d, "suggest piece"),
        (0x11, "allowed fast"),
    ] {
        let err = hostile(&frame(id, &PIECES.to_be_bytes()));
        assert_eq!(
            err,
            WireError::PieceIndex {
                message: name,
                index: PIECES,
                piece_count: PIECES
            }
        );
    }
}

#[test]
fn extended_messages_are_bounded() {
    assert_eq!(
        hostile(&frame(20, &[])),
        WireError::TooShort {
            message: "extended",
            len: 1,
            min: 2
        }
    );
    let d = Decoder::new(
        Some(geometry()),
        Limits {
            max_extended_len: 10,
            ..Limits::default()
        },
    );
    let mut ok = frame(20, &[3; 11]);
    assert_eq!(
        decode_messages(&d, &ok).unwrap(),
        [Message::Extended {
            id: 3,
            payload: Bytes::from_static(&[3; 10])
        }]
    );
    ok = frame(20, &[3; 12]);
    assert!(matches!(
        decode_messages(&d, &ok),
        Err(WireError::TooLong {
            message: "extended",
            ..
        })
    ));
}

#[test]
fn hostile_prefix_after_good_messages_still_fails() {
    // Good messages are delivered; the bad one after them ends the stream in an error.
    let mut bytes = frame(2, &[]);
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    bytes.extend(frame(4, &9u32.to_be_bytes()));
    bytes.extend(frame(4, &[0, 0, 0]));
    bytes.extend(frame(1, &[]));
    let d = decoder();
    let mut buf = BytesMut::from(bytes.as_slice());
    assert_eq!(d.decode(&mut buf), Ok(Some(Message::Interested)));
    assert_eq!(d.decode(&mut buf), Ok(Some(Message::KeepAlive)));
    assert_eq!(d.decode(&mut buf), Ok(Some(Message::Have { index: 9 })));
    assert!(matches!(
        d.decode(&mut buf),
        Err(WireError::WrongLength { .. })
    ));
    assert_eq!(
        hostile(&bytes),
        WireError::WrongLength {
            message: "have",
            len: 4,
            expected: 5
        }
    );
}

#[test]
fn without_geometry_only_size_limits_apply() {
    let mut d = Decoder::new(None, Limits::default());
    // A magnet-link peer's bitfield of any plausible size, and any index, pass for now.
    let bits = frame(5, &[0xff; 3]);
    assert_eq!(
        decode_messages(&d, &bits).unwrap(),
        [Message::Bitfield(Bytes::from_static(&[0xff; 3]))]
    );
    assert_eq!(
        decode_messages(&d, &frame(4, &1000u32.to_be_bytes())).unwrap(),
        [Message::Have { index: 1000 }]
    );
    // Block sizes are still bounded.
    assert!(matches!(
        decode_messages(&d, &frame(6, &block_payload(0, 0, 0))),
        Err(WireError::BlockLength { .. })
    ));
    // An empty or oversized bitfield is not.
    assert!(matches!(
        decode_messages(&d, &frame(5, &[])),
        Err(WireError::TooShort { .. })
    ));
    let mut huge = BytesMut::new();
    huge.put_u32(256 * 1024 + 2);
    huge.put_u8(5);
    assert!(matches!(
        d.decode(&mut huge),
        Err(WireError::TooLong {
            message: "bitfield",
            ..
        })
    ));
    // Once the metadata arrives the same bitfield is judged against the torrent.
    d.set_geometry(geometry());
    assert!(matches!(
        decode_messages(&d, &bits),
        Err(WireError::BitfieldLength { .. })
    ));
    assert_eq!(d.geometry(), Some(&geometry()));
}

#[test]
fn random_garbage_never_panics() {
    // Not a fuzzer, but a cheap guard: random streams (biased towards plausible headers)
    // end in a message sequence, a wait or an error, never a panic.
    let mut rng = fastrand::Rng::with_seed(42);
    let d = decoder();
    let no_geometry = Decoder::new(None, Limits::default());
    for _ in 0..5000 {
        let len = rng.usize(0..64);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        if len >= 5 && rng.bool() {
            bytes[..3].fill(0);
            bytes[4] = rng.u8(0..22);
        }
        let _ = decode_messages(&d, &bytes);
        let _ = decode_messages(&no_geometry, &bytes);
        let _ = Handshake::decode(&mut BytesMut::from(bytes.as_slice()));
        let _ = ExtensionHandshake::decode(&bytes);
    }
}

#[test]
fn piece_geometry() {
    let g = geometry();
    assert_eq!(g.piece_count(), 510);
    assert_eq!(g.piece_len(0), Some(PIECE_LEN));
    assert_eq!(g.piece_len(508), Some(PIECE_LEN));
    assert_eq!(g.piece_len(509), Some(1000));
    assert_eq!(g.piece_len(510), None);
    assert_eq!(g.bitfield_len(), 64);
    let exact = PieceGeometry::new(4 * 16384, 16384).unwrap();
    assert_eq!((exact.piece_count(), exact.piece_len(3)), (4, Some(16384)));
    assert_eq!(PieceGeometry::new(100, 0), None);
    assert_eq!(PieceGeometry::new(u64::MAX, 1), None);
    assert_eq!(PieceGeometry::new(0, 16384).unwrap().piece_count(), 0);
}

#[test]
fn bytes_to_finish_message_counts_what_the_prefix_still_wants() {
    // A piece message of one 16 KiB block: 4 + 9 + 16384 bytes in all.
    let mut msg = (9u32 + 16384).to_be_bytes().to_vec();
    msg.extend_from_slice(&[7, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(bytes_to_finish_message(&msg), Some(16384));
    assert_eq!(bytes_to_finish_message(&msg[..4]), Some(16393));
    assert_eq!(
        bytes_to_finish_message(&msg[..3]),
        None,
        "prefix incomplete"
    );
    assert_eq!(
        bytes_to_finish_message(&[0, 0, 0, 0]),
        None,
        "a keep-alive is whole"
    );
    assert_eq!(
        bytes_to_finish_message(&[0, 0, 0, 1, 2]),
        None,
        "a choke is whole"
    );
    assert_eq!(bytes_to_finish_message(&[0xff; 4]), Some(0xffff_ffff));
}

#[test]
fn hash_messages_have_the_layout_bep_52_gives() {
    let mut buf = BytesMut::new();
    Message::HashRequest(hash_request()).encode(&mut buf);
    let mut want = vec![0, 0, 0, 49, 21];
    want.extend_from_slice(&[0xab; 32]);
    want.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 2]);
    assert_eq!(&buf[..], &want[..]);
}

#[test]
fn malformed_hash_messages_are_refused() {
    let payload = [0u8; HASH_REQUEST_LEN];
    // A request or reject one byte short or long.
    for id in [21, 23] {
        for len in [HASH_REQUEST_LEN - 1, HASH_REQUEST_LEN + 1] {
            assert!(
                matches!(
                    hostile(&frame(id, &vec![0; len])),
                    WireError::WrongLength { .. }
                ),
                "id {id} len {len}"
            );
        }
    }
    // `hashes` without a whole request, with a partial hash, or with more than MAX_HASHES.
    assert!(matches!(
        hostile(&frame(22, &payload[..40])),
        WireError::TooShort { .. }
    ));
    let mut partial = payload.to_vec();
    partial.extend_from_slice(&[1; 33]);
    assert!(matches!(
        hostile(&frame(22, &partial)),
        WireError::WrongLength { .. }
    ));
    let mut huge = payload.to_vec();
    huge.extend(std::iter::repeat_n(0u8, 32 * (MAX_HASHES as usize + 1)));
    assert!(matches!(
        hostile(&frame(22, &huge)),
        WireError::LengthTooLarge { .. } | WireError::TooLong { .. }
    ));
    // Exactly MAX_HASHES is accepted, shared with the buffer.
    let mut most = payload.to_vec();
    most.extend(std::iter::repeat_n(7u8, 32 * MAX_HASHES as usize));
    let got = decode_messages(&decoder(), &frame(22, &most)).unwrap();
    assert!(
        matches!(&got[..], [Message::Hashes { hashes, .. }] if hashes.len() == 32 * MAX_HASHES as usize)
    );
}
