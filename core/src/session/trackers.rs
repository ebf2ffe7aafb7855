//! The session's side of trackers: one [`Announcer`] per torrent, its announces carried
//! out, and answers turned into peers to dial.
//!
//! Every tracker timer is here, on the session's clock and seeded RNG:
//! - each announce has a deadline ([`super::SessionConfig::tracker_timeout`], shorter when
//!   leaving); past it the announce fails ("timed out after N s") and a late answer is
//!   ignored;
//! - a shorter attempt deadline ([`super::SessionConfig::tracker_attempt_timeout`]) after
//!   which the announcer asks the next tracker too, while the slow one stays out (see
//!   [`crate::tracker::announcer`] for why this and not every tier at once): a torrent may
//!   have one announce out per tracker, each keyed by its URL;
//! - peers from one answer are capped ([`super::SessionConfig::max_peers_per_announce`])
//!   and rank lowest among candidates ([`super::PeerSource::Tracker`]), so a flood cannot
//!   starve a peer the user gave;
//! - UDP trackers (BEP 15) run inside the session ([`UdpTrackers`]): the driver only
//!   resolves names ([`Action::Resolve`] / [`Session::handle_resolved`]) and moves
//!   datagrams ([`Action::SendDatagram`] / [`Session::handle_datagram`]);
//!   retransmission at 15·2ⁿ s and connection ids kept 60 s per tracker address are
//!   [`crate::tracker::udp`]'s. With the 60 s deadline a silent tracker gets the first
//!   datagram and the retransmissions at 15 s and 45 s, then the next tracker is tried:
//!   BEP 15's full schedule (up to 15·2⁸ s) would leave a torrent on a dead tracker for
//!   over an hour.
//! - HTTP trackers are a byte exchange the driver runs for an [`Action::Announce`].
//! - Every call that starts an announce queues its actions before returning (UDP
//!   datagrams included, [`Session::stop_announces`] and pausing too): a leaving
//!   announce must go out at once, within its short deadline, so that the session is
//!   drained only once the tracker answered it or it truly timed out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::{Action, Event, Session, TorrentId};
use crate::metainfo::Metainfo;
use crate::time::Instant;
use crate::tracker::announcer::{AnnounceDue, Announcer};
use crate::tracker::udp_client::UdpTrackers;
use crate::tracker::{
    AnnounceEvent, AnnounceRequest, AnnounceResponse, ResolveError, TrackerFailure,
};

/// Finished announces handled in one go before the rest waits for the next
/// `handle_timeout` (each failure may start the next tracker, which may fail at once).
const MAX_ROUNDS: usize = 16;

/// Peers asked for per announce: enough to fill `max_peers_per_torrent` (50 by default)
/// with spares for the ones that do not answer.
const NUMWANT: u32 = 80;

/// One torrent's announcer and what it needs to notice completion.
#[derive(Debug)]
pub(super) struct TorrentTrackers {
    announcer: Announcer,
    was_complete: bool,
}

/// Which announce: the torrent and the tracker's URL.
type AnnounceKey = (TorrentId, String);

/// An announce the session waits for.
#[derive(Debug)]
struct InFlight {
    /// When it counts as failed.
    deadline: Instant,
    /// The time it was allowed, for the message.
    allowed: Duration,
}

/// Session-wide tracker state.
#[derive(Debug, Default)]
pub(super) struct Trackers {
    per_torrent: Vec<(TorrentId, TorrentTrackers)>,
    /// The announces waited for (at most one per torrent and tracker).
    in_flight: BTreeMap<AnnounceKey, InFlight>,
    /// The UDP announces running inside the session.
    udp: UdpTrackers<AnnounceKey>,
    /// Finished announces were left for the next `handle_timeout` (see [`MAX_ROUNDS`]).
    backlog_since: Option<Instant>,
    /// Addresses that turned out to be this session (a tracker lists us among the peers;
    /// the handshake showed our own peer id): never dialled again.
    own_addrs: BTreeSet<SocketAddr>,
    /// The `key` sent on every announce, fixed for the session.
    key: u32,
    stopped: bool,
    /// Per torrent, the URLs of its trackers whose scheme the session cannot announce to,
    /// with whether [`Event::TrackerUnsupported`] was emitted for each yet. Kept out of the
    /// announcer: announcing to them could only fail, again and again.
    unsupported: BTreeMap<TorrentId, Vec<(String, bool)>>,
}

impl Trackers {
    pub(super) fn new(key: u32) -> Self {
        Trackers {
            key,
            ..Trackers::default()
        }
    }

    pub(super) fn own_addrs(&self) -> &BTreeSet<SocketAddr> {
        &self.own_addrs
    }

    pub(super) fn is_own(&self, addr: &SocketAddr) -> bool {
        self.own_addrs.contains(addr)
    }

    pub(super) fn add_own(&mut self, addr: SocketAddr) {
        self.own_addrs.insert(addr);
    }

    /// The earliest tracker timer: a regular announce due (none after `stop_announces`),
    /// an announce's deadline, a UDP retransmission.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let due = self
            .per_torrent
            .iter()
            .filter_map(|(_, s)| s.announcer.next_deadline())
            .min();
        let late = self.in_flight.values().map(|f| f.deadline).min();
        crate::time::earliest([due, late, self.udp.poll_timeout(), self.backlog_since])
    }

    /// How many announces the session waits for (`stopped` ones included): 0 once every
    /// one was answered or timed out.
    pub(super) fn announces_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether `torrent` has a tracker it can announce to.
    pub(super) fn has_usable(&self, torrent: TorrentId) -> bool {
        self.per_torrent.iter().any(|(t, _)| *t == torrent)
    }

    /// The schemes of `torrent`'s trackers that cannot be announced to, sorted, each once.
    pub(super) fn unsupported_schemes(&self, torrent: TorrentId) -> Vec<String> {
        let schemes: BTreeSet<String> = self
            .unsupported
            .get(&torrent)
            .into_iter()
            .flatten()
            .map(|(url, _)| url_scheme(url))
            .collect();
        schemes.into_iter().collect()
    }

    /// Stops waiting for every announce of `torrent` (a leaving announce replaces them).
    fn cancel_torrent(&mut self, torrent: TorrentId) {
        let keys: Vec<AnnounceKey> = self
            .in_flight
            .keys()
            .filter(|(t, _)| *t == torrent)
            .cloned()
            .collect();
        for key in keys {
            self.udp.cancel(&key);
            self.in_flight.remove(&key);
        }
    }

    fn get_mut(&mut self, torrent: TorrentId) -> Option<&mut TorrentTrackers> {
        self.per_torrent
            .iter_mut()
            .find(|(t, _)| *t == torrent)
            .map(|(_, s)| s)
    }
}

/// The tracker tiers a torrent names: `announce-list` when present (BEP 12 says to ignore
/// `announce` then), else `announce` alone.
pub fn metainfo_tiers(metainfo: &Metainfo) -> Vec<Vec<String>> {
    if !metainfo.announce_list.is_empty() {
        metainfo.announce_list.clone()
    } else {
        metainfo.announce.iter().map(|a| vec![a.clone()]).collect()
    }
}

/// A URL's scheme, lower case; empty when it has none.
fn url_scheme(url: &str) -> String {
    url.split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase())
        .unwrap_or_default()
}

impl Session {
    /// Sets the trackers `torrent` announces to (tiers in BEP 12 order; empty: none),
    /// replacing any earlier list ([`Session::add_torrent`] starts with the metainfo's).
    /// The first announce goes out at once. A URL whose scheme is not in
    /// [`super::SessionConfig::tracker_schemes`] is left out and named once in
    /// [`Event::TrackerUnsupported`].
    pub fn set_trackers(&mut self, torrent: TorrentId, tiers: Vec<Vec<String>>, now: Instant) {
        self.install_trackers(torrent, tiers, now);
        self.pump_announces(now);
    }

    /// Sets `torrent`'s trackers without starting any announce yet.
    pub(super) fn install_trackers(
        &mut self,
        torrent: TorrentId,
        tiers: Vec<Vec<String>>,
        now: Instant,
    ) {
        let Some(t) = self.torrents.get(&torrent) else {
            return;
        };
        let was_complete = t.is_complete();
        // Trackers the driver cannot reach are named once (see `pump_announces`), not tried.
        let mut unsupported: Vec<(String, bool)> = Vec::new();
        let tiers: Vec<Vec<String>> = tiers
            .into_iter()
            .map(|tier| {
                tier.into_iter()
                    .filter(|url| {
                        let url = url.trim();
                        let usable = url.is_empty()
                            || self.config.tracker_schemes.contains(&url_scheme(url));
                        if !usable && !unsupported.iter().any(|(u, _)| u == url) {
                            unsupported.push((url.to_string(), false));
                        }
                        usable
                    })
                    .collect()
            })
            .collect();
        // A URL already named for this torrent is not named again.
        if let Some(earlier) = self.trackers.unsupported.get(&torrent) {
            for (url, told) in unsupported.iter_mut() {
                *told = earlier.iter().any(|(u, t)| u == url && *t);
            }
        }
        if unsupported.is_empty() {
            self.trackers.unsupported.remove(&torrent);
        } else {
            self.trackers.unsupported.insert(torrent, unsupported);
        }
        let mut announcer = Announcer::new(tiers, &mut self.rng, now);
        announcer.set_attempt_deadline(self.config.tracker_attempt_timeout);
        if !self.life.ticks(torrent) {
            // Out of its swarm (paused, queued, checked, closing): it announces nothing
            // until it rejoins, which starts a new announcer over these tiers.
            let _ = announcer.stop();
        }
        self.trackers.per_torrent.retain(|(t, _)| *t != torrent);
        if !announcer.is_empty() {
            self.trackers.per_torrent.push((
                torrent,
                TorrentTrackers {
                    announcer,
                    was_complete,
                },
            ));
        }
    }

    /// The trackers of `torrent` it can announce to, in the order they are tried.
    pub fn trackers(&self, torrent: TorrentId) -> Vec<Vec<String>> {
        self.trackers
            .per_torrent
            .iter()
            .find(|(t, _)| *t == torrent)
            .map(|(_, s)| s.announcer.tiers().to_vec())
            .unwrap_or_default()
    }

    /// Tells the session an address at which peers reach it (its listen address), so a
    /// tracker listing it is not dialled.
    pub fn add_own_address(&mut self, addr: SocketAddr) {
        self.trackers.add_own(addr);
    }

    /// The answer to an [`Action::Announce`]: `Ok` with the tracker's response, or `Err`
    /// with why it failed. Peers it lists are dialled as the connection limits allow. An
    /// answer nobody waits for (its deadline passed, or another announce replaced it) is
    /// ignored.
    pub fn announce_done(
        &mut self,
        torrent: TorrentId,
        url: &str,
        result: Result<AnnounceResponse, TrackerFailure>,
        now: Instant,
    ) {
        if self
            .trackers
            .in_flight
            .remove(&(torrent, url.to_string()))
            .is_none()
        {
            return;
        }
        self.apply_answer(torrent, url, result, now);
        self.pump_announces(now);
    }

    /// The answer to an [`Action::Resolve`]: the addresses of `host` (the UDP socket's
    /// family first) or why there are none. An answer nobody waits for is ignored.
    pub fn handle_resolved(
        &mut self,
        host: &str,
        port: u16,
        result: Result<Vec<SocketAddr>, ResolveError>,
        now: Instant,
    ) {
        // The name may be a DHT router's as well as a UDP tracker's: both get the answer.
        self.dht_router_resolved(host, port, &result, now);
        self.trackers
            .udp
            .handle_resolved(host, port, result, &mut self.rng, now);
        self.pump_announces(now);
    }

    /// How many announces the session still waits for (`stopped` ones included), each
    /// bounded by its deadline.
    pub fn announces_in_flight(&self) -> usize {
        self.trackers.announces_in_flight()
    }

    /// A datagram that may be a UDP tracker's reply: handled, and `true`, when it answers
    /// one of the session's exchanges (see [`Session::handle_datagram`]).
    pub(super) fn tracker_datagram(
        &mut self,
        from: SocketAddr,
        bytes: &[u8],
        now: Instant,
    ) -> bool {
        if !self.trackers.udp.handle_datagram(from, bytes, now) {
            return false;
        }
        self.pump_announces(now);
        true
    }

    /// Hands an answer to the torrent's announcer and tells the user.
    fn apply_answer(
        &mut self,
        torrent: TorrentId,
        url: &str,
        result: Result<AnnounceResponse, TrackerFailure>,
        now: Instant,
    ) {
        let Some(state) = self.trackers.get_mut(torrent) else {
            return;
        };
        match result {
            Ok(response) => {
                state.announcer.handle_response(url, &response, now);
                // One answer may list 100,000 junk addresses: take a bounded share (the
                // tracker's own order; it is the one choosing anyway).
                let peers: Vec<SocketAddr> = response
                    .peers
                    .iter()
                    .copied()
                    .filter(|a| !self.trackers.is_own(a))
                    .take(self.config.max_peers_per_announce)
                    .collect();
                self.out.push(Action::Event(Event::TrackerReply {
                    torrent,
                    url: url.to_string(),
                    peers: response.peers.len(),
                    seeders: response.complete,
                    leechers: response.incomplete,
                    warning: response.warning.clone(),
                }));
                self.add_peers_from(torrent, super::PeerSource::Tracker, &peers, now);
            }
            Err(failure) => {
                state.announcer.handle_failure(url, now);
                self.out.push(Action::Event(Event::TrackerError {
                    torrent,
                    url: url.to_string(),
                    message: failure.to_string(),
                }));
            }
        }
    }

    /// Announces past their deadline and finished UDP exchanges, each answered once.
    /// Returns whether there were any.
    fn finish_announces(&mut self, now: Instant) -> bool {
        let late: Vec<AnnounceKey> = self
            .trackers
            .in_flight
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut any = false;
        for key in late {
            let Some(f) = self.trackers.in_flight.remove(&key) else {
                continue;
            };
            self.trackers.udp.cancel(&key);
            let secs = f.allowed.as_secs_f64().round() as u64;
            let (torrent, url) = key;
            self.apply_answer(torrent, &url, Err(TrackerFailure::TimedOut { secs }), now);
            any = true;
        }
        self.trackers.udp.handle_timeout(now);
        while let Some((key, result)) = self.trackers.udp.poll_done() {
            if self.trackers.in_flight.remove(&key).is_none() {
                continue;
            }
            let (torrent, url) = key;
            self.apply_answer(torrent, &url, result, now);
            any = true;
        }
        any
    }

    /// Queues the UDP exchanges' datagrams and name look-ups as actions.
    fn flush_udp(&mut self) {
        while let Some((to, bytes)) = self.trackers.udp.poll_transmit() {
            self.out.push(Action::SendDatagram {
                to,
                bytes: bytes.into(),
            });
        }
        while let Some(target) = self.trackers.udp.poll_resolve() {
            self.out.push(Action::Resolve {
                host: target.host,
                port: target.port,
            });
        }
    }

    /// Leaves every swarm: queues the `stopped` announces owed (to trackers that accepted
    /// us) and no regular announce after. A torrent that finished and has not told its
    /// tracker yet sends `completed` first and its `stopped` once that is answered, so the
    /// driver should keep feeding [`Session::announce_done`] for a moment; it may give
    /// these exchanges a short time-out.
    pub fn stop_announces(&mut self, now: Instant) {
        if self.trackers.stopped {
            return;
        }
        self.trackers.stopped = true;
        // A download that finished since the last tick still owes its `completed`.
        self.notice_completions(now);
        let dues: Vec<(TorrentId, AnnounceDue)> = self
            .trackers
            .per_torrent
            .iter_mut()
            .filter_map(|(t, s)| s.announcer.stop().map(|d| (*t, d)))
            .collect();
        // The announcers wait for none of the regular announces still out: neither does
        // the session (leaving is not held up by a slow tracker's `started`).
        for key in std::mem::take(&mut self.trackers.in_flight).into_keys() {
            self.trackers.udp.cancel(&key);
        }
        for (torrent, due) in dues {
            self.push_announce(torrent, due, now);
        }
        // A UDP `stopped` (or `completed`) leaves now, not at the next timer: that timer is
        // its own deadline, where it would time out unsent and go out as the session says
        // it is drained, with nobody left to wait for the tracker to read it.
        self.flush_udp();
    }

    /// Starts every announce that is due, and notices torrents that just completed (their
    /// trackers are owed a `completed`). Runs on every `handle_timeout` and tracker answer.
    pub(super) fn pump_announces(&mut self, now: Instant) {
        self.trackers.backlog_since = None;
        let mut rounds = 0;
        loop {
            self.finish_announces(now);
            self.start_announces(now);
            rounds += 1;
            if !self.finish_announces(now) {
                break;
            }
            if rounds >= MAX_ROUNDS {
                // Left for the next `handle_timeout`, which `next_deadline` asks for now.
                self.trackers.backlog_since = Some(now);
                break;
            }
        }
        self.flush_udp();
    }

    /// Starts every announce that is due.
    fn start_announces(&mut self, now: Instant) {
        // After `stop_announces` the announcers only release the `stopped` that follows a
        // shutdown's `completed`.
        self.notice_completions(now);
        for (torrent, urls) in self.trackers.unsupported.iter_mut() {
            for (url, told) in urls.iter_mut().filter(|(_, told)| !*told) {
                *told = true;
                self.out.push(Action::Event(Event::TrackerUnsupported {
                    torrent: *torrent,
                    url: url.clone(),
                    scheme: url_scheme(url),
                }));
            }
        }
        let mut dues = Vec::new();
        for (tid, state) in self.trackers.per_torrent.iter_mut() {
            let Some(t) = self.torrents.get(tid) else {
                continue;
            };
            let complete = t.is_complete();
            let starving = !complete && t.peer_count() == 0 && !t.has_candidates();
            // Bounded: each due is a tracker of the round asked once.
            while let Some(due) = state.announcer.poll(now, starving) {
                dues.push((*tid, due));
            }
        }
        for (torrent, due) in dues {
            self.push_announce(torrent, due, now);
        }
    }

    /// Tells the announcers of torrents that completed since the last look.
    fn notice_completions(&mut self, now: Instant) {
        for (tid, state) in self.trackers.per_torrent.iter_mut() {
            let Some(t) = self.torrents.get(tid) else {
                continue;
            };
            let complete = t.is_complete();
            if complete && !state.was_complete {
                state.announcer.completed(now);
            }
            state.was_complete = complete;
        }
    }

    fn push_announce(&mut self, torrent: TorrentId, due: AnnounceDue, now: Instant) {
        let Some(stats) = self.stats(torrent, now) else {
            return;
        };
        let request = AnnounceRequest {
            info_hash: stats.info_hash,
            peer_id: self.peer_id,
            port: self.config.listen_port,
            uploaded: stats.uploaded,
            downloaded: stats.downloaded,
            // A magnet torrent without metadata says 16 KiB (see `MAGNET_LEFT`).
            left: self.torrents.get(&torrent).map_or(0, |t| t.left()),
            event: due.event,
            numwant: match due.event {
                // A leaving peer wants nobody.
                AnnounceEvent::Stopped => Some(0),
                _ => Some(NUMWANT),
            },
            key: self.trackers.key,
            ip: None,
            ipv6: self.config.announce_ipv6,
            tracker_id: due.tracker_id,
        };
        let leaving = due.event == AnnounceEvent::Stopped || self.trackers.stopped;
        let allowed = if leaving {
            self.config.stopped_tracker_timeout
        } else {
            self.config.tracker_timeout
        };
        // One announce per torrent and tracker: a new one takes the old one's place, whose
        // answer is no longer waited for. A leaving one replaces all of the torrent's.
        if leaving {
            self.trackers.cancel_torrent(torrent);
        }
        let key = (torrent, due.url.clone());
        self.trackers.udp.cancel(&key);
        self.trackers.in_flight.insert(
            key.clone(),
            InFlight {
                deadline: now + allowed,
                allowed,
            },
        );
        if url_scheme(&due.url) == "udp" {
            self.trackers
                .udp
                .start(key, &due.url, request, &mut self.rng, now);
        } else {
            self.out.push(Action::Announce {
                torrent,
                url: due.url,
                request,
            });
        }
    }
}

impl Session {
    /// Leaves `torrent`'s swarm alone (pause, removal): its announcer sends the `stopped`
    /// it owes and no regular announce after. `for_good` (removal): nothing will be left to
    /// send a `stopped` after a `completed` is answered, so a `completed` owed gives way to
    /// the `stopped`.
    pub(super) fn stop_torrent_announces(
        &mut self,
        torrent: TorrentId,
        for_good: bool,
        now: Instant,
    ) {
        // A download that completed since the last tick (and is paused or queued as a seed
        // at once) still owes its `completed`, which goes before the `stopped`.
        self.notice_completions(now);
        let Some(mut due) = self
            .trackers
            .get_mut(torrent)
            .and_then(|s| s.announcer.stop())
        else {
            return;
        };
        if for_good {
            due.event = AnnounceEvent::Stopped;
        }
        // The regular announces out are no longer waited for: the announcer forgot them.
        self.trackers.cancel_torrent(torrent);
        self.push_announce(torrent, due, now);
        // As in `stop_announces`: a UDP leaving announce goes out now, within its deadline.
        self.flush_udp();
    }

    /// Announces `torrent` afresh (it resumed after a pause): a new announcer over the same
    /// tiers, whose first announce (`started`) is due at once.
    pub(super) fn restart_torrent_announces(&mut self, torrent: TorrentId, now: Instant) {
        let Some(state) = self.trackers.get_mut(torrent) else {
            return;
        };
        let tiers = state.announcer.tiers().to_vec();
        state.announcer = Announcer::new(tiers, &mut self.rng, now);
        state
            .announcer
            .set_attempt_deadline(self.config.tracker_attempt_timeout);
    }

    /// Forgets `torrent`'s trackers (it was removed): late answers are ignored.
    pub(super) fn forget_torrent_trackers(&mut self, torrent: TorrentId) {
        self.trackers.per_torrent.retain(|(t, _)| *t != torrent);
        self.trackers.unsupported.remove(&torrent);
    }
}
