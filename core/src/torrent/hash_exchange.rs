//! BEP 52's hash messages on a torrent's connections: answering `hash request`s from the
//! piece layers we hold, and what a `hashes` or `hash reject` we did not ask for means.
//!
//! Rules:
//! - We answer requests for a file's piece layer and the layers above it, from the
//!   torrent's metadata (every v2 torrent we have pieces of knows all its layers). We keep
//!   no block hashes, so a request for the leaf layers below the piece layer is rejected:
//!   BEP 52 asks clients to serve the leaf layer only right after serving one of its
//!   blocks, which is for peers checking blocks one by one; libtorrent checks whole pieces.
//! - An answer costs at most 512 hashes (16 KiB, like a block). BEP 52 lets a choked peer
//!   ask; to keep that from being a way to take upload without being unchoked, a peer we
//!   choke gets at most [`CHOKED_HASH_ANSWERS`] answers per connection (enough for the
//!   layers of a torrent of 32,768 pieces of one file); then its requests are rejected.
//! - A torrent without v2 hashes, or still fetching its metadata, rejects every request.
//! - We do not send `hash request`s yet (a v2-only magnet link is refused before it gets
//!   here), so a `hashes` or `hash reject` message is unsolicited: ignored, as BEP 52 gives
//!   no rule for it and dropping a peer for it would gain nothing.

use crate::time::Instant;
use crate::vocab::ConnId;
use crate::wire::{HashRequest, Message};

use super::{Ctx, Torrent};

/// How many hash requests a peer we choke gets answered per connection.
pub(super) const CHOKED_HASH_ANSWERS: u32 = 64;

impl Torrent {
    /// A `hash request` from `conn`: answered with `hashes` or `hash reject`, always one
    /// of the two (BEP 52: every request MUST get one).
    pub(super) fn on_hash_request(
        &mut self,
        conn: ConnId,
        request: HashRequest,
        ctx: &mut Ctx<'_>,
        _now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let allowed = !peer.am_choking || peer.hash_answers_choked < CHOKED_HASH_ANSWERS;
        let answer = allowed
            .then(|| self.phase.content_mut())
            .flatten()
            .and_then(|c| {
                if !c.file_trees.contains_key(&request.pieces_root) {
                    let tree = c.piece_hashes.file_tree(&request.pieces_root)?;
                    c.file_trees.insert(request.pieces_root, tree);
                }
                c.file_trees.get(&request.pieces_root)?.answer(&request)
            });
        let message = match answer {
            Some(hashes) => {
                if peer.am_choking {
                    peer.hash_answers_choked += 1;
                }
                self.hash_requests_answered += 1;
                Message::Hashes {
                    request,
                    hashes: hashes.concat().into(),
                }
            }
            None => Message::HashReject(request),
        };
        ctx.out.send(conn, &message);
    }
}
