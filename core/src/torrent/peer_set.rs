//! The torrent's peer set: addresses to dial (candidates, bounded), dialling within the
//! connection limits, back-off and give-up bookkeeping for addresses that fail, and peers
//! joining (after their handshake) and leaving (closed by us or by them).
//!
//! Invariants:
//! - An address is in `connecting` only while a `Connect` for it is outstanding, and stays a
//!   candidate meanwhile (its failures keep counting); it is never dialled twice at once.
//! - A failed address waits `reconnect_delay × 2^(failures−1)` before its next dial and is
//!   given up on (moved to `given_up`, bounded by `max_candidates`) after
//!   `max_connect_failures`. A banned IP is never a candidate.
//! - A connected peer's address is neither a candidate nor given up on.
//! - Candidates are ranked by source ([`PeerSource`]): higher ranks are dialled first, and
//!   when the list is full a newcomer may only replace a candidate of a lower rank (never
//!   one being dialled). A tracker flood fills free places but cannot push out a user's
//!   `--peer` or a peer that sent us data before. A peer that leaves comes back as a
//!   candidate only within `max_candidates`; a dial that fails after its IP was banned
//!   does not bring the address back.
//! - At most `max_peers_per_torrent` peers are connected: at the limit a newcomer joins
//!   only in the place of a peer evicted for it (`least_useful`; the session refuses a
//!   newcomer whose IP was evicted as idle lately, and counts a returning one's idle time
//!   from before it left, through [`Activity`]), and at most one dial
//!   goes out past the limit, while a useless peer holds a slot (`dial_to_evict`).

use std::net::SocketAddr;

use bytes::Bytes;

use super::dial_choice::IdleDialScan;
use super::{Ctx, Peer, Torrent};
use crate::bitfield::Bitfield;
use crate::time::Instant;
use crate::vocab::{
    Action, ConnId, Direction, DisconnectReason, FailedPeer, PeerSource, SessionConfig,
};
use crate::wire::{self, Decoder, Handshake, Limits, Message};

/// An address we may dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Candidate {
    pub(super) failures: u32,
    pub(super) not_before: Instant,
    /// A connection to it was established before (it went away rather than refusing).
    pub(super) connected: bool,
    /// The best source that named it (see the module's invariants).
    pub(super) source: PeerSource,
    /// Dial it in plaintext (under [`crate::vocab::EncryptionPolicy::Prefer`]): it
    /// refused an encrypted handshake, or took a plaintext one after such a refusal. A PEX
    /// flag saying it prefers encryption clears it.
    pub(super) plaintext: bool,
}

impl Candidate {
    /// A newly learnt address from `source`: never failed, dialable from `now`.
    pub(super) fn new(source: PeerSource, now: Instant) -> Self {
        Candidate {
            failures: 0,
            not_before: now,
            connected: false,
            source,
            plaintext: false,
        }
    }
}

/// What the session, not the torrent, knows of a connection's activity, for eviction.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Activity {
    /// When we last handed a block out for it: we upload to it.
    pub(crate) block_sent: Option<Instant>,
    /// Its idle time counts from here rather than from its connection: its IP was
    /// evicted as idle lately and came back (see `session/admission.rs`).
    pub(crate) idle_from: Option<Instant>,
}

/// When `p` last exchanged payload with us, as far as eviction is concerned: its last
/// block either way, else when it connected (or, for a returning evicted address, when
/// its idle time began before it left).
fn last_payload(p: &Peer, activity: Activity) -> Instant {
    let start = activity.idle_from.unwrap_or(p.connected_at);
    [Some(start), p.last_block, activity.block_sent]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(start)
}

impl Torrent {
    /// Seeds the hashers of the candidate list (see `candidates`) and of the connected
    /// addresses, so peers cannot aim collisions at either; called by the session right
    /// after creating the torrent, before any address is known.
    pub(crate) fn seed_address_hashes(&mut self, seed: u64) {
        debug_assert!(self.candidates.is_empty() && self.connected_addrs.is_empty());
        if self.candidates.is_empty() && self.connected_addrs.is_empty() {
            self.candidates = super::candidates::Candidates::with_seed(seed);
            self.connected_addrs =
                hashbrown::HashMap::with_hasher(foldhash::fast::FixedState::with_seed(!seed));
        }
    }

    /// Whether any address is waiting to be dialled or being dialled.
    pub(crate) fn has_candidates(&self) -> bool {
        !self.candidates.is_empty()
    }

    /// Drops `addr` from the addresses to dial (it turned out to be ourselves).
    pub(crate) fn forget_candidate(&mut self, addr: SocketAddr) {
        self.connecting.remove(&addr);
        self.candidates.remove(&addr);
    }

    /// Adds addresses to dial, named by `source`. An address already known keeps the best
    /// source that named it. When `max` candidates are kept, a newcomer replaces one of
    /// the lowest rank below its own (not one being dialled), else it is ignored.
    pub(crate) fn add_candidates(
        &mut self,
        addrs: &[SocketAddr],
        source: PeerSource,
        max: usize,
        now: Instant,
    ) {
        self.user_peers_given |= source == PeerSource::User && !addrs.is_empty();
        for &addr in addrs {
            if self.is_banned(addr.ip()) || self.connected_addrs.contains_key(&addr) {
                continue;
            }
            // Also while it is being dialled: it stays a candidate meanwhile.
            if let Some(mut known) = self.candidates.get_mut(&addr) {
                known.source = known.source.max(source);
                self.peers_seen = true;
                continue;
            }
            // A full list: the counts say at once whether anyone may be displaced, so
            // `make_room_for` walks the list only when it will find its victim.
            if self.candidates.len() >= max
                && (self.candidates.displaceable(source, &self.connecting) == 0
                    || !self.make_room_for(source))
            {
                // Nobody left to displace. A tracker's addresses can neither get in nor
                // raise a known one's source: a 100,000-address answer costs no more than
                // this check. Others go on, to raise the known ones.
                if source == PeerSource::Tracker {
                    break;
                }
                continue;
            }
            self.peers_seen = true;
            self.candidates.insert(addr, Candidate::new(source, now));
        }
    }

    /// Frees a candidate place for an address from `source`: drops one candidate of the
    /// lowest rank below it (the most failed among those, then the highest address, so
    /// the choice is deterministic), never one being dialled. Whether a place was freed.
    fn make_room_for(&mut self, source: PeerSource) -> bool {
        let victim = self
            .candidates
            .iter()
            .filter(|(a, c)| c.source < source && !self.connecting.contains(a))
            .min_by_key(|(a, c)| {
                (
                    c.source,
                    std::cmp::Reverse(c.failures),
                    std::cmp::Reverse(**a),
                )
            })
            .map(|(a, _)| *a);
        match victim {
            Some(addr) => {
                self.candidates.remove(&addr);
                true
            }
            None => false,
        }
    }

    /// Whether any peer was ever given, found or connected.
    pub(crate) fn peers_seen(&self) -> bool {
        self.peers_seen
    }

    /// The peers given up on (in address order, at most `limit`) and how many in all.
    pub(crate) fn given_up_peers(&self, limit: usize) -> (Vec<FailedPeer>, usize) {
        let listed = self.given_up.values().take(limit).copied().collect();
        (listed, self.given_up.len() + self.given_up_overflow)
    }

    /// Emits `Connect` actions while below the connection limits, less the slots kept for
    /// peers that dial us (`inbound_slots`). An incomplete torrent dials any candidate; a
    /// seed waits for peers that want something from it, except the peers the user named
    /// (`seed --peer`, [`crate::session::Session::add_peers`]): a torrent holding every
    /// piece dials those, as the user asked (a peer that turns out to be a seed too is
    /// dropped once its bitfield says so).
    pub(crate) fn maybe_connect(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        // A partial download whose wanted files are done dials nobody (a peer that is a
        // seed too would be dropped at once, each time counting against its address); a
        // true seed dials the user's peers.
        let seeding = self.is_complete();
        if seeding
            && !(self.user_peers_given
                && (self.phase.content()).is_some_and(|c| c.picker.have().is_full()))
        {
            return;
        }
        // Runs every tick: with the connection limits reached (the usual case in a big
        // swarm) it must not walk the up to `max_candidates` addresses.
        let slots = ctx
            .config
            .max_connecting
            .saturating_sub(self.connecting.len())
            .min(
                ctx.config
                    .max_peers_per_torrent
                    .saturating_sub(ctx.config.inbound_slots)
                    .saturating_sub(self.peers.len() + self.connecting.len()),
            );
        let past_limit = slots == 0;
        let slots = if past_limit {
            self.dial_to_evict(ctx.config, now)
        } else {
            slots
        };
        if slots == 0 {
            return;
        }
        // Where the connected peers listen: an inbound peer's socket address is its
        // ephemeral port, so the address a tracker or PEX gives for it is not that one.
        // Dialling it anyway only reaches a peer already connected, which the duplicate
        // rule then closes, again after every back-off (the simulator counted ~1,000 such
        // connections per host in one run).
        let mut listening: Vec<SocketAddr> = self
            .peers
            .values()
            .filter_map(super::pex::dial_addr)
            .collect();
        listening.sort_unstable();
        listening.dedup();
        // The last walk found nobody to dial and nothing it looked at has changed since,
        // and no candidate's back-off has ended: this walk would find nobody either.
        if self.idle_dial_scan.as_ref().is_some_and(|scan| {
            scan.still_idle(
                self.candidates.version(),
                &self.connecting,
                seeding,
                &listening,
                now,
            )
        }) {
            return;
        }
        self.idle_dial_scan = None;
        let mut due: Vec<(PeerSource, SocketAddr)> = Vec::new();
        let mut next_due: Option<Instant> = None;
        for (a, c) in self.candidates.iter() {
            if c.not_before > now {
                next_due = Some(next_due.map_or(c.not_before, |n| n.min(c.not_before)));
                continue;
            }
            // An address being dialled stays a candidate (its failures count) but must not
            // be dialled twice at once.
            if !self.connecting.contains(a)
                && listening.binary_search(a).is_err()
                && (!seeding || c.source == PeerSource::User)
            {
                due.push((c.source, *a));
            }
        }
        if due.is_empty() {
            self.idle_dial_scan = Some(IdleDialScan::new(
                self.candidates.version(),
                &self.connecting,
                listening,
                seeding,
                next_due,
            ));
            return;
        }
        // A flood of untried tracker addresses (often unreachable: each dial holds its slot
        // until the connect time-out) never takes the last quarter of the dial slots, so a
        // `--peer` or PEX address arriving after it is dialled at once.
        let kept = ctx.config.max_connecting / 4;
        let tracker_slots = ctx
            .config
            .max_connecting
            .saturating_sub(kept)
            .saturating_sub(self.connecting.len());
        let due = super::dial_choice::choose_dials(due, slots, tracker_slots, ctx.rng);
        if past_limit && !due.is_empty() {
            self.last_evict_dial = Some(now);
        }
        for addr in due {
            self.connecting.insert(addr);
            ctx.out.push(Action::Connect {
                torrent: self.id,
                addr,
            });
        }
    }

    /// Whether `addr` is to be dialled in plaintext (see [`Candidate::plaintext`]).
    pub(crate) fn dial_plaintext(&self, addr: SocketAddr) -> bool {
        self.candidates.get(&addr).is_some_and(|c| c.plaintext)
    }

    /// Our encrypted dial of `addr` failed in its MSE handshake: dial it again at once, in
    /// plaintext, without counting a failure (that retry's own failure counts). Only once:
    /// the retry is a plaintext dial, which cannot end up here.
    pub(crate) fn retry_in_plaintext(&mut self, addr: SocketAddr, now: Instant) {
        self.connecting.remove(&addr);
        if let Some(mut c) = self.candidates.get_mut(&addr) {
            c.plaintext = true;
            c.not_before = now;
        }
    }

    /// Peers a PEX message says prefer encryption: worth an encrypted dial again.
    pub(super) fn note_prefers_encryption(&mut self, addrs: impl Iterator<Item = SocketAddr>) {
        for addr in addrs {
            if let Some(mut c) = self.candidates.get_mut(&addr) {
                c.plaintext = false;
            }
        }
    }

    /// A peer we dialled left and is a candidate again: one that took our plaintext dial
    /// is dialled in plaintext again (under `prefer` it got there by refusing MSE), not
    /// made to refuse an encrypted handshake first every time.
    fn remember_plaintext(&mut self, peer: &Peer) {
        if let Some(mut c) = self.candidates.get_mut(&peer.addr) {
            c.plaintext = peer.crypto.is_none();
        }
    }

    /// A dial for `addr` failed: try again later with back-off, or forget it.
    pub(crate) fn connect_failed(
        &mut self,
        addr: SocketAddr,
        config: &SessionConfig,
        now: Instant,
    ) {
        self.connecting.remove(&addr);
        self.note_failure(addr, false, None, config, now);
    }

    /// Counts a failure against `addr` (`connected`: a connection to it was up and ended,
    /// named by `source`); after `max_connect_failures` it is given up on and remembered as
    /// such.
    pub(super) fn note_failure(
        &mut self,
        addr: SocketAddr,
        connected: bool,
        source: Option<PeerSource>,
        config: &SessionConfig,
        now: Instant,
    ) {
        // A banned IP is never a candidate again, even when a dial to it that was in flight
        // at the ban fails afterwards. A peer that was connected is no candidate: coming
        // back as one must respect `max_candidates` like any newcomer. (Both found by the
        // `session_hostile` fuzz target.)
        if self.is_banned(addr.ip()) {
            self.candidates.remove(&addr);
            return;
        }
        if !self.candidates.contains_key(&addr)
            && self.candidates.len() >= config.max_candidates
            && !self.make_room_for(source.unwrap_or(PeerSource::Tracker))
        {
            return;
        }
        if !self.candidates.contains_key(&addr) {
            // A peer that was connected: `source` (below) says how it ranks.
            self.candidates
                .insert(addr, Candidate::new(PeerSource::Tracker, now));
        }
        let Some(mut entry) = self.candidates.get_mut(&addr) else {
            return;
        };
        if let Some(source) = source {
            entry.source = entry.source.max(source);
        }
        entry.failures += 1;
        entry.connected |= connected;
        if entry.failures >= config.max_connect_failures {
            let failed = FailedPeer {
                addr,
                failures: entry.failures,
                connected: entry.connected,
            };
            drop(entry);
            self.candidates.remove(&addr);
            if self.given_up.len() < config.max_candidates || self.given_up.contains_key(&addr) {
                self.given_up.insert(addr, failed);
            } else {
                self.given_up_overflow += 1;
            }
            return;
        }
        let backoff = config
            .reconnect_delay
            .saturating_mul(1u32 << (entry.failures - 1).min(10));
        entry.not_before = now + backoff;
    }

    /// A handshake for this torrent completed on `conn`: start the peer.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_peer(
        &mut self,
        conn: ConnId,
        addr: SocketAddr,
        direction: Direction,
        ours: wire::Reserved,
        theirs: &Handshake,
        crypto: Option<crate::mse::Crypto>,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let named = self.candidates.remove(&addr).map(|c| c.source);
        if let Direction::Outbound(_) = direction {
            self.connecting.remove(&addr);
            if let Some(source) = named {
                self.peer_sources.insert(addr, source);
            }
        }
        self.given_up.remove(&addr);
        self.peers_seen = true;
        let key = self.next_key;
        self.next_key = self.next_key.wrapping_add(1);
        let fast = ours.fast() && theirs.reserved.fast();
        let extensions = ours.extension_protocol() && theirs.reserved.extension_protocol();
        // Without metadata only the size limits apply; the geometry is set once it is known.
        let geometry = self.phase.content().map(|c| c.geometry);
        let decoder = Decoder::new(geometry, Limits::default());
        let mut peer = Peer::new(
            key,
            addr,
            theirs.peer_id,
            direction,
            fast,
            extensions,
            decoder,
            // No pieces before the metadata: the peer's availability waits in `pending`.
            geometry.map_or(0, |g| g.piece_count()),
            now,
        );
        peer.crypto = crypto;
        self.by_key.insert(key, conn);
        self.peers.insert(conn, peer);
        *self.connected_addrs.entry(addr).or_insert(0) += 1;
        // Its idle and keep-alive timers start (`Torrent::peer_timers`).
        let first_timer = ctx.config.idle_timeout.min(ctx.config.keepalive_interval);
        self.peer_timers_at = self.peer_timers_at.min(now + first_timer);

        // BEP 3: bitfield (or BEP 6 have all / have none) is the first message.
        // Before the metadata we have nothing: a fast peer is told `have none` and others
        // nothing, which stays true until the metadata is ready.
        let have = self.have();
        if fast && have.is_some_and(Bitfield::is_full) {
            ctx.out.send(conn, &Message::HaveAll);
        } else if fast && have.is_none_or(Bitfield::is_empty) {
            ctx.out.send(conn, &Message::HaveNone);
        } else if let Some(have) = have.filter(|h| !h.is_empty()) {
            ctx.out
                .send(conn, &Message::Bitfield(Bytes::from(have.to_bytes())));
        }
        if extensions {
            let hs = self.extension_handshake(addr, ctx.config);
            ctx.out.send(conn, &hs.to_message());
        }
    }

    /// Removes a peer: its availability, requests and slots go; its verified data stays.
    /// Does not emit `Disconnect` (see [`Self::disconnect`]).
    pub(super) fn remove_peer(
        &mut self,
        conn: ConnId,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) -> Option<Peer> {
        let peer = self.peers.remove(&conn)?;
        if !peer.am_choking {
            self.unchoked.retain(|&c| c != conn);
        }
        if let Some(n) = self.connected_addrs.get_mut(&peer.addr) {
            *n -= 1;
            if *n == 0 {
                self.connected_addrs.remove(&peer.addr);
            }
        }
        self.by_key.remove(&peer.key);
        self.peer_sources.remove(&peer.addr);
        if let Some(c) = self.phase.content_mut() {
            c.picker.peer_left(&peer.has);
            c.picker.peer_requests_dropped(peer.key);
        }
        self.choker.peer_left(peer.key);
        self.refund_download(super::pieces::outstanding_bytes(&peer), ctx, now);
        ctx.out.discard(conn);
        // Its metadata requests go to other peers.
        self.metadata_timeouts(ctx, now);
        // Its blocks are free again: other peers may take them now.
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for c in conns {
            self.fill_pipeline(c, ctx, now);
        }
        self.refill_slots(ctx, now);
        Some(peer)
    }

    /// Closes `conn` for `reason`: forget it and tell the driver.
    pub(crate) fn disconnect(
        &mut self,
        conn: ConnId,
        reason: DisconnectReason,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let source = self.redial_source(conn);
        if let Some(peer) = self.remove_peer(conn, ctx, now) {
            // Peers we dialled that went quiet may be dialled again later (an inbound peer's
            // address is an ephemeral port, not worth dialling).
            if matches!(reason, DisconnectReason::Idle)
                && peer.direction != Direction::Inbound
                && !self.is_banned(peer.addr.ip())
            {
                self.note_failure(peer.addr, true, source, ctx.config, now);
                self.remember_plaintext(&peer);
            }
        }
        ctx.closed.push(conn);
        ctx.out.push(Action::Disconnect { conn, reason });
    }

    /// The driver reports the connection closed (by the peer or by a socket error).
    pub(crate) fn connection_closed(&mut self, conn: ConnId, ctx: &mut Ctx<'_>, now: Instant) {
        let source = self.redial_source(conn);
        if let Some(peer) = self.remove_peer(conn, ctx, now) {
            if peer.direction != Direction::Inbound && !self.is_banned(peer.addr.ip()) {
                self.note_failure(peer.addr, true, source, ctx.config, now);
                self.remember_plaintext(&peer);
            }
        }
    }

    /// How the peer on `conn` ranks if dialled again after it leaves: the source that
    /// named it, raised to [`PeerSource::Proven`] if it sent us a block.
    fn redial_source(&self, conn: ConnId) -> Option<PeerSource> {
        let peer = self.peers.get(&conn)?;
        let named = self.peer_sources.get(&peer.addr).copied();
        if peer.last_block.is_some() {
            Some(named.map_or(PeerSource::Proven, |s| s.max(PeerSource::Proven)))
        } else {
            named
        }
    }

    /// The established connection to the peer with this id, and who opened it.
    pub(crate) fn conn_of_peer_id(&self, id: &wire::PeerId) -> Option<(ConnId, Direction)> {
        self.peers
            .iter()
            .find(|(_, p)| p.peer_id == *id)
            .map(|(c, p)| (*c, p.direction))
    }

    /// The peer to evict so a newcomer fits a full torrent, if one qualifies (the rule is
    /// documented in `session/admission.rs`). `activity` tells what the session knows of
    /// a connection (when we last handed it a block, and whether its idle time counts
    /// from before it connected). Qualifies: no payload either way for
    /// `evict_idle_after` (counted from the connection when there was none), or only
    /// `evict_useless_after` for a useless peer (neither interested nor interesting, or
    /// interested in us but it wasted the upload slot it was given), so a peer that
    /// uploads to us or that we upload to is never chosen. Order: neither interested
    /// nor interesting, then snubbed, then interested in us while we want nothing from
    /// it, then interesting but choking us; then the longest idle; then the lowest id
    /// (determinism).
    pub(crate) fn least_useful(
        &self,
        config: &SessionConfig,
        now: Instant,
        activity: impl Fn(ConnId) -> Activity,
    ) -> Option<ConnId> {
        self.eviction_candidate(config, now, activity)
            .map(|(_, conn)| conn)
    }

    /// Since when the peer on `conn` exchanged no payload with us (its connection, or
    /// `activity.idle_from` for a returning evicted address, or its last block either
    /// way, whichever is latest), and its address: what the session remembers when it
    /// evicts it as idle.
    pub(crate) fn idle_since(
        &self,
        conn: ConnId,
        activity: Activity,
    ) -> Option<(SocketAddr, Instant)> {
        self.peers
            .get(&conn)
            .map(|p| (p.addr, last_payload(p, activity)))
    }

    /// [`Self::least_useful`] with its class: 0 neither interested nor interesting, 1
    /// snubbed, 2 interested in us while we want nothing from it, 3 interesting to us but
    /// choking us.
    fn eviction_candidate(
        &self,
        config: &SessionConfig,
        now: Instant,
        activity: impl Fn(ConnId) -> Activity,
    ) -> Option<(u8, ConnId)> {
        self.peers
            .iter()
            .filter_map(|(&conn, p)| {
                let idle = now.saturating_duration_since(last_payload(p, activity(conn)));
                let snubbed = p
                    .snub_clock
                    .is_some_and(|s| now.saturating_duration_since(s) >= config.choker.snub_after);
                let class = if !p.peer_interested && !p.am_interested {
                    0u8
                } else if snubbed {
                    1
                } else if !p.am_interested {
                    2
                } else {
                    3
                };
                // Useless: wants nothing and offers nothing, or wants something yet took
                // nothing from an upload slot we gave it: the short grace.
                let useless = class == 0 || (class == 2 && p.wasted_slot);
                let grace = if useless {
                    config.evict_useless_after.min(config.evict_idle_after)
                } else {
                    config.evict_idle_after
                };
                if idle < grace {
                    return None;
                }
                Some((class, std::cmp::Reverse(idle), conn))
            })
            .min()
            .map(|(class, _, conn)| (class, conn))
    }

    /// Dials allowed past the peer limit (0 or 1): with every slot taken, one dial at a
    /// time may go out while a peer that is useless to us (neither interested nor
    /// interesting, or snubbed, for `evict_idle_after`) holds one, so peers that idle in
    /// our slots, inbound ones included, cannot keep us from reaching the peers we want.
    /// Peers that merely choke us or want something from us are left alone here (that
    /// would churn a healthy swarm); a newcomer dialling us may still replace them. The
    /// eviction itself happens when the dial's handshake completes, with the exact check
    /// (upload times included); if nobody qualifies by then the new connection is refused.
    ///
    /// Such dials are spaced by `evict_dial_interval`: each replaces one peer, and in a
    /// swarm whose peers have little to trade yet (a flash crowd's first minutes) there is
    /// nearly always a useless one, so one dial after another, a round trip apart, turned
    /// over a host's whole peer set every few minutes (the 300-peer study: 774 connections
    /// per host in an hour; 195 with one dial per 10 s, which also finished 1.7 % sooner).
    fn dial_to_evict(&self, config: &SessionConfig, now: Instant) -> usize {
        let full = self.peers.len() + self.connecting.len() >= config.max_peers_per_torrent;
        let busy = !self.connecting.is_empty();
        let spaced = self
            .last_evict_dial
            .is_none_or(|last| now >= last + config.evict_dial_interval);
        let may = full
            && !busy
            && spaced
            && config.max_connecting > 0
            && self
                .eviction_candidate(config, now, |_| Activity::default())
                .is_some_and(|(class, _)| class <= 1);
        usize::from(may)
    }

    /// Where `conn` comes from, when it connected and whether it ever exchanged payload
    /// with us (`block_sent`: we handed it a block), for resolving a duplicate peer id.
    pub(crate) fn peer_standing(
        &self,
        conn: ConnId,
        block_sent: bool,
    ) -> Option<(SocketAddr, Instant, bool)> {
        self.peers
            .get(&conn)
            .map(|p| (p.addr, p.connected_at, block_sent || p.last_block.is_some()))
    }

    pub(crate) fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Forgets the dials in flight (pause, close): the session cancels them itself, and
    /// they count as no failure, so the addresses stay candidates for a later resume.
    pub(crate) fn stop_dialling(&mut self) {
        self.connecting.clear();
    }
}

#[cfg(test)]
mod tests;
