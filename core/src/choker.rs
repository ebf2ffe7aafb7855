//! Tit-for-tat choking: which peers we upload to. Pure and deterministic.
//!
//! The [`Choker`] is fed a snapshot of the torrent's peers ([`PeerChokeInfo`]) and answers with
//! the full set of peers that should be unchoked ([`ChokeDecision`]); the caller diffs that
//! against what it last told each peer and sends `choke`/`unchoke` messages. It reads no clock
//! and no global randomness: time and a `fastrand::Rng` are passed in, so the same inputs and
//! seed give the same decisions.
//!
//! # Rules
//!
//! - **Regular rounds** run every [`ChokerConfig::round_interval`] (10 s). The
//!   [`ChokerConfig::regular_slots`] (4) best *eligible* peers get regular slots. Eligible means
//!   interested in us and not snubbed. While leeching, peers are ranked by the rate at which
//!   they send to us (`download_rate`); while seeding, by the rate at which we send to them
//!   (`upload_rate`, which the caller measures as what their sockets took). A peer that
//!   **wasted a slot** ([`PeerChokeInfo::wasted_slot`]) ranks after every peer that did not,
//!   whatever the rates; ties go to the peer connected last (so a peer not yet tried is
//!   tried before the untried ones that were already there: an honest peer that joins a
//!   seed held by attackers that never ask is served at once rather than after all of
//!   them; a stream of newcomers is bounded by admission, and the optimistic slot still
//!   reaches a peer that waits).
//! - **Optimistic unchoke**: every [`ChokerConfig::optimistic_every`] rounds (3, i.e. 30 s,
//!   starting with the first round) the optimistic slot is redrawn among interested peers that
//!   did not get a regular slot, snubbed peers included. The previous optimistic peer is left
//!   out of the draw unless it is the only candidate, so the slot really moves. Peers connected
//!   for less than [`ChokerConfig::new_peer_age`] (30 s, three rounds) weigh
//!   [`ChokerConfig::new_peer_weight`] (3) times as much as others, so they get something to
//!   trade quickly. Between rotations the optimistic peer keeps its slot while it stays
//!   connected, interested and outside the regular set; if it loses the slot for any of those
//!   reasons, the next round (or [`Choker::refill`]) draws a replacement at once.
//! - **Anti-snubbing**: a peer that has sent us no block for [`ChokerConfig::snub_after`]
//!   (60 s) while we had requests outstanding to it is snubbed ([`PeerChokeInfo::is_snubbed`]):
//!   no regular slot, only the optimistic one. A seed has no requests out, so it snubs no one.
//! - **Wasted slots**: a peer the caller marks [`PeerChokeInfo::wasted_slot`] (it held a slot
//!   and took less than a floor from it: it read slowly or asked for nothing, see
//!   `torrent/choking.rs`) is not excluded — a slot is never left empty while someone
//!   interested could use it — but ranks last, and [`Choker::refill`] hands its regular slot
//!   to an eligible peer that did not waste one at once, without waiting for the round. So
//!   peers that read at a trickle, or that say they are interested and never ask, cannot hold
//!   a seed's regular slots against a peer that would use them; and when *every* peer takes
//!   little (our own uplink is the limit) they all rank equal and the slots stay full.
//! - **Everyone else is choked**, in particular every peer that is not interested: unchoking
//!   a peer that wants nothing from us would waste a slot (the simple choice of reference
//!   clients). At most `regular_slots + 1` peers are unchoked at any time.
//!
//! # Determinism and ties
//!
//! The peer slice is first sorted by key (duplicates dropped), so its order does not matter.
//! Ties in rate are broken at random: candidates are shuffled with the injected rng before a
//! stable sort by rate, so equal peers (e.g. all at 0 B/s when a seed starts) do not always
//! favour the lowest keys.
//!
//! # Scheduling
//!
//! The first round is due at the instant the choker is created; after that rounds are exactly
//! `round_interval` apart, scheduled from the previous deadline rather than from the late
//! `now`, so late ticks do not drift. If a tick is several rounds late, one round runs and the
//! next deadline is the first one on the original grid that lies after `now`. Calling
//! [`Choker::on_timeout`] before the deadline returns `None` and changes nothing.
//!
//! Between rounds the caller may call [`Choker::refill`] when a peer becomes interested, stops
//! being interested or leaves: it fills vacant slots without evicting anyone, so a new peer
//! need not wait up to 10 s for a free slot and slots do not flap.

use std::time::Duration;

use crate::time::Instant;

/// Parameters of the choking algorithm; [`Default`] gives the classic BitTorrent values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChokerConfig {
    /// Peers unchoked by rate in each regular round (4).
    pub regular_slots: usize,
    /// Time between regular rounds (10 s); values under 1 µs are treated as 1 µs.
    pub round_interval: Duration,
    /// The optimistic slot is redrawn every this many rounds (3, i.e. 30 s); 0 acts as 1.
    pub optimistic_every: u32,
    /// A peer that sent no block for this long while we waited on it is snubbed (60 s).
    pub snub_after: Duration,
    /// Peers connected for less than this count as new for the optimistic draw (30 s, three
    /// rounds: a new peer stays favoured for one whole optimistic period).
    pub new_peer_age: Duration,
    /// Weight of a new peer in the optimistic draw relative to an old one (3).
    pub new_peer_weight: u32,
}

impl Default for ChokerConfig {
    fn default() -> Self {
        ChokerConfig {
            regular_slots: 4,
            round_interval: Duration::from_secs(10),
            optimistic_every: 3,
            snub_after: Duration::from_secs(60),
            new_peer_age: Duration::from_secs(30),
            new_peer_weight: 3,
        }
    }
}

/// What the choker needs to know about one peer, as of the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerChokeInfo {
    /// The caller's identifier for the peer (e.g. a connection slot); unique per call.
    pub key: u32,
    /// The peer is interested in what we have.
    pub interested: bool,
    /// Bytes per second the peer sends us (e.g. a 20 s [`crate::rate::RateMeter`]).
    pub download_rate: u64,
    /// Bytes per second we send the peer.
    pub upload_rate: u64,
    /// The peer held an upload slot and took less than the caller's floor from it (its
    /// socket read slowly, or it asked for nothing): it ranks after every peer that did not
    /// and gives its regular slot up to one at the next [`Choker::refill`].
    pub wasted_slot: bool,
    /// When the connection was established (for the new-peer bonus).
    pub connected_at: Instant,
    /// When the peer last sent us a block, if ever.
    pub last_block_received: Option<Instant>,
    /// Since when we have continuously had requests outstanding to the peer; `None` while we
    /// have none. Set it when the count of outstanding requests goes from zero to non-zero and
    /// clear it when it drops back to zero.
    pub requests_outstanding_since: Option<Instant>,
}

impl PeerChokeInfo {
    /// True if we have waited on this peer for `snub_after` without receiving a block: we
    /// have had requests outstanding for at least that long and its last block (if any) is at
    /// least that old.
    pub fn is_snubbed(&self, now: Instant, snub_after: Duration) -> bool {
        match self.requests_outstanding_since {
            None => false,
            Some(since) => {
                let waiting_since = self.last_block_received.map_or(since, |b| b.max(since));
                now.saturating_duration_since(waiting_since) >= snub_after
            }
        }
    }

    fn rate(&self, seeding: bool) -> u64 {
        if seeding {
            self.upload_rate
        } else {
            self.download_rate
        }
    }
}

/// Why a [`ChokeDecision`] was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundKind {
    /// A regular round that kept the optimistic peer.
    Regular,
    /// A regular round that drew the optimistic slot anew: a scheduled rotation, or the
    /// previous optimistic peer left, lost interest or earned a regular slot.
    RegularAndOptimistic,
    /// A between-rounds [`Choker::refill`] that filled vacant slots.
    Refill,
}

/// The set of peers that should be unchoked from now on; every other peer should be choked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChokeDecision {
    /// Every peer to unchoke, regular and optimistic, sorted by key.
    pub unchoke: Vec<u32>,
    /// The peers holding regular slots, sorted by key.
    pub regular: Vec<u32>,
    /// The peer holding the optimistic slot, if any (not among `regular`).
    pub optimistic: Option<u32>,
    /// Index of this regular round (the first is 0); for a refill, the index of the next
    /// regular round.
    pub round: u64,
    /// Why the decision was made.
    pub kind: RoundKind,
}

impl ChokeDecision {
    /// True if `key` should be unchoked.
    pub fn unchokes(&self, key: u32) -> bool {
        self.unchoke.binary_search(&key).is_ok()
    }
}

/// The tit-for-tat choker of one torrent: remembers the slots, the round counter and the
/// next deadline.
#[derive(Clone, Debug)]
pub struct Choker {
    config: ChokerConfig,
    next_deadline: Instant,
    /// Regular rounds run so far; also the index of the next one.
    rounds: u64,
    /// Keys holding regular slots, sorted.
    regular: Vec<u32>,
    optimistic: Option<u32>,
}

impl Choker {
    /// A choker whose first round is due at `now`.
    pub fn new(config: ChokerConfig, now: Instant) -> Self {
        Choker {
            config,
            next_deadline: now,
            rounds: 0,
            regular: Vec::new(),
            optimistic: None,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &ChokerConfig {
        &self.config
    }

    /// When the next regular round is due (for the caller's `poll_timeout`).
    pub fn next_deadline(&self) -> Instant {
        self.next_deadline
    }

    /// Regular rounds run so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// Keys currently holding regular slots, sorted.
    pub fn regular(&self) -> &[u32] {
        &self.regular
    }

    /// Key currently holding the optimistic slot.
    pub fn optimistic(&self) -> Option<u32> {
        self.optimistic
    }

    /// [`PeerChokeInfo::is_snubbed`] with this choker's `snub_after`.
    pub fn is_snubbed(&self, info: &PeerChokeInfo, now: Instant) -> bool {
        info.is_snubbed(now, self.config.snub_after)
    }

    /// Runs a regular round if one is due at `now`, else returns `None` and changes nothing.
    ///
    /// `seeding` selects the ranking (upload rate when the torrent is complete, download rate
    /// otherwise); `peers` are all connected peers of the torrent, in any order.
    pub fn on_timeout(
        &mut self,
        now: Instant,
        seeding: bool,
        peers: &[PeerChokeInfo],
        rng: &mut fastrand::Rng,
    ) -> Option<ChokeDecision> {
        if now < self.next_deadline {
            return None;
        }
        let decision = self.run_round(now, seeding, peers, rng);
        self.schedule_after(now);
        Some(decision)
    }

    /// Whether [`Choker::refill`] would change nothing, judged from the slot holders
    /// alone (`info` gives a holder's current state, `None` when it is gone): every
    /// regular slot is taken by an eligible peer that wasted none and the optimistic one
    /// by an interested peer. A refill then keeps every holder, ranks no one and draws
    /// nothing from the RNG, so skipping it is exact; it spares building every peer's
    /// [`PeerChokeInfo`] on each `interested` and each departure.
    pub fn refill_keeps_all(
        &self,
        now: Instant,
        info: impl Fn(u32) -> Option<PeerChokeInfo>,
    ) -> bool {
        let Some(optimistic) = self.optimistic else {
            return false;
        };
        self.regular.len() >= self.config.regular_slots
            && !self.regular.contains(&optimistic)
            && self
                .regular
                .iter()
                .all(|&k| info(k).is_some_and(|p| !p.wasted_slot && self.eligible_regular(&p, now)))
            && info(optimistic).is_some_and(|p| p.interested)
    }

    /// Fills vacant slots between rounds; `None` if nothing changes.
    ///
    /// Holders of regular slots that left, lost interest or became snubbed lose their slot,
    /// and so does a holder marked [`PeerChokeInfo::wasted_slot`] when an eligible peer that
    /// did not waste one lacks a slot; free regular slots go to the best eligible peers
    /// (wasteful ones only when no one else is eligible); the optimistic slot is redrawn if
    /// its holder left, lost interest or is empty. No other holder is evicted. Call it when a
    /// peer becomes interested, stops being interested, disconnects or is found wasting its
    /// slot. The round schedule is unaffected.
    ///
    /// Only interested peers count here (a holder that lost interest loses its slot either
    /// way), so `peers` may hold just those: the decision and the RNG draws are the same.
    pub fn refill(
        &mut self,
        now: Instant,
        seeding: bool,
        peers: &[PeerChokeInfo],
        rng: &mut fastrand::Rng,
    ) -> Option<ChokeDecision> {
        let peers = normalise(peers);
        let find = |key: u32| {
            peers
                .binary_search_by_key(&key, |p| p.key)
                .ok()
                .and_then(|i| peers.get(i))
                .copied()
        };
        let slots = self.config.regular_slots;
        let holders: Vec<&PeerChokeInfo> = self
            .regular
            .iter()
            .filter_map(|&k| find(k))
            .filter(|p| self.eligible_regular(p, now))
            .collect();
        // Holders that used their slot keep it; the rest of the slots go, best first, to
        // eligible peers that wasted none, then back to wasteful holders, then to anyone
        // eligible: a slot is taken from a wasteful holder only for a better peer.
        let mut regular: Vec<u32> = holders
            .iter()
            .filter(|p| !p.wasted_slot)
            .map(|p| p.key)
            .collect();
        let others = |wasted: bool| -> Vec<&PeerChokeInfo> {
            peers
                .iter()
                .copied()
                .filter(|p| p.wasted_slot == wasted && self.eligible_regular(p, now))
                .filter(|p| !holders.iter().any(|h| h.key == p.key))
                .collect()
        };
        let wasteful_holders = holders.iter().copied().filter(|p| p.wasted_slot).collect();
        for group in [others(false), wasteful_holders, others(true)] {
            let vacant = slots.saturating_sub(regular.len());
            if vacant == 0 {
                break;
            }
            regular.extend(rank(group, seeding, rng).into_iter().take(vacant));
        }
        regular.sort_unstable();
        let optimistic = match self.optimistic {
            Some(k)
                if find(k).is_some_and(|p| p.interested) && regular.binary_search(&k).is_err() =>
            {
                Some(k)
            }
            _ => self.pick_optimistic(now, &peers, &regular, None, rng),
        };
        if regular == self.regular && optimistic == self.optimistic {
            return None;
        }
        self.regular = regular;
        self.optimistic = optimistic;
        Some(self.decision(self.rounds, RoundKind::Refill))
    }

    /// Forgets `key`: it loses its regular or optimistic slot. The next round or
    /// [`Choker::refill`] gives the slot to someone else.
    pub fn peer_left(&mut self, key: u32) {
        self.regular.retain(|&k| k != key);
        if self.optimistic == Some(key) {
            self.optimistic = None;
        }
    }

    fn eligible_regular(&self, p: &PeerChokeInfo, now: Instant) -> bool {
        p.interested && !self.is_snubbed(p, now)
    }

    fn run_round(
        &mut self,
        now: Instant,
        seeding: bool,
        peers: &[PeerChokeInfo],
        rng: &mut fastrand::Rng,
    ) -> ChokeDecision {
        let peers = normalise(peers);
        let round = self.rounds;
        self.rounds = self.rounds.saturating_add(1);
        let rotate = round % u64::from(self.config.optimistic_every.max(1)) == 0;

        let candidates = peers
            .iter()
            .copied()
            .filter(|p| self.eligible_regular(p, now))
            .collect();
        let mut regular = rank(candidates, seeding, rng);
        regular.truncate(self.config.regular_slots);
        regular.sort_unstable();

        let previous = self.optimistic;
        let keep = !rotate
            && previous.is_some_and(|k| {
                regular.binary_search(&k).is_err()
                    && peers
                        .binary_search_by_key(&k, |p| p.key)
                        .ok()
                        .and_then(|i| peers.get(i))
                        .is_some_and(|p| p.interested)
            });
        self.optimistic = if keep {
            previous
        } else {
            let exclude = if rotate { previous } else { None };
            self.pick_optimistic(now, &peers, &regular, exclude, rng)
        };
        self.regular = regular;
        let kind = if keep {
            RoundKind::Regular
        } else {
            RoundKind::RegularAndOptimistic
        };
        self.decision(round, kind)
    }

    /// Weighted random draw among interested peers without a regular slot; `exclude` is left
    /// out unless it is the only candidate.
    fn pick_optimistic(
        &self,
        now: Instant,
        peers: &[&PeerChokeInfo],
        regular: &[u32],
        exclude: Option<u32>,
        rng: &mut fastrand::Rng,
    ) -> Option<u32> {
        let mut candidates: Vec<&PeerChokeInfo> = peers
            .iter()
            .copied()
            .filter(|p| p.interested && regular.binary_search(&p.key).is_err())
            .collect();
        if candidates.len() > 1 {
            candidates.retain(|p| Some(p.key) != exclude);
        }
        let weight = |p: &PeerChokeInfo| -> u64 {
            if now.saturating_duration_since(p.connected_at) < self.config.new_peer_age {
                u64::from(self.config.new_peer_weight)
            } else {
                1
            }
        };
        let total: u64 = candidates.iter().map(|p| weight(p)).sum();
        if total == 0 {
            // Only possible with `new_peer_weight == 0` and only new candidates: draw evenly.
            return match candidates.len() {
                0 => None,
                n => candidates.get(rng.usize(..n)).map(|p| p.key),
            };
        }
        let mut ticket = rng.u64(..total);
        for p in candidates {
            let w = weight(p);
            if ticket < w {
                return Some(p.key);
            }
            ticket -= w;
        }
        None
    }

    /// Moves the deadline to the first instant on the round grid after `now`.
    fn schedule_after(&mut self, now: Instant) {
        let interval = u64::try_from(self.config.round_interval.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut next = self.next_deadline.as_micros().saturating_add(interval);
        let now = now.as_micros();
        if next <= now {
            let behind = (now - next) / interval + 1;
            next = next.saturating_add(behind.saturating_mul(interval));
        }
        self.next_deadline = Instant::from_micros(next);
    }

    fn decision(&self, round: u64, kind: RoundKind) -> ChokeDecision {
        let mut unchoke = self.regular.clone();
        unchoke.extend(self.optimistic);
        unchoke.sort_unstable();
        ChokeDecision {
            unchoke,
            regular: self.regular.clone(),
            optimistic: self.optimistic,
            round,
            kind,
        }
    }
}

/// The peers sorted by key with duplicate keys dropped (the first of each wins), so that
/// decisions do not depend on the caller's order.
fn normalise(peers: &[PeerChokeInfo]) -> Vec<&PeerChokeInfo> {
    let mut sorted: Vec<&PeerChokeInfo> = peers.iter().collect();
    sorted.sort_by_key(|p| p.key);
    sorted.dedup_by_key(|p| p.key);
    sorted
}

/// Keys of `candidates` (sorted by key) best first: peers that wasted no slot before those
/// that did, then by rate, then the last connected first; remaining ties (peers that
/// connected at the same instant) broken by a shuffle.
fn rank(mut candidates: Vec<&PeerChokeInfo>, seeding: bool, rng: &mut fastrand::Rng) -> Vec<u32> {
    rng.shuffle(&mut candidates);
    candidates.sort_by_key(|p| {
        (
            p.wasted_slot,
            std::cmp::Reverse(p.rate(seeding)),
            std::cmp::Reverse(p.connected_at),
        )
    });
    candidates.into_iter().map(|p| p.key).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Instant = Instant::from_secs(1_000);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// `s` seconds before `t` (the core's `Instant` has no `- Duration`).
    fn before(t: Instant, s: u64) -> Instant {
        Instant::from_micros(t.as_micros() - s * 1_000_000)
    }

    /// An old, interested peer that is not snubbed.
    fn peer(key: u32, download_rate: u64, upload_rate: u64) -> PeerChokeInfo {
        PeerChokeInfo {
            key,
            interested: true,
            download_rate,
            upload_rate,
            wasted_slot: false,
            connected_at: Instant::ZERO,
            last_block_received: None,
            requests_outstanding_since: None,
        }
    }

    fn choker() -> Choker {
        Choker::new(ChokerConfig::default(), T0)
    }

    #[test]
    fn rounds_run_exactly_every_ten_seconds_without_drift() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut c = choker();
        let peers = [peer(1, 10, 0)];
        assert_eq!(c.next_deadline(), T0);
        assert_eq!(
            c.on_timeout(T0, false, &peers, &mut rng).map(|d| d.round),
            Some(0)
        );
        assert_eq!(c.next_deadline(), T0 + secs(10));
        // Early and spurious calls do nothing.
        let t = T0 + Duration::from_micros(9_999_999);
        assert_eq!(c.on_timeout(t, false, &peers, &mut rng), None);
        assert_eq!(c.on_timeout(T0, false, &peers, &mut rng), None);
        assert_eq!(c.rounds(), 1);
        assert_eq!(
            c.on_timeout(T0 + secs(10), false, &peers, &mut rng)
                .map(|d| d.round),
            Some(1)
        );
        // A late tick runs one round and keeps the grid: the next is at +30, not +35.
        assert_eq!(
            c.on_timeout(T0 + secs(25), false, &peers, &mut rng)
                .map(|d| d.round),
            Some(2)
        );
        assert_eq!(c.next_deadline(), T0 + secs(30));
        // Many rounds late: still a single round, next deadline on the grid after `now`.
        assert!(
            c.on_timeout(T0 + secs(100), false, &peers, &mut rng)
                .is_some()
        );
        assert_eq!(c.next_deadline(), T0 + secs(110));
        assert_eq!(c.on_timeout(T0 + secs(105), false, &peers, &mut rng), None);
        assert_eq!(c.rounds(), 4);
    }

    #[test]
    fn optimistic_slot_rotates_every_third_round() {
        let mut rng = fastrand::Rng::with_seed(2);
        let mut c = choker();
        // Four fast peers take the regular slots; six slow ones compete for the optimistic one.
        let peers: Vec<_> = (0..10)
            .map(|k| peer(k, if k < 4 { 1000 } else { 1 }, 0))
            .collect();
        let mut optimistic = Vec::new();
        for round in 0..12u64 {
            let d = c
                .on_timeout(T0 + secs(10 * round), false, &peers, &mut rng)
                .unwrap();
            assert_eq!(d.round, round);
            assert_eq!(d.regular, vec![0, 1, 2, 3]);
            let expected = if round % 3 == 0 {
                RoundKind::RegularAndOptimistic
            } else {
                RoundKind::Regular
            };
            assert_eq!(d.kind, expected, "round {round}");
            let o = d.optimistic.unwrap();
            assert!(o >= 4);
            optimistic.push(o);
        }
        for (round, pair) in optimistic.windows(2).enumerate() {
            let next_round = round + 1;
            if next_round % 3 == 0 {
                // The slot moves to a different peer at each rotation.
                assert_ne!(pair[0], pair[1], "round {next_round}");
            } else {
                assert_eq!(pair[0], pair[1], "round {next_round}");
            }
        }
    }

    #[test]
    fn rotation_moves_the_slot_unless_there_is_no_one_else() {
        let mut rng = fastrand::Rng::with_seed(14);
        let mut c = choker();
        // Two candidates for the optimistic slot: each rotation must switch between them.
        let mut peers: Vec<_> = (0..6)
            .map(|k| peer(k, if k < 4 { 1000 } else { 1 }, 0))
            .collect();
        let mut last = None;
        for rotation in 0..20u64 {
            let now = T0 + secs(30 * rotation);
            let d = c.on_timeout(now, false, &peers, &mut rng).unwrap();
            assert_eq!(d.kind, RoundKind::RegularAndOptimistic);
            assert_ne!(d.optimistic, last, "rotation {rotation}");
            last = d.optimistic;
            // Skip the two regular rounds in between.
            c.on_timeout(now + secs(10), false, &peers, &mut rng)
                .unwrap();
            c.on_timeout(now + secs(20), false, &peers, &mut rng)
                .unwrap();
        }
        // A single candidate keeps the slot across a rotation.
        peers.retain(|p| Some(p.key) != last || p.key < 4);
        let only = peers[4].key;
        let d = c
            .on_timeout(T0 + secs(600), false, &peers, &mut rng)
            .unwrap();
        assert_eq!(d.optimistic, Some(only));
        for round in 1..=3 {
            let d = c
                .on_timeout(T0 + secs(600 + 10 * round), false, &peers, &mut rng)
                .unwrap();
            assert_eq!(d.optimistic, Some(only));
        }
    }

    #[test]
    fn fastest_interested_peers_win_by_download_rate_when_leeching() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut c = choker();
        // Download rates rise with the key; upload rates fall with it.
        let mut peers: Vec<_> = (0..10)
            .map(|k| peer(k, 100 * u64::from(k), 1000 - 100 * u64::from(k)))
            .collect();
        peers[9].interested = false; // the fastest uploader to us wants nothing
        let d = c.on_timeout(T0, false, &peers, &mut rng).unwrap();
        assert_eq!(d.regular, vec![5, 6, 7, 8]);
        assert!(!d.unchokes(9));
        let o = d.optimistic.unwrap();
        assert!(
            o < 5,
            "optimistic {o} must come from the choked interested peers"
        );
        assert_eq!(d.unchoke.len(), 5);
    }

    #[test]
    fn fastest_interested_peers_win_by_upload_rate_when_seeding() {
        let mut rng = fastrand::Rng::with_seed(4);
        let mut c = choker();
        let mut peers: Vec<_> = (0..10)
            .map(|k| peer(k, 100 * u64::from(k), 1000 - 100 * u64::from(k)))
            .collect();
        peers[0].interested = false;
        let d = c.on_timeout(T0, true, &peers, &mut rng).unwrap();
        assert_eq!(d.regular, vec![1, 2, 3, 4]);
        assert!(!d.unchokes(0));
        assert!(d.optimistic.unwrap() >= 5);
    }

    #[test]
    fn not_interested_peers_stay_choked() {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut c = choker();
        let mut peers: Vec<_> = (0..6).map(|k| peer(k, 1000, 1000)).collect();
        for p in &mut peers {
            p.interested = false;
        }
        let d = c.on_timeout(T0, false, &peers, &mut rng).unwrap();
        assert!(d.unchoke.is_empty());
        assert_eq!(d.optimistic, None);
    }

    #[test]
    fn snub_detection() {
        let now = T0 + secs(200);
        let mut p = peer(1, 0, 0);
        let snub = secs(60);
        // Not waiting on it: never snubbed, however long ago its last block.
        p.last_block_received = Some(T0);
        assert!(!p.is_snubbed(now, snub));
        // Requests out for 70 s, last block 65 s ago.
        p.requests_outstanding_since = Some(before(now, 70));
        p.last_block_received = Some(before(now, 65));
        assert!(p.is_snubbed(now, snub));
        // A recent block clears it.
        p.last_block_received = Some(before(now, 10));
        assert!(!p.is_snubbed(now, snub));
        // Requests only just sent after a long idle spell: not snubbed yet.
        p.last_block_received = Some(before(now, 190));
        p.requests_outstanding_since = Some(before(now, 5));
        assert!(!p.is_snubbed(now, snub));
        // Never sent anything, waited exactly 60 s.
        p.last_block_received = None;
        p.requests_outstanding_since = Some(before(now, 60));
        assert!(p.is_snubbed(now, snub));
        assert!(choker().is_snubbed(&p, now));
    }

    #[test]
    fn snubbed_peer_loses_its_regular_slot_but_can_be_optimistic() {
        let mut rng = fastrand::Rng::with_seed(6);
        let mut c = choker();
        let mut peers: Vec<_> = (0..5).map(|k| peer(k, 100 + u64::from(k), 0)).collect();
        peers[4].download_rate = 1_000_000;
        let d = c.on_timeout(T0, false, &peers, &mut rng).unwrap();
        assert!(d.regular.contains(&4));
        // Peer 4 stops delivering while we wait on it; its 20 s average is still high.
        peers[4].requests_outstanding_since = Some(T0);
        peers[4].last_block_received = Some(T0);
        for round in 1..6 {
            // Waited less than 60 s: still fast, still regular.
            let d = c
                .on_timeout(T0 + secs(10 * round), false, &peers, &mut rng)
                .unwrap();
            assert!(d.regular.contains(&4), "round {round}");
        }
        let d = c
            .on_timeout(T0 + secs(60), false, &peers, &mut rng)
            .unwrap();
        assert_eq!(d.regular, vec![0, 1, 2, 3]);
        // It is the only interested peer without a regular slot: it gets the optimistic one.
        assert_eq!(d.optimistic, Some(4));
        assert_eq!(d.unchoke, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn wasteful_peers_rank_last_but_slots_never_stay_empty() {
        let mut rng = fastrand::Rng::with_seed(14);
        let mut c = choker();
        // Seeding: ten peers that wasted their slot (read at 8 KiB/s), one honest peer that
        // took nothing yet (it was choked). By rate alone the wasteful ones would win every
        // slot; marked, they rank after it but still fill the slots it cannot.
        let mut peers: Vec<_> = (0..10).map(|k| peer(k, 0, 8 * 1024)).collect();
        for p in &mut peers {
            p.wasted_slot = true;
        }
        peers.push(peer(10, 0, 0));
        for round in 0..9u64 {
            let d = c
                .on_timeout(T0 + secs(10 * round), true, &peers, &mut rng)
                .unwrap();
            assert!(d.regular.contains(&10), "round {round}: {:?}", d.regular);
            assert_eq!(d.regular.len(), 4, "round {round}: slots filled");
            assert_eq!(d.unchoke.len(), 5);
        }
        // When every peer wasted its slot (our uplink is the limit), they rank by rate.
        peers[10].wasted_slot = true;
        peers[10].upload_rate = 4 * 1024;
        peers[7].upload_rate = 9 * 1024;
        let d = c.on_timeout(T0 + secs(90), true, &peers, &mut rng).unwrap();
        assert_eq!(d.regular.len(), 4);
        assert!(d.regular.contains(&7) && !d.regular.contains(&10));
    }

    #[test]
    fn refill_gives_a_wasted_slot_to_a_peer_that_wasted_none() {
        let mut rng = fastrand::Rng::with_seed(15);
        let mut c = choker();
        let mut peers: Vec<_> = (0..4).map(|k| peer(k, 0, 1024)).collect();
        let d = c.on_timeout(T0, true, &peers, &mut rng).unwrap();
        assert_eq!(d.regular, vec![0, 1, 2, 3]);
        // A newcomer: no slot frees, and nobody wasted one, so the refill evicts no one.
        let mut newcomer = peer(9, 0, 0);
        newcomer.connected_at = T0;
        peers.push(newcomer);
        let d = c.refill(T0 + secs(1), true, &peers, &mut rng);
        assert!(d.is_none_or(|d| d.regular == vec![0, 1, 2, 3]));
        // Holders 1 and 2 are found wasting theirs: the newcomer takes one at once, and the
        // other stays with its wasteful holder rather than going empty.
        peers[1].wasted_slot = true;
        peers[2].wasted_slot = true;
        peers[2].upload_rate = 2048;
        let d = c.refill(T0 + secs(2), true, &peers, &mut rng).unwrap();
        assert_eq!(d.regular, vec![0, 2, 3, 9]);
        // The refill never hands a wasteful peer a slot over one that wasted none.
        peers.push(peer(5, 0, 0));
        peers[0].wasted_slot = true;
        let d = c.refill(T0 + secs(3), true, &peers, &mut rng).unwrap();
        // Holders 3 and 9 keep theirs, newcomer 5 takes one, and of the wasteful holders the
        // faster (2) keeps the last.
        assert_eq!(d.regular, vec![2, 3, 5, 9]);
    }

    #[test]
    fn a_refill_judged_to_keep_all_changes_nothing_and_draws_nothing() {
        // Random states (interest, wasted marks, departures, a new peer) after a round:
        // whenever `refill_keeps_all` says so, the refill returns no decision and leaves
        // the RNG where it was, so skipping it is exact; and it does say so for a swarm
        // whose holders all use their slots.
        let mut draw = fastrand::Rng::with_seed(40);
        let mut kept = 0;
        for case in 0..500u64 {
            let mut rng = fastrand::Rng::with_seed(case);
            let mut c = choker();
            let mut peers: Vec<_> = (0..draw.u32(3..10))
                .map(|k| peer(k, 0, u64::from(draw.u32(0..4096))))
                .collect();
            c.on_timeout(T0, true, &peers, &mut rng);
            for p in &mut peers {
                p.interested = draw.u8(0..8) != 0;
                p.wasted_slot = draw.u8(0..6) == 0;
            }
            if draw.bool() {
                let gone = draw.usize(0..peers.len());
                peers.remove(gone);
            }
            if draw.bool() {
                peers.push(peer(20, 0, 0));
            }
            let now = T0 + secs(1);
            let info = |k: u32| peers.iter().find(|p| p.key == k).cloned();
            if !c.refill_keeps_all(now, info) {
                continue;
            }
            kept += 1;
            let before = rng.clone().u64(..);
            assert!(
                c.refill(now, true, &peers, &mut rng).is_none(),
                "case {case}"
            );
            assert_eq!(
                rng.u64(..),
                before,
                "case {case}: the refill drew from the RNG"
            );
        }
        assert!(kept >= 50, "only {kept} of 500 states kept every holder");
    }

    #[test]
    fn a_refill_given_only_the_interested_peers_decides_the_same() {
        // Random states after a round (interest, wasted marks, snubs, rates, departures,
        // newcomers): a refill given every peer and one given only the interested ones
        // return the same decision and leave the RNG in the same place, which is what
        // lets the torrent skip the others' rates.
        let mut draw = fastrand::Rng::with_seed(41);
        let mut changed = 0;
        for case in 0..500u64 {
            let mut all_rng = fastrand::Rng::with_seed(case);
            let mut all = choker();
            let mut peers: Vec<_> = (0..draw.u32(3..14))
                .map(|k| {
                    peer(
                        k,
                        u64::from(draw.u32(0..4096)),
                        u64::from(draw.u32(0..4096)),
                    )
                })
                .collect();
            all.on_timeout(T0, draw.bool(), &peers, &mut all_rng);
            let mut few = all.clone();
            let mut few_rng = all_rng.clone();
            for p in &mut peers {
                p.interested = draw.u8(0..3) != 0;
                p.wasted_slot = draw.u8(0..5) == 0;
                if draw.u8(0..6) == 0 {
                    p.requests_outstanding_since = Some(T0);
                }
                p.connected_at = T0 + secs(u64::from(draw.u8(0..2)));
            }
            if draw.bool() {
                let gone = draw.usize(0..peers.len());
                peers.remove(gone);
                all.peer_left(u32::try_from(gone).unwrap_or(0));
                few.peer_left(u32::try_from(gone).unwrap_or(0));
            }
            if draw.bool() {
                peers.push(peer(30, 0, 0));
            }
            let interested: Vec<_> = peers.iter().filter(|p| p.interested).cloned().collect();
            let now = T0 + secs(90);
            let seeding = draw.bool();
            let a = all.refill(now, seeding, &peers, &mut all_rng);
            let b = few.refill(now, seeding, &interested, &mut few_rng);
            assert_eq!(a, b, "case {case}");
            assert_eq!(all_rng.u64(..), few_rng.u64(..), "case {case}: RNG");
            changed += usize::from(a.is_some());
        }
        assert!(
            changed >= 100,
            "only {changed} of 500 refills changed anything"
        );
    }

    #[test]
    fn ties_go_to_the_peer_connected_last() {
        let mut rng = fastrand::Rng::with_seed(16);
        let mut c = choker();
        // Twelve peers, none measured yet, connected one second apart, key order reversed.
        let peers: Vec<_> = (0..12u32)
            .map(|k| {
                let mut p = peer(k, 0, 0);
                p.connected_at = Instant::from_secs(100 - u64::from(k));
                p
            })
            .collect();
        let d = c.on_timeout(T0, true, &peers, &mut rng).unwrap();
        assert_eq!(d.regular, vec![0, 1, 2, 3]);
    }

    #[test]
    fn never_more_than_four_regular_plus_one_optimistic() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut world = fastrand::Rng::with_seed(70);
        let mut c = choker();
        for round in 0..300u64 {
            let now = T0 + secs(10 * round);
            let n = world.u32(0..40);
            let peers: Vec<_> = (0..n)
                .map(|k| {
                    let mut p = peer(k, world.u64(0..5), world.u64(0..5));
                    p.interested = world.bool();
                    p.connected_at = before(now, world.u64(0..60));
                    if world.u8(0..4) == 0 {
                        p.requests_outstanding_since = Some(before(now, world.u64(0..120)));
                    }
                    p
                })
                .collect();
            let d = c.on_timeout(now, world.bool(), &peers, &mut rng).unwrap();
            assert!(d.regular.len() <= 4);
            assert!(d.unchoke.len() <= 5);
            assert!(
                d.unchoke.windows(2).all(|w| w[0] < w[1]),
                "sorted, no duplicates"
            );
            for &k in &d.unchoke {
                assert!(peers[k as usize].interested);
            }
            for &k in &d.regular {
                assert!(!peers[k as usize].is_snubbed(now, secs(60)));
            }
            if let Some(o) = d.optimistic {
                assert!(!d.regular.contains(&o));
            }
            // Free slots are never left empty: every eligible peer up to four gets a regular
            // slot, and one more interested peer (snubbed or not) the optimistic one.
            let interested = peers.iter().filter(|p| p.interested).count();
            let eligible = peers
                .iter()
                .filter(|p| p.interested && !p.is_snubbed(now, secs(60)))
                .count();
            let regular = eligible.min(4);
            assert_eq!(d.regular.len(), regular);
            assert_eq!(d.unchoke.len(), regular + usize::from(interested > regular));
        }
    }

    #[test]
    fn optimistic_draw_favours_new_peers_three_to_one() {
        // One new peer and three old ones compete for the optimistic slot (the four regular
        // slots are taken). Weighted 3:1:1:1 the new one wins half the draws; unweighted, a
        // quarter. Each trial is a fresh choker's first round, so draws are independent.
        let mut rng = fastrand::Rng::with_seed(8);
        let mut peers: Vec<_> = (0..8)
            .map(|k| peer(k, if k < 4 { 1000 } else { 1 }, 0))
            .collect();
        peers[6].connected_at = before(T0, 5);
        let trials = 4000;
        let mut wins = [0u32; 8];
        for _ in 0..trials {
            let mut c = choker();
            let d = c.on_timeout(T0, false, &peers, &mut rng).unwrap();
            wins[d.optimistic.unwrap() as usize] += 1;
        }
        assert_eq!(wins[..4], [0, 0, 0, 0]);
        let new_share = f64::from(wins[6]) / f64::from(trials);
        assert!(
            (0.45..0.55).contains(&new_share),
            "new peer won {new_share}"
        );
        for k in [4, 5, 7] {
            let share = f64::from(wins[k]) / f64::from(trials);
            assert!((0.13..0.21).contains(&share), "old peer {k} won {share}");
        }
    }

    #[test]
    fn peers_stop_being_new_after_new_peer_age() {
        let mut rng = fastrand::Rng::with_seed(9);
        let mut peers: Vec<_> = (0..8)
            .map(|k| peer(k, if k < 4 { 1000 } else { 1 }, 0))
            .collect();
        // Connected exactly 30 s ago: no longer new, so all four draw evenly.
        peers[6].connected_at = before(T0, 30);
        let trials = 4000;
        let mut new_wins = 0u32;
        for _ in 0..trials {
            let mut c = choker();
            if c.on_timeout(T0, false, &peers, &mut rng)
                .unwrap()
                .optimistic
                == Some(6)
            {
                new_wins += 1;
            }
        }
        let share = f64::from(new_wins) / f64::from(trials);
        assert!((0.20..0.30).contains(&share), "peer 6 won {share}");
    }

    #[test]
    fn same_seed_same_decisions_whatever_the_peer_order() {
        let run = |reverse: bool| {
            let mut rng = fastrand::Rng::with_seed(10);
            let mut c = choker();
            let mut out = Vec::new();
            for round in 0..30u64 {
                // Many equal rates so tie-breaking matters.
                let mut peers: Vec<_> = (0..20).map(|k| peer(k, u64::from(k % 3), 0)).collect();
                if reverse {
                    peers.reverse();
                }
                out.push(
                    c.on_timeout(T0 + secs(10 * round), false, &peers, &mut rng)
                        .unwrap(),
                );
            }
            out
        };
        let a = run(false);
        assert_eq!(a, run(false));
        assert_eq!(a, run(true));
        // Ties among the rate-2 peers are not always settled in favour of the lowest keys.
        assert!(a.iter().any(|d| d.regular != vec![2, 5, 8, 11]));
    }

    #[test]
    fn departed_optimistic_peer_is_replaced_next_round() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut c = choker();
        let mut peers: Vec<_> = (0..8)
            .map(|k| peer(k, if k < 4 { 1000 } else { 1 }, 0))
            .collect();
        let first = c
            .on_timeout(T0, false, &peers, &mut rng)
            .unwrap()
            .optimistic
            .unwrap();
        c.peer_left(first);
        assert_eq!(c.optimistic(), None);
        peers.retain(|p| p.key != first);
        let d = c
            .on_timeout(T0 + secs(10), false, &peers, &mut rng)
            .unwrap();
        assert_eq!(d.kind, RoundKind::RegularAndOptimistic);
        assert!(d.optimistic.is_some_and(|o| o != first && o >= 4));
    }

    #[test]
    fn refill_fills_vacancies_without_evicting() {
        let mut rng = fastrand::Rng::with_seed(12);
        let mut c = choker();
        let mut peers = vec![peer(1, 10, 0), peer(2, 20, 0)];
        let d = c.on_timeout(T0, false, &peers, &mut rng).unwrap();
        assert_eq!(d.unchoke, vec![1, 2]);
        assert_eq!(c.refill(T0 + secs(1), false, &peers, &mut rng), None);
        // Three fast newcomers arrive between rounds: two take the free regular slots (the
        // fastest two), one the free optimistic slot; no one already unchoked is evicted.
        peers.extend([peer(3, 300, 0), peer(4, 400, 0), peer(5, 500, 0)]);
        let d = c.refill(T0 + secs(2), false, &peers, &mut rng).unwrap();
        assert_eq!(d.kind, RoundKind::Refill);
        assert_eq!(d.round, 1);
        assert_eq!(d.regular, vec![1, 2, 4, 5]);
        assert_eq!(d.optimistic, Some(3));
        assert_eq!(c.refill(T0 + secs(3), false, &peers, &mut rng), None);
        // Peer 1 loses interest: peer 3 moves up to its regular slot, optimistic is redrawn
        // (empty here: nobody else is interested).
        peers[0].interested = false;
        let d = c.refill(T0 + secs(4), false, &peers, &mut rng).unwrap();
        assert_eq!(d.regular, vec![2, 3, 4, 5]);
        assert_eq!(d.optimistic, None);
        // The schedule is untouched.
        assert_eq!(c.next_deadline(), T0 + secs(10));
        // The next regular round ranks everyone afresh.
        let d = c
            .on_timeout(T0 + secs(10), false, &peers, &mut rng)
            .unwrap();
        assert_eq!(d.regular, vec![2, 3, 4, 5]);
    }

    #[test]
    fn duplicate_keys_and_degenerate_config_do_not_break_invariants() {
        let mut rng = fastrand::Rng::with_seed(13);
        let config = ChokerConfig {
            regular_slots: 0,
            round_interval: Duration::ZERO,
            optimistic_every: 0,
            new_peer_weight: 0,
            ..ChokerConfig::default()
        };
        let mut c = Choker::new(config, T0);
        let mut new = peer(7, 5, 5);
        new.connected_at = T0;
        let peers = [new.clone(), new, peer(8, 1, 1)];
        let d = c.on_timeout(T0, false, &peers, &mut rng).unwrap();
        assert!(d.regular.is_empty());
        assert_eq!(d.unchoke.len(), 1);
        // A zero interval is one microsecond.
        assert_eq!(c.next_deadline(), T0 + Duration::from_micros(1));
        // Every round rotates with optimistic_every == 0.
        let d = c.on_timeout(T0 + secs(1), false, &peers, &mut rng).unwrap();
        assert_eq!(d.kind, RoundKind::RegularAndOptimistic);
    }
}
