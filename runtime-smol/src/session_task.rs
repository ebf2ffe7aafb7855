//! The session task: turns socket events, completions, commands and the session's deadline
//! into input for the shared [`SessionHost`] (which owns the core's `Session` and its
//! bookkeeping, and carries out the session's actions through [`TaskIo`], this driver's
//! [`unchoke_driver::Io`]). No protocol rule lives here.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use smol::channel::{Receiver, Sender};
use smol::{Async, LocalExecutor, Task, Timer};
use unchoke_core::session::Direction;
use unchoke_driver::dht_node::{DATAGRAM_BUFFER, DATAGRAM_BURST};
use unchoke_driver::disk::Completion;
use unchoke_driver::lsd_node::{LsdOff, open_lsd};
use unchoke_driver::udp_batch::{DatagramReceiver, enable_receive_offload, offload_wanted};
use unchoke_driver::{ClientConfig, ClientEvent, Command, Report, SessionHost};

use crate::peer_io::{self, NetEvent, Token};
use crate::task_io::TaskIo;

/// Socket events buffered between the socket tasks and the session task; a reader waits
/// while it is full. Download memory is the session's (`max_unwritten_bytes`): it stops
/// requesting, and the readers keep reading.
const NET_QUEUE: usize = 64;
/// Datagrams buffered between the UDP reader and the session task; beyond this the
/// reader drops them, as a full socket buffer would.
const DATAGRAM_QUEUE: usize = DATAGRAM_BURST;

enum Input {
    Command(Command),
    Net(NetEvent),
    Done(Completion),
    /// A socket's writer handed this many bytes to the kernel.
    Sent(Token, usize),
    Datagram(SocketAddr, Vec<u8>),
    /// A datagram on the local service discovery socket.
    LsdDatagram(SocketAddr, Vec<u8>),
    Tick,
    ClientGone,
}

pub(crate) struct SessionTask {
    host: SessionHost,
    io: TaskIo,
    commands: Receiver<Command>,
    net_rx: Receiver<NetEvent>,
    sent_rx: Receiver<(Token, usize)>,
    done_rx: Receiver<Completion>,
    dgram_rx: Receiver<(SocketAddr, Vec<u8>)>,
    /// Announces from the LSD socket's reader (never sends without an LSD socket).
    lsd_rx: Receiver<(SocketAddr, Vec<u8>)>,
    listener: Option<Task<()>>,
    /// The UDP socket's reader (it ends with the task).
    _udp_reader: Task<()>,
    /// The LSD sockets' readers, one per group joined (they end with the task).
    _lsd_readers: Vec<Task<()>>,
}

impl SessionTask {
    pub(crate) fn new(
        ex: Rc<LocalExecutor<'static>>,
        cfg: ClientConfig,
        listener: Option<Async<std::net::TcpListener>>,
        udp: Async<UdpSocket>,
        commands: Receiver<Command>,
        events: crossbeam_channel::Sender<ClientEvent>,
    ) -> Self {
        let local_addr = listener
            .as_ref()
            .and_then(|l| l.get_ref().local_addr().ok());
        let (net_tx, net_rx) = smol::channel::bounded(NET_QUEUE);
        let (done_tx, done_rx) = smol::channel::unbounded();
        let (sent_tx, sent_rx) = smol::channel::unbounded();
        let listener = listener.map(|l| ex.spawn(peer_io::accept_loop(l, net_tx.clone())));
        let (dgram_tx, dgram_rx) = smol::channel::bounded(DATAGRAM_QUEUE);
        let udp_addr = udp.get_ref().local_addr().ok();
        // Runs of datagrams arrive as one read (UDP GRO), split by the reader.
        if offload_wanted() {
            enable_receive_offload(udp.get_ref());
        }
        let udp = Arc::new(udp);
        let udp_reader = ex.spawn(read_session_datagrams(udp.clone(), dgram_tx));
        // Local service discovery's sockets, when asked for and they can be set up: a
        // failure only leaves that group (or LSD) out (the events say why).
        let (lsd_sockets, mut cfg, lsd_events) = open_lsd(&cfg, local_addr);
        for e in lsd_events {
            let _ = events.try_send(e);
        }
        let lsd = lsd_sockets.and_then(|l| {
            let readers = l.readers.into_iter().map(Async::new);
            match readers.collect::<std::io::Result<Vec<_>>>() {
                Ok(readers) => Some((readers, l.sender)),
                Err(e) => {
                    let _ = events.try_send(ClientEvent::Lsd(Err(LsdOff {
                        group: None,
                        reason: format!("cannot poll the LSD socket: {e}"),
                    })));
                    None
                }
            }
        });
        cfg.lsd = lsd.is_some();
        let (lsd_tx, lsd_rx) = smol::channel::bounded(DATAGRAM_QUEUE);
        let (lsd_readers, lsd_sender) = match lsd {
            Some((readers, sender)) => {
                let tasks = readers
                    .into_iter()
                    .map(|s| ex.spawn(read_datagrams(Arc::new(s), lsd_tx.clone())))
                    .collect();
                (tasks, Some(sender))
            }
            None => (Vec::new(), None),
        };
        let bind_ip: Option<IpAddr> = cfg.listen.map(|a| a.ip()).filter(|ip| !ip.is_unspecified());
        SessionTask {
            host: SessionHost::new(&cfg, local_addr, udp_addr, events),
            io: TaskIo::new(ex, bind_ip, udp, lsd_sender, net_tx, sent_tx, done_tx),
            commands,
            net_rx,
            sent_rx,
            done_rx,
            dgram_rx,
            lsd_rx,
            listener,
            _udp_reader: udp_reader,
            _lsd_readers: lsd_readers,
        }
    }

    /// Runs until shutdown completes (also when the client handle vanished).
    pub(crate) async fn run(mut self) {
        loop {
            match self.next_input().await {
                Input::Command(c) => {
                    if self.host.command(&mut self.io, c) {
                        self.listener = None; // stop taking connections
                    }
                }
                Input::Net(e) => {
                    self.net_event(e);
                    // Take what else is already there, while the disk keeps up.
                    for _ in 0..NET_QUEUE {
                        match self.net_rx.try_recv() {
                            Ok(e) => self.net_event(e),
                            Err(_) => break,
                        }
                    }
                }
                Input::Done(c) => self.completion(c),
                Input::Sent(token, n) => {
                    // Everything the writers sent since the last look, in one round.
                    let peers = &self.io.peers;
                    let sent = std::iter::once((token, n))
                        .chain(std::iter::from_fn(|| self.sent_rx.try_recv().ok()));
                    let reports = sent
                        .filter_map(|(t, n)| Some(Report::Sent(peers.get(&t)?.id?, n)))
                        .collect();
                    self.host.reports(&mut self.io, reports);
                }
                Input::Datagram(from, data) => {
                    // The backlog as one burst (at most DATAGRAM_QUEUE), its actions
                    // carried out once after it: a uTP stream is then acknowledged once
                    // per burst rather than once per packet.
                    self.host.datagram_in_burst(from, &data);
                    for _ in 1..DATAGRAM_QUEUE {
                        let Ok((from, data)) = self.dgram_rx.try_recv() else {
                            break;
                        };
                        self.host.datagram_in_burst(from, &data);
                    }
                    self.host.pump(&mut self.io);
                }
                Input::LsdDatagram(from, data) => {
                    self.host.lsd_datagram(&mut self.io, from, &data);
                    while let Ok((from, data)) = self.lsd_rx.try_recv() {
                        self.host.lsd_datagram(&mut self.io, from, &data);
                    }
                }
                Input::Tick => {}
                Input::ClientGone => {
                    let (reply, _) = crossbeam_channel::bounded(1);
                    self.host.begin_shutdown(&mut self.io, reply);
                    self.listener = None;
                }
            }
            while let Ok(c) = self.done_rx.try_recv() {
                self.completion(c);
            }
            self.host.timers(&mut self.io);
            if self.host.shutting_down() && !self.host.draining() && self.io.writing == 0 {
                break;
            }
        }
        self.host.finish_shutdown();
        let tokens: Vec<Token> = self.io.peers.keys().copied().collect();
        for t in tokens {
            self.io.forget(t);
        }
    }

    async fn next_input(&self) -> Input {
        let timeout = self.host.timeout();
        let commands = async {
            match self.commands.recv().await {
                Ok(c) => Input::Command(c),
                Err(_) => Input::ClientGone,
            }
        };
        let done = async {
            match self.done_rx.recv().await {
                Ok(c) => Input::Done(c),
                Err(_) => std::future::pending().await,
            }
        };
        let net = async {
            if self.host.shutting_down() {
                return std::future::pending().await;
            }
            match self.net_rx.recv().await {
                Ok(e) => Input::Net(e),
                Err(_) => std::future::pending().await,
            }
        };
        let sent = async {
            match self.sent_rx.recv().await {
                Ok((token, n)) => Input::Sent(token, n),
                Err(_) => std::future::pending().await,
            }
        };
        let tick = async {
            Timer::after(timeout).await;
            Input::Tick
        };
        // Also while leaving, as in the mio driver: UDP trackers answer `stopped` here.
        let datagrams = async {
            match self.dgram_rx.recv().await {
                Ok((from, data)) => Input::Datagram(from, data),
                Err(_) => std::future::pending().await,
            }
        };
        let lsd = async {
            if self.host.shutting_down() {
                return std::future::pending().await;
            }
            match self.lsd_rx.recv().await {
                Ok((from, data)) => Input::LsdDatagram(from, data),
                Err(_) => std::future::pending().await,
            }
        };
        let tick = smol::future::or(lsd, tick);
        smol::future::or(
            commands,
            smol::future::or(
                done,
                smol::future::or(
                    net,
                    smol::future::or(sent, smol::future::or(datagrams, tick)),
                ),
            ),
        )
        .await
    }

    fn net_event(&mut self, e: NetEvent) {
        let io = &mut self.io;
        match e {
            NetEvent::Accepted { stream, addr } => {
                if self.host.shutting_down() {
                    return; // dropped: closes the socket
                }
                // The session may refuse it (admission): its Disconnect closes it.
                let token = io.new_token();
                let attach = |io: &mut TaskIo, id| io.start_peer(token, addr, id, stream);
                self.host.opened(io, addr, Direction::Inbound, attach);
            }
            NetEvent::Connected { token, result } => {
                let Some(torrent) = io.peers.get(&token).and_then(|p| p.dialling) else {
                    return;
                };
                let Some(p) = io.peers.remove(&token) else {
                    return;
                };
                match result {
                    Ok(stream) => {
                        let attach = |io: &mut TaskIo, id| io.start_peer(token, p.addr, id, stream);
                        let direction = Direction::Outbound(torrent);
                        self.host.opened(io, p.addr, direction, attach);
                    }
                    Err(e) => self.host.connect_error(io, torrent, p.addr, &e),
                }
            }
            NetEvent::Data { token, data } => received(&mut self.host, io, token, data),
            NetEvent::Closed { token, reason } => {
                // The socket ended on its own: tell the session.
                if let Some(id) = io.forget(token).and_then(|p| p.id) {
                    self.host.closed(io, id, reason);
                }
            }
        }
    }

    fn completion(&mut self, c: Completion) {
        if let Completion::Written { .. } = c {
            self.io.writing = self.io.writing.saturating_sub(1);
        }
        self.host.completion(&mut self.io, c);
    }
}

/// Reads the session's UDP socket (DHT, UDP trackers, uTP) a run of datagrams at a time
/// (GRO) and hands them to the session task one by one. The channel's bound holds the
/// backlog in the kernel's buffer, as in [`read_datagrams`]. Ends with the task.
async fn read_session_datagrams(
    socket: Arc<Async<UdpSocket>>,
    to_session: Sender<(SocketAddr, Vec<u8>)>,
) {
    let mut rx = DatagramReceiver::new();
    let mut run = Vec::new();
    loop {
        let read = socket
            .read_with(|s| rx.recv(s, |from, bytes| run.push((from, bytes.to_vec()))))
            .await;
        if read.is_err() {
            // ICMP errors from earlier sends surface here on Linux: skip them, pausing
            // briefly so an error that repeats cannot spin this thread.
            smol::Timer::after(std::time::Duration::from_millis(10)).await;
        }
        for datagram in run.drain(..) {
            if to_session.send(datagram).await.is_err() {
                return;
            }
        }
    }
}

/// Reads a UDP socket's datagrams (the LSD sockets) and hands them to the session task. When the task is behind by [`DATAGRAM_QUEUE`] datagrams this waits, so
/// the backlog stays in the socket's (large, `bind_udp_socket`) kernel buffer, which
/// drops only when that is full: dropping here instead lost uTP packets whenever the
/// session task paused for a moment, and each loss halves a uTP window. Ends with the task.
async fn read_datagrams(socket: Arc<Async<UdpSocket>>, to_session: Sender<(SocketAddr, Vec<u8>)>) {
    let mut buf = vec![0u8; DATAGRAM_BUFFER];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                if to_session.send((from, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
            // ICMP errors from earlier sends surface here on Linux: skip them, pausing
            // briefly so an error that repeats cannot spin this thread.
            Err(_) => {
                smol::Timer::after(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// Most times one chunk is split to finish a partial message before it is copied whole.
const MAX_FINISHING_STEPS: usize = 2;

/// Feeds a chunk from a peer's reader task to the session, behind what the session left
/// unconsumed of the previous one.
///
/// The two are joined in O(1) when they are neighbours in one allocation (`unsplit`). When
/// the reader has moved on to a new allocation they are not, and joining would copy the
/// whole new chunk (up to 256 KiB) behind the leftover: ~9 % of a leecher's CPU. Instead
/// only the bytes that finish the leftover's message are copied onto it
/// ([`unchoke_core::wire::bytes_to_finish_message`]); once the session has consumed that
/// message the rest of the chunk goes over in place.
fn received(host: &mut SessionHost, io: &mut TaskIo, token: Token, mut data: BytesMut) {
    let mut steps = 0;
    loop {
        let Some(p) = io.peers.get_mut(&token) else {
            return;
        };
        let Some(id) = p.id else {
            return;
        };
        // Out of the peer for the call (the pump may forget it), and back in unless the
        // session dropped the connection meanwhile.
        let mut recv = std::mem::take(&mut p.recv);
        let neighbours = recv.as_ptr() as usize + recv.len() == data.as_ptr() as usize;
        let finish = (!recv.is_empty() && !neighbours && steps < MAX_FINISHING_STEPS)
            .then(|| unchoke_core::wire::bytes_to_finish_message(&recv))
            .flatten()
            .filter(|&n| n < data.len());
        let rest = match finish {
            Some(n) => {
                recv.extend_from_slice(&data.split_to(n));
                steps += 1;
                Some(data)
            }
            None if recv.is_empty() => {
                recv = data;
                None
            }
            None => {
                recv.unsplit(data);
                None
            }
        };
        host.bytes(io, id, &mut recv);
        if let Some(p) = io.peers.get_mut(&token) {
            p.recv = recv;
        }
        match rest {
            Some(more) => data = more,
            None => return,
        }
    }
}
