//! Connection policy below the wire protocol: which sockets are admitted, when a dial is
//! given up, when a peer that does not read is dropped, how far uploads may run ahead of
//! the socket, and the peer events a UI shows — each decided here, once, on the session's
//! clock, so no driver repeats (or disagrees on) any of it.
//!
//! Rules, with their [`SessionConfig`] settings:
//! - **Admission.** An inbound connection is refused as it is opened when
//!   `max_inbound` inbound connections are held, when its IP already holds
//!   `max_inbound_per_ip` inbound connections, or `max_handshaking_per_ip` still in their
//!   handshake. A refused connection gets a `Disconnect` and no event.
//! - **Handshake flood.** When `max_inbound_handshaking` inbound connections have not
//!   finished their handshake, a new one is not refused: the *oldest* handshaking one is
//!   dropped ([`DisconnectReason::TooManyConnections`]) to make room. An honest peer
//!   handshakes within a round trip, so the oldest silent socket is the one least likely
//!   to be honest; refusing the newcomer instead would let 100 sockets kept refilled by an
//!   attacker lock every honest peer out. One younger than 250 ms is left alone (the
//!   newcomer is refused then). Inbound handshakes also get the shorter
//!   `inbound_handshake_timeout`.
//! - **Eviction when full** (decided in `torrent/peer_set.rs`, `least_useful`, with the
//!   upload times kept here). When a torrent holds `max_peers_per_torrent` peers and a new
//!   one completes its handshake, a connected peer is evicted for it if one qualifies:
//!   no payload exchanged either way for `evict_idle_after` (counted from its connection
//!   if it never exchanged any), so a peer that uploads to us or that we upload to is never
//!   evicted, and a newcomer gets that long to prove itself — only `evict_useless_after`
//!   (3 s) if it is useless: neither interested nor interesting, or interested but it
//!   took nothing from an upload slot it was given (a wasted slot, `torrent/choking.rs`)
//!   while we want nothing from it. Among those, the least useful
//!   goes first: neither interested nor interesting, then snubbed, then interested in us
//!   while we want nothing from it, then interesting to us but choking us; ties go to the
//!   longest idle. With none qualifying the newcomer is refused as before. A full torrent
//!   also dials one peer past the limit itself while a useless or snubbed peer holds a
//!   slot, at most one such dial per `evict_dial_interval` (`torrent/peer_set.rs`,
//!   `dial_to_evict`).
//! - **Evicted addresses remembered** (`evicted_memory`, `evicted_memory_for`). The IP of
//!   a peer evicted as idle is remembered per torrent, with when its idle time began,
//!   for `evicted_memory_for` (at most `evicted_memory` entries; the oldest eviction is
//!   forgotten first). It comes back without the grace: while the torrent is full it is
//!   refused rather than admitted in the place of another idle peer, and when there is
//!   room it is admitted with its idle time counted from before it left, so it is the
//!   first to be evicted again. Without this an evicted attacker reconnects at once and
//!   evicts the next idle peer with a fresh grace, the attackers keep every slot young,
//!   and an honest newcomer never finds one to take. It is no ban: an honest peer that
//!   was idle for good reason (a seed connecting to a seed) is admitted whenever there
//!   is room and keeps its place as soon as it exchanges payload. Peers behind one NAT
//!   share the memory of their IP.
//! - **Duplicate peer ids** (`Session::handle_handshake`). Our own id is a connection to
//!   ourselves whatever else holds. Another peer's id already connected on the torrent:
//!   the established connection stays if it exchanged payload; an older one than
//!   `duplicate_grace` that never did gives way to a newcomer from another IP (not to
//!   one from its own, or a squatter reconnecting would stay young); a younger one stays
//!   against a newcomer from another IP, and against one from the same IP (two peers
//!   that dialled each other at once) the simultaneous-open rule keeps the same one at
//!   both ends. A newcomer never evicts a productive connection, and a squatter that came
//!   first cannot lock the real peer out for longer than `duplicate_grace`.
//! - **Connect time-out.** A dial not reported opened or failed within `connect_timeout`
//!   of its `Connect` counts as failed: `CancelConnect`, then `ConnectFailed` with
//!   [`ConnectFailure::TimedOut`]. A late report of that dial is ignored (a failure) or
//!   accepted like any connection (an open).
//! - **Slow readers** (with `send_accounting`). Bytes handed out in `Send`/`SendBlock` are
//!   unsent until [`super::Session::handle_sent`] reports them accepted. More than
//!   `max_unsent_bytes` unsent, or unsent bytes and nothing accepted for
//!   `send_stall_timeout`, drops the connection as [`DisconnectReason::SlowReader`].
//! - **Upload read-ahead** (with `send_accounting`). A `ReadBlock` for a connection whose
//!   unsent bytes plus blocks being read exceed `upload_read_ahead` is held back and
//!   released, in order, as the socket accepts bytes.
//! - **Peer events** (with `peer_events`). `PeerConnected` when an admitted connection
//!   opens; exactly one `PeerDisconnected` when it ends, whoever ended it; one
//!   `ConnectFailed` per failed dial.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

use crate::time::Instant;
use crate::torrent::Activity;
use crate::vocab::conn_map::ConnMap;
use crate::vocab::{
    Action, ConnId, ConnectFailure, Direction, Event, PeerGone, SessionConfig, TorrentId,
};

/// How long a handshaking connection is left alone before a newcomer may take its place
/// in a full pool: an honest handshake takes a round trip, which this covers for most
/// paths, so a burst of honest peers arriving together is refused (and redials) rather
/// than cutting each other off mid-handshake. Not longer: an attacker refilling the pool
/// faster than the pool's size per this age keeps every entry younger than it, and then
/// every newcomer — the honest one too — is refused. With the 100-slot pool an attacker
/// needs 400 new sockets a second to do that at 250 ms (100 a second at 1 s).
const FLOOD_MIN_AGE: std::time::Duration = std::time::Duration::from_millis(250);

/// A connection the driver opened and the session admitted.
#[derive(Debug)]
struct Open {
    addr: SocketAddr,
    inbound: bool,
    /// Still in its handshake (counts against `max_inbound_handshaking` when inbound).
    handshaking: bool,
    /// When it opened: the oldest handshaking connection gives way in a flood.
    since: Instant,
    /// Dropped to make room, its `Disconnect` not yet handed out: counts for nothing.
    doomed: bool,
    /// When a block was last handed out for it (`SendBlock`): we upload to it.
    block_sent: Option<Instant>,
    /// Its IP was evicted as idle lately: its idle time counts from here, not from its
    /// connection (see the module docs).
    idle_from: Option<Instant>,
    /// Bytes handed to the driver and not yet accepted by the socket.
    unsent: usize,
    /// Bytes of `ReadBlock`s released and not yet answered by `disk_read_done`.
    reading: usize,
    /// Bytes of blocks read and queued to go out as `SendBlock`s, not handed out yet.
    /// Counted as committed: a driver that answers reads inside its `poll_action` loop
    /// gets the next held read before the block just read is handed out, so without
    /// this every held read would be released in one loop, past the read-ahead bound.
    queued: usize,
    /// Since when the socket has accepted nothing while bytes were unsent.
    waiting_since: Option<Instant>,
    /// `ReadBlock`s held back by the read-ahead bound, in order.
    held: VecDeque<Action>,
}

impl Open {
    fn committed(&self) -> usize {
        self.unsent
            .saturating_add(self.reading)
            .saturating_add(self.queued)
    }
}

/// Sets `o.waiting_since` (of connection `conn`) and keeps the `waiting` index in step.
fn set_waiting(
    waiting: &mut BTreeSet<(Instant, ConnId)>,
    conn: ConnId,
    o: &mut Open,
    since: Option<Instant>,
) {
    if let Some(old) = o.waiting_since {
        waiting.remove(&(old, conn));
    }
    if let Some(new) = since {
        waiting.insert((new, conn));
    }
    o.waiting_since = since;
}

/// The session's connection bookkeeping; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    /// Looked up on every send and `handle_sent`; walked only where order cannot show (a
    /// count, a minimum over `(since, conn)`): a hash map.
    open: ConnMap<Open>,
    /// Index of `open`: `(waiting_since, conn)` for every connection whose `waiting_since`
    /// is set, and nothing else, so the earliest send stall is found without a scan
    /// (`handle_sent` and `poll_timeout` run per socket write: a scan of every connection
    /// there made a seed with many peers quadratic).
    waiting: BTreeSet<(Instant, ConnId)>,
    /// Index of `open`: exactly the connections whose `unsent` exceeds
    /// `max_unsent_bytes` (with `send_accounting`), for the same reason.
    over_cap: BTreeSet<ConnId>,
    /// Dials in flight and when they time out.
    dials: BTreeMap<(TorrentId, SocketAddr), Instant>,
    /// Dials given up on time-out, whose late failure report must not count twice.
    timed_out: BTreeSet<(TorrentId, SocketAddr)>,
    /// Actions to hand out before the outbox's: peer events and released reads.
    ready: VecDeque<Action>,
    /// Whether peer events are emitted ([`SessionConfig::peer_events`]).
    events: bool,
    /// IPs evicted as idle, per torrent (see the module docs), bounded by
    /// `evicted_memory`.
    evicted: BTreeMap<(TorrentId, IpAddr), Evicted>,
}

/// What is remembered of an address evicted as idle.
#[derive(Debug, Clone, Copy)]
struct Evicted {
    /// Since when it had exchanged no payload when it was evicted.
    idle_since: Instant,
    /// When it was evicted: it is forgotten `evicted_memory_for` later.
    at: Instant,
}

/// What [`Admission::admit_inbound`] decided for a new inbound connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// Take it.
    Admit,
    /// Refuse it (a limit is reached).
    Refuse,
    /// Take it and drop this older handshaking connection to make room.
    Replace(ConnId),
}

/// What [`Admission::timeout`] decided.
#[derive(Debug, Default)]
pub(crate) struct Expired {
    /// Dials that timed out (already cancelled and reported): count them failed.
    pub(crate) dials: Vec<(TorrentId, SocketAddr)>,
    /// Connections to drop as slow readers.
    pub(crate) slow: Vec<ConnId>,
}

impl Admission {
    /// Bookkeeping for a session with `config`.
    pub(crate) fn new(config: &SessionConfig) -> Self {
        Admission {
            events: config.peer_events,
            ..Admission::default()
        }
    }

    /// Queues a peer event, if they are wanted.
    fn tell(&mut self, event: Event) {
        if self.events {
            self.ready.push_back(Action::Event(event));
        }
    }

    /// Whether an inbound connection from `addr` may be opened now (see the module docs:
    /// per-IP caps and the total are refused; a full handshaking pool makes room by
    /// dropping its oldest member, which is marked so it counts for nothing from now).
    pub(crate) fn admit_inbound(
        &mut self,
        addr: SocketAddr,
        config: &SessionConfig,
        now: Instant,
    ) -> Inbound {
        let inbound = self.open.values().filter(|o| o.inbound && !o.doomed);
        let (mut held, mut handshaking, mut from_ip, mut shaking_from_ip) = (0, 0, 0, 0);
        for o in inbound {
            let same_ip = o.addr.ip() == addr.ip();
            held += 1;
            handshaking += usize::from(o.handshaking);
            from_ip += usize::from(same_ip);
            shaking_from_ip += usize::from(same_ip && o.handshaking);
        }
        if held >= config.max_inbound
            || from_ip >= config.max_inbound_per_ip
            || shaking_from_ip >= config.max_handshaking_per_ip
        {
            return Inbound::Refuse;
        }
        if handshaking < config.max_inbound_handshaking {
            return Inbound::Admit;
        }
        let oldest = self
            .open
            .iter_mut()
            .filter(|(_, o)| o.inbound && o.handshaking && !o.doomed)
            .min_by_key(|(c, o)| (o.since, **c))
            .filter(|(_, o)| now.saturating_duration_since(o.since) >= FLOOD_MIN_AGE);
        match oldest {
            Some((&conn, o)) => {
                o.doomed = true;
                Inbound::Replace(conn)
            }
            None => Inbound::Refuse,
        }
    }

    /// A block of `payload` bytes for `conn` was handed out at `now`: we upload to it,
    /// and its bytes move from queued to unsent (see [`Self::handed`]).
    pub(crate) fn block_handed(&mut self, conn: ConnId, payload: usize, now: Instant) {
        if let Some(o) = self.open.get_mut(&conn) {
            o.block_sent = Some(now);
            o.queued = o.queued.saturating_sub(payload);
        }
    }

    /// When a block was last handed out for `conn`, if ever.
    pub(crate) fn last_block_sent(&self, conn: ConnId) -> Option<Instant> {
        self.open.get(&conn).and_then(|o| o.block_sent)
    }

    /// An admitted connection opened: remember it and announce it.
    pub(crate) fn opened(
        &mut self,
        conn: ConnId,
        addr: SocketAddr,
        direction: Direction,
        now: Instant,
    ) {
        let torrent = match direction {
            Direction::Outbound(t) => {
                self.dials.remove(&(t, addr));
                self.timed_out.remove(&(t, addr));
                Some(t)
            }
            Direction::Inbound => None,
        };
        let inbound = torrent.is_none();
        self.open.insert(
            conn,
            Open {
                addr,
                inbound,
                handshaking: true,
                since: now,
                doomed: false,
                block_sent: None,
                idle_from: None,
                unsent: 0,
                reading: 0,
                queued: 0,
                waiting_since: None,
                held: VecDeque::new(),
            },
        );
        self.tell(Event::PeerConnected {
            torrent,
            addr,
            inbound,
        });
    }

    /// The connection finished its handshake and joined `torrent`. If its IP was evicted
    /// as idle lately, its idle time counts from before it left.
    pub(crate) fn established(
        &mut self,
        conn: ConnId,
        torrent: TorrentId,
        config: &SessionConfig,
        now: Instant,
    ) {
        let Some(o) = self.open.get(&conn) else {
            return;
        };
        let idle_from = self.remembered(torrent, o.addr.ip(), config, now);
        if let Some(o) = self.open.get_mut(&conn) {
            o.handshaking = false;
            o.idle_from = idle_from;
        }
    }

    /// What eviction needs to know of `conn` from here.
    pub(crate) fn activity(&self, conn: ConnId) -> Activity {
        self.open
            .get(&conn)
            .map(|o| Activity {
                block_sent: o.block_sent,
                idle_from: o.idle_from,
            })
            .unwrap_or_default()
    }

    /// A peer of `torrent` at `ip`, idle since `idle_since`, is evicted as idle at `now`:
    /// remember it (see the module docs). At capacity, expired entries go first, then
    /// the oldest eviction.
    pub(crate) fn remember_evicted(
        &mut self,
        torrent: TorrentId,
        ip: IpAddr,
        idle_since: Instant,
        config: &SessionConfig,
        now: Instant,
    ) {
        if config.evicted_memory == 0 {
            return;
        }
        let key = (torrent, ip);
        if !self.evicted.contains_key(&key) && self.evicted.len() >= config.evicted_memory {
            let ttl = config.evicted_memory_for;
            self.evicted
                .retain(|_, e| now.saturating_duration_since(e.at) < ttl);
            while self.evicted.len() >= config.evicted_memory {
                let oldest = self
                    .evicted
                    .iter()
                    .min_by_key(|(k, e)| (e.at, **k))
                    .map(|(k, _)| *k);
                match oldest {
                    Some(k) => self.evicted.remove(&k),
                    None => break,
                };
            }
        }
        self.evicted.insert(
            key,
            Evicted {
                idle_since,
                at: now,
            },
        );
    }

    /// Since when `ip` had been idle when it was last evicted as idle from `torrent`, if
    /// that is still remembered at `now`.
    pub(crate) fn remembered(
        &self,
        torrent: TorrentId,
        ip: IpAddr,
        config: &SessionConfig,
        now: Instant,
    ) -> Option<Instant> {
        if config.evicted_memory == 0 {
            return None;
        }
        self.evicted
            .get(&(torrent, ip))
            .filter(|e| now.saturating_duration_since(e.at) < config.evicted_memory_for)
            .map(|e| e.idle_since)
    }

    /// The connection ended (`reason`): forget it and announce it, once.
    pub(crate) fn closed(&mut self, conn: ConnId, reason: PeerGone) {
        if let Some(o) = self.open.remove(&conn) {
            if let Some(since) = o.waiting_since {
                self.waiting.remove(&(since, conn));
            }
            self.over_cap.remove(&conn);
            self.tell(Event::PeerDisconnected {
                addr: o.addr,
                reason,
            });
        }
    }

    /// A `Connect` was handed out: its deadline starts now.
    pub(crate) fn dialling(
        &mut self,
        torrent: TorrentId,
        addr: SocketAddr,
        config: &SessionConfig,
        now: Instant,
    ) {
        self.timed_out.remove(&(torrent, addr));
        self.dials
            .insert((torrent, addr), now + config.connect_timeout);
    }

    /// The driver reports a dial failed. Returns whether it counts (it is not a dial the
    /// session already gave up on), having queued the event when it does.
    pub(crate) fn dial_failed(
        &mut self,
        torrent: TorrentId,
        addr: SocketAddr,
        reason: ConnectFailure,
    ) -> bool {
        if self.timed_out.remove(&(torrent, addr)) {
            return false;
        }
        self.dials.remove(&(torrent, addr));
        self.tell(Event::ConnectFailed {
            torrent,
            addr,
            reason,
        });
        true
    }

    /// Bytes handed to the driver for `conn`.
    pub(crate) fn handed(
        &mut self,
        conn: ConnId,
        bytes: usize,
        config: &SessionConfig,
        now: Instant,
    ) {
        if !config.send_accounting {
            return;
        }
        if let Some(o) = self.open.get_mut(&conn) {
            if o.unsent == 0 {
                set_waiting(&mut self.waiting, conn, o, Some(now));
            }
            o.unsent = o.unsent.saturating_add(bytes);
            if o.unsent > config.max_unsent_bytes {
                self.over_cap.insert(conn);
            }
        }
    }

    /// The socket of `conn` accepted `bytes`; held reads are released as room frees up.
    pub(crate) fn sent(
        &mut self,
        conn: ConnId,
        bytes: usize,
        config: &SessionConfig,
        now: Instant,
    ) {
        let Some(o) = self.open.get_mut(&conn) else {
            return;
        };
        o.unsent = o.unsent.saturating_sub(bytes);
        if o.unsent <= config.max_unsent_bytes {
            self.over_cap.remove(&conn);
        }
        if bytes > 0 || o.unsent == 0 {
            set_waiting(&mut self.waiting, conn, o, (o.unsent > 0).then_some(now));
        }
        Self::release(o, &mut self.ready, config);
    }

    /// A block read for `conn` came back from the disk; `queued` is whether it now waits
    /// to go out as a `SendBlock` (its bytes stay committed until it is handed out).
    pub(crate) fn read_done(
        &mut self,
        conn: ConnId,
        bytes: usize,
        queued: bool,
        config: &SessionConfig,
    ) {
        if let Some(o) = self.open.get_mut(&conn) {
            o.reading = o.reading.saturating_sub(bytes);
            if queued {
                o.queued = o.queued.saturating_add(bytes);
            }
            Self::release(o, &mut self.ready, config);
        }
    }

    fn release(o: &mut Open, ready: &mut VecDeque<Action>, config: &SessionConfig) {
        while o.committed() <= config.upload_read_ahead {
            let Some(read) = o.held.pop_front() else {
                return;
            };
            if let Action::ReadBlock { block, .. } = &read {
                o.reading = o.reading.saturating_add(block.length as usize);
            }
            ready.push_back(read);
        }
    }

    /// Whether any connection has more unsent than `max_unsent_bytes` ([`Admission::over_cap`]
    /// would list one): a check without building the list.
    pub(crate) fn any_over_cap(&self, config: &SessionConfig) -> bool {
        config.send_accounting && !self.over_cap.is_empty()
    }

    /// Connections with more unsent than `max_unsent_bytes` (drop them), in connection
    /// order.
    pub(crate) fn over_cap(&self, config: &SessionConfig) -> Vec<ConnId> {
        if !config.send_accounting {
            return Vec::new();
        }
        self.over_cap.iter().copied().collect()
    }

    /// Filters an action on its way out: a `ReadBlock` past the read-ahead bound is held
    /// (`None`); one within it is counted. Anything else passes.
    pub(crate) fn gate_read(&mut self, action: Action, config: &SessionConfig) -> Option<Action> {
        let Action::ReadBlock { conn, block, .. } = &action else {
            return Some(action);
        };
        if !config.send_accounting {
            return Some(action);
        }
        let Some(o) = self.open.get_mut(conn) else {
            return Some(action);
        };
        if !o.held.is_empty() || o.committed() > config.upload_read_ahead {
            o.held.push_back(action);
            return None;
        }
        o.reading = o.reading.saturating_add(block.length as usize);
        Some(action)
    }

    /// Bytes handed out for `conn` and not yet accepted by its socket.
    pub(crate) fn unsent(&self, conn: ConnId) -> Option<usize> {
        self.open.get(&conn).map(|o| o.unsent)
    }

    /// Gives up the dials in flight for `torrent` (`None`: every torrent) because the
    /// torrent paused, was removed or the session closes: each gets a `CancelConnect` and
    /// no `ConnectFailed` (nothing failed), and a late report of it is ignored.
    pub(crate) fn cancel_dials(&mut self, torrent: Option<TorrentId>) {
        let gone: Vec<(TorrentId, SocketAddr)> = self
            .dials
            .keys()
            .filter(|(t, _)| torrent.is_none_or(|only| *t == only))
            .copied()
            .collect();
        for (torrent, addr) in gone {
            self.dials.remove(&(torrent, addr));
            self.timed_out.insert((torrent, addr));
            self.ready
                .push_back(Action::CancelConnect { torrent, addr });
        }
    }

    /// A cancelled dial was reported opened anyway and refused at once: nothing more will
    /// be reported for it.
    pub(crate) fn forget_dial(&mut self, torrent: TorrentId, addr: SocketAddr) {
        self.dials.remove(&(torrent, addr));
        self.timed_out.remove(&(torrent, addr));
    }

    /// The next peer event or released read, if any.
    pub(crate) fn pop(&mut self) -> Option<Action> {
        self.ready.pop_front()
    }

    /// Dials and slow readers past their deadlines at `now`. Timed-out dials are
    /// cancelled and reported here; the caller counts them failed and drops the slow
    /// readers.
    pub(crate) fn timeout(&mut self, config: &SessionConfig, now: Instant) -> Expired {
        let mut expired = Expired::default();
        let due: Vec<(TorrentId, SocketAddr)> = self
            .dials
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for (torrent, addr) in due {
            self.dials.remove(&(torrent, addr));
            self.timed_out.insert((torrent, addr));
            self.ready
                .push_back(Action::CancelConnect { torrent, addr });
            self.tell(Event::ConnectFailed {
                torrent,
                addr,
                reason: ConnectFailure::TimedOut(config.connect_timeout),
            });
            expired.dials.push((torrent, addr));
        }
        if config.send_accounting {
            expired.slow = self
                .waiting
                .iter()
                .take_while(|(since, _)| now - *since >= config.send_stall_timeout)
                .map(|(_, c)| *c)
                .collect();
        }
        expired
    }

    /// The earliest deadline this module keeps.
    pub(crate) fn next_deadline(&self, config: &SessionConfig) -> Option<Instant> {
        let dial = self.dials.values().min().copied();
        let stall = if config.send_accounting {
            self.waiting
                .first()
                .map(|(since, _)| *since + config.send_stall_timeout)
        } else {
            None
        };
        crate::time::earliest([dial, stall])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::BlockRequest;
    use std::time::Duration;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn accounting() -> SessionConfig {
        SessionConfig {
            send_accounting: true,
            peer_events: true,
            upload_read_ahead: 32 * 1024,
            ..SessionConfig::default()
        }
    }

    fn read(conn: ConnId, begin: u32) -> Action {
        Action::ReadBlock {
            conn,
            torrent: TorrentId(0),
            block: BlockRequest {
                index: 0,
                begin,
                length: 16 * 1024,
            },
        }
    }

    #[test]
    fn reads_past_the_read_ahead_wait_for_the_socket_and_leave_in_order() {
        let cfg = accounting();
        let mut a = Admission::new(&cfg);
        let c = ConnId(1);
        a.opened(c, addr(1), Direction::Inbound, Instant::ZERO);
        assert!(matches!(
            a.pop(),
            Some(Action::Event(Event::PeerConnected { .. }))
        ));
        a.handed(c, 40 * 1024, &cfg, Instant::ZERO);
        assert_eq!(a.gate_read(read(c, 0), &cfg), None);
        assert_eq!(a.gate_read(read(c, 16384), &cfg), None);
        assert_eq!(a.pop(), None);
        // The socket takes 20 KiB: 20 KiB unsent, room for one 16 KiB read (36 > 32 stops).
        a.sent(c, 20 * 1024, &cfg, Instant::ZERO);
        assert_eq!(a.pop(), Some(read(c, 0)));
        assert_eq!(a.pop(), None);
        // That read comes back and its block waits in the outbox: still committed, so
        // the next read waits (an inline disk would otherwise release it at once).
        a.read_done(c, 16 * 1024, true, &cfg);
        assert_eq!(a.pop(), None);
        // The block is handed out (now unsent: 36 KiB and its header), then the socket
        // takes 20 KiB: room again.
        a.block_handed(c, 16 * 1024, Instant::ZERO);
        a.handed(c, 16 * 1024 + 13, &cfg, Instant::ZERO);
        assert_eq!(a.pop(), None);
        a.sent(c, 20 * 1024, &cfg, Instant::ZERO);
        assert_eq!(a.pop(), Some(read(c, 16384)));
        assert_eq!(a.pop(), None);
    }

    #[test]
    fn a_read_that_sends_nothing_frees_its_room_at_once() {
        let cfg = accounting();
        let mut a = Admission::new(&cfg);
        let c = ConnId(1);
        a.opened(c, addr(1), Direction::Inbound, Instant::ZERO);
        let _ = a.pop();
        a.handed(c, 20 * 1024, &cfg, Instant::ZERO);
        assert_eq!(a.gate_read(read(c, 0), &cfg), Some(read(c, 0)));
        assert_eq!(a.gate_read(read(c, 16384), &cfg), None);
        // Choked or cancelled meanwhile: nothing queued, the held read may go.
        a.read_done(c, 16 * 1024, false, &cfg);
        assert_eq!(a.pop(), Some(read(c, 16384)));
    }

    #[test]
    fn the_stall_deadline_and_the_unsent_cap_follow_every_connection_without_a_scan() {
        let cfg = SessionConfig {
            max_unsent_bytes: 64 * 1024,
            ..accounting()
        };
        let stall = cfg.send_stall_timeout;
        let at = |ms: u64| Instant::ZERO + Duration::from_millis(ms);
        let mut a = Admission::new(&cfg);
        let (c1, c2, c3) = (ConnId(1), ConnId(2), ConnId(3));
        for (i, c) in [c1, c2, c3].into_iter().enumerate() {
            a.opened(c, addr(10 + i as u16), Direction::Inbound, Instant::ZERO);
        }
        assert_eq!(
            a.next_deadline(&cfg),
            None,
            "nothing unsent: no stall deadline"
        );
        a.handed(c2, 1000, &cfg, at(100));
        a.handed(c1, 1000, &cfg, at(200));
        a.handed(c1, 1000, &cfg, at(300)); // still waiting since 200
        assert_eq!(a.next_deadline(&cfg), Some(at(100) + stall));
        // c2's socket takes part: its wait starts again; c1 is now the earliest.
        a.sent(c2, 500, &cfg, at(400));
        assert_eq!(a.next_deadline(&cfg), Some(at(200) + stall));
        // c1 closes: c2 (since 400) is the earliest.
        a.closed(c1, PeerGone::Closed(crate::vocab::DisconnectReason::Idle));
        assert_eq!(a.next_deadline(&cfg), Some(at(400) + stall));
        // Only c2 is past its deadline at 400 + stall.
        assert_eq!(a.timeout(&cfg, at(400) + stall).slow, vec![c2]);
        // Everything accepted: no deadline at all.
        a.sent(c2, 500, &cfg, at(500));
        assert_eq!(a.next_deadline(&cfg), None);
        // The cap: c3 over it, then back under it.
        assert!(a.over_cap(&cfg).is_empty());
        a.handed(c3, 64 * 1024 + 1, &cfg, at(600));
        assert_eq!(a.over_cap(&cfg), vec![c3]);
        a.sent(c3, 1, &cfg, at(700));
        assert!(a.over_cap(&cfg).is_empty());
        a.handed(c3, 10, &cfg, at(800));
        assert_eq!(a.over_cap(&cfg), vec![c3]);
        a.closed(c3, PeerGone::Closed(crate::vocab::DisconnectReason::Idle));
        assert!(a.over_cap(&cfg).is_empty());
        assert_eq!(a.next_deadline(&cfg), None);
    }

    #[test]
    fn a_dial_past_its_deadline_is_cancelled_once_and_its_late_failure_ignored() {
        let cfg = SessionConfig {
            peer_events: true,
            ..SessionConfig::default()
        };
        let mut a = Admission::new(&cfg);
        let t = TorrentId(0);
        a.dialling(t, addr(2), &cfg, Instant::ZERO);
        let early = a.timeout(&cfg, Instant::ZERO + Duration::from_secs(9));
        assert!(early.dials.is_empty());
        let late = a.timeout(&cfg, Instant::ZERO + Duration::from_secs(10));
        assert_eq!(late.dials, vec![(t, addr(2))]);
        assert_eq!(
            a.pop(),
            Some(Action::CancelConnect {
                torrent: t,
                addr: addr(2)
            })
        );
        assert!(
            matches!(a.pop(), Some(Action::Event(Event::ConnectFailed { reason, .. }))
            if reason.to_string() == "timed out after 10 s")
        );
        assert!(!a.dial_failed(t, addr(2), ConnectFailure::Refused));
        assert_eq!(a.pop(), None);
        assert_eq!(a.next_deadline(&cfg), None);
    }

    #[test]
    fn inbound_is_capped_per_ip_and_a_full_handshaking_pool_drops_its_oldest() {
        let cfg = SessionConfig {
            max_inbound_handshaking: 4,
            max_handshaking_per_ip: 2,
            max_inbound_per_ip: 3,
            ..SessionConfig::default()
        };
        let mut a = Admission::new(&cfg);
        let one = |port| SocketAddr::from(([10, 0, 0, 1], port));
        let at = Instant::from_secs;
        // Two handshaking from one IP: a third from it is refused.
        for (c, port) in [(1, 1), (2, 2)] {
            assert_eq!(a.admit_inbound(one(port), &cfg, at(0)), Inbound::Admit);
            a.opened(ConnId(c), one(port), Direction::Inbound, at(0));
        }
        assert_eq!(a.admit_inbound(one(3), &cfg, at(0)), Inbound::Refuse);
        // Once one finished its handshake, one more from that IP, and no fourth.
        a.established(ConnId(1), TorrentId(0), &cfg, at(0));
        assert_eq!(a.admit_inbound(one(3), &cfg, at(0)), Inbound::Admit);
        a.opened(ConnId(3), one(3), Direction::Inbound, at(0));
        a.established(ConnId(3), TorrentId(0), &cfg, at(0));
        assert_eq!(a.admit_inbound(one(4), &cfg, at(0)), Inbound::Refuse);
        // Fill the pool (4 handshaking) from other IPs, at 1 s and 2 s.
        for (c, last, t) in [(4, 2, 1), (5, 3, 2), (6, 4, 2)] {
            let other = SocketAddr::from(([10, 0, 0, last], 1));
            assert_eq!(a.admit_inbound(other, &cfg, at(t)), Inbound::Admit);
            a.opened(ConnId(c), other, Direction::Inbound, at(t));
        }
        // Full: a newcomer takes the place of the oldest (conn 2, open since 0 s), once.
        let new = SocketAddr::from(([10, 0, 0, 9], 1));
        assert_eq!(
            a.admit_inbound(new, &cfg, at(2)),
            Inbound::Replace(ConnId(2))
        );
        a.opened(ConnId(7), new, Direction::Inbound, at(2));
        // Asked as of 1.2 s, the next oldest (conn 4, open since 1 s) is too young
        // (under 250 ms): refused.
        let later = SocketAddr::from(([10, 0, 0, 10], 1));
        assert_eq!(
            a.admit_inbound(later, &cfg, Instant::from_millis(1200)),
            Inbound::Refuse
        );
        assert_eq!(
            a.admit_inbound(later, &cfg, at(2)),
            Inbound::Replace(ConnId(4))
        );
    }

    #[test]
    fn evicted_addresses_are_remembered_bounded_and_forgotten_in_time() {
        let cfg = SessionConfig {
            evicted_memory: 2,
            evicted_memory_for: Duration::from_secs(300),
            ..SessionConfig::default()
        };
        let mut a = Admission::new(&cfg);
        let (t, other) = (TorrentId(0), TorrentId(1));
        let ip = |last| IpAddr::from([10, 0, 0, last]);
        let at = Instant::from_secs;
        a.remember_evicted(t, ip(1), at(0), &cfg, at(10));
        a.remember_evicted(t, ip(2), at(5), &cfg, at(20));
        assert_eq!(a.remembered(t, ip(1), &cfg, at(30)), Some(at(0)));
        assert_eq!(
            a.remembered(other, ip(1), &cfg, at(30)),
            None,
            "per torrent"
        );
        // Full: a third eviction forgets the oldest one (ip 1).
        a.remember_evicted(t, ip(3), at(25), &cfg, at(40));
        assert_eq!(a.remembered(t, ip(1), &cfg, at(40)), None);
        assert_eq!(a.remembered(t, ip(2), &cfg, at(40)), Some(at(5)));
        assert_eq!(a.evicted.len(), 2);
        // Forgotten `evicted_memory_for` after the eviction.
        assert_eq!(a.remembered(t, ip(2), &cfg, at(319)), Some(at(5)));
        assert_eq!(a.remembered(t, ip(2), &cfg, at(320)), None);
        // A returning address's connection carries its old idle start.
        a.opened(
            ConnId(7),
            SocketAddr::new(ip(3), 1),
            Direction::Inbound,
            at(50),
        );
        a.established(ConnId(7), t, &cfg, at(50));
        assert_eq!(a.activity(ConnId(7)).idle_from, Some(at(25)));
        a.opened(
            ConnId(8),
            SocketAddr::new(ip(9), 1),
            Direction::Inbound,
            at(50),
        );
        a.established(ConnId(8), t, &cfg, at(50));
        assert_eq!(a.activity(ConnId(8)).idle_from, None);
        // Capacity 0: nothing is remembered.
        let off = SessionConfig {
            evicted_memory: 0,
            ..cfg.clone()
        };
        let mut b = Admission::new(&off);
        b.remember_evicted(t, ip(1), at(0), &off, at(10));
        assert_eq!(b.remembered(t, ip(1), &off, at(10)), None);
        assert!(b.evicted.is_empty());
    }
}
