//! BEP 11 peer exchange inside a torrent.
//!
//! Sending: each peer that announced `ut_pex` gets, [`PEX_FIRST_DELAY`] after connecting and
//! then at most every [`PEX_INTERVAL`] (at the first PEX round, every [`PEX_ROUND`], once
//! its time is up: up to that much later), the peers of this torrent we have not told it about
//! yet (`added`, with flags) and those we told it about that are gone since (`dropped`), at
//! most [`MAX_PEX_PEERS`] of each (the rest waits for the next message). A peer is listed at
//! the address it can be dialled at: where we dialled it, or for a peer that dialled us its
//! IP with the listen port from its extension handshake (its source port is ephemeral); a
//! peer without a known dialable address is not listed. Nobody is told about itself.
//!
//! Receiving: addresses join the torrent's bounded candidates (invalid ones dropped, at most
//! [`MAX_PEX_PEERS`] per message). A peer that sends PEX more often than
//! [`PEX_MIN_RECEIVE_INTERVAL`] allows has the extra messages ignored: BEP 11's agreed rate
//! is one a minute, with some slack for timers that fire a little early.
//!
//! Private torrents (BEP 27) neither send nor use PEX.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Ctx, Peer, Torrent};
use crate::time::Instant;
use crate::vocab::{ConnId, Direction, PeerSource};
use crate::wire::{MAX_PEX_PEERS, PexMessage, is_dialable, pex_flags};

/// Delay before the first PEX message to a new peer: long enough for its extension
/// handshake (and its own first messages) to have arrived, short enough to help at once.
pub(crate) const PEX_FIRST_DELAY: Duration = Duration::from_secs(10);

/// Time between PEX messages to one peer (BEP 11: at most one a minute).
pub(crate) const PEX_INTERVAL: Duration = Duration::from_secs(60);

/// How often the torrent looks for PEX messages that are due. Every message due goes out
/// in the same round, so the address list is built once a round rather than every second
/// some peer's minute is up (with 50 peers, nearly every second); a message goes out at
/// most this much after its time.
pub(crate) const PEX_ROUND: Duration = Duration::from_secs(5);

/// Messages from one peer closer together than this are ignored.
pub(crate) const PEX_MIN_RECEIVE_INTERVAL: Duration = Duration::from_secs(45);

/// The address `peer` can be dialled at, if we know one.
pub(super) fn dial_addr(peer: &Peer) -> Option<SocketAddr> {
    let addr = match peer.direction {
        Direction::Outbound(_) => peer.addr,
        Direction::Inbound => SocketAddr::new(peer.addr.ip(), peer.ext.listen_port?),
    };
    is_dialable(&addr).then_some(addr)
}

/// What one peer's next PEX message says: `added`, the listed addresses it was not told
/// (and that are not about itself), and `dropped`, the told ones no longer listed — each the
/// first [`MAX_PEX_PEERS`] in address order.
///
/// One merge walk over the two sorted sets instead of a lookup per address: a round of
/// these ran on every peer of every session and was the largest part of the simulator's
/// housekeeping.
///
/// `listed` and `told` are sorted by address with no address twice (`listed` is
/// [`by_address_last_wins`]'s list, a slice so that each peer's walk over them is a walk over
/// memory, not over tree nodes). `added` and `dropped` come out in address order.
fn pex_news(
    listed: &[(SocketAddr, (ConnId, u8))],
    told: impl Iterator<Item = SocketAddr>,
    about_self: impl Fn(&SocketAddr, ConnId) -> bool,
) -> (Vec<(SocketAddr, u8)>, Vec<SocketAddr>) {
    let mut added = Vec::new();
    let mut dropped = Vec::new();
    let mut listed = listed.iter().peekable();
    let mut told = told.peekable();
    loop {
        let step = match (listed.peek(), told.peek()) {
            (None, None) => break,
            (Some((a, _)), Some(t)) => a.cmp(t),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
        };
        match step {
            std::cmp::Ordering::Less => {
                if let Some(&(a, (c, flags))) = listed.next() {
                    if added.len() < MAX_PEX_PEERS && !about_self(&a, c) {
                        added.push((a, flags));
                    }
                }
            }
            std::cmp::Ordering::Equal => {
                listed.next();
                told.next();
            }
            std::cmp::Ordering::Greater => {
                if let Some(t) = told.next() {
                    if dropped.len() < MAX_PEX_PEERS {
                        dropped.push(t);
                    }
                }
            }
        }
        if added.len() == MAX_PEX_PEERS && dropped.len() == MAX_PEX_PEERS {
            break;
        }
    }
    (added, dropped)
}

/// `entries` sorted by address with one entry per address, the last one given for an
/// address two peers share, as `pex_news` wants them: what collecting them into a
/// `BTreeMap` gives, without building a tree every PEX round (2 % of the simulator's time
/// at 300 peers).
fn by_address_last_wins(
    mut entries: Vec<(SocketAddr, (ConnId, u8))>,
) -> Vec<(SocketAddr, (ConnId, u8))> {
    // Stable: entries for one address keep their order, so the last one given is last.
    entries.sort_by_key(|(addr, _)| *addr);
    let mut kept: Vec<(SocketAddr, (ConnId, u8))> = Vec::with_capacity(entries.len());
    for entry in entries {
        match kept.last_mut() {
            Some(last) if last.0 == entry.0 => *last = entry,
            _ => kept.push(entry),
        }
    }
    kept
}

impl Torrent {
    /// Sends the PEX messages that are due.
    pub(super) fn send_pex(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        if self.private || now < self.pex_round_at {
            return;
        }
        self.pex_round_at = now + PEX_ROUND;
        let due: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.ext.ut_pex.is_some() && p.pex.next_send <= now)
            .map(|(c, _)| *c)
            .collect();
        if due.is_empty() {
            return;
        }
        // Everyone we could list, with their flags.
        let listed: Vec<(SocketAddr, (ConnId, u8))> = self
            .peers
            .iter()
            .filter_map(|(c, p)| {
                let addr = dial_addr(p)?;
                let mut flags = 0;
                if matches!(p.direction, Direction::Outbound(_)) {
                    flags |= pex_flags::REACHABLE;
                }
                // BEP 11's 0x02 is "seed / upload only": our `have`s to a peer are cut to
                // the pieces it lacks, so a peer's own `upload_only` is what says it.
                let seed = if self.awaiting_metadata() {
                    p.pending.all
                } else {
                    p.has.is_full() || p.ext.upload_only
                };
                if seed {
                    flags |= pex_flags::SEED;
                }
                // It spoke MSE with us: it will take an encrypted dial.
                if p.crypto.is_some() {
                    flags |= pex_flags::PREFERS_ENCRYPTION;
                }
                Some((addr, (*c, flags)))
            })
            .collect();
        let listed = by_address_last_wins(listed);
        for conn in due {
            let Some(peer) = self.peers.get_mut(&conn) else {
                continue;
            };
            peer.pex.next_send = now + PEX_INTERVAL;
            let Some(id) = peer.ext.ut_pex else {
                continue;
            };
            let own = dial_addr(peer);
            let peer_addr = peer.addr;
            let about_self = |addr: &SocketAddr, c: ConnId| {
                c == conn || Some(*addr) == own || *addr == peer_addr
            };
            let (added, dropped) = pex_news(&listed, peer.pex.told.iter(), about_self);
            let message = PexMessage { added, dropped };
            if message.is_empty() {
                continue;
            }
            peer.pex.told.update(&message.added, &message.dropped);
            ctx.out.send(conn, &message.to_message(id));
        }
    }

    /// A `ut_pex` message arrived from `conn`.
    pub(super) fn on_pex(&mut self, conn: ConnId, payload: &[u8], ctx: &mut Ctx<'_>, now: Instant) {
        if self.private {
            return;
        }
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        if peer
            .pex
            .last_received
            .is_some_and(|t| now - t < PEX_MIN_RECEIVE_INTERVAL)
        {
            self.pex_ignored += 1;
            return;
        }
        peer.pex.last_received = Some(now);
        let sender = peer.addr;
        // A malformed PEX message carries nothing we need: it is ignored, not fatal.
        let Ok(message) = PexMessage::decode(payload) else {
            self.pex_ignored += 1;
            return;
        };
        let addrs: Vec<SocketAddr> = message
            .added
            .iter()
            .map(|(a, _)| *a)
            .filter(|a| is_dialable(a) && *a != sender && !ctx.own_addrs.contains(a))
            .take(MAX_PEX_PEERS)
            .collect();
        self.add_candidates(&addrs, PeerSource::Pex, ctx.config.max_candidates, now);
        self.note_prefers_encryption(
            message
                .added
                .iter()
                .filter(|(_, flags)| flags & pex_flags::PREFERS_ENCRYPTION != 0)
                .map(|(a, _)| *a),
        );
        self.maybe_connect(ctx, now);
    }
}

#[cfg(test)]
mod tests {
    use super::super::pex_told::ToldSet;
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// Sorting with the last entry of an address kept is collecting into a map.
    #[test]
    fn by_address_last_wins_is_a_maps_entries() {
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..300 {
            let entries: Vec<(SocketAddr, (ConnId, u8))> = (0..rng.usize(0..60))
                .map(|i| {
                    let addr = SocketAddr::from(([10, 0, 0, rng.u8(..8)], rng.u16(1..4)));
                    (addr, (ConnId(i as u64), rng.u8(..)))
                })
                .collect();
            let map: BTreeMap<SocketAddr, (ConnId, u8)> = entries.iter().copied().collect();
            let want: Vec<(SocketAddr, (ConnId, u8))> = map.into_iter().collect();
            assert_eq!(by_address_last_wins(entries), want);
        }
    }

    /// The merge walk says what the plain definition says: `added` = listed, not about
    /// self, not told; `dropped` = told, not listed; each the first 50 in address order.
    #[test]
    fn pex_news_matches_the_definition_on_random_sets() {
        let mut rng = fastrand::Rng::with_seed(11);
        for round in 0..500 {
            let addr = |rng: &mut fastrand::Rng| {
                SocketAddr::from(([10, 0, rng.u8(0..3), rng.u8(..)], rng.u16(6881..6884)))
            };
            let listed: BTreeMap<SocketAddr, (ConnId, u8)> = (0..rng.usize(0..130))
                .map(|i| (addr(&mut rng), (ConnId(i as u64), rng.u8(..))))
                .collect();
            let mut told: BTreeSet<SocketAddr> =
                (0..rng.usize(0..130)).map(|_| addr(&mut rng)).collect();
            told.extend(listed.keys().filter(|_| rng.bool()).copied());
            let mut told_set = ToldSet::default();
            let initial: Vec<(SocketAddr, u8)> = told.iter().map(|a| (*a, 0)).collect();
            told_set.update(&initial, &[]);
            let me = ConnId(rng.u64(0..20));
            let about_self = |_: &SocketAddr, c: ConnId| c == me;
            let want_added: Vec<(SocketAddr, u8)> = listed
                .iter()
                .filter(|(a, (c, _))| !about_self(a, *c) && !told.contains(a))
                .map(|(a, (_, f))| (*a, *f))
                .take(MAX_PEX_PEERS)
                .collect();
            let want_dropped: Vec<SocketAddr> = told
                .iter()
                .filter(|a| !listed.contains_key(a))
                .copied()
                .take(MAX_PEX_PEERS)
                .collect();
            let sorted: Vec<(SocketAddr, (ConnId, u8))> =
                listed.iter().map(|(a, v)| (*a, *v)).collect();
            assert_eq!(
                pex_news(&sorted, told_set.iter(), about_self),
                (want_added.clone(), want_dropped.clone()),
                "round {round}"
            );
            // The set after telling both is what a tree set's inserts and removes give.
            told_set.update(&want_added, &want_dropped);
            for (a, _) in &want_added {
                told.insert(*a);
            }
            for a in &want_dropped {
                told.remove(a);
            }
            assert_eq!(
                told_set.iter().collect::<Vec<_>>(),
                told.into_iter().collect::<Vec<_>>(),
                "round {round}"
            );
        }
    }
}
