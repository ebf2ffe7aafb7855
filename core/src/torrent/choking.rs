//! Applying the [`crate::choker::Choker`]'s decisions: what it needs to know of each peer,
//! the rounds on its timer, slots refilled between rounds, and the `choke`/`unchoke`
//! messages (with the rejects BEP 6 asks for when a choke drops queued requests).
//!
//! **Ranking by what peers take.** With `send_accounting` the upload rate the choker ranks
//! by is what the peer's socket accepted ([`Torrent::socket_accepted`]), not what we queued
//! for it: a slow reader's queue fills at our speed but drains at its own, and ranking by
//! the queue would keep it in its slot. Without accounting (a harness that delivers
//! everything at once) the two are the same, and the queued rate is used.
//!
//! **Slow readers.** At each round, an unchoked peer whose bytes waited unsent for the whole
//! last round (`round_interval`) while its socket took less than `slow_reader_rate` is
//! marked a slow reader, unless it sends us at least that rate itself (while leeching a
//! generous partner keeps its tit-for-tat slot): its own reading, not our upload, limits
//! it. A marked peer is eligible only for the optimistic slot, like a snubbed one. The mark
//! is re-judged only while the peer is unchoked (a choked peer shows nothing new) and
//! cleared only when its socket takes at least `slow_reader_rate`, so it sticks until the
//! optimistic slot shows the peer reading faster. We pick "backlogged for the whole round"
//! over an unsent-bytes threshold because upload read-ahead keeps even fast peers' queues
//! full for a moment; only a queue that never empties in 10 s is the peer's doing, and the
//! rate floor spares network-bound peers that read steadily.

use super::{Ctx, Torrent};
use crate::choker::{ChokeDecision, PeerChokeInfo, RoundKind};
use crate::picker::PeerKey;
use crate::time::Instant;
use crate::vocab::SessionConfig;
use crate::vocab::{Action, Event};
use crate::wire::Message;

impl Torrent {
    /// What the choker needs to know about every peer, with rates as of `now`.
    pub(super) fn choke_infos_at(
        &self,
        now: Instant,
        config: &SessionConfig,
    ) -> Vec<PeerChokeInfo> {
        self.peers
            .values()
            .map(|p| PeerChokeInfo {
                key: p.key,
                interested: p.peer_interested,
                download_rate: p.download.rate(now),
                upload_rate: if config.send_accounting {
                    p.accepted.rate(now)
                } else {
                    p.upload.rate(now)
                },
                slow_reader: p.slow_reader,
                connected_at: p.connected_at,
                last_block_received: p.last_block,
                requests_outstanding_since: p.snub_clock,
            })
            .collect()
    }

    /// Gives free upload slots to eligible peers between rounds.
    pub(super) fn refill_slots(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let infos = self.choke_infos_at(now, ctx.config);
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
                for (req, _) in peer.uploads.drain(..) {
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
        if now < self.choker.next_deadline() {
            return;
        }
        self.expire_uploads(ctx, now);
        self.judge_slow_readers(ctx.config, now);
        let infos = self.choke_infos_at(now, ctx.config);
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

    /// Re-judges every unchoked peer against the slow-reader rule (module docs).
    fn judge_slow_readers(&mut self, config: &SessionConfig, now: Instant) {
        if !config.send_accounting || config.slow_reader_rate == 0 {
            return;
        }
        let round = self.choker.config().round_interval;
        for peer in self.peers.values_mut().filter(|p| !p.am_choking) {
            let backlogged = peer
                .backlog_since
                .is_some_and(|since| now.saturating_duration_since(since) >= round);
            let rate = peer.accepted.rate(now);
            // Marked on evidence (a queue that never emptied, read slowly), cleared on
            // evidence (it read fast); a round without either, e.g. just unchoked, keeps it.
            if rate >= config.slow_reader_rate {
                peer.slow_reader = false;
            } else if backlogged && peer.download.rate(now) < config.slow_reader_rate {
                // A peer that sends us at least the floor earns its tit-for-tat slot
                // however it reads (a seed downloads nothing, so this spares no one there).
                peer.slow_reader = true;
            }
        }
    }
}
