//! A connection's two ends as the driver reports them (a socket opened and admitted or
//! refused, a dial failed, a socket closed), and the session closing a connection
//! itself (slow readers, a driver's mistake).

use std::net::SocketAddr;

use super::admission::Inbound;
use super::encryption;
use super::handshake::Handshaking;
use super::{
    Action, ConnId, ConnectFailure, Direction, DisconnectReason, EncryptionPolicy, PeerGone,
    Session, TorrentId,
};
use crate::time::Instant;
// Named only in doc links.
#[cfg(doc)]
use super::{Event, SessionConfig};

impl Session {
    /// The driver opened a TCP connection (accepted, or dialled after `Connect`). An inbound
    /// one over the admission limits ([`SessionConfig::max_inbound`],
    /// [`SessionConfig::max_inbound_per_ip`], [`SessionConfig::max_handshaking_per_ip`])
    /// is refused at once: its id comes with an [`Action::Disconnect`] and no event. With
    /// [`SessionConfig::max_inbound_handshaking`] reached, the oldest silent one is
    /// disconnected for it instead, when it has been silent a second. Otherwise
    /// [`Event::PeerConnected`] follows.
    pub fn connection_opened(
        &mut self,
        addr: SocketAddr,
        direction: Direction,
        now: Instant,
    ) -> ConnId {
        // A dual-stack listener reports an IPv4 peer as `::ffff:a.b.c.d`: one peer has one
        // address however it arrived (as `handle_datagram` does for senders).
        let addr = crate::dht::canonical(addr);
        self.saw(now);
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        if direction == Direction::Inbound {
            match self.admission.admit_inbound(addr, &self.config, now) {
                Inbound::Admit => {}
                Inbound::Refuse => {
                    self.out.push(Action::Disconnect {
                        conn,
                        reason: DisconnectReason::TooManyConnections,
                    });
                    return conn;
                }
                // A handshake flood: the oldest silent socket makes room (admission.rs).
                Inbound::Replace(old) => {
                    self.close_handshaking(old, DisconnectReason::TooManyConnections, now);
                }
            }
        }
        // A closing session takes nobody; a dial cancelled by a pause or a removal that
        // opened anyway is closed at once (no peer event: it was never admitted).
        let refusal = match direction {
            Direction::Inbound => self
                .life
                .is_closing()
                .then_some(DisconnectReason::SessionClosed),
            Direction::Outbound(t) => self.connection_refusal(t),
        };
        if let Some(reason) = refusal {
            if let Direction::Outbound(t) = direction {
                self.admission.forget_dial(t, addr);
            }
            self.out.push(Action::Disconnect { conn, reason });
            return conn;
        }
        self.admission.opened(conn, addr, direction, now);
        let stage = match direction {
            // The dialler speaks first (BEP 3): our handshake names the torrent, in the
            // clear or inside MSE's step 3.
            Direction::Outbound(t) => match self.torrents.get(&t) {
                Some(torrent) => {
                    let plaintext = match self.config.encryption {
                        EncryptionPolicy::Disable => true,
                        EncryptionPolicy::Require => false,
                        EncryptionPolicy::Prefer => torrent.dial_plaintext(addr),
                    };
                    let (stage, first) = self.open_outbound(torrent.info_hash.0, plaintext);
                    self.out.send_raw(conn, &first);
                    stage
                }
                None => encryption::Stage::BitTorrent,
            },
            Direction::Inbound => encryption::Stage::Sniffing,
        };
        self.handshaking.insert(
            conn,
            Handshaking {
                addr,
                direction,
                opened_at: now,
                stage,
                crypto: None,
                mse_named: None,
            },
        );
        conn
    }

    /// A dial after `Connect` failed, for a reason not known: as
    /// [`Session::handle_connect_error`] with [`ConnectFailure::Unknown`].
    pub fn connect_failed(&mut self, torrent: TorrentId, addr: SocketAddr, now: Instant) {
        self.handle_connect_error(torrent, addr, ConnectFailure::Unknown, now);
    }

    /// A dial after `Connect` failed, for `reason` (the driver's translation of the OS
    /// error). Counted against the address (back-off, give up after
    /// [`SessionConfig::max_connect_failures`]) and reported as [`Event::ConnectFailed`],
    /// unless the session already gave the dial up on its time-out.
    pub fn handle_connect_error(
        &mut self,
        torrent: TorrentId,
        addr: SocketAddr,
        reason: ConnectFailure,
        now: Instant,
    ) {
        self.saw(now);
        if !self.admission.dial_failed(torrent, addr, reason) {
            return;
        }
        if let Some(t) = self.torrents.get_mut(&torrent) {
            t.connect_failed(addr, &self.config, now);
        }
    }

    /// The connection closed (peer hung up): as [`Session::handle_closed`] with
    /// [`PeerGone::HungUp`].
    pub fn connection_closed(&mut self, conn: ConnId, now: Instant) {
        self.handle_closed(conn, PeerGone::HungUp, now);
    }

    /// The connection's socket ended on its own (`reason`: hang-up, read or write error).
    /// Reported as [`Event::PeerDisconnected`]. Idempotent.
    pub fn handle_closed(&mut self, conn: ConnId, reason: PeerGone, now: Instant) {
        self.saw(now);
        self.decryptors.remove(conn);
        if self.handshaking.contains_key(&conn) {
            return self.handshake_ended(conn, reason, now);
        }
        self.admission.closed(conn, reason);
        let Some(tid) = self.routes.remove(&conn) else {
            return;
        };
        self.with_torrent(tid, |t, ctx| {
            t.connection_closed(conn, ctx, now);
        });
    }

    /// Drops `stalled` and every connection past the unsent cap, as slow readers.
    pub(super) fn drop_slow_readers(&mut self, mut stalled: Vec<ConnId>, now: Instant) {
        // Nearly always nobody (it runs on every `handle_sent`): then no list is built.
        if stalled.is_empty() && !self.admission.any_over_cap(&self.config) {
            return;
        }
        stalled.extend(self.admission.over_cap(&self.config));
        stalled.sort_unstable();
        stalled.dedup();
        for conn in stalled {
            self.close_conn(conn, DisconnectReason::SlowReader, now);
        }
    }

    /// Closes `conn` (handshaking or established) for `reason`.
    pub(super) fn close_conn(&mut self, conn: ConnId, reason: DisconnectReason, now: Instant) {
        if self.handshaking.contains_key(&conn) {
            self.close_handshaking(conn, reason, now);
        } else if let Some(&tid) = self.routes.get(&conn) {
            self.with_torrent(tid, |t, ctx| t.disconnect(conn, reason, ctx, now));
        }
    }
}
