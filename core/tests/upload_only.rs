//! `have` only to peers that lack the piece, and BEP 21 `upload_only` in the extension
//! handshake: how peers learn that we completed without counting our `have`s, and how two
//! complete peers part. Hand-driven in virtual time.

use std::net::SocketAddr;

use bytes::BytesMut;
use unchoke_core::bitfield::Bitfield;
use unchoke_core::session::{
    Action, ConnId, Direction, DisconnectReason, EncryptionPolicy, Session, SessionConfig,
};
use unchoke_core::time::Instant;
use unchoke_core::wire::{ExtensionHandshake, Message, Reserved};
use unchoke_sim::lab::{make_content, make_metainfo};

mod common;
use common::{complete_disk_work, drain, sent, serve_requests};

const BLOCK: usize = 16 * 1024;

fn config() -> SessionConfig {
    SessionConfig {
        encryption: EncryptionPolicy::Disable,
        ..SessionConfig::default()
    }
}

/// A peer's handshake (extension protocol on) followed by `messages`.
fn opening(info_hash: unchoke_core::InfoHash, id: u8, messages: &[Message]) -> BytesMut {
    common::opening(
        Reserved::NONE.with_extension_protocol(),
        info_hash,
        id,
        messages,
    )
}

/// The `upload_only` values of the extension handshakes among `messages`, in order.
fn upload_only_said(messages: &[Message]) -> Vec<Option<bool>> {
    messages
        .iter()
        .filter_map(|m| ExtensionHandshake::from_message(m).ok().flatten())
        .map(|hs| hs.upload_only)
        .collect()
}

fn disconnected(actions: &[Action], conn: ConnId) -> Option<DisconnectReason> {
    actions.iter().find_map(|a| match a {
        Action::Disconnect { conn: c, reason } if *c == conn => Some(reason.clone()),
        _ => None,
    })
}

/// A leecher of two one-block pieces, connected to a seed `S` that unchokes it and to a
/// leecher `L` that has piece 0. Both pieces come from `S`: `L` is told `have 1` and never
/// `have 0`; when the download completes, `L` hears `upload_only` and `S` is dropped.
#[test]
fn a_have_goes_only_to_peers_that_lack_the_piece_and_completion_is_said_with_upload_only() {
    let content = make_content(2 * BLOCK, 7);
    let metainfo = make_metainfo(&content, BLOCK as u32);
    let now = Instant::from_secs(1);
    let mut s = Session::new(config(), 3, now);
    let t = s.add_torrent(&metainfo, None, now).expect("add");
    let seed: SocketAddr = "10.0.0.1:6881".parse().expect("address");
    let leech: SocketAddr = "10.0.0.2:6881".parse().expect("address");
    s.add_peers(t, &[seed, leech], now);
    drain(&mut s);
    let cs = s.connection_opened(seed, Direction::Outbound(t), now);
    let cl = s.connection_opened(leech, Direction::Outbound(t), now);
    drain(&mut s);

    let mut has0 = Bitfield::new(2);
    has0.set(0);
    let mut buf = opening(
        metainfo.info_hash,
        2,
        &[Message::Bitfield(has0.to_bytes().into())],
    );
    s.handle_bytes(cl, &mut buf, now);
    let mut buf = opening(
        metainfo.info_hash,
        1,
        &[
            Message::Bitfield(Bitfield::full(2).to_bytes().into()),
            Message::Unchoke,
        ],
    );
    s.handle_bytes(cs, &mut buf, now);
    let mut actions = drain(&mut s);
    let mut to_leech = Vec::new();
    for _ in 0..4 {
        serve_requests(&mut s, cs, &actions, &content, BLOCK, now);
        let pending = drain(&mut s);
        actions = complete_disk_work(&mut s, t, &content, BLOCK, pending, now);
        to_leech.extend(sent(&actions, cl));
        if s.have(t).is_some_and(|h| h.is_full()) {
            break;
        }
    }
    assert!(
        s.have(t).is_some_and(|h| h.is_full()),
        "both pieces verified"
    );
    let haves: Vec<u32> = to_leech
        .iter()
        .filter_map(|m| match m {
            Message::Have { index } => Some(*index),
            _ => None,
        })
        .collect();
    assert_eq!(haves, vec![1], "L has piece 0: only `have 1` is news to it");
    assert_eq!(
        upload_only_said(&to_leech),
        vec![Some(true)],
        "the repeated extension handshake says we completed"
    );
    assert_eq!(
        disconnected(&actions, cs),
        Some(DisconnectReason::BothSeeds)
    );
    assert_eq!(
        disconnected(&actions, cl),
        None,
        "L still wants nothing from us, but may ask"
    );
}

/// A seed keeps a peer until it says `upload_only`, then drops it: neither side can give
/// the other anything. A leecher keeps an `upload_only` peer: it can still upload.
#[test]
fn a_complete_session_drops_a_peer_that_says_upload_only_and_a_leecher_keeps_it() {
    let content = make_content(4 * BLOCK, 8);
    let metainfo = make_metainfo(&content, BLOCK as u32);
    let now = Instant::from_secs(1);
    let upload_only = |on: bool| {
        ExtensionHandshake {
            upload_only: Some(on),
            ..ExtensionHandshake::default()
        }
        .to_message()
    };
    for (complete, expect_drop) in [(true, true), (false, false)] {
        let mut s = Session::new(config(), 5, now);
        let have = complete.then(|| Bitfield::full(4));
        let t = s.add_torrent(&metainfo, have, now).expect("add");
        let addr: SocketAddr = "10.0.0.9:40000".parse().expect("address");
        let c = s.connection_opened(addr, Direction::Inbound, now);
        let mut half = Bitfield::new(4);
        half.set(1);
        let mut buf = opening(
            metainfo.info_hash,
            9,
            &[
                Message::Bitfield(half.to_bytes().into()),
                upload_only(false),
            ],
        );
        s.handle_bytes(c, &mut buf, now);
        let actions = drain(&mut s);
        assert_eq!(disconnected(&actions, c), None, "complete={complete}");
        let ours = sent(&actions, c);
        assert_eq!(
            upload_only_said(&ours),
            vec![complete.then_some(true)],
            "our first handshake says upload_only only when we are complete"
        );
        let mut buf = BytesMut::new();
        upload_only(true).encode(&mut buf);
        s.handle_bytes(c, &mut buf, now);
        let actions = drain(&mut s);
        assert_eq!(
            disconnected(&actions, c),
            expect_drop.then_some(DisconnectReason::BothSeeds),
            "complete={complete}"
        );
        let _ = t;
    }
}
