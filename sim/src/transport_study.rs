//! Bulk flows sharing one bottleneck, packet by packet: uTP (the core's own
//! [`UtpConnection`], LEDBAT and all) beside TCP-like flows ([`crate::tcp_like`]), to see
//! whether LEDBAT yields as BEP 29 promises.
//!
//! The topology is one sending host (node 0) whose uplink is the bottleneck — a home
//! connection uploading — and one receiving host per flow behind uncongested links. Every
//! flow sends from node 0 as fast as its congestion control allows between its `start` and
//! `stop`; the receivers read everything at once. [`run`] samples each flow's delivered
//! rate and the bottleneck's queuing delay at a fixed interval, in virtual time.
//!
//! ```
//! use std::time::Duration;
//! use unchoke_sim::transport_study::{Bottleneck, FlowKind, FlowSpec, run};
//!
//! let link = Bottleneck { rate: 1_000_000, buffer: 200_000, delay: Duration::from_millis(20) };
//! let flows = [FlowSpec { kind: FlowKind::Utp, start: Duration::ZERO, stop: None }];
//! let report = run(&link, &flows, Duration::from_secs(10), Duration::from_secs(1), 7);
//! let rate = report.mean_rate(0, Duration::from_secs(5), Duration::from_secs(10));
//! assert!(rate > 700_000.0, "uTP alone fills most of the link: {rate}");
//! ```

use std::time::Duration;

use unchoke_core::time::Instant;
use unchoke_core::utp::{Packet, PacketType, UtpConfig, UtpConnection};

use crate::datagram::{DatagramNet, Fate, Uplink};
use crate::tcp_like::{TcpLikeReceiver, TcpLikeSender};

/// The bottleneck: node 0's uplink.
#[derive(Clone, Debug)]
pub struct Bottleneck {
    /// Bytes per second.
    pub rate: u64,
    /// Drop-tail buffer in bytes.
    pub buffer: usize,
    /// One-way delay of every path (the round trip is twice this, plus queuing).
    pub delay: Duration,
}

/// Which congestion control a flow uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowKind {
    /// uTP with LEDBAT (the core's [`UtpConnection`], default [`UtpConfig`]).
    Utp,
    /// TCP NewReno's window logic ([`crate::tcp_like`]).
    TcpLike,
}

/// One bulk flow from node 0.
#[derive(Clone, Debug)]
pub struct FlowSpec {
    /// Its congestion control.
    pub kind: FlowKind,
    /// When it starts sending, from the run's start.
    pub start: Duration,
    /// When it stops sending new data (`None`: never).
    pub stop: Option<Duration>,
}

/// One sampling interval.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The interval's end, from the run's start.
    pub at: Duration,
    /// Payload bytes per second each flow delivered in the interval, in flow order.
    pub rates: Vec<f64>,
    /// The mean queuing delay of the datagrams that entered the bottleneck in the
    /// interval (zero when none did).
    pub queue_delay: Duration,
}

/// What [`run`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct TransportReport {
    /// One entry per interval.
    pub samples: Vec<Sample>,
    /// Datagrams the bottleneck dropped (buffer full).
    pub dropped: u64,
    /// Payload bytes each flow delivered in all.
    pub delivered: Vec<u64>,
}

impl TransportReport {
    /// Flow `flow`'s mean delivered rate (bytes per second) over the samples ending in
    /// `(from, to]`.
    pub fn mean_rate(&self, flow: usize, from: Duration, to: Duration) -> f64 {
        let rates: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.at > from && s.at <= to)
            .filter_map(|s| s.rates.get(flow).copied())
            .collect();
        if rates.is_empty() {
            0.0
        } else {
            rates.iter().sum::<f64>() / rates.len() as f64
        }
    }

    /// The mean of the sampled queuing delays over `(from, to]`.
    pub fn mean_queue_delay(&self, from: Duration, to: Duration) -> Duration {
        let delays: Vec<Duration> = self
            .samples
            .iter()
            .filter(|s| s.at > from && s.at <= to)
            .map(|s| s.queue_delay)
            .collect();
        match u32::try_from(delays.len()) {
            Ok(n) if n > 0 => delays.iter().sum::<Duration>() / n,
            _ => Duration::ZERO,
        }
    }
}

/// A flow's two ends.
// A run has a handful of flows: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Ends {
    Utp {
        sender: Option<Box<UtpConnection>>,
        receiver: Option<Box<UtpConnection>>,
    },
    Tcp {
        sender: TcpLikeSender,
        receiver: TcpLikeReceiver,
    },
}

struct Flow {
    spec: FlowSpec,
    ends: Ends,
    started: bool,
    stopped: bool,
    delivered: u64,
    delivered_at_sample: u64,
}

/// What the uTP sender writes: its bytes do not matter, only how many.
const FILLER: [u8; 16384] = [0x55; 16384];

impl Flow {
    fn deadlines(&self) -> impl Iterator<Item = Instant> + '_ {
        let (a, b) = match &self.ends {
            Ends::Utp { sender, receiver } => (
                sender.as_ref().and_then(|c| c.poll_timeout()),
                receiver.as_ref().and_then(|c| c.poll_timeout()),
            ),
            Ends::Tcp { sender, .. } => (sender.poll_timeout(), None),
        };
        a.into_iter().chain(b)
    }

    fn handle_timeouts(&mut self, now: Instant) {
        match &mut self.ends {
            Ends::Utp { sender, receiver } => {
                for c in [sender, receiver].into_iter().flatten() {
                    if c.poll_timeout().is_some_and(|t| t <= now) {
                        c.handle_timeout(now);
                    }
                }
            }
            Ends::Tcp { sender, .. } => {
                if sender.poll_timeout().is_some_and(|t| t <= now) {
                    sender.handle_timeout(now);
                }
            }
        }
    }

    /// A datagram for this flow's sender (`to_sender`) or receiver.
    fn deliver(&mut self, to_sender: bool, bytes: &[u8], now: Instant) {
        match &mut self.ends {
            Ends::Utp { sender, receiver } => {
                if to_sender {
                    if let Some(s) = sender {
                        // A malformed datagram cannot come from our own receiver.
                        let _ = s.handle_datagram(bytes, now);
                    }
                } else if let Some(r) = receiver {
                    let _ = r.handle_datagram(bytes, now);
                } else if let Ok(p) = Packet::decode(bytes)
                    && p.packet_type == PacketType::Syn
                {
                    *receiver = UtpConnection::accept(&p, now, UtpConfig::default())
                        .ok()
                        .map(Box::new);
                }
            }
            Ends::Tcp { sender, receiver } => {
                if to_sender {
                    sender.handle_datagram(bytes, now);
                } else {
                    receiver.handle_datagram(bytes, now);
                }
            }
        }
    }

    /// The applications: the sender writes while running, the receiver reads everything.
    fn app(&mut self) {
        let running = self.started && !self.stopped;
        match &mut self.ends {
            Ends::Utp { sender, receiver } => {
                if running && let Some(s) = sender {
                    while s.write(&FILLER) > 0 {}
                }
                if let Some(r) = receiver {
                    while let Some(chunk) = r.recv() {
                        self.delivered += chunk.len() as u64;
                    }
                }
            }
            Ends::Tcp { sender, receiver } => {
                sender.active = running;
                self.delivered = receiver.delivered;
            }
        }
    }

    /// Every datagram both ends want to send now: (from the sender?, bytes).
    fn transmit(&mut self, now: Instant, out: &mut Vec<(bool, Vec<u8>)>) {
        match &mut self.ends {
            Ends::Utp { sender, receiver } => {
                if let Some(s) = sender {
                    out.extend(std::iter::from_fn(|| s.poll_transmit(now)).map(|d| (true, d)));
                }
                if let Some(r) = receiver {
                    out.extend(std::iter::from_fn(|| r.poll_transmit(now)).map(|d| (false, d)));
                }
            }
            Ends::Tcp { sender, receiver } => {
                out.extend(std::iter::from_fn(|| sender.poll_transmit(now)).map(|d| (true, d)));
                out.extend(std::iter::from_fn(|| receiver.poll_transmit(now)).map(|d| (false, d)));
            }
        }
    }
}

/// Runs `flows` over `link` for `length` of virtual time, sampling every `interval`;
/// `seed` drives nothing random today (no loss is configured) but names the run.
pub fn run(
    link: &Bottleneck,
    flows: &[FlowSpec],
    length: Duration,
    interval: Duration,
    seed: u64,
) -> TransportReport {
    let origin = Instant::from_secs(1);
    // Receivers' links carry acknowledgements only: fast and never full.
    let mut uplinks = vec![Uplink::new(link.rate, Some(link.buffer))];
    uplinks.extend(flows.iter().map(|_| Uplink::new(1 << 30, None)));
    let mut net = DatagramNet::new(seed, uplinks, link.delay);
    let mut flows: Vec<Flow> = flows
        .iter()
        .map(|spec| Flow {
            spec: spec.clone(),
            ends: match spec.kind {
                FlowKind::Utp => Ends::Utp {
                    sender: None,
                    receiver: None,
                },
                FlowKind::TcpLike => Ends::Tcp {
                    sender: TcpLikeSender::new(),
                    receiver: TcpLikeReceiver::default(),
                },
            },
            started: false,
            stopped: false,
            delivered: 0,
            delivered_at_sample: 0,
        })
        .collect();
    let end = origin + length;
    let interval = interval.max(Duration::from_millis(1));
    let mut next_sample = origin + interval;
    let mut samples = Vec::new();
    let (mut delay_sum, mut delay_count) = (Duration::ZERO, 0u32);
    let mut out = Vec::new();
    let mut now = origin;
    while now < end {
        for (i, f) in flows.iter_mut().enumerate() {
            if !f.started && now >= origin + f.spec.start {
                f.started = true;
                if let Ends::Utp { sender, .. } = &mut f.ends {
                    let id = u16::try_from(i + 1).unwrap_or(u16::MAX);
                    *sender = Some(Box::new(UtpConnection::connect(
                        id,
                        now,
                        UtpConfig::default(),
                    )));
                }
            }
            if f.spec.stop.is_some_and(|s| now >= origin + s) {
                f.stopped = true;
            }
        }
        while let Some(d) = net.pop_due(now) {
            if let Some(f) = flows.get_mut(d.tag) {
                f.deliver(d.to == 0, &d.bytes, now);
            }
        }
        for (i, f) in flows.iter_mut().enumerate() {
            f.handle_timeouts(now);
            f.app();
            f.transmit(now, &mut out);
            for (from_sender, bytes) in out.drain(..) {
                let (from, to) = if from_sender { (0, i + 1) } else { (i + 1, 0) };
                let wait = net.queue_delay(from, now);
                if matches!(net.send(now, from, to, i, bytes), Fate::Arrives(_)) && from == 0 {
                    delay_sum += wait;
                    delay_count += 1;
                }
            }
        }
        if now >= next_sample {
            let secs = interval.as_secs_f64();
            samples.push(Sample {
                at: next_sample - origin,
                rates: flows
                    .iter_mut()
                    .map(|f| {
                        let delta = f.delivered - f.delivered_at_sample;
                        f.delivered_at_sample = f.delivered;
                        delta as f64 / secs
                    })
                    .collect(),
                queue_delay: delay_sum.checked_div(delay_count).unwrap_or_default(),
            });
            (delay_sum, delay_count) = (Duration::ZERO, 0);
            next_sample += interval;
        }
        // The next moment anything happens: an arrival, a timer, a flow's start or stop,
        // a sample. Never the same moment twice (a timer that did nothing is not re-run
        // before time moves on).
        let starts = flows.iter().flat_map(|f| {
            let start = (!f.started).then_some(origin + f.spec.start);
            let stop = f.spec.stop.filter(|_| !f.stopped).map(|s| origin + s);
            start.into_iter().chain(stop)
        });
        let timers = flows.iter().flat_map(Flow::deadlines);
        let next = net
            .next_at()
            .into_iter()
            .chain(starts)
            .chain(timers)
            .chain([next_sample, end])
            .min()
            .unwrap_or(end);
        now = next.max(now + Duration::from_micros(1));
    }
    TransportReport {
        samples,
        dropped: net.stats(0).map_or(0, |s| s.dropped),
        delivered: flows.iter().map(|f| f.delivered).collect(),
    }
}
