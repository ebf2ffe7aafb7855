//! The receiving half: data packets into the reorder buffer, in-order bytes out to the
//! reader, and the FIN that ends the peer's stream once every byte before it is in.

use super::*;

impl UtpConnection {
    pub(super) fn receive_data(&mut self, seq: u16, payload: &Bytes) {
        self.ack_needed = true;
        if self.peer_fin.is_some_and(|f| !seq_less(seq, f)) {
            // Nothing counts after the peer's FIN.
            self.stats.dropped += 1;
            return;
        }
        let d = usize::from(seq_distance(self.ack_nr, seq));
        if d == 0 || d >= 0x8000 {
            self.stats.duplicates_received += 1;
            return;
        }
        let idx = d - 1;
        if idx >= MAX_WINDOW_PACKETS {
            self.stats.dropped += 1;
            return;
        }
        if self.reorder.get(idx).is_some_and(Option::is_some) {
            self.stats.duplicates_received += 1;
            return;
        }
        let held = self.readable_bytes + self.reorder_bytes + payload.len();
        if held > self.config.recv_buffer_size + self.config.max_payload() {
            // Beyond the window we advertised: the peer resends it once we made room.
            self.stats.dropped += 1;
            return;
        }
        if idx == 0 {
            self.reorder.pop_front();
            self.deliver(payload.clone());
            while let Some(Some(_)) = self.reorder.front() {
                if let Some(Some(b)) = self.reorder.pop_front() {
                    self.reorder_bytes -= b.len();
                    self.deliver(b);
                }
            }
            // Slot 0 is now the hole at the new `ack_nr + 1` (or the buffer is empty).
        } else {
            if self.reorder.len() <= idx {
                self.reorder.resize(idx + 1, None);
            }
            self.reorder_bytes += payload.len();
            self.reorder[idx] = Some(payload.clone());
        }
        self.consume_fin();
    }

    pub(super) fn deliver(&mut self, b: Bytes) {
        self.ack_nr = self.ack_nr.wrapping_add(1);
        self.stats.bytes_received += b.len() as u64;
        self.readable_bytes += b.len();
        if !b.is_empty() {
            self.readable.push_back(b);
        }
    }

    pub(super) fn receive_fin(&mut self, seq: u16) {
        self.ack_needed = true;
        let d = usize::from(seq_distance(self.ack_nr, seq));
        if d == 0 || d >= 0x8000 {
            self.stats.duplicates_received += 1;
            return;
        }
        if d > MAX_WINDOW_PACKETS {
            self.stats.dropped += 1;
            return;
        }
        match self.peer_fin {
            Some(f) if f != seq => {
                // A second, different FIN: keep the first.
                self.stats.dropped += 1;
                return;
            }
            Some(_) => {
                self.stats.duplicates_received += 1;
                return;
            }
            None => self.peer_fin = Some(seq),
        }
        // Anything held at or after the FIN will never be delivered.
        let keep = d - 1;
        while self.reorder.len() > keep {
            if let Some(Some(b)) = self.reorder.pop_back() {
                self.reorder_bytes -= b.len();
            }
        }
        self.consume_fin();
    }

    /// The FIN is next in order: it consumes its number and ends the peer's stream.
    pub(super) fn consume_fin(&mut self) {
        if !self.eof && self.peer_fin == Some(self.ack_nr.wrapping_add(1)) {
            self.ack_nr = self.ack_nr.wrapping_add(1);
            self.eof = true;
            self.reorder.clear();
            self.reorder_bytes = 0;
        }
    }

    pub(super) fn check_closed(&mut self) {
        if self.state == UtpState::FinSent && self.fin_acked && self.eof {
            self.state = UtpState::Closed;
            self.outgoing.clear();
            self.rto_timer = None;
            self.probe_at = None;
        }
    }
}
