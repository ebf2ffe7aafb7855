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

use std::collections::BTreeMap;
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
        let listed: BTreeMap<SocketAddr, (ConnId, u8)> = self
            .peers
            .iter()
            .filter_map(|(c, p)| {
                let addr = dial_addr(p)?;
                let mut flags = 0;
                if matches!(p.direction, Direction::Outbound(_)) {
                    flags |= pex_flags::REACHABLE;
                }
                let seed = if self.awaiting_metadata() {
                    p.pending.all
                } else {
                    p.has.is_full()
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
            let added: Vec<(SocketAddr, u8)> = listed
                .iter()
                .filter(|(a, (c, _))| !about_self(a, *c) && !peer.pex.told.contains(a))
                .map(|(a, (_, f))| (*a, *f))
                .take(MAX_PEX_PEERS)
                .collect();
            let dropped: Vec<SocketAddr> = peer
                .pex
                .told
                .iter()
                .filter(|a| !listed.contains_key(a))
                .copied()
                .take(MAX_PEX_PEERS)
                .collect();
            let message = PexMessage { added, dropped };
            if message.is_empty() {
                continue;
            }
            for (a, _) in &message.added {
                peer.pex.told.insert(*a);
            }
            for a in &message.dropped {
                peer.pex.told.remove(a);
            }
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
