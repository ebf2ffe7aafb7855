//! The session's side of local service discovery (BEP 14): when each torrent is announced
//! to the LAN's multicast groups, and what an announce heard there does. The message format
//! is [`crate::lsd`]; the driver only moves datagrams ([`Action::SendLsd`],
//! [`Session::handle_lsd_datagram`]) on a socket joined to the group.
//!
//! Rules (with [`super::SessionConfig::lsd`] on and a known `listen_port`):
//! - A non-private torrent is announced when it is added (or resumed), then every
//!   [`ANNOUNCE_INTERVAL`] (libtorrent's 5 minutes). Due torrents are batched, up to
//!   [`MAX_INFO_HASHES`] per datagram, and the session sends at most one announce round per
//!   [`SEND_GAP`] overall: a session adding 500 torrents does not flood its LAN.
//! - A round is one datagram per family in [`super::SessionConfig::lsd_families`] (IPv4
//!   `239.192.152.143:6771`, IPv6 `[ff15::efc0:988f]:6771`), each the same torrents with its
//!   group's `Host` line. The rate limit is per round, not per family (see
//!   [`SessionLsd::last_sent`] for why).
//! - A private torrent (BEP 27) is never announced, also when it becomes known as private
//!   only once its metadata arrives; a paused torrent waits for its resume; a closing
//!   session sends nothing.
//! - An announce naming torrents we have hands `sender IP:announced port` to each of them as
//!   a [`PeerSource::Lsd`] candidate, whichever family it came over: an IPv6 sender gives
//!   an IPv6 peer (with the sender's scope id, which a link-local address needs to be
//!   dialled), an IPv4-mapped sender (`::ffff:a.b.c.d`, from a dual-stack socket) the IPv4
//!   peer it is ([`crate::dht::canonical`]). Our own announces (our cookie, which the multicast
//!   loop sends back to us) are ignored, and each sender IP may be heard at most
//!   [`PER_IP_BURST`] times in a row, then once per [`PER_IP_REFILL`]: a host flooding
//!   the group costs a parse per datagram and nothing more. At most [`MAX_SENDERS`] IPs
//!   are remembered (the one heard from longest ago is forgotten first).
//! - An announce from a peer not heard for that torrent in the last [`ANNOUNCE_INTERVAL`]
//!   makes that torrent due again at once (within the send gap): BEP 14 has no reply, and a
//!   seed never dials, so a leecher that joins just after the seed's announce would
//!   otherwise wait up to 5 minutes to learn of it (and give up first). Each newcomer gets
//!   at most one such answer from each peer; the answers end as both sides have heard each
//!   other. At most [`MAX_HEARD`] (torrent, peer) pairs are remembered, oldest forgotten.
//! - LSD does not count as a source for the give-up rule (see `give_up.rs`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use bytes::Bytes;

use super::{Action, Event, PeerSource, Session, TorrentId};
use crate::dht::canonical;
use crate::info_hash::InfoHash;
use crate::lsd::{LsdAnnounce, MAX_INFO_HASHES};
use crate::time::Instant;

/// A torrent's regular re-announce (libtorrent: 5 minutes).
pub(super) const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Shortest time between two datagrams we send.
pub(super) const SEND_GAP: Duration = Duration::from_secs(1);
/// Announces heard from one IP in a row before its rate applies.
pub(super) const PER_IP_BURST: u64 = 10;
/// After the burst, one announce per IP per this long.
pub(super) const PER_IP_REFILL: Duration = Duration::from_secs(1);
/// Most sender IPs whose rate is remembered.
pub(super) const MAX_SENDERS: usize = 256;
/// Most (torrent, peer) pairs remembered as heard, for answering newcomers.
pub(super) const MAX_HEARD: usize = 1024;

/// What LSD did, for tests and status displays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LsdStats {
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams received.
    pub received: u64,
    /// Of those, our own (our cookie), ignored.
    pub own: u64,
    /// Of those, dropped by the per-IP rate limit.
    pub rate_limited: u64,
    /// Of those, not a valid announce.
    pub invalid: u64,
    /// Peers handed to torrents (one per torrent named in an accepted announce).
    pub peers: u64,
}

/// One sender IP's allowance: a token bucket in milliseconds of credit.
#[derive(Clone, Copy, Debug)]
struct Sender {
    credit_ms: u64,
    at: Instant,
}

/// Schedules, our cookie and the per-IP allowances.
#[derive(Debug)]
pub(super) struct SessionLsd {
    /// Sent in every announce; an announce carrying it is our own, looped back.
    cookie: String,
    /// When each tracked torrent is next due (by info-hash, so the order is stable).
    due: BTreeMap<InfoHash, (TorrentId, Instant)>,
    /// When we last sent an announce round (one datagram per family).
    ///
    /// One gap for all families, not one per family: both groups reach the same LAN, often
    /// the same hosts, and a dual-stack peer should hear each torrent on either family at
    /// the same cadence. A gap per family would let the two drift apart and double what a
    /// burst of added torrents puts on the link in the same second for no peer more; with
    /// one gap the LAN sees at most one datagram per family per [`SEND_GAP`].
    last_sent: Option<Instant>,
    senders: BTreeMap<IpAddr, Sender>,
    /// When each peer last announced each of our torrents.
    heard: BTreeMap<(InfoHash, SocketAddr), Instant>,
    stats: LsdStats,
}

impl SessionLsd {
    pub(super) fn new(cookie: u64) -> Self {
        SessionLsd {
            cookie: format!("{cookie:016x}"),
            due: BTreeMap::new(),
            last_sent: None,
            senders: BTreeMap::new(),
            heard: BTreeMap::new(),
            stats: LsdStats::default(),
        }
    }

    /// The earliest moment a due announce may go out.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let due = self.due.values().map(|(_, at)| *at).min()?;
        Some(match self.last_sent {
            Some(last) => due.max(last + SEND_GAP),
            None => due,
        })
    }

    /// Notes that `peer` announced `info_hash`; if it had not for an announce interval (a
    /// newcomer), the torrent becomes due at once so the newcomer learns of us.
    fn heard(&mut self, info_hash: InfoHash, peer: SocketAddr, now: Instant) {
        let key = (info_hash, peer);
        let fresh = self
            .heard
            .get(&key)
            .is_none_or(|at| now.saturating_duration_since(*at) >= ANNOUNCE_INTERVAL);
        if !self.heard.contains_key(&key) && self.heard.len() >= MAX_HEARD {
            if let Some(old) = self
                .heard
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| *k)
            {
                self.heard.remove(&old);
            }
        }
        self.heard.insert(key, now);
        if fresh {
            if let Some((_, at)) = self.due.get_mut(&info_hash) {
                *at = (*at).min(now);
            }
        }
    }

    /// Whether `ip` may be heard now (and charges it).
    fn admit(&mut self, ip: IpAddr, now: Instant) -> bool {
        const FULL: u64 = PER_IP_BURST * 1000;
        let cost = PER_IP_REFILL.as_millis() as u64;
        if !self.senders.contains_key(&ip) && self.senders.len() >= MAX_SENDERS {
            // Forget the IP heard from longest ago (ties: the lowest address).
            if let Some(old) = self
                .senders
                .iter()
                .min_by_key(|(_, s)| s.at)
                .map(|(k, _)| *k)
            {
                self.senders.remove(&old);
            }
        }
        let s = self.senders.entry(ip).or_insert(Sender {
            credit_ms: FULL,
            at: now,
        });
        // One second of credit per second that passed, up to the burst.
        let gained = now.saturating_duration_since(s.at).as_millis() as u64;
        s.credit_ms = s.credit_ms.saturating_add(gained).min(FULL);
        s.at = now;
        if s.credit_ms >= cost {
            s.credit_ms -= cost;
            true
        } else {
            false
        }
    }
}

impl Session {
    /// What local service discovery did so far (`None` when it is off).
    pub fn lsd_stats(&self) -> Option<LsdStats> {
        self.lsd.as_ref().map(|l| l.stats)
    }

    /// Schedules `torrent`'s announce for now (added or resumed). Ignored without LSD or a
    /// listen port, and for a private torrent.
    pub(super) fn lsd_track(&mut self, torrent: TorrentId, now: Instant) {
        let Some(t) = self.torrents.get(&torrent) else {
            return;
        };
        // Without a listen port, or a group to send to, there is nothing to announce
        // (announces heard still count).
        let groups = self.config.lsd_families;
        if t.is_private() || self.config.listen_port == 0 || !(groups.v4 || groups.v6) {
            return;
        }
        let info_hash = t.info_hash;
        // Due now, sent from the next `handle_timeout` (`poll_timeout` says now): torrents
        // added together then share datagrams instead of the first going out alone.
        if let Some(l) = self.lsd.as_mut() {
            l.due.insert(info_hash, (torrent, now));
        }
    }

    /// Sends one datagram with the torrents that are due, if the send gap allows.
    pub(super) fn lsd_timeout(&mut self, now: Instant) {
        let Some(l) = self.lsd.as_ref() else {
            return;
        };
        if self.life.is_closing() || l.last_sent.is_some_and(|last| now < last + SEND_GAP) {
            return;
        }
        let due: Vec<(InfoHash, TorrentId)> = l
            .due
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(h, (id, _))| (*h, *id))
            .collect();
        let mut batch = Vec::new();
        let mut forget = Vec::new();
        for (info_hash, id) in due {
            match self.torrents.get(&id) {
                // Removed, or known private only now that its metadata arrived.
                None => forget.push(info_hash),
                Some(t) if t.is_private() => forget.push(info_hash),
                // A paused torrent is announced again when it resumes.
                Some(_) if self.life.is_paused(id) || self.life.is_queued(id) => {
                    forget.push(info_hash)
                }
                Some(_) if batch.len() < MAX_INFO_HASHES => batch.push(info_hash),
                // The rest stay due: `next_deadline` wakes us for them one gap later.
                Some(_) => {}
            }
        }
        let port = self.config.listen_port;
        let Some(l) = self.lsd.as_mut() else {
            return;
        };
        for h in forget {
            l.due.remove(&h);
        }
        if batch.is_empty() {
            return;
        }
        for h in &batch {
            if let Some((_, at)) = l.due.get_mut(h) {
                *at = now + ANNOUNCE_INTERVAL;
            }
        }
        l.last_sent = Some(now);
        let announce = LsdAnnounce {
            port,
            info_hashes: batch,
            cookie: Some(l.cookie.clone()),
        };
        // The same round to each group (`lsd_track` schedules nothing without one).
        for group in self.config.lsd_families.groups() {
            l.stats.sent += 1;
            self.out.push(Action::SendLsd {
                to: group,
                bytes: Bytes::from(announce.encode(group)),
            });
        }
    }

    /// A datagram arrived on one of the driver's LSD sockets (IPv4 or IPv6) from `from`. An
    /// announce for torrents of ours gives each of them `from`'s IP with the announced port
    /// to dial (and an [`Event::LsdPeer`]): an IPv6 sender gives an IPv6 peer, an
    /// IPv4-mapped one the IPv4 peer it is. Our own announces, senders over their rate and
    /// anything that is not an announce are ignored (counted in [`Session::lsd_stats`]).
    /// Ignored without LSD.
    pub fn handle_lsd_datagram(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) {
        let from = canonical(from);
        self.saw(now);
        if self.life.is_closing() {
            return;
        }
        let Some(l) = self.lsd.as_mut() else {
            return;
        };
        l.stats.received += 1;
        // The rate is charged before parsing: a flood of garbage costs its sender too.
        if !l.admit(from.ip(), now) {
            l.stats.rate_limited += 1;
            return;
        }
        let announce = match LsdAnnounce::parse(bytes) {
            Ok(a) => a,
            Err(_) => {
                l.stats.invalid += 1;
                return;
            }
        };
        if announce.cookie.as_deref() == Some(l.cookie.as_str()) {
            l.stats.own += 1;
            return;
        }
        let addr = lsd_peer(from, announce.port);
        for info_hash in announce.info_hashes {
            let Some(&torrent) = self.by_hash.get(&info_hash) else {
                continue;
            };
            if self.torrents.get(&torrent).is_none_or(|t| t.is_private()) {
                continue;
            }
            if let Some(l) = self.lsd.as_mut() {
                l.stats.peers += 1;
                l.heard(info_hash, addr, now);
            }
            self.add_peers_from(torrent, PeerSource::Lsd, &[addr], now);
            self.out
                .push(Action::Event(Event::LsdPeer { torrent, addr }));
        }
    }
}

/// The peer an announce from `from` names: its IP with the announced `port`, keeping an
/// IPv6 sender's scope id (a link-local `fe80::` address cannot be dialled without it).
fn lsd_peer(from: SocketAddr, port: u16) -> SocketAddr {
    match from {
        SocketAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(*a.ip(), port)),
        SocketAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(*a.ip(), port, 0, a.scope_id())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionConfig;

    #[test]
    fn a_sender_gets_its_burst_then_one_a_second() {
        let mut l = SessionLsd::new(1);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let t0 = Instant::from_secs(100);
        for _ in 0..PER_IP_BURST {
            assert!(l.admit(ip, t0));
        }
        assert!(!l.admit(ip, t0));
        assert!(!l.admit(ip, t0 + Duration::from_millis(999)));
        assert!(l.admit(ip, t0 + Duration::from_millis(1000)));
        // Another IP has its own allowance.
        assert!(l.admit([10, 0, 0, 2].into(), t0));
    }

    #[test]
    fn senders_remembered_are_bounded() {
        let mut l = SessionLsd::new(1);
        let t0 = Instant::from_secs(100);
        for i in 0..(MAX_SENDERS as u32 + 50) {
            assert!(l.admit(
                IpAddr::from(i.to_be_bytes()),
                t0 + Duration::from_secs(i.into())
            ));
        }
        assert_eq!(l.senders.len(), MAX_SENDERS);
    }

    #[test]
    fn the_peer_is_the_sender_ip_with_the_announced_port() {
        let v4: SocketAddr = "10.0.0.1:6771".parse().expect("addr");
        assert_eq!(lsd_peer(v4, 80), "10.0.0.1:80".parse().expect("addr"));
        let ll = SocketAddr::V6(SocketAddrV6::new(
            "fe80::1".parse().expect("ip"),
            6771,
            7,
            3,
        ));
        let peer = lsd_peer(ll, 80);
        assert_eq!(peer, "[fe80::1%3]:80".parse().expect("addr"));
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:6771".parse().expect("addr");
        assert_eq!(
            lsd_peer(canonical(mapped), 80),
            "10.0.0.1:80".parse().expect("addr")
        );
    }

    #[test]
    fn off_by_default() {
        let s = Session::new(SessionConfig::default(), 1, Instant::ZERO);
        assert_eq!(s.lsd_stats(), None);
    }
}
