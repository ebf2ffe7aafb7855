//! The worker threads of the mio driver: reads, hashing and resume saves on a small pool,
//! block writes on one writer thread that merges neighbours; every result goes back to the
//! event loop through the [`Handoff`]. What a job does is shared with the smol driver
//! (`unchoke_driver::disk`).

use std::sync::Arc;
use std::thread::JoinHandle;

use unchoke_driver::disk::{Completion, Job, ReadCache, run, write_merged};

use crate::handoff::{Handoff, Wake};
use crate::job_queue::JobQueue;

/// Most block writes merged into one batch.
const MAX_WRITE_BATCH: usize = 512;

/// The pool: closing its queues ends the threads once they are empty.
pub(crate) struct DiskPool {
    /// Jobs submitted during the current round of actions, handed over by `flush`.
    pending_jobs: Vec<Job>,
    pending_writes: Vec<Job>,
    jobs: Arc<JobQueue<Job>>,
    /// Block writes go to one thread of their own: writers to one file serialise on its
    /// inode lock anyway, and one thread can merge neighbouring blocks into one `pwritev`
    /// (on this kind of VM a 16 KiB buffered write costs ~3 µs of kernel time per KiB,
    /// a 1 MiB one ~0.5).
    writes: Arc<JobQueue<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl DiskPool {
    /// Starts `threads` workers for reads, hashing and resume saves, plus one writer thread
    /// for block writes, all reporting to `done`.
    pub(crate) fn start<W: Wake + Send + Sync + 'static>(
        threads: usize,
        done: Arc<Handoff<Completion, W>>,
    ) -> std::io::Result<Self> {
        let jobs = Arc::new(JobQueue::default());
        let writes = Arc::new(JobQueue::default());
        let mut handles = Vec::with_capacity(threads + 1);
        let cache = Arc::new(ReadCache::default());
        for i in 0..threads.max(1) {
            let queue = jobs.clone();
            let done = done.clone();
            let cache = cache.clone();
            let handle = std::thread::Builder::new()
                .name(format!("unchoke-disk-{i}"))
                .spawn(move || {
                    while let Some(batch) = queue.pop(1) {
                        for job in batch {
                            done.push(run(job, &cache));
                        }
                    }
                })?;
            handles.push(handle);
        }
        let queue = writes.clone();
        let handle = std::thread::Builder::new()
            .name("unchoke-writer".into())
            .spawn(move || write_loop(&queue, &*done))?;
        handles.push(handle);
        Ok(DiskPool {
            pending_jobs: Vec::new(),
            pending_writes: Vec::new(),
            jobs,
            writes,
            threads: handles,
        })
    }

    /// Queues a job; it reaches the threads at the next [`DiskPool::flush`].
    pub(crate) fn submit(&mut self, job: Job) {
        match job {
            Job::Write { .. } => self.pending_writes.push(job),
            _ => self.pending_jobs.push(job),
        }
    }

    /// Hands the jobs submitted since the last call to the threads: one lock and at most
    /// one wake-up per queue, however many blocks one round of actions produced. After
    /// `stop`, jobs are dropped: the session is not waiting any more.
    pub(crate) fn flush(&mut self) {
        self.writes.push_all(&mut self.pending_writes);
        self.jobs.push_all(&mut self.pending_jobs);
    }

    /// Lets the workers finish what is queued, then joins them.
    pub(crate) fn stop(&mut self) {
        self.flush();
        self.jobs.close();
        self.writes.close();
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
/// pays. A batch's completions go back together: one lock and at most one wake-up.
fn write_loop<W: Wake>(queue: &JobQueue<Job>, done: &Handoff<Completion, W>) {
    let cache = ReadCache::default();
    let mut completions = Vec::new();
    while let Some(batch) = queue.pop(MAX_WRITE_BATCH) {
        write_merged(batch, &cache, |c| completions.push(c));
        done.push_all(&mut completions);
    }
}
