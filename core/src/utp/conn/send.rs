//! The sending half: packets queued from writes, what the window lets out now
//! (retransmissions first, then new data), and the headers, acknowledgements and
//! selective ACKs every outgoing packet carries.

use super::*;

impl UtpConnection {
    pub(super) fn push_outgoing(
        &mut self,
        kind: PacketType,
        payload: Bytes,
        now: Instant,
    ) -> usize {
        if self.outgoing.is_empty() {
            self.outstanding_since = now;
        }
        self.unacked_bytes += payload.len();
        self.outgoing.push_back(OutPacket {
            seq: self.seq_nr,
            kind,
            payload,
            sent_at: None,
            transmissions: 0,
            sacked: false,
            in_flight: false,
            need_resend: false,
            fast_resent: false,
            dup_ack_resend: false,
            sent_mark: self.seq_nr,
        });
        if kind == PacketType::Fin {
            self.fin_seq = Some(self.seq_nr);
        }
        self.seq_nr = self.seq_nr.wrapping_add(1);
        self.outgoing.len() - 1
    }

    /// The window new or resent payload may fill: the smaller of ours and the peer's.
    pub(super) fn send_window(&self) -> usize {
        self.cc.cwnd().min(self.peer_wnd)
    }

    /// The next datagram to send, or `None` when there is nothing (more) to send now.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.reset_pending {
            self.reset_pending = false;
            let mut p = self.header(PacketType::Reset, self.seq_nr, now);
            p.seq_nr = self.seq_nr;
            return Some(self.emit(p, now));
        }
        match self.state {
            UtpState::Reset | UtpState::TimedOut => return None,
            UtpState::Closed => {
                return self.ack_needed.then(|| self.state_packet(now));
            }
            UtpState::SynSent => {
                let o = self.outgoing.front()?;
                if o.transmissions > 0 && !o.need_resend {
                    return None;
                }
                return self.send_outgoing(0, now);
            }
            UtpState::Connected | UtpState::FinSent => {}
        }
        if let Some(d) = self.try_resend(now) {
            return Some(d);
        }
        if let Some(d) = self.try_send_new(now) {
            return Some(d);
        }
        if self.fin_queued
            && self.fin_seq.is_none()
            && self.send_buf.is_empty()
            && self.outgoing.len() < MAX_WINDOW_PACKETS
        {
            let idx = self.push_outgoing(PacketType::Fin, Bytes::new(), now);
            return self.send_outgoing(idx, now);
        }
        if self.ack_needed {
            return Some(self.state_packet(now));
        }
        None
    }

    /// The first packet declared lost, if the window lets it go.
    pub(super) fn try_resend(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.resend_count == 0 {
            return None;
        }
        let idx = self.outgoing.iter().position(|o| o.need_resend)?;
        let o = &self.outgoing[idx];
        let len = o.payload.len();
        // A fast retransmit on duplicate ACKs goes at once, window or not (as in TCP): with
        // a peer that sends no selective ACKs nothing leaves the flight until the hole is
        // filled. (With selective ACKs the acknowledged packets leave it, so losses they
        // reveal wait for the window like everything else.)
        let urgent = o.dup_ack_resend && o.transmissions == 1;
        if !urgent && self.bytes_in_flight > 0 && self.bytes_in_flight + len > self.send_window() {
            return None;
        }
        self.stats.retransmits += 1;
        self.send_outgoing(idx, now)
    }

    /// A new DATA packet from the send buffer, if the window and Nagle's rule allow: full
    /// packets whenever they fit; a partial one only when nothing is in flight (so a burst
    /// of small writes leaves as one packet per round trip, never one per write).
    pub(super) fn try_send_new(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.send_buf.is_empty() || self.outgoing.len() >= MAX_WINDOW_PACKETS {
            return None;
        }
        let max_payload = self.config.max_payload();
        let allowed = self.send_window().saturating_sub(self.bytes_in_flight);
        let mut size = self.send_buf.len().min(max_payload);
        if size > allowed {
            if self.bytes_in_flight > 0 {
                return None;
            }
            if allowed == 0 {
                // The peer's window is shut: probe with one byte after a time-out.
                if !self.probe_due {
                    if self.probe_at.is_none() {
                        self.probe_at = Some(now + self.rtt.rto());
                    }
                    return None;
                }
                size = 1;
            } else {
                size = allowed;
            }
        } else if size < max_payload && self.bytes_in_flight > 0 {
            return None;
        }
        self.probe_due = false;
        let payload = self.send_buf.take(size);
        self.stats.bytes_sent += payload.len() as u64;
        let idx = self.push_outgoing(PacketType::Data, payload, now);
        self.send_outgoing(idx, now)
    }

    /// Sends (or resends) `outgoing[idx]` with fresh acknowledgement fields.
    pub(super) fn send_outgoing(&mut self, idx: usize, now: Instant) -> Option<Vec<u8>> {
        let (seq, kind, payload) = {
            let o = self.outgoing.get_mut(idx)?;
            if o.need_resend {
                o.need_resend = false;
                self.resend_count -= 1;
            }
            if !o.in_flight {
                o.in_flight = true;
                self.bytes_in_flight += o.payload.len();
            }
            o.transmissions += 1;
            o.sent_mark = self.seq_nr;
            o.sent_at = Some(now);
            (o.seq, o.kind, o.payload.clone())
        };
        let mut p = self.header(kind, seq, now);
        if kind == PacketType::Syn {
            // The SYN alone carries the id we receive on.
            p.connection_id = self.recv_id;
        }
        p.payload = payload;
        if self.rto_timer.is_none() {
            self.rto_timer = Some(now + self.rtt.rto());
        }
        // Data carries the cumulative ACK; a selective ACK, when one is due, goes in a
        // STATE of its own right after.
        if self.reorder.is_empty() {
            self.ack_needed = false;
        }
        Some(self.emit(p, now))
    }

    pub(super) fn state_packet(&mut self, now: Instant) -> Vec<u8> {
        let mut p = self.header(PacketType::State, self.seq_nr, now);
        p.selective_ack = self.selective_ack();
        self.ack_needed = false;
        self.emit(p, now)
    }

    /// The bitmask of packets held out of order: bit i is `ack_nr + 2 + i`, i.e. reorder
    /// slot `i + 1`. At most 32 bytes (256 packets), a multiple of 4.
    pub(super) fn selective_ack(&self) -> Option<Bytes> {
        if self.reorder.len() < 2 {
            return None;
        }
        let bits = (self.reorder.len() - 1).min(256);
        let mut mask = vec![0u8; bits.div_ceil(32) * 4];
        for i in 0..bits {
            if self.reorder.get(i + 1).is_some_and(Option::is_some) {
                mask[i / 8] |= 1 << (i % 8);
            }
        }
        Some(Bytes::from(mask))
    }

    pub(super) fn header(&self, kind: PacketType, seq: u16, now: Instant) -> Packet {
        Packet {
            packet_type: kind,
            connection_id: self.send_id,
            timestamp_micros: micros32(now),
            timestamp_difference_micros: self.reply_micros,
            wnd_size: u32::try_from(self.advertised_window()).unwrap_or(u32::MAX),
            seq_nr: seq,
            ack_nr: self.ack_nr,
            selective_ack: None,
            payload: Bytes::new(),
        }
    }

    pub(super) fn emit(&mut self, p: Packet, now: Instant) -> Vec<u8> {
        self.last_sent = now;
        self.last_advertised = p.wnd_size as usize;
        self.stats.packets_sent += 1;
        p.to_vec()
    }
}
