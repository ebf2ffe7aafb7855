//! Helpers for the core's hand-driven session tests: what a test plays as the driver and
//! the remote peer (queued actions, the messages sent on a connection, a peer's opening
//! bytes, the disk's answers).

// Each test file uses some of these.
#![allow(dead_code)]

use bytes::BytesMut;
use unchoke_core::InfoHash;
use unchoke_core::session::{Action, ConnId, Session, TorrentId};
use unchoke_core::time::Instant;
use unchoke_core::wire::{Decoder, Handshake, Limits, Message, PeerId, Reserved};

/// Every action the session has queued.
pub(crate) fn drain(s: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

/// The bytes the actions send on `conn`, in order (block payloads included).
pub(crate) fn sent_bytes(actions: &[Action], conn: ConnId) -> Vec<u8> {
    let mut out = Vec::new();
    for a in actions {
        match a {
            Action::Send { conn: c, data } if *c == conn => out.extend_from_slice(data),
            Action::SendBlock {
                conn: c,
                header,
                data,
            } if *c == conn => {
                out.extend_from_slice(header);
                out.extend_from_slice(data);
            }
            _ => {}
        }
    }
    out
}

/// The messages the actions send on `conn`, after our 68-byte handshake if present.
pub(crate) fn sent(actions: &[Action], conn: ConnId) -> Vec<Message> {
    let mut bytes = BytesMut::from(&sent_bytes(actions, conn)[..]);
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

/// A remote peer's handshake with `reserved` bits and peer id `[id; 20]`, followed by
/// `messages`.
pub(crate) fn opening(
    reserved: Reserved,
    info_hash: InfoHash,
    id: u8,
    messages: &[Message],
) -> BytesMut {
    let mut buf = BytesMut::new();
    Handshake {
        reserved,
        info_hash,
        peer_id: PeerId([id; 20]),
    }
    .encode(&mut buf);
    for m in messages {
        m.encode(&mut buf);
    }
    buf
}

/// Answers every write and verification in `actions` and in what the session queues
/// after them (a few rounds), checking pieces of `block`-sized pieces against `content`;
/// returns every other action.
pub(crate) fn complete_disk_work(
    s: &mut Session,
    t: TorrentId,
    content: &[u8],
    block: usize,
    mut actions: Vec<Action>,
    now: Instant,
) -> Vec<Action> {
    let mut rest = Vec::new();
    for _ in 0..6 {
        for a in actions {
            match a {
                Action::WriteBlock { piece, .. } => s.disk_write_done(t, piece, Ok(()), now),
                Action::VerifyPiece { piece, blocks, .. } => {
                    let bytes: Vec<u8> = blocks.iter().flat_map(|b| b.iter().copied()).collect();
                    let start = piece as usize * block;
                    let ok = bytes == content[start..start + bytes.len()];
                    s.piece_hashed(t, piece, ok, now);
                }
                other => rest.push(other),
            }
        }
        actions = drain(s);
    }
    rest
}

/// Answers, as a seed would, every `request` that `actions` sent on `conn`, with its block
/// of `content` (pieces of one `block`-byte block each).
#[allow(dead_code)] // not every test file that shares this module answers requests
pub(crate) fn serve_requests(
    s: &mut Session,
    conn: ConnId,
    actions: &[Action],
    content: &[u8],
    block: usize,
    now: Instant,
) {
    for index in sent(actions, conn).iter().filter_map(|m| match m {
        Message::Request(r) => Some(r.index),
        _ => None,
    }) {
        let start = index as usize * block;
        let mut buf = BytesMut::new();
        Message::Piece {
            index,
            begin: 0,
            data: content[start..start + block].to_vec().into(),
        }
        .encode(&mut buf);
        s.handle_bytes(conn, &mut buf, now);
    }
}
