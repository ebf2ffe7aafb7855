//! The `session_hostile` target: several hostile peers at once against one `Session`.
//!
//! The input chooses whether the session seeds the 8-piece torrent of
//! [`fixture`](super::fixture) or leeches it (with or without the even pieces), then is a
//! schedule (decoded with `arbitrary`) of connections opened from five loopback IPs, each
//! with a role, and of what they and the world do. Roles: an **honest** peer (one at a
//! time: announces what it has, answers requests with the true blocks, requests normally
//! when it leeches, reads everything), **idle** peers (handshaken, interested or not),
//! **partial** handshakes that never finish, **squatters** reusing the honest peer's id or
//! ours, **slow readers** (they request uploads, but the socket accepts only what
//! `Step::Read` says), **corrupters** (they answer requests with wrong blocks, or only the
//! first block of a piece wrong). Besides: junk bytes on any hostile connection, clock
//! ticks, disk reads/writes (sometimes failing), true hash results, large tracker batches
//! (`PeerSource::Tracker`), dials answered (opened with a role, or failed), disconnects.
//! The limits are small (6 peers, 4 inbound handshaking, 2 per IP, 40 candidates) so every
//! policy is at its edge.
//!
//! Invariants checked after every step (a panic is a finding):
//! 1. Established connections ≤ `max_peers_per_torrent` (admission is exact: a newcomer at
//!    the limit only takes an evicted or duplicate peer's place; the one dial allowed past
//!    the limit is not established until then), and the session holds no connection the
//!    harness saw closed.
//! 2. Inbound connections still in their handshake ≤ `max_inbound_handshaking`; per IP,
//!    inbound ≤ `max_inbound_per_ip` and handshaking ≤ `max_handshaking_per_ip`; inbound
//!    in all ≤ `max_inbound`.
//! 3. At most `regular_slots + 1` peers unchoked, both as the wire shows it (the last
//!    choke/unchoke sent to each open connection) and in the torrent's stats.
//! 4. An IP is banned only if it sent at least one wrong block (smart ban never punishes
//!    an IP that only ever sent true data), and a banned IP is never dialled again.
//! 5. The honest peer's connection is never dropped as a duplicate once it exchanged
//!    payload, nor evicted while it exchanged payload within `evict_idle_after`.
//! 6. Known candidates ≤ `max_candidates` (plus `max_connecting`: dials in flight count,
//!    and a ban drops its IP's addresses while their dials run out); per connection, disk reads outstanding ≤
//!    `max_queued_uploads` and unsent bytes ≤ `max_unsent_bytes`.
//! 7. A verified piece is never lost; a `WriteBlock` is only for a piece we requested;
//!    `ReadBlock`/`SendBlock` only for pieces we have; we request only inside the torrent.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use arbitrary::{Arbitrary, Unstructured};
use bytes::{Bytes, BytesMut};
use unchoke_core::bitfield::Bitfield;
use unchoke_core::session::{
    Action, ConnId, Direction, DisconnectReason, EncryptionPolicy, Event, PeerSource, Session,
    SessionConfig, TorrentId,
};
use unchoke_core::time::Instant;
use unchoke_core::wire::{
    self, BlockRequest, Decoder, Handshake, Limits, Message, PeerId, PieceGeometry, Reserved,
};

use super::fixture::{PIECE_LEN, PIECES, fixture, read_result, verify_answer, write_result};

/// The honest peer's id (squatters reuse it).
const HONEST_ID: [u8; 20] = *b"-HO0001-honest-peer!";
/// Blocks per piece.
const BLOCKS: u32 = PIECE_LEN / wire::MAX_BLOCK_LEN;
/// Steps run per input at most (bounds one input's time).
const MAX_STEPS: usize = 600;
/// Requests a leeching peer keeps outstanding.
const REMOTE_PIPELINE: usize = 6;

/// What a connection's remote end does.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// True data, normal requests, reads everything.
    Honest,
    /// Handshakes, then nothing (but `Interested` when set).
    Idle { interested: bool },
    /// Sends part of a handshake and never finishes it.
    Partial,
    /// Handshakes with the honest peer's id (or with ours), then idles interested.
    Squatter { ours: bool },
    /// Requests uploads but reads only what `Step::Read` reports.
    SlowReader,
    /// Answers requests with wrong data (every block, or only each piece's first).
    Corrupter { first_only: bool },
}

/// One thing a peer or the world does.
#[derive(Arbitrary, Debug)]
enum Step {
    /// An inbound connection from IP `127.0.0.(1 + ip % 5)`.
    Open { role: Role, ip: u8, port: u8 },
    /// The `conn`-th open connection does its role's next thing.
    Act { conn: u8, arg: u8 },
    /// Raw bytes from the `conn`-th open hostile (not honest) connection.
    Junk { conn: u8, bytes: Vec<u8> },
    /// The socket of the `conn`-th open connection accepts `permille`‰ of its unsent bytes
    /// (only slow readers need it: the others read everything after every step).
    Read { conn: u8, permille: u16 },
    /// Every open connection does its role's next thing once (a network round trip),
    /// then `arg % 8` × 100 ms pass.
    Round { arg: u8 },
    /// The `conn`-th open connection hangs up, when `coin < 64` (else nothing happens:
    /// hang-ups as often as opens would keep the swarm empty).
    Close { conn: u8, coin: u8 },
    /// Time passes (in units of 250 ms: up to about a minute).
    Tick(u8),
    /// Every pending disk read, write and verification completes, successfully.
    DiskAll,
    /// The oldest pending disk read completes.
    ReadDone { fail: bool },
    /// The oldest pending disk write completes.
    WriteDone { fail: bool },
    /// The oldest pending verification completes, truthfully.
    Hashed,
    /// A tracker answers with `count` (×4) addresses.
    Tracker { count: u8, base: u8 },
    /// The oldest outstanding dial opens with `role`, or fails.
    Dial { open: bool, role: Role },
}

/// One connection, as both its remote end and the harness see it.
#[derive(Debug)]
struct Conn {
    id: ConnId,
    addr: SocketAddr,
    role: Role,
    inbound: bool,
    /// Our (the remote's) peer id.
    peer_id: PeerId,
    /// The session's receive buffer: like a driver's, it keeps a partial message.
    recv: BytesMut,
    /// Handshake bytes the remote sent so far (a partial one stops before 68).
    hs_sent: usize,
    /// The remote sent its bitfield and opening messages.
    greeted: bool,
    /// The remote has every piece and answers requests (else it may request).
    seeds: bool,
    /// What the remote sent, decoded as the session will (to spot wrong blocks).
    to_session: BytesMut,
    to_session_dead: bool,
    /// What the session sent, decoded as the remote sees it.
    from_session: BytesMut,
    from_session_hs: bool,
    /// The session unchokes the remote (the last choke/unchoke it sent).
    unchoked: bool,
    /// Requests the session made of the remote, not yet answered or cancelled.
    asked: VecDeque<BlockRequest>,
    /// Requests the remote made and the blocks it got, by (piece, offset).
    wanted: BTreeSet<(u32, u32)>,
    /// Next block the remote will request (a cursor over the torrent).
    cursor: u32,
    /// Disk reads outstanding for it.
    reads: usize,
    /// Payload exchanged either way, the last time.
    payload_at: Option<Instant>,
}

struct World {
    session: Session,
    torrent: TorrentId,
    config: SessionConfig,
    now: Instant,
    content: &'static [u8],
    info_hash: unchoke_core::InfoHash,
    conns: Vec<Conn>,
    /// Connections the harness saw end (the session must not hold them).
    gone: BTreeSet<ConnId>,
    dials: VecDeque<SocketAddr>,
    reads: VecDeque<(ConnId, BlockRequest)>,
    writes: VecDeque<u32>,
    hashes: VecDeque<(u32, bool)>,
    requested: BTreeSet<u32>,
    have_before: Bitfield,
    /// IPs that sent at least one block whose bytes differ from the torrent's.
    wrong_ips: BTreeSet<IpAddr>,
    /// IPs the session banned (never dialled again).
    banned: BTreeSet<IpAddr>,
    next_remote: u32,
    /// What the run reached (for the generator's depth test).
    reached: Reached,
}

/// How deep one run went: what the replay's generator test counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reached {
    /// Pieces the session verified.
    pub verified: u32,
    /// Peers banned.
    pub banned: u32,
    /// Connections dropped to make room (evicted, or a handshake flood's oldest).
    pub evicted: u32,
    /// Connections dropped as duplicates or self-connections.
    pub duplicates: u32,
    /// Connections dropped as slow readers.
    pub slow: u32,
    /// Blocks uploaded.
    pub uploaded: u32,
}

/// Runs the schedule decoded from `data`. Panics on a broken invariant.
pub fn session_hostile(data: &[u8]) {
    session_hostile_reached(data);
}

/// [`session_hostile`], returning how deep the run went.
pub fn session_hostile_reached(data: &[u8]) -> Reached {
    let mut u = Unstructured::new(data);
    let Ok(mode) = u.int_in_range(0u8..=2) else {
        return Reached::default();
    };
    let (content, meta) = fixture();
    let now = Instant::from_secs(1);
    let config = SessionConfig {
        max_peers_per_torrent: 6,
        inbound_slots: 2,
        max_connecting: 3,
        max_inbound: 10,
        max_inbound_handshaking: 4,
        max_inbound_per_ip: 2,
        max_handshaking_per_ip: 2,
        max_candidates: 40,
        max_queued_uploads: 16,
        send_accounting: true,
        max_unsent_bytes: 256 * 1024,
        upload_read_ahead: 64 * 1024,
        peer_events: true,
        // The modelled peers speak plaintext BitTorrent (MSE has its own targets: `mse`,
        // and `session_peer`'s inbound bytes reach the session's MSE receiver).
        encryption: EncryptionPolicy::Disable,
        ..SessionConfig::default()
    };
    let mut session = Session::new(config.clone(), 11, now);
    let have = match mode {
        0 => Bitfield::full(PIECES),
        1 => Bitfield::new(PIECES),
        _ => {
            let mut b = Bitfield::new(PIECES);
            (0..PIECES).step_by(2).for_each(|p| {
                b.set(p);
            });
            b
        }
    };
    let torrent = session
        .add_torrent(meta, Some(have.clone()), now)
        .expect("torrent added");
    let mut world = World {
        session,
        torrent,
        config,
        now,
        content,
        info_hash: meta.info_hash,
        conns: Vec::new(),
        gone: BTreeSet::new(),
        dials: VecDeque::new(),
        reads: VecDeque::new(),
        writes: VecDeque::new(),
        hashes: VecDeque::new(),
        requested: BTreeSet::new(),
        have_before: have,
        wrong_ips: BTreeSet::new(),
        banned: BTreeSet::new(),
        next_remote: 0,
        reached: Reached::default(),
    };
    let debug = std::env::var_os("UNCHOKE_FUZZ_DEBUG").is_some();
    world.settle();
    // Steps are decoded one at a time until the input runs out (not as one `Vec`, which
    // fails whole when its last element lacks bytes), at most `MAX_STEPS` of them.
    for _ in 0..MAX_STEPS {
        if u.is_empty() {
            break;
        }
        let Ok(step) = Step::arbitrary(&mut u) else {
            break;
        };
        if debug {
            eprintln!("step: {step:?}");
        }
        world.step(step);
        world.settle();
        world.check();
    }
    world.reached
}

fn geometry() -> Option<PieceGeometry> {
    PieceGeometry::new(u64::from(PIECES * PIECE_LEN), PIECE_LEN)
}

impl World {
    fn pick(&self, n: u8) -> Option<usize> {
        (!self.conns.is_empty()).then(|| usize::from(n) % self.conns.len())
    }

    fn has(&self, piece: u32) -> bool {
        self.session
            .have(self.torrent)
            .is_some_and(|h| h.get(piece))
    }

    fn open(&mut self, addr: SocketAddr, role: Role, direction: Direction) {
        if role == Role::Honest && self.conns.iter().any(|c| c.role == Role::Honest) {
            return; // one honest connection at a time
        }
        let id = self.session.connection_opened(addr, direction, self.now);
        self.next_remote += 1;
        let peer_id = match role {
            Role::Honest | Role::Squatter { ours: false } => PeerId(HONEST_ID),
            Role::Squatter { ours: true } => self.session.peer_id(),
            _ => {
                let mut id = *b"-EV0001-hostile-0000";
                id[16..].copy_from_slice(&self.next_remote.to_be_bytes());
                PeerId(id)
            }
        };
        self.conns.push(Conn {
            id,
            addr,
            role,
            inbound: direction == Direction::Inbound,
            peer_id,
            recv: BytesMut::new(),
            hs_sent: 0,
            greeted: false,
            seeds: false,
            to_session: BytesMut::new(),
            to_session_dead: false,
            from_session: BytesMut::new(),
            from_session_hs: false,
            unchoked: false,
            asked: VecDeque::new(),
            wanted: BTreeSet::new(),
            cursor: 0,
            reads: 0,
            payload_at: None,
        });
    }

    /// The remote end of connection `i` sends `bytes`.
    fn feed(&mut self, i: usize, bytes: &[u8]) {
        let now = self.now;
        let c = &mut self.conns[i];
        // The first 68 bytes, whatever they are, are the handshake to the session; what
        // follows is decoded exactly as the session will, to know which IPs sent a wrong
        // block and when the honest peer exchanged payload.
        let hs_part = (wire::HANDSHAKE_LEN - c.hs_sent).min(bytes.len());
        c.hs_sent += hs_part;
        if !c.to_session_dead && hs_part < bytes.len() {
            c.to_session.extend_from_slice(&bytes[hs_part..]);
            let decoder = Decoder::new(geometry(), Limits::default());
            loop {
                match decoder.decode(&mut c.to_session) {
                    Ok(Some(Message::Piece { index, begin, data })) => {
                        let start = (index * PIECE_LEN + begin) as usize;
                        let truth = self.content.get(start..start + data.len());
                        if truth != Some(&data[..]) {
                            self.wrong_ips.insert(c.addr.ip());
                        }
                        c.payload_at = Some(now);
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        // From here on the harness cannot tell what the session reads:
                        // count the IP as one that may have sent anything.
                        c.to_session_dead = true;
                        self.wrong_ips.insert(c.addr.ip());
                        break;
                    }
                }
            }
        }
        c.recv.extend_from_slice(bytes);
        let (id, mut recv) = (c.id, std::mem::take(&mut c.recv));
        self.session.handle_bytes(id, &mut recv, now);
        if let Some(c) = self.conns.iter_mut().find(|c| c.id == id) {
            c.recv = recv;
        }
    }

    /// Sends the handshake (the rest of it, or the next part a partial one sends).
    fn handshake(&mut self, i: usize, arg: u8) {
        let c = &self.conns[i];
        let mut hs = BytesMut::new();
        Handshake {
            reserved: Reserved::NONE.with_fast().with_extension_protocol(),
            info_hash: self.info_hash,
            peer_id: c.peer_id,
        }
        .encode(&mut hs);
        let end = if c.role == Role::Partial {
            (c.hs_sent + 1 + usize::from(arg) % 20).min(wire::HANDSHAKE_LEN - 1)
        } else {
            wire::HANDSHAKE_LEN
        };
        let from = c.hs_sent.min(end);
        self.feed(i, &hs[from..end]);
    }

    fn send(&mut self, i: usize, messages: &[Message]) {
        let mut buf = BytesMut::new();
        for m in messages {
            m.encode(&mut buf);
        }
        self.feed(i, &buf);
    }

    /// Connection `i`'s remote does its role's next thing.
    fn act(&mut self, i: usize, arg: u8) {
        let role = self.conns[i].role;
        if self.conns[i].hs_sent < wire::HANDSHAKE_LEN {
            if role == Role::Partial && self.conns[i].hs_sent >= wire::HANDSHAKE_LEN - 1 {
                return;
            }
            self.handshake(i, arg);
            return;
        }
        if role == Role::Partial {
            return;
        }
        if !self.conns[i].greeted {
            self.conns[i].greeted = true;
            // The honest peer seeds to a leeching session and leeches from a seeding one.
            let session_seeds = self.session.have(self.torrent).is_some_and(|h| h.is_full());
            self.conns[i].seeds = match role {
                Role::Honest => !session_seeds,
                Role::Corrupter { .. } => true,
                _ => false,
            };
            let greeting = match role {
                _ if self.conns[i].seeds => {
                    vec![Message::HaveAll, Message::Unchoke, Message::Interested]
                }
                Role::Honest
                | Role::SlowReader
                | Role::Idle { interested: true }
                | Role::Squatter { .. } => vec![Message::HaveNone, Message::Interested],
                _ => vec![Message::HaveNone],
            };
            self.send(i, &greeting);
            return;
        }
        match role {
            _ if self.conns[i].seeds => {
                // Answer some of what the session asked for.
                let n = 1 + usize::from(arg % 4);
                let mut out = Vec::new();
                for _ in 0..n {
                    let Some(r) = self.conns[i].asked.pop_front() else {
                        break;
                    };
                    let start = (r.index * PIECE_LEN + r.begin) as usize;
                    let mut data = self.content[start..start + r.length as usize].to_vec();
                    if let Role::Corrupter { first_only } = role {
                        if !first_only || r.begin == 0 {
                            data.iter_mut().for_each(|b| *b ^= 0x5a);
                        }
                    }
                    out.push(Message::Piece {
                        index: r.index,
                        begin: r.begin,
                        data: Bytes::from(data),
                    });
                }
                if out.is_empty() {
                    out.push(Message::KeepAlive);
                }
                self.send(i, &out);
            }
            Role::Honest | Role::SlowReader => self.request_more(i),
            _ => self.send(i, &[Message::KeepAlive]),
        }
    }

    /// A remote that wants data requests blocks of pieces the session has, while unchoked.
    fn request_more(&mut self, i: usize) {
        if !self.conns[i].unchoked {
            return;
        }
        let have = self.session.have(self.torrent).cloned();
        let Some(have) = have else { return };
        let mut out = Vec::new();
        for _ in 0..PIECES * BLOCKS {
            if self.conns[i].wanted.len() + out.len() >= REMOTE_PIPELINE {
                break;
            }
            let c = &mut self.conns[i];
            let (piece, block) = (c.cursor / BLOCKS, c.cursor % BLOCKS);
            c.cursor = (c.cursor + 1) % (PIECES * BLOCKS);
            let begin = block * wire::MAX_BLOCK_LEN;
            if have.get(piece) && !c.wanted.contains(&(piece, begin)) {
                c.wanted.insert((piece, begin));
                out.push(Message::Request(BlockRequest {
                    index: piece,
                    begin,
                    length: wire::MAX_BLOCK_LEN,
                }));
            }
        }
        self.send(i, &out);
    }

    fn step(&mut self, step: Step) {
        let now = self.now;
        match step {
            Step::Open { role, ip, port } => {
                let ip = Ipv4Addr::new(127, 0, 0, 1 + ip % 5);
                let addr = SocketAddr::new(ip.into(), 40000 + u16::from(port));
                self.open(addr, role, Direction::Inbound);
            }
            Step::Act { conn, arg } => {
                if let Some(i) = self.pick(conn) {
                    self.act(i, arg);
                }
            }
            Step::Junk { conn, bytes } => {
                if let Some(i) = self.pick(conn) {
                    if self.conns[i].role != Role::Honest {
                        self.feed(i, &bytes);
                    }
                }
            }
            Step::Read { conn, permille } => {
                if let Some(i) = self.pick(conn) {
                    let id = self.conns[i].id;
                    let unsent = self.session.unsent_bytes(id).unwrap_or(0);
                    let n = unsent * usize::from(permille.min(1000)) / 1000;
                    if n > 0 {
                        self.session.handle_sent(id, n, now);
                    }
                }
            }
            Step::Round { arg } => {
                let ids: Vec<ConnId> = self.conns.iter().map(|c| c.id).collect();
                for id in ids {
                    // An earlier one's action may have closed this one.
                    if let Some(i) = self.conns.iter().position(|c| c.id == id) {
                        self.act(i, arg);
                        self.settle();
                    }
                }
                self.now += std::time::Duration::from_millis(u64::from(arg % 8) * 100);
                self.session.handle_timeout(self.now);
            }
            Step::DiskAll => {
                // Completions queue more work (a write's verification): a few rounds.
                for _ in 0..4 {
                    while !self.reads.is_empty() {
                        self.step(Step::ReadDone { fail: false });
                    }
                    while !self.writes.is_empty() {
                        self.step(Step::WriteDone { fail: false });
                    }
                    while !self.hashes.is_empty() {
                        self.step(Step::Hashed);
                    }
                    self.settle();
                }
            }
            Step::Close { conn, coin } => {
                if let Some(i) = self.pick(conn).filter(|_| coin < 64) {
                    let c = self.conns.remove(i);
                    self.gone.insert(c.id);
                    self.session.connection_closed(c.id, now);
                }
            }
            Step::Tick(units) => {
                self.now = now + std::time::Duration::from_millis(u64::from(units) * 250);
                self.session.handle_timeout(self.now);
            }
            Step::ReadDone { fail } => {
                if let Some((conn, block)) = self.reads.pop_front() {
                    if let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) {
                        c.reads -= 1;
                    }
                    let result = read_result(self.content, block, fail);
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
            Step::Hashed => {
                if let Some((piece, ok)) = self.hashes.pop_front() {
                    self.session.piece_hashed(self.torrent, piece, ok, now);
                }
            }
            Step::Tracker { count, base } => {
                let addrs: Vec<SocketAddr> = (0..u32::from(count) * 4)
                    .map(|k| {
                        let n = u32::from(base) * 97 + k;
                        let ip = Ipv4Addr::new(127, 1, (n >> 8) as u8, n as u8);
                        SocketAddr::new(ip.into(), 6881)
                    })
                    .collect();
                self.session
                    .add_peers_from(self.torrent, PeerSource::Tracker, &addrs, now);
            }
            Step::Dial { open, role } => {
                if let Some(addr) = self.dials.pop_front() {
                    if open {
                        self.open(addr, role, Direction::Outbound(self.torrent));
                    } else {
                        self.session.connect_failed(self.torrent, addr, now);
                    }
                }
            }
        }
    }

    /// Hands out every action, and lets every connection but slow readers read what was
    /// sent (a bounded number of rounds: reading releases more uploads).
    fn settle(&mut self) {
        for _ in 0..8 {
            self.drain();
            let mut any = false;
            for k in 0..self.conns.len() {
                let c = &self.conns[k];
                if c.role == Role::SlowReader {
                    continue;
                }
                let id = c.id;
                if let Some(n) = self.session.unsent_bytes(id).filter(|&n| n > 0) {
                    self.session.handle_sent(id, n, self.now);
                    any = true;
                }
            }
            if !any {
                break;
            }
        }
        self.drain();
    }

    fn conn_mut(&mut self, id: ConnId) -> &mut Conn {
        self.conns
            .iter_mut()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("an action for {id:?}, which the harness saw closed"))
    }

    fn drain(&mut self) {
        let debug = std::env::var_os("UNCHOKE_FUZZ_DEBUG").is_some();
        while let Some(action) = self.session.poll_action() {
            if debug {
                let text: String = format!("{action:?}").chars().take(160).collect();
                eprintln!("  action: {text}");
            }
            match action {
                Action::Send { conn, data } => self.sent_by_session(conn, &data),
                Action::SendBlock { conn, header, data } => {
                    assert_eq!(header.len(), wire::PIECE_HEADER_LEN);
                    let index = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
                    let begin = u32::from_be_bytes([header[9], header[10], header[11], header[12]]);
                    assert!(self.has(index), "uploaded piece {index} we lack");
                    assert!(data.len() <= wire::MAX_BLOCK_LEN as usize);
                    let start = (index * PIECE_LEN + begin) as usize;
                    assert_eq!(
                        self.content.get(start..start + data.len()),
                        Some(&data[..]),
                        "uploaded wrong bytes"
                    );
                    let now = self.now;
                    let c = self.conn_mut(conn);
                    c.payload_at = Some(now);
                    c.wanted.remove(&(index, begin));
                    self.reached.uploaded += 1;
                }
                Action::Disconnect { conn, reason } => self.disconnected(conn, &reason),
                Action::ReadBlock { conn, block, .. } => {
                    assert!(self.has(block.index), "read piece {} we lack", block.index);
                    assert!(block.index < PIECES && block.begin + block.length <= PIECE_LEN);
                    let max = self.config.max_queued_uploads;
                    let c = self.conn_mut(conn);
                    c.reads += 1;
                    assert!(c.reads <= max, "{} reads queued for one peer", c.reads);
                    self.reads.push_back((conn, block));
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
                Action::SaveResume { torrent, .. } => {
                    self.session.resume_saved(torrent, true, self.now);
                }
                Action::WebSeedRequest { .. } => {
                    panic!("a torrent without web seeds asked one")
                }
                Action::Connect { addr, .. } => {
                    assert!(!self.banned.contains(&addr.ip()), "dialled banned {addr}");
                    self.dials.push_back(addr);
                }
                Action::CancelConnect { addr, .. } => self.dials.retain(|a| *a != addr),
                Action::SendDatagram { .. } => panic!("a session without a DHT sent a datagram"),
                Action::SendLsd { .. } => panic!("a session without LSD sent an announce"),
                Action::Announce { .. } | Action::Resolve { .. } => {}
                Action::Event(Event::PeerBanned { addr, .. }) => {
                    assert!(
                        self.wrong_ips.contains(&addr.ip()),
                        "banned {addr}, which never sent a wrong block"
                    );
                    self.banned.insert(addr.ip());
                    self.reached.banned += 1;
                }
                Action::Event(Event::PieceVerified { .. }) => self.reached.verified += 1,
                Action::Event(_) => {}
            }
        }
    }

    fn disconnected(&mut self, conn: ConnId, reason: &DisconnectReason) {
        let Some(i) = self.conns.iter().position(|c| c.id == conn) else {
            panic!("disconnected {conn:?} twice or after it closed");
        };
        let c = self.conns.remove(i);
        self.gone.insert(c.id);
        match reason {
            DisconnectReason::TooManyConnections => self.reached.evicted += 1,
            DisconnectReason::Duplicate | DisconnectReason::SelfConnection => {
                self.reached.duplicates += 1
            }
            DisconnectReason::SlowReader => self.reached.slow += 1,
            _ => {}
        }
        if c.role == Role::Honest {
            if let Some(at) = c.payload_at {
                assert!(
                    *reason != DisconnectReason::Duplicate,
                    "the honest peer's productive connection dropped as a duplicate"
                );
                let idle = self.now.saturating_duration_since(at);
                assert!(
                    *reason != DisconnectReason::TooManyConnections
                        || idle >= self.config.evict_idle_after,
                    "the honest peer evicted {idle:?} after it exchanged payload"
                );
            }
        }
        // Disk reads for it may still complete; they must be harmless.
    }

    /// Decodes what the session sent on `conn`, as its remote end.
    fn sent_by_session(&mut self, conn: ConnId, data: &Bytes) {
        let c = self
            .conns
            .iter_mut()
            .find(|c| c.id == conn)
            .unwrap_or_else(|| panic!("sent on {conn:?}, which the harness saw closed"));
        c.from_session.extend_from_slice(data);
        if !c.from_session_hs {
            if c.from_session.len() < wire::HANDSHAKE_LEN {
                return;
            }
            let _ = c.from_session.split_to(wire::HANDSHAKE_LEN);
            c.from_session_hs = true;
        }
        let decoder = Decoder::new(None, Limits::default());
        loop {
            let m = match decoder.decode(&mut c.from_session) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => panic!("the session sent an undecodable message: {e:?}"),
            };
            match m {
                Message::Choke => {
                    c.unchoked = false;
                    // Without fast, a choke drops requests; with fast they are rejected.
                }
                Message::Unchoke => c.unchoked = true,
                Message::Request(r) => {
                    assert!(
                        r.index < PIECES && r.begin + r.length <= PIECE_LEN,
                        "request outside the torrent"
                    );
                    self.requested.insert(r.index);
                    c.asked.push_back(r);
                }
                Message::Cancel(r) => c.asked.retain(|a| *a != r),
                Message::RejectRequest(r) => {
                    c.wanted.remove(&(r.index, r.begin));
                }
                _ => {}
            }
        }
    }

    fn check(&mut self) {
        let cfg = &self.config;
        assert!(self.session.poll_timeout().is_some());
        let established = self.session.connections(self.torrent);
        assert!(
            established.len() <= cfg.max_peers_per_torrent,
            "{} peers connected",
            established.len()
        );
        for id in &established {
            assert!(
                !self.gone.contains(id),
                "the session still holds {id:?}, closed"
            );
        }
        let stats = self.session.stats(self.torrent, self.now).expect("torrent");
        if std::env::var_os("UNCHOKE_FUZZ_DEBUG").is_some() {
            eprintln!("  known {} peers {}", stats.known_peers, stats.peers);
        }
        assert!(stats.peers <= cfg.max_peers_per_torrent);
        // `known_peers` also counts dials in flight, and a ban drops its IP's addresses
        // from the list while their dials run out: at most `max_connecting` over.
        assert!(
            stats.known_peers <= cfg.max_candidates + cfg.max_connecting,
            "{} candidates",
            stats.known_peers
        );
        let slots = cfg.choker.regular_slots + 1;
        assert!(stats.unchoked <= slots, "{} unchoked", stats.unchoked);
        let unchoked = self.conns.iter().filter(|c| c.unchoked).count();
        assert!(unchoked <= slots, "{unchoked} unchoked on the wire");
        let mut per_ip: BTreeMap<IpAddr, (usize, usize)> = BTreeMap::new();
        let (mut inbound, mut shaking) = (0, 0);
        for c in self.conns.iter().filter(|c| c.inbound) {
            let hs = !established.contains(&c.id);
            let e = per_ip.entry(c.addr.ip()).or_default();
            e.0 += 1;
            e.1 += usize::from(hs);
            inbound += 1;
            shaking += usize::from(hs);
        }
        assert!(inbound <= cfg.max_inbound, "{inbound} inbound");
        assert!(
            shaking <= cfg.max_inbound_handshaking,
            "{shaking} inbound handshaking"
        );
        for (ip, (n, hs)) in per_ip {
            assert!(n <= cfg.max_inbound_per_ip, "{n} inbound from {ip}");
            assert!(
                hs <= cfg.max_handshaking_per_ip,
                "{hs} handshaking from {ip}"
            );
        }
        for c in &self.conns {
            if let Some(unsent) = self.session.unsent_bytes(c.id) {
                assert!(unsent <= cfg.max_unsent_bytes, "{unsent} bytes unsent");
            }
        }
        let have = self.session.have(self.torrent).expect("torrent").clone();
        for p in self.have_before.ones() {
            assert!(have.get(p), "verified piece {p} lost");
        }
        self.have_before = have;
    }
}
