//! BEP 9 with real sessions over in-memory pipes: a magnet torrent fetches its metadata from
//! seeds, verifies it, waits for the driver's `metadata_ready`, then downloads over the same
//! connections; bad metadata and oversized `metadata_size` are refused.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use unchoke_core::bitfield::Bitfield;
use unchoke_core::info_hash::InfoHash;
use unchoke_core::session::{
    Action, Direction, EncryptionPolicy, Event, MAGNET_LEFT, MagnetOptions, MetadataReadyError,
    Session, SessionConfig,
};
use unchoke_core::time::Instant;
use unchoke_core::wire::{
    ExtensionHandshake, Handshake, Message, MetadataMessage, PeerId, Reserved, UT_METADATA,
};
use unchoke_sim::lab::{Behaviour, Swarm, make_content};

const KIB: usize = 1024;

/// 1,200 pieces of 1 KiB: 24,000 bytes of piece hashes, so the info dictionary spans two
/// 16 KiB metadata pieces.
fn two_piece_metadata_swarm() -> Swarm {
    let mut s = Swarm::new(make_content(1200 * KIB, 11), KIB as u32, 2 * 1024 * KIB);
    s.sniff();
    assert!(s.metainfo.info_bytes.len() > 16 * KIB);
    assert!(s.metainfo.info_bytes.len() < 32 * KIB);
    s
}

fn metadata_events(s: &Swarm, node: usize) -> Vec<(Instant, Event)> {
    s.events(node)
        .filter(|(_, e)| {
            matches!(
                e,
                Event::MetadataReceived { .. }
                    | Event::MetadataHashFailed { .. }
                    | Event::MetadataError { .. }
            )
        })
        .cloned()
        .collect()
}

#[test]
fn magnet_fetches_metadata_then_downloads_over_the_same_connection() {
    let mut s = two_piece_metadata_swarm();
    let seed = s.add_seed(Behaviour::Honest);
    let m = s.add_magnet_node(Swarm::node_config());
    let stats = s.session(m).stats(s.torrent(m), s.now()).expect("present");
    assert!(!stats.has_metadata);
    assert_eq!((stats.total_length, stats.piece_count), (0, 0));
    assert!(s.session(m).have(s.torrent(m)).is_none());
    s.introduce_to(m, &[seed]);

    assert!(s.run_until(Duration::from_secs(120), |s| s.is_complete(m)));
    s.settle();
    assert!(s.disk_matches(m), "downloaded bytes differ");

    let events = metadata_events(&s, m);
    assert_eq!(events.len(), 1, "{events:?}");
    let (got_at, Event::MetadataReceived { metainfo, .. }) = &events[0] else {
        panic!("expected MetadataReceived, got {events:?}");
    };
    assert_eq!(metainfo.info_bytes, s.metainfo.info_bytes);
    assert_eq!(metainfo.info_hash, s.metainfo.info_hash);
    assert_eq!(metainfo.info, s.metainfo.info);

    // Both metadata pieces were requested and delivered as ut_metadata messages.
    let requests: Vec<u32> = s
        .sniffed()
        .iter()
        .filter(|w| w.from == m && w.to == seed)
        .filter_map(|w| match &w.message {
            Some(Message::Extended { id: 2, payload }) => match MetadataMessage::decode(payload) {
                Ok(Some(MetadataMessage::Request { piece })) => Some(piece),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(requests, vec![0, 1]);
    // Nothing was requested before the metadata was in.
    let first_request = s
        .sniffed()
        .iter()
        .find(|w| w.from == m && matches!(w.message, Some(Message::Request(_))))
        .map(|w| w.at)
        .expect("blocks were requested");
    assert!(first_request >= *got_at);

    // One connection throughout: nobody closed anything before the download completed
    // (the seed drops the new seed afterwards: both sides have everything).
    let complete_at = s
        .events(m)
        .find(|(_, e)| matches!(e, Event::TorrentComplete { .. }))
        .map(|(t, _)| *t)
        .expect("complete event");
    assert!(
        s.disconnects().iter().all(|(t, _, _)| *t >= complete_at),
        "{:?}",
        s.disconnects()
    );
    assert!(
        s.sniffed()
            .iter()
            .filter(|w| w.message.is_none())
            .all(|w| w.at >= complete_at)
    );
    let stats = s.session(m).stats(s.torrent(m), s.now()).expect("present");
    assert!(stats.has_metadata && stats.complete);
    assert_eq!(stats.total_length, s.content.len() as u64);
}

#[test]
fn availability_sent_before_the_metadata_is_applied_after_it() {
    // Two partial seeds with disjoint halves: the magnet node can only finish if the
    // bitfields both sent before it knew the piece count were kept and applied.
    let mut s = two_piece_metadata_swarm();
    let pieces = s.metainfo.info.piece_count();
    let a = s.add_node(Some((0..pieces / 2).collect()), Behaviour::Honest);
    let b = s.add_node(Some((pieces / 2..pieces).collect()), Behaviour::Honest);
    let m = s.add_magnet_node(Swarm::node_config());
    s.introduce_to(m, &[a, b]);
    let done = s.run_until(Duration::from_secs(180), |s| s.is_complete(m));
    assert!(done, "{:?} {:?}", s.disconnects(), metadata_events(&s, m));
    s.settle();
    assert!(s.disk_matches(m));
    // Both partial seeds sent their bitfield before the metadata arrived.
    let received_at = metadata_events(&s, m)[0].0;
    for from in [a, b] {
        let bitfield_at = s
            .sniffed()
            .iter()
            .find(|w| {
                w.from == from && w.to == m && matches!(w.message, Some(Message::Bitfield(_)))
            })
            .map(|w| w.at)
            .expect("bitfield sent");
        assert!(bitfield_at < received_at);
    }
    assert!(
        s.disconnects()
            .iter()
            .all(|(_, _, why)| !why.contains("bitfield"))
    );
}

#[test]
fn a_peer_serving_bad_metadata_is_struck_and_the_fetch_completes_from_an_honest_one() {
    let mut s = two_piece_metadata_swarm();
    // The liar holds the right info-hash but serves altered info bytes.
    let mut bad = s.metainfo.clone();
    let mut bytes = bad.info_bytes.to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    bytes[middle + 16 * KIB / 2] ^= 0xff;
    bad.info_bytes = Bytes::from(bytes);
    let liar = s.add_node_with(&bad, None, Behaviour::Honest);
    let honest = s.add_seed(Behaviour::Honest);
    let m = s.add_magnet_node(Swarm::node_config());
    s.introduce_to(m, &[liar, honest]);

    assert!(s.run_until(Duration::from_secs(300), |s| s.is_complete(m)));
    s.settle();
    assert!(s.disk_matches(m));
    let events = metadata_events(&s, m);
    let received: Vec<_> = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::MetadataReceived { metainfo, .. } => Some(metainfo.info_bytes.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        received,
        vec![s.metainfo.info_bytes.clone()],
        "only verified metadata"
    );
    assert!(
        events
            .iter()
            .any(|(_, e)| matches!(e, Event::MetadataHashFailed { .. })),
        "the liar's pieces failed the hash check: {events:?}"
    );
    // The honest seed was never banned; the liar was dropped or banned for its metadata
    // unless it never got to send the piece that mattered.
    let liar_addr = s.addr(liar);
    let honest_addr = s.addr(honest);
    for (_, e) in s.events(m) {
        if let Event::PeerBanned { addr, .. } = e {
            assert_ne!(*addr, honest_addr, "honest seed banned");
            assert_eq!(*addr, liar_addr);
        }
    }
}

#[test]
fn a_sole_liar_is_dropped_for_its_metadata() {
    // Only the liar is there: every metadata piece is its, so it is certainly to blame.
    let mut s = two_piece_metadata_swarm();
    let mut bad = s.metainfo.clone();
    let mut bytes = bad.info_bytes.to_vec();
    bytes[100] ^= 1;
    bad.info_bytes = Bytes::from(bytes);
    let liar = s.add_node_with(&bad, None, Behaviour::Honest);
    let m = s.add_magnet_node(Swarm::node_config());
    s.introduce_to(m, &[liar]);
    assert!(s.run_until(Duration::from_secs(30), |s| {
        s.disconnects().iter().any(|(_, n, _)| *n == m)
    }));
    let (_, _, why) = s
        .disconnects()
        .iter()
        .find(|(_, n, _)| *n == m)
        .expect("a disconnect");
    assert!(why.contains("metadata that failed its hash check"), "{why}");
    s.settle();
    assert!(
        metadata_events(&s, m)
            .iter()
            .all(|(_, e)| matches!(e, Event::MetadataHashFailed { .. }))
    );
    let stats = s.session(m).stats(s.torrent(m), s.now()).expect("present");
    assert!(!stats.has_metadata);
}

/// A magnet session with one peer connection whose handshake has been exchanged; returns
/// the session, the connection and the actions so far.
fn magnet_with_raw_peer(
    config: SessionConfig,
    info_hash: InfoHash,
    extension: ExtensionHandshake,
    first: &[Message],
) -> (Session, unchoke_core::session::ConnId, Vec<Action>) {
    let now = Instant::from_secs(1);
    let mut s = Session::new(config, 5, now);
    let t = s
        .add_magnet(info_hash, MagnetOptions::default(), now)
        .expect("add magnet");
    let c = s.connection_opened(
        "10.0.0.9:6881".parse().expect("address"),
        Direction::Outbound(t),
        now,
    );
    let mut buf = BytesMut::new();
    Handshake {
        reserved: Reserved::NONE.with_fast().with_extension_protocol(),
        info_hash,
        peer_id: PeerId(*b"-LT2080-abcdefghijkl"),
    }
    .encode(&mut buf);
    extension.to_message().encode(&mut buf);
    for m in first {
        m.encode(&mut buf);
    }
    s.handle_bytes(c, &mut buf, now);
    let actions = std::iter::from_fn(|| s.poll_action()).collect();
    (s, c, actions)
}

fn sent_messages(actions: &[Action]) -> Vec<Message> {
    let mut out = Vec::new();
    for a in actions {
        if let Action::Send { data, .. } = a {
            let mut buf = BytesMut::from(&data[..]);
            if buf.first() == Some(&19) {
                let _ = buf.split_to(68);
            }
            let decoder = unchoke_core::wire::Decoder::new(None, Default::default());
            while let Ok(Some(m)) = decoder.decode(&mut buf) {
                out.push(m);
            }
        }
    }
    out
}

fn offers(size: u64) -> ExtensionHandshake {
    ExtensionHandshake {
        m: [(UT_METADATA.to_owned(), 3)].into_iter().collect(),
        metadata_size: Some(size),
        ..ExtensionHandshake::default()
    }
}

#[test]
fn an_oversized_metadata_size_is_refused() {
    let info_hash = InfoHash([7; 20]);
    let config = SessionConfig {
        max_metadata_size: 1024 * 1024,
        encryption: EncryptionPolicy::Disable,
        ..SessionConfig::default()
    };
    let (_, c, actions) =
        magnet_with_raw_peer(config.clone(), info_hash, offers(1024 * 1024 + 1), &[]);
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::Disconnect { conn, reason } if *conn == c && reason.to_string().contains("metadata_size")
        )),
        "{actions:?}"
    );
    // At the limit, the peer is asked for piece 0 under its own id (3).
    let (_, _, actions) = magnet_with_raw_peer(config, info_hash, offers(1024 * 1024), &[]);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Disconnect { .. }))
    );
    let sent = sent_messages(&actions);
    assert!(
        sent.iter()
            .any(|m| matches!(m, Message::Extended { id: 3, payload }
        if MetadataMessage::decode(payload) == Ok(Some(MetadataMessage::Request { piece: 0 }))))
    );
}

#[test]
fn before_the_metadata_we_say_have_none_offer_both_extensions_and_request_no_blocks() {
    let (_, _, actions) = magnet_with_raw_peer(
        SessionConfig {
            encryption: EncryptionPolicy::Disable,
            ..SessionConfig::default()
        },
        InfoHash([8; 20]),
        offers(40_000),
        &[Message::HaveAll, Message::Unchoke],
    );
    let sent = sent_messages(&actions);
    assert_eq!(sent.first(), Some(&Message::HaveNone));
    let ours = sent
        .iter()
        .find_map(|m| ExtensionHandshake::from_message(m).ok().flatten())
        .expect("our extension handshake");
    assert_eq!(ours.extension_id("ut_metadata"), Some(2));
    assert_eq!(ours.extension_id("ut_pex"), Some(1));
    assert_eq!(ours.metadata_size, None, "we have no metadata to offer");
    assert!(
        !sent
            .iter()
            .any(|m| matches!(m, Message::Request(_) | Message::Interested)),
        "{sent:?}"
    );
    // Two metadata pieces, two requests in flight to the one peer.
    let asked: Vec<u32> = sent
        .iter()
        .filter_map(|m| match m {
            Message::Extended { id: 3, payload } => match MetadataMessage::decode(payload) {
                Ok(Some(MetadataMessage::Request { piece })) => Some(piece),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(asked, vec![0, 1]);
}

#[test]
fn hostile_availability_before_the_metadata_is_bounded() {
    let config = SessionConfig {
        max_metadata_size: 20 * 1000, // at most 1,000 pieces
        encryption: EncryptionPolicy::Disable,
        ..SessionConfig::default()
    };
    let (_, _, actions) = magnet_with_raw_peer(
        config.clone(),
        InfoHash([9; 20]),
        offers(1000),
        &[Message::Have { index: 1000 }],
    );
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Disconnect { .. }))
    );
    let (_, _, actions) = magnet_with_raw_peer(
        config.clone(),
        InfoHash([9; 20]),
        offers(1000),
        &[Message::Bitfield(Bytes::from(vec![0xff; 126]))],
    );
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Disconnect { .. }))
    );
    let (_, _, actions) = magnet_with_raw_peer(
        config,
        InfoHash([9; 20]),
        offers(1000),
        &[
            Message::Bitfield(Bytes::from(vec![0xff; 125])),
            Message::Have { index: 999 },
        ],
    );
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Disconnect { .. })),
        "{actions:?}"
    );
}

#[test]
fn unsolicited_and_malformed_metadata_messages() {
    let info = b"d6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    let info_hash = InfoHash::of_info_bytes(info);
    // Data nobody asked for (piece 1 of a one-piece metadata is refused by the codec; piece
    // 0 before any request is ignored) never completes the fetch.
    let unasked = MetadataMessage::Data {
        piece: 0,
        total_size: info.len() as u64,
        data: Bytes::from_static(info),
    }
    .to_message(2);
    let ext = ExtensionHandshake {
        m: [(UT_METADATA.to_owned(), 3)].into_iter().collect(),
        ..ExtensionHandshake::default() // no metadata_size: we never ask it
    };
    let (s, _, actions) = magnet_with_raw_peer(
        SessionConfig {
            encryption: EncryptionPolicy::Disable,
            ..SessionConfig::default()
        },
        info_hash,
        ext,
        &[unasked],
    );
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Event(_))),
        "{actions:?}"
    );
    assert!(
        !s.stats(unchoke_core::session::TorrentId(0), Instant::from_secs(1))
            .expect("present")
            .has_metadata
    );
    // A payload that is not a dictionary ends the connection.
    let garbage = Message::Extended {
        id: 2,
        payload: Bytes::from_static(b"i5e"),
    };
    let (_, _, actions) = magnet_with_raw_peer(
        SessionConfig {
            encryption: EncryptionPolicy::Disable,
            ..SessionConfig::default()
        },
        info_hash,
        offers(info.len() as u64),
        &[garbage],
    );
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Disconnect { .. }))
    );
}

#[test]
fn metadata_is_served_in_16_kib_pieces_rate_limited_and_out_of_range_rejected() {
    let s0 = two_piece_metadata_swarm();
    let metainfo = s0.metainfo.clone();
    let now = Instant::from_secs(1);
    let mut s = Session::new(
        SessionConfig {
            encryption: EncryptionPolicy::Disable,
            ..SessionConfig::default()
        },
        3,
        now,
    );
    let t = s.add_torrent(&metainfo, None, now).expect("present");
    let c = s.connection_opened(
        "10.0.0.9:6881".parse().expect("address"),
        Direction::Inbound,
        now,
    );
    let mut buf = BytesMut::new();
    Handshake {
        reserved: Reserved::NONE.with_fast().with_extension_protocol(),
        info_hash: metainfo.info_hash,
        peer_id: PeerId(*b"-LT2080-abcdefghijkl"),
    }
    .encode(&mut buf);
    offers(0).to_message().encode(&mut buf);
    for piece in [0, 1, 2] {
        MetadataMessage::Request { piece }
            .to_message(2)
            .encode(&mut buf);
    }
    // Then more than the per-second budget.
    for _ in 0..20 {
        MetadataMessage::Request { piece: 0 }
            .to_message(2)
            .encode(&mut buf);
    }
    s.handle_bytes(c, &mut buf, now);
    let _ = t;
    let actions: Vec<Action> = std::iter::from_fn(|| s.poll_action()).collect();
    let replies: Vec<MetadataMessage> = sent_messages(&actions)
        .iter()
        .filter_map(|m| match m {
            Message::Extended { id: 3, payload } => MetadataMessage::decode(payload).ok().flatten(),
            _ => None,
        })
        .collect();
    let ours = sent_messages(&actions)
        .iter()
        .find_map(|m| ExtensionHandshake::from_message(m).ok().flatten())
        .expect("our handshake");
    assert_eq!(ours.metadata_size, Some(metainfo.info_bytes.len() as u64));
    assert_eq!(replies.len(), 23, "every request answered");
    let info = &metainfo.info_bytes;
    assert_eq!(
        replies[0],
        MetadataMessage::Data {
            piece: 0,
            total_size: info.len() as u64,
            data: info.slice(..16 * KIB),
        }
    );
    assert_eq!(
        replies[1],
        MetadataMessage::Data {
            piece: 1,
            total_size: info.len() as u64,
            data: info.slice(16 * KIB..),
        }
    );
    assert_eq!(replies[2], MetadataMessage::Reject { piece: 2 });
    let data = replies
        .iter()
        .filter(|m| matches!(m, MetadataMessage::Data { .. }))
        .count();
    assert_eq!(data, 8, "at most 8 pieces a second to one peer");
    // A second later the budget is back.
    let later = now + Duration::from_secs(1);
    let mut buf = BytesMut::new();
    MetadataMessage::Request { piece: 1 }
        .to_message(2)
        .encode(&mut buf);
    s.handle_bytes(c, &mut buf, later);
    let actions: Vec<Action> = std::iter::from_fn(|| s.poll_action()).collect();
    assert!(sent_messages(&actions).iter().any(|m| matches!(m, Message::Extended { id: 3, payload }
        if matches!(MetadataMessage::decode(payload), Ok(Some(MetadataMessage::Data { piece: 1, .. }))))));
}

#[test]
fn metadata_ready_checks_its_arguments_and_trackers_hear_left_16_kib() {
    let s0 = two_piece_metadata_swarm();
    let now = Instant::from_secs(1);
    let mut s = Session::new(
        SessionConfig {
            encryption: EncryptionPolicy::Disable,
            ..SessionConfig::default()
        },
        3,
        now,
    );
    let options = MagnetOptions {
        trackers: vec![vec!["http://tracker.example/announce".into()]],
        peers: vec!["10.0.0.1:6881".parse().expect("address")],
        display_name: Some("payload".into()),
    };
    let t = s
        .add_magnet(s0.metainfo.info_hash, options, now)
        .expect("present");
    assert_eq!(s.display_name(t), Some("payload"));
    assert!(
        s.add_magnet(s0.metainfo.info_hash, MagnetOptions::default(), now)
            .is_err()
    );
    assert_eq!(
        s.metadata_ready(t, None, now),
        Err(MetadataReadyError::NotAwaiting)
    );
    s.handle_timeout(now + Duration::from_secs(1));
    let actions: Vec<Action> = std::iter::from_fn(|| s.poll_action()).collect();
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Connect { addr, .. } if addr.port() == 6881))
    );
    let left: Vec<u64> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Announce { request, .. } => Some(request.left),
            _ => None,
        })
        .collect();
    assert_eq!(left, vec![MAGNET_LEFT]);
    assert_eq!(MAGNET_LEFT, 16 * 1024);
}

#[test]
fn the_torrent_waits_for_metadata_ready_which_checks_the_have_bitfield() {
    let mut s = two_piece_metadata_swarm();
    s.set_auto_metadata_ready(false);
    let seed = s.add_seed(Behaviour::Honest);
    let m = s.add_magnet_node(Swarm::node_config());
    s.introduce_to(m, &[seed]);
    assert!(s.run_until(Duration::from_secs(60), |s| {
        !metadata_events(s, m).is_empty()
    }));
    // Without metadata_ready nothing is requested, however long we wait.
    s.run_until(Duration::from_secs(30), |_| false);
    assert!(
        !s.sniffed()
            .iter()
            .any(|w| w.from == m && matches!(w.message, Some(Message::Request(_))))
    );
    let (t, now) = (s.torrent(m), s.now());
    let pieces = s.metainfo.info.piece_count();
    assert_eq!(
        s.session_mut(m)
            .metadata_ready(t, Some(Bitfield::new(pieces + 1)), now),
        Err(MetadataReadyError::HaveMismatch {
            got: pieces + 1,
            expected: pieces
        })
    );
    // The driver found the first half on disk already.
    let mut have = Bitfield::new(pieces);
    let plen = s.metainfo.info.piece_length as usize;
    for p in 0..pieces / 2 {
        have.set(p);
        let (a, b) = (p as usize * plen, (p as usize + 1) * plen);
        let chunk = s.content[a..b].to_vec();
        s.disk_mut(m)[a..b].copy_from_slice(&chunk);
    }
    s.session_mut(m)
        .metadata_ready(t, Some(have), now)
        .expect("ready");
    assert_eq!(
        s.session_mut(m).metadata_ready(t, None, now),
        Err(MetadataReadyError::NotAwaiting)
    );
    assert!(s.run_until(Duration::from_secs(120), |s| s.is_complete(m)));
    s.settle();
    assert!(s.disk_matches(m));
    let verified = s
        .events(m)
        .filter(|(_, e)| matches!(e, Event::PieceVerified { .. }))
        .count() as u32;
    assert_eq!(
        verified,
        pieces - pieces / 2,
        "only the missing half downloaded"
    );
    // The seed heard about the pieces we had through `have` messages.
    let haves = s
        .sniffed()
        .iter()
        .filter(|w| w.from == m && matches!(w.message, Some(Message::Have { .. })))
        .count() as u32;
    assert!(haves >= pieces / 2);
}
