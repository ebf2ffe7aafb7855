//! # unchoke-storage
//!
//! [`FileStorage`]: blocking positional file IO for one torrent's content, and the atomic
//! resume-file IO ([`FileStorage::save_resume`], [`FileStorage::load_resume`]).
//!
//! This is the one place in unchoke that touches a torrent's files; it lives outside the
//! sans-IO `unchoke-core` (which has no `std::fs` and no threads) so that the core stays pure,
//! and both drivers share it, calling it from their worker threads (it is `Send + Sync` and
//! every method takes `&self`). The layout arithmetic it follows is the core's
//! [`unchoke_core::layout::Layout`]; resume encoding and its trust rule are the core's
//! [`unchoke_core::resume`].
//!
//! - Files live at their final paths: `<save_path>/<name>` for a single-file torrent,
//!   `<save_path>/<name>/<path…>` for a multi-file one (paths were sanitised by the
//!   metainfo parser).
//! - Reads and writes are positional (`pread`/`pwrite`), so threads never share a cursor and
//!   a block crossing file boundaries is simply several calls.
//! - BEP 47 padding files are never created: reading them gives zeros, writing them only
//!   checks that the bytes are zeros.
//! - Open handles are bounded: at most `max_open_files` are cached (least recently used
//!   evicted). The cache lock is held only to look up or insert, never during IO, so an
//!   evicted handle stays open until the IO using it ends: briefly, up to one extra handle
//!   per thread doing IO may be open.
//! - Memory: nothing grows with the content's size but the check's bitfield; a check uses
//!   one piece-sized buffer per thread.
//! - Access ([`StorageAccess`]): read-only storage (seeding) never creates, extends,
//!   truncates or writes anything; read-write storage (downloading) never cuts a file
//!   longer than the torrent says unless told to, and never writes through a symlink or
//!   into a special file below the save directory (see the `open` module).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use sha1::Digest;

mod open;

use self::open::{OpenMode, open_below};
use unchoke_core::bitfield::Bitfield;
use unchoke_core::layout::{Layout, LayoutError};
use unchoke_core::metainfo::Info;
use unchoke_core::resume::{FileState, ResumeData, ResumeError};
use unchoke_core::session::{DiskError, DiskErrorKind};

#[cfg(not(any(unix, windows)))]
compile_error!("unchoke-storage needs positional file IO, available on Unix and Windows only");

/// The default bound on cached open file handles.
pub const DEFAULT_MAX_OPEN_FILES: usize = 64;

/// What a [`FileStorage`] may do to the files under its save path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageAccess {
    /// Downloading: missing files and directories are created and short files extended;
    /// existing bytes are kept. A file longer than the torrent says is an error
    /// ([`StorageError::TooLong`]): its extra bytes are not ours to cut.
    #[default]
    ReadWrite,
    /// Like [`StorageAccess::ReadWrite`], but a longer file is cut to the torrent's length
    /// (the user asked for it).
    ReadWriteTruncate,
    /// Seeding: files are opened read-only (following symlinks); nothing is ever created,
    /// extended, truncated or written ([`StorageError::ReadOnly`]).
    ReadOnly,
}

impl StorageAccess {
    /// Whether writes are allowed.
    pub fn writable(self) -> bool {
        self != StorageAccess::ReadOnly
    }
}

/// How a [`FileStorage`] behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageOptions {
    /// Most file handles kept open at once (0 is taken as 1). Default
    /// [`DEFAULT_MAX_OPEN_FILES`].
    pub max_open_files: usize,
    /// What the storage may do to files. Default [`StorageAccess::ReadWrite`].
    pub access: StorageAccess,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            access: StorageAccess::default(),
        }
    }
}

/// What kind of thing sits where the torrent expects a file or a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A block or character device.
    Device,
    /// Anything else.
    Other,
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::Regular => "a regular file",
            FileKind::Directory => "a directory",
            FileKind::Symlink => "a symbolic link",
            FileKind::Fifo => "a named pipe (FIFO)",
            FileKind::Socket => "a socket",
            FileKind::Device => "a device",
            FileKind::Other => "not a regular file",
        })
    }
}

/// `n` with thousands separators (`3,000,000`), how sizes are shown to users.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What [`FileStorage::inspect`] found for one file of the torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileStatus {
    /// A regular file of exactly the torrent's size.
    Ok,
    /// Nothing there.
    Missing,
    /// A regular file of another size.
    WrongSize {
        /// Its size now.
        actual: u64,
    },
    /// Something other than a regular file at `at` (the file itself or a directory on its
    /// way).
    NotRegular {
        /// Where.
        at: PathBuf,
        /// What is there.
        kind: FileKind,
    },
    /// A symbolic link at `at` (the file or a directory on its way), which a writable
    /// storage does not follow.
    Symlink {
        /// Where.
        at: PathBuf,
    },
}

/// One file's entry in [`FileStorage::inspect`]'s report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    /// The file's index in the torrent.
    pub index: usize,
    /// Its path on disk.
    pub path: PathBuf,
    /// Its size in the torrent.
    pub expected: u64,
    /// What is there.
    pub status: FileStatus,
}

impl std::fmt::Display for FileReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.path.display();
        match &self.status {
            FileStatus::Ok => write!(f, "{p} is present ({} bytes)", thousands(self.expected)),
            FileStatus::Missing => write!(f, "{p} is missing"),
            FileStatus::WrongSize { actual } => write!(
                f,
                "{p} is {} bytes; the torrent says {}",
                thousands(*actual),
                thousands(self.expected)
            ),
            FileStatus::NotRegular { at, kind } => {
                write!(f, "{} is {kind}, not a regular file", at.display())
            }
            FileStatus::Symlink { at } => write!(
                f,
                "{} is a symbolic link; unchoke does not write through links",
                at.display()
            ),
        }
    }
}

/// The file operation that failed, for [`StorageError::Io`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageOp {
    /// Creating a directory.
    CreateDir,
    /// Creating a file.
    Create,
    /// Opening a file.
    Open,
    /// Reading.
    Read,
    /// Writing.
    Write,
    /// Setting a file's length.
    Resize,
    /// Flushing to the device.
    Sync,
    /// Reading a file's metadata.
    Stat,
    /// Reading a resume file.
    ReadResume,
    /// Writing a resume file.
    WriteResume,
}

impl std::fmt::Display for StorageOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StorageOp::CreateDir => "create directory",
            StorageOp::Create => "create",
            StorageOp::Open => "open",
            StorageOp::Read => "read",
            StorageOp::Write => "write",
            StorageOp::Resize => "set the length of",
            StorageOp::Sync => "sync",
            StorageOp::Stat => "inspect",
            StorageOp::ReadResume => "read resume file",
            StorageOp::WriteResume => "write resume file",
        })
    }
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation failed.
    #[error("cannot {op} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        op: StorageOp,
        /// The file (or directory) it was done to.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// A block that does not lie inside its piece (or a piece index past the end).
    #[error("piece {piece}: {len} bytes at offset {offset} do not lie inside the piece")]
    OutOfRange {
        /// The piece.
        piece: u32,
        /// Offset inside the piece.
        offset: u32,
        /// Length of the block.
        len: u32,
    },
    /// A block to write holds non-zero bytes where the torrent has a padding file: the data
    /// is corrupt (the piece cannot pass its hash check). Nothing of the block was written.
    /// A driver should treat this like bad data from the peer, not like a disk failure.
    #[error(
        "piece {piece}: the block at offset {offset} has non-zero bytes where padding file {} \
         lies; nothing was written",
        .path.display()
    )]
    NonZeroPadding {
        /// The piece.
        piece: u32,
        /// Offset of the block inside the piece.
        offset: u32,
        /// The padding file's (never created) path.
        path: PathBuf,
    },
    /// The torrent's file lengths do not make a valid layout.
    #[error("torrent layout is invalid: {0}")]
    Layout(#[from] LayoutError),
    /// The torrent's piece hashes do not match its length.
    #[error("the torrent has {hashes} piece hashes but its files make {pieces} pieces")]
    HashCountMismatch {
        /// Number of hashes.
        hashes: usize,
        /// Number of pieces the lengths make.
        pieces: u32,
    },
    /// A write to read-only storage (seeding): refused, nothing was written.
    #[error("cannot write {}: the data is open read-only", .path.display())]
    ReadOnly {
        /// The file.
        path: PathBuf,
    },
    /// An existing file is longer than the torrent says: cutting it would destroy bytes
    /// that are not the torrent's.
    #[error(
        "{} is {} bytes; the torrent says {}",
        .path.display(), thousands(*.actual), thousands(*.expected)
    )]
    TooLong {
        /// The file.
        path: PathBuf,
        /// Its size.
        actual: u64,
        /// The torrent's size for it.
        expected: u64,
    },
    /// A symbolic link where a file or directory of the torrent goes: writes do not follow
    /// links below the save directory.
    #[error("{} is a symbolic link; unchoke does not write through links", .path.display())]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// Something other than a regular file where a file of the torrent goes.
    #[error("{} is {kind}, not a regular file", .path.display())]
    NotRegular {
        /// Where.
        path: PathBuf,
        /// What is there.
        kind: FileKind,
    },
    /// Something other than a directory where a directory of the torrent goes.
    #[error("{} is {kind}, where the torrent needs a directory", .path.display())]
    NotADirectory {
        /// Where.
        path: PathBuf,
        /// What is there.
        kind: FileKind,
    },
    /// A file path that would leave the save directory (never produced by a parsed
    /// metainfo; the storage refuses it all the same).
    #[error("{} lies outside the save directory; refused", .path.display())]
    OutsideSaveDir {
        /// The path.
        path: PathBuf,
    },
    /// The check of existing data was stopped through its cancel flag.
    #[error("the check of existing data was interrupted")]
    Cancelled,
    /// A resume file exists but cannot be used (a caller treats this as "no resume").
    #[error("resume file {} is unusable: {source}", .path.display())]
    BadResume {
        /// The resume file.
        path: PathBuf,
        /// What is wrong with it.
        source: ResumeError,
    },
}

impl StorageError {
    /// Whether the device is full (`ENOSPC`), so a driver can say "disk full" plainly.
    pub fn is_disk_full(&self) -> bool {
        self.io_error()
            .is_some_and(|e| DiskErrorKind::of_io(e) == DiskErrorKind::NoSpace)
    }

    /// Whether a file was missing or shorter than the torrent needs: data not there yet,
    /// rather than a failing disk.
    pub fn is_missing_data(&self) -> bool {
        self.io_error().is_some_and(|e| {
            matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::UnexpectedEof
            )
        })
    }

    /// The underlying system error, for [`StorageError::Io`].
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The error as the session takes it ([`unchoke_core::session::Session::disk_write_done`],
    /// [`unchoke_core::session::Session::disk_read_done`]): classified so the core can act
    /// on the kind (a full disk, a read past what is there, bad data from a peer), worded
    /// as this error displays (which file, which operation, the system's message).
    pub fn to_disk_error(&self) -> DiskError {
        let kind = match self {
            StorageError::Io { source, .. } => DiskErrorKind::of_io(source),
            StorageError::OutOfRange { .. } => DiskErrorKind::OutOfRange,
            StorageError::NonZeroPadding { .. } => DiskErrorKind::BadData,
            StorageError::ReadOnly { .. } => DiskErrorKind::ReadOnly,
            StorageError::Layout(_)
            | StorageError::HashCountMismatch { .. }
            | StorageError::TooLong { .. }
            | StorageError::Symlink { .. }
            | StorageError::NotRegular { .. }
            | StorageError::NotADirectory { .. }
            | StorageError::OutsideSaveDir { .. }
            | StorageError::Cancelled
            | StorageError::BadResume { .. } => DiskErrorKind::Refused,
        };
        DiskError::new(kind, self.to_string())
    }
}

fn io_err(op: StorageOp, path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What a check of the existing data found ([`FileStorage::verify_existing`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOutcome {
    /// The pieces present and correct.
    pub have: Bitfield,
    /// The pieces that may hold data: `have`, and pieces read that failed their hash and
    /// are not all zeros (partly written). Pieces skipped, known empty, or read as all
    /// zeros are not in it. For [`unchoke_core::resume::ResumeData::written`].
    pub written: Bitfield,
    /// Pieces taken from the resume data without reading them.
    pub trusted: u32,
    /// Pieces not trusted, hence examined: hashed, or `skipped`.
    pub checked: u32,
    /// Of `checked`, the pieces not even read: a file they need is missing or too short,
    /// or the resume data knows them empty (never written, files unchanged since).
    pub skipped: u32,
}

/// How one piece of a check turned out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PieceCheck {
    /// Read and matching its hash.
    Good,
    /// Read, failing its hash, with some non-zero byte (partly written).
    Bad,
    /// Read, failing its hash, all zeros (never written: a sparse hole or a fresh file).
    Empty,
    /// Not read (a file it needs is missing or short).
    Skipped,
}

/// One file of the torrent.
#[derive(Debug)]
struct FileSlot {
    path: PathBuf,
    /// `path` relative to the save directory (plain names only).
    rel: PathBuf,
    length: u64,
    padding: bool,
}

/// A cached open file.
#[derive(Debug)]
struct Handle {
    file: Arc<File>,
    writable: bool,
    /// Tick of the last use, for least-recently-used eviction.
    used: u64,
}

/// The bounded set of open handles.
#[derive(Debug)]
struct HandleCache {
    /// By file index (so a lookup is O(1)).
    slots: Vec<Option<Handle>>,
    /// The indexes whose slot is `Some` (so eviction scans at most `max_open_files`).
    open: Vec<usize>,
    tick: u64,
}

impl HandleCache {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The cached handle for `index` if it can serve (`write` needs a writable one).
    fn lookup(&mut self, index: usize, write: bool) -> Option<Arc<File>> {
        let tick = self.next_tick();
        let h = self.slots.get_mut(index)?.as_mut()?;
        if h.writable || !write {
            h.used = tick;
            return Some(h.file.clone());
        }
        None
    }

    /// Caches a freshly opened handle (or, if another thread cached one at least as capable
    /// meanwhile, returns that one). Evicted handles are pushed to `evicted` so the caller
    /// closes them after releasing the lock.
    fn insert(
        &mut self,
        index: usize,
        file: Arc<File>,
        writable: bool,
        max_open: usize,
        evicted: &mut Vec<Handle>,
    ) -> Arc<File> {
        let used = self.next_tick();
        let Some(slot) = self.slots.get_mut(index) else {
            return file;
        };
        match slot {
            Some(h) if h.writable || !writable => {
                h.used = used;
                return h.file.clone();
            }
            Some(h) => {
                // Upgrade a read-only handle; holders of the old one finish with it.
                let old = std::mem::replace(
                    h,
                    Handle {
                        file: file.clone(),
                        writable,
                        used,
                    },
                );
                evicted.push(old);
                return file;
            }
            None => {
                *slot = Some(Handle {
                    file: file.clone(),
                    writable,
                    used,
                });
                self.open.push(index);
            }
        }
        while self.open.len() > max_open {
            let victim = self
                .open
                .iter()
                .enumerate()
                .filter(|&(_, &i)| i != index)
                .min_by_key(|&(_, &i)| self.slots.get(i).and_then(|s| s.as_ref()).map(|h| h.used))
                .map(|(pos, _)| pos);
            let Some(pos) = victim else { break };
            let i = self.open.swap_remove(pos);
            if let Some(h) = self.slots.get_mut(i).and_then(Option::take) {
                evicted.push(h);
            }
        }
        file
    }
}

/// Blocking positional IO over one torrent's files. See the module documentation.
///
/// Holds a copy of the piece hashes (20 bytes per piece, as the metainfo does) and a few
/// words per file; nothing proportional to the content's size.
pub struct FileStorage {
    layout: Layout,
    piece_hashes: Vec<[u8; 20]>,
    files: Vec<FileSlot>,
    handles: Mutex<HandleCache>,
    /// Files written since the last [`FileStorage::flush`] (their handle may have been
    /// evicted since, so the cache alone cannot say what to sync).
    dirty: Vec<AtomicBool>,
    max_open: usize,
    /// The save directory.
    base: PathBuf,
    access: StorageAccess,
}

impl std::fmt::Debug for FileStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the hashes or every path: a torrent may have millions of each.
        f.debug_struct("FileStorage")
            .field("files", &self.files.len())
            .field("first_path", &self.files.first().map(|f| &f.path))
            .field("pieces", &self.layout.piece_count())
            .field("max_open", &self.max_open)
            .finish_non_exhaustive()
    }
}

impl FileStorage {
    /// Storage for `info`'s files under `save_path`. Computes every file's path; touches no
    /// file (see [`FileStorage::create_files`]).
    pub fn open(
        info: &Info,
        save_path: &Path,
        options: StorageOptions,
    ) -> Result<FileStorage, StorageError> {
        let layout = Layout::new(info.piece_length, info.files.iter().map(|f| f.length))?;
        if info.piece_hashes.len() != layout.piece_count() as usize {
            return Err(StorageError::HashCountMismatch {
                hashes: info.piece_hashes.len(),
                pieces: layout.piece_count(),
            });
        }
        let files: Vec<FileSlot> = info
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                // `file_path` is `Some` for every index of `files`.
                let rel = info
                    .file_path(i)
                    .unwrap_or_else(|| info.name.clone().into());
                FileSlot {
                    path: save_path.join(&rel),
                    rel,
                    length: f.length,
                    padding: f.padding,
                }
            })
            .collect();
        let n = files.len();
        Ok(FileStorage {
            layout,
            piece_hashes: info.piece_hashes.clone(),
            handles: Mutex::new(HandleCache {
                slots: (0..n).map(|_| None).collect(),
                open: Vec::new(),
                tick: 0,
            }),
            dirty: (0..n).map(|_| AtomicBool::new(false)).collect(),
            files,
            max_open: options.max_open_files.max(1),
            base: save_path.to_path_buf(),
            access: options.access,
        })
    }

    /// What this storage may do to files.
    pub fn access(&self) -> StorageAccess {
        self.access
    }

    /// Looks at every non-padding file without opening or changing anything: present with
    /// the torrent's size, missing, another size, not a regular file, or (for writable
    /// storage, which does not follow them) a symbolic link on its path. Read-only storage
    /// follows links, as its reads do. In torrent order.
    pub fn inspect(&self) -> Vec<FileReport> {
        self.files
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.padding)
            .map(|(index, slot)| FileReport {
                index,
                path: slot.path.clone(),
                expected: slot.length,
                status: self.status_of(slot),
            })
            .collect()
    }

    fn status_of(&self, slot: &FileSlot) -> FileStatus {
        if !self.access.writable() {
            return match fs::metadata(&slot.path) {
                Err(_) => FileStatus::Missing,
                Ok(m) => match self::open::kind_of(&m.file_type()) {
                    FileKind::Regular if m.len() == slot.length => FileStatus::Ok,
                    FileKind::Regular => FileStatus::WrongSize { actual: m.len() },
                    kind => FileStatus::NotRegular {
                        at: slot.path.clone(),
                        kind,
                    },
                },
            };
        }
        // Writable: walk the path below the save directory without following links.
        let mut at = self.base.clone();
        let count = slot.rel.components().count();
        for (i, c) in slot.rel.components().enumerate() {
            at.push(c);
            let m = match fs::symlink_metadata(&at) {
                Ok(m) => m,
                Err(_) => return FileStatus::Missing,
            };
            let kind = self::open::kind_of(&m.file_type());
            let last = i + 1 == count;
            match kind {
                FileKind::Symlink => return FileStatus::Symlink { at },
                FileKind::Directory if !last => {}
                FileKind::Regular if last => {
                    return if m.len() == slot.length {
                        FileStatus::Ok
                    } else {
                        FileStatus::WrongSize { actual: m.len() }
                    };
                }
                kind => return FileStatus::NotRegular { at, kind },
            }
        }
        FileStatus::Missing
    }

    /// The torrent's piece and file geometry.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Where file `index` lives on disk (also for padding files, which are never created);
    /// `None` past the end.
    pub fn file_path(&self, index: usize) -> Option<&Path> {
        self.files.get(index).map(|f| f.path.as_path())
    }

    /// Creates the directories and every non-padding file at its final path, with the
    /// torrent's length (sparse where the file system allows). Existing data is kept and
    /// short files extended; a file **longer** than the torrent says is
    /// [`StorageError::TooLong`] (nothing changed) unless the access is
    /// [`StorageAccess::ReadWriteTruncate`]. Zero-length files are created empty. Read-only
    /// storage touches nothing and returns `Ok`.
    ///
    /// Every file is looked at before any is created or resized, so a refusal leaves the
    /// directory as it was.
    ///
    /// Changing a file's length changes its modification time: run
    /// [`FileStorage::verify_existing`] first, so resume data is compared with the files as
    /// they were.
    pub fn create_files(&self) -> Result<(), StorageError> {
        if !self.access.writable() {
            return Ok(());
        }
        self.preflight_writes()?;
        for slot in self.files.iter().filter(|f| !f.padding) {
            let file = open_below(&self.base, &slot.rel, OpenMode::Write { create: true })?;
            let len = file
                .metadata()
                .map_err(io_err(StorageOp::Stat, &slot.path))?
                .len();
            if len > slot.length && self.access != StorageAccess::ReadWriteTruncate {
                // Grew since the look above: still not ours to cut.
                return Err(StorageError::TooLong {
                    path: slot.path.clone(),
                    actual: len,
                    expected: slot.length,
                });
            }
            if len != slot.length {
                file.set_len(slot.length)
                    .map_err(io_err(StorageOp::Resize, &slot.path))?;
            }
        }
        Ok(())
    }

    /// For writable storage: the first file [`FileStorage::create_files`] must not touch
    /// (longer than the torrent says without truncation allowed, a symbolic link, a
    /// directory, FIFO, socket or device on its path), found by looking only. Lets a caller
    /// refuse before spending time hashing. Read-only storage: always `Ok`.
    pub fn preflight_writes(&self) -> Result<(), StorageError> {
        if !self.access.writable() {
            return Ok(());
        }
        for report in self.inspect() {
            match report.status {
                FileStatus::WrongSize { actual }
                    if actual > report.expected
                        && self.access != StorageAccess::ReadWriteTruncate =>
                {
                    return Err(StorageError::TooLong {
                        path: report.path,
                        actual,
                        expected: report.expected,
                    });
                }
                FileStatus::Symlink { at } => return Err(StorageError::Symlink { path: at }),
                // Something else where the file goes, or where a directory on its way goes.
                FileStatus::NotRegular { at, kind } => {
                    return Err(if at == report.path {
                        StorageError::NotRegular { path: at, kind }
                    } else {
                        StorageError::NotADirectory { path: at, kind }
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Writes `data` at `offset` inside `piece`, across file boundaries as needed. Missing
    /// files (and their directories) are created. Bytes falling in a padding file must be
    /// zeros ([`StorageError::NonZeroPadding`] otherwise, and nothing is written).
    pub fn write_block(&self, piece: u32, offset: u32, data: &[u8]) -> Result<(), StorageError> {
        self.write_parts(piece, offset, &[data])
    }

    /// Writes a run of blocks that follow each other in `piece`, starting at `offset`, with
    /// one vectored positional write per file touched (`pwritev` on Unix): a 1 MiB piece
    /// costs one system call, not 64. Same checks and guarantees as
    /// [`FileStorage::write_block`].
    pub fn write_blocks(
        &self,
        piece: u32,
        offset: u32,
        blocks: &[Bytes],
    ) -> Result<(), StorageError> {
        self.write_parts(piece, offset, blocks)
    }

    /// [`FileStorage::write_block`] and [`FileStorage::write_blocks`]: the buffers in
    /// `blocks`, one after another from `offset` in `piece`, with one vectored write per
    /// file touched; padding is checked whole before anything is written.
    fn write_parts<B: AsRef<[u8]>>(
        &self,
        piece: u32,
        offset: u32,
        blocks: &[B],
    ) -> Result<(), StorageError> {
        self.check_writable()?;
        let total: usize = blocks.iter().map(|b| b.as_ref().len()).sum();
        let len = u32::try_from(total).unwrap_or(u32::MAX);
        if !self.layout.range_in_piece(piece, offset, len) {
            return Err(StorageError::OutOfRange { piece, offset, len });
        }
        let start = self.layout.piece_offset(piece) + u64::from(offset);
        for span in self.layout.spans(piece, offset, len) {
            let slot = self.slot(span.file)?;
            let lo = (span.torrent_offset - start) as usize;
            let parts = slices_of(blocks, lo, span.len as usize);
            if slot.padding && parts.iter().any(|p| p.iter().any(|&b| b != 0)) {
                return Err(StorageError::NonZeroPadding {
                    piece,
                    offset,
                    path: slot.path.clone(),
                });
            }
        }
        for span in self.layout.spans(piece, offset, len) {
            let slot = self.slot(span.file)?;
            if slot.padding {
                continue;
            }
            let lo = (span.torrent_offset - start) as usize;
            let parts = slices_of(blocks, lo, span.len as usize);
            let file = self.handle(span.file, true)?;
            write_all_vectored_at(&file, &parts, span.file_offset)
                .map_err(io_err(StorageOp::Write, &slot.path))?;
            if let Some(d) = self.dirty.get(span.file) {
                d.store(true, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` inside `piece` into one freshly allocated buffer. A file
    /// missing or shorter than the torrent says is an error (never zeros); padding reads as
    /// zeros.
    pub fn read_block(&self, piece: u32, offset: u32, len: u32) -> Result<Bytes, StorageError> {
        if !self.layout.range_in_piece(piece, offset, len) {
            return Err(StorageError::OutOfRange { piece, offset, len });
        }
        // One allocation of exactly `len` bytes (bounded by the piece length), read in place.
        let mut buf = BytesMut::zeroed(len as usize);
        self.read_into(piece, offset, &mut buf)?;
        Ok(buf.freeze())
    }

    /// Reads all of `piece` into `buf` (resized to the piece's length; its allocation is
    /// reused), for hashing.
    pub fn read_piece(&self, piece: u32, buf: &mut Vec<u8>) -> Result<(), StorageError> {
        let len = self.layout.piece_len(piece);
        if len == 0 {
            return Err(StorageError::OutOfRange {
                piece,
                offset: 0,
                len,
            });
        }
        // Truncate then grow: only newly grown bytes are zeroed, the read overwrites all.
        buf.truncate(len as usize);
        buf.resize(len as usize, 0);
        self.read_into(piece, 0, buf)
    }

    /// Fills `buf` from `offset` inside `piece` (the range was checked by the caller).
    fn read_into(&self, piece: u32, offset: u32, buf: &mut [u8]) -> Result<(), StorageError> {
        let start = self.layout.piece_offset(piece) + u64::from(offset);
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        for span in self.layout.spans(piece, offset, len) {
            let lo = (span.torrent_offset - start) as usize;
            let Some(dst) = buf.get_mut(lo..lo + span.len as usize) else {
                continue;
            };
            let slot = self.slot(span.file)?;
            if slot.padding {
                dst.fill(0);
                continue;
            }
            let file = self.handle(span.file, false)?;
            read_exact_at(&file, dst, span.file_offset)
                .map_err(io_err(StorageOp::Read, &slot.path))?;
        }
        Ok(())
    }

    /// Hashes `pieces` on `threads` threads (at least one; the calling thread is one of
    /// them) and returns the set of those matching their metainfo hash. `progress` is
    /// called (from any of the threads) with the number of pieces done so far.
    ///
    /// A piece needing a missing file, or bytes past the end of a shorter file, is simply
    /// absent and is not even read. Other IO errors (permission denied, a failing disk) stop
    /// the check and are returned. A piece index past the end is an error.
    pub fn check_pieces(
        &self,
        pieces: impl IntoIterator<Item = u32, IntoIter: Send>,
        threads: usize,
        progress: &(dyn Fn(u32) + Sync),
    ) -> Result<Bitfield, StorageError> {
        let states = self.current_states()?;
        let never = AtomicBool::new(false);
        Ok(self
            .check_with(pieces, threads, progress, &states, &never)?
            .have)
    }

    /// [`FileStorage::check_pieces`] against file states already taken; also returns the
    /// pieces that failed holding data and how many pieces were skipped unread. Stops with
    /// [`StorageError::Cancelled`] when `cancel` rises (looked at before every piece, in
    /// every thread).
    fn check_with(
        &self,
        pieces: impl IntoIterator<Item = u32, IntoIter: Send>,
        threads: usize,
        progress: &(dyn Fn(u32) + Sync),
        states: &[Option<FileState>],
        cancel: &AtomicBool,
    ) -> Result<Checked, StorageError> {
        let pieces = pieces.into_iter();
        // No more threads than pieces, when the iterator knows how many it holds.
        let threads = threads
            .max(1)
            .min(pieces.size_hint().1.unwrap_or(usize::MAX).max(1));
        let queue = Mutex::new(pieces);
        let have = Mutex::new(Bitfield::new(self.layout.piece_count()));
        let bad = Mutex::new(Bitfield::new(self.layout.piece_count()));
        let done = AtomicU32::new(0);
        let skipped = AtomicU32::new(0);
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<StorageError>> = Mutex::new(None);
        let work = || {
            // One piece-sized buffer per thread, reused for every piece.
            let mut buf = Vec::new();
            while !failed.load(Ordering::Relaxed) {
                if cancel.load(Ordering::Relaxed) {
                    failed.store(true, Ordering::Relaxed);
                    lock(&first_error).get_or_insert(StorageError::Cancelled);
                    break;
                }
                let Some(piece) = lock(&queue).next() else {
                    break;
                };
                match self.check_one(piece, states, &mut buf) {
                    Ok(PieceCheck::Good) => {
                        lock(&have).set(piece);
                    }
                    Ok(PieceCheck::Bad) => {
                        lock(&bad).set(piece);
                    }
                    Ok(PieceCheck::Empty) => {}
                    Ok(PieceCheck::Skipped) => {
                        skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        lock(&first_error).get_or_insert(e);
                        break;
                    }
                }
                progress(done.fetch_add(1, Ordering::Relaxed) + 1);
            }
        };
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(work);
            }
            work();
        });
        if let Some(e) = first_error
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            return Err(e);
        }
        Ok(Checked {
            have: have.into_inner().unwrap_or_else(PoisonError::into_inner),
            bad: bad.into_inner().unwrap_or_else(PoisonError::into_inner),
            skipped: skipped.into_inner(),
        })
    }

    /// Whether `piece` matches its hash, and if not whether it holds any data; skipped
    /// when a file it needs is missing or too short (per `states`, or found so while
    /// reading).
    fn check_one(
        &self,
        piece: u32,
        states: &[Option<FileState>],
        buf: &mut Vec<u8>,
    ) -> Result<PieceCheck, StorageError> {
        let expected = self
            .piece_hashes
            .get(piece as usize)
            .ok_or(StorageError::OutOfRange {
                piece,
                offset: 0,
                len: 0,
            })?;
        for span in self.layout.piece_spans(piece) {
            if self.slot(span.file)?.padding {
                continue;
            }
            let present = states
                .get(span.file)
                .copied()
                .flatten()
                .is_some_and(|s| s.length >= span.file_offset + span.len);
            if !present {
                return Ok(PieceCheck::Skipped);
            }
        }
        match self.read_piece(piece, buf) {
            Ok(()) if sha1::Sha1::digest(&buf[..]).as_slice() == expected => Ok(PieceCheck::Good),
            Ok(()) if buf.iter().all(|&b| b == 0) => Ok(PieceCheck::Empty),
            Ok(()) => Ok(PieceCheck::Bad),
            // The file shrank or vanished since the states were taken.
            Err(e) if e.is_missing_data() => Ok(PieceCheck::Skipped),
            Err(e) => Err(e),
        }
    }

    /// Finds which pieces are present: those `resume` vouches for (see
    /// [`ResumeData::trusted_pieces`]) are taken as they are, those it knows empty
    /// ([`ResumeData::known_empty`]: never written, files unchanged) are skipped unread,
    /// every other piece is hashed on `threads` threads, and pieces needing missing files
    /// are skipped unread. `progress` gets the number of pieces done out of the piece
    /// count, the trusted and known-empty ones counted at once.
    ///
    /// `cancel` is looked at before every piece in every thread: once it rises the check
    /// stops with [`StorageError::Cancelled`] (a check never creates or changes a file).
    ///
    /// The caller checks that `resume` belongs to this torrent (info-hash) first; resume
    /// data whose piece or file count differs is ignored here.
    pub fn verify_existing(
        &self,
        resume: Option<&ResumeData>,
        threads: usize,
        progress: &(dyn Fn(u32) + Sync),
        cancel: &AtomicBool,
    ) -> Result<CheckOutcome, StorageError> {
        if cancel.load(Ordering::Relaxed) {
            return Err(StorageError::Cancelled);
        }
        let states = self.current_states()?;
        let count = self.layout.piece_count();
        let (mut have, empty) = match resume {
            Some(r) => (
                r.trusted_in(&self.layout, |i| self.is_pad(i), &states),
                r.known_empty_in(&self.layout, |i| self.is_pad(i), &states),
            ),
            None => (Bitfield::new(count), Bitfield::new(count)),
        };
        let trusted = have.count_ones();
        let known_empty = empty.count_ones();
        if trusted + known_empty > 0 {
            progress(trusted + known_empty);
        }
        let to_hash = have.zeros().filter(|&p| !empty.get(p));
        let checked = self.check_with(
            to_hash,
            threads,
            &|done| progress(trusted + known_empty + done),
            &states,
            cancel,
        )?;
        for piece in checked.have.ones() {
            have.set(piece);
        }
        let mut written = checked.bad;
        for piece in have.ones() {
            written.set(piece);
        }
        Ok(CheckOutcome {
            have,
            written,
            trusted,
            checked: count - trusted,
            skipped: checked.skipped + known_empty,
        })
    }

    /// Refuses writes to read-only storage.
    fn check_writable(&self) -> Result<(), StorageError> {
        if self.access.writable() {
            return Ok(());
        }
        Err(StorageError::ReadOnly {
            path: self.base.clone(),
        })
    }

    /// Syncs every file written since the last flush to the device (`sync_data`), for a
    /// clean shutdown: after it returns, the verified pieces survive a power loss, so resume
    /// data saved afterwards can be trusted.
    pub fn flush(&self) -> Result<(), StorageError> {
        for (i, dirty) in self.dirty.iter().enumerate() {
            if !dirty.swap(false, Ordering::AcqRel) {
                continue;
            }
            if let Err(e) = self.sync_file(i) {
                dirty.store(true, Ordering::Release);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Each file's length and modification time now, in torrent order: `None` for a missing
    /// file, a padding file, or a file whose metadata cannot be read (so it is never
    /// trusted). For [`ResumeData::files`]: take it after [`FileStorage::flush`], once the
    /// pieces to record are written.
    pub fn file_states(&self) -> Vec<Option<FileState>> {
        self.files
            .iter()
            .map(|slot| {
                if slot.padding {
                    return None;
                }
                fs::metadata(&slot.path).ok().map(|m| state_of(&m))
            })
            .collect()
    }

    /// [`FileStorage::file_states`], but an error other than "not found" is returned.
    fn current_states(&self) -> Result<Vec<Option<FileState>>, StorageError> {
        self.files
            .iter()
            .map(|slot| {
                if slot.padding {
                    return Ok(None);
                }
                match fs::metadata(&slot.path) {
                    Ok(m) => Ok(Some(state_of(&m))),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io_err(StorageOp::Stat, &slot.path)(e)),
                }
            })
            .collect()
    }

    /// Resume data for this torrent now: `have`, the pieces that may hold data
    /// (`written`, see [`ResumeData::written`]) and [`FileStorage::file_states`]. Call
    /// [`FileStorage::flush`] first.
    pub fn resume_data(
        &self,
        info_hash: unchoke_core::InfoHash,
        have: Bitfield,
        written: Option<Bitfield>,
    ) -> ResumeData {
        let data = ResumeData::new(info_hash, have, self.file_states());
        match written {
            Some(w) => data.with_written(w),
            None => data,
        }
    }

    /// Writes `data` to `path` atomically: to `<path>.tmp` first, synced, then renamed over
    /// `path` (and the directory synced, where the system allows), so a crash leaves either
    /// the old resume file or the new one, never a torn one. Creates the directory if needed.
    pub fn save_resume(path: &Path, data: &ResumeData) -> Result<(), StorageError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = dir {
            fs::create_dir_all(dir).map_err(io_err(StorageOp::CreateDir, dir))?;
        }
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&data.encode())?;
            f.sync_all()
        })();
        if let Err(e) = written {
            // Best effort: a leftover temporary file is harmless but untidy.
            let _ = fs::remove_file(&tmp);
            return Err(io_err(StorageOp::WriteResume, &tmp)(e));
        }
        if let Err(e) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(StorageOp::WriteResume, path)(e));
        }
        // Make the rename itself durable. Some file systems cannot sync a directory; the new
        // file is in place either way, so failing here would mislead.
        #[cfg(unix)]
        if let Some(dir) = dir {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// Reads a resume file: `Ok(None)` when there is none, [`StorageError::BadResume`] when
    /// it cannot be parsed. Whether it belongs to the torrent is for the caller to check
    /// ([`ResumeData::check_matches`]).
    pub fn load_resume(path: &Path) -> Result<Option<ResumeData>, StorageError> {
        /// Far above any real resume file (a bit per piece and ~60 bytes per file: 256 MiB
        /// is millions of files), so the read is bounded whatever lies at `path`.
        const LIMIT: u64 = 256 << 20;
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(StorageOp::ReadResume, path)(e)),
        };
        let mut bytes = Vec::new();
        file.take(LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err(StorageOp::ReadResume, path))?;
        let bad = |source| StorageError::BadResume {
            path: path.to_path_buf(),
            source,
        };
        if bytes.len() as u64 > LIMIT {
            return Err(bad(ResumeError::TooLarge {
                size: bytes.len() as u64,
                limit: LIMIT,
            }));
        }
        ResumeData::decode(&bytes).map(Some).map_err(bad)
    }

    /// Syncs file `index` through its cached writable handle, or a handle opened for the
    /// purpose (not cached, so a flush does not churn the cache). A file deleted since it
    /// was written has nothing left to sync.
    fn sync_file(&self, index: usize) -> Result<(), StorageError> {
        let path = self.slot(index)?.path.as_path();
        let rel = self.slot(index)?.rel.as_path();
        let file = match lock(&self.handles).lookup(index, true) {
            Some(f) => f,
            None => match open_below(&self.base, rel, OpenMode::Write { create: false }) {
                Ok(f) => Arc::new(f),
                Err(e) if e.is_missing_data() => return Ok(()),
                Err(e) => return Err(e),
            },
        };
        file.sync_data().map_err(io_err(StorageOp::Sync, path))
    }

    fn slot(&self, index: usize) -> Result<&FileSlot, StorageError> {
        // Indexes come from this storage's own layout, so this never fails in practice; an
        // error rather than a panic all the same.
        self.files.get(index).ok_or(StorageError::OutOfRange {
            piece: u32::MAX,
            offset: 0,
            len: 0,
        })
    }

    fn is_pad(&self, index: usize) -> bool {
        self.files.get(index).is_some_and(|f| f.padding)
    }

    /// An open handle for file `index`, writable if `write`, from the cache or opened now.
    fn handle(&self, index: usize, write: bool) -> Result<Arc<File>, StorageError> {
        if let Some(f) = lock(&self.handles).lookup(index, write) {
            return Ok(f);
        }
        // Open without holding the lock: opening can be slow (network file systems).
        let slot = self.slot(index)?;
        let (file, writable) = if write {
            self.check_writable()?;
            (
                open_below(&self.base, &slot.rel, OpenMode::Write { create: true })?,
                true,
            )
        } else if !self.access.writable() {
            (
                open_below(&self.base, &slot.rel, OpenMode::ReadFollow)?,
                false,
            )
        } else {
            // Read-write if allowed, so the handle also serves later writes; else read-only.
            match open_below(&self.base, &slot.rel, OpenMode::Write { create: false }) {
                Ok(f) => (f, true),
                // Not writable (permissions, a program being run): serve it read-only.
                Err(e)
                    if e.io_error()
                        .is_some_and(|e| e.kind() != io::ErrorKind::NotFound) =>
                {
                    (
                        open_below(&self.base, &slot.rel, OpenMode::ReadNoFollow)?,
                        false,
                    )
                }
                Err(e) => return Err(e),
            }
        };
        let mut evicted = Vec::new();
        let file = lock(&self.handles).insert(
            index,
            Arc::new(file),
            writable,
            self.max_open,
            &mut evicted,
        );
        // Close evicted handles (if nobody else holds them) outside the lock.
        drop(evicted);
        Ok(file)
    }

    /// How many handles the cache holds (for tests).
    #[cfg(test)]
    fn open_handles(&self) -> usize {
        lock(&self.handles).open.len()
    }
}

/// What [`FileStorage::check_with`] found.
struct Checked {
    /// Pieces matching their hash.
    have: Bitfield,
    /// Pieces failing their hash with some non-zero byte.
    bad: Bitfield,
    /// Pieces not read.
    skipped: u32,
}

/// Locks a mutex, recovering from poisoning: every critical section here leaves the data
/// consistent (no panicking step in between), so a panic elsewhere does not corrupt it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn state_of(m: &fs::Metadata) -> FileState {
    let mtime_nanos = match m.modified() {
        Ok(t) => nanos_since_epoch(t),
        // No modification times on this platform: lengths alone then decide trust.
        Err(_) => 0,
    };
    FileState {
        length: m.len(),
        mtime_nanos,
    }
}

fn nanos_since_epoch(t: SystemTime) -> i128 {
    let clamp = |n: u128| i128::try_from(n).unwrap_or(i128::MAX);
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => clamp(d.as_nanos()),
        Err(before) => -clamp(before.duration().as_nanos()),
    }
}

/// Fills `buf` from `file` at `offset`; a file ending first is `UnexpectedEof`.
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    let read_at = |b: &mut [u8], o: u64| std::os::unix::fs::FileExt::read_at(file, b, o);
    // seek_read moves the handle's cursor, which nothing here relies on.
    #[cfg(windows)]
    let read_at = |b: &mut [u8], o: u64| std::os::windows::fs::FileExt::seek_read(file, b, o);
    read_full(buf, offset, read_at)
}

// Used by the vectored write where the platform has no `pwritev`, and by tests.
#[cfg(any(test, not(unix)))]
/// Writes all of `buf` to `file` at `offset`.
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    let write_at = |b: &[u8], o: u64| std::os::unix::fs::FileExt::write_at(file, b, o);
    #[cfg(windows)]
    let write_at = |b: &[u8], o: u64| std::os::windows::fs::FileExt::seek_write(file, b, o);
    write_full(buf, offset, write_at)
}

/// The bytes `lo..lo + len` of the concatenation of `blocks`, as slices of the blocks
/// themselves (no copy).
fn slices_of<B: AsRef<[u8]>>(blocks: &[B], lo: usize, len: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut at, end) = (0usize, lo + len);
    for b in blocks {
        let b = b.as_ref();
        let (b_lo, b_hi) = (at, at + b.len());
        at = b_hi;
        if b_hi <= lo || b_lo >= end {
            continue;
        }
        let from = lo.max(b_lo) - b_lo;
        let to = end.min(b_hi) - b_lo;
        out.push(&b[from..to]);
    }
    out
}

/// Writes every byte of `parts`, in order, at `offset`: `pwritev` where there is one,
/// repeated after short writes; one positional write per part elsewhere.
fn write_all_vectored_at(file: &File, parts: &[&[u8]], mut offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
        let mut first = 0;
        while first < parts.len() {
            // The kernel takes at most IOV_MAX (1024) buffers per call.
            let batch: Vec<io::IoSlice<'_>> = parts[first..]
                .iter()
                .take(1024)
                .map(|p| io::IoSlice::new(p))
                .collect();
            let mut n = match rustix::io::pwritev(file, &batch, offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e == rustix::io::Errno::INTR => continue,
                Err(e) => return Err(e.into()),
            };
            offset += n as u64;
            while n > 0 && first < parts.len() {
                let p = parts[first];
                if p.len() <= n {
                    n -= p.len();
                    first += 1;
                } else {
                    parts[first] = &p[n..];
                    n = 0;
                }
            }
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        for p in parts {
            write_all_at(file, p, offset)?;
            offset += p.len() as u64;
        }
        Ok(())
    }
}

/// Repeats a positional read until `buf` is full (reads may be short), retrying on EINTR.
fn read_full(
    mut buf: &mut [u8],
    mut offset: u64,
    mut read_at: impl FnMut(&mut [u8], u64) -> io::Result<usize>,
) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the file ends at byte {offset}, before the data the torrent places there"
                    ),
                ));
            }
            Ok(n) => {
                let n = n.min(buf.len());
                buf = &mut std::mem::take(&mut buf)[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

// Used by the vectored write where the platform has no `pwritev`, and by tests.
#[cfg(any(test, not(unix)))]
/// Repeats a positional write until all of `buf` is written, retrying on EINTR.
fn write_full(
    mut buf: &[u8],
    mut offset: u64,
    mut write_at: impl FnMut(&[u8], u64) -> io::Result<usize>,
) -> io::Result<()> {
    while !buf.is_empty() {
        match write_at(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let n = n.min(buf.len());
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
