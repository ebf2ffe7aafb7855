//! `Session::handle_block`: a `piece` message whose payload the driver read into a buffer of
//! its own is handled as the same framed message through `handle_bytes` would be — the
//! block written without a copy — and checked the same way.

use bytes::{Bytes, BytesMut};
use unchoke_core::session::{
    Action, ConnId, Direction, DisconnectReason, EncryptionPolicy, Session, SessionConfig,
};
use unchoke_core::time::Instant;
use unchoke_core::wire::{
    Handshake, Message, PIECE_HEADER_LEN, PeerId, Reserved, WireError, decode_piece_header,
    encode_piece_header,
};
use unchoke_sim::lab::{make_content, make_metainfo};

const BLOCK: usize = 16 * 1024;

/// A leecher with one peer that has every piece and unchoked it; returns the session, the
/// connection, the content and the actions so far.
fn unchoked_leecher() -> (Session, ConnId, Vec<u8>, Vec<Action>) {
    let content = make_content(4 * BLOCK * 4, 9);
    let metainfo = make_metainfo(&content, (4 * BLOCK) as u32);
    let now = Instant::from_secs(1);
    let mut s = Session::new(
        SessionConfig {
            encryption: EncryptionPolicy::Disable,
            ..SessionConfig::default()
        },
        7,
        now,
    );
    let t = s.add_torrent(&metainfo, None, now).expect("add torrent");
    let c = s.connection_opened(
        "127.0.0.1:6881".parse().expect("addr"),
        Direction::Outbound(t),
        now,
    );
    let mut buf = BytesMut::new();
    Handshake {
        reserved: Reserved::NONE.with_fast(),
        info_hash: metainfo.info_hash,
        peer_id: PeerId([3; 20]),
    }
    .encode(&mut buf);
    Message::HaveAll.encode(&mut buf);
    Message::Unchoke.encode(&mut buf);
    s.handle_bytes(c, &mut buf, now);
    let actions = std::iter::from_fn(|| s.poll_action()).collect();
    (s, c, content, actions)
}

fn requested(actions: &[Action]) -> Vec<(u32, u32, u32)> {
    let mut out = Vec::new();
    for a in actions {
        if let Action::Send { data, .. } = a {
            // Our handshake leads the first send.
            let framed = match data.first() {
                Some(19) => data
                    .get(unchoke_core::wire::HANDSHAKE_LEN..)
                    .unwrap_or_default(),
                _ => &data[..],
            };
            let mut buf = BytesMut::from(framed);
            let decoder = unchoke_core::wire::Decoder::new(None, Default::default());
            while let Ok(Some(m)) = decoder.decode(&mut buf) {
                if let Message::Request(r) = m {
                    out.push((r.index, r.begin, r.length));
                }
            }
        }
    }
    out
}

#[test]
fn a_block_handed_over_whole_is_written_from_the_drivers_own_buffer() {
    let (mut s, c, content, actions) = unchoked_leecher();
    let asked = requested(&actions);
    let &(index, begin, length) = asked.first().expect("the unchoked leecher requests blocks");
    let at = index as usize * 4 * BLOCK + begin as usize;
    let data = Bytes::copy_from_slice(&content[at..at + length as usize]);
    let ptr = data.as_ptr();
    s.handle_block(c, index, begin, data, Instant::from_secs(2));
    let out: Vec<Action> = std::iter::from_fn(|| s.poll_action()).collect();
    let written = out.iter().find_map(|a| match a {
        Action::WriteBlock {
            piece,
            offset,
            data,
            ..
        } => Some((*piece, *offset, data.as_ptr())),
        _ => None,
    });
    // The very buffer the driver handed over: no copy on the way.
    assert_eq!(written, Some((index, begin, ptr)), "{out:#?}");
    assert!(!out.iter().any(|a| matches!(a, Action::Disconnect { .. })));
}

#[test]
fn a_bad_block_is_refused_as_the_framed_one_would_be() {
    let (mut s, c, _, _) = unchoked_leecher();
    // Piece 99 of a 4-piece torrent: what the decoder says of the framed message.
    s.handle_block(c, 99, 0, Bytes::from(vec![0; BLOCK]), Instant::from_secs(2));
    let out: Vec<Action> = std::iter::from_fn(|| s.poll_action()).collect();
    assert!(
        out.iter().any(|a| matches!(
            a,
            Action::Disconnect {
                reason: DisconnectReason::Protocol(WireError::PieceIndex { .. }),
                ..
            }
        )),
        "{out:#?}"
    );

    // Before the handshake: the error handle_bytes gives the same bytes.
    let metainfo = make_metainfo(&make_content(4 * BLOCK, 1), (4 * BLOCK) as u32);
    let now = Instant::from_secs(1);
    let mut s = Session::new(
        SessionConfig {
            encryption: EncryptionPolicy::Disable,
            ..SessionConfig::default()
        },
        7,
        now,
    );
    s.add_torrent(&metainfo, None, now).expect("add torrent");
    let c = s.connection_opened(
        "127.0.0.1:7000".parse().expect("addr"),
        Direction::Inbound,
        now,
    );
    s.handle_block(c, 0, 0, Bytes::from(vec![0; BLOCK]), now);
    let out: Vec<Action> = std::iter::from_fn(|| s.poll_action()).collect();
    assert!(
        out.iter().any(|a| matches!(
            a,
            Action::Disconnect {
                reason: DisconnectReason::Protocol(WireError::HandshakeProtocolLength(0)),
                ..
            }
        )),
        "{out:#?}"
    );
}

#[test]
fn the_piece_header_reads_back_what_was_written() {
    let mut buf = BytesMut::new();
    encode_piece_header(7, 16_384, 16_384, &mut buf);
    assert_eq!(buf.len(), PIECE_HEADER_LEN);
    assert_eq!(decode_piece_header(&buf), Some((7, 16_384, 16_384)));
    let mut not_piece = buf.to_vec();
    not_piece[4] = 6; // a request's id
    assert_eq!(decode_piece_header(&not_piece), None);
    assert_eq!(decode_piece_header(&buf[..12]), None);
    assert_eq!(
        decode_piece_header(&[0, 0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0]),
        None
    );
}
