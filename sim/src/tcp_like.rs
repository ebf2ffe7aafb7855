//! A TCP-like bulk flow over [`crate::datagram::DatagramNet`]: the loss-based congestion
//! control uTP's LEDBAT must yield to.
//!
//! It is TCP's window logic, not a TCP: segments of [`MSS`] bytes numbered 0, 1, 2… with
//! cumulative acknowledgements and selective ones, and no byte stream, handshake, receive
//! window or delayed ACKs. What it keeps is what decides how a flow shares a drop-tail
//! bottleneck, as Linux does it: slow start from 10 segments (RFC 6928), +1 segment per
//! round trip, SACK-based loss recovery (RFC 6675: a hole with three selectively
//! acknowledged segments above it is lost; what is sent is bounded by the `pipe`
//! estimate), the window halved once per loss episode (Reno's β = ½, not CUBIC's 0.7), and
//! RFC 6298's time-out with Linux's 200 ms floor. Without selective acknowledgements a
//! slow-start overshoot of hundreds of segments takes NewReno one round trip per hole —
//! tens of seconds — which no real competing flow suffers.
//!
//! Wire format: a segment is `b'D'`, its number (u32, big-endian) and [`MSS`] bytes of
//! padding; an acknowledgement is `b'A'`, the next segment number the receiver expects,
//! then up to [`MAX_SACK_BLOCKS`] ranges `[start, end)` of segments held above it, the
//! one holding the segment just received first (as TCP orders them).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use unchoke_core::time::Instant;
use unchoke_core::utp::rtt::RttEstimator;

/// Payload bytes per segment (a 1,500-byte Ethernet frame less IPv4 and TCP headers with
/// timestamps).
pub const MSS: usize = 1448;

/// SACK blocks per acknowledgement (TCP fits 3 with timestamps, 4 without).
pub const MAX_SACK_BLOCKS: usize = 4;

/// The receiver keeps at most this many out-of-order ranges (only a bound on memory).
const MAX_RANGES: usize = 1 << 12;

/// RFC 6298's floor is 1 s; Linux uses 200 ms, which is what a real competing flow does.
const MIN_RTO: Duration = Duration::from_millis(200);
const MAX_RTO: Duration = Duration::from_secs(60);

/// Selectively acknowledged segments that make a hole below them lost (RFC 6675).
const DUP_THRESH: usize = 3;

fn segment(n: u32) -> Vec<u8> {
    let mut d = vec![0u8; 5 + MSS];
    d[0] = b'D';
    d[1..5].copy_from_slice(&n.to_be_bytes());
    d
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = d.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// The sending side: sends while `active`, as fast as its window lets it.
#[derive(Debug)]
pub struct TcpLikeSender {
    /// Whether the application still has data: a stopped flow sends nothing new (it still
    /// retransmits what is lost).
    pub active: bool,
    una: u32,
    next: u32,
    /// The congestion window, in segments.
    cwnd: f64,
    ssthresh: f64,
    /// Segments above `una` the receiver holds (invariant: all in `(una, next)`).
    sacked: BTreeSet<u32>,
    /// Holes sent again in this episode and not yet acknowledged.
    retransmitted: BTreeSet<u32>,
    /// Holes below this are searched from here for the next retransmission.
    rexmit_from: u32,
    /// After a time-out every hole below this counts lost (go-back-N over the holes).
    lost_below: u32,
    /// In loss recovery until this segment is acknowledged.
    recover: Option<u32>,
    /// The recovery is a time-out's (Linux's `Loss` state): the window slow-starts from
    /// one segment through it instead of holding.
    after_timeout: bool,
    /// RFC 6298's estimator, shared with uTP, with Linux's 200 ms floor.
    rtt: RttEstimator,
    rto_at: Option<Instant>,
    /// One segment timed at a time (Karn: never a retransmitted one).
    timed: Option<(u32, Instant)>,
    /// Counters: (loss episodes found by selective acknowledgements, time-outs).
    pub losses: (u64, u64),
}

impl Default for TcpLikeSender {
    fn default() -> Self {
        TcpLikeSender::new()
    }
}

impl TcpLikeSender {
    /// A sender in slow start with a 10-segment initial window (RFC 6928).
    pub fn new() -> TcpLikeSender {
        TcpLikeSender {
            active: true,
            una: 0,
            next: 0,
            cwnd: 10.0,
            ssthresh: f64::MAX,
            sacked: BTreeSet::new(),
            retransmitted: BTreeSet::new(),
            rexmit_from: 0,
            lost_below: 0,
            recover: None,
            after_timeout: false,
            rtt: RttEstimator::new(Duration::from_secs(1), MIN_RTO, MAX_RTO),
            rto_at: None,
            timed: None,
            losses: (0, 0),
        }
    }

    /// The congestion window in segments.
    pub fn cwnd(&self) -> f64 {
        self.cwnd
    }

    /// Holes below this are lost: below the third-highest selectively acknowledged
    /// segment, or below where a time-out left off.
    fn lost_limit(&self) -> u32 {
        let by_sack = self
            .sacked
            .iter()
            .rev()
            .nth(DUP_THRESH - 1)
            .copied()
            .unwrap_or(self.una);
        by_sack.max(self.lost_below).clamp(self.una, self.next)
    }

    /// RFC 6675's `pipe`: segments believed in the network.
    fn pipe(&self) -> usize {
        let limit = self.lost_limit();
        let outstanding = (self.next - self.una) as usize;
        let sacked_below = self.sacked.range(..limit).count();
        let lost = (limit - self.una) as usize - sacked_below;
        outstanding - self.sacked.len() - lost + self.retransmitted.len()
    }

    /// The next lost hole not yet sent again.
    fn next_hole(&mut self) -> Option<u32> {
        let limit = self.lost_limit();
        let mut s = self.rexmit_from.max(self.una);
        while s < limit {
            if !self.sacked.contains(&s) && !self.retransmitted.contains(&s) {
                return Some(s);
            }
            s += 1;
        }
        self.rexmit_from = s;
        None
    }

    /// An acknowledgement arrived.
    pub fn handle_datagram(&mut self, d: &[u8], now: Instant) {
        if d.first() != Some(&b'A') {
            return;
        }
        let Some(ack) = u32_at(d, 1) else { return };
        if ack > self.next {
            return;
        }
        let advanced = ack > self.una;
        if advanced {
            let acked = ack - self.una;
            self.una = ack;
            self.sacked = self.sacked.split_off(&ack);
            self.retransmitted = self.retransmitted.split_off(&ack);
            if let Some((n, sent)) = self.timed
                && ack > n
            {
                self.rtt.sample(now - sent);
                self.timed = None;
            }
            self.rtt.reset_backoff();
            if self.recover.is_none() || self.after_timeout {
                for _ in 0..acked {
                    if self.cwnd < self.ssthresh {
                        self.cwnd += 1.0;
                    } else {
                        self.cwnd += 1.0 / self.cwnd;
                    }
                }
            }
            self.rto_at = (self.una < self.next).then_some(now + self.rtt.rto());
        }
        let mut at = 5;
        while let (Some(start), Some(end)) = (u32_at(d, at), u32_at(d, at + 4)) {
            at += 8;
            for s in start.max(self.una)..end.min(self.next) {
                if self.sacked.insert(s) {
                    self.retransmitted.remove(&s);
                }
            }
        }
        if self.recover.is_some_and(|r| self.una >= r) {
            self.recover = None;
            self.after_timeout = false;
        }
        if self.recover.is_none() && self.lost_limit() > self.una && self.next_hole().is_some() {
            // A new loss episode: the window halves once for all its losses.
            self.losses.0 += 1;
            self.ssthresh = (self.cwnd / 2.0).max(2.0);
            self.cwnd = self.ssthresh;
            self.recover = Some(self.next);
            self.rexmit_from = self.una;
        }
    }

    /// When [`TcpLikeSender::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rto_at
    }

    /// The retransmission time-out: one segment, every hole sent again.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.rto_at.is_none_or(|t| now < t) {
            return;
        }
        self.losses.1 += 1;
        // A time-out during recovery (a retransmission lost again) keeps the threshold
        // recovery set, as Linux does; otherwise RFC 5681 (4): half the flight.
        if self.recover.is_none() {
            self.ssthresh = (f64::from(self.next - self.una) / 2.0).max(2.0);
        }
        self.cwnd = 1.0;
        self.lost_below = self.next;
        self.retransmitted.clear();
        self.rexmit_from = self.una;
        // Everything sent so far belongs to this episode: no second halving for it.
        self.recover = Some(self.next);
        self.after_timeout = true;
        self.timed = None;
        self.rtt.back_off();
        self.rto_at = None;
    }

    /// The next segment the window allows, if any: a lost hole first, then new data.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.pipe() as f64 >= self.cwnd.floor().max(1.0) {
            return None;
        }
        let n = if let Some(hole) = self.next_hole() {
            self.retransmitted.insert(hole);
            self.rexmit_from = hole + 1;
            hole
        } else if self.active {
            let n = self.next;
            self.next += 1;
            if self.timed.is_none() {
                self.timed = Some((n, now));
            }
            n
        } else {
            return None;
        };
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rtt.rto());
        }
        Some(segment(n))
    }
}

/// The receiving side: acknowledges every segment, with selective acknowledgements of
/// what it holds above the next one it expects.
#[derive(Debug, Default)]
pub struct TcpLikeReceiver {
    expected: u32,
    /// Segments held above `expected`, as `start → end` (exclusive), never touching.
    ranges: BTreeMap<u32, u32>,
    /// The segment the owed acknowledgement answers, if one is owed.
    ack_for: Option<u32>,
    /// Payload bytes delivered in order.
    pub delivered: u64,
}

impl TcpLikeReceiver {
    /// A segment arrived.
    pub fn handle_datagram(&mut self, d: &[u8], _now: Instant) {
        if d.first() != Some(&b'D') {
            return;
        }
        let Some(n) = u32_at(d, 1) else { return };
        self.ack_for = Some(n);
        if n == self.expected {
            self.expected += 1;
            self.delivered += MSS as u64;
            if let Some(end) = self.ranges.remove(&self.expected) {
                self.delivered += u64::from(end - self.expected) * MSS as u64;
                self.expected = end;
            }
        } else if n > self.expected {
            self.hold(n);
        }
    }

    /// Adds `n` (above `expected`) to the held ranges, merging neighbours.
    fn hold(&mut self, n: u32) {
        let before = self.ranges.range(..=n).next_back().map(|(s, e)| (*s, *e));
        if before.is_some_and(|(_, e)| n < e) {
            return;
        }
        let (mut start, mut end) = (n, n + 1);
        if let Some((s, e)) = before
            && e == n
        {
            self.ranges.remove(&s);
            start = s;
        }
        if let Some(e) = self.ranges.remove(&end) {
            end = e;
        }
        if self.ranges.len() < MAX_RANGES {
            self.ranges.insert(start, end);
        }
    }

    /// The acknowledgement owed, if any.
    pub fn poll_transmit(&mut self, _now: Instant) -> Option<Vec<u8>> {
        let latest = self.ack_for.take()?;
        let mut d = vec![b'A'];
        d.extend_from_slice(&self.expected.to_be_bytes());
        let first = self
            .ranges
            .range(..=latest)
            .next_back()
            .filter(|(_, e)| latest < **e)
            .map(|(s, e)| (*s, *e));
        let rest = self
            .ranges
            .iter()
            .rev()
            .map(|(s, e)| (*s, *e))
            .filter(|r| Some(*r) != first);
        for (s, e) in first.into_iter().chain(rest).take(MAX_SACK_BLOCKS) {
            d.extend_from_slice(&s.to_be_bytes());
            d.extend_from_slice(&e.to_be_bytes());
        }
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(n: u32, sack: &[(u32, u32)]) -> Vec<u8> {
        let mut d = vec![b'A'];
        d.extend_from_slice(&n.to_be_bytes());
        for (a, b) in sack {
            d.extend_from_slice(&a.to_be_bytes());
            d.extend_from_slice(&b.to_be_bytes());
        }
        d
    }

    fn drain(s: &mut TcpLikeSender, now: Instant) -> Vec<u32> {
        std::iter::from_fn(|| s.poll_transmit(now))
            .map(|d| u32_at(&d, 1).expect("numbered"))
            .collect()
    }

    #[test]
    fn slow_start_doubles_and_a_hole_below_three_sacked_segments_is_resent_once() {
        let mut s = TcpLikeSender::new();
        let t = Instant::from_secs(1);
        assert_eq!(drain(&mut s, t), (0..10).collect::<Vec<_>>());
        s.handle_datagram(&ack(10, &[]), t + Duration::from_millis(50));
        assert_eq!(s.cwnd(), 20.0);
        assert_eq!(drain(&mut s, t), (10..30).collect::<Vec<_>>());
        // Segment 10 lost: the receiver holds 11.. and says so.
        for k in 11..14 {
            s.handle_datagram(&ack(10, &[(11, k + 1)]), t + Duration::from_millis(100));
        }
        assert_eq!(s.losses, (1, 0), "one loss episode");
        assert_eq!(s.cwnd(), 10.0, "the window halves");
        assert!(
            drain(&mut s, t).is_empty(),
            "pipe (16) is above the window (10)"
        );
        for k in 14..30 {
            s.handle_datagram(&ack(10, &[(11, k + 1)]), t + Duration::from_millis(110));
        }
        let sent = drain(&mut s, t);
        assert_eq!(sent[0], 10, "the hole first");
        assert_eq!(
            sent[1..],
            (30..39).collect::<Vec<_>>(),
            "then new data up to the window"
        );
        s.handle_datagram(&ack(39, &[]), t + Duration::from_millis(160));
        assert_eq!(
            (s.losses, s.cwnd()),
            ((1, 0), 10.0),
            "recovery over at half"
        );
        assert_eq!(drain(&mut s, t).len(), 10);
        s.handle_datagram(&ack(49, &[]), t + Duration::from_millis(210));
        assert!(s.cwnd() > 10.0, "growing again (congestion avoidance)");
    }

    #[test]
    fn a_time_out_restarts_from_one_segment() {
        let mut s = TcpLikeSender::new();
        let t = Instant::from_secs(1);
        drain(&mut s, t);
        let due = s.poll_timeout().expect("armed");
        s.handle_timeout(due);
        assert_eq!((s.cwnd(), s.losses.1), (1.0, 1));
        assert_eq!(drain(&mut s, due), vec![0], "the first hole, alone");
        assert!(s.poll_timeout().expect("re-armed") >= due + Duration::from_secs(2));
        s.handle_datagram(&ack(1, &[]), due + Duration::from_millis(100));
        assert_eq!(
            drain(&mut s, due),
            vec![1, 2],
            "slow start again over the holes"
        );
    }

    #[test]
    fn the_receiver_acknowledges_in_order_and_reports_what_it_holds() {
        let mut r = TcpLikeReceiver::default();
        let t = Instant::ZERO;
        r.handle_datagram(&segment(0), t);
        assert_eq!(r.poll_transmit(t), Some(ack(1, &[])));
        for n in [2, 3, 6] {
            r.handle_datagram(&segment(n), t);
        }
        assert_eq!(
            r.poll_transmit(t),
            Some(ack(1, &[(6, 7), (2, 4)])),
            "the latest segment's range first"
        );
        assert_eq!(r.delivered, MSS as u64);
        r.handle_datagram(&segment(1), t);
        assert_eq!(r.poll_transmit(t), Some(ack(4, &[(6, 7)])));
        assert_eq!(r.poll_transmit(t), None);
        assert_eq!(r.delivered, 4 * MSS as u64);
        r.handle_datagram(b"D", t);
        r.handle_datagram(b"garbage", t);
        assert_eq!(
            r.delivered,
            4 * MSS as u64,
            "malformed segments change nothing"
        );
    }
}
