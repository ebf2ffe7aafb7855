//! The `utp_conn` target: one `UtpConnection` (`unchoke_core::utp`) fed a hostile peer's
//! datagrams, writes, reads, closes, aborts and time steps.
//!
//! Byte 0: bit 0 accepts a SYN (else connects), bit 1 uses tiny buffers and 100-byte
//! packets. Bytes 1–2: the initial sequence number (ours, and the peer's SYN). Then ops,
//! each a byte `op % 8` and its arguments:
//! - 0 `len bytes…`: a raw datagram (one that would pass as the peer's DATA/FIN gets its
//!   id changed, so the delivered stream stays checkable);
//! - 1 `type seq ack wnd sack ts flags extra`: a shaped packet with the right id, numbers
//!   near the connection's own, a payload that is a function of its number;
//! - 2 `b`: time passes (`4·b²` ms) and `handle_timeout` runs;
//! - 3 `n`: the application writes `64·n` bytes; 4: it reads everything; 5: `close`;
//!   6: `abort`; 7 `n`: `n % 16` in-order DATA packets.
//!
//! Invariants, after every op:
//! 1. Nothing panics; every datagram sent decodes, carries our send id (the SYN our receive
//!    id), and fits the packet size (a STATE may add its selective ACK).
//! 2. Delivery is in order: each chunk read is the payload of the next number after the
//!    last one delivered, starting right after the peer's SYN / first STATE.
//! 3. Bounded: unacknowledged bytes ≤ the send buffer, bytes in flight ≤ those, held
//!    received bytes ≤ the receive buffer plus one packet.
//! 4. Closed, Reset and TimedOut are final; after a RESET went out nothing more does.
//! 5. After `handle_timeout(now)` and draining, `poll_timeout()` is `None` or after `now`.

use unchoke_core::time::Instant;
use unchoke_core::utp::{Packet, PacketType, UtpConfig, UtpConnection, UtpState};

/// The payload a well-behaved peer puts in packet `seq`.
fn content(seq: u16) -> Vec<u8> {
    vec![seq as u8; 1 + usize::from(seq % 50)]
}

struct Harness {
    c: UtpConnection,
    config: UtpConfig,
    now: Instant,
    /// The number whose payload the next chunk read must be (once established).
    expected: Option<u16>,
    final_state: Option<UtpState>,
    reset_sent: bool,
    delivered: usize,
}

/// Runs every `utp_conn` invariant on `data`. Panics if one fails.
pub fn utp_conn(data: &[u8]) {
    utp_conn_reached(data);
}

/// How deep one input went: chunks delivered in order, packets resent, the final state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UtpReached {
    /// Chunks read and checked in order.
    pub delivered: usize,
    /// Retransmissions (time-outs and fast retransmits).
    pub retransmits: u64,
    /// The state at the end.
    pub state: Option<UtpState>,
}

/// [`utp_conn`], reporting how deep the input went (for the replay's reachability test).
pub fn utp_conn_reached(data: &[u8]) -> UtpReached {
    let Some((&mode, rest)) = data.split_first() else {
        return UtpReached::default();
    };
    let (seq_bytes, mut ops) = rest.split_at(rest.len().min(2));
    let initial = match seq_bytes {
        [a, b] => u16::from_be_bytes([*a, *b]),
        _ => 1,
    };
    let mut config = UtpConfig {
        initial_seq_nr: initial,
        ..UtpConfig::default()
    };
    if mode & 2 != 0 {
        config.max_packet_size = 100;
        config.send_buffer_size = 4096;
        config.recv_buffer_size = 2048;
    }
    let now = Instant::from_secs(10);
    let (c, expected) = if mode & 1 != 0 {
        let mut syn = Packet::new(PacketType::Syn);
        syn.connection_id = 777;
        syn.seq_nr = initial.wrapping_add(1000);
        syn.wnd_size = 1 << 20;
        let c = UtpConnection::accept(&syn, now, config.clone()).expect("a SYN is accepted");
        (c, Some(syn.seq_nr.wrapping_add(1)))
    } else {
        (UtpConnection::connect(555, now, config.clone()), None)
    };
    let mut h = Harness {
        c,
        config,
        now,
        expected,
        final_state: None,
        reset_sent: false,
        delivered: 0,
    };
    h.drain();
    while let Some((&op, rest)) = ops.split_first() {
        ops = rest;
        let mut take = |n: usize| {
            let (a, b) = ops.split_at(ops.len().min(n));
            ops = b;
            a
        };
        match op % 8 {
            0 => {
                let len = take(1).first().map_or(0, |&b| usize::from(b));
                let mut raw = take(len).to_vec();
                if let Ok(p) = Packet::decode(&raw)
                    && matches!(p.packet_type, PacketType::Data | PacketType::Fin)
                    && p.connection_id == h.c.recv_id()
                {
                    raw[2] ^= 0x80;
                }
                let was_connecting = h.c.state() == UtpState::SynSent;
                let _ = h.c.handle_datagram(&raw, h.now);
                if let Ok(p) = Packet::decode(&raw) {
                    h.established(was_connecting, &p);
                }
            }
            1 => {
                let args = take(8);
                let mut a = [0u8; 8];
                a[..args.len()].copy_from_slice(args);
                let p = h.shaped(a);
                h.feed(&p);
            }
            2 => {
                let b = u64::from(take(1).first().copied().unwrap_or(0));
                h.now += std::time::Duration::from_millis(4 * b * b);
                h.c.handle_timeout(h.now);
                h.drain();
                if let Some(t) = h.c.poll_timeout() {
                    assert!(t > h.now, "deadline {t:?} not after {:?}", h.now);
                }
            }
            3 => {
                let n = usize::from(take(1).first().copied().unwrap_or(0)) * 64;
                let before = h.c.unacked_bytes();
                let took = h.c.write(&vec![0xAB; n]);
                assert!(took <= n);
                assert_eq!(h.c.unacked_bytes(), before + took);
            }
            4 => h.read_all(),
            5 => h.c.close(),
            6 => h.c.abort(),
            _ => {
                let n = take(1).first().map_or(0, |&b| b % 16);
                for _ in 0..n {
                    let seq = h.c.ack_nr().wrapping_add(1);
                    let mut p = h.base(PacketType::Data);
                    p.seq_nr = seq;
                    p.payload = content(seq).into();
                    h.feed(&p);
                }
            }
        }
        h.drain();
        h.check();
    }
    h.read_all();
    UtpReached {
        delivered: h.delivered,
        retransmits: h.c.stats().retransmits,
        state: Some(h.c.state()),
    }
}

impl Harness {
    fn feed(&mut self, p: &Packet) {
        let was_connecting = self.c.state() == UtpState::SynSent;
        self.c.handle_packet(p, self.now);
        self.established(was_connecting, p);
    }

    /// The packet that answers our SYN numbers the peer's first DATA.
    fn established(&mut self, was_connecting: bool, p: &Packet) {
        if was_connecting && self.c.state() != UtpState::SynSent && self.expected.is_none() {
            self.expected = Some(p.seq_nr);
        }
    }

    /// A packet from the peer with our id and a valid cumulative ACK.
    fn base(&self, t: PacketType) -> Packet {
        let mut p = Packet::new(t);
        p.connection_id = self.c.recv_id();
        p.ack_nr = self.c.seq_nr().wrapping_sub(1);
        p.wnd_size = 1 << 20;
        p.timestamp_micros = self.now.as_micros() as u32;
        p.timestamp_difference_micros = 20_000;
        p
    }

    fn shaped(&self, a: [u8; 8]) -> Packet {
        let [ty, seq_off, ack_off, wnd, sack, ts, flags, extra] = a;
        let mut t = match ty % 5 {
            0 => PacketType::Data,
            1 => PacketType::Fin,
            3 => PacketType::Reset,
            4 => PacketType::Syn,
            _ => PacketType::State,
        };
        if t == PacketType::Reset && flags & 0x80 == 0 {
            t = PacketType::State;
        }
        let mut p = self.base(t);
        if t == PacketType::Syn {
            p.connection_id = self.c.send_id();
        }
        let next = if self.c.state() == UtpState::SynSent {
            2000
        } else {
            self.c.ack_nr().wrapping_add(1)
        };
        p.seq_nr = next.wrapping_add_signed(i16::from(seq_off as i8));
        p.ack_nr = if ack_off >= 0xF0 {
            // Acknowledges what we never sent.
            self.c.seq_nr().wrapping_add(u16::from(ack_off & 0x0f))
        } else {
            self.c
                .seq_nr()
                .wrapping_sub(1)
                .wrapping_sub(u16::from(ack_off % 32))
        };
        p.wnd_size = [0, 100, 1400, 65_536, 1 << 20, u32::MAX][usize::from(wnd % 6)];
        let sack_len = usize::from(sack % 3) * 4;
        if sack_len > 0 {
            let mask: Vec<u8> = (0..sack_len)
                .map(|i| extra.rotate_left(i as u32) ^ sack)
                .collect();
            p.selective_ack = Some(mask.into());
        }
        p.timestamp_micros = (self.now.as_micros() as u32).wrapping_sub(u32::from(ts) * 1000);
        p.timestamp_difference_micros = u32::from(ts) * 997 + u32::from(flags);
        if t == PacketType::Data {
            p.payload = content(p.seq_nr).into();
        }
        p
    }

    /// Sends everything due, checking each datagram (invariants 1 and 4).
    fn drain(&mut self) {
        let mut n = 0;
        while let Some(d) = self.c.poll_transmit(self.now) {
            n += 1;
            assert!(n < 10_000, "poll_transmit never ends");
            assert!(!self.reset_sent, "a datagram after our RESET");
            let p = Packet::decode(&d).expect("we send valid packets");
            let id = if p.packet_type == PacketType::Syn {
                self.c.recv_id()
            } else {
                self.c.send_id()
            };
            assert_eq!(p.connection_id, id);
            let limit = self.config.max_packet_size.max(20 + 1)
                + if p.packet_type == PacketType::State {
                    2 + 32
                } else {
                    0
                };
            assert!(d.len() <= limit, "{} byte datagram", d.len());
            self.reset_sent |= p.packet_type == PacketType::Reset;
        }
    }

    fn read_all(&mut self) {
        while let Some(chunk) = self.c.recv() {
            let seq = self
                .expected
                .expect("data delivered before the connection was up");
            assert_eq!(&chunk[..], &content(seq)[..], "chunk of packet {seq}");
            self.expected = Some(seq.wrapping_add(1));
            self.delivered += 1;
        }
    }

    fn check(&mut self) {
        let c = &self.c;
        if let Some(s) = self.final_state {
            assert_eq!(c.state(), s, "left a final state");
        } else if c.is_closed() {
            self.final_state = Some(c.state());
        }
        assert!(c.unacked_bytes() <= self.config.send_buffer_size);
        assert!(c.bytes_in_flight() <= c.unacked_bytes());
        assert!(c.buffered_bytes() <= self.config.recv_buffer_size + self.config.max_payload());
        assert!(c.cwnd() >= self.config.max_payload().min(c.cwnd().max(1)));
    }
}
