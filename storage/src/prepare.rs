//! Before any IO: looking at what lies where the torrent's files go
//! ([`FileStorage::inspect`]) and refusing early what writes must not touch
//! ([`FileStorage::preflight_writes`]). Creating the files is the `create` module's.

use std::fs;
use std::path::PathBuf;

use crate::{FileKind, FileReport, FileSlot, FileStatus, FileStorage, StorageAccess, StorageError};

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

    /// For writable storage: the first file a write or [`FileStorage::create_files`] must
    /// not touch (longer than the torrent says without truncation allowed, a symbolic link,
    /// a directory, FIFO, socket or device on its path), found by looking only, at every
    /// path although files are created lazily. Lets a caller refuse before spending time
    /// hashing or anything is written. Read-only storage: always `Ok`.
    pub fn preflight_writes(&self) -> Result<(), StorageError> {
        if !self.access.writable() {
            return Ok(());
        }
        for report in self.inspect() {
            if let Some(e) = self.refusal(report.path, report.expected, report.status) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Why a writable storage must not touch the file at `path` whose status is `status`
    /// (`expected`: the torrent's length for it), or `None` when it may.
    pub(crate) fn refusal(
        &self,
        path: PathBuf,
        expected: u64,
        status: FileStatus,
    ) -> Option<StorageError> {
        match status {
            FileStatus::WrongSize { actual }
                if actual > expected && self.access != StorageAccess::ReadWriteTruncate =>
            {
                Some(StorageError::TooLong {
                    path,
                    actual,
                    expected,
                })
            }
            FileStatus::Symlink { at } => Some(StorageError::Symlink { path: at }),
            // Something else where the file goes, or where a directory on its way goes.
            FileStatus::NotRegular { at, kind } => Some(if at == path {
                StorageError::NotRegular { path: at, kind }
            } else {
                StorageError::NotADirectory { path: at, kind }
            }),
            _ => None,
        }
    }
}
