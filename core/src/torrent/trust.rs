//! Trust and bans: each IP's record of pieces it helped verify or fail, and the ban that
//! follows repeated bad data.
//!
//! Trust is counted in half-strikes: +1 per verified piece an IP contributed to (at most
//! [`MAX_TRUST`] banked), −1 per failed piece it shared with other peers, −2 per failed
//! piece it sent alone. At −2 × `max_strikes` the IP is banned: its connections close, its
//! addresses stop being candidates, and it is never dialled or accepted again by this
//! torrent. An honest peer caught in pieces a liar also touched earns its trust back with
//! every good piece; a liar never does.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use super::{Ctx, Torrent};
use crate::picker::PeerKey;
use crate::time::Instant;
use crate::vocab::{Action, ConnId, DisconnectReason, Event};

/// Credit a peer can bank: enough to absorb a few shared failures, too little for a liar to
/// buy many bad pieces with good ones.
pub(super) const MAX_TRUST: i32 = 8;

/// Trust per IP, and the IPs banned.
#[derive(Debug, Default)]
pub(super) struct Trust {
    scores: BTreeMap<IpAddr, i32>,
    banned: BTreeSet<IpAddr>,
}

impl Trust {
    /// Adds `delta` half-strikes to `ip`'s trust (capped at [`MAX_TRUST`]). Returns whether
    /// this lowering leaves it at or below the ban limit of −2 × `max_strikes`, which bans
    /// it (again, if it already was: the caller closes what is left of it).
    pub(super) fn adjust(&mut self, ip: IpAddr, delta: i32, max_strikes: u32) -> bool {
        let trust = self.scores.entry(ip).or_insert(0);
        *trust = trust.saturating_add(delta).min(MAX_TRUST);
        let limit = -2 * i32::try_from(max_strikes).unwrap_or(i32::MAX / 4);
        if delta < 0 && *trust <= limit {
            self.banned.insert(ip);
            return true;
        }
        false
    }

    /// Whether `ip` is banned.
    pub(super) fn is_banned(&self, ip: IpAddr) -> bool {
        self.banned.contains(&ip)
    }
}

impl Torrent {
    pub(crate) fn is_banned(&self, ip: IpAddr) -> bool {
        self.trust.is_banned(ip)
    }

    /// Adds `delta` to the trust of the peer with `key`'s IP; bans the IP when it falls to
    /// −2 × `max_strikes`.
    pub(super) fn adjust_trust(
        &mut self,
        key: PeerKey,
        delta: i32,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let Some(&conn) = self.by_key.get(&key) else {
            return;
        };
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        let addr = peer.addr;
        self.adjust_trust_ip(addr, delta, ctx, now);
    }

    /// [`Self::adjust_trust`] by address (the peer may have left meanwhile).
    pub(super) fn adjust_trust_ip(
        &mut self,
        addr: SocketAddr,
        delta: i32,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let ip = addr.ip();
        if !self.trust.adjust(ip, delta, ctx.config.max_strikes) {
            return;
        }
        self.candidates.retain(|a, _| a.ip() != ip);
        ctx.out.push(Action::Event(Event::PeerBanned {
            torrent: self.id,
            addr,
        }));
        let same_ip: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.addr.ip() == ip)
            .map(|(c, _)| *c)
            .collect();
        for c in same_ip {
            self.disconnect(c, DisconnectReason::Banned, ctx, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7));

    #[test]
    fn a_sole_sender_is_banned_at_its_third_bad_piece() {
        let mut t = Trust::default();
        assert!(!t.adjust(IP, -2, 3));
        assert!(!t.adjust(IP, -2, 3));
        assert!(!t.is_banned(IP));
        assert!(
            t.adjust(IP, -2, 3),
            "−6 half-strikes reaches −2 × max_strikes"
        );
        assert!(t.is_banned(IP));
    }

    #[test]
    fn shared_failures_count_half_and_good_pieces_earn_trust_back() {
        let mut t = Trust::default();
        for _ in 0..5 {
            assert!(!t.adjust(IP, -1, 3));
        }
        // One verified piece lifts −5 to −4: two more shared failures stay above −6.
        assert!(!t.adjust(IP, 1, 3));
        assert!(!t.adjust(IP, -1, 3));
        assert!(!t.is_banned(IP));
        assert!(t.adjust(IP, -1, 3));
        assert!(t.is_banned(IP));
    }

    #[test]
    fn banked_credit_is_capped() {
        let mut t = Trust::default();
        for _ in 0..100 {
            assert!(!t.adjust(IP, 1, 3), "a good piece never bans");
        }
        // Capped at MAX_TRUST (8), not 100: seven sole failures take it to −6.
        for _ in 0..6 {
            assert!(!t.adjust(IP, -2, 3));
        }
        assert!(t.adjust(IP, -2, 3));
    }

    #[test]
    fn other_ips_are_untouched() {
        let mut t = Trust::default();
        let other = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 8));
        for _ in 0..3 {
            t.adjust(IP, -2, 3);
        }
        assert!(t.is_banned(IP));
        assert!(!t.is_banned(other));
        assert!(!t.adjust(other, -2, 3));
    }
}
