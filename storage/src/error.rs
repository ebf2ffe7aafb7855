//! Why a storage operation failed ([`StorageError`], [`StorageOp`]), and the same error
//! as the session takes it ([`StorageError::to_disk_error`]).

use std::io;
use std::path::{Path, PathBuf};

use unchoke_core::layout::LayoutError;
use unchoke_core::resume::ResumeError;
use unchoke_core::session::{DiskError, DiskErrorKind};

use crate::{FileKind, thousands};

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
    /// Removing a file (the source of a move, once its copy is complete).
    Remove,
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
            StorageOp::Remove => "remove",
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

pub(crate) fn io_err(op: StorageOp, path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}
