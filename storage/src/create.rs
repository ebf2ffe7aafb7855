//! Creating the torrent's files, lazily: a download creates a file (and the directories on
//! its way) when the first block touching it is written, at the torrent's length (sparse
//! where the file system allows), and a zero-length file when a block at its place in the
//! content is written. [`FileStorage::create_files`] makes whatever is still missing, for a
//! torrent that is complete, so a finished download has the exact tree.
//!
//! Why lazily: a torrent listing 100,000 files would otherwise create 100,000 files before
//! any peer is seen, and a download cancelled at once would leave a tree of empty files.
//! The safety checks do not move: the preflight ([`FileStorage::preflight_writes`]) still
//! looks at every path before anything is written, and every lazy open goes through
//! `open_below` (no symlink followed, never outside the save directory), so a link planted
//! after the preflight is still refused at write time.

use std::fs::File;
use std::sync::atomic::Ordering;

use crate::error::io_err;
use crate::open::{OpenMode, open_below};
use crate::{FileSlot, FileStorage, StorageAccess, StorageError, StorageOp};

impl FileStorage {
    /// Creates every non-padding file not created yet (and its directories) at its final
    /// path, with the torrent's length (sparse where the file system allows): for a torrent
    /// that is complete (the zero-length files no write made), or to lay out a whole tree
    /// at once. Downloads do not need it before writing: the first write to a file creates
    /// it. Existing data is kept and short files extended; a file **longer** than the
    /// torrent says is [`StorageError::TooLong`] (nothing changed) unless the access is
    /// [`StorageAccess::ReadWriteTruncate`]. Read-only storage touches nothing and returns
    /// `Ok`.
    ///
    /// Every file still to create is looked at before any is created or resized, so a
    /// refusal leaves the directory as it was. Files this storage already created or sized
    /// are not looked at again, so calling it once more is cheap.
    ///
    /// Changing a file's length changes its modification time: run
    /// [`FileStorage::verify_existing`] first, so resume data is compared with the files as
    /// they were.
    pub fn create_files(&self) -> Result<(), StorageError> {
        if !self.access.writable() {
            return Ok(());
        }
        let pending = || {
            self.files
                .iter()
                .enumerate()
                .filter(|(i, f)| !f.padding && !self.is_ready(*i))
        };
        for (_, slot) in pending() {
            if let Some(e) = self.refusal(slot.path.clone(), slot.length, self.status_of(slot)) {
                return Err(e);
            }
        }
        for (index, slot) in pending() {
            self.create_one(index, slot)?;
        }
        Ok(())
    }

    /// Whether file `index` was created or sized by this storage already.
    pub(crate) fn is_ready(&self, index: usize) -> bool {
        self.ready
            .get(index)
            .is_some_and(|r| r.load(Ordering::Acquire))
    }

    /// Opens file `index` for writing, creating it and its directories if missing, at the
    /// torrent's length: the lazy creation, on a write's first open of the file.
    pub(crate) fn open_for_write(&self, index: usize) -> Result<File, StorageError> {
        let slot = self.slot(index)?;
        let file = open_below(&self.base, &slot.rel, OpenMode::Write { create: true })?;
        self.fit(index, slot, &file)?;
        Ok(file)
    }

    /// Creates (or sizes) file `index` without keeping a handle.
    fn create_one(&self, index: usize, slot: &FileSlot) -> Result<(), StorageError> {
        let file = open_below(&self.base, &slot.rel, OpenMode::Write { create: true })?;
        self.fit(index, slot, &file)
    }

    /// Gives an open file the torrent's length: extends a short (or new) one, sparse;
    /// refuses one that is longer unless truncation is allowed. Several threads may fit the
    /// same file at once: they all set the same length, which never loses written bytes.
    fn fit(&self, index: usize, slot: &FileSlot, file: &File) -> Result<(), StorageError> {
        if self.is_ready(index) {
            return Ok(());
        }
        let len = file
            .metadata()
            .map_err(io_err(StorageOp::Stat, &slot.path))?
            .len();
        if len > slot.length && self.access != StorageAccess::ReadWriteTruncate {
            // Grew since the preflight: still not ours to cut.
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
        if let Some(r) = self.ready.get(index) {
            r.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Creates the zero-length files whose place in the content lies in the written range
    /// `start..end` (or at its end, for the range ending the content): a zero-length file
    /// has no byte to write, so the write at its place stands for it. Each position of the
    /// content is written by some block, so a download that writes every piece creates
    /// every zero-length file.
    pub(crate) fn create_empty_files_in(&self, start: u64, end: u64) -> Result<(), StorageError> {
        let last = end == self.layout.total_length();
        let first = self.files.partition_point(|f| f.offset < start);
        for (index, slot) in self.files.iter().enumerate().skip(first) {
            if slot.offset > end || (slot.offset == end && !last) {
                break;
            }
            if slot.length == 0 && !slot.padding && !self.is_ready(index) {
                self.create_one(index, slot)?;
            }
        }
        Ok(())
    }
}
