//! The queue from the event loop to the disk threads: a batch of jobs goes in under one
//! lock with at most one wake-up, and idle workers sleep on a condition variable.
//!
//! (A channel that spins before parking — crossbeam's does — cost ~8,000 `sched_yield`s per
//! GiB downloaded: CPU taken from the loop and the hashing on a 2-core machine.)
//!
//! The protocol, which the `loom` model checks: a consumer counts itself in `sleeping`
//! under the lock before it waits (the wait releases the lock atomically), and a producer
//! reads `sleeping` under the same lock after queueing. So a producer either sees the
//! sleeper and notifies it, or the consumer sees the job before it sleeps: no job waits
//! while a worker sleeps, and `close` wakes every sleeper.

use std::collections::VecDeque;

#[cfg(loom)]
use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
use std::sync::{Condvar, Mutex, MutexGuard};

/// A many-producer, many-consumer queue of `T` whose consumers sleep while it is empty.
pub(crate) struct JobQueue<T> {
    state: Mutex<QueueState<T>>,
    ready: Condvar,
}

struct QueueState<T> {
    jobs: VecDeque<T>,
    closed: bool,
    /// Consumers asleep in `pop`: only then is a wake-up (a futex call) worth making.
    sleeping: usize,
}

impl<T> Default for JobQueue<T> {
    fn default() -> Self {
        JobQueue {
            state: Mutex::new(QueueState {
                jobs: VecDeque::new(),
                closed: false,
                sleeping: 0,
            }),
            ready: Condvar::new(),
        }
    }
}

impl<T> JobQueue<T> {
    /// Queues every job of `jobs` with one lock and at most one wake-up. Jobs pushed after
    /// `close` are dropped.
    pub(crate) fn push_all(&self, jobs: &mut Vec<T>) {
        if jobs.is_empty() {
            return;
        }
        let mut s = self.lock();
        if s.closed {
            jobs.clear();
            return;
        }
        let n = jobs.len();
        s.jobs.extend(jobs.drain(..));
        if s.sleeping > 0 {
            if n == 1 {
                self.ready.notify_one();
            } else {
                self.ready.notify_all();
            }
        }
    }

    /// Up to `max` jobs, waiting while there are none; `None` once closed and empty.
    pub(crate) fn pop(&self, max: usize) -> Option<Vec<T>> {
        let mut s = self.lock();
        while s.jobs.is_empty() && !s.closed {
            s.sleeping += 1;
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
            s.sleeping -= 1;
        }
        if s.jobs.is_empty() {
            return None;
        }
        let n = s.jobs.len().min(max);
        Some(s.jobs.drain(..n).collect())
    }

    /// No more jobs: consumers finish what is queued, then `pop` returns `None`.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, QueueState<T>> {
        // The queue stays valid even if a holder panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn workers_take_every_job_once_and_stop_after_close() {
        let q = Arc::new(JobQueue::default());
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Some(batch) = q.pop(2) {
                        assert!(batch.len() <= 2);
                        got.extend(batch);
                    }
                    got
                })
            })
            .collect();
        for chunk in (0..1000).collect::<Vec<u32>>().chunks(7) {
            q.push_all(&mut chunk.to_vec());
        }
        q.close();
        let mut all: Vec<u32> = workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        let mut late = vec![1];
        q.push_all(&mut late);
        assert!(late.is_empty(), "taken and dropped after close");
        assert_eq!(q.pop(1), None);
    }
}

/// The queue under loom: every interleaving of producers, two sleeping workers and the
/// close. A lost wake-up shows as a deadlock, a job lost or taken twice as a failed
/// assertion. Run with `RUSTFLAGS="--cfg loom" cargo test -p unchoke-mio --lib --release loom`.
#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::mpsc::{Receiver, Sender, channel};

    /// A worker that reports every job it takes on `done`, until the queue closes.
    fn worker(q: Arc<JobQueue<u32>>, done: Sender<u32>) -> loom::thread::JoinHandle<()> {
        loom::thread::spawn(move || {
            while let Some(batch) = q.pop(1) {
                for job in batch {
                    let _ = done.send(job);
                }
            }
        })
    }

    /// Waits for `n` jobs to be taken. The queue is still open, so only a wake-up can get a
    /// sleeping worker to them: a lost one leaves every thread blocked, which loom reports
    /// as a deadlock.
    fn taken(done: &Receiver<u32>, n: usize) -> Vec<u32> {
        let mut got: Vec<u32> = (0..n).map(|_| done.recv().expect("a worker")).collect();
        got.sort_unstable();
        got
    }

    #[test]
    fn loom_single_jobs_reach_one_of_two_sleeping_workers() {
        // One job per push: `notify_one`, while either worker may or may not be asleep.
        // Bounded to three preemptions, so the model runs in a second instead of minutes;
        // that bound still finds the deadlock of a dropped `notify_one` (checked by removing
        // it).
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let q = Arc::new(JobQueue::default());
            let (tx, rx) = channel();
            let workers = [worker(q.clone(), tx.clone()), worker(q.clone(), tx)];
            q.push_all(&mut vec![1]);
            q.push_all(&mut vec![2]);
            assert_eq!(taken(&rx, 2), [1, 2]);
            q.close();
            for w in workers {
                w.join().expect("worker ends after close");
            }
        });
    }

    #[test]
    fn loom_a_batch_and_a_concurrent_producer_lose_nothing() {
        // A batch (`notify_all`) from one thread, a single job from another, one worker.
        loom::model(|| {
            let q = Arc::new(JobQueue::default());
            let (tx, rx) = channel();
            let w = worker(q.clone(), tx);
            let producer = {
                let q = q.clone();
                loom::thread::spawn(move || q.push_all(&mut vec![3]))
            };
            q.push_all(&mut vec![1, 2]);
            producer.join().expect("producer");
            assert_eq!(taken(&rx, 3), [1, 2, 3]);
            q.close();
            w.join().expect("worker ends after close");
        });
    }
}
