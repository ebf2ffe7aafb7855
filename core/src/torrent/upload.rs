//! Uploading: requests from peers (served only while we unchoke the peer, for pieces we
//! have, within `max_queued_uploads`), the `ReadBlock`s they become, and their answers.
//!
//! Invariant: with BEP 6 every request gets exactly one answer, the block or a reject;
//! without it an unservable request is dropped silently (BEP 3).

use bytes::Bytes;

use super::{Ctx, Torrent};
use crate::time::Instant;
use crate::vocab::{Action, ConnId, DiskError, Event};
use crate::wire::{self, Message};

impl Torrent {
    pub(super) fn on_request(&mut self, conn: ConnId, req: wire::BlockRequest, ctx: &mut Ctx<'_>) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        // Nothing is served before the metadata: we have no piece.
        let servable = !peer.am_choking
            && self
                .phase
                .content()
                .is_some_and(|c| c.picker.have().get(req.index))
            && peer.uploads.len() < ctx.config.max_queued_uploads
            && !peer.uploads.contains(&req);
        if servable {
            peer.uploads.push(req);
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
        peer.uploads.retain(|r| *r != req);
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
    ) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let Some(pos) = peer.uploads.iter().position(|r| *r == block) else {
            return; // cancelled or choked meanwhile
        };
        peer.uploads.remove(pos);
        match result {
            Ok(data) if data.len() == block.length as usize && !peer.am_choking => {
                let n = data.len() as u64;
                peer.upload.record(now, n);
                peer.last_sent = now;
                self.uploaded += n;
                ctx.out.send_block(conn, block.index, block.begin, data);
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
    }
}
