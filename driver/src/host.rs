//! [`SessionHost`]: the part of a driver's loop that is the same whatever moves the bytes.
//! It owns the core's `Session` and the bookkeeping around it — torrents' storage and
//! resume files, disk jobs in flight, commands from the client handle,
//! shutdown — and turns the session's actions into [`IoAction`]s: what only the runtime can
//! do (write to a socket, dial, close, run a disk job). Both drivers run their loop around
//! one of these, so none of this is written twice.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use crossbeam_channel::Sender;
use unchoke_core::InfoHash;
use unchoke_core::bitfield::Bitfield;
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{
    Action, AddTorrentError, ConnId, DisconnectReason, Event, MagnetOptions, Session, TorrentId,
};
use unchoke_core::time::Instant;
use unchoke_core::torrent::TorrentStats;
use unchoke_storage::FileStorage;

use crate::announce::{AnnounceJob, JobKind};
use crate::dht_node::{load_nodes, save_nodes};
use crate::disk::{Completion, Job};
use crate::tracker_client::TrackerClient;
use crate::{AddMagnet, AddTorrent, ClientConfig, ClientEvent, Clock, ShutdownReport};

/// Longest a driver's loop sleeps, so a lost wake-up can never stall it for long.
const MAX_SLEEP: Duration = Duration::from_millis(500);

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
    DhtStats {
        reply: Sender<Option<crate::DhtStatus>>,
    },
    Shutdown {
        reply: Sender<Vec<ShutdownReport>>,
    },
}

/// What the runtime must do for the session.
#[derive(Debug)]
pub enum IoAction {
    /// Queue these buffers on the connection, in order (write them vectored).
    Send {
        /// The connection.
        conn: ConnId,
        /// The first buffer (a message, or a piece header).
        first: Bytes,
        /// The block after a piece header.
        second: Option<Bytes>,
    },
    /// Send this datagram from the client's UDP socket (dropped if the socket is full: UDP
    /// may lose it anyway, and the DHT and UDP trackers retransmit on time-out).
    SendDatagram {
        /// The destination.
        to: SocketAddr,
        /// The datagram.
        bytes: Bytes,
    },
    /// Dial `addr` for `torrent`; then [`SessionHost::session`]`.connection_opened` or
    /// `handle_connect_error`. Only the OS's connect: the time-out is the session's.
    Connect {
        /// The torrent.
        torrent: TorrentId,
        /// The peer.
        addr: SocketAddr,
    },
    /// Abandon that dial (the session timed it out); report nothing for it.
    CancelConnect {
        /// The torrent.
        torrent: TorrentId,
        /// The peer.
        addr: SocketAddr,
    },
    /// Close the connection (the session has forgotten it already).
    Disconnect {
        /// The connection.
        conn: ConnId,
        /// Why, for the user.
        reason: DisconnectReason,
    },
    /// Run this job off the loop and hand its completion to [`SessionHost::completion`].
    Disk(Job),
    /// Run this tracker job (an HTTP announce or a name to resolve) off the loop (it
    /// blocks) and hand its completion to [`SessionHost::completion`].
    Announce(AnnounceJob),
}

struct TorrentSlot {
    storage: Arc<FileStorage>,
    info_hash: InfoHash,
    resume_path: PathBuf,
    /// Why the last resume save failed, for the shutdown report (the session says which
    /// save was the final one and whether it succeeded).
    save_error: Option<String>,
}

/// The session and its bookkeeping; see the module docs.
pub struct SessionHost {
    session: Session,
    clock: Clock,
    torrents: BTreeMap<TorrentId, TorrentSlot>,
    events: Sender<ClientEvent>,
    /// Disk jobs handed to the runtime and not completed (for diagnostics only: when
    /// shutdown is done is the session's call, [`Session::is_drained`]).
    jobs_in_flight: usize,
    /// Where the shutdown's reports go, once `shutdown` was asked for.
    shutdown: Option<Sender<Vec<ShutdownReport>>>,
    trackers: Arc<TrackerClient>,
    /// Magnet torrents whose storage is not set up yet: where it goes.
    magnets: BTreeMap<TorrentId, AddMagnet>,
    /// The settings storage set-up needs (the check's threads, open-file limit).
    config: ClientConfig,
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
    /// IP, so trackers register us under the address we accept peers on.
    pub fn new(
        cfg: &ClientConfig,
        listen: Option<SocketAddr>,
        events: Sender<ClientEvent>,
    ) -> Self {
        let mut session_cfg = cfg.session.clone();
        session_cfg.listen_port = listen.map_or(0, |a| a.port());
        // Both runtimes report what each socket accepted (`handle_sent`), and the client's
        // user sees peers come and go.
        session_cfg.send_accounting = true;
        session_cfg.peer_events = true;
        // The session decides when to save resume data (`Action::SaveResume`).
        session_cfg.resume_interval = cfg.resume_interval;
        let clock = Clock::start();
        let seed = cfg.rng_seed.unwrap_or_else(|| fastrand::u64(..));
        session_cfg.dht = cfg.dht.as_ref().map(|d| d.config.clone());
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
        }
        SessionHost {
            session,
            clock,
            torrents: BTreeMap::new(),
            events,
            jobs_in_flight: 0,
            shutdown: None,
            trackers: Arc::new(TrackerClient::new(bind_ip)),
            magnets: BTreeMap::new(),
            config: cfg.clone(),
            accepted: false,
        }
    }

    /// The core's session, for socket input (`connection_opened`, `handle_bytes`,
    /// `connection_closed`, `connect_failed`). Call [`SessionHost::poll_io`] afterwards.
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The session's settings (connect time-out, for the driver's dial error texts).
    pub fn session_config(&self) -> &unchoke_core::session::SessionConfig {
        self.session.config()
    }

    /// The core's "now".
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Tells the user something (dropped if they do not read their events).
    pub fn emit(&self, event: ClientEvent) {
        let _ = self.events.try_send(event);
    }

    /// Whether shutdown was asked for (stop accepting and reading).
    pub fn shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    /// When the loop must next call [`SessionHost::timers`] at the latest.
    pub fn deadline(&self) -> StdInstant {
        let mut d = StdInstant::now() + MAX_SLEEP;
        if let Some(t) = self.session.poll_timeout() {
            d = d.min(self.clock.to_std(t));
        }
        d
    }

    /// The next thing the runtime must do, translated from the session's actions (events
    /// go straight to the user; disk actions become jobs, counted).
    pub fn poll_io(&mut self) -> Option<IoAction> {
        loop {
            let action = self.session.poll_action()?;
            let io = match action {
                Action::Send { conn, data } => IoAction::Send {
                    conn,
                    first: data,
                    second: None,
                },
                Action::SendBlock { conn, header, data } => IoAction::Send {
                    conn,
                    first: header,
                    second: Some(data),
                },
                Action::Connect { torrent, addr } => IoAction::Connect { torrent, addr },
                Action::CancelConnect { torrent, addr } => {
                    IoAction::CancelConnect { torrent, addr }
                }
                Action::SendDatagram { to, bytes } => IoAction::SendDatagram { to, bytes },
                Action::Disconnect { conn, reason } => IoAction::Disconnect { conn, reason },
                Action::WriteBlock {
                    torrent,
                    piece,
                    offset,
                    data,
                } => {
                    let Some(storage) = self.storage(torrent) else {
                        continue;
                    };
                    self.jobs_in_flight += 1;
                    IoAction::Disk(Job::Write {
                        torrent,
                        storage,
                        piece,
                        offset,
                        data,
                    })
                }
                Action::ReadBlock {
                    conn,
                    torrent,
                    block,
                } => {
                    let Some(storage) = self.storage(torrent) else {
                        continue;
                    };
                    self.jobs_in_flight += 1;
                    IoAction::Disk(Job::Read {
                        conn,
                        torrent,
                        storage,
                        block,
                    })
                }
                Action::VerifyPiece {
                    torrent,
                    piece,
                    expected,
                    blocks,
                } => {
                    self.jobs_in_flight += 1;
                    IoAction::Disk(Job::Verify {
                        torrent,
                        piece,
                        expected,
                        blocks,
                    })
                }
                Action::Announce {
                    torrent,
                    url,
                    request,
                } => {
                    // Leaving (`completed`, `stopped`): a short socket time-out, so the
                    // blocking exchange does not outlive the exit for long. How long the
                    // close waits for its answer is the session's call.
                    let during_shutdown = self.shutdown.is_some();
                    IoAction::Announce(AnnounceJob::new(
                        self.trackers.clone(),
                        JobKind::Announce {
                            torrent,
                            url,
                            request,
                        },
                        during_shutdown,
                    ))
                }
                // A UDP tracker's name: the exchange itself is the session's.
                Action::Resolve { host, port } => IoAction::Announce(AnnounceJob::new(
                    self.trackers.clone(),
                    JobKind::Resolve { host, port },
                    false,
                )),
                Action::SaveResume {
                    torrent,
                    have,
                    written,
                } => {
                    // Also during shutdown: the session's close ends with one last save per
                    // torrent. A torrent without storage here has nothing to save.
                    let Some(slot) = self.torrents.get(&torrent) else {
                        continue;
                    };
                    IoAction::Disk(Job::SaveResume {
                        torrent,
                        storage: slot.storage.clone(),
                        path: slot.resume_path.clone(),
                        info_hash: slot.info_hash,
                        have,
                        written: Some(written),
                    })
                }
                Action::Event(Event::MetadataReceived { torrent, metainfo }) => {
                    self.emit(ClientEvent::Session(Event::MetadataReceived {
                        torrent,
                        metainfo: metainfo.clone(),
                    }));
                    let Some(magnet) = self.magnets.get(&torrent) else {
                        continue;
                    };
                    // Checking existing data can take long: off the loop, like any disk work.
                    let mut add = AddTorrent::new(*metainfo, magnet.save_path.clone());
                    add.recheck = magnet.recheck;
                    add.access = magnet.access;
                    add.cancel = magnet.cancel.clone();
                    self.jobs_in_flight += 1;
                    IoAction::Disk(Job::Prepare {
                        torrent,
                        add: Box::new(add),
                        config: Box::new(self.config.clone()),
                    })
                }
                // The peer events keep their client-level form (one place maps them).
                Action::Event(Event::PeerConnected { addr, inbound, .. }) => {
                    self.emit(ClientEvent::PeerConnected { addr, inbound });
                    continue;
                }
                Action::Event(Event::PeerDisconnected { addr, reason }) => {
                    let reason = reason.to_string();
                    self.emit(ClientEvent::PeerDisconnected { addr, reason });
                    continue;
                }
                Action::Event(Event::ConnectFailed { addr, reason, .. }) => {
                    let reason = reason.to_string();
                    self.emit(ClientEvent::ConnectFailed { addr, reason });
                    continue;
                }
                Action::Event(event) => {
                    self.emit(ClientEvent::Session(event));
                    continue;
                }
            };
            return Some(io);
        }
    }

    fn storage(&self, torrent: TorrentId) -> Option<Arc<FileStorage>> {
        self.torrents.get(&torrent).map(|s| s.storage.clone())
    }

    /// A disk job finished: update the bookkeeping and tell the session.
    pub fn completion(&mut self, c: Completion) {
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

    /// A request from the client handle. Returns `true` when it was the request to shut
    /// down (the runtime then stops accepting connections).
    pub fn command(&mut self, c: Command) -> bool {
        match c {
            Command::AddTorrent {
                metainfo,
                storage,
                have,
                written,
                resume_path,
                peers,
                trackers,
                reply,
            } => {
                let now = self.clock.now();
                let result = self.session.add_torrent(&metainfo, Some(have), now);
                if let Ok(id) = result {
                    self.accepted = true;
                    self.session.note_pieces_written(id, &written);
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
            Command::Shutdown { reply } => self.begin_shutdown(reply),
        }
    }

    /// Starts shutting down (also when the client handle vanished without asking: then
    /// `reply` goes nowhere). Returns `true` the first time.
    pub fn begin_shutdown(&mut self, reply: Sender<Vec<ShutdownReport>>) -> bool {
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

    /// The session's timers when due (resume saves among them: they come out of
    /// [`SessionHost::poll_io`] as [`Job::SaveResume`]s).
    pub fn timers(&mut self) {
        let now = self.clock.now();
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
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
