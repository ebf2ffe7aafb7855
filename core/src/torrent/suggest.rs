//! BEP 6 `suggest piece`: pieces a peer would like us to take from it (usually because
//! they are in its cache). A suggestion we can use (a piece it has and we lack) is asked for
//! before the picker's own order — rarest first — for that peer only: the peer reads it
//! once for us instead of another piece from its disk, and we lose nothing when the
//! suggested piece is as good as any. At most [`MAX_SUGGESTED`] are kept per peer, the
//! newest; pieces we come to hold are forgotten.

use super::allowed_fast::pieces_to_ask;
use super::{Ctx, Peer, Torrent};
use crate::bitfield::Bitfield;
use crate::time::Instant;
use crate::vocab::ConnId;

/// Most suggestions kept from one peer (the oldest go first).
pub(crate) const MAX_SUGGESTED: usize = 16;

impl Torrent {
    /// The peer suggests `index`.
    pub(super) fn on_suggest(&mut self, conn: ConnId, index: u32, ctx: &mut Ctx<'_>, now: Instant) {
        let Some(c) = self.phase.content() else {
            return; // no piece is known before the metadata
        };
        if index >= c.geometry.piece_count() || c.picker.have().get(index) {
            return;
        }
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        if peer.suggested.contains(&index) {
            return;
        }
        if peer.suggested.len() == MAX_SUGGESTED {
            peer.suggested.remove(0);
        }
        peer.suggested.push(index);
        if !peer.peer_choking {
            self.fill_pipeline(conn, ctx, now);
        }
    }
}

/// The suggested pieces worth asking `peer` for first, as a mask, or `None`.
pub(super) fn suggested_requestable(peer: &mut Peer, have: &Bitfield) -> Option<Bitfield> {
    if peer.suggested.is_empty() {
        return None;
    }
    pieces_to_ask(&mut peer.suggested, &peer.has, have)
}
