//! BEP 6 in the session, hand-driven in virtual time: allowed-fast pieces both ways (a
//! peer that never unchokes us still gives us the pieces it allows; a peer we choke is
//! granted its canonical set and served those pieces, only those, while choked), and
//! `suggest piece` (a suggested piece is asked for first).

use std::net::SocketAddr;

use bytes::BytesMut;
use unchoke_core::bitfield::Bitfield;
use unchoke_core::session::{
    Action, ConnId, Direction, EncryptionPolicy, Session, SessionConfig, TorrentId,
};
use unchoke_core::time::Instant;
use unchoke_core::torrent::allowed_fast_set;
use unchoke_core::wire::{BlockRequest, Decoder, Handshake, Limits, Message, PeerId, Reserved};
use unchoke_sim::lab::{make_content, make_metainfo};

const BLOCK: usize = 16 * 1024;

fn config() -> SessionConfig {
    SessionConfig {
        encryption: EncryptionPolicy::Disable,
        ..SessionConfig::default()
    }
}

/// A fast peer's handshake followed by `messages`.
fn opening(info_hash: unchoke_core::InfoHash, id: u8, messages: &[Message]) -> BytesMut {
    let mut buf = BytesMut::new();
    Handshake {
        reserved: Reserved::NONE.with_fast(),
        info_hash,
        peer_id: PeerId([id; 20]),
    }
    .encode(&mut buf);
    for m in messages {
        m.encode(&mut buf);
    }
    buf
}

/// The messages the actions send on `conn` (after our 68-byte handshake, if present),
/// and the other actions.
fn sent(actions: &[Action], conn: ConnId) -> Vec<Message> {
    let mut bytes = BytesMut::new();
    for a in actions {
        match a {
            Action::Send { conn: c, data } if *c == conn => bytes.extend_from_slice(data),
            Action::SendBlock {
                conn: c,
                header,
                data,
            } if *c == conn => {
                bytes.extend_from_slice(header);
                bytes.extend_from_slice(data);
            }
            _ => {}
        }
    }
    if bytes.first() == Some(&19) {
        let _ = bytes.split_to(68);
    }
    let decoder = Decoder::new(None, Limits::default());
    let mut out = Vec::new();
    while let Ok(Some(m)) = decoder.decode(&mut bytes) {
        out.push(m);
    }
    out
}

fn drain(s: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

/// A leecher of a torrent of `pieces` one-block pieces (content from `seed`) that dialled
/// the peer at `addr`: its session, torrent, connection, the content and the metainfo.
fn dialled(
    pieces: usize,
    seed: u64,
    addr: &str,
) -> (
    Session,
    TorrentId,
    ConnId,
    Vec<u8>,
    unchoke_core::metainfo::Metainfo,
) {
    let content = make_content(pieces * BLOCK, seed);
    let metainfo = make_metainfo(&content, BLOCK as u32);
    let now = Instant::from_secs(1);
    let mut s = Session::new(config(), seed + 2, now);
    let t = s.add_torrent(&metainfo, None, now).expect("add");
    let addr: SocketAddr = addr.parse().expect("address");
    s.add_peers(t, &[addr], now);
    drain(&mut s);
    let c = s.connection_opened(addr, Direction::Outbound(t), now);
    drain(&mut s);
    (s, t, c, content, metainfo)
}

/// A seed that never unchokes us but allows pieces 2 and 5: we ask for blocks of those
/// and nothing else, and piece 2 is verified and ours before any unchoke.
#[test]
fn a_peer_that_never_unchokes_us_still_gives_its_allowed_fast_pieces() {
    let (mut s, t, c, content, metainfo) = dialled(7, 1, "127.0.0.5:6881");
    let now = Instant::from_secs(1);
    let mut buf = opening(
        metainfo.info_hash,
        9,
        &[
            Message::HaveAll,
            Message::AllowedFast { index: 2 },
            Message::AllowedFast { index: 5 },
            // Repeated: kept once. (One past the end is a protocol error, the decoder's.)
            Message::AllowedFast { index: 2 },
        ],
    );
    s.handle_bytes(c, &mut buf, now);
    let actions = drain(&mut s);
    let ours = sent(&actions, c);
    assert!(ours.contains(&Message::Interested), "{ours:?} {actions:?}");
    let requested: Vec<u32> = ours
        .iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r.index),
            _ => None,
        })
        .collect();
    let mut pieces = requested.clone();
    pieces.sort_unstable();
    pieces.dedup();
    assert_eq!(pieces, vec![2, 5], "only allowed-fast pieces while choked");

    // The peer serves piece 2 (still choking us): it is written, hashed, and ours.
    let mut buf = BytesMut::new();
    Message::Piece {
        index: 2,
        begin: 0,
        data: content[2 * BLOCK..3 * BLOCK].to_vec().into(),
    }
    .encode(&mut buf);
    s.handle_bytes(c, &mut buf, now);
    complete_disk_work(&mut s, t, &content, now);
    assert!(
        s.have(t).expect("have").get(2),
        "piece 2 verified while choked"
    );
    assert_eq!(s.have(t).expect("have").count_ones(), 1);
}

/// Answers every write and verification the session asked for, from `content`.
fn complete_disk_work(s: &mut Session, t: TorrentId, content: &[u8], now: Instant) {
    for _ in 0..4 {
        for a in drain(s) {
            match a {
                Action::WriteBlock { piece, .. } => s.disk_write_done(t, piece, Ok(()), now),
                Action::VerifyPiece { piece, blocks, .. } => {
                    let bytes: Vec<u8> = blocks.iter().flat_map(|b| b.iter().copied()).collect();
                    let start = piece as usize * BLOCK;
                    let ok = bytes == content[start..start + bytes.len()];
                    s.piece_hashed(t, piece, ok, now);
                }
                _ => {}
            }
        }
    }
}

/// A seed with six interested fast peers unchokes five (four regular slots and the
/// optimistic one). Each peer was granted its canonical allowed-fast set when it said it
/// was interested; the one left choked is served a block of a granted piece and refused
/// one of any other.
#[test]
fn a_choked_peer_is_granted_its_canonical_set_and_served_only_those_pieces() {
    let pieces = 25u32;
    let content = make_content(pieces as usize * BLOCK, 2);
    let metainfo = make_metainfo(&content, BLOCK as u32);
    let now = Instant::from_secs(1);
    let mut s = Session::new(config(), 4, now);
    s.add_torrent(&metainfo, Some(Bitfield::full(pieces)), now)
        .expect("add");
    let mut peers = Vec::new();
    for i in 0..6u8 {
        let addr = SocketAddr::from(([10, i + 1, 0, 7], 40000));
        let c = s.connection_opened(addr, Direction::Inbound, now);
        let mut buf = opening(
            metainfo.info_hash,
            i + 1,
            &[Message::HaveNone, Message::Interested],
        );
        s.handle_bytes(c, &mut buf, now);
        peers.push((c, addr));
    }
    let actions = drain(&mut s);
    let mut choked = None;
    for &(c, addr) in &peers {
        let ours = sent(&actions, c);
        let granted: Vec<u32> = ours
            .iter()
            .filter_map(|m| match m {
                Message::AllowedFast { index } => Some(*index),
                _ => None,
            })
            .collect();
        assert_eq!(
            granted,
            allowed_fast_set(addr.ip(), &metainfo.info_hash.0, pieces, 10),
            "{addr}: the canonical set, in order"
        );
        if !ours.contains(&Message::Unchoke) {
            assert!(choked.is_none(), "only one peer is left choked");
            choked = Some((c, granted));
        }
    }
    let (c, granted) = choked.expect("one peer is left choked");
    let outside = (0..pieces).find(|p| !granted.contains(p)).expect("a piece");
    let request = |index| {
        Message::Request(BlockRequest {
            index,
            begin: 0,
            length: BLOCK as u32,
        })
    };
    let mut buf = BytesMut::new();
    request(granted[0]).encode(&mut buf);
    request(outside).encode(&mut buf);
    s.handle_bytes(c, &mut buf, now);
    let actions = drain(&mut s);
    let reads: Vec<u32> = actions
        .iter()
        .filter_map(|a| match a {
            Action::ReadBlock { conn, block, .. } if *conn == c => Some(block.index),
            _ => None,
        })
        .collect();
    assert_eq!(
        reads,
        vec![granted[0]],
        "served its granted piece while choked"
    );
    let rejected: Vec<u32> = sent(&actions, c)
        .iter()
        .filter_map(|m| match m {
            Message::RejectRequest(r) => Some(r.index),
            _ => None,
        })
        .collect();
    assert_eq!(rejected, vec![outside], "and refused anything else");
}

/// The first pieces we ask an unchoking seed for, after `before` (messages it sends
/// between `have all` and `unchoke`).
fn first_requests(before: &[Message]) -> Vec<u32> {
    let (mut s, _, c, _, metainfo) = dialled(25, 6, "127.0.0.6:6881");
    let now = Instant::from_secs(1);
    let mut messages = vec![Message::HaveAll];
    messages.extend_from_slice(before);
    messages.push(Message::Unchoke);
    let mut buf = opening(metainfo.info_hash, 7, &messages);
    s.handle_bytes(c, &mut buf, now);
    sent(&drain(&mut s), c)
        .iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r.index),
            _ => None,
        })
        .collect()
}

/// A seed suggests a piece: our first request to it is for that piece, where the same
/// session without the suggestion (same seed, same RNG) starts elsewhere.
#[test]
fn a_suggested_piece_is_asked_for_first() {
    let plain = first_requests(&[]);
    let first = *plain.first().expect("requests without a suggestion");
    let suggested = (first + 7) % 25;
    let with = first_requests(&[Message::SuggestPiece { index: suggested }]);
    assert_eq!(
        with.first(),
        Some(&suggested),
        "{with:?} (without: {plain:?})"
    );
    assert_ne!(plain.first(), Some(&suggested));
    // The rest of the pipeline follows the picker's own order.
    assert!(
        with.len() > 1 && with[1..].iter().all(|&p| p != suggested),
        "{with:?}"
    );
}
