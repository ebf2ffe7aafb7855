//! A packet-level network for transport tests: every datagram queues on its sender's
//! uplink, is serialised at the uplink's rate, may be dropped when the uplink's buffer is
//! full (drop-tail) or lost at random, and arrives after the path's delay, some of them
//! late enough to be reordered.
//!
//! The swarm simulator's network (`network`) is fluid: it shares capacities between flows
//! and never sees a packet. A transport (uTP's LEDBAT, a TCP-like flow) needs what a fluid
//! model hides — the queue that builds at a bottleneck, the delay that queue adds, the
//! drops when it overflows — so it runs over this model instead. Time is the caller's
//! virtual [`Instant`]; the caller jumps to [`DatagramNet::next_at`] and takes what
//! arrived with [`DatagramNet::pop_due`], so a run is exact and deterministic: same seed,
//! same sends ⇒ same deliveries.
//!
//! The model, and what it leaves out:
//! - A node's uplink is a FIFO of capacity `rate` bytes per second. Its backlog at a
//!   moment is what is still to be serialised; a datagram that would push the backlog past
//!   `buffer` bytes is dropped (drop-tail, as a home router does). Downlinks are not
//!   modelled: receivers are never the bottleneck here.
//! - IP and UDP headers are not counted: a datagram costs its own length.
//! - Random loss is decided before queueing (a lost datagram takes no link time), and
//!   reordering is a random extra delay of up to `jitter` for a share of the datagrams.
//! - Every path has the same one-way `delay`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use unchoke_core::time::Instant;

/// One node's uplink: its rate and buffer, and when it is free again.
#[derive(Clone, Debug)]
pub struct Uplink {
    /// Bytes per second.
    pub rate: u64,
    /// The most bytes waiting to be serialised; `None`: unbounded (no drops).
    pub buffer: Option<usize>,
    /// When the last queued datagram has left the uplink, in µs.
    free_at: u64,
}

impl Uplink {
    /// An uplink of `rate` bytes per second holding at most `buffer` bytes (`None`:
    /// unbounded).
    pub fn new(rate: u64, buffer: Option<usize>) -> Uplink {
        Uplink {
            rate: rate.max(1),
            buffer,
            free_at: 0,
        }
    }

    /// Bytes still to be serialised at `now`.
    fn backlog(&self, now: u64) -> u64 {
        self.free_at.saturating_sub(now).saturating_mul(self.rate) / 1_000_000
    }
}

/// What became of one datagram handed to [`DatagramNet::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Queued; it arrives at this instant.
    Arrives(Instant),
    /// Lost at random (or in a black hole).
    Lost,
    /// Dropped: the sender's uplink buffer was full.
    Dropped,
}

/// A datagram that arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// When it arrived.
    pub at: Instant,
    /// The sending node.
    pub from: usize,
    /// The receiving node.
    pub to: usize,
    /// The caller's tag (a flow or port pair: the network does not read it).
    pub tag: usize,
    /// The datagram.
    pub bytes: Vec<u8>,
}

/// Counters of one node's uplink.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UplinkStats {
    /// Datagrams queued.
    pub sent: u64,
    /// Bytes queued.
    pub sent_bytes: u64,
    /// Datagrams dropped because the buffer was full.
    pub dropped: u64,
    /// Datagrams lost at random.
    pub lost: u64,
    /// The longest any datagram waited in the queue before its serialisation began.
    pub max_queue_delay: Duration,
}

/// The network: nodes with uplinks, datagrams in flight in arrival order.
#[derive(Debug)]
pub struct DatagramNet {
    rng: fastrand::Rng,
    uplinks: Vec<Uplink>,
    stats: Vec<UplinkStats>,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// One-way delay of every path.
    pub delay: Duration,
    /// Up to this much extra delay for the reordered share.
    pub jitter: Duration,
    /// Share of the datagrams given a random extra delay (they may overtake none, but
    /// later ones overtake them).
    pub reorder: f64,
    /// Until then every datagram sent is lost (a peer gone silent).
    pub black_hole_until: Option<Instant>,
    /// (arrival µs, order sent) → the delivery; the order keeps ties first-sent-first.
    in_flight: BinaryHeap<Reverse<(u64, u64, Slot)>>,
    order: u64,
}

/// A delivery waiting in the heap (ordered only by the heap's key before it).
#[derive(Debug, PartialEq, Eq)]
struct Slot(usize, usize, usize, Vec<u8>);

impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Slot {
    /// Never decides: the (arrival, order) pair before it is unique.
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl DatagramNet {
    /// A network of `uplinks.len()` nodes with `delay` on every path, no loss, no
    /// reordering; `seed` drives loss and reordering.
    pub fn new(seed: u64, uplinks: Vec<Uplink>, delay: Duration) -> DatagramNet {
        let stats = vec![UplinkStats::default(); uplinks.len()];
        DatagramNet {
            rng: fastrand::Rng::with_seed(seed),
            uplinks,
            stats,
            loss: 0.0,
            delay,
            jitter: Duration::ZERO,
            reorder: 0.0,
            black_hole_until: None,
            in_flight: BinaryHeap::new(),
            order: 0,
        }
    }

    /// Sends `bytes` from `from` to `to` at `now`. Out-of-range nodes lose the datagram.
    pub fn send(
        &mut self,
        now: Instant,
        from: usize,
        to: usize,
        tag: usize,
        bytes: Vec<u8>,
    ) -> Fate {
        if from >= self.uplinks.len() || to >= self.uplinks.len() {
            return Fate::Lost;
        }
        if self.black_hole_until.is_some_and(|t| now < t) || self.rng.f64() < self.loss {
            self.stats[from].lost += 1;
            return Fate::Lost;
        }
        let now_us = now.as_micros();
        let link = &mut self.uplinks[from];
        let len = bytes.len() as u64;
        if let Some(buffer) = link.buffer
            && link.backlog(now_us) + len > buffer as u64
        {
            self.stats[from].dropped += 1;
            return Fate::Dropped;
        }
        let start = link.free_at.max(now_us);
        link.free_at = start + len.saturating_mul(1_000_000) / link.rate;
        let stats = &mut self.stats[from];
        stats.sent += 1;
        stats.sent_bytes += len;
        stats.max_queue_delay = stats
            .max_queue_delay
            .max(Duration::from_micros(start - now_us));
        let extra = if self.jitter.is_zero() || self.rng.f64() >= self.reorder {
            Duration::ZERO
        } else {
            let max = u64::try_from(self.jitter.as_micros()).unwrap_or(u64::MAX);
            Duration::from_micros(self.rng.u64(0..max))
        };
        let at = Instant::from_micros(link.free_at) + self.delay + extra;
        self.order += 1;
        self.in_flight.push(Reverse((
            at.as_micros(),
            self.order,
            Slot(from, to, tag, bytes),
        )));
        Fate::Arrives(at)
    }

    /// When the next datagram arrives, if any is in flight.
    pub fn next_at(&self) -> Option<Instant> {
        self.in_flight
            .peek()
            .map(|Reverse((at, ..))| Instant::from_micros(*at))
    }

    /// The next datagram that has arrived by `now`, in arrival order.
    pub fn pop_due(&mut self, now: Instant) -> Option<Delivery> {
        if self.next_at()? > now {
            return None;
        }
        let Reverse((at, _, Slot(from, to, tag, bytes))) = self.in_flight.pop()?;
        Some(Delivery {
            at: Instant::from_micros(at),
            from,
            to,
            tag,
            bytes,
        })
    }

    /// How long a datagram sent by `node` at `now` would wait before its serialisation
    /// begins: the queuing delay its uplink adds right now.
    pub fn queue_delay(&self, node: usize, now: Instant) -> Duration {
        self.uplinks.get(node).map_or(Duration::ZERO, |l| {
            Duration::from_micros(l.free_at.saturating_sub(now.as_micros()))
        })
    }

    /// The counters of `node`'s uplink.
    pub fn stats(&self, node: usize) -> Option<&UplinkStats> {
        self.stats.get(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(buffer: Option<usize>) -> DatagramNet {
        // 1,000 bytes per ms, 10 ms each way.
        DatagramNet::new(
            1,
            vec![Uplink::new(1_000_000, buffer), Uplink::new(1_000_000, None)],
            Duration::from_millis(10),
        )
    }

    #[test]
    fn datagrams_are_serialised_then_delayed_in_order() {
        let mut n = net(None);
        let t = Instant::from_secs(1);
        assert_eq!(
            n.send(t, 0, 1, 7, vec![0; 1000]),
            Fate::Arrives(t + Duration::from_millis(11))
        );
        assert_eq!(
            n.send(t, 0, 1, 7, vec![1; 1000]),
            Fate::Arrives(t + Duration::from_millis(12))
        );
        assert_eq!(n.queue_delay(0, t), Duration::from_millis(2));
        assert_eq!(n.next_at(), Some(t + Duration::from_millis(11)));
        assert_eq!(n.pop_due(t + Duration::from_millis(10)), None);
        let first = n.pop_due(t + Duration::from_millis(12)).expect("first");
        assert_eq!(
            (first.from, first.to, first.tag, first.bytes[0]),
            (0, 1, 7, 0)
        );
        assert_eq!(
            n.pop_due(t + Duration::from_millis(12))
                .expect("second")
                .bytes[0],
            1
        );
        assert_eq!(n.next_at(), None);
    }

    #[test]
    fn a_full_buffer_drops_the_tail_and_drains_at_the_rate() {
        let mut n = net(Some(3000));
        let t = Instant::from_secs(1);
        for _ in 0..3 {
            assert!(matches!(
                n.send(t, 0, 1, 0, vec![0; 1000]),
                Fate::Arrives(_)
            ));
        }
        assert_eq!(n.send(t, 0, 1, 0, vec![0; 1000]), Fate::Dropped);
        // One ms later one datagram has left: room for exactly one more.
        let later = t + Duration::from_millis(1);
        assert!(matches!(
            n.send(later, 0, 1, 0, vec![0; 1000]),
            Fate::Arrives(_)
        ));
        assert_eq!(n.send(later, 0, 1, 0, vec![0; 1000]), Fate::Dropped);
        let s = n.stats(0).expect("node 0");
        assert_eq!((s.sent, s.dropped), (4, 2));
        assert_eq!(s.max_queue_delay, Duration::from_millis(2));
    }

    #[test]
    fn loss_and_reordering_follow_the_seed() {
        let run = || {
            let mut n = net(None);
            n.loss = 0.2;
            n.reorder = 0.3;
            n.jitter = Duration::from_millis(20);
            let t = Instant::from_secs(1);
            for i in 0..200u8 {
                n.send(t, 0, 1, 0, vec![i]);
            }
            let mut got = Vec::new();
            while let Some(d) = n.pop_due(Instant::from_secs(5)) {
                got.push(d.bytes[0]);
            }
            got
        };
        let a = run();
        assert_eq!(a, run(), "same seed, same deliveries");
        assert!(
            (140..=180).contains(&a.len()),
            "about 20 % lost: {} arrived",
            a.len()
        );
        assert!(
            a.windows(2).any(|w| w[0] > w[1]),
            "some arrive out of order"
        );
    }
}
