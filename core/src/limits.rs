//! Rate limits: token buckets on the core's clock.
//!
//! A [`TokenBucket`] holds bytes that may move now; it fills at `rate` bytes per second up
//! to a bounded burst ([`burst_for`]), and moving bytes takes from it. Nothing here reads a
//! clock or sleeps: every method takes `now`, and a bucket that is short answers *when* it
//! will have enough ([`TokenBucket::ready_at`]), which the session turns into a deadline of
//! its `poll_timeout`. A [`Limiter`] is a bucket that may be off (unlimited).
//!
//! How the session uses them (`session/mod.rs`, `torrent/upload.rs`, `torrent/pieces.rs`):
//! - **Upload.** A peer's request that may be served waits in the peer's `throttled` queue
//!   while a limit is set; the session issues its `ReadBlock` only when both the session's
//!   and the torrent's upload buckets hold the block's length, and takes the bytes then.
//!   Waiting peers take turns, one block each (`SessionLimits`, round-robin), so no peer
//!   starves another. Reads are delayed, not their answers: memory holds no more blocks
//!   than without a limit.
//! - **Download.** A request costs its block's length when it is sent, so the rate at which
//!   blocks arrive follows the rate at which tokens come, whatever the round trip; blocks
//!   asked for and then dropped (choke, reject, time-out, cancel, the peer leaving) give
//!   their bytes back, and an unasked block that is taken anyway costs its bytes on arrival.
//!   A pipeline is not topped up past what the buckets hold; when that held one back the
//!   torrent is woken when a block's worth has come.
//!
//! Invariant: a bucket's tokens never exceed its capacity; they may fall below zero only
//! by [`TokenBucket::take`] of more than is there (a block larger than the burst, or one
//! charged on arrival), a debt repaid at `rate` before anything else moves.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use crate::time::Instant;
use crate::vocab::{ConnId, TorrentId};
use crate::wire::MAX_BLOCK_LEN;

/// Microseconds per second: tokens are kept in byte-microseconds so refills are exact.
const MICROS: i128 = 1_000_000;

/// Upload and download limits in bytes per second; `None` (or 0) is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Most payload bytes per second sent (blocks served to peers).
    pub upload: Option<u64>,
    /// Most payload bytes per second received (blocks requested from peers).
    pub download: Option<u64>,
}

impl RateLimits {
    /// No limit either way.
    pub const UNLIMITED: RateLimits = RateLimits {
        upload: None,
        download: None,
    };

    /// The same limits with 0 read as unlimited (`None`).
    pub fn normalized(self) -> RateLimits {
        RateLimits {
            upload: self.upload.filter(|&r| r > 0),
            download: self.download.filter(|&r| r > 0),
        }
    }
}

/// The burst a bucket of `rate` bytes per second holds: a tenth of a second of traffic,
/// and never less than two blocks.
///
/// Why this size: a driver's timer wakes the session a little late (a millisecond on a busy
/// machine, more under load); tokens that come meanwhile must not overflow the bucket, or
/// the limit would undershoot by the lateness. 100 ms of traffic absorbs any plausible
/// lateness, and at high rates it lets a wake-up release a batch of blocks instead of one
/// per wake. It is small enough that a burst moves a 1 s measurement by at most a tenth and
/// a 20 s one by half a percent. Two blocks at least, so a block can always be afforded
/// (a bucket smaller than a block would never let one through) and the next one starts
/// filling while the first goes.
pub fn burst_for(rate: u64) -> u64 {
    (rate / 10).max(2 * u64::from(MAX_BLOCK_LEN))
}

/// Bytes that may move, refilled at a fixed rate up to a bounded burst. See the module
/// docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    /// Bytes per second, at least 1.
    rate: u64,
    /// Most bytes held ([`burst_for`] of the rate).
    capacity: u64,
    /// Tokens as of `at`, in byte-microseconds (bytes × 10⁶); at most `capacity × 10⁶`,
    /// negative while in debt.
    scaled: i128,
    /// The instant `scaled` is counted at; never moves back.
    at: Instant,
}

impl TokenBucket {
    /// A bucket of `rate` bytes per second (0 is raised to 1), full at `now`.
    pub fn new(rate: u64, now: Instant) -> Self {
        let rate = rate.max(1);
        let capacity = burst_for(rate);
        TokenBucket {
            rate,
            capacity,
            scaled: i128::from(capacity) * MICROS,
            at: now,
        }
    }

    /// Bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The most bytes the bucket holds (its burst).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Changes the rate from `now` on, keeping the tokens earned so far (cut to the new
    /// burst).
    pub fn set_rate(&mut self, rate: u64, now: Instant) {
        self.refill(now);
        self.rate = rate.max(1);
        self.capacity = burst_for(self.rate);
        self.scaled = self.scaled.min(i128::from(self.capacity) * MICROS);
    }

    /// The tokens at `now` in byte-microseconds, without changing the bucket. Time before
    /// the last update counts as no time.
    fn scaled_at(&self, now: Instant) -> i128 {
        let elapsed = i128::from(now.as_micros().saturating_sub(self.at.as_micros()));
        let full = i128::from(self.capacity) * MICROS;
        self.scaled
            .saturating_add(elapsed.saturating_mul(i128::from(self.rate)))
            .min(full)
    }

    fn refill(&mut self, now: Instant) {
        self.scaled = self.scaled_at(now);
        self.at = self.at.max(now);
    }

    /// Whole bytes available at `now` (negative while in debt).
    pub fn tokens(&self, now: Instant) -> i64 {
        let whole = self.scaled_at(now).div_euclid(MICROS);
        i64::try_from(whole).unwrap_or(if whole < 0 { i64::MIN } else { i64::MAX })
    }

    /// What moving `bytes` requires to be held: the bytes, or a full bucket for a transfer
    /// larger than the burst (it then leaves a debt).
    fn need(&self, bytes: u64) -> i128 {
        i128::from(bytes.min(self.capacity)) * MICROS
    }

    /// Whether `bytes` may move at `now`.
    pub fn allows(&self, bytes: u64, now: Instant) -> bool {
        self.scaled_at(now) >= self.need(bytes)
    }

    /// Takes `bytes` at `now`, into debt if fewer are held.
    pub fn take(&mut self, bytes: u64, now: Instant) {
        self.refill(now);
        self.scaled = self
            .scaled
            .saturating_sub(i128::from(bytes).saturating_mul(MICROS));
    }

    /// Gives back `bytes` taken for a transfer that did not happen (never past the burst).
    pub fn give_back(&mut self, bytes: u64, now: Instant) {
        self.refill(now);
        let full = i128::from(self.capacity) * MICROS;
        self.scaled = self
            .scaled
            .saturating_add(i128::from(bytes).saturating_mul(MICROS))
            .min(full);
    }

    /// The first instant at or after `now` at which `bytes` may move.
    pub fn ready_at(&self, bytes: u64, now: Instant) -> Instant {
        let short = self.need(bytes) - self.scaled_at(now);
        if short <= 0 {
            return now;
        }
        let rate = i128::from(self.rate);
        // Rounded up: at the instant returned the bytes are there, not a microsecond later.
        let micros = (short + rate - 1) / rate;
        let micros = u64::try_from(micros).unwrap_or(u64::MAX);
        now.checked_add(Duration::from_micros(micros))
            .unwrap_or(Instant::from_micros(u64::MAX))
    }
}

/// A limit that may be off: a [`TokenBucket`] or unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limiter(Option<TokenBucket>);

impl Limiter {
    /// A limiter of `rate` bytes per second (`None` or 0: unlimited), full at `now`.
    pub fn new(rate: Option<u64>, now: Instant) -> Self {
        Limiter(rate.filter(|&r| r > 0).map(|r| TokenBucket::new(r, now)))
    }

    /// Sets the rate from `now` on (`None` or 0: unlimited). A bucket that stays limited
    /// keeps its tokens; one newly limited starts full.
    pub fn set(&mut self, rate: Option<u64>, now: Instant) {
        match (rate.filter(|&r| r > 0), &mut self.0) {
            (None, _) => self.0 = None,
            (Some(r), Some(bucket)) => bucket.set_rate(r, now),
            (Some(r), None) => self.0 = Some(TokenBucket::new(r, now)),
        }
    }

    /// The rate in bytes per second; `None` when unlimited.
    pub fn rate(&self) -> Option<u64> {
        self.0.as_ref().map(TokenBucket::rate)
    }

    /// Whether a limit is set.
    pub fn is_limited(&self) -> bool {
        self.0.is_some()
    }

    /// Whether `bytes` may move at `now` (always when unlimited).
    pub fn allows(&self, bytes: u64, now: Instant) -> bool {
        self.0.as_ref().is_none_or(|b| b.allows(bytes, now))
    }

    /// Bytes that may move at `now`: 0 in debt, `u64::MAX` when unlimited.
    pub fn budget(&self, now: Instant) -> u64 {
        self.0.as_ref().map_or(u64::MAX, |b| {
            u64::try_from(b.tokens(now).max(0)).unwrap_or(0)
        })
    }

    /// Takes `bytes` at `now` (nothing when unlimited).
    pub fn take(&mut self, bytes: u64, now: Instant) {
        if let Some(b) = &mut self.0 {
            b.take(bytes, now);
        }
    }

    /// Gives back `bytes` that did not move (nothing when unlimited).
    pub fn give_back(&mut self, bytes: u64, now: Instant) {
        if let Some(b) = &mut self.0 {
            b.give_back(bytes, now);
        }
    }

    /// When `bytes` may move: `now` when unlimited or already allowed.
    pub fn ready_at(&self, bytes: u64, now: Instant) -> Instant {
        self.0.as_ref().map_or(now, |b| b.ready_at(bytes, now))
    }
}

/// One side's pair of limiters (upload and download) for a session or a torrent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimiterPair {
    /// Blocks served.
    pub up: Limiter,
    /// Blocks requested.
    pub down: Limiter,
}

impl LimiterPair {
    /// Limiters for `limits`, full at `now`.
    pub fn new(limits: RateLimits, now: Instant) -> Self {
        LimiterPair {
            up: Limiter::new(limits.upload, now),
            down: Limiter::new(limits.download, now),
        }
    }

    /// Applies `limits` from `now` on (see [`Limiter::set`]).
    pub fn set(&mut self, limits: RateLimits, now: Instant) {
        self.up.set(limits.upload, now);
        self.down.set(limits.download, now);
    }

    /// The limits in force.
    pub fn limits(&self) -> RateLimits {
        RateLimits {
            upload: self.up.rate(),
            download: self.down.rate(),
        }
    }
}

/// The session's limiters and the peers waiting for upload tokens, in turn order.
///
/// Invariant: every peer with a served request waiting for tokens (its `throttled` queue
/// non-empty) is in `order` exactly once; `order` may also hold peers that have nothing
/// waiting any more (cancelled, choked, gone), dropped when their turn comes. `members`
/// holds what `order` holds.
#[derive(Debug, Default)]
pub(crate) struct SessionLimits {
    /// The session-wide (global) limiters.
    pub(crate) global: LimiterPair,
    /// Peers waiting for upload tokens, first to be served at the front.
    order: VecDeque<(TorrentId, ConnId)>,
    members: BTreeSet<(TorrentId, ConnId)>,
    /// When the first waiting block may go (set by the session after each pump; `None`:
    /// nothing waits).
    pub(crate) up_wake: Option<Instant>,
}

impl SessionLimits {
    /// Global limits `limits`, full at `now`, nobody waiting.
    pub(crate) fn new(limits: RateLimits, now: Instant) -> Self {
        SessionLimits {
            global: LimiterPair::new(limits, now),
            ..SessionLimits::default()
        }
    }

    /// `conn` of `torrent` has a block waiting for upload tokens: it takes a turn at the
    /// back, unless it already has one.
    pub(crate) fn queue_upload(&mut self, torrent: TorrentId, conn: ConnId) {
        if self.members.insert((torrent, conn)) {
            self.order.push_back((torrent, conn));
        }
    }

    /// The peer whose turn it is.
    pub(crate) fn front(&self) -> Option<(TorrentId, ConnId)> {
        self.order.front().copied()
    }

    /// The peer at the front leaves the queue.
    pub(crate) fn pop(&mut self) {
        if let Some(entry) = self.order.pop_front() {
            self.members.remove(&entry);
        }
    }

    /// The peer at the front goes to the back (it was served one block, or must wait).
    pub(crate) fn rotate(&mut self) {
        if let Some(entry) = self.order.pop_front() {
            self.order.push_back(entry);
        }
    }

    /// Peers in the queue.
    pub(crate) fn waiting(&self) -> usize {
        self.order.len()
    }

    /// The queue, in turn order.
    pub(crate) fn queued(&self) -> impl Iterator<Item = (TorrentId, ConnId)> + '_ {
        self.order.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const BLOCK: u64 = 16 * KIB;

    fn at(micros: u64) -> Instant {
        Instant::from_micros(micros)
    }

    #[test]
    fn the_burst_is_a_tenth_of_a_second_and_at_least_two_blocks() {
        assert_eq!(burst_for(4 << 20), (4 << 20) / 10);
        assert_eq!(burst_for(1000), 2 * BLOCK);
        assert_eq!(TokenBucket::new(0, at(0)).rate(), 1, "0 is raised to 1");
    }

    #[test]
    fn a_full_bucket_lets_its_burst_through_then_the_rate() {
        let rate = 1 << 20;
        let mut b = TokenBucket::new(rate, at(0));
        let burst = b.capacity();
        assert!(b.allows(burst, at(0)));
        b.take(burst, at(0));
        assert!(!b.allows(BLOCK, at(0)));
        // 16 KiB at 1 MiB/s takes 15,625 µs exactly.
        assert_eq!(b.ready_at(BLOCK, at(0)), at(15_625));
        assert!(!b.allows(BLOCK, at(15_624)));
        assert!(b.allows(BLOCK, at(15_625)));
        assert_eq!(b.tokens(at(15_625)), BLOCK as i64);
    }

    #[test]
    fn tokens_never_exceed_the_burst() {
        let mut b = TokenBucket::new(100 * KIB, at(0));
        assert_eq!(b.tokens(at(3_600_000_000)), b.capacity() as i64);
        b.give_back(10 * b.capacity(), at(0));
        assert_eq!(b.tokens(at(0)), b.capacity() as i64);
    }

    #[test]
    fn taking_more_than_the_burst_leaves_a_debt_repaid_at_the_rate() {
        let rate = 10 * KIB;
        let mut b = TokenBucket::new(rate, at(0));
        let cap = b.capacity();
        // A transfer larger than the burst goes once the bucket is full…
        assert!(b.allows(10 * cap, at(0)));
        b.take(10 * cap, at(0));
        assert_eq!(b.tokens(at(0)), -(9 * cap as i64));
        // …and nothing else moves until the debt is paid.
        let ready = b.ready_at(1, at(0));
        let secs = (9 * cap + 1) as f64 / rate as f64;
        assert!(
            (ready.as_micros() as f64 / 1e6 - secs).abs() < 1e-3,
            "{ready:?}"
        );
    }

    #[test]
    fn over_a_minute_the_bytes_let_through_match_the_rate() {
        // A sender that takes a block whenever the bucket allows, woken at `ready_at`
        // plus a late timer of 3 ms: the average holds because the burst absorbs it.
        let rate = 4 << 20;
        let mut b = TokenBucket::new(rate, at(0));
        let (mut now, mut sent) = (at(0), 0u64);
        while now < at(60_000_000) {
            while b.allows(BLOCK, now) {
                b.take(BLOCK, now);
                sent += BLOCK;
            }
            now = at(b.ready_at(BLOCK, now).as_micros() + 3_000);
        }
        let expect = rate * 60 + b.capacity();
        let err = (sent as f64 - expect as f64).abs() / expect as f64;
        assert!(err < 0.001, "sent {sent}, expected {expect}");
    }

    #[test]
    fn a_new_rate_keeps_the_tokens_earned() {
        let mut b = TokenBucket::new(1 << 20, at(0));
        b.take(b.capacity(), at(0));
        b.set_rate(2 << 20, at(500_000));
        // Half a second at 1 MiB/s, cut to the old burst (the new one is larger).
        assert_eq!(b.tokens(at(500_000)), burst_for(1 << 20) as i64);
        b.take(b.tokens(at(500_000)) as u64, at(500_000));
        assert_eq!(b.ready_at(BLOCK, at(500_000)), at(500_000 + 7_813));
    }

    #[test]
    fn time_going_backwards_counts_as_no_time() {
        let mut b = TokenBucket::new(1 << 20, at(1_000_000));
        b.take(b.capacity(), at(1_000_000));
        assert_eq!(b.tokens(at(0)), 0);
        b.take(BLOCK, at(0));
        assert_eq!(b.tokens(at(1_000_000)), -(BLOCK as i64));
    }

    #[test]
    fn a_limiter_off_allows_everything() {
        let mut l = Limiter::new(Some(0), at(0));
        assert!(!l.is_limited());
        assert!(l.allows(u64::MAX, at(0)));
        assert_eq!(l.budget(at(0)), u64::MAX);
        l.take(1 << 40, at(0));
        assert_eq!(l.ready_at(BLOCK, at(7)), at(7));
        l.set(Some(BLOCK * 4), at(0));
        assert!(l.is_limited());
        assert_eq!(l.budget(at(0)), 2 * BLOCK, "newly limited: full");
        l.set(None, at(0));
        assert_eq!(l.rate(), None);
    }

    #[test]
    fn limits_read_zero_as_unlimited() {
        let l = RateLimits {
            upload: Some(0),
            download: Some(5),
        }
        .normalized();
        assert_eq!(l.upload, None);
        assert_eq!(l.download, Some(5));
    }

    #[test]
    fn waiting_peers_take_turns_once_each() {
        let mut q = SessionLimits::default();
        let (t, a, b) = (TorrentId(0), ConnId(1), ConnId(2));
        q.queue_upload(t, a);
        q.queue_upload(t, b);
        q.queue_upload(t, a);
        assert_eq!(q.waiting(), 2, "a peer waits once");
        assert_eq!(q.front(), Some((t, a)));
        q.rotate();
        assert_eq!(q.front(), Some((t, b)));
        q.pop();
        q.queue_upload(t, b);
        assert_eq!(q.queued().collect::<Vec<_>>(), vec![(t, a), (t, b)]);
    }
}
