//! The `tracker_server` target: the sans-IO tracker server fed arbitrary HTTP requests and
//! UDP datagrams from a few sources, with arbitrary time steps and expiry.
//!
//! The input is a script of operations, each one opcode byte followed by its operands:
//! `0 len bytes…` a raw HTTP request, `1 len bytes…` a raw UDP datagram, `2 a b` a time
//! step of `a·256+b` seconds, `3` an expiry, `4 s h p l e n` a well-formed HTTP announce,
//! `5 s h p l e n` a UDP connect then announce (source, hash, peer, left, event, numwant
//! chosen by the operand bytes). The server runs with tiny limits so they are reached.
//!
//! Invariants checked after every operation:
//! 1. Nothing panics.
//! 2. Every HTTP outcome is `NeedMore` only for an incomplete head under 8 KiB; every
//!    response is `HTTP/1.1`, has `Connection: close` and a `Content-Length` equal to the
//!    body's length, and a `200` body is a bencoded dictionary with either a
//!    `failure reason` or `interval` and `peers` (compact peers a multiple of 6 bytes,
//!    `peers6` of 18).
//! 3. Every UDP reply echoes the transaction id, carries action 0–3, and has the exact
//!    BEP 15 length for its action (16 for connect; 20 + 6·k over IPv4 or 20 + 18·k over
//!    IPv6 for announce, k ≤ `max_numwant`; 8 + 12·n for scrape). Only packets shorter than
//!    16 bytes or action-0 packets without the magic go unanswered.
//! 4. Memory bounds hold: swarms ≤ `max_swarms`, peers ≤ `max_total_peers`, and no
//!    scraped swarm exceeds `max_peers_per_swarm`.
//! 5. Well-formed announces get no duplicate peers and never their own address.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use unchoke_core::bencode::{self, Value};
use unchoke_core::info_hash::InfoHash;
use unchoke_core::time::Instant;
use unchoke_core::tracker::server::{
    HttpOutcome, MAX_HTTP_REQUEST, ServerConfig, SwarmQuota, TrackerServer, UDP_PROTOCOL_ID,
};

const SOURCES: [&str; 6] = [
    "10.0.0.1:1000",
    "10.0.0.2:1000",
    "127.0.0.1:2000",
    "[2001:db8::1]:3000",
    "[2001:db8::2]:3000",
    "[::1]:4000",
];

const MAX_NUMWANT: usize = 5;

fn config() -> ServerConfig {
    ServerConfig {
        interval: Duration::from_secs(60),
        min_interval: Duration::from_secs(10),
        default_numwant: 3,
        max_numwant: MAX_NUMWANT as u32,
        max_swarms: 3,
        // Small enough that the six sources hit it: both eviction and refusals run.
        swarm_quota: Some(SwarmQuota {
            per_ip: 2,
            window: Duration::from_secs(300),
        }),
        max_peers_per_swarm: 4,
        max_total_peers: 8,
        whitelist: None,
        trust_ip_param: false,
    }
}

/// Runs every tracker-server invariant on `data`. Panics if one fails.
pub fn tracker_server(data: &[u8]) {
    let sources: Vec<SocketAddr> = SOURCES.iter().filter_map(|s| s.parse().ok()).collect();
    let config = config();
    let mut server = TrackerServer::new(config.clone(), 0x0074_7261_636b);
    let mut now = Instant::from_secs(1_000);
    let mut ops = Ops(data);
    while let Some(op) = ops.byte() {
        match op % 6 {
            0 => {
                let len = usize::from(ops.byte().unwrap_or(0)) * 40;
                let raw = ops.take(len);
                let from = sources[usize::from(ops.byte().unwrap_or(0)) % sources.len()];
                check_http(&raw, server.handle_http_request(&raw, from, now));
            }
            1 => {
                let len = usize::from(ops.byte().unwrap_or(0));
                let raw = ops.take(len);
                let from = sources[usize::from(ops.byte().unwrap_or(0)) % sources.len()];
                let reply = server.handle_udp_packet(&raw, from, now);
                check_udp(&raw, from, reply.as_deref());
            }
            2 => {
                let secs =
                    u64::from(ops.byte().unwrap_or(0)) << 8 | u64::from(ops.byte().unwrap_or(0));
                now += Duration::from_secs(secs);
            }
            3 => {
                server.expire(now);
                if let Some(next) = server.next_expiry() {
                    assert!(next > now, "expire left an expired peer");
                }
            }
            4 => {
                let a = Announce::read(&mut ops, &sources);
                let outcome = server.handle_http_request(a.http().as_bytes(), a.from, now);
                check_http(a.http().as_bytes(), outcome.clone());
                let HttpOutcome::Respond(r) = outcome else {
                    panic!("a complete request was answered NeedMore");
                };
                check_http_peers(&r, &a);
            }
            _ => {
                let a = Announce::read(&mut ops, &sources);
                let mut connect = UDP_PROTOCOL_ID.to_be_bytes().to_vec();
                connect.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3, 4]);
                let reply = server.handle_udp_packet(&connect, a.from, now);
                check_udp(&connect, a.from, reply.as_deref());
                let Some(cid) = reply.and_then(|r| r.get(8..16).map(|c| c.to_vec())) else {
                    panic!("no connect reply");
                };
                let packet = a.udp(&cid);
                let reply = server.handle_udp_packet(&packet, a.from, now);
                check_udp(&packet, a.from, reply.as_deref());
                let Some(reply) = reply else {
                    panic!("no announce reply");
                };
                if reply[..4] == [0, 0, 0, 1] {
                    let size = if a.from.is_ipv4() { 6 } else { 18 };
                    let peers: Vec<&[u8]> = reply[20..].chunks(size).collect();
                    let distinct: BTreeSet<&[u8]> = peers.iter().copied().collect();
                    assert_eq!(distinct.len(), peers.len(), "duplicate UDP peers");
                }
            }
        }
        assert!(server.swarm_count() <= config.max_swarms, "too many swarms");
        assert!(
            server.peer_count() <= config.max_total_peers,
            "too many peers"
        );
        let hashes: Vec<InfoHash> = (0..4).map(|h| InfoHash([h; 20])).collect();
        let mut seen = 0;
        for (_, e) in server.scrape(&hashes) {
            let n = e.complete as usize + e.incomplete as usize;
            assert!(n <= config.max_peers_per_swarm, "swarm over its limit");
            seen += n;
        }
        assert!(
            seen <= server.peer_count(),
            "peer count lost track (eviction?)"
        );
    }
    // Eviction and expiry share the peer index: after everyone's timeout nothing is left.
    server.expire(now + server.peer_timeout() + Duration::from_secs(1));
    assert_eq!(server.peer_count(), 0, "a peer outlived its timeout");
    assert_eq!(server.swarm_count(), 0, "an empty swarm was kept");
    assert_eq!(server.next_expiry(), None);
}

/// The remaining script.
struct Ops<'a>(&'a [u8]);

impl Ops<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head.to_vec()
    }
}

/// A well-formed announce chosen by operand bytes.
struct Announce {
    from: SocketAddr,
    hash: u8,
    peer: u8,
    left: u64,
    event: u8,
    numwant: u8,
}

impl Announce {
    fn read(ops: &mut Ops<'_>, sources: &[SocketAddr]) -> Self {
        let mut b = || ops.byte().unwrap_or(0);
        Announce {
            from: sources[usize::from(b()) % sources.len()],
            hash: b() % 4,
            peer: b() % 16,
            left: u64::from(b() % 2),
            event: b() % 4,
            numwant: b() % 8,
        }
    }

    fn port(&self) -> u16 {
        6000 + u16::from(self.peer)
    }

    fn http(&self) -> String {
        let pct = |b: u8, n: usize| format!("%{b:02X}").repeat(n);
        let event =
            ["", "&event=completed", "&event=started", "&event=stopped"][usize::from(self.event)];
        format!(
            "GET /announce?info_hash={}&peer_id={}&port={}&left={}{event}&numwant={}&compact={} \
             HTTP/1.1\r\nHost: t\r\n\r\n",
            pct(self.hash, 20),
            pct(self.peer, 20),
            self.port(),
            self.left,
            self.numwant,
            self.peer % 2
        )
    }

    fn udp(&self, cid: &[u8]) -> Vec<u8> {
        let mut p = cid.to_vec();
        p.extend_from_slice(&[0, 0, 0, 1, 9, 9, 9, 9]);
        p.extend_from_slice(&[self.hash; 20]);
        p.extend_from_slice(&[self.peer; 20]);
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&self.left.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&u32::from(self.event).to_be_bytes());
        p.extend_from_slice(&[0; 4]);
        p.extend_from_slice(&u32::from(self.peer).to_be_bytes());
        p.extend_from_slice(&u32::from(self.numwant).to_be_bytes());
        p.extend_from_slice(&self.port().to_be_bytes());
        p
    }
}

/// Checks an HTTP outcome's framing and body; see invariant 2.
fn check_http(request: &[u8], outcome: HttpOutcome) {
    let r = match outcome {
        HttpOutcome::NeedMore => {
            assert!(request.len() < MAX_HTTP_REQUEST, "NeedMore past the limit");
            assert!(
                !request.windows(4).any(|w| w == b"\r\n\r\n"),
                "NeedMore on a complete head"
            );
            return;
        }
        HttpOutcome::Respond(r) => r,
    };
    let end = r
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let head = std::str::from_utf8(&r[..end]).expect("an ASCII head");
    assert!(head.starts_with("HTTP/1.1 "), "bad status line");
    assert!(head.contains("\r\nConnection: close\r\n"));
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .expect("a Content-Length");
    assert_eq!(len, r.len() - end, "Content-Length disagrees with the body");
    if head.starts_with("HTTP/1.1 200 ") {
        let v = bencode::decode(&r[end..]).expect("a bencoded body");
        let d = v.as_dict().expect("a dictionary body");
        if d.get(b"failure reason").is_none() && d.get(b"files").is_none() {
            assert!(d.get(b"interval").and_then(Value::as_int).is_some());
            match d.get(b"peers").expect("peers") {
                Value::Bytes(b) => assert_eq!(b.len() % 6, 0),
                Value::List(l) => assert!(l.items().len() <= MAX_NUMWANT),
                other => panic!("peers is a {}", other.type_name()),
            }
            if let Some(p6) = d.get(b"peers6") {
                assert_eq!(p6.as_bytes().expect("peers6 bytes").len() % 18, 0);
            }
        }
    }
}

/// Invariant 5 for an HTTP announce: distinct peers, never the announcer itself.
fn check_http_peers(r: &[u8], a: &Announce) {
    let Some(end) = r.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let Ok(v) = bencode::decode(&r[end + 4..]) else {
        return;
    };
    let Some(d) = v.as_dict() else {
        return;
    };
    let mut seen: Vec<Vec<u8>> = Vec::new();
    if let Some(Value::List(l)) = d.get(b"peers") {
        for p in l.items() {
            let id = p
                .as_dict()
                .and_then(|p| p.get(b"peer id"))
                .and_then(Value::as_bytes)
                .expect("a peer id");
            assert_ne!(id, &[a.peer; 20][..], "the announcer got itself");
            seen.push(id.to_vec());
        }
    }
    for key in [&b"peers"[..], b"peers6"] {
        if let Some(Value::Bytes(b)) = d.get(key) {
            let size = if key == b"peers" { 6 } else { 18 };
            seen.extend(b.chunks(size).map(<[u8]>::to_vec));
        }
    }
    let distinct: BTreeSet<&Vec<u8>> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "duplicate peers");
    assert!(seen.len() <= MAX_NUMWANT * 2);
}

/// Checks a UDP reply; see invariant 3.
fn check_udp(packet: &[u8], from: SocketAddr, reply: Option<&[u8]>) {
    let Some(r) = reply else {
        let magic = packet.get(..8) == Some(&UDP_PROTOCOL_ID.to_be_bytes()[..]);
        let connect = packet.get(8..12) == Some(&[0, 0, 0, 0][..]);
        assert!(
            packet.len() < 16 || (connect && !magic),
            "a BEP 15 packet went unanswered"
        );
        return;
    };
    assert!(r.len() >= 8, "reply too short");
    assert_eq!(r[4..8], packet[12..16], "transaction id not echoed");
    match r[..4] {
        [0, 0, 0, 0] => assert_eq!(r.len(), 16),
        [0, 0, 0, 1] => {
            let size = if from.is_ipv4() { 6 } else { 18 };
            assert!(
                r.len() >= 20 && (r.len() - 20) % size == 0,
                "announce reply size"
            );
            assert!((r.len() - 20) / size <= MAX_NUMWANT);
        }
        [0, 0, 0, 2] => assert_eq!((r.len() - 8) % 12, 0),
        [0, 0, 0, 3] => {}
        _ => panic!("unknown action in reply"),
    }
}
