//! The session: many torrents, every peer connection, one output queue.
//!
//! Shaped like `quinn-proto`: inputs are method calls that carry `now`; outputs are pulled.
//!
//! ```text
//! let mut s = Session::new(config, seed, now);
//! let t = s.add_torrent(&metainfo, None, now)?;
//! s.add_peers(t, &[addr], now);                       // → Action::Connect
//! let c = s.connection_opened(addr, Direction::Outbound(t), now);
//! s.handle_bytes(c, &mut recv_buf, now);              // bytes read from the socket
//! s.handle_sent(c, n, now);                           // the socket accepted n bytes
//! s.handle_connect_error(t, addr, reason, now);       // a dial failed (OS reason)
//! s.handle_closed(c, PeerGone::HungUp, now);          // the socket ended on its own
//! s.handle_timeout(now);                              // when poll_timeout's deadline passed
//! s.disk_write_done(t, piece, Ok(()), now);           // a WriteBlock finished
//! s.disk_read_done(c, block, Ok(data), now);          // a ReadBlock finished
//! s.piece_hashed(t, piece, ok, now);                  // a VerifyPiece finished
//! s.resume_saved(t, ok, now);                         // a SaveResume finished
//! s.web_seed_data(t, seed, request, bytes, now);      // a WebSeedRequest's bytes came
//! s.web_seed_failed(t, seed, request, error, now);    // … or it failed
//! while let Some(action) = s.poll_action() { /* carry it out */ }
//! let deadline = s.poll_timeout();
//! s.pause_torrent(t, now)?; s.resume_torrent(t, now)?; s.remove_torrent(t, now)?;
//! s.set_limits(Some(t), RateLimits { upload: Some(4 << 20), download: None }, now)?;
//! s.set_seed_limits(Some(t), SeedLimits { ratio: Limit::Own(2.0), ..SeedLimits::default() }, now)?;
//! s.set_queue_limits(QueueLimits { max_downloading: Some(3), max_seeding: Some(5) }, now);
//! s.close(now);                                       // leaving: stopped, final saves
//! while !s.is_drained() { /* keep driving as above */ }
//! ```
//!
//! **Magnet links** (BEP 9). A torrent known only by its info-hash fetches its info
//! dictionary from peers before anything else:
//!
//! ```text
//! let t = s.add_magnet(info_hash, MagnetOptions { trackers, peers, display_name }, now)?;
//! // … the session dials, handshakes and asks peers that offer `ut_metadata` for the
//! // metadata, verifies it against the info-hash (SHA-1, or the truncated SHA-256 of a
//! // v2 link, whose piece layers it then fetches with BEP 52 hash requests), and emits
//! // Action::Event(Event::MetadataReceived { torrent: t, metainfo }).
//! // The driver creates or opens the storage from `metainfo`, checks what is already on
//! // disk (a VerifyPiece of its own, or a resume file), then:
//! s.metadata_ready(t, have /* Option<Bitfield> */, now)?;
//! // From here `t` is an ordinary torrent; the peers connected meanwhile stay connected.
//! ```
//!
//! Until `metadata_ready`, the torrent has no pieces at all (no geometry, picker or buffers
//! exist for it): it neither requests nor serves blocks, its [`TorrentStats`](crate::torrent::TorrentStats) say
//! `has_metadata: false` (sizes 0), [`Session::have`], [`Session::pieces_written`] and
//! [`Session::piece_priority`] answer `None`, it announces `left` = 16 KiB (a tracker
//! takes `left = 0` for a seed), and no `WriteBlock`/`ReadBlock`/`VerifyPiece` is emitted
//! for it. Availability peers announce meanwhile is kept and counted at `metadata_ready`. A verified dictionary that
//! does not parse gives [`Event::MetadataError`] (remove the torrent); metadata that fails
//! its hash gives [`Event::MetadataHashFailed`] and is fetched again (nothing to do).
//!
//! **Web seeds** (BEP 19): with [`SessionConfig::web_seeds`] a torrent's `url-list` is
//! used (and [`Session::add_web_seeds`] adds more): the session emits
//! [`Action::WebSeedRequest`]s, byte ranges of the torrent's files over HTTP(S), under the
//! same picker and trust rules as peers, and times them out itself.
//!
//! **Rate limits** ([`crate::limits`]): [`SessionConfig::upload_limit`] and
//! [`SessionConfig::download_limit`] cap the whole session, [`Session::set_limits`] changes
//! them or a torrent's own limits live. The session holds back reads and requests itself
//! and asks to be woken ([`Session::poll_timeout`]) when tokens come: a driver never
//! sleeps or stalls a socket to limit a rate.
//!
//! **Peer exchange** (BEP 11) needs nothing from the driver: peers learnt by PEX are dialled
//! with the usual `Connect` actions.
//!
//! **Connections** (see `admission.rs`): the session admits or refuses inbound sockets,
//! times dials out (`CancelConnect`: drop the half-open socket), drops peers that do not
//! read what they asked for, and holds uploads back while a socket is behind — the driver
//! only reports what happened and carries out the actions.
//!
//! **Encryption** (MSE/PE, see `encryption.rs` and [`crate::mse`]): by
//! [`SessionConfig::encryption`], dials open with an MSE handshake and inbound connections
//! may speak either; the session runs the handshakes, encrypts what it queues and decrypts
//! what arrives in place, so a driver moves the same opaque bytes either way. What it asks
//! of the driver: keep each connection's receive buffer as [`Session::handle_bytes`] says,
//! and frame blocks itself ([`Session::handle_block`]) only where
//! [`Session::frames_in_clear`] allows.
//!
//! **uTP** (BEP 29, see `utp_streams.rs` and [`crate::utp`]): by
//! [`SessionConfig::transport`], dials go out as uTP SYNs (`Both`: uTP first, TCP when
//! that fails), and SYNs arriving through [`Session::handle_datagram`] open inbound
//! connections. A uTP stream is a connection like a TCP one to everything above it; its
//! `Send`/`SendBlock`/`Disconnect` never reach the driver, which only moves
//! `SendDatagram`s. What it asks of the driver: hand the session the datagrams of one read
//! burst before draining [`Session::poll_action`], so each stream is acknowledged once per
//! burst (handing them one at a time works too, with one acknowledgement per packet).
//!
//! Rules the session keeps:
//! - **Determinism.** One RNG seeded by the caller; every map is ordered. The same seed and
//!   the same inputs give the same actions, byte for byte.
//! - **No panics on input.** Every byte from a peer goes through the wire decoder's limits;
//!   any violation ends that connection with [`DisconnectReason::Protocol`].
//! - **Spurious calls are harmless.** `handle_timeout` early, input for a connection already
//!   closed, completions for forgotten requests: all are ignored.

mod adding;
mod admission;
mod connections;
mod dht;
mod encryption;
mod give_up;
mod handshake;
mod input;
mod lifecycle;
mod limits;
mod lsd;
mod queue;
mod resume_schedule;
mod seed_limits;
mod status;
mod trackers;
mod utp_streams;
mod web_seeds;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

pub use crate::limits::RateLimits;
pub use crate::piece_hashes::{PieceHash, PieceHashes};
pub use crate::torrent::MAGNET_LEFT;
pub use crate::vocab::{
    Action, ConnId, ConnectFailure, CryptoLevel, DhtRouterFailure, Direction, DisconnectReason,
    DiskError, DiskErrorKind, EncryptionPolicy, Event, FAILED_PEERS_LISTED, FailedPeer,
    GeometryError, GiveUpReason, Limit, PeerGone, PeerSource, QueueLimits, SeedLimit, SeedLimits,
    SessionConfig, TorrentId, TransferTotals, Transport, WebSeedError, WebSeedFailure, WebSeedId,
    WebSeedRange, WebSeedStats,
};
pub use adding::{AddTorrentError, MagnetOptions, MetadataReadyError};
pub use lifecycle::{LifecycleError, TorrentState};
pub use lsd::LsdStats;
pub use seed_limits::SeedLimitsError;
pub use trackers::metainfo_tiers;
pub use utp_streams::UtpStreamStats;

use crate::bitfield::Bitfield;
use crate::info_hash::InfoHash;
use crate::picker::Priority;
use crate::time::Instant;
use crate::torrent::{Ctx, Torrent, WriteBudget};
use crate::vocab::conn_map::ConnMap;
use crate::vocab::outbox::Outbox;
use crate::wire::{PeerId, Reserved};
use admission::Admission;
use handshake::Handshaking;
use resume_schedule::ResumeSchedule;
use trackers::Trackers;

/// Housekeeping period: keep-alives, idle checks, request time-outs and dialling are looked
/// at this often (choking rounds have their own exact deadlines).
const TICK: Duration = Duration::from_secs(1);

/// Many torrents and their peer connections, as a pure state machine. See the module docs.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    rng: fastrand::Rng,
    /// Seeds the torrents' address hash maps: from the session's seed, not drawn from
    /// `rng` (which would change every later draw), and unknown to peers.
    hash_seed: u64,
    peer_id: PeerId,
    reserved: Reserved,
    /// Torrents by id. Ids are never reused: a removed torrent's id stays unknown.
    torrents: BTreeMap<TorrentId, Torrent>,
    /// The id the next added torrent gets.
    next_torrent: u32,
    /// Torrents by the info-hashes peers know them by: one per torrent, two for a hybrid
    /// (its v1 hash and its truncated v2 hash).
    by_hash: BTreeMap<InfoHash, TorrentId>,
    /// Connections still in their handshake. Walks over it sort what they collect: its
    /// order is the hasher's.
    handshaking: ConnMap<Handshaking>,
    /// The torrent of every connection past its handshake: looked up on every message,
    /// never walked.
    routes: ConnMap<TorrentId>,
    next_conn: u64,
    out: Outbox,
    /// Reused by `handle_timeout` for the connections written to since the last call.
    touched_scratch: Vec<ConnId>,
    next_tick: Instant,
    trackers: Trackers,
    /// The DHT node and per-torrent lookup schedules (`None`: `SessionConfig::dht` unset).
    dht: Option<dht::SessionDht>,
    /// Local service discovery's schedules and limits (`None`: `SessionConfig::lsd` unset).
    lsd: Option<lsd::SessionLsd>,
    /// Per torrent (by index), how long it has had nothing to download from.
    stalls: BTreeMap<TorrentId, give_up::Stall>,
    /// Admission, dial deadlines, unsent bytes, peer events (see [`admission`]).
    admission: Admission,
    /// When each torrent's resume data is next saved (see [`resume_schedule`]).
    resumes: ResumeSchedule,
    /// The latest `now` an input carried: when a `Connect` is polled, its time-out runs
    /// from here.
    now: Instant,
    /// Blocks handed out as `WriteBlock` and not yet answered, for all torrents: requests
    /// stop while it is over [`SessionConfig::max_unwritten_bytes`].
    writes: WriteBudget,
    /// Paused torrents, and the session's close (see [`lifecycle`]).
    life: lifecycle::Lifecycle,
    /// The torrents an inbound MSE handshake may name (every torrent of the session).
    served: crate::mse::Served,
    /// The receive side of every RC4 connection (see [`encryption`]).
    decryptors: encryption::Decryptors,
    /// The session-wide rate limiters and the peers waiting for upload tokens (see
    /// [`limits`]).
    limits: crate::limits::SessionLimits,
    /// Which torrents run and which wait (see [`queue`]).
    queue: queue::Queue,
    /// Seeding limits and the running seeds' clocks (see [`seed_limits`]).
    seeds: seed_limits::Seeds,
    /// The uTP streams: peer connections over the UDP socket (see [`utp_streams`]).
    utp: utp_streams::UtpStreams,
}

impl Session {
    /// A session with no torrents. `seed` seeds the only RNG the session uses.
    pub fn new(config: SessionConfig, seed: u64, now: Instant) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let hash_seed = mix64(seed ^ 0x243f_6a88_85a3_08d3);
        let peer_id = PeerId::generate(&mut rng);
        let trackers = Trackers::new(rng.u32(..));
        // Drawn only with a DHT, so sessions without one keep their random sequence.
        let dht = config
            .dht
            .clone()
            .map(|c| dht::SessionDht::new(c, config.dht_families, rng.u64(..), now));
        // Likewise the LSD cookie is drawn only with LSD on.
        let lsd = config.lsd.then(|| lsd::SessionLsd::new(rng.u64(..)));
        let admission = Admission::new(&config);
        let resumes = ResumeSchedule::new(config.resume_interval, now);
        let writes = WriteBudget::new(config.max_unwritten_bytes);
        let (config_queue, config_seeds) = (config.queue_limits, config.seed_limits);
        let limits = crate::limits::SessionLimits::new(
            crate::limits::RateLimits {
                upload: config.upload_limit,
                download: config.download_limit,
            },
            now,
        );
        Session {
            config,
            rng,
            hash_seed,
            peer_id,
            // We speak BEP 6 (fast) and BEP 10 (extension protocol).
            reserved: Reserved::NONE.with_fast().with_extension_protocol(),
            torrents: BTreeMap::new(),
            next_torrent: 0,
            by_hash: BTreeMap::new(),
            handshaking: ConnMap::default(),
            routes: ConnMap::default(),
            next_conn: 0,
            out: Outbox::default(),
            touched_scratch: Vec::new(),
            next_tick: now + TICK,
            trackers,
            dht,
            lsd,
            stalls: BTreeMap::new(),
            admission,
            resumes,
            now,
            writes,
            life: lifecycle::Lifecycle::default(),
            served: crate::mse::Served::default(),
            decryptors: encryption::Decryptors::default(),
            limits,
            queue: queue::Queue::new(config_queue),
            seeds: seed_limits::Seeds::new(config_seeds),
            utp: utp_streams::UtpStreams::default(),
        }
    }

    /// Notes the time an input carried (time never goes backwards).
    fn saw(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// Our peer id (`-UC0001-` and 12 random characters).
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The settings in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Records pieces found on disk holding unverified data (from the start-up check), so
    /// [`Session::pieces_written`] includes them. A bitfield of the wrong length is ignored.
    pub fn note_pieces_written(&mut self, torrent: TorrentId, pieces: &Bitfield) {
        if let Some(t) = self
            .torrents
            .get_mut(&torrent)
            .filter(|t| !t.awaiting_metadata())
        {
            t.note_written(pieces);
            self.resumes.note_written(torrent, pieces);
        }
    }

    /// Makes `torrent` upload-only (or not): it serves the pieces it has and never requests,
    /// accepts or writes a block — for data that must not change, such as a partial seed
    /// over read-only storage. Outstanding requests are forgotten and peers told we are not
    /// interested; a peer with every piece is then disconnected, as between two seeds.
    pub fn set_upload_only(&mut self, torrent: TorrentId, on: bool, now: Instant) {
        self.saw(now);
        self.with_torrent(torrent, |t, ctx| t.set_upload_only(on, ctx, now));
    }

    /// Sets per-file priorities (index = file index in the metainfo; missing entries mean
    /// `Normal`). Skipped files are not downloaded, except pieces they share with wanted
    /// files.
    pub fn set_file_priorities(
        &mut self,
        torrent: TorrentId,
        priorities: &[Priority],
        now: Instant,
    ) {
        self.saw(now);
        self.with_torrent(torrent, |t, ctx| {
            t.set_file_priorities(priorities, ctx, now)
        });
        self.seed_wanted_changed(torrent, now);
    }

    /// Adds addresses the user gives to dial for `torrent` (`--peer`): the highest-ranked
    /// source, see [`Session::add_peers_from`].
    pub fn add_peers(&mut self, torrent: TorrentId, addrs: &[SocketAddr], now: Instant) {
        self.add_peers_from(torrent, PeerSource::User, addrs, now);
    }

    /// Adds addresses to dial for `torrent`, named by `source`, which ranks them among the
    /// bounded candidates ([`SessionConfig::max_candidates`]): higher sources are dialled
    /// first and are never pushed out by a flood from a lower one.
    pub fn add_peers_from(
        &mut self,
        torrent: TorrentId,
        source: PeerSource,
        addrs: &[SocketAddr],
        now: Instant,
    ) {
        self.saw(now);
        if self.life.is_closing() {
            return;
        }
        // A paused torrent keeps the addresses for when it resumes.
        let dial = self.life.connects(torrent);
        let addrs: Vec<SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|a| !self.trackers.is_own(a))
            .collect();
        self.with_torrent(torrent, |t, ctx| {
            t.add_candidates(&addrs, source, ctx.config.max_candidates, now);
            if dial {
                t.maybe_connect(ctx, now);
            }
        });
    }

    /// Runs `f` on torrent `tid` with the session's output queue, RNG and settings, then
    /// forgets the routes of any connection it closed. `None` if there is no such torrent.
    fn with_torrent<R>(
        &mut self,
        tid: TorrentId,
        f: impl FnOnce(&mut Torrent, &mut Ctx<'_>) -> R,
    ) -> Option<R> {
        let t = self.torrents.get_mut(&tid)?;
        let mut closed = Vec::new();
        let mut ctx = Ctx {
            out: &mut self.out,
            rng: &mut self.rng,
            config: &self.config,
            own_addrs: self.trackers.own_addrs(),
            closed: &mut closed,
            writes: &mut self.writes,
            limits: &mut self.limits,
        };
        let result = f(t, &mut ctx);
        for conn in closed {
            self.routes.remove(&conn);
            self.decryptors.remove(conn);
        }
        Some(result)
    }

    /// A `WriteBlock` finished. On `Err` the piece is not counted as had: its blocks are
    /// downloaded again, and [`Event::StorageError`] carries the error (a driver usually
    /// stops on [`DiskErrorKind::NoSpace`]; verified pieces stay verified).
    pub fn disk_write_done(
        &mut self,
        torrent: TorrentId,
        piece: u32,
        result: Result<(), DiskError>,
        now: Instant,
    ) {
        self.saw(now);
        self.with_torrent(torrent, |t, ctx| {
            t.disk_write_done(piece, result, ctx, now);
        });
        if self.writes.take_released() {
            // Enough was written: every torrent's pipelines, held back meanwhile, refill.
            let ids: Vec<TorrentId> = self.torrents.keys().copied().collect();
            for id in ids {
                self.with_torrent(id, |t, ctx| t.fill_all_pipelines(ctx, now));
            }
        }
        self.queue_check(torrent, now);
        self.close_progress(now);
    }

    /// Bytes of [`Action::WriteBlock`]s not yet answered by [`Session::disk_write_done`],
    /// counted 16 KiB a block (see [`SessionConfig::max_unwritten_bytes`]). For tests and
    /// status displays.
    pub fn unwritten_bytes(&self) -> usize {
        self.writes.bytes()
    }

    /// A `ReadBlock` finished. On `Err` the request is refused (BEP 6 peers get a reject)
    /// and [`Event::StorageError`] carries the error.
    pub fn disk_read_done(
        &mut self,
        conn: ConnId,
        block: crate::wire::BlockRequest,
        result: Result<Bytes, DiskError>,
        now: Instant,
    ) {
        self.saw(now);
        // The torrent first: whether the block now waits in the outbox decides what the
        // read-ahead bound may release.
        let route = self.routes.get(&conn).copied();
        let queued = match route {
            Some(tid) => self
                .with_torrent(tid, |t, ctx| {
                    t.disk_read_done(conn, block, result, ctx, now)
                })
                .unwrap_or(false),
            None => false,
        };
        self.admission
            .read_done(conn, block.length as usize, queued, &self.config);
        if let Some(tid) = route {
            // An upload: the seed's idle clock restarts, its ratio may be reached.
            self.seed_uploaded(tid, now);
        }
    }

    /// A `VerifyPiece` finished: `ok` is whether the piece matched its hashes.
    pub fn piece_hashed(&mut self, torrent: TorrentId, piece: u32, ok: bool, now: Instant) {
        self.saw(now);
        self.with_torrent(torrent, |t, ctx| {
            t.piece_hashed(piece, ok, ctx, now);
        });
        self.queue_check(torrent, now);
        self.close_progress(now);
    }

    /// Timers: handshake time-outs, choking rounds, keep-alives, idle peers, request
    /// time-outs, dialling, giving up when nothing is left to try (see
    /// [`Event::GaveUp`]). Calling it early or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.saw(now);
        let mut expired: Vec<ConnId> = self
            .handshaking
            .iter()
            .filter(|(_, h)| {
                let limit = match h.direction {
                    Direction::Inbound => self
                        .config
                        .inbound_handshake_timeout
                        .min(self.config.handshake_timeout),
                    Direction::Outbound(_) => self.config.handshake_timeout,
                };
                now - h.opened_at >= limit
            })
            .map(|(c, _)| *c)
            .collect();
        expired.sort_unstable();
        for conn in expired {
            self.close_handshaking(conn, DisconnectReason::HandshakeTimeout, now);
        }
        let late = self.admission.timeout(&self.config, now);
        for (torrent, addr) in late.dials {
            if let Some(t) = self.torrents.get_mut(&torrent) {
                t.connect_failed(addr, &self.config, now);
            }
        }
        self.drop_slow_readers(late.slow, now);
        let tick_due = now >= self.next_tick;
        // Connections we wrote to since the last tick are not idle (keep-alive timing).
        let mut touched = std::mem::take(&mut self.touched_scratch);
        self.out.take_touched(&mut touched);
        for conn in touched.drain(..) {
            if let Some(t) = self
                .routes
                .get(&conn)
                .and_then(|tid| self.torrents.get_mut(tid))
            {
                t.note_sent(conn, now);
            }
        }
        self.touched_scratch = touched;
        // Every torrent on the housekeeping tick; between ticks only those whose exact
        // deadlines (choke round, slot verdicts) came, and only for those.
        let ticking: Vec<TorrentId> = self
            .torrents
            .iter()
            .filter(|(id, t)| self.life.ticks(**id) && (tick_due || t.next_deadline() <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in ticking {
            if tick_due {
                self.with_torrent(id, |t, ctx| t.tick(ctx, now));
            } else {
                self.with_torrent(id, |t, ctx| t.deadlines(ctx, now));
            }
        }
        if tick_due {
            self.next_tick = now + TICK;
            // Held `have`s all go at the last tick that keeps the oldest within
            // `SessionConfig::have_delay` (at the first tick after it, for a delay of a
            // tick or less).
            if self
                .out
                .deferred_since()
                .is_some_and(|since| now + TICK > since + self.config.have_delay)
            {
                self.out.release_deferred();
            }
        }
        self.pump_announces(now);
        self.dht_timeout(now);
        self.lsd_timeout(now);
        self.resume_timeout(now);
        self.limits_timeout(now);
        if tick_due {
            self.check_give_up(now);
        }
        self.seed_timeout(now);
        self.utp_timeout(now);
        self.close_progress(now);
    }

    /// A [`Action::SaveResume`] finished: `ok` is whether the resume data was written.
    /// Until this call no other save is emitted for `torrent`; after a failure the next
    /// round (one [`SessionConfig::resume_interval`] on) tries again.
    pub fn resume_saved(&mut self, torrent: TorrentId, ok: bool, now: Instant) {
        self.saw(now);
        self.resumes.saved(torrent, ok);
        self.close_saved(torrent, ok);
    }

    /// The resume saves due at `now`, queued behind the actions already out.
    fn resume_timeout(&mut self, now: Instant) {
        let torrents = &self.torrents;
        let life = &self.life;
        // Not while the driver checks or moves its files: the save would go to where they
        // may no longer be, and claim pieces the check may not find.
        let saves = self.resumes.due(now, |id| {
            torrents
                .get(&id)
                .filter(|_| !life.is_checking(id))
                .and_then(|t| t.have_and_written())
        });
        for save in saves {
            self.out.push(save);
        }
    }

    /// When `handle_timeout` should next be called; `None` when nothing is scheduled (no
    /// running torrent, no connection, no DHT, no close under way): sleep until an input.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let choke = self
            .torrents
            .iter()
            .filter(|(id, _)| self.life.ticks(**id))
            .map(|(_, t)| t.next_deadline())
            .min();
        let announce = self.trackers.next_deadline();
        let dht = self.dht.as_ref().and_then(|d| d.next_deadline());
        let lsd = self.lsd.as_ref().and_then(|l| l.next_deadline());
        let conns = self.admission.next_deadline(&self.config);
        let resume = self.resumes.next_deadline();
        let close = self.close_deadline();
        let limits = self.limits_deadline();
        let seeds = self.seed_deadline();
        let utp = self.utp.next_deadline(self.now);
        // Housekeeping (keep-alives, idle peers, request time-outs, dialling, handshakes
        // that never finish, giving up, deferred `have`s) has work only with a running
        // torrent, a connection still handshaking or deferred bytes: without any, nothing
        // is scheduled.
        let housekeeping = (!self.handshaking.is_empty()
            || self.out.has_deferred()
            || self.torrents.keys().any(|id| self.life.ticks(*id)))
        .then_some(self.next_tick);
        crate::time::earliest([
            housekeeping,
            choke,
            announce,
            dht,
            lsd,
            conns,
            resume,
            close,
            limits,
            seeds,
            utp,
        ])
    }

    /// The next action for the driver, or `None` when there is nothing to do.
    /// Peer events and released uploads come first; a `ReadBlock` past the connection's
    /// read-ahead bound is held back (see [`SessionConfig::upload_read_ahead`]). What
    /// concerns uTP streams (their sends, disconnects and dials) is carried out inside the
    /// session and leaves as `SendDatagram`s (see `utp_streams.rs`).
    pub fn poll_action(&mut self) -> Option<Action> {
        loop {
            if let Some(a) = self.utp_pop_datagram() {
                return Some(a);
            }
            if let Some(a) = self.admission.pop() {
                match self.utp_route(a) {
                    Some(a) => return Some(a),
                    None => continue,
                }
            }
            let Some(action) = self.out.pop() else {
                self.utp_output_empty();
                return None;
            };
            if !self.still_wanted(&action) {
                continue;
            }
            match &action {
                Action::Send { conn, data } => {
                    self.admission
                        .handed(*conn, data.len(), &self.config, self.now);
                }
                Action::SendBlock { conn, header, data } => {
                    self.admission.block_handed(*conn, data.len(), self.now);
                    let len = header.len() + data.len();
                    self.admission.handed(*conn, len, &self.config, self.now);
                }
                Action::Connect { torrent, addr } => {
                    self.admission
                        .dialling(*torrent, *addr, &self.config, self.now);
                }
                Action::Disconnect { conn, reason } => {
                    // The event follows the action it reports.
                    self.admission
                        .closed(*conn, PeerGone::Closed(reason.clone()));
                }
                _ => {}
            }
            // Only a read may be held, and most actions pass the uTP router untouched:
            // those go out without being moved through either (an `Action` is large).
            if matches!(action, Action::ReadBlock { .. }) {
                match self
                    .admission
                    .gate_read(action, &self.config)
                    .and_then(|a| self.utp_route(a))
                {
                    Some(action) => return Some(action),
                    None => continue,
                }
            }
            if self.utp_passes(&action) {
                return Some(action);
            }
            if let Some(action) = self.utp_route(action) {
                return Some(action);
            }
        }
    }
}

/// SplitMix64's finaliser: spreads `x` over all 64 bits (for [`Session::hash_seed`], so
/// nearby session seeds give unrelated hash seeds).
fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
