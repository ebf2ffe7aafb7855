//! One torrent's swarm state: its peers, what we have and want (the [`Picker`]), who we
//! upload to (the [`Choker`]), pieces awaiting verification, and where new peers come from.
//!
//! The [`crate::session::Session`] owns torrents, routes each established connection to
//! one, and hands it the output queue. Everything here is driven by method calls carrying
//! `now`; nothing reads a clock.
//!
//! Invariants:
//! - A piece counts as ours only after its hash matched **and** every block write of it
//!   completed without error; only then is `have` broadcast.
//! - A piece's in-memory blocks stay until its verdict and its writes are all in, so a
//!   failed piece is never re-requested while an old (bad) write could still land after a
//!   new (good) one.
//! - Peer state and picker state change together: a request recorded in the picker for a
//!   peer is in that peer's `outstanding` list and vice versa.

mod metadata;
mod peer;
mod pex;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use bytes::{Bytes, BytesMut};

use crate::bitfield::Bitfield;
use crate::choker::{ChokeDecision, Choker, PeerChokeInfo, RoundKind};
use crate::info_hash::InfoHash;
use crate::picker::{self, PeerKey, Picker, Priority, Receipt};
use crate::storage::Layout;
use crate::time::Instant;
use crate::vocab::outbox::Outbox;
use crate::vocab::{
    Action, ConnId, Direction, DisconnectReason, Event, FailedPeer, SessionConfig, TorrentId,
};
use crate::wire::{
    self, Decoder, ExtensionHandshake, Handshake, Limits, Message, PieceGeometry, UT_METADATA,
    UT_PEX,
};

use metadata::{MetadataFetch, Phase};
pub(crate) use peer::Peer;

/// The id we ask peers to send `ut_pex` messages under (our handshake's `m`).
pub(crate) const OUR_UT_PEX_ID: u8 = 1;
/// The id we ask peers to send `ut_metadata` messages under (our handshake's `m`).
pub(crate) const OUR_UT_METADATA_ID: u8 = 2;

/// What a magnet torrent announces as `left` before its size is known: libtorrent's
/// convention (16 KiB). It must not be 0, or trackers would count us as a seed and send no
/// seeds back.
pub const MAGNET_LEFT: u64 = 16 * 1024;

/// A snapshot of one torrent's progress, for progress bars and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorrentStats {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Number of pieces.
    pub piece_count: u32,
    /// Pieces verified and stored.
    pub pieces_have: u32,
    /// Pieces wanted (not skipped) and not yet verified.
    pub pieces_missing: u32,
    /// Bytes of verified pieces.
    pub bytes_have: u64,
    /// Total size.
    pub total_length: u64,
    /// Payload bytes received (including duplicates and data that failed verification).
    pub downloaded: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Payload bytes received that were thrown away (duplicates, failed pieces).
    pub wasted: u64,
    /// Bytes per second received (20 s average over all peers).
    pub download_rate: u64,
    /// Bytes per second sent.
    pub upload_rate: u64,
    /// Established connections.
    pub peers: usize,
    /// Addresses known and not given up on: waiting to be dialled or being dialled.
    pub known_peers: usize,
    /// Connections we are currently unchoking.
    pub unchoked: usize,
    /// Pieces that failed their hash check.
    pub hash_failures: u64,
    /// Every wanted piece is verified and stored.
    pub complete: bool,
    /// Endgame mode: every missing block is requested.
    pub endgame: bool,
    /// Whether the torrent's metadata (info dictionary) is known. `false` for a magnet
    /// torrent until [`crate::session::Session::metadata_ready`]; meanwhile the piece and
    /// byte counts above are 0.
    pub has_metadata: bool,
}

/// Blocks of a piece being downloaded and the bookkeeping of its verification.
#[derive(Debug)]
struct PieceBuffer {
    blocks: Vec<Option<Bytes>>,
    writes_pending: u32,
    write_failed: bool,
    /// `Some(ok)` once the driver reported the hash result.
    hashed: Option<bool>,
}

/// An address we may dial.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    failures: u32,
    not_before: Instant,
    /// A connection to it was established before (it went away rather than refusing).
    connected: bool,
}

/// Shared mutable context a torrent needs from its session for one call.
pub(crate) struct Ctx<'a> {
    pub(crate) out: &'a mut Outbox,
    pub(crate) rng: &'a mut fastrand::Rng,
    pub(crate) config: &'a SessionConfig,
    /// Addresses that are this session (its listen address, or found dialling itself):
    /// never candidates, whoever names them (a PEX list includes its recipient).
    pub(crate) own_addrs: &'a std::collections::BTreeSet<SocketAddr>,
    /// Connections this call closed (the session forgets their routes).
    pub(crate) closed: &'a mut Vec<ConnId>,
}

/// One torrent's swarm state. See the module docs.
#[derive(Debug)]
pub(crate) struct Torrent {
    pub(crate) id: TorrentId,
    pub(crate) info_hash: InfoHash,
    piece_hashes: Vec<[u8; 20]>,
    geometry: PieceGeometry,
    layout: Layout,
    picker: Picker,
    choker: Choker,
    peers: BTreeMap<ConnId, Peer>,
    by_key: BTreeMap<PeerKey, ConnId>,
    next_key: PeerKey,
    buffers: BTreeMap<u32, PieceBuffer>,
    candidates: BTreeMap<SocketAddr, Candidate>,
    connecting: BTreeSet<SocketAddr>,
    /// Addresses given up on after too many failures (at most `max_candidates`; more are
    /// only counted in `given_up_overflow`), for [`crate::session::GiveUpReason`].
    given_up: BTreeMap<SocketAddr, FailedPeer>,
    given_up_overflow: usize,
    /// Whether any peer was ever given, found or connected: a torrent that never had one
    /// gives up saying so, not that its peers failed.
    peers_seen: bool,
    /// Trust per IP, in half-strikes: +1 per verified piece it contributed to (capped), −1
    /// per failed piece it shared with others, −2 per failed piece it sent alone. Banned at
    /// −2 × `max_strikes`. An honest peer caught in pieces a liar also touched earns its
    /// trust back with every good piece; a liar never does.
    trust: BTreeMap<IpAddr, i32>,
    banned: BTreeSet<IpAddr>,
    downloaded: u64,
    uploaded: u64,
    wasted: u64,
    hash_failures: u64,
    completion_announced: bool,
    /// Whether the metadata is known, being fetched (magnet) or waiting for the driver.
    phase: Phase,
    /// The info dictionary's bytes, served to peers (BEP 9). `None` while we lack them and
    /// for private torrents, which BEP 27 keeps off metadata exchange and PEX.
    metadata: Option<Bytes>,
    private: bool,
    /// PEX messages ignored (too frequent or malformed), for tests and statistics.
    pex_ignored: u64,
    /// A magnet link's `dn`, shown until the metadata gives the real name.
    pub(crate) display_name: Option<String>,
    /// Pieces that may hold data on disk: those verified, those the start-up check found
    /// written but unverified, and every piece a `WriteBlock` was emitted for. Saved with
    /// resume data so a restart reads only these (the rest are known empty).
    written: Bitfield,
    /// Never download: not interested in anyone, no requests, every block that arrives is
    /// discarded unwritten. For data that must not change (`seed --partial` over read-only
    /// storage); see [`Torrent::set_upload_only`].
    upload_only: bool,
}

impl Torrent {
    pub(crate) fn new(
        id: TorrentId,
        info_hash: InfoHash,
        piece_hashes: Vec<[u8; 20]>,
        layout: Layout,
        picker: Picker,
        choker: Choker,
    ) -> Option<Self> {
        let geometry = PieceGeometry::new(layout.total_length(), layout.piece_length())?;
        let completion_announced = picker.is_complete();
        let written = picker.have().clone();
        Some(Torrent {
            id,
            info_hash,
            piece_hashes,
            geometry,
            layout,
            picker,
            choker,
            peers: BTreeMap::new(),
            by_key: BTreeMap::new(),
            next_key: 0,
            buffers: BTreeMap::new(),
            candidates: BTreeMap::new(),
            connecting: BTreeSet::new(),
            given_up: BTreeMap::new(),
            given_up_overflow: 0,
            peers_seen: false,
            trust: BTreeMap::new(),
            banned: BTreeSet::new(),
            downloaded: 0,
            uploaded: 0,
            wasted: 0,
            hash_failures: 0,
            completion_announced,
            phase: Phase::Ready,
            metadata: None,
            private: false,
            pex_ignored: 0,
            display_name: None,
            written,
            upload_only: false,
        })
    }

    /// A torrent known only by its info-hash (a magnet link): it fetches its metadata from
    /// peers first. Until then the piece geometry is a one-piece placeholder that nothing
    /// reads: availability is kept aside, no block is requested or served.
    pub(crate) fn new_magnet(id: TorrentId, info_hash: InfoHash, choker: Choker) -> Option<Self> {
        let placeholder = wire::MAX_BLOCK_LEN;
        let layout = Layout::new(placeholder, [u64::from(placeholder)]).ok()?;
        let picker = Picker::new(placeholder, u64::from(placeholder)).ok()?;
        let mut t = Torrent::new(id, info_hash, Vec::new(), layout, picker, choker)?;
        t.phase = Phase::Fetching(MetadataFetch::default());
        t.completion_announced = false;
        Some(t)
    }

    /// Sets the info dictionary served to peers and whether the torrent is private.
    pub(crate) fn set_info_bytes(&mut self, info_bytes: Bytes, private: bool) {
        self.private = private;
        self.metadata = (!private).then_some(info_bytes);
    }

    /// PEX messages ignored so far (too frequent or malformed).
    pub(crate) fn pex_ignored(&self) -> u64 {
        self.pex_ignored
    }

    /// The extension handshake we send a peer at `addr`: the extensions we speak (disabled
    /// for a private torrent) and, once we have it, the metadata's size.
    fn extension_handshake(&self, addr: SocketAddr, config: &SessionConfig) -> ExtensionHandshake {
        // A private torrent sends id 0 (disabled): `m` is additive, so a magnet torrent
        // that turned out private must switch off what its first handshake offered.
        let (metadata_id, pex_id) = if self.private {
            (0, 0)
        } else {
            (OUR_UT_METADATA_ID, OUR_UT_PEX_ID)
        };
        let m = BTreeMap::from([
            (UT_METADATA.to_owned(), metadata_id),
            (UT_PEX.to_owned(), pex_id),
        ]);
        ExtensionHandshake {
            m,
            v: Some(config.client_name.clone()),
            p: (config.listen_port != 0).then_some(config.listen_port),
            reqq: u32::try_from(config.max_queued_uploads).ok(),
            metadata_size: self.metadata.as_ref().map(|b| b.len() as u64),
            yourip: Some(addr.ip()),
        }
    }

    pub(crate) fn piece_count(&self) -> u32 {
        self.geometry.piece_count()
    }

    pub(crate) fn have(&self) -> &Bitfield {
        self.picker.have()
    }

    /// Pieces that may hold data on disk (see the field's documentation).
    pub(crate) fn written(&self) -> &Bitfield {
        &self.written
    }

    /// Adds `pieces` (same piece count, else ignored) to the pieces that may hold data.
    /// Turns upload-only mode on or off. Turning it on forgets every request outstanding
    /// and tells interested peers we are no longer interested; blocks still arriving are
    /// discarded (counted as wasted), so no `WriteBlock` is emitted from then on.
    pub(crate) fn set_upload_only(&mut self, on: bool, ctx: &mut Ctx<'_>, now: Instant) {
        self.upload_only = on;
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            if on {
                self.drop_requests(conn);
            }
            self.update_interest(conn, ctx);
            self.fill_pipeline(conn, ctx, now);
        }
    }

    pub(crate) fn note_written(&mut self, pieces: &Bitfield) {
        if pieces.len() != self.written.len() {
            return;
        }
        for p in pieces.ones() {
            self.written.set(p);
        }
    }

    /// The established connection to the peer with this id, and who opened it.
    pub(crate) fn conn_of_peer_id(&self, id: &wire::PeerId) -> Option<(ConnId, Direction)> {
        self.peers
            .iter()
            .find(|(_, p)| p.peer_id == *id)
            .map(|(c, p)| (*c, p.direction))
    }

    pub(crate) fn is_banned(&self, ip: IpAddr) -> bool {
        self.banned.contains(&ip)
    }

    pub(crate) fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// BEP 27: only the torrent's trackers may find its peers (no DHT, no PEX).
    pub(crate) fn is_private(&self) -> bool {
        self.private
    }

    pub(crate) fn is_complete(&self) -> bool {
        !self.awaiting_metadata() && self.picker.is_complete()
    }

    /// What a tracker should be told is `left` to download.
    pub(crate) fn left(&self) -> u64 {
        if self.awaiting_metadata() {
            return MAGNET_LEFT;
        }
        let have: u64 = self
            .picker
            .have()
            .ones()
            .map(|p| u64::from(self.layout.piece_len(p)))
            .sum();
        self.layout.total_length().saturating_sub(have)
    }

    /// Whether any address is waiting to be dialled or being dialled.
    pub(crate) fn has_candidates(&self) -> bool {
        !self.candidates.is_empty()
    }

    /// Drops `addr` from the addresses to dial (it turned out to be ourselves).
    pub(crate) fn forget_candidate(&mut self, addr: SocketAddr) {
        self.connecting.remove(&addr);
        self.candidates.remove(&addr);
    }

    pub(crate) fn conns(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.peers.keys().copied()
    }

    pub(crate) fn next_deadline(&self) -> Instant {
        self.choker.next_deadline()
    }

    pub(crate) fn stats(&self, now: Instant) -> TorrentStats {
        let mut stats = self.stats_raw(now);
        if self.awaiting_metadata() {
            // The placeholder geometry means nothing: report what is known, which is none.
            stats.piece_count = 0;
            stats.pieces_have = 0;
            stats.pieces_missing = 0;
            stats.bytes_have = 0;
            stats.total_length = 0;
            stats.complete = false;
            stats.endgame = false;
        }
        stats
    }

    fn stats_raw(&self, now: Instant) -> TorrentStats {
        let have = self.picker.have();
        let bytes_have = have
            .ones()
            .map(|p| u64::from(self.layout.piece_len(p)))
            .sum();
        TorrentStats {
            info_hash: self.info_hash,
            piece_count: self.piece_count(),
            pieces_have: have.count_ones(),
            pieces_missing: self.picker.wanted().count_ones(),
            bytes_have,
            total_length: self.layout.total_length(),
            downloaded: self.downloaded,
            uploaded: self.uploaded,
            wasted: self.wasted,
            download_rate: self.peers.values().map(|p| p.download.rate(now)).sum(),
            upload_rate: self.peers.values().map(|p| p.upload.rate(now)).sum(),
            peers: self.peers.len(),
            known_peers: self
                .candidates
                .keys()
                .filter(|a| !self.connecting.contains(a))
                .count()
                + self.connecting.len(),
            unchoked: self.peers.values().filter(|p| !p.am_choking).count(),
            hash_failures: self.hash_failures,
            complete: self.picker.is_complete(),
            endgame: self.picker.in_endgame(),
            has_metadata: !self.awaiting_metadata(),
        }
    }

    // ----- file priorities ------------------------------------------------------------

    /// Sets each file's priority; a piece takes the highest priority of the files it
    /// overlaps (a piece shared by a skipped and a wanted file must still be downloaded).
    pub(crate) fn set_file_priorities(
        &mut self,
        priorities: &[Priority],
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        if self.awaiting_metadata() {
            return; // no files yet; the driver sets priorities after `metadata_ready`
        }
        let mut per_piece = vec![Priority::Skip; self.piece_count() as usize];
        for file in 0..self.layout.file_count() {
            let prio = priorities.get(file).copied().unwrap_or(Priority::Normal);
            for piece in self.layout.file_pieces(file) {
                if let Some(p) = per_piece.get_mut(piece as usize) {
                    *p = (*p).max(prio);
                }
            }
        }
        // Runs of equal priority become one range each.
        let mut start = 0u32;
        for i in 1..=per_piece.len() {
            if i == per_piece.len() || per_piece[i] != per_piece[start as usize] {
                self.picker
                    .set_piece_priority(start..i as u32, per_piece[start as usize]);
                start = i as u32;
            }
        }
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            self.update_interest(conn, ctx);
            self.fill_pipeline(conn, ctx, now);
        }
        self.check_complete(ctx);
    }

    // ----- peers joining and leaving ----------------------------------------------------

    /// Adds addresses to dial (from the user, a tracker, PEX or the DHT).
    pub(crate) fn add_candidates(&mut self, addrs: &[SocketAddr], max: usize, now: Instant) {
        for &addr in addrs {
            if self.candidates.len() >= max {
                break;
            }
            if self.banned.contains(&addr.ip())
                || self.peers.values().any(|p| p.addr == addr)
                || self.connecting.contains(&addr)
            {
                continue;
            }
            self.peers_seen = true;
            self.candidates.entry(addr).or_insert(Candidate {
                failures: 0,
                not_before: now,
                connected: false,
            });
        }
    }

    /// Whether any peer was ever given, found or connected.
    pub(crate) fn peers_seen(&self) -> bool {
        self.peers_seen
    }

    /// The peers given up on (in address order, at most `limit`) and how many in all.
    pub(crate) fn given_up_peers(&self, limit: usize) -> (Vec<FailedPeer>, usize) {
        let listed = self.given_up.values().take(limit).copied().collect();
        (listed, self.given_up.len() + self.given_up_overflow)
    }

    /// Emits `Connect` actions while below the connection limits, less the slots kept for
    /// peers that dial us (`inbound_slots`). Only an incomplete torrent dials out: a seed
    /// waits for peers that want something from it.
    pub(crate) fn maybe_connect(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        if self.is_complete() {
            return;
        }
        // Runs every tick: with the connection limits reached (the usual case in a big
        // swarm) it must not walk the up to `max_candidates` addresses.
        let slots = ctx
            .config
            .max_connecting
            .saturating_sub(self.connecting.len())
            .min(
                ctx.config
                    .max_peers_per_torrent
                    .saturating_sub(ctx.config.inbound_slots)
                    .saturating_sub(self.peers.len() + self.connecting.len()),
            );
        if slots == 0 {
            return;
        }
        let mut due: Vec<SocketAddr> = self
            .candidates
            .iter()
            // An address being dialled stays a candidate (its failures count) but must not
            // be dialled twice at once.
            .filter(|(a, c)| c.not_before <= now && !self.connecting.contains(a))
            .map(|(a, _)| *a)
            .collect();
        // Dial a random choice, not the lowest addresses: every peer that learns the same
        // list (a DHT lookup returns whole swarms) would otherwise fill its slots with the
        // same peers, and the swarm would split into cliques that never trade (the
        // simulator saw 100 DHT peers split into two halves of 50).
        let take = slots.min(due.len());
        for i in 0..take {
            let j = ctx.rng.usize(i..due.len());
            due.swap(i, j);
        }
        due.truncate(take);
        for addr in due {
            self.connecting.insert(addr);
            ctx.out.push(Action::Connect {
                torrent: self.id,
                addr,
            });
        }
    }

    /// A dial for `addr` failed: try again later with back-off, or forget it.
    pub(crate) fn connect_failed(
        &mut self,
        addr: SocketAddr,
        config: &SessionConfig,
        now: Instant,
    ) {
        self.connecting.remove(&addr);
        self.note_failure(addr, false, config, now);
    }

    /// Counts a failure against `addr` (`connected`: a connection to it was up and ended);
    /// after `max_connect_failures` it is given up on and remembered as such.
    fn note_failure(
        &mut self,
        addr: SocketAddr,
        connected: bool,
        config: &SessionConfig,
        now: Instant,
    ) {
        let entry = self.candidates.entry(addr).or_insert(Candidate {
            failures: 0,
            not_before: now,
            connected: false,
        });
        entry.failures += 1;
        entry.connected |= connected;
        if entry.failures >= config.max_connect_failures {
            let failed = FailedPeer {
                addr,
                failures: entry.failures,
                connected: entry.connected,
            };
            self.candidates.remove(&addr);
            if self.given_up.len() < config.max_candidates || self.given_up.contains_key(&addr) {
                self.given_up.insert(addr, failed);
            } else {
                self.given_up_overflow += 1;
            }
            return;
        }
        let backoff = config
            .reconnect_delay
            .saturating_mul(1u32 << (entry.failures - 1).min(10));
        entry.not_before = now + backoff;
    }

    /// A handshake for this torrent completed on `conn`: start the peer.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_peer(
        &mut self,
        conn: ConnId,
        addr: SocketAddr,
        direction: Direction,
        ours: wire::Reserved,
        theirs: &Handshake,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        if let Direction::Outbound(_) = direction {
            self.connecting.remove(&addr);
        }
        self.candidates.remove(&addr);
        self.given_up.remove(&addr);
        self.peers_seen = true;
        let key = self.next_key;
        self.next_key = self.next_key.wrapping_add(1);
        let fast = ours.fast() && theirs.reserved.fast();
        let extensions = ours.extension_protocol() && theirs.reserved.extension_protocol();
        // Without metadata only the size limits apply; the geometry is set once it is known.
        let geometry = (!self.awaiting_metadata()).then_some(self.geometry);
        let decoder = Decoder::new(geometry, Limits::default());
        let peer = Peer::new(
            key,
            addr,
            theirs.peer_id,
            direction,
            fast,
            extensions,
            decoder,
            self.piece_count(),
            now,
        );
        self.by_key.insert(key, conn);
        self.peers.insert(conn, peer);

        // BEP 3: bitfield (or BEP 6 have all / have none) is the first message.
        let have = self.picker.have();
        if fast && have.is_full() {
            ctx.out.send(conn, &Message::HaveAll);
        } else if fast && have.is_empty() {
            ctx.out.send(conn, &Message::HaveNone);
        } else if !have.is_empty() {
            ctx.out
                .send(conn, &Message::Bitfield(Bytes::from(have.to_bytes())));
        }
        // A magnet torrent's placeholder picker has nothing, so a fast peer is told `have
        // none` and others nothing, which stays true until the metadata is ready.
        if extensions {
            let hs = self.extension_handshake(addr, ctx.config);
            ctx.out.send(conn, &hs.to_message());
        }
    }

    /// Removes a peer: its availability, requests and slots go; its verified data stays.
    /// Does not emit `Disconnect` (see [`Self::disconnect`]).
    pub(crate) fn remove_peer(
        &mut self,
        conn: ConnId,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) -> Option<Peer> {
        let peer = self.peers.remove(&conn)?;
        self.by_key.remove(&peer.key);
        self.picker.peer_left(&peer.has);
        self.picker.peer_requests_dropped(peer.key);
        self.choker.peer_left(peer.key);
        ctx.out.discard(conn);
        // Its metadata requests go to other peers.
        self.metadata_timeouts(ctx, now);
        // Its blocks are free again: other peers may take them now.
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for c in conns {
            self.fill_pipeline(c, ctx, now);
        }
        self.refill_slots(ctx, now);
        Some(peer)
    }

    /// Closes `conn` for `reason`: forget it and tell the driver.
    pub(crate) fn disconnect(
        &mut self,
        conn: ConnId,
        reason: DisconnectReason,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        if let Some(peer) = self.remove_peer(conn, ctx, now) {
            // Peers we dialled that went quiet may be dialled again later (an inbound peer's
            // address is an ephemeral port, not worth dialling).
            if matches!(reason, DisconnectReason::Idle)
                && peer.direction != Direction::Inbound
                && !self.banned.contains(&peer.addr.ip())
            {
                self.note_failure(peer.addr, true, ctx.config, now);
            }
        }
        ctx.closed.push(conn);
        ctx.out.push(Action::Disconnect { conn, reason });
    }

    /// The driver reports the connection closed (by the peer or by a socket error).
    pub(crate) fn connection_closed(&mut self, conn: ConnId, ctx: &mut Ctx<'_>, now: Instant) {
        if let Some(peer) = self.remove_peer(conn, ctx, now) {
            if peer.direction != Direction::Inbound && !self.banned.contains(&peer.addr.ip()) {
                self.note_failure(peer.addr, true, ctx.config, now);
            }
        }
    }

    // ----- bytes in -----------------------------------------------------------------------

    /// Decodes and handles every complete message in `buf` from `conn`.
    pub(crate) fn handle_bytes(
        &mut self,
        conn: ConnId,
        buf: &mut BytesMut,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        loop {
            let Some(peer) = self.peers.get_mut(&conn) else {
                return;
            };
            peer.last_received = now;
            match peer.decoder.decode(buf) {
                Ok(Some(message)) => self.handle_message(conn, message, ctx, now),
                Ok(None) => return,
                Err(e) => {
                    self.disconnect(conn, DisconnectReason::Protocol(e), ctx, now);
                    return;
                }
            }
        }
    }

    fn handle_message(&mut self, conn: ConnId, message: Message, ctx: &mut Ctx<'_>, now: Instant) {
        let awaiting_metadata = self.awaiting_metadata();
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let first_availability = !peer.availability_known;
        let availability = matches!(
            message,
            Message::Have { .. } | Message::Bitfield(_) | Message::HaveAll | Message::HaveNone
        );
        if availability {
            peer.availability_known = true;
            if awaiting_metadata {
                return self.keep_availability(conn, message, first_availability, ctx, now);
            }
        }
        match message {
            Message::KeepAlive | Message::Port(_) | Message::SuggestPiece { .. } => {}
            Message::AllowedFast { .. } => {}
            Message::Choke => {
                peer.peer_choking = true;
                if !peer.fast {
                    // Without BEP 6 a choke silently discards our requests.
                    self.drop_requests(conn);
                }
            }
            Message::Unchoke => {
                peer.peer_choking = false;
                peer.timed_out = false;
                self.fill_pipeline(conn, ctx, now);
            }
            Message::Interested => {
                peer.peer_interested = true;
                self.refill_slots(ctx, now);
            }
            Message::NotInterested => {
                peer.peer_interested = false;
                self.refill_slots(ctx, now);
            }
            Message::Have { index } => {
                if peer.has.set(index) {
                    self.picker.peer_have(index);
                    self.after_peer_gained(conn, ctx, now);
                }
            }
            Message::Bitfield(bits) => {
                if !first_availability {
                    return self.disconnect(
                        conn,
                        DisconnectReason::Misbehaved(
                            "bitfield after have, bitfield or have all/none",
                        ),
                        ctx,
                        now,
                    );
                }
                match Bitfield::from_bytes(&bits, self.geometry.piece_count()) {
                    Ok(has) => {
                        self.picker.peer_bitfield(&has);
                        peer.has = has;
                        self.after_peer_gained(conn, ctx, now);
                    }
                    Err(_) => {
                        self.disconnect(
                            conn,
                            DisconnectReason::Misbehaved("malformed bitfield"),
                            ctx,
                            now,
                        );
                    }
                }
            }
            Message::HaveAll | Message::HaveNone => {
                if !peer.fast || !first_availability {
                    return self.disconnect(
                        conn,
                        DisconnectReason::Misbehaved("have all/none out of place"),
                        ctx,
                        now,
                    );
                }
                if matches!(message, Message::HaveAll) {
                    let has = Bitfield::full(self.geometry.piece_count());
                    self.picker.peer_bitfield(&has);
                    peer.has = has;
                    self.after_peer_gained(conn, ctx, now);
                }
            }
            Message::Request(req) => self.on_request(conn, req, ctx),
            Message::Cancel(req) => {
                let before = peer.uploads.len();
                peer.uploads.retain(|r| *r != req);
                if peer.fast && peer.uploads.len() != before {
                    // BEP 6: every request gets exactly one answer, a piece or a reject.
                    ctx.out.send(conn, &Message::RejectRequest(req));
                }
            }
            Message::RejectRequest(req) => {
                if !peer.fast {
                    return self.disconnect(
                        conn,
                        DisconnectReason::Misbehaved("reject without the fast extension"),
                        ctx,
                        now,
                    );
                }
                if peer.take_outstanding(req.index, req.begin) {
                    self.picker
                        .request_cancelled(req.index, req.begin, peer.key);
                }
                if !peer.peer_choking {
                    self.fill_pipeline(conn, ctx, now);
                }
            }
            Message::Piece { index, begin, data } => {
                self.on_block(conn, index, begin, data, ctx, now)
            }
            Message::Extended { id, payload } => {
                // Extended messages from a peer that did not announce BEP 10 are ignored, as
                // are extensions we did not offer.
                if !peer.extensions {
                    return;
                }
                match id {
                    wire::EXTENDED_HANDSHAKE_ID => match ExtensionHandshake::decode(&payload) {
                        Ok(hs) => self.on_extension_handshake(conn, &hs, ctx, now),
                        Err(e) => self.disconnect(conn, DisconnectReason::Protocol(e), ctx, now),
                    },
                    OUR_UT_METADATA_ID => self.on_metadata_message(conn, &payload, ctx, now),
                    OUR_UT_PEX_ID => self.on_pex(conn, &payload, ctx, now),
                    _ => {}
                }
            }
        }
    }

    /// The peer's extension handshake (the first, or a later one updating it: BEP 10 makes
    /// `m` additive, an id of 0 disabling an extension).
    fn on_extension_handshake(
        &mut self,
        conn: ConnId,
        hs: &ExtensionHandshake,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        if let Some(reqq) = hs.reqq {
            // Bounded on our side too: a huge reqq must not make us queue without limit.
            peer.reqq = (reqq as usize).clamp(1, ctx.config.max_pipeline);
        }
        if let Some(&id) = hs.m.get(UT_METADATA) {
            peer.ext.ut_metadata = (id != 0).then_some(id);
        }
        if let Some(&id) = hs.m.get(UT_PEX) {
            peer.ext.ut_pex = (id != 0).then_some(id);
        }
        if hs.metadata_size.is_some() {
            peer.ext.metadata_size = hs.metadata_size;
        }
        if hs.p.is_some() {
            peer.ext.listen_port = hs.p;
        }
        if self.awaiting_metadata() {
            let limit = u64::from(ctx.config.max_metadata_size);
            if hs.metadata_size.is_some_and(|s| s > limit) {
                return self.disconnect(
                    conn,
                    DisconnectReason::Misbehaved("metadata_size above our limit"),
                    ctx,
                    now,
                );
            }
            self.request_metadata(ctx, now);
        }
    }

    /// Keeps a `have`, `bitfield`, `have all` or `have none` received before the metadata,
    /// with the same ordering rules as later and a size bound: a torrent whose info
    /// dictionary fits `max_metadata_size` has at most one piece per 20 bytes of it (each
    /// piece's SHA-1 is in `pieces`), so nothing past that can be genuine.
    fn keep_availability(
        &mut self,
        conn: ConnId,
        message: Message,
        first: bool,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let max_pieces = ctx.config.max_metadata_size / 20;
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let refusal = match message {
            Message::Have { index } if index >= max_pieces => {
                Some("have for a piece past any torrent we accept")
            }
            Message::Have { index } => {
                peer.pending.set(index);
                None
            }
            Message::Bitfield(_) if !first => {
                Some("bitfield after have, bitfield or have all/none")
            }
            Message::Bitfield(bits) if bits.len() > max_pieces.div_ceil(8) as usize => {
                Some("bitfield larger than any torrent we accept")
            }
            Message::Bitfield(bits) => {
                peer.pending.bits = bits.to_vec();
                peer.pending.bitfield_len = Some(bits.len());
                None
            }
            Message::HaveAll | Message::HaveNone if !peer.fast || !first => {
                Some("have all/none out of place")
            }
            Message::HaveAll => {
                peer.pending.all = true;
                None
            }
            _ => None,
        };
        if let Some(reason) = refusal {
            self.disconnect(conn, DisconnectReason::Misbehaved(reason), ctx, now);
        }
    }

    /// The metadata is verified and the driver's storage checked: swap the placeholder
    /// geometry for the real one, apply each connected peer's kept availability (a peer
    /// whose bitfield or `have`s do not fit is dropped), tell peers what we have, and start
    /// downloading. Peers stay connected throughout.
    pub(crate) fn install_metadata(
        &mut self,
        metainfo: &crate::metainfo::Metainfo,
        picker: Picker,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) -> Result<(), String> {
        let layout = metainfo.info.layout();
        let geometry = PieceGeometry::new(layout.total_length(), layout.piece_length())
            .ok_or_else(|| "no pieces".to_string())?;
        self.piece_hashes = metainfo.info.piece_hashes.clone();
        self.geometry = geometry;
        self.layout = layout;
        self.picker = picker;
        self.phase = Phase::Ready;
        self.set_info_bytes(metainfo.info_bytes.clone(), metainfo.info.private);
        self.completion_announced = self.picker.is_complete();
        self.written = self.picker.have().clone();
        let piece_count = geometry.piece_count();
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        let mut misfits = Vec::new();
        for &conn in &conns {
            let Some(peer) = self.peers.get_mut(&conn) else {
                continue;
            };
            peer.decoder.set_geometry(geometry);
            let pending = std::mem::take(&mut peer.pending);
            match pending.resolve(piece_count) {
                Ok(has) => {
                    self.picker.peer_bitfield(&has);
                    peer.has = has;
                }
                Err(reason) => {
                    // Sized for the picker so that leaving subtracts nothing.
                    peer.has = Bitfield::new(piece_count);
                    misfits.push((conn, reason));
                }
            }
        }
        for (conn, reason) in misfits {
            self.disconnect(conn, DisconnectReason::Misbehaved(reason), ctx, now);
        }
        let have: Vec<u32> = self.picker.have().ones().collect();
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for &conn in &conns {
            // We said `have none` (or nothing) before: `have` messages are the only way to
            // tell what we have now. A repeated extension handshake (allowed by BEP 10)
            // gives the metadata's size, so peers can fetch it from us too.
            for &index in &have {
                ctx.out.send(conn, &Message::Have { index });
            }
            let extensions = self.peers.get(&conn).is_some_and(|p| p.extensions);
            if extensions {
                if let Some(addr) = self.peers.get(&conn).map(|p| p.addr) {
                    let hs = self.extension_handshake(addr, ctx.config);
                    ctx.out.send(conn, &hs.to_message());
                }
            }
        }
        for conn in conns {
            self.after_peer_gained(conn, ctx, now);
        }
        self.check_complete(ctx);
        Ok(())
    }

    /// The peer announced new pieces: update interest, requests, and the seed-to-seed check.
    fn after_peer_gained(&mut self, conn: ConnId, ctx: &mut Ctx<'_>, now: Instant) {
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        // Neither side can give the other anything: a seed (or an upload-only torrent,
        // which takes nothing) and a peer that has every piece.
        if (self.picker.is_complete() || self.upload_only) && peer.has.is_full() {
            return self.disconnect(conn, DisconnectReason::BothSeeds, ctx, now);
        }
        self.update_interest(conn, ctx);
        self.fill_pipeline(conn, ctx, now);
    }

    /// Sends `interested` / `not interested` when our interest in the peer changed.
    fn update_interest(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        if self.awaiting_metadata() {
            return;
        }
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let want = !self.upload_only && self.picker.is_interesting(&peer.has);
        if want != peer.am_interested {
            peer.am_interested = want;
            ctx.out.send(
                conn,
                if want {
                    &Message::Interested
                } else {
                    &Message::NotInterested
                },
            );
        }
    }

    /// Tops up our requests to `conn` to its pipeline target.
    fn fill_pipeline(&mut self, conn: ConnId, ctx: &mut Ctx<'_>, now: Instant) {
        if self.awaiting_metadata() {
            return;
        }
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        if peer.peer_choking || !peer.am_interested {
            return;
        }
        let target = peer.pipeline_target(
            now,
            ctx.config.pipeline_seconds_millis,
            ctx.config.min_pipeline,
            ctx.config.max_pipeline,
        );
        if peer.outstanding.len() >= target {
            return;
        }
        let mut picked = Vec::new();
        self.picker.pick_blocks(
            peer.key,
            &peer.has,
            target - peer.outstanding.len(),
            ctx.rng,
            &mut picked,
        );
        for b in picked {
            ctx.out.send(conn, &Message::Request(to_wire(b)));
            peer.outstanding.push((b, now));
            peer.requests_since.get_or_insert(now);
            peer.snub_clock.get_or_insert(now);
        }
    }

    /// Forgets every request outstanding at `conn` (choked without fast, or timed out).
    fn drop_requests(&mut self, conn: ConnId) {
        if let Some(peer) = self.peers.get_mut(&conn) {
            self.picker.peer_requests_dropped(peer.key);
            peer.outstanding.clear();
            peer.requests_since = None;
            peer.snub_clock = None;
        }
    }

    // ----- uploading ------------------------------------------------------------------------

    fn on_request(&mut self, conn: ConnId, req: wire::BlockRequest, ctx: &mut Ctx<'_>) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let servable = !peer.am_choking
            && self.picker.have().get(req.index)
            && peer.uploads.len() < ctx.config.max_queued_uploads
            && !peer.uploads.contains(&req);
        if servable {
            peer.uploads.push(req);
            ctx.out.push(Action::ReadBlock {
                conn,
                torrent: self.id,
                block: req,
            });
        } else if peer.fast {
            ctx.out.send(conn, &Message::RejectRequest(req));
        }
        // Without fast, an unservable request is dropped silently (BEP 3 behaviour).
    }

    /// A `ReadBlock` finished: send the block if the peer still wants it.
    pub(crate) fn disk_read_done(
        &mut self,
        conn: ConnId,
        block: wire::BlockRequest,
        result: Result<Bytes, String>,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let Some(pos) = peer.uploads.iter().position(|r| *r == block) else {
            return; // cancelled or choked meanwhile
        };
        peer.uploads.remove(pos);
        match result {
            Ok(data) if data.len() == block.length as usize && !peer.am_choking => {
                let n = data.len() as u64;
                peer.upload.record(now, n);
                peer.last_sent = now;
                self.uploaded += n;
                ctx.out.send_block(conn, block.index, block.begin, data);
            }
            Ok(_) => {
                if peer.fast {
                    ctx.out.send(conn, &Message::RejectRequest(block));
                }
            }
            Err(message) => {
                if peer.fast {
                    ctx.out.send(conn, &Message::RejectRequest(block));
                }
                ctx.out.push(Action::Event(Event::StorageError {
                    torrent: self.id,
                    piece: block.index,
                    message,
                }));
            }
        }
    }

    // ----- downloading ----------------------------------------------------------------------

    fn on_block(
        &mut self,
        conn: ConnId,
        piece: u32,
        offset: u32,
        data: Bytes,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let n = data.len() as u64;
        self.downloaded += n;
        peer.download.record(now, n);
        peer.download_fast.record(now, n);
        peer.last_block = Some(now);
        peer.timed_out = false;
        let requested = peer.take_outstanding(piece, offset);
        peer.snub_clock = (!peer.outstanding.is_empty()).then_some(now);
        if self.upload_only || !requested && !self.buffers.contains_key(&piece) {
            // Unrequested data is only taken for a piece already in progress (a late copy
            // after a cancel or time-out). Otherwise a peer could make us buffer pieces we
            // never asked for, without bound. An upload-only torrent takes nothing.
            self.wasted += n;
            return;
        }
        let key = peer.key;
        let valid = self
            .picker
            .block_at(piece, offset)
            .is_some_and(|b| b.len as usize == data.len());
        if !valid {
            return self.disconnect(
                conn,
                DisconnectReason::Misbehaved("block of the wrong size or place"),
                ctx,
                now,
            );
        }
        let outcome = self.picker.block_received(piece, offset, key);
        match outcome.receipt {
            Receipt::Invalid => {
                return self.disconnect(
                    conn,
                    DisconnectReason::Misbehaved("block outside the torrent"),
                    ctx,
                    now,
                );
            }
            Receipt::Duplicate => {
                self.wasted += n;
            }
            Receipt::Requested | Receipt::Unrequested => {
                for &other in outcome.cancel.as_slice() {
                    self.cancel_at(other, piece, offset, ctx);
                }
                let blocks = self.picker.blocks_in_piece(piece).unwrap_or(0) as usize;
                let buffer = self.buffers.entry(piece).or_insert_with(|| PieceBuffer {
                    blocks: vec![None; blocks],
                    writes_pending: 0,
                    write_failed: false,
                    hashed: None,
                });
                let index = (offset / wire::MAX_BLOCK_LEN) as usize;
                if let Some(slot) = buffer.blocks.get_mut(index) {
                    *slot = Some(data.clone());
                }
                buffer.writes_pending += 1;
                self.written.set(piece);
                ctx.out.push(Action::WriteBlock {
                    torrent: self.id,
                    piece,
                    offset,
                    data,
                });
                if outcome.piece_complete {
                    let blocks: Vec<Bytes> = buffer.blocks.iter().flatten().cloned().collect();
                    if let Some(expected) = self.piece_hashes.get(piece as usize) {
                        ctx.out.push(Action::VerifyPiece {
                            torrent: self.id,
                            piece,
                            expected: *expected,
                            blocks,
                        });
                    }
                }
            }
        }
        self.fill_pipeline(conn, ctx, now);
    }

    /// Sends `cancel` for a block to the peer with key `key` (endgame duplicate arrived).
    fn cancel_at(&mut self, key: PeerKey, piece: u32, offset: u32, ctx: &mut Ctx<'_>) {
        let Some(&conn) = self.by_key.get(&key) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        if let Some((b, _)) = peer
            .outstanding
            .iter()
            .find(|(b, _)| b.piece == piece && b.offset == offset)
            .copied()
        {
            peer.take_outstanding(piece, offset);
            ctx.out.send(conn, &Message::Cancel(to_wire(b)));
        }
    }

    /// The driver finished writing a block.
    pub(crate) fn disk_write_done(
        &mut self,
        piece: u32,
        result: Result<(), String>,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let Some(buffer) = self.buffers.get_mut(&piece) else {
            return;
        };
        buffer.writes_pending = buffer.writes_pending.saturating_sub(1);
        if let Err(message) = result {
            buffer.write_failed = true;
            ctx.out.push(Action::Event(Event::StorageError {
                torrent: self.id,
                piece,
                message,
            }));
        }
        self.try_finish_piece(piece, ctx, now);
    }

    /// The driver hashed a piece.
    pub(crate) fn piece_hashed(&mut self, piece: u32, ok: bool, ctx: &mut Ctx<'_>, now: Instant) {
        let Some(buffer) = self.buffers.get_mut(&piece) else {
            return;
        };
        buffer.hashed = Some(ok);
        if !ok {
            self.hash_failures += 1;
            ctx.out.push(Action::Event(Event::HashFailed {
                torrent: self.id,
                piece,
            }));
        }
        self.try_finish_piece(piece, ctx, now);
    }

    /// Settles a piece once both its hash verdict and all its writes are in.
    fn try_finish_piece(&mut self, piece: u32, ctx: &mut Ctx<'_>, now: Instant) {
        let Some(buffer) = self.buffers.get(&piece) else {
            return;
        };
        let Some(hash_ok) = buffer.hashed else {
            return;
        };
        if buffer.writes_pending > 0 {
            return;
        }
        let write_failed = buffer.write_failed;
        let piece_len = buffer
            .blocks
            .iter()
            .flatten()
            .map(|b| b.len() as u64)
            .sum::<u64>();
        self.buffers.remove(&piece);
        if hash_ok && !write_failed {
            for key in self.picker.contributors(piece) {
                self.adjust_trust(key, 1, ctx, now);
            }
            self.picker.piece_verified(piece);
            ctx.out.push(Action::Event(Event::PieceVerified {
                torrent: self.id,
                piece,
            }));
            let conns: Vec<ConnId> = self.peers.keys().copied().collect();
            for &conn in &conns {
                ctx.out.send(conn, &Message::Have { index: piece });
            }
            for conn in conns {
                self.update_interest(conn, ctx);
            }
            self.check_complete(ctx);
            if self.picker.is_complete() {
                let seeds: Vec<ConnId> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.has.is_full())
                    .map(|(c, _)| *c)
                    .collect();
                for conn in seeds {
                    self.disconnect(conn, DisconnectReason::BothSeeds, ctx, now);
                }
            }
        } else {
            let contributors = self.picker.piece_failed(piece);
            self.wasted += piece_len;
            if !hash_ok {
                let penalty = if contributors.len() == 1 { -2 } else { -1 };
                for key in contributors {
                    self.adjust_trust(key, penalty, ctx, now);
                }
            }
            let conns: Vec<ConnId> = self.peers.keys().copied().collect();
            for conn in conns {
                self.fill_pipeline(conn, ctx, now);
            }
        }
    }

    /// Adds `delta` to the trust of the peer with `key`'s IP; bans the IP when it falls to
    /// −2 × `max_strikes`.
    fn adjust_trust(&mut self, key: PeerKey, delta: i32, ctx: &mut Ctx<'_>, now: Instant) {
        let Some(&conn) = self.by_key.get(&key) else {
            return;
        };
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        let addr = peer.addr;
        self.adjust_trust_ip(addr, delta, ctx, now);
    }

    /// [`Self::adjust_trust`] by address (the peer may have left meanwhile).
    fn adjust_trust_ip(&mut self, addr: SocketAddr, delta: i32, ctx: &mut Ctx<'_>, now: Instant) {
        let ip = addr.ip();
        /// Credit a peer can bank: enough to absorb a few shared failures, too little
        /// for a liar to buy many bad pieces with good ones.
        const MAX_TRUST: i32 = 8;
        let trust = self.trust.entry(ip).or_insert(0);
        *trust = (*trust + delta).min(MAX_TRUST);
        let limit = -2 * i32::try_from(ctx.config.max_strikes).unwrap_or(i32::MAX / 4);
        if delta < 0 && *trust <= limit {
            self.banned.insert(ip);
            self.candidates.retain(|a, _| a.ip() != ip);
            ctx.out.push(Action::Event(Event::PeerBanned {
                torrent: self.id,
                addr,
            }));
            let same_ip: Vec<ConnId> = self
                .peers
                .iter()
                .filter(|(_, p)| p.addr.ip() == ip)
                .map(|(c, _)| *c)
                .collect();
            for c in same_ip {
                self.disconnect(c, DisconnectReason::Banned, ctx, now);
            }
        }
    }

    fn check_complete(&mut self, ctx: &mut Ctx<'_>) {
        if self.picker.is_complete() && !self.completion_announced {
            self.completion_announced = true;
            ctx.out
                .push(Action::Event(Event::TorrentComplete { torrent: self.id }));
        } else if !self.picker.is_complete() {
            // A priority change can make a complete torrent incomplete again.
            self.completion_announced = false;
        }
    }

    // ----- choking ------------------------------------------------------------------------

    /// What the choker needs to know about every peer, with rates as of `now`.
    fn choke_infos_at(&self, now: Instant) -> Vec<PeerChokeInfo> {
        self.peers
            .values()
            .map(|p| PeerChokeInfo {
                key: p.key,
                interested: p.peer_interested,
                download_rate: p.download.rate(now),
                upload_rate: p.upload.rate(now),
                connected_at: p.connected_at,
                last_block_received: p.last_block,
                requests_outstanding_since: p.snub_clock,
            })
            .collect()
    }

    /// Gives free upload slots to eligible peers between rounds.
    fn refill_slots(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let infos = self.choke_infos_at(now);
        let seeding = self.picker.is_complete();
        if let Some(decision) = self.choker.refill(now, seeding, &infos, ctx.rng) {
            self.apply_choke(&decision, ctx);
        }
    }

    fn apply_choke(&mut self, decision: &ChokeDecision, ctx: &mut Ctx<'_>) {
        for (&conn, peer) in self.peers.iter_mut() {
            let unchoke = decision.unchokes(peer.key);
            if unchoke && peer.am_choking {
                peer.am_choking = false;
                ctx.out.send(conn, &Message::Unchoke);
            } else if !unchoke && !peer.am_choking {
                peer.am_choking = true;
                ctx.out.send(conn, &Message::Choke);
                // Choking drops the peer's queued requests; with fast each is rejected.
                for req in peer.uploads.drain(..) {
                    if peer.fast {
                        ctx.out.send(conn, &Message::RejectRequest(req));
                    }
                }
            }
        }
    }

    // ----- timers -------------------------------------------------------------------------

    /// Periodic work: choking rounds, keep-alives, idle peers, request time-outs, dialling.
    pub(crate) fn tick(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let infos = self.choke_infos_at(now);
        let seeding = self.picker.is_complete();
        if let Some(decision) = self.choker.on_timeout(now, seeding, &infos, ctx.rng) {
            self.apply_choke(&decision, ctx);
            let conn_of = |k: &PeerKey| self.by_key.get(k).copied();
            ctx.out.push(Action::Event(Event::ChokeRound {
                torrent: self.id,
                round: decision.round,
                regular: decision.regular.iter().filter_map(conn_of).collect(),
                optimistic: decision.optimistic.as_ref().and_then(conn_of),
                optimistic_rotated: decision.kind == RoundKind::RegularAndOptimistic,
            }));
        }

        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            let Some(peer) = self.peers.get_mut(&conn) else {
                continue;
            };
            if now - peer.last_received >= ctx.config.idle_timeout {
                self.disconnect(conn, DisconnectReason::Idle, ctx, now);
                continue;
            }
            if now - peer.last_sent >= ctx.config.keepalive_interval {
                peer.last_sent = now;
                ctx.out.send(conn, &Message::KeepAlive);
            }
            let stalled_since = match (peer.requests_since, peer.last_block) {
                (Some(since), Some(block)) => Some(since.max(block)),
                (Some(since), None) => Some(since),
                (None, _) => None,
            };
            if stalled_since.is_some_and(|t| now - t >= ctx.config.request_timeout) {
                // Give its blocks to others; keep the peer with a one-block pipeline.
                for (b, _) in std::mem::take(&mut peer.outstanding) {
                    ctx.out.send(conn, &Message::Cancel(to_wire(b)));
                }
                peer.requests_since = None;
                peer.timed_out = true;
                self.picker.peer_requests_dropped(peer.key);
                let others: Vec<ConnId> =
                    self.peers.keys().copied().filter(|c| *c != conn).collect();
                for other in others {
                    self.fill_pipeline(other, ctx, now);
                }
                self.fill_pipeline(conn, ctx, now);
            }
        }
        self.metadata_timeouts(ctx, now);
        self.send_pex(ctx, now);
        self.maybe_connect(ctx, now);
    }

    /// Notes that we sent something to `conn` (for keep-alive timing).
    pub(crate) fn note_sent(&mut self, conn: ConnId, now: Instant) {
        if let Some(peer) = self.peers.get_mut(&conn) {
            peer.last_sent = now;
        }
    }

    /// The priority of a piece (for tests and the session's API).
    pub(crate) fn piece_priority(&self, piece: u32) -> Priority {
        self.picker.priority(piece)
    }
}

/// Builds a picker whose verified pieces are `have`.
pub(crate) fn picker_for(
    layout: &Layout,
    have: Option<Bitfield>,
) -> Result<Picker, picker::PickerError> {
    match have {
        Some(have) => Picker::with_have(layout.piece_length(), layout.total_length(), have),
        None => Picker::new(layout.piece_length(), layout.total_length()),
    }
}

/// The wire's name for a block the picker chose.
fn to_wire(b: picker::BlockRequest) -> wire::BlockRequest {
    wire::BlockRequest {
        index: b.piece,
        begin: b.offset,
        length: b.len,
    }
}
