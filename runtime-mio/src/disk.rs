//! The worker pool: disk writes, disk reads, SHA-1 checks and resume saves run here, off
//! the event-loop thread, and their results go back through the [`Handoff`].

use std::path::PathBuf;
use std::sync::Arc;
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
    threads: Vec<JoinHandle<()>>,
}

impl DiskPool {
    /// Starts `threads` workers that report to `done`.
    pub(crate) fn start<W: Wake + Send + Sync + 'static>(
        threads: usize,
        done: Arc<Handoff<Completion, W>>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads.max(1) {
            let rx: Receiver<Job> = rx.clone();
            let done = done.clone();
            let handle = std::thread::Builder::new()
                .name(format!("unchoke-disk-{i}"))
                .spawn(move || {
                    for job in rx.iter() {
                        done.push(run(job));
                    }
                })?;
            handles.push(handle);
        }
        Ok(DiskPool {
            jobs: Some(tx),
            threads: handles,
        })
    }

    /// Queues a job.
    pub(crate) fn submit(&self, job: Job) {
        if let Some(tx) = &self.jobs {
            // Send fails only when every worker is gone, i.e. during teardown.
            let _ = tx.send(job);
        }
    }

    /// Lets the workers finish what is queued, then joins them.
    pub(crate) fn stop(&mut self) {
        self.jobs = None;
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

/// Carries out one job.
fn run(job: Job) -> Completion {
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
            storage,
            block,
        } => Completion::Read {
            conn,
            block,
            result: storage
                .read_block(block.index, block.begin, block.length)
                .map_err(|e| describe(&e)),
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
