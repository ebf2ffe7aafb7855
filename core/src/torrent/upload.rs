//! Uploading: requests from peers (served only while we unchoke the peer, for pieces we
//! have, within `max_queued_uploads`), the `ReadBlock`s they become, and their answers.
//!
//! Invariant: with BEP 6 every request gets exactly one answer, the block or a reject;
//! without it an unservable request is dropped silently (BEP 3).
//!
//! Requests are bounded per peer (`max_queued_uploads`, counting the reads still in flight
//! for requests dropped meanwhile: `Peer::orphan_reads`) and by age: one not served within
//! `upload_request_timeout` is dropped at the next choke round (rejected under BEP 6), so a
//! peer that reads slowly cannot park requests, and the read's late answer is ignored.
//! Under a rate limit ([`crate::limits`]) an accepted request waits in the peer's
//! `throttled` queue until the session gives it upload tokens; only then is it read.
//! What the peer's socket really accepted is recorded here too ([`Torrent::socket_accepted`]),
//! for the choker's ranking and its slow-reader rule (see `choking.rs`).

use bytes::Bytes;

use super::{Ctx, Torrent};
use crate::time::Instant;
use crate::vocab::{Action, ConnId, DiskError, Event};
use crate::wire::{self, Message};

impl Torrent {
    pub(super) fn on_request(
        &mut self,
        conn: ConnId,
        req: wire::BlockRequest,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        // Nothing is served before the metadata: we have no piece.
        // Choked, a peer may still have its allowed-fast pieces (BEP 6).
        let servable = (!peer.am_choking || peer.granted_fast.contains(&req.index))
            && self
                .phase
                .content()
                .is_some_and(|c| c.picker.have().get(req.index))
            && peer.upload_requests() + peer.orphan_reads < ctx.config.max_queued_uploads
            && !peer.has_upload_request(&req);
        if servable {
            if self.limits.up.is_limited() || ctx.limits.global.up.is_limited() {
                // Under a rate limit the read waits for tokens: the session issues it in
                // the peer's turn (`Session::pump_uploads`), so no block is read, and none
                // held in memory, before it may be sent.
                peer.throttled.push_back((req, now));
                ctx.limits.queue_upload(self.id, conn);
            } else {
                peer.uploads.push((req, now));
                ctx.out.push(Action::ReadBlock {
                    conn,
                    torrent: self.id,
                    block: req,
                });
            }
        } else if peer.fast {
            ctx.out.send(conn, &Message::RejectRequest(req));
        }
        // Without fast, an unservable request is dropped silently (BEP 3 behaviour).
    }

    /// The length of the first request of `conn` waiting for upload tokens, if any.
    pub(crate) fn next_throttled(&self, conn: ConnId) -> Option<u64> {
        let peer = self.peers.get(&conn)?;
        peer.throttled.front().map(|(req, _)| u64::from(req.length))
    }

    /// Issues the `ReadBlock` of the first request of `conn` waiting for upload tokens
    /// (the caller took them); returns whether more wait.
    pub(crate) fn issue_throttled(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) -> bool {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return false;
        };
        if let Some((req, since)) = peer.throttled.pop_front() {
            // Its arrival time stays: `upload_request_timeout` counts from the request.
            peer.uploads.push((req, since));
            ctx.out.push(Action::ReadBlock {
                conn,
                torrent: self.id,
                block: req,
            });
        }
        !peer.throttled.is_empty()
    }

    /// Upload tokens taken for a block that was not sent (its read came back for a
    /// request dropped meanwhile, or failed) go back to both buckets.
    fn refund_upload(&mut self, bytes: u64, ctx: &mut Ctx<'_>, now: Instant) {
        self.limits.up.give_back(bytes, now);
        ctx.limits.global.up.give_back(bytes, now);
    }

    /// The peer cancelled a request: forget it if its read is still in flight.
    pub(super) fn on_cancel(&mut self, conn: ConnId, req: wire::BlockRequest, ctx: &mut Ctx<'_>) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let dropped = peer.drop_uploads(|r, _| *r == req);
        if peer.fast && !dropped.is_empty() {
            // BEP 6: every request gets exactly one answer, a piece or a reject.
            ctx.out.send(conn, &Message::RejectRequest(req));
        }
    }

    /// A `ReadBlock` finished: send the block if the peer still wants it.
    pub(crate) fn disk_read_done(
        &mut self,
        conn: ConnId,
        block: wire::BlockRequest,
        result: Result<Bytes, DiskError>,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) -> bool {
        let Some(peer) = self.peers.get_mut(&conn) else {
            self.refund_upload(u64::from(block.length), ctx, now);
            return false;
        };
        let Some(pos) = peer.uploads.iter().position(|(r, _)| *r == block) else {
            // Cancelled, choked or expired meanwhile: an orphan read has come back.
            peer.orphan_reads = peer.orphan_reads.saturating_sub(1);
            self.refund_upload(u64::from(block.length), ctx, now);
            return false;
        };
        peer.uploads.remove(pos);
        match result {
            Ok(data) if data.len() == block.length as usize && !peer.am_choking => {
                let n = data.len() as u64;
                peer.upload.record(now, n);
                peer.last_sent = now;
                let backlog_began = ctx.config.send_accounting && peer.backlog_since.is_none();
                if backlog_began {
                    peer.backlog_since = Some(now);
                    peer.backlog_taken = peer.accepted.total();
                }
                self.uploaded += n;
                if backlog_began {
                    self.backlog_began(now);
                }
                ctx.out.send_block(conn, block.index, block.begin, data);
                return true;
            }
            Ok(_) => {
                if peer.fast {
                    ctx.out.send(conn, &Message::RejectRequest(block));
                }
            }
            Err(error) => {
                if peer.fast {
                    ctx.out.send(conn, &Message::RejectRequest(block));
                }
                ctx.out.push(Action::Event(Event::StorageError {
                    torrent: self.id,
                    piece: block.index,
                    error,
                }));
            }
        }
        self.refund_upload(u64::from(block.length), ctx, now);
        false
    }

    /// The socket of `conn` accepted `bytes`, leaving `unsent` bytes waiting: counted as
    /// uploaded to it for ranking, and its backlog ends when nothing waits.
    pub(crate) fn socket_accepted(
        &mut self,
        conn: ConnId,
        bytes: usize,
        unsent: usize,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        peer.accepted.record(now, bytes as u64);
        if unsent == 0 {
            peer.backlog_since = None;
        }
    }

    /// Drops upload requests older than `upload_request_timeout` (a reject each under
    /// BEP 6); their reads' answers are then ignored by [`Torrent::disk_read_done`].
    pub(super) fn expire_uploads(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let limit = ctx.config.upload_request_timeout;
        for (&conn, peer) in self.peers.iter_mut() {
            let dropped =
                peer.drop_uploads(|_, since| now.saturating_duration_since(since) >= limit);
            if peer.fast {
                for req in dropped {
                    ctx.out.send(conn, &Message::RejectRequest(req));
                }
            }
        }
    }
}
