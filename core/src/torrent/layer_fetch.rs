//! Fetching a v2-only torrent's piece layers from peers (BEP 52 `hash request`), after its
//! info dictionary came from a magnet link (`xt=urn:btmh:`): a bare info dictionary names
//! each file's `pieces root` but not the per-piece hashes a download checks pieces with.
//!
//! A magnet torrent whose verified info dictionary is v2-only and lacks layers goes from
//! [`Phase::FetchingMetadata`] to [`Phase::FetchingLayers`] instead of
//! [`Phase::AwaitingCheck`]; once every layer is known and checked it goes on to
//! `AwaitingCheck` with the layers filled in, as if a `.torrent` file had been loaded.
//! Meanwhile, as while fetching the info dictionary, no block is requested or served.
//!
//! Rules:
//! - Each file's piece layer, padded to a power of two, is asked for in chunks of
//!   [`CHUNK`] hashes (the most BEP 52 says a request should ask for), with no proof
//!   layers: a file's layer is checked whole, by hashing it up to the `pieces root` the
//!   verified info dictionary gives ([`crate::metainfo::merkle::root_from_piece_layer`]).
//! - Requests go to the least busy connected peer, at most
//!   [`super::metadata::MAX_IN_FLIGHT_PER_PEER`] at a time per peer; a rejected request goes
//!   to another peer (the rejecting one only when no other is there); one unanswered after
//!   [`super::metadata::METADATA_REQUEST_TIMEOUT`], or whose peer left, goes back to the
//!   pool.
//! - A `hashes` answer is taken only if it answers exactly a request in flight to that
//!   peer; anything else is ignored.
//! - A layer that does not hash up to its root strikes its senders as bad metadata does (a
//!   sole sender is dropped), and the file's layer is asked for again.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::metadata::{MAX_IN_FLIGHT_PER_PEER, METADATA_REQUEST_TIMEOUT};
use super::phase::Phase;
use super::{Ctx, Torrent};
use crate::metainfo::Metainfo;
use crate::metainfo::merkle::{self, Hash32};
use crate::time::Instant;
use crate::vocab::{ConnId, Event};
use crate::wire::{HashRequest, Message};

/// Hashes asked for per `hash request`: BEP 52 says a request SHOULD NOT ask for more.
pub(crate) const CHUNK: u32 = 512;

/// One chunk of a file's layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Not asked for; `avoid` rejected it or let it time out last.
    Missing { avoid: Option<ConnId> },
    /// Asked of `conn` at `at`.
    Requested { conn: ConnId, at: Instant },
    /// Received from `conn` at `addr` (kept to strike it if the layer fails).
    Received { conn: ConnId, addr: SocketAddr },
}

/// One file's piece layer being fetched.
#[derive(Debug)]
struct FileLayer {
    root: Hash32,
    /// The file's piece count: the layer's real hashes; the rest is padding.
    pieces: usize,
    /// The layer's hashes, padded to a power of two (what requests index).
    hashes: Vec<Hash32>,
    chunks: Vec<Chunk>,
}

impl FileLayer {
    fn new(root: Hash32, pieces: u64) -> Option<FileLayer> {
        let pieces = usize::try_from(pieces).ok()?;
        let width = pieces.checked_next_power_of_two()?;
        let chunk = CHUNK as usize;
        Some(FileLayer {
            root,
            pieces,
            hashes: vec![[0; 32]; width],
            chunks: vec![Chunk::Missing { avoid: None }; width.div_ceil(chunk)],
        })
    }

    /// The request for chunk `i`.
    fn request(&self, i: usize, piece_level: u32) -> HashRequest {
        let chunk = CHUNK as usize;
        let index = i * chunk;
        HashRequest {
            pieces_root: self.root,
            base_layer: piece_level,
            // Both fit a u32: the layer has at most one hash per piece.
            index: index as u32,
            length: (self.hashes.len() - index).min(chunk) as u32,
            proof_layers: 0,
        }
    }

    fn complete(&self) -> bool {
        self.chunks
            .iter()
            .all(|c| matches!(c, Chunk::Received { .. }))
    }
}

/// The fetch of a v2 magnet torrent's piece layers.
#[derive(Debug)]
pub(crate) struct LayerFetch {
    /// The verified info dictionary, parsed, its layers still missing.
    metainfo: Metainfo,
    files: Vec<FileLayer>,
    /// `log2(piece length / 16 KiB)`: the piece layer's level in BEP 52's numbering.
    piece_level: u32,
}

impl LayerFetch {
    /// The fetch of `metainfo`'s missing layers; `None` if it has no v2 part.
    pub(super) fn new(metainfo: Metainfo) -> Option<LayerFetch> {
        let v2 = metainfo.v2.as_ref()?;
        let piece_level = (v2.piece_length / merkle::BLOCK_SIZE as u32)
            .max(1)
            .trailing_zeros();
        let files = v2
            .missing_layers()
            .into_iter()
            .map(|(root, pieces)| FileLayer::new(root, pieces))
            .collect::<Option<Vec<_>>>()?;
        Some(LayerFetch {
            metainfo,
            files,
            piece_level,
        })
    }
}

impl Torrent {
    /// Verified metadata whose v2 layers are missing: fetch them (or, if none is missing
    /// after all, hand the metadata on at once).
    pub(super) fn start_layer_fetch(
        &mut self,
        metainfo: Metainfo,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        match LayerFetch::new(metainfo) {
            Some(fetch) => {
                self.phase = Phase::FetchingLayers(Box::new(fetch));
                self.request_layers(ctx, now);
                self.maybe_finish_layers(ctx);
            }
            None => self.phase = Phase::Failed,
        }
    }

    /// Sends hash requests for missing chunks to peers that can take one more.
    pub(super) fn request_layers(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let Phase::FetchingLayers(fetch) = &mut self.phase else {
            return;
        };
        let piece_level = fetch.piece_level;
        for file in &mut fetch.files {
            for i in 0..file.chunks.len() {
                let Chunk::Missing { avoid } = file.chunks[i] else {
                    continue;
                };
                let free = |p: &super::Peer| p.meta.in_flight < MAX_IN_FLIGHT_PER_PEER;
                let pick = self
                    .peers
                    .iter()
                    .filter(|(c, p)| free(p) && Some(**c) != avoid)
                    .min_by_key(|(c, p)| (p.meta.in_flight, **c))
                    .map(|(c, _)| *c)
                    .or_else(|| avoid.filter(|c| self.peers.get(c).is_some_and(free)));
                let Some(conn) = pick else {
                    return;
                };
                let Some(peer) = self.peers.get_mut(&conn) else {
                    return;
                };
                // The metadata fetch is over: its in-flight count now counts hash requests.
                peer.meta.in_flight += 1;
                file.chunks[i] = Chunk::Requested { conn, at: now };
                ctx.out
                    .send(conn, &Message::HashRequest(file.request(i, piece_level)));
            }
        }
    }

    /// A `hashes` message from `conn`: taken if it answers a request in flight to it.
    pub(super) fn on_layer_hashes(
        &mut self,
        conn: ConnId,
        request: HashRequest,
        hashes: &[u8],
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let Some(addr) = self.peers.get(&conn).map(|p| p.addr) else {
            return;
        };
        let Phase::FetchingLayers(fetch) = &mut self.phase else {
            return;
        };
        let piece_level = fetch.piece_level;
        let Some(file) = fetch
            .files
            .iter_mut()
            .find(|f| f.root == request.pieces_root)
        else {
            return;
        };
        let i = (request.index / CHUNK) as usize;
        let asked = matches!(file.chunks.get(i), Some(Chunk::Requested { conn: c, .. }) if *c == conn)
            && file.request(i, piece_level) == request;
        if !asked || hashes.len() != request.length as usize * 32 {
            return;
        }
        let start = request.index as usize;
        for (slot, hash) in file.hashes[start..].iter_mut().zip(hashes.chunks_exact(32)) {
            slot.copy_from_slice(hash);
        }
        file.chunks[i] = Chunk::Received { conn, addr };
        if let Some(peer) = self.peers.get_mut(&conn) {
            peer.meta.in_flight = peer.meta.in_flight.saturating_sub(1);
        }
        if file.complete() {
            self.check_layer(request.pieces_root, ctx, now);
        }
        self.request_layers(ctx, now);
        self.maybe_finish_layers(ctx);
    }

    /// A `hash reject` from `conn`: the chunk goes to another peer.
    pub(super) fn on_layer_reject(
        &mut self,
        conn: ConnId,
        request: HashRequest,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let Phase::FetchingLayers(fetch) = &mut self.phase else {
            return;
        };
        let Some(file) = fetch
            .files
            .iter_mut()
            .find(|f| f.root == request.pieces_root)
        else {
            return;
        };
        let i = (request.index / CHUNK) as usize;
        if matches!(file.chunks.get(i), Some(Chunk::Requested { conn: c, .. }) if *c == conn) {
            file.chunks[i] = Chunk::Missing { avoid: Some(conn) };
            if let Some(peer) = self.peers.get_mut(&conn) {
                peer.meta.in_flight = peer.meta.in_flight.saturating_sub(1);
            }
            self.request_layers(ctx, now);
        }
    }

    /// Requests unanswered for too long, or whose peer left, go back to the pool.
    pub(super) fn layer_timeouts(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let Phase::FetchingLayers(fetch) = &mut self.phase else {
            return;
        };
        for chunk in fetch.files.iter_mut().flat_map(|f| f.chunks.iter_mut()) {
            if let Chunk::Requested { conn, at } = *chunk {
                let gone = !self.peers.contains_key(&conn);
                if gone || now - at >= METADATA_REQUEST_TIMEOUT {
                    *chunk = Chunk::Missing { avoid: Some(conn) };
                    if let Some(peer) = self.peers.get_mut(&conn) {
                        peer.meta.in_flight = peer.meta.in_flight.saturating_sub(1);
                    }
                }
            }
        }
        self.request_layers(ctx, now);
    }

    /// A file's layer is whole: keep it if it hashes up to its root (and its padding is
    /// the padding BEP 52 defines), else strike its senders and ask again.
    fn check_layer(&mut self, root: Hash32, ctx: &mut Ctx<'_>, now: Instant) {
        let Phase::FetchingLayers(fetch) = &mut self.phase else {
            return;
        };
        let piece_length = fetch.metainfo.info.piece_length;
        let pad = merkle::zero_subtree_root(fetch.piece_level);
        let Some(file) = fetch.files.iter_mut().find(|f| f.root == root) else {
            return;
        };
        let layer = &file.hashes[..file.pieces];
        let good = file.hashes[file.pieces..].iter().all(|h| *h == pad)
            && merkle::root_from_piece_layer(layer, piece_length) == Some(root);
        if good {
            return;
        }
        let senders: Vec<(ConnId, SocketAddr)> = file
            .chunks
            .iter()
            .filter_map(|c| match c {
                Chunk::Received { conn, addr } => Some((*conn, *addr)),
                _ => None,
            })
            .collect();
        for chunk in &mut file.chunks {
            *chunk = Chunk::Missing { avoid: None };
        }
        self.strike_metadata_senders(
            senders,
            "sent piece layer hashes that fail their root",
            ctx,
            now,
        );
    }

    /// Every layer is whole and checked: the metadata, layers filled in, goes to the
    /// driver as a `.torrent` file's would ([`Event::MetadataReceived`]).
    fn maybe_finish_layers(&mut self, ctx: &mut Ctx<'_>) {
        let Phase::FetchingLayers(fetch) = &self.phase else {
            return;
        };
        if !fetch.files.iter().all(FileLayer::complete) {
            return;
        }
        let Phase::FetchingLayers(fetch) = std::mem::replace(&mut self.phase, Phase::Failed) else {
            return;
        };
        let LayerFetch {
            mut metainfo,
            files,
            ..
        } = *fetch;
        let layers: BTreeMap<Hash32, Vec<Hash32>> = files
            .into_iter()
            .map(|mut f| {
                f.hashes.truncate(f.pieces);
                (f.root, f.hashes)
            })
            .collect();
        let known = metainfo
            .v2
            .as_mut()
            .is_some_and(|v2| v2.fill_piece_layers(&layers));
        if !known {
            // Every layer was checked against its root, so this cannot happen; stay
            // failed rather than hand on metadata whose pieces cannot be checked.
            return;
        }
        self.phase = Phase::AwaitingCheck(Box::new(metainfo.clone()));
        ctx.out
            .push(crate::vocab::Action::Event(Event::MetadataReceived {
                torrent: self.id,
                metainfo: Box::new(metainfo),
            }));
    }
}
