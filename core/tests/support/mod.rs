//! A deterministic in-memory swarm: real `Session`s joined by byte pipes with a per-link
//! bandwidth, an in-memory disk per node, and virtual time advanced by hand.
//!
//! Every action a session emits is carried out here the way a driver would: `Send` bytes go
//! into the other end's pipe, `WriteBlock`/`ReadBlock` touch the node's byte vector,
//! `VerifyPiece` hashes the blocks with SHA-1. Completions are delivered on the next step,
//! as a driver's worker threads would. Bytes sent are also decoded by a sniffer so tests can
//! assert on the messages that crossed the wire.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sha1::{Digest, Sha1};
use unchoke_core::bencode::{self, Dict, List, Value};
use unchoke_core::bitfield::Bitfield;
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{
    Action, ConnId, Direction, DiskError, DiskErrorKind, Event, MagnetOptions, Session,
    SessionConfig, TorrentId,
};
use unchoke_core::time::Instant;
use unchoke_core::tracker::server::TrackerServer;
use unchoke_core::tracker::{AnnounceEvent, AnnounceRequest, AnnounceResponse, TrackerFailure};
use unchoke_core::wire::{self, Decoder, Limits, Message};

/// How a node's disk behaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Behaviour {
    /// Serves what it has.
    #[default]
    Honest,
    /// Serves every block with its bytes flipped.
    Corrupt,
    /// Serves the first block of every piece with its bytes flipped, the others honestly:
    /// a liar whose bad pieces are always shared with whoever sent the rest.
    CorruptFirstBlock,
    /// Never completes a read or a write: unchokes and takes requests but sends nothing,
    /// and never finishes a piece of its own (so it stays interested).
    Stall,
}

/// How the swarm answers a node's `SaveResume` (one step later, like a disk job).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SaveAnswer {
    /// The save succeeded.
    #[default]
    Ok,
    /// The save failed (a full disk).
    Fail,
    /// No answer until [`Swarm::answer_held_saves`]: a slow disk.
    Hold,
}

/// One host in the swarm.
pub struct Node {
    pub session: Session,
    pub torrent: TorrentId,
    pub addr: SocketAddr,
    pub disk: Vec<u8>,
    pub online: bool,
    /// Whether bytes sent to it are delivered; a node that stops reading leaves them in
    /// its senders' pipes, whose sessions then see nothing accepted (`handle_sent`).
    pub reading: bool,
    /// A slow reader: at most this many bytes per step reach it on each of its links
    /// (`None`: the link's bandwidth), so its senders see only that much accepted.
    pub read_bytes_per_step: Option<usize>,
    pub behaviour: Behaviour,
    pub events: Vec<(Instant, Event)>,
    /// An emulated slow disk: at most this many bytes of writes complete per step, in the
    /// order they were asked for (`None`: every write completes on the next step).
    pub disk_bytes_per_step: Option<usize>,
    /// An emulated filling disk: bytes it still takes (`None`: unbounded). A write that does
    /// not fit writes nothing and fails with [`DiskErrorKind::NoSpace`].
    pub disk_space: Option<usize>,
    /// Writes waiting for the slow disk: torrent, piece, byte position, data.
    slow_writes: VecDeque<(TorrentId, u32, usize, Bytes)>,
    /// Bytes of writes the slow disk may still finish this step (kept only while writes wait).
    disk_credit: usize,
    seed: u64,
}

/// A message seen on the wire.
#[derive(Clone, Debug)]
pub struct Sniffed {
    pub at: Instant,
    pub from: usize,
    pub to: usize,
    /// The message, or `None` when the connection closed (which implies choked).
    pub message: Option<Message>,
}

impl Node {
    /// Writes `data` at byte `at` of the node's disk, unless the emulated disk is full.
    fn store(&mut self, at: usize, data: &[u8]) -> Result<(), DiskError> {
        if let Some(space) = self.disk_space {
            let Some(left) = space.checked_sub(data.len()) else {
                return Err(DiskError::new(
                    DiskErrorKind::NoSpace,
                    format!("{} bytes at {at}: {space} bytes left", data.len()),
                ));
            };
            self.disk_space = Some(left);
        }
        self.disk[at..at + data.len()].copy_from_slice(data);
        Ok(())
    }
}

enum Completion {
    Written {
        node: usize,
        torrent: TorrentId,
        piece: u32,
        result: Result<(), DiskError>,
    },
    Read {
        node: usize,
        conn: ConnId,
        block: wire::BlockRequest,
        data: Bytes,
    },
    Hashed {
        node: usize,
        torrent: TorrentId,
        piece: u32,
        ok: bool,
    },
    Closed {
        node: usize,
        conn: ConnId,
    },
    ConnectFailed {
        node: usize,
        torrent: TorrentId,
        addr: SocketAddr,
    },
    Announced {
        node: usize,
        torrent: TorrentId,
        url: String,
        result: Result<AnnounceResponse, TrackerFailure>,
    },
    /// The driver's storage check after `MetadataReceived` finished.
    MetadataChecked {
        node: usize,
        torrent: TorrentId,
    },
    ResumeSaved {
        node: usize,
        torrent: TorrentId,
        ok: bool,
    },
}

type End = (usize, ConnId);

/// The swarm. See the module docs.
pub struct Swarm {
    pub now: Instant,
    pub nodes: Vec<Node>,
    pub metainfo: Metainfo,
    pub content: Vec<u8>,
    /// Bytes a link carries per direction per step.
    pub link_bytes_per_step: usize,
    pub step: Duration,
    links: BTreeMap<End, End>,
    inflight: BTreeMap<End, VecDeque<Bytes>>,
    recv: BTreeMap<End, BytesMut>,
    sniff: BTreeMap<End, (bool, BytesMut)>,
    completions: VecDeque<Completion>,
    pub sniffed: Vec<Sniffed>,
    /// The settings nodes added from now on get (default: [`Swarm::node_config`]).
    pub config: SessionConfig,
    /// Every `Disconnect` a node asked for: when, which node, and why.
    pub disconnects: Vec<(Instant, usize, String)>,
    /// A running hash of every action every node emitted, with its time (determinism).
    pub action_digest: std::collections::hash_map::DefaultHasher,
    pub action_count: u64,
    /// When set, announces are answered by this tracker (one step later); otherwise they
    /// are only recorded.
    pub tracker: Option<TrackerServer>,
    /// Every announce a node made: when, which node, to where, and what it said.
    pub announces: Vec<(Instant, usize, String, AnnounceRequest)>,
    /// Whether a node's `MetadataReceived` is answered with `metadata_ready` (one step
    /// later, with nothing on disk), as a driver does after creating the storage.
    pub auto_metadata_ready: bool,
    /// Every `SaveResume` a node asked for: when, which node, which torrent, its `have`.
    pub saves: Vec<(Instant, usize, TorrentId, Bitfield)>,
    /// How `SaveResume`s are answered from now on.
    pub save_answer: SaveAnswer,
    /// Saves asked for under [`SaveAnswer::Hold`] and not answered yet.
    held_saves: Vec<(usize, TorrentId)>,
    /// Node `i`'s session is seeded with this plus `i` (default 1000): a determinism test
    /// changes it to show the seed matters.
    pub seed_base: u64,
    /// When set, a `Connect` to an address no node has is never answered (a black-holed
    /// address: the session's connect time-out ends it); otherwise it fails at once.
    pub unreachable_hangs: bool,
}

/// A node's session settings: the defaults, listening on the port nodes' addresses use.
fn node_config() -> SessionConfig {
    SessionConfig {
        listen_port: 6881,
        ..SessionConfig::default()
    }
}

/// A single-file torrent over `content`.
pub fn make_metainfo(content: &[u8], piece_length: u32) -> Metainfo {
    let mut pieces = Vec::new();
    for chunk in content.chunks(piece_length as usize) {
        pieces.extend_from_slice(&Sha1::digest(chunk));
    }
    let info = Value::Dict(Dict::new(vec![
        (b"length", Value::Int(content.len() as i64)),
        (b"name", Value::Bytes(b"payload.bin")),
        (b"piece length", Value::Int(i64::from(piece_length))),
        (b"pieces", Value::Bytes(&pieces)),
    ]));
    let root = Value::Dict(Dict::new(vec![
        (b"announce", Value::Bytes(b"http://127.0.0.1:6969/announce")),
        (b"info", info),
        (b"url-list", Value::List(List::new(vec![]))),
    ]));
    Metainfo::from_bytes(&bencode::encode(&root)).expect("test torrent parses")
}

/// Deterministic pseudo-random content.
pub fn make_content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

impl Swarm {
    /// A swarm over `content` with no nodes yet. Links carry `bytes_per_sec` each way.
    pub fn new(content: Vec<u8>, piece_length: u32, bytes_per_sec: usize) -> Self {
        let metainfo = make_metainfo(&content, piece_length);
        let step = Duration::from_millis(10);
        Swarm {
            now: Instant::ZERO,
            nodes: Vec::new(),
            metainfo,
            content,
            link_bytes_per_step: (bytes_per_sec / 100).max(1),
            step,
            links: BTreeMap::new(),
            inflight: BTreeMap::new(),
            recv: BTreeMap::new(),
            sniff: BTreeMap::new(),
            completions: VecDeque::new(),
            sniffed: Vec::new(),
            config: node_config(),
            disconnects: Vec::new(),
            action_digest: Default::default(),
            action_count: 0,
            tracker: None,
            announces: Vec::new(),
            auto_metadata_ready: true,
            saves: Vec::new(),
            save_answer: SaveAnswer::Ok,
            held_saves: Vec::new(),
            seed_base: 1000,
            unreachable_hangs: false,
        }
    }

    /// Adds a node holding the pieces in `have` (all pieces when `None` and `seed`).
    pub fn add_node(&mut self, have: Option<Vec<u32>>, behaviour: Behaviour) -> usize {
        let metainfo = self.metainfo.clone();
        self.add_node_with(&metainfo, have, behaviour)
    }

    /// Like [`Self::add_node`], with the session given `metainfo` (e.g. one whose info bytes
    /// were tampered with, to serve bad metadata).
    pub fn add_node_with(
        &mut self,
        metainfo: &Metainfo,
        have: Option<Vec<u32>>,
        behaviour: Behaviour,
    ) -> usize {
        let index = self.nodes.len();
        let addr: SocketAddr = format!("127.0.0.{}:6881", index + 2).parse().expect("addr");
        let piece_count = self.metainfo.info.piece_count();
        let piece_length = self.metainfo.info.piece_length as usize;
        let mut disk = vec![0u8; self.content.len()];
        let have_bits = have.map(|pieces| {
            let mut b = Bitfield::new(piece_count);
            for p in pieces {
                b.set(p);
                let start = p as usize * piece_length;
                let end = (start + piece_length).min(self.content.len());
                disk[start..end].copy_from_slice(&self.content[start..end]);
            }
            b
        });
        let seed = self.seed_base + index as u64;
        let mut session = Session::new(self.config.clone(), seed, self.now);
        let torrent = session
            .add_torrent(metainfo, have_bits, self.now)
            .expect("add torrent");
        self.nodes.push(Node {
            session,
            torrent,
            addr,
            disk,
            online: true,
            reading: true,
            read_bytes_per_step: None,
            behaviour,
            events: Vec::new(),
            disk_bytes_per_step: None,
            disk_space: None,
            slow_writes: VecDeque::new(),
            disk_credit: 0,
            seed,
        });
        index
    }

    /// Adds a node that knows the torrent only by its info-hash (a magnet link) and has
    /// nothing on disk.
    pub fn add_magnet_node(&mut self, config: SessionConfig) -> usize {
        let index = self.nodes.len();
        let addr: SocketAddr = format!("127.0.0.{}:6881", index + 2).parse().expect("addr");
        let seed = self.seed_base + index as u64;
        let mut session = Session::new(config, seed, self.now);
        let torrent = session
            .add_magnet(self.metainfo.info_hash, MagnetOptions::default(), self.now)
            .expect("add magnet");
        self.nodes.push(Node {
            session,
            torrent,
            addr,
            disk: vec![0u8; self.content.len()],
            online: true,
            reading: true,
            read_bytes_per_step: None,
            behaviour: Behaviour::Honest,
            events: Vec::new(),
            disk_bytes_per_step: None,
            disk_space: None,
            slow_writes: VecDeque::new(),
            disk_credit: 0,
            seed,
        });
        index
    }

    /// The settings every node uses (for [`Self::add_magnet_node`] variations).
    pub fn node_config() -> SessionConfig {
        node_config()
    }

    /// Tells node `i` the addresses of nodes `others` only.
    pub fn introduce_to(&mut self, i: usize, others: &[usize]) {
        let addrs: Vec<SocketAddr> = others.iter().map(|&j| self.nodes[j].addr).collect();
        let now = self.now;
        let node = &mut self.nodes[i];
        node.session.add_peers(node.torrent, &addrs, now);
    }

    /// Whether nodes `i` and `j` have a connection between them.
    pub fn linked(&self, i: usize, j: usize) -> bool {
        self.links.iter().any(|(a, b)| a.0 == i && b.0 == j)
    }

    /// Adds a seed (every piece).
    pub fn add_seed(&mut self, behaviour: Behaviour) -> usize {
        let all = (0..self.metainfo.info.piece_count()).collect();
        self.add_node(Some(all), behaviour)
    }

    /// Tells node `i` the addresses of every other node (as a tracker would).
    pub fn introduce(&mut self, i: usize) {
        let addrs: Vec<SocketAddr> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| n.addr)
            .collect();
        let now = self.now;
        let node = &mut self.nodes[i];
        node.session.add_peers(node.torrent, &addrs, now);
    }

    /// Answers every save held under [`SaveAnswer::Hold`] (delivered on the next step).
    pub fn answer_held_saves(&mut self, ok: bool) {
        for (node, torrent) in std::mem::take(&mut self.held_saves) {
            self.completions
                .push_back(Completion::ResumeSaved { node, torrent, ok });
        }
    }

    /// Takes node `i` off the network: every connection of it closes on both sides. Its
    /// disk and verified pieces stay.
    pub fn leave(&mut self, i: usize) {
        let ends: Vec<(End, End)> = self
            .links
            .iter()
            .filter(|(a, _)| a.0 == i)
            .map(|(a, b)| (*a, *b))
            .collect();
        for (mine, theirs) in ends {
            self.unlink(mine);
            let now = self.now;
            self.nodes[theirs.0]
                .session
                .connection_closed(theirs.1, now);
        }
        self.nodes[i].online = false;
        self.nodes[i].slow_writes.clear();
        self.completions.retain(|c| match c {
            Completion::Written { node, .. }
            | Completion::Read { node, .. }
            | Completion::Hashed { node, .. }
            | Completion::Closed { node, .. }
            | Completion::ConnectFailed { node, .. }
            | Completion::Announced { node, .. }
            | Completion::MetadataChecked { node, .. }
            | Completion::ResumeSaved { node, .. } => *node != i,
        });
    }

    /// Brings node `i` back as a new session that knows the pieces it verified before.
    pub fn rejoin(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let have = node.session.have(node.torrent).cloned();
        node.seed += 7919;
        let mut session = Session::new(node_config(), node.seed, self.now);
        node.torrent = session
            .add_torrent(&self.metainfo, have, self.now)
            .expect("re-add torrent");
        node.session = session;
        node.online = true;
        self.introduce(i);
    }

    fn unlink(&mut self, end: End) {
        if let Some(other) = self.links.remove(&end) {
            self.links.remove(&other);
            for (from, to) in [(end.0, other.0), (other.0, end.0)] {
                self.sniffed.push(Sniffed {
                    at: self.now,
                    from,
                    to,
                    message: None,
                });
            }
            for e in [end, other] {
                self.inflight.remove(&e);
                self.recv.remove(&e);
                self.sniff.remove(&e);
            }
        }
    }

    fn digest(&mut self, node: usize, action: &Action) {
        self.action_count += 1;
        self.now.hash(&mut self.action_digest);
        node.hash(&mut self.action_digest);
        match action {
            Action::Send { conn, data } => (0u8, conn, &data[..]).hash(&mut self.action_digest),
            Action::SendBlock { conn, header, data } => {
                (1u8, conn, &header[..], &data[..]).hash(&mut self.action_digest)
            }
            other => format!("{other:?}").hash(&mut self.action_digest),
        }
    }

    fn transmit(&mut self, from: End, data: Bytes) {
        let Some(&to) = self.links.get(&from) else {
            return;
        };
        // Sniff what crosses the wire (handshake first, then framed messages).
        let (handshaken, buf) = self.sniff.entry(from).or_insert((false, BytesMut::new()));
        buf.extend_from_slice(&data);
        if !*handshaken && buf.len() >= wire::HANDSHAKE_LEN {
            let _ = buf.split_to(wire::HANDSHAKE_LEN);
            *handshaken = true;
        }
        if *handshaken {
            let decoder = Decoder::new(None, Limits::default());
            loop {
                match decoder.decode(buf) {
                    Ok(Some(message)) => self.sniffed.push(Sniffed {
                        at: self.now,
                        from: from.0,
                        to: to.0,
                        message: Some(message),
                    }),
                    Ok(None) => break,
                    Err(e) => panic!("node {} sent an undecodable stream: {e}", from.0),
                }
            }
        }
        self.inflight.entry(to).or_default().push_back(data);
    }

    fn carry_out(&mut self, i: usize, action: Action) {
        self.digest(i, &action);
        let now = self.now;
        match action {
            Action::Send { conn, data } => self.transmit((i, conn), data),
            Action::SendBlock { conn, header, data } => {
                self.transmit((i, conn), header);
                self.transmit((i, conn), data);
            }
            Action::Connect { torrent, addr } => {
                let target = self
                    .nodes
                    .iter()
                    .position(|n| n.online && n.addr == addr && addr != self.nodes[i].addr);
                match target {
                    Some(j) => {
                        let from_addr = self.nodes[i].addr;
                        let a = self.nodes[i].session.connection_opened(
                            addr,
                            Direction::Outbound(torrent),
                            now,
                        );
                        let b = self.nodes[j].session.connection_opened(
                            from_addr,
                            Direction::Inbound,
                            now,
                        );
                        self.links.insert((i, a), (j, b));
                        self.links.insert((j, b), (i, a));
                    }
                    None if self.unreachable_hangs => {}
                    None => self.completions.push_back(Completion::ConnectFailed {
                        node: i,
                        torrent,
                        addr,
                    }),
                }
            }
            // Dials are answered at once, so they never time out here.
            Action::CancelConnect { .. } => {}
            Action::Disconnect { conn, reason } => {
                self.disconnects.push((now, i, reason.to_string()));
                if let Some(&other) = self.links.get(&(i, conn)) {
                    self.unlink((i, conn));
                    self.completions.push_back(Completion::Closed {
                        node: other.0,
                        conn: other.1,
                    });
                }
            }
            Action::WriteBlock {
                torrent,
                piece,
                offset,
                data,
            } => {
                let at =
                    piece as usize * self.metainfo.info.piece_length as usize + offset as usize;
                if self.nodes[i].behaviour == Behaviour::Stall {
                    return;
                }
                if self.nodes[i].disk_bytes_per_step.is_some() {
                    self.nodes[i]
                        .slow_writes
                        .push_back((torrent, piece, at, data));
                    return;
                }
                let result = self.nodes[i].store(at, &data);
                self.completions.push_back(Completion::Written {
                    node: i,
                    torrent,
                    piece,
                    result,
                });
            }
            Action::ReadBlock { conn, block, .. } => {
                let node = &self.nodes[i];
                let at = block.index as usize * self.metainfo.info.piece_length as usize
                    + block.begin as usize;
                let mut data = node.disk[at..at + block.length as usize].to_vec();
                match node.behaviour {
                    Behaviour::Honest => {}
                    Behaviour::Corrupt => data.iter_mut().for_each(|b| *b = !*b),
                    Behaviour::CorruptFirstBlock if block.begin == 0 => {
                        data.iter_mut().for_each(|b| *b = !*b);
                    }
                    Behaviour::CorruptFirstBlock => {}
                    Behaviour::Stall => return,
                }
                self.completions.push_back(Completion::Read {
                    node: i,
                    conn,
                    block,
                    data: Bytes::from(data),
                });
            }
            Action::VerifyPiece {
                torrent,
                piece,
                expected,
                blocks,
            } => {
                let mut h = Sha1::new();
                for b in &blocks {
                    h.update(b);
                }
                let ok = h.finalize()[..] == expected[..];
                self.completions.push_back(Completion::Hashed {
                    node: i,
                    torrent,
                    piece,
                    ok,
                });
            }
            Action::Announce {
                torrent,
                url,
                request,
            } => {
                self.announces.push((now, i, url.clone(), request.clone()));
                let source = self.nodes[i].addr;
                if let Some(server) = self.tracker.as_mut() {
                    let result = server
                        .announce(&request, source, now)
                        .map(|reply| AnnounceResponse {
                            interval: reply.interval,
                            min_interval: Some(reply.min_interval),
                            complete: Some(reply.complete),
                            incomplete: Some(reply.incomplete),
                            peers: reply.peers.iter().map(|p| p.addr).collect(),
                            ..AnnounceResponse::default()
                        })
                        .map_err(|e| TrackerFailure::Refused(e.to_string()));
                    if request.event != AnnounceEvent::Stopped {
                        self.completions.push_back(Completion::Announced {
                            node: i,
                            torrent,
                            url,
                            result,
                        });
                    }
                }
            }
            Action::SaveResume { torrent, have, .. } => {
                self.saves.push((now, i, torrent, have));
                let ok = match self.save_answer {
                    SaveAnswer::Ok => true,
                    SaveAnswer::Fail => false,
                    SaveAnswer::Hold => {
                        self.held_saves.push((i, torrent));
                        return;
                    }
                };
                self.completions.push_back(Completion::ResumeSaved {
                    node: i,
                    torrent,
                    ok,
                });
            }
            // The harness's sessions run no DHT (the simulator carries datagrams).
            Action::SendDatagram { to, .. } => panic!("node {i} sent a DHT datagram to {to}"),
            // Its trackers are in-process HTTP ones: nothing to resolve.
            Action::Resolve { host, .. } => panic!("node {i} asked to resolve {host}"),
            Action::Event(e) => {
                if let Event::MetadataReceived { torrent, .. } = &e {
                    if self.auto_metadata_ready {
                        self.completions.push_back(Completion::MetadataChecked {
                            node: i,
                            torrent: *torrent,
                        });
                    }
                }
                self.nodes[i].events.push((now, e));
            }
        }
    }

    /// Finishes this step's share of each slow disk's writes (queued as completions);
    /// returns whether any write still waits, so time advances step by step meanwhile.
    fn run_slow_disks(&mut self) -> bool {
        let mut waiting = false;
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let Some(rate) = node.disk_bytes_per_step else {
                continue;
            };
            if node.slow_writes.is_empty() {
                node.disk_credit = 0;
                continue;
            }
            node.disk_credit += rate;
            while let Some((_, _, _, data)) = node.slow_writes.front() {
                if data.len() > node.disk_credit {
                    break;
                }
                let Some((torrent, piece, at, data)) = node.slow_writes.pop_front() else {
                    break;
                };
                node.disk_credit -= data.len();
                let result = node.store(at, &data);
                self.completions.push_back(Completion::Written {
                    node: i,
                    torrent,
                    piece,
                    result,
                });
            }
            waiting |= !node.slow_writes.is_empty();
        }
        waiting
    }

    /// One step: drain actions, deliver completions, move bytes, advance time.
    fn step_once(&mut self) {
        let mut busy = false;
        for i in 0..self.nodes.len() {
            if !self.nodes[i].online {
                continue;
            }
            while let Some(action) = self.nodes[i].session.poll_action() {
                busy = true;
                self.carry_out(i, action);
            }
        }
        busy |= self.run_slow_disks();
        let now = self.now;
        while let Some(c) = self.completions.pop_front() {
            busy = true;
            match c {
                Completion::Written {
                    node,
                    torrent,
                    piece,
                    result,
                } => self.nodes[node]
                    .session
                    .disk_write_done(torrent, piece, result, now),
                Completion::Read {
                    node,
                    conn,
                    block,
                    data,
                } => self.nodes[node]
                    .session
                    .disk_read_done(conn, block, Ok(data), now),
                Completion::Hashed {
                    node,
                    torrent,
                    piece,
                    ok,
                } => self.nodes[node]
                    .session
                    .piece_hashed(torrent, piece, ok, now),
                Completion::Closed { node, conn } => {
                    self.nodes[node].session.connection_closed(conn, now)
                }
                Completion::ConnectFailed {
                    node,
                    torrent,
                    addr,
                } => self.nodes[node].session.connect_failed(torrent, addr, now),
                Completion::Announced {
                    node,
                    torrent,
                    url,
                    result,
                } => self.nodes[node]
                    .session
                    .announce_done(torrent, &url, result, now),
                Completion::MetadataChecked { node, torrent } => self.nodes[node]
                    .session
                    .metadata_ready(torrent, None, now)
                    .expect("metadata_ready after MetadataReceived"),
                Completion::ResumeSaved { node, torrent, ok } => {
                    self.nodes[node].session.resume_saved(torrent, ok, now)
                }
            }
        }
        let ends: Vec<End> = self.inflight.keys().copied().collect();
        for end in ends {
            if !self.nodes[end.0].reading {
                continue;
            }
            let limit = self.nodes[end.0]
                .read_bytes_per_step
                .map_or(self.link_bytes_per_step, |r| {
                    r.min(self.link_bytes_per_step)
                });
            let mut budget = limit;
            let Some(queue) = self.inflight.get_mut(&end) else {
                continue;
            };
            let buf = self.recv.entry(end).or_default();
            while budget > 0 {
                let Some(front) = queue.front_mut() else {
                    break;
                };
                let n = budget.min(front.len());
                buf.extend_from_slice(&front.split_to(n));
                budget -= n;
                if front.is_empty() {
                    queue.pop_front();
                }
            }
            if queue.is_empty() {
                self.inflight.remove(&end);
            }
            // What the pipe took is what the sender's socket accepted.
            let taken = limit - budget;
            if let Some(&(from, conn)) = self.links.get(&end)
                && taken > 0
                && self.nodes[from].online
            {
                self.nodes[from].session.handle_sent(conn, taken, now);
            }
            if self.nodes[end.0].online && !self.recv[&end].is_empty() {
                busy = true;
                let mut buf = self.recv.remove(&end).unwrap_or_default();
                self.nodes[end.0].session.handle_bytes(end.1, &mut buf, now);
                if self.links.contains_key(&end) {
                    self.recv.insert(end, buf);
                }
            }
        }
        // Idle: jump to the next deadline instead of stepping through empty time.
        self.now = if busy || !self.inflight.is_empty() {
            self.now + self.step
        } else {
            let next = self
                .nodes
                .iter()
                .filter(|n| n.online)
                .filter_map(|n| n.session.poll_timeout())
                .min()
                .unwrap_or(self.now + self.step);
            next.max(self.now + self.step)
        };
        let now = self.now;
        for node in self.nodes.iter_mut().filter(|n| n.online) {
            if node.session.poll_timeout().is_some_and(|t| t <= now) {
                node.session.handle_timeout(now);
            }
        }
    }

    /// Steps until `done` holds or `limit` of virtual time passes; returns whether `done`.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Swarm) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.step_once();
        }
        done(self)
    }

    /// Closes every online node's session ([`Session::close`]) and keeps stepping until
    /// each says it is drained or `limit` passes; returns whether all drained.
    pub fn close_all(&mut self, limit: Duration) -> bool {
        let now = self.now;
        for node in self.nodes.iter_mut().filter(|n| n.online) {
            node.session.close(now);
        }
        self.run_until(limit, |s| {
            s.nodes
                .iter()
                .filter(|n| n.online)
                .all(|n| n.session.is_drained())
        })
    }

    /// Runs one more second so queued actions (events) are carried out.
    pub fn settle(&mut self) {
        self.run_until(Duration::from_secs(1), |_| false);
    }

    /// Whether node `i` has verified every piece.
    pub fn is_complete(&self, i: usize) -> bool {
        let n = &self.nodes[i];
        n.session
            .stats(n.torrent, self.now)
            .is_some_and(|s| s.complete)
    }

    /// Bytes of writes node `i`'s slow disk has not finished (0 with a normal disk).
    pub fn unwritten(&self, i: usize) -> usize {
        self.nodes[i].slow_writes.iter().map(|w| w.3.len()).sum()
    }

    /// Whether node `i`'s disk equals the content byte for byte.
    pub fn disk_matches(&self, i: usize) -> bool {
        self.nodes[i].disk == self.content
    }

    /// The events node `i` emitted.
    pub fn events(&self, i: usize) -> impl Iterator<Item = &(Instant, Event)> {
        self.nodes[i].events.iter()
    }

    /// Makes node `i` read at most `bytes_per_sec` on each of its links (a slow reader).
    pub fn set_read_rate(&mut self, i: usize, bytes_per_sec: usize) {
        let per_step = bytes_per_sec as u128 * self.step.as_micros() / 1_000_000;
        self.nodes[i].read_bytes_per_step =
            Some(usize::try_from(per_step).unwrap_or(usize::MAX).max(1));
    }

    /// Node `i`'s connection to node `j`, if they are linked.
    pub fn conn_to(&self, i: usize, j: usize) -> Option<ConnId> {
        self.links
            .iter()
            .find(|((a, _), (b, _))| *a == i && *b == j)
            .map(|((_, c), _)| *c)
    }

    /// The determinism fingerprint: number of actions and a hash over all of them.
    pub fn fingerprint(&self) -> (u64, u64) {
        (self.action_count, self.action_digest.finish())
    }
}
