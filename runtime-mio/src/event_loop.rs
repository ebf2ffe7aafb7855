//! The event-loop thread: `mio::Poll` over the listener and every peer socket, with the
//! core's `poll_timeout` as the poll timeout. It turns readiness into session input and
//! session actions into socket writes and disk jobs. No protocol rule lives here.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use hashbrown::HashMap;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use unchoke_core::InfoHash;
use unchoke_core::bitfield::Bitfield;
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{Action, AddTorrentError, ConnId, Direction, Session, TorrentId};
use unchoke_core::storage::FileStorage;
use unchoke_core::torrent::TorrentStats;

use unchoke_driver::disk::{Completion, Job, save_resume_now};
use unchoke_driver::{ClientConfig, ClientError, ClientEvent, Clock, ShutdownReport};

use crate::conn::{Conn, ConnState, ReadOutcome};
use crate::disk::DiskPool;
use crate::handoff::Handoff;

/// The listener's token.
const LISTENER: Token = Token(0);
/// The waker's token (commands and disk completions).
pub(crate) const WAKER: Token = Token(1);
/// Peer sockets get tokens from here up.
const FIRST_PEER: usize = 2;
/// Bytes read from one socket before giving the others a turn.
const READ_BUDGET: usize = 1 << 20;
/// A peer that lets this much of our data pile up unread is dropped: it asks faster than it
/// reads, and the memory is ours.
const MAX_QUEUED_SEND: usize = 16 << 20;
/// Longest sleep in `poll`, so a missed wake-up can never stall the loop for long.
const MAX_POLL_SLEEP: Duration = Duration::from_millis(500);
/// How long shutdown waits for queued disk work.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(30);

/// Requests from the [`crate::Client`] handle.
pub(crate) enum Command {
    AddTorrent {
        metainfo: Box<Metainfo>,
        storage: Arc<FileStorage>,
        have: Bitfield,
        resume_path: PathBuf,
        peers: Vec<SocketAddr>,
        reply: Sender<Result<TorrentId, AddTorrentError>>,
    },
    AddPeers {
        torrent: TorrentId,
        peers: Vec<SocketAddr>,
    },
    Stats {
        torrent: TorrentId,
        reply: Sender<Option<TorrentStats>>,
    },
    Shutdown {
        reply: Sender<Vec<ShutdownReport>>,
    },
}

/// What a poll event said about one socket.
#[derive(Clone, Copy, Debug)]
struct Readiness {
    readable: bool,
    writable: bool,
    failed: bool,
}

/// What the loop keeps per torrent besides the session's state.
struct TorrentSlot {
    storage: Arc<FileStorage>,
    info_hash: InfoHash,
    resume_path: PathBuf,
    /// Pieces we had at the last resume save; a save happens only when this changed.
    saved_have: u32,
    saving: bool,
}

pub(crate) struct EventLoop {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: Option<SocketAddr>,
    bind_ip: Option<IpAddr>,
    session: Session,
    clock: Clock,
    conns: HashMap<Token, Conn>,
    tokens: HashMap<ConnId, Token>,
    next_token: usize,
    inbound: usize,
    torrents: HashMap<TorrentId, TorrentSlot>,
    disk: DiskPool,
    done: Arc<Handoff<Completion, WakerRef>>,
    completions: VecDeque<Completion>,
    /// Downloaded bytes handed to the disk threads and not yet written.
    pending_write_bytes: usize,
    /// Disk jobs whose completion the session is waiting for.
    jobs_in_flight: usize,
    commands: Receiver<Command>,
    events: Sender<ClientEvent>,
    cfg: ClientConfig,
    next_resume_save: StdInstant,
    shutdown: Option<(Sender<Vec<ShutdownReport>>, StdInstant)>,
}

impl EventLoop {
    pub(crate) fn new(
        poll: Poll,
        waker: Arc<Waker>,
        cfg: &ClientConfig,
        commands: Receiver<Command>,
        events: Sender<ClientEvent>,
    ) -> Result<Self, ClientError> {
        let mut session_cfg = cfg.session.clone();
        let (listener, local_addr) = match cfg.listen {
            Some(addr) => {
                let listen_err = |source| ClientError::Listen {
                    addr: addr.to_string(),
                    source,
                };
                let mut l = TcpListener::bind(addr).map_err(listen_err)?;
                let local = l.local_addr().map_err(listen_err)?;
                poll.registry()
                    .register(&mut l, LISTENER, Interest::READABLE)
                    .map_err(listen_err)?;
                session_cfg.listen_port = local.port();
                (Some(l), Some(local))
            }
            None => (None, None),
        };
        let bind_ip = cfg.listen.map(|a| a.ip()).filter(|ip| !ip.is_unspecified());
        let clock = Clock::start();
        let seed = cfg.rng_seed.unwrap_or_else(|| fastrand::u64(..));
        let done = Arc::new(Handoff::new(WakerRef(waker)));
        let disk = DiskPool::start(cfg.disk_threads, done.clone()).map_err(ClientError::Start)?;
        Ok(EventLoop {
            poll,
            listener,
            local_addr,
            bind_ip,
            session: Session::new(session_cfg, seed, clock.now()),
            clock,
            conns: HashMap::new(),
            tokens: HashMap::new(),
            next_token: FIRST_PEER,
            inbound: 0,
            torrents: HashMap::new(),
            disk,
            done,
            completions: VecDeque::new(),
            pending_write_bytes: 0,
            jobs_in_flight: 0,
            commands,
            events,
            cfg: cfg.clone(),
            next_resume_save: StdInstant::now() + cfg.resume_interval,
            shutdown: None,
        })
    }

    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Runs until shutdown completes.
    pub(crate) fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    // The poller itself failed: nothing can make progress any more.
                    break;
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    token => self.socket_event(
                        token,
                        Readiness {
                            readable: ev.is_readable() || ev.is_read_closed(),
                            writable: ev.is_writable(),
                            failed: ev.is_error() || ev.is_write_closed(),
                        },
                    ),
                }
            }
            self.take_commands();
            self.take_completions();
            if self.shutdown.is_none() {
                self.read_ready_sockets();
            }
            self.timers();
            self.pump();
            if self.shutdown.is_some() && self.try_finish_shutdown() {
                return;
            }
        }
        // Poller failure: still save what we can.
        self.finish_shutdown();
    }

    /// How long `poll` may sleep.
    fn poll_timeout(&self) -> Duration {
        let now = StdInstant::now();
        if self.shutdown.is_none()
            && !self.backpressured()
            && self.conns.values().any(|c| c.read_ready)
        {
            return Duration::ZERO;
        }
        let mut deadline = now + MAX_POLL_SLEEP;
        if let Some(t) = self.session.poll_timeout() {
            deadline = deadline.min(self.clock.to_std(t));
        }
        deadline = deadline.min(self.next_resume_save);
        for c in self.conns.values() {
            if let ConnState::Connecting { deadline: d, .. } = c.state {
                deadline = deadline.min(d);
            }
        }
        deadline.saturating_duration_since(now)
    }

    /// Too many downloaded bytes wait for the disk: stop reading until they drain.
    fn backpressured(&self) -> bool {
        self.pending_write_bytes >= self.cfg.max_pending_disk_bytes
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, addr)) => {
                    if self.shutdown.is_some() || self.inbound >= self.cfg.max_inbound {
                        continue; // dropped: closes the socket
                    }
                    let _ = stream.set_nodelay(true);
                    let token = self.new_token();
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        continue;
                    }
                    let id =
                        self.session
                            .connection_opened(addr, Direction::Inbound, self.clock.now());
                    let mut conn = Conn::new(stream, addr, ConnState::Open(id), true);
                    // Data may have arrived with the connection: edge-triggered, so look.
                    conn.read_ready = true;
                    self.inbound += 1;
                    self.tokens.insert(id, token);
                    self.conns.insert(token, conn);
                    self.emit(ClientEvent::PeerConnected {
                        addr,
                        inbound: true,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // A connection reset before accept, or out of descriptors: skip it; the
                // listener stays usable.
                Err(_) => return,
            }
        }
    }

    fn new_token(&mut self) -> Token {
        let t = Token(self.next_token);
        self.next_token += 1;
        t
    }

    fn socket_event(&mut self, token: Token, ready: Readiness) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if let ConnState::Connecting { torrent, .. } = conn.state {
            // A non-blocking connect ends with the socket writable (or in error).
            let connected = match conn.stream.take_error() {
                Ok(None) => conn.stream.peer_addr().is_ok(),
                _ => false,
            };
            if !connected {
                if !ready.failed && !ready.readable {
                    return; // spurious wake-up: still connecting
                }
                let addr = conn.addr;
                let reason = match conn.stream.take_error() {
                    Ok(Some(e)) => e.to_string(),
                    _ => "connection failed".to_string(),
                };
                self.drop_socket(token);
                self.emit(ClientEvent::ConnectFailed { addr, reason });
                self.session.connect_failed(torrent, addr, self.clock.now());
                self.pump();
                return;
            }
            let addr = conn.addr;
            let _ = conn.stream.set_nodelay(true);
            let id = self.session.connection_opened(
                addr,
                Direction::Outbound(torrent),
                self.clock.now(),
            );
            conn.state = ConnState::Open(id);
            conn.read_ready = true;
            self.tokens.insert(id, token);
            self.emit(ClientEvent::PeerConnected {
                addr,
                inbound: false,
            });
            self.pump();
            return;
        }
        if ready.readable || ready.failed {
            // Reading finds out what the error or hang-up was and closes the socket.
            conn.read_ready = true;
        }
        if ready.writable && conn.flush().is_err() {
            self.close_socket(token, "write failed");
        }
    }

    /// Reads from sockets that have data, a budget each, feeding the session.
    fn read_ready_sockets(&mut self) {
        let ready: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.read_ready)
            .map(|(t, _)| *t)
            .collect();
        for token in ready {
            if self.backpressured() {
                return;
            }
            self.read_socket(token);
        }
    }

    fn read_socket(&mut self, token: Token) {
        let mut budget = READ_BUDGET;
        while budget > 0 {
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            let Some(id) = conn.conn_id() else {
                return;
            };
            match conn.read_once() {
                ReadOutcome::Data(n) => {
                    budget = budget.saturating_sub(n.max(1));
                    let now = self.clock.now();
                    self.session.handle_bytes(id, conn.recv_buf(), now);
                    self.pump();
                    if self.backpressured() {
                        return;
                    }
                }
                ReadOutcome::WouldBlock => {
                    conn.read_ready = false;
                    return;
                }
                ReadOutcome::Closed => {
                    self.close_socket(token, "closed by the peer");
                    return;
                }
            }
        }
    }

    /// The peer went away (or broke): tell the session and forget the socket.
    fn close_socket(&mut self, token: Token, reason: &str) {
        if let Some(id) = self.conns.get(&token).and_then(Conn::conn_id) {
            if let Some(addr) = self.conns.get(&token).map(|c| c.addr) {
                self.emit(ClientEvent::PeerDisconnected {
                    addr,
                    reason: reason.to_string(),
                });
            }
            self.drop_socket(token);
            self.session.connection_closed(id, self.clock.now());
            self.pump();
        } else {
            self.drop_socket(token);
        }
    }

    /// Deregisters and closes a socket without telling the session.
    fn drop_socket(&mut self, token: Token) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if let Some(id) = conn.conn_id() {
                self.tokens.remove(&id);
            }
            if conn.inbound {
                self.inbound -= 1;
            }
        }
    }

    fn timers(&mut self) {
        let now_std = StdInstant::now();
        let expired: Vec<(Token, TorrentId, SocketAddr)> = self
            .conns
            .iter()
            .filter_map(|(t, c)| match c.state {
                ConnState::Connecting { torrent, deadline } if deadline <= now_std => {
                    Some((*t, torrent, c.addr))
                }
                _ => None,
            })
            .collect();
        for (token, torrent, addr) in expired {
            self.drop_socket(token);
            self.emit(ClientEvent::ConnectFailed {
                addr,
                reason: "connect timed out".into(),
            });
            self.session.connect_failed(torrent, addr, self.clock.now());
        }
        let now = self.clock.now();
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
        if now_std >= self.next_resume_save {
            self.next_resume_save = now_std + self.cfg.resume_interval;
            if self.shutdown.is_none() {
                self.save_resume_in_background();
            }
        }
    }

    /// Carries out every action the session has queued.
    fn pump(&mut self) {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Send { conn, data } => self.send(conn, data, None),
                Action::SendBlock { conn, header, data } => self.send(conn, header, Some(data)),
                Action::Connect { torrent, addr } => self.connect(torrent, addr),
                Action::Disconnect { conn, reason } => {
                    if let Some(token) = self.tokens.get(&conn).copied() {
                        if let Some(addr) = self.conns.get(&token).map(|c| c.addr) {
                            self.emit(ClientEvent::PeerDisconnected {
                                addr,
                                reason: reason.to_string(),
                            });
                        }
                        // Best effort: whatever is queued (e.g. a final message) goes out.
                        if let Some(c) = self.conns.get_mut(&token) {
                            let _ = c.flush();
                        }
                        self.drop_socket(token);
                    }
                }
                Action::WriteBlock {
                    torrent,
                    piece,
                    offset,
                    data,
                } => {
                    if let Some(slot) = self.torrents.get(&torrent) {
                        self.pending_write_bytes += data.len();
                        self.jobs_in_flight += 1;
                        self.disk.submit(Job::Write {
                            torrent,
                            storage: slot.storage.clone(),
                            piece,
                            offset,
                            data,
                        });
                    }
                }
                Action::ReadBlock {
                    conn,
                    torrent,
                    block,
                } => {
                    if let Some(slot) = self.torrents.get(&torrent) {
                        self.jobs_in_flight += 1;
                        self.disk.submit(Job::Read {
                            conn,
                            torrent,
                            storage: slot.storage.clone(),
                            block,
                        });
                    }
                }
                Action::VerifyPiece {
                    torrent,
                    piece,
                    expected,
                    blocks,
                } => {
                    self.jobs_in_flight += 1;
                    self.disk.submit(Job::Verify {
                        torrent,
                        piece,
                        expected,
                        blocks,
                    });
                }
                Action::Event(event) => self.emit(ClientEvent::Session(event)),
            }
        }
    }

    fn emit(&mut self, event: ClientEvent) {
        match self.events.try_send(event) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            // The user is not reading events: the backlog is full and this one is lost
            // (counters stay available through `Client::stats`).
            Err(TrySendError::Full(_)) => {}
        }
    }

    fn send(&mut self, conn: ConnId, first: bytes::Bytes, second: Option<bytes::Bytes>) {
        let Some(&token) = self.tokens.get(&conn) else {
            return;
        };
        let Some(c) = self.conns.get_mut(&token) else {
            return;
        };
        c.queue(first);
        if let Some(second) = second {
            c.queue(second);
        }
        if c.flush().is_err() {
            self.close_socket(token, "write failed");
        } else if c.queued_bytes() > MAX_QUEUED_SEND {
            self.close_socket(token, "the peer does not read what it asked for");
        }
    }

    fn connect(&mut self, torrent: TorrentId, addr: SocketAddr) {
        let now = self.clock.now();
        let std_stream = match unchoke_driver::connect_nonblocking(addr, self.bind_ip) {
            Ok(s) => s,
            Err(e) => {
                self.emit(ClientEvent::ConnectFailed {
                    addr,
                    reason: e.to_string(),
                });
                self.session.connect_failed(torrent, addr, now);
                return;
            }
        };
        let mut stream = TcpStream::from_std(std_stream);
        let token = self.new_token();
        if self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            self.session.connect_failed(torrent, addr, now);
            return;
        }
        let deadline = StdInstant::now() + self.cfg.connect_timeout;
        self.conns.insert(
            token,
            Conn::new(
                stream,
                addr,
                ConnState::Connecting { torrent, deadline },
                false,
            ),
        );
    }

    fn take_commands(&mut self) {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::AddTorrent {
                    metainfo,
                    storage,
                    have,
                    resume_path,
                    peers,
                    reply,
                } => {
                    let now = self.clock.now();
                    let have_count = have.count_ones();
                    let result = self.session.add_torrent(&metainfo, Some(have), now);
                    if let Ok(id) = result {
                        self.torrents.insert(
                            id,
                            TorrentSlot {
                                storage,
                                info_hash: metainfo.info_hash,
                                resume_path,
                                saved_have: have_count,
                                saving: false,
                            },
                        );
                        self.session.add_peers(id, &peers, now);
                    }
                    let _ = reply.send(result);
                }
                Command::AddPeers { torrent, peers } => {
                    self.session.add_peers(torrent, &peers, self.clock.now());
                }
                Command::Stats { torrent, reply } => {
                    let _ = reply.send(self.session.stats(torrent, self.clock.now()));
                }
                Command::Shutdown { reply } => {
                    if self.shutdown.is_none() {
                        self.shutdown = Some((reply, StdInstant::now() + SHUTDOWN_DRAIN));
                        // Stop taking connections; peers are dropped once disk work drains.
                        if let Some(mut l) = self.listener.take() {
                            let _ = self.poll.registry().deregister(&mut l);
                        }
                    }
                }
            }
        }
        self.pump();
    }

    fn take_completions(&mut self) {
        self.done.drain(&mut self.completions);
        while let Some(c) = self.completions.pop_front() {
            let now = self.clock.now();
            match c {
                Completion::Written {
                    torrent,
                    piece,
                    len,
                    result,
                } => {
                    self.jobs_in_flight -= 1;
                    self.pending_write_bytes -= len.min(self.pending_write_bytes);
                    self.session.disk_write_done(torrent, piece, result, now);
                }
                Completion::Read {
                    conn,
                    block,
                    result,
                } => {
                    self.jobs_in_flight -= 1;
                    self.session.disk_read_done(conn, block, result, now);
                }
                Completion::Hashed { torrent, piece, ok } => {
                    self.jobs_in_flight -= 1;
                    self.session.piece_hashed(torrent, piece, ok, now);
                }
                Completion::ResumeSaved { torrent, result } => {
                    if let Some(slot) = self.torrents.get_mut(&torrent) {
                        slot.saving = false;
                    }
                    if let Err(message) = result {
                        self.emit(ClientEvent::ResumeSaveFailed { torrent, message });
                    }
                }
            }
            self.pump();
        }
    }

    /// Queues a resume save for every torrent whose pieces changed since the last one.
    fn save_resume_in_background(&mut self) {
        for (&id, slot) in self.torrents.iter_mut() {
            let Some(have) = self.session.have(id) else {
                continue;
            };
            if slot.saving || have.count_ones() == slot.saved_have {
                continue;
            }
            slot.saving = true;
            slot.saved_have = have.count_ones();
            self.disk.submit(Job::SaveResume {
                torrent: id,
                storage: slot.storage.clone(),
                path: slot.resume_path.clone(),
                info_hash: slot.info_hash,
                have: have.clone(),
            });
        }
    }

    /// Shutdown completes once disk work the session waits for has drained (or the wait
    /// ran out).
    fn try_finish_shutdown(&mut self) -> bool {
        let Some((_, deadline)) = &self.shutdown else {
            return false;
        };
        if self.jobs_in_flight > 0 && StdInstant::now() < *deadline {
            return false;
        }
        self.finish_shutdown();
        true
    }

    fn finish_shutdown(&mut self) {
        // Workers finish what is queued (including background resume saves) and stop, so
        // the final save below cannot race an older one.
        self.disk.stop();
        let now = self.clock.now();
        let mut reports = Vec::new();
        let mut ids: Vec<TorrentId> = self.torrents.keys().copied().collect();
        ids.sort();
        for id in ids {
            let Some(slot) = self.torrents.get(&id) else {
                continue;
            };
            let saved = save_resume_now(
                &self.session,
                id,
                &slot.storage,
                slot.info_hash,
                &slot.resume_path,
            );
            reports.push(ShutdownReport {
                torrent: id,
                stats: self.session.stats(id, now),
                saved,
            });
        }
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for t in tokens {
            self.drop_socket(t);
        }
        if let Some((reply, _)) = self.shutdown.take() {
            let _ = reply.send(reports);
        }
    }
}

/// The waker shared between the client handle (commands) and the disk workers.
pub(crate) struct WakerRef(pub(crate) Arc<Waker>);

impl crate::handoff::Wake for WakerRef {
    fn wake(&self) {
        let _ = self.0.wake();
    }
}

impl std::fmt::Debug for WakerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WakerRef")
    }
}
