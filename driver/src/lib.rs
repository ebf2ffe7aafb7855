//! # unchoke-driver
//!
//! What unchoke's two drivers (`unchoke-mio`, `unchoke-smol`) share that is not protocol
//! logic: their configuration ([`ClientConfig`]), the types of their public surface
//! ([`AddTorrent`], [`TorrentHandle`], [`ClientEvent`], …), the start-up check of existing
//! data ([`prepare_torrent`]), the disk jobs run off the event loop ([`disk`]), the clock
//! conversion, the bound non-blocking connect and the DHT's socket and node file
//! ([`dht_node`]). Rules about peers, pieces and choking
//! live in `unchoke-core`; how sockets and threads are driven lives in each driver.
#![warn(missing_docs)]

pub mod announce;
mod client;
mod clock;
mod config;
pub mod dht_node;
pub mod disk;
mod host;
pub mod lsd_node;
mod net;
pub mod pump;
pub mod tls;
pub mod tracker_client;
pub mod tracker_service;
pub mod udp_batch;
pub mod web_seed;

pub use client::{ClientCore, CommandSink, EVENT_BACKLOG};
pub use clock::Clock;
pub use config::ClientConfig;
pub use host::{Command, SessionHost};
pub use net::{
    READ_SIZE_MAX, READ_SIZE_MIN, ReadSize, UDP_BUFFER_BYTES, bind_listener, bind_udp_socket,
    connect_error_text, connect_failure, connect_nonblocking, recv_into, udp_buffer_sizes,
};
pub use pump::{Io, Report, Work};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use unchoke_core::bitfield::Bitfield;
use unchoke_core::metainfo::{Metainfo, ShapeError};
use unchoke_core::resume::ResumeData;
use unchoke_core::session::{AddTorrentError, Event, PieceHashes, TorrentId};
use unchoke_core::torrent::TorrentStats;
use unchoke_storage::{
    FileReport, FileStatus, FileStorage, StorageAccess, StorageError, StorageOptions, thousands,
};

/// What can go wrong when driving a client.
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
    /// The torrent's shape is beyond [`ClientConfig::shape`] (too many files, a path too
    /// long): refused before anything was created or allocated per file.
    #[error(transparent)]
    Shape(#[from] ShapeError),
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
    /// The save path exists but is not a directory.
    #[error("{} is a file; give a directory", .path.display())]
    SaveDirIsFile {
        /// The path.
        path: PathBuf,
    },
    /// Read-only data (seeding): the data directory does not exist. Nothing was created.
    #[error(
        "the data directory {} does not exist; it must contain {}",
        .path.display(), MustContain(.must_contain)
    )]
    NoDataDir {
        /// The directory.
        path: PathBuf,
        /// The torrent's files (relative to the directory) and sizes.
        must_contain: Vec<(PathBuf, u64)>,
    },
    /// Read-only data that must be complete (seeding without `--partial`): some files are
    /// missing, of another size or not regular files. Found before hashing; nothing was
    /// changed.
    #[error(
        "{}; DATA_DIR ({}) must contain exactly {}",
        Problems(.problems), .dir.display(), MustContain(.must_contain)
    )]
    DataMismatch {
        /// The data directory.
        dir: PathBuf,
        /// The files that are wrong.
        problems: Vec<FileReport>,
        /// The torrent's files (relative to the directory) and sizes.
        must_contain: Vec<(PathBuf, u64)>,
    },
    /// Data that must be complete (seeding without `--partial`) has pieces failing their
    /// hash. Nothing was changed and no resume data written.
    #[error("the data is incomplete: {have} of {count} pieces verified")]
    Incomplete {
        /// Pieces verified.
        have: u32,
        /// Pieces in the torrent.
        count: u32,
    },
    /// The session refused the torrent.
    #[error(transparent)]
    Add(#[from] AddTorrentError),
    /// The start-up check was stopped through [`AddTorrent::cancel`] (Ctrl-C): nothing was
    /// added and no file was created or changed.
    #[error("the check of existing data was interrupted")]
    Cancelled,
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
    /// Trackers to announce to, in BEP 12 tiers; `None`: the torrent's own (`announce-list`,
    /// else `announce`). `Some(vec![])` announces to none.
    pub trackers: Option<Vec<Vec<String>>>,
    /// Web seeds (BEP 19) to use besides the torrent's `url-list` (which is used unless
    /// the session's `web_seeds` setting is off).
    pub web_seeds: Vec<String>,
    /// What the torrent may do to the files under `save_path`.
    pub access: Access,
    /// Raised by the caller (e.g. on Ctrl-C) to stop the start-up check at once:
    /// [`ClientError::Cancelled`].
    pub cancel: CancelFlag,
    /// Refuse data that is not complete (seeding without `--partial`): every file must
    /// exist with the torrent's size before anything is hashed
    /// ([`ClientError::DataMismatch`]) and every piece must verify
    /// ([`ClientError::Incomplete`]).
    pub require_complete: bool,
}

/// A flag another thread raises to stop long blocking work (the start-up check); cheap to
/// clone, all clones share one flag.
pub type CancelFlag = std::sync::Arc<std::sync::atomic::AtomicBool>;

/// What a torrent may do to the files under its save path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Access {
    /// Download: create missing files and directories, extend short files, write blocks.
    /// An existing file longer than the torrent says is refused: its extra bytes are not ours.
    #[default]
    ReadWrite,
    /// Like [`Access::ReadWrite`], and an existing file longer than the torrent says may be
    /// cut to the torrent's length (the user said `--force`).
    ReadWriteTruncate,
    /// Seed: open files read-only; never create, extend, truncate or write anything.
    ReadOnly,
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
            trackers: None,
            web_seeds: Vec::new(),
            access: Access::default(),
            cancel: CancelFlag::default(),
            require_complete: false,
        }
    }
}

impl Access {
    /// The storage layer's mode for this access.
    pub fn storage(self) -> StorageAccess {
        match self {
            Access::ReadWrite => StorageAccess::ReadWrite,
            Access::ReadWriteTruncate => StorageAccess::ReadWriteTruncate,
            Access::ReadOnly => StorageAccess::ReadOnly,
        }
    }
}

/// At most this many lines of a file list go into a message.
const LISTED_FILES: usize = 10;

/// Displays the files a data directory must contain, `DATA_DIR/path, N bytes` each (the
/// first few), on one line: the CLI prints errors as one line.
struct MustContain<'a>(&'a [(PathBuf, u64)]);

impl std::fmt::Display for MustContain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (path, len)) in self.0.iter().take(LISTED_FILES).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "DATA_DIR/{}, {} bytes", path.display(), thousands(*len))?;
        }
        if self.0.len() > LISTED_FILES {
            write!(f, "; … and {} more files", self.0.len() - LISTED_FILES)?;
        }
        Ok(())
    }
}

/// Displays what is wrong with files (the first few), on one line.
struct Problems<'a>(&'a [FileReport]);

impl std::fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.0.iter().take(LISTED_FILES).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        if self.0.len() > LISTED_FILES {
            write!(f, "; … and {} more", self.0.len() - LISTED_FILES)?;
        }
        Ok(())
    }
}

/// A torrent known by a magnet link: its metadata comes from peers (BEP 9) before the
/// download starts; see [`ClientCore::add_magnet`].
#[derive(Clone, Debug)]
pub struct AddMagnet {
    /// The torrent's v1 info-hash.
    pub info_hash: unchoke_core::InfoHash,
    /// The save path, as for [`AddTorrent::save_path`].
    pub save_path: PathBuf,
    /// Peers to dial at once (the link's `x.pe`, resolved, and any others).
    pub peers: Vec<SocketAddr>,
    /// Trackers to announce to, in BEP 12 tiers (a link's `tr` are one tier each).
    pub trackers: Vec<Vec<String>>,
    /// The link's `dn`, shown until the metadata names the torrent.
    pub display_name: Option<String>,
    /// Ignore the resume file and hash everything on disk once the metadata is known.
    pub recheck: bool,
    /// What the torrent may do to the files under `save_path` once its metadata is known.
    pub access: Access,
    /// Raised to stop the check of existing data that follows the metadata's arrival.
    pub cancel: CancelFlag,
    /// Web seeds (the link's `ws`, and any others): asked for pieces once the metadata
    /// is known (they cannot give it).
    pub web_seeds: Vec<String>,
}

/// A DHT node's state, from [`ClientCore::dht_status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhtStatus {
    /// Packet and query counters since start.
    pub counters: unchoke_core::dht::DhtStats,
    /// Nodes in the routing table.
    pub table_nodes: usize,
    /// Of those, the ones that answered recently (what shutdown saves).
    pub good_nodes: usize,
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
    /// Pieces read and hashed.
    pub hashed: u32,
    /// Pieces examined but not read: a file they need is missing or too short (so they
    /// cannot be present), or the resume data knows them never written.
    /// `hashed + skipped + trusted` covers every piece.
    pub skipped: u32,
    /// Whether a usable resume file was found.
    pub resumed: bool,
    /// How long the check took.
    pub elapsed: Duration,
}

/// A torrent inside a client.
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
    /// A TCP connection to or from a peer is up (its handshake follows). Mapped from the
    /// core's [`Event::PeerConnected`], as are the next two from theirs.
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
    /// A magnet torrent's metadata arrived and was verified, its storage was set up and
    /// checked, and the download has started.
    MetadataReady {
        /// The torrent.
        torrent: TorrentId,
        /// Its metadata.
        metainfo: Box<Metainfo>,
        /// What the check of existing data found.
        check: CheckReport,
    },
    /// A magnet torrent's storage could not be set up once its metadata arrived (unusable
    /// save path, disk error): it cannot download.
    MetadataStorageFailed {
        /// The torrent.
        torrent: TorrentId,
        /// Why.
        message: String,
    },
    /// Whether local service discovery runs (told at start when [`ClientConfig::lsd`]
    /// asked for it, once per group tried: IPv4, IPv6 or both, as the listen address
    /// says): where it announces, or why that group (or LSD as a whole) is off.
    Lsd(Result<lsd_node::LsdSocketInfo, lsd_node::LsdOff>),
    /// A recheck ([`ClientCore::recheck`]) is over: the torrent's verified pieces are what
    /// the check found under `save_path` and it runs again (unless paused).
    Rechecked {
        /// The torrent.
        torrent: TorrentId,
        /// Where its data is now (the new directory after a move that worked, else the
        /// old one).
        save_path: PathBuf,
        /// Why the move (or the check) failed, if it did: the data then stays, or is put
        /// back, where it was.
        result: Result<(), String>,
    },
    /// Resume data could not be saved (the download goes on).
    ResumeSaveFailed {
        /// The torrent.
        torrent: TorrentId,
        /// Why.
        message: String,
    },
}

/// One torrent as [`ClientCore::torrents`] lists it.
#[derive(Clone, Debug)]
pub struct TorrentStatus {
    /// The session's id for it.
    pub id: TorrentId,
    /// Where it stands (downloading, seeding, paused, fetching its metadata…).
    pub state: unchoke_core::session::TorrentState,
    /// Its counters now.
    pub stats: TorrentStats,
    /// A magnet link's `dn` while its metadata is unknown (the session's name for it).
    pub display_name: Option<String>,
    /// Its place in the queue order (0: first; see
    /// [`unchoke_core::session::Session::queue_position`]).
    pub queue_position: usize,
}

/// A torrent's details for a status display ([`ClientCore::details`]).
#[derive(Clone, Debug)]
pub struct TorrentDetails {
    /// Each connected peer, in connection order.
    pub peers: Vec<unchoke_core::torrent::PeerInfo>,
    /// Its verified pieces (`None` for a magnet before its metadata).
    pub have: Option<unchoke_core::bitfield::Bitfield>,
}

/// What a client's `shutdown` reports per torrent.
#[derive(Clone, Debug)]
pub struct ShutdownReport {
    /// The torrent.
    pub torrent: TorrentId,
    /// Its counters at the end.
    pub stats: Option<TorrentStats>,
    /// Whether resume data and file contents were saved.
    pub saved: Result<(), String>,
}

/// A torrent checked and ready to hand to a session.
#[derive(Debug)]
pub struct PreparedTorrent {
    /// Its storage: files are created as writes touch them (all present once complete).
    pub storage: FileStorage,
    /// Pieces verified on disk.
    pub have: Bitfield,
    /// Where its resume data goes.
    pub resume_path: PathBuf,
    /// What the check found.
    pub check: CheckReport,
    /// Pieces that may hold data (verified, or written but failing their hash): for
    /// `Session::note_pieces_written` and resume data.
    pub written: Bitfield,
}

/// Checks existing data (trusting the resume file where the files did not change since it
/// was written; `progress` gets the number of pieces checked so far, from the checking
/// threads) and creates the save directory (files come with the writes). Blocks during the check.
///
/// First of all the torrent's shape is checked against [`ClientConfig::shape`]
/// ([`ClientError::Shape`]): a torrent listing a million files is refused before its
/// storage (per-file state) exists or anything is looked at on disk. Both a `.torrent`
/// file and metadata fetched for a magnet link come through here.
pub fn prepare_torrent(
    config: &ClientConfig,
    add: &AddTorrent,
    progress: &(dyn Fn(u32) + Sync),
) -> Result<PreparedTorrent, ClientError> {
    let started = Clock::start();
    let info = &add.metainfo.info;
    info.check_shape(&config.shape)?;
    let access = add.access.storage();
    let resume_path = add
        .resume_path
        .clone()
        .unwrap_or_else(|| default_resume_path(&add.save_path, &add.metainfo));
    let must_contain = || {
        info.files
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.padding)
            .filter_map(|(i, f)| info.file_path(i).map(|p| (p, f.length)))
            .collect::<Vec<_>>()
    };
    match std::fs::metadata(&add.save_path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(ClientError::SaveDirIsFile {
                path: add.save_path.clone(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !access.writable() => {
            return Err(ClientError::NoDataDir {
                path: add.save_path.clone(),
                must_contain: must_contain(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ClientError::SaveDir {
                path: add.save_path.clone(),
                source,
            });
        }
    }
    let storage = FileStorage::open(
        info,
        PieceHashes::from_metainfo(&add.metainfo)
            .map_err(|e| AddTorrentError::PieceHashes(add.metainfo.info_hash, e))?,
        &add.save_path,
        StorageOptions {
            max_open_files: config.max_open_files,
            access,
        },
    )?;
    // Everything that would refuse the directory is found by looking, before hashing.
    if access.writable() {
        storage.preflight_writes()?;
    } else {
        let problems: Vec<FileReport> = storage
            .inspect()
            .into_iter()
            .filter(|r| match r.status {
                FileStatus::Ok => false,
                // Partial data may lack files; a special file is never served.
                FileStatus::Missing | FileStatus::WrongSize { .. } => add.require_complete,
                FileStatus::NotRegular { .. } | FileStatus::Symlink { .. } => true,
            })
            .collect();
        if !problems.is_empty() {
            return Err(ClientError::DataMismatch {
                dir: add.save_path.clone(),
                problems,
                must_contain: must_contain(),
            });
        }
    }
    let resume = if add.recheck {
        None
    } else {
        // An unreadable or mismatched resume file only costs a full check.
        FileStorage::load_resume(&resume_path)
            .ok()
            .flatten()
            .filter(|r| usable_resume(r, &add.metainfo))
    };
    let outcome = storage
        .verify_existing(resume.as_ref(), config.disk_threads, progress, &add.cancel)
        .map_err(|e| match e {
            StorageError::Cancelled => ClientError::Cancelled,
            e => ClientError::Storage(e),
        })?;
    if add.require_complete && !outcome.have.is_full() {
        return Err(ClientError::Incomplete {
            have: outcome.have.count_ones(),
            count: info.piece_count(),
        });
    }
    if access.writable() && outcome.have.is_full() {
        // Checked complete: the tree is made exact (zero-length files a run ended before
        // completion did not create).
        storage.create_files()?;
    } else if access.writable() {
        // Only a download creates the directory, and only once the check is done: an
        // interrupted check leaves no trace. Files are created by the storage as the first
        // block touching each is written, and the rest once the torrent is complete.
        std::fs::create_dir_all(&add.save_path).map_err(|source| ClientError::SaveDir {
            path: add.save_path.clone(),
            source,
        })?;
    }
    let check = CheckReport {
        pieces_have: outcome.have.count_ones(),
        piece_count: info.piece_count(),
        trusted: outcome.trusted,
        hashed: outcome.checked - outcome.skipped,
        skipped: outcome.skipped,
        resumed: resume.is_some(),
        elapsed: started.elapsed(),
    };
    Ok(PreparedTorrent {
        storage,
        have: outcome.have,
        resume_path,
        check,
        written: outcome.written,
    })
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

#[cfg(test)]
mod tests;
