//! The mio driver's [`Io`]: the poller, the peer sockets, the UDP socket and the disk
//! workers, doing what the session's actions ask ([`unchoke_driver::pump`] interprets them).
//! Writes queued by one round of actions go out together in [`Io::flush`], so everything
//! one input produced for a peer leaves in one `writev`.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashMap;
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Interest, Poll, Token};
use unchoke_core::session::{ConnId, PeerGone, TorrentId};
use unchoke_driver::announce::AnnounceJob;
use unchoke_driver::dht_node::datagram_destination;
use unchoke_driver::disk::Completion;
use unchoke_driver::udp_batch::DatagramSender;
use unchoke_driver::web_seed::WebSeedJob;
use unchoke_driver::{Io, Report, Work};

use crate::conn::{Conn, ConnState};
use crate::disk::DiskPool;
use crate::event_loop::WakerRef;
use crate::handoff::Handoff;

/// Peer sockets get tokens from here up (the lower ones are the loop's own).
pub(crate) const FIRST_PEER: usize = 4;

/// Local service discovery's sockets: those read (registered under the loop's LSD
/// token) and the driver's sender for `SendLsd`.
pub(crate) struct Lsd {
    /// One per group joined.
    pub(crate) readers: Vec<UdpSocket>,
    pub(crate) sender: unchoke_driver::lsd_node::LsdSender,
}

/// Sockets and workers; see the module docs.
pub(crate) struct Net {
    pub(crate) poll: Poll,
    pub(crate) listener: Option<TcpListener>,
    pub(crate) bind_ip: Option<IpAddr>,
    /// The client's UDP socket (the DHT's and UDP trackers' datagrams).
    pub(crate) udp: UdpSocket,
    /// The local service discovery sockets (`None`: LSD off).
    pub(crate) lsd: Option<Lsd>,
    /// Whether `udp` is an IPv6 socket (IPv4 destinations then go out IPv4-mapped).
    udp_v6: bool,
    /// The round's datagrams for `udp`, sent in batches at its end ([`Io::flush`]).
    datagrams: DatagramSender,
    pub(crate) conns: HashMap<Token, Conn>,
    pub(crate) tokens: HashMap<ConnId, Token>,
    pub(crate) next_token: usize,
    pub(crate) disk: DiskPool,
    /// Where workers and announce threads hand completions back.
    pub(crate) done: Arc<Handoff<Completion, WakerRef>>,
    /// Completions taken from `done` (or made here) not yet given to the session.
    pub(crate) completions: VecDeque<Completion>,
    /// Sockets with buffers queued by the current round of actions.
    unflushed: Vec<Token>,
    /// What the sockets did during the current round, for [`Io::flush`].
    reports: Vec<Report>,
}

impl Net {
    /// Sockets and workers, none of the peers' yet.
    pub(crate) fn new(
        poll: Poll,
        listener: Option<TcpListener>,
        bind_ip: Option<IpAddr>,
        udp: UdpSocket,
        lsd: Option<Lsd>,
        disk: DiskPool,
        done: Arc<Handoff<Completion, WakerRef>>,
    ) -> Self {
        let udp_v6 = udp.local_addr().is_ok_and(|a| a.is_ipv6());
        Net {
            poll,
            listener,
            bind_ip,
            udp,
            lsd,
            udp_v6,
            datagrams: DatagramSender::for_session(),
            conns: HashMap::new(),
            tokens: HashMap::new(),
            next_token: FIRST_PEER,
            disk,
            done,
            completions: VecDeque::new(),
            unflushed: Vec::new(),
            reports: Vec::new(),
        }
    }

    /// A token for a new socket.
    pub(crate) fn new_token(&mut self) -> Token {
        let t = Token(self.next_token);
        self.next_token += 1;
        t
    }

    /// Makes an open socket reachable under the session's id for it.
    pub(crate) fn attach(&mut self, token: Token, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(&token) {
            conn.state = ConnState::Open(id);
            // Data may have arrived with the connection: edge-triggered, so look.
            conn.read_ready = true;
            self.tokens.insert(id, token);
        }
    }

    /// Deregisters and closes a socket without telling the session; its session id if
    /// it had one.
    pub(crate) fn drop_socket(&mut self, token: Token) -> Option<ConnId> {
        let mut conn = self.conns.remove(&token)?;
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let id = conn.conn_id()?;
        self.tokens.remove(&id);
        Some(id)
    }

    /// Runs a tracker job on a thread of its own: announces are rare (one per torrent per
    /// interval) but can block for a minute on a silent tracker or slow DNS, which must
    /// hold up neither the loop nor the disk workers.
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

    /// Runs a web seed's range requests on a thread of their own (the session bounds how
    /// many are out at once: `web_seed_requests` per web seed).
    fn web_seed(&mut self, job: WebSeedJob) {
        let fallback = job.failure("cannot start a thread for the web seed request");
        let done = self.done.clone();
        let spawned = std::thread::Builder::new()
            .name("unchoke-webseed".into())
            .spawn(move || done.push(job.run()));
        if spawned.is_err() {
            self.completions.push_back(fallback);
        }
    }

    /// Registers a dialling socket for `torrent`.
    fn dial(&mut self, torrent: TorrentId, addr: SocketAddr) -> std::io::Result<()> {
        let std_stream = unchoke_driver::connect_nonblocking(addr, self.bind_ip)?;
        let mut stream = TcpStream::from_std(std_stream);
        let token = self.new_token();
        self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let conn = Conn::new(stream, addr, ConnState::Connecting { torrent });
        self.conns.insert(token, conn);
        Ok(())
    }
}

impl Io for Net {
    /// Queues the buffers; they are written in [`Io::flush`].
    fn send(&mut self, conn: ConnId, first: Bytes, second: Option<Bytes>) {
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

    fn connect(&mut self, torrent: TorrentId, addr: SocketAddr) {
        if let Err(error) = self.dial(torrent, addr) {
            self.reports.push(Report::ConnectFailed {
                torrent,
                addr,
                error,
            });
        }
    }

    fn cancel_connect(&mut self, torrent: TorrentId, addr: SocketAddr) {
        let dial = self.conns.iter().find_map(|(t, c)| match c.state {
            ConnState::Connecting { torrent: d } if d == torrent && c.addr == addr => Some(*t),
            _ => None,
        });
        if let Some(token) = dial {
            self.drop_socket(token);
        }
    }

    fn disconnect(&mut self, conn: ConnId) {
        if let Some(token) = self.tokens.get(&conn).copied() {
            if let Some(c) = self.conns.get_mut(&token) {
                // Best effort: whatever is queued (e.g. a final message) goes out.
                let _ = c.flush();
            }
            self.drop_socket(token);
        }
    }

    fn send_datagram(&mut self, to: SocketAddr, bytes: Bytes) {
        // Sent with the round's others in `flush`; a full socket buffer loses it, as the
        // network may.
        let to = datagram_destination(self.udp_v6, to);
        self.datagrams.push(to, bytes);
    }

    fn send_lsd(&mut self, to: SocketAddr, bytes: Bytes) {
        if let Some(lsd) = &self.lsd {
            // Lost if the socket is full: the session announces again in 5 minutes.
            let _ = lsd.sender.send(to, &bytes);
        }
    }

    fn spawn(&mut self, work: Work) {
        match work {
            Work::Disk(job) => self.disk.submit(job),
            Work::Tracker(job) => self.announce(job),
            Work::WebSeed(job) => self.web_seed(job),
        }
    }

    /// Writes what the round queued. Its disk jobs wait in the pool until the event loop's
    /// iteration ends ([`DiskPool::flush`] before `poll`): one iteration reads up to a
    /// budget from every ready socket, so the writer thread is woken once per iteration
    /// for a batch of blocks instead of once per read.
    fn flush(&mut self) -> Vec<Report> {
        if !self.datagrams.is_empty() {
            self.datagrams.flush(&self.udp);
        }
        while let Some(token) = self.unflushed.pop() {
            let Some(c) = self.conns.get_mut(&token) else {
                continue;
            };
            match (c.flush(), c.conn_id()) {
                (Ok(n), Some(id)) if n > 0 => self.reports.push(Report::Sent(id, n)),
                (Ok(_), _) => {}
                (Err(_), _) => {
                    if let Some(id) = self.drop_socket(token) {
                        self.reports.push(Report::Closed(id, PeerGone::WriteFailed));
                    }
                }
            }
        }
        std::mem::take(&mut self.reports)
    }
}
