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
use unchoke_core::wire::{BlockRequest, Message, Reserved};
use unchoke_sim::lab::{make_content, make_metainfo};

mod common;
use common::{complete_disk_work, drain, sent};

const BLOCK: usize = 16 * 1024;

fn config() -> SessionConfig {
    SessionConfig {
        encryption: EncryptionPolicy::Disable,
        ..SessionConfig::default()
    }
}

/// A fast peer's handshake followed by `messages`.
fn opening(info_hash: unchoke_core::InfoHash, id: u8, messages: &[Message]) -> BytesMut {
    common::opening(Reserved::NONE.with_fast(), info_hash, id, messages)
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
    let pending = drain(&mut s);
    complete_disk_work(&mut s, t, &content, BLOCK, pending, now);
    assert!(
        s.have(t).expect("have").get(2),
        "piece 2 verified while choked"
    );
    assert_eq!(s.have(t).expect("have").count_ones(), 1);
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
