//! Pieces in flight: requests we keep pipelined to each peer, blocks received (buffered in
//! memory, written, and verified once whole), endgame cancels, and settling a piece once its
//! hash verdict and all its writes are in.
//!
//! See `STATE.md` in this directory for a piece's states and the invariants of each.
//!
//! A piece that fails its hash is handed to the smart ban (`smart_ban.rs`) with each
//! block's sender, and is downloaded again from one peer; see `trust.rs` for who is
//! banned and when.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use super::smart_ban::{Sender, distinct_senders};
use super::{Ctx, Peer, Torrent};
use crate::picker::{self, PeerKey, Receipt};
use crate::time::Instant;
use crate::vocab::{Action, ConnId, DisconnectReason, DiskError, Event};
use crate::wire::{self, Message};

/// Blocks of a piece being downloaded and the bookkeeping of its verification.
#[derive(Debug)]
pub(super) struct PieceBuffer {
    blocks: Vec<Option<Bytes>>,
    /// Who sent each block in `blocks` (the smart ban's evidence if the piece fails).
    senders: Vec<Option<Sender>>,
    writes_pending: u32,
    write_failed: bool,
    /// `Some(ok)` once the driver reported the hash result.
    hashed: Option<bool>,
}

impl Torrent {
    /// Tops up our requests to `conn` to its pipeline target.
    pub(super) fn fill_pipeline(&mut self, conn: ConnId, ctx: &mut Ctx<'_>, now: Instant) {
        let Some(c) = self.phase.content_mut() else {
            return; // no pieces to ask for before the metadata
        };
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        // Choked, only the peer's allowed-fast pieces may be asked for (BEP 6).
        let choked_mask = if peer.peer_choking {
            match super::allowed_fast::choked_requestable(peer, c.picker.have()) {
                Some(mask) => Some(mask),
                None => return,
            }
        } else {
            None
        };
        if !peer.am_interested || !ctx.writes.allows_requests() {
            // Held back while too many blocks wait for the disk: the session tops every
            // pipeline up again when the writes come back (`WriteBudget`).
            return;
        }
        let target = peer.pipeline_target(
            now,
            ctx.config.pipeline_seconds_millis,
            ctx.config.min_pipeline,
            ctx.config.max_pipeline,
        );
        if peer.outstanding.len() >= target {
            return;
        }
        let mut picked = Vec::new();
        let mut want = target - peer.outstanding.len();
        // Under a download limit no more is asked for than the tokens pay for: each
        // request takes its block's bytes as it goes out (below), so blocks arrive at the
        // rate tokens come, whatever the round trip. Held back, the torrent is woken when
        // a block's worth has come (`down_waiting`).
        let limited = self.limits.down.is_limited() || ctx.limits.global.down.is_limited();
        if limited {
            let budget = self
                .limits
                .down
                .budget(now)
                .min(ctx.limits.global.down.budget(now));
            let afford =
                usize::try_from(budget / u64::from(wire::MAX_BLOCK_LEN)).unwrap_or(usize::MAX);
            if afford < want {
                self.down_waiting = true;
                want = afford;
            }
            if want == 0 {
                return;
            }
        }
        // Unchoked, the peer's suggestions first (BEP 6; `suggest.rs`).
        if choked_mask.is_none() {
            if let Some(mask) = super::suggest::suggested_requestable(peer, c.picker.have()) {
                c.picker
                    .pick_blocks(peer.key, &mask, want, ctx.rng, &mut picked);
            }
        }
        c.picker.pick_blocks(
            peer.key,
            choked_mask.as_ref().unwrap_or(&peer.has),
            want - picked.len(),
            ctx.rng,
            &mut picked,
        );
        if !picked.is_empty() && peer.requests_since.is_none() {
            // The request time-out starts (`Torrent::peer_timers`).
            self.peer_timers_at = self.peer_timers_at.min(now + ctx.config.request_timeout);
        }
        for b in picked {
            if limited {
                self.limits.down.take(u64::from(b.len), now);
                ctx.limits.global.down.take(u64::from(b.len), now);
            }
            ctx.out.send(conn, &Message::Request(to_wire(b)));
            peer.outstanding.push((b, now));
            peer.requests_since.get_or_insert(now);
            peer.snub_clock.get_or_insert(now);
        }
    }

    /// Tops up every peer's pipeline (the session's write budget was released).
    pub(crate) fn fill_all_pipelines(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            self.fill_pipeline(conn, ctx, now);
        }
        self.fill_web_seeds(ctx, now);
    }

    /// Forgets every request outstanding at `conn` (choked without fast, or timed out);
    /// their download tokens go back ([`Torrent::refund_download`]).
    pub(super) fn drop_requests(&mut self, conn: ConnId, ctx: &mut Ctx<'_>, now: Instant) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        if let Some(c) = self.phase.content_mut() {
            c.picker.peer_requests_dropped(peer.key);
        }
        let bytes = outstanding_bytes(peer);
        peer.outstanding.clear();
        peer.requests_since = None;
        peer.snub_clock = None;
        self.refund_download(bytes, ctx, now);
    }

    pub(super) fn on_block(
        &mut self,
        conn: ConnId,
        piece: u32,
        offset: u32,
        data: Bytes,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let n = data.len() as u64;
        self.downloaded += n;
        peer.download.record(now, n);
        peer.download_fast.record(now, n);
        peer.last_block = Some(now);
        peer.timed_out = false;
        let requested = peer.take_outstanding(piece, offset);
        if !requested {
            // Asked for nothing (a late copy after a cancel or time-out): its bytes were
            // never paid for, so they are charged now, into debt if need be.
            self.limits.down.take(n, now);
            ctx.limits.global.down.take(n, now);
        }
        peer.snub_clock = (!peer.outstanding.is_empty()).then_some(now);
        let key = peer.key;
        let sender = Sender::Peer(peer.addr);
        match self.store_block(key, sender, piece, offset, data, requested, ctx) {
            Err(why) => return self.disconnect(conn, DisconnectReason::Misbehaved(why), ctx, now),
            Ok(false) => return,
            Ok(true) => {}
        }
        self.fill_pipeline(conn, ctx, now);
    }

    /// Takes a block from `sender` (picker key `key`; `requested`: whether we asked it for
    /// this block) into the piece's buffer: emits its `WriteBlock`, and `VerifyPiece` once
    /// the piece is whole. Unasked data for a piece not in progress, and anything for an
    /// upload-only torrent or before the metadata, is counted as wasted (`Ok(false)`);
    /// `Ok(true)` once the picker has it (new or duplicate). `Err` words why the block is
    /// unacceptable (wrong size or place): the sender misbehaved.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn store_block(
        &mut self,
        key: PeerKey,
        sender: Sender,
        piece: u32,
        offset: u32,
        data: Bytes,
        requested: bool,
        ctx: &mut Ctx<'_>,
    ) -> Result<bool, &'static str> {
        let n = data.len() as u64;
        let Some(c) = self.phase.content_mut() else {
            // Before the metadata nothing was requested and no block has a place: the
            // decoder (without a geometry) checked only its size.
            self.wasted += n;
            return Ok(false);
        };
        if self.upload_only || !requested && !c.buffers.contains_key(&piece) {
            // Unrequested data is only taken for a piece already in progress (a late copy
            // after a cancel or time-out). Otherwise a peer could make us buffer pieces we
            // never asked for, without bound. An upload-only torrent takes nothing.
            self.wasted += n;
            return Ok(false);
        }
        let valid = c
            .picker
            .block_at(piece, offset)
            .is_some_and(|b| b.len as usize == data.len());
        if !valid {
            return Err("block of the wrong size or place");
        }
        let outcome = c.picker.block_received(piece, offset, key);
        match outcome.receipt {
            Receipt::Invalid => return Err("block outside the torrent"),
            Receipt::Duplicate => {
                self.wasted += n;
            }
            Receipt::Requested | Receipt::Unrequested => {
                for &other in outcome.cancel.as_slice() {
                    self.cancel_at(other, piece, offset, ctx);
                }
                let Some(c) = self.phase.content_mut() else {
                    return Ok(true);
                };
                let blocks = c.picker.blocks_in_piece(piece).unwrap_or(0) as usize;
                let buffer = c.buffers.entry(piece).or_insert_with(|| PieceBuffer {
                    blocks: vec![None; blocks],
                    senders: vec![None; blocks],
                    writes_pending: 0,
                    write_failed: false,
                    hashed: None,
                });
                let index = (offset / wire::MAX_BLOCK_LEN) as usize;
                if let Some(slot) = buffer.blocks.get_mut(index) {
                    *slot = Some(data.clone());
                }
                if let Some(slot) = buffer.senders.get_mut(index) {
                    *slot = Some(sender);
                }
                buffer.writes_pending += 1;
                ctx.writes.write_emitted();
                c.written.set(piece);
                ctx.out.push(Action::WriteBlock {
                    torrent: self.id,
                    piece,
                    offset,
                    data,
                });
                if outcome.piece_complete {
                    let blocks: Vec<Bytes> = buffer.blocks.iter().flatten().cloned().collect();
                    if let Some(expected) = c.piece_hashes.expected(piece) {
                        ctx.out.push(Action::VerifyPiece {
                            torrent: self.id,
                            piece,
                            expected,
                            blocks,
                        });
                    }
                }
            }
        }
        Ok(true)
    }

    /// Sends `cancel` for a block to the peer with key `key` (endgame duplicate arrived).
    pub(super) fn cancel_at(&mut self, key: PeerKey, piece: u32, offset: u32, ctx: &mut Ctx<'_>) {
        let Some(&conn) = self.by_key.get(&key) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        if let Some((b, _)) = peer
            .outstanding
            .iter()
            .find(|(b, _)| b.piece == piece && b.offset == offset)
            .copied()
        {
            peer.take_outstanding(piece, offset);
            ctx.out.send(conn, &Message::Cancel(to_wire(b)));
            // No `now` here: an earlier instant only adds the bytes back, without a refill.
            self.refund_download(u64::from(b.len), ctx, Instant::ZERO);
        }
    }

    /// The driver finished writing a block.
    pub(crate) fn disk_write_done(
        &mut self,
        piece: u32,
        result: Result<(), DiskError>,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let Some(buffer) = self
            .phase
            .content_mut()
            .and_then(|c| c.buffers.get_mut(&piece))
        else {
            return;
        };
        if buffer.writes_pending > 0 {
            // Only answers to writes we emitted free memory; a stray one changes nothing.
            ctx.writes.write_done();
        }
        buffer.writes_pending = buffer.writes_pending.saturating_sub(1);
        if let Err(error) = result {
            buffer.write_failed = true;
            ctx.out.push(Action::Event(Event::StorageError {
                torrent: self.id,
                piece,
                error,
            }));
        }
        self.try_finish_piece(piece, ctx, now);
    }

    /// The driver hashed a piece.
    pub(crate) fn piece_hashed(&mut self, piece: u32, ok: bool, ctx: &mut Ctx<'_>, now: Instant) {
        let Some(buffer) = self
            .phase
            .content_mut()
            .and_then(|c| c.buffers.get_mut(&piece))
        else {
            return;
        };
        buffer.hashed = Some(ok);
        if !ok {
            self.hash_failures += 1;
            ctx.out.push(Action::Event(Event::HashFailed {
                torrent: self.id,
                piece,
            }));
        }
        self.try_finish_piece(piece, ctx, now);
    }

    /// Settles a piece once both its hash verdict and all its writes are in.
    pub(super) fn try_finish_piece(&mut self, piece: u32, ctx: &mut Ctx<'_>, now: Instant) {
        let Some(c) = self.phase.content_mut() else {
            return;
        };
        let Some(buffer) = c.buffers.get(&piece) else {
            return;
        };
        let Some(hash_ok) = buffer.hashed else {
            return;
        };
        if buffer.writes_pending > 0 {
            return;
        }
        let write_failed = buffer.write_failed;
        let piece_len = buffer
            .blocks
            .iter()
            .flatten()
            .map(|b| b.len() as u64)
            .sum::<u64>();
        let Some(buffer) = c.buffers.remove(&piece) else {
            return;
        };
        if hash_ok && !write_failed {
            let contributors = c.picker.contributors(piece);
            c.picker.piece_verified(piece);
            let complete = c.picker.is_complete();
            // The verified bytes are the truth: whoever sent different bytes for this
            // piece before is proven a liar.
            let culprits = self.trust.smart.piece_verified(piece, &buffer.blocks);
            for key in contributors {
                match self.web_seed_by_key(key) {
                    Some(seed) => self.adjust_web_seed_trust(seed, 1, ctx),
                    None => self.adjust_trust(key, 1, ctx, now),
                }
            }
            for culprit in culprits {
                match culprit {
                    Sender::Peer(addr) => self.ban_on_proof(addr, ctx, now),
                    Sender::WebSeed(seed) => self.ban_web_seed(seed, ctx),
                }
            }
            ctx.out.push(Action::Event(Event::PieceVerified {
                torrent: self.id,
                piece,
            }));
            // `have` only to peers that lack the piece: to one that has it the message
            // changes neither its interest in us nor anything it may pick, and these were
            // most of a swarm's messages (a third of the simulator's events). Our
            // completion still reaches everyone through `upload_only` (`check_complete`).
            // Held by default (`SessionConfig::have_delay`) for the peers we choke that
            // are interested in us already: for them it changes only what they count, not
            // what they may do, and they hear of it with our next message (our unchoke
            // included), when they say they are not interested, or within the delay,
            // several pieces at once. One we unchoke may request it at once (its pipeline
            // may be waiting on our pieces, our upload idle), and one not interested in us
            // may become so (and be given the next free slot): both hear now. Holding
            // these too left a 2-second loopback swarm's leechers unaware of each other's
            // pieces: they took more from the seed than from each other
            // (`cli/tests/swarm.rs`).
            // Only a peer that has the piece can stop interesting us because of it: what
            // we want from one that lacks it is what it was (the pieces it has that we
            // lack are the same), so its interest is not looked at again.
            let mut holders: Vec<ConnId> = Vec::new();
            for (&conn, peer) in &self.peers {
                if peer.has.get(piece) {
                    holders.push(conn);
                } else {
                    let have = Message::Have { index: piece };
                    let hold = !ctx.config.have_delay.is_zero();
                    if hold && peer.am_choking && peer.peer_interested {
                        ctx.out.send_deferred(conn, &have, now);
                    } else {
                        ctx.out.send(conn, &have);
                    }
                }
            }
            for conn in holders {
                self.update_interest(conn, ctx);
            }
            self.check_complete(ctx);
            if complete {
                let seeds: Vec<ConnId> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.has.is_full() || p.ext.upload_only)
                    .map(|(c, _)| *c)
                    .collect();
                for conn in seeds {
                    self.disconnect(conn, DisconnectReason::BothSeeds, ctx, now);
                }
            }
        } else {
            c.picker.piece_failed(piece);
            self.wasted += piece_len;
            if !hash_ok {
                // Keep the evidence; ask one peer for the whole piece next, so that a
                // further failure names one sender. Only a piece sent by one IP alone
                // costs a strike: a shared failure proves nothing about any one sender.
                self.trust
                    .smart
                    .record_failure(piece, &buffer.blocks, &buffer.senders);
                c.picker.prefer_one_peer(piece);
                match distinct_senders(&buffer.senders)[..] {
                    [Sender::Peer(alone)] => self.adjust_trust_ip(alone, -2, ctx, now),
                    [Sender::WebSeed(seed)] => self.adjust_web_seed_trust(seed, -2, ctx),
                    _ => {}
                }
            }
            let conns: Vec<ConnId> = self.peers.keys().copied().collect();
            for conn in conns {
                self.fill_pipeline(conn, ctx, now);
            }
            self.fill_web_seeds(ctx, now);
        }
    }

    /// Emits `TorrentComplete` once when every wanted piece is in (never before the
    /// metadata is known).
    pub(super) fn check_complete(&mut self, ctx: &mut Ctx<'_>) {
        let Some(c) = self.phase.content_mut() else {
            return;
        };
        if c.picker.is_complete() && !c.completion_announced {
            c.completion_announced = true;
            ctx.out
                .push(Action::Event(Event::TorrentComplete { torrent: self.id }));
            if !self.upload_only {
                self.announce_upload_only(true, ctx);
            }
        } else if !c.picker.is_complete() && c.completion_announced {
            // A priority change can make a complete torrent incomplete again.
            c.completion_announced = false;
            if !self.upload_only {
                self.announce_upload_only(false, ctx);
            }
        }
    }

    /// Tells every peer that speaks extensions whether we will download (`upload_only`,
    /// BEP 21, in a repeated extension handshake, as BEP 10 allows), when that changes.
    ///
    /// Why it matters: we send `have` only to peers that lack the piece (see
    /// [`Self::try_finish_piece`]), so a peer cannot count our pieces to learn that we
    /// completed; this is how it learns, and two complete peers part (`BothSeeds`).
    pub(super) fn announce_upload_only(&mut self, on: bool, ctx: &mut Ctx<'_>) {
        let targets: Vec<(ConnId, SocketAddr)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.extensions)
            .map(|(&c, p)| (c, p.addr))
            .collect();
        for (conn, addr) in targets {
            let mut hs = self.extension_handshake(addr, ctx.config);
            hs.upload_only = Some(on);
            ctx.out.send(conn, &hs.to_message());
        }
    }

    /// Cancels every request outstanding at `conn` when no block came from it for
    /// `request_timeout`: its blocks go to other peers and it keeps a one-block pipeline
    /// until a block arrives.
    pub(super) fn expire_requests(&mut self, conn: ConnId, ctx: &mut Ctx<'_>, now: Instant) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        if request_expired(peer, ctx.config.request_timeout, now) {
            // Give its blocks to others; keep the peer with a one-block pipeline.
            let bytes = outstanding_bytes(peer);
            for (b, _) in std::mem::take(&mut peer.outstanding) {
                ctx.out.send(conn, &Message::Cancel(to_wire(b)));
            }
            peer.requests_since = None;
            peer.timed_out = true;
            if let Some(c) = self.phase.content_mut() {
                c.picker.peer_requests_dropped(peer.key);
            }
            self.refund_download(bytes, ctx, now);
            let others: Vec<ConnId> = self.peers.keys().copied().filter(|c| *c != conn).collect();
            for other in others {
                self.fill_pipeline(other, ctx, now);
            }
            self.fill_pipeline(conn, ctx, now);
        }
    }
}

/// Bytes of the blocks we asked `peer` for and have not received.
pub(super) fn outstanding_bytes(peer: &Peer) -> u64 {
    peer.outstanding.iter().map(|(b, _)| u64::from(b.len)).sum()
}

/// Whether `peer`'s requests have gone unanswered for `timeout`: since they went out, or
/// since its last block if one came after.
pub(super) fn request_expired(peer: &Peer, timeout: Duration, now: Instant) -> bool {
    stalled_since(peer).is_some_and(|t| now - t >= timeout)
}

/// Since when the peer has had requests of ours outstanding with no block from it (`None`
/// with nothing outstanding).
pub(super) fn stalled_since(peer: &Peer) -> Option<Instant> {
    match (peer.requests_since, peer.last_block) {
        (Some(since), Some(block)) => Some(since.max(block)),
        (Some(since), None) => Some(since),
        (None, _) => None,
    }
}

impl Torrent {
    /// `WriteBlock`s emitted for this torrent and not answered yet: removing the torrent
    /// gives them back to the session's write budget.
    pub(crate) fn writes_pending(&self) -> usize {
        self.phase.content().map_or(0, |c| {
            c.buffers.values().map(|b| b.writes_pending as usize).sum()
        })
    }

    /// Whether a write or a hash check of this torrent is still out: the session's close
    /// waits for them so the final resume save records every piece they settle.
    pub(crate) fn disk_work_pending(&self) -> bool {
        self.phase.content().is_some_and(|c| {
            c.buffers.values().any(|b| {
                b.writes_pending > 0 || b.hashed.is_none() && b.blocks.iter().all(Option::is_some)
            })
        })
    }
}

/// The wire's name for a block the picker chose.
fn to_wire(b: picker::BlockRequest) -> wire::BlockRequest {
    wire::BlockRequest {
        index: b.piece,
        begin: b.offset,
        length: b.len,
    }
}

impl Torrent {
    /// A recheck's result (the torrent has no peer: it left its swarm for the check):
    /// `have` becomes the verified pieces, whatever they were. Blocks held in memory are
    /// dropped (their pieces are fetched again), the pieces found join `written`, each
    /// piece keeps its priority, and completion is recomputed (a torrent that lost a piece
    /// downloads it again and announces completion anew).
    pub(crate) fn replace_have(
        &mut self,
        have: crate::bitfield::Bitfield,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), crate::session::LifecycleError> {
        use crate::session::LifecycleError;
        let Some(c) = self.phase.content_mut() else {
            return Err(LifecycleError::NoMetadata);
        };
        let expected = c.picker.num_pieces();
        if have.len() != expected {
            return Err(LifecycleError::HaveMismatch {
                got: have.len(),
                expected,
            });
        }
        let mut fresh = super::picker_for(&c.layout, Some(have))
            .map_err(|_| LifecycleError::HaveMismatch { got: 0, expected })?;
        for p in 0..expected {
            let priority = c.picker.priority(p);
            if priority != fresh.priority(p) {
                fresh.set_piece_priority(p..p + 1, priority);
            }
        }
        for p in fresh.have().ones() {
            c.written.set(p);
        }
        c.buffers.clear();
        c.picker = fresh;
        self.check_complete(ctx);
        Ok(())
    }
}
