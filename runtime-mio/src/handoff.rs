//! Completions from worker threads to the event loop: a queue plus a "wake pending" flag so
//! that a burst of completions costs one `Waker::wake` (one `eventfd` write), not one each.
//!
//! The protocol, which the `loom` model checks:
//! - a worker pushes its item, *then* sets the flag; only the worker that flips it from
//!   false to true wakes the loop;
//! - the loop clears the flag, *then* drains the queue.
//!
//! So an item pushed before the loop cleared the flag is seen by that drain, and an item
//! pushed after it finds the flag clear and wakes the loop again: no item waits forever.

use std::collections::VecDeque;

#[cfg(loom)]
use loom::sync::{Mutex, atomic::AtomicBool, atomic::Ordering};
#[cfg(not(loom))]
use std::sync::{Mutex, atomic::AtomicBool, atomic::Ordering};

/// Something that wakes the consumer (a `mio::Waker` in the driver, a counter in tests).
pub(crate) trait Wake {
    /// Wake the consumer; must be cheap to call spuriously.
    fn wake(&self);
}

/// A many-producer, one-consumer queue whose consumer sleeps in `poll`.
#[derive(Debug)]
pub(crate) struct Handoff<T, W> {
    queue: Mutex<VecDeque<T>>,
    wake_pending: AtomicBool,
    waker: W,
}

impl<T, W: Wake> Handoff<T, W> {
    /// An empty hand-off that wakes its consumer through `waker`.
    pub(crate) fn new(waker: W) -> Self {
        Handoff {
            queue: Mutex::new(VecDeque::new()),
            wake_pending: AtomicBool::new(false),
            waker,
        }
    }

    /// Producer side: queue `item` and make sure the consumer will look.
    pub(crate) fn push(&self, item: T) {
        lock(&self.queue).push_back(item);
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            self.waker.wake();
        }
    }

    /// Producer side: queue every item of `items` under one lock, with at most one wake-up
    /// (the same protocol as [`Handoff::push`]: items first, then the flag).
    pub(crate) fn push_all(&self, items: &mut Vec<T>) {
        if items.is_empty() {
            return;
        }
        lock(&self.queue).extend(items.drain(..));
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            self.waker.wake();
        }
    }

    /// Consumer side: everything queued so far, oldest first.
    pub(crate) fn drain(&self, into: &mut VecDeque<T>) {
        self.wake_pending.store(false, Ordering::SeqCst);
        let mut queue = lock(&self.queue);
        if into.is_empty() {
            std::mem::swap(into, &mut *queue);
        } else {
            into.extend(queue.drain(..));
        }
    }
}

/// A poisoned lock only means another thread panicked while pushing; the queue itself is
/// still a valid `VecDeque`, so keep going rather than cascade the panic.
fn lock<T>(m: &Mutex<T>) -> impl std::ops::DerefMut<Target = T> + '_ {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);
    impl Wake for Arc<CountingWaker> {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_burst_costs_one_wake_and_a_drain_rearms_it() {
        let waker = Arc::new(CountingWaker::default());
        let h = Handoff::new(waker.clone());
        for i in 0..10 {
            h.push(i);
        }
        assert_eq!(waker.0.load(Ordering::SeqCst), 1);
        let mut out = VecDeque::new();
        h.drain(&mut out);
        assert_eq!(out, (0..10).collect::<VecDeque<_>>());
        h.push(10);
        assert_eq!(waker.0.load(Ordering::SeqCst), 2);
        h.drain(&mut out);
        assert_eq!(out.back(), Some(&10));
        let mut batch = vec![11, 12, 13];
        h.push_all(&mut batch);
        assert!(batch.is_empty());
        assert_eq!(waker.0.load(Ordering::SeqCst), 3, "a batch costs one wake");
        h.push_all(&mut batch);
        assert_eq!(
            waker.0.load(Ordering::SeqCst),
            3,
            "an empty batch wakes nobody"
        );
        h.drain(&mut out);
        assert_eq!(
            out.iter().rev().take(3).copied().collect::<Vec<_>>(),
            [13, 12, 11]
        );
    }

    #[test]
    fn items_from_many_threads_all_arrive() {
        let waker = Arc::new(CountingWaker::default());
        let h = Arc::new(Handoff::new(waker.clone()));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        h.push(t * 1000 + i);
                    }
                })
            })
            .collect();
        let mut got = VecDeque::new();
        for t in threads {
            t.join().unwrap();
        }
        h.drain(&mut got);
        let mut v: Vec<_> = got.into_iter().collect();
        v.sort_unstable();
        assert_eq!(v, (0..4000).collect::<Vec<_>>());
        assert!(waker.0.load(Ordering::SeqCst) >= 1);
    }
}

/// The hand-off under loom: every interleaving of two producers and the consumer. A lost
/// wake-up shows as a deadlock (the consumer waits for a wake that never comes), an item
/// lost or duplicated as a failed assertion. Run with
/// `RUSTFLAGS="--cfg loom" cargo test -p unchoke-mio --lib --release loom`.
#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::Notify;

    struct NotifyWaker(Arc<Notify>);
    impl Wake for NotifyWaker {
        fn wake(&self) {
            self.0.notify();
        }
    }

    #[test]
    fn loom_no_item_waits_forever() {
        loom::model(|| {
            let notify = Arc::new(Notify::new());
            let h = Arc::new(Handoff::new(NotifyWaker(notify.clone())));
            let producers: Vec<_> = (0..2)
                .map(|p| {
                    let h = h.clone();
                    loom::thread::spawn(move || h.push(p))
                })
                .collect();
            let mut got = VecDeque::new();
            loop {
                h.drain(&mut got);
                if got.len() == 2 {
                    break;
                }
                // Sleep like the event loop in `poll`, until a producer wakes us.
                notify.wait();
            }
            for p in producers {
                p.join().unwrap();
            }
            let mut v: Vec<_> = got.into_iter().collect();
            v.sort_unstable();
            assert_eq!(v, [0, 1]);
        });
    }
}
