//! The public face of the driver: start a client, add torrents, watch progress, shut down.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};

use crossbeam_channel::{Receiver, Sender};
use mio::{Poll, Waker};
use unchoke_core::metainfo::Metainfo;
use unchoke_core::resume::ResumeData;
use unchoke_core::session::{AddTorrentError, Event, TorrentId};
use unchoke_core::storage::{FileStorage, StorageError, StorageOptions};
use unchoke_core::torrent::TorrentStats;

use crate::config::ClientConfig;
use crate::event_loop::{Command, EventLoop, WAKER};

/// How long a query to the event loop may take before the client reports it gone.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Events kept for a user who does not read them; older ones are dropped beyond this.
const EVENT_BACKLOG: usize = 4096;

/// What can go wrong when driving a [`Client`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The listener or the poller could not be set up.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// An OS resource (poller, thread) could not be created.
    #[error("cannot start the client: {0}")]
    Start(std::io::Error),
    /// The save path or the data in it could not be used.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The save directory could not be created.
    #[error("cannot create the save directory {path}: {source}")]
    SaveDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The session refused the torrent.
    #[error(transparent)]
    Add(#[from] AddTorrentError),
    /// The event loop has stopped (after `shutdown`, or a failure).
    #[error("the client's event loop is not running")]
    Stopped,
}

/// A torrent to add.
#[derive(Clone, Debug)]
pub struct AddTorrent {
    /// The torrent.
    pub metainfo: Metainfo,
    /// The save path: a single-file torrent's file is `save_path/<name>`, a multi-file
    /// torrent's tree `save_path/<name>/…` (as in libtorrent and Transmission).
    pub save_path: PathBuf,
    /// Peers to dial at once.
    pub peers: Vec<SocketAddr>,
    /// Ignore the resume file and hash everything on disk.
    pub recheck: bool,
    /// Where resume data lives; `None`: `save_path/.unchoke/<info-hash>.resume`.
    pub resume_path: Option<PathBuf>,
}

impl AddTorrent {
    /// A torrent saved under `save_path`, with no peers given.
    pub fn new(metainfo: Metainfo, save_path: impl Into<PathBuf>) -> Self {
        AddTorrent {
            metainfo,
            save_path: save_path.into(),
            peers: Vec::new(),
            recheck: false,
            resume_path: None,
        }
    }
}

/// What the start-up check of existing data found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// Pieces verified present (trusted from resume data or hashed).
    pub pieces_have: u32,
    /// Pieces in the torrent.
    pub piece_count: u32,
    /// Of `pieces_have`, how many the resume file vouched for without hashing.
    pub trusted: u32,
    /// Pieces hashed.
    pub hashed: u32,
    /// Whether a usable resume file was found.
    pub resumed: bool,
    /// How long the check took.
    pub elapsed: Duration,
}

/// A torrent inside a [`Client`].
#[derive(Clone, Debug)]
pub struct TorrentHandle {
    /// The session's id for it.
    pub id: TorrentId,
    /// Its info-hash.
    pub info_hash: unchoke_core::InfoHash,
    /// What the check at start found.
    pub check: CheckReport,
}

/// Something the client reports while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// An event from the core (piece verified, torrent complete, peer banned, storage
    /// error, choking round…).
    Session(Event),
    /// A TCP connection to or from a peer is up (its handshake follows).
    PeerConnected {
        /// The peer's address.
        addr: SocketAddr,
        /// Whether the peer dialled us.
        inbound: bool,
    },
    /// A dial failed (refused, unreachable, timed out).
    ConnectFailed {
        /// The peer's address.
        addr: SocketAddr,
        /// Why, as the OS or the driver said it.
        reason: String,
    },
    /// A peer connection ended.
    PeerDisconnected {
        /// The peer's address.
        addr: SocketAddr,
        /// Who ended it and why.
        reason: String,
    },
    /// Resume data could not be saved (the download goes on).
    ResumeSaveFailed {
        /// The torrent.
        torrent: TorrentId,
        /// Why.
        message: String,
    },
}

/// What [`Client::shutdown`] reports per torrent.
#[derive(Clone, Debug)]
pub struct ShutdownReport {
    /// The torrent.
    pub torrent: TorrentId,
    /// Its counters at the end.
    pub stats: Option<TorrentStats>,
    /// Whether resume data and file contents were saved.
    pub saved: Result<(), String>,
}

/// A BitTorrent client on `mio`: one event-loop thread over every socket, plus disk
/// workers. Protocol rules live in the core's `Session`; this only moves bytes.
pub struct Client {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    events: Receiver<ClientEvent>,
    local_addr: Option<SocketAddr>,
    config: ClientConfig,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Binds the listener (if any) and starts the event loop and disk threads.
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        let poll = Poll::new().map_err(ClientError::Start)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(ClientError::Start)?);
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (event_tx, events) = crossbeam_channel::bounded(EVENT_BACKLOG);
        let mut lp = EventLoop::new(poll, waker.clone(), &config, command_rx, event_tx)?;
        let local_addr = lp.local_addr();
        let thread = std::thread::Builder::new()
            .name("unchoke-mio".into())
            .spawn(move || lp.run())
            .map_err(ClientError::Start)?;
        Ok(Client {
            commands,
            waker,
            events,
            local_addr,
            config,
            thread: Some(thread),
        })
    }

    /// The address peers can reach us on (the bound port when 0 was asked for).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Events as they happen. Reading them is optional: beyond a backlog of 4096 the
    /// oldest unread ones are dropped (counters in [`Client::stats`] are never lost).
    pub fn events(&self) -> &Receiver<ClientEvent> {
        &self.events
    }

    /// Checks existing data (trusting the resume file where the files did not change since
    /// it was written; `progress` gets the number of pieces checked so far), creates the
    /// files, then adds the torrent and dials `add.peers`. Blocks during the check.
    pub fn add_torrent(
        &self,
        add: AddTorrent,
        progress: &(dyn Fn(u32) + Sync),
    ) -> Result<TorrentHandle, ClientError> {
        let started = StdInstant::now();
        let info = &add.metainfo.info;
        let resume_path = add
            .resume_path
            .clone()
            .unwrap_or_else(|| default_resume_path(&add.save_path, &add.metainfo));
        std::fs::create_dir_all(&add.save_path).map_err(|source| ClientError::SaveDir {
            path: add.save_path.clone(),
            source,
        })?;
        let storage = FileStorage::open(
            info,
            &add.save_path,
            StorageOptions {
                max_open_files: self.config.max_open_files,
            },
        )?;
        let resume = if add.recheck {
            None
        } else {
            // An unreadable or mismatched resume file only costs a full check.
            FileStorage::load_resume(&resume_path)
                .ok()
                .flatten()
                .filter(|r| usable_resume(r, &add.metainfo))
        };
        let outcome =
            storage.verify_existing(resume.as_ref(), self.config.disk_threads, progress)?;
        if !outcome.have.is_full() {
            // A complete torrent may be read-only data being seeded: only a download
            // needs its files created (and writable).
            storage.create_files()?;
        }
        let check = CheckReport {
            pieces_have: outcome.have.count_ones(),
            piece_count: info.piece_count(),
            trusted: outcome.trusted,
            hashed: outcome.checked,
            resumed: resume.is_some(),
            elapsed: started.elapsed(),
        };
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Command::AddTorrent {
            metainfo: Box::new(add.metainfo.clone()),
            storage: Arc::new(storage),
            have: outcome.have,
            resume_path,
            peers: add.peers,
            reply,
        })?;
        let id = rx
            .recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| ClientError::Stopped)??;
        Ok(TorrentHandle {
            id,
            info_hash: add.metainfo.info_hash,
            check,
        })
    }

    /// Gives the session more peers to dial for `torrent`.
    pub fn add_peers(&self, torrent: TorrentId, peers: Vec<SocketAddr>) -> Result<(), ClientError> {
        self.send(Command::AddPeers { torrent, peers })
    }

    /// The torrent's counters now.
    pub fn stats(&self, torrent: TorrentId) -> Result<Option<TorrentStats>, ClientError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Stats { torrent, reply })?;
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| ClientError::Stopped)
    }

    /// Stops: no new input is taken, pending disk writes and hashes finish, resume data is
    /// saved and files are flushed; then the threads end. Safe to call once; later calls
    /// report [`ClientError::Stopped`].
    pub fn shutdown(&mut self) -> Result<Vec<ShutdownReport>, ClientError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Shutdown { reply })?;
        // Finishing queued disk work can take a while on a slow disk: allow for it.
        let reports = rx
            .recv_timeout(REPLY_TIMEOUT * 6)
            .map_err(|_| ClientError::Stopped);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        reports
    }

    fn send(&self, command: Command) -> Result<(), ClientError> {
        self.commands
            .send(command)
            .map_err(|_| ClientError::Stopped)?;
        self.waker.wake().map_err(|_| ClientError::Stopped)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.shutdown();
        }
    }
}

/// `save_path/.unchoke/<info-hash>.resume`.
pub fn default_resume_path(save_path: &Path, metainfo: &Metainfo) -> PathBuf {
    save_path
        .join(".unchoke")
        .join(format!("{}.resume", metainfo.info_hash.to_hex()))
}

fn usable_resume(r: &ResumeData, m: &Metainfo) -> bool {
    r.info_hash == m.info_hash
        && r.piece_count == m.info.piece_count()
        && r.files.len() == m.info.files.len()
}
