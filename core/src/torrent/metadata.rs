//! BEP 9 inside a torrent: serving our info dictionary to peers, and, for a torrent added
//! from a magnet link, fetching it from them.
//!
//! A magnet torrent starts in [`Phase::FetchingMetadata`]: it dials and accepts peers like any
//! torrent, but keeps their availability aside ([`super::peer::PendingAvailability`]),
//! neither requests nor serves blocks, and asks peers that announced `ut_metadata` and a
//! sane `metadata_size` for the 16 KiB metadata pieces. Invariants:
//! - The fetch has one size at a time; only peers that announced that same size are asked,
//!   so one liar cannot make pieces from honest peers disagree.
//! - **The size is voted** (issue 17: a liar claiming 16 MiB and answering slowly stalled
//!   the fetch although an honest peer was connected). Each address offering metadata votes
//!   for its `metadata_size`; the size with most votes wins, and among equals the
//!   *smallest*: a liar inflating the size gains nothing, and a liar shrinking it is fetched
//!   in few pieces and then fails the hash, which drops it. A size no other peer confirms is
//!   thus fetched from its one peer only when nobody offers a better-supported (or smaller)
//!   one. The vote is taken again at every request round: when another size wins (a new
//!   peer confirms it, a source was demoted or left) the fetch switches to it, giving the
//!   requests in flight back.
//! - **Slow sources are demoted**: a request unanswered after [`METADATA_REQUEST_TIMEOUT`]
//!   makes its peer a demoted metadata source: it neither votes nor is asked while any
//!   other peer offers metadata (it stays connected: it may still serve blocks later, and a
//!   sole slow source is still better than none). A rejected request goes to another peer.
//! - At most [`MAX_IN_FLIGHT_PER_PEER`] requests per peer.
//! - Nothing is accepted before the SHA-1 of the whole dictionary equals the info-hash. On
//!   a mismatch every peer that sent a piece is struck, as for a bad piece: a sole sender
//!   is certainly the liar, takes a full strike and is dropped; among several senders any
//!   one may be honest, so each takes half a strike and stays (dropping an honest peer we
//!   dialled would lose it: a misbehaving peer is not redialled). The fetch then starts
//!   over with every piece from one peer, so the next failure has a single culprit.
//! - Verified metadata that does not parse is an event, never a panic; the torrent then
//!   stays in [`Phase::Failed`] (the bytes hash to the info-hash: asking again would give the
//!   same bytes).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;

use super::phase::Phase;
use super::{Ctx, Torrent};
use crate::info_hash::{InfoHash, InfoHashV2};
use crate::metainfo::{Metainfo, MetainfoError};
use crate::time::Instant;
use crate::vocab::{ConnId, DisconnectReason, Event};
use crate::wire::{
    METADATA_PIECE_LEN, MetadataMessage, WireError, metadata_piece_count, metadata_piece_len,
};

/// Metadata requests outstanding to one peer at once (as libtorrent: 2). With several peers
/// the pieces are spread over them.
pub(crate) const MAX_IN_FLIGHT_PER_PEER: u32 = 2;

/// A metadata request unanswered this long is given to another peer, and its peer is
/// demoted as a metadata source (see the module docs).
pub(crate) const METADATA_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A peer that rejected a metadata request is not asked again for this long (libtorrent
/// waits a minute too): it probably does not have the metadata yet.
const REST_AFTER_REJECT: Duration = Duration::from_secs(60);

/// Metadata requests we answer per peer per second; more are rejected. A request is ~30
/// bytes and its answer 16 KiB, so without a bound a peer could turn a trickle of requests
/// into a flood of uploads.
pub(crate) const SERVE_PER_SECOND: u32 = 8;

/// One metadata piece's state during the fetch.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// Not requested; `avoid` is a peer that just failed to deliver it.
    Missing { avoid: Option<ConnId> },
    /// Requested from `conn` at `at`.
    Requested { conn: ConnId, at: Instant },
    /// Received from `conn` at `addr` (kept to strike the sender if the whole fails).
    Received { conn: ConnId, addr: SocketAddr },
}

/// The fetch of a magnet torrent's info dictionary.
#[derive(Debug, Default)]
pub(crate) struct MetadataFetch {
    /// The size being fetched, once chosen.
    size: Option<u32>,
    slots: Vec<Slot>,
    buf: Vec<u8>,
    /// After a hash failure, all pieces come from one peer, so blame is certain.
    single_source: bool,
    /// Peers that let a request time out: asked (and heard in the size vote) only when no
    /// other peer offers metadata. Pruned of peers that left at every request round.
    demoted: BTreeSet<ConnId>,
}

impl MetadataFetch {
    fn start(&mut self, size: u32) {
        let pieces = metadata_piece_count(u64::from(size)) as usize;
        self.size = Some(size);
        self.slots = vec![Slot::Missing { avoid: None }; pieces];
        self.buf = vec![0; size as usize];
    }

    fn reset(&mut self) {
        self.size = None;
        self.slots = Vec::new();
        self.buf = Vec::new();
    }

    /// Whether any piece has arrived for the current size.
    fn has_received(&self) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s, Slot::Received { .. }))
    }
}

/// The winning size among `(size, address)` votes: most distinct addresses, then the
/// smallest size. `None` without votes.
fn voted_size(votes: impl IntoIterator<Item = (u64, IpAddr)>) -> Option<u64> {
    let distinct: BTreeSet<(u64, IpAddr)> = votes.into_iter().collect();
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for (size, _) in distinct {
        *counts.entry(size).or_default() += 1;
    }
    // Ascending sizes: `max_by_key` keeps the last maximum, so reverse to keep the smallest.
    counts
        .into_iter()
        .rev()
        .max_by_key(|(_, n)| *n)
        .map(|(size, _)| size)
}

impl Torrent {
    /// Whether the info dictionary is still being fetched from peers (a magnet link).
    pub(crate) fn is_fetching_metadata(&self) -> bool {
        matches!(
            self.phase,
            Phase::FetchingMetadata(_) | Phase::FetchingLayers(_)
        )
    }

    /// A `ut_metadata` message arrived from `conn`.
    pub(super) fn on_metadata_message(
        &mut self,
        conn: ConnId,
        payload: &Bytes,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let message = match MetadataMessage::decode(payload) {
            Ok(Some(m)) => m,
            Ok(None) => return, // an unknown msg_type: BEP 9 says to ignore it
            Err(e) => {
                return self.disconnect(
                    conn,
                    DisconnectReason::Protocol(WireError::Metadata(e)),
                    ctx,
                    now,
                );
            }
        };
        match message {
            MetadataMessage::Request { piece } => self.serve_metadata(conn, piece, ctx, now),
            MetadataMessage::Reject { piece } => {
                if self.take_request(conn, piece) {
                    if let Some(peer) = self.peers.get_mut(&conn) {
                        peer.meta.rested_until = Some(now + REST_AFTER_REJECT);
                    }
                    self.request_metadata(ctx, now);
                }
            }
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => self.on_metadata_data(conn, piece, total_size, &data, ctx, now),
        }
    }

    /// Answers a metadata request: the piece, or a reject when we lack the metadata, the
    /// piece is out of range, or the peer asks faster than [`SERVE_PER_SECOND`].
    fn serve_metadata(&mut self, conn: ConnId, piece: u32, ctx: &mut Ctx<'_>, now: Instant) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        // A peer that sends requests without telling us its id for them gets nothing.
        let Some(id) = peer.ext.ut_metadata else {
            return;
        };
        if now - peer.meta.serve_window >= Duration::from_secs(1) {
            peer.meta.serve_window = now;
            peer.meta.served_in_window = 0;
        }
        let answer = match &self.metadata {
            Some(info) if peer.meta.served_in_window < SERVE_PER_SECOND => {
                let total = info.len() as u64;
                metadata_piece_len(total, piece).map(|len| {
                    let start = piece as usize * METADATA_PIECE_LEN as usize;
                    MetadataMessage::Data {
                        piece,
                        total_size: total,
                        data: info.slice(start..start + len as usize),
                    }
                })
            }
            _ => None,
        };
        let message = match answer {
            Some(data) => {
                peer.meta.served_in_window += 1;
                data
            }
            None => MetadataMessage::Reject { piece },
        };
        ctx.out.send(conn, &message.to_message(id));
    }

    /// Forgets our request for `piece` at `conn`; returns whether there was one.
    fn take_request(&mut self, conn: ConnId, piece: u32) -> bool {
        let Phase::FetchingMetadata(fetch) = &mut self.phase else {
            return false;
        };
        let Some(slot) = fetch.slots.get_mut(piece as usize) else {
            return false;
        };
        if !matches!(slot, Slot::Requested { conn: c, .. } if *c == conn) {
            return false;
        }
        *slot = Slot::Missing { avoid: Some(conn) };
        if let Some(peer) = self.peers.get_mut(&conn) {
            peer.meta.in_flight = peer.meta.in_flight.saturating_sub(1);
        }
        true
    }

    fn on_metadata_data(
        &mut self,
        conn: ConnId,
        piece: u32,
        total_size: u64,
        data: &[u8],
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let Phase::FetchingMetadata(fetch) = &mut self.phase else {
            return; // late or unasked: we have the metadata already
        };
        let requested = matches!(
            fetch.slots.get(piece as usize),
            Some(Slot::Requested { conn: c, .. }) if *c == conn
        );
        if !requested {
            return; // unasked, or timed out and given to someone else meanwhile
        }
        if fetch.size.map(u64::from) != Some(total_size) {
            return self.disconnect(
                conn,
                DisconnectReason::Misbehaved("metadata total_size differs from metadata_size"),
                ctx,
                now,
            );
        }
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        peer.meta.in_flight = peer.meta.in_flight.saturating_sub(1);
        let addr = peer.addr;
        // The codec checked the length against `total_size`, which is the buffer's size.
        let start = piece as usize * METADATA_PIECE_LEN as usize;
        if let Some(dst) = fetch.buf.get_mut(start..start + data.len()) {
            dst.copy_from_slice(data);
        }
        if let Some(slot) = fetch.slots.get_mut(piece as usize) {
            *slot = Slot::Received { conn, addr };
        }
        if fetch
            .slots
            .iter()
            .all(|s| matches!(s, Slot::Received { .. }))
        {
            self.metadata_complete(ctx, now);
        } else {
            self.request_metadata(ctx, now);
        }
    }

    /// Every piece is in: verify against the info-hash, then parse.
    fn metadata_complete(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let Phase::FetchingMetadata(fetch) = &mut self.phase else {
            return;
        };
        // A v2-only magnet's swarm goes by the truncated SHA-256 (BEP 52); 160 bits of
        // either hash leave no room for a forgery.
        let matches = InfoHash::of_info_bytes(&fetch.buf) == self.info_hash
            || InfoHashV2::of_info_bytes(&fetch.buf).truncated() == self.info_hash;
        if !matches {
            let senders: Vec<(ConnId, SocketAddr)> = fetch
                .slots
                .iter()
                .filter_map(|s| match s {
                    Slot::Received { conn, addr } => Some((*conn, *addr)),
                    _ => None,
                })
                .collect();
            fetch.reset();
            fetch.single_source = true;
            self.strike_metadata_senders(
                senders,
                "sent metadata that failed its hash check",
                ctx,
                now,
            );
            self.request_metadata(ctx, now);
            return;
        }
        let bytes = std::mem::take(&mut fetch.buf);
        // The shape limits first, on the raw bytes (a dictionary listing a million files
        // would cost hundreds of MB to decode), then on the decoded paths.
        let shape = &ctx.config.shape;
        let parsed = shape
            .precheck_info(&bytes)
            .map_err(MetainfoError::from)
            .and_then(|()| Metainfo::from_info_bytes(&bytes))
            .and_then(|m| match m.info.check_shape(shape) {
                Ok(()) => Ok(m),
                Err(e) => Err(e.into()),
            });
        match parsed {
            Ok(metainfo)
                if metainfo.is_v2_only()
                    && !metainfo.v2.as_ref().is_some_and(|v2| v2.piece_layers_known) =>
            {
                self.start_layer_fetch(metainfo, ctx, now);
            }
            Ok(metainfo) => {
                self.phase = Phase::AwaitingCheck(Box::new(metainfo.clone()));
                ctx.out
                    .push(crate::vocab::Action::Event(Event::MetadataReceived {
                        torrent: self.id,
                        metainfo: Box::new(metainfo),
                    }));
            }
            Err(e) => {
                self.phase = Phase::Failed;
                ctx.out
                    .push(crate::vocab::Action::Event(Event::MetadataError {
                        torrent: self.id,
                        error: e,
                    }));
            }
        }
    }

    /// Metadata from `senders` failed its hash (the info dictionary, or a v2 piece layer):
    /// [`Event::MetadataHashFailed`], and as for a bad piece a sole sender is certainly
    /// the liar (a full strike, dropped); among several, each may be the honest one, so
    /// each takes half a strike and stays.
    pub(super) fn strike_metadata_senders(
        &mut self,
        mut senders: Vec<(ConnId, SocketAddr)>,
        why: &'static str,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        senders.sort();
        senders.dedup();
        let mut ips: Vec<_> = senders.iter().map(|(_, a)| a.ip()).collect();
        ips.sort();
        ips.dedup();
        let sole = ips.len() == 1;
        ctx.out
            .push(crate::vocab::Action::Event(Event::MetadataHashFailed {
                torrent: self.id,
            }));
        for (conn, addr) in senders {
            self.adjust_trust_ip(addr, if sole { -2 } else { -1 }, ctx, now);
            if sole && self.peers.contains_key(&conn) {
                self.disconnect(conn, DisconnectReason::Misbehaved(why), ctx, now);
            }
        }
    }

    /// Sends metadata requests for missing pieces to peers that can serve them.
    pub(super) fn request_metadata(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let Phase::FetchingMetadata(fetch) = &mut self.phase else {
            return;
        };
        let max = u64::from(ctx.config.max_metadata_size);
        let can_serve = |size: u64| (1..=max).contains(&size);
        fetch.demoted.retain(|c| self.peers.contains_key(c));
        // Who may serve: peers offering a sane size; the demoted only if nobody else does.
        let offers = |p: &super::Peer| {
            p.ext.ut_metadata.is_some() && p.ext.metadata_size.is_some_and(can_serve)
        };
        // A copy: the closures below outlive the changes to `fetch` (a handful of ids).
        let demoted = fetch.demoted.clone();
        let any_trusted = self
            .peers
            .iter()
            .any(|(c, p)| offers(p) && !demoted.contains(c));
        let in_pool =
            |c: &ConnId, p: &super::Peer| offers(p) && (!any_trusted || !demoted.contains(c));
        let winner = voted_size(
            self.peers
                .iter()
                .filter(|(c, p)| in_pool(c, p))
                .filter_map(|(_, p)| Some((p.ext.metadata_size?, p.addr.ip()))),
        )
        .and_then(|s| u32::try_from(s).ok());
        match (fetch.size, winner) {
            (Some(current), Some(w)) if current == w => {}
            (Some(_), None) if fetch.has_received() => return, // keep pieces for a return
            (current, w) => {
                // Another size won (or nobody serves this one any more): give the requests
                // in flight back and start over with the winner.
                if current.is_some() {
                    for slot in &fetch.slots {
                        if let Slot::Requested { conn, .. } = slot {
                            if let Some(peer) = self.peers.get_mut(conn) {
                                peer.meta.in_flight = peer.meta.in_flight.saturating_sub(1);
                            }
                        }
                    }
                    fetch.reset();
                }
                match w {
                    Some(size) => fetch.start(size),
                    None => return,
                }
            }
        }
        let size = fetch.size.map(u64::from);
        // In single-source mode, the peer already asked (if still here) gets every piece.
        let mut lock = fetch
            .single_source
            .then(|| {
                fetch.slots.iter().find_map(|s| match s {
                    Slot::Requested { conn, .. } | Slot::Received { conn, .. } => Some(*conn),
                    Slot::Missing { .. } => None,
                })
            })
            .flatten()
            .filter(|c| self.peers.contains_key(c));
        for piece in 0..fetch.slots.len() {
            let Slot::Missing { avoid } = fetch.slots[piece] else {
                continue;
            };
            let eligible = |(c, p): &(&ConnId, &super::Peer)| {
                in_pool(c, p)
                    && p.ext.metadata_size == size
                    && p.meta.in_flight < MAX_IN_FLIGHT_PER_PEER
                    && p.meta.rested_until.is_none_or(|t| t <= now)
                    && Some(**c) != avoid
                    && lock.is_none_or(|l| l == **c)
            };
            // The least busy eligible peer; the one that just failed only if no other can.
            let pick = self
                .peers
                .iter()
                .filter(eligible)
                .min_by_key(|(c, p)| (p.meta.in_flight, **c))
                .map(|(c, _)| *c)
                .or_else(|| {
                    let c = avoid?;
                    if lock.is_some_and(|l| l != c) {
                        return None;
                    }
                    let p = self.peers.get(&c)?;
                    let ok = in_pool(&c, p)
                        && p.ext.metadata_size == size
                        && p.meta.in_flight < MAX_IN_FLIGHT_PER_PEER
                        && p.meta.rested_until.is_none_or(|t| t <= now);
                    ok.then_some(c)
                });
            let Some(conn) = pick else {
                break;
            };
            let Some(peer) = self.peers.get_mut(&conn) else {
                break;
            };
            let Some(id) = peer.ext.ut_metadata else {
                break;
            };
            peer.meta.in_flight += 1;
            fetch.slots[piece] = Slot::Requested { conn, at: now };
            if fetch.single_source {
                lock = Some(conn);
            }
            // `piece` < the slot count, itself at most max_metadata_size / 16 KiB.
            let message = MetadataMessage::Request {
                piece: piece as u32,
            };
            ctx.out.send(conn, &message.to_message(id));
        }
    }

    /// Metadata requests unanswered for too long go back to the pool, to be given to
    /// another peer; a peer that left gives its requests back too. While fetching v2 piece
    /// layers, the same for hash requests (`layer_fetch.rs`).
    pub(super) fn metadata_timeouts(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        if matches!(self.phase, Phase::FetchingLayers(_)) {
            return self.layer_timeouts(ctx, now);
        }
        let Phase::FetchingMetadata(fetch) = &mut self.phase else {
            return;
        };
        for slot in fetch.slots.iter_mut() {
            if let Slot::Requested { conn, at } = *slot {
                let gone = !self.peers.contains_key(&conn);
                if gone || now - at >= METADATA_REQUEST_TIMEOUT {
                    *slot = Slot::Missing { avoid: Some(conn) };
                    if !gone {
                        fetch.demoted.insert(conn);
                    }
                    if let Some(peer) = self.peers.get_mut(&conn) {
                        peer.meta.in_flight = peer.meta.in_flight.saturating_sub(1);
                    }
                }
            }
        }
        self.request_metadata(ctx, now);
    }

    /// The torrent's metadata was verified and handed to the driver, which checked its
    /// storage: take it to become a normal torrent ([`Self::install_metadata`], or
    /// [`Self::restore_verified_metadata`] if the driver's answer does not fit). `None` if
    /// the torrent was not waiting for that. Between the two calls the torrent is in
    /// [`Phase::Failed`], which does nothing; the session makes both in one call.
    pub(crate) fn take_verified_metadata(&mut self) -> Option<Box<Metainfo>> {
        match std::mem::replace(&mut self.phase, Phase::Failed) {
            Phase::AwaitingCheck(m) => Some(m),
            other => {
                self.phase = other;
                None
            }
        }
    }

    /// Puts back metadata taken by [`Self::take_verified_metadata`] (the driver's `have` did
    /// not fit it).
    pub(crate) fn restore_verified_metadata(&mut self, metainfo: Box<Metainfo>) {
        self.phase = Phase::AwaitingCheck(metainfo);
    }
}
