//! [`SessionHost`]: the client's bookkeeping around the core's `Session`, the same whatever
//! moves the bytes — torrents' storage and resume files, magnets awaiting their storage,
//! commands from the client handle, what events tell the user, the shutdown's reports.
//! It holds no rule about peers, pieces, trackers or memory (those are the session's).
//! Inputs reach it, and actions leave it, through [`crate::pump`]: both runtimes run their
//! loop around one of these, so none of this is written twice.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use unchoke_core::InfoHash;
use unchoke_core::bitfield::Bitfield;
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{
    AddTorrentError, ConnectFailure, LifecycleError, MagnetOptions, QueueLimits, RateLimits,
    SeedLimits, SeedLimitsError, Session, TorrentId,
};
use unchoke_core::time::Instant;
use unchoke_core::torrent::TorrentStats;
use unchoke_storage::FileStorage;

use crate::dht_node::{load_nodes, save_nodes};
use crate::disk::Completion;
use crate::tracker_client::TrackerClient;
use crate::{AddMagnet, ClientConfig, ClientEvent, Clock, ShutdownReport};

/// Longest a driver's loop sleeps, so a lost wake-up can never stall it for long.
const MAX_SLEEP: Duration = Duration::from_millis(500);

/// Where the answer to a lifecycle command (remove, pause, resume) goes.
type LifecycleReply = Sender<Result<(), LifecycleError>>;

/// Requests from a client handle to its loop; replies go back on channels the blocking
/// caller waits on.
#[allow(missing_docs)] // the fields are the arguments of the client method of that name
pub enum Command {
    AddTorrent {
        metainfo: Box<Metainfo>,
        storage: Arc<FileStorage>,
        have: Bitfield,
        /// Pieces the check found holding data (see `PreparedTorrent::written`).
        written: Bitfield,
        resume_path: PathBuf,
        peers: Vec<SocketAddr>,
        trackers: Option<Vec<Vec<String>>>,
        web_seeds: Vec<String>,
        reply: Sender<Result<TorrentId, AddTorrentError>>,
    },
    AddMagnet {
        add: Box<AddMagnet>,
        reply: Sender<Result<TorrentId, AddTorrentError>>,
    },
    AddPeers {
        torrent: TorrentId,
        peers: Vec<SocketAddr>,
    },
    Stats {
        torrent: TorrentId,
        reply: Sender<Option<TorrentStats>>,
    },
    SetLimits {
        torrent: Option<TorrentId>,
        limits: RateLimits,
        reply: Sender<Result<(), LifecycleError>>,
    },
    SetSeedLimits {
        torrent: Option<TorrentId>,
        limits: SeedLimits,
        reply: Sender<Result<(), SeedLimitsError>>,
    },
    SetQueueLimits {
        limits: QueueLimits,
        reply: Sender<()>,
    },
    SetEarlierTransfers {
        torrent: TorrentId,
        totals: unchoke_core::session::TransferTotals,
        reply: Sender<Result<(), SeedLimitsError>>,
    },
    DhtStats {
        reply: Sender<Option<crate::DhtStatus>>,
    },
    /// Answered once no disk job holds the torrent's storage any more, so the caller may
    /// delete its files without a late write bringing one back.
    Remove {
        torrent: TorrentId,
        reply: Sender<Result<(), LifecycleError>>,
    },
    /// Answered once the check is under way; [`ClientEvent::Rechecked`] says when it is
    /// over.
    Recheck {
        torrent: TorrentId,
        add: Box<crate::AddTorrent>,
        move_from: Option<PathBuf>,
        reply: Sender<Result<(), LifecycleError>>,
    },
    Pause {
        torrent: TorrentId,
        reply: Sender<Result<(), LifecycleError>>,
    },
    SetQueuePosition {
        torrent: TorrentId,
        position: usize,
        reply: Sender<Result<(), LifecycleError>>,
    },
    Resume {
        torrent: TorrentId,
        reply: Sender<Result<(), LifecycleError>>,
    },
    Torrents {
        reply: Sender<Vec<crate::TorrentStatus>>,
    },
    Details {
        torrent: TorrentId,
        reply: Sender<Option<crate::TorrentDetails>>,
    },
    SetFilePriorities {
        torrent: TorrentId,
        priorities: Vec<unchoke_core::picker::Priority>,
    },
    Shutdown {
        reply: Sender<Vec<ShutdownReport>>,
    },
}

pub(crate) struct TorrentSlot {
    pub(crate) storage: Arc<FileStorage>,
    pub(crate) info_hash: InfoHash,
    pub(crate) resume_path: PathBuf,
    /// Why the last resume save failed, for the shutdown report (the session says which
    /// save was the final one and whether it succeeded).
    save_error: Option<String>,
}

/// The session and its bookkeeping; see the module docs.
pub struct SessionHost {
    pub(crate) session: Session,
    pub(crate) clock: Clock,
    pub(crate) torrents: BTreeMap<TorrentId, TorrentSlot>,
    events: Sender<ClientEvent>,
    /// Disk jobs handed to the runtime and not completed (for diagnostics only: when
    /// shutdown is done is the session's call, [`Session::is_drained`]).
    pub(crate) jobs_in_flight: usize,
    /// Where the shutdown's reports go, once `shutdown` was asked for.
    pub(crate) shutdown: Option<Sender<Vec<ShutdownReport>>>,
    pub(crate) trackers: Arc<TrackerClient>,
    /// The HTTP client of every torrent's web seeds.
    pub(crate) web_seeds: Arc<crate::web_seed::WebSeedClient>,
    /// Magnet torrents whose storage is not set up yet: where it goes.
    pub(crate) magnets: BTreeMap<TorrentId, AddMagnet>,
    /// The settings storage set-up needs (the check's threads, open-file limit).
    pub(crate) config: ClientConfig,
    /// Removed torrents whose storage a disk job still holds, with the remover waiting
    /// for it to be let go ([`Command::Remove`]).
    removing: Vec<(Arc<FileStorage>, LifecycleReply)>,
    /// Rechecks the session started whose job waits for the disk jobs out to let go of
    /// the torrent's storage (no file may move, nor be read for the check, under a write).
    pub(crate) checks: Vec<(TorrentId, Box<crate::AddTorrent>, Option<PathBuf>)>,
    /// Whether a torrent or magnet was ever accepted: a client whose every add was refused
    /// (a seed pointed at the wrong directory) must not create the DHT node file there.
    accepted: bool,
}

impl std::fmt::Debug for SessionHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHost")
            .field("jobs_in_flight", &self.jobs_in_flight)
            .finish_non_exhaustive()
    }
}

impl SessionHost {
    /// A session configured from `cfg`, telling peers and trackers the port of `listen`
    /// (the bound listener, if any); events go to `events` (dropped when its backlog is
    /// full: counters stay available via `stats`). Tracker sockets are bound to the listen
    /// IP, so trackers register us under the address we accept peers on. `udp` is where
    /// the UDP socket is bound: the DHT runs over the address families it can reach
    /// ([`crate::dht_node::dht_families`]).
    pub fn new(
        cfg: &ClientConfig,
        listen: Option<SocketAddr>,
        udp: Option<SocketAddr>,
        events: Sender<ClientEvent>,
    ) -> Self {
        let mut session_cfg = cfg.session.clone();
        session_cfg.listen_port = listen.map_or(0, |a| a.port());
        // BEP 7: trackers reached over IPv4 may list us to IPv6 peers too.
        session_cfg.announce_ipv6 = crate::net::public_ipv6(listen);
        // Both runtimes report what each socket accepted (`handle_sent`), and the client's
        // user sees peers come and go.
        session_cfg.send_accounting = true;
        session_cfg.peer_events = true;
        // The session decides when to save resume data (`Action::SaveResume`).
        session_cfg.resume_interval = cfg.resume_interval;
        // A magnet's metadata meets the same shape limits as a .torrent file.
        session_cfg.shape = cfg.shape;
        let clock = Clock::start();
        let seed = cfg.rng_seed.unwrap_or_else(|| fastrand::u64(..));
        session_cfg.dht = cfg.dht.as_ref().map(|d| d.config.clone());
        // The runtime cleared `lsd` if no socket could be set up, and set the session's
        // `lsd_families` to the groups joined (`lsd_node::open_lsd`).
        session_cfg.lsd = cfg.lsd;
        if let Some(udp) = udp {
            session_cfg.dht_families = crate::dht_node::dht_families(&udp);
            // BEP 42: no node-id enforcement on a loopback socket (the core's rule).
            session_cfg.dht = session_cfg.dht.map(|d| d.for_socket(&udp));
        }
        let mut session = Session::new(session_cfg, seed, clock.now());
        let bind_ip = listen.map(|a| a.ip()).filter(|ip| !ip.is_unspecified());
        if let Some(addr) = listen.filter(|a| !a.ip().is_unspecified()) {
            session.add_own_address(addr);
        }
        if let Some(dht) = &cfg.dht {
            // Nodes from the last run first: they knew us. An unreadable file only costs
            // a slower start.
            let mut nodes = dht
                .nodes_file
                .as_deref()
                .and_then(|p| load_nodes(p).ok())
                .unwrap_or_default();
            nodes.extend(dht.bootstrap.iter().copied());
            session.dht_bootstrap(&nodes, clock.now());
            session.dht_join_routers(&dht.routers, clock.now());
        }
        SessionHost {
            session,
            clock,
            torrents: BTreeMap::new(),
            events,
            jobs_in_flight: 0,
            shutdown: None,
            trackers: Arc::new(TrackerClient::with_roots(
                bind_ip,
                cfg.tracker_roots.clone(),
            )),
            web_seeds: Arc::new(crate::web_seed::WebSeedClient::new(
                cfg.tracker_roots.clone(),
            )),
            magnets: BTreeMap::new(),
            config: cfg.clone(),
            removing: Vec::new(),
            checks: Vec::new(),
            accepted: false,
        }
    }

    /// The OS's reason for a failed dial, as the session's typed reason.
    pub(crate) fn connect_failure(&self, error: &std::io::Error) -> ConnectFailure {
        crate::connect_failure(error, self.session.config().connect_timeout)
    }

    /// Tells the user something (dropped if they do not read their events).
    pub(crate) fn emit(&self, event: ClientEvent) {
        let _ = self.events.try_send(event);
    }

    /// Whether shutdown was asked for (stop accepting and reading).
    pub fn shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    /// How long the loop may sleep before it must call [`SessionHost::timers`] (capped,
    /// so a lost wake-up can never stall it for long).
    pub fn timeout(&self) -> Duration {
        self.clock.until(self.session.poll_timeout(), MAX_SLEEP)
    }

    /// The storage of a torrent whose storage is set up.
    pub(crate) fn storage(&self, torrent: TorrentId) -> Option<Arc<FileStorage>> {
        self.torrents.get(&torrent).map(|s| s.storage.clone())
    }

    /// Blocking work finished: update the bookkeeping and tell the session (the caller
    /// pumps).
    pub(crate) fn complete(&mut self, c: Completion) {
        let now = self.clock.now();
        match c {
            Completion::Written {
                torrent,
                piece,
                result,
                ..
            } => {
                self.jobs_in_flight = self.jobs_in_flight.saturating_sub(1);
                self.session.disk_write_done(torrent, piece, result, now);
            }
            Completion::Read {
                conn,
                block,
                result,
            } => {
                self.jobs_in_flight = self.jobs_in_flight.saturating_sub(1);
                self.session.disk_read_done(conn, block, result, now);
            }
            Completion::Hashed { torrent, piece, ok } => {
                self.jobs_in_flight = self.jobs_in_flight.saturating_sub(1);
                self.session.piece_hashed(torrent, piece, ok, now);
            }
            Completion::Announced {
                torrent,
                url,
                result,
                ..
            } => {
                // Also during shutdown: a `completed`'s answer releases the `stopped`, and
                // the session's close waits for the `stopped`'s.
                self.session.announce_done(torrent, &url, result, now);
            }
            Completion::WebSeed {
                torrent,
                seed,
                request,
                result,
            } => match result {
                Ok(data) => self
                    .session
                    .web_seed_data(torrent, seed, request, data, now),
                Err(error) => self
                    .session
                    .web_seed_failed(torrent, seed, request, error, now),
            },
            Completion::Resolved { host, port, result } => {
                self.session.handle_resolved(&host, port, result, now);
            }
            Completion::Prepared {
                torrent,
                metainfo,
                result,
            } => {
                self.jobs_in_flight = self.jobs_in_flight.saturating_sub(1);
                self.metadata_prepared(torrent, metainfo, result, now);
            }
            Completion::Rechecked {
                torrent,
                save_path,
                moved,
                result,
            } => {
                self.jobs_in_flight = self.jobs_in_flight.saturating_sub(1);
                self.rechecked(torrent, save_path, moved, result, now);
            }
            Completion::ResumeSaved { torrent, result } => {
                if let Some(slot) = self.torrents.get_mut(&torrent) {
                    slot.save_error = result.as_ref().err().cloned();
                }
                // A failure is retried at the session's next resume round.
                self.session.resume_saved(torrent, result.is_ok(), now);
                if let Err(message) = result {
                    self.emit(ClientEvent::ResumeSaveFailed { torrent, message });
                }
            }
        }
        self.answer_removals();
    }

    /// A recheck's job is done: the storage it opened replaces the torrent's, and the
    /// session takes what it found. A check that could not run at all keeps the pieces
    /// the session had (nothing verified is dropped for a failure to look).
    fn rechecked(
        &mut self,
        torrent: TorrentId,
        save_path: PathBuf,
        moved: Result<(), String>,
        result: Result<Box<crate::PreparedTorrent>, String>,
        now: Instant,
    ) {
        let (have, outcome) = match result {
            Ok(prepared) => {
                let prepared = *prepared;
                if let Some(slot) = self.torrents.get_mut(&torrent) {
                    slot.storage = Arc::new(prepared.storage);
                    slot.resume_path = prepared.resume_path;
                }
                self.session.note_pieces_written(torrent, &prepared.written);
                (Some(prepared.have), moved)
            }
            Err(e) => (self.session.have(torrent).cloned(), Err(e)),
        };
        let finished = match have {
            Some(have) => self
                .session
                .finish_recheck(torrent, have, now)
                .map_err(|e| e.to_string()),
            None => Err("the torrent is gone".to_string()),
        };
        self.emit(ClientEvent::Rechecked {
            torrent,
            save_path,
            result: outcome.and(finished),
        });
    }

    /// Answers the removers whose torrent's storage no disk job holds any more (the
    /// completion that let it go has been dropped by now).
    fn answer_removals(&mut self) {
        self.removing.retain(|(storage, reply)| {
            if Arc::strong_count(storage) > 1 {
                return true;
            }
            let _ = reply.send(Ok(()));
            false
        });
    }

    /// Every torrent of the session (magnets awaiting their metadata included), in id
    /// order, with where it stands and its counters.
    fn torrent_statuses(&self) -> Vec<crate::TorrentStatus> {
        let now = self.clock.now();
        let ids: std::collections::BTreeSet<TorrentId> = self
            .torrents
            .keys()
            .chain(self.magnets.keys())
            .copied()
            .collect();
        ids.into_iter()
            .filter_map(|id| {
                Some(crate::TorrentStatus {
                    id,
                    state: self.session.torrent_state(id)?,
                    stats: self.session.stats(id, now)?,
                    display_name: self.session.display_name(id).map(str::to_owned),
                    queue_position: self.session.queue_position(id)?,
                })
            })
            .collect()
    }

    /// A magnet torrent's storage was set up (or not): hand the pieces found to the session,
    /// which starts downloading.
    fn metadata_prepared(
        &mut self,
        torrent: TorrentId,
        metainfo: Box<Metainfo>,
        result: Result<Box<crate::PreparedTorrent>, String>,
        now: Instant,
    ) {
        let prepared = match result {
            Ok(p) => p,
            Err(message) => {
                self.emit(ClientEvent::MetadataStorageFailed { torrent, message });
                return;
            }
        };
        if let Err(e) = self
            .session
            .metadata_ready(torrent, Some(prepared.have), now)
        {
            self.emit(ClientEvent::MetadataStorageFailed {
                torrent,
                message: e.to_string(),
            });
            return;
        }
        self.session.note_pieces_written(torrent, &prepared.written);
        self.magnets.remove(&torrent);
        self.torrents.insert(
            torrent,
            TorrentSlot {
                storage: Arc::new(prepared.storage),
                info_hash: metainfo.info_hash,
                resume_path: prepared.resume_path,
                save_error: None,
            },
        );
        self.emit(ClientEvent::MetadataReady {
            torrent,
            metainfo,
            check: prepared.check,
        });
    }

    /// Applies a request from the client handle (the caller pumps); `true` when it was
    /// the request to shut down.
    pub(crate) fn apply(&mut self, c: Command) -> bool {
        match c {
            Command::AddTorrent {
                metainfo,
                storage,
                have,
                written,
                resume_path,
                peers,
                trackers,
                web_seeds,
                reply,
            } => {
                let now = self.clock.now();
                let result = self.session.add_torrent(&metainfo, Some(have), now);
                if let Ok(id) = result {
                    self.accepted = true;
                    self.session.note_pieces_written(id, &written);
                    self.session.add_web_seeds(id, &web_seeds, now);
                    if !storage.access().writable() {
                        // Read-only data (`seed --partial`): serve it, never download into it.
                        self.session.set_upload_only(id, true, now);
                    }
                    // Without an override the session announces to the metainfo's trackers
                    // from its next timer call (its deadline is now).
                    if let Some(tiers) = trackers {
                        self.session.set_trackers(id, tiers, now);
                    }
                    self.torrents.insert(
                        id,
                        TorrentSlot {
                            storage,
                            info_hash: metainfo.info_hash,
                            resume_path,
                            save_error: None,
                        },
                    );
                    self.session.add_peers(id, &peers, now);
                }
                let _ = reply.send(result);
                false
            }
            Command::AddMagnet { add, reply } => {
                let now = self.clock.now();
                let options = MagnetOptions {
                    trackers: add.trackers.clone(),
                    peers: add.peers.clone(),
                    display_name: add.display_name.clone(),
                };
                let result = self.session.add_magnet(add.info_hash, options, now);
                if let Ok(id) = result {
                    self.accepted = true;
                    self.session.add_web_seeds(id, &add.web_seeds, now);
                    self.magnets.insert(id, *add);
                }
                let _ = reply.send(result);
                false
            }
            Command::AddPeers { torrent, peers } => {
                let now = self.clock.now();
                self.session.add_peers(torrent, &peers, now);
                false
            }
            Command::SetLimits {
                torrent,
                limits,
                reply,
            } => {
                let now = self.clock.now();
                let _ = reply.send(self.session.set_limits(torrent, limits, now));
                false
            }
            Command::SetSeedLimits {
                torrent,
                limits,
                reply,
            } => {
                let now = self.clock.now();
                let _ = reply.send(self.session.set_seed_limits(torrent, limits, now));
                false
            }
            Command::SetEarlierTransfers {
                torrent,
                totals,
                reply,
            } => {
                let now = self.clock.now();
                let _ = reply.send(self.session.set_earlier_transfers(torrent, totals, now));
                false
            }
            Command::SetQueueLimits { limits, reply } => {
                self.session.set_queue_limits(limits, self.clock.now());
                let _ = reply.send(());
                false
            }
            Command::Stats { torrent, reply } => {
                let _ = reply.send(self.session.stats(torrent, self.clock.now()));
                false
            }
            Command::DhtStats { reply } => {
                let status =
                    self.session
                        .dht_stats()
                        .map(|(counters, table_nodes)| crate::DhtStatus {
                            counters,
                            table_nodes,
                            good_nodes: self.session.dht_nodes().len(),
                        });
                let _ = reply.send(status);
                false
            }
            Command::Remove { torrent, reply } => {
                let now = self.clock.now();
                let result = self.session.remove_torrent(torrent, now);
                if let Some(magnet) = self.magnets.remove(&torrent) {
                    // A check of existing data after its metadata came would be for nothing.
                    magnet
                        .cancel
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
                match (result, self.torrents.remove(&torrent)) {
                    (Ok(()), Some(slot)) if Arc::strong_count(&slot.storage) > 1 => {
                        self.removing.push((slot.storage, reply));
                    }
                    (result, _) => {
                        let _ = reply.send(result);
                    }
                }
                false
            }
            Command::Recheck {
                torrent,
                add,
                move_from,
                reply,
            } => {
                let result = if self.torrents.contains_key(&torrent) {
                    self.session.start_recheck(torrent, self.clock.now())
                } else {
                    Err(LifecycleError::NoMetadata)
                };
                if result.is_ok() {
                    self.checks.push((torrent, add, move_from));
                }
                let _ = reply.send(result);
                false
            }
            Command::SetQueuePosition {
                torrent,
                position,
                reply,
            } => {
                let now = self.clock.now();
                let _ = reply.send(self.session.set_queue_position(torrent, position, now));
                false
            }
            Command::Pause { torrent, reply } => {
                let _ = reply.send(self.session.pause_torrent(torrent, self.clock.now()));
                false
            }
            Command::Resume { torrent, reply } => {
                let _ = reply.send(self.session.resume_torrent(torrent, self.clock.now()));
                false
            }
            Command::Torrents { reply } => {
                let _ = reply.send(self.torrent_statuses());
                false
            }
            Command::Details { torrent, reply } => {
                let now = self.clock.now();
                let details = self
                    .session
                    .stats(torrent, now)
                    .map(|_| crate::TorrentDetails {
                        peers: self.session.peer_infos(torrent, now),
                        have: self.session.have(torrent).cloned(),
                    });
                let _ = reply.send(details);
                false
            }
            Command::SetFilePriorities {
                torrent,
                priorities,
            } => {
                self.session
                    .set_file_priorities(torrent, &priorities, self.clock.now());
                false
            }
            Command::Shutdown { reply } => self.close(reply),
        }
    }

    /// Starts the session's close (the caller pumps); `true` the first time.
    pub(crate) fn close(&mut self, reply: Sender<Vec<ShutdownReport>>) -> bool {
        if self.shutdown.is_some() {
            return false;
        }
        self.shutdown = Some(reply);
        // A magnet's check of existing data may be running: stop it, shutdown must not wait
        // for a long hash (the job then reports `Cancelled`).
        for magnet in self.magnets.values() {
            magnet
                .cancel
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        // Leave the swarms: the session sends the `stopped` announces, lets the writes out
        // finish, saves every torrent once more and disconnects; `draining` says when it
        // is done (its own deadlines bound it).
        let now = self.clock.now();
        self.session.close(now);
        true
    }

    /// During shutdown: whether the session's close is still under way (final saves or
    /// `stopped` announces out, within its `close_timeout`). Keep running the loop, disk
    /// jobs and announces included, until it answers `false`.
    pub fn draining(&self) -> bool {
        self.shutdown.is_some() && !self.session.is_drained()
    }

    /// Ends shutdown: answers the client with the final counters and whether each
    /// torrent's final save (the session's last `SaveResume`, flushing its files) worked.
    pub fn finish_shutdown(&mut self) {
        let now = self.clock.now();
        let finals = self.session.final_saves();
        let mut reports = Vec::new();
        for (id, slot) in &self.torrents {
            let saved = match finals.iter().rev().find(|(t, _)| t == id) {
                Some((_, true)) => Ok(()),
                Some((_, false)) => Err(slot
                    .save_error
                    .clone()
                    .unwrap_or_else(|| "the resume data could not be saved".to_string())),
                None => Err("the final resume save did not finish in time".to_string()),
            };
            reports.push(ShutdownReport {
                torrent: *id,
                stats: self.session.stats(*id, now),
                saved,
            });
        }
        // Nodes that answered us this run make the next start faster; an unwritable file
        // only costs that.
        // Not into a directory the client was refused (a seed pointed at the wrong one must
        // leave it as it was), unless the file's directory is there already (`unchoke dht
        // --nodes-file`).
        if let Some(path) = self
            .config
            .dht
            .as_ref()
            .and_then(|d| d.nodes_file.as_deref())
            .filter(|p| {
                self.accepted
                    || p.parent()
                        .is_none_or(|d| d.as_os_str().is_empty() || d.is_dir())
            })
        {
            let nodes = self.session.dht_nodes();
            if !nodes.is_empty() {
                let _ = save_nodes(path, &nodes);
            }
        }
        if let Some(reply) = self.shutdown.take() {
            let _ = reply.send(reports);
        }
    }
}
