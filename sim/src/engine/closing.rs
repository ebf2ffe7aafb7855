//! The driver's side of the rules the sessions own: what sockets accepted
//! (`handle_sent`), dials answered or given up, and closing a session until it drains.

use super::{CLOSE_GRACE, Closing, Departure, Simulation};
use crate::network::HostId;
use std::net::SocketAddr;
use unchoke_core::session::{ConnId, TorrentId};
use unchoke_core::time::Instant;

impl Simulation {
    /// Tells `host`'s session that its socket for `conn` accepted `bytes`, as a driver
    /// does after a write; returns whether it was told (the caller then drains it).
    pub(super) fn sent(&mut self, host: HostId, conn: ConnId, bytes: u64) -> bool {
        let now = Instant::from_micros(self.now);
        let Some(on) = self.hosts[host].online.as_mut() else {
            return false;
        };
        if bytes == 0 || !on.links.contains_key(&conn) {
            return false;
        }
        on.session
            .handle_sent(conn, usize::try_from(bytes).unwrap_or(usize::MAX), now);
        self.policies.sent_reports += 1;
        self.policies.sent_bytes += bytes;
        true
    }

    /// Reports, before `host`'s timer runs, what its sockets accepted of the units still
    /// flowing: a slow link moves bytes between whole blocks, as a kernel's send buffer
    /// drains, so a peer that reads slowly is not mistaken for one that stopped.
    pub(super) fn report_progress(&mut self, host: HostId) {
        let now = Instant::from_micros(self.now);
        let Some(on) = self.hosts[host].online.as_mut() else {
            return;
        };
        let mut progress = std::mem::take(&mut self.progress_scratch);
        progress.clear();
        self.net.progress_from(host, self.now, &mut progress);
        for &(conn, bytes) in &progress {
            let conn = ConnId(conn);
            // Only a connection whose link still owns its flow counts, as in `sent`.
            if on.links.get(&conn).is_none_or(|l| l.out.is_none()) {
                continue;
            }
            on.session
                .handle_sent(conn, usize::try_from(bytes).unwrap_or(usize::MAX), now);
            self.policies.sent_reports += 1;
            self.policies.sent_bytes += bytes;
        }
        self.progress_scratch = progress;
    }

    /// Takes the dial `dial` of `host` for `(torrent, addr)` off its pending list;
    /// `false` when the session gave it up already (or dialled again since).
    pub(super) fn take_dial(
        &mut self,
        host: HostId,
        torrent: TorrentId,
        addr: SocketAddr,
        dial: u64,
    ) -> bool {
        let Some(on) = self.hosts[host].online.as_mut() else {
            return false;
        };
        if on.dials.get(&(torrent, addr)) == Some(&dial) {
            on.dials.remove(&(torrent, addr));
            true
        } else {
            false
        }
    }

    /// Closes `host`'s session; the host is driven as before until it drains.
    pub(super) fn begin_close(&mut self, host: HostId, departure: Departure) {
        let now = Instant::from_micros(self.now);
        let h = &mut self.hosts[host];
        let Some(on) = h.online.as_mut() else {
            return;
        };
        if h.closing.is_some() {
            return;
        }
        h.closing = Some(Closing {
            since: self.now,
            departure,
            done: false,
        });
        on.session.close(now);
        self.policies.closes += 1;
        if departure == Departure::End {
            self.undrained += 1;
        }
        self.drain(host);
    }

    /// After `host`'s actions were carried out: whether its closing session has drained,
    /// and if so, what follows (the departure, or the end of the simulation).
    pub(super) fn check_drained(&mut self, host: HostId) {
        let h = &mut self.hosts[host];
        let (Some(on), Some(closing)) = (h.online.as_ref(), h.closing.as_mut()) else {
            return;
        };
        if closing.done || !on.session.is_drained() {
            return;
        }
        closing.done = true;
        let (since, departure) = (closing.since, closing.departure);
        let took = self.now.saturating_sub(since);
        let deadline =
            u64::try_from(self.config.session.close_timeout.as_micros()).unwrap_or(u64::MAX / 4);
        self.drain_times.push(took);
        self.policies.longest_drain = self
            .policies
            .longest_drain
            .max(std::time::Duration::from_micros(took));
        if took < deadline {
            self.policies.drained += 1;
        } else {
            // The session gave up waiting: something the simulator owes it never came.
            self.violation(format!(
                "host {host}: close cut short by close_timeout after {:.3} s",
                took as f64 / 1e6
            ));
        }
        match departure {
            Departure::Leave(return_after) => self.depart(host, return_after),
            Departure::End => {
                self.undrained = self.undrained.saturating_sub(1);
                if self.undrained == 0 {
                    self.finished = true;
                }
            }
        }
    }

    /// The swarm stops (every peer complete, the time limit, or nothing left to happen):
    /// every session still in it closes, and the simulation ends once they have drained.
    pub(super) fn stop(&mut self) {
        if self.stopped_at.is_some() {
            return;
        }
        self.stopped_at = Some(self.now);
        let timeout =
            u64::try_from(self.config.session.close_timeout.as_micros()).unwrap_or(u64::MAX / 4);
        self.limit = self.now.saturating_add(timeout).saturating_add(CLOSE_GRACE);
        for host in 0..self.hosts.len() {
            if self.hosts[host].online.is_some() && self.hosts[host].closing.is_none() {
                self.begin_close(host, Departure::End);
            } else if self.hosts[host]
                .closing
                .as_ref()
                .is_some_and(|c| !c.done && c.departure != Departure::End)
            {
                // A departure under way when the swarm stopped: it now ends the run too.
                if let Some(c) = self.hosts[host].closing.as_mut() {
                    c.departure = Departure::End;
                }
                self.undrained += 1;
            }
        }
        if self.undrained == 0 {
            self.finished = true;
        }
    }

    /// The final close ran past every session's deadline: the hosts still not drained are
    /// violations, and the simulation ends.
    pub(super) fn give_up_close(&mut self) {
        let stuck: Vec<HostId> = (0..self.hosts.len())
            .filter(|&h| {
                self.hosts[h].online.is_some()
                    && self.hosts[h].closing.as_ref().is_some_and(|c| !c.done)
            })
            .collect();
        for host in stuck {
            self.violation(format!("host {host} did not drain after its close"));
        }
        self.finished = true;
    }
}
