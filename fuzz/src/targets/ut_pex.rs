//! The `ut_pex` target: the BEP 11 codec on arbitrary payloads.
//!
//! Invariants checked on every input:
//! 1. Decoding never panics, and never yields more than 50 added or 50 dropped peers.
//! 2. A decoded message encodes to canonical bencode that decodes to the same message.
//! 3. Encoding a message built from the input (any number of IPv4/IPv6 peers) and decoding
//!    it gives back its first 50 added and dropped peers, IPv4 before IPv6.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::BytesMut;
use unchoke_core::bencode;
use unchoke_core::wire::{MAX_PEX_PEERS, PexMessage};

/// Runs every `ut_pex` invariant on `data`. Panics if one fails.
pub fn ut_pex(data: &[u8]) {
    if let Ok(m) = PexMessage::decode(data) {
        assert!(m.added.len() <= MAX_PEX_PEERS, "{} added", m.added.len());
        assert!(
            m.dropped.len() <= MAX_PEX_PEERS,
            "{} dropped",
            m.dropped.len()
        );
        let mut out = BytesMut::new();
        m.encode(&mut out);
        assert!(bencode::decode_strict(&out).is_ok(), "not canonical");
        assert_eq!(
            PexMessage::decode(&out).as_ref(),
            Ok(&m),
            "does not round-trip"
        );
    }
    built(data);
}

/// Builds a message from the input's bytes (7 bytes an entry) and checks what survives.
fn built(data: &[u8]) {
    let mut message = PexMessage::default();
    for (i, entry) in data.chunks_exact(7).enumerate() {
        let port = u16::from_be_bytes([entry[4], entry[5]]);
        let ip = if entry[6] & 1 == 0 {
            IpAddr::V4(Ipv4Addr::new(entry[0], entry[1], entry[2], entry[3]))
        } else {
            let mut o = [0u8; 16];
            o[..4].copy_from_slice(&entry[..4]);
            o[15] = entry[6];
            IpAddr::V6(Ipv6Addr::from(o))
        };
        let addr = SocketAddr::new(ip, port);
        if i % 2 == 0 {
            message.added.push((addr, entry[6]));
        } else {
            message.dropped.push(addr);
        }
    }
    let mut out = BytesMut::new();
    message.encode(&mut out);
    let decoded = PexMessage::decode(&out).expect("our own encoding decodes");
    let v4_first = |v: &[(SocketAddr, u8)]| -> Vec<(SocketAddr, u8)> {
        let mut sorted: Vec<_> = v.iter().filter(|(a, _)| a.is_ipv4()).copied().collect();
        sorted.extend(v.iter().filter(|(a, _)| a.is_ipv6()).copied());
        sorted.truncate(MAX_PEX_PEERS);
        sorted
    };
    assert_eq!(decoded.added, v4_first(&message.added));
    let dropped: Vec<(SocketAddr, u8)> = message.dropped.iter().map(|a| (*a, 0)).collect();
    let expected: Vec<SocketAddr> = v4_first(&dropped).into_iter().map(|(a, _)| a).collect();
    assert_eq!(decoded.dropped, expected);
}
