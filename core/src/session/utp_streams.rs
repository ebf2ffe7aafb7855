//! uTP streams (BEP 29) as peer connections: the session's side of its one UDP socket.
//!
//! Every [`UtpConnection`] of the session lives here, keyed as BEP 29 keys them: the
//! peer's address and the connection id the peer puts in the packets it sends us. To the
//! rest of the session a uTP stream is an ordinary connection with a [`ConnId`]: it runs
//! the same BitTorrent handshake, extension protocol and MSE as a TCP one, through the
//! same [`Session::handle_bytes`]. What differs is below the byte stream, and none of it
//! reaches the driver, which only moves datagrams:
//!
//! - **Out.** The `Send`/`SendBlock` actions of a uTP connection never leave the session:
//!   [`Session::poll_action`] hands them here ([`Session::utp_route`]), where they queue
//!   and are written into the connection as its send buffer takes them. The bytes it
//!   takes are reported to the session as a driver's [`Session::handle_sent`] would (so
//!   upload ranking, read-ahead and slow-reader rules work unchanged), and the connection's
//!   packets leave as [`Action::SendDatagram`]s. `Disconnect` sends a FIN after everything
//!   the session handed out, as a closed TCP socket does (a refusal for too many
//!   connections sends a RESET instead), and the stream lingers at most [`CLOSE_LINGER`]
//!   for it.
//! - **In.** [`Session::handle_datagram`] hands us any datagram with a valid uTP header
//!   (version 1, type 0–4) that no UDP tracker exchange claimed; bencoded dictionaries
//!   (`d…`, whose first byte is never a valid uTP header) go to the DHT. The payload a
//!   connection delivers in order is fed to `handle_bytes` at once, from a receive buffer
//!   of our own that keeps what the session left (a partial message), as a driver's does.
//! - **Dials.** A `Connect` becomes a SYN when [`SessionConfig::transport`] says so (see
//!   [`Transport`] for the `Both` policy: uTP first, then TCP). When the SYN is answered
//!   the session opens the connection as if a driver had reported a TCP dial
//!   ([`Session::connection_opened`]); a RESET or silence counts as a failed dial, or in
//!   `Both` mode passes the dial on to TCP. The admission's dial deadline and
//!   `CancelConnect` cover uTP dials too.
//! - **Accepts.** A SYN from an unknown stream opens an inbound connection under the same
//!   admission rules as a TCP one ([`Session::connection_opened`]); a refused one is ended
//!   by the `Disconnect` that refusal queues. A session set to [`Transport::Tcp`] answers
//!   SYNs with a RESET.
//! - **Acknowledgements once per burst.** Handling an input changes a stream but does not
//!   collect its datagrams at once: the stream is marked dirty and its packets are taken
//!   when the driver next polls an action. A driver that hands the session a burst of
//!   datagrams read in a row before polling (both runtimes do) so sends one STATE per
//!   stream for the whole burst instead of one per packet, as libtorrent acknowledges once
//!   its socket is drained: half the datagrams of a one-way transfer were those ACKs.
//! - **Time.** Each stream's next deadline ([`UtpConnection::poll_timeout`], a dial's
//!   give-up time, a closing stream's linger) sits in one ordered index, so
//!   [`Session::poll_timeout`] reads the earliest in O(log n) and `handle_timeout`
//!   visits only the streams that are due.
//!
//! Invariants: `by_conn` and `dials` point only at streams in `streams`, of the matching
//! role; `timers` holds exactly one entry, `(deadline, key)`, per stream with a deadline,
//! equal to its `timer`; a stream's `queue` holds only bytes the session handed out and
//! the connection has not yet taken.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};

use super::Session;
use crate::time::Instant;
use crate::utp::{Packet, PacketType, UtpConfig, UtpConnection, UtpState};
use crate::vocab::{
    Action, ConnId, ConnectFailure, Direction, DisconnectReason, PeerGone, TorrentId, Transport,
};

/// A stream's key: the peer's address and the id it sends to us with (BEP 29).
type Key = (SocketAddr, u16);

/// How long a closed stream waits for its FIN (and the data before it) to be acknowledged
/// before it is dropped: the session has forgotten the connection already, so this only
/// bounds the memory a peer that never answers can hold.
pub(super) const CLOSE_LINGER: Duration = Duration::from_secs(10);

/// How long an address whose uTP dial failed is dialled over TCP directly (`Both`).
const NO_UTP_MEMORY: Duration = Duration::from_secs(30 * 60);

/// The receive buffer grows by this much at a time (see `utp_pump_open`).
const RX_CHUNK: usize = 64 * 1024;

/// Most addresses remembered as having no uTP (the oldest is forgotten first).
const NO_UTP_CAP: usize = 4096;

/// Tries at a random connection id not in use towards one address before the dial goes to
/// TCP (or fails): 16 random draws all colliding needs thousands of streams to one peer.
const ID_TRIES: usize = 16;

/// What a stream is to the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Our SYN is out for this dial; it gives up at `give_up_at`.
    Dialling {
        torrent: TorrentId,
        give_up_at: Instant,
    },
    /// A peer connection of the session.
    Open(ConnId),
    /// The session closed it (or the peer finished): its FIN goes out, then it is dropped,
    /// at the latest at `until`.
    Closing { until: Instant },
}

/// One stream.
#[derive(Debug)]
struct Stream {
    utp: UtpConnection,
    role: Role,
    /// Bytes the session handed out (`Send`/`SendBlock`) that the connection has not
    /// taken yet, in order.
    queue: VecDeque<Bytes>,
    /// Delivered bytes the session has not consumed yet (a partial message).
    rx: BytesMut,
    /// The deadline registered in `UtpStreams::timers`, if any.
    timer: Option<Instant>,
}

/// Counters of the session's uTP streams, for status displays and tests
/// ([`Session::utp_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UtpStreamStats {
    /// uTP dials started (SYNs of new streams).
    pub dials: u64,
    /// uTP dials the peer answered: outbound peer connections over uTP.
    pub dials_connected: u64,
    /// uTP dials that failed (RESET or no answer in time).
    pub dials_failed: u64,
    /// Of those, dials passed on to TCP ([`Transport::Both`]).
    pub fallbacks_to_tcp: u64,
    /// Inbound streams opened from a peer's SYN.
    pub accepted: u64,
    /// Streams currently held (dialling, open or closing).
    pub streams: u64,
    /// Payload bytes delivered in order by uTP connections (what the session read).
    pub bytes_received: u64,
    /// Payload bytes uTP connections took to send (what the session wrote).
    pub bytes_sent: u64,
    /// Datagrams received and handled as uTP.
    pub datagrams_in: u64,
    /// Datagrams sent for uTP.
    pub datagrams_out: u64,
    /// Packets sent again by the streams (time-outs, fast retransmits), closed ones
    /// included.
    pub retransmits: u64,
    /// uTP datagrams that matched no stream, or did not decode.
    pub stray: u64,
    /// RESETs sent to SYNs refused (a `Tcp` session) and to packets of unknown streams.
    pub resets_sent: u64,
}

/// The session's uTP streams. See the module docs.
#[derive(Debug, Default)]
pub(super) struct UtpStreams {
    streams: BTreeMap<Key, Stream>,
    by_conn: BTreeMap<ConnId, Key>,
    dials: BTreeMap<(TorrentId, SocketAddr), Key>,
    timers: BTreeSet<(Instant, Key)>,
    /// Datagrams to hand out as `SendDatagram`, in order.
    datagrams: VecDeque<(SocketAddr, Bytes)>,
    /// Streams changed since their datagrams were last collected (see the module docs).
    dirty: BTreeSet<Key>,
    /// Connections the peer ended (FIN, RESET, silence) since the output queue was last
    /// empty: a `Send` or `Disconnect` the session queued for one before it heard of the
    /// end is dropped here rather than handed to a driver that never knew the connection.
    /// Cleared whenever `poll_action` runs dry (nothing queued can name them after that:
    /// the session has forgotten them), so it stays small.
    ended: BTreeSet<ConnId>,
    /// Dials passed on to TCP: their `Connect` goes to the driver as it is.
    tcp_pass: BTreeSet<(TorrentId, SocketAddr)>,
    /// Addresses whose uTP dial failed lately, and when (`Both` dials them over TCP).
    no_utp: BTreeMap<SocketAddr, Instant>,
    stats: UtpStreamStats,
    /// Retransmits of streams already dropped (the live ones are summed on demand).
    retransmits_gone: u64,
}

impl UtpStreams {
    /// The earliest stream deadline; `now` while streams wait to be collected (the next
    /// `poll_action` does it: drivers drain actions before asking for the deadline, so
    /// this is only a safety net).
    pub(super) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        if self.dirty.is_empty() {
            self.timers.first().map(|(at, _)| *at)
        } else {
            Some(now)
        }
    }

    /// The next datagram to send, if any.
    pub(super) fn pop_datagram(&mut self) -> Option<Action> {
        let (to, bytes) = self.datagrams.pop_front()?;
        Some(Action::SendDatagram { to, bytes })
    }

    fn remove(&mut self, key: Key) {
        self.dirty.remove(&key);
        if let Some(s) = self.streams.remove(&key) {
            if let Some(at) = s.timer {
                self.timers.remove(&(at, key));
            }
            self.retransmits_gone += s.utp.stats().retransmits;
            match s.role {
                Role::Open(conn) => {
                    self.by_conn.remove(&conn);
                }
                Role::Dialling { torrent, .. } => {
                    self.dials.remove(&(torrent, key.0));
                }
                Role::Closing { .. } => {}
            }
        }
    }

    fn remember_no_utp(&mut self, addr: SocketAddr, now: Instant) {
        if self.no_utp.len() >= NO_UTP_CAP && !self.no_utp.contains_key(&addr) {
            let oldest = self
                .no_utp
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(a, _)| *a);
            if let Some(a) = oldest {
                self.no_utp.remove(&a);
            }
        }
        self.no_utp.insert(addr, now);
    }

    fn has_no_utp(&self, addr: SocketAddr, now: Instant) -> bool {
        self.no_utp
            .get(&addr)
            .is_some_and(|at| now - *at < NO_UTP_MEMORY)
    }
}

/// Whether `bytes` starts with a uTP header this crate could speak: at least a header's
/// length, version 1 in the low nibble, type 0–4 in the high one. A bencoded dictionary
/// (`d` = 0x64: version 4) and a UDP tracker reply (action 0–3 big-endian: first byte 0)
/// never pass.
pub(crate) fn looks_like_utp(bytes: &[u8]) -> bool {
    bytes.len() >= crate::utp::packet::HEADER_LEN
        && bytes
            .first()
            .is_some_and(|b| b & 0x0f == crate::utp::packet::VERSION && b >> 4 <= 4)
}

/// The connection settings of the session's streams.
fn utp_config(initial_seq_nr: u16) -> UtpConfig {
    UtpConfig {
        initial_seq_nr,
        ..UtpConfig::default()
    }
}

impl Session {
    /// Counters of the session's uTP streams.
    pub fn utp_stats(&self) -> UtpStreamStats {
        let mut s = self.utp.stats;
        s.streams = self.utp.streams.len() as u64;
        s.retransmits = self.utp.retransmits_gone
            + self
                .utp
                .streams
                .values()
                .map(|st| st.utp.stats().retransmits)
                .sum::<u64>();
        s
    }

    /// Whether `conn` is a uTP stream (as opposed to a TCP connection the driver holds).
    /// `false` once the session has forgotten the connection.
    pub fn is_utp(&self, conn: ConnId) -> bool {
        self.utp.by_conn.contains_key(&conn)
    }

    /// The output queue ran dry: no action queued names a connection the peer ended.
    pub(super) fn utp_output_empty(&mut self) {
        self.utp.ended.clear();
    }

    /// The next uTP datagram to hand out (called first by [`Session::poll_action`]),
    /// after collecting the packets of every stream changed since the last call.
    pub(super) fn utp_pop_datagram(&mut self) -> Option<Action> {
        if !self.utp.dirty.is_empty() {
            let now = self.now;
            for key in std::mem::take(&mut self.utp.dirty) {
                self.utp_flush(key, now);
            }
        }
        let a = self.utp.pop_datagram();
        if a.is_some() {
            self.utp.stats.datagrams_out += 1;
        }
        a
    }

    /// Whether [`Session::utp_route`] would hand `action` back as it is and change
    /// nothing: a send or disconnect with no uTP stream open or just ended, or an action
    /// uTP never takes. Checked first so that the common case (every action of a session
    /// without uTP) is not moved through the router and back.
    pub(super) fn utp_passes(&self, action: &Action) -> bool {
        match action {
            Action::Send { .. } | Action::SendBlock { .. } | Action::Disconnect { .. } => {
                self.utp.by_conn.is_empty() && self.utp.ended.is_empty()
            }
            Action::Connect { .. } | Action::CancelConnect { .. } => false,
            _ => true,
        }
    }

    /// An action on its way out: what concerns a uTP stream (its sends, its disconnect,
    /// a uTP dial and its cancellation) is carried out here and `None` returned; anything
    /// else comes back unchanged for the driver.
    pub(super) fn utp_route(&mut self, action: Action) -> Option<Action> {
        let now = self.now;
        match action {
            Action::Connect { torrent, addr } => {
                if self.utp.tcp_pass.remove(&(torrent, addr)) {
                    return Some(Action::Connect { torrent, addr });
                }
                let utp = match self.config.transport {
                    Transport::Tcp => false,
                    Transport::Utp => true,
                    Transport::Both => !self.utp.has_no_utp(addr, now),
                };
                if utp && self.utp_dial(torrent, addr, now) {
                    None
                } else {
                    Some(Action::Connect { torrent, addr })
                }
            }
            Action::CancelConnect { torrent, addr } => {
                match self.utp.dials.get(&(torrent, addr)).copied() {
                    // The SYN goes unanswered from here: nothing to send (no RESET for a
                    // connection the peer may not even have).
                    Some(key) => {
                        self.utp.remove(key);
                        None
                    }
                    None => Some(Action::CancelConnect { torrent, addr }),
                }
            }
            Action::Send { conn, data } => match self.utp.by_conn.get(&conn).copied() {
                Some(key) => {
                    self.utp_queue(key, [data], now);
                    None
                }
                None if self.utp.ended.contains(&conn) => None,
                None => Some(Action::Send { conn, data }),
            },
            Action::SendBlock { conn, header, data } => {
                match self.utp.by_conn.get(&conn).copied() {
                    Some(key) => {
                        self.utp_queue(key, [header, data], now);
                        None
                    }
                    None if self.utp.ended.contains(&conn) => None,
                    None => Some(Action::SendBlock { conn, header, data }),
                }
            }
            Action::Disconnect { conn, reason } => match self.utp.by_conn.remove(&conn) {
                Some(key) => {
                    if let Some(s) = self.utp.streams.get_mut(&key) {
                        s.role = Role::Closing {
                            until: now + CLOSE_LINGER,
                        };
                        if reason == DisconnectReason::TooManyConnections {
                            // Refused or displaced before its handshake: nothing of ours
                            // is worth sending.
                            s.queue.clear();
                            s.utp.abort();
                        }
                        // Otherwise, as a closed TCP socket still sends what it was
                        // given before its FIN: what the session handed out (a final
                        // message, or the last blocks a seed that just reached its
                        // ratio counted as uploaded) goes out, then the FIN
                        // (`utp_pump`), within the linger.
                    }
                    self.utp_pump(key, now);
                    None
                }
                None if self.utp.ended.remove(&conn) => None,
                None => Some(Action::Disconnect { conn, reason }),
            },
            other => Some(other),
        }
    }

    /// Starts a uTP dial; `false` if no free connection id was found (the caller dials
    /// TCP instead).
    fn utp_dial(&mut self, torrent: TorrentId, addr: SocketAddr, now: Instant) -> bool {
        let Some(id) = (0..ID_TRIES)
            .map(|_| self.rng.u16(..))
            .find(|id| !self.utp.streams.contains_key(&(addr, *id)))
        else {
            return false;
        };
        let give_up_at = now
            + match self.config.transport {
                Transport::Both => self.config.utp_connect_timeout,
                // The admission's `connect_timeout` cancels it; the SYN's own time-outs
                // may end it before.
                _ => self.config.connect_timeout + Duration::from_secs(1),
            };
        let key = (addr, id);
        self.utp.streams.insert(
            key,
            Stream {
                utp: UtpConnection::connect(id, now, utp_config(1)),
                role: Role::Dialling {
                    torrent,
                    give_up_at,
                },
                queue: VecDeque::new(),
                rx: BytesMut::new(),
                timer: None,
            },
        );
        self.utp.dials.insert((torrent, addr), key);
        self.utp.stats.dials += 1;
        self.utp_pump(key, now);
        true
    }

    /// Queues bytes the session handed out for the stream `key`, and sends what fits.
    fn utp_queue<const N: usize>(&mut self, key: Key, chunks: [Bytes; N], now: Instant) {
        if let Some(s) = self.utp.streams.get_mut(&key) {
            s.queue.extend(chunks.into_iter().filter(|c| !c.is_empty()));
        }
        self.utp_pump(key, now);
    }

    /// A datagram that may be uTP (see [`looks_like_utp`]): `true` if it was taken as
    /// uTP (handled or dropped), `false` if it is someone else's.
    pub(super) fn utp_datagram(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) -> bool {
        if !looks_like_utp(bytes) {
            return false;
        }
        self.saw(now);
        let Ok(p) = Packet::decode(bytes) else {
            self.utp.stats.stray += 1;
            return true;
        };
        self.utp.stats.datagrams_in += 1;
        let key = match p.packet_type {
            // The acceptor receives on the SYN's id + 1 (BEP 29).
            PacketType::Syn => (from, p.connection_id.wrapping_add(1)),
            _ => (from, p.connection_id),
        };
        if let Some(s) = self.utp.streams.get_mut(&key) {
            s.utp.handle_packet(&p, now);
            self.utp_pump(key, now);
            return true;
        }
        match p.packet_type {
            PacketType::Syn => self.utp_accept(from, key, &p, now),
            // A RESET for nothing needs no answer; a STATE for a stream we dropped
            // (acknowledging our last packets) neither.
            PacketType::Reset | PacketType::State => self.utp.stats.stray += 1,
            // Data or a FIN for a stream we do not have (dropped, or never ours): a
            // RESET tells the peer to stop retransmitting into nothing.
            PacketType::Data | PacketType::Fin => {
                self.utp.stats.stray += 1;
                self.utp_reset(from, &p);
            }
        }
        true
    }

    /// Answers `p` with a RESET (its connection id, acknowledging its number).
    fn utp_reset(&mut self, to: SocketAddr, p: &Packet) {
        let mut reset = Packet::new(PacketType::Reset);
        reset.connection_id = match p.packet_type {
            // A SYN's sender listens on the id it sent.
            PacketType::Syn => p.connection_id,
            // Otherwise it sent with its send id; it receives on that id − 1 if it
            // dialled (send = recv + 1) and + 1 if it accepted: the dialler case is the
            // one a lingering peer is in most often, and a wrong guess is ignored.
            _ => p.connection_id.wrapping_sub(1),
        };
        reset.ack_nr = p.seq_nr;
        self.utp
            .datagrams
            .push_back((to, Bytes::from(reset.to_vec())));
        self.utp.stats.resets_sent += 1;
    }

    /// A SYN for a stream we do not have: a new inbound connection, admitted as a TCP
    /// one would be.
    fn utp_accept(&mut self, from: SocketAddr, key: Key, syn: &Packet, now: Instant) {
        if self.config.transport == Transport::Tcp || self.life.is_closing() {
            self.utp_reset(from, syn);
            return;
        }
        let config = utp_config(self.rng.u16(..));
        let Ok(utp) = UtpConnection::accept(syn, now, config) else {
            return;
        };
        // Opened before registering: a refusal queues a `Disconnect` for this id, which
        // reaches `utp_route` only later, from `poll_action`, when the stream is known.
        let conn = self.connection_opened(from, Direction::Inbound, now);
        self.utp.streams.insert(
            key,
            Stream {
                utp,
                role: Role::Open(conn),
                queue: VecDeque::new(),
                rx: BytesMut::new(),
                timer: None,
            },
        );
        self.utp.by_conn.insert(conn, key);
        self.utp.stats.accepted += 1;
        self.utp_pump(key, now);
    }

    /// Streams whose deadlines came: their time-outs run, dials give up, closing streams
    /// are dropped. Only the streams due are visited.
    pub(super) fn utp_timeout(&mut self, now: Instant) {
        let due: Vec<Key> = self
            .utp
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, k)| *k)
            .collect();
        for key in due {
            if let Some(s) = self.utp.streams.get_mut(&key) {
                s.utp.handle_timeout(now);
            }
            self.utp_pump(key, now);
        }
    }

    /// After anything happened to stream `key`: reports its changes to the session
    /// (opened, data, ended), writes what is queued as far as the connection takes it,
    /// and marks it for its datagrams and deadline to be collected (`utp_flush`, from
    /// the next `poll_action`).
    fn utp_pump(&mut self, key: Key, now: Instant) {
        let Some(role) = self.utp.streams.get(&key).map(|s| s.role) else {
            return;
        };
        match role {
            Role::Dialling {
                torrent,
                give_up_at,
            } => self.utp_pump_dial(key, torrent, give_up_at, now),
            Role::Open(conn) => self.utp_pump_open(key, conn, now),
            Role::Closing { until } => {
                if let Some(s) = self.utp.streams.get_mut(&key) {
                    // Anything the peer still sends is not read by anyone.
                    while s.utp.recv().is_some() {}
                    // What is still queued goes first, then our FIN.
                    while let Some(front) = s.queue.front_mut() {
                        let n = s.utp.write(front);
                        if n == front.len() {
                            s.queue.pop_front();
                        } else {
                            front.advance(n);
                            break;
                        }
                    }
                    if s.queue.is_empty() {
                        s.utp.close();
                    }
                    if now >= until && !s.utp.is_closed() {
                        s.utp.abort();
                    }
                }
            }
        }
        if self.utp.streams.contains_key(&key) {
            self.utp.dirty.insert(key);
        }
    }

    fn utp_pump_dial(&mut self, key: Key, torrent: TorrentId, give_up_at: Instant, now: Instant) {
        let Some(state) = self.utp.streams.get(&key).map(|s| s.utp.state()) else {
            return;
        };
        let addr = key.0;
        match state {
            UtpState::Connected => {
                self.utp.dials.remove(&(torrent, addr));
                self.utp.stats.dials_connected += 1;
                let conn = self.connection_opened(addr, Direction::Outbound(torrent), now);
                if let Some(s) = self.utp.streams.get_mut(&key) {
                    s.role = Role::Open(conn);
                }
                self.utp.by_conn.insert(conn, key);
                // The answer may have carried data already.
                self.utp_pump_open(key, conn, now);
            }
            UtpState::SynSent if now < give_up_at => {}
            _ => {
                let reset = state == UtpState::Reset;
                if let Some(s) = self.utp.streams.get_mut(&key) {
                    s.utp.abort();
                }
                self.utp.remove(key);
                self.utp.stats.dials_failed += 1;
                self.utp.remember_no_utp(addr, now);
                if self.config.transport == Transport::Both {
                    // The same dial, over TCP: its `Connect` passes `utp_route` next time
                    // and restarts the admission's dial deadline.
                    self.utp.stats.fallbacks_to_tcp += 1;
                    self.utp.tcp_pass.insert((torrent, addr));
                    self.out.push(Action::Connect { torrent, addr });
                } else {
                    let reason = if reset {
                        ConnectFailure::Refused
                    } else {
                        ConnectFailure::TimedOut(self.dial_span())
                    };
                    self.handle_connect_error(torrent, addr, reason, now);
                }
            }
        }
    }

    /// How long a uTP dial is given (see `utp_dial`).
    fn dial_span(&self) -> Duration {
        match self.config.transport {
            Transport::Both => self.config.utp_connect_timeout,
            _ => self.config.connect_timeout + Duration::from_secs(1),
        }
    }

    fn utp_pump_open(&mut self, key: Key, conn: ConnId, now: Instant) {
        // Delivered bytes go to the session through its usual path, from our own buffer.
        let mut rx = match self.utp.streams.get_mut(&key) {
            Some(s) => {
                let mut got = 0usize;
                while let Some(b) = s.utp.recv() {
                    got += b.len();
                    if s.rx.capacity() - s.rx.len() < b.len() {
                        // Whole chunks, as a TCP driver reads: blocks are split out of
                        // this buffer without copying and hold its allocation until
                        // written, so growing it a packet at a time left allocations
                        // up to twice the blocks they held (a leecher's anonymous memory
                        // reached 58 MiB against 32 MiB of blocks waiting for the disk).
                        s.rx.reserve(RX_CHUNK.max(b.len()));
                    }
                    s.rx.extend_from_slice(&b);
                }
                self.utp.stats.bytes_received += got as u64;
                if got == 0 {
                    None
                } else {
                    Some(std::mem::take(&mut s.rx))
                }
            }
            None => return,
        };
        if let Some(buf) = rx.as_mut() {
            self.handle_bytes(conn, buf, now);
        }
        // Still ours? (A `Disconnect` is routed later, so the stream is still here; the
        // role says whether the session still has the connection.)
        let Some(s) = self.utp.streams.get_mut(&key) else {
            return;
        };
        if let Some(buf) = rx.take() {
            s.rx = buf;
        }
        // Write what is queued as far as the connection takes it.
        let mut taken = 0usize;
        while let Some(front) = s.queue.front_mut() {
            let n = s.utp.write(front);
            taken += n;
            if n == front.len() {
                s.queue.pop_front();
            } else {
                front.advance(n);
                break;
            }
        }
        let ended = s.utp.is_closed() || s.utp.is_peer_finished();
        let gone = match s.utp.state() {
            UtpState::Reset => PeerGone::ReadFailed(std::io::ErrorKind::ConnectionReset),
            UtpState::TimedOut => PeerGone::ReadFailed(std::io::ErrorKind::TimedOut),
            _ => PeerGone::HungUp,
        };
        if taken > 0 {
            self.utp.stats.bytes_sent += taken as u64;
            self.handle_sent(conn, taken, now);
        }
        if ended && self.utp.by_conn.get(&conn) == Some(&key) {
            // The peer is gone (its FIN after everything it sent, a RESET, silence):
            // the session hears it as a driver's socket closing. Our FIN answers it.
            self.utp.by_conn.remove(&conn);
            self.utp.ended.insert(conn);
            if let Some(s) = self.utp.streams.get_mut(&key) {
                s.queue.clear();
                s.utp.close();
                s.role = Role::Closing {
                    until: now + CLOSE_LINGER,
                };
            }
            self.handle_closed(conn, gone, now);
        }
    }

    /// Collects the stream's datagrams, drops it once it is over, re-registers its
    /// deadline.
    fn utp_flush(&mut self, key: Key, now: Instant) {
        let Some(s) = self.utp.streams.get_mut(&key) else {
            return;
        };
        while let Some(d) = s.utp.poll_transmit(now) {
            self.utp.datagrams.push_back((key.0, Bytes::from(d)));
        }
        let done = match s.role {
            Role::Closing { until } => s.utp.is_closed() || now >= until,
            _ => false,
        };
        if done {
            self.utp.remove(key);
            return;
        }
        let role_deadline = match s.role {
            Role::Dialling { give_up_at, .. } => Some(give_up_at),
            Role::Closing { until } => Some(until),
            Role::Open(_) => None,
        };
        let next = crate::time::earliest([s.utp.poll_timeout(), role_deadline]);
        if next != s.timer {
            let old = std::mem::replace(&mut s.timer, next);
            if let Some(at) = old {
                self.utp.timers.remove(&(at, key));
            }
            if let Some(at) = next {
                self.utp.timers.insert((at, key));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::looks_like_utp;

    #[test]
    fn demultiplexing_by_first_byte() {
        let mut header = [0u8; 20];
        for t in 0..=4u8 {
            header[0] = (t << 4) | 1;
            assert!(looks_like_utp(&header), "type {t}");
        }
        header[0] = (5 << 4) | 1;
        assert!(!looks_like_utp(&header), "type 5 is not uTP");
        header[0] = b'd';
        assert!(
            !looks_like_utp(&header),
            "a bencoded dictionary is the DHT's"
        );
        header[0] = 0;
        assert!(
            !looks_like_utp(&header),
            "a UDP tracker reply starts with 0"
        );
        assert!(!looks_like_utp(&[0x41; 19]), "shorter than a header");
    }
}
