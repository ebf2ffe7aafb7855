//! The event-loop thread: `mio::Poll` over the listener and every peer socket, with the
//! core's deadline as the poll timeout. It turns readiness into session input and the
//! session's [`IoAction`]s into socket writes and disk jobs. The session and its
//! bookkeeping (disk jobs in flight, resume saves, commands, shutdown) are the shared
//! [`SessionHost`]; no protocol rule lives here.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use crossbeam_channel::{Receiver, Sender};
use hashbrown::HashMap;
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use unchoke_core::session::{ConnId, ConnectFailure, Direction, PeerGone, TorrentId};
use unchoke_driver::announce::AnnounceJob;
use unchoke_driver::dht_node::{DATAGRAM_BUFFER, DATAGRAM_BURST};
use unchoke_driver::disk::Completion;
use unchoke_driver::tracker_client::bind_udp;
use unchoke_driver::{ClientConfig, ClientError, ClientEvent, Command, IoAction, SessionHost};

use crate::conn::{Conn, ConnState, ReadOutcome};
use crate::disk::DiskPool;
use crate::handoff::Handoff;

/// The listener's token.
const LISTENER: Token = Token(0);
/// The waker's token (commands and disk completions).
pub(crate) const WAKER: Token = Token(1);
/// The DHT's UDP socket.
const DHT: Token = Token(2);
/// Peer sockets get tokens from here up.
const FIRST_PEER: usize = 3;
/// Bytes read from one socket before giving the others a turn.
const READ_BUDGET: usize = 1 << 20;

/// What a poll event said about one socket.
#[derive(Clone, Copy, Debug)]
struct Readiness {
    readable: bool,
    writable: bool,
    failed: bool,
}

pub(crate) struct EventLoop {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: Option<SocketAddr>,
    bind_ip: Option<IpAddr>,
    /// The client's UDP socket (always there: the DHT's and UDP trackers' datagrams).
    dht: Option<UdpSocket>,
    dht_addr: Option<SocketAddr>,
    /// The DHT socket may have datagrams waiting (edge-triggered readiness).
    dht_ready: bool,
    host: SessionHost,
    conns: HashMap<Token, Conn>,
    tokens: HashMap<ConnId, Token>,
    next_token: usize,
    disk: DiskPool,
    done: Arc<Handoff<Completion, WakerRef>>,
    completions: VecDeque<Completion>,
    /// Sockets with buffers queued by the current round of actions.
    unflushed: Vec<Token>,
    commands: Receiver<Command>,
}

impl EventLoop {
    pub(crate) fn new(
        poll: Poll,
        waker: Arc<Waker>,
        cfg: &ClientConfig,
        commands: Receiver<Command>,
        events: Sender<ClientEvent>,
    ) -> Result<Self, ClientError> {
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
                (Some(l), Some(local))
            }
            None => (None, None),
        };
        // Always one UDP socket: the DHT's, and UDP trackers' exchanges (the session's).
        let (std_socket, dht_addr) = bind_udp(cfg.dht.as_ref(), local_addr)?;
        let mut socket = UdpSocket::from_std(std_socket);
        poll.registry()
            .register(&mut socket, DHT, Interest::READABLE)
            .map_err(ClientError::Start)?;
        let dht = Some(socket);
        let done = Arc::new(Handoff::new(WakerRef(waker)));
        let disk = DiskPool::start(cfg.disk_threads, done.clone()).map_err(ClientError::Start)?;
        Ok(EventLoop {
            poll,
            listener,
            local_addr,
            bind_ip: cfg.listen.map(|a| a.ip()).filter(|ip| !ip.is_unspecified()),
            dht,
            dht_addr,
            // Datagrams may have arrived before registration: look once.
            dht_ready: true,
            host: SessionHost::new(cfg, local_addr, events),
            conns: HashMap::new(),
            tokens: HashMap::new(),
            next_token: FIRST_PEER,
            disk,
            done,
            completions: VecDeque::new(),
            unflushed: Vec::new(),
            commands,
        })
    }

    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    pub(crate) fn dht_addr(&self) -> Option<SocketAddr> {
        self.dht_addr
    }

    /// Runs until shutdown completes (or the poller fails).
    pub(crate) fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                // The poller itself failed: nothing can make progress any more.
                break;
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    DHT => self.dht_ready = true,
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
            // Also while leaving: UDP trackers answer `completed` and `stopped` here.
            self.read_datagrams();
            if !self.host.shutting_down() {
                self.read_ready_sockets();
            }
            self.timers();
            self.pump();
            if self.host.shutting_down() && !self.host.draining() {
                break;
            }
        }
        self.finish_shutdown();
    }

    /// How long `poll` may sleep.
    fn poll_timeout(&self) -> Duration {
        if self.dht_ready && self.dht.is_some()
            || !self.host.shutting_down() && self.conns.values().any(|c| c.read_ready)
        {
            return Duration::ZERO;
        }
        self.host
            .deadline()
            .saturating_duration_since(StdInstant::now())
    }

    fn accept(&mut self) {
        let now = self.host.now();
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, addr)) => {
                    if self.host.shutting_down() {
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
                    let id = self
                        .host
                        .session()
                        .connection_opened(addr, Direction::Inbound, now);
                    let mut conn = Conn::new(stream, addr, ConnState::Open(id));
                    // Data may have arrived with the connection: edge-triggered, so look.
                    conn.read_ready = true;
                    self.tokens.insert(id, token);
                    self.conns.insert(token, conn);
                    // The session may refuse it (admission): its Disconnect closes it.
                    self.pump();
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
        let now = self.host.now();
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if let ConnState::Connecting { torrent, .. } = conn.state {
            // A non-blocking connect ends with the socket writable (or in error). `SO_ERROR`
            // is cleared by reading it: it is read once and kept for the report.
            let error = match conn.stream.take_error() {
                Ok(None) => conn.stream.peer_addr().err(),
                Ok(Some(e)) | Err(e) => Some(e),
            };
            if let Some(error) = error {
                if !ready.failed && !ready.readable {
                    return; // spurious wake-up: still connecting
                }
                let addr = conn.addr;
                let reason = self.connect_failure(&error);
                self.drop_socket(token);
                self.host
                    .session()
                    .handle_connect_error(torrent, addr, reason, now);
                self.pump();
                return;
            }
            let addr = conn.addr;
            let _ = conn.stream.set_nodelay(true);
            let id = self
                .host
                .session()
                .connection_opened(addr, Direction::Outbound(torrent), now);
            conn.state = ConnState::Open(id);
            conn.read_ready = true;
            self.tokens.insert(id, token);
            self.pump();
            return;
        }
        if ready.readable || ready.failed {
            // Reading finds out what the error or hang-up was and closes the socket.
            conn.read_ready = true;
        }
        if ready.writable {
            let (flushed, id) = (conn.flush(), conn.conn_id());
            match (flushed, id) {
                (Ok(n), Some(id)) if n > 0 => {
                    self.host.session().handle_sent(id, n, now);
                    self.pump();
                }
                (Ok(_), _) => {}
                (Err(_), _) => self.close_socket(token, PeerGone::WriteFailed),
            }
        }
    }

    /// Hands waiting DHT datagrams to the session, a burst at a time.
    fn read_datagrams(&mut self) {
        let mut buf = [0u8; DATAGRAM_BUFFER];
        for _ in 0..DATAGRAM_BURST {
            let Some(socket) = &self.dht else {
                return;
            };
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let now = self.host.now();
                    self.host.session().handle_datagram(from, &buf[..n], now);
                    self.pump();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.dht_ready = false;
                    return;
                }
                // ICMP errors from earlier sends surface here on Linux: skip them.
                Err(_) => {}
            }
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
                    let now = self.host.now();
                    self.host.session().handle_bytes(id, conn.recv_buf(), now);
                    self.pump();
                }
                ReadOutcome::WouldBlock => {
                    conn.read_ready = false;
                    return;
                }
                ReadOutcome::Closed => {
                    self.close_socket(token, PeerGone::HungUp);
                    return;
                }
            }
        }
    }

    /// The peer went away (or broke): tell the session and forget the socket.
    fn close_socket(&mut self, token: Token, reason: PeerGone) {
        if let Some(id) = self.conns.get(&token).and_then(Conn::conn_id) {
            self.drop_socket(token);
            let now = self.host.now();
            self.host.session().handle_closed(id, reason, now);
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
        }
    }

    fn timers(&mut self) {
        self.host.timers();
    }

    /// Carries out everything the session asked for.
    fn pump(&mut self) {
        // Reporting what the sockets took may release held uploads: go round until quiet.
        loop {
            self.carry_out();
            let sent = self.flush_sends();
            self.disk.flush();
            if sent.is_empty() {
                return;
            }
            let now = self.host.now();
            for (id, n) in sent {
                self.host.session().handle_sent(id, n, now);
            }
        }
    }

    /// Carries out every action the session has queued.
    fn carry_out(&mut self) {
        while let Some(io) = self.host.poll_io() {
            match io {
                IoAction::Send {
                    conn,
                    first,
                    second,
                } => self.send(conn, first, second),
                IoAction::Connect { torrent, addr } => self.connect(torrent, addr),
                IoAction::CancelConnect { torrent, addr } => {
                    let dial = self.conns.iter().find_map(|(t, c)| match c.state {
                        ConnState::Connecting { torrent: d } if d == torrent && c.addr == addr => {
                            Some(*t)
                        }
                        _ => None,
                    });
                    if let Some(token) = dial {
                        self.drop_socket(token);
                    }
                }
                IoAction::Disconnect { conn, .. } => {
                    if let Some(token) = self.tokens.get(&conn).copied() {
                        if let Some(c) = self.conns.get_mut(&token) {
                            // Best effort: whatever is queued (e.g. a final message) goes out.
                            let _ = c.flush();
                        }
                        self.drop_socket(token);
                    }
                }
                IoAction::SendDatagram { to, bytes } => {
                    if let Some(socket) = &self.dht {
                        // A full socket buffer loses the datagram, as the network may.
                        let _ = socket.send_to(&bytes, to);
                    }
                }
                IoAction::Disk(job) => self.disk.submit(job),
                IoAction::Announce(job) => self.announce(job),
            }
        }
    }

    /// Runs a tracker announce on a thread of its own: announces are rare (one per torrent
    /// per interval) but can block for a minute on a silent tracker or slow DNS, which
    /// must hold up neither this loop nor the disk workers.
    fn announce(&mut self, job: AnnounceJob) {
        let fallback = job.failure("cannot start a thread for the announce");
        let done = self.done.clone();
        let spawned = std::thread::Builder::new()
            .name("unchoke-announce".into())
            .spawn(move || done.push(job.run()));
        if spawned.is_err() {
            self.completions.push_back(fallback);
        }
    }

    /// Queues buffers; they are written when the round of actions ends ([`Self::flush_sends`]),
    /// so everything one input produced for a peer goes out in one `writev`.
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
        self.unflushed.push(token);
    }

    /// Writes what the last round of actions queued; returns what each socket took.
    fn flush_sends(&mut self) -> Vec<(ConnId, usize)> {
        let mut sent = Vec::new();
        while let Some(token) = self.unflushed.pop() {
            let Some(c) = self.conns.get_mut(&token) else {
                continue;
            };
            match (c.flush(), c.conn_id()) {
                (Ok(n), Some(id)) if n > 0 => sent.push((id, n)),
                (Ok(_), _) => {}
                (Err(_), _) => self.close_socket(token, PeerGone::WriteFailed),
            }
        }
        sent
    }

    /// The OS's reason for a failed dial, as the session's typed reason.
    fn connect_failure(&self, error: &io::Error) -> ConnectFailure {
        unchoke_driver::connect_failure(error, self.host.session_config().connect_timeout)
    }

    fn connect(&mut self, torrent: TorrentId, addr: SocketAddr) {
        let std_stream = match unchoke_driver::connect_nonblocking(addr, self.bind_ip) {
            Ok(s) => s,
            Err(e) => {
                let reason = self.connect_failure(&e);
                let now = self.host.now();
                self.host
                    .session()
                    .handle_connect_error(torrent, addr, reason, now);
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
            let reason =
                ConnectFailure::Other("cannot watch the socket (out of resources?)".into());
            let now = self.host.now();
            self.host
                .session()
                .handle_connect_error(torrent, addr, reason, now);
            return;
        }
        self.conns.insert(
            token,
            Conn::new(stream, addr, ConnState::Connecting { torrent }),
        );
    }

    fn take_commands(&mut self) {
        while let Ok(cmd) = self.commands.try_recv() {
            if self.host.command(cmd)
                && let Some(mut l) = self.listener.take()
            {
                // Stop taking connections; peers are dropped once disk work drains.
                let _ = self.poll.registry().deregister(&mut l);
            }
        }
        self.pump();
    }

    fn take_completions(&mut self) {
        self.done.drain(&mut self.completions);
        while let Some(c) = self.completions.pop_front() {
            self.host.completion(c);
            self.pump();
        }
    }

    fn finish_shutdown(&mut self) {
        // Workers finish what is queued and stop, so the final resume save cannot race an
        // older one.
        self.disk.stop();
        self.take_completions();
        self.host.finish_shutdown();
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for t in tokens {
            self.drop_socket(t);
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
