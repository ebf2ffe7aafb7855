//! The `utp_session` target: one `Session` with uTP on (`core/src/session/utp_streams.rs`)
//! fed, through its UDP socket only, four remote peers that are real `UtpConnection`s
//! driven by the input, plus raw and shaped hostile datagrams.
//!
//! Byte 0: bits 0–1 the session's transport (0 and 3 `Utp`, 1 `Both`, 2 `Tcp`), bit 2 a
//! seed (else a leecher), bit 3 MSE preferred (else plaintext only). Then ops, each a byte
//! `op % 8` and its arguments (`a` picks one of the four remote addresses):
//! - 0 `a len bytes…`: a raw datagram from `a`;
//! - 1 `a`: `a` opens a new uTP connection to us (a SYN with fresh ids);
//! - 2 `a m`: `a` writes on its connection: the BitTorrent handshake for our torrent and
//!   an `interested` (m even), or `m` junk bytes;
//! - 3 `b`: time passes (`4·b²` ms) and `handle_timeout` runs;
//! - 4 `a l`: the session is told to dial `a` (`add_peers`); `a` listens for our SYN if
//!   `l` is odd, else lets it go unanswered;
//! - 5 `a f`: `a` closes its connection (FIN; RESET if `f` is odd);
//! - 6 `k`: the datagrams in flight are delivered both ways, every `k`-th lost (none for
//!   `k` < 2), up to 64 rounds;
//! - 7 `a t s`: `a` sends a shaped packet on its connection's id: type `t % 5`, sequence
//!   and ack numbers near its own shifted by `s`.
//!
//! Invariants, after every op (actions drained):
//! 1. Nothing panics.
//! 2. Every datagram the session sends decodes as uTP (there is no DHT and no tracker)
//!    and is at most 1,400 bytes plus a selective ACK's 254.
//! 3. The driver is never handed `Send`, `SendBlock` or `Disconnect` (every connection is
//!    a uTP stream, carried inside the session); a `Connect` only when the transport
//!    allows TCP dials (`Both` falling back, or `Tcp`), answered as a failed dial.
//! 4. Every connection the session holds is a uTP stream (`Session::is_utp`).
//! 5. Plaintext only (bit 3 clear): whatever a remote reads from one of our streams starts
//!    with the BitTorrent handshake (`\x13BitTorrent protocol`): the byte stream reaches
//!    the peer whole and in order.

use std::net::SocketAddr;

use bytes::BytesMut;
use unchoke_core::session::{Action, EncryptionPolicy, Session, SessionConfig, Transport};
use unchoke_core::time::Instant;
use unchoke_core::utp::{Packet, PacketType, UtpConfig, UtpConnection};
use unchoke_core::wire::{Handshake, Message, PeerId, Reserved};

use super::fixture::{fixture, read_result, verify_answer, write_result};

const HANDSHAKE_PREFIX: &[u8] = b"\x13BitTorrent protocol";

/// One remote peer: its address, its connection to us (if any), what it read.
struct Remote {
    addr: SocketAddr,
    conn: Option<UtpConnection>,
    listening: bool,
    read: Vec<u8>,
    next_id: u16,
}

struct Harness {
    s: Session,
    torrent: unchoke_core::session::TorrentId,
    now: Instant,
    remotes: Vec<Remote>,
    /// Datagrams from the session not yet delivered, by destination.
    to_remotes: Vec<(SocketAddr, Vec<u8>)>,
    plaintext: bool,
    tcp_dials: bool,
}

/// Runs every `utp_session` invariant on `data`. Panics if one fails.
pub fn utp_session(data: &[u8]) {
    utp_session_reached(data);
}

/// How deep one input went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UtpSessionReached {
    /// Remotes that read our whole BitTorrent handshake (68 bytes or more) from a stream.
    pub handshakes_read: usize,
    /// The session's uTP counters at the end.
    pub stats: unchoke_core::session::UtpStreamStats,
}

/// [`utp_session`], reporting how deep the input went (for the replay's reachability
/// test).
pub fn utp_session_reached(data: &[u8]) -> UtpSessionReached {
    let Some((&mode, mut rest)) = data.split_first() else {
        return UtpSessionReached::default();
    };
    let transport = match mode & 3 {
        1 => Transport::Both,
        2 => Transport::Tcp,
        _ => Transport::Utp,
    };
    let plaintext = mode & 8 == 0;
    let config = SessionConfig {
        transport,
        encryption: if plaintext {
            EncryptionPolicy::Disable
        } else {
            EncryptionPolicy::Prefer
        },
        max_inbound: 6,
        max_inbound_handshaking: 3,
        max_inbound_per_ip: 2,
        max_handshaking_per_ip: 2,
        send_accounting: true,
        peer_events: true,
        ..SessionConfig::default()
    };
    let now = Instant::ZERO;
    let (_, metainfo) = fixture();
    let mut s = Session::new(config, 77, now);
    let have = (mode & 4 != 0).then(|| {
        let mut b = unchoke_core::bitfield::Bitfield::new(metainfo.info.piece_count());
        for p in 0..metainfo.info.piece_count() {
            b.set(p);
        }
        b
    });
    let Ok(torrent) = s.add_torrent(metainfo, have, now) else {
        panic!("the fixed torrent is refused");
    };
    s.set_trackers(torrent, Vec::new(), now);
    let remotes = (0..4u8)
        .map(|i| Remote {
            addr: SocketAddr::from(([127, 0, 0, 2 + i], 6881)),
            conn: None,
            listening: false,
            read: Vec::new(),
            next_id: 1000 * u16::from(i),
        })
        .collect();
    let mut h = Harness {
        s,
        torrent,
        now,
        remotes,
        to_remotes: Vec::new(),
        plaintext,
        tcp_dials: transport != Transport::Utp,
    };
    h.drain();
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
        rest = tail;
        Some(head)
    };
    for _ in 0..512 {
        let Some(&[op]) = take(1) else {
            break;
        };
        match op % 8 {
            0 => {
                let Some(&[a, len]) = take(2) else { break };
                let bytes = take(usize::from(len)).unwrap_or_default();
                let from = h.remotes[usize::from(a % 4)].addr;
                let bytes = bytes.to_vec();
                h.s.handle_datagram(from, &bytes, h.now);
            }
            1 => {
                let Some(&[a]) = take(1) else { break };
                let r = &mut h.remotes[usize::from(a % 4)];
                // Each connection of a remote gets new ids (two apart: one to send on,
                // one to receive on), so late packets of an old one never reach it.
                r.next_id = r.next_id.wrapping_add(2);
                r.conn = Some(UtpConnection::connect(
                    r.next_id,
                    h.now,
                    UtpConfig::default(),
                ));
                r.read.clear();
                h.remote_send(usize::from(a % 4));
            }
            2 => {
                let Some(&[a, m]) = take(2) else { break };
                let i = usize::from(a % 4);
                let bytes = if m % 2 == 0 {
                    let mut b = BytesMut::new();
                    let peer_id = PeerId([b'r' + a % 4; 20]);
                    Handshake {
                        reserved: Reserved::NONE,
                        info_hash: metainfo.info_hash,
                        peer_id,
                    }
                    .encode(&mut b);
                    Message::Interested.encode(&mut b);
                    b.to_vec()
                } else {
                    vec![m; usize::from(m)]
                };
                if let Some(c) = h.remotes[i].conn.as_mut() {
                    c.write(&bytes);
                }
                h.remote_send(i);
            }
            3 => {
                let Some(&[b]) = take(1) else { break };
                h.now += std::time::Duration::from_millis(4 * u64::from(b) * u64::from(b));
                for i in 0..4 {
                    if let Some(c) = h.remotes[i].conn.as_mut() {
                        c.handle_timeout(h.now);
                    }
                    h.remote_send(i);
                }
                h.s.handle_timeout(h.now);
            }
            4 => {
                let Some(&[a, l]) = take(2) else { break };
                let i = usize::from(a % 4);
                h.remotes[i].listening = l % 2 == 1;
                let addr = h.remotes[i].addr;
                h.s.add_peers(h.torrent, &[addr], h.now);
            }
            5 => {
                let Some(&[a, f]) = take(2) else { break };
                let i = usize::from(a % 4);
                if let Some(c) = h.remotes[i].conn.as_mut() {
                    if f % 2 == 1 {
                        c.abort();
                    } else {
                        c.close();
                    }
                }
                h.remote_send(i);
            }
            6 => {
                let Some(&[k]) = take(1) else { break };
                h.deliver(usize::from(k));
            }
            _ => {
                let Some(&[a, t, sh]) = take(3) else { break };
                let i = usize::from(a % 4);
                let Some(c) = h.remotes[i].conn.as_ref() else {
                    continue;
                };
                let mut p =
                    Packet::new(PacketType::from_number(t % 5).unwrap_or(PacketType::State));
                p.connection_id = c.send_id();
                p.seq_nr = c.seq_nr().wrapping_add(u16::from(sh)).wrapping_sub(128);
                p.ack_nr = c.ack_nr().wrapping_add(u16::from(sh / 2)).wrapping_sub(64);
                p.wnd_size = u32::from(sh) << 12;
                let from = h.remotes[i].addr;
                h.s.handle_datagram(from, &p.to_vec(), h.now);
            }
        }
        h.drain();
        h.check();
    }
    UtpSessionReached {
        handshakes_read: h.remotes.iter().filter(|r| r.read.len() >= 68).count(),
        stats: h.s.utp_stats(),
    }
}

impl Harness {
    /// Carries out the session's actions (invariants 2 and 3).
    fn drain(&mut self) {
        for _ in 0..100_000 {
            let Some(action) = self.s.poll_action() else {
                return;
            };
            let now = self.now;
            match action {
                Action::SendDatagram { to, bytes } => {
                    let p = Packet::decode(&bytes);
                    assert!(p.is_ok(), "a datagram that is not uTP: {p:?}");
                    assert!(bytes.len() <= 1400 + 254, "a {}-byte datagram", bytes.len());
                    self.to_remotes.push((to, bytes.to_vec()));
                }
                Action::Send { .. } | Action::SendBlock { .. } | Action::Disconnect { .. } => {
                    panic!("a uTP connection's action reached the driver: {action:?}")
                }
                Action::Connect { torrent, addr } => {
                    assert!(self.tcp_dials, "a TCP dial from a uTP-only session");
                    self.s.connect_failed(torrent, addr, now);
                }
                Action::ReadBlock { conn, block, .. } => {
                    let r = read_result(&fixture().0, block, false);
                    self.s.disk_read_done(conn, block, r, now);
                }
                Action::WriteBlock { torrent, piece, .. } => {
                    self.s
                        .disk_write_done(torrent, piece, write_result(false), now);
                }
                Action::VerifyPiece {
                    torrent,
                    piece,
                    expected,
                    blocks,
                } => {
                    let ok = verify_answer(piece, &expected, &blocks);
                    self.s.piece_hashed(torrent, piece, ok, now);
                }
                _ => {}
            }
        }
        panic!("the session never ran out of actions");
    }

    /// Sends what remote `i`'s connection has to send.
    fn remote_send(&mut self, i: usize) {
        let from = self.remotes[i].addr;
        let mut out = Vec::new();
        if let Some(c) = self.remotes[i].conn.as_mut() {
            while let Some(d) = c.poll_transmit(self.now) {
                out.push(d);
                if out.len() > 4096 {
                    panic!("a remote connection never stopped sending");
                }
            }
        }
        for d in out {
            self.s.handle_datagram(from, &d, self.now);
        }
    }

    /// Delivers the datagrams in flight both ways, every `k`-th lost, until quiet.
    fn deliver(&mut self, k: usize) {
        let mut n = 0usize;
        for _ in 0..64 {
            self.drain();
            let batch = std::mem::take(&mut self.to_remotes);
            if batch.is_empty() {
                return;
            }
            for (to, bytes) in batch {
                n += 1;
                if k >= 2 && n % k == 0 {
                    continue;
                }
                let Some(i) = self.remotes.iter().position(|r| r.addr == to) else {
                    continue;
                };
                self.remote_receive(i, &bytes);
            }
        }
    }

    /// Remote `i` receives one of our datagrams: a SYN it accepts when listening, anything
    /// else for its connection; it reads what arrives and answers.
    fn remote_receive(&mut self, i: usize, bytes: &[u8]) {
        let Ok(p) = Packet::decode(bytes) else {
            return;
        };
        let r = &mut self.remotes[i];
        if p.packet_type == PacketType::Syn {
            if r.listening {
                r.conn = UtpConnection::accept(&p, self.now, UtpConfig::default()).ok();
                r.read.clear();
            }
        } else if let Some(c) = r.conn.as_mut() {
            if p.connection_id == c.recv_id() {
                c.handle_packet(&p, self.now);
            }
        }
        if let Some(c) = r.conn.as_mut() {
            while let Some(chunk) = c.recv() {
                if r.read.len() < 4096 {
                    r.read.extend_from_slice(&chunk);
                }
            }
        }
        self.remote_send(i);
    }

    /// Invariants 4 and 5.
    fn check(&self) {
        for conn in self.s.connections(self.torrent) {
            assert!(self.s.is_utp(conn), "{conn:?} is not a uTP stream");
        }
        if self.plaintext {
            for r in &self.remotes {
                let n = r.read.len().min(HANDSHAKE_PREFIX.len());
                assert_eq!(
                    &r.read[..n],
                    &HANDSHAKE_PREFIX[..n],
                    "{} read {:?} from us",
                    r.addr,
                    &r.read[..n]
                );
            }
        }
    }
}
