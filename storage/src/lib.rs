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
//! - Files are created lazily (see the `create` module): a download creates a file, with
//!   its directories and at its full length (sparse), when the first block touching it is
//!   written; a zero-length file when a block at its place is written; and whatever is
//!   still missing when the torrent is complete ([`FileStorage::create_files`]). Nothing is
//!   created before the first write, so a torrent of 100,000 files costs nothing on disk
//!   until data arrives, and a download cancelled at once leaves no tree of empty files.
//!   The preflight ([`FileStorage::preflight_writes`]) still looks at every path first.
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
//!
//! One concern per module: `access` (what the storage may do), `report` (what a look at
//! the disk finds), `error` (why an operation failed, and as the session takes it),
//! `open` (opening below the save directory without following links), `handles` (the
//! bounded handle cache), `prepare` (inspect, preflight), `create` (creating files,
//! lazily), `block_io` (block
//! reads and writes, flush), `positional` (the positional IO primitives), `check` (which
//! pieces are on disk), `resume_io` (file states and the resume file). `FileStorage`
//! itself, defined here, is split across them by `impl` blocks.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard, PoisonError};

use unchoke_core::layout::Layout;
use unchoke_core::metainfo::Info;
use unchoke_core::piece_hashes::PieceHashes;

pub use relocate::{delete_files, free_space, relocate, symlink_below};
mod access;
mod block_io;
mod check;
mod create;
mod error;
mod handles;
mod open;
mod positional;
mod prepare;
mod relocate;
mod report;
mod resume_io;

pub use access::{DEFAULT_MAX_OPEN_FILES, StorageAccess, StorageOptions};
pub use check::CheckOutcome;
pub use error::{StorageError, StorageOp};
pub use report::{FileKind, FileReport, FileStatus, thousands};

use handles::HandleCache;

#[cfg(not(any(unix, windows)))]
compile_error!("unchoke-storage needs positional file IO, available on Unix and Windows only");

/// One file of the torrent.
#[derive(Debug)]
struct FileSlot {
    path: PathBuf,
    /// `path` relative to the save directory (plain names only).
    rel: PathBuf,
    /// Offset of the file's first byte in the torrent's content.
    offset: u64,
    length: u64,
    padding: bool,
}

/// Blocking positional IO over one torrent's files. See the module documentation.
///
/// Holds a copy of the piece hashes (20 or 32 bytes per piece, as the metainfo does) and a few
/// words per file; nothing proportional to the content's size.
pub struct FileStorage {
    layout: Layout,
    piece_hashes: PieceHashes,
    files: Vec<FileSlot>,
    handles: Mutex<HandleCache>,
    /// Files written since the last [`FileStorage::flush`] (their handle may have been
    /// evicted since, so the cache alone cannot say what to sync).
    dirty: Vec<AtomicBool>,
    /// Files this storage created or gave their length (see the `create` module), so they
    /// are not sized again.
    ready: Vec<AtomicBool>,
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
    /// Storage for `info`'s files under `save_path`, whose pieces are checked against
    /// `piece_hashes` ([`PieceHashes::from_metainfo`]; v1, v2 or both). Computes every
    /// file's path; touches no file (writes create the files they touch; see
    /// [`FileStorage::create_files`]).
    pub fn open(
        info: &Info,
        piece_hashes: PieceHashes,
        save_path: &Path,
        options: StorageOptions,
    ) -> Result<FileStorage, StorageError> {
        let layout = Layout::new(info.piece_length, info.files.iter().map(|f| f.length))?;
        if piece_hashes.piece_count() != layout.piece_count() {
            return Err(StorageError::HashCountMismatch {
                hashes: piece_hashes.piece_count() as usize,
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
                    offset: layout.file_offset(i).unwrap_or(0),
                    length: f.length,
                    padding: f.padding,
                }
            })
            .collect();
        let n = files.len();
        Ok(FileStorage {
            layout,
            piece_hashes,
            handles: Mutex::new(HandleCache::new(n)),
            dirty: (0..n).map(|_| AtomicBool::new(false)).collect(),
            ready: (0..n).map(|_| AtomicBool::new(false)).collect(),
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

    /// The torrent's piece and file geometry.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Where file `index` lives on disk (also for padding files, which are never created);
    /// `None` past the end.
    pub fn file_path(&self, index: usize) -> Option<&Path> {
        self.files.get(index).map(|f| f.path.as_path())
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
}

/// Locks a mutex, recovering from poisoning: every critical section here leaves the data
/// consistent (no panicking step in between), so a panic elsewhere does not corrupt it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
