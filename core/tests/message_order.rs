//! The order real clients send their first messages in: libtorrent 2.0 sends its extension
//! handshake before `have all` / `bitfield`. That must be accepted (it was once refused as
//! "have all out of place", which made unchoke unable to download from libtorrent).

use bytes::BytesMut;
use unchoke_core::session::{Action, Direction, EncryptionPolicy, Session, SessionConfig};
use unchoke_core::time::Instant;
use unchoke_core::wire::{ExtensionHandshake, Handshake, Message, PeerId, Reserved};

fn feed_after_handshake(first_messages: &[Message]) -> Vec<Action> {
    let metainfo =
        unchoke_sim::lab::make_metainfo(&unchoke_sim::lab::make_content(100_000, 3), 16_384);
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
    let addr = "127.0.0.1:6881".parse().expect("address");
    let c = s.connection_opened(addr, Direction::Outbound(t), now);
    let mut buf = BytesMut::new();
    Handshake {
        reserved: Reserved::NONE.with_fast().with_extension_protocol(),
        info_hash: metainfo.info_hash,
        peer_id: PeerId(*b"-LT2080-abcdefghijkl"),
    }
    .encode(&mut buf);
    for m in first_messages {
        m.encode(&mut buf);
    }
    s.handle_bytes(c, &mut buf, now);
    std::iter::from_fn(|| s.poll_action()).collect()
}

fn disconnected(actions: &[Action]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Disconnect { .. }))
}

fn extension_handshake() -> Message {
    ExtensionHandshake {
        v: Some("libtorrent/2.0.8".into()),
        reqq: Some(500),
        ..ExtensionHandshake::default()
    }
    .to_message()
}

#[test]
fn extension_handshake_then_have_all_is_accepted() {
    let actions =
        feed_after_handshake(&[extension_handshake(), Message::HaveAll, Message::Unchoke]);
    assert!(!disconnected(&actions), "{actions:?}");
    // The peer has everything and unchoked us: we are interested and request blocks.
    let sent: Vec<u8> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { data, .. } => Some(data.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    // interested (id 2) and request (id 6) messages appear in what we sent.
    assert!(
        sent.windows(5).any(|w| w == [0, 0, 0, 1, 2]),
        "no interested"
    );
    assert!(sent.windows(5).any(|w| w == [0, 0, 0, 13, 6]), "no request");
}

#[test]
fn extension_handshake_then_bitfield_is_accepted() {
    let actions =
        feed_after_handshake(&[extension_handshake(), Message::Bitfield(vec![0xfe].into())]);
    assert!(!disconnected(&actions), "{actions:?}");
}

#[test]
fn a_second_availability_message_is_still_refused() {
    let actions = feed_after_handshake(&[Message::HaveAll, Message::Bitfield(vec![0xfe].into())]);
    assert!(disconnected(&actions), "{actions:?}");
    let actions = feed_after_handshake(&[Message::Have { index: 1 }, Message::HaveNone]);
    assert!(disconnected(&actions), "{actions:?}");
}
