//! The test lab: a handful of real `Session`s a test adds, drives and inspects one by one,
//! on the simulator's own event loop and network.
//!
//! [`Swarm`] is the harness the core's multi-session tests run on. It is a
//! [`Simulation`] with no study: a test adds hosts (seeds, leechers,
//! magnet links, liars), introduces them, runs virtual time until a predicate holds, and
//! asserts on their sessions, their events, the messages on the wire and what they asked
//! of their disks and trackers. What it adds to the study's engine:
//! - **per-link bandwidth**: every flow carries at most the swarm's link rate (hosts have
//!   no capacity of their own), so each direction of each link is independent;
//! - **emulated disks** per host ([`Behaviour`]: honest, corrupt, corrupt first block,
//!   stalled; slow writes at N bytes/s; a disk that fills up; [`SaveAnswer`]s). Disk,
//!   save and tracker answers are events at the same instant (disk latency 0) that run
//!   after the session's current actions, as a driver's completion queue delivers them; a
//!   slow disk's writes finish after their time;
//! - a **wire sniffer** ([`Swarm::sniff`], off until a test turns it on);
//! - **recorders**: events, disconnects, announces (answered by a
//!   [`TrackerServer`] when one is set), resume saves, and a determinism fingerprint over
//!   every action.
//!
//! Messages take no latency by default: a dial, a message and its answer happen at the
//! same virtual instant, in event order; only bytes that take bandwidth (blocks, large
//! messages) take time.

mod build;

use std::net::SocketAddr;
use std::time::Duration;

use unchoke_core::bitfield::Bitfield;
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{
    ConnId, EncryptionPolicy, Event, MagnetOptions, Session, SessionConfig, TorrentId,
};
use unchoke_core::time::Instant;
use unchoke_core::tracker::AnnounceRequest;
use unchoke_core::tracker::server::TrackerServer;
use unchoke_core::wire::Message;

use crate::engine::Simulation;
use crate::engine::lab::LabNode;

pub use build::{make_content, make_metainfo};

/// How a host's disk behaves.
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

/// How the lab answers a host's `SaveResume`.
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

/// A message seen on the wire.
#[derive(Clone, Debug)]
pub struct Sniffed {
    /// When it was sent.
    pub at: Instant,
    /// The sending host.
    pub from: usize,
    /// The receiving host.
    pub to: usize,
    /// The message, or `None` when the connection closed (which implies choked).
    pub message: Option<Message>,
}

/// The lab swarm. See the [module docs](self).
#[derive(Debug)]
pub struct Swarm {
    sim: Simulation,
    /// The torrent every host is given (unless added with [`Swarm::add_node_with`]).
    pub metainfo: Metainfo,
    /// The file's content.
    pub content: Vec<u8>,
    /// The settings hosts added from now on get (default: [`Swarm::node_config`]).
    pub config: SessionConfig,
    /// Host `i`'s session is seeded with this plus `i` (default 1000): a determinism test
    /// changes it to show the seed matters.
    pub seed_base: u64,
}

/// The difference between two seeds of one host across a rejoin.
const REJOIN_SEED_STEP: u64 = 7919;

impl Swarm {
    /// A swarm over `content` with no hosts yet. Every link carries `bytes_per_sec` each way.
    pub fn new(content: Vec<u8>, piece_length: u32, bytes_per_sec: usize) -> Self {
        let metainfo = make_metainfo(&content, piece_length);
        Swarm {
            sim: Simulation::lab(piece_length as usize, bytes_per_sec.max(1) as f64, 0),
            metainfo,
            content,
            config: Swarm::node_config(),
            seed_base: 1000,
        }
    }

    /// The settings every host uses by default: the defaults, on the lab's listen port,
    /// in plaintext: the lab's sniffers read the wire (an encrypted swarm is one
    /// `encryption` setting away, see the `encrypted_swarm` test).
    pub fn node_config() -> SessionConfig {
        SessionConfig {
            listen_port: 6881,
            encryption: EncryptionPolicy::Disable,
            ..SessionConfig::default()
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.sim.lab_now())
    }

    /// Adds a host holding the pieces in `have` (none when `None`).
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
        let index = self.sim.lab_hosts();
        let piece_count = self.metainfo.info.piece_count();
        let piece_length = self.metainfo.info.piece_length as usize;
        let mut disk = vec![0u8; self.content.len()];
        let mut bits = Bitfield::new(piece_count);
        let have_bits = have.map(|pieces| {
            let mut b = Bitfield::new(piece_count);
            for p in pieces {
                b.set(p);
                let start = p as usize * piece_length;
                let end = (start + piece_length).min(self.content.len());
                if let (Some(dst), Some(src)) =
                    (disk.get_mut(start..end), self.content.get(start..end))
                {
                    dst.copy_from_slice(src);
                }
            }
            b
        });
        if let Some(b) = &have_bits {
            bits = b.clone();
        }
        let seed = self.seed_base + index as u64;
        let now = self.now();
        let mut session = Session::new(self.config.clone(), seed, now);
        let torrent = match session.add_torrent(metainfo, have_bits, now) {
            Ok(t) => t,
            Err(e) => panic!("lab host {index} cannot add the torrent: {e}"),
        };
        self.sim
            .lab_add_host(session, self.lab_node(torrent, disk, behaviour, seed), bits)
    }

    /// Adds a host that knows the torrent only by its info-hash (a magnet link) and has
    /// nothing on disk.
    pub fn add_magnet_node(&mut self, config: SessionConfig) -> usize {
        let index = self.sim.lab_hosts();
        let seed = self.seed_base + index as u64;
        let now = self.now();
        let mut session = Session::new(config, seed, now);
        let torrent =
            match session.add_magnet(self.metainfo.info_hash, MagnetOptions::default(), now) {
                Ok(t) => t,
                Err(e) => panic!("lab host {index} cannot add the magnet: {e}"),
            };
        let disk = vec![0u8; self.content.len()];
        let bits = Bitfield::new(self.metainfo.info.piece_count());
        self.sim.lab_add_host(
            session,
            self.lab_node(torrent, disk, Behaviour::Honest, seed),
            bits,
        )
    }

    fn lab_node(
        &self,
        torrent: TorrentId,
        disk: Vec<u8>,
        behaviour: Behaviour,
        seed: u64,
    ) -> LabNode {
        LabNode {
            torrent,
            disk,
            behaviour,
            events: Vec::new(),
            disk_rate: None,
            disk_space: None,
            disk_free_at: 0,
            unwritten: 0,
            seed,
            kept: None,
            fired_at: None,
        }
    }

    /// Adds a seed (every piece).
    pub fn add_seed(&mut self, behaviour: Behaviour) -> usize {
        let all = (0..self.metainfo.info.piece_count()).collect();
        self.add_node(Some(all), behaviour)
    }

    /// Number of hosts added.
    pub fn node_count(&self) -> usize {
        self.sim.lab_hosts()
    }

    /// Host `i`'s session.
    ///
    /// # Panics
    /// If host `i` is away ([`Swarm::leave`]).
    pub fn session(&self, i: usize) -> &Session {
        match self.sim.lab_session(i) {
            Some(s) => s,
            None => panic!("lab host {i} is not in the swarm"),
        }
    }

    /// Host `i`'s session, to drive it by hand (its actions are carried out when the
    /// swarm runs next).
    ///
    /// # Panics
    /// If host `i` is away ([`Swarm::leave`]).
    pub fn session_mut(&mut self, i: usize) -> &mut Session {
        match self.sim.lab_session_mut(i) {
            Some(s) => s,
            None => panic!("lab host {i} is not in the swarm"),
        }
    }

    /// Host `i`'s torrent in its session.
    pub fn torrent(&self, i: usize) -> TorrentId {
        self.sim.lab_ref().nodes[i].torrent
    }

    /// Host `i`'s listening address.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.sim.lab_addr(i)
    }

    /// Host `i`'s disk (the whole file's bytes, zero where nothing was written).
    pub fn disk(&self, i: usize) -> &[u8] {
        &self.sim.lab_ref().nodes[i].disk
    }

    /// Host `i`'s disk, to change by hand.
    pub fn disk_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.sim.lab_mut().nodes[i].disk
    }

    /// Tells host `i` the addresses of hosts `others` only.
    pub fn introduce_to(&mut self, i: usize, others: &[usize]) {
        let addrs: Vec<SocketAddr> = others.iter().map(|&j| self.addr(j)).collect();
        let (now, torrent) = (self.now(), self.torrent(i));
        self.session_mut(i).add_peers(torrent, &addrs, now);
    }

    /// Tells host `i` the addresses of every other host (as a tracker would).
    pub fn introduce(&mut self, i: usize) {
        let others: Vec<usize> = (0..self.node_count()).filter(|&j| j != i).collect();
        self.introduce_to(i, &others);
    }

    /// Whether hosts `i` and `j` have a connection open between them.
    pub fn linked(&self, i: usize, j: usize) -> bool {
        self.conn_to(i, j).is_some()
    }

    /// Host `i`'s connection to host `j`, if they are linked.
    pub fn conn_to(&self, i: usize, j: usize) -> Option<ConnId> {
        self.sim.lab_conn_to(i, j)
    }

    /// Takes host `i` off the network: its connections close (its peers hear of it), its
    /// session is gone; its disk and verified pieces stay for [`Swarm::rejoin`].
    pub fn leave(&mut self, i: usize) {
        self.sim.lab_leave(i);
    }

    /// Brings host `i` back as a new session (default settings, a new seed) that knows the
    /// pieces it verified before, and introduces it to every other host.
    pub fn rejoin(&mut self, i: usize) {
        let now = self.now();
        let node = &mut self.sim.lab_mut().nodes[i];
        node.seed += REJOIN_SEED_STEP;
        let (seed, have) = (node.seed, node.kept.take());
        let mut session = Session::new(Swarm::node_config(), seed, now);
        let torrent = match session.add_torrent(&self.metainfo, have, now) {
            Ok(t) => t,
            Err(e) => panic!("lab host {i} cannot re-add the torrent: {e}"),
        };
        self.sim.lab_rejoin(i, session, torrent);
        self.introduce(i);
    }

    /// From now on every datagram (DHT, UDP tracker, uTP) is lost with probability
    /// `loss.packet_loss` and delayed by up to `loss.jitter` more (so datagrams overtake
    /// each other), drawn from the lab's loss generator. TCP links opened from now on are
    /// capped at what TCP sustains under that loss, as in the study (`crate::Loss`).
    pub fn set_datagram_loss(&mut self, loss: crate::Loss) {
        self.sim.lab_set_datagram_loss(loss);
    }

    /// Runs until `done` holds or `limit` of virtual time passes; returns whether `done`.
    /// `done` is checked before every event.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Swarm) -> bool) -> bool {
        let end = self
            .sim
            .lab_now()
            .saturating_add(u64::try_from(limit.as_micros()).unwrap_or(u64::MAX / 4));
        // What tests did to sessions by hand since the last run is carried out first.
        self.sim.lab_drain_all();
        while self.sim.lab_now() < end {
            if done(self) {
                return true;
            }
            self.sim.lab_step(end);
        }
        done(self)
    }

    /// Runs one more second so queued actions (events) are carried out.
    pub fn settle(&mut self) {
        self.run_until(Duration::from_secs(1), |_| false);
    }

    /// Closes every online host's session ([`Session::close`]) and runs until each says it
    /// is drained or `limit` passes; returns whether all drained.
    pub fn close_all(&mut self, limit: Duration) -> bool {
        let now = self.now();
        let online: Vec<usize> = (0..self.node_count())
            .filter(|&i| self.sim.lab_session(i).is_some())
            .collect();
        for &i in &online {
            self.session_mut(i).close(now);
        }
        self.run_until(limit, |s| {
            online
                .iter()
                .all(|&i| s.sim.lab_session(i).is_none_or(Session::is_drained))
        })
    }

    /// Whether host `i` is in the swarm.
    pub fn is_online(&self, i: usize) -> bool {
        self.sim.lab_session(i).is_some()
    }

    /// Whether host `i` has verified every piece.
    pub fn is_complete(&self, i: usize) -> bool {
        self.sim
            .lab_session(i)
            .and_then(|s| s.stats(self.torrent(i), self.now()))
            .is_some_and(|s| s.complete)
    }

    /// Whether host `i`'s disk equals the content byte for byte.
    pub fn disk_matches(&self, i: usize) -> bool {
        self.disk(i) == &self.content[..]
    }

    /// The events host `i` emitted, with their times.
    pub fn events(&self, i: usize) -> impl Iterator<Item = &(Instant, Event)> {
        self.sim.lab_ref().nodes[i].events.iter()
    }

    /// Turns the wire sniffer on: from now on every message sent is decoded and kept
    /// ([`Swarm::sniffed`]).
    pub fn sniff(&mut self) {
        self.sim.lab_mut().sniffer.on = true;
    }

    /// The messages seen on the wire since [`Swarm::sniff`].
    pub fn sniffed(&self) -> &[Sniffed] {
        &self.sim.lab_ref().sniffer.seen
    }

    /// Every `Disconnect` a host asked for: when, which host, and why.
    pub fn disconnects(&self) -> &[(Instant, usize, String)] {
        &self.sim.lab_ref().disconnects
    }

    /// Every announce a host made: when, which host, to where, and what it said.
    pub fn announces(&self) -> &[(Instant, usize, String, AnnounceRequest)] {
        &self.sim.lab_ref().announces
    }

    /// Every `SaveResume` a host asked for: when, which host, which torrent, its `have`.
    pub fn saves(&self) -> &[(Instant, usize, TorrentId, Bitfield)] {
        &self.sim.lab_ref().saves
    }

    /// Answers announces with `tracker` from now on (otherwise they are only recorded).
    pub fn set_tracker(&mut self, tracker: TrackerServer) {
        self.sim.lab_mut().tracker = Some(tracker);
    }

    /// How `SaveResume`s are answered from now on.
    pub fn set_save_answer(&mut self, answer: SaveAnswer) {
        self.sim.lab_mut().save_answer = answer;
    }

    /// Answers every save held under [`SaveAnswer::Hold`].
    pub fn answer_held_saves(&mut self, ok: bool) {
        self.sim.lab_answer_held_saves(ok);
    }

    /// Whether a host's `MetadataReceived` is answered with `metadata_ready` at once (with
    /// nothing on disk), as a driver does after creating the storage (default: yes).
    pub fn set_auto_metadata_ready(&mut self, on: bool) {
        self.sim.lab_mut().auto_metadata_ready = on;
    }

    /// When on, a dial to an address no host has is never answered (a black-holed address:
    /// the session's connect time-out ends it); otherwise it is refused.
    pub fn set_unreachable_hangs(&mut self, on: bool) {
        self.sim.lab_mut().unreachable_hangs = on;
    }

    /// Makes host `i`'s disk write at most `bytes_per_sec` (0: writes never finish).
    pub fn set_disk_rate(&mut self, i: usize, bytes_per_sec: usize) {
        self.sim.lab_mut().nodes[i].disk_rate = Some(bytes_per_sec as f64);
    }

    /// Makes host `i`'s disk take only `bytes` more (`None`: unbounded); a write that does
    /// not fit writes nothing and fails with `NoSpace`.
    pub fn set_disk_space(&mut self, i: usize, bytes: Option<usize>) {
        self.sim.lab_mut().nodes[i].disk_space = bytes;
    }

    /// Bytes of writes host `i`'s slow disk has not finished (0 with a normal disk).
    pub fn unwritten(&self, i: usize) -> usize {
        self.sim.lab_ref().nodes[i].unwritten
    }

    /// Makes host `i` read at most `bytes_per_sec` on each of its links (a slow reader).
    pub fn set_read_rate(&mut self, i: usize, bytes_per_sec: usize) {
        self.sim.lab_set_read_rate(i, bytes_per_sec as f64);
    }

    /// Makes host `i` stop reading: bytes sent to it stay in its senders' links, whose
    /// sessions then see nothing accepted.
    pub fn stop_reading(&mut self, i: usize) {
        self.sim.lab_stop_reading(i);
    }

    /// The determinism fingerprint: number of actions and a hash over all of them.
    pub fn fingerprint(&self) -> (u64, u64) {
        self.sim.lab_ref().fingerprint()
    }

    /// What the engine's checks on every event found wrong (bytes a session left unread on
    /// a connection, a `metadata_ready` refused), with their times; empty when all is well.
    pub fn violations(&self) -> &[String] {
        self.sim.violations()
    }
}
