//! The session's output queue: actions in order, with small messages for one connection
//! coalesced into a single [`Action::Send`], and encrypted for a connection that
//! negotiated RC4 (MSE/PE). Messages that may wait (`have`) are held until the
//! connection's next other message or the next housekeeping tick.

use std::collections::{BTreeMap, VecDeque};

use bytes::{Bytes, BytesMut};

use super::action::{Action, ConnId};
use super::conn_map::ConnMap;
use crate::mse::Cipher;
use crate::time::Instant;
use crate::wire::{Message, encode_piece_header};

/// The capacity a connection's pending bytes start with.
const FIRST_CAPACITY: usize = 64;
/// The most capacity a connection's pending buffer keeps once flushed: enough for the
/// usual bursts (a few `have`s and `request`s, a bitfield); larger ones (PEX, metadata)
/// give their memory back, since a swarm holds tens of thousands of these buffers.
const KEEP_CAPACITY: usize = 256;

/// Actions waiting to be polled, plus per-connection bytes not yet turned into a `Send`.
///
/// Ordering rule: bytes appended for a connection are emitted before any later
/// [`Action::SendBlock`] for it (a `SendBlock` first flushes the connection's pending bytes),
/// so the peer sees messages in the order the session produced them.
///
/// Deferral rule: bytes queued with [`Outbox::send_deferred`] sit in the same pending
/// buffer but do not make the connection due; they leave with the connection's next
/// other message (in the order produced, by the rule above), at
/// [`Outbox::release_conn`] for that connection or at [`Outbox::release_deferred`],
/// whichever comes first; `deferred_since` is when the oldest of them was queued, for
/// the session to time the release. Invariant: a connection whose pending bytes are not
/// empty is listed in `dirty` (it is due) or in `deferred` (they are all deferred).
///
/// Encryption rule: bytes are encrypted as they enter the outbox (appended to `pending`,
/// or handed to [`Outbox::send_block`]). Entry order is the order the peer reads them in
/// (the ordering rule above), which is the order an RC4 keystream must be applied in; and
/// what was queued before [`Outbox::encrypt`] (the MSE handshake's own bytes, already
/// encrypted by the handshake) is never encrypted twice.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: VecDeque<Action>,
    /// Every connection's bytes not yet turned into a `Send`. A buffer stays with its
    /// connection (until [`Outbox::discard`]) and is reused: each `Send` takes a copy of
    /// exactly its bytes, one allocation, where handing out the buffer itself cost a
    /// growing buffer and a shared-ownership record per message.
    pending: ConnMap<Pending>,
    /// The connections whose pending bytes are due (with repeats, and stale entries once
    /// flushed), flushed in connection order by [`Outbox::pop`].
    dirty: Vec<ConnId>,
    /// The connections whose pending bytes were all deferred when first queued (with stale
    /// entries): made due by [`Outbox::release_deferred`].
    deferred: Vec<ConnId>,
    /// When the oldest bytes still possibly deferred were queued: set by the first
    /// [`Outbox::send_deferred`] after a [`Outbox::release_deferred`] (it may outlive
    /// bytes that left with a later message; their release is then a no-op).
    deferred_since: Option<Instant>,
    /// The send keystream of every connection whose stream is RC4.
    ciphers: BTreeMap<ConnId, Cipher>,
    /// Connections given anything to send since the last [`Outbox::take_touched`], each
    /// once (its `Pending::touched` flag says whether it is listed; a closed one may stay
    /// listed until then): a flag and a list rather than a hash set, which took a hash
    /// per message and grew anew after every take.
    touched: Vec<ConnId>,
}

/// One connection's bytes not yet turned into a `Send`.
#[derive(Debug)]
struct Pending {
    bytes: BytesMut,
    /// Listed in `dirty` since the last flush: the bytes leave at the next [`Outbox::pop`].
    /// Set only with bytes present, so `due` implies `!bytes.is_empty()`.
    due: bool,
    /// Listed in `touched`.
    touched: bool,
}

impl Outbox {
    /// `conn`'s pending bytes (made on its first message), with the connection listed as
    /// touched.
    fn touch<'a>(
        pending: &'a mut ConnMap<Pending>,
        touched: &mut Vec<ConnId>,
        conn: ConnId,
    ) -> &'a mut Pending {
        // Room for a few small messages (`have` 9 bytes, `request` 17) from the start: grown
        // from empty, the buffer was reallocated for nearly every message coalesced into it.
        let p = pending.entry(conn).or_insert_with(|| Pending {
            bytes: BytesMut::with_capacity(FIRST_CAPACITY),
            due: false,
            touched: false,
        });
        if !p.touched {
            p.touched = true;
            touched.push(conn);
        }
        p
    }

    /// Queues `message` for `conn` (coalesced with other small messages).
    pub(crate) fn send(&mut self, conn: ConnId, message: &Message) {
        self.append(conn, false, |buf| message.encode(buf));
    }

    /// Queues `message` for `conn` to leave with the connection's next other message or at
    /// the next [`Outbox::release_deferred`], whichever is first (see the deferral rule);
    /// `now` is when it was queued.
    pub(crate) fn send_deferred(&mut self, conn: ConnId, message: &Message, now: Instant) {
        self.deferred_since.get_or_insert(now);
        self.append(conn, true, |buf| message.encode(buf));
    }

    /// Queues raw, already-encoded bytes for `conn` (a handshake).
    pub(crate) fn send_raw(&mut self, conn: ConnId, bytes: &[u8]) {
        self.append(conn, false, |buf| buf.extend_from_slice(bytes));
    }

    /// Makes every connection's deferred bytes due: they leave at the next [`Outbox::pop`].
    pub(crate) fn release_deferred(&mut self) {
        self.deferred_since = None;
        for conn in std::mem::take(&mut self.deferred) {
            self.release_conn(conn);
        }
    }

    /// Makes `conn`'s deferred bytes due, if it has any: they leave at the next
    /// [`Outbox::pop`]. (Its entry in `deferred`, if any, goes stale.)
    pub(crate) fn release_conn(&mut self, conn: ConnId) {
        if let Some(p) = self.pending.get_mut(&conn) {
            if !p.due && !p.bytes.is_empty() {
                p.due = true;
                self.dirty.push(conn);
            }
        }
    }

    /// Whether deferred bytes may be waiting for [`Outbox::release_deferred`] (may say yes
    /// for bytes that already left with a later message).
    pub(crate) fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// When the oldest bytes that may still wait for [`Outbox::release_deferred`] were
    /// queued (`None` when none were queued since the last release).
    pub(crate) fn deferred_since(&self) -> Option<Instant> {
        self.deferred_since
    }

    /// Appends what `write` puts in `conn`'s pending bytes, encrypted if the connection is;
    /// `deferred` bytes do not make the connection due.
    fn append(&mut self, conn: ConnId, deferred: bool, write: impl FnOnce(&mut BytesMut)) {
        let p = Self::touch(&mut self.pending, &mut self.touched, conn);
        if !p.due {
            if !deferred {
                p.due = true;
                self.dirty.push(conn);
            } else if p.bytes.is_empty() {
                self.deferred.push(conn);
            }
        }
        let buf = &mut p.bytes;
        let start = buf.len();
        write(buf);
        if let Some(cipher) = self.ciphers.get_mut(&conn) {
            cipher.apply(&mut buf[start..]);
        }
    }

    /// Queues a `piece` message carrying `data` without copying it — unless the
    /// connection is encrypted and `data` is shared (a buffer someone else also holds):
    /// RC4 then needs a copy to write into. A block read for this request alone is
    /// encrypted where it lies.
    pub(crate) fn send_block(&mut self, conn: ConnId, index: u32, begin: u32, data: Bytes) {
        Self::touch(&mut self.pending, &mut self.touched, conn);
        self.flush(conn);
        let mut header = BytesMut::with_capacity(13);
        encode_piece_header(index, begin, data.len() as u32, &mut header);
        let data = match self.ciphers.get_mut(&conn) {
            Some(cipher) => {
                cipher.apply(&mut header);
                let mut owned = data
                    .try_into_mut()
                    .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
                cipher.apply(&mut owned);
                owned.freeze()
            }
            None => data,
        };
        self.queue.push_back(Action::SendBlock {
            conn,
            header: header.freeze(),
            data,
        });
    }

    /// Encrypts everything queued for `conn` from now on with `cipher` (its MSE handshake
    /// settled on RC4).
    pub(crate) fn encrypt(&mut self, conn: ConnId, cipher: Cipher) {
        self.ciphers.insert(conn, cipher);
    }

    /// Queues a non-send action.
    pub(crate) fn push(&mut self, action: Action) {
        self.queue.push_back(action);
    }

    /// Forgets `conn`'s unsent bytes (it is being closed).
    pub(crate) fn discard(&mut self, conn: ConnId) {
        self.pending.remove(&conn);
        self.ciphers.remove(&conn);
    }

    /// Appends to `into` the connections given anything to send since the last call (and
    /// still open), each once.
    pub(crate) fn take_touched(&mut self, into: &mut Vec<ConnId>) {
        for conn in self.touched.drain(..) {
            // A connection closed since (`discard`) has no entry and is not reported.
            if let Some(p) = self.pending.get_mut(&conn) {
                p.touched = false;
                into.push(conn);
            }
        }
    }

    fn flush(&mut self, conn: ConnId) {
        if let Some(p) = self.pending.get_mut(&conn) {
            p.due = false;
            let buf = &mut p.bytes;
            if !buf.is_empty() {
                let data = Bytes::copy_from_slice(buf);
                buf.clear();
                // A buffer that once held something large (metadata, a long bitfield)
                // does not keep that memory for the connection's life.
                if buf.capacity() > KEEP_CAPACITY {
                    *buf = BytesMut::new();
                }
                self.queue.push_back(Action::Send { conn, data });
            }
        }
    }

    /// The next action: queued ones first, then every connection's coalesced bytes (in
    /// connection order, for determinism).
    pub(crate) fn pop(&mut self) -> Option<Action> {
        if let Some(a) = self.queue.pop_front() {
            return Some(a);
        }
        if self.dirty.is_empty() {
            return None;
        }
        let mut conns = std::mem::take(&mut self.dirty);
        conns.sort_unstable();
        conns.dedup();
        for &conn in &conns {
            self.flush(conn);
        }
        conns.clear();
        self.dirty = conns;
        self.queue.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(messages: &[Message]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        for m in messages {
            m.encode(&mut buf);
        }
        buf.to_vec()
    }

    fn drain(out: &mut Outbox) -> Vec<Action> {
        std::iter::from_fn(|| out.pop()).collect()
    }

    fn sends(actions: &[Action]) -> Vec<(ConnId, Vec<u8>)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { conn, data } => Some((*conn, data.to_vec())),
                _ => None,
            })
            .collect()
    }

    const A: ConnId = ConnId(1);
    const T0: Instant = Instant::from_micros(5_000_000);
    const B: ConnId = ConnId(2);

    #[test]
    fn deferred_bytes_wait_for_the_release() {
        let mut out = Outbox::default();
        assert_eq!(out.deferred_since(), None);
        out.send_deferred(A, &Message::Have { index: 3 }, T0);
        let later = T0 + std::time::Duration::from_secs(3);
        out.send_deferred(A, &Message::Have { index: 4 }, later);
        assert!(out.has_deferred());
        assert_eq!(out.deferred_since(), Some(T0), "the oldest deferral");
        assert!(
            drain(&mut out).is_empty(),
            "nothing leaves before the release"
        );
        out.release_deferred();
        assert!(!out.has_deferred());
        assert_eq!(out.deferred_since(), None);
        let have = bytes(&[Message::Have { index: 3 }, Message::Have { index: 4 }]);
        assert_eq!(sends(&drain(&mut out)), vec![(A, have)]);
        out.release_deferred();
        assert!(drain(&mut out).is_empty(), "released once, sent once");
    }

    #[test]
    fn deferred_bytes_leave_first_with_the_next_message_of_their_connection_only() {
        let mut out = Outbox::default();
        out.send_deferred(A, &Message::Have { index: 3 }, T0);
        out.send_deferred(B, &Message::Have { index: 3 }, T0);
        out.send(A, &Message::Interested);
        let sent = sends(&drain(&mut out));
        let a = bytes(&[Message::Have { index: 3 }, Message::Interested]);
        assert_eq!(sent, vec![(A, a)], "B's have still waits");
        // Left with A's message: the stale entry releases nothing more for A.
        out.release_deferred();
        let b = bytes(&[Message::Have { index: 3 }]);
        assert_eq!(sends(&drain(&mut out)), vec![(B, b)]);
    }

    #[test]
    fn a_deferred_message_after_a_due_one_leaves_with_it() {
        let mut out = Outbox::default();
        out.send(A, &Message::Unchoke);
        out.send_deferred(A, &Message::Have { index: 9 }, T0);
        let sent = sends(&drain(&mut out));
        let a = bytes(&[Message::Unchoke, Message::Have { index: 9 }]);
        assert_eq!(sent, vec![(A, a)]);
    }

    #[test]
    fn a_block_carries_the_deferred_bytes_ahead_of_it() {
        let mut out = Outbox::default();
        out.send_deferred(A, &Message::Have { index: 5 }, T0);
        out.send_block(A, 0, 0, Bytes::from_static(b"data"));
        let actions = drain(&mut out);
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert_eq!(
            sends(&actions[..1]),
            vec![(A, bytes(&[Message::Have { index: 5 }]))]
        );
        assert!(matches!(actions[1], Action::SendBlock { conn: A, .. }));
        out.release_deferred();
        assert!(drain(&mut out).is_empty());
    }

    #[test]
    fn touched_connections_are_reported_once_until_taken_and_closed_ones_not_at_all() {
        let mut out = Outbox::default();
        out.send(A, &Message::Interested);
        out.send_deferred(A, &Message::Have { index: 1 }, T0);
        out.send_block(B, 0, 0, Bytes::from_static(b"x"));
        out.send(ConnId(3), &Message::Unchoke);
        out.discard(ConnId(3));
        let mut touched = Vec::new();
        out.take_touched(&mut touched);
        assert_eq!(touched, vec![A, B]);
        touched.clear();
        out.take_touched(&mut touched);
        assert!(touched.is_empty(), "taken already");
        out.send(B, &Message::Choke);
        out.take_touched(&mut touched);
        assert_eq!(touched, vec![B]);
    }

    #[test]
    fn one_connection_released_sends_its_deferred_bytes_and_no_other() {
        let mut out = Outbox::default();
        out.send_deferred(A, &Message::Have { index: 3 }, T0);
        out.send_deferred(B, &Message::Have { index: 4 }, T0);
        out.release_conn(A);
        let a = bytes(&[Message::Have { index: 3 }]);
        assert_eq!(
            sends(&drain(&mut out)),
            vec![(A, a)],
            "B's have still waits"
        );
        out.release_conn(A);
        assert!(drain(&mut out).is_empty(), "released once, sent once");
        out.release_deferred();
        let b = bytes(&[Message::Have { index: 4 }]);
        assert_eq!(sends(&drain(&mut out)), vec![(B, b)]);
    }

    #[test]
    fn a_closed_connection_sends_nothing_it_deferred() {
        let mut out = Outbox::default();
        out.send_deferred(A, &Message::Have { index: 5 }, T0);
        out.discard(A);
        out.release_deferred();
        assert!(drain(&mut out).is_empty());
    }
}
