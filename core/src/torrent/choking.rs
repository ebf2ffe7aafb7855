//! Applying the [`crate::choker::Choker`]'s decisions: what it needs to know of each peer,
//! the rounds on its timer, slots refilled between rounds, and the `choke`/`unchoke`
//! messages (with the rejects BEP 6 asks for when a choke drops queued requests).

use super::{Ctx, Torrent};
use crate::choker::{ChokeDecision, PeerChokeInfo, RoundKind};
use crate::picker::PeerKey;
use crate::time::Instant;
use crate::vocab::{Action, Event};
use crate::wire::Message;

impl Torrent {
    /// What the choker needs to know about every peer, with rates as of `now`.
    pub(super) fn choke_infos_at(&self, now: Instant) -> Vec<PeerChokeInfo> {
        self.peers
            .values()
            .map(|p| PeerChokeInfo {
                key: p.key,
                interested: p.peer_interested,
                download_rate: p.download.rate(now),
                upload_rate: p.upload.rate(now),
                connected_at: p.connected_at,
                last_block_received: p.last_block,
                requests_outstanding_since: p.snub_clock,
            })
            .collect()
    }

    /// Gives free upload slots to eligible peers between rounds.
    pub(super) fn refill_slots(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let infos = self.choke_infos_at(now);
        let seeding = self.is_complete();
        if let Some(decision) = self.choker.refill(now, seeding, &infos, ctx.rng) {
            self.apply_choke(&decision, ctx);
        }
    }

    pub(super) fn apply_choke(&mut self, decision: &ChokeDecision, ctx: &mut Ctx<'_>) {
        for (&conn, peer) in self.peers.iter_mut() {
            let unchoke = decision.unchokes(peer.key);
            if unchoke && peer.am_choking {
                peer.am_choking = false;
                ctx.out.send(conn, &Message::Unchoke);
            } else if !unchoke && !peer.am_choking {
                peer.am_choking = true;
                ctx.out.send(conn, &Message::Choke);
                // Choking drops the peer's queued requests; with fast each is rejected.
                for req in peer.uploads.drain(..) {
                    if peer.fast {
                        ctx.out.send(conn, &Message::RejectRequest(req));
                    }
                }
            }
        }
    }

    /// Runs the choker's round if its deadline passed (every 10 s; every third also moves
    /// the optimistic unchoke) and reports it in [`Event::ChokeRound`].
    pub(super) fn choke_round(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let infos = self.choke_infos_at(now);
        let seeding = self.is_complete();
        if let Some(decision) = self.choker.on_timeout(now, seeding, &infos, ctx.rng) {
            self.apply_choke(&decision, ctx);
            let conn_of = |k: &PeerKey| self.by_key.get(k).copied();
            ctx.out.push(Action::Event(Event::ChokeRound {
                torrent: self.id,
                round: decision.round,
                regular: decision.regular.iter().filter_map(conn_of).collect(),
                optimistic: decision.optimistic.as_ref().and_then(conn_of),
                optimistic_rotated: decision.kind == RoundKind::RegularAndOptimistic,
            }));
        }
    }
}
