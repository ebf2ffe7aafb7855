//! A torrent's life in the session and the session's own end: removing a torrent, pausing
//! and resuming it, and closing the whole session.
//!
//! - **Remove** ([`Session::remove_torrent`]): the torrent leaves at once. Its dials are
//!   cancelled, its peers disconnected ([`DisconnectReason::TorrentRemoved`]), its
//!   trackers told `stopped`, its unanswered writes given back to the write budget, and
//!   [`Event::TorrentRemoved`] emitted. Its id is never reused: every later call naming it
//!   is refused or ignored, completions included. The info-hash may be added again.
//! - **Pause** ([`Session::pause_torrent`]): no connection, no dial, inbound peers for it
//!   refused ([`DisconnectReason::TorrentPaused`]), its trackers told `stopped`. Its
//!   counters, its resume saves and the disk work already out go on. **Resume** announces
//!   `started` and dials again.
//! - **Close** ([`Session::close`]): the session leaves every swarm. At once: `stopped`
//!   announces (with the final counters), no new dial or request, inbound and half-open
//!   connections refused. Then, once every write and hash check already out has come back
//!   (or half of [`super::SessionConfig::close_timeout`] has passed), one last
//!   [`Action::SaveResume`] per torrent that has its metadata (always, changed or not: it
//!   also flushes the files) and a disconnect of every peer
//!   ([`DisconnectReason::SessionClosed`]). [`Session::is_drained`] then says when the
//!   driver may stop: every final save reported and every `stopped` answered (given
//!   [`super::SessionConfig::stopped_tracker_timeout`] each at most), or `close_timeout` passed since `close`.
//!   [`Session::poll_timeout`] returns those deadlines, so a driver wakes for them.
//!
//! - **Recheck** ([`Session::start_recheck`], then [`Session::finish_recheck`]): the
//!   torrent leaves its swarm as when paused and shows [`TorrentState::Checking`] while the
//!   driver hashes its data from disk (or moves it first); no resume save of it goes out
//!   meanwhile (its files may be moving). The check's result then *replaces* its verified
//!   pieces (pieces lost are downloaded again, file priorities kept), a resume save is due
//!   at the next round whatever it found, and the torrent rejoins its swarm unless it was
//!   paused. Pause and resume during a check only change what happens after it.
//!
//! - **Queue** (`queue.rs`): a torrent neither paused nor checking whose kind (downloading
//!   or seeding) has [`super::SessionConfig::queue_limits`] torrents running waits in
//!   [`TorrentState::Queued`]: out of its swarm as when paused
//!   ([`DisconnectReason::TorrentQueued`]), but started by the session when a slot frees
//!   up. A resume, or the end of a check, goes through the queue: it rejoins its swarm
//!   only if its kind has room. Pausing or removing a running torrent frees its slot at
//!   once.
//! - **Seeding limits** (`seed_limits.rs`): a running seed past its ratio, seeding time or
//!   idle limit is paused by the session itself, as by [`Session::pause_torrent`], with
//!   [`Event::SeedLimitReached`]; resumed with its ratio still reached, it is paused again
//!   at once.
//!
//! Invariants: a paused, queued or checking torrent holds no connection and no dial; a closing session emits
//! no `Connect` and no new block request; the final save of a torrent never goes out while
//! an earlier save of it is unreported (two saves of one file never race).

use std::collections::BTreeSet;

use super::{Action, Direction, DisconnectReason, Event, Session, TorrentId};
use crate::info_hash::InfoHash;
use crate::time::Instant;

/// Why a lifecycle command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// No torrent with this id (never added, or removed).
    #[error("no such torrent")]
    UnknownTorrent,
    /// The session is closing: torrents are neither paused nor resumed any more.
    #[error("the session is closing")]
    Closing,
    /// A recheck needs the torrent's pieces: a magnet's metadata is not there yet.
    #[error("the torrent's metadata is not known yet")]
    NoMetadata,
    /// A recheck of this torrent is under way already.
    #[error("the torrent is being checked")]
    Checking,
    /// [`Session::finish_recheck`] without [`Session::start_recheck`].
    #[error("the torrent is not being checked")]
    NotChecking,
    /// The check's result does not have the torrent's piece count.
    #[error("the check found {got} pieces, the torrent has {expected}")]
    HaveMismatch {
        /// Pieces in the result.
        got: u32,
        /// Pieces of the torrent.
        expected: u32,
    },
}

/// Where a torrent stands ([`Session::torrent_state`]); see `torrent/STATE.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TorrentState {
    /// A magnet torrent fetching its info dictionary from peers.
    FetchingMetadata,
    /// The metadata arrived; the driver is checking the storage
    /// ([`Session::metadata_ready`] not called yet), or the metadata was unusable.
    Checking,
    /// Wanted pieces are missing: downloading.
    Downloading,
    /// Every wanted piece is verified: only uploading.
    Seeding,
    /// Paused by [`Session::pause_torrent`] or by a seeding limit
    /// ([`Event::SeedLimitReached`]).
    Paused,
    /// Waiting in the queue for a download slot (`seed: false`; magnet links fetching
    /// their metadata included) or a seeding slot (`seed: true`): no connection, no dial,
    /// no announce, as when paused, but it starts by itself when a slot frees up (see
    /// [`super::SessionConfig::queue_limits`]). Transmission's status 3 and 5.
    Queued {
        /// Whether it waits to seed (every wanted piece verified) rather than download.
        seed: bool,
    },
    /// The session is closing ([`Session::close`]).
    Closing,
}

/// The session's close in progress.
#[derive(Debug)]
struct Closing {
    /// When `close` was called.
    since: Instant,
    /// Whether the final saves were started (and the peers disconnected).
    saving: bool,
    /// Final saves handed out and not reported.
    saves_out: BTreeSet<TorrentId>,
    /// Torrents whose final save waits for an earlier save of theirs to be reported.
    saves_waiting: BTreeSet<TorrentId>,
    /// Final saves reported, with whether they succeeded.
    saved: Vec<(TorrentId, bool)>,
}

/// Paused torrents and the close in progress (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Lifecycle {
    paused: BTreeSet<TorrentId>,
    /// Torrents between `start_recheck` and `finish_recheck`.
    checking: BTreeSet<TorrentId>,
    /// Torrents waiting in the queue for a slot (see `queue.rs`): out of their swarm as if
    /// paused, but started by the session itself.
    pub(super) queued: BTreeSet<TorrentId>,
    closing: Option<Closing>,
}

impl Lifecycle {
    /// Whether `torrent` is paused.
    pub(super) fn is_paused(&self, torrent: TorrentId) -> bool {
        self.paused.contains(&torrent)
    }

    /// Whether `torrent` waits in the queue.
    pub(super) fn is_queued(&self, torrent: TorrentId) -> bool {
        self.queued.contains(&torrent)
    }

    /// Whether the session is closing.
    pub(super) fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    /// Whether `torrent` runs its timers (choking, keep-alives, dialling): not while
    /// paused, queued or checked (it has no peer) nor while the session closes.
    pub(super) fn ticks(&self, torrent: TorrentId) -> bool {
        self.closing.is_none()
            && !self.is_paused(torrent)
            && !self.is_checking(torrent)
            && !self.is_queued(torrent)
    }

    /// Whether `torrent`'s data is being checked (or moved) by the driver.
    pub(super) fn is_checking(&self, torrent: TorrentId) -> bool {
        self.checking.contains(&torrent)
    }

    /// Whether `torrent` may dial or take a connection.
    pub(super) fn connects(&self, torrent: TorrentId) -> bool {
        self.ticks(torrent)
    }

    /// Why a connection for `torrent` is refused, if it is.
    fn refusal(&self, torrent: TorrentId) -> Option<DisconnectReason> {
        if self.closing.is_some() {
            Some(DisconnectReason::SessionClosed)
        } else if self.is_paused(torrent) || self.is_checking(torrent) {
            Some(DisconnectReason::TorrentPaused)
        } else if self.is_queued(torrent) {
            Some(DisconnectReason::TorrentQueued)
        } else {
            None
        }
    }
}

impl Session {
    /// Removes `torrent` from the session (see the module docs): its peers are
    /// disconnected, its dials cancelled, its trackers told `stopped`, its pending writes,
    /// reads, hash checks and saves forgotten, and [`Event::TorrentRemoved`] emitted. The
    /// id is refused from now on; the info-hash may be added again under a new id.
    pub fn remove_torrent(
        &mut self,
        torrent: TorrentId,
        now: Instant,
    ) -> Result<(), LifecycleError> {
        self.saw(now);
        if !self.torrents.contains_key(&torrent) {
            return Err(LifecycleError::UnknownTorrent);
        }
        self.leave_swarm(torrent, DisconnectReason::TorrentRemoved, now);
        self.stop_torrent_announces(torrent, true, now);
        self.forget_torrent_trackers(torrent);
        let Some(t) = self.torrents.remove(&torrent) else {
            return Err(LifecycleError::UnknownTorrent);
        };
        // Its blocks waiting for the disk are no longer the session's to hold.
        for _ in 0..t.writes_pending() {
            self.writes.write_done();
        }
        // Every name it went by: its info-hash and, for a hybrid, its v2 alias.
        let names: Vec<InfoHash> = self
            .by_hash
            .iter()
            .filter(|&(_, &id)| id == torrent)
            .map(|(hash, _)| *hash)
            .collect();
        for name in names {
            self.by_hash.remove(&name);
            self.served.remove(&name.0);
        }
        self.resumes.forget(torrent);
        self.stalls.remove(&torrent);
        self.life.paused.remove(&torrent);
        self.life.checking.remove(&torrent);
        self.life.queued.remove(&torrent);
        self.queue_forget(torrent);
        self.seeds.forget(torrent);
        if let Some(c) = self.life.closing.as_mut() {
            c.saves_out.remove(&torrent);
            c.saves_waiting.remove(&torrent);
        }
        self.out
            .push(Action::Event(Event::TorrentRemoved { torrent }));
        if self.writes.take_released() {
            let ids: Vec<TorrentId> = self.torrents.keys().copied().collect();
            for id in ids {
                self.with_torrent(id, |t, ctx| t.fill_all_pipelines(ctx, now));
            }
        }
        // Its slot in the queue is free: the next queued torrent starts.
        self.settle_queue(now);
        self.close_progress(now);
        Ok(())
    }

    /// Pauses `torrent` (see the module docs): its peers are disconnected
    /// ([`DisconnectReason::TorrentPaused`]), its dials cancelled, its trackers told
    /// `stopped`; inbound peers for it are refused until [`Session::resume_torrent`].
    /// A queued torrent leaves the queue ([`Event::TorrentUnqueued`]); a running one frees
    /// its queue slot for the next queued torrent. Pausing a paused torrent does nothing.
    pub fn pause_torrent(
        &mut self,
        torrent: TorrentId,
        now: Instant,
    ) -> Result<(), LifecycleError> {
        self.saw(now);
        self.lifecycle_command_allowed(torrent)?;
        self.pause_now(torrent, now);
        self.settle_queue(now);
        Ok(())
    }

    /// Pauses `torrent` (the user's pause or a seeding limit's); `false` if it was paused
    /// already. The queue is not settled here: the caller does it.
    pub(super) fn pause_now(&mut self, torrent: TorrentId, now: Instant) -> bool {
        if !self.life.paused.insert(torrent) {
            return false;
        }
        if self.life.queued.remove(&torrent) {
            // Out of its swarm already: it only changes why.
            self.queue_left(torrent);
        } else if !self.life.is_checking(torrent) {
            // A checking torrent has left its swarm already: it just stays out after.
            self.leave_swarm(torrent, DisconnectReason::TorrentPaused, now);
            self.stop_torrent_announces(torrent, false, now);
        }
        true
    }

    /// Resumes a paused `torrent`: it announces `started` and dials its known peers again,
    /// or, when its kind (downloading or seeding) has no free queue slot, waits queued
    /// ([`Event::TorrentQueued`]). A seed whose ratio limit is reached is paused again at
    /// once ([`Event::SeedLimitReached`]): raise or clear the limit first
    /// ([`Session::set_seed_limits`]); its time limits count afresh from the resume.
    /// Resuming a torrent that is not paused does nothing.
    pub fn resume_torrent(
        &mut self,
        torrent: TorrentId,
        now: Instant,
    ) -> Result<(), LifecycleError> {
        self.saw(now);
        self.lifecycle_command_allowed(torrent)?;
        if !self.life.paused.remove(&torrent) || self.life.is_checking(torrent) {
            // A checking torrent rejoins its swarm when the check is done.
            return Ok(());
        }
        // Out of its swarm: the queue decides whether it starts now.
        self.queue_enter(torrent);
        self.settle_queue(now);
        Ok(())
    }

    /// Starts a recheck of `torrent` (see the module docs): it leaves its swarm and shows
    /// [`TorrentState::Checking`] until [`Session::finish_recheck`]. The driver should
    /// start reading its files only once the disk jobs out for it have come back.
    pub fn start_recheck(
        &mut self,
        torrent: TorrentId,
        now: Instant,
    ) -> Result<(), LifecycleError> {
        self.saw(now);
        self.lifecycle_command_allowed(torrent)?;
        if self.life.is_checking(torrent) {
            return Err(LifecycleError::Checking);
        }
        if self
            .torrents
            .get(&torrent)
            .and_then(|t| t.have_and_written())
            .is_none()
        {
            return Err(LifecycleError::NoMetadata);
        }
        let queued = self.life.queued.remove(&torrent);
        if queued {
            self.queue_left(torrent);
        }
        let running = !self.life.is_paused(torrent) && !queued;
        self.life.checking.insert(torrent);
        if running {
            self.leave_swarm(torrent, DisconnectReason::TorrentPaused, now);
            self.stop_torrent_announces(torrent, false, now);
        }
        // Out of its swarm, it holds no queue slot meanwhile.
        self.settle_queue(now);
        Ok(())
    }

    /// Ends a recheck: `have` (the pieces the check verified on disk) becomes the
    /// torrent's verified pieces, whatever it had before; a resume save of it is due at
    /// the next round; it rejoins its swarm unless paused. On an error nothing changes
    /// (a result of the wrong length leaves the torrent checking: call again).
    pub fn finish_recheck(
        &mut self,
        torrent: TorrentId,
        have: crate::bitfield::Bitfield,
        now: Instant,
    ) -> Result<(), LifecycleError> {
        self.saw(now);
        if !self.torrents.contains_key(&torrent) {
            return Err(LifecycleError::UnknownTorrent);
        }
        if !self.life.is_checking(torrent) {
            return Err(LifecycleError::NotChecking);
        }
        let replaced = self
            .with_torrent(torrent, |t, ctx| t.replace_have(have, ctx))
            .ok_or(LifecycleError::UnknownTorrent)?;
        replaced?;
        self.life.checking.remove(&torrent);
        self.resumes.must_save(torrent);
        if !self.life.is_paused(torrent) && !self.life.is_closing() {
            // The queue decides whether it rejoins now (it may have become a seed).
            self.queue_enter(torrent);
            self.settle_queue(now);
        }
        Ok(())
    }

    /// Announces `started` and dials again (a resume, a queued torrent starting, or the end
    /// of a check).
    pub(super) fn rejoin_swarm(&mut self, torrent: TorrentId, now: Instant) {
        self.restart_torrent_announces(torrent, now);
        self.lsd_track(torrent, now);
        self.with_torrent(torrent, |t, ctx| {
            t.maybe_connect(ctx, now);
            t.restart_web_seeds(ctx, now);
        });
        self.pump_announces(now);
    }

    fn lifecycle_command_allowed(&self, torrent: TorrentId) -> Result<(), LifecycleError> {
        if !self.torrents.contains_key(&torrent) {
            Err(LifecycleError::UnknownTorrent)
        } else if self.life.is_closing() {
            Err(LifecycleError::Closing)
        } else {
            Ok(())
        }
    }

    /// Where `torrent` stands (`None`: no such torrent).
    pub fn torrent_state(&self, torrent: TorrentId) -> Option<TorrentState> {
        let t = self.torrents.get(&torrent)?;
        Some(if self.life.is_closing() {
            TorrentState::Closing
        } else if self.life.is_checking(torrent) {
            TorrentState::Checking
        } else if self.life.is_paused(torrent) {
            TorrentState::Paused
        } else if self.life.is_queued(torrent) {
            TorrentState::Queued {
                seed: t.is_complete(),
            }
        } else if t.is_fetching_metadata() {
            TorrentState::FetchingMetadata
        } else if t.awaiting_metadata() {
            TorrentState::Checking
        } else if t.is_complete() {
            TorrentState::Seeding
        } else {
            TorrentState::Downloading
        })
    }

    /// Closes the session (see the module docs): `stopped` announces now, the final
    /// resume saves once the disk work out has come back, then every peer disconnected.
    /// Keep driving the session as usual (carry out every action, feed completions and
    /// announce answers, call `handle_timeout` at `poll_timeout`) until
    /// [`Session::is_drained`]. Calling it again does nothing.
    pub fn close(&mut self, now: Instant) {
        self.saw(now);
        if self.life.closing.is_some() {
            return;
        }
        self.life.closing = Some(Closing {
            since: now,
            saving: false,
            saves_out: BTreeSet::new(),
            saves_waiting: BTreeSet::new(),
            saved: Vec::new(),
        });
        self.writes.close();
        self.resumes.stop();
        self.admission.cancel_dials(None);
        for t in self.torrents.values_mut() {
            t.stop_dialling();
            t.halt_web_seeds();
        }
        // Half-open connections have traded nothing: they go now.
        let mut handshaking: Vec<_> = self.handshaking.keys().copied().collect();
        handshaking.sort_unstable();
        for conn in handshaking {
            self.drop_handshaking(conn, DisconnectReason::SessionClosed);
        }
        self.stop_announces(now);
        self.close_progress(now);
    }

    /// Whether a closed session is done: every final resume save reported and every
    /// announce answered (or its [`SessionConfig::stopped_tracker_timeout`] passed), or
    /// [`SessionConfig::close_timeout`] passed since [`Session::close`]. Always `false`
    /// before `close`. Actions still queued should be carried out before stopping.
    ///
    /// [`SessionConfig::stopped_tracker_timeout`]: super::SessionConfig::stopped_tracker_timeout
    /// [`SessionConfig::close_timeout`]: super::SessionConfig::close_timeout
    pub fn is_drained(&self) -> bool {
        let Some(c) = &self.life.closing else {
            return false;
        };
        if self.now >= c.since + self.config.close_timeout {
            return true;
        }
        // Each announce out has its own deadline (`stopped_tracker_timeout` once leaving):
        // the tracker code drops it from the count when it passes.
        let announced = self.trackers.announces_in_flight() == 0;
        c.saving && c.saves_out.is_empty() && c.saves_waiting.is_empty() && announced
    }

    /// The final saves reported during [`Session::close`], in the order they came, with
    /// whether each succeeded. A torrent missing here had no final save reported (it has
    /// no metadata yet, or its save did not come back in time).
    pub fn final_saves(&self) -> Vec<(TorrentId, bool)> {
        self.life
            .closing
            .as_ref()
            .map(|c| c.saved.clone())
            .unwrap_or_default()
    }

    /// The close's next deadline, if one is pending (for `poll_timeout`).
    pub(super) fn close_deadline(&self) -> Option<Instant> {
        let c = self.life.closing.as_ref()?;
        if self.is_drained() {
            return None;
        }
        let mut next = c.since + self.config.close_timeout;
        if !c.saving {
            next = next.min(c.since + self.config.close_timeout / 2);
        }
        Some(next)
    }

    /// Moves the close on: once the disk work out has come back (or half the close's time
    /// is gone), the final saves and the disconnects.
    pub(super) fn close_progress(&mut self, now: Instant) {
        let Some(c) = &self.life.closing else {
            return;
        };
        if c.saving {
            return;
        }
        let disk_busy = self.torrents.values().any(|t| t.disk_work_pending());
        if disk_busy && now < c.since + self.config.close_timeout / 2 {
            return;
        }
        let ids: Vec<TorrentId> = self.torrents.keys().copied().collect();
        if let Some(c) = self.life.closing.as_mut() {
            c.saving = true;
        }
        for id in ids {
            if self.resumes.in_flight(id) {
                if let Some(c) = self.life.closing.as_mut() {
                    c.saves_waiting.insert(id);
                }
            } else {
                self.emit_final_save(id);
            }
            let conns: Vec<_> = self
                .torrents
                .get(&id)
                .map(|t| t.conns().collect())
                .unwrap_or_default();
            self.with_torrent(id, |t, ctx| {
                for conn in conns {
                    t.disconnect(conn, DisconnectReason::SessionClosed, ctx, now);
                }
            });
        }
    }

    /// Emits `torrent`'s final save, if it has its metadata (nothing to save otherwise).
    fn emit_final_save(&mut self, torrent: TorrentId) {
        let Some((have, written)) = self
            .torrents
            .get(&torrent)
            .and_then(|t| t.have_and_written())
        else {
            return;
        };
        let save = self.resumes.final_save(torrent, have, written);
        if let Some(c) = self.life.closing.as_mut() {
            c.saves_out.insert(torrent);
        }
        self.out.push(save);
    }

    /// A save of `torrent` was reported while closing: a final one is recorded, an earlier
    /// one releases the final save that waited for it.
    pub(super) fn close_saved(&mut self, torrent: TorrentId, ok: bool) {
        let Some(c) = self.life.closing.as_mut() else {
            return;
        };
        if c.saves_out.remove(&torrent) {
            c.saved.push((torrent, ok));
        } else if c.saves_waiting.remove(&torrent) {
            self.emit_final_save(torrent);
        }
    }

    /// Whether a connection for `torrent` is refused now, and why.
    pub(super) fn connection_refusal(&self, torrent: TorrentId) -> Option<DisconnectReason> {
        if !self.torrents.contains_key(&torrent) {
            return Some(DisconnectReason::TorrentRemoved);
        }
        self.life.refusal(torrent)
    }

    /// Whether an action for `torrent` still goes out: work queued for a torrent removed
    /// since is dropped, and so are dials of a paused torrent or a closing session.
    pub(super) fn still_wanted(&self, action: &Action) -> bool {
        match action {
            Action::Connect { torrent, .. } => {
                self.torrents.contains_key(torrent) && self.life.connects(*torrent)
            }
            Action::WriteBlock { torrent, .. }
            | Action::ReadBlock { torrent, .. }
            | Action::VerifyPiece { torrent, .. }
            | Action::SaveResume { torrent, .. } => self.torrents.contains_key(torrent),
            Action::WebSeedRequest { torrent, .. } => {
                self.torrents.contains_key(torrent) && self.life.connects(*torrent)
            }
            _ => true,
        }
    }

    /// Ends `torrent`'s connections and dials for `reason` (pause, queue, removal), without
    /// counting anything against the peers.
    pub(super) fn leave_swarm(
        &mut self,
        torrent: TorrentId,
        reason: DisconnectReason,
        now: Instant,
    ) {
        self.admission.cancel_dials(Some(torrent));
        let mut half_open: Vec<_> = self
            .handshaking
            .iter()
            .filter(|(_, h)| h.direction == Direction::Outbound(torrent))
            .map(|(c, _)| *c)
            .collect();
        half_open.sort_unstable();
        for conn in half_open {
            self.drop_handshaking(conn, reason.clone());
        }
        let conns: Vec<_> = self
            .torrents
            .get(&torrent)
            .map(|t| t.conns().collect())
            .unwrap_or_default();
        self.with_torrent(torrent, |t, ctx| {
            t.stop_dialling();
            t.halt_web_seeds();
            for conn in conns {
                t.disconnect(conn, reason.clone(), ctx, now);
            }
        });
    }

    /// Closes a connection still in its handshake for `reason`, counting nothing against
    /// its address.
    pub(super) fn drop_handshaking(&mut self, conn: super::ConnId, reason: DisconnectReason) {
        if self.handshaking.remove(&conn).is_some() {
            self.out.discard(conn);
            self.out.push(Action::Disconnect { conn, reason });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closing(at: Instant) -> Closing {
        Closing {
            since: at,
            saving: false,
            saves_out: BTreeSet::new(),
            saves_waiting: BTreeSet::new(),
            saved: Vec::new(),
        }
    }

    #[test]
    fn paused_torrents_and_a_closing_session_refuse_connections_and_do_not_tick() {
        let (a, b) = (TorrentId(0), TorrentId(1));
        let mut life = Lifecycle::default();
        assert!(life.ticks(a) && life.refusal(a).is_none());
        life.paused.insert(a);
        assert!(!life.ticks(a) && life.ticks(b));
        assert_eq!(life.refusal(a), Some(DisconnectReason::TorrentPaused));
        assert_eq!(life.refusal(b), None);
        life.closing = Some(closing(Instant::ZERO));
        assert!(!life.ticks(b) && !life.connects(b));
        // Closing outranks pausing: the session is going, whatever the torrent's state.
        assert_eq!(life.refusal(a), Some(DisconnectReason::SessionClosed));
    }
}
