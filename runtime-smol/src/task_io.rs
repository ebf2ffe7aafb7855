//! The smol driver's [`Io`]: its peer sockets (a reader and a writer task each), the UDP
//! socket, and disk and tracker work on smol's blocking pool, doing what the session's
//! actions ask ([`unchoke_driver::pump`] interprets them). Block reads queued by one round
//! of actions go to the pool together, block writes in merged batches with one in flight.

use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hashbrown::HashMap;
use smol::channel::Sender;
use smol::{Async, LocalExecutor, Task};
use unchoke_core::session::{ConnId, PeerGone, TorrentId};
use unchoke_driver::dht_node::datagram_destination;
use unchoke_driver::disk::{Completion, Job, ReadCache, run, write_merged};
use unchoke_driver::lsd_node::LsdSender;
use unchoke_driver::udp_batch::DatagramSender;
use unchoke_driver::{Io, Report, Work};

use crate::peer_io::{self, NetEvent, Token};

/// One socket as the session task sees it.
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    /// `None` while our dial is in progress (then `dialling` says for which torrent).
    pub(crate) id: Option<ConnId>,
    pub(crate) dialling: Option<TorrentId>,
    /// What arrived and the session has not consumed yet (a partial message).
    pub(crate) recv: BytesMut,
    writer: Option<Sender<Bytes>>,
    /// The reader (or the dial); dropping it cancels the task.
    task: Option<Task<()>>,
}

/// Sockets and blocking work; see the module docs.
pub(crate) struct TaskIo {
    /// Socket and completion tasks run on this executor, on the session task's own thread:
    /// handing a chunk from a reader to the session is then a same-thread channel send,
    /// not a cross-thread wake-up (which cost a futex call per 64 KiB).
    ex: Rc<LocalExecutor<'static>>,
    bind_ip: Option<IpAddr>,
    pub(crate) peers: HashMap<Token, Peer>,
    tokens: HashMap<ConnId, Token>,
    next_token: Token,
    net_tx: Sender<NetEvent>,
    sent_tx: Sender<(Token, usize)>,
    done_tx: Sender<Completion>,
    cache: Arc<ReadCache>,
    /// Writes waiting for the batch in flight to finish (they merge into the next one).
    writes: Vec<Job>,
    /// Blocks of the write batch in flight not yet reported written (0: none in flight).
    pub(crate) writing: usize,
    /// Block reads queued by one round of actions, sent to the blocking pool together.
    reads: Vec<Job>,
    /// The client's UDP socket, for the DHT, UDP trackers and uTP (non-blocking: sends
    /// never wait).
    udp: Arc<Async<UdpSocket>>,
    /// The round's datagrams for `udp`, sent in batches at its end ([`Io::flush`]).
    datagrams: DatagramSender,
    /// Where local service discovery announces go (`None`: LSD off); the readers are the
    /// session task's.
    lsd: Option<LsdSender>,
    /// Whether `udp` is an IPv6 socket (IPv4 destinations then go out IPv4-mapped).
    udp_v6: bool,
    /// What the sockets did during the current round, for [`Io::flush`].
    reports: Vec<Report>,
}

impl TaskIo {
    /// No sockets yet; socket tasks report on `net_tx` and `sent_tx`, work on `done_tx`.
    pub(crate) fn new(
        ex: Rc<LocalExecutor<'static>>,
        bind_ip: Option<IpAddr>,
        udp: Arc<Async<UdpSocket>>,
        lsd: Option<LsdSender>,
        net_tx: Sender<NetEvent>,
        sent_tx: Sender<(Token, usize)>,
        done_tx: Sender<Completion>,
    ) -> Self {
        TaskIo {
            ex,
            bind_ip,
            peers: HashMap::new(),
            tokens: HashMap::new(),
            next_token: 0,
            net_tx,
            sent_tx,
            done_tx,
            cache: Arc::new(ReadCache::default()),
            writes: Vec::new(),
            writing: 0,
            reads: Vec::new(),
            udp_v6: udp.get_ref().local_addr().is_ok_and(|a| a.is_ipv6()),
            udp,
            datagrams: DatagramSender::for_session(),
            lsd,
            reports: Vec::new(),
        }
    }

    /// A token for a new socket.
    pub(crate) fn new_token(&mut self) -> Token {
        self.next_token += 1;
        self.next_token
    }

    /// Starts the reader and writer of an open socket, known to the session as `id`.
    pub(crate) fn start_peer(
        &mut self,
        token: Token,
        addr: SocketAddr,
        id: ConnId,
        stream: Async<TcpStream>,
    ) {
        let stream = Arc::new(stream);
        let (writer, queue) = smol::channel::unbounded();
        let net = self.net_tx.clone();
        let reader = self
            .ex
            .spawn(peer_io::read_loop(token, stream.clone(), net));
        // The writer ends by itself once its queue closes (after writing what is queued).
        let (sent, net) = (self.sent_tx.clone(), self.net_tx.clone());
        (self.ex)
            .spawn(peer_io::write_loop(token, stream, queue, sent, net))
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

    /// Forgets a socket: its reader is cancelled and its writer's queue closed.
    pub(crate) fn forget(&mut self, token: Token) -> Option<Peer> {
        let mut p = self.peers.remove(&token)?;
        if let Some(id) = p.id {
            self.tokens.remove(&id);
        }
        p.writer = None;
        p.task = None;
        Some(p)
    }

    /// One job on smol's blocking pool; its completion comes back on `done`.
    fn spawn_blocking(&self, job: impl FnOnce() -> Vec<Completion> + Send + 'static) {
        let done = self.done_tx.clone();
        self.ex
            .spawn(async move {
                for c in smol::unblock(job).await {
                    let _ = done.send(c).await;
                }
            })
            .detach();
    }

    /// A batch of disk jobs (writes merged) on the blocking pool.
    fn spawn_batch(&self, batch: Vec<Job>) {
        let cache = self.cache.clone();
        self.spawn_blocking(move || {
            let mut out = Vec::new();
            write_merged(batch, &cache, |c| out.push(c));
            out
        });
    }
}

impl Io for TaskIo {
    fn send(&mut self, conn: ConnId, first: Bytes, second: Option<Bytes>) {
        let Some(&token) = self.tokens.get(&conn) else {
            return;
        };
        let Some(writer) = self.peers.get(&token).and_then(|p| p.writer.as_ref()) else {
            return;
        };
        let mut ok = writer.try_send(first).is_ok();
        if let Some(second) = second {
            ok &= writer.try_send(second).is_ok();
        }
        if !ok {
            self.forget(token);
            self.reports
                .push(Report::Closed(conn, PeerGone::WriteFailed));
        }
    }

    fn connect(&mut self, torrent: TorrentId, addr: SocketAddr) {
        let token = self.new_token();
        let dial = peer_io::connect(token, addr, self.bind_ip, self.net_tx.clone());
        let task = self.ex.spawn(dial);
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

    fn cancel_connect(&mut self, torrent: TorrentId, addr: SocketAddr) {
        let dial = (self.peers.iter())
            .find_map(|(t, p)| (p.dialling == Some(torrent) && p.addr == addr).then_some(*t));
        if let Some(token) = dial {
            self.forget(token); // drops the dialling task
        }
    }

    fn disconnect(&mut self, conn: ConnId) {
        if let Some(&token) = self.tokens.get(&conn) {
            self.forget(token);
        }
    }

    fn send_datagram(&mut self, to: SocketAddr, bytes: Bytes) {
        // Sent with the round's others in `flush`; a full socket buffer loses it, as the
        // network may. A dual-stack socket reaches IPv4 addresses in their IPv4-mapped form.
        let to = datagram_destination(self.udp_v6, to);
        self.datagrams.push(to, bytes);
    }

    fn send_lsd(&mut self, to: SocketAddr, bytes: Bytes) {
        if let Some(lsd) = &self.lsd {
            // Lost if the socket is full: the session announces again in 5 minutes.
            let _ = lsd.send(to, &bytes);
        }
    }

    fn spawn(&mut self, work: Work) {
        match work {
            Work::Disk(job @ Job::Write { .. }) => self.writes.push(job),
            Work::Disk(job @ Job::Read { .. }) => self.reads.push(job),
            Work::Disk(job) => {
                let cache = self.cache.clone();
                self.spawn_blocking(move || vec![run(job, &cache)]);
            }
            // It blocks on name resolution and on the tracker.
            Work::Tracker(job) => self.spawn_blocking(move || vec![job.run()]),
            Work::WebSeed(job) => self.spawn_blocking(move || vec![job.run()]),
        }
    }

    /// Hands the round's block reads to the pool together (one hand-off per batch, not per
    /// 16 KiB block), and its writes as one merged batch unless one is in flight (then
    /// they wait and merge into the next: the same effect as the mio driver's writer).
    fn flush(&mut self) -> Vec<Report> {
        if !self.datagrams.is_empty() {
            self.datagrams.flush(self.udp.get_ref());
        }
        if !self.reads.is_empty() {
            let batch = std::mem::take(&mut self.reads);
            self.spawn_batch(batch);
        }
        if self.writing == 0 && !self.writes.is_empty() {
            self.writing = self.writes.len();
            let batch = std::mem::take(&mut self.writes);
            self.spawn_batch(batch);
        }
        std::mem::take(&mut self.reports)
    }
}
