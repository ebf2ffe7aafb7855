//! Why a disk job failed ([`DiskError`]), as a driver reports it to the session through
//! [`crate::session::Session::disk_write_done`] and
//! [`crate::session::Session::disk_read_done`], and as the session reports it back in
//! [`super::Event::StorageError`].
//!
//! The core never touches files, so it cannot see an `io::Error` happen; but it must still
//! tell "the disk is full" (no point re-downloading into it) from "that block was outside
//! the file" without parsing text. A driver therefore classifies its own error into a
//! [`DiskErrorKind`] ([`DiskError::from_io`] does it for an `std::io::Error`) and keeps its
//! full wording as the `detail` for people to read.

use std::fmt;
use std::io;

/// What kind of failure a disk job met: what the session may act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskErrorKind {
    /// The device is full (`ENOSPC`): writing again will fail again until space is freed.
    NoSpace,
    /// The operating system refused access to the file or directory.
    PermissionDenied,
    /// A file (or a directory on its path) is missing.
    NotFound,
    /// The storage is read-only (opened for seeding, or a read-only file system).
    ReadOnly,
    /// A file ended before the block did: the data is not (all) there.
    ShortRead,
    /// The block does not lie inside its piece or the torrent's files.
    OutOfRange,
    /// The block itself is unfit to store (for example non-zero bytes where a padding file
    /// lies): bad data, not a failing disk.
    BadData,
    /// The storage refused for a reason of its own (a symlink or a special file where a
    /// file goes, a file longer than the torrent says, …); `detail` says which.
    Refused,
    /// Any other system error, by its `std::io::ErrorKind`.
    Io(io::ErrorKind),
}

impl DiskErrorKind {
    /// The kind of an `std::io::Error`: `ENOSPC` (also reported as a raw OS error on older
    /// targets) is [`DiskErrorKind::NoSpace`], and so on; anything unnamed keeps its
    /// `io::ErrorKind`.
    pub fn of_io(err: &io::Error) -> Self {
        // `ENOSPC` is 28 on every Unix the drivers run on; older std versions report it
        // as `Other`/`Uncategorized`, hence the raw check.
        if err.kind() == io::ErrorKind::StorageFull
            || (cfg!(unix) && err.raw_os_error() == Some(28))
        {
            return DiskErrorKind::NoSpace;
        }
        match err.kind() {
            io::ErrorKind::PermissionDenied => DiskErrorKind::PermissionDenied,
            io::ErrorKind::NotFound => DiskErrorKind::NotFound,
            io::ErrorKind::ReadOnlyFilesystem => DiskErrorKind::ReadOnly,
            io::ErrorKind::UnexpectedEof => DiskErrorKind::ShortRead,
            other => DiskErrorKind::Io(other),
        }
    }
}

/// A failed disk job: its [`DiskErrorKind`] for the session to decide on, and the driver's
/// words for it (which file, which operation, the system's message) for people.
///
/// Displayed as the detail, prefixed with "disk full: " for [`DiskErrorKind::NoSpace`] so
/// the cause is plain even when the system's message is terse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskError {
    kind: DiskErrorKind,
    detail: String,
}

impl DiskError {
    /// A failure of kind `kind`, described by `detail` (one line: which file, what
    /// operation, what went wrong).
    pub fn new(kind: DiskErrorKind, detail: impl Into<String>) -> Self {
        DiskError {
            kind,
            detail: detail.into(),
        }
    }

    /// The failure `err` met while doing `context` (e.g. "write /data/a.bin"): classified
    /// by [`DiskErrorKind::of_io`], described as "`context`: `err`".
    pub fn from_io(err: &io::Error, context: impl fmt::Display) -> Self {
        DiskError::new(DiskErrorKind::of_io(err), format!("{context}: {err}"))
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> DiskErrorKind {
        self.kind
    }

    /// The driver's description, without the "disk full" prefix.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Whether the device is full: retrying will not help until space is freed.
    pub fn is_no_space(&self) -> bool {
        self.kind == DiskErrorKind::NoSpace
    }
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_no_space() {
            write!(f, "disk full: {}", self.detail)
        } else {
            f.write_str(&self.detail)
        }
    }
}

impl std::error::Error for DiskError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_classified_by_kind() {
        let cases = [
            (
                io::Error::from(io::ErrorKind::StorageFull),
                DiskErrorKind::NoSpace,
            ),
            (
                io::Error::from(io::ErrorKind::PermissionDenied),
                DiskErrorKind::PermissionDenied,
            ),
            (
                io::Error::from(io::ErrorKind::NotFound),
                DiskErrorKind::NotFound,
            ),
            (
                io::Error::from(io::ErrorKind::ReadOnlyFilesystem),
                DiskErrorKind::ReadOnly,
            ),
            (
                io::Error::from(io::ErrorKind::UnexpectedEof),
                DiskErrorKind::ShortRead,
            ),
            (
                io::Error::from(io::ErrorKind::Interrupted),
                DiskErrorKind::Io(io::ErrorKind::Interrupted),
            ),
        ];
        for (err, kind) in cases {
            assert_eq!(DiskErrorKind::of_io(&err), kind, "{err:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn raw_enospc_is_no_space() {
        let err = io::Error::from_raw_os_error(28);
        assert_eq!(DiskErrorKind::of_io(&err), DiskErrorKind::NoSpace);
    }

    #[test]
    fn display_names_a_full_disk_and_keeps_the_detail() {
        let full = DiskError::from_io(
            &io::Error::from(io::ErrorKind::StorageFull),
            "cannot write /d/a.bin",
        );
        assert!(full.is_no_space());
        assert_eq!(
            full.detail(),
            format!(
                "cannot write /d/a.bin: {}",
                io::Error::from(io::ErrorKind::StorageFull)
            )
        );
        assert_eq!(full.to_string(), format!("disk full: {}", full.detail()));
        let other = DiskError::new(DiskErrorKind::OutOfRange, "piece 9 is past the end");
        assert_eq!(other.to_string(), "piece 9 is past the end");
        assert_eq!(other.kind(), DiskErrorKind::OutOfRange);
    }
}
