//! The simulation's event loop: it plays the driver for every host.
//!
//! Each event touches one host's session, then that session's actions are carried out at
//! once: bytes go into the network, disk actions are answered from the payload (a lab's
//! hosts: from their emulated disks, `lab`), dials and closes become events for the other
//! end after the link latency. A session is never called
//! while another's actions are being carried out, so every cross-host effect goes through
//! the event queue, in `(time, sequence)` order.

mod actions;
mod closing;
mod connections;
pub(crate) mod lab;
mod report;
mod spread;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use unchoke_core::vocab::conn_map::ConnMap;

use bytes::{Bytes, BytesMut};

use super::network::{Chunks, Dest, FlowId, HostId, Network};
use super::payload::Payload;
use super::{DisruptionKind, PolicyReport, Progress, SimConfig, SimError, SimReport};
use unchoke_core::bitfield::Bitfield;
use unchoke_core::session::{ConnId, ConnectFailure, Session, TorrentId};
use unchoke_core::time::Instant;
use unchoke_core::tracker::http::{HttpResponseReader, parse_announce_response};
use unchoke_core::tracker::server::{HttpOutcome, ServerConfig, TrackerServer};
use unchoke_core::wire::{Decoder, Limits};

/// Port every simulated host listens on.
const LISTEN_PORT: u16 = 6881;
/// Sends at least this long take bandwidth even when they are not blocks.
const PACED_MIN: usize = 1024;
/// How often the tracker forgets silent peers.
const EXPIRE_EVERY: Duration = Duration::from_secs(60);
/// Violations kept in the report (the count beyond is summarised).
const MAX_VIOLATIONS: usize = 100;
/// The first host's address; host `i` is this plus `i`.
const FIRST_HOST: u32 = 0x7f00_0001;
/// How long past the sessions' `close_timeout` the final close may run before the
/// simulation stops anyway (and reports the hosts that did not drain).
const CLOSE_GRACE: u64 = 1_000_000;

#[derive(Debug)]
enum Ev {
    /// The host's session asked to be woken now.
    Timer { host: HostId, generation: u64 },
    /// A dial reaches its target.
    Accept {
        host: HostId,
        from: HostId,
        from_incarnation: u32,
        torrent: TorrentId,
        dial: u64,
    },
    /// The target accepted: the dialler's connection opens.
    Opened {
        host: HostId,
        incarnation: u32,
        torrent: TorrentId,
        remote: HostId,
        remote_incarnation: u32,
        remote_conn: ConnId,
        dial: u64,
    },
    /// Nobody listens at the dialled address.
    Refused {
        host: HostId,
        incarnation: u32,
        torrent: TorrentId,
        addr: SocketAddr,
        dial: u64,
    },
    /// Bytes arrive (`payload` of them block data).
    Deliver {
        dest: Dest,
        chunks: Chunks,
        payload: u64,
    },
    /// The other end closed the connection.
    Closed {
        host: HostId,
        incarnation: u32,
        conn: ConnId,
    },
    /// An announce reaches the tracker.
    TrackerRequest {
        host: HostId,
        incarnation: u32,
        torrent: TorrentId,
        url: String,
        request: Vec<u8>,
    },
    /// A DHT datagram reaches `host` (the DHT shares the peer port's address here).
    Datagram {
        host: HostId,
        from: SocketAddr,
        bytes: Bytes,
    },
    /// The tracker's answer arrives.
    TrackerReply {
        host: HostId,
        incarnation: u32,
        torrent: TorrentId,
        url: String,
        response: Vec<u8>,
    },
    /// A host leaves (churn, a disruption, a peer whose seed time is over, or the server
    /// once the peers hold a full copy);
    /// it comes back after `return_after` microseconds, if given.
    Leave {
        host: HostId,
        return_after: Option<u64>,
    },
    /// A host that left comes back with the pieces it had.
    Rejoin { host: HostId },
    /// A peer arrives for the first time ([`crate::Arrivals`]).
    Arrive { host: HostId },
    /// A scheduled disruption strikes.
    Disrupt { host: HostId, kind: DisruptionKind },
    /// A stalled host's link works again.
    Recover { host: HostId },
    /// The tracker's expiry round.
    Expire,
    /// Every peer completed: the swarm stops and every session closes.
    Stop,
    /// The lab answers a session: a disk, save or tracker answer ([`lab::LabEv`]).
    Lab(lab::LabEv),
}

/// An event's place in the queue: its time, its order among events of that time, and
/// the slot in [`Simulation::pending`] that holds it. The event itself stays in its slot:
/// the heap moves only these 24 bytes on every push and pop, not the ~100-byte `Ev`.
#[derive(Debug)]
struct Scheduled {
    at: u64,
    seq: u64,
    slot: u32,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Server,
    Peer,
}

/// One end of an established (or half-established) connection.
#[derive(Debug)]
struct LinkEnd {
    /// The other end: host, its incarnation, its connection. `None` on the accepting side
    /// until the dialler's side opens.
    remote: Option<(HostId, u32, ConnId)>,
    /// The flow carrying our bytes to the other end.
    out: Option<FlowId>,
    /// Bytes received and not yet consumed by the session.
    recv: BytesMut,
}

/// A host while it is in the swarm.
#[derive(Debug)]
struct Online {
    session: Session,
    /// Looked up on every delivery and every send, never iterated where order shows
    /// without sorting first (`depart`, the lab's lookups): a hash map, not a B-tree.
    links: ConnMap<LinkEnd>,
    /// Dials out whose answer is still awaited, by what the session named them, with the
    /// number of the dial: an answer for a dial no longer here (cancelled by the session,
    /// or superseded by a later dial to the same address) is dropped.
    dials: BTreeMap<(TorrentId, SocketAddr), u64>,
}

/// Why a host's session is closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Departure {
    /// It leaves the swarm; back after this many microseconds, if given.
    Leave(Option<u64>),
    /// The simulation is over.
    End,
}

/// A host whose session was closed and is draining.
#[derive(Debug)]
struct Closing {
    since: u64,
    departure: Departure,
    /// `is_drained()` said yes.
    done: bool,
}

#[derive(Debug)]
struct Host {
    role: Role,
    addr: SocketAddr,
    /// One-way latency of its link, microseconds.
    latency: u64,
    /// Bumped on every departure, so events for an earlier stay are dropped.
    incarnation: u32,
    online: Option<Online>,
    /// Pieces verified (kept across departures: they are on the host's disk).
    have: Bitfield,
    completed_at: Option<u64>,
    /// When it first joined, in microseconds (0 for the server and a flash crowd).
    arrived_at: u64,
    /// Churn: leave once this many pieces are verified (once).
    leave_after: Option<u32>,
    /// Its capacities, bytes per second (restored after a stall).
    up: f64,
    down: f64,
    /// Serves corrupted blocks (a disruption).
    corrupt: bool,
    uploaded: u64,
    downloaded: u64,
    timer_generation: u64,
    timer_at: Option<u64>,
    next_port: u16,
    /// Until when dials to it go unanswered (a black-hole disruption).
    black_hole_until: Option<u64>,
    /// Its session is closing, while it is.
    closing: Option<Closing>,
    /// A free rider: its session never uploads ([`SimConfig::free_rider_session`]).
    free_rider: bool,
    /// Its index in [`SimConfig::classes`] (`None` for the server and without classes).
    class: Option<usize>,
}

impl Host {
    /// A host not yet in the swarm (no session), with its capacities and the pieces on its
    /// disk; everything it will count starts at zero.
    fn new(
        role: Role,
        addr: SocketAddr,
        latency: u64,
        (up, down): (f64, f64),
        have: Bitfield,
        arrived_at: u64,
    ) -> Host {
        Host {
            role,
            addr,
            latency,
            incarnation: 0,
            online: None,
            have,
            completed_at: None,
            arrived_at,
            leave_after: None,
            up,
            down,
            corrupt: false,
            uploaded: 0,
            downloaded: 0,
            timer_generation: 0,
            timer_at: None,
            next_port: 40_000,
            black_hole_until: None,
            closing: None,
            free_rider: false,
            class: None,
        }
    }

    fn ephemeral(&mut self) -> SocketAddr {
        self.next_port = if self.next_port >= 60_000 {
            40_000
        } else {
            self.next_port + 1
        };
        SocketAddr::new(self.addr.ip(), self.next_port)
    }
}

/// A running simulation. See the [module docs](super).
#[derive(Debug)]
pub struct Simulation {
    config: super::SimConfig,
    payload: Payload,
    net: Network,
    hosts: Vec<Host>,
    tracker: TrackerServer,
    queue: BinaryHeap<Scheduled>,
    /// The events `queue` orders, by slot; a popped event's slot goes on `free_events`
    /// and is reused, so the table grows with the most events pending at once.
    pending: Vec<Option<Ev>>,
    free_events: Vec<u32>,
    seq: u64,
    now: u64,
    limit: u64,
    events: u64,
    /// Reused by `report_progress`: `(connection, bytes)` of one host's flows.
    progress_scratch: Vec<(u64, u64)>,
    blocks: u64,
    datagrams: u64,
    /// Datagrams lost on the way, and the generator of losses and jitter
    /// ([`super::Loss`]): its own, so loss changes no other random choice.
    datagrams_lost: u64,
    loss_rng: fastrand::Rng,
    tracker_announces: u64,
    completed: usize,
    finished: bool,
    violations: Vec<String>,
    violation_count: usize,
    leaves: u64,
    rejoins: u64,
    /// Online peers (not the server) holding each piece, and how many pieces have any.
    availability: Vec<u32>,
    covered: u32,
    server_left: bool,
    /// Whether any host has served corrupt data: hash failures and bans are then expected.
    corruption: bool,
    hash_failures: u64,
    bans: u64,
    /// The most bytes a receive buffer may hold after the session read it: less than one
    /// maximal message.
    max_buffered: usize,
    /// What the sessions' own rules did.
    policies: PolicyReport,
    /// Number of the next dial.
    next_dial: u64,
    /// When the swarm stopped and the final close began.
    stopped_at: Option<u64>,
    /// Sessions closed at the end that have not drained yet.
    undrained: usize,
    /// Every close's drain time, in the order they drained (for the digest).
    drain_times: Vec<u64>,
    /// The swarm over time (`spread`), the next sample's time, and the bytes uploaded as
    /// of the last sample.
    samples: Vec<super::Sample>,
    next_sample: u64,
    sampled_uploaded: f64,
    /// Payload bytes received by free riders and by all peers as of the last sample before
    /// the first completion.
    leeching_received: Option<(u64, u64)>,
    /// The test lab's state (`crate::lab::Swarm`); `None` in the study, which never pays
    /// for the lab's disks, sniffer or recorders.
    lab: Option<Box<lab::Lab>>,
}

/// The study's tracker: a default one that holds the whole swarm, the server and every
/// peer. The default's 5,000 peers per swarm, a public tracker's memory bound, would turn
/// every peer past it away for good (they have no other way in: every peer stays to the
/// end), so N = 10,000 once ran with half its peers never joining.
fn study_tracker_config(peers: usize) -> ServerConfig {
    let default = ServerConfig::default();
    let hosts = peers.saturating_add(1);
    ServerConfig {
        max_peers_per_swarm: default.max_peers_per_swarm.max(hosts),
        max_total_peers: default.max_total_peers.max(hosts),
        ..default
    }
}

impl Simulation {
    /// Sets up the swarm: the payload and its torrent, the tracker, the server (holding the
    /// whole file) and the peers, all joining at time zero.
    pub fn new(config: SimConfig) -> Result<Simulation, SimError> {
        config.validate()?;
        let payload = Payload::new(config.file_size, config.piece_length, config.seed)
            .map_err(SimError::Invalid)?;
        let pieces = payload.piece_count();
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let tracker = TrackerServer::new(study_tracker_config(config.peers), rng.u64(..));
        let mut sim = Simulation {
            limit: u64::try_from(config.time_limit.as_micros()).unwrap_or(u64::MAX),
            payload,
            net: Network::default(),
            hosts: Vec::with_capacity(config.peers + 1),
            tracker,
            queue: BinaryHeap::new(),
            pending: Vec::new(),
            free_events: Vec::new(),
            seq: 0,
            now: 0,
            events: 0,
            progress_scratch: Vec::new(),
            blocks: 0,
            datagrams: 0,
            datagrams_lost: 0,
            loss_rng: fastrand::Rng::with_seed(mix(config.seed, u64::MAX, 0x1055)),
            tracker_announces: 0,
            completed: 0,
            finished: false,
            violations: Vec::new(),
            violation_count: 0,
            leaves: 0,
            rejoins: 0,
            availability: vec![0; pieces as usize],
            covered: 0,
            server_left: false,
            corruption: false,
            hash_failures: 0,
            bans: 0,
            max_buffered: Decoder::new(None, Limits::default()).max_message_len() as usize + 4,
            policies: PolicyReport::default(),
            next_dial: 0,
            stopped_at: None,
            undrained: 0,
            drain_times: Vec::new(),
            samples: Vec::new(),
            next_sample: spread::SAMPLE_EVERY,
            sampled_uploaded: 0.0,
            leeching_received: None,
            lab: None,
            config,
        };
        let latency = u64::try_from(sim.config.latency.as_micros()).unwrap_or(u64::MAX / 4);
        let free_riders = sim.config.free_rider_hosts();
        let arrivals = sim.config.arrival_times();
        let peer_rates = sim.config.peer_rates();
        let peer_classes = sim.config.peer_classes();
        for i in 0..=sim.config.peers {
            let role = if i == 0 { Role::Server } else { Role::Peer };
            let (up, down, have) = match role {
                Role::Server => (
                    sim.config.server_upload,
                    sim.config.server_upload,
                    Bitfield::full(pieces),
                ),
                Role::Peer => (
                    peer_rates[i - 1].0,
                    peer_rates[i - 1].1,
                    Bitfield::new(pieces),
                ),
            };
            let leave_after = match &sim.config.churn {
                Some(c) if role == Role::Peer && pieces >= 2 && rng.f64() < c.fraction => {
                    Some(rng.u32(1..pieces))
                }
                _ => None,
            };
            let id = sim.net.add_host(up, down);
            debug_assert_eq!(id, i);
            let addr = SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(FIRST_HOST + i as u32)),
                LISTEN_PORT,
            );
            let arrived_at = if i == 0 { 0 } else { arrivals[i - 1] };
            sim.hosts.push(Host {
                leave_after,
                free_rider: free_riders.binary_search(&i).is_ok(),
                class: i.checked_sub(1).and_then(|p| peer_classes.get(p).copied()),
                ..Host::new(role, addr, latency, (up, down), have, arrived_at)
            });
        }
        if sim.config.peers == 0 {
            sim.finished = true;
            return Ok(sim);
        }
        for i in 0..sim.hosts.len() {
            match sim.hosts[i].arrived_at {
                0 => sim.start_session(i),
                at => sim.push(at, Ev::Arrive { host: i }),
            }
        }
        sim.push(EXPIRE_EVERY.as_micros() as u64, Ev::Expire);
        for d in sim.config.disruptions.clone() {
            let at = u64::try_from(d.at.as_micros()).unwrap_or(u64::MAX / 4);
            sim.push(
                at,
                Ev::Disrupt {
                    host: d.host,
                    kind: d.kind,
                },
            );
        }
        Ok(sim)
    }

    /// Processes up to `max_events` events; returns whether the simulation is over (every
    /// peer complete, the time limit reached, or nothing left to happen).
    pub fn run_for(&mut self, max_events: u64) -> bool {
        for _ in 0..max_events {
            if self.finished {
                break;
            }
            self.step();
        }
        self.finished
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> SimReport {
        while !self.run_for(1 << 20) {}
        self.report()
    }

    /// Where the simulation is.
    pub fn progress(&self) -> Progress {
        Progress {
            now: Duration::from_micros(self.now),
            completed: self.completed,
            peers: self.config.peers,
            blocks: self.blocks,
            events: self.events,
            uploaded: self.hosts.iter().map(|h| h.uploaded).sum(),
        }
    }

    // ----- the loop -------------------------------------------------------------------------

    fn step(&mut self) {
        let net_at = self.net.next_due();
        let ev_at = self.queue.peek().map(|s| s.at);
        let at = match (net_at, ev_at) {
            (Some(n), Some(e)) => n.min(e),
            (Some(n), None) => n,
            (None, Some(e)) => e,
            (None, None) => {
                if self.stopped_at.is_some() {
                    self.give_up_close();
                } else {
                    self.stop();
                }
                return;
            }
        };
        self.sample_until(at.min(self.limit));
        if at > self.limit {
            self.now = self.limit.max(self.now);
            if self.stopped_at.is_some() {
                self.give_up_close();
            } else {
                self.stop();
            }
            return;
        }
        self.now = at;
        self.events += 1;
        if net_at == Some(at) {
            if let Some(arrival) = self.net.finish_due(at) {
                self.hosts[arrival.from].uploaded += arrival.payload;
                if arrival.payload > 0 {
                    self.blocks += 1;
                }
                let to = arrival.dest.host;
                let when = at + self.one_way(arrival.from, to);
                let (from, conn, accepted) =
                    (arrival.from, ConnId(arrival.src_conn), arrival.accepted);
                self.push(
                    when,
                    Ev::Deliver {
                        dest: arrival.dest,
                        chunks: arrival.chunks,
                        payload: arrival.payload,
                    },
                );
                // The unit left the sender's link: its socket accepted the bytes.
                if self.sent(from, conn, accepted) {
                    self.drain(from);
                }
            }
            return;
        }
        if let Some(s) = self.queue.pop() {
            let ev = self.pending[s.slot as usize].take();
            self.free_events.push(s.slot);
            if let Some(ev) = ev {
                self.dispatch(ev);
            }
        }
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        let slot = match self.free_events.pop() {
            Some(slot) => {
                self.pending[slot as usize] = Some(ev);
                slot
            }
            None => {
                self.pending.push(Some(ev));
                // Never 2^32 events pending at once (as for `FlowId`'s slot).
                u32::try_from(self.pending.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            slot,
        });
    }

    /// What happens to a datagram sent now: `None` if it is lost, else the extra delay
    /// (microseconds) it takes on top of the latency ([`super::Loss`]). Without loss or
    /// jitter nothing is drawn, so such runs are unchanged.
    fn datagram_fate(&mut self) -> Option<u64> {
        let loss = self.config.loss;
        if loss.packet_loss > 0.0 && self.loss_rng.f64() < loss.packet_loss {
            return None;
        }
        let jitter = u64::try_from(loss.jitter.as_micros()).unwrap_or(u64::MAX / 4);
        Some(if jitter > 0 {
            self.loss_rng.u64(0..=jitter)
        } else {
            0
        })
    }

    fn one_way(&self, a: HostId, b: HostId) -> u64 {
        self.hosts[a].latency + self.hosts[b].latency
    }

    fn tracker_way(&self, h: HostId) -> u64 {
        self.hosts[h].latency + self.hosts[0].latency
    }

    fn host_at(&self, addr: SocketAddr) -> Option<HostId> {
        let IpAddr::V4(ip) = addr.ip() else {
            return None;
        };
        let index = u32::from(ip).checked_sub(FIRST_HOST)? as usize;
        (addr.port() == LISTEN_PORT && index < self.hosts.len()).then_some(index)
    }

    /// The session of `host`, while it is in the swarm.
    fn session_mut(&mut self, host: HostId) -> Option<&mut Session> {
        self.hosts[host].online.as_mut().map(|on| &mut on.session)
    }

    /// Whether `host` is in the swarm in this `incarnation`.
    fn is_live(&self, host: HostId, incarnation: u32) -> bool {
        let h = &self.hosts[host];
        h.incarnation == incarnation && h.online.is_some()
    }

    fn violation(&mut self, what: String) {
        self.violation_count += 1;
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations
                .push(format!("at {:.3} s: {what}", self.now as f64 / 1e6));
        }
    }

    fn dispatch(&mut self, ev: Ev) {
        let now = Instant::from_micros(self.now);
        match ev {
            Ev::Timer { host, generation } => {
                let h = &mut self.hosts[host];
                if h.timer_generation != generation {
                    return;
                }
                h.timer_at = None;
                if h.online.is_none() {
                    return;
                }
                self.lab_timer_fired(host);
                self.report_progress(host);
                if let Some(session) = self.session_mut(host) {
                    session.handle_timeout(now);
                }
                self.drain(host);
            }
            Ev::Accept {
                host,
                from,
                from_incarnation,
                torrent,
                dial,
            } => self.accept(host, (from, from_incarnation), torrent, dial),
            Ev::Opened {
                host,
                incarnation,
                torrent,
                remote,
                remote_incarnation,
                remote_conn,
                dial,
            } => self.opened(
                (host, incarnation),
                torrent,
                dial,
                (remote, remote_incarnation, remote_conn),
            ),
            Ev::Refused {
                host,
                incarnation,
                torrent,
                addr,
                dial,
            } => {
                if !self.is_live(host, incarnation) || !self.take_dial(host, torrent, addr, dial) {
                    return;
                }
                if let Some(session) = self.session_mut(host) {
                    session.handle_connect_error(torrent, addr, ConnectFailure::Refused, now);
                }
                self.drain(host);
            }
            Ev::Deliver {
                dest,
                chunks,
                payload,
            } => self.deliver(dest, chunks, payload),
            Ev::Closed {
                host,
                incarnation,
                conn,
            } => {
                if !self.is_live(host, incarnation) {
                    return;
                }
                let link = self.hosts[host]
                    .online
                    .as_mut()
                    .and_then(|on| on.links.remove(&conn));
                if let Some(link) = link {
                    if let Some(f) = link.out {
                        self.net.close_flow(f, self.now);
                    }
                    if let Some(session) = self.session_mut(host) {
                        session.connection_closed(conn, now);
                    }
                    self.drain(host);
                }
            }
            Ev::TrackerRequest {
                host,
                incarnation,
                torrent,
                url,
                request,
            } => {
                self.tracker_announces += 1;
                let source = self.hosts[host].ephemeral();
                let response = match self.tracker.handle_http_request(&request, source, now) {
                    HttpOutcome::Respond(bytes) => bytes,
                    HttpOutcome::NeedMore => Vec::new(),
                };
                let at = self.now + self.tracker_way(host);
                self.push(
                    at,
                    Ev::TrackerReply {
                        host,
                        incarnation,
                        torrent,
                        url,
                        response,
                    },
                );
            }
            Ev::Datagram { host, from, bytes } => {
                // UDP: a datagram for a host that is away is lost.
                self.datagrams += 1;
                if let Some(session) = self.session_mut(host) {
                    session.handle_datagram(from, &bytes, now);
                }
                self.drain(host);
            }
            Ev::TrackerReply {
                host,
                incarnation,
                torrent,
                url,
                response,
            } => {
                if !self.is_live(host, incarnation) {
                    return;
                }
                let mut reader = HttpResponseReader::new();
                let body = match reader.push(&response) {
                    Ok(Some(body)) => Ok(body),
                    Ok(None) => reader.finish(),
                    Err(e) => Err(e),
                };
                let result = body
                    .and_then(|b| parse_announce_response(&b))
                    .map_err(unchoke_core::tracker::TrackerFailure::from);
                if let Some(session) = self.session_mut(host) {
                    session.announce_done(torrent, &url, result, now);
                }
                self.drain(host);
            }
            // Once the swarm stopped, nobody comes or goes any more: the close runs alone.
            Ev::Leave { .. } | Ev::Rejoin { .. } | Ev::Arrive { .. } | Ev::Disrupt { .. }
                if self.stopped_at.is_some() => {}
            Ev::Arrive { host } => {
                if self.hosts[host].online.is_none() {
                    self.start_session(host);
                }
            }
            Ev::Leave { host, return_after } => self.leave(host, return_after),
            Ev::Rejoin { host } => self.rejoin(host),
            Ev::Disrupt { host, kind } => match kind {
                DisruptionKind::Leave => self.leave(host, None),
                DisruptionKind::Rejoin => self.rejoin(host),
                DisruptionKind::Corrupt => {
                    self.hosts[host].corrupt = true;
                    self.corruption = true;
                }
                DisruptionKind::Stall(d) => {
                    self.net.set_capacity(host, 0.0, 0.0, self.now);
                    let at = self.now + u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 4);
                    self.push(at, Ev::Recover { host });
                }
                DisruptionKind::StopReading(d) => {
                    let up = self.hosts[host].up;
                    self.net.set_capacity(host, up, 0.0, self.now);
                    let at = self.now + u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 4);
                    self.push(at, Ev::Recover { host });
                }
                DisruptionKind::BlackHole(d) => {
                    let until = self.now + u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 4);
                    let h = &mut self.hosts[host];
                    h.black_hole_until = Some(h.black_hole_until.map_or(until, |u| u.max(until)));
                }
            },
            Ev::Recover { host } => {
                let (up, down) = (self.hosts[host].up, self.hosts[host].down);
                self.net.set_capacity(host, up, down, self.now);
            }
            Ev::Expire => {
                self.tracker.expire(now);
                let at = self.now + EXPIRE_EVERY.as_micros() as u64;
                self.push(at, Ev::Expire);
            }
            Ev::Stop => self.stop(),
            Ev::Lab(ev) => self.lab_dispatch(ev),
        }
    }

    // ----- hosts joining and leaving ---------------------------------------------------------

    fn start_session(&mut self, host: HostId) {
        let now = Instant::from_micros(self.now);
        let server = self.hosts[0].addr;
        let h = &mut self.hosts[host];
        let mut config = if h.free_rider {
            self.config.free_rider_session()
        } else {
            self.config.session.clone()
        };
        config.listen_port = LISTEN_PORT;
        // As the real runtimes do: report what sockets accept, and the peer events.
        config.send_accounting = true;
        config.peer_events = true;
        if self.config.dht {
            // BEP 42 enforcement stays on (the default): hosts live in 127/8, a local
            // network to BEP 42, so every random id is valid and votes on our address
            // (127.x) never change an id — runs are as they were before BEP 42.
            config.dht = Some(unchoke_core::dht::DhtConfig::default());
        }
        let seed = mix(self.config.seed, host as u64, u64::from(h.incarnation));
        let mut session = Session::new(config, seed, now);
        session.add_own_address(h.addr);
        match session.add_torrent(&self.payload.metainfo, Some(h.have.clone()), now) {
            Ok(torrent) => {
                if self.config.dht {
                    // No tracker: every host joins the DHT through the server's node.
                    session.set_trackers(torrent, Vec::new(), now);
                    if h.addr != server {
                        session.dht_bootstrap(&[server], now);
                    }
                }
                h.online = Some(Online {
                    session,
                    links: ConnMap::default(),
                    dials: BTreeMap::new(),
                });
            }
            Err(e) => {
                self.violation(format!("host {host} cannot add the torrent: {e}"));
                return;
            }
        }
        if h.role == Role::Peer {
            for p in h.have.ones() {
                self.availability[p as usize] += 1;
                if self.availability[p as usize] == 1 {
                    self.covered += 1;
                }
            }
        }
        if let Some(session) = self.session_mut(host) {
            session.handle_timeout(now);
        }
        self.drain(host);
    }

    fn rejoin(&mut self, host: HostId) {
        if self.hosts[host].online.is_some() || self.stopped_at.is_some() {
            return;
        }
        self.rejoins += 1;
        self.start_session(host);
    }

    /// A host leaves: its session closes (the tracker hears `stopped`, the final saves
    /// go out, its peers are disconnected) and it is gone once the close has drained.
    fn leave(&mut self, host: HostId, return_after: Option<u64>) {
        if self.hosts[host].online.is_none() || self.hosts[host].closing.is_some() {
            return;
        }
        self.leaves += 1;
        self.begin_close(host, Departure::Leave(return_after));
    }

    /// The end of a departure, once the host's close has drained: its connections go,
    /// and it comes back later if it is to.
    fn depart(&mut self, host: HostId, return_after: Option<u64>) {
        let Some(on) = self.hosts[host].online.take() else {
            return;
        };
        // In connection order: each close is an event, and events keep their order.
        let mut links: Vec<(ConnId, LinkEnd)> = on.links.into_iter().collect();
        links.sort_unstable_by_key(|&(c, _)| c);
        for (_, link) in links {
            self.unlink(host, link);
        }
        let h = &mut self.hosts[host];
        h.incarnation += 1;
        h.timer_at = None;
        h.timer_generation += 1;
        h.closing = None;
        if h.role == Role::Peer {
            for p in h.have.ones() {
                self.availability[p as usize] -= 1;
                if self.availability[p as usize] == 0 {
                    self.covered -= 1;
                }
            }
        }
        if let Some(away) = return_after {
            self.push(self.now + away, Ev::Rejoin { host });
        }
    }
}

/// Derives one session's seed from the simulation's, the host and its incarnation.
fn mix(seed: u64, host: u64, incarnation: u64) -> u64 {
    let mut x = seed ^ host.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (incarnation << 48);
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past the default tracker's 5,000 peers per swarm, every host still gets into the
    /// study's tracker (with the default, the peers past it were turned away for good).
    #[test]
    fn the_study_tracker_takes_every_peer_past_the_default_cap() {
        let peers = ServerConfig::default().max_peers_per_swarm + 10;
        let config = SimConfig::study(peers, 1024 * 1024);
        let mut sim = Simulation::new(config).expect("a valid study");
        // Every host announces at time zero: its announce reaches the tracker within a
        // virtual second.
        while sim.now < 1_000_000 && sim.tracker.peer_count() < peers + 1 {
            assert!(!sim.run_for(1_000), "the run ended before every announce");
        }
        assert_eq!(sim.tracker.peer_count(), peers + 1);
    }
}
