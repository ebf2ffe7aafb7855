//! The session task: owns the core's `Session` and everything about sockets and disk jobs
//! in flight; turns socket events, disk completions, commands and the core's deadline into
//! session input, and session actions into queued writes and `smol::unblock` disk jobs.
//! No protocol rule lives here.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant as StdInstant};

use bytes::{Bytes, BytesMut};
use hashbrown::HashMap;
use smol::channel::{Receiver, Sender};
use smol::{Async, LocalExecutor, Task, Timer};
use unchoke_core::InfoHash;
use unchoke_core::bitfield::Bitfield;
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{Action, AddTorrentError, ConnId, Direction, Session, TorrentId};
use unchoke_core::storage::FileStorage;
use unchoke_core::torrent::TorrentStats;
use unchoke_driver::disk::{Completion, Job, ReadCache, run, save_resume_now, write_merged};
use unchoke_driver::{ClientConfig, ClientEvent, Clock, ShutdownReport};

use crate::peer_io::{self, NetEvent, Token};

/// A peer that lets this much of our data pile up unread is dropped.
const MAX_QUEUED_SEND: usize = 16 << 20;
/// Socket events buffered between the socket tasks and the session task; when the session
/// stops taking them (disk backpressure) the readers stop reading.
pub(crate) const NET_QUEUE: usize = 64;
/// Longest wait for input, so a lost wake-up can never stall the session for long.
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// How long shutdown waits for queued disk work.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(30);

/// Requests from the [`crate::Client`] handle; replies go back on crossbeam channels the
/// blocking caller waits on.
pub(crate) enum Command {
    AddTorrent {
        metainfo: Box<Metainfo>,
        storage: Arc<FileStorage>,
        have: Bitfield,
        resume_path: PathBuf,
        peers: Vec<SocketAddr>,
        reply: crossbeam_channel::Sender<Result<TorrentId, AddTorrentError>>,
    },
    AddPeers {
        torrent: TorrentId,
        peers: Vec<SocketAddr>,
    },
    Stats {
        torrent: TorrentId,
        reply: crossbeam_channel::Sender<Option<TorrentStats>>,
    },
    Shutdown {
        reply: crossbeam_channel::Sender<Vec<ShutdownReport>>,
    },
}

/// One socket as the session task sees it.
struct Peer {
    addr: SocketAddr,
    inbound: bool,
    /// `None` while our dial is in progress (then `dialling` says for which torrent).
    id: Option<ConnId>,
    dialling: Option<TorrentId>,
    recv: BytesMut,
    writer: Option<Sender<Bytes>>,
    queued: Arc<AtomicUsize>,
    /// Dropping a task handle cancels the task (and with it the socket's reading side).
    tasks: Vec<Task<()>>,
}

struct TorrentSlot {
    storage: Arc<FileStorage>,
    info_hash: InfoHash,
    resume_path: PathBuf,
    saved_have: u32,
    saving: bool,
}

enum Input {
    Command(Command),
    Net(NetEvent),
    Done(Completion),
    Tick,
    ClientGone,
}

pub(crate) struct SessionTask {
    /// Socket and disk-completion tasks run on this executor, on the session task's own
    /// thread: handing a chunk from a reader to the session is then a same-thread channel
    /// send, not a cross-thread wake-up (which cost a futex call per 64 KiB).
    ex: Rc<LocalExecutor<'static>>,
    session: Session,
    /// Block reads for uploads queued since the last batch went to the blocking pool.
    reads: Vec<Job>,
    clock: Clock,
    cfg: ClientConfig,
    bind_ip: Option<IpAddr>,
    peers: HashMap<Token, Peer>,
    tokens: HashMap<ConnId, Token>,
    next_token: Token,
    inbound: usize,
    torrents: HashMap<TorrentId, TorrentSlot>,
    commands: Receiver<Command>,
    net_tx: Sender<NetEvent>,
    net_rx: Receiver<NetEvent>,
    done_tx: Sender<Completion>,
    done_rx: Receiver<Completion>,
    events: crossbeam_channel::Sender<ClientEvent>,
    cache: Arc<ReadCache>,
    /// Writes waiting for the writer batch in flight to finish (merged into the next one).
    writes: Vec<Job>,
    /// Blocks of the write batch in flight not yet reported written (0: none in flight).
    writing: usize,
    pending_write_bytes: usize,
    jobs_in_flight: usize,
    listener: Option<Task<()>>,
    next_resume_save: StdInstant,
    shutdown: Option<(crossbeam_channel::Sender<Vec<ShutdownReport>>, StdInstant)>,
}

impl SessionTask {
    pub(crate) fn new(
        ex: Rc<LocalExecutor<'static>>,
        cfg: ClientConfig,
        listener: Option<Async<std::net::TcpListener>>,
        listen_port: u16,
        commands: Receiver<Command>,
        events: crossbeam_channel::Sender<ClientEvent>,
    ) -> Self {
        let mut session_cfg = cfg.session.clone();
        session_cfg.listen_port = listen_port;
        let clock = Clock::start();
        let seed = cfg.rng_seed.unwrap_or_else(|| fastrand::u64(..));
        let (net_tx, net_rx) = smol::channel::bounded(NET_QUEUE);
        let (done_tx, done_rx) = smol::channel::unbounded();
        let listener = listener.map(|l| ex.spawn(peer_io::accept_loop(l, net_tx.clone())));
        SessionTask {
            ex,
            reads: Vec::new(),
            session: Session::new(session_cfg, seed, clock.now()),
            clock,
            bind_ip: cfg.listen.map(|a| a.ip()).filter(|ip| !ip.is_unspecified()),
            next_resume_save: StdInstant::now() + cfg.resume_interval,
            cfg,
            peers: HashMap::new(),
            tokens: HashMap::new(),
            next_token: 0,
            inbound: 0,
            torrents: HashMap::new(),
            commands,
            net_tx,
            net_rx,
            done_tx,
            done_rx,
            events,
            cache: Arc::new(ReadCache::default()),
            writes: Vec::new(),
            writing: 0,
            pending_write_bytes: 0,
            jobs_in_flight: 0,
            listener,
            shutdown: None,
        }
    }

    /// Runs until shutdown completes (or the client handle is dropped without one).
    pub(crate) async fn run(mut self) {
        loop {
            let input = self.next_input().await;
            match input {
                Input::Command(c) => self.command(c),
                Input::Net(e) => {
                    self.net_event(e);
                    // Take what else is already there, while the disk keeps up.
                    while !self.backpressured() {
                        match self.net_rx.try_recv() {
                            Ok(e) => self.net_event(e),
                            Err(_) => break,
                        }
                    }
                }
                Input::Done(c) => self.completion(c),
                Input::Tick => {}
                Input::ClientGone => {
                    if self.shutdown.is_none() {
                        let (reply, _) = crossbeam_channel::bounded(1);
                        self.shutdown = Some((reply, StdInstant::now() + SHUTDOWN_DRAIN));
                        self.listener = None;
                    }
                }
            }
            while let Ok(c) = self.done_rx.try_recv() {
                self.completion(c);
            }
            self.timers();
            self.pump();
            if self.try_finish_shutdown() {
                return;
            }
        }
    }

    async fn next_input(&self) -> Input {
        let now = StdInstant::now();
        let mut deadline = now + MAX_SLEEP;
        if let Some(t) = self.session.poll_timeout() {
            deadline = deadline.min(self.clock.to_std(t));
        }
        deadline = deadline.min(self.next_resume_save);
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
            if self.backpressured() || self.shutdown.is_some() {
                return std::future::pending().await;
            }
            match self.net_rx.recv().await {
                Ok(e) => Input::Net(e),
                Err(_) => std::future::pending().await,
            }
        };
        let tick = async {
            Timer::at(deadline).await;
            Input::Tick
        };
        smol::future::or(
            commands,
            smol::future::or(done, smol::future::or(net, tick)),
        )
        .await
    }

    fn backpressured(&self) -> bool {
        self.pending_write_bytes >= self.cfg.max_pending_disk_bytes
    }

    fn emit(&self, event: ClientEvent) {
        // A full backlog means the user is not reading events: this one is lost (counters
        // stay available through `stats`).
        let _ = self.events.try_send(event);
    }

    fn new_token(&mut self) -> Token {
        self.next_token += 1;
        self.next_token
    }

    fn net_event(&mut self, e: NetEvent) {
        match e {
            NetEvent::Accepted { stream, addr } => {
                if self.shutdown.is_some() || self.inbound >= self.cfg.max_inbound {
                    return; // dropped: closes the socket
                }
                let id = self
                    .session
                    .connection_opened(addr, Direction::Inbound, self.clock.now());
                let token = self.new_token();
                self.inbound += 1;
                self.start_peer(token, addr, true, Some(id), stream);
                self.emit(ClientEvent::PeerConnected {
                    addr,
                    inbound: true,
                });
            }
            NetEvent::Connected { token, result } => {
                let Some(p) = self.peers.get(&token) else {
                    return;
                };
                let (addr, torrent) = (p.addr, p.dialling);
                let Some(torrent) = torrent else {
                    return;
                };
                match result {
                    Ok(stream) => {
                        let id = self.session.connection_opened(
                            addr,
                            Direction::Outbound(torrent),
                            self.clock.now(),
                        );
                        self.peers.remove(&token);
                        self.start_peer(token, addr, false, Some(id), stream);
                        self.emit(ClientEvent::PeerConnected {
                            addr,
                            inbound: false,
                        });
                    }
                    Err(e) => {
                        self.peers.remove(&token);
                        self.emit(ClientEvent::ConnectFailed {
                            addr,
                            reason: e.to_string(),
                        });
                        self.session.connect_failed(torrent, addr, self.clock.now());
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
                let now = self.clock.now();
                self.session.handle_bytes(id, &mut p.recv, now);
            }
            NetEvent::Closed { token, reason } => self.close_peer(token, &reason),
        }
        self.pump();
    }

    fn start_peer(
        &mut self,
        token: Token,
        addr: SocketAddr,
        inbound: bool,
        id: Option<ConnId>,
        stream: Async<TcpStream>,
    ) {
        let stream = Arc::new(stream);
        let (writer, queue) = smol::channel::unbounded();
        let queued = Arc::new(AtomicUsize::new(0));
        let tasks = vec![
            self.ex.spawn(peer_io::read_loop(
                token,
                stream.clone(),
                self.net_tx.clone(),
            )),
            self.ex.spawn(peer_io::write_loop(
                token,
                stream,
                queue,
                queued.clone(),
                self.net_tx.clone(),
            )),
        ];
        if let Some(id) = id {
            self.tokens.insert(id, token);
        }
        self.peers.insert(
            token,
            Peer {
                addr,
                inbound,
                id,
                dialling: None,
                recv: BytesMut::new(),
                writer: Some(writer),
                queued,
                tasks,
            },
        );
    }

    /// The socket ended on its own: tell the session.
    fn close_peer(&mut self, token: Token, reason: &str) {
        let Some(p) = self.forget(token) else {
            return;
        };
        if let Some(id) = p.id {
            self.emit(ClientEvent::PeerDisconnected {
                addr: p.addr,
                reason: reason.to_string(),
            });
            self.session.connection_closed(id, self.clock.now());
        }
    }

    /// Forgets a socket; dropping its tasks closes it. The writer is told to stop by its
    /// queue closing, after writing what is queued (a final message still goes out).
    fn forget(&mut self, token: Token) -> Option<Peer> {
        let mut p = self.peers.remove(&token)?;
        if let Some(id) = p.id {
            self.tokens.remove(&id);
        }
        if p.inbound {
            self.inbound -= 1;
        }
        p.writer = None;
        // Cancel the reader now; let the writer finish on its own.
        if !p.tasks.is_empty() {
            let reader = p.tasks.remove(0);
            drop(reader);
            for t in p.tasks.drain(..) {
                t.detach();
            }
        }
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
        let len = first.len() + second.as_ref().map_or(0, Bytes::len);
        // Counted before the writer can see the buffers, so its subtraction never comes
        // first.
        let queued = p
            .queued
            .fetch_add(len, Ordering::Relaxed)
            .saturating_add(len);
        let mut ok = writer.try_send(first).is_ok();
        if let Some(second) = second {
            ok &= writer.try_send(second).is_ok();
        }
        if !ok {
            self.close_peer(token, "write failed");
        } else if queued > MAX_QUEUED_SEND {
            self.close_peer(token, "the peer does not read what it asked for");
        }
    }

    fn connect(&mut self, torrent: TorrentId, addr: SocketAddr) {
        let token = self.new_token();
        let task = self.ex.spawn(peer_io::connect(
            token,
            addr,
            self.bind_ip,
            self.cfg.connect_timeout,
            self.net_tx.clone(),
        ));
        self.peers.insert(
            token,
            Peer {
                addr,
                inbound: false,
                id: None,
                dialling: Some(torrent),
                recv: BytesMut::new(),
                writer: None,
                queued: Arc::new(AtomicUsize::new(0)),
                tasks: vec![task],
            },
        );
    }

    fn pump(&mut self) {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Send { conn, data } => self.send(conn, data, None),
                Action::SendBlock { conn, header, data } => self.send(conn, header, Some(data)),
                Action::Connect { torrent, addr } => self.connect(torrent, addr),
                Action::Disconnect { conn, reason } => {
                    if let Some(&token) = self.tokens.get(&conn)
                        && let Some(p) = self.forget(token)
                    {
                        self.emit(ClientEvent::PeerDisconnected {
                            addr: p.addr,
                            reason: reason.to_string(),
                        });
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
                        self.writes.push(Job::Write {
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
                        self.reads.push(Job::Read {
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
                } => self.run_job(Job::Verify {
                    torrent,
                    piece,
                    expected,
                    blocks,
                }),
                Action::Event(event) => self.emit(ClientEvent::Session(event)),
            }
        }
        self.start_write_batch();
        self.start_read_batch();
    }

    /// Block reads queued by one round of actions go to the blocking pool together: one
    /// hand-off per batch instead of one per 16 KiB block (most are slices of a cached
    /// piece, so the hand-off would dominate).
    fn start_read_batch(&mut self) {
        if self.reads.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.reads);
        let (cache, done) = (self.cache.clone(), self.done_tx.clone());
        self.ex
            .spawn(async move {
                let results = smol::unblock(move || {
                    batch
                        .into_iter()
                        .map(|job| run(job, &cache))
                        .collect::<Vec<_>>()
                })
                .await;
                for c in results {
                    let _ = done.send(c).await;
                }
            })
            .detach();
    }

    /// One job on smol's blocking pool; its completion comes back on `done`.
    fn run_job(&mut self, job: Job) {
        self.jobs_in_flight += 1;
        let (cache, done) = (self.cache.clone(), self.done_tx.clone());
        self.ex
            .spawn(async move {
                let c = smol::unblock(move || run(job, &cache)).await;
                let _ = done.send(c).await;
            })
            .detach();
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
        let now = self.clock.now();
        match c {
            Completion::Written {
                torrent,
                piece,
                len,
                result,
            } => {
                self.jobs_in_flight -= 1;
                self.writing = self.writing.saturating_sub(1);
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

    fn command(&mut self, c: Command) {
        match c {
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
                    self.listener = None;
                }
            }
        }
    }

    fn timers(&mut self) {
        let now = self.clock.now();
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
        let now_std = StdInstant::now();
        if now_std >= self.next_resume_save {
            self.next_resume_save = now_std + self.cfg.resume_interval;
            if self.shutdown.is_none() {
                self.save_resume_in_background();
            }
        }
    }

    fn save_resume_in_background(&mut self) {
        let mut jobs = Vec::new();
        for (&id, slot) in self.torrents.iter_mut() {
            let Some(have) = self.session.have(id) else {
                continue;
            };
            if slot.saving || have.count_ones() == slot.saved_have {
                continue;
            }
            slot.saving = true;
            slot.saved_have = have.count_ones();
            jobs.push(Job::SaveResume {
                torrent: id,
                storage: slot.storage.clone(),
                path: slot.resume_path.clone(),
                info_hash: slot.info_hash,
                have: have.clone(),
            });
        }
        for job in jobs {
            let (cache, done) = (self.cache.clone(), self.done_tx.clone());
            // Not counted in `jobs_in_flight`: the session does not wait for it.
            self.ex
                .spawn(async move {
                    let c = smol::unblock(move || run(job, &cache)).await;
                    let _ = done.send(c).await;
                })
                .detach();
        }
    }

    /// Once disk work the session waits for has drained (or the wait ran out): save resume
    /// data, drop every socket, reply. Returns whether the task is done.
    fn try_finish_shutdown(&mut self) -> bool {
        let Some((_, deadline)) = &self.shutdown else {
            return false;
        };
        let busy = self.jobs_in_flight > 0 || self.torrents.values().any(|t| t.saving);
        if busy && StdInstant::now() < *deadline {
            return false;
        }
        let now = self.clock.now();
        let mut ids: Vec<TorrentId> = self.torrents.keys().copied().collect();
        ids.sort();
        let mut reports = Vec::new();
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
        let tokens: Vec<Token> = self.peers.keys().copied().collect();
        for t in tokens {
            self.forget(t);
        }
        if let Some((reply, _)) = self.shutdown.take() {
            let _ = reply.send(reports);
        }
        true
    }
}
