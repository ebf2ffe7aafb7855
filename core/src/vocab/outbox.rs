//! The session's output queue: actions in order, with small messages for one connection
//! coalesced into a single [`Action::Send`], and encrypted for a connection that
//! negotiated RC4 (MSE/PE).

use std::collections::{BTreeMap, VecDeque};

use bytes::{Bytes, BytesMut};

use super::action::{Action, ConnId};
use super::conn_map::{ConnMap, ConnSet};
use crate::mse::Cipher;
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
    pending: ConnMap<BytesMut>,
    /// The connections whose pending bytes may not be empty (with repeats), flushed in
    /// connection order by [`Outbox::pop`].
    dirty: Vec<ConnId>,
    /// The send keystream of every connection whose stream is RC4.
    ciphers: BTreeMap<ConnId, Cipher>,
    /// Connections given anything to send since the last [`Outbox::take_touched`]: a
    /// hash set, as it takes an insert per message and its one reader does not depend on
    /// order.
    touched: ConnSet,
}

impl Outbox {
    /// Queues `message` for `conn` (coalesced with other small messages).
    pub(crate) fn send(&mut self, conn: ConnId, message: &Message) {
        self.append(conn, |buf| message.encode(buf));
    }

    /// Queues raw, already-encoded bytes for `conn` (a handshake).
    pub(crate) fn send_raw(&mut self, conn: ConnId, bytes: &[u8]) {
        self.append(conn, |buf| buf.extend_from_slice(bytes));
    }

    /// Appends what `write` puts in `conn`'s pending bytes, encrypted if the connection is.
    fn append(&mut self, conn: ConnId, write: impl FnOnce(&mut BytesMut)) {
        self.touched.insert(conn);
        // Room for a few small messages (`have` 9 bytes, `request` 17) from the start: grown
        // from empty, the buffer was reallocated for nearly every message coalesced into it.
        let buf = self
            .pending
            .entry(conn)
            .or_insert_with(|| BytesMut::with_capacity(FIRST_CAPACITY));
        if buf.is_empty() {
            self.dirty.push(conn);
        }
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
        self.touched.insert(conn);
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
        self.touched.remove(&conn);
        self.ciphers.remove(&conn);
    }

    /// The connections given anything to send since the last call, in no particular
    /// order.
    pub(crate) fn take_touched(&mut self) -> ConnSet {
        std::mem::take(&mut self.touched)
    }

    fn flush(&mut self, conn: ConnId) {
        if let Some(buf) = self.pending.get_mut(&conn) {
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
