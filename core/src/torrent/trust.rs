//! Trust and bans: each IP's record of pieces it helped verify or fail, and the ban that
//! follows bad data — only on evidence, never against an honest co-contributor.
//!
//! Two kinds of evidence ban an IP:
//! - **Proof** (smart ban, [`super::smart_ban`]): a failed piece's blocks are remembered
//!   with their senders; when the piece later verifies, a sender whose block differed from
//!   the verified one is banned at once.
//! - **Strikes**: a failed piece sent entirely by one IP costs it a full strike. Trust is
//!   counted in half-strikes: +1 per verified piece an IP contributed to (at most
//!   [`MAX_TRUST`] banked), −2 per failed piece it sent alone; at −2 × `max_strikes` the
//!   IP is banned.
//!
//! A failure shared by several IPs costs nobody anything: it is recorded for the smart ban,
//! and the piece is downloaded again from one peer (`Picker::prefer_one_peer`) so that a
//! further failure names one sender. A liar that corrupts one block of every piece beside
//! an honest seed is thus proven wrong as soon as one of those pieces verifies, and the
//! honest seed loses nothing.
//!
//! A ban closes the IP's connections, drops its addresses from the candidates, and it is
//! never dialled or accepted again by this torrent.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use super::smart_ban::SmartBan;
use super::{Ctx, Torrent};
use crate::picker::PeerKey;
use crate::time::Instant;
use crate::vocab::{Action, ConnId, DisconnectReason, Event};

/// Credit a peer can bank: enough to absorb a few shared failures, too little for a liar to
/// buy many bad pieces with good ones.
pub(super) const MAX_TRUST: i32 = 8;

/// Trust per IP, the IPs banned, and the evidence kept about failed pieces.
#[derive(Debug, Default)]
pub(super) struct Trust {
    scores: BTreeMap<IpAddr, i32>,
    banned: BTreeSet<IpAddr>,
    /// Who sent which bytes of recently failed pieces.
    pub(super) smart: SmartBan,
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

    /// Bans `ip` on proof (a block it sent was shown wrong). Returns whether it was not
    /// banned before.
    pub(super) fn ban(&mut self, ip: IpAddr) -> bool {
        self.banned.insert(ip)
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
        let known = self.trust.is_banned(addr.ip());
        if self.trust.adjust(addr.ip(), delta, ctx.config.max_strikes) {
            // Evidence against an IP banned already (a piece it sent before the ban
            // failed later) closes what is left of it but is no new ban to announce.
            self.ban_ip(addr, !known, ctx, now);
        }
    }

    /// Bans `addr`'s IP at once (a block it sent was proven wrong). An IP banned already
    /// has no connection or candidate left, and its ban was announced: nothing to do.
    pub(super) fn ban_on_proof(&mut self, addr: SocketAddr, ctx: &mut Ctx<'_>, now: Instant) {
        if self.trust.ban(addr.ip()) {
            self.ban_ip(addr, true, ctx, now);
        }
    }

    /// What follows a ban of `addr`'s IP: the event (once per IP: `announce` is whether
    /// the ban is new), its candidates forgotten, its connections closed.
    fn ban_ip(&mut self, addr: SocketAddr, announce: bool, ctx: &mut Ctx<'_>, now: Instant) {
        let ip = addr.ip();
        self.candidates.retain(|a, _| a.ip() != ip);
        if announce {
            ctx.out.push(Action::Event(Event::PeerBanned {
                torrent: self.id,
                addr,
            }));
        }
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
    fn good_pieces_earn_trust_back_between_sole_failures() {
        let mut t = Trust::default();
        assert!(!t.adjust(IP, -2, 3));
        assert!(!t.adjust(IP, -2, 3));
        // One verified piece lifts −4 to −3: the next sole failure leaves it at −5.
        assert!(!t.adjust(IP, 1, 3));
        assert!(!t.adjust(IP, -2, 3));
        assert!(!t.is_banned(IP));
        assert!(t.adjust(IP, -2, 3));
        assert!(t.is_banned(IP));
    }

    #[test]
    fn a_ban_on_proof_needs_no_strikes() {
        let mut t = Trust::default();
        for _ in 0..8 {
            t.adjust(IP, 1, 3);
        }
        assert!(t.ban(IP));
        assert!(
            t.is_banned(IP),
            "banked credit does not protect a proven liar"
        );
        assert!(!t.ban(IP), "a second proof is no new ban");
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
