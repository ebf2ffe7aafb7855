//! Block IO: positional writes of downloaded blocks (vectored, padding checked first),
//! reads of blocks and whole pieces, and flushing written files to the device.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};

use crate::error::io_err;
use crate::open::{OpenMode, open_below};
use crate::positional::{read_exact_at, slices_of, write_all_vectored_at};
use crate::{FileStorage, StorageError, StorageOp, lock};

impl FileStorage {
    /// Writes `data` at `offset` inside `piece`, across file boundaries as needed. Missing
    /// files (and their directories) are created, at the torrent's length, as are the
    /// zero-length files placed in the written range (see the `create` module). Bytes falling in a padding file must be
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
    pub(crate) fn write_parts<B: AsRef<[u8]>>(
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
        self.create_empty_files_in(start, start + u64::from(len))?;
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

    /// Fills all of `buf` from `offset` inside `piece`, as [`FileStorage::read_block`] does
    /// (same errors), into memory the caller owns: a caller that reuses its buffers saves
    /// the allocation and the zero-fill of a fresh one.
    pub fn read_block_into(
        &self,
        piece: u32,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<(), StorageError> {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        if !self.layout.range_in_piece(piece, offset, len) {
            return Err(StorageError::OutOfRange { piece, offset, len });
        }
        self.read_into(piece, offset, buf)
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
    pub(crate) fn read_into(
        &self,
        piece: u32,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<(), StorageError> {
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

    /// Whether any file was written since the last successful [`FileStorage::flush`]
    /// (what a power loss could still take back).
    pub fn has_unflushed_writes(&self) -> bool {
        self.dirty.iter().any(|d| d.load(Ordering::Acquire))
    }

    /// Syncs file `index` through its cached writable handle, or a handle opened for the
    /// purpose (not cached, so a flush does not churn the cache). A file deleted since it
    /// was written has nothing left to sync.
    pub(crate) fn sync_file(&self, index: usize) -> Result<(), StorageError> {
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
}
