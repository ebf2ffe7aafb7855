//! The one interpreter of the session's [`Action`]s for real sockets and threads, shared by
//! both runtimes. A runtime implements [`Io`] (what only it can do: its sockets, and running
//! blocking work off its loop) and hands every input to the [`SessionHost`] through the
//! methods here, each of which ends with [`SessionHost::pump`]: a runtime never calls the
//! core's `Session` itself and so cannot forget to carry out what an input produced.

use std::io;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use unchoke_core::session::{Action, ConnId, Direction, Event, PeerGone, TorrentId};

use crate::announce::{AnnounceJob, JobKind};
use crate::disk::{Completion, Job};
use crate::host::Command;
use crate::web_seed::WebSeedJob;
use crate::{AddTorrent, ClientEvent, SessionHost, ShutdownReport};

/// Blocking work a runtime runs off its loop; its [`Completion`] comes back through
/// [`SessionHost::completion`].
#[derive(Debug)]
pub enum Work {
    /// Disk work: a block write or read, a hash, a resume save, a magnet's storage set-up.
    Disk(Job),
    /// Tracker work: an HTTP announce, or a UDP tracker's name to resolve.
    Tracker(AnnounceJob),
    /// A web seed's HTTP range requests (BEP 19).
    WebSeed(WebSeedJob),
}

/// What a runtime's sockets did while carrying out a round of actions, reported back by
/// [`Io::flush`] (the runtime cannot tell the session itself mid-round).
#[derive(Debug)]
pub enum Report {
    /// The socket of `conn` accepted this many bytes.
    Sent(ConnId, usize),
    /// The socket of `conn` failed and was closed.
    Closed(ConnId, PeerGone),
    /// A dial could not even start.
    ConnectFailed {
        /// The torrent the dial was for.
        torrent: TorrentId,
        /// The peer.
        addr: SocketAddr,
        /// What the OS said.
        error: io::Error,
    },
}

/// What only a runtime can do: sockets, and running blocking work off its loop. Calls
/// for one connection come in the order the session asked for them.
pub trait Io {
    /// Queue these buffers on the connection, in order (write them vectored; `second` is
    /// the block after a piece header).
    fn send(&mut self, conn: ConnId, first: Bytes, second: Option<Bytes>);
    /// Dial `addr` for `torrent`; then [`SessionHost::opened`] or
    /// [`SessionHost::connect_error`]. Only the OS's connect: the time-out is the session's.
    fn connect(&mut self, torrent: TorrentId, addr: SocketAddr);
    /// Abandon that dial (the session timed it out); report nothing for it.
    fn cancel_connect(&mut self, torrent: TorrentId, addr: SocketAddr);
    /// Close the connection (the session has forgotten it already; report nothing).
    fn disconnect(&mut self, conn: ConnId);
    /// Send this datagram from the client's UDP socket (dropped if the socket is full: UDP
    /// may lose it anyway, and the DHT and UDP trackers retransmit on time-out).
    fn send_datagram(&mut self, to: SocketAddr, bytes: Bytes);
    /// Send this local service discovery datagram to `to` (the IPv4 or IPv6 LSD group)
    /// from the LSD socket of that family ([`crate::lsd_node::LsdSender`]); dropped if
    /// there is none or it is full (the session announces again in 5 minutes).
    fn send_lsd(&mut self, to: SocketAddr, bytes: Bytes);
    /// Run this blocking work off the loop and hand its completion to
    /// [`SessionHost::completion`].
    fn spawn(&mut self, work: Work);
    /// The round of actions is over: write what was queued, hand batched work over, and
    /// say what the sockets did meanwhile (mio writes here; smol's writer tasks report
    /// through [`SessionHost::sent`] and only failures come back here).
    fn flush(&mut self) -> Vec<Report> {
        Vec::new()
    }
}

impl SessionHost {
    /// Carries out everything the session asked for: disk and tracker actions become
    /// [`Work`], events become [`ClientEvent`]s, the rest goes to `io`. Then reports what
    /// the sockets did ([`Io::flush`]), which may release more (held uploads), and goes
    /// round until quiet.
    pub fn pump(&mut self, io: &mut impl Io) {
        self.start_checks(io);
        loop {
            while let Some(action) = self.session.poll_action() {
                self.carry_out(io, action);
            }
            let reports = io.flush();
            if reports.is_empty() {
                return;
            }
            self.apply_reports(reports);
        }
    }

    /// Starts the rechecks whose torrent's storage no disk job holds any more (the host's
    /// slot is its only holder); a torrent removed meanwhile is dropped from the list.
    fn start_checks(&mut self, io: &mut impl Io) {
        let checks = std::mem::take(&mut self.checks);
        for (torrent, mut add, move_from) in checks {
            let Some(slot) = self.torrents.get(&torrent) else {
                continue;
            };
            if std::sync::Arc::strong_count(&slot.storage) > 1 {
                self.checks.push((torrent, add, move_from));
                continue;
            }
            let mut files: Vec<std::path::PathBuf> = (0..add.metainfo.info.files.len())
                .filter(|&i| !add.metainfo.info.files[i].padding)
                .filter_map(|i| add.metainfo.info.file_path(i))
                .collect();
            // Its resume file goes along when it is the default one, under the save path.
            if let Some(from) = &move_from {
                if let Ok(rel) = slot.resume_path.strip_prefix(from) {
                    files.push(rel.to_path_buf());
                }
                add.resume_path = None;
            }
            self.jobs_in_flight += 1;
            io.spawn(Work::Disk(Job::Recheck {
                torrent,
                add,
                config: Box::new(self.config.clone()),
                move_from,
                files,
            }));
        }
    }

    /// Tells the session what the sockets did.
    fn apply_reports(&mut self, reports: Vec<Report>) {
        let now = self.clock.now();
        for report in reports {
            match report {
                Report::Sent(conn, n) => self.session.handle_sent(conn, n, now),
                Report::Closed(conn, reason) => self.session.handle_closed(conn, reason, now),
                Report::ConnectFailed {
                    torrent,
                    addr,
                    error,
                } => {
                    let reason = self.connect_failure(&error);
                    self.session
                        .handle_connect_error(torrent, addr, reason, now);
                }
            }
        }
    }

    /// The one `match` over the session's actions.
    fn carry_out(&mut self, io: &mut impl Io, action: Action) {
        match action {
            Action::Send { conn, data } => io.send(conn, data, None),
            Action::SendBlock { conn, header, data } => io.send(conn, header, Some(data)),
            Action::Connect { torrent, addr } => io.connect(torrent, addr),
            Action::CancelConnect { torrent, addr } => io.cancel_connect(torrent, addr),
            Action::SendDatagram { to, bytes } => io.send_datagram(to, bytes),
            Action::SendLsd { to, bytes } => io.send_lsd(to, bytes),
            Action::Disconnect { conn, .. } => io.disconnect(conn),
            Action::WriteBlock {
                torrent,
                piece,
                offset,
                data,
            } => {
                if let Some(storage) = self.storage(torrent) {
                    self.jobs_in_flight += 1;
                    io.spawn(Work::Disk(Job::Write {
                        torrent,
                        storage,
                        piece,
                        offset,
                        data,
                    }));
                }
            }
            Action::ReadBlock {
                conn,
                torrent,
                block,
            } => {
                if let Some(storage) = self.storage(torrent) {
                    self.jobs_in_flight += 1;
                    io.spawn(Work::Disk(Job::Read {
                        conn,
                        torrent,
                        storage,
                        block,
                    }));
                }
            }
            Action::VerifyPiece {
                torrent,
                piece,
                expected,
                blocks,
            } => {
                self.jobs_in_flight += 1;
                io.spawn(Work::Disk(Job::Verify {
                    torrent,
                    piece,
                    expected,
                    blocks,
                }));
            }
            Action::Announce {
                torrent,
                url,
                request,
            } => {
                // Leaving (`completed`, `stopped`): a short socket time-out, so the blocking
                // exchange does not outlive the exit for long. How long the close waits for
                // its answer is the session's call.
                let kind = JobKind::Announce {
                    torrent,
                    url,
                    request,
                };
                let job = AnnounceJob::new(self.trackers.clone(), kind, self.shutting_down());
                io.spawn(Work::Tracker(job));
            }
            // A UDP tracker's name: the exchange itself is the session's.
            Action::Resolve { host, port } => {
                let kind = JobKind::Resolve { host, port };
                io.spawn(Work::Tracker(AnnounceJob::new(
                    self.trackers.clone(),
                    kind,
                    false,
                )));
            }
            Action::WebSeedRequest {
                torrent,
                seed,
                request,
                ranges,
            } => {
                let job = WebSeedJob::new(self.web_seeds.clone(), torrent, seed, request, ranges);
                io.spawn(Work::WebSeed(job));
            }
            Action::SaveResume {
                torrent,
                have,
                written,
            } => {
                // Also during shutdown: the session's close ends with one last save per
                // torrent. A torrent without storage here has nothing to save.
                if let Some(slot) = self.torrents.get(&torrent) {
                    io.spawn(Work::Disk(Job::SaveResume {
                        torrent,
                        storage: slot.storage.clone(),
                        path: slot.resume_path.clone(),
                        info_hash: slot.info_hash,
                        have,
                        written: Some(written),
                    }));
                }
            }
            Action::Event(event) => self.event(io, event),
        }
    }

    /// Tells the user; a magnet's metadata also starts setting up its storage.
    fn event(&mut self, io: &mut impl Io, event: Event) {
        let client_event = match event {
            Event::MetadataReceived { torrent, metainfo } => {
                if let Some(magnet) = self.magnets.get(&torrent) {
                    // Checking existing data can take long: off the loop, like any disk work.
                    let mut add = AddTorrent::new((*metainfo).clone(), magnet.save_path.clone());
                    add.recheck = magnet.recheck;
                    add.access = magnet.access;
                    add.cancel = magnet.cancel.clone();
                    self.jobs_in_flight += 1;
                    io.spawn(Work::Disk(Job::Prepare {
                        torrent,
                        add: Box::new(add),
                        config: Box::new(self.config.clone()),
                    }));
                }
                ClientEvent::Session(Event::MetadataReceived { torrent, metainfo })
            }
            // The peer events keep their client-level form (one place maps them).
            Event::PeerConnected { addr, inbound, .. } => {
                ClientEvent::PeerConnected { addr, inbound }
            }
            Event::PeerDisconnected { addr, reason } => ClientEvent::PeerDisconnected {
                addr,
                reason: reason.to_string(),
            },
            Event::ConnectFailed { addr, reason, .. } => ClientEvent::ConnectFailed {
                addr,
                reason: reason.to_string(),
            },
            event => ClientEvent::Session(event),
        };
        self.emit(client_event);
    }

    /// A socket opened (we accepted it, or our dial for `direction`'s torrent completed).
    /// `attach` gets the session's id for it and must make the socket reachable under that
    /// id before the session's first actions for it are carried out (it may be refused at
    /// once: admission).
    pub fn opened<I: Io>(
        &mut self,
        io: &mut I,
        addr: SocketAddr,
        direction: Direction,
        attach: impl FnOnce(&mut I, ConnId),
    ) {
        let id = self
            .session
            .connection_opened(addr, direction, self.clock.now());
        attach(io, id);
        self.pump(io);
    }

    /// Bytes arrived on `conn`: they were appended to `buf`, its receive buffer, which the
    /// session consumes whole messages from (keep the rest for the next call).
    pub fn bytes(&mut self, io: &mut impl Io, conn: ConnId, buf: &mut BytesMut) {
        self.session.handle_bytes(conn, buf, self.clock.now());
        self.pump(io);
    }

    /// The socket of `conn` ended on its own (the peer hung up, or it failed).
    pub fn closed(&mut self, io: &mut impl Io, conn: ConnId, reason: PeerGone) {
        self.session.handle_closed(conn, reason, self.clock.now());
        self.pump(io);
    }

    /// The socket of `conn` accepted `n` more bytes of what was queued.
    pub fn sent(&mut self, io: &mut impl Io, conn: ConnId, n: usize) {
        self.session.handle_sent(conn, n, self.clock.now());
        self.pump(io);
    }

    /// Several things the sockets did, told at once (e.g. what each writer task sent
    /// since the last look), so what they release is carried out in one round.
    pub fn reports(&mut self, io: &mut impl Io, reports: Vec<Report>) {
        self.apply_reports(reports);
        self.pump(io);
    }

    /// Our dial of `addr` for `torrent` failed with this OS error.
    pub fn connect_error(
        &mut self,
        io: &mut impl Io,
        torrent: TorrentId,
        addr: SocketAddr,
        error: &io::Error,
    ) {
        let reason = self.connect_failure(error);
        self.session
            .handle_connect_error(torrent, addr, reason, self.clock.now());
        self.pump(io);
    }

    /// A datagram arrived on the client's UDP socket (DHT or UDP tracker).
    pub fn datagram(&mut self, io: &mut impl Io, from: SocketAddr, bytes: &[u8]) {
        self.session.handle_datagram(from, bytes, self.clock.now());
        self.pump(io);
    }

    /// A datagram of a burst read from the client's UDP socket in a row: handed to the
    /// session, its actions left queued. Call [`Self::pump`] after the burst's last one:
    /// the session then acknowledges each uTP stream once for the whole burst instead of
    /// once per packet (see `unchoke_core::session`'s `utp_streams`).
    pub fn datagram_in_burst(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.session.handle_datagram(from, bytes, self.clock.now());
    }

    /// A datagram arrived on an LSD socket, IPv4 or IPv6 ([`crate::lsd_node`]).
    pub fn lsd_datagram(&mut self, io: &mut impl Io, from: SocketAddr, bytes: &[u8]) {
        self.session
            .handle_lsd_datagram(from, bytes, self.clock.now());
        self.pump(io);
    }

    /// The session's timers when due (resume saves and the close's deadlines among them).
    pub fn timers(&mut self, io: &mut impl Io) {
        let now = self.clock.now();
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
        self.pump(io);
    }

    /// Blocking work finished: update the bookkeeping and tell the session.
    pub fn completion(&mut self, io: &mut impl Io, c: Completion) {
        self.complete(c);
        self.pump(io);
    }

    /// A request from the client handle. Returns `true` when it was the request to shut
    /// down (the runtime then stops accepting connections).
    pub fn command(&mut self, io: &mut impl Io, c: Command) -> bool {
        let shutdown = self.apply(c);
        self.pump(io);
        shutdown
    }

    /// Starts shutting down (also when the client handle vanished without asking: then
    /// `reply` goes nowhere). Returns `true` the first time.
    pub fn begin_shutdown(
        &mut self,
        io: &mut impl Io,
        reply: crossbeam_channel::Sender<Vec<ShutdownReport>>,
    ) -> bool {
        let first = self.close(reply);
        self.pump(io);
        first
    }
}

#[cfg(test)]
mod tests;
