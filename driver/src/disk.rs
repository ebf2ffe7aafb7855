//! Disk work a driver runs off its event loop: block writes (neighbouring blocks merged
//! into one vectored write), block reads for uploads (whole pieces read once and kept in a
//! small cache), piece checks (SHA-1, v2 merkle roots) of pieces held in memory, and resume saves. Each job turns
//! into one [`Completion`] per core request, for the driver to feed back to the session.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use unchoke_core::InfoHash;
use unchoke_core::bitfield::Bitfield;
use unchoke_core::embed::verify_piece;
use unchoke_core::session::{ConnId, DiskError, PieceHash, TorrentId};
use unchoke_core::tracker::AnnounceResponse;
use unchoke_core::wire::BlockRequest;
use unchoke_storage::FileStorage;

/// Work for a disk thread.
#[allow(missing_docs)] // the fields are the core action's fields
#[derive(Debug)]
pub enum Job {
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
        expected: PieceHash,
        blocks: Vec<Bytes>,
    },
    /// Set up a magnet torrent's storage once its metadata is known: check what is on
    /// disk and make the save directory ([`crate::prepare_torrent`]; files come with the
    /// writes).
    Prepare {
        torrent: TorrentId,
        add: Box<crate::AddTorrent>,
        config: Box<crate::ClientConfig>,
    },
    /// Recheck a torrent's data ([`crate::ClientCore::recheck`]): with `move_from`, first
    /// move its `files` from there to `add.save_path` ([`unchoke_storage::relocate`]; on a
    /// failure they stay at, or go back to, `move_from`, which is then checked), then
    /// check and open its storage ([`crate::prepare_torrent`]).
    Recheck {
        torrent: TorrentId,
        add: Box<crate::AddTorrent>,
        config: Box<crate::ClientConfig>,
        move_from: Option<PathBuf>,
        files: Vec<PathBuf>,
    },
    /// Write the resume file (file states are read here, after the pieces in `have` were
    /// written, so a later write to a file shows up as a changed time on restart).
    SaveResume {
        torrent: TorrentId,
        storage: Arc<FileStorage>,
        path: PathBuf,
        info_hash: InfoHash,
        have: Bitfield,
        /// Pieces that may hold data (`Session::pieces_written`).
        written: Option<Bitfield>,
    },
}

/// What a finished [`Job`] reports.
#[allow(missing_docs)] // the fields are what the session's `*_done` calls take
#[derive(Debug)]
pub enum Completion {
    Written {
        torrent: TorrentId,
        piece: u32,
        len: usize,
        result: Result<(), DiskError>,
    },
    Read {
        conn: ConnId,
        block: BlockRequest,
        result: Result<Bytes, DiskError>,
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
    Prepared {
        torrent: TorrentId,
        metainfo: Box<unchoke_core::metainfo::Metainfo>,
        result: Result<Box<crate::PreparedTorrent>, String>,
    },
    Rechecked {
        torrent: TorrentId,
        save_path: PathBuf,
        moved: Result<(), String>,
        result: Result<Box<crate::PreparedTorrent>, String>,
    },
    /// Not disk work: a tracker announce ([`crate::announce::AnnounceJob`]) comes back to
    /// the loop the same way.
    Announced {
        torrent: TorrentId,
        url: String,
        /// It was started during shutdown (shutdown waits for it, briefly).
        during_shutdown: bool,
        result: Result<AnnounceResponse, unchoke_core::tracker::TrackerFailure>,
    },
    /// Not disk work either: a web seed's byte ranges ([`crate::web_seed::WebSeedJob`]).
    WebSeed {
        torrent: TorrentId,
        seed: unchoke_core::session::WebSeedId,
        request: u64,
        result: Result<Bytes, unchoke_core::session::WebSeedError>,
    },
    /// Not disk work either: a UDP tracker's name, resolved for the session.
    Resolved {
        host: String,
        port: u16,
        result: Result<Vec<std::net::SocketAddr>, unchoke_core::tracker::ResolveError>,
    },
}

/// Writes a batch of `Write` jobs, merging blocks that follow each other in a piece into
/// one vectored write (one `pwritev` instead of one `pwrite` per 16 KiB block), and
/// reports one completion per block. Other jobs in the batch are run one by one.
pub fn write_merged(jobs: Vec<Job>, cache: &ReadCache, mut done: impl FnMut(Completion)) {
    struct Block {
        torrent: TorrentId,
        storage: Arc<FileStorage>,
        piece: u32,
        offset: u32,
        data: Bytes,
    }
    let mut batch: Vec<Block> = Vec::with_capacity(jobs.len());
    for job in jobs {
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
            other => done(run(other, cache)),
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
            .map_err(|e| e.to_disk_error());
        for b in &batch[i..j] {
            done(Completion::Written {
                torrent: b.torrent,
                piece: b.piece,
                len: b.data.len(),
                result: result.clone(),
            });
        }
        i = j;
    }
}

/// Pieces up to this size are read whole for uploads and kept a while: peers ask for a
/// piece's blocks one after another, and one 1 MiB read costs far less than 64 of 16 KiB.
const CACHED_PIECE_MAX: u32 = 4 << 20;
/// Bytes of whole pieces kept for uploads.
const READ_CACHE_BYTES: usize = 16 << 20;

/// Evicted piece buffers kept for the next reads: a fresh buffer would be zero-filled and
/// page-faulted in before the read overwrites it (~12 % of a seed's CPU at 1 GiB/s).
const SPARE_BUFFERS: usize = 4;

/// Recently read pieces, shared by the disk threads; blocks are served as slices of them
/// (no copy). Bounded to 16 MiB, oldest evicted first. An evicted piece whose blocks have
/// all been sent (no slice of it is alive any more) is kept, up to `SPARE_BUFFERS` of them, as
/// the buffer of a later read.
#[derive(Default)]
pub struct ReadCache {
    pieces: Mutex<VecDeque<(TorrentId, u32, Bytes)>>,
    spare: Mutex<Vec<BytesMut>>,
}

impl ReadCache {
    pub(crate) fn read(
        &self,
        torrent: TorrentId,
        storage: &FileStorage,
        block: BlockRequest,
    ) -> Result<Bytes, DiskError> {
        let piece_len = storage.layout().piece_len(block.index);
        let end = block.begin.checked_add(block.length);
        if piece_len > CACHED_PIECE_MAX || end.is_none_or(|e| e > piece_len) {
            return storage
                .read_block(block.index, block.begin, block.length)
                .map_err(|e| e.to_disk_error());
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
        let mut buf = self.buffer(piece_len as usize);
        storage
            .read_block_into(block.index, 0, &mut buf)
            .map_err(|e| e.to_disk_error())?;
        let data = buf.freeze();
        let out = slice(&data);
        let mut evicted = Vec::new();
        {
            let mut pieces = self.lock();
            pieces.push_back((torrent, block.index, data));
            let mut total: usize = pieces.iter().map(|(_, _, d)| d.len()).sum();
            while total > READ_CACHE_BYTES {
                match pieces.pop_front() {
                    Some((_, _, d)) => {
                        total -= d.len();
                        evicted.push(d);
                    }
                    None => break,
                }
            }
        }
        self.keep_spare(evicted);
        Ok(out)
    }

    /// A buffer of exactly `len` initialised bytes: a spare one when there is one (its
    /// old contents are overwritten by the read), else a fresh zeroed one.
    fn buffer(&self, len: usize) -> BytesMut {
        let reused = {
            let mut spare = lock(&self.spare);
            let fit = spare.iter().position(|b| b.capacity() >= len);
            fit.map(|i| spare.swap_remove(i))
        };
        match reused {
            Some(mut b) if b.len() >= len => {
                b.truncate(len);
                b
            }
            // Only the bytes past the old length are zeroed.
            Some(mut b) => {
                b.resize(len, 0);
                b
            }
            None => BytesMut::zeroed(len),
        }
    }

    /// Keeps evicted pieces no one else holds, as buffers for later reads.
    fn keep_spare(&self, evicted: Vec<Bytes>) {
        let mut spare = lock(&self.spare);
        for piece in evicted {
            if spare.len() >= SPARE_BUFFERS {
                break;
            }
            // `try_into_mut` succeeds only when no slice of the piece is still queued for
            // a peer: a buffer is never written while its bytes may still be sent.
            if let Ok(b) = piece.try_into_mut() {
                spare.push(b);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(TorrentId, u32, Bytes)>> {
        lock(&self.pieces)
    }
}

/// The data stays valid even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Carries out one job (a `Write` alone; see [`write_merged`] for batches).
pub fn run(job: Job, cache: &ReadCache) -> Completion {
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
                .map_err(|e| e.to_disk_error()),
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
            ok: verify_piece(&blocks, &expected),
        },
        Job::Prepare {
            torrent,
            add,
            config,
        } => Completion::Prepared {
            torrent,
            result: crate::prepare_torrent(&config, &add, &|_| {})
                .map(Box::new)
                .map_err(|e| e.to_string()),
            metainfo: Box::new(add.metainfo),
        },
        Job::Recheck {
            torrent,
            mut add,
            config,
            move_from,
            files,
        } => {
            let mut moved = Ok(());
            if let Some(from) = move_from {
                if let Err(e) = unchoke_storage::relocate(&files, &from, &add.save_path) {
                    moved = Err(e.to_string());
                    add.save_path = from;
                    add.resume_path = None;
                }
            }
            Completion::Rechecked {
                torrent,
                result: crate::prepare_torrent(&config, &add, &|_| {})
                    .map(Box::new)
                    .map_err(|e| e.to_string()),
                save_path: add.save_path,
                moved,
            }
        }
        Job::SaveResume {
            torrent,
            storage,
            path,
            info_hash,
            have,
            written,
        } => {
            // Complete: the files no write created (zero-length ones) are made now, so the
            // finished tree is exact and the resume data records them.
            if have.is_full() {
                if let Err(e) = storage.create_files() {
                    return Completion::ResumeSaved {
                        torrent,
                        result: Err(describe(&e)),
                    };
                }
            }
            // The data first, then the record of it: resume data is trusted on restart by
            // the files' sizes and times alone, so a save must never claim pieces whose
            // bytes a power loss could still take back (the core's contract for
            // `SaveResume`: flush the files, then write the resume data). A failed sync
            // fails the save; the session tries again next round.
            if let Err(e) = storage.flush() {
                return Completion::ResumeSaved {
                    torrent,
                    result: Err(describe(&e)),
                };
            }
            let data = storage.resume_data(info_hash, have, written);
            Completion::ResumeSaved {
                torrent,
                result: FileStorage::save_resume(&path, &data).map_err(|e| describe(&e)),
            }
        }
    }
}

/// The storage error as one line, worded as the session's [`DiskError`] is (flagged when
/// the disk is full so users see the cause), for reports that do not go to the session.
fn describe(e: &unchoke_storage::StorageError) -> String {
    e.to_disk_error().to_string()
}
