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
//! **Slot trials (wasted slots).** A slot is worth what the peer takes from it. While a
//! peer is unchoked it is judged window by window on the bytes its socket took in the
//! window against `slow_reader_rate` (16 KiB/s): below it, the peer **wasted its slot** (it
//! reads at a trickle, or it said it was interested and asks for nothing), unless it sends
//! us at least that rate itself (while leeching, a generous partner keeps its tit-for-tat
//! slot however it reads; a seed downloads nothing, so this spares no one there). At or
//! above it, the mark is cleared. The first second after the unchoke is an **opening**
//! judged only on whether the peer took anything at all: whatever the peer reads, its
//! socket first takes what it asked for at our speed (the kernel's send buffer, megabytes
//! on a fast link, swallows a slow reader's whole pipeline at once), so that second says
//! nothing about its reading. The first window is the rest of `slot_trial` (2 s) after
//! the unchoke, so a peer that stops reading once its buffer is full is judged two
//! seconds after its unchoke, not four; later windows last `slot_trial` each. Window by
//! window rather than since the unchoke for the same reason: what a socket took long ago
//! says nothing about how it reads now. While an interested peer that wasted no slot
//! waits for one, verdicts come at their exact instants (the torrent's deadline includes
//! [`Torrent::slot_verdict_at`]), not on the next 1 s tick, so a slot held by a slow
//! reader turns over within `slot_trial` of its unchoke: an honest newcomer that finds
//! every slot so held waits at most that long. With no one waiting, a verdict only
//! changes the next round's ranking (the round judges first), and the 1 s housekeeping
//! tick judges them: a busy swarm is not woken for each. The mark is judged only while the
//! peer is unchoked (a choked peer shows nothing new), so it sticks until the optimistic
//! slot shows the peer taking more. A marked peer ranks after every unmarked one and its
//! regular slot goes at once (not at the next round) to an interested peer that wasted
//! none ([`crate::choker::Choker::refill`]). Two verdicts come early: a peer that has
//! taken nothing at all by the end of its opening (it never asked), and one whose socket
//! kept our bytes waiting for a second while taking less than the floor (its reading is
//! the limit, seen directly).
//!
//! Why a relative rank rather than taking the slot away: the floor alone cannot tell a
//! slow reader from our own saturated uplink (with 50 KiB/s up, five unchoked peers take
//! 10 KiB/s each and every one of them is below the floor). Taking slots away would leave a
//! seed serving one peer; ranking last only changes who goes first, and when everyone is
//! below the floor the slots stay full and rank by rate as before. Why judge on what the
//! socket took rather than on a backlog: a peer that never asks leaves no backlog and
//! wastes the slot just the same, and a few seconds at the floor are enough for any honest
//! peer to show it reads (an honest request arrives within a round trip of the unchoke).

use super::{ConnId, Ctx, Torrent};
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
            .map(|p| choke_info(p, now, config))
            .collect()
    }

    /// Gives free upload slots to eligible peers between rounds.
    pub(super) fn refill_slots(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let holder = |key: PeerKey| {
            let conn = self.by_key.get(&key)?;
            self.peers.get(conn).map(|p| choke_info(p, now, ctx.config))
        };
        if self.choker.refill_keeps_all(now, holder) {
            return;
        }
        // Only interested peers: a refill looks at no one else (see `Choker::refill`), and
        // on every `interested`, `not interested` and departure the list of every peer,
        // each with its rates, was the refill's main cost in a big swarm.
        let infos: Vec<PeerChokeInfo> = self
            .peers
            .values()
            .filter(|p| p.peer_interested)
            .map(|p| choke_info(p, now, ctx.config))
            .collect();
        let seeding = self.is_complete();
        if let Some(decision) = self.choker.refill(now, seeding, &infos, ctx.rng) {
            self.apply_choke(&decision, ctx, now);
        }
    }

    pub(super) fn apply_choke(
        &mut self,
        decision: &ChokeDecision,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        self.apply_decision(decision, ctx, now);
        self.slot_waiting = self.someone_waits();
    }

    fn apply_decision(&mut self, decision: &ChokeDecision, ctx: &mut Ctx<'_>, now: Instant) {
        for (&conn, peer) in self.peers.iter_mut() {
            let unchoke = decision.unchokes(peer.key);
            if unchoke && peer.am_choking {
                peer.am_choking = false;
                self.unchoked.push(conn);
                peer.slot = Some(SlotTrial {
                    since: now,
                    ends: now + OPENING,
                    taken_before: peer.taken(ctx.config.send_accounting),
                    opening: true,
                });
                self.slot_verdict_at = Some(
                    self.slot_verdict_at
                        .map_or(now + OPENING, |t| t.min(now + OPENING)),
                );
                ctx.out.send(conn, &Message::Unchoke);
            } else if !unchoke && !peer.am_choking {
                peer.am_choking = true;
                self.unchoked.retain(|&c| c != conn);
                peer.slot = None;
                ctx.out.send(conn, &Message::Choke);
                // Choking drops the peer's queued requests, but for its allowed-fast
                // pieces; with fast each dropped one is rejected.
                let granted = std::mem::take(&mut peer.granted_fast);
                let dropped = peer.drop_uploads(|req, _| !granted.contains(&req.index));
                peer.granted_fast = granted;
                if peer.fast {
                    for req in dropped {
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
        self.judge_slots(ctx.config, now);
        let infos = self.choke_infos_at(now, ctx.config);
        let seeding = self.is_complete();
        if let Some(decision) = self.choker.on_timeout(now, seeding, &infos, ctx.rng) {
            self.apply_choke(&decision, ctx, now);
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

    /// Judges the slot trials due at `now` and, when a regular slot holder is newly found
    /// wasting it, refills at once so a waiting peer need not wait for the round.
    pub(super) fn slot_trials(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        if self.judge_slots(ctx.config, now) {
            self.refill_slots(ctx, now);
        }
    }

    /// The earliest instant a slot trial may reach a verdict (an opening or a window
    /// ends, or a backlog turns a second old), kept up to date by every unchoke, every new
    /// backlog and every judgement, so the session calls us then (module docs).
    ///
    /// `None` when no one holds a judged slot, and also while no peer waits for a slot
    /// ([`Torrent::slot_waiting`]): a verdict then changes only the ranking of the next
    /// round, which judges first, so the housekeeping tick is soon enough (and a swarm
    /// whose every peer is tried wakes no more often than before).
    pub(super) fn slot_verdict_at(&self) -> Option<Instant> {
        self.slot_verdict_at.filter(|_| self.slot_waiting)
    }

    /// Whether an interested peer that wasted no slot is choked (module docs).
    fn someone_waits(&self) -> bool {
        self.peers
            .values()
            .any(|p| p.am_choking && p.peer_interested && !p.wasted_slot)
    }

    /// `conn` said it is interested: if the slots stayed full it waits for one.
    pub(super) fn note_interested(&mut self, conn: ConnId) {
        if self
            .peers
            .get(&conn)
            .is_some_and(|p| p.am_choking && !p.wasted_slot)
        {
            self.slot_waiting = true;
        }
    }

    /// A backlog began on `conn` at `now`: its early verdict may come a second later.
    pub(super) fn backlog_began(&mut self, now: Instant) {
        let at = now + SILENT_SLOT;
        self.slot_verdict_at = Some(self.slot_verdict_at.map_or(at, |t| t.min(at)));
    }

    /// Judges every unchoked peer against the wasted-slot rule (module docs): at the end
    /// of its opening and of each window, and early on a backlog; true if one was newly
    /// marked. Sets [`Self::slot_verdict_at`] to the next instant one may be due.
    fn judge_slots(&mut self, config: &SessionConfig, now: Instant) -> bool {
        self.slot_verdict_at = None;
        if config.slow_reader_rate == 0 {
            return false;
        }
        let mut newly_wasted = false;
        let mut next: Option<Instant> = None;
        debug_assert_eq!(
            self.unchoked.len(),
            self.peers.values().filter(|p| !p.am_choking).count(),
            "`unchoked` lists exactly the peers we unchoke"
        );
        // Each peer is judged on its own and `next` is a minimum: the list's order does
        // not matter.
        for i in 0..self.unchoked.len() {
            let Some(peer) = self.peers.get_mut(&self.unchoked[i]) else {
                continue;
            };
            let Some(slot) = peer.slot else {
                continue;
            };
            let taken_now = peer.taken(config.send_accounting);
            let taken = taken_now.saturating_sub(slot.taken_before);
            let sends_us_enough = peer.download.rate(now) >= config.slow_reader_rate;
            if now < slot.ends {
                // An early verdict: a socket that kept our bytes waiting for a second and
                // took less than the floor meanwhile: the peer's reading is the limit,
                // seen directly (the window's average would still include the send
                // buffer's filling).
                let backlogged = peer.backlog_since.is_some_and(|since| {
                    let waited = now.saturating_duration_since(since);
                    let took = peer.accepted.total().saturating_sub(peer.backlog_taken);
                    waited >= SILENT_SLOT && per_second(took, waited) < config.slow_reader_rate
                });
                if backlogged && !sends_us_enough && !peer.wasted_slot {
                    peer.wasted_slot = true;
                    newly_wasted = true;
                }
                let mut due = slot.ends;
                if let Some(b) = peer.backlog_since.map(|since| since + SILENT_SLOT) {
                    if b > now {
                        due = due.min(b);
                    }
                }
                next = Some(next.map_or(due, |n| n.min(due)));
                continue;
            }
            let window = if slot.opening {
                // The opening: only whether the peer took anything (it never asked).
                if taken == 0 && !sends_us_enough && !peer.wasted_slot {
                    peer.wasted_slot = true;
                    newly_wasted = true;
                }
                // The first window: the rest of the trial after the unchoke (at least
                // half an opening, should this judgement come late).
                (slot.since + config.slot_trial).max(now + OPENING / 2) - now
            } else {
                // The rate over this window only, then a new window starts.
                let rate = per_second(taken, now.saturating_duration_since(slot.since));
                // Marked on evidence (a whole window below the floor), cleared on
                // evidence (at or above it).
                if rate >= config.slow_reader_rate {
                    peer.wasted_slot = false;
                } else if !sends_us_enough && !peer.wasted_slot {
                    peer.wasted_slot = true;
                    newly_wasted = true;
                }
                config.slot_trial.max(OPENING / 2)
            };
            let ends = now + window;
            peer.slot = Some(SlotTrial {
                since: now,
                ends,
                taken_before: taken_now,
                opening: false,
            });
            next = Some(next.map_or(ends, |n| n.min(ends)));
        }
        self.slot_verdict_at = next;
        self.slot_waiting = self.someone_waits();
        newly_wasted
    }
}

/// What the choker needs to know about `p`, with rates as of `now` (module docs: ranking
/// by what peers take).
fn choke_info(p: &super::Peer, now: Instant, config: &SessionConfig) -> PeerChokeInfo {
    PeerChokeInfo {
        key: p.key,
        interested: p.peer_interested,
        download_rate: p.download.rate(now),
        upload_rate: if config.send_accounting {
            p.accepted.rate(now)
        } else {
            p.upload.rate(now)
        },
        wasted_slot: p.wasted_slot,
        connected_at: p.connected_at,
        last_block_received: p.last_block,
        requests_outstanding_since: p.snub_clock,
    }
}

/// The current trial window of an unchoked peer: judged at `ends`, then the next window
/// starts (module docs).
#[derive(Debug, Clone, Copy)]
pub(super) struct SlotTrial {
    /// When the window began: the unchoke, or the end of the previous window.
    pub(super) since: Instant,
    /// When it is judged.
    pub(super) ends: Instant,
    /// What the peer had taken from us by then ([`super::Peer::taken`]).
    pub(super) taken_before: u64,
    /// The opening second after the unchoke, judged only on whether anything was taken.
    pub(super) opening: bool,
}

/// `bytes` over `over` as bytes per second (`over` of zero counts as 1 µs).
fn per_second(bytes: u64, over: std::time::Duration) -> u64 {
    let micros = u64::try_from(over.as_micros()).unwrap_or(u64::MAX).max(1);
    u64::try_from(u128::from(bytes) * 1_000_000 / u128::from(micros)).unwrap_or(u64::MAX)
}

/// The opening after an unchoke (module docs): a peer that has taken nothing at all by
/// its end wastes its slot (an honest peer asks within a round trip and the blocks it
/// asked for are in its socket well within a second), and what it took during it is not
/// counted as reading (the send buffer filled at our speed).
const OPENING: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a backlog (our bytes waiting on the socket) must last for its early verdict.
const SILENT_SLOT: std::time::Duration = std::time::Duration::from_secs(1);
