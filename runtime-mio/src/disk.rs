//! The worker pool: disk writes, disk reads, SHA-1 checks and resume saves run here, off
//! the event-loop thread, and their results go back through the [`Handoff`].

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use sha1::{Digest, Sha1};
use unchoke_core::InfoHash;
use unchoke_core::bitfield::Bitfield;
use unchoke_core::resume::ResumeData;
use unchoke_core::session::{ConnId, TorrentId};
use unchoke_core::storage::FileStorage;
use unchoke_core::wire::BlockRequest;

use crate::handoff::{Handoff, Wake};

/// Work for a disk thread.
pub(crate) enum Job {
    /// Write a downloaded block.
    Write {
        torrent: TorrentId,
        storage: Arc<FileStorage>,
        piece: u32,
        offset: u32,
        data: Bytes,
    },
    /// Read a block to upload.
    Read {
        conn: ConnId,
        torrent: TorrentId,
        storage: Arc<FileStorage>,
        block: BlockRequest,
    },
    /// Hash a whole piece from the blocks held in memory.
    Verify {
        torrent: TorrentId,
        piece: u32,
        expected: [u8; 20],
        blocks: Vec<Bytes>,
    },
    /// Write the resume file (file states are read here, after the pieces in `have` were
    /// written, so a later write to a file shows up as a changed time on restart).
    SaveResume {
        torrent: TorrentId,
        storage: Arc<FileStorage>,
        path: PathBuf,
        info_hash: InfoHash,
        have: Bitfield,
    },
}

/// What a finished [`Job`] reports.
pub(crate) enum Completion {
    Written {
        torrent: TorrentId,
        piece: u32,
        len: usize,
        result: Result<(), String>,
    },
    Read {
        conn: ConnId,
        block: BlockRequest,
        result: Result<Bytes, String>,
    },
    Hashed {
        torrent: TorrentId,
        piece: u32,
        ok: bool,
    },
    ResumeSaved {
        torrent: TorrentId,
        result: Result<(), String>,
    },
}

/// The pool: dropping its sender ends the threads once the queue is empty.
pub(crate) struct DiskPool {
    jobs: Option<Sender<Job>>,
    /// Block writes go to one thread of their own: writers to one file serialise on its
    /// inode lock anyway, and one thread can merge neighbouring blocks into one `pwritev`
    /// (on this kind of VM a 16 KiB buffered write costs ~3 µs of kernel time per KiB,
    /// a 1 MiB one ~0.5).
    writes: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl DiskPool {
    /// Starts `threads` workers for reads, hashing and resume saves, plus one writer thread
    /// for block writes, all reporting to `done`.
    pub(crate) fn start<W: Wake + Send + Sync + 'static>(
        threads: usize,
        done: Arc<Handoff<Completion, W>>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let (write_tx, write_rx) = crossbeam_channel::unbounded::<Job>();
        let mut handles = Vec::with_capacity(threads + 1);
        let cache = Arc::new(ReadCache::default());
        for i in 0..threads.max(1) {
            let rx: Receiver<Job> = rx.clone();
            let done = done.clone();
            let cache = cache.clone();
            let handle = std::thread::Builder::new()
                .name(format!("unchoke-disk-{i}"))
                .spawn(move || {
                    for job in rx.iter() {
                        done.push(run(job, &cache));
                    }
                })?;
            handles.push(handle);
        }
        let handle = std::thread::Builder::new()
            .name("unchoke-writer".into())
            .spawn(move || write_loop(&write_rx, &*done))?;
        handles.push(handle);
        Ok(DiskPool {
            jobs: Some(tx),
            writes: Some(write_tx),
            threads: handles,
        })
    }

    /// Queues a job.
    pub(crate) fn submit(&self, job: Job) {
        let queue = match job {
            Job::Write { .. } => &self.writes,
            _ => &self.jobs,
        };
        if let Some(tx) = queue {
            // Send fails only when every worker is gone, i.e. during teardown.
            let _ = tx.send(job);
        }
    }

    /// Lets the workers finish what is queued, then joins them.
    pub(crate) fn stop(&mut self) {
        self.jobs = None;
        self.writes = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for DiskPool {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Most block writes merged into one batch.
const MAX_WRITE_BATCH: usize = 512;

/// The writer thread: takes every write queued (up to a batch), merges blocks that follow
/// each other in a piece, and writes each run with one vectored write. Under load the
/// queue fills while a batch is written, so batches grow exactly when it pays.
fn write_loop<W: Wake>(rx: &Receiver<Job>, done: &Handoff<Completion, W>) {
    struct Block {
        torrent: TorrentId,
        storage: Arc<FileStorage>,
        piece: u32,
        offset: u32,
        data: Bytes,
    }
    let mut batch: Vec<Block> = Vec::new();
    while let Ok(first) = rx.recv() {
        for job in std::iter::once(first).chain(rx.try_iter().take(MAX_WRITE_BATCH)) {
            match job {
                Job::Write {
                    torrent,
                    storage,
                    piece,
                    offset,
                    data,
                } => batch.push(Block {
                    torrent,
                    storage,
                    piece,
                    offset,
                    data,
                }),
                other => done.push(run(other, &ReadCache::default())),
            }
        }
        batch.sort_by_key(|b| (b.torrent, b.piece, b.offset));
        let mut i = 0;
        while i < batch.len() {
            let mut j = i + 1;
            let mut end = batch[i].offset as usize + batch[i].data.len();
            while j < batch.len()
                && batch[j].torrent == batch[i].torrent
                && batch[j].piece == batch[i].piece
                && batch[j].offset as usize == end
            {
                end += batch[j].data.len();
                j += 1;
            }
            let run_blocks: Vec<Bytes> = batch[i..j].iter().map(|b| b.data.clone()).collect();
            let result = batch[i]
                .storage
                .write_blocks(batch[i].piece, batch[i].offset, &run_blocks)
                .map_err(|e| describe(&e));
            for b in &batch[i..j] {
                done.push(Completion::Written {
                    torrent: b.torrent,
                    piece: b.piece,
                    len: b.data.len(),
                    result: result.clone(),
                });
            }
            i = j;
        }
        batch.clear();
    }
}

/// Pieces up to this size are read whole for uploads and kept a while: peers ask for a
/// piece's blocks one after another, and one 1 MiB read costs far less than 64 of 16 KiB.
const CACHED_PIECE_MAX: u32 = 4 << 20;
/// Bytes of whole pieces kept for uploads.
const READ_CACHE_BYTES: usize = 16 << 20;

/// Recently read pieces, shared by the disk threads; blocks are served as slices of them
/// (no copy). Bounded by [`READ_CACHE_BYTES`], oldest evicted first.
#[derive(Default)]
pub(crate) struct ReadCache {
    pieces: Mutex<VecDeque<(TorrentId, u32, Bytes)>>,
}

impl ReadCache {
    fn read(
        &self,
        torrent: TorrentId,
        storage: &FileStorage,
        block: BlockRequest,
    ) -> Result<Bytes, String> {
        let piece_len = storage.layout().piece_len(block.index);
        let end = block.begin.checked_add(block.length);
        if piece_len > CACHED_PIECE_MAX || end.is_none_or(|e| e > piece_len) {
            return storage
                .read_block(block.index, block.begin, block.length)
                .map_err(|e| describe(&e));
        }
        let slice = |piece: &Bytes| {
            piece.slice(block.begin as usize..(block.begin + block.length) as usize)
        };
        if let Some(hit) = self
            .lock()
            .iter()
            .find(|(t, p, _)| *t == torrent && *p == block.index)
            .map(|(_, _, data)| slice(data))
        {
            return Ok(hit);
        }
        let data = storage
            .read_block(block.index, 0, piece_len)
            .map_err(|e| describe(&e))?;
        let out = slice(&data);
        let mut pieces = self.lock();
        pieces.push_back((torrent, block.index, data));
        let mut total: usize = pieces.iter().map(|(_, _, d)| d.len()).sum();
        while total > READ_CACHE_BYTES {
            match pieces.pop_front() {
                Some((_, _, d)) => total -= d.len(),
                None => break,
            }
        }
        Ok(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(TorrentId, u32, Bytes)>> {
        // The deque stays valid even if a holder panicked.
        self.pieces.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Carries out one job.
fn run(job: Job, cache: &ReadCache) -> Completion {
    match job {
        Job::Write {
            torrent,
            storage,
            piece,
            offset,
            data,
        } => Completion::Written {
            torrent,
            piece,
            len: data.len(),
            result: storage
                .write_block(piece, offset, &data)
                .map_err(|e| describe(&e)),
        },
        Job::Read {
            conn,
            torrent,
            storage,
            block,
        } => Completion::Read {
            conn,
            block,
            result: cache.read(torrent, &storage, block),
        },
        Job::Verify {
            torrent,
            piece,
            expected,
            blocks,
        } => Completion::Hashed {
            torrent,
            piece,
            ok: sha1_of(&blocks) == expected,
        },
        Job::SaveResume {
            torrent,
            storage,
            path,
            info_hash,
            have,
        } => {
            let data = ResumeData {
                info_hash,
                piece_count: have.len(),
                have,
                files: storage.file_states(),
            };
            Completion::ResumeSaved {
                torrent,
                result: FileStorage::save_resume(&path, &data).map_err(|e| describe(&e)),
            }
        }
    }
}

/// SHA-1 of the concatenation of `blocks`, without concatenating them.
pub(crate) fn sha1_of(blocks: &[Bytes]) -> [u8; 20] {
    let mut h = Sha1::new();
    for b in blocks {
        h.update(b);
    }
    h.finalize().into()
}

/// The storage error as one line, flagged when the disk is full so users see the cause.
fn describe(e: &unchoke_core::storage::StorageError) -> String {
    if e.is_disk_full() {
        format!("disk full: {e}")
    } else {
        e.to_string()
    }
}
