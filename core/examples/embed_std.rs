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
use unchoke_core::session::{Action, ConnId, Direction, Event, Session, SessionConfig, TorrentId};
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
    /// One turn of the loop — inputs, then timers, then every action, then the sockets'
    /// writes. Returns whether it moved any byte (the caller sleeps a little when not).
    fn turn(&mut self, now: Instant) -> Result<bool, Box<dyn Error>> {
        let (s, mut busy, mut closed) = (&mut self.session, false, Vec::new());
        while let Some((stream, addr)) = self.listener.as_ref().and_then(|l| l.accept().ok()) {
            stream.set_nonblocking(true)?;
            let conn = s.connection_opened(addr, Direction::Inbound, now);
            self.conns.insert(conn, Conn::new(stream));
        }
        let mut chunk = vec![0u8; 64 << 10];
        for (&id, c) in &mut self.conns {
            match c.stream.read(&mut chunk) {
                Ok(0) => closed.push(id),
                Ok(n) => {
                    c.recv.extend_from_slice(&chunk[..n]);
                    s.handle_bytes(id, &mut c.recv, now);
                    busy = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => closed.push(id),
            }
        }
        for id in closed.drain(..) {
            self.conns.remove(&id);
            s.connection_closed(id, now);
        }
        if s.poll_timeout().is_some_and(|deadline| deadline <= now) {
            s.handle_timeout(now);
        }
        while let Some(action) = s.poll_action() {
            match action {
                Action::Send { conn, data } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.send.push_back(data);
                    }
                }
                Action::SendBlock { conn, header, data } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.send.extend([header, data]);
                    }
                }
                Action::Connect { torrent, addr } => match TcpStream::connect(addr) {
                    Ok(stream) => {
                        stream.set_nonblocking(true)?;
                        let conn = s.connection_opened(addr, Direction::Outbound(torrent), now);
                        self.conns.insert(conn, Conn::new(stream));
                    }
                    Err(_) => s.connect_failed(torrent, addr, now),
                },
                // The session has forgotten `conn`: close the socket, drop what it queued.
                Action::Disconnect { conn, .. } => {
                    self.conns.remove(&conn);
                }
                Action::WriteBlock {
                    torrent,
                    piece,
                    offset,
                    data,
                } => {
                    let result = self.store.write_block(piece, offset, &data);
                    s.disk_write_done(torrent, piece, result.map_err(|e| e.to_string()), now);
                }
                Action::ReadBlock { conn, block, .. } => {
                    let result = self.store.read_block(block).map_err(|e| e.to_string());
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
                Action::Event(Event::TorrentComplete { .. }) => self.complete = true,
                // No trackers in the torrent and no DHT configured: nothing else arrives.
                Action::Event(_) | Action::Announce { .. } | Action::SendDatagram { .. } => {}
            }
        }
        for (&id, c) in &mut self.conns {
            while let Some(front) = c.send.front_mut() {
                match c.stream.write(front) {
                    Ok(n) if n > 0 => {
                        front.advance(n);
                        busy = true;
                        if front.is_empty() {
                            c.send.pop_front();
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    _ => {
                        closed.push(id);
                        break;
                    }
                }
            }
        }
        for id in closed {
            self.conns.remove(&id);
            s.connection_closed(id, now);
        }
        Ok(busy)
    }
}

impl Conn {
    fn new(stream: TcpStream) -> Self {
        Conn {
            stream,
            recv: BytesMut::with_capacity(64 << 10),
            send: VecDeque::new(),
        }
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
    let hashes = &metainfo.info.piece_hashes;

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
                hashes.len(),
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
