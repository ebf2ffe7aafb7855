//! A torrent's phase as a type: what exists depends on whether the metadata is known.
//!
//! A torrent added with its metainfo starts in [`Phase::Ready`]. One added from a magnet
//! link starts in [`Phase::FetchingMetadata`] and has no piece geometry, picker, piece
//! buffers or `written` bitfield at all: they live in [`Content`], which only
//! [`Phase::Ready`] holds, so code that needs them must first match on the phase and
//! cannot run with an invented geometry. Transitions:
//!
//! ```text
//! FetchingMetadata --hash ok, parses--> AwaitingCheck --metadata_ready--> Ready
//!        |  ^ hash mismatch: start over         |  ^ have of the wrong length:
//!        |  +-------------------------+         |  +---- stays AwaitingCheck
//!        +--hash ok, does not parse--> Failed   |
//! ```

use std::collections::BTreeMap;

use super::pieces::PieceBuffer;
use crate::bitfield::Bitfield;
use crate::metainfo::Metainfo;
use crate::picker::Picker;
use crate::piece_hashes::PieceHashes;
use crate::storage::Layout;
use crate::wire::PieceGeometry;

use super::layer_fetch::LayerFetch;
use super::metadata::MetadataFetch;

/// Where a torrent stands with its metadata.
#[derive(Debug)]
pub(crate) enum Phase {
    /// Added from a magnet link: fetching the info dictionary from peers. Nothing about
    /// pieces exists yet; peers' availability is kept aside per peer.
    FetchingMetadata(MetadataFetch),
    /// A v2-only torrent's verified info dictionary, fetching the piece layers it lacks
    /// from peers (BEP 52 hash requests; see `layer_fetch.rs`). Like `FetchingMetadata`,
    /// no pieces exist yet.
    FetchingLayers(Box<LayerFetch>),
    /// The metadata is verified and was handed to the driver in
    /// [`crate::vocab::Event::MetadataReceived`]; waiting for `Session::metadata_ready`
    /// (the driver checks its storage meanwhile).
    AwaitingCheck(Box<Metainfo>),
    /// Verified metadata that could not be parsed: nothing more will happen.
    Failed,
    /// The metadata is known: a normal torrent downloading or seeding.
    Ready(Box<Content>),
}

/// What a torrent has only once its metadata is known: the pieces' shape and hashes, what
/// we have and want (the picker), blocks in memory, and what may be on disk.
///
/// Invariant: `geometry`, `layout`, `picker` and `written` all describe the same piece
/// count, `piece_hashes` counts that many pieces, and `buffers` only holds pieces below it.
#[derive(Debug)]
pub(crate) struct Content {
    pub(super) piece_hashes: PieceHashes,
    pub(super) geometry: PieceGeometry,
    pub(super) layout: Layout,
    pub(super) picker: Picker,
    /// Pieces with blocks in memory (see `pieces.rs`).
    pub(super) buffers: BTreeMap<u32, PieceBuffer>,
    /// Pieces that may hold data on disk: those verified, those the start-up check found
    /// written but unverified, and every piece a `WriteBlock` was emitted for. Saved with
    /// resume data so a restart reads only these (the rest are known empty).
    pub(super) written: Bitfield,
    /// `TorrentComplete` was emitted and the torrent did not become incomplete since.
    pub(super) completion_announced: bool,
    /// Merkle trees above the piece layer of the v2 files peers asked hashes of, built on
    /// the first request (see `hash_exchange.rs`); one per file at most.
    pub(super) file_trees: BTreeMap<[u8; 32], crate::piece_hashes::FileTree>,
    /// BEP 47 padding bytes in the whole torrent (v2 and hybrid torrents' file ends).
    pub(super) padding_total: u64,
}

impl Content {
    /// The content of a torrent with these hashes and layout whose verified pieces are the
    /// picker's; `None` if the layout has no pieces or the hashes do not fit it.
    pub(super) fn new(piece_hashes: PieceHashes, layout: Layout, picker: Picker) -> Option<Self> {
        let geometry = PieceGeometry::new(layout.total_length(), layout.piece_length())?;
        let count = geometry.piece_count();
        if picker.num_pieces() != count
            || picker.have().len() != count
            || piece_hashes.piece_count() != count
        {
            return None;
        }
        let completion_announced = picker.is_complete();
        let written = picker.have().clone();
        let padding_total = (0..count)
            .map(|p| u64::from(piece_hashes.padding_in(p, layout.piece_len(p))))
            .sum();
        Some(Content {
            piece_hashes,
            geometry,
            layout,
            picker,
            buffers: BTreeMap::new(),
            written,
            completion_announced,
            file_trees: BTreeMap::new(),
            padding_total,
        })
    }

    /// The content described by verified metadata, with the driver's checked pieces.
    pub(super) fn from_metainfo(metainfo: &Metainfo, picker: Picker) -> Option<Self> {
        Content::new(
            PieceHashes::from_metainfo(metainfo).ok()?,
            metainfo.info.layout(),
            picker,
        )
    }

    /// Bytes of the verified pieces, BEP 47 padding left out.
    pub(super) fn bytes_have(&self) -> u64 {
        self.picker
            .have()
            .ones()
            .map(|p| u64::from(self.data_len(p)))
            .sum()
    }

    /// Bytes of wanted pieces not verified yet (padding not counted).
    pub(super) fn bytes_left(&self) -> u64 {
        self.picker
            .wanted()
            .ones()
            .map(|p| u64::from(self.data_len(p)))
            .sum()
    }

    /// Bytes of the pieces not skipped, had or not (padding left out).
    pub(super) fn wanted_bytes(&self) -> u64 {
        (0..self.geometry.piece_count())
            .filter(|&p| self.picker.priority(p) != crate::picker::Priority::Skip)
            .map(|p| u64::from(self.data_len(p)))
            .sum()
    }

    /// The torrent's size as users and trackers count it: its files' bytes, without the
    /// padding a v2 or hybrid torrent puts between them.
    pub(super) fn data_length(&self) -> u64 {
        self.layout
            .total_length()
            .saturating_sub(self.padding_total)
    }

    /// Bytes of `piece` that belong to files (its length less any padding at its end).
    fn data_len(&self, piece: u32) -> u32 {
        let len = self.layout.piece_len(piece);
        len - self.piece_hashes.padding_in(piece, len)
    }
}

impl Phase {
    /// The content, once the metadata is known.
    pub(super) fn content(&self) -> Option<&Content> {
        match self {
            Phase::Ready(c) => Some(c),
            _ => None,
        }
    }

    /// The content, mutably, once the metadata is known.
    pub(super) fn content_mut(&mut self) -> Option<&mut Content> {
        match self {
            Phase::Ready(c) => Some(c),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    use bytes::Bytes;

    use super::*;
    use crate::choker::Choker;
    use crate::info_hash::InfoHash;
    use crate::time::Instant;
    use crate::torrent::test_world::World;
    use crate::torrent::{MAGNET_LEFT, OUR_UT_METADATA_ID, Torrent, picker_for};
    use crate::vocab::{Action, ConnId, Direction, Event};
    use crate::wire::{ExtensionHandshake, Handshake, Message, MetadataMessage, PeerId, Reserved};
    use crate::wire::{UT_METADATA, UT_PEX};

    /// The peer's id for `ut_metadata` in its extension handshake.
    const THEIR_UT_METADATA: u8 = 3;

    /// A single-file info dictionary of `pieces` pieces of 16 KiB (the last one 100 bytes).
    fn info_bytes(pieces: u32) -> Vec<u8> {
        let length = u64::from(pieces - 1) * 16384 + 100;
        let mut out =
            format!("d6:lengthi{length}e4:name4:test12:piece lengthi16384e6:pieces").into_bytes();
        out.extend_from_slice(format!("{}:", pieces * 20).as_bytes());
        out.extend((0..pieces * 20).map(|i| i as u8));
        out.push(b'e');
        out
    }

    fn magnet(info_hash: InfoHash) -> Torrent {
        let choker = Choker::new(Default::default(), Instant::ZERO);
        Torrent::new_magnet(crate::vocab::TorrentId(0), info_hash, choker)
    }

    /// Connects a fast, extension-speaking peer as `conn` that offers metadata of `size`.
    fn connect(t: &mut Torrent, w: &mut World, conn: u64, size: u64) -> ConnId {
        let conn = ConnId(conn);
        let addr: SocketAddr = format!("127.0.0.1:{}", 7000 + conn.0)
            .parse()
            .expect("addr");
        let ours = Reserved::NONE.with_fast().with_extension_protocol();
        let theirs = Handshake {
            reserved: ours,
            info_hash: t.info_hash,
            peer_id: PeerId([conn.0 as u8; 20]),
        };
        let dir = Direction::Outbound(t.id);
        t.add_peer(
            conn,
            addr,
            dir,
            ours,
            &theirs,
            None,
            &mut w.ctx(),
            Instant::ZERO,
        );
        let hs = ExtensionHandshake {
            m: BTreeMap::from([
                (UT_METADATA.to_owned(), THEIR_UT_METADATA),
                (UT_PEX.to_owned(), 0),
            ]),
            v: None,
            p: None,
            reqq: None,
            metadata_size: Some(size),
            yourip: None,
            upload_only: None,
        };
        t.on_extension_handshake(conn, &hs, &mut w.ctx(), Instant::ZERO);
        conn
    }

    /// Answers metadata piece `piece` of `info` from `conn`.
    fn send_piece(t: &mut Torrent, w: &mut World, conn: ConnId, info: &[u8], piece: u32) {
        let start = piece as usize * 16384;
        let end = (start + 16384).min(info.len());
        let data = MetadataMessage::Data {
            piece,
            total_size: info.len() as u64,
            data: Bytes::copy_from_slice(&info[start..end]),
        };
        let Message::Extended { payload, .. } = data.to_message(THEIR_UT_METADATA) else {
            panic!("a ut_metadata message is an extended message");
        };
        let message = Message::Extended {
            id: OUR_UT_METADATA_ID,
            payload,
        };
        t.handle_message(conn, message, &mut w.ctx(), Instant::ZERO);
    }

    fn disconnects(actions: &[Action]) -> Vec<(ConnId, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Disconnect { conn, reason } => Some((*conn, format!("{reason:?}"))),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_magnet_torrent_has_no_pieces_while_fetching() {
        let t = magnet(InfoHash([7; 20]));
        assert!(matches!(t.phase, Phase::FetchingMetadata(_)));
        assert!(t.awaiting_metadata());
        assert!(t.have().is_none() && t.written().is_none() && t.have_and_written().is_none());
        assert_eq!(t.piece_priority(0), None);
        assert!(!t.is_complete());
        assert_eq!(t.left(), MAGNET_LEFT);
        let stats = t.stats(Instant::ZERO);
        assert!(!stats.has_metadata && !stats.complete);
        assert_eq!(
            (stats.piece_count, stats.total_length, stats.bytes_have),
            (0, 0, 0)
        );
    }

    #[test]
    fn fetching_then_awaiting_check_then_ready_keeps_peers_and_their_bitfields() {
        let info = info_bytes(20); // 400 bytes of hashes: one metadata piece
        let info_hash = InfoHash::of_info_bytes(&info);
        let mut t = magnet(info_hash);
        let mut w = World::new();
        let conn = connect(&mut t, &mut w, 1, info.len() as u64);
        // Before the metadata: a bitfield is kept aside, and nothing is requested but it.
        let bits = Message::Bitfield(Bytes::from_static(&[0xff, 0xff, 0xf0]));
        t.handle_message(conn, bits, &mut w.ctx(), Instant::ZERO);
        assert!(t.peers.contains_key(&conn));
        w.drain();
        // Requests before the metadata are refused (fast peer): we have nothing.
        let req = crate::wire::BlockRequest {
            index: 0,
            begin: 0,
            length: 16384,
        };
        t.handle_message(conn, Message::Request(req), &mut w.ctx(), Instant::ZERO);
        assert!(
            w.drain()
                .iter()
                .all(|a| !matches!(a, Action::ReadBlock { .. }))
        );

        send_piece(&mut t, &mut w, conn, &info, 0);
        assert!(matches!(t.phase, Phase::AwaitingCheck(_)));
        assert!(t.awaiting_metadata());
        let received = w.drain();
        assert!(
            received
                .iter()
                .any(|a| matches!(a, Action::Event(Event::MetadataReceived { .. })))
        );

        let metainfo = t.take_verified_metadata().expect("awaiting the check");
        let layout = metainfo.info.layout();
        let picker = picker_for(&layout, None).expect("picker");
        t.install_metadata(&metainfo, picker, &mut w.ctx(), Instant::ZERO)
            .expect("installs");
        let c = t.phase.content().expect("ready");
        assert_eq!(c.geometry.piece_count(), 20);
        assert_eq!(c.piece_hashes.piece_count(), 20);
        // The kept bitfield counts now: the peer has the 20 pieces, so every one is wanted
        // from it and requests go out.
        assert_eq!(c.picker.availability(19), 1);
        assert_eq!(t.peers.get(&conn).map(|p| p.has.count_ones()), Some(20));
        let after = w.drain();
        assert!(disconnects(&after).is_empty());
        assert!(t.peers.get(&conn).is_some_and(|p| p.am_interested));
        assert_eq!(t.left(), 19 * 16384 + 100);
        assert!(t.stats(Instant::ZERO).has_metadata);
        // Installing twice is refused: the torrent is no longer waiting.
        assert!(t.take_verified_metadata().is_none());
    }

    #[test]
    fn a_kept_bitfield_of_the_wrong_length_drops_only_that_peer() {
        let info = info_bytes(20);
        let mut t = magnet(InfoHash::of_info_bytes(&info));
        let mut w = World::new();
        let good = connect(&mut t, &mut w, 1, info.len() as u64);
        let bad = connect(&mut t, &mut w, 2, info.len() as u64);
        let now = Instant::ZERO;
        t.handle_message(good, Message::HaveAll, &mut w.ctx(), now);
        // 4 bytes = up to 32 pieces: within the bound while fetching, wrong once known.
        let four = Message::Bitfield(Bytes::from_static(&[0xff, 0, 0, 0]));
        t.handle_message(bad, four, &mut w.ctx(), now);
        assert!(
            t.peers.contains_key(&bad),
            "kept while the piece count is unknown"
        );
        send_piece(&mut t, &mut w, good, &info, 0);
        let metainfo = t.take_verified_metadata().expect("awaiting the check");
        let picker = picker_for(&metainfo.info.layout(), None).expect("picker");
        w.drain();
        t.install_metadata(&metainfo, picker, &mut w.ctx(), now)
            .expect("installs");
        let dropped = disconnects(&w.drain());
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].0, bad);
        assert!(dropped[0].1.contains("bitfield size"), "{dropped:?}");
        assert!(t.peers.contains_key(&good) && !t.peers.contains_key(&bad));
        let c = t.phase.content().expect("ready");
        assert_eq!(
            c.picker.availability(0),
            1,
            "the dropped peer's bits are not counted"
        );
        // Once ready, a new peer's bitfield of the wrong length is refused, not a panic.
        let late = connect(&mut t, &mut w, 3, info.len() as u64);
        w.drain();
        let wrong = Message::Bitfield(Bytes::from_static(&[0xff]));
        t.handle_message(late, wrong, &mut w.ctx(), now);
        let dropped = disconnects(&w.drain());
        assert_eq!(dropped.len(), 1);
        assert!(matches!(
            w.closed.last(),
            Some(c) if *c == late
        ));
        assert!(!t.peers.contains_key(&late));
    }

    #[test]
    fn verified_metadata_that_does_not_parse_fails_for_good() {
        let info = b"d4:name4:teste".to_vec(); // a dictionary, but no pieces
        let mut t = magnet(InfoHash::of_info_bytes(&info));
        let mut w = World::new();
        let conn = connect(&mut t, &mut w, 1, info.len() as u64);
        send_piece(&mut t, &mut w, conn, &info, 0);
        assert!(matches!(t.phase, Phase::Failed));
        assert!(
            w.drain()
                .iter()
                .any(|a| matches!(a, Action::Event(Event::MetadataError { .. })))
        );
        assert!(t.take_verified_metadata().is_none());
        assert!(t.have().is_none());
    }

    #[test]
    fn metadata_beyond_the_shape_limits_is_refused_before_it_is_decoded() {
        let info = info_bytes(20); // one file
        let mut t = magnet(InfoHash::of_info_bytes(&info));
        let mut w = World::new();
        w.config.shape.max_files = 0;
        let conn = connect(&mut t, &mut w, 1, info.len() as u64);
        send_piece(&mut t, &mut w, conn, &info, 0);
        assert!(matches!(t.phase, Phase::Failed));
        let refused = w.drain().into_iter().find_map(|a| match a {
            Action::Event(Event::MetadataError { error, .. }) => Some(error),
            _ => None,
        });
        assert!(
            matches!(
                refused,
                Some(crate::metainfo::MetainfoError::Shape(
                    crate::metainfo::ShapeError::TooManyFiles { .. }
                ))
            ),
            "{refused:?}"
        );
    }

    #[test]
    fn a_hash_mismatch_keeps_fetching() {
        let info = info_bytes(20);
        let mut t = magnet(InfoHash([9; 20])); // not the hash of `info`
        let mut w = World::new();
        let conn = connect(&mut t, &mut w, 1, info.len() as u64);
        send_piece(&mut t, &mut w, conn, &info, 0);
        assert!(matches!(t.phase, Phase::FetchingMetadata(_)));
        let actions = w.drain();
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, Action::Event(Event::MetadataHashFailed { .. })))
        );
        assert_eq!(disconnects(&actions).len(), 1, "a sole sender is dropped");
    }

    #[test]
    fn a_picker_that_does_not_fit_is_refused_and_the_metadata_kept() {
        let info = info_bytes(20);
        let mut t = magnet(InfoHash::of_info_bytes(&info));
        let mut w = World::new();
        let conn = connect(&mut t, &mut w, 1, info.len() as u64);
        send_piece(&mut t, &mut w, conn, &info, 0);
        let metainfo = t.take_verified_metadata().expect("awaiting the check");
        let wrong = crate::picker::Picker::new(16384, 16384).expect("picker");
        let result = t.install_metadata(&metainfo, wrong, &mut w.ctx(), Instant::ZERO);
        assert!(result.is_err());
        assert!(t.awaiting_metadata());
        t.restore_verified_metadata(metainfo);
        assert!(matches!(t.phase, Phase::AwaitingCheck(_)));
        assert!(
            t.peers.contains_key(&conn),
            "peers stay through a refused install"
        );
    }
}
