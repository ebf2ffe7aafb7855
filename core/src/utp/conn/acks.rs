//! Acknowledgements and loss: what an incoming packet's `ack_nr` and selective ACK say
//! about the packets in flight, the RTT samples and window growth they give, and the losses
//! they reveal (duplicate ACKs, selective-ACK gaps), cut once per window.

use super::*;

impl UtpConnection {
    /// The oldest unacknowledged number (or `seq_nr` when nothing is outstanding).
    pub(super) fn seq_una(&self) -> u16 {
        self.outgoing.front().map_or(self.seq_nr, |o| o.seq)
    }

    pub(super) fn process_ack(&mut self, p: &Packet, newly_acked: usize, now: Instant) {
        let in_flight_before = self.bytes_in_flight;
        let mut bytes_acked = 0;
        let mut rtt_sample = None;
        let mut spurious = false;
        // A packet declared lost by a fast retransmit that is acknowledged before its
        // resend went out, or sooner than half a round trip after it, was answered by its
        // first copy: the "loss" was reordering.
        let half_rtt = self.rtt.srtt().map(|s| s / 2);
        let is_spurious = |o: &OutPacket| {
            o.fast_resent
                && (o.transmissions == 1
                    || (o.transmissions == 2
                        && half_rtt.zip(o.sent_at).is_some_and(|(h, at)| now - at < h)))
        };
        for _ in 0..newly_acked {
            let Some(o) = self.outgoing.pop_front() else {
                break;
            };
            if o.in_flight {
                self.bytes_in_flight -= o.payload.len();
            }
            if o.need_resend {
                self.resend_count -= 1;
            }
            self.unacked_bytes -= o.payload.len();
            if !o.sacked {
                bytes_acked += o.payload.len();
                if o.transmissions == 1 {
                    rtt_sample = o.sent_at;
                }
                spurious |= is_spurious(&o);
            }
            if o.kind == PacketType::Fin {
                self.fin_acked = true;
            }
        }
        let has_payload = !p.payload.is_empty();
        if newly_acked > 0 {
            self.dup_acks = 0;
            self.timeouts_in_row = 0;
            self.rtt.reset_backoff();
        } else if p.packet_type == PacketType::State
            && !has_payload
            && self.bytes_in_flight > 0
            && !self.peer_sacks
        {
            self.dup_acks = self.dup_acks.saturating_add(1);
            if self.dup_acks == 3 {
                self.fast_retransmit_front();
            }
        }
        if p.selective_ack.is_some() {
            self.peer_sacks = true;
            // Bit i: packet ack_nr + 2 + i, i.e. outgoing index i + 1 after the pops above.
            let bits = p.selective_ack.as_ref().map_or(0, |m| m.len() * 8);
            for i in 0..bits {
                if !p.sack_bit(i) {
                    continue;
                }
                let Some(o) = self.outgoing.get_mut(i + 1) else {
                    break;
                };
                if o.sacked || o.sent_at.is_none() {
                    continue;
                }
                o.sacked = true;
                spurious |= is_spurious(o);
                if o.in_flight {
                    o.in_flight = false;
                    self.bytes_in_flight -= o.payload.len();
                }
                if o.need_resend {
                    o.need_resend = false;
                    self.resend_count -= 1;
                }
                bytes_acked += o.payload.len();
                if o.transmissions == 1 {
                    rtt_sample = rtt_sample.max(o.sent_at);
                }
            }
            self.detect_sack_losses();
        }
        if spurious {
            self.stats.spurious_retransmits += 1;
            self.reorder_threshold = (self.reorder_threshold * 2).min(MAX_REORDER_THRESHOLD);
            if let Some(w) = self.cwnd_before_cut.take() {
                self.cc.restore(w);
            }
        }
        if let Some(sent_at) = rtt_sample {
            self.rtt.sample(now - sent_at);
        }
        let window_limited = in_flight_before + self.config.max_payload() >= self.cc.cwnd();
        self.cc.on_ack(bytes_acked, window_limited);
        if let Some(r) = self.recovery_until
            && !seq_less(self.seq_una(), r)
        {
            self.recovery_until = None;
        }
        if newly_acked > 0 || self.rto_timer.is_none() {
            self.rto_timer = self.awaiting_ack().then(|| now + self.rtt.rto());
        }
    }

    /// `true` when some sent packet awaits an acknowledgement (the RTO timer should run).
    pub(super) fn awaiting_ack(&self) -> bool {
        self.outgoing
            .iter()
            .any(|o| !o.sacked && o.sent_at.is_some())
    }

    /// Three duplicate ACKs: the first unacknowledged packet is lost.
    pub(super) fn fast_retransmit_front(&mut self) {
        let Some(o) = self.outgoing.front_mut() else {
            return;
        };
        if o.sacked || o.fast_resent || o.need_resend || o.sent_at.is_none() {
            return;
        }
        let seq = o.seq;
        Self::mark_lost(o, &mut self.bytes_in_flight, &mut self.resend_count);
        o.fast_resent = true;
        o.dup_ack_resend = true;
        self.stats.fast_retransmits += 1;
        self.on_loss(seq);
    }

    /// A packet is lost once `reorder_threshold` (at first three, as for duplicate ACKs)
    /// packets sent after its last copy are selectively acknowledged.
    pub(super) fn detect_sack_losses(&mut self) {
        // sacked_from[i]: selectively acknowledged packets among outgoing[i..].
        let n = self.outgoing.len();
        let mut sacked_from = vec![0usize; n + 1];
        for i in (0..n).rev() {
            sacked_from[i] = sacked_from[i + 1] + usize::from(self.outgoing[i].sacked);
        }
        let front = self.seq_una();
        let mut lost_first = None;
        for i in 0..n {
            let o = &mut self.outgoing[i];
            if o.sacked || o.need_resend || o.sent_at.is_none() {
                continue;
            }
            // Only packets sent after this one's last copy say something about that copy:
            // so a lost retransmission is found the same way, without waiting for the
            // time-out.
            let after = usize::from(seq_distance(front, o.sent_mark)).min(n);
            if sacked_from[after] >= self.reorder_threshold {
                Self::mark_lost(o, &mut self.bytes_in_flight, &mut self.resend_count);
                o.fast_resent = true;
                self.stats.fast_retransmits += 1;
                lost_first = Some(o.seq);
            }
        }
        if let Some(seq) = lost_first {
            self.on_loss(seq);
        }
    }

    pub(super) fn mark_lost(o: &mut OutPacket, in_flight: &mut usize, resend_count: &mut usize) {
        if o.in_flight {
            o.in_flight = false;
            *in_flight -= o.payload.len();
        }
        if !o.need_resend {
            o.need_resend = true;
            *resend_count += 1;
        }
    }

    /// Cuts the window once per window of packets: losses of packets sent before the last
    /// cut are part of the same congestion event.
    pub(super) fn on_loss(&mut self, seq: u16) {
        if self.recovery_until.is_some_and(|r| seq_less(seq, r)) {
            return;
        }
        self.cwnd_before_cut = Some(self.cc.cwnd());
        self.cc.on_loss();
        self.recovery_until = Some(self.seq_nr);
        self.stats.loss_events += 1;
    }
}
