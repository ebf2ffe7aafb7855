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

// The connection's halves, each an `impl UtpConnection` over the fields below.
mod acks;
mod receive;
mod send;

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
}

#[cfg(test)]
mod tests;
