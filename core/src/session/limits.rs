//! Rate limits at the session: the global limiters, each torrent's, and when blocks move.
//!
//! The token buckets and the rules are in [`crate::limits`]; this is where the session
//! applies them:
//! - **Uploads.** [`Session::pump_uploads`] runs after bytes were handled (requests came),
//!   on every `handle_timeout` and after [`Session::set_limits`]. It gives the peers
//!   waiting for upload tokens one block each in turn (round-robin over torrents and peers
//!   together): a block's `ReadBlock` goes out when the session's bucket and its torrent's
//!   both hold its length, which both then lose. A peer whose torrent's bucket is short
//!   goes to the back and the others keep their turns; when the session's bucket is short
//!   nobody can go. What is left sets `up_wake`, the first instant a waiting block may go,
//!   part of [`Session::poll_timeout`].
//! - **Downloads.** A torrent whose pipelines were held back for tokens
//!   (`Torrent::down_waiting`) is woken at the instant both buckets hold a block, and
//!   tops its pipelines up again.
//!
//! Invariant: after any input or command, `up_wake` is `Some` iff some peer waits for
//! upload tokens; it is the earliest instant one of them may go (never later, so no
//! block waits longer than it must; an early wake finds nothing to do and is harmless).

use super::{LifecycleError, Session};
use crate::limits::RateLimits;
use crate::time::Instant;
use crate::vocab::TorrentId;

impl Session {
    /// Sets upload and download limits from `now` on, in bytes per second (`None` or 0:
    /// unlimited): the session-wide ones with `torrent` `None`, else that torrent's own. A
    /// block moves only when both the session's and its torrent's limits allow it, so the
    /// lower of the two holds. Lifting a limit lets what waited go at once; a new limit
    /// starts with a full burst ([`crate::limits::burst_for`]). Refused for an unknown
    /// torrent.
    pub fn set_limits(
        &mut self,
        torrent: Option<TorrentId>,
        limits: RateLimits,
        now: Instant,
    ) -> Result<(), LifecycleError> {
        self.saw(now);
        let limits = limits.normalized();
        match torrent {
            None => self.limits.global.set(limits, now),
            Some(id) => match self.torrents.get_mut(&id) {
                Some(t) => t.limits.set(limits, now),
                None => return Err(LifecycleError::UnknownTorrent),
            },
        }
        // A raised or lifted limit: blocks that waited may go now, and pipelines held back
        // may grow; a lowered one is felt from the next block on.
        self.pump_uploads(now);
        let ids: Vec<TorrentId> = match torrent {
            Some(id) => vec![id],
            None => self.torrents.keys().copied().collect(),
        };
        for id in ids {
            if self.life.ticks(id) {
                self.with_torrent(id, |t, ctx| t.download_tokens_came(ctx, now));
            }
        }
        Ok(())
    }

    /// The limits in force: the session-wide ones with `torrent` `None`, else that
    /// torrent's own (`None` for an unknown torrent).
    pub fn limits(&self, torrent: Option<TorrentId>) -> Option<RateLimits> {
        match torrent {
            None => Some(self.limits.global.limits()),
            Some(id) => self.torrents.get(&id).map(|t| t.limits.limits()),
        }
    }

    /// Issues the reads of waiting upload requests the buckets allow, one block per peer
    /// per turn, and sets `up_wake` for what is left (see the module docs).
    pub(super) fn pump_uploads(&mut self, now: Instant) {
        // Peers looked at since a block last went: a full round without one ends the pump.
        let mut idle = 0;
        while idle < self.limits.waiting() {
            let Some((tid, conn)) = self.limits.front() else {
                break;
            };
            let Some(len) = self.torrents.get(&tid).and_then(|t| t.next_throttled(conn)) else {
                // Gone, or nothing waits any more (cancelled, choked, expired).
                self.limits.pop();
                continue;
            };
            if !self.limits.global.up.allows(len, now) {
                break; // nobody may go before the session's bucket refills
            }
            let Some(t) = self.torrents.get_mut(&tid) else {
                self.limits.pop();
                continue;
            };
            if !t.limits.up.allows(len, now) {
                // This torrent's bucket is short: the others keep their turns.
                self.limits.rotate();
                idle += 1;
                continue;
            }
            t.limits.up.take(len, now);
            self.limits.global.up.take(len, now);
            let more = self
                .with_torrent(tid, |t, ctx| t.issue_throttled(conn, ctx))
                .unwrap_or(false);
            if more {
                self.limits.rotate();
            } else {
                self.limits.pop();
            }
            idle = 0;
        }
        self.limits.up_wake = self.upload_wake(now);
    }

    /// The first instant a block waiting for upload tokens may go, if any waits.
    fn upload_wake(&self, now: Instant) -> Option<Instant> {
        self.limits
            .queued()
            .filter_map(|(tid, conn)| {
                let t = self.torrents.get(&tid)?;
                let len = t.next_throttled(conn)?;
                let global = self.limits.global.up.ready_at(len, now);
                Some(global.max(t.limits.up.ready_at(len, now)))
            })
            .min()
    }

    /// On `handle_timeout`: waiting uploads whose tokens came go, and torrents held back
    /// for download tokens top their pipelines up when a block's worth came.
    pub(super) fn limits_timeout(&mut self, now: Instant) {
        if self.limits.up_wake.is_some_and(|at| at <= now) {
            self.pump_uploads(now);
        }
        let due: Vec<TorrentId> = self
            .torrents
            .iter()
            .filter(|(id, t)| {
                self.life.ticks(**id)
                    && t.download_wake(&self.limits.global.down, now)
                        .is_some_and(|at| at <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.with_torrent(id, |t, ctx| t.download_tokens_came(ctx, now));
        }
    }

    /// The earliest instant a rate limit lets something move that waits for it.
    pub(super) fn limits_deadline(&self) -> Option<Instant> {
        let now = self.now;
        let down = self
            .torrents
            .iter()
            .filter(|(id, _)| self.life.ticks(**id))
            .filter_map(|(_, t)| t.download_wake(&self.limits.global.down, now))
            .min();
        crate::time::earliest([self.limits.up_wake, down])
    }
}
