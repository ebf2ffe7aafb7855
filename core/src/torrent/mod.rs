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
//!
//! The torrent's, a connection's and a piece's states, with what holds in each, are written
//! down in `STATE.md` next to this file. The work is split by job: `peer_set` (candidates,
//! dialling, give-up, peers joining and leaving), `candidates` (the candidate list itself),
//! `dial_choice` (whom to dial among the due candidates), `messages` (peer messages), `pieces`
//! (requests in flight, blocks, writes, verification), `upload` (serving requests),
//! `trust` (strikes and bans), `choking` (applying the choker), `phase` (fetching
//! metadata, awaiting the driver's check, or ready: only a ready torrent has pieces),
//! `metadata` and `metadata_ready` (BEP 9 and the magnet torrent's switch), `pex`
//! (BEP 11), `allowed_fast` (BEP 6 pieces requestable while choked, both ways), `suggest`
//! (BEP 6 suggestions asked for first), `peer`
//! (one peer's state). This module keeps the `Torrent` struct, its
//! construction, getters, file priorities and the periodic `Torrent::tick`. It builds on
//! [`crate::vocab`] and never imports from the session.

mod allowed_fast;
mod candidates;
mod choking;
mod dial_choice;
mod hash_exchange;
mod layer_fetch;
mod messages;
mod metadata;
mod metadata_ready;
mod peer;
mod peer_info;
mod peer_set;
mod pex;
mod pex_told;
mod phase;
mod pieces;
mod smart_ban;
mod suggest;
#[cfg(test)]
mod test_world;
mod trust;
mod upload;
mod web_seed;
mod write_budget;

pub use allowed_fast::canonical_set as allowed_fast_set;
pub use peer_info::PeerInfo;
pub(crate) use peer_set::Activity;
pub use web_seed::file_url as web_seed_file_url;
pub(crate) use write_budget::WriteBudget;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use bytes::Bytes;

use crate::bitfield::Bitfield;
use crate::choker::Choker;
use crate::info_hash::InfoHash;
use crate::picker::{self, PeerKey, Picker, Priority};
use crate::piece_hashes::PieceHashes;
use crate::storage::Layout;
use crate::time::Instant;
use crate::vocab::conn_map::OrderedConnMap;
use crate::vocab::outbox::Outbox;
use crate::vocab::{ConnId, DisconnectReason, FailedPeer, SessionConfig, TorrentId};
use crate::wire::Message;

use metadata::MetadataFetch;
use peer::Peer;
use phase::{Content, Phase};
use pieces::{request_expired, stalled_since};
use trust::Trust;

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
    /// Bytes of verified pieces (BEP 47 padding not counted).
    pub bytes_have: u64,
    /// Bytes of wanted (not skipped) pieces not verified yet, padding not counted: what is
    /// left to download. With every file wanted, `total_length - bytes_have`.
    pub bytes_left: u64,
    /// Total size: the files' bytes (BEP 47 padding not counted).
    pub total_length: u64,
    /// Payload bytes received (including duplicates and data that failed verification).
    pub downloaded: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// `downloaded` plus what earlier runs received
    /// ([`crate::session::Session::set_earlier_transfers`]).
    pub downloaded_ever: u64,
    /// `uploaded` plus what earlier runs sent.
    pub uploaded_ever: u64,
    /// Payload bytes received that were thrown away (duplicates, failed pieces).
    pub wasted: u64,
    /// Bytes per second received (20 s average over all peers).
    pub download_rate: u64,
    /// Bytes per second sent.
    pub upload_rate: u64,
    /// Established connections.
    pub peers: usize,
    /// Established connections whose handshake was encrypted (MSE), RC4 or not after it.
    pub encrypted_peers: usize,
    /// Established connections over uTP (BEP 29) rather than TCP (filled in by the
    /// session, which holds the streams: see `Session::stats`).
    pub utp_peers: usize,
    /// Addresses known and not given up on: waiting to be dialled or being dialled.
    pub known_peers: usize,
    /// Connections we are currently unchoking.
    pub unchoked: usize,
    /// Pieces that failed their hash check.
    pub hash_failures: u64,
    /// BEP 52 `hash request`s from peers answered with `hashes` (v2 and hybrid torrents).
    pub hash_requests_answered: u64,
    /// Every wanted piece is verified and stored.
    pub complete: bool,
    /// Endgame mode: every missing block is requested.
    pub endgame: bool,
    /// Each web seed (BEP 19) of the torrent, with the bytes it sent: payload received
    /// from peers is `downloaded` less the sum of these.
    pub web_seeds: Vec<crate::vocab::WebSeedStats>,
    /// Whether the torrent's metadata (info dictionary) is known. `false` for a magnet
    /// torrent until [`crate::session::Session::metadata_ready`]; meanwhile the piece and
    /// byte counts above are 0.
    pub has_metadata: bool,
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
    /// Blocks waiting for the disk, session-wide: no new requests while it is over its bound.
    pub(crate) writes: &'a mut WriteBudget,
    /// The session-wide rate limiters and the peers waiting for upload tokens.
    pub(crate) limits: &'a mut crate::limits::SessionLimits,
}

/// One torrent's swarm state. See the module docs.
#[derive(Debug)]
pub(crate) struct Torrent {
    pub(crate) id: TorrentId,
    pub(crate) info_hash: InfoHash,
    /// Fetching metadata, waiting for the driver's check, or ready; only a ready torrent
    /// has pieces, a picker and buffers (see [`phase`]).
    phase: Phase,
    choker: Choker,
    /// In connection order (every walk over the peers depends on it), looked up by hash.
    peers: OrderedConnMap<Peer>,
    /// The connected peers' socket addresses, each with how many of `peers` have it (two
    /// connections from one address can overlap while a duplicate is resolved): every
    /// address of every PEX message is checked against it, so it is kept rather than
    /// gathered from the peers per message. Kept by `add_peer` and `remove_peer`, the only
    /// places that add and remove peers; hashed with the session's seed like the
    /// candidates (`Torrent::seed_address_hashes`).
    connected_addrs: hashbrown::HashMap<SocketAddr, u32, foldhash::fast::FixedState>,
    by_key: BTreeMap<PeerKey, ConnId>,
    next_key: PeerKey,
    candidates: candidates::Candidates,
    connecting: BTreeSet<SocketAddr>,
    /// The source of each connected peer we dialled, kept so that a redial after it leaves
    /// ranks as before (see [`peer_set`]); at most one entry per connected peer.
    peer_sources: BTreeMap<SocketAddr, crate::vocab::PeerSource>,
    /// Addresses given up on after too many failures (at most `max_candidates`; more are
    /// only counted in `given_up_overflow`), for [`crate::session::GiveUpReason`].
    given_up: BTreeMap<SocketAddr, FailedPeer>,
    given_up_overflow: usize,
    /// Whether any peer was ever given, found or connected: a torrent that never had one
    /// gives up saying so, not that its peers failed.
    peers_seen: bool,
    /// Whether the user ever named a peer to dial ([`PeerSource::User`]): only then does a
    /// complete torrent dial out, and only to those (see `maybe_connect`). A flag, so a
    /// seed in a big swarm does not walk its candidates every tick to find none.
    user_peers_given: bool,
    /// The last walk of the candidates that found nobody to dial (see `maybe_connect`).
    idle_dial_scan: Option<dial_choice::IdleDialScan>,
    /// Trust per IP and the IPs banned for bad data (see [`trust`]).
    trust: Trust,
    downloaded: u64,
    uploaded: u64,
    /// What earlier runs moved ([`crate::session::Session::set_earlier_transfers`]).
    earlier: crate::vocab::TransferTotals,
    wasted: u64,
    hash_failures: u64,
    /// `hash request`s answered with `hashes` (see `hash_exchange.rs`).
    hash_requests_answered: u64,
    /// The info dictionary's bytes, served to peers (BEP 9). `None` while we lack them and
    /// for private torrents, which BEP 27 keeps off metadata exchange and PEX.
    metadata: Option<Bytes>,
    private: bool,
    /// PEX messages ignored (too frequent or malformed), for tests and statistics.
    pex_ignored: u64,
    /// No peer's idle time-out, keep-alive or request time-out comes before this: the
    /// tick walks the peers for them only from then on ([`Torrent::peer_timers`]).
    /// Invariant: never later than the earliest of those. Each walk sets it to the earliest
    /// it saw; a timer that starts between walks lowers it (a peer added, in `add_peer`; a
    /// first request out, in `fill_pipeline`). Every other change to a peer's timers (a
    /// message received, something sent, a block arrived) only moves them later.
    pub(super) peer_timers_at: Instant,
    /// The next PEX round ([`pex`]): messages due go out together, one round every
    /// `PEX_ROUND` at most, so the torrent's address list is built once per round and not
    /// every tick some peer's minute is up.
    pex_round_at: Instant,
    /// A magnet link's `dn`, shown until the metadata gives the real name.
    pub(crate) display_name: Option<String>,
    /// Never download: not interested in anyone, no requests, every block that arrives is
    /// discarded unwritten. For data that must not change (`seed --partial` over read-only
    /// storage); see [`Torrent::set_upload_only`].
    upload_only: bool,
    /// The earliest instant a slot trial may reach a verdict ([`choking`]); part of the
    /// torrent's deadline. Never later than the true next verdict (a judgement that
    /// finds nothing due is harmless), `None` with no judged slot.
    slot_verdict_at: Option<Instant>,
    /// An interested peer that wasted no slot is choked, waiting for one: only then do slot
    /// verdicts come at their exact instants ([`choking`]). Never false while one waits
    /// (set on `interested` and after every choke decision and judgement).
    slot_waiting: bool,
    /// The peers we unchoke (`!am_choking`), in no particular order: the slot trials are
    /// judged at every timer of the session, and a walk over every peer to find these few
    /// was most of that. Kept where `am_choking` changes (`choking.rs`,
    /// `apply_decision`) and where a peer leaves (`remove_peer`).
    unchoked: Vec<ConnId>,
    /// The torrent's web seeds (BEP 19; see [`web_seed`]).
    web: web_seed::WebSeeds,
    /// The torrent's own rate limiters (unlimited unless set by
    /// [`crate::session::Session::set_limits`]); a block moves only when these and the
    /// session's allow it ([`crate::limits`]).
    pub(crate) limits: crate::limits::LimiterPair,
    /// A pipeline was held back for want of download tokens since the torrent was last
    /// woken for them: the session wakes it when a block's worth has come.
    pub(crate) down_waiting: bool,
    /// Where the next wake-up for download tokens starts topping up pipelines, so the
    /// tokens go round the peers rather than always to the first.
    fill_turn: usize,
    /// When the last dial past the peer limit went out (`peer_set.rs`, `dial_to_evict`):
    /// the next waits `SessionConfig::evict_dial_interval` after it.
    last_evict_dial: Option<Instant>,
}

impl Torrent {
    /// A torrent whose metadata is known: `picker` holds the pieces already verified.
    /// `None` if the layout has no pieces or the picker does not fit it.
    pub(crate) fn new(
        id: TorrentId,
        info_hash: InfoHash,
        piece_hashes: PieceHashes,
        layout: Layout,
        picker: Picker,
        choker: Choker,
    ) -> Option<Self> {
        let content = Content::new(piece_hashes, layout, picker)?;
        Some(Torrent::with_phase(
            id,
            info_hash,
            Phase::Ready(Box::new(content)),
            choker,
        ))
    }

    /// A torrent known only by its info-hash (a magnet link): it fetches its metadata from
    /// peers first. It has no pieces until then: availability is kept aside, no block is
    /// requested or served.
    pub(crate) fn new_magnet(id: TorrentId, info_hash: InfoHash, choker: Choker) -> Self {
        let fetch = Phase::FetchingMetadata(MetadataFetch::default());
        Torrent::with_phase(id, info_hash, fetch, choker)
    }

    fn with_phase(id: TorrentId, info_hash: InfoHash, phase: Phase, choker: Choker) -> Self {
        Torrent {
            id,
            info_hash,
            phase,
            choker,
            peers: OrderedConnMap::default(),
            connected_addrs: hashbrown::HashMap::default(),
            by_key: BTreeMap::new(),
            next_key: 0,
            candidates: candidates::Candidates::default(),
            connecting: BTreeSet::new(),
            peer_sources: BTreeMap::new(),
            given_up: BTreeMap::new(),
            given_up_overflow: 0,
            peers_seen: false,
            peer_timers_at: Instant::ZERO,
            user_peers_given: false,
            idle_dial_scan: None,
            trust: Trust::default(),
            downloaded: 0,
            uploaded: 0,
            earlier: crate::vocab::TransferTotals::default(),
            wasted: 0,
            hash_failures: 0,
            hash_requests_answered: 0,
            metadata: None,
            private: false,
            pex_ignored: 0,
            pex_round_at: Instant::ZERO,
            display_name: None,
            upload_only: false,
            slot_verdict_at: None,
            slot_waiting: false,
            unchoked: Vec::new(),
            web: web_seed::WebSeeds::default(),
            limits: crate::limits::LimiterPair::default(),
            down_waiting: false,
            fill_turn: 0,
            last_evict_dial: None,
        }
    }

    /// Tops up every pipeline after a wait for download tokens, starting one peer further
    /// along each time (see [`Self::down_waiting`]).
    pub(crate) fn download_tokens_came(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        self.down_waiting = false;
        let mut conns: Vec<ConnId> = self.peers.keys().copied().collect();
        if conns.is_empty() {
            return;
        }
        self.fill_turn = self.fill_turn.wrapping_add(1);
        let turn = self.fill_turn % conns.len();
        conns.rotate_left(turn);
        for conn in conns {
            self.fill_pipeline(conn, ctx, now);
        }
        self.fill_web_seeds(ctx, now);
    }

    /// When the torrent may next request a block, if a pipeline waits for download
    /// tokens: when both its bucket and the session's (`global`) hold a block.
    pub(crate) fn download_wake(
        &self,
        global: &crate::limits::Limiter,
        now: Instant,
    ) -> Option<Instant> {
        let block = u64::from(crate::wire::MAX_BLOCK_LEN);
        self.down_waiting.then(|| {
            self.limits
                .down
                .ready_at(block, now)
                .max(global.ready_at(block, now))
        })
    }

    /// Download tokens taken for requests whose blocks will not come (dropped, rejected,
    /// timed out, cancelled) go back to both buckets.
    pub(super) fn refund_download(&mut self, bytes: u64, ctx: &mut Ctx<'_>, now: Instant) {
        self.limits.down.give_back(bytes, now);
        ctx.limits.global.down.give_back(bytes, now);
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

    /// Whether the torrent still lacks its metadata (magnet link, not yet ready).
    pub(crate) fn awaiting_metadata(&self) -> bool {
        self.phase.content().is_none()
    }

    /// The verified pieces; `None` before the metadata is known.
    pub(crate) fn have(&self) -> Option<&Bitfield> {
        self.phase.content().map(|c| c.picker.have())
    }

    /// Pieces that may hold data on disk (see [`Content::written`]); `None` before the
    /// metadata is known.
    pub(crate) fn written(&self) -> Option<&Bitfield> {
        self.phase.content().map(|c| &c.written)
    }

    /// [`Self::have`] and [`Self::written`] together, as resume data needs them.
    pub(crate) fn have_and_written(&self) -> Option<(&Bitfield, &Bitfield)> {
        self.phase.content().map(|c| (c.picker.have(), &c.written))
    }

    /// Turns upload-only mode on or off. Turning it on forgets every request outstanding
    /// and tells interested peers we are no longer interested; blocks still arriving are
    /// discarded (counted as wasted), so no `WriteBlock` is emitted from then on.
    pub(crate) fn set_upload_only(&mut self, on: bool, ctx: &mut Ctx<'_>, now: Instant) {
        let was = self.upload_only || self.is_complete();
        self.upload_only = on;
        if was != (on || self.is_complete()) {
            self.announce_upload_only(on || self.is_complete(), ctx);
        }
        if on {
            self.forget_web_requests();
        }
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            if on {
                self.drop_requests(conn, ctx, now);
            }
            self.update_interest(conn, ctx);
            self.fill_pipeline(conn, ctx, now);
        }
    }

    /// Adds `pieces` (same piece count, else ignored) to the pieces that may hold data.
    /// Ignored before the metadata is known: there are no pieces yet.
    pub(crate) fn note_written(&mut self, pieces: &Bitfield) {
        let Some(c) = self.phase.content_mut() else {
            return;
        };
        if pieces.len() != c.written.len() {
            return;
        }
        for p in pieces.ones() {
            c.written.set(p);
        }
    }

    /// BEP 27: only the torrent's trackers may find its peers (no DHT, no PEX).
    pub(crate) fn is_private(&self) -> bool {
        self.private
    }

    /// Every wanted piece is verified and stored (never before the metadata is known).
    pub(crate) fn is_complete(&self) -> bool {
        self.phase.content().is_some_and(|c| c.picker.is_complete())
    }

    /// Payload bytes sent so far (what seeding limits count).
    pub(crate) fn uploaded(&self) -> u64 {
        self.uploaded + self.earlier.uploaded
    }

    /// Payload bytes received so far, duplicates and failed data included.
    pub(crate) fn downloaded(&self) -> u64 {
        self.downloaded + self.earlier.downloaded
    }

    /// Counts `earlier` as moved before this run (ratio limits and the `_ever` stats).
    pub(crate) fn set_earlier(&mut self, earlier: crate::vocab::TransferTotals) {
        self.earlier = earlier;
    }

    /// Bytes of the pieces wanted (not skipped), had or not, padding left out; 0 before
    /// the metadata. Walks every piece: for rare events, not for every block.
    pub(crate) fn wanted_bytes(&self) -> u64 {
        self.phase.content().map_or(0, Content::wanted_bytes)
    }

    /// What a tracker should be told is `left` to download: before the metadata is known,
    /// [`MAGNET_LEFT`], because the size is unknown and a tracker counts `left = 0` as a
    /// seed (it would send us no seeds and list us as one).
    pub(crate) fn left(&self) -> u64 {
        match self.phase.content() {
            Some(c) => c.data_length().saturating_sub(c.bytes_have()),
            None => MAGNET_LEFT,
        }
    }

    pub(crate) fn conns(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.peers.keys().copied()
    }

    /// When the torrent's timers next need a look (the choke round or a slot verdict),
    /// between the session's housekeeping ticks.
    pub(crate) fn next_deadline(&self) -> Instant {
        let round = self.choker.next_deadline();
        self.slot_verdict_at().map_or(round, |t| t.min(round))
    }

    /// A progress snapshot. Before the metadata is known the piece and byte counts are 0
    /// and `has_metadata` is `false`: nothing about the pieces is known.
    pub(crate) fn stats(&self, now: Instant) -> TorrentStats {
        let content = self.phase.content();
        TorrentStats {
            info_hash: self.info_hash,
            piece_count: content.map_or(0, |c| c.geometry.piece_count()),
            pieces_have: content.map_or(0, |c| c.picker.have().count_ones()),
            pieces_missing: content.map_or(0, |c| c.picker.wanted().count_ones()),
            bytes_have: content.map_or(0, Content::bytes_have),
            bytes_left: content.map_or(0, Content::bytes_left),
            total_length: content.map_or(0, Content::data_length),
            downloaded: self.downloaded,
            uploaded: self.uploaded,
            downloaded_ever: self.downloaded(),
            uploaded_ever: self.uploaded(),
            wasted: self.wasted,
            download_rate: self
                .peers
                .values()
                .map(|p| p.download.rate(now))
                .sum::<u64>()
                + self.web_seed_rate(now),
            upload_rate: self.peers.values().map(|p| p.upload.rate(now)).sum(),
            peers: self.peers.len(),
            encrypted_peers: self.peers.values().filter(|p| p.crypto.is_some()).count(),
            utp_peers: 0,
            known_peers: self
                .candidates
                .keys()
                .filter(|a| !self.connecting.contains(a))
                .count()
                + self.connecting.len(),
            unchoked: self.peers.values().filter(|p| !p.am_choking).count(),
            hash_failures: self.hash_failures,
            hash_requests_answered: self.hash_requests_answered,
            complete: content.is_some_and(|c| c.picker.is_complete()),
            endgame: content.is_some_and(|c| c.picker.in_endgame()),
            web_seeds: self.web_seed_stats(),
            has_metadata: content.is_some(),
        }
    }

    /// Sets each file's priority; a piece takes the highest priority of the files it
    /// overlaps (a piece shared by a skipped and a wanted file must still be downloaded).
    pub(crate) fn set_file_priorities(
        &mut self,
        priorities: &[Priority],
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let Some(c) = self.phase.content_mut() else {
            return; // no files yet; the driver sets priorities after `metadata_ready`
        };
        let mut per_piece = vec![Priority::Skip; c.geometry.piece_count() as usize];
        for file in 0..c.layout.file_count() {
            let prio = priorities.get(file).copied().unwrap_or(Priority::Normal);
            for piece in c.layout.file_pieces(file) {
                if let Some(p) = per_piece.get_mut(piece as usize) {
                    *p = (*p).max(prio);
                }
            }
        }
        // Runs of equal priority become one range each.
        let mut start = 0u32;
        for i in 1..=per_piece.len() {
            if i == per_piece.len() || per_piece[i] != per_piece[start as usize] {
                c.picker
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

    /// Periodic work: choking rounds, keep-alives, idle peers, request time-outs, metadata
    /// time-outs, PEX and dialling.
    pub(crate) fn tick(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        self.deadlines(ctx, now);
        if now >= self.peer_timers_at {
            self.peer_timers(ctx, now);
        } else {
            // The invariant of `peer_timers_at`, checked by every debug run (the tests,
            // the lab and the simulator's own tests).
            debug_assert!(
                !self.any_peer_timer_due(ctx.config, now),
                "a peer timer is due before peer_timers_at"
            );
        }
        self.metadata_timeouts(ctx, now);
        self.web_seed_tick(ctx, now);
        self.send_pex(ctx, now);
        self.maybe_connect(ctx, now);
    }

    /// Whether any peer's idle time-out, keep-alive or request time-out is due at `now`.
    fn any_peer_timer_due(&self, config: &SessionConfig, now: Instant) -> bool {
        self.peers.values().any(|peer| {
            now - peer.last_received >= config.idle_timeout
                || now - peer.last_sent >= config.keepalive_interval
                || request_expired(peer, config.request_timeout, now)
        })
    }

    /// The per-peer timers: idle peers dropped, keep-alives sent, stalled requests expired.
    /// Walks every peer, so the tick calls it only once the earliest of these may be due
    /// (`peer_timers_at`), and it sets that instant again: a second's tick of a swarm
    /// host mostly finds nothing here, and the walk touched every peer's state.
    fn peer_timers(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let idle_timeout = ctx.config.idle_timeout;
        let keepalive = ctx.config.keepalive_interval;
        let request_timeout = ctx.config.request_timeout;
        // One pass over the peers; only those with something to do are visited again
        // (most ticks: none), in connection order as before.
        let mut work: Vec<(ConnId, bool)> = Vec::new();
        let mut next = Instant::from_micros(u64::MAX);
        for (&conn, peer) in self.peers.iter_mut() {
            if now - peer.last_received >= idle_timeout {
                work.push((conn, true));
                continue;
            }
            if now - peer.last_sent >= keepalive {
                peer.last_sent = now;
                ctx.out.send(conn, &Message::KeepAlive);
            }
            if request_expired(peer, request_timeout, now) {
                work.push((conn, false));
            }
            next = next
                .min(peer.last_received + idle_timeout)
                .min(peer.last_sent + keepalive);
            if let Some(stalled) = stalled_since(peer) {
                next = next.min(stalled + request_timeout);
            }
        }
        // A peer given work may keep a timer the walk did not count: look again next tick.
        self.peer_timers_at = if work.is_empty() { next } else { now };
        for (conn, idle) in work {
            if idle {
                self.disconnect(conn, DisconnectReason::Idle, ctx, now);
            } else {
                self.expire_requests(conn, ctx, now);
            }
        }
    }

    /// The timers with exact deadlines ([`Torrent::next_deadline`]): the choke round and
    /// slot verdicts. Run on their own between housekeeping ticks, and by every tick.
    pub(crate) fn deadlines(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        self.choke_round(ctx, now);
        self.slot_trials(ctx, now);
    }

    /// Notes that we sent something to `conn` (for keep-alive timing).
    pub(crate) fn note_sent(&mut self, conn: ConnId, now: Instant) {
        if let Some(peer) = self.peers.get_mut(&conn) {
            peer.last_sent = now;
        }
    }

    /// The priority of a piece (for tests and the session's API); `None` before the
    /// metadata is known.
    pub(crate) fn piece_priority(&self, piece: u32) -> Option<Priority> {
        self.phase.content().map(|c| c.picker.priority(piece))
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
