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
            && peer.uploads.len() + peer.orphan_reads < ctx.config.max_queued_uploads
            && !peer.uploads.iter().any(|(r, _)| *r == req);
        if servable {
            peer.uploads.push((req, now));
            ctx.out.push(Action::ReadBlock {
                conn,
                torrent: self.id,
                block: req,
            });
        } else if peer.fast {
            ctx.out.send(conn, &Message::RejectRequest(req));
        }
        // Without fast, an unservable request is dropped silently (BEP 3 behaviour).
    }

    /// The peer cancelled a request: forget it if its read is still in flight.
    pub(super) fn on_cancel(&mut self, conn: ConnId, req: wire::BlockRequest, ctx: &mut Ctx<'_>) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let before = peer.uploads.len();
        peer.uploads.retain(|(r, _)| *r != req);
        peer.orphan_reads += before - peer.uploads.len();
        if peer.fast && peer.uploads.len() != before {
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
            return false;
        };
        let Some(pos) = peer.uploads.iter().position(|(r, _)| *r == block) else {
            // Cancelled, choked or expired meanwhile: an orphan read has come back.
            peer.orphan_reads = peer.orphan_reads.saturating_sub(1);
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
            let fast = peer.fast;
            let before = peer.uploads.len();
            peer.uploads.retain(|(req, since)| {
                let keep = now.saturating_duration_since(*since) < limit;
                if !keep && fast {
                    ctx.out.send(conn, &Message::RejectRequest(*req));
                }
                keep
            });
            peer.orphan_reads += before - peer.uploads.len();
        }
    }
}
