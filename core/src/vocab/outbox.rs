//! The session's output queue: actions in order, with small messages for one connection
//! coalesced into a single [`Action::Send`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{Bytes, BytesMut};

use super::action::{Action, ConnId};
use crate::wire::{Message, encode_piece_header};

/// Actions waiting to be polled, plus per-connection bytes not yet turned into a `Send`.
///
/// Ordering rule: bytes appended for a connection are emitted before any later
/// [`Action::SendBlock`] for it (a `SendBlock` first flushes the connection's pending bytes),
/// so the peer sees messages in the order the session produced them.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: VecDeque<Action>,
    pending: BTreeMap<ConnId, BytesMut>,
    /// Connections given anything to send since the last [`Outbox::take_touched`].
    touched: BTreeSet<ConnId>,
}

impl Outbox {
    /// Queues `message` for `conn` (coalesced with other small messages).
    pub(crate) fn send(&mut self, conn: ConnId, message: &Message) {
        self.touched.insert(conn);
        message.encode(self.pending.entry(conn).or_default());
    }

    /// Queues raw, already-encoded bytes for `conn` (the handshake).
    pub(crate) fn send_raw(&mut self, conn: ConnId, bytes: &[u8]) {
        self.touched.insert(conn);
        self.pending
            .entry(conn)
            .or_default()
            .extend_from_slice(bytes);
    }

    /// Queues a `piece` message carrying `data` without copying it.
    pub(crate) fn send_block(&mut self, conn: ConnId, index: u32, begin: u32, data: Bytes) {
        self.touched.insert(conn);
        self.flush(conn);
        let mut header = BytesMut::with_capacity(13);
        encode_piece_header(index, begin, data.len() as u32, &mut header);
        self.queue.push_back(Action::SendBlock {
            conn,
            header: header.freeze(),
            data,
        });
    }

    /// Queues a non-send action.
    pub(crate) fn push(&mut self, action: Action) {
        self.queue.push_back(action);
    }

    /// Forgets `conn`'s unsent bytes (it is being closed).
    pub(crate) fn discard(&mut self, conn: ConnId) {
        self.pending.remove(&conn);
        self.touched.remove(&conn);
    }

    /// The connections given anything to send since the last call.
    pub(crate) fn take_touched(&mut self) -> BTreeSet<ConnId> {
        std::mem::take(&mut self.touched)
    }

    fn flush(&mut self, conn: ConnId) {
        if let Some(buf) = self.pending.get_mut(&conn) {
            if !buf.is_empty() {
                let data = buf.split().freeze();
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
        let conns: Vec<ConnId> = self
            .pending
            .iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(c, _)| *c)
            .collect();
        for conn in conns {
            self.flush(conn);
        }
        // Every buffer is empty now; dropping them keeps the map as small as the set of
        // connections that sent something since the last poll.
        self.pending.clear();
        self.queue.pop_front()
    }
}
