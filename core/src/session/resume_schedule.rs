//! When each torrent's resume data is saved ([`Action::SaveResume`]).
//!
//! One timer for the session: every `resume_interval` of the core's clock, each torrent
//! whose pieces (`have` or `written`) differ from what its last successful save recorded
//! gets one save. A save not yet reported blocks the next one for that torrent, so two
//! writes of the same file never race; a failed save leaves the recorded state alone, so
//! the next interval tries again. Decisions read only the session's clock and the
//! torrents' bitfields: the same inputs give the same saves.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::bitfield::Bitfield;
use crate::time::Instant;
use crate::vocab::{Action, TorrentId};

/// A torrent's state as far as saving goes.
#[derive(Debug)]
struct Tracked {
    /// What the last successful save (or the state the torrent was added with) recorded.
    saved: (Bitfield, Bitfield),
    /// The save handed out and not yet reported, with what it records.
    in_flight: Option<(Bitfield, Bitfield)>,
}

/// The session's resume-save timer and the per-torrent save state.
#[derive(Debug)]
pub(super) struct ResumeSchedule {
    interval: Duration,
    next_due: Instant,
    torrents: BTreeMap<TorrentId, Tracked>,
    /// The session is closing: no regular round any more (the final saves are the close's).
    stopped: bool,
}

impl ResumeSchedule {
    /// A schedule whose first round is due one `interval` after `now`.
    pub(super) fn new(interval: Duration, now: Instant) -> Self {
        ResumeSchedule {
            interval,
            next_due: now + interval,
            torrents: BTreeMap::new(),
            stopped: false,
        }
    }

    /// Starts saving `torrent`, counting `have`/`written` as already saved: they came from
    /// disk (a resume file or a check), so only this session's progress needs writing.
    pub(super) fn track(&mut self, torrent: TorrentId, have: &Bitfield, written: &Bitfield) {
        self.torrents.insert(
            torrent,
            Tracked {
                saved: (have.clone(), written.clone()),
                in_flight: None,
            },
        );
    }

    /// Pieces found on disk after the torrent was added (the driver's start-up check) are
    /// on disk already, like those given at `track`: they do not call for a save alone.
    pub(super) fn note_written(&mut self, torrent: TorrentId, pieces: &Bitfield) {
        if let Some(t) = self
            .torrents
            .get_mut(&torrent)
            .filter(|t| t.saved.1.len() == pieces.len())
        {
            for p in pieces.ones() {
                t.saved.1.set(p);
            }
        }
    }

    /// The data on disk changed under the saved state (a recheck, a move): the next
    /// round saves `torrent` whatever its pieces are.
    pub(super) fn must_save(&mut self, torrent: TorrentId) {
        if let Some(t) = self.torrents.get_mut(&torrent) {
            // No real torrent has zero pieces: this never equals the current state.
            t.saved = (Bitfield::new(0), Bitfield::new(0));
        }
    }

    /// When the next round is due (`None` with no torrent to save).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        (!self.torrents.is_empty() && !self.stopped).then_some(self.next_due)
    }

    /// No regular round from now on (the session closes and saves each torrent once more
    /// itself, see [`ResumeSchedule::final_save`]).
    pub(super) fn stop(&mut self) {
        self.stopped = true;
    }

    /// Stops saving `torrent` (it was removed): a late report for it is ignored.
    pub(super) fn forget(&mut self, torrent: TorrentId) {
        self.torrents.remove(&torrent);
    }

    /// Whether a save of `torrent` is out and not reported yet.
    pub(super) fn in_flight(&self, torrent: TorrentId) -> bool {
        self.torrents
            .get(&torrent)
            .is_some_and(|t| t.in_flight.is_some())
    }

    /// The last save of `torrent` (the session is closing), emitted whether or not its
    /// pieces changed (the driver flushes the files before writing it, as for every save).
    /// Counted in flight like a regular one.
    pub(super) fn final_save(
        &mut self,
        torrent: TorrentId,
        have: &Bitfield,
        written: &Bitfield,
    ) -> Action {
        if let Some(t) = self.torrents.get_mut(&torrent) {
            t.in_flight = Some((have.clone(), written.clone()));
        }
        Action::SaveResume {
            torrent,
            have: have.clone(),
            written: written.clone(),
        }
    }

    /// At or past the due time: the saves to emit, for torrents whose current pieces
    /// (`current` gives `have` and `written`) differ from their last save and that have no
    /// save out. The next round is due one interval from `now`.
    pub(super) fn due<'a>(
        &mut self,
        now: Instant,
        current: impl Fn(TorrentId) -> Option<(&'a Bitfield, &'a Bitfield)>,
    ) -> Vec<Action> {
        if now < self.next_due || self.stopped {
            return Vec::new();
        }
        self.next_due = now + self.interval;
        let mut saves = Vec::new();
        for (id, t) in self.torrents.iter_mut() {
            if t.in_flight.is_some() {
                continue;
            }
            let Some((have, written)) = current(*id) else {
                continue;
            };
            if t.saved.0 == *have && t.saved.1 == *written {
                continue;
            }
            t.in_flight = Some((have.clone(), written.clone()));
            saves.push(Action::SaveResume {
                torrent: *id,
                have: have.clone(),
                written: written.clone(),
            });
        }
        saves
    }

    /// The driver finished `torrent`'s save: on success what it wrote becomes the saved
    /// state; on failure nothing changes, so the next round retries. A report with no save
    /// out is ignored.
    pub(super) fn saved(&mut self, torrent: TorrentId, ok: bool) {
        let Some(t) = self.torrents.get_mut(&torrent) else {
            return;
        };
        if let Some(wrote) = t.in_flight.take() {
            if ok {
                t.saved = wrote;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(len: u32, set: &[u32]) -> Bitfield {
        let mut b = Bitfield::new(len);
        for &i in set {
            b.set(i);
        }
        b
    }

    #[test]
    fn saves_only_changes_one_at_a_time_and_retries_failures() {
        let t0 = Instant::from_millis(0);
        let iv = Duration::from_secs(15);
        let mut s = ResumeSchedule::new(iv, t0);
        let start = bits(4, &[0]);
        s.track(TorrentId(0), &start, &start);
        assert_eq!(s.next_deadline(), Some(t0 + iv));
        // Nothing changed: no save, even when due.
        assert!(s.due(t0 + iv, |_| Some((&start, &start))).is_empty());
        let more = bits(4, &[0, 1]);
        // Not due yet.
        assert!(s.due(t0 + iv, |_| Some((&more, &more))).is_empty());
        let saves = s.due(t0 + iv * 2, |_| Some((&more, &more)));
        assert_eq!(saves.len(), 1);
        // Out and unreported: the next round does not save again.
        let most = bits(4, &[0, 1, 2]);
        assert!(s.due(t0 + iv * 3, |_| Some((&most, &most))).is_empty());
        s.saved(TorrentId(0), false);
        // Failed: retried with the current pieces.
        let saves = s.due(t0 + iv * 4, |_| Some((&most, &most)));
        assert_eq!(
            saves,
            vec![Action::SaveResume {
                torrent: TorrentId(0),
                have: most.clone(),
                written: most.clone(),
            }]
        );
        s.saved(TorrentId(0), true);
        assert!(s.due(t0 + iv * 5, |_| Some((&most, &most))).is_empty());
    }
}
