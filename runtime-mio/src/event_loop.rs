//! The event-loop thread: `mio::Poll` over the listener, every peer socket and the UDP
//! socket, with the session's deadline as the poll timeout. It turns readiness, commands
//! and disk completions into input for the shared [`SessionHost`], which carries out the
//! session's actions through [`Net`] (the [`unchoke_driver::Io`] of this driver). No
//! protocol rule lives here.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use unchoke_core::session::{Direction, PeerGone};
use unchoke_driver::dht_node::{DATAGRAM_BUFFER, DATAGRAM_BURST};
use unchoke_driver::lsd_node::{LsdOff, open_lsd};
use unchoke_driver::tracker_client::bind_udp;
use unchoke_driver::udp_batch::{DatagramReceiver, enable_receive_offload, offload_wanted};
use unchoke_driver::{ClientConfig, ClientError, ClientEvent, Command, SessionHost};

use crate::conn::{Conn, ConnState, ReadOutcome};
use crate::disk::DiskPool;
use crate::handoff::Handoff;
use crate::net::{Lsd, Net};

/// The listener's token.
const LISTENER: Token = Token(0);
/// The waker's token (commands and disk completions).
pub(crate) const WAKER: Token = Token(1);
/// The UDP socket (DHT and UDP trackers).
const UDP: Token = Token(2);
/// The local service discovery sockets, IPv4 and IPv6 (multicast, see
/// `unchoke_driver::lsd_node`): both under this token, both read when it fires.
const LSD: Token = Token(3);
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
    host: SessionHost,
    net: Net,
    local_addr: Option<SocketAddr>,
    udp_addr: Option<SocketAddr>,
    /// The UDP socket may have datagrams waiting (edge-triggered readiness).
    udp_ready: bool,
    /// Reads `net.udp` a run of datagrams at a time.
    udp_rx: DatagramReceiver,
    /// The same for the LSD sockets (never set without one).
    lsd_ready: bool,
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
                let std_listener = unchoke_driver::bind_listener(addr).map_err(listen_err)?;
                std_listener.set_nonblocking(true).map_err(listen_err)?;
                let mut l = TcpListener::from_std(std_listener);
                let local = l.local_addr().map_err(listen_err)?;
                poll.registry()
                    .register(&mut l, LISTENER, Interest::READABLE)
                    .map_err(listen_err)?;
                (Some(l), Some(local))
            }
            None => (None, None),
        };
        // Always one UDP socket: the DHT's, and UDP trackers' exchanges (the session's).
        let (std_socket, udp_addr) = bind_udp(cfg.dht.as_ref(), local_addr)?;
        let udp_local = std_socket.local_addr().ok();
        let mut udp = UdpSocket::from_std(std_socket);
        // Runs of datagrams arrive as one read (UDP GRO), split by `udp_rx`.
        if offload_wanted() {
            enable_receive_offload(&udp);
        }
        poll.registry()
            .register(&mut udp, UDP, Interest::READABLE)
            .map_err(ClientError::Start)?;
        // Local service discovery's sockets, when asked for and they can be set up: a
        // failure only leaves that group (or LSD) out (the events say why).
        let (lsd_sockets, mut cfg, lsd_events) = open_lsd(cfg, local_addr);
        for e in lsd_events {
            let _ = events.try_send(e);
        }
        let lsd = lsd_sockets.and_then(|l| {
            let mut readers = Vec::new();
            for socket in l.readers {
                let mut s = UdpSocket::from_std(socket);
                if let Err(e) = poll.registry().register(&mut s, LSD, Interest::READABLE) {
                    let _ = events.try_send(ClientEvent::Lsd(Err(LsdOff {
                        group: None,
                        reason: format!("cannot poll the LSD socket: {e}"),
                    })));
                    return None;
                }
                readers.push(s);
            }
            Some(Lsd {
                readers,
                sender: l.sender,
            })
        });
        cfg.lsd = lsd.is_some();
        let cfg = &cfg;
        let done = Arc::new(Handoff::new(WakerRef(waker)));
        let disk = DiskPool::start(cfg.disk_threads, done.clone()).map_err(ClientError::Start)?;
        let bind_ip = cfg.listen.map(|a| a.ip()).filter(|ip| !ip.is_unspecified());
        Ok(EventLoop {
            host: SessionHost::new(cfg, local_addr, udp_local, events),
            net: Net::new(poll, listener, bind_ip, udp, lsd, disk, done),
            local_addr,
            udp_addr,
            // Datagrams may have arrived before registration: look once.
            udp_ready: true,
            udp_rx: DatagramReceiver::new(),
            lsd_ready: cfg.lsd,
            commands,
        })
    }

    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    pub(crate) fn dht_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// Runs until shutdown completes (or the poller fails).
    pub(crate) fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            // Disk jobs of the whole iteration go to the workers together (see `Net::flush`).
            self.net.disk.flush();
            let timeout = self.poll_timeout();
            if let Err(e) = self.net.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                // The poller itself failed: nothing can make progress any more.
                break;
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    UDP => self.udp_ready = true,
                    LSD => self.lsd_ready = true,
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
                self.read_lsd_datagrams();
                self.read_ready_sockets();
            }
            self.host.timers(&mut self.net);
            if self.host.shutting_down() && !self.host.draining() {
                break;
            }
        }
        self.finish_shutdown();
    }

    /// How long `poll` may sleep.
    fn poll_timeout(&self) -> Duration {
        if self.udp_ready
            || self.lsd_ready && !self.host.shutting_down()
            || !self.host.shutting_down() && self.net.conns.values().any(|c| c.read_ready)
        {
            return Duration::ZERO;
        }
        self.host.timeout()
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = &self.net.listener else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, addr)) => {
                    if self.host.shutting_down() {
                        continue; // dropped: closes the socket
                    }
                    let _ = stream.set_nodelay(true);
                    let token = self.net.new_token();
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if (self.net.poll.registry())
                        .register(&mut stream, token, interest)
                        .is_err()
                    {
                        continue;
                    }
                    // The session may refuse it (admission): its Disconnect closes it.
                    let attach = |net: &mut Net, id| {
                        let conn = Conn::new(stream, addr, ConnState::Open(id));
                        net.conns.insert(token, conn);
                        net.attach(token, id);
                    };
                    (self.host).opened(&mut self.net, addr, Direction::Inbound, attach);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // A connection reset before accept, or out of descriptors: skip it; the
                // listener stays usable.
                Err(_) => return,
            }
        }
    }

    fn socket_event(&mut self, token: Token, ready: Readiness) {
        let Some(conn) = self.net.conns.get_mut(&token) else {
            return;
        };
        if let ConnState::Connecting { torrent } = conn.state {
            // A non-blocking connect ends with the socket writable (or in error). `SO_ERROR`
            // is cleared by reading it: it is read once and kept for the report.
            let error = match conn.stream.take_error() {
                Ok(None) => conn.stream.peer_addr().err(),
                Ok(Some(e)) | Err(e) => Some(e),
            };
            let addr = conn.addr;
            if let Some(error) = error {
                if !ready.failed && !ready.readable {
                    return; // spurious wake-up: still connecting
                }
                self.net.drop_socket(token);
                (self.host).connect_error(&mut self.net, torrent, addr, &error);
                return;
            }
            let _ = conn.stream.set_nodelay(true);
            let direction = Direction::Outbound(torrent);
            (self.host).opened(&mut self.net, addr, direction, |net, id| {
                net.attach(token, id)
            });
            return;
        }
        if ready.readable || ready.failed {
            // Reading finds out what the error or hang-up was and closes the socket.
            conn.read_ready = true;
        }
        if ready.writable {
            match (conn.flush(), conn.conn_id()) {
                (Ok(n), Some(id)) if n > 0 => self.host.sent(&mut self.net, id, n),
                (Ok(_), _) => {}
                (Err(_), _) => self.close_socket(token, PeerGone::WriteFailed),
            }
        }
    }

    /// Hands waiting datagrams to the session, a burst at a time, and carries out its
    /// actions once after the burst (so a uTP stream is acknowledged once per burst).
    fn read_datagrams(&mut self) {
        let mut handed = 0;
        while handed < DATAGRAM_BURST {
            let host = &mut self.host;
            match (self.udp_rx).recv(&self.net.udp, |from, bytes| {
                host.datagram_in_burst(from, bytes)
            }) {
                Ok(n) => handed += n.max(1),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.udp_ready = false;
                    break;
                }
                // ICMP errors from earlier sends surface here on Linux: skip them.
                Err(_) => handed += 1,
            }
        }
        self.host.pump(&mut self.net);
    }

    /// Hands waiting LSD announces to the session, a burst at a time (the session
    /// rate-limits each sender; the burst bounds the loop's time on a flood).
    fn read_lsd_datagrams(&mut self) {
        let Some(lsd) = &self.net.lsd else {
            self.lsd_ready = false;
            return;
        };
        let mut buf = [0u8; DATAGRAM_BUFFER];
        let mut got = Vec::new();
        // Ready again only if a socket still had datagrams after its burst (the sockets
        // share one token, so each is read until it would block).
        let mut more = false;
        for socket in &lsd.readers {
            let mut drained = false;
            for _ in 0..DATAGRAM_BURST {
                match socket.recv_from(&mut buf) {
                    Ok((n, from)) => got.push((from, buf[..n].to_vec())),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        drained = true;
                        break;
                    }
                    Err(_) => {}
                }
            }
            more |= !drained;
        }
        self.lsd_ready = more;
        for (from, bytes) in got {
            self.host.lsd_datagram(&mut self.net, from, &bytes);
        }
    }

    /// Reads from sockets that have data, a budget each, feeding the session.
    fn read_ready_sockets(&mut self) {
        let ready: Vec<Token> = (self.net.conns.iter())
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
            let Some(conn) = self.net.conns.get_mut(&token) else {
                return;
            };
            let Some(id) = conn.conn_id() else {
                return;
            };
            match conn.read_once() {
                ReadOutcome::Data(n) => {
                    budget = budget.saturating_sub(n.max(1));
                    // Out of the socket for the call (the pump may touch the socket), and
                    // back in unless the session dropped the connection meanwhile.
                    let mut buf = std::mem::take(conn.recv_buf());
                    self.host.bytes(&mut self.net, id, &mut buf);
                    if let Some(conn) = self.net.conns.get_mut(&token) {
                        *conn.recv_buf() = buf;
                    }
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

    /// The peer went away (or broke): forget the socket and tell the session.
    fn close_socket(&mut self, token: Token, reason: PeerGone) {
        if let Some(id) = self.net.drop_socket(token) {
            self.host.closed(&mut self.net, id, reason);
        }
    }

    fn take_commands(&mut self) {
        while let Ok(cmd) = self.commands.try_recv() {
            if self.host.command(&mut self.net, cmd)
                && let Some(mut l) = self.net.listener.take()
            {
                // Stop taking connections; peers are dropped once disk work drains.
                let _ = self.net.poll.registry().deregister(&mut l);
            }
        }
    }

    fn take_completions(&mut self) {
        self.net.done.drain(&mut self.net.completions);
        while let Some(c) = self.net.completions.pop_front() {
            self.host.completion(&mut self.net, c);
        }
    }

    fn finish_shutdown(&mut self) {
        // Workers finish what is queued and stop, so the final resume save cannot race an
        // older one.
        self.net.disk.stop();
        self.take_completions();
        self.host.finish_shutdown();
        let tokens: Vec<Token> = self.net.conns.keys().copied().collect();
        for t in tokens {
            self.net.drop_socket(t);
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
