//! The announce lifecycle of one torrent over its trackers (BEP 3 events, BEP 12 tiers), as
//! a sans-IO state machine: it says *when* to announce, to *which* URL and with which
//! `event`; the session fills in the counters and the driver carries the exchange out.
//!
//! Rules it keeps:
//! - **Rounds.** An announce is a round over the trackers in order (tier by tier, BEP 12);
//!   it ends at the first answer. One tracker is asked first; another is asked only when
//!   it failed or when every attempt out has waited the *attempt deadline*
//!   ([`ATTEMPT_DEADLINE`] by default, see [`Announcer::set_attempt_deadline`]). Attempts
//!   passed over stay out (the session's hard time-out ends them) and their answer still
//!   counts: its peers are dialled and it ends the round if none came before.
//! - **Why a deadline rather than every tier at once** (libtorrent's
//!   `announce_to_all_tiers`): asking every tier at once multiplies every tracker's load
//!   by the tier count for the common case of a healthy first tier, and BEP 12 means the
//!   tiers as fallbacks. A deadline keeps that meaning and still bounds the harm of a
//!   tracker that answers at 1 byte/s, or never, to one deadline per round; a BEP 15
//!   tracker still gets its retransmissions, since the attempt stays out.
//! - **Missed trackers go last.** A tracker whose last attempt failed or was passed over
//!   at its deadline is asked after every tracker that did not miss, in every later round,
//!   until it answers in time again. BEP 12's reorder (a tracker that answers moves to the
//!   front of its tier) is done only for an answer in time, so a slow tracker never gets
//!   first place back by being slow.
//! - **Events.** `started` until a tracker accepts one; `completed` once, when the download
//!   finishes after a `started` went through; otherwise none. `stopped` is owed only to a
//!   tracker that accepted us, and is sent once, on [`Announcer::stop`]. A download that
//!   stops right after finishing first tells the tracker `completed` (so it counts the
//!   download), then `stopped`, in that order: the `stopped` waits for the `completed`'s
//!   answer or failure.
//! - **Timing.** The next regular round is due after the tracker's `interval` (clamped to
//!   [`MIN_INTERVAL`]..=[`MAX_INTERVAL`]). A torrent that has no peer at all may ask again
//!   early, but never before the tracker's `min interval`.
//! - **Failures never stop a download.** A failed tracker passes the turn to the next one at
//!   once; when every tracker of a round has failed, the next round starts after a back-off
//!   doubling from [`RETRY_BASE`] up to [`RETRY_MAX`].
//! - **Bounded.** At most one attempt per tracker is out; a new attempt to a tracker
//!   replaces an old one still out.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::time::Instant;
use crate::tracker::{AnnounceEvent, AnnounceResponse};

/// Shortest regular interval honoured, whatever a tracker says (a hostile or broken
/// `interval: 0` must not make us hammer it).
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// Longest regular interval honoured: a tracker cannot make us go silent for a day.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// `min interval` assumed when a tracker gives none, for early announces of a torrent
/// without peers.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(30);
/// Wait after the first round in which every tracker failed.
pub const RETRY_BASE: Duration = Duration::from_secs(15);
/// The longest wait between rounds of failing trackers.
pub const RETRY_MAX: Duration = Duration::from_secs(30 * 60);
/// How long one tracker has before the next one is asked too (the default; the session
/// sets [`crate::session::SessionConfig::tracker_attempt_timeout`]). libtorrent gives a
/// tracker 10 s without a byte (`tracker_receive_timeout`); 15 s also lets a BEP 15
/// tracker's first retransmission go out before another is asked.
pub const ATTEMPT_DEADLINE: Duration = Duration::from_secs(15);

/// An announce that is due: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceDue {
    /// The tracker's announce URL.
    pub url: String,
    /// The event to send.
    pub event: AnnounceEvent,
    /// The `tracker id` this tracker gave us before, to send back.
    pub tracker_id: Option<String>,
}

/// An exchange out.
#[derive(Clone, Debug)]
struct Attempt {
    url: String,
    event: AnnounceEvent,
    sent_at: Instant,
    /// Its deadline passed and the next tracker was asked: an answer still counts, but it
    /// does not clear the miss.
    passed_over: bool,
    /// Part of the round going on (not one left out after another tracker answered).
    current: bool,
}

/// The round going on: the trackers in the order they are asked, and how many were.
#[derive(Clone, Debug)]
struct Round {
    order: Vec<String>,
    next: usize,
}

/// One torrent's trackers and announce schedule. See the module docs.
#[derive(Clone, Debug)]
pub struct Announcer {
    tiers: Vec<Vec<String>>,
    /// Trackers whose last attempt failed or was passed over: asked after the others.
    missed: BTreeSet<String>,
    round: Option<Round>,
    attempts: Vec<Attempt>,
    attempt_deadline: Duration,
    next_at: Instant,
    /// A tracker accepted `started` (so later announces carry no event, and `stopped` is
    /// owed).
    started: bool,
    /// The download finished and no tracker has been told yet.
    completed_owed: bool,
    stopped: bool,
    /// After `stop`: a `stopped` is still to be sent once the `completed` out is answered.
    stop_owed: bool,
    /// Rounds in a row in which every tracker failed.
    failed_rounds: u32,
    last_success: Option<Instant>,
    min_interval: Duration,
    /// The tracker that last answered, owed the `stopped`.
    last_working: Option<String>,
    tracker_ids: Vec<(String, String)>,
}

impl Announcer {
    /// An announcer over `tiers` (BEP 12 `announce-list`, or one tier holding `announce`).
    /// Empty URLs and URLs repeated in an earlier place are dropped, as are tiers left
    /// empty; each tier is shuffled with `rng`. The first announce is due at `now`.
    pub fn new(tiers: Vec<Vec<String>>, rng: &mut fastrand::Rng, now: Instant) -> Self {
        let mut seen: Vec<String> = Vec::new();
        let mut clean: Vec<Vec<String>> = Vec::new();
        for tier in tiers {
            let mut kept = Vec::new();
            for url in tier {
                let url = url.trim().to_string();
                if url.is_empty() || seen.contains(&url) {
                    continue;
                }
                seen.push(url.clone());
                kept.push(url);
            }
            if !kept.is_empty() {
                rng.shuffle(&mut kept);
                clean.push(kept);
            }
        }
        Announcer {
            tiers: clean,
            missed: BTreeSet::new(),
            round: None,
            attempts: Vec::new(),
            attempt_deadline: ATTEMPT_DEADLINE,
            next_at: now,
            started: false,
            completed_owed: false,
            stopped: false,
            stop_owed: false,
            failed_rounds: 0,
            last_success: None,
            min_interval: DEFAULT_MIN_INTERVAL,
            last_working: None,
            tracker_ids: Vec::new(),
        }
    }

    /// Sets how long an attempt is waited for before the next tracker is asked too.
    pub fn set_attempt_deadline(&mut self, deadline: Duration) {
        self.attempt_deadline = deadline;
    }

    /// Whether there is no tracker at all.
    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    /// The tiers in their current order (trackers that answered in time first in their
    /// tier).
    pub fn tiers(&self) -> &[Vec<String>] {
        &self.tiers
    }

    /// Whether an exchange is out.
    pub fn in_flight(&self) -> bool {
        !self.attempts.is_empty()
    }

    /// Whether the tracker at `url` missed its last attempt (failed or was passed over),
    /// so later rounds ask it after the others.
    pub fn missed(&self, url: &str) -> bool {
        self.missed.contains(url)
    }

    /// The announce to start now, if one is due. `starving`: the torrent has no peer and
    /// no address left to try, so an early announce is allowed (after `min interval`).
    /// Call it until it returns `None`: a round past its attempt deadline yields the next
    /// tracker while the slow one stays out.
    pub fn poll(&mut self, now: Instant, starving: bool) -> Option<AnnounceDue> {
        if self.stopped && self.stop_owed && self.attempts.is_empty() {
            self.stop_owed = false;
            return self.stopped_due();
        }
        if self.stopped || self.tiers.is_empty() {
            return None;
        }
        match &self.round {
            None => {
                let early_ok = starving
                    && self.started
                    && self
                        .last_success
                        .is_some_and(|at| now - at >= self.min_interval);
                if now < self.next_at && !early_ok {
                    return None;
                }
                self.round = Some(Round {
                    order: self.round_order(),
                    next: 0,
                });
            }
            Some(round) => {
                if round.next >= round.order.len() || self.waiting_on_current(now) {
                    return None;
                }
            }
        }
        let round = self.round.as_mut()?;
        let url = round.order.get(round.next)?.clone();
        round.next += 1;
        // Every attempt of the round still out waited its deadline: it is passed over.
        for a in self.attempts.iter_mut().filter(|a| a.current) {
            if !a.passed_over {
                a.passed_over = true;
                self.missed.insert(a.url.clone());
            }
        }
        let event = if !self.started {
            AnnounceEvent::Started
        } else if self.completed_owed {
            AnnounceEvent::Completed
        } else {
            AnnounceEvent::None
        };
        // One attempt per tracker: an old one still out is replaced.
        self.attempts.retain(|a| a.url != url);
        self.attempts.push(Attempt {
            url: url.clone(),
            event,
            sent_at: now,
            passed_over: false,
            current: true,
        });
        Some(AnnounceDue {
            tracker_id: self.tracker_id(&url),
            url,
            event,
        })
    }

    /// Whether an attempt of the round is still within its deadline (so the next tracker
    /// waits).
    fn waiting_on_current(&self, now: Instant) -> bool {
        self.attempts
            .iter()
            .any(|a| a.current && now < a.sent_at + self.attempt_deadline)
    }

    /// The trackers in the order a new round asks them: tier by tier, those that missed
    /// their last attempt after all the others.
    fn round_order(&self) -> Vec<String> {
        let all = self.tiers.iter().flatten();
        all.clone()
            .filter(|u| !self.missed.contains(*u))
            .chain(all.filter(|u| self.missed.contains(*u)))
            .cloned()
            .collect()
    }

    /// The tracker at `url` answered an exchange out.
    pub fn handle_response(&mut self, url: &str, response: &AnnounceResponse, now: Instant) {
        let Some(attempt) = self.take_attempt(url) else {
            return;
        };
        if self.stopped {
            // The `completed` of a shutdown went through: the `stopped` follows at once.
            self.completed_owed = false;
            self.next_at = now;
            return;
        }
        match attempt.event {
            AnnounceEvent::Started => self.started = true,
            AnnounceEvent::Completed => self.completed_owed = false,
            AnnounceEvent::None | AnnounceEvent::Stopped => {}
        }
        if let Some(id) = &response.tracker_id {
            self.tracker_ids.retain(|(u, _)| u != url);
            self.tracker_ids.push((url.to_string(), id.clone()));
        }
        if !attempt.passed_over {
            // In time: BEP 12's reorder, to the front of its tier, and no longer missed.
            self.missed.remove(url);
            if let Some(tier) = self.tiers.iter_mut().find(|t| t.iter().any(|u| u == url)) {
                if let Some(index) = tier.iter().position(|u| u == url) {
                    let t = tier.remove(index);
                    tier.insert(0, t);
                }
            }
        }
        self.last_success = Some(now);
        self.last_working = Some(attempt.url);
        self.min_interval = response
            .min_interval
            .map_or(DEFAULT_MIN_INTERVAL, |s| Duration::from_secs(u64::from(s)))
            .clamp(MIN_INTERVAL, MAX_INTERVAL);
        if self.round.is_none() {
            // A late answer after the round ended: its peers count, the schedule stands.
            if self.completed_owed {
                self.next_at = now;
            }
            return;
        }
        // The round's first answer ends it; attempts still out are no longer waited for.
        self.round = None;
        for a in &mut self.attempts {
            a.current = false;
        }
        self.failed_rounds = 0;
        let interval = Duration::from_secs(u64::from(response.interval))
            .max(self.min_interval)
            .clamp(MIN_INTERVAL, MAX_INTERVAL);
        self.next_at = if self.completed_owed {
            // The download finished while this announce was out: tell the tracker now.
            now
        } else {
            now + interval
        };
    }

    /// The exchange out with `url` failed (unreachable, time-out, `failure reason`): the
    /// next tracker gets the turn at once; after a whole round of failures, back off.
    pub fn handle_failure(&mut self, url: &str, now: Instant) {
        let Some(attempt) = self.take_attempt(url) else {
            return;
        };
        if self.stopped {
            // The `completed` of a shutdown: the `stopped` follows at once regardless.
            self.next_at = now;
            return;
        }
        self.missed.insert(attempt.url);
        if !attempt.current {
            return;
        }
        let Some(round) = &self.round else {
            return;
        };
        if self.attempts.iter().any(|a| a.current) {
            // Others are out: `poll` asks the next tracker once they passed their deadline
            // (they did already, unless this one was not the newest).
            return;
        }
        if round.next < round.order.len() {
            self.next_at = now;
            return;
        }
        self.round = None;
        self.failed_rounds = self.failed_rounds.saturating_add(1);
        let backoff = RETRY_BASE
            .saturating_mul(1u32 << (self.failed_rounds - 1).min(16))
            .min(RETRY_MAX);
        self.next_at = now + backoff;
    }

    /// The download just finished: owe the trackers a `completed`, sent at once if a
    /// `started` went through or is out (a tracker heard `left > 0` from us). Before any
    /// `started`, nothing is owed: the `started` itself will say `left = 0`.
    pub fn completed(&mut self, now: Instant) {
        let started_out = self
            .attempts
            .iter()
            .any(|a| a.event == AnnounceEvent::Started);
        if !self.started && !started_out {
            return;
        }
        self.completed_owed = true;
        if self.round.is_none() {
            self.next_at = now;
        }
    }

    /// Leaves the swarm: no regular announce after this. Returns the announce to send now,
    /// if any: the `stopped` owed to the tracker that last accepted us or, when the
    /// download finished and no tracker was told yet, a `completed` first (then
    /// [`Announcer::poll`] yields the `stopped` once the `completed` is answered or failed).
    pub fn stop(&mut self) -> Option<AnnounceDue> {
        if self.stopped {
            return None;
        }
        self.stopped = true;
        self.attempts.clear();
        self.round = None;
        if !self.started {
            return None;
        }
        let url = self.last_working.clone()?;
        if self.completed_owed {
            self.stop_owed = true;
            self.attempts.push(Attempt {
                url: url.clone(),
                event: AnnounceEvent::Completed,
                sent_at: self.next_at,
                passed_over: false,
                current: true,
            });
            return Some(AnnounceDue {
                tracker_id: self.tracker_id(&url),
                url,
                event: AnnounceEvent::Completed,
            });
        }
        self.stopped_due()
    }

    fn stopped_due(&self) -> Option<AnnounceDue> {
        let url = self.last_working.clone()?;
        Some(AnnounceDue {
            tracker_id: self.tracker_id(&url),
            url,
            event: AnnounceEvent::Stopped,
        })
    }

    /// When [`Announcer::poll`] will next have something (ignoring early announces):
    /// the next round, or the next tracker of a round once the attempts out pass their
    /// deadline; `None` while a round only waits for answers, and after `stop`.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.stopped && self.stop_owed && self.attempts.is_empty() {
            return Some(self.next_at);
        }
        if self.stopped || self.tiers.is_empty() {
            return None;
        }
        let Some(round) = &self.round else {
            return Some(self.next_at);
        };
        if round.next >= round.order.len() {
            return None;
        }
        let current = self.attempts.iter().filter(|a| a.current);
        match current.map(|a| a.sent_at + self.attempt_deadline).max() {
            Some(at) => Some(at),
            None => Some(self.next_at),
        }
    }

    fn tracker_id(&self, url: &str) -> Option<String> {
        self.tracker_ids
            .iter()
            .find(|(u, _)| u == url)
            .map(|(_, id)| id.clone())
    }

    fn take_attempt(&mut self, url: &str) -> Option<Attempt> {
        let index = self.attempts.iter().position(|a| a.url == url)?;
        Some(self.attempts.remove(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> Instant {
        Instant::from_micros(s * 1_000_000)
    }

    fn ok(interval: u32) -> AnnounceResponse {
        AnnounceResponse {
            interval,
            ..AnnounceResponse::default()
        }
    }

    fn tiers(list: &[&[&str]]) -> Vec<Vec<String>> {
        list.iter()
            .map(|tier| tier.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    fn announcer(list: &[&[&str]]) -> Announcer {
        Announcer::new(tiers(list), &mut fastrand::Rng::with_seed(7), t(0))
    }

    #[test]
    fn started_then_regular_then_completed_then_stopped() {
        let mut a = announcer(&[&["http://a/announce"]]);
        let first = a.poll(t(0), false).expect("due at once");
        assert_eq!(first.event, AnnounceEvent::Started);
        assert!(a.poll(t(0), false).is_none(), "one attempt per tracker");
        a.handle_response(&first.url, &ok(120), t(1));
        assert_eq!(a.next_deadline(), Some(t(121)));
        assert!(a.poll(t(100), false).is_none());
        let regular = a.poll(t(121), false).expect("due after interval");
        assert_eq!(regular.event, AnnounceEvent::None);
        a.handle_response(&regular.url, &ok(120), t(122));
        a.completed(t(130));
        let done = a.poll(t(130), false).expect("completed is sent at once");
        assert_eq!(done.event, AnnounceEvent::Completed);
        a.handle_response(&done.url, &ok(120), t(131));
        let next = a.poll(t(251), false).expect("regular again");
        assert_eq!(next.event, AnnounceEvent::None, "completed is sent once");
        a.handle_failure(&next.url, t(252));
        let stop = a.stop().expect("stopped is owed");
        assert_eq!(stop.event, AnnounceEvent::Stopped);
        assert_eq!(stop.url, "http://a/announce");
        assert!(a.stop().is_none(), "stopped is sent once");
        assert!(a.poll(t(10_000), false).is_none(), "silent after stop");
    }

    #[test]
    fn stopping_right_after_finishing_sends_completed_then_stopped() {
        let mut a = announcer(&[&["http://a/announce"]]);
        let first = a.poll(t(0), false).expect("due");
        a.handle_response(&first.url, &ok(1800), t(1));
        a.completed(t(5));
        let done = a.stop().expect("completed first");
        assert_eq!(done.event, AnnounceEvent::Completed);
        assert!(
            a.poll(t(5), false).is_none(),
            "stopped waits for the completed"
        );
        a.handle_response(&done.url, &ok(1800), t(6));
        let stop = a.poll(t(6), false).expect("then stopped");
        assert_eq!(stop.event, AnnounceEvent::Stopped);
        assert!(a.poll(t(7), false).is_none(), "stopped is sent once");
        // A failed `completed` still lets the `stopped` go.
        let mut b = announcer(&[&["http://a/announce"]]);
        let first = b.poll(t(0), false).expect("due");
        b.handle_response(&first.url, &ok(1800), t(1));
        b.completed(t(5));
        let done = b.stop().expect("completed first");
        b.handle_failure(&done.url, t(6));
        assert_eq!(
            b.poll(t(6), false).map(|d| d.event),
            Some(AnnounceEvent::Stopped)
        );
    }

    #[test]
    fn no_stopped_owed_without_a_successful_started() {
        let mut a = announcer(&[&["udp://a:1"]]);
        let first = a.poll(t(0), false).expect("due");
        a.handle_failure(&first.url, t(1));
        assert!(a.stop().is_none());
    }

    #[test]
    fn completion_before_any_started_is_not_a_completed_event() {
        let mut a = announcer(&[&["http://a/announce"]]);
        a.completed(t(0));
        let first = a.poll(t(0), false).expect("due");
        assert_eq!(first.event, AnnounceEvent::Started);
        a.handle_response(&first.url, &ok(60), t(1));
        let next = a.poll(t(61), false).expect("due");
        assert_eq!(next.event, AnnounceEvent::None);
    }

    #[test]
    fn completion_while_started_is_out_sends_completed_right_after() {
        let mut a = announcer(&[&["http://a/announce"]]);
        let first = a.poll(t(0), false).expect("due");
        a.completed(t(0));
        a.handle_response(&first.url, &ok(1800), t(1));
        assert_eq!(a.next_deadline(), Some(t(1)));
        let done = a.poll(t(1), false).expect("due at once");
        assert_eq!(done.event, AnnounceEvent::Completed);
    }

    #[test]
    fn failures_walk_the_tiers_then_back_off_doubling() {
        let mut a = announcer(&[&["http://a1/", "http://a2/"], &["udp://b:1"]]);
        let mut tried = Vec::new();
        for _ in 0..3 {
            let due = a.poll(t(0), false).expect("next tracker at once");
            tried.push(due.url.clone());
            a.handle_failure(&due.url, t(0));
        }
        let mut first_tier = tried[..2].to_vec();
        first_tier.sort();
        assert_eq!(first_tier, ["http://a1/", "http://a2/"]);
        assert_eq!(tried[2], "udp://b:1", "second tier only after the first");
        assert_eq!(a.next_deadline(), Some(t(15)), "round failed: back off");
        for round in 1..=3u64 {
            let now = a.next_deadline().expect("scheduled");
            for _ in 0..3 {
                let due = a.poll(now, false).expect("due");
                a.handle_failure(&due.url, now);
            }
            let wait = a.next_deadline().expect("scheduled") - now;
            assert_eq!(wait, Duration::from_secs(15 << round));
        }
    }

    #[test]
    fn backoff_is_capped() {
        let mut a = announcer(&[&["http://a/"]]);
        let mut now = t(0);
        for _ in 0..40 {
            now = a.next_deadline().expect("scheduled").max(now);
            let due = a.poll(now, false).expect("due");
            a.handle_failure(&due.url, now);
        }
        assert_eq!(a.next_deadline().expect("scheduled") - now, RETRY_MAX);
    }

    #[test]
    fn a_tracker_that_answers_moves_to_the_front_of_its_tier() {
        let mut a = announcer(&[&["http://a1/", "http://a2/", "http://a3/"]]);
        let first = a.poll(t(0), false).expect("due");
        a.handle_failure(&first.url, t(0));
        let second = a.poll(t(0), false).expect("due");
        a.handle_response(&second.url, &ok(60), t(0));
        assert_eq!(a.tiers()[0][0], second.url);
        let again = a.poll(t(60), false).expect("due");
        assert_eq!(again.url, second.url, "the working tracker is asked first");
    }

    #[test]
    fn a_late_or_unknown_result_is_ignored() {
        let mut a = announcer(&[&["http://a/", "http://b/"]]);
        let due = a.poll(t(0), false).expect("due");
        a.handle_response("http://elsewhere/", &ok(60), t(1));
        assert!(a.in_flight(), "unknown url does not end the exchange");
        a.handle_failure(&due.url, t(1));
        a.handle_response(&due.url, &ok(60), t(2));
        assert!(!a.in_flight());
        let next = a.poll(t(2), false).expect("the other tracker, at once");
        assert_ne!(next.url, due.url);
        assert_eq!(next.event, AnnounceEvent::Started);
    }

    #[test]
    fn hostile_intervals_are_clamped() {
        let mut a = announcer(&[&["http://a/"]]);
        let due = a.poll(t(0), false).expect("due");
        a.handle_response(&due.url, &ok(0), t(0));
        assert_eq!(
            a.next_deadline(),
            Some(t(30)),
            "0 → the default min interval"
        );
        let due = a.poll(t(30), false).expect("due");
        a.handle_response(&due.url, &ok(u32::MAX), t(30));
        assert_eq!(a.next_deadline(), Some(t(30) + MAX_INTERVAL));
    }

    #[test]
    fn starving_torrent_announces_early_but_not_before_min_interval() {
        let mut a = announcer(&[&["http://a/"]]);
        let due = a.poll(t(0), false).expect("due");
        let resp = AnnounceResponse {
            interval: 1800,
            min_interval: Some(60),
            ..AnnounceResponse::default()
        };
        a.handle_response(&due.url, &resp, t(0));
        assert!(a.poll(t(59), true).is_none());
        assert!(
            a.poll(t(60), false).is_none(),
            "not starving: wait the interval"
        );
        assert!(a.poll(t(60), true).is_some());
    }

    #[test]
    fn tracker_id_is_sent_back() {
        let mut a = announcer(&[&["http://a/"]]);
        let due = a.poll(t(0), false).expect("due");
        assert_eq!(due.tracker_id, None);
        let resp = AnnounceResponse {
            interval: 60,
            tracker_id: Some("xyz".into()),
            ..AnnounceResponse::default()
        };
        a.handle_response(&due.url, &resp, t(0));
        let due = a.poll(t(60), false).expect("due");
        assert_eq!(due.tracker_id.as_deref(), Some("xyz"));
    }

    #[test]
    fn duplicates_and_empty_entries_are_dropped() {
        let a = announcer(&[&["", "http://a/"], &["http://a/", " "], &["udp://b:1"]]);
        assert_eq!(
            a.tiers(),
            tiers(&[&["http://a/"], &["udp://b:1"]]).as_slice()
        );
        assert!(announcer(&[&[""]]).is_empty());
        assert!(announcer(&[]).poll(t(0), false).is_none());
    }

    #[test]
    fn a_slow_first_tier_is_passed_over_at_the_deadline_and_asked_last_after() {
        let mut a = announcer(&[&["http://slow/"], &["http://good/"]]);
        let slow = a.poll(t(0), false).expect("first tier first");
        assert_eq!(slow.url, "http://slow/");
        assert!(a.poll(t(14), false).is_none(), "the first tracker has 15 s");
        assert_eq!(a.next_deadline(), Some(t(15)));
        let good = a.poll(t(15), false).expect("the next tier, in parallel");
        assert_eq!(good.url, "http://good/");
        assert_eq!(good.event, AnnounceEvent::Started);
        assert!(a.poll(t(15), false).is_none(), "nobody else to ask");
        assert!(a.missed("http://slow/") && !a.missed("http://good/"));
        a.handle_response(&good.url, &ok(60), t(16));
        assert_eq!(a.next_deadline(), Some(t(76)));
        // The slow one's late failure (the session's 60 s time-out) keeps it missed.
        a.handle_failure(&slow.url, t(60));
        let next = a.poll(t(76), false).expect("next round");
        assert_eq!(
            next.url, "http://good/",
            "a tracker that missed never goes first"
        );
        assert_eq!(next.event, AnnounceEvent::None);
    }

    #[test]
    fn a_late_answer_counts_but_does_not_win_first_place_back() {
        let mut a = announcer(&[&["http://slow/"], &["http://good/"]]);
        let slow = a.poll(t(0), false).expect("due");
        let good = a.poll(t(15), false).expect("next tier at 15 s");
        // The slow one answers first (at 59 s), before the good one: the round is over.
        a.handle_response(&slow.url, &ok(120), t(59));
        assert!(a.in_flight(), "the good one is still out");
        assert_eq!(a.next_deadline(), Some(t(179)));
        assert_eq!(a.tiers()[0], vec!["http://slow/".to_string()]);
        assert!(a.missed("http://slow/"), "late is still a miss");
        // The good one answering later changes no schedule but is no miss.
        a.handle_response(&good.url, &ok(30), t(60));
        assert_eq!(a.next_deadline(), Some(t(179)));
        let next = a.poll(t(179), false).expect("next round");
        assert_eq!(next.url, "http://good/");
    }

    #[test]
    fn a_missed_tracker_answering_in_time_regains_its_place() {
        let mut a = announcer(&[&["http://one/"], &["http://two/"]]);
        let one = a.poll(t(0), false).expect("due");
        a.handle_failure(&one.url, t(1));
        let two = a.poll(t(1), false).expect("next at once after a failure");
        a.handle_response(&two.url, &ok(60), t(2));
        // Round 2: two first; it fails, one answers in time.
        let first = a.poll(t(62), false).expect("due");
        assert_eq!(first.url, "http://two/");
        a.handle_failure(&first.url, t(63));
        let second = a.poll(t(63), false).expect("due");
        assert_eq!(second.url, "http://one/");
        a.handle_response(&second.url, &ok(60), t(64));
        assert!(!a.missed("http://one/") && a.missed("http://two/"));
        let third = a.poll(t(124), false).expect("due");
        assert_eq!(
            third.url, "http://one/",
            "tier order among trackers that did not miss"
        );
    }

    #[test]
    fn silent_trackers_are_bounded_one_attempt_each_then_back_off() {
        let mut a = announcer(&[&["http://a/", "http://b/"], &["http://c/"]]);
        let mut out = Vec::new();
        for s in [0, 15, 30] {
            out.push(a.poll(t(s), false).expect("one more each deadline").url);
            assert!(a.poll(t(s), false).is_none());
        }
        assert!(
            a.poll(t(45), false).is_none(),
            "everyone asked: wait for answers"
        );
        assert_eq!(a.next_deadline(), None);
        for url in &out {
            a.handle_failure(url, t(60));
        }
        assert!(!a.in_flight());
        assert_eq!(a.next_deadline(), Some(t(60) + RETRY_BASE));
        // A shorter deadline set by the session applies.
        let mut b = announcer(&[&["http://a/"], &["http://c/"]]);
        b.set_attempt_deadline(Duration::from_secs(5));
        b.poll(t(0), false).expect("due");
        assert!(b.poll(t(4), false).is_none());
        assert!(b.poll(t(5), false).is_some());
    }
}
