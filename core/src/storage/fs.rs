//! [`FileStorage`]: blocking positional file IO for one torrent's content (feature `fs`).
//!
//! This is the one place in the core that touches files; both drivers share it and call it
//! from their worker threads (it is `Send + Sync` and every method takes `&self`).
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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use sha1::Digest;

use super::{Layout, LayoutError};
use crate::bitfield::Bitfield;
use crate::metainfo::Info;
use crate::resume::{FileState, ResumeData, ResumeError};

#[cfg(not(any(unix, windows)))]
compile_error!(
    "unchoke-core's `fs` feature needs positional file IO, available on Unix and Windows only"
);

/// The default bound on cached open file handles.
pub const DEFAULT_MAX_OPEN_FILES: usize = 64;

/// How a [`FileStorage`] behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageOptions {
    /// Most file handles kept open at once (0 is taken as 1). Default
    /// [`DEFAULT_MAX_OPEN_FILES`].
    pub max_open_files: usize,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            max_open_files: DEFAULT_MAX_OPEN_FILES,
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
        self.io_error().is_some_and(|e| {
            e.kind() == io::ErrorKind::StorageFull || (cfg!(unix) && e.raw_os_error() == Some(28))
        })
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
    /// Pieces taken from the resume data without reading them.
    pub trusted: u32,
    /// Pieces not trusted, hence examined: hashed, or `skipped`.
    pub checked: u32,
    /// Of `checked`, the pieces not even read because a file they need is missing or too
    /// short.
    pub skipped: u32,
}

/// One file of the torrent.
#[derive(Debug)]
struct FileSlot {
    path: PathBuf,
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
            .map(|(i, f)| FileSlot {
                // `file_path` is `Some` for every index of `files`.
                path: save_path.join(
                    info.file_path(i)
                        .unwrap_or_else(|| info.name.clone().into()),
                ),
                length: f.length,
                padding: f.padding,
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
        })
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
    /// torrent's length (sparse where the file system allows). Existing data is kept; a
    /// file **longer** than the torrent says is truncated to the torrent's length. Zero-length
    /// files are created empty.
    ///
    /// Changing a file's length changes its modification time: run
    /// [`FileStorage::verify_existing`] first, so resume data is compared with the files as
    /// they were.
    pub fn create_files(&self) -> Result<(), StorageError> {
        for slot in self.files.iter().filter(|f| !f.padding) {
            if let Some(parent) = slot.path.parent() {
                fs::create_dir_all(parent).map_err(io_err(StorageOp::CreateDir, parent))?;
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&slot.path)
                .map_err(io_err(StorageOp::Create, &slot.path))?;
            let len = file
                .metadata()
                .map_err(io_err(StorageOp::Stat, &slot.path))?
                .len();
            if len != slot.length {
                file.set_len(slot.length)
                    .map_err(io_err(StorageOp::Resize, &slot.path))?;
            }
        }
        Ok(())
    }

    /// Writes `data` at `offset` inside `piece`, across file boundaries as needed. Missing
    /// files (and their directories) are created. Bytes falling in a padding file must be
    /// zeros ([`StorageError::NonZeroPadding`] otherwise, and nothing is written).
    pub fn write_block(&self, piece: u32, offset: u32, data: &[u8]) -> Result<(), StorageError> {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        if !self.layout.range_in_piece(piece, offset, len) {
            return Err(StorageError::OutOfRange { piece, offset, len });
        }
        let start = self.layout.piece_offset(piece) + u64::from(offset);
        let part = |span: &super::FileSpan| {
            let lo = (span.torrent_offset - start) as usize;
            data.get(lo..lo + span.len as usize).unwrap_or_default()
        };
        // Check the padding first so a corrupt block leaves no trace.
        for span in self.layout.spans(piece, offset, len) {
            let slot = self.slot(span.file)?;
            if slot.padding && part(&span).iter().any(|&b| b != 0) {
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
            let file = self.handle(span.file, true)?;
            write_all_at(&file, part(&span), span.file_offset)
                .map_err(io_err(StorageOp::Write, &slot.path))?;
            // After the write, so a flush that starts after this call returns syncs it.
            if let Some(d) = self.dirty.get(span.file) {
                d.store(true, Ordering::Release);
            }
        }
        Ok(())
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
        let total: usize = blocks.iter().map(Bytes::len).sum();
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
        Ok(self.check_with(pieces, threads, progress, &states)?.0)
    }

    /// [`FileStorage::check_pieces`] against file states already taken; also returns how
    /// many pieces were skipped unread.
    fn check_with(
        &self,
        pieces: impl IntoIterator<Item = u32, IntoIter: Send>,
        threads: usize,
        progress: &(dyn Fn(u32) + Sync),
        states: &[Option<FileState>],
    ) -> Result<(Bitfield, u32), StorageError> {
        let pieces = pieces.into_iter();
        // No more threads than pieces, when the iterator knows how many it holds.
        let threads = threads
            .max(1)
            .min(pieces.size_hint().1.unwrap_or(usize::MAX).max(1));
        let queue = Mutex::new(pieces);
        let have = Mutex::new(Bitfield::new(self.layout.piece_count()));
        let done = AtomicU32::new(0);
        let skipped = AtomicU32::new(0);
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<StorageError>> = Mutex::new(None);
        let work = || {
            // One piece-sized buffer per thread, reused for every piece.
            let mut buf = Vec::new();
            while !failed.load(Ordering::Relaxed) {
                let Some(piece) = lock(&queue).next() else {
                    break;
                };
                match self.check_one(piece, states, &mut buf) {
                    Ok(Some(true)) => {
                        lock(&have).set(piece);
                    }
                    Ok(Some(false)) => {}
                    Ok(None) => {
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
        let have = have.into_inner().unwrap_or_else(PoisonError::into_inner);
        Ok((have, skipped.into_inner()))
    }

    /// Whether `piece` matches its hash; `None` when it was skipped because a file it needs
    /// is missing or too short (per `states`, or found so while reading).
    fn check_one(
        &self,
        piece: u32,
        states: &[Option<FileState>],
        buf: &mut Vec<u8>,
    ) -> Result<Option<bool>, StorageError> {
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
                return Ok(None);
            }
        }
        match self.read_piece(piece, buf) {
            Ok(()) => Ok(Some(sha1::Sha1::digest(&buf[..]).as_slice() == expected)),
            // The file shrank or vanished since the states were taken.
            Err(e) if e.is_missing_data() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Finds which pieces are present: those `resume` vouches for (see
    /// [`ResumeData::trusted_pieces`]) are taken as they are, every other piece is hashed on
    /// `threads` threads, and pieces needing missing files are skipped unread. `progress`
    /// gets the number of pieces done out of the piece count, the trusted ones counted at
    /// once.
    ///
    /// The caller checks that `resume` belongs to this torrent (info-hash) first; resume
    /// data whose piece or file count differs is ignored here.
    pub fn verify_existing(
        &self,
        resume: Option<&ResumeData>,
        threads: usize,
        progress: &(dyn Fn(u32) + Sync),
    ) -> Result<CheckOutcome, StorageError> {
        let states = self.current_states()?;
        let mut have = match resume {
            Some(r) => r.trusted_in(&self.layout, |i| self.is_pad(i), &states),
            None => Bitfield::new(self.layout.piece_count()),
        };
        let trusted = have.count_ones();
        if trusted > 0 {
            progress(trusted);
        }
        let (hashed, skipped) = self.check_with(
            have.zeros(),
            threads,
            &|done| progress(trusted + done),
            &states,
        )?;
        for piece in hashed.ones() {
            have.set(piece);
        }
        Ok(CheckOutcome {
            have,
            trusted,
            checked: self.layout.piece_count() - trusted,
            skipped,
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

    /// Resume data for this torrent now: `have` plus [`FileStorage::file_states`]. Call
    /// [`FileStorage::flush`] first.
    pub fn resume_data(&self, info_hash: crate::InfoHash, have: Bitfield) -> ResumeData {
        ResumeData::new(info_hash, have, self.file_states())
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
        let file = match lock(&self.handles).lookup(index, true) {
            Some(f) => f,
            None => match OpenOptions::new().write(true).open(path) {
                Ok(f) => Arc::new(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_err(StorageOp::Open, path)(e)),
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
            (open_writable(&slot.path)?, true)
        } else {
            open_readable(&slot.path)?
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

/// Locks a mutex, recovering from poisoning: every critical section here leaves the data
/// consistent (no panicking step in between), so a panic elsewhere does not corrupt it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Opens `path` read-write, creating it (and its directories) if missing.
fn open_writable(path: &Path) -> Result<File, StorageError> {
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    };
    match open() {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_err(StorageOp::CreateDir, parent))?;
            }
            open().map_err(io_err(StorageOp::Open, path))
        }
        Err(e) => Err(io_err(StorageOp::Open, path)(e)),
    }
}

/// Opens `path` for reading: read-write if allowed (so the handle also serves later writes),
/// else read-only (seeding read-only data needs no write access). Never creates it.
fn open_readable(path: &Path) -> Result<(File, bool), StorageError> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => Ok((f, true)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(io_err(StorageOp::Open, path)(e)),
        Err(_) => File::open(path)
            .map(|f| (f, false))
            .map_err(io_err(StorageOp::Open, path)),
    }
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
fn slices_of(blocks: &[Bytes], lo: usize, len: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut at, end) = (0usize, lo + len);
    for b in blocks {
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
