//! Connections between hosts: dials reaching their target, both ends opening, closes, and
//! bytes flowing and arriving.

use std::time::Duration;

use bytes::BytesMut;

use super::{Ev, LinkEnd, Online, Simulation};
use crate::network::{Chunks, Dest, HostId};
use unchoke_core::session::{ConnId, ConnectFailure, Direction, TorrentId};
use unchoke_core::time::Instant;

impl Simulation {
    pub(super) fn accept(
        &mut self,
        host: HostId,
        (from, from_incarnation): (HostId, u32),
        torrent: TorrentId,
        dial: u64,
    ) {
        let now = Instant::from_micros(self.now);
        // A black-holed host neither accepts nor refuses: the dial waits for the hole to
        // close (as a SYN retransmitted until it is answered).
        if let Some(until) = self.hosts[host].black_hole_until {
            if self.now < until && self.hosts[host].online.is_some() {
                self.push(
                    until,
                    Ev::Accept {
                        host,
                        from,
                        from_incarnation,
                        torrent,
                        dial,
                    },
                );
                return;
            }
        }
        let back = self.now + self.one_way(host, from);
        if self.hosts[host].online.is_none() {
            let addr = self.hosts[host].addr;
            self.push(
                back,
                Ev::Refused {
                    host: from,
                    incarnation: from_incarnation,
                    torrent,
                    addr,
                    dial,
                },
            );
            return;
        }
        let source = match self.lab {
            // The lab's tests know their peers by listening address, as the old harness
            // showed inbound connections.
            Some(_) => self.hosts[from].addr,
            None => self.hosts[from].ephemeral(),
        };
        let incarnation = self.hosts[host].incarnation;
        let Some(on) = self.hosts[host].online.as_mut() else {
            return;
        };
        let conn = on
            .session
            .connection_opened(source, Direction::Inbound, now);
        on.links.insert(
            conn,
            LinkEnd {
                remote: None,
                out: None,
                recv: BytesMut::new(),
            },
        );
        self.push(
            back,
            Ev::Opened {
                host: from,
                incarnation: from_incarnation,
                torrent,
                remote: host,
                remote_incarnation: incarnation,
                remote_conn: conn,
                dial,
            },
        );
        self.drain(host);
    }

    pub(super) fn opened(
        &mut self,
        (host, incarnation): (HostId, u32),
        torrent: TorrentId,
        dial: u64,
        (remote, remote_incarnation, remote_conn): (HostId, u32, ConnId),
    ) {
        let now = Instant::from_micros(self.now);
        let remote_alive = self.is_live(remote, remote_incarnation)
            && self.hosts[remote]
                .online
                .as_ref()
                .is_some_and(|on| on.links.contains_key(&remote_conn));
        let remote_addr = self.hosts[remote].addr;
        let awaited =
            self.is_live(host, incarnation) && self.take_dial(host, torrent, remote_addr, dial);
        if !awaited {
            // The dialler left, or its session gave the dial up: the accepting side's half
            // is closed.
            if self.is_live(host, incarnation) {
                self.policies.late_accepts_dropped += 1;
            }
            if remote_alive {
                let at = self.now + self.one_way(host, remote);
                self.push(
                    at,
                    Ev::Closed {
                        host: remote,
                        incarnation: remote_incarnation,
                        conn: remote_conn,
                    },
                );
            }
            return;
        }
        if !remote_alive {
            if let Some(session) = self.session_mut(host) {
                session.handle_connect_error(torrent, remote_addr, ConnectFailure::Reset, now);
            }
            self.drain(host);
            return;
        }
        // A lossy path caps what TCP carries each way (`crate::Loss`).
        let tcp_cap = self
            .config
            .loss
            .tcp_cap(Duration::from_micros(self.one_way(host, remote)));
        let Some(on) = self.hosts[host].online.as_mut() else {
            return;
        };
        let conn = on
            .session
            .connection_opened(remote_addr, Direction::Outbound(torrent), now);
        let to_remote = self.net.open_flow(
            host,
            conn.0,
            remote,
            Dest {
                host: remote,
                incarnation: remote_incarnation,
                conn: remote_conn.0,
            },
        );
        let to_us = self.net.open_flow(
            remote,
            remote_conn.0,
            host,
            Dest {
                host,
                incarnation,
                conn: conn.0,
            },
        );
        if tcp_cap.is_finite() {
            self.net.cap_flow(to_remote, tcp_cap);
            self.net.cap_flow(to_us, tcp_cap);
        }
        on.links.insert(
            conn,
            LinkEnd {
                remote: Some((remote, remote_incarnation, remote_conn)),
                out: Some(to_remote),
                recv: BytesMut::new(),
            },
        );
        if let Some(end) = self.hosts[remote]
            .online
            .as_mut()
            .and_then(|on| on.links.get_mut(&remote_conn))
        {
            end.remote = Some((host, incarnation, conn));
            end.out = Some(to_us);
        }
        self.drain(host);
    }

    /// Tears down one end's link: both directions' flows stop and the other end hears of
    /// the close after the latency.
    pub(super) fn unlink(&mut self, host: HostId, link: LinkEnd) {
        if let Some(f) = link.out {
            self.net.close_flow(f, self.now);
        }
        let Some((remote, remote_incarnation, remote_conn)) = link.remote else {
            return;
        };
        if let Some(back) = self.hosts[remote]
            .online
            .as_ref()
            .filter(|_| self.hosts[remote].incarnation == remote_incarnation)
            .and_then(|on| on.links.get(&remote_conn))
            .and_then(|end| end.out)
        {
            self.net.close_flow(back, self.now);
        }
        let at = self.now + self.one_way(host, remote);
        self.push(
            at,
            Ev::Closed {
                host: remote,
                incarnation: remote_incarnation,
                conn: remote_conn,
            },
        );
    }

    pub(super) fn deliver(&mut self, dest: Dest, chunks: Chunks, payload: u64) {
        if !self.is_live(dest.host, dest.incarnation) {
            return;
        }
        let now = Instant::from_micros(self.now);
        let conn = ConnId(dest.conn);
        {
            let Some(on) = self.hosts[dest.host].online.as_mut() else {
                return;
            };
            let Online { session, links, .. } = on;
            let Some(link) = links.get_mut(&conn) else {
                return;
            };
            let mut chunks = chunks.into_iter().peekable();
            while let Some(chunk) = chunks.next() {
                // A block's header with its payload right behind: the payload goes to the
                // session as the buffer it already is (`handle_block`), not copied into
                // the receive buffer — at a message boundary only, so whatever came
                // before is handed over first; and only on a plaintext stream (an
                // encrypted one's framing is ciphertext: it goes through the buffer).
                if let Some((index, begin)) = chunks
                    .peek()
                    .filter(|_| session.frames_in_clear(conn))
                    .and_then(|next| block_header(&chunk, next.len()))
                {
                    if !link.recv.is_empty() {
                        session.handle_bytes(conn, &mut link.recv, now);
                    }
                    if link.recv.is_empty() {
                        if let Some(data) = chunks.next() {
                            session.handle_block(conn, index, begin, data, now);
                        }
                        continue;
                    }
                }
                // Into an empty buffer, a chunk nobody else holds becomes the buffer
                // itself (its allocation taken over, not copied): a message delivered is
                // then neither allocated nor copied again. A shared one is copied.
                if link.recv.is_empty() {
                    match chunk.try_into_mut() {
                        Ok(own) => link.recv = own,
                        Err(shared) => link.recv.extend_from_slice(&shared),
                    }
                } else {
                    link.recv.extend_from_slice(&chunk);
                }
            }
            if !link.recv.is_empty() {
                session.handle_bytes(conn, &mut link.recv, now);
            }
            // Units carry whole messages, so the buffer is normally empty now. Let its
            // allocation go: a buffer kept per link (16–64 KiB once blocks passed through)
            // was most of a host's memory, ~2 MiB each with 50–80 links, which is what
            // bounded N; the next unit allocates exactly its own size.
            if link.recv.is_empty() {
                link.recv = BytesMut::new();
            }
        }
        self.hosts[dest.host].downloaded += payload;
        self.drain(dest.host);
        // Complete messages must have been consumed (a connection the session closed is
        // gone from `links` by now).
        let left = self.hosts[dest.host]
            .online
            .as_ref()
            .and_then(|on| on.links.get(&conn))
            .map_or(0, |l| l.recv.len());
        if left >= self.max_buffered {
            self.violation(format!(
                "host {}: {left} bytes left unread on a connection",
                dest.host
            ));
        }
    }
}

/// The piece index and offset of a `piece` message's 13-byte header whose payload of
/// `payload_len` bytes is the next chunk; `None` for anything else.
fn block_header(chunk: &[u8], payload_len: usize) -> Option<(u32, u32)> {
    let (index, begin, len) = unchoke_core::wire::decode_piece_header(chunk)?;
    (len as usize == payload_len).then_some((index, begin))
}
