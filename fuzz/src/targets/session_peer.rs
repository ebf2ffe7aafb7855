//! The `session_peer` target: one hostile peer against a whole `Session`.
//!
//! A session holds a small torrent (8 pieces of 32 KiB, the even ones already verified) and
//! accepts one inbound connection whose handshake is valid. After that the input is a
//! schedule (decoded with `arbitrary`) of raw byte chunks, well-formed messages with
//! arbitrary fields, clock ticks, disk completions and hash results — so the fuzzer reaches
//! both the decoder's error paths and the deep protocol paths.
//!
//! Invariants checked after every step:
//! 1. Nothing panics; the session stays usable (`poll_timeout` is always some instant).
//! 2. We never request a piece the peer has not announced (`bitfield`/`have`/`have all`),
//!    nor one we already have, and never outside the torrent.
//! 3. Reads queued for upload stay within `max_queued_uploads`; we only upload pieces we
//!    have, and only blocks inside the torrent.
//! 4. A `WriteBlock` is only ever for a piece we requested something of; a `VerifyPiece`
//!    always carries exactly the piece's length.
//! 5. After `handle_bytes`, the receive buffer holds less than one maximal message (complete
//!    messages are consumed), unless the connection was closed.
//! 6. A verified piece is never lost: the set of pieces we have only grows.
//! 7. A ban needs evidence: the peer is banned only after at least `max_strikes` hash
//!    failures were reported (each a piece it sent alone), or after it sent two different
//!    versions of one block (the smart ban's proof, once the piece verifies).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;

use super::fixture::{PIECE_LEN, PIECES, fixture, read_result, verify_answer, write_result};
use arbitrary::{Arbitrary, Unstructured};
use bytes::{Bytes, BytesMut};
use sha1::{Digest, Sha1};
use unchoke_core::bitfield::Bitfield;
use unchoke_core::session::{Action, ConnId, Direction, Event, Session, SessionConfig, TorrentId};
use unchoke_core::time::Instant;
use unchoke_core::wire::{
    self, BlockRequest, Decoder, ExtensionHandshake, Handshake, Limits, Message, PeerId, Reserved,
};

/// One thing the hostile peer or the world does.
#[derive(Arbitrary, Debug)]
enum Step {
    /// Raw bytes on the connection.
    Bytes(Vec<u8>),
    /// A well-formed message built from arbitrary fields.
    Message { kind: u8, a: u32, b: u32, c: u16 },
    /// Time passes (in units of 100 ms).
    Tick(u16),
    /// The oldest pending disk read completes (with right-sized data, or an error).
    ReadDone { fail: bool },
    /// The oldest pending disk write completes.
    WriteDone { fail: bool },
    /// The oldest pending verification completes (with its true result, or lying).
    Hashed { lie: bool },
    /// The connection closes.
    Close,
}

struct World {
    session: Session,
    torrent: TorrentId,
    conn: ConnId,
    open: bool,
    now: Instant,
    content: Vec<u8>,
    reads: VecDeque<(ConnId, BlockRequest)>,
    writes: VecDeque<u32>,
    hashes: VecDeque<(u32, bool)>,
    /// What the peer announced, decoded from the stream we fed the session.
    peer_has: Bitfield,
    /// The connection's receive buffer: like a driver's, it keeps a partial message
    /// between calls.
    recv: BytesMut,
    fed: BytesMut,
    fed_decoder: Decoder,
    fed_handshake_done: bool,
    requested: BTreeSet<u32>,
    have_before: Bitfield,
    /// Hash failures reported to the session (true ones and lies).
    failures_reported: u32,
    /// The SHA-1 of the first version of each block the peer sent, by (piece, offset).
    block_versions: BTreeMap<(u32, u32), [u8; 20]>,
    /// Whether the peer sent some block twice with different bytes.
    two_versions: bool,
}

/// Runs the session against the schedule decoded from `data`. Panics on a broken invariant.
pub fn session_peer(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(steps) = Vec::<Step>::arbitrary(&mut u) else {
        return;
    };
    let (content, meta) = fixture();
    let content = content.clone();
    let now = Instant::from_secs(1);
    let mut session = Session::new(SessionConfig::default(), 7, now);
    let mut have = Bitfield::new(PIECES);
    for p in (0..PIECES).step_by(2) {
        have.set(p);
    }
    let torrent = session
        .add_torrent(meta, Some(have.clone()), now)
        .expect("torrent added");
    let addr: SocketAddr = "127.0.0.9:51413".parse().expect("address");
    let conn = session.connection_opened(addr, Direction::Inbound, now);
    let mut world = World {
        session,
        torrent,
        conn,
        open: true,
        now,
        content,
        reads: VecDeque::new(),
        writes: VecDeque::new(),
        hashes: VecDeque::new(),
        peer_has: Bitfield::new(PIECES),
        recv: BytesMut::new(),
        fed: BytesMut::new(),
        fed_decoder: Decoder::new(
            wire::PieceGeometry::new(u64::from(PIECES * PIECE_LEN), PIECE_LEN),
            Limits::default(),
        ),
        fed_handshake_done: false,
        requested: BTreeSet::new(),
        have_before: have,
        failures_reported: 0,
        block_versions: BTreeMap::new(),
        two_versions: false,
    };
    let mut hs = BytesMut::new();
    Handshake {
        reserved: Reserved::NONE.with_fast().with_extension_protocol(),
        info_hash: meta.info_hash,
        peer_id: PeerId(*b"-XX0001-hostilepeer!"),
    }
    .encode(&mut hs);
    world.feed(&hs);
    for step in steps {
        if std::env::var_os("UNCHOKE_FUZZ_DEBUG").is_some() {
            eprintln!("step: {step:?}");
        }
        world.step(step);
        world.drain();
        world.check();
    }
}

impl World {
    fn feed(&mut self, bytes: &[u8]) {
        if !self.open {
            return;
        }
        // Track what the peer claims, decoding the stream exactly as the session will.
        self.fed.extend_from_slice(bytes);
        if !self.fed_handshake_done && self.fed.len() >= wire::HANDSHAKE_LEN {
            let _ = self.fed.split_to(wire::HANDSHAKE_LEN);
            self.fed_handshake_done = true;
        }
        if self.fed_handshake_done {
            while let Ok(Some(m)) = self.fed_decoder.decode(&mut self.fed) {
                match m {
                    Message::Have { index } => {
                        self.peer_has.set(index);
                    }
                    Message::HaveAll => self.peer_has = Bitfield::full(PIECES),
                    Message::Piece { index, begin, data } => {
                        let digest: [u8; 20] = Sha1::digest(&data).into();
                        let first = *self.block_versions.entry((index, begin)).or_insert(digest);
                        self.two_versions |= first != digest;
                    }
                    Message::Bitfield(bits) => {
                        if let Ok(b) = Bitfield::from_bytes(&bits, PIECES) {
                            self.peer_has = b;
                        }
                    }
                    _ => {}
                }
            }
        }
        self.recv.extend_from_slice(bytes);
        self.session
            .handle_bytes(self.conn, &mut self.recv, self.now);
        self.drain();
        if self.open {
            let max = Decoder::new(None, Limits::default()).max_message_len() as usize + 4;
            let left = self.recv.len();
            assert!(
                left < max.max(wire::HANDSHAKE_LEN),
                "{left} bytes left unconsumed"
            );
        }
    }

    fn step(&mut self, step: Step) {
        let now = self.now;
        match step {
            Step::Bytes(b) => self.feed(&b),
            Step::Message { kind, a, b, c } => {
                let index = a % (PIECES + 1); // sometimes one past the end
                let begin = (b % (PIECE_LEN / wire::MAX_BLOCK_LEN + 1)) * wire::MAX_BLOCK_LEN;
                let req = BlockRequest {
                    index,
                    begin,
                    length: u32::from(c).clamp(1, wire::MAX_BLOCK_LEN),
                };
                let m = match kind % 14 {
                    0 => Message::Choke,
                    1 => Message::Unchoke,
                    2 => Message::Interested,
                    3 => Message::NotInterested,
                    4 => Message::Have { index },
                    5 => {
                        let mut bits = Bitfield::new(PIECES);
                        for p in 0..PIECES {
                            if a & (1 << p) != 0 {
                                bits.set(p);
                            }
                        }
                        Message::Bitfield(Bytes::from(bits.to_bytes()))
                    }
                    6 => Message::Request(req),
                    7 => Message::Cancel(req),
                    8 => {
                        let start = (index.min(PIECES - 1) * PIECE_LEN + begin) as usize;
                        let end = (start + wire::MAX_BLOCK_LEN as usize).min(self.content.len());
                        let mut data = self.content[start.min(end)..end].to_vec();
                        if c % 5 == 0 {
                            data.iter_mut().for_each(|x| *x ^= 0x55);
                        }
                        Message::Piece {
                            index: index.min(PIECES - 1),
                            begin,
                            data: Bytes::from(data),
                        }
                    }
                    9 => Message::HaveAll,
                    10 => Message::HaveNone,
                    11 => Message::RejectRequest(req),
                    12 => ExtensionHandshake {
                        reqq: Some(a),
                        ..ExtensionHandshake::default()
                    }
                    .to_message(),
                    _ => Message::KeepAlive,
                };
                let mut buf = BytesMut::new();
                m.encode(&mut buf);
                self.feed(&buf);
            }
            Step::Tick(units) => {
                self.now = now + std::time::Duration::from_millis(u64::from(units) * 100);
                self.session.handle_timeout(self.now);
            }
            Step::ReadDone { fail } => {
                if let Some((conn, block)) = self.reads.pop_front() {
                    let result = read_result(&self.content, block, fail);
                    self.session.disk_read_done(conn, block, result, now);
                }
            }
            Step::WriteDone { fail } => {
                if let Some(piece) = self.writes.pop_front() {
                    let result = write_result(fail);
                    self.session
                        .disk_write_done(self.torrent, piece, result, now);
                }
            }
            Step::Hashed { lie } => {
                if let Some((piece, ok)) = self.hashes.pop_front() {
                    if ok == lie {
                        self.failures_reported += 1;
                    }
                    self.session
                        .piece_hashed(self.torrent, piece, ok != lie, now);
                }
            }
            Step::Close => {
                if self.open {
                    self.open = false;
                    self.session.connection_closed(self.conn, now);
                }
            }
        }
    }

    fn drain(&mut self) {
        let our_decoder = Decoder::new(None, Limits::default());
        while let Some(action) = self.session.poll_action() {
            if std::env::var_os("UNCHOKE_FUZZ_DEBUG").is_some() {
                eprintln!("  action: {action:?}");
            }
            match action {
                Action::Send { conn, data } => {
                    assert_eq!(conn, self.conn);
                    self.check_sent(&our_decoder, &data);
                }
                Action::SendBlock { conn, header, data } => {
                    assert_eq!(conn, self.conn);
                    assert_eq!(header.len(), wire::PIECE_HEADER_LEN);
                    let index = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
                    assert!(
                        self.session
                            .have(self.torrent)
                            .is_some_and(|h| h.get(index)),
                        "uploaded piece {index} we lack"
                    );
                    assert!(data.len() <= wire::MAX_BLOCK_LEN as usize);
                }
                Action::Disconnect { conn, .. } => {
                    assert_eq!(conn, self.conn);
                    self.open = false;
                }
                Action::ReadBlock { conn, block, .. } => {
                    assert!(
                        self.session
                            .have(self.torrent)
                            .is_some_and(|h| h.get(block.index))
                    );
                    assert!(block.index < PIECES && block.begin + block.length <= PIECE_LEN);
                    self.reads.push_back((conn, block));
                    assert!(
                        self.reads.len() <= self.session.config().max_queued_uploads,
                        "{} reads queued",
                        self.reads.len()
                    );
                }
                Action::WebSeedRequest { .. } => {
                    panic!("a torrent without web seeds asked one")
                }
                Action::WriteBlock { piece, data, .. } => {
                    assert!(
                        self.requested.contains(&piece),
                        "wrote unrequested piece {piece}"
                    );
                    assert!(!data.is_empty() && data.len() <= wire::MAX_BLOCK_LEN as usize);
                    self.writes.push_back(piece);
                }
                Action::VerifyPiece {
                    piece,
                    expected,
                    blocks,
                    ..
                } => {
                    let ok = verify_answer(piece, &expected, &blocks);
                    self.hashes.push_back((piece, ok));
                }
                Action::SaveResume {
                    torrent,
                    have,
                    written,
                } => {
                    assert!(
                        have.ones().all(|p| written.get(p)),
                        "a verified piece not counted as written"
                    );
                    self.session.resume_saved(torrent, true, self.now);
                }
                Action::SendDatagram { .. } => panic!("a session without a DHT sent a datagram"),
                Action::SendLsd { .. } => panic!("a session without LSD sent an announce"),
                Action::Connect { .. }
                | Action::CancelConnect { .. }
                | Action::Announce { .. }
                | Action::Resolve { .. } => {}
                Action::Event(Event::PeerBanned { .. }) => {
                    assert!(
                        self.two_versions
                            || self.failures_reported >= self.session.config().max_strikes,
                        "banned after {} hash failures without proof",
                        self.failures_reported
                    );
                }
                Action::Event(_) => {}
            }
        }
    }

    /// Checks what we send the peer: requests only for pieces it has and we lack.
    fn check_sent(&mut self, decoder: &Decoder, data: &Bytes) {
        let mut buf = BytesMut::from(&data[..]);
        if buf.len() >= wire::HANDSHAKE_LEN && buf.starts_with(b"\x13BitTorrent protocol") {
            let _ = buf.split_to(wire::HANDSHAKE_LEN);
        }
        while let Ok(Some(m)) = decoder.decode(&mut buf) {
            if let Message::Request(r) = m {
                assert!(r.index < PIECES, "request outside the torrent");
                assert!(
                    self.peer_has.get(r.index),
                    "requested piece {} the peer never announced",
                    r.index
                );
                assert!(
                    !self
                        .session
                        .have(self.torrent)
                        .is_some_and(|h| h.get(r.index)),
                    "requested piece {} we have",
                    r.index
                );
                self.requested.insert(r.index);
            }
        }
    }

    fn check(&mut self) {
        assert!(self.session.poll_timeout().is_some());
        let have = self.session.have(self.torrent).expect("torrent").clone();
        for p in self.have_before.ones() {
            assert!(have.get(p), "verified piece {p} lost");
        }
        self.have_before = have;
    }
}
