//! Two `UtpConnection`s over the harness's packet-level network
//! (`unchoke_sim::datagram`): per-datagram delay, seeded loss, reordering by a random
//! extra delay, black holes. Time jumps to the earliest of the next
//! delivery and each side's `poll_timeout`, so a run is exact and deterministic.
// The harness's helpers unwrap what a test set up itself: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use unchoke_core::time::Instant;
use unchoke_core::utp::{Packet, PacketType, UtpConfig, UtpConnection, UtpState};
use unchoke_sim::datagram::{DatagramNet, Uplink};

const MIB: usize = 1 << 20;

/// The link between side 0 (the initiator) and side 1 (the acceptor): the harness's
/// packet-level network, each side's uplink at 12.5 MB/s with an unbounded queue (so
/// LEDBAT sees queuing delay and datagrams arrive spaced, not in one burst), `delay_ms`
/// each way, seeded loss, and a tenth of the datagrams up to `jitter_ms` late (reordered).
fn net(seed: u64, loss: f64, delay_ms: u64, jitter_ms: u64) -> DatagramNet {
    let uplinks = vec![Uplink::new(12_500_000, None), Uplink::new(12_500_000, None)];
    let mut net = DatagramNet::new(seed, uplinks, Duration::from_millis(delay_ms));
    net.loss = loss;
    net.jitter = Duration::from_millis(jitter_ms);
    net.reorder = 0.1;
    net
}

/// Both ends, the network, and the application on top: side 0 writes `payload`, side 1
/// reads into `received`.
struct Sim {
    now: Instant,
    net: DatagramNet,
    sides: [Option<UtpConnection>; 2],
    accept_config: UtpConfig,
    payload: Vec<u8>,
    written: usize,
    received: Vec<u8>,
    /// Side 1 reads at most this many bytes per step (None: everything).
    read_limit: Option<usize>,
    /// Every datagram sent: (time, from side, packet).
    log: Vec<(Instant, usize, Packet)>,
    /// (time, cwnd) of side 0 after every step.
    cwnd_log: Vec<(Instant, usize, u64)>,
}

impl Sim {
    fn new(net: DatagramNet, config: UtpConfig, accept_config: UtpConfig, payload: Vec<u8>) -> Sim {
        let now = Instant::from_secs(1);
        let mut sim = Sim {
            now,
            net,
            sides: [Some(UtpConnection::connect(4242, now, config)), None],
            accept_config,
            payload,
            written: 0,
            received: Vec::new(),
            read_limit: None,
            log: Vec::new(),
            cwnd_log: Vec::new(),
        };
        sim.app();
        sim.flush();
        sim
    }

    fn a(&self) -> &UtpConnection {
        self.sides[0].as_ref().unwrap()
    }

    fn b(&self) -> Option<&UtpConnection> {
        self.sides[1].as_ref()
    }

    /// Drains both sides' datagrams onto the network, checking the window invariant on
    /// every DATA packet.
    fn flush(&mut self) {
        for i in 0..2 {
            let Some(c) = self.sides[i].as_mut() else {
                continue;
            };
            while let Some(d) = c.poll_transmit(self.now) {
                let p = Packet::decode(&d).expect("we send valid packets");
                if p.packet_type == PacketType::Data {
                    let window = c.cwnd().min(c.peer_window());
                    let flight = c.bytes_in_flight();
                    // Both sides send selective ACKs: no fast retransmit on duplicate ACKs
                    // (the one exception of invariant 3), so every DATA packet, new or
                    // resent, fits the window or is alone in flight.
                    assert!(
                        flight <= window || flight == p.payload.len(),
                        "side {i}: {flight} bytes in flight > window {window}"
                    );
                }
                self.log.push((self.now, i, p));
                self.net.send(self.now, i, 1 - i, 0, d);
            }
        }
    }

    /// The application: side 0 writes what it can, side 1 reads.
    fn app(&mut self) {
        let now = self.now;
        if let Some(a) = self.sides[0].as_mut()
            && self.written < self.payload.len()
        {
            self.written += a.write(&self.payload[self.written..]);
        }
        if let Some(b) = self.sides[1].as_mut() {
            let mut budget = self.read_limit.unwrap_or(usize::MAX);
            while budget > 0 {
                let Some(chunk) = b.recv() else { break };
                budget = budget.saturating_sub(chunk.len());
                self.received.extend_from_slice(&chunk);
            }
            let limit = b.config_recv_limit();
            assert!(
                b.buffered_bytes() <= limit,
                "side 1 holds {} bytes, more than its window {limit}",
                b.buffered_bytes()
            );
        }
        let a = self.sides[0].as_ref().unwrap();
        self.cwnd_log
            .push((now, a.cwnd(), a.stats().loss_events + a.stats().timeouts));
    }

    /// One event: the earliest delivery or deadline. `false` when nothing is left.
    fn step(&mut self) -> bool {
        let mut next = self.net.next_at().map(Instant::as_micros);
        for c in self.sides.iter().flatten() {
            if let Some(t) = c.poll_timeout() {
                let t = t.as_micros().max(self.now.as_micros());
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        let Some(next) = next else { return false };
        self.now = Instant::from_micros(next);
        while let Some(delivery) = self.net.pop_due(self.now) {
            let (to, d) = (delivery.to, delivery.bytes);
            match self.sides[to].as_mut() {
                Some(c) => {
                    c.handle_datagram(&d, self.now).expect("valid datagram");
                }
                None => {
                    let p = Packet::decode(&d).unwrap();
                    if p.packet_type == PacketType::Syn {
                        self.sides[to] = Some(
                            UtpConnection::accept(&p, self.now, self.accept_config.clone())
                                .unwrap(),
                        );
                    }
                }
            }
        }
        for c in self.sides.iter_mut().flatten() {
            if c.poll_timeout().is_some_and(|t| t <= self.now) {
                c.handle_timeout(self.now);
            }
        }
        self.app();
        self.flush();
        for c in self.sides.iter().flatten() {
            if let Some(t) = c.poll_timeout() {
                assert!(t > self.now, "a deadline in the past after handle_timeout");
            }
        }
        true
    }

    /// Steps until `done` or `limit` of virtual time passed.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) {
        let end = self.now + limit;
        while !done(self) {
            assert!(
                self.now < end,
                "not done by {:?}: side 0 {:?} {:?}, side 1 {:?}, {} of {} bytes received",
                self.now,
                self.a().state(),
                self.a().stats(),
                self.b().map(|b| (b.state(), b.stats().clone())),
                self.received.len(),
                self.payload.len()
            );
            if !self.step() {
                break;
            }
        }
    }

    fn transfer_done(&self) -> bool {
        self.received.len() == self.payload.len()
    }
}

trait RecvLimit {
    fn config_recv_limit(&self) -> usize;
}

impl RecvLimit for UtpConnection {
    /// What a receiver may hold: its buffer plus one packet of slack (invariant 4).
    fn config_recv_limit(&self) -> usize {
        RECV_BUFFER.with(|b| b.get()) + UtpConfig::default().max_payload()
    }
}

thread_local! {
    static RECV_BUFFER: std::cell::Cell<usize> = const { std::cell::Cell::new(1 << 20) };
}

fn s_written(sim: &Sim) -> usize {
    sim.written
}

fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// 1 MiB from side 0 to side 1; returns the virtual time it took and side 0's counters.
fn transfer(loss: f64, seed: u64, config: UtpConfig) -> (Duration, Sim) {
    transfer_over(net(seed, loss, 20, 10), seed, config)
}

fn transfer_over(net: DatagramNet, seed: u64, config: UtpConfig) -> (Duration, Sim) {
    let loss = net.loss;
    let mut sim = Sim::new(net, config.clone(), config, payload(MIB, seed));
    let start = sim.now;
    sim.run_until(Duration::from_secs(300), Sim::transfer_done);
    assert!(sim.received == sim.payload, "the bytes differ");
    let took = sim.now - start;
    let s = sim.a().stats().clone();
    eprintln!(
        "loss {:>4.1} %: 1 MiB in {:.3} virtual s; {} packets sent, {} retransmits ({} fast), \
         {} time-outs, {} loss events ({} spurious); final cwnd {} bytes, srtt {:?}",
        loss * 100.0,
        took.as_secs_f64(),
        s.packets_sent,
        s.retransmits,
        s.fast_retransmits,
        s.timeouts,
        s.loss_events,
        s.spurious_retransmits,
        sim.a().cwnd(),
        sim.a().srtt()
    );
    (took, sim)
}

#[test]
fn one_mib_without_loss() {
    let (took, sim) = transfer(0.0, 1, UtpConfig::default());
    // Reordering alone may trigger a few spurious fast retransmits, no time-outs.
    assert_eq!(sim.a().stats().timeouts, 0);
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn in_order_without_loss_nothing_is_resent_and_writes_coalesce() {
    let mut net = net(1, 0.0, 20, 0);
    net.reorder = 0.0;
    let mut sim = Sim::new(
        net,
        UtpConfig::default(),
        UtpConfig::default(),
        payload(MIB, 1),
    );
    sim.run_until(Duration::from_secs(30), Sim::transfer_done);
    assert!(sim.received == sim.payload);
    assert_eq!(sim.a().stats().retransmits, 0);
    // Every DATA packet but the last is full: writes were coalesced.
    let data: Vec<usize> = sim
        .log
        .iter()
        .filter(|(_, from, p)| *from == 0 && p.packet_type == PacketType::Data)
        .map(|(_, _, p)| p.payload.len())
        .collect();
    assert!(data[..data.len() - 1].iter().all(|&n| n == 1380));
}

#[test]
fn one_mib_with_one_percent_loss_and_reordering() {
    let (took, sim) = transfer(0.01, 2, UtpConfig::default());
    assert!(sim.a().stats().retransmits > 0);
    assert!(took < Duration::from_secs(60), "{took:?}");
}

#[test]
fn one_mib_with_five_percent_loss_and_reordering() {
    for seed in [3, 4] {
        let (took, sim) = transfer(0.05, seed, UtpConfig::default());
        assert!(sim.a().stats().fast_retransmits > 0);
        assert!(took < Duration::from_secs(120), "{took:?}");
    }
}

#[test]
fn sequence_numbers_wrap() {
    // Both sides start 100 numbers before the wrap; 1 MiB is ~760 packets.
    let config = UtpConfig {
        initial_seq_nr: 65_436,
        ..UtpConfig::default()
    };
    let (_, sim) = transfer(0.02, 5, config);
    assert!(
        sim.a().seq_nr() < 1000,
        "side 0 wrapped: {}",
        sim.a().seq_nr()
    );
}

#[test]
fn retransmission_timeouts_back_off() {
    let net = net(6, 0.0, 20, 0);
    let mut sim = Sim::new(
        net,
        UtpConfig::default(),
        UtpConfig::default(),
        payload(200_000, 6),
    );
    sim.run_until(Duration::from_secs(5), |s| s.received.len() > 50_000);
    let outage_start = sim.now;
    sim.net.black_hole_until = Some(outage_start + Duration::from_secs(12));
    sim.run_until(Duration::from_secs(20), |s| {
        s.now >= outage_start + Duration::from_secs(12)
    });
    // The times side 0 sent DATA during the outage: one retransmission per time-out.
    let sends: Vec<Instant> = sim
        .log
        .iter()
        .filter(|(t, from, p)| *t > outage_start && *from == 0 && p.packet_type == PacketType::Data)
        .map(|(t, ..)| *t)
        .collect();
    // Packets already in flight when the outage began go out back to back; the
    // retransmissions are the sends more than 100 ms apart.
    let gaps: Vec<Duration> = sends
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|g| *g > Duration::from_millis(100))
        .collect();
    eprintln!("retransmission gaps during the outage: {gaps:?}");
    assert!(gaps.len() >= 3, "{gaps:?}");
    for w in gaps.windows(2) {
        assert!(w[1] >= w[0] * 19 / 10, "gaps do not double: {gaps:?}");
    }
    assert_eq!(sim.a().state(), UtpState::Connected);
    assert!(sim.a().stats().timeouts >= 3);
    // After the outage the transfer completes.
    sim.run_until(Duration::from_secs(60), Sim::transfer_done);
    assert!(sim.received == sim.payload);
}

#[test]
fn fin_handshake_ends_both_sides() {
    let net = net(7, 0.02, 20, 10);
    let mut sim = Sim::new(
        net,
        UtpConfig::default(),
        UtpConfig::default(),
        payload(100_000, 7),
    );
    sim.run_until(Duration::from_secs(30), |s| s.received.len() > 10_000);
    assert_eq!(s_written(&sim), sim.payload.len());
    sim.sides[0].as_mut().unwrap().close();
    assert_eq!(sim.a().state(), UtpState::FinSent);
    assert_eq!(sim.sides[0].as_mut().unwrap().write(b"late"), 0);
    sim.run_until(Duration::from_secs(60), |s| {
        s.b().is_some_and(UtpConnection::is_peer_finished)
    });
    assert!(sim.received == sim.payload, "all delivered before the FIN");
    sim.sides[1].as_mut().unwrap().close();
    sim.run_until(Duration::from_secs(60), |s| {
        s.a().state() == UtpState::Closed && s.b().unwrap().state() == UtpState::Closed
    });
    assert!(sim.a().is_peer_finished());
    // Nothing is scheduled any more.
    assert_eq!(sim.a().poll_timeout(), None);
    assert_eq!(sim.b().unwrap().poll_timeout(), None);
}

#[test]
fn reset_ends_the_other_side() {
    let net = net(8, 0.0, 20, 0);
    let mut sim = Sim::new(
        net,
        UtpConfig::default(),
        UtpConfig::default(),
        payload(300_000, 8),
    );
    sim.run_until(Duration::from_secs(5), |s| s.received.len() > 10_000);
    sim.sides[1].as_mut().unwrap().abort();
    assert_eq!(sim.b().unwrap().state(), UtpState::Reset);
    sim.run_until(Duration::from_secs(5), |s| s.a().state() == UtpState::Reset);
    assert_eq!(sim.a().poll_timeout(), None);
    assert_eq!(sim.sides[0].as_mut().unwrap().poll_transmit(sim.now), None);
}

#[test]
fn a_stalled_peer_times_out() {
    let net = net(9, 0.0, 20, 0);
    let mut sim = Sim::new(
        net,
        UtpConfig::default(),
        UtpConfig::default(),
        payload(500_000, 9),
    );
    sim.run_until(Duration::from_secs(5), |s| s.received.len() > 50_000);
    let stall = sim.now;
    // The peer vanishes: nothing reaches it, nothing comes back.
    sim.net.black_hole_until = Some(Instant::from_secs(1_000_000));
    sim.run_until(Duration::from_secs(60), |s| s.a().is_closed());
    assert_eq!(sim.a().state(), UtpState::TimedOut);
    let after = sim.now - stall;
    eprintln!("timed out {after:?} after the stall");
    assert!(after >= Duration::from_secs(19) && after <= Duration::from_secs(21));
}

#[test]
fn the_window_shrinks_on_loss_and_grows_without() {
    let mut net = net(10, 0.0, 20, 0);
    net.reorder = 0.0;
    let (_, clean) = transfer_over(net, 10, UtpConfig::default());
    let initial = 3 * 1380;
    let max = clean.cwnd_log.iter().map(|(_, w, _)| *w).max().unwrap();
    assert!(max >= 16 * initial, "the window grew only to {max}");
    // Under loss: every step where a loss or time-out was counted has a smaller window than
    // the step before.
    let (_, lossy) = transfer(0.03, 11, UtpConfig::default());
    let mut cuts = 0;
    for w in lossy.cwnd_log.windows(2) {
        let ((_, before, losses_before), (_, after, losses_after)) = (w[0], w[1]);
        if losses_after > losses_before {
            cuts += 1;
            assert!(after < before || before == 1380, "{before} → {after}");
        }
    }
    assert!(cuts > 0);
    let max_lossy = lossy.cwnd_log.iter().map(|(_, w, _)| *w).max().unwrap();
    assert!(max_lossy < max);
}

#[test]
fn the_sender_respects_a_small_peer_window() {
    // A 64 KiB receiver that reads slowly: the sender never overruns it (checked on every
    // step by `Sim::app`, and on every DATA packet by `Sim::flush`).
    RECV_BUFFER.with(|b| b.set(64 * 1024));
    let small = UtpConfig {
        recv_buffer_size: 64 * 1024,
        ..UtpConfig::default()
    };
    let net = net(12, 0.01, 20, 10);
    let mut sim = Sim::new(net, UtpConfig::default(), small, payload(400_000, 12));
    sim.read_limit = Some(4096);
    sim.run_until(Duration::from_secs(300), Sim::transfer_done);
    assert!(sim.received == sim.payload);
    let b = sim.b().unwrap();
    assert_eq!(b.stats().dropped, 0, "nothing arrived beyond the window");
}

#[test]
fn many_seeds_complete_under_loss_and_reordering() {
    // The same transfer over more seeds, so a rare schedule (a lost retransmission, a lost
    // FIN-less tail, a reordered window update) cannot hide behind the three above.
    let mut slowest = Duration::ZERO;
    for loss in [0.0, 0.01, 0.05, 0.1] {
        for seed in 100..108 {
            let (took, sim) = transfer(loss, seed, UtpConfig::default());
            assert!(sim.received == sim.payload);
            slowest = slowest.max(took);
        }
    }
    eprintln!("slowest of 32 runs: {slowest:?}");
}
