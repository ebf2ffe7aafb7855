//! Embedding the core in a hand-written loop: two [`Session`]s over plain `std::net` TCP on
//! 127.0.0.1, one seeding and one leeching 4 MiB held in memory.
//!
//! `cargo run --example embed_std -p unchoke-core` exits 0 once the leecher has verified every
//! piece and its bytes equal the original, and 1 on any error or after 30 s.
//!
//! The driver here is what the crate docs' contract asks for and nothing more: it reports
//! facts (a connection opened, bytes read, a disk job done, the deadline passed) and carries
//! out every [`Action`] in the order polled. Its "disk" is a [`MemoryStorage`] that answers at
//! once, so there are never downloaded bytes waiting for a write and it never has to stop
//! reading. Only `Peer::turn` is the loop; the rest is setting up.

use std::collections::{BTreeMap, VecDeque};
use std::error::Error;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use unchoke_core::bytes::{Buf, Bytes, BytesMut};
use unchoke_core::create::{Content, CreateOptions, create};
use unchoke_core::embed::{MemoryStorage, StdClock, verify_piece};
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{
    Action, ConnId, Direction, Event, Session, SessionConfig, TorrentId, WebSeedError,
    WebSeedFailure,
};
use unchoke_core::storage::Layout;
use unchoke_core::time::Instant;

/// The payload's size and piece length: 16 pieces of 256 KiB.
const LEN: usize = 4 << 20;
const PIECE: u32 = 256 << 10;
/// The whole run must finish within this (loopback takes well under a second).
const LIMIT: Duration = Duration::from_secs(30);

/// One TCP connection: the stream, what was read and not yet consumed, what waits to be sent.
struct Conn {
    stream: TcpStream,
    recv: BytesMut,
    send: VecDeque<Bytes>,
}

/// A session with its sockets and its in-memory "disk".
struct Peer {
    session: Session,
    torrent: TorrentId,
    store: MemoryStorage,
    listener: Option<TcpListener>,
    conns: BTreeMap<ConnId, Conn>,
    complete: bool,
}

impl Peer {
    /// One turn of the loop: inputs (new connections, bytes read, the deadline), every
    /// action they produced, then the sockets' writes. Returns whether any byte moved.
    fn turn(&mut self, now: Instant) -> Result<bool, Box<dyn Error>> {
        let (s, mut busy, mut closed) = (&mut self.session, false, Vec::new());
        while let Some((stream, addr)) = self.listener.as_ref().and_then(|l| l.accept().ok()) {
            let conn = s.connection_opened(addr, Direction::Inbound, now);
            self.conns.insert(conn, Conn::new(stream)?);
        }
        for (&id, c) in &mut self.conns {
            match c.fill() {
                Ok(0) => {}
                Ok(_) => {
                    s.handle_bytes(id, &mut c.recv, now);
                    busy = true;
                }
                Err(_) => closed.push(id),
            }
        }
        if s.poll_timeout().is_some_and(|deadline| deadline <= now) {
            s.handle_timeout(now);
        }
        self.drain(closed, now)?;
        let mut closed = Vec::new();
        for (&id, c) in &mut self.conns {
            match c.flush() {
                Ok(wrote) => busy |= wrote,
                Err(_) => closed.push(id),
            }
        }
        self.drain(closed, now)?;
        Ok(busy)
    }

    /// Reports the connections that failed, then carries out every action, in order.
    fn drain(&mut self, closed: Vec<ConnId>, now: Instant) -> Result<(), Box<dyn Error>> {
        for id in closed {
            self.conns.remove(&id);
            self.session.connection_closed(id, now);
        }
        let s = &mut self.session;
        while let Some(action) = s.poll_action() {
            match action {
                Action::Send { conn, data } => queue(&mut self.conns, conn, [data]),
                Action::SendBlock { conn, header, data } => {
                    queue(&mut self.conns, conn, [header, data]);
                }
                // The session has forgotten `conn`: close the socket, drop what it queued.
                Action::Disconnect { conn, .. } => drop(self.conns.remove(&conn)),
                // A blocking connect keeps the example short; loopback answers at once.
                Action::Connect { torrent, addr } => match TcpStream::connect(addr) {
                    Ok(stream) => {
                        let conn = s.connection_opened(addr, Direction::Outbound(torrent), now);
                        self.conns.insert(conn, Conn::new(stream)?);
                    }
                    Err(_) => s.connect_failed(torrent, addr, now),
                },
                Action::WriteBlock {
                    torrent,
                    piece,
                    offset,
                    data,
                } => {
                    let result = self.store.write_block(piece, offset, &data);
                    s.disk_write_done(torrent, piece, result.map_err(Into::into), now);
                }
                Action::ReadBlock { conn, block, .. } => {
                    let result = self.store.read_block(block).map_err(Into::into);
                    s.disk_read_done(conn, block, result, now);
                }
                Action::VerifyPiece {
                    torrent,
                    piece,
                    expected,
                    blocks,
                } => {
                    s.piece_hashed(torrent, piece, verify_piece(&blocks, &expected), now);
                }
                // The store is memory: there is no resume file to write.
                Action::SaveResume { torrent, .. } => s.resume_saved(torrent, true, now),
                Action::Event(Event::TorrentComplete { .. }) => self.complete = true,
                // The example speaks no HTTP: a web seed (none in its torrent) always fails.
                Action::WebSeedRequest {
                    torrent,
                    seed,
                    request,
                    ..
                } => {
                    let failure = WebSeedFailure::Io("no HTTP in this example".into());
                    let error = WebSeedError { range: 0, failure };
                    s.web_seed_failed(torrent, seed, request, error, now);
                }
                // No trackers in the torrent, no DHT and no LSD configured: nothing else arrives
                // (and a blocking dial is never half-open, so none is cancelled).
                Action::Event(_)
                | Action::Announce { .. }
                | Action::SendDatagram { .. }
                | Action::SendLsd { .. }
                | Action::Resolve { .. }
                | Action::CancelConnect { .. } => {}
            }
        }
        Ok(())
    }
}

impl Conn {
    fn new(stream: TcpStream) -> std::io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Conn {
            stream,
            recv: BytesMut::with_capacity(64 << 10),
            send: VecDeque::new(),
        })
    }

    /// Reads what the socket has into `recv`: how many bytes (0: none yet), or an error
    /// when the peer hung up or the socket failed.
    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 << 10];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                self.recv.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Writes as much of the queue as the socket takes; whether it took anything.
    fn flush(&mut self) -> std::io::Result<bool> {
        let mut wrote = false;
        while let Some(front) = self.send.front_mut() {
            match self.stream.write(front) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => front.advance(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
            wrote = true;
            if front.is_empty() {
                self.send.pop_front();
            }
        }
        Ok(wrote)
    }
}

/// Queues buffers to send on `conn`, in order (nothing if it is already closed).
fn queue<const N: usize>(conns: &mut BTreeMap<ConnId, Conn>, conn: ConnId, buffers: [Bytes; N]) {
    if let Some(c) = conns.get_mut(&conn) {
        c.send.extend(buffers);
    }
}

/// Deterministic, incompressible-looking bytes (a xorshift generator).
fn payload() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn run() -> Result<(), Box<dyn Error>> {
    let original = payload();
    let layout = Layout::new(PIECE, [LEN as u64])?;
    let mut seed_store = MemoryStorage::with_content(layout.clone(), original.clone())?;
    let options = CreateOptions {
        piece_length: Some(PIECE),
        ..CreateOptions::new("embed.bin")
    };
    let torrent = create(
        Content::SingleFile { length: LEN as u64 },
        &mut seed_store,
        &options,
    )?;
    let metainfo = Metainfo::from_bytes(&torrent)?;
    let hashes = &unchoke_core::session::PieceHashes::from_metainfo(&metainfo)?;

    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let seed_addr = listener.local_addr()?;
    let clock = StdClock::start();
    let now = clock.now();

    let config = SessionConfig {
        listen_port: seed_addr.port(),
        ..SessionConfig::default()
    };
    let mut session = Session::new(config, 1, now);
    let have = seed_store.verified_pieces(hashes);
    let t = session.add_torrent(&metainfo, Some(have), now)?;
    let mut seeder = Peer::new(session, t, seed_store, Some(listener));

    let mut session = Session::new(SessionConfig::default(), 2, now);
    let t = session.add_torrent(&metainfo, None, now)?;
    session.add_peers(t, &[seed_addr], now);
    let mut leecher = Peer::new(session, t, MemoryStorage::new(layout)?, None);

    while clock.now() < Instant::ZERO + LIMIT {
        let busy = seeder.turn(clock.now())? | leecher.turn(clock.now())?;
        if leecher.complete {
            let all_verified = leecher
                .session
                .have(leecher.torrent)
                .is_some_and(|h| h.is_full());
            let stored = leecher.store.verified_pieces(hashes).is_full();
            if !(all_verified && stored && leecher.store.content() == &original[..]) {
                return Err("the leecher completed but its bytes differ from the original".into());
            }
            println!(
                "leeched {LEN} bytes ({} pieces, all verified) in {:?}",
                hashes.piece_count(),
                clock.now() - now
            );
            return Ok(());
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Err(format!("not complete after {LIMIT:?}").into())
}

impl Peer {
    fn new(
        session: Session,
        torrent: TorrentId,
        store: MemoryStorage,
        listener: Option<TcpListener>,
    ) -> Self {
        Peer {
            session,
            torrent,
            store,
            listener,
            conns: BTreeMap::new(),
            complete: false,
        }
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed_std: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
