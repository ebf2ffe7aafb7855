//! What a connection's socket carries once it is open: bytes read (decrypted, then
//! handshakes and messages), `piece` payloads the driver framed itself, and bytes the
//! socket accepted.

use bytes::{Bytes, BytesMut};

use super::{ConnId, DisconnectReason, Session};
use crate::time::Instant;
// Named only in doc links.
#[cfg(doc)]
use super::SessionConfig;

impl Session {
    /// The socket of `conn` accepted `bytes` more of what `Send`/`SendBlock` handed out
    /// (needs [`SessionConfig::send_accounting`]). Uploads held back by
    /// [`SessionConfig::upload_read_ahead`] resume as room frees up; a connection past
    /// [`SessionConfig::max_unsent_bytes`] is dropped as a slow reader.
    pub fn handle_sent(&mut self, conn: ConnId, bytes: usize, now: Instant) {
        self.saw(now);
        self.admission.sent(conn, bytes, &self.config, now);
        // The torrent ranks uploads by what sockets took, and spots peers that read slowly.
        if let (Some(&tid), Some(unsent)) = (self.routes.get(&conn), self.admission.unsent(conn)) {
            self.with_torrent(tid, |t, _| t.socket_accepted(conn, bytes, unsent, now));
        }
        self.drop_slow_readers(Vec::new(), now);
    }

    /// Bytes arrived on `conn`. Complete messages are consumed from `buf`; a partial message
    /// stays for the next call. `buf` is the connection's own receive buffer: what is left
    /// in it must come back, unchanged, at its front on the next call (on an encrypted
    /// connection it is already decrypted; new bytes go behind it).
    pub fn handle_bytes(&mut self, conn: ConnId, buf: &mut BytesMut, now: Instant) {
        self.saw(now);
        self.decryptors.decrypt_new(conn, buf);
        self.consume(conn, buf, now);
        self.decryptors.left(conn, buf);
    }

    /// Consumes what it can of `buf` (plaintext by now): handshakes, then messages.
    fn consume(&mut self, conn: ConnId, buf: &mut BytesMut, now: Instant) {
        if self.handshaking.contains_key(&conn) && !self.advance_handshake(conn, buf, now) {
            return;
        }
        let Some(&tid) = self.routes.get(&conn) else {
            return;
        };
        self.with_torrent(tid, |t, ctx| {
            t.handle_bytes(conn, buf, ctx, now);
        });
        if self.limits.waiting() > 0 {
            // Requests that came wait for upload tokens: those the buckets allow go now.
            self.pump_uploads(now);
        }
    }

    /// Whether the driver may frame `conn`'s `piece` messages itself and hand their
    /// payloads to [`Session::handle_block`]: not on a connection whose stream is
    /// encrypted (its framing is ciphertext), nor before its handshake.
    pub fn frames_in_clear(&self, conn: ConnId) -> bool {
        self.routes.contains_key(&conn) && !self.decryptors.contains(conn)
    }

    /// A `piece` message arrived on `conn` and the driver read its payload into a buffer
    /// of its own (`data`, the block at byte `begin` of piece `index`): the same as
    /// [`Session::handle_bytes`] with that framed message, without copying the payload
    /// into a receive buffer. Only at a message boundary: bytes of an earlier message
    /// still in the driver's buffer go to `handle_bytes` first. A block before the
    /// handshake is a protocol error, the one [`Session::handle_bytes`] would report for
    /// it (its frame's first byte, 0, read as the protocol name's length). Only for a
    /// connection [`Session::frames_in_clear`] allows: on an encrypted one the call is a
    /// driver's mistake and ends the connection.
    pub fn handle_block(
        &mut self,
        conn: ConnId,
        index: u32,
        begin: u32,
        data: Bytes,
        now: Instant,
    ) {
        self.saw(now);
        if self.handshaking.contains_key(&conn) {
            self.close_handshaking(
                conn,
                DisconnectReason::Protocol(crate::wire::WireError::HandshakeProtocolLength(0)),
                now,
            );
            return;
        }
        let Some(&tid) = self.routes.get(&conn) else {
            return;
        };
        if self.decryptors.contains(conn) {
            // The driver read the frame as plaintext: index, begin and payload are
            // ciphertext, and the stream is out of step from here.
            self.close_conn(
                conn,
                DisconnectReason::Misbehaved("a block framed outside an encrypted stream"),
                now,
            );
            return;
        }
        self.with_torrent(tid, |t, ctx| {
            t.handle_block(conn, (index, begin), data, ctx, now);
        });
    }
}
