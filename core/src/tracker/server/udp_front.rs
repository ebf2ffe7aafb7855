//! The UDP front of the tracker server (BEP 15): connect, announce and scrape packets.
//!
//! Connection ids carry no per-client state: an id is a keyed hash (SHA-1 over the
//! server's secret, the source IP and the current 60-second window). An id is accepted in
//! its own window and the next one, so it stays valid between 60 and 120 s — the two
//! minutes BEP 15 allows — and a spoofed source cannot obtain one. The port is left out
//! (as opentracker does): libtorrent caches connection ids per tracker for the whole
//! process, so a second session in it sends from another port with the first one's id.
//!
//! Replies: packets shorter than 16 bytes, and connect packets without the protocol magic,
//! are dropped (`None`): they cannot be BEP 15 and answering them would let anyone bounce
//! traffic off the tracker. Every other failure (bad connection id, truncated announce,
//! unknown action, refused announce) gets an action-3 error with a short message, so a
//! client reconnects or gives up instead of timing out.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use sha1::{Digest, Sha1};

use crate::info_hash::InfoHash;
use crate::time::Instant;
use crate::tracker::{AnnounceEvent, AnnounceRequest};
use crate::wire::PeerId;

use super::{Families, TrackerServer};

/// The magic `protocol_id` of a BEP 15 connect request.
pub const UDP_PROTOCOL_ID: u64 = 0x0417_2710_1980;

/// The length of one connection-id window; an id is valid in its window and the next.
pub const CONNECTION_ID_WINDOW: u64 = 60;

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

/// The size of a BEP 15 announce request (any BEP 41 options after it are ignored).
const ANNOUNCE_LEN: usize = 98;

/// At most this many hashes per scrape, as BEP 15 says (so the reply fits one datagram).
const MAX_SCRAPE_HASHES: usize = 74;

impl TrackerServer {
    /// Handles one BEP 15 datagram from `source`; returns the reply datagram, if any (see
    /// the module docs for which packets are dropped).
    pub fn handle_udp_packet(
        &mut self,
        packet: &[u8],
        source: SocketAddr,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let (head, _) = packet.split_first_chunk::<16>()?;
        let connection_id = u64::from_be_bytes(head[0..8].try_into().ok()?);
        let action = u32::from_be_bytes(head[8..12].try_into().ok()?);
        let tx = u32::from_be_bytes(head[12..16].try_into().ok()?);
        if action == ACTION_CONNECT {
            if connection_id != UDP_PROTOCOL_ID {
                return None;
            }
            let mut out = Vec::with_capacity(16);
            out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
            out.extend_from_slice(&tx.to_be_bytes());
            out.extend_from_slice(&self.connection_id(source, window(now)).to_be_bytes());
            return Some(out);
        }
        if !self.connection_id_valid(connection_id, source, now) {
            return Some(error(tx, "bad connection id"));
        }
        Some(match action {
            ACTION_ANNOUNCE => self.udp_announce(packet, tx, source, now),
            ACTION_SCRAPE => self.udp_scrape(&packet[16..], tx),
            _ => error(tx, "unknown action"),
        })
    }

    /// The connection id `source`'s IP gets in time window `w`.
    pub(crate) fn connection_id(&self, source: SocketAddr, w: u64) -> u64 {
        let mut h = Sha1::new();
        h.update(self.secret);
        match source.ip() {
            IpAddr::V4(ip) => h.update(ip.octets()),
            IpAddr::V6(ip) => h.update(ip.octets()),
        }
        h.update(w.to_be_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }

    fn connection_id_valid(&self, id: u64, source: SocketAddr, now: Instant) -> bool {
        let w = window(now);
        id == self.connection_id(source, w) || (w > 0 && id == self.connection_id(source, w - 1))
    }

    fn udp_announce(
        &mut self,
        packet: &[u8],
        tx: u32,
        source: SocketAddr,
        now: Instant,
    ) -> Vec<u8> {
        let Some(p) = packet.first_chunk::<ANNOUNCE_LEN>() else {
            return error(tx, "announce too short");
        };
        let u32_at = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
        let u64_at = |i: usize| (u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4));
        let mut info_hash = [0u8; 20];
        info_hash.copy_from_slice(&p[16..36]);
        let mut peer_id = [0u8; 20];
        peer_id.copy_from_slice(&p[36..56]);
        let event = match u32_at(80) {
            0 => AnnounceEvent::None,
            1 => AnnounceEvent::Completed,
            2 => AnnounceEvent::Started,
            3 => AnnounceEvent::Stopped,
            _ => return error(tx, "invalid event"),
        };
        let ip = match u32_at(84) {
            0 => None,
            // The field is IPv4 only; from an IPv6 source it is meaningless.
            v if source.is_ipv4() => Some(IpAddr::V4(Ipv4Addr::from(v))),
            _ => None,
        };
        let numwant = i32::from_be_bytes([p[92], p[93], p[94], p[95]]);
        let req = AnnounceRequest {
            info_hash: InfoHash(info_hash),
            peer_id: PeerId(peer_id),
            downloaded: u64_at(56),
            left: u64_at(64),
            uploaded: u64_at(72),
            event,
            ip,
            // BEP 15 has no field for it.
            ipv6: None,
            key: u32_at(88),
            // -1 (or any negative) asks for the default.
            numwant: u32::try_from(numwant).ok(),
            port: u16::from_be_bytes([p[96], p[97]]),
            tracker_id: None,
        };
        // One family per reply: BEP 15 peers are 6 bytes over IPv4, 18 over IPv6.
        let families = if source.is_ipv4() {
            Families::V4
        } else {
            Families::V6
        };
        let reply = match self.announce_for(&req, source, now, families) {
            Ok(r) => r,
            Err(e) => return error(tx, &e.to_string()),
        };
        let mut out = Vec::with_capacity(20 + reply.peers.len() * 18);
        out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
        out.extend_from_slice(&tx.to_be_bytes());
        out.extend_from_slice(&reply.interval.to_be_bytes());
        out.extend_from_slice(&reply.incomplete.to_be_bytes());
        out.extend_from_slice(&reply.complete.to_be_bytes());
        for peer in &reply.peers {
            match peer.addr {
                SocketAddr::V4(a) => out.extend_from_slice(&a.ip().octets()),
                SocketAddr::V6(a) => out.extend_from_slice(&a.ip().octets()),
            }
            out.extend_from_slice(&peer.addr.port().to_be_bytes());
        }
        out
    }

    fn udp_scrape(&self, body: &[u8], tx: u32) -> Vec<u8> {
        if body.is_empty() || body.len() % 20 != 0 {
            return error(tx, "scrape needs whole 20-byte info hashes");
        }
        if body.len() / 20 > MAX_SCRAPE_HASHES {
            return error(tx, "too many info hashes");
        }
        let hashes: Vec<InfoHash> = body
            .chunks_exact(20)
            .filter_map(|c| <[u8; 20]>::try_from(c).ok().map(InfoHash))
            .collect();
        let mut out = Vec::with_capacity(8 + hashes.len() * 12);
        out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
        out.extend_from_slice(&tx.to_be_bytes());
        for (_, e) in self.scrape(&hashes) {
            out.extend_from_slice(&e.complete.to_be_bytes());
            out.extend_from_slice(&e.downloaded.to_be_bytes());
            out.extend_from_slice(&e.incomplete.to_be_bytes());
        }
        out
    }
}

/// The connection-id window `now` falls in.
fn window(now: Instant) -> u64 {
    now.as_micros() / 1_000_000 / CONNECTION_ID_WINDOW
}

fn error(tx: u32, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + message.len());
    out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
    out.extend_from_slice(&tx.to_be_bytes());
    out.extend_from_slice(message.as_bytes());
    out
}
