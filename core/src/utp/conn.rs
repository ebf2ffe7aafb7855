//! One uTP connection's state machine: datagrams in, datagrams out, the caller's clock.
//!
//! Driven like `quinn-proto`'s `Connection`: after every input ([`UtpConnection::handle_packet`],
//! [`UtpConnection::handle_timeout`]) or command ([`UtpConnection::write`],
//! [`UtpConnection::close`], [`UtpConnection::abort`], reading), drain
//! [`UtpConnection::poll_transmit`] until it returns `None`, then wait until
//! [`UtpConnection::poll_timeout`] or the next datagram. A spurious `handle_timeout` is
//! harmless.
//!
//! # Numbering
//!
//! - `seq_nr` is the number the next SYN, DATA or FIN will carry; each of those consumes
//!   one. STATE packets carry `seq_nr` without consuming it (as libtorrent does), so the
//!   initiator, on the STATE answering its SYN, sets `ack_nr = seq_nr − 1`.
//! - `ack_nr` is the last number received in order; packets `ack_nr + 1 ..` that arrived
//!   early wait in the reorder buffer.
//! - Ids: the initiator picks `recv_id`, sends from `recv_id + 1` and puts `recv_id` in its
//!   SYN; the acceptor sends with the SYN's id and receives on the SYN's id + 1.
//!
//! # Invariants (checked by `core/tests/utp.rs` and the `utp_conn` fuzz target)
//!
//! 1. `outgoing` holds, in order and without gaps, every SYN/DATA/FIN packet sent and not
//!    yet cumulatively acknowledged: its front is `seq_una`, its back `seq_nr − 1`, and it
//!    never holds more than [`MAX_WINDOW_PACKETS`] packets.
//! 2. `bytes_in_flight` is the sum of the payloads of the packets of `outgoing` that were
//!    sent and are neither selectively acknowledged nor marked for a resend.
//! 3. A DATA packet (new or resent) is only sent when, after sending it, `bytes_in_flight
//!    ≤ min(cwnd, peer's wnd_size)` — except when nothing else is in flight, where one
//!    packet always may go (cut to what the window allows, and to a one-byte probe after a
//!    time-out when the peer's window is 0), so a small window never deadlocks; and except
//!    a fast retransmit on three duplicate ACKs, which goes at once (as in TCP: without
//!    selective ACKs nothing leaves the flight until that hole is filled).
//! 4. Unsent plus unacknowledged payload ≤ `send_buffer_size` ([`UtpConnection::write`]
//!    takes no more); held received payload (readable plus reordered) ≤
//!    `recv_buffer_size` + one packet.
//! 5. After `handle_timeout(now)` and draining `poll_transmit(now)`, `poll_timeout()` is
//!    `None` or later than `now`.
//! 6. Nothing from the peer panics: unknown ids are ignored, acknowledgements of packets we
//!    never sent drop the packet, sequence numbers too far ahead are dropped.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use super::ledbat::Ledbat;
use super::packet::{HEADER_LEN, Packet, PacketError, PacketType};
use super::rtt::RttEstimator;
use super::send_queue::SendQueue;
use super::seq::{MAX_WINDOW_PACKETS, seq_distance, seq_less};
use crate::time::Instant;

/// The knobs of a connection. [`Default`] gives the documented values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UtpConfig {
    /// The largest datagram sent, header included: 1,400 bytes by default, which fits an
    /// Ethernet MTU of 1,500 under IPv6 (40) + UDP (8) headers with room for tunnels, and
    /// is what libtorrent uses before path-MTU discovery. Payloads are at most this minus
    /// the 20-byte header (1,380 by default).
    pub max_packet_size: usize,
    /// Unsent plus unacknowledged bytes [`UtpConnection::write`] accepts (1 MiB).
    pub send_buffer_size: usize,
    /// Our receive buffer (1 MiB): received bytes not yet read, in order or not, never
    /// exceed it by more than one packet; what is free is advertised as `wnd_size`.
    pub recv_buffer_size: usize,
    /// LEDBAT's target queuing delay: 100 ms (BEP 29).
    pub target_delay: Duration,
    /// The retransmission time-out before any RTT sample: 1 s (RFC 6298).
    pub initial_rto: Duration,
    /// The time-out's floor: 500 ms, libtorrent's minimum, below RFC 6298's 1 s because a
    /// uTP peer acknowledges every packet at once (no delayed ACKs to wait out).
    pub min_rto: Duration,
    /// The time-out's ceiling, back-off included: 60 s.
    pub max_rto: Duration,
    /// Consecutive time-outs without progress before giving up: 8.
    pub max_timeouts: u32,
    /// Time-outs of the SYN before giving up on connecting: 3 (so 1 + 2 + 4 s).
    pub max_syn_timeouts: u32,
    /// With packets outstanding, silence from the peer this long ends the connection: 20 s.
    pub idle_timeout: Duration,
    /// Without anything sent for this long, an empty STATE goes out to keep NAT mappings
    /// open: 29 s (under the common 30 s UDP mapping lifetime).
    pub keepalive_interval: Duration,
    /// The first congestion window, in packets: 3.
    pub initial_window_packets: usize,
    /// The sequence number of our first packet (the SYN, or the acceptor's first DATA):
    /// BEP 29 says 1 for the initiator and random for the acceptor; the caller chooses,
    /// since the core draws no randomness of its own.
    pub initial_seq_nr: u16,
}

impl Default for UtpConfig {
    fn default() -> Self {
        UtpConfig {
            max_packet_size: 1400,
            send_buffer_size: 1 << 20,
            recv_buffer_size: 1 << 20,
            target_delay: Duration::from_millis(100),
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(500),
            max_rto: Duration::from_secs(60),
            max_timeouts: 8,
            max_syn_timeouts: 3,
            idle_timeout: Duration::from_secs(20),
            keepalive_interval: Duration::from_secs(29),
            initial_window_packets: 3,
            initial_seq_nr: 1,
        }
    }
}

impl UtpConfig {
    /// The largest payload one packet carries.
    pub fn max_payload(&self) -> usize {
        self.max_packet_size.saturating_sub(HEADER_LEN).max(1)
    }
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UtpState {
    /// Our SYN is out; no answer yet.
    SynSent,
    /// Established: data flows both ways.
    Connected,
    /// We called [`UtpConnection::close`]: our FIN is queued or sent; the peer may still
    /// send until its own FIN.
    FinSent,
    /// Both FINs were exchanged, ours acknowledged and everything up to the peer's
    /// delivered. Only acknowledgements of the peer's FIN retransmissions go out.
    Closed,
    /// A RESET arrived, or we sent one ([`UtpConnection::abort`]).
    Reset,
    /// The peer stopped answering.
    TimedOut,
}

/// Why [`UtpConnection::accept`] refused a packet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    /// Only a SYN opens a connection.
    #[error("a {0:?} packet does not open a uTP connection")]
    NotSyn(PacketType),
}

/// Counters of one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UtpStats {
    /// Datagrams returned by `poll_transmit`.
    pub packets_sent: u64,
    /// Packets accepted by `handle_packet` (for this connection's id).
    pub packets_received: u64,
    /// Payload bytes sent for the first time.
    pub bytes_sent: u64,
    /// Payload bytes delivered in order.
    pub bytes_received: u64,
    /// Packets sent again (time-outs, fast retransmits, SACK-detected losses).
    pub retransmits: u64,
    /// Of which triggered by three duplicate ACKs or by selective ACKs.
    pub fast_retransmits: u64,
    /// Retransmission time-outs.
    pub timeouts: u64,
    /// Loss events that cut the congestion window (at most one per window).
    pub loss_events: u64,
    /// Fast retransmits found spurious (the original arrived, only late): the window cut
    /// was undone and the reordering threshold raised.
    pub spurious_retransmits: u64,
    /// DATA/FIN packets received that we already had.
    pub duplicates_received: u64,
    /// Packets dropped: beyond our window, or acknowledging what we never sent.
    pub dropped: u64,
}

/// A packet of ours that needs an acknowledgement.
#[derive(Clone, Debug)]
struct OutPacket {
    seq: u16,
    kind: PacketType,
    payload: Bytes,
    /// When the last copy went out (None: never sent yet).
    sent_at: Option<Instant>,
    transmissions: u32,
    /// Selectively acknowledged: the peer holds it, never resend it.
    sacked: bool,
    /// Counted in `bytes_in_flight`.
    in_flight: bool,
    /// Declared lost; goes out again as soon as the window allows.
    need_resend: bool,
    /// Already resent by a fast retransmit: further ones wait for the time-out.
    fast_resent: bool,
    /// That fast retransmit came from three duplicate ACKs.
    dup_ack_resend: bool,
    /// `seq_nr` when the last copy went out: the packets numbered from here on were sent
    /// after it.
    sent_mark: u16,
}

/// One uTP connection (BEP 29). See the module documentation for how to drive it.
#[derive(Debug)]
pub struct UtpConnection {
    config: UtpConfig,
    state: UtpState,
    recv_id: u16,
    send_id: u16,
    /// The next SYN/DATA/FIN number.
    seq_nr: u16,
    /// The last number received in order.
    ack_nr: u16,
    outgoing: VecDeque<OutPacket>,
    bytes_in_flight: usize,
    /// Payload of `outgoing` (sent or not yet acknowledged).
    unacked_bytes: usize,
    /// Written, not yet packetised.
    send_buf: SendQueue,
    /// `close` was called: a FIN follows the data.
    fin_queued: bool,
    /// Our FIN's number once packetised.
    fin_seq: Option<u16>,
    fin_acked: bool,
    /// `reorder[i]` holds packet `ack_nr + 1 + i` if it arrived early (slot 0 is always
    /// empty: that packet would have been delivered).
    reorder: VecDeque<Option<Bytes>>,
    reorder_bytes: usize,
    readable: VecDeque<Bytes>,
    readable_bytes: usize,
    /// The peer's FIN number, once seen.
    peer_fin: Option<u16>,
    /// Everything up to the peer's FIN was delivered.
    eof: bool,
    peer_wnd: usize,
    rtt: RttEstimator,
    cc: Ledbat,
    rto_timer: Option<Instant>,
    /// Consecutive time-outs without new acknowledgements.
    timeouts_in_row: u32,
    dup_acks: u32,
    /// The peer sent a selective ACK once: losses are found from those, and duplicate
    /// ACKs (which also answer duplicate data and window updates) are not counted.
    peer_sacks: bool,
    /// Losses of packets numbered before this do not cut the window again.
    recovery_until: Option<u16>,
    /// The window before the last loss cut, to restore if the loss proves spurious.
    cwnd_before_cut: Option<usize>,
    /// How many selectively acknowledged packets after a hole declare it lost: 3 (as
    /// three duplicate ACKs), doubled up to [`MAX_REORDER_THRESHOLD`] each time that
    /// proved spurious, so a path that reorders deeply does not halve the window for nothing.
    reorder_threshold: usize,
    last_recv: Instant,
    last_sent: Instant,
    /// When `outgoing` last went from empty to non-empty.
    outstanding_since: Instant,
    ack_needed: bool,
    /// The `timestamp_difference_microseconds` we echo: our clock at the last packet's
    /// arrival minus its timestamp.
    reply_micros: u32,
    reset_pending: bool,
    /// When the zero-window probe may go.
    probe_at: Option<Instant>,
    probe_due: bool,
    last_advertised: usize,
    /// Number of packets marked `need_resend` (skips a scan when zero).
    resend_count: usize,
    stats: UtpStats,
}

/// The most selectively acknowledged packets after a hole before it counts as lost.
const MAX_REORDER_THRESHOLD: usize = 64;

/// The wire's 32-bit microsecond clock (wraps every 71 minutes, which BEP 29 expects).
fn micros32(now: Instant) -> u32 {
    now.as_micros() as u32
}

impl UtpConnection {
    fn new(config: UtpConfig, state: UtpState, recv_id: u16, send_id: u16, now: Instant) -> Self {
        let rtt = RttEstimator::new(config.initial_rto, config.min_rto, config.max_rto);
        let cc = Ledbat::new(
            config.max_payload(),
            config.initial_window_packets,
            config.target_delay,
        );
        UtpConnection {
            state,
            recv_id,
            send_id,
            seq_nr: config.initial_seq_nr,
            ack_nr: 0,
            outgoing: VecDeque::new(),
            bytes_in_flight: 0,
            unacked_bytes: 0,
            send_buf: SendQueue::default(),
            fin_queued: false,
            fin_seq: None,
            fin_acked: false,
            reorder: VecDeque::new(),
            reorder_bytes: 0,
            readable: VecDeque::new(),
            readable_bytes: 0,
            peer_fin: None,
            eof: false,
            // Until the peer says, assume it can take one packet.
            peer_wnd: config.max_payload(),
            rtt,
            cc,
            rto_timer: None,
            timeouts_in_row: 0,
            dup_acks: 0,
            peer_sacks: false,
            recovery_until: None,
            cwnd_before_cut: None,
            reorder_threshold: 3,
            last_recv: now,
            last_sent: now,
            outstanding_since: now,
            ack_needed: false,
            reply_micros: 0,
            reset_pending: false,
            probe_at: None,
            probe_due: false,
            last_advertised: 0,
            resend_count: 0,
            stats: UtpStats::default(),
            config,
        }
    }

    /// Opens a connection: `recv_id` is the id the peer will address us with (the caller
    /// picks it at random and keeps it unique among its connections to that address). The
    /// SYN comes out of [`poll_transmit`](Self::poll_transmit).
    pub fn connect(recv_id: u16, now: Instant, config: UtpConfig) -> Self {
        let mut c = Self::new(
            config,
            UtpState::SynSent,
            recv_id,
            recv_id.wrapping_add(1),
            now,
        );
        c.push_outgoing(PacketType::Syn, Bytes::new(), now);
        c
    }

    /// Answers a SYN: the connection is established at once and its STATE answer comes out
    /// of [`poll_transmit`](Self::poll_transmit). The caller routes later packets whose id
    /// is the SYN's id + 1 ([`recv_id`](Self::recv_id)) here.
    pub fn accept(syn: &Packet, now: Instant, config: UtpConfig) -> Result<Self, AcceptError> {
        if syn.packet_type != PacketType::Syn {
            return Err(AcceptError::NotSyn(syn.packet_type));
        }
        let mut c = Self::new(
            config,
            UtpState::Connected,
            syn.connection_id.wrapping_add(1),
            syn.connection_id,
            now,
        );
        c.ack_nr = syn.seq_nr;
        c.peer_wnd = usize::try_from(syn.wnd_size).unwrap_or(usize::MAX);
        c.reply_micros = micros32(now).wrapping_sub(syn.timestamp_micros);
        c.ack_needed = true;
        c.stats.packets_received = 1;
        Ok(c)
    }

    /// The id the peer puts in the packets it sends us.
    pub fn recv_id(&self) -> u16 {
        self.recv_id
    }

    /// The id we put in the packets we send (but the SYN).
    pub fn send_id(&self) -> u16 {
        self.send_id
    }

    /// Where the connection is.
    pub fn state(&self) -> UtpState {
        self.state
    }

    /// `true` once the peer's FIN arrived and everything before it was delivered: after
    /// the readable bytes, nothing more will come.
    pub fn is_peer_finished(&self) -> bool {
        self.eof
    }

    /// `true` in [`UtpState::Closed`], [`UtpState::Reset`] and [`UtpState::TimedOut`].
    pub fn is_closed(&self) -> bool {
        matches!(
            self.state,
            UtpState::Closed | UtpState::Reset | UtpState::TimedOut
        )
    }

    /// The counters.
    pub fn stats(&self) -> &UtpStats {
        &self.stats
    }

    /// The congestion window, in payload bytes.
    pub fn cwnd(&self) -> usize {
        self.cc.cwnd()
    }

    /// The last queuing delay LEDBAT measured.
    pub fn queuing_delay(&self) -> Duration {
        self.cc.queuing_delay()
    }

    /// The peer's last advertised receive window, in bytes.
    pub fn peer_window(&self) -> usize {
        self.peer_wnd
    }

    /// Payload bytes sent and not yet acknowledged (nor declared lost).
    pub fn bytes_in_flight(&self) -> usize {
        self.bytes_in_flight
    }

    /// The smoothed round-trip time, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    /// The current retransmission time-out, back-off included.
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }

    /// The number our next SYN/DATA/FIN will carry.
    pub fn seq_nr(&self) -> u16 {
        self.seq_nr
    }

    /// The last number received in order.
    pub fn ack_nr(&self) -> u16 {
        self.ack_nr
    }

    /// Written bytes not yet acknowledged (queued or in flight).
    pub fn unacked_bytes(&self) -> usize {
        self.send_buf.len() + self.unacked_bytes
    }

    /// Received bytes held: readable plus waiting in the reorder buffer.
    pub fn buffered_bytes(&self) -> usize {
        self.readable_bytes + self.reorder_bytes
    }

    /// Readable bytes (in order, not yet read).
    pub fn readable_bytes(&self) -> usize {
        self.readable_bytes
    }

    /// How many bytes [`write`](Self::write) would take now.
    pub fn writable(&self) -> usize {
        if !matches!(self.state, UtpState::SynSent | UtpState::Connected) || self.fin_queued {
            return 0;
        }
        self.config
            .send_buffer_size
            .saturating_sub(self.send_buf.len() + self.unacked_bytes)
    }

    /// Queues bytes to send; returns how many were taken (bounded by the send buffer; 0
    /// after `close` or once the connection ended). Writes are coalesced into full packets.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.writable());
        self.send_buf.push(&data[..n]);
        n
    }

    /// The next chunk of in-order data (the payload of one packet, without copying).
    pub fn recv(&mut self) -> Option<Bytes> {
        let b = self.readable.pop_front()?;
        self.readable_bytes -= b.len();
        self.after_read();
        Some(b)
    }

    /// Copies in-order data into `buf`; returns how many bytes.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            let Some(front) = self.readable.front_mut() else {
                break;
            };
            let take = front.len().min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&front.split_to(take));
            n += take;
            self.readable_bytes -= take;
            if front.is_empty() {
                self.readable.pop_front();
            }
        }
        if n > 0 {
            self.after_read();
        }
        n
    }

    /// Reading freed buffer space: if the peer was told the window was (nearly) shut and it
    /// is now half open, tell it at once rather than wait for its probe.
    fn after_read(&mut self) {
        let max_payload = self.config.max_payload();
        if self.last_advertised < max_payload
            && self.advertised_window() >= self.config.recv_buffer_size / 2
            && !self.is_closed()
        {
            self.ack_needed = true;
        }
    }

    /// Sends a FIN after everything written. Writing is refused from now on.
    pub fn close(&mut self) {
        if matches!(self.state, UtpState::SynSent | UtpState::Connected) {
            self.fin_queued = true;
            if self.state == UtpState::Connected {
                self.state = UtpState::FinSent;
            }
        }
    }

    /// Ends the connection at once with a RESET (sent by the next `poll_transmit`).
    pub fn abort(&mut self) {
        if !self.is_closed() {
            self.reset_pending = self.state != UtpState::SynSent;
            self.enter_terminal(UtpState::Reset);
        }
    }

    fn enter_terminal(&mut self, state: UtpState) {
        self.state = state;
        self.outgoing.clear();
        self.send_buf.clear();
        self.bytes_in_flight = 0;
        self.unacked_bytes = 0;
        self.resend_count = 0;
        self.rto_timer = None;
        self.probe_at = None;
        self.ack_needed = false;
    }

    /// Our free receive buffer, as advertised in `wnd_size`.
    fn advertised_window(&self) -> usize {
        self.config
            .recv_buffer_size
            .saturating_sub(self.readable_bytes + self.reorder_bytes)
    }

    /// Decodes and handles one datagram.
    pub fn handle_datagram(&mut self, datagram: &[u8], now: Instant) -> Result<(), PacketError> {
        let p = Packet::decode(datagram)?;
        self.handle_packet(&p, now);
        Ok(())
    }

    /// Handles one packet addressed to this connection (packets with another id are
    /// ignored, so the caller may route loosely).
    pub fn handle_packet(&mut self, p: &Packet, now: Instant) {
        if matches!(self.state, UtpState::Reset | UtpState::TimedOut) {
            return;
        }
        if p.packet_type == PacketType::Syn {
            // Our STATE answer was lost and the initiator tries again: answer again.
            if p.connection_id == self.send_id
                && p.seq_nr == self.initial_ack()
                && self.state != UtpState::SynSent
            {
                self.ack_needed = true;
            }
            return;
        }
        if p.connection_id != self.recv_id {
            return;
        }
        if self.state == UtpState::SynSent {
            // Only an answer acknowledging our SYN establishes the connection.
            let syn_seq = self.seq_nr.wrapping_sub(1);
            if p.packet_type == PacketType::Reset {
                self.enter_terminal(UtpState::Reset);
                return;
            }
            if p.ack_nr != syn_seq {
                self.stats.dropped += 1;
                return;
            }
            // The peer's STATE carries the number of its first DATA without consuming it.
            self.ack_nr = p.seq_nr.wrapping_sub(1);
            self.state = if self.fin_queued {
                UtpState::FinSent
            } else {
                UtpState::Connected
            };
        }
        if p.packet_type == PacketType::Reset {
            self.stats.packets_received += 1;
            // Closed is final: a RESET after both FINs changes nothing.
            if self.state != UtpState::Closed {
                self.enter_terminal(UtpState::Reset);
            }
            return;
        }
        // Reject an acknowledgement of something we never sent: a forged or confused
        // packet must not free our buffers.
        let seq_una = self.seq_una();
        let newly_acked = usize::from(seq_distance(seq_una.wrapping_sub(1), p.ack_nr));
        let stale_ack = newly_acked > self.outgoing.len();
        if stale_ack && !seq_less(p.ack_nr, seq_una.wrapping_sub(1)) {
            self.stats.dropped += 1;
            return;
        }
        self.stats.packets_received += 1;
        self.last_recv = now;
        self.reply_micros = micros32(now).wrapping_sub(p.timestamp_micros);
        if !stale_ack {
            self.peer_wnd = usize::try_from(p.wnd_size).unwrap_or(usize::MAX);
            if self.peer_wnd > 0 {
                self.probe_at = None;
                self.probe_due = false;
            }
            self.cc.on_delay_sample(p.timestamp_difference_micros, now);
            self.process_ack(p, newly_acked, now);
        }
        match p.packet_type {
            PacketType::Data => self.receive_data(p.seq_nr, &p.payload),
            PacketType::Fin => self.receive_fin(p.seq_nr),
            _ => {}
        }
        self.check_closed();
    }

    /// The number the peer's SYN carried (the acceptor's first `ack_nr`); only meaningful
    /// for an accepted connection that has not received data yet.
    fn initial_ack(&self) -> u16 {
        self.ack_nr
    }

    /// The oldest unacknowledged number (or `seq_nr` when nothing is outstanding).
    fn seq_una(&self) -> u16 {
        self.outgoing.front().map_or(self.seq_nr, |o| o.seq)
    }

    fn process_ack(&mut self, p: &Packet, newly_acked: usize, now: Instant) {
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
    fn awaiting_ack(&self) -> bool {
        self.outgoing
            .iter()
            .any(|o| !o.sacked && o.sent_at.is_some())
    }

    /// Three duplicate ACKs: the first unacknowledged packet is lost.
    fn fast_retransmit_front(&mut self) {
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
    fn detect_sack_losses(&mut self) {
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

    fn mark_lost(o: &mut OutPacket, in_flight: &mut usize, resend_count: &mut usize) {
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
    fn on_loss(&mut self, seq: u16) {
        if self.recovery_until.is_some_and(|r| seq_less(seq, r)) {
            return;
        }
        self.cwnd_before_cut = Some(self.cc.cwnd());
        self.cc.on_loss();
        self.recovery_until = Some(self.seq_nr);
        self.stats.loss_events += 1;
    }

    fn receive_data(&mut self, seq: u16, payload: &Bytes) {
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

    fn deliver(&mut self, b: Bytes) {
        self.ack_nr = self.ack_nr.wrapping_add(1);
        self.stats.bytes_received += b.len() as u64;
        self.readable_bytes += b.len();
        if !b.is_empty() {
            self.readable.push_back(b);
        }
    }

    fn receive_fin(&mut self, seq: u16) {
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
    fn consume_fin(&mut self) {
        if !self.eof && self.peer_fin == Some(self.ack_nr.wrapping_add(1)) {
            self.ack_nr = self.ack_nr.wrapping_add(1);
            self.eof = true;
            self.reorder.clear();
            self.reorder_bytes = 0;
        }
    }

    fn check_closed(&mut self) {
        if self.state == UtpState::FinSent && self.fin_acked && self.eof {
            self.state = UtpState::Closed;
            self.outgoing.clear();
            self.rto_timer = None;
            self.probe_at = None;
        }
    }

    /// Fires whatever timers are due at `now`: retransmission time-out, idle time-out,
    /// keep-alive, zero-window probe. Harmless when nothing is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        if !self.outgoing.is_empty()
            && now >= self.last_recv.max(self.outstanding_since) + self.config.idle_timeout
        {
            self.enter_terminal(UtpState::TimedOut);
            return;
        }
        if self.rto_timer.is_some_and(|t| now >= t) {
            self.timeouts_in_row += 1;
            self.stats.timeouts += 1;
            let limit = if self.state == UtpState::SynSent {
                self.config.max_syn_timeouts
            } else {
                self.config.max_timeouts
            };
            if self.timeouts_in_row > limit {
                self.enter_terminal(UtpState::TimedOut);
                return;
            }
            self.rtt.back_off();
            self.cc.on_timeout();
            self.cwnd_before_cut = None;
            for o in self.outgoing.iter_mut() {
                if !o.sacked && o.sent_at.is_some() {
                    Self::mark_lost(o, &mut self.bytes_in_flight, &mut self.resend_count);
                }
            }
            self.recovery_until = Some(self.seq_nr);
            self.dup_acks = 0;
            self.rto_timer = Some(now + self.rtt.rto());
        }
        if self.probe_at.is_some_and(|t| now >= t) {
            self.probe_at = None;
            self.probe_due = true;
        }
        if matches!(self.state, UtpState::Connected | UtpState::FinSent)
            && now >= self.last_sent + self.config.keepalive_interval
        {
            self.ack_needed = true;
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due; `None` when nothing is
    /// scheduled (a closed connection, or an idle one waiting for input — the keep-alive is
    /// always scheduled while established).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        let mut t = self.rto_timer;
        let mut earliest = |c: Instant| t = Some(t.map_or(c, |t: Instant| t.min(c)));
        if !self.outgoing.is_empty() {
            earliest(self.last_recv.max(self.outstanding_since) + self.config.idle_timeout);
        }
        if let Some(p) = self.probe_at {
            earliest(p);
        }
        if matches!(self.state, UtpState::Connected | UtpState::FinSent) {
            earliest(self.last_sent + self.config.keepalive_interval);
        }
        t
    }

    fn push_outgoing(&mut self, kind: PacketType, payload: Bytes, now: Instant) -> usize {
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
    fn send_window(&self) -> usize {
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
    fn try_resend(&mut self, now: Instant) -> Option<Vec<u8>> {
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
    fn try_send_new(&mut self, now: Instant) -> Option<Vec<u8>> {
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
    fn send_outgoing(&mut self, idx: usize, now: Instant) -> Option<Vec<u8>> {
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

    fn state_packet(&mut self, now: Instant) -> Vec<u8> {
        let mut p = self.header(PacketType::State, self.seq_nr, now);
        p.selective_ack = self.selective_ack();
        self.ack_needed = false;
        self.emit(p, now)
    }

    /// The bitmask of packets held out of order: bit i is `ack_nr + 2 + i`, i.e. reorder
    /// slot `i + 1`. At most 32 bytes (256 packets), a multiple of 4.
    fn selective_ack(&self) -> Option<Bytes> {
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

    fn header(&self, kind: PacketType, seq: u16, now: Instant) -> Packet {
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

    fn emit(&mut self, p: Packet, now: Instant) -> Vec<u8> {
        self.last_sent = now;
        self.last_advertised = p.wnd_size as usize;
        self.stats.packets_sent += 1;
        p.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(c: &mut UtpConnection, now: Instant) -> Vec<Packet> {
        let mut out = Vec::new();
        while let Some(d) = c.poll_transmit(now) {
            out.push(Packet::decode(&d).unwrap());
        }
        out
    }

    fn pair(now: Instant) -> (UtpConnection, UtpConnection) {
        let mut a = UtpConnection::connect(100, now, UtpConfig::default());
        let syn = drain(&mut a, now);
        assert_eq!(syn.len(), 1);
        assert_eq!(syn[0].packet_type, PacketType::Syn);
        assert_eq!(syn[0].connection_id, 100);
        let cfg = UtpConfig {
            initial_seq_nr: 5000,
            ..UtpConfig::default()
        };
        let mut b = UtpConnection::accept(&syn[0], now, cfg).unwrap();
        let ack = drain(&mut b, now);
        assert_eq!(ack.len(), 1);
        assert_eq!(ack[0].packet_type, PacketType::State);
        assert_eq!(ack[0].connection_id, 100);
        assert_eq!(ack[0].ack_nr, 1);
        assert_eq!(ack[0].seq_nr, 5000);
        a.handle_packet(&ack[0], now);
        assert_eq!(a.state(), UtpState::Connected);
        assert_eq!(a.ack_nr(), 4999);
        (a, b)
    }

    #[test]
    fn handshake_ids_and_numbers() {
        let (a, b) = pair(Instant::ZERO);
        assert_eq!((a.recv_id(), a.send_id()), (100, 101));
        assert_eq!((b.recv_id(), b.send_id()), (101, 100));
        assert_eq!(a.seq_nr(), 2);
    }

    #[test]
    fn accept_refuses_non_syn() {
        let p = Packet::new(PacketType::Data);
        assert!(matches!(
            UtpConnection::accept(&p, Instant::ZERO, UtpConfig::default()),
            Err(AcceptError::NotSyn(PacketType::Data))
        ));
    }

    #[test]
    fn writes_coalesce_into_full_packets() {
        let now = Instant::ZERO;
        let (mut a, _b) = pair(now);
        for _ in 0..3000 {
            assert_eq!(a.write(b"x"), 1);
        }
        let out = drain(&mut a, now);
        // Initial window of 3 packets: two full ones... and no one-byte packets.
        assert!(!out.is_empty());
        assert!(out.iter().all(|p| p.payload.len() == 1380), "{out:?}");
    }

    #[test]
    fn out_of_order_data_is_held_then_delivered_with_selective_acks() {
        let now = Instant::ZERO;
        let (mut a, mut b) = pair(now);
        a.write(&[7u8; 1380 * 3]);
        let data = drain(&mut a, now);
        assert_eq!(data.len(), 3);
        b.handle_packet(&data[2], now);
        let acks = drain(&mut b, now);
        assert_eq!(acks.len(), 1);
        assert_eq!(acks[0].ack_nr, 1);
        // The third packet is ack_nr + 3: bit 1.
        assert!(!acks[0].sack_bit(0) && acks[0].sack_bit(1), "{:?}", acks[0]);
        assert_eq!(b.readable_bytes(), 0);
        // A duplicate is ignored.
        b.handle_packet(&data[2], now);
        assert_eq!(b.stats().duplicates_received, 1);
        b.handle_packet(&data[0], now);
        b.handle_packet(&data[1], now);
        assert_eq!(b.readable_bytes(), 1380 * 3);
        let mut buf = vec![0u8; 5000];
        assert_eq!(b.read(&mut buf), 1380 * 3);
        assert!(buf[..1380 * 3].iter().all(|&x| x == 7));
    }

    #[test]
    fn acks_of_unsent_packets_are_dropped() {
        let now = Instant::ZERO;
        let (mut a, _b) = pair(now);
        let mut p = Packet::new(PacketType::State);
        p.connection_id = a.recv_id();
        p.ack_nr = 40;
        a.handle_packet(&p, now);
        assert_eq!(a.stats().dropped, 1);
        assert_eq!(a.state(), UtpState::Connected);
    }

    #[test]
    fn syn_retransmits_then_times_out() {
        let mut a = UtpConnection::connect(1, Instant::ZERO, UtpConfig::default());
        assert_eq!(drain(&mut a, Instant::ZERO).len(), 1);
        let mut sends = Vec::new();
        while let Some(now) = a.poll_timeout() {
            a.handle_timeout(now);
            if !drain(&mut a, now).is_empty() {
                sends.push(now.as_micros() / 1000);
            }
        }
        assert_eq!(a.state(), UtpState::TimedOut);
        assert_eq!(sends, [1000, 3000, 7000]);
    }

    /// A STATE from `b`'s side acknowledging up to `ack_nr`, with a window.
    fn state_from(b: &UtpConnection, ack_nr: u16, wnd: u32) -> Packet {
        let mut p = Packet::new(PacketType::State);
        p.connection_id = b.send_id();
        p.seq_nr = b.seq_nr();
        p.ack_nr = ack_nr;
        p.wnd_size = wnd;
        p
    }

    #[test]
    fn keepalive_after_29_idle_seconds() {
        let now = Instant::ZERO;
        let (mut a, _b) = pair(now);
        assert!(drain(&mut a, now).is_empty());
        let t = a.poll_timeout().unwrap();
        assert_eq!(t, now + Duration::from_secs(29));
        a.handle_timeout(t);
        let out = drain(&mut a, t);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].packet_type, PacketType::State);
        assert!(out[0].payload.is_empty());
        assert_eq!(a.poll_timeout(), Some(t + Duration::from_secs(29)));
        assert_eq!(
            a.state(),
            UtpState::Connected,
            "no data outstanding: no time-out"
        );
    }

    #[test]
    fn three_duplicate_acks_resend_the_first_packet() {
        let now = Instant::ZERO;
        let (mut a, b) = pair(now);
        a.write(&[1u8; 1380 * 3]);
        let data = drain(&mut a, now);
        assert_eq!(data.len(), 3);
        let cwnd = a.cwnd();
        // A peer without selective ACKs: the first packet lost, the other two (and a
        // window update) each answered with an ACK of the SYN only.
        let dup = state_from(&b, 1, 1 << 20);
        for _ in 0..2 {
            a.handle_packet(&dup, now);
            assert!(drain(&mut a, now).is_empty());
        }
        a.handle_packet(&dup, now);
        let out = drain(&mut a, now);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].seq_nr, data[0].seq_nr);
        assert_eq!(a.stats().fast_retransmits, 1);
        assert!(a.cwnd() < cwnd);
    }

    #[test]
    fn selectively_acknowledged_packets_are_not_resent() {
        let now = Instant::ZERO;
        let (mut a, b) = pair(now);
        a.write(&[1u8; 1380 * 3]);
        assert_eq!(drain(&mut a, now).len(), 3);
        // Packets 3 and 4 arrived, 2 did not; then the time-out resends only 2.
        let mut p = state_from(&b, 1, 1 << 20);
        p.selective_ack = Some(Bytes::from_static(&[0b11, 0, 0, 0]));
        a.handle_packet(&p, now);
        assert_eq!(a.bytes_in_flight(), 1380);
        let t = a.poll_timeout().unwrap();
        a.handle_timeout(t);
        let out = drain(&mut a, t);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].seq_nr, 2);
    }

    #[test]
    fn a_shut_window_is_probed_with_one_byte() {
        let now = Instant::ZERO;
        let (mut a, b) = pair(now);
        a.handle_packet(&state_from(&b, 1, 0), now);
        a.write(b"blocked until the peer reads");
        assert!(drain(&mut a, now).is_empty(), "nothing fits a window of 0");
        let t = a.poll_timeout().unwrap();
        assert!(t > now && t <= now + Duration::from_secs(1));
        a.handle_timeout(t);
        let out = drain(&mut a, t);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload.len(), 1);
        // The window opens: the rest follows in one packet once the probe is acknowledged.
        a.handle_packet(&state_from(&b, 2, 1 << 20), t);
        let out = drain(&mut a, t);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0].payload[..], b"locked until the peer reads");
    }

    #[test]
    fn a_fin_before_its_data_waits_for_it() {
        let now = Instant::ZERO;
        let (mut a, mut b) = pair(now);
        a.write(b"last words");
        a.close();
        let out = drain(&mut a, now);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].packet_type, PacketType::Fin);
        b.handle_packet(&out[1], now);
        assert!(!b.is_peer_finished());
        b.handle_packet(&out[0], now);
        assert!(b.is_peer_finished());
        assert_eq!(b.recv().as_deref(), Some(&b"last words"[..]));
        // Data after the FIN's number is never delivered.
        let mut late = out[0].clone();
        late.seq_nr = out[1].seq_nr.wrapping_add(1);
        b.handle_packet(&late, now);
        assert_eq!(b.recv(), None);
    }

    #[test]
    fn too_many_timeouts_end_the_connection() {
        let now = Instant::ZERO;
        let cfg = UtpConfig {
            idle_timeout: Duration::from_secs(3600),
            max_rto: Duration::from_secs(2),
            ..UtpConfig::default()
        };
        let mut a = UtpConnection::connect(9, now, cfg.clone());
        let syn = drain(&mut a, now);
        let mut b = UtpConnection::accept(&syn[0], now, cfg).unwrap();
        for p in drain(&mut b, now) {
            a.handle_packet(&p, now);
        }
        a.write(b"x");
        drain(&mut a, now);
        let mut n = 0;
        while let Some(t) = a.poll_timeout() {
            a.handle_timeout(t);
            drain(&mut a, t);
            n += 1;
            assert!(n < 100);
        }
        assert_eq!(a.state(), UtpState::TimedOut);
        assert_eq!(
            a.stats().timeouts,
            9,
            "eight back-offs, then the ninth time-out ends it"
        );
    }

    #[test]
    fn a_repeated_syn_is_answered_again() {
        let now = Instant::ZERO;
        let mut a = UtpConnection::connect(300, now, UtpConfig::default());
        let syn = drain(&mut a, now).remove(0);
        let mut b = UtpConnection::accept(&syn, now, UtpConfig::default()).unwrap();
        assert_eq!(drain(&mut b, now).len(), 1);
        // The STATE was lost; the SYN comes again.
        b.handle_packet(&syn, now);
        let again = drain(&mut b, now);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].packet_type, PacketType::State);
        assert_eq!(again[0].ack_nr, syn.seq_nr);
    }

    #[test]
    fn reads_split_chunks_and_stale_acks_still_carry_data() {
        let now = Instant::ZERO;
        let (mut a, mut b) = pair(now);
        b.write(b"0123456789");
        let first = drain(&mut b, now);
        a.handle_packet(&first[0], now);
        let mut buf = [0u8; 4];
        assert_eq!(a.read(&mut buf), 4);
        assert_eq!(&buf, b"0123");
        assert_eq!(a.read(&mut buf), 4);
        assert_eq!(a.read(&mut buf), 2);
        assert_eq!(&buf[..2], b"89");
        assert_eq!(a.read(&mut buf), 0);
        // A later DATA packet carrying an older ACK (reordered) still delivers its data.
        let mut late = first[0].clone();
        late.seq_nr = first[0].seq_nr.wrapping_add(1);
        late.ack_nr = first[0].ack_nr.wrapping_sub(1);
        late.payload = Bytes::from_static(b"more");
        a.handle_packet(&late, now);
        assert_eq!(a.recv().as_deref(), Some(&b"more"[..]));
    }
}
