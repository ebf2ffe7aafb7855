//! The worker threads of the mio driver: reads, hashing and resume saves on a small pool,
//! block writes on one writer thread that merges neighbours; every result goes back to the
//! event loop through the [`Handoff`]. What a job does is shared with the smol driver
//! (`unchoke_driver::disk`).

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use unchoke_driver::disk::{Completion, Job, ReadCache, run, write_merged};

use crate::handoff::{Handoff, Wake};

/// Most block writes merged into one batch.
const MAX_WRITE_BATCH: usize = 512;

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

/// The writer thread: takes every write queued (up to a batch) and writes it merged.
/// Under load the queue fills while a batch is written, so batches grow exactly when it
/// pays.
fn write_loop<W: Wake>(rx: &Receiver<Job>, done: &Handoff<Completion, W>) {
    let cache = ReadCache::default();
    while let Ok(first) = rx.recv() {
        let batch: Vec<Job> = std::iter::once(first)
            .chain(rx.try_iter().take(MAX_WRITE_BATCH))
            .collect();
        write_merged(batch, &cache, |c| done.push(c));
    }
}
