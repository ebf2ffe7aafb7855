//! Before any IO: looking at what lies where the torrent's files go
//! ([`FileStorage::inspect`]), refusing early what writes must not touch
//! ([`FileStorage::preflight_writes`]), and creating the files ([`FileStorage::create_files`]).

use std::fs;

use crate::error::io_err;
use crate::open::{OpenMode, open_below};
use crate::{
    FileKind, FileReport, FileSlot, FileStatus, FileStorage, StorageAccess, StorageError, StorageOp,
};

impl FileStorage {
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

    pub(crate) fn status_of(&self, slot: &FileSlot) -> FileStatus {
        if !self.access.writable() {
            return match fs::metadata(&slot.path) {
                Err(_) => FileStatus::Missing,
                Ok(m) => match crate::open::kind_of(&m.file_type()) {
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
            let kind = crate::open::kind_of(&m.file_type());
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
}
