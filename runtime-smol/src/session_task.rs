//! The session task: turns socket events, disk completions, commands and the core's
//! deadline into input for the shared [`SessionHost`] (which owns the core's `Session`
//! and its bookkeeping), and the host's [`IoAction`]s into queued writes, dials and
//! `smol::unblock` disk jobs. No protocol rule lives here.

use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hashbrown::HashMap;
use smol::channel::{Receiver, Sender};
use smol::{Async, LocalExecutor, Task, Timer};
use unchoke_core::session::{ConnId, Direction, PeerGone, TorrentId};
use unchoke_driver::announce::AnnounceJob;
use unchoke_driver::dht_node::{DATAGRAM_BUFFER, DATAGRAM_BURST};
use unchoke_driver::disk::{Completion, Job, ReadCache, run, write_merged};
use unchoke_driver::{ClientConfig, ClientEvent, Command, IoAction, SessionHost};

use crate::peer_io::{self, NetEvent, Token};

/// Socket events buffered between the socket tasks and the session task; a reader waits
/// while it is full. Download memory is the session's (`max_unwritten_bytes`): it stops
/// requesting, and the readers keep reading.
const NET_QUEUE: usize = 64;
/// DHT datagrams buffered between the UDP reader and the session task; beyond this the
/// reader drops them, as a full socket buffer would.
const DATAGRAM_QUEUE: usize = DATAGRAM_BURST;

/// One socket as the session task sees it.
struct Peer {
    addr: SocketAddr,
    /// `None` while our dial is in progress (then `dialling` says for which torrent).
    id: Option<ConnId>,
    dialling: Option<TorrentId>,
    recv: BytesMut,
    writer: Option<Sender<Bytes>>,
    /// The reader (or the dial); dropping it cancels the task.
    task: Option<Task<()>>,
}

enum Input {
    Command(Command),
    Net(NetEvent),
    Done(Completion),
    /// A socket's writer handed this many bytes to the kernel.
    Sent(Token, usize),
    Datagram(SocketAddr, Vec<u8>),
    Tick,
    ClientGone,
}

pub(crate) struct SessionTask {
    /// Socket and disk-completion tasks run on this executor, on the session task's own
    /// thread: handing a chunk from a reader to the session is then a same-thread channel
    /// send, not a cross-thread wake-up (which cost a futex call per 64 KiB).
    ex: Rc<LocalExecutor<'static>>,
    host: SessionHost,
    bind_ip: Option<IpAddr>,
    peers: HashMap<Token, Peer>,
    tokens: HashMap<ConnId, Token>,
    next_token: Token,
    commands: Receiver<Command>,
    net_tx: Sender<NetEvent>,
    net_rx: Receiver<NetEvent>,
    sent_tx: Sender<(Token, usize)>,
    sent_rx: Receiver<(Token, usize)>,
    done_tx: Sender<Completion>,
    done_rx: Receiver<Completion>,
    cache: Arc<ReadCache>,
    /// Writes waiting for the batch in flight to finish (they merge into the next one).
    writes: Vec<Job>,
    /// Blocks of the write batch in flight not yet reported written (0: none in flight).
    writing: usize,
    /// Block reads queued by one round of actions, sent to the blocking pool together.
    reads: Vec<Job>,
    listener: Option<Task<()>>,
    /// The client's UDP socket, for the DHT and UDP trackers (sends go straight out: it
    /// is non-blocking), and its reader.
    dht: Option<(Arc<Async<UdpSocket>>, Task<()>)>,
    dgram_rx: Receiver<(SocketAddr, Vec<u8>)>,
}

impl SessionTask {
    pub(crate) fn new(
        ex: Rc<LocalExecutor<'static>>,
        cfg: ClientConfig,
        listener: Option<Async<std::net::TcpListener>>,
        dht: Option<Async<UdpSocket>>,
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
        let dht = dht.map(|socket| {
            let socket = Arc::new(socket);
            let reader = ex.spawn(read_datagrams(socket.clone(), dgram_tx));
            (socket, reader)
        });
        SessionTask {
            ex,
            host: SessionHost::new(&cfg, local_addr, events),
            bind_ip: cfg.listen.map(|a| a.ip()).filter(|ip| !ip.is_unspecified()),
            peers: HashMap::new(),
            tokens: HashMap::new(),
            next_token: 0,
            commands,
            net_tx,
            net_rx,
            sent_tx,
            sent_rx,
            done_tx,
            done_rx,
            cache: Arc::new(ReadCache::default()),
            writes: Vec::new(),
            writing: 0,
            reads: Vec::new(),
            listener,
            dht,
            dgram_rx,
        }
    }

    /// Runs until shutdown completes (also when the client handle vanished).
    pub(crate) async fn run(mut self) {
        loop {
            match self.next_input().await {
                Input::Command(c) => {
                    if self.host.command(c) {
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
                    self.sent(token, n);
                    while let Ok((token, n)) = self.sent_rx.try_recv() {
                        self.sent(token, n);
                    }
                }
                Input::Datagram(from, data) => {
                    let now = self.host.now();
                    self.host.session().handle_datagram(from, &data, now);
                    while let Ok((from, data)) = self.dgram_rx.try_recv() {
                        self.host.session().handle_datagram(from, &data, now);
                    }
                }
                Input::Tick => {}
                Input::ClientGone => {
                    let (reply, _) = crossbeam_channel::bounded(1);
                    self.host.begin_shutdown(reply);
                    self.listener = None;
                }
            }
            while let Ok(c) = self.done_rx.try_recv() {
                self.completion(c);
            }
            self.host.timers();
            self.pump();
            if self.host.shutting_down() && !self.host.draining() && self.writing == 0 {
                break;
            }
        }
        self.host.finish_shutdown();
        let tokens: Vec<Token> = self.peers.keys().copied().collect();
        for t in tokens {
            self.forget(t);
        }
    }

    async fn next_input(&self) -> Input {
        let deadline = self.host.deadline();
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
            Timer::at(deadline).await;
            Input::Tick
        };
        let datagrams = async {
            if self.host.shutting_down() {
                return std::future::pending().await;
            }
            match self.dgram_rx.recv().await {
                Ok((from, data)) => Input::Datagram(from, data),
                Err(_) => std::future::pending().await,
            }
        };
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

    fn new_token(&mut self) -> Token {
        self.next_token += 1;
        self.next_token
    }

    fn net_event(&mut self, e: NetEvent) {
        let now = self.host.now();
        match e {
            NetEvent::Accepted { stream, addr } => {
                if self.host.shutting_down() {
                    return; // dropped: closes the socket
                }
                // The session may refuse it (admission): its Disconnect closes it.
                let id = self
                    .host
                    .session()
                    .connection_opened(addr, Direction::Inbound, now);
                let token = self.new_token();
                self.start_peer(token, addr, id, stream);
            }
            NetEvent::Connected { token, result } => {
                let Some(torrent) = self.peers.get(&token).and_then(|p| p.dialling) else {
                    return;
                };
                let Some(p) = self.peers.remove(&token) else {
                    return;
                };
                match result {
                    Ok(stream) => {
                        let id = self.host.session().connection_opened(
                            p.addr,
                            Direction::Outbound(torrent),
                            now,
                        );
                        self.start_peer(token, p.addr, id, stream);
                    }
                    Err(e) => {
                        let timeout = self.host.session_config().connect_timeout;
                        let reason = unchoke_driver::connect_failure(&e, timeout);
                        self.host
                            .session()
                            .handle_connect_error(torrent, p.addr, reason, now);
                    }
                }
            }
            NetEvent::Data { token, data } => {
                let Some(p) = self.peers.get_mut(&token) else {
                    return;
                };
                let Some(id) = p.id else {
                    return;
                };
                if p.recv.is_empty() {
                    p.recv = data;
                } else {
                    // O(1) when the new chunk follows the leftover in memory (the usual
                    // case: both come from the reader's same allocation); a copy otherwise.
                    p.recv.unsplit(data);
                }
                self.host.session().handle_bytes(id, &mut p.recv, now);
            }
            NetEvent::Closed { token, reason } => self.close_peer(token, reason),
        }
        self.pump();
    }

    fn start_peer(&mut self, token: Token, addr: SocketAddr, id: ConnId, stream: Async<TcpStream>) {
        let stream = Arc::new(stream);
        let (writer, queue) = smol::channel::unbounded();
        let reader = self.ex.spawn(peer_io::read_loop(
            token,
            stream.clone(),
            self.net_tx.clone(),
        ));
        // The writer ends by itself once its queue closes (after writing what is queued).
        self.ex
            .spawn(peer_io::write_loop(
                token,
                stream,
                queue,
                self.sent_tx.clone(),
                self.net_tx.clone(),
            ))
            .detach();
        self.tokens.insert(id, token);
        self.peers.insert(
            token,
            Peer {
                addr,
                id: Some(id),
                dialling: None,
                recv: BytesMut::new(),
                writer: Some(writer),
                task: Some(reader),
            },
        );
    }

    /// The socket ended on its own: tell the session.
    fn close_peer(&mut self, token: Token, reason: PeerGone) {
        let Some(p) = self.forget(token) else {
            return;
        };
        if let Some(id) = p.id {
            let now = self.host.now();
            self.host.session().handle_closed(id, reason, now);
        }
    }

    /// A socket's writer handed `n` bytes to the kernel: tell the session.
    fn sent(&mut self, token: Token, n: usize) {
        if let Some(id) = self.peers.get(&token).and_then(|p| p.id) {
            let now = self.host.now();
            self.host.session().handle_sent(id, n, now);
        }
    }

    /// Forgets a socket: its reader is cancelled and its writer's queue closed.
    fn forget(&mut self, token: Token) -> Option<Peer> {
        let mut p = self.peers.remove(&token)?;
        if let Some(id) = p.id {
            self.tokens.remove(&id);
        }
        p.writer = None;
        p.task = None;
        Some(p)
    }

    fn send(&mut self, conn: ConnId, first: Bytes, second: Option<Bytes>) {
        let Some(&token) = self.tokens.get(&conn) else {
            return;
        };
        let Some(p) = self.peers.get(&token) else {
            return;
        };
        let Some(writer) = &p.writer else {
            return;
        };
        let mut ok = writer.try_send(first).is_ok();
        if let Some(second) = second {
            ok &= writer.try_send(second).is_ok();
        }
        if !ok {
            self.close_peer(token, PeerGone::WriteFailed);
        }
    }

    fn connect(&mut self, torrent: TorrentId, addr: SocketAddr) {
        let token = self.new_token();
        let task = self.ex.spawn(peer_io::connect(
            token,
            addr,
            self.bind_ip,
            self.net_tx.clone(),
        ));
        self.peers.insert(
            token,
            Peer {
                addr,
                id: None,
                dialling: Some(torrent),
                recv: BytesMut::new(),
                writer: None,
                task: Some(task),
            },
        );
    }

    fn pump(&mut self) {
        while let Some(io) = self.host.poll_io() {
            match io {
                IoAction::Send {
                    conn,
                    first,
                    second,
                } => self.send(conn, first, second),
                IoAction::Connect { torrent, addr } => self.connect(torrent, addr),
                IoAction::CancelConnect { torrent, addr } => {
                    let dial = self.peers.iter().find_map(|(t, p)| {
                        (p.dialling == Some(torrent) && p.addr == addr).then_some(*t)
                    });
                    if let Some(token) = dial {
                        self.forget(token); // drops the dialling task
                    }
                }
                IoAction::Disconnect { conn, .. } => {
                    if let Some(&token) = self.tokens.get(&conn) {
                        self.forget(token);
                    }
                }
                IoAction::SendDatagram { to, bytes } => {
                    if let Some((socket, _)) = &self.dht {
                        // Non-blocking: a full socket buffer loses it, as the network may.
                        let _ = socket.get_ref().send_to(&bytes, to);
                    }
                }
                IoAction::Disk(job @ Job::Write { .. }) => self.writes.push(job),
                IoAction::Disk(job @ Job::Read { .. }) => self.reads.push(job),
                IoAction::Disk(job) => self.spawn_job(job),
                IoAction::Announce(job) => self.spawn_announce(job),
            }
        }
        self.start_write_batch();
        self.start_read_batch();
    }

    /// One job on smol's blocking pool; its completion comes back on `done`.
    fn spawn_job(&self, job: Job) {
        let (cache, done) = (self.cache.clone(), self.done_tx.clone());
        self.ex
            .spawn(async move {
                let c = smol::unblock(move || run(job, &cache)).await;
                let _ = done.send(c).await;
            })
            .detach();
    }

    /// A tracker announce on smol's blocking pool (it blocks on name resolution and on the
    /// tracker); its completion comes back on `done`.
    fn spawn_announce(&self, job: AnnounceJob) {
        let done = self.done_tx.clone();
        self.ex
            .spawn(async move {
                let c = smol::unblock(move || job.run()).await;
                let _ = done.send(c).await;
            })
            .detach();
    }

    /// Block reads queued by one round of actions go to the blocking pool together: one
    /// hand-off per batch instead of one per 16 KiB block (most are slices of a cached
    /// piece, so the hand-off would dominate).
    fn start_read_batch(&mut self) {
        if self.reads.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.reads);
        self.spawn_batch(batch);
    }

    /// Every write queued so far goes to the blocking pool as one merged batch, unless a
    /// batch is in flight (then they wait and merge into the next): the same effect as the
    /// mio driver's writer thread.
    fn start_write_batch(&mut self) {
        if self.writing > 0 || self.writes.is_empty() {
            return;
        }
        self.writing = self.writes.len();
        let batch = std::mem::take(&mut self.writes);
        self.spawn_batch(batch);
    }

    fn spawn_batch(&self, batch: Vec<Job>) {
        let (cache, done) = (self.cache.clone(), self.done_tx.clone());
        self.ex
            .spawn(async move {
                let results = smol::unblock(move || {
                    let mut out = Vec::new();
                    write_merged(batch, &cache, |c| out.push(c));
                    out
                })
                .await;
                for c in results {
                    let _ = done.send(c).await;
                }
            })
            .detach();
    }

    fn completion(&mut self, c: Completion) {
        if let Completion::Written { .. } = c {
            self.writing = self.writing.saturating_sub(1);
        }
        self.host.completion(c);
        self.pump();
    }
}

/// Reads the DHT's datagrams and hands them to the session task; when the task is behind
/// by [`DATAGRAM_QUEUE`] datagrams, further ones are dropped. Ends with the task.
async fn read_datagrams(socket: Arc<Async<UdpSocket>>, to_session: Sender<(SocketAddr, Vec<u8>)>) {
    let mut buf = vec![0u8; DATAGRAM_BUFFER];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => match to_session.try_send((from, buf[..n].to_vec())) {
                Ok(()) | Err(smol::channel::TrySendError::Full(_)) => {}
                Err(smol::channel::TrySendError::Closed(_)) => return,
            },
            // ICMP errors from earlier sends surface here on Linux: skip them, pausing
            // briefly so an error that repeats cannot spin this thread.
            Err(_) => {
                smol::Timer::after(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
