//! Handshakes: a connection from `connection_opened` until the peer's handshake routes it
//! to a torrent. First the encryption layer's stage (`encryption.rs`: an inbound
//! connection's first bytes say plaintext or MSE; an MSE handshake runs to its end and
//! installs the ciphers), then the BitTorrent handshake, checked (protocol, info-hash we
//! serve — the one MSE named, when it did —, not ourselves),
//! then `admit_established` decides whether it joins: a peer id already connected is
//! resolved in favour of the productive connection (a squatter never displaces it), and a
//! full torrent takes a newcomer only in the place of a peer evicted for it, and never one
//! whose address it evicted as idle lately (remembered at the eviction).

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};

use super::encryption::{Stage, retries_in_plaintext};
use super::{
    Action, ConnId, Direction, DisconnectReason, EncryptionPolicy, PeerGone, Session, TorrentId,
};
use crate::mse::{self, Crypto};
use crate::time::Instant;
use crate::wire::Handshake;

/// An established connection a newly handshaken peer takes the place of.
#[derive(Debug, Clone, Copy)]
pub(super) enum Replace {
    /// The same peer id, on a connection that gives way (see `admit_established`).
    Duplicate(ConnId),
    /// The least useful peer of a full torrent.
    Evict(ConnId),
}

/// A connection that has not completed its handshake yet.
#[derive(Debug)]
pub(super) struct Handshaking {
    pub(super) addr: SocketAddr,
    pub(super) direction: Direction,
    pub(super) opened_at: Instant,
    /// Where the connection's handshakes stand.
    pub(super) stage: Stage,
    /// The stream an MSE handshake settled on (`None`: no MSE, plaintext throughout).
    pub(super) crypto: Option<Crypto>,
    /// The torrent an inbound MSE handshake named: the BitTorrent handshake inside must
    /// name the same one.
    pub(super) mse_named: Option<[u8; 20]>,
}

impl Session {
    /// Moves `conn` through its handshakes with what `buf` holds; returns whether it is
    /// now established (routed to a torrent, the rest of `buf` its messages).
    pub(super) fn advance_handshake(
        &mut self,
        conn: ConnId,
        buf: &mut BytesMut,
        now: Instant,
    ) -> bool {
        loop {
            // The stage is taken out while it runs (it needs the session) and put back
            // unless the connection closed meanwhile.
            let Some(pending) = self.handshaking.get_mut(&conn) else {
                return false;
            };
            let next = match std::mem::replace(&mut pending.stage, Stage::BitTorrent) {
                Stage::BitTorrent => return self.handle_handshake(conn, buf, now),
                Stage::Sniffing => match self.sniff(conn, buf, now) {
                    Some(stage) => stage,
                    None => return false,
                },
                Stage::Mse(handshake) => match self.run_mse(conn, handshake, buf, now) {
                    Some(stage) => stage,
                    None => return false,
                },
            };
            match self.handshaking.get_mut(&conn) {
                Some(pending) => pending.stage = next,
                None => return false,
            }
        }
    }

    /// An inbound connection's first bytes: the stage they call for, or `None` (waiting
    /// for more, with the stage put back, or refused and closed).
    fn sniff(&mut self, conn: ConnId, buf: &BytesMut, now: Instant) -> Option<Stage> {
        let told = if buf.is_empty() {
            None
        } else {
            mse::is_plaintext_handshake(buf)
        };
        let Some(plaintext) = told else {
            if let Some(pending) = self.handshaking.get_mut(&conn) {
                pending.stage = Stage::Sniffing;
            }
            return None;
        };
        let policy = self.config.encryption;
        if plaintext && policy == EncryptionPolicy::Require {
            self.close_handshaking(conn, DisconnectReason::PlaintextRefused, now);
            return None;
        }
        if !plaintext && policy == EncryptionPolicy::Disable {
            self.close_handshaking(conn, DisconnectReason::EncryptionDisabled, now);
            return None;
        }
        Some(if plaintext {
            Stage::BitTorrent
        } else {
            Stage::Mse(Box::new(
                mse::Handshake::receiver(
                    self.served.clone(),
                    self.config.crypto_level.methods(),
                    &mut self.rng,
                )
                .preferring(self.config.crypto_level.preferred()),
            ))
        })
    }

    /// Feeds `conn`'s MSE handshake: the stage that follows (the BitTorrent handshake,
    /// with the ciphers installed), or `None` (waiting, with the stage put back, or failed
    /// and closed).
    fn run_mse(
        &mut self,
        conn: ConnId,
        mut handshake: Box<mse::Handshake>,
        buf: &mut BytesMut,
        now: Instant,
    ) -> Option<Stage> {
        let result = handshake.feed(buf);
        let reply = handshake.take_output();
        if !reply.is_empty() {
            self.out.send_raw(conn, &reply);
        }
        let established = match result {
            Ok(Some(established)) => established,
            Ok(None) => {
                if let Some(pending) = self.handshaking.get_mut(&conn) {
                    pending.stage = Stage::Mse(handshake);
                }
                return None;
            }
            Err(e) => {
                // Closed in the MSE stage, so an outbound dial may be retried in plaintext.
                if let Some(pending) = self.handshaking.get_mut(&conn) {
                    pending.stage = Stage::Mse(handshake);
                }
                self.close_handshaking(conn, DisconnectReason::Encryption(e), now);
                return None;
            }
        };
        let pending = self.handshaking.get_mut(&conn)?;
        pending.crypto = Some(established.crypto);
        if pending.direction == Direction::Inbound {
            pending.mse_named = Some(established.info_hash);
        }
        // The initiator's initial payload is the stream's first bytes (its BitTorrent
        // handshake, decrypted already); what follows it in `buf` is still as it came.
        let initial = established.initial_payload.len();
        if initial > 0 {
            let rest = buf.split();
            buf.extend_from_slice(&established.initial_payload);
            buf.unsplit(rest);
        }
        if let Some(cipher) = established.recv {
            let mut tail = buf.split_off(initial);
            self.decryptors.install(conn, cipher, &mut tail);
            buf.unsplit(tail);
            self.decryptors.left(conn, buf);
        }
        if let Some(cipher) = established.send {
            self.out.encrypt(conn, cipher);
        }
        Some(Stage::BitTorrent)
    }

    /// The first bytes `conn` sends as a dialler for `info_hash`: our BitTorrent handshake,
    /// inside an MSE handshake unless `plaintext`. Sets the connection's stage.
    pub(super) fn open_outbound(&mut self, info_hash: [u8; 20], plaintext: bool) -> (Stage, Bytes) {
        let mut hs = BytesMut::with_capacity(68);
        Handshake {
            reserved: self.reserved,
            info_hash: crate::info_hash::InfoHash(info_hash),
            peer_id: self.peer_id,
        }
        .encode(&mut hs);
        if plaintext {
            return (Stage::BitTorrent, hs.freeze());
        }
        let mut mse = mse::Handshake::initiator(
            info_hash,
            self.config.crypto_level.methods(),
            &hs,
            &mut self.rng,
        );
        let first = mse.take_output();
        (Stage::Mse(Box::new(mse)), first)
    }
}

impl Session {
    /// Parses the peer's handshake; returns whether the connection is now established.
    pub(super) fn handle_handshake(
        &mut self,
        conn: ConnId,
        buf: &mut BytesMut,
        now: Instant,
    ) -> bool {
        let theirs = match Handshake::decode(buf) {
            Ok(Some(h)) => h,
            Ok(None) => return false,
            Err(e) => {
                self.close_handshaking(conn, DisconnectReason::Protocol(e), now);
                return false;
            }
        };
        let Some(pending) = self.handshaking.get(&conn) else {
            return false;
        };
        let (addr, direction, crypto) = (pending.addr, pending.direction, pending.crypto);
        if pending
            .mse_named
            .is_some_and(|named| named != theirs.info_hash.0)
        {
            self.close_handshaking(conn, DisconnectReason::WrongTorrent, now);
            return false;
        }
        let tid = match direction {
            Direction::Outbound(t) => {
                let matches = self
                    .torrents
                    .get(&t)
                    .is_some_and(|tor| tor.info_hash == theirs.info_hash);
                if !matches {
                    self.close_handshaking(conn, DisconnectReason::WrongTorrent, now);
                    return false;
                }
                t
            }
            Direction::Inbound => match self.by_hash.get(&theirs.info_hash) {
                Some(&t) => t,
                None => {
                    self.close_handshaking(conn, DisconnectReason::UnknownTorrent, now);
                    return false;
                }
            },
        };
        if let Some(reason) = self.connection_refusal(tid) {
            self.drop_handshaking(conn, reason);
            return false;
        }
        let (refusal, replace) = self.admit_established(tid, addr, direction, &theirs, now);
        if let Some(reason) = refusal {
            self.close_handshaking(conn, reason, now);
            return false;
        }
        self.handshaking.remove(&conn);
        if let Some(Replace::Evict(old)) = replace {
            // Remembered before it goes, so it cannot come back with a fresh grace.
            let gone = self
                .torrents
                .get(&tid)
                .and_then(|t| t.idle_since(old, self.admission.activity(old)));
            if let Some((old_addr, idle_since)) = gone {
                self.admission
                    .remember_evicted(tid, old_addr.ip(), idle_since, &self.config, now);
            }
        }
        self.admission.established(conn, tid, &self.config, now);
        if direction == Direction::Inbound {
            let mut hs = BytesMut::with_capacity(68);
            Handshake {
                reserved: self.reserved,
                info_hash: theirs.info_hash,
                peer_id: self.peer_id,
            }
            .encode(&mut hs);
            self.out.send_raw(conn, &hs);
        }
        self.routes.insert(conn, tid);
        let ours = self.reserved;
        self.with_torrent(tid, |t, ctx| {
            match replace {
                Some(Replace::Duplicate(old)) => {
                    t.disconnect(old, DisconnectReason::Duplicate, ctx, now)
                }
                Some(Replace::Evict(old)) => {
                    t.disconnect(old, DisconnectReason::TooManyConnections, ctx, now)
                }
                None => {}
            }
            t.add_peer(conn, addr, direction, ours, &theirs, crypto, ctx, now);
        });
        self.routes.contains_key(&conn)
    }

    /// Whether a peer that completed its handshake for `tid` joins, and whom it replaces
    /// (the duplicate-id and eviction rules of `admission.rs`): `(Some(reason), _)` refuses
    /// it. Checked in this order: our own id (a connection to ourselves, whatever else
    /// holds, so it never touches the real peer), a banned address, a peer id already
    /// connected, the torrent's connection limit (with the evicted-address memory).
    fn admit_established(
        &self,
        tid: TorrentId,
        addr: SocketAddr,
        direction: Direction,
        theirs: &Handshake,
        now: Instant,
    ) -> (Option<DisconnectReason>, Option<Replace>) {
        let Some(torrent) = self.torrents.get(&tid) else {
            return (Some(DisconnectReason::TorrentRemoved), None);
        };
        if theirs.peer_id == self.peer_id {
            return (Some(DisconnectReason::SelfConnection), None);
        }
        if torrent.is_banned(addr.ip()) {
            return (Some(DisconnectReason::Banned), None);
        }
        if let Some((existing, existing_dir)) = torrent.conn_of_peer_id(&theirs.peer_id) {
            let sent = self.admission.last_block_sent(existing).is_some();
            let Some((their_addr, since, productive)) = torrent.peer_standing(existing, sent)
            else {
                return (Some(DisconnectReason::Duplicate), None);
            };
            // A connection that carried payload is the real peer's: a newcomer with its id
            // (a squatter, or a stray second connection) never replaces it.
            if productive {
                return (Some(DisconnectReason::Duplicate), None);
            }
            let same_ip = their_addr.ip() == addr.ip();
            if now.saturating_duration_since(since) >= self.config.duplicate_grace {
                // An old connection that never carried payload gives way to another
                // address: a squatter that took the id first must not lock the real peer
                // out. Not to its own address, or a squatter reconnecting would keep its
                // hold forever young.
                return if same_ip {
                    (Some(DisconnectReason::Duplicate), None)
                } else {
                    (None, Some(Replace::Duplicate(existing)))
                };
            }
            // A young connection stays against a newcomer from another address: that is
            // no simultaneous open but someone else using the id.
            if !same_ip {
                return (Some(DisconnectReason::Duplicate), None);
            }
            // Two peers that dial each other at once end up with two connections, and
            // each sees the other's as the duplicate. Both ends must drop the *same* one:
            // keep the connection opened by the peer with the higher peer id.
            let we_win = self.peer_id > theirs.peer_id;
            let preferred = |d: Direction| match d {
                Direction::Outbound(_) => we_win,
                Direction::Inbound => !we_win,
            };
            if preferred(direction) && !preferred(existing_dir) {
                return (None, Some(Replace::Duplicate(existing)));
            }
            return (Some(DisconnectReason::Duplicate), None);
        }
        if torrent.peer_count() < self.config.max_peers_per_torrent {
            return (None, None);
        }
        // An address evicted as idle lately gets no grace: it does not take another idle
        // peer's place (it is admitted when there is room).
        if self
            .admission
            .remembered(tid, addr.ip(), &self.config, now)
            .is_some()
        {
            return (Some(DisconnectReason::TooManyConnections), None);
        }
        let admission = &self.admission;
        match torrent.least_useful(&self.config, now, |c| admission.activity(c)) {
            Some(victim) => (None, Some(Replace::Evict(victim))),
            None => (Some(DisconnectReason::TooManyConnections), None),
        }
    }

    pub(super) fn close_handshaking(
        &mut self,
        conn: ConnId,
        reason: DisconnectReason,
        now: Instant,
    ) {
        self.out.discard(conn);
        self.out.push(Action::Disconnect {
            conn,
            reason: reason.clone(),
        });
        if let Some(h) = self.handshaking.remove(&conn) {
            self.decryptors.remove(conn);
            if let Direction::Outbound(tid) = h.direction {
                if reason == DisconnectReason::SelfConnection {
                    if let Some(t) = self.torrents.get_mut(&tid) {
                        // Our own address (a tracker listed us): never dial it again.
                        t.forget_candidate(h.addr);
                        self.trackers.add_own(h.addr);
                    }
                } else {
                    let plaintext_retry =
                        retries_in_plaintext(self.config.encryption, &h.stage, Some(&reason), None);
                    self.dial_ended(tid, h.addr, plaintext_retry, now);
                }
            }
        }
    }

    /// The socket of `conn`, still in its handshakes, ended on its own (`reason`). A peer
    /// that hangs up on our public key is told apart (it may not speak MSE), and our dial
    /// is retried in plaintext or counted as failed (`dial_ended`).
    pub(super) fn handshake_ended(&mut self, conn: ConnId, reason: PeerGone, now: Instant) {
        let Some(h) = self.handshaking.remove(&conn) else {
            return;
        };
        self.out.discard(conn);
        let dialled = match h.direction {
            Direction::Outbound(t) => Some(t),
            Direction::Inbound => None,
        };
        let reason = if reason == PeerGone::HungUp
            && dialled.is_some()
            && matches!(h.stage, Stage::Mse(_))
        {
            PeerGone::HungUpOnEncryption
        } else {
            reason
        };
        let plaintext_retry =
            retries_in_plaintext(self.config.encryption, &h.stage, None, Some(&reason));
        self.admission.closed(conn, reason);
        if let Some(t) = dialled {
            self.dial_ended(t, h.addr, plaintext_retry, now);
        }
    }

    /// Our dial of `addr` for `tid` ended before its handshake completed: retried at once
    /// in plaintext (`plaintext_retry`: it failed in the MSE stage, under `prefer`), or
    /// counted as a failure with the usual back-off.
    pub(super) fn dial_ended(
        &mut self,
        tid: TorrentId,
        addr: SocketAddr,
        plaintext_retry: bool,
        now: Instant,
    ) {
        if plaintext_retry {
            let dial = self.life.connects(tid);
            self.with_torrent(tid, |t, ctx| {
                t.retry_in_plaintext(addr, now);
                if dial {
                    t.maybe_connect(ctx, now);
                }
            });
        } else if let Some(t) = self.torrents.get_mut(&tid) {
            t.connect_failed(addr, &self.config, now);
        }
    }
}
