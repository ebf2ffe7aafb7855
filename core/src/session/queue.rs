//! The download/seed queue: how many torrents run at once, and which wait.
//!
//! [`SessionConfig::queue_limits`](super::SessionConfig::queue_limits) caps the torrents
//! *downloading* (wanted pieces missing, magnet links fetching their metadata and torrents
//! waiting for their storage check included) and those *seeding* (every wanted piece
//! verified), each kind apart; [`Session::set_queue_limits`] changes the caps live. A
//! torrent the user has not paused, that is not being rechecked and that finds its kind
//! full waits in [`TorrentState::Queued`](super::TorrentState::Queued): out of its swarm
//! exactly as when paused (no connection, no dial, inbound peers refused with
//! [`DisconnectReason::TorrentQueued`], trackers told `stopped`, no regular announce),
//! except that the session starts it by itself.
//!
//! - **Order.** Queue order is the order torrents were added (first in, first out);
//!   [`Session::set_queue_position`] moves one. When a slot frees up, the first queued
//!   torrent of that kind in queue order starts.
//! - **No pre-emption.** A running torrent keeps its slot: a torrent that resumes, is
//!   added, or changes kind (a download completing becomes a seed, a seed made incomplete
//!   by a file priority becomes a download) queues if its new kind is full, even when it
//!   stands before a running one in queue order. Only a lowered limit queues running
//!   torrents: the last ones in queue order, until the kind is within its limit.
//! - **Slots free up at once**: a running torrent paused (by the user or a seeding limit),
//!   removed, rechecked or changing kind frees its slot within the same call, and a raised
//!   limit starts queued torrents within [`Session::set_queue_limits`].
//! - **Events.** [`Event::TorrentQueued`] when a torrent starts waiting (it was running,
//!   added, resumed or rechecked into a full kind), [`Event::TorrentUnqueued`] when it
//!   stops waiting (it started, or was paused or rechecked); none at removal.
//! - A seed about to start whose ratio limit is reached is paused instead
//!   ([`Event::SeedLimitReached`]), so it never announces `started` only to stop.
//!
//! Invariants, after every command and input (none apply while the session closes, when
//! every torrent leaves its swarm anyway):
//! - at most `max_downloading` torrents are downloading and at most `max_seeding` are
//!   seeding (running: neither paused, queued nor checking);
//! - a queued torrent is neither paused nor checking, and its kind is full: none waits
//!   while a slot of its kind is free;
//! - `running` names exactly the torrents in their swarm, each with the kind whose slot it
//!   holds (its current kind).

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, DisconnectReason, Event, LifecycleError, Session, TorrentId};
use crate::time::Instant;
use crate::vocab::QueueLimits;

/// Which queue a torrent counts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Download,
    Seed,
}

/// The queue's state (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Queue {
    limits: QueueLimits,
    /// Every torrent of the session, in queue order.
    order: Vec<TorrentId>,
    /// Torrents in their swarm, with the kind whose slot each holds.
    running: BTreeMap<TorrentId, Kind>,
    /// Torrents out of their swarm and not paused (resumed, or rechecked) whose fate the
    /// next settle decides: held in `Lifecycle::queued` meanwhile, but not yet told to the
    /// user as queued.
    entering: BTreeSet<TorrentId>,
}

impl Queue {
    /// A queue under `limits`.
    pub(super) fn new(limits: QueueLimits) -> Self {
        Queue {
            limits,
            ..Queue::default()
        }
    }

    /// The most torrents of `kind` that may run.
    fn max(&self, kind: Kind) -> usize {
        match kind {
            Kind::Download => self.limits.max_downloading,
            Kind::Seed => self.limits.max_seeding,
        }
        .unwrap_or(usize::MAX)
    }

    fn count(&self, kind: Kind) -> usize {
        self.running.values().filter(|&&k| k == kind).count()
    }
}

impl Session {
    /// Sets how many torrents download and seed at once, from now on (`None`: no limit).
    /// A raised limit starts queued torrents at once, first in queue order first; a
    /// lowered one queues the running torrents last in queue order until each kind is
    /// within its limit.
    pub fn set_queue_limits(&mut self, limits: QueueLimits, now: Instant) {
        self.saw(now);
        self.queue.limits = limits;
        self.settle_queue(now);
    }

    /// The queue limits in force.
    pub fn queue_limits(&self) -> QueueLimits {
        self.queue.limits
    }

    /// Moves `torrent` to `position` in queue order (0: first; past the end: last). The
    /// torrents running keep running; the order says which queued torrent starts next.
    pub fn set_queue_position(
        &mut self,
        torrent: TorrentId,
        position: usize,
        now: Instant,
    ) -> Result<(), LifecycleError> {
        self.saw(now);
        let Some(at) = self.queue.order.iter().position(|&t| t == torrent) else {
            return Err(LifecycleError::UnknownTorrent);
        };
        self.queue.order.remove(at);
        let position = position.min(self.queue.order.len());
        self.queue.order.insert(position, torrent);
        self.settle_queue(now);
        Ok(())
    }

    /// `torrent`'s place in queue order (0: first), `None` for an unknown torrent.
    pub fn queue_position(&self, torrent: TorrentId) -> Option<usize> {
        self.queue.order.iter().position(|&t| t == torrent)
    }

    /// A torrent was added: it goes last in queue order, and runs or queues at once.
    pub(super) fn queue_added(&mut self, torrent: TorrentId, now: Instant) {
        self.queue.order.push(torrent);
        self.settle_queue(now);
    }

    /// `torrent` left the session.
    pub(super) fn queue_forget(&mut self, torrent: TorrentId) {
        self.queue.order.retain(|&t| t != torrent);
        self.queue.running.remove(&torrent);
        self.queue.entering.remove(&torrent);
    }

    /// `torrent`, out of its swarm and not paused, waits for the next settle to say
    /// whether it starts or queues.
    pub(super) fn queue_enter(&mut self, torrent: TorrentId) {
        self.life.queued.insert(torrent);
        self.queue.entering.insert(torrent);
    }

    /// `torrent` was taken out of `Lifecycle::queued` (paused, rechecked or started): the
    /// user hears of it if it had been told it was queued.
    pub(super) fn queue_left(&mut self, torrent: TorrentId) {
        if !self.queue.entering.remove(&torrent) {
            self.out
                .push(Action::Event(Event::TorrentUnqueued { torrent }));
        }
    }

    /// The kind `torrent` counts in now, or `None` when it holds no slot whatever the
    /// queue says (paused, checking, removed, or the session closing).
    fn queue_kind(&self, torrent: TorrentId) -> Option<Kind> {
        if self.life.is_paused(torrent) || self.life.is_checking(torrent) {
            return None;
        }
        let t = self.torrents.get(&torrent)?;
        Some(if t.is_complete() {
            Kind::Seed
        } else {
            Kind::Download
        })
    }

    /// Settles the queue if `torrent` changed kind (a piece completed it, or a priority
    /// change made it incomplete): cheap enough to run after every piece.
    pub(super) fn queue_check(&mut self, torrent: TorrentId, now: Instant) {
        if let Some(&held) = self.queue.running.get(&torrent) {
            if self.queue_kind(torrent) != Some(held) {
                self.settle_queue(now);
            }
        }
    }

    /// Brings the queue and the seeding limits to their invariants (see the module docs
    /// and `seed_limits.rs`): frees the slots of torrents gone or changed, queues what is
    /// over a limit, starts what fits, then pauses seeds past a limit — and again while
    /// that freed slots.
    pub(super) fn settle_queue(&mut self, now: Instant) {
        if self.life.is_closing() {
            return;
        }
        loop {
            self.settle_slots(now);
            if !self.seed_limits_check(now) {
                break;
            }
        }
    }

    /// One pass of the queue (see [`Session::settle_queue`]).
    fn settle_slots(&mut self, now: Instant) {
        // Slots held by torrents that are gone, paused, checking, or of another kind now.
        let held: Vec<(TorrentId, Kind)> =
            self.queue.running.iter().map(|(&t, &k)| (t, k)).collect();
        for (torrent, kind) in held {
            if self.queue_kind(torrent) != Some(kind) {
                self.queue.running.remove(&torrent);
            }
        }
        // A lowered limit: the last running in queue order wait.
        for kind in [Kind::Download, Kind::Seed] {
            let over = self.queue.count(kind).saturating_sub(self.queue.max(kind));
            let last: Vec<TorrentId> = self
                .queue
                .order
                .iter()
                .rev()
                .filter(|t| self.queue.running.get(t) == Some(&kind))
                .take(over)
                .copied()
                .collect();
            for torrent in last {
                self.queue.running.remove(&torrent);
                self.queue_out(torrent, now);
            }
        }
        // Everyone else that may run, first in queue order first: start if there is room.
        let order = self.queue.order.clone();
        for torrent in order {
            let Some(kind) = self.queue_kind(torrent) else {
                continue;
            };
            if self.queue.running.contains_key(&torrent) {
                continue;
            }
            if self.queue.count(kind) >= self.queue.max(kind) {
                if self.queue.entering.remove(&torrent) {
                    // Out of its swarm already (resumed, rechecked): it just waits.
                    self.out
                        .push(Action::Event(Event::TorrentQueued { torrent }));
                } else if !self.life.is_queued(torrent) {
                    self.queue_out(torrent, now);
                }
                continue;
            }
            if kind == Kind::Seed && self.seed_ratio_reached(torrent) {
                // It would only announce `started` to stop at once.
                self.seed_limit_pause(torrent, crate::vocab::SeedLimit::Ratio, now);
                continue;
            }
            self.queue.running.insert(torrent, kind);
            if self.life.queued.remove(&torrent) {
                self.queue_left(torrent);
                self.rejoin_swarm(torrent, now);
            }
        }
    }

    /// Takes a running `torrent` out of its swarm into the queue.
    fn queue_out(&mut self, torrent: TorrentId, now: Instant) {
        self.life.queued.insert(torrent);
        self.leave_swarm(torrent, DisconnectReason::TorrentQueued, now);
        self.stop_torrent_announces(torrent, false, now);
        self.out
            .push(Action::Event(Event::TorrentQueued { torrent }));
    }

    /// The torrents holding a seeding slot, in id order.
    pub(super) fn queue_seeds(&self) -> Vec<TorrentId> {
        self.queue
            .running
            .iter()
            .filter(|&(_, &k)| k == Kind::Seed)
            .map(|(&t, _)| t)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_limit_is_no_limit_and_counts_are_per_kind() {
        let mut q = Queue::new(QueueLimits {
            max_downloading: Some(1),
            max_seeding: None,
        });
        assert_eq!(q.max(Kind::Download), 1);
        assert_eq!(q.max(Kind::Seed), usize::MAX);
        q.running.insert(TorrentId(0), Kind::Download);
        q.running.insert(TorrentId(1), Kind::Seed);
        q.running.insert(TorrentId(2), Kind::Seed);
        assert_eq!(q.count(Kind::Download), 1);
        assert_eq!(q.count(Kind::Seed), 2);
    }
}
