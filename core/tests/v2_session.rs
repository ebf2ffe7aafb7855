//! BitTorrent v2 (BEP 52) in the session, in virtual time: v2-only and hybrid torrents made
//! by `create::V2Plan` go from a seeding session to a downloading one, every piece checked
//! by the `VerifyPiece` the core asks for (merkle roots; both hashes for a hybrid); a piece
//! matching one of a hybrid's hashes only fails; and a hybrid answers peers that know it by
//! its truncated v2 info-hash, until it is removed.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{drain, opening, sent_bytes};
use unchoke_core::create::{Content, CreateOptions, InputFile, PieceDigests, V2Plan};
use unchoke_core::embed::{MemoryStorage, verify_piece};
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{
    Action, Direction, DisconnectReason, Event, MagnetOptions, PieceHashes, Session, SessionConfig,
};
use unchoke_core::time::Instant;
use unchoke_core::wire::{Handshake, Reserved};

const PL: u32 = 32 * 1024;

/// Files of 40,000, 0 and 70,001 bytes (`a`, `empty`, `b`) and their bytes, in that order.
fn files() -> (Vec<InputFile>, Vec<Vec<u8>>) {
    let lengths = [("a", 40_000usize), ("empty", 0), ("b", 70_001)];
    let input = lengths
        .iter()
        .map(|(name, len)| InputFile {
            path: vec![(*name).to_owned()],
            length: *len as u64,
        })
        .collect();
    let data = lengths
        .iter()
        .enumerate()
        .map(|(i, (_, len))| (0..*len).map(|j| (j * 7 + i * 13) as u8).collect())
        .collect();
    (input, data)
}

/// A v2-only or hybrid torrent of [`files`], made as `unchoke create` makes one.
fn torrent(hybrid: bool) -> (Metainfo, Vec<Vec<u8>>) {
    let (input, data) = files();
    let plan = V2Plan::new(Content::Directory(input.clone()), Some(PL), hybrid).unwrap();
    // The plan orders the files as the file tree does (a, b, empty); so does the metainfo.
    let ordered: Vec<Vec<u8>> = plan
        .files()
        .iter()
        .map(|f| data[input.iter().position(|g| g.path == f.path).unwrap()].clone())
        .collect();
    let mut buf = Vec::new();
    let hashes: Vec<PieceDigests> = (0..plan.piece_count())
        .map(|piece| {
            plan.hash_piece(piece, &mut buf, |span, dst| {
                let start = span.file_offset as usize;
                dst.copy_from_slice(&ordered[span.file][start..start + dst.len()]);
                Ok::<(), ()>(())
            })
            .unwrap()
        })
        .collect();
    let bytes = plan.finish(&hashes, &CreateOptions::new("top")).unwrap();
    (Metainfo::from_bytes(&bytes).unwrap(), ordered)
}

/// The torrent's content as its pieces cut it: each file, then zeros up to the next piece
/// boundary where the v1 view has padding.
fn wire_content(m: &Metainfo, data: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut real = data.iter();
    for f in &m.info.files {
        if f.padding {
            out.resize(out.len() + f.length as usize, 0);
        } else {
            out.extend_from_slice(real.next().unwrap());
        }
    }
    out
}

/// How the downloader starts and what the link does to the seed's bytes.
#[derive(Clone, Copy, Default)]
struct Run {
    /// The downloader has only the info-hash (a magnet link): it fetches the info
    /// dictionary and, for a v2-only torrent, the piece layers from the seed.
    magnet: bool,
    /// Flip a byte in every `hashes` message the seed sends.
    corrupt_hashes: bool,
}

/// What happened on the downloader's side.
struct Outcome {
    content: Vec<u8>,
    failed_pieces: usize,
    events: Vec<Event>,
    disconnected: bool,
}

/// Runs a seed and a downloader of `m` over an in-memory link until the downloader has
/// every piece, its connection closes, or 120 s of virtual time pass.
fn transfer(m: &Metainfo, content: Vec<u8>, run: Run) -> Outcome {
    let layout = m.info.layout();
    let mut disk = [
        MemoryStorage::with_content(layout.clone(), content.clone()).unwrap(),
        MemoryStorage::new(layout).unwrap(),
    ];
    let hashes = PieceHashes::from_metainfo(m).unwrap();
    let seeded = disk[0].verified_pieces(&hashes);
    assert!(seeded.is_full(), "every piece of the seed's copy passes");
    assert_eq!(disk[1].verified_pieces(&hashes).count_ones(), 0);
    let mut now = Instant::ZERO;
    let mut s = [
        Session::new(SessionConfig::default(), 1, now),
        Session::new(SessionConfig::default(), 2, now),
    ];
    s[0].add_torrent(m, Some(seeded), now).unwrap();
    let t = if run.magnet {
        s[1].add_magnet(m.info_hash, MagnetOptions::default(), now)
            .unwrap()
    } else {
        s[1].add_torrent(m, None, now).unwrap()
    };
    let c = [
        s[0].connection_opened("127.0.0.1:50000".parse().unwrap(), Direction::Inbound, now),
        s[1].connection_opened(
            "127.0.0.1:6881".parse().unwrap(),
            Direction::Outbound(t),
            now,
        ),
    ];
    let mut inbox = [BytesMut::new(), BytesMut::new()];
    let mut out = Outcome {
        content: Vec::new(),
        failed_pieces: 0,
        events: Vec::new(),
        disconnected: false,
    };
    while !out.disconnected && s[1].have(t).is_none_or(|have| !have.is_full()) {
        assert!(now < Instant::from_secs(120), "the transfer stalled");
        for i in 0..2 {
            s[i].handle_bytes(c[i], &mut inbox[i], now);
            if s[i].poll_timeout().is_some_and(|deadline| deadline <= now) {
                s[i].handle_timeout(now);
            }
            while let Some(action) = s[i].poll_action() {
                match action {
                    Action::Send { data, .. } => {
                        let mut data = data.to_vec();
                        // A `hashes` frame: length, id 22, 48-byte request, hashes.
                        if run.corrupt_hashes && i == 0 && data.len() > 53 && data[4] == 22 {
                            data[53] ^= 1;
                        }
                        inbox[1 - i].extend_from_slice(&data)
                    }
                    Action::SendBlock { header, data, .. } => {
                        inbox[1 - i].extend_from_slice(&header);
                        inbox[1 - i].extend_from_slice(&data);
                    }
                    Action::WriteBlock {
                        torrent,
                        piece,
                        offset,
                        data,
                    } => {
                        let result = disk[i].write_block(piece, offset, &data);
                        s[i].disk_write_done(torrent, piece, result.map_err(Into::into), now);
                    }
                    Action::ReadBlock { conn, block, .. } => {
                        let result = disk[i].read_block(block).map_err(Into::into);
                        s[i].disk_read_done(conn, block, result, now);
                    }
                    Action::VerifyPiece {
                        torrent,
                        piece,
                        expected,
                        blocks,
                    } => {
                        assert!(expected.v2.is_some(), "a v2 piece is checked by its root");
                        let ok = verify_piece(&blocks, &expected);
                        out.failed_pieces += usize::from(!ok);
                        s[i].piece_hashed(torrent, piece, ok, now);
                    }
                    Action::Event(e) if i == 1 => {
                        if let Event::MetadataReceived { torrent, .. } = &e {
                            s[1].metadata_ready(*torrent, None, now).unwrap();
                        }
                        out.events.push(e);
                    }
                    Action::Disconnect { .. } if i == 1 => out.disconnected = true,
                    _ => {}
                }
            }
        }
        now += Duration::from_millis(10);
    }
    let [_, leech] = disk;
    out.content = leech.content().to_vec();
    out
}

#[test]
fn a_v2_only_torrent_goes_from_seed_to_downloader_checked_by_merkle_roots() {
    let (m, data) = torrent(false);
    assert!(m.is_v2_only());
    let content = wire_content(&m, &data);
    // a: 2 pieces, empty: none, b: 3 pieces; a's and b's tails padded to whole pieces.
    assert_eq!(content.len(), 5 * PL as usize);
    let out = transfer(&m, content.clone(), Run::default());
    assert_eq!(out.content, content);
    assert_eq!(out.failed_pieces, 0);
}

#[test]
fn a_hybrid_goes_from_seed_to_downloader_checked_by_both_hashes() {
    let (m, data) = torrent(true);
    assert!(m.is_hybrid());
    let content = wire_content(&m, &data);
    let hashes = PieceHashes::from_metainfo(&m).unwrap();
    for piece in 0..hashes.piece_count() {
        let expected = hashes.expected(piece).unwrap();
        assert!(
            expected.v1.is_some() && expected.v2.is_some(),
            "piece {piece}"
        );
    }
    let out = transfer(&m, content.clone(), Run::default());
    assert_eq!(out.content, content);
    assert_eq!(out.failed_pieces, 0);
}

#[test]
fn a_hybrid_piece_matching_only_one_of_its_hashes_fails() {
    let (m, data) = torrent(true);
    let content = wire_content(&m, &data);
    let hashes = PieceHashes::from_metainfo(&m).unwrap();
    let piece = 3u32; // b's second piece
    let range = piece as usize * PL as usize..(piece as usize + 1) * PL as usize;
    let good = &content[range.clone()];
    let mut bad = good.to_vec();
    bad[100] ^= 0xff;
    let expected = hashes.expected(piece).unwrap();
    assert!(verify_piece(&[good], &expected));
    // The v1 hash of the bad bytes with the real v2 root: caught by the v2 check.
    let v1_lies = unchoke_core::session::PieceHash {
        v1: Some(unchoke_core::embed::piece_sha1(&[&bad[..]])),
        ..expected.clone()
    };
    assert!(!verify_piece(&[&bad[..]], &v1_lies));
    // The real v1 hash: the bad bytes fail it whatever the v2 part says.
    assert!(!verify_piece(&[&bad[..]], &expected));
}

#[test]
fn a_hybrid_answers_peers_that_know_it_by_its_v2_hash_until_removed() {
    let (m, _) = torrent(true);
    let v1 = m.info_hash;
    let v2 = m.v2.as_ref().unwrap().info_hash.truncated();
    assert_ne!(v1, v2);
    let now = Instant::ZERO;
    let mut s = Session::new(SessionConfig::default(), 7, now);
    let t = s.add_torrent(&m, None, now).unwrap();
    assert_eq!(s.torrent_by_hash(&v2), Some(t));
    for hash in [v1, v2] {
        let conn = s.connection_opened("127.0.0.9:7000".parse().unwrap(), Direction::Inbound, now);
        let mut buf = opening(Reserved::NONE, hash, 9, &[]);
        s.handle_bytes(conn, &mut buf, now);
        let actions = drain(&mut s);
        let reply = sent_bytes(&actions, conn);
        let mut reply = BytesMut::from(&reply[..]);
        let hs = Handshake::decode(&mut reply).unwrap().unwrap();
        assert_eq!(hs.info_hash, hash, "answered with the hash the peer used");
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::Disconnect { conn: c, .. } if *c == conn)),
            "{actions:?}"
        );
        s.connection_closed(conn, now);
        drain(&mut s);
    }
    s.remove_torrent(t, now).unwrap();
    assert_eq!(s.torrent_by_hash(&v2), None);
    assert_eq!(s.torrent_by_hash(&v1), None);
    let conn = s.connection_opened("127.0.0.9:7001".parse().unwrap(), Direction::Inbound, now);
    let mut buf = opening(Reserved::NONE, v2, 9, &[]);
    s.handle_bytes(conn, &mut buf, now);
    let actions = drain(&mut s);
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::Disconnect { conn: c, reason: DisconnectReason::UnknownTorrent } if *c == conn
        )),
        "{actions:?}"
    );
}

#[test]
fn a_v2_magnet_fetches_the_info_dictionary_and_piece_layers_then_the_data() {
    let (m, data) = torrent(false);
    let content = wire_content(&m, &data);
    let out = transfer(
        &m,
        content.clone(),
        Run {
            magnet: true,
            ..Run::default()
        },
    );
    assert_eq!(out.content, content);
    assert_eq!(out.failed_pieces, 0);
    let received = out.events.iter().find_map(|e| match e {
        Event::MetadataReceived { metainfo, .. } => Some(metainfo.clone()),
        _ => None,
    });
    let received = received.expect("the metadata arrived");
    // The layers came from the seed and equal the .torrent file's.
    let v2 = received.v2.as_ref().unwrap();
    assert!(v2.piece_layers_known);
    assert_eq!(v2.files, m.v2.as_ref().unwrap().files);
}

#[test]
fn a_piece_layer_that_fails_its_root_strikes_its_sender() {
    let (m, data) = torrent(false);
    let content = wire_content(&m, &data);
    let run = Run {
        magnet: true,
        corrupt_hashes: true,
    };
    let out = transfer(&m, content, run);
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, Event::MetadataHashFailed { .. })),
        "{:?}",
        out.events
    );
    assert!(
        out.disconnected,
        "the sole sender of a bad layer is dropped"
    );
    assert!(
        !out.events
            .iter()
            .any(|e| matches!(e, Event::MetadataReceived { .. })),
        "nothing is handed on"
    );
}
