//! Seeding limits: when a seed stops by itself.
//!
//! The session holds default limits ([`SessionConfig::seed_limits`]) and each torrent its
//! own ([`Session::set_seed_limits`]), each limit of which follows the session's
//! ([`Limit::Session`]), is off ([`Limit::Unlimited`]) or has its own value
//! ([`Limit::Own`]). They apply to a torrent while it *seeds*: every wanted piece
//! verified, and running (holding a seeding slot of the queue, see `queue.rs`: neither
//! paused, queued nor checking). When one is reached the session pauses the torrent as
//! [`Session::pause_torrent`] does (trackers told `stopped`, peers dropped) and emits
//! [`Event::SeedLimitReached`] naming it.
//!
//! - **Ratio** = uploaded ÷ max(downloaded, bytes of the wanted pieces). The second term
//!   gives a torrent that was complete when added (it downloaded nothing) a ratio against
//!   its size, and keeps a ratio from starting near infinity after a tiny download.
//!   Checked whenever the upload counter moves (each block read for a peer) and whenever
//!   the torrent is about to run as a seed: a seed resumed with its ratio reached is paused
//!   again at once, before it announces, so the user must raise or clear the limit.
//! - **Seeding time** counts from when the torrent last started seeding: completed,
//!   resumed, left the queue or finished a recheck. It starts afresh each time (the time
//!   seeded before a pause is not kept).
//! - **Idle** time counts from when it started seeding or last uploaded a payload byte.
//!
//! The time limits are deadlines in [`Session::poll_timeout`] (the earliest of every
//! seed's), checked in [`Session::handle_timeout`]: no per-second wake-up per torrent.
//! Changing a limit ([`Session::set_seed_limits`]) applies at once: one already passed
//! pauses the torrent within the call.
//!
//! Invariants, after every command and input while the session is not closing:
//! `clocks` holds exactly the torrents holding a seeding slot; none of them has reached a
//! limit (ratio, or a deadline at or before the latest `now`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Action, Event, Session, TorrentId};
use crate::time::Instant;
use crate::vocab::{Limit, SeedLimit, SeedLimits, TransferTotals};

/// Why [`Session::set_seed_limits`] refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeedLimitsError {
    /// No torrent with this id (never added, or removed).
    #[error("no such torrent")]
    UnknownTorrent,
    /// The ratio is not a finite number at least 0.
    #[error("the ratio limit must be a finite number at least 0")]
    InvalidRatio,
}

/// One running seed's clocks.
#[derive(Clone, Copy, Debug)]
struct SeedClock {
    /// When it started seeding (completed, resumed, left the queue).
    since: Instant,
    /// When it last uploaded (or `since`).
    active: Instant,
    /// Its upload counter when last looked at.
    uploaded: u64,
    /// max(downloaded, wanted bytes) when it started seeding or its priorities changed:
    /// the ratio's denominator.
    base: u64,
}

/// The limits and the running seeds' clocks (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Seeds {
    /// The session-wide limits.
    session: SeedLimits,
    /// Torrents' own settings; a torrent missing here follows the session in everything.
    own: BTreeMap<TorrentId, SeedLimits>,
    /// Every running seed's clocks.
    clocks: BTreeMap<TorrentId, SeedClock>,
}

/// The limits in force, `None` where there is none.
#[derive(Clone, Copy, Debug)]
struct Resolved {
    ratio: Option<f64>,
    seeding_time: Option<Duration>,
    idle: Option<Duration>,
}

impl Seeds {
    /// Session-wide `limits`; an unusable ratio is read as none.
    pub(super) fn new(mut limits: SeedLimits) -> Self {
        if !limits.is_valid() {
            limits.ratio = Limit::Unlimited;
        }
        Seeds {
            session: limits,
            ..Seeds::default()
        }
    }

    /// `torrent` left the session.
    pub(super) fn forget(&mut self, torrent: TorrentId) {
        self.own.remove(&torrent);
        self.clocks.remove(&torrent);
    }

    fn resolved(&self, torrent: TorrentId) -> Resolved {
        let own = self.own.get(&torrent).copied().unwrap_or_default();
        Resolved {
            ratio: own.ratio.resolve(self.session.ratio),
            seeding_time: own.seeding_time.resolve(self.session.seeding_time),
            idle: own.idle.resolve(self.session.idle),
        }
    }

    /// When `clock`'s first time limit passes, and which.
    fn deadline(&self, torrent: TorrentId, clock: &SeedClock) -> Option<(Instant, SeedLimit)> {
        let limits = self.resolved(torrent);
        let time = limits
            .seeding_time
            .map(|d| (clock.since + d, SeedLimit::SeedingTime));
        let idle = limits.idle.map(|d| (clock.active + d, SeedLimit::Idle));
        // The earlier; on a tie, seeding time (it would have come first anyway).
        [time, idle].into_iter().flatten().min_by_key(|(at, _)| *at)
    }
}

/// Whether `uploaded` reached `ratio` × `base`.
fn ratio_reached(ratio: f64, uploaded: u64, base: u64) -> bool {
    // f64 is exact to 2^53 bytes (8 PiB): far past any counter here.
    uploaded as f64 >= ratio * base as f64
}

impl Session {
    /// Sets seeding limits from `now` on: the session-wide defaults with `torrent` `None`
    /// (where [`Limit::Session`] means no limit), else that torrent's own (where
    /// [`Limit::Session`] follows the session's, now and after it changes). The whole set
    /// is replaced. A limit already reached pauses the seed within the call
    /// ([`Event::SeedLimitReached`]); a raised or cleared one lets a paused torrent be
    /// resumed. Refused for an unknown torrent or a ratio that is negative or not finite.
    pub fn set_seed_limits(
        &mut self,
        torrent: Option<TorrentId>,
        limits: SeedLimits,
        now: Instant,
    ) -> Result<(), SeedLimitsError> {
        self.saw(now);
        if !limits.is_valid() {
            return Err(SeedLimitsError::InvalidRatio);
        }
        match torrent {
            None => self.seeds.session = limits,
            Some(id) if self.torrents.contains_key(&id) => {
                self.seeds.own.insert(id, limits);
            }
            Some(_) => return Err(SeedLimitsError::UnknownTorrent),
        }
        self.settle_queue(now);
        Ok(())
    }

    /// Counts `totals` as what `torrent` moved in earlier runs of the program (which keeps
    /// them across restarts), so its ratio limit counts its whole life, as Transmission's
    /// does. Replaces any earlier call's totals. A ratio limit now reached pauses the seed
    /// within the call. Trackers are still told this run's counters only.
    pub fn set_earlier_transfers(
        &mut self,
        torrent: TorrentId,
        totals: TransferTotals,
        now: Instant,
    ) -> Result<(), SeedLimitsError> {
        self.saw(now);
        let Some(t) = self.torrents.get_mut(&torrent) else {
            return Err(SeedLimitsError::UnknownTorrent);
        };
        t.set_earlier(totals);
        // A running seed's clock cached its ratio's base: that base moves (its seeding
        // and idle times do not).
        let (uploaded, base) = (t.uploaded(), t.downloaded().max(t.wanted_bytes()));
        if let Some(clock) = self.seeds.clocks.get_mut(&torrent) {
            clock.uploaded = uploaded;
            clock.base = base;
        }
        self.settle_queue(now);
        Ok(())
    }

    /// The seeding limits set: the session-wide ones with `torrent` `None`, else that
    /// torrent's own settings (every limit [`Limit::Session`] if never set; `None` for an
    /// unknown torrent).
    pub fn seed_limits(&self, torrent: Option<TorrentId>) -> Option<SeedLimits> {
        match torrent {
            None => Some(self.seeds.session),
            Some(id) => self
                .torrents
                .contains_key(&id)
                .then(|| self.seeds.own.get(&id).copied().unwrap_or_default()),
        }
    }

    /// `torrent`'s upload ratio as its ratio limit counts it (uploaded ÷ max(downloaded,
    /// bytes of the wanted pieces)); `None` for an unknown torrent or one with nothing to
    /// count against (no metadata yet, every file skipped, nothing downloaded). Walks
    /// every piece: for status displays, not for every block.
    pub fn seed_ratio(&self, torrent: TorrentId) -> Option<f64> {
        let t = self.torrents.get(&torrent)?;
        let base = t.downloaded().max(t.wanted_bytes());
        (base > 0).then(|| t.uploaded() as f64 / base as f64)
    }

    /// Whether `torrent`'s ratio limit is reached (computed afresh: for a seed about to
    /// run, not for every block).
    pub(super) fn seed_ratio_reached(&self, torrent: TorrentId) -> bool {
        let Some(ratio) = self.seeds.resolved(torrent).ratio else {
            return false;
        };
        let Some(t) = self.torrents.get(&torrent) else {
            return false;
        };
        ratio_reached(ratio, t.uploaded(), t.downloaded().max(t.wanted_bytes()))
    }

    /// Pauses `torrent` for `limit` and says so. The caller settles the queue.
    pub(super) fn seed_limit_pause(&mut self, torrent: TorrentId, limit: SeedLimit, now: Instant) {
        self.seeds.clocks.remove(&torrent);
        if self.pause_now(torrent, now) {
            self.out
                .push(Action::Event(Event::SeedLimitReached { torrent, limit }));
        }
    }

    /// Keeps the clocks to the running seeds (new seeds start theirs, others lose them)
    /// and pauses every seed past a limit; `true` if one was paused (its slot is free).
    pub(super) fn seed_limits_check(&mut self, now: Instant) -> bool {
        let seeds = self.queue_seeds();
        self.seeds.clocks.retain(|t, _| seeds.contains(t));
        let mut reached = Vec::new();
        for torrent in seeds {
            let Some(t) = self.torrents.get(&torrent) else {
                continue;
            };
            let uploaded = t.uploaded();
            let clock = *self
                .seeds
                .clocks
                .entry(torrent)
                .or_insert_with(|| SeedClock {
                    since: now,
                    active: now,
                    uploaded,
                    base: t.downloaded().max(t.wanted_bytes()),
                });
            let limits = self.seeds.resolved(torrent);
            if limits
                .ratio
                .is_some_and(|r| ratio_reached(r, uploaded, clock.base))
            {
                reached.push((torrent, SeedLimit::Ratio));
            } else if let Some((at, limit)) = self.seeds.deadline(torrent, &clock) {
                if at <= now {
                    reached.push((torrent, limit));
                }
            }
        }
        let any = !reached.is_empty();
        for (torrent, limit) in reached {
            self.seed_limit_pause(torrent, limit, now);
        }
        any
    }

    /// After a block was read for a peer of `torrent`: its idle clock restarts if it
    /// uploaded, and its ratio is checked.
    pub(super) fn seed_uploaded(&mut self, torrent: TorrentId, now: Instant) {
        let Some(clock) = self.seeds.clocks.get_mut(&torrent) else {
            return;
        };
        let Some(uploaded) = self.torrents.get(&torrent).map(|t| t.uploaded()) else {
            return;
        };
        if uploaded == clock.uploaded {
            return;
        }
        clock.uploaded = uploaded;
        clock.active = now;
        let base = clock.base;
        if self
            .seeds
            .resolved(torrent)
            .ratio
            .is_some_and(|r| ratio_reached(r, uploaded, base))
        {
            self.seed_limit_pause(torrent, SeedLimit::Ratio, now);
            self.settle_queue(now);
        }
    }

    /// `torrent`'s wanted pieces changed (file priorities): a running seed's ratio counts
    /// against the new size, and may be reached by it.
    pub(super) fn seed_wanted_changed(&mut self, torrent: TorrentId, now: Instant) {
        let Some(t) = self.torrents.get(&torrent) else {
            return;
        };
        let base = t.downloaded().max(t.wanted_bytes());
        if let Some(clock) = self.seeds.clocks.get_mut(&torrent) {
            clock.base = base;
        }
        // It may have changed kind, or reached its ratio against the new size.
        self.settle_queue(now);
    }

    /// On `handle_timeout`: seeds whose seeding or idle time ran out are paused.
    pub(super) fn seed_timeout(&mut self, now: Instant) {
        if self.seed_deadline().is_some_and(|at| at <= now) {
            self.settle_queue(now);
        }
    }

    /// The earliest instant a running seed's seeding or idle time runs out.
    pub(super) fn seed_deadline(&self) -> Option<Instant> {
        if self.life.is_closing() {
            return None;
        }
        self.seeds
            .clocks
            .iter()
            .filter_map(|(&t, clock)| self.seeds.deadline(t, clock).map(|(at, _)| at))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torrents_limit_follows_the_session_unless_it_has_its_own_or_none() {
        let mut seeds = Seeds::new(SeedLimits {
            ratio: Limit::Own(2.0),
            seeding_time: Limit::Own(Duration::from_secs(60)),
            idle: Limit::Session,
        });
        let (a, b) = (TorrentId(0), TorrentId(1));
        seeds.own.insert(
            b,
            SeedLimits {
                ratio: Limit::Unlimited,
                seeding_time: Limit::Own(Duration::from_secs(5)),
                idle: Limit::Session,
            },
        );
        let ra = seeds.resolved(a);
        assert_eq!(ra.ratio, Some(2.0));
        assert_eq!(ra.seeding_time, Some(Duration::from_secs(60)));
        assert_eq!(ra.idle, None, "`Session` at the session is no limit");
        let rb = seeds.resolved(b);
        assert_eq!(rb.ratio, None);
        assert_eq!(rb.seeding_time, Some(Duration::from_secs(5)));
    }

    #[test]
    fn the_ratio_is_reached_at_the_product_and_not_a_byte_before() {
        assert!(!ratio_reached(2.0, 1999, 1000));
        assert!(ratio_reached(2.0, 2000, 1000));
        assert!(ratio_reached(0.0, 0, 1000), "ratio 0 stops a seed at once");
    }

    #[test]
    fn an_unusable_session_ratio_is_no_limit() {
        let seeds = Seeds::new(SeedLimits {
            ratio: Limit::Own(f64::NAN),
            ..SeedLimits::default()
        });
        assert_eq!(seeds.session.ratio, Limit::Unlimited);
    }
}
