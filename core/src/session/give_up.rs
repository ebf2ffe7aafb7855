//! The give-up rule: an incomplete torrent with nothing that could make progress says so.
//!
//! A torrent's sources are its connected peers, the addresses left to dial (including
//! those being dialled), the trackers it can announce to and the DHT. Peers and addresses
//! run out (dials fail [`SessionConfig::max_connect_failures`] times, peers leave); a usable
//! tracker or the DHT never does, because either may find peers later. So once an incomplete
//! torrent has no peer, no address, no usable tracker and no DHT for
//! [`SessionConfig::give_up_after`] (peers may still dial in meanwhile), the session emits
//! one [`Event::GaveUp`] naming what it had and why none of it is left. A driver's user
//! decides what to do (the CLI stops with an error); the torrent itself stays.
//!
//! Invariants:
//! - At most one `GaveUp` per stretch of having nothing; a stretch ends when a source
//!   appears (a peer connects, an address is added), and a later stretch may give up again.
//! - Never for a complete torrent, one with a web seed (BEP 19) not banned and not out of
//!   files, one with a connected peer, an address to dial, a usable
//!   tracker, or the DHT (a private torrent does not use the DHT, so it does not count).
//!   Local service discovery does not count (see `has_nothing`).
//!
//! [`SessionConfig::max_connect_failures`]: super::SessionConfig::max_connect_failures
//! [`SessionConfig::give_up_after`]: super::SessionConfig::give_up_after

use super::{Action, Event, FAILED_PEERS_LISTED, GiveUpReason, Session, TorrentId};
use crate::time::Instant;

/// Where one torrent stands with respect to giving up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Stall {
    /// Since when nothing could make progress (`None`: something can).
    since: Option<Instant>,
    /// Whether this stretch was already reported.
    reported: bool,
}

impl Session {
    /// Whether nothing can make progress on `torrent` right now.
    fn has_nothing(&self, torrent: TorrentId) -> bool {
        let Some(t) = self.torrents.get(&torrent) else {
            return false;
        };
        // A DHT with no way in (nothing known, nothing being tried) is no source.
        let dht = self.dht_can_find_peers() && !t.is_private();
        // Local service discovery is deliberately not a source here: unlike a tracker or
        // the DHT, which reach the whole swarm, it finds peers only if some happen to be on
        // our LAN, and on most LANs none are; counting it would mean a download with a dead
        // tracker never gives up (LSD is on by default in the CLI). A peer it does find
        // becomes an address to dial, which counts like any other.
        !t.is_complete()
            && t.peer_count() == 0
            && !t.has_candidates()
            && !t.has_web_seeds()
            && !self.trackers.has_usable(torrent)
            && !dht
    }

    /// Why `torrent`, which has nothing left, gives up.
    fn give_up_reason(&self, torrent: TorrentId) -> GiveUpReason {
        let unsupported_schemes = self.trackers.unsupported_schemes(torrent);
        let Some(t) = self.torrents.get(&torrent) else {
            return GiveUpReason::NothingGiven;
        };
        if t.peers_seen() {
            let (peers, total) = t.given_up_peers(FAILED_PEERS_LISTED);
            GiveUpReason::PeersFailed {
                peers,
                total,
                unsupported_schemes,
            }
        } else if !unsupported_schemes.is_empty() {
            GiveUpReason::TrackersUnsupported {
                schemes: unsupported_schemes,
            }
        } else {
            GiveUpReason::NothingGiven
        }
    }

    /// Runs the give-up rule for every torrent (once a tick, from `handle_timeout`).
    pub(super) fn check_give_up(&mut self, now: Instant) {
        let ids: Vec<TorrentId> = self.torrents.keys().copied().collect();
        // Removed torrents' stretches go with them.
        self.stalls.retain(|id, _| self.torrents.contains_key(id));
        for torrent in ids {
            // A paused torrent has nothing on purpose: that is no reason to give up.
            if self.life.is_paused(torrent)
                || self.life.is_queued(torrent)
                || !self.has_nothing(torrent)
            {
                self.stalls.insert(torrent, Stall::default());
                continue;
            }
            let stall = self.stalls.entry(torrent).or_default();
            let since = *stall.since.get_or_insert(now);
            if stall.reported || now - since < self.config.give_up_after {
                continue;
            }
            stall.reported = true;
            let reason = self.give_up_reason(torrent);
            self.out
                .push(Action::Event(Event::GaveUp { torrent, reason }));
        }
    }
}
