//! Carrying out a session's actions, as a driver would, and watching its events.

use bytes::BytesMut;

use super::{Ev, PACED_MIN, Role, Simulation};
use crate::network::{Chunks, HostId, Unit};
use unchoke_core::session::{
    Action, ConnId, ConnectFailure, DisconnectReason, DiskError, DiskErrorKind, Event, PeerGone,
};
use unchoke_core::time::Instant;
use unchoke_core::tracker::http::{announce_url, request_bytes};

impl Simulation {
    /// Carries out every action `host`'s session has queued, then re-arms its timer.
    pub(super) fn drain(&mut self, host: HostId) {
        while let Some(action) = self.hosts[host]
            .online
            .as_mut()
            .and_then(|on| on.session.poll_action())
        {
            self.act(host, action);
        }
        self.rearm(host);
        self.check_drained(host);
    }

    pub(super) fn rearm(&mut self, host: HostId) {
        let now = self.now;
        let Some(wanted) = self.hosts[host]
            .online
            .as_ref()
            .and_then(|on| on.session.poll_timeout())
        else {
            return;
        };
        // A deadline already passed means "now"; a millisecond later keeps a session that
        // keeps asking for the past from spinning the loop.
        let at = if self.lab_due_now(host, wanted.as_micros()) {
            now
        } else if wanted.as_micros() <= now {
            now + 1000
        } else {
            wanted.as_micros()
        };
        let h = &mut self.hosts[host];
        if h.timer_at == Some(at) {
            return;
        }
        h.timer_generation += 1;
        h.timer_at = Some(at);
        let generation = h.timer_generation;
        self.push(at, Ev::Timer { host, generation });
    }

    pub(super) fn act(&mut self, host: HostId, action: Action) {
        // In the lab, its disks, tracker and recorders see every action first. (Two
        // calls rather than one rebinding: the study's actions are not moved once more.)
        if self.lab.is_some() {
            if let Some(action) = self.lab_act(host, action) {
                self.carry_out(host, action);
            }
        } else {
            self.carry_out(host, action);
        }
    }

    /// Carries out one action, as a driver would.
    fn carry_out(&mut self, host: HostId, action: Action) {
        let now = Instant::from_micros(self.now);
        match action {
            Action::Send { conn, data } => {
                let paced = data.len() >= PACED_MIN;
                self.transmit(
                    host,
                    conn,
                    Unit {
                        chunks: Chunks::One(data),
                        paced,
                        payload: 0,
                    },
                );
            }
            Action::SendBlock { conn, header, data } => {
                let payload = data.len() as u64;
                self.transmit(
                    host,
                    conn,
                    Unit {
                        chunks: Chunks::Two(header, data),
                        paced: true,
                        payload,
                    },
                );
            }
            Action::Connect { torrent, addr } => {
                let incarnation = self.hosts[host].incarnation;
                self.next_dial += 1;
                let dial = self.next_dial;
                if let Some(on) = self.hosts[host].online.as_mut() {
                    on.dials.insert((torrent, addr), dial);
                }
                match self.host_at(addr).filter(|&t| t != host) {
                    Some(target) => {
                        let at = self.now + self.one_way(host, target);
                        self.push(
                            at,
                            Ev::Accept {
                                host: target,
                                from: host,
                                from_incarnation: incarnation,
                                torrent,
                                dial,
                            },
                        );
                    }
                    None => {
                        let at = self.now + 2 * self.hosts[host].latency;
                        self.push(
                            at,
                            Ev::Refused {
                                host,
                                incarnation,
                                torrent,
                                addr,
                                dial,
                            },
                        );
                    }
                }
            }
            // The session gave the dial up: forget it, so a late answer is dropped (and a
            // late accept closed) as a driver dropping its half-open socket would.
            Action::CancelConnect { torrent, addr } => {
                if let Some(on) = self.hosts[host].online.as_mut() {
                    if on.dials.remove(&(torrent, addr)).is_some() {
                        self.policies.cancelled_dials += 1;
                    }
                }
            }
            Action::Disconnect { conn, .. } => {
                let link = self.hosts[host]
                    .online
                    .as_mut()
                    .and_then(|on| on.links.remove(&conn));
                if let Some(link) = link {
                    self.unlink(host, link);
                }
            }
            Action::WriteBlock { torrent, piece, .. } => {
                if let Some(session) = self.session_mut(host) {
                    session.disk_write_done(torrent, piece, Ok(()), now);
                }
            }
            Action::ReadBlock { conn, block, .. } => {
                let data = if self.hosts[host].have.get(block.index) {
                    self.payload.block(block.index, block.begin, block.length)
                } else {
                    None
                };
                let result = match data {
                    Some(d) if self.hosts[host].corrupt && !d.is_empty() => {
                        let mut bad = BytesMut::from(&d[..]);
                        bad[0] ^= 0xff;
                        Ok(bad.freeze())
                    }
                    Some(d) => Ok(d),
                    None => {
                        self.violation(format!(
                            "host {host} asked to upload piece {} it does not hold",
                            block.index
                        ));
                        Err(DiskError::new(DiskErrorKind::NotFound, "block not stored"))
                    }
                };
                if let Some(session) = self.session_mut(host) {
                    session.disk_read_done(conn, block, result, now);
                }
            }
            Action::VerifyPiece {
                torrent,
                piece,
                expected,
                blocks,
            } => {
                let ok = self.payload.verifies(piece, &expected, &blocks);
                if ok {
                    self.piece_verified(host, piece);
                } else {
                    self.hash_failures += 1;
                    if !self.corruption {
                        self.violation(format!(
                            "host {host}: piece {piece} failed verification in a swarm without corruption"
                        ));
                    }
                }
                if let Some(session) = self.session_mut(host) {
                    session.piece_hashed(torrent, piece, ok, now);
                }
            }
            Action::Announce {
                torrent,
                url,
                request,
            } => match announce_url(&url, &request).and_then(|full| request_bytes(&full)) {
                Ok((_, bytes)) => {
                    let incarnation = self.hosts[host].incarnation;
                    let at = self.now + self.tracker_way(host);
                    self.push(
                        at,
                        Ev::TrackerRequest {
                            host,
                            incarnation,
                            torrent,
                            url,
                            request: bytes,
                        },
                    );
                }
                Err(e) => {
                    if let Some(on) = self.hosts[host].online.as_mut() {
                        on.session.announce_done(torrent, &url, Err(e.into()), now);
                    }
                }
            },
            Action::WebSeedRequest {
                torrent,
                seed,
                request,
                ..
            } => {
                // The simulated network has no web servers: every web seed fails at once.
                if let Some(on) = self.hosts[host].online.as_mut() {
                    let error = unchoke_core::session::WebSeedError {
                        range: 0,
                        failure: unchoke_core::session::WebSeedFailure::Connect(
                            "the simulator has no web servers".into(),
                        ),
                    };
                    on.session
                        .web_seed_failed(torrent, seed, request, error, now);
                }
            }
            Action::Resolve { host: name, port } => {
                // Simulated hosts are addressed by IP: no name resolves.
                if let Some(on) = self.hosts[host].online.as_mut() {
                    let error = unchoke_core::tracker::ResolveError::Failed(
                        "the simulator has no name service".into(),
                    );
                    on.session.handle_resolved(&name, port, Err(error), now);
                }
            }
            // The simulated network has no multicast; simulated sessions run without LSD
            // (`SessionConfig::lsd` is off by default), so nothing is lost here.
            Action::SendLsd { .. } => {}
            Action::SendDatagram { to, bytes } => {
                // Delivered after the two hosts' one-way latencies and any jitter, unless
                // lost on the way (`crate::Loss`); to nobody, dropped.
                if let Some(target) = self.host_at(to).filter(|&t| t != host) {
                    let Some(extra) = self.datagram_fate() else {
                        self.datagrams_lost += 1;
                        return;
                    };
                    let at = self.now + self.one_way(host, target) + extra;
                    let from = self.hosts[host].addr;
                    self.push(
                        at,
                        Ev::Datagram {
                            host: target,
                            from,
                            bytes,
                        },
                    );
                }
            }
            // The simulated disk cannot lose what it holds: every save succeeds at once.
            Action::SaveResume { torrent, .. } => {
                self.policies.saves += 1;
                if let Some(session) = self.session_mut(host) {
                    session.resume_saved(torrent, true, now);
                }
            }
            Action::Event(event) => self.on_event(host, event),
        }
    }

    pub(super) fn transmit(&mut self, host: HostId, conn: ConnId, unit: Unit) {
        let flow = self.hosts[host]
            .online
            .as_ref()
            .and_then(|on| on.links.get(&conn))
            .and_then(|l| l.out);
        let Some(flow) = flow else {
            return;
        };
        if let Some(arrival) = self.net.send(flow, unit, self.now) {
            // Small and on an idle link: the socket takes it at once.
            self.sent(host, conn, arrival.accepted);
            let at = self.now + self.one_way(host, arrival.dest.host);
            self.push(
                at,
                Ev::Deliver {
                    dest: arrival.dest,
                    chunks: arrival.chunks,
                    payload: arrival.payload,
                },
            );
        }
    }

    pub(super) fn piece_verified(&mut self, host: HostId, piece: u32) {
        let h = &mut self.hosts[host];
        if !h.have.set(piece) {
            self.violation(format!("host {host} verified piece {piece} a second time"));
            return;
        }
        if h.role == Role::Peer {
            self.availability[piece as usize] += 1;
            if self.availability[piece as usize] == 1 {
                self.covered += 1;
            }
            if h.leave_after.is_some_and(|k| h.have.count_ones() >= k) {
                h.leave_after = None;
                let away = self
                    .config
                    .churn
                    .as_ref()
                    .map(|c| u64::try_from(c.away.as_micros()).unwrap_or(u64::MAX / 4));
                self.push(
                    self.now,
                    Ev::Leave {
                        host,
                        return_after: away,
                    },
                );
            }
        }
        if self.config.server_departs
            && !self.server_left
            && self.covered == self.payload.piece_count()
        {
            self.server_left = true;
            self.push(
                self.now,
                Ev::Leave {
                    host: 0,
                    return_after: None,
                },
            );
        }
    }

    pub(super) fn on_event(&mut self, host: HostId, event: Event) {
        match event {
            Event::TorrentComplete { .. } => {
                let h = &mut self.hosts[host];
                if h.role != Role::Peer || h.completed_at.is_some() {
                    return;
                }
                if !h.have.is_full() {
                    self.violation(format!("host {host} says complete without every piece"));
                    return;
                }
                h.completed_at = Some(self.now);
                self.completed += 1;
                if self.completed == self.config.peers {
                    self.push(self.now, Ev::Stop);
                } else if let Some(seed_time) = self.config.seed_time {
                    // It seeds for a while, then leaves for good (the Stop above comes
                    // first for the last one, so the final close is the usual one).
                    let at =
                        self.now + u64::try_from(seed_time.as_micros()).unwrap_or(u64::MAX / 4);
                    self.push(
                        at,
                        Ev::Leave {
                            host,
                            return_after: None,
                        },
                    );
                }
            }
            Event::PeerBanned { addr, .. } => {
                self.bans += 1;
                if !self.corruption {
                    self.violation(format!("host {host} banned {addr} without corruption"));
                }
            }
            Event::PeerConnected { .. } => self.policies.peer_connected += 1,
            Event::PeerDisconnected { reason, .. } => {
                self.policies.peer_disconnected += 1;
                if reason == PeerGone::Closed(DisconnectReason::SlowReader) {
                    self.policies.slow_reader_drops += 1;
                }
            }
            Event::ConnectFailed { reason, .. } => {
                self.policies.connect_failed += 1;
                if matches!(reason, ConnectFailure::TimedOut(_)) {
                    self.policies.connect_timeouts += 1;
                }
            }
            Event::StorageError { piece, error, .. } => {
                self.violation(format!("host {host} storage error on {piece}: {error}"));
            }
            Event::ChokeRound {
                regular,
                optimistic,
                ..
            } => {
                let slots = self.config.session.choker.regular_slots;
                if regular.len() > slots || optimistic.is_some_and(|o| regular.contains(&o)) {
                    self.violation(format!(
                        "host {host} unchoked {} regular peers (limit {slots})",
                        regular.len()
                    ));
                }
            }
            _ => {}
        }
    }
}
