//! The lab's side of the event loop: hosts a test adds one by one, their recorders and
//! the determinism fingerprint ([`crate::lab::Swarm`] is the public face; the emulated
//! disks are in `disk`, the sniffer in `sniff`).
//!
//! A lab host's actions pass through [`Simulation::lab_act`] before the study's handling:
//! disk actions, saves, announces and events are answered by the lab; sends, dials and
//! closes go on to the same network and connection code the study uses, so there is one
//! event loop for both.

mod disk;
mod sniff;

use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::{FIRST_HOST, Host, LISTEN_PORT, Online, Role, Simulation};
use crate::lab::{Behaviour, SaveAnswer};
use crate::network::HostId;
use unchoke_core::bitfield::Bitfield;
use unchoke_core::session::{Action, ConnId, Event, Session, TorrentId};
use unchoke_core::time::Instant;
use unchoke_core::tracker::server::TrackerServer;
use unchoke_core::tracker::{AnnounceEvent, AnnounceRequest, AnnounceResponse, TrackerFailure};

use disk::Answer;
pub(crate) use disk::LabEv;
use sniff::Sniffer;

/// One lab host's disk and record.
#[derive(Debug)]
pub(crate) struct LabNode {
    pub(crate) torrent: TorrentId,
    pub(crate) disk: Vec<u8>,
    pub(crate) behaviour: Behaviour,
    pub(crate) events: Vec<(Instant, Event)>,
    /// A slow disk: writes finish at this many bytes per second, in order.
    pub(crate) disk_rate: Option<f64>,
    /// A filling disk: bytes it still takes.
    pub(crate) disk_space: Option<usize>,
    /// When the slow disk is free again (microseconds).
    pub(crate) disk_free_at: u64,
    /// Bytes of writes the slow disk has not finished.
    pub(crate) unwritten: usize,
    /// Its session's seed (a rejoin draws a new one from it).
    pub(crate) seed: u64,
    /// The pieces it had verified when it left (for its rejoin).
    pub(crate) kept: Option<Bitfield>,
    /// When its timer last ran (microseconds).
    pub(crate) fired_at: Option<u64>,
}

/// Everything the lab adds to a simulation.
#[derive(Debug)]
pub(crate) struct Lab {
    pub(crate) piece_length: usize,
    /// Bytes per second every flow carries at most (the old per-link bandwidth).
    pub(crate) link_rate: f64,
    pub(crate) nodes: Vec<LabNode>,
    pub(crate) sniffer: Sniffer,
    pub(crate) disconnects: Vec<(Instant, usize, String)>,
    pub(crate) announces: Vec<(Instant, usize, String, AnnounceRequest)>,
    pub(crate) saves: Vec<(Instant, usize, TorrentId, Bitfield)>,
    pub(crate) save_answer: SaveAnswer,
    pub(crate) held_saves: Vec<(HostId, u32, TorrentId)>,
    pub(crate) tracker: Option<TrackerServer>,
    pub(crate) auto_metadata_ready: bool,
    pub(crate) unreachable_hangs: bool,
    digest: DefaultHasher,
    pub(crate) action_count: u64,
}

impl Lab {
    pub(crate) fn new(piece_length: usize, link_rate: f64) -> Lab {
        Lab {
            piece_length,
            link_rate,
            nodes: Vec::new(),
            sniffer: Sniffer::default(),
            disconnects: Vec::new(),
            announces: Vec::new(),
            saves: Vec::new(),
            save_answer: SaveAnswer::Ok,
            held_saves: Vec::new(),
            tracker: None,
            auto_metadata_ready: true,
            unreachable_hangs: false,
            digest: DefaultHasher::new(),
            action_count: 0,
        }
    }

    /// The determinism fingerprint: actions carried out and a hash over them and their times.
    pub(crate) fn fingerprint(&self) -> (u64, u64) {
        (self.action_count, self.digest.finish())
    }

    fn digest(&mut self, now: u64, host: HostId, action: &Action) {
        self.action_count += 1;
        now.hash(&mut self.digest);
        host.hash(&mut self.digest);
        match action {
            Action::Send { conn, data } => (0u8, conn, &data[..]).hash(&mut self.digest),
            Action::SendBlock { conn, header, data } => {
                (1u8, conn, &header[..], &data[..]).hash(&mut self.digest)
            }
            other => format!("{other:?}").hash(&mut self.digest),
        }
    }
}

impl Simulation {
    /// A simulation with no hosts yet, for the lab: every link carries `link_rate` bytes
    /// per second each way, messages take `latency` microseconds one way.
    pub(crate) fn lab(piece_length: usize, link_rate: f64, latency: u64) -> Simulation {
        let mut config = crate::SimConfig::study(0, 16 * 1024);
        config.piece_length = 16 * 1024;
        config.latency = std::time::Duration::from_micros(latency);
        let mut sim = match Simulation::new(config) {
            Ok(sim) => sim,
            // The configuration above is fixed and valid.
            Err(e) => unreachable!("the lab's base configuration is invalid: {e}"),
        };
        // The study's server is not part of a lab: hosts come from the test.
        sim.hosts.clear();
        sim.net = crate::network::Network::default();
        sim.limit = u64::MAX;
        sim.finished = false;
        sim.lab = Some(Box::new(Lab::new(piece_length, link_rate)));
        sim
    }

    /// The lab's state (only lab simulations are handed to [`crate::lab::Swarm`]).
    pub(crate) fn lab_ref(&self) -> &Lab {
        match self.lab.as_deref() {
            Some(lab) => lab,
            None => unreachable!("a lab simulation has a lab"),
        }
    }

    /// The lab's state, mutably.
    pub(crate) fn lab_mut(&mut self) -> &mut Lab {
        match self.lab.as_deref_mut() {
            Some(lab) => lab,
            None => unreachable!("a lab simulation has a lab"),
        }
    }

    /// Adds a host running `session` (its torrent `torrent`, `have` verified) with `disk`.
    pub(crate) fn lab_add_host(
        &mut self,
        session: Session,
        node: LabNode,
        have: Bitfield,
    ) -> HostId {
        let index = self.hosts.len();
        let id = self.net.add_host(f64::INFINITY, f64::INFINITY);
        debug_assert_eq!(id, index);
        let rate = self.lab_ref().link_rate;
        self.net.set_in_cap(id, rate, self.now);
        let latency = u64::try_from(self.config.latency.as_micros()).unwrap_or(0);
        // Outside the study's bookkeeping (availability, completions), as the server is.
        let addr = lab_addr(index);
        let host = Host::new(
            Role::Server,
            addr,
            latency,
            (f64::INFINITY, f64::INFINITY),
            have,
            self.now,
        );
        self.hosts.push(Host {
            online: Some(Online {
                session,
                links: super::ConnMap::default(),
                dials: BTreeMap::new(),
            }),
            ..host
        });
        self.lab_mut().nodes.push(node);
        index
    }

    /// What the checks found wrong so far (the first [`super::MAX_VIOLATIONS`]).
    pub(crate) fn violations(&self) -> &[String] {
        &self.violations
    }

    /// The current time in microseconds.
    pub(crate) fn lab_now(&self) -> u64 {
        self.now
    }

    /// Host `host`'s session, while it is online.
    pub(crate) fn lab_session(&self, host: HostId) -> Option<&Session> {
        self.hosts.get(host)?.online.as_ref().map(|on| &on.session)
    }

    /// Host `host`'s session, mutably, while it is online.
    pub(crate) fn lab_session_mut(&mut self, host: HostId) -> Option<&mut Session> {
        self.hosts
            .get_mut(host)?
            .online
            .as_mut()
            .map(|on| &mut on.session)
    }

    /// Host `host`'s address.
    pub(crate) fn lab_addr(&self, host: HostId) -> SocketAddr {
        lab_addr(host)
    }

    /// Number of hosts.
    pub(crate) fn lab_hosts(&self) -> usize {
        self.hosts.len()
    }

    /// `host`'s connection to `other`, if they are linked (both ends open).
    pub(crate) fn lab_conn_to(&self, host: HostId, other: HostId) -> Option<ConnId> {
        let on = self.hosts.get(host)?.online.as_ref()?;
        // The lowest such connection, as a walk in connection order would find first.
        on.links
            .iter()
            .filter(|(_, l)| l.remote.is_some_and(|r| r.0 == other) && l.out.is_some())
            .map(|(&c, _)| c)
            .min()
    }

    /// Carries out what every online host's session queued (after a test called a
    /// session directly) and re-arms its timer.
    pub(crate) fn lab_drain_all(&mut self) {
        for host in 0..self.hosts.len() {
            if self.hosts[host].online.is_some() {
                self.drain(host);
            }
        }
    }

    /// Processes the next event if it is due by `end` (microseconds); otherwise moves the
    /// clock to `end`. Returns whether an event ran. The same `step` as the study.
    pub(crate) fn lab_step(&mut self, end: u64) -> bool {
        let net_at = self.net.next_due();
        let ev_at = self.queue.peek().map(|s| s.at);
        let next = match (net_at, ev_at) {
            (Some(n), Some(e)) => Some(n.min(e)),
            (n, e) => n.or(e),
        };
        match next {
            Some(at) if at <= end => {
                self.step();
                true
            }
            _ => {
                self.now = self.now.max(end);
                false
            }
        }
    }

    /// Takes `host` off the network at once: its connections close (its peers hear of it
    /// after the latency) and its session is dropped; its disk stays for a rejoin.
    pub(crate) fn lab_leave(&mut self, host: HostId) {
        let now = Instant::from_micros(self.now);
        let Some(on) = self.hosts[host].online.as_ref() else {
            return;
        };
        let torrent = self.lab_ref().nodes[host].torrent;
        let kept = on.session.have(torrent).cloned();
        let mut ends: Vec<((HostId, ConnId), (HostId, ConnId))> = on
            .links
            .iter()
            .filter_map(|(&c, l)| l.remote.map(|r| ((host, c), (r.0, r.2))))
            .collect();
        // In connection order, whatever the map's.
        ends.sort_unstable();
        let lab = self.lab_mut();
        for (a, b) in ends {
            lab.sniffer.close(now, a, b);
        }
        let node = &mut lab.nodes[host];
        node.kept = kept;
        node.unwritten = 0;
        self.depart(host, None);
    }

    /// Brings `host` back with `session` (its torrent `torrent`).
    pub(crate) fn lab_rejoin(&mut self, host: HostId, session: Session, torrent: TorrentId) {
        self.lab_mut().nodes[host].torrent = torrent;
        self.hosts[host].online = Some(Online {
            session,
            links: super::ConnMap::default(),
            dials: BTreeMap::new(),
        });
    }

    /// Makes `host` stop reading: flows into it carry nothing, so its senders see nothing
    /// accepted.
    /// Sets the loss and jitter every datagram meets from now on (`crate::Loss`).
    pub(crate) fn lab_set_datagram_loss(&mut self, loss: crate::Loss) {
        self.config.loss = loss;
    }

    pub(crate) fn lab_stop_reading(&mut self, host: HostId) {
        self.net.set_capacity(host, f64::INFINITY, 0.0, self.now);
    }

    /// Caps every flow into `host` at `rate` bytes per second (a slow reader).
    pub(crate) fn lab_set_read_rate(&mut self, host: HostId, rate: f64) {
        let cap = rate.min(self.lab_ref().link_rate);
        self.net.set_in_cap(host, cap, self.now);
    }

    /// In the lab, a deadline of exactly now runs now, unless `host`'s timer already ran
    /// at this instant (then a millisecond later, so a session cannot spin the loop): a
    /// round due at 25 s runs at 25 s, before anything a test does at 25 s.
    pub(super) fn lab_due_now(&self, host: HostId, wanted: u64) -> bool {
        self.lab.as_deref().is_some_and(|lab| {
            wanted == self.now
                && lab
                    .nodes
                    .get(host)
                    .is_some_and(|n| n.fired_at != Some(self.now))
        })
    }

    /// Notes that `host`'s timer ran now (see [`Simulation::lab_due_now`]).
    pub(super) fn lab_timer_fired(&mut self, host: HostId) {
        let now = self.now;
        if let Some(node) = self
            .lab
            .as_deref_mut()
            .and_then(|lab| lab.nodes.get_mut(host))
        {
            node.fired_at = Some(now);
        }
    }

    /// The lab's handling of one action of `host`: `None` when it was carried out here,
    /// the action back when the study's handling (network, dials) is to carry it out.
    pub(super) fn lab_act(&mut self, host: HostId, action: Action) -> Option<Action> {
        let now = Instant::from_micros(self.now);
        let at_micros = self.now;
        self.lab_mut().digest(at_micros, host, &action);
        match action {
            Action::Send { conn, ref data } => {
                self.lab_sniff(host, conn, &[data]);
                Some(action)
            }
            Action::SendBlock {
                conn,
                ref header,
                ref data,
            } => {
                self.lab_sniff(host, conn, &[header, data]);
                Some(action)
            }
            Action::Connect { addr, .. }
                if self.lab_ref().unreachable_hangs
                    && self.host_at(addr).filter(|&t| t != host).is_none() =>
            {
                // A black-holed address: no answer; the session's connect time-out ends it.
                None
            }
            Action::Disconnect { conn, ref reason } => {
                let remote = self.hosts[host]
                    .online
                    .as_ref()
                    .and_then(|on| on.links.get(&conn))
                    .and_then(|l| l.remote);
                let lab = self.lab_mut();
                lab.disconnects.push((now, host, reason.to_string()));
                if let Some(r) = remote {
                    lab.sniffer.close(now, (host, conn), (r.0, r.2));
                }
                Some(action)
            }
            Action::WriteBlock {
                torrent,
                piece,
                offset,
                data,
            } => {
                self.lab_write(host, (torrent, piece, offset), data);
                None
            }
            Action::ReadBlock { conn, block, .. } => {
                self.lab_read(host, conn, block);
                None
            }
            Action::VerifyPiece {
                torrent,
                piece,
                expected,
                blocks,
            } => {
                self.lab_verify(host, (torrent, piece), &expected, &blocks);
                None
            }
            Action::SaveResume { torrent, have, .. } => {
                self.lab_mut().saves.push((now, host, torrent, have));
                self.lab_save(host, torrent);
                None
            }
            Action::Announce {
                torrent,
                url,
                request,
            } => {
                let source = lab_addr(host);
                let lab = self.lab.as_deref_mut()?;
                lab.announces
                    .push((now, host, url.clone(), request.clone()));
                let server = lab.tracker.as_mut()?;
                let result = server
                    .announce(&request, source, now)
                    .map(|reply| AnnounceResponse {
                        interval: reply.interval,
                        min_interval: Some(reply.min_interval),
                        complete: Some(reply.complete),
                        incomplete: Some(reply.incomplete),
                        peers: reply.peers.iter().map(|p| p.addr).collect(),
                        ..AnnounceResponse::default()
                    })
                    .map_err(|e| TrackerFailure::Refused(e.to_string()));
                // A `stopped` announce's answer is never awaited (the old harness's rule).
                if request.event != AnnounceEvent::Stopped {
                    self.lab_answer(
                        host,
                        Answer::Announced {
                            torrent,
                            url,
                            result,
                        },
                    );
                }
                None
            }
            Action::Event(event) => {
                if let Event::MetadataReceived { torrent, .. } = &event {
                    if self.lab_ref().auto_metadata_ready {
                        // As a driver does once it created the storage (nothing on disk).
                        let torrent = *torrent;
                        self.lab_answer(host, Answer::MetadataReady { torrent });
                    }
                }
                self.lab_mut().nodes[host].events.push((now, event));
                None
            }
            other => Some(other),
        }
    }
}

/// Lab host `index`'s listening address.
pub(crate) fn lab_addr(index: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(FIRST_HOST + index as u32)),
        LISTEN_PORT,
    )
}
