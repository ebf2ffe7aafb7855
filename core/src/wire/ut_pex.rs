//! BEP 11 `ut_pex` messages: peers telling each other which peers they are connected to.
//!
//! The payload is a bencoded dictionary: `added` (IPv4 peers, 6 bytes each: address then
//! port, network order) with `added.f` (one flags byte per peer), `added6`/`added6.f`
//! (IPv6, 18 bytes each), and `dropped`/`dropped6` (peers no longer connected).
//!
//! Decoding is lenient, as BEP 10 asks: a key of the wrong type is treated as absent, a
//! trailing partial entry is ignored, and a flags string of the wrong length only loses the
//! flags it does not cover. It is also bounded: at most [`MAX_PEX_PEERS`] added and as many
//! dropped peers are read from one message (the limit the uTorrent and Azureus developers
//! agreed on, and what libtorrent uses), whatever the message holds, so a hostile peer
//! cannot make us allocate for more.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{BufMut, BytesMut};

use super::Message;
use crate::bencode::{self, DecodeOptions, Value};

/// The extension's name in the BEP 10 handshake's `m` dictionary.
pub const UT_PEX: &str = "ut_pex";

/// Most added (and, separately, dropped) peers one message may carry and that we read from
/// one message, IPv4 and IPv6 together.
pub const MAX_PEX_PEERS: usize = 50;

/// The `added.f` flag bits (BEP 11).
pub mod pex_flags {
    /// The peer prefers encrypted connections.
    pub const PREFERS_ENCRYPTION: u8 = 0x01;
    /// The peer is a seed or upload-only.
    pub const SEED: u8 = 0x02;
    /// The peer supports uTP.
    pub const UTP: u8 = 0x04;
    /// The peer supports `ut_holepunch`.
    pub const HOLEPUNCH: u8 = 0x08;
    /// The sender made an outgoing connection to the peer: it is reachable.
    pub const REACHABLE: u8 = 0x10;
}

/// Nesting allowed: the dictionary is flat.
const MAX_DEPTH: usize = 4;

/// One `ut_pex` message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PexMessage {
    /// Peers the sender connected to since its last message, with their [`pex_flags`].
    /// IPv4 ones travel in `added`, IPv6 ones in `added6`; decoding lists the IPv4 ones
    /// first.
    pub added: Vec<(SocketAddr, u8)>,
    /// Peers the sender disconnected from since its last message (`dropped`, `dropped6`).
    pub dropped: Vec<SocketAddr>,
}

/// Why a `ut_pex` payload was refused (only when it is not a dictionary at all).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PexMessageError {
    /// Not valid bencode.
    #[error("ut_pex: {0}")]
    Bencode(bencode::DecodeError),
    /// Valid bencode but not a dictionary.
    #[error("ut_pex message is a {0}, expected a dictionary")]
    NotDict(&'static str),
}

/// Whether `addr` could be a peer to dial: a non-zero port and an address that is neither
/// unspecified, multicast nor the IPv4 broadcast address.
pub fn is_dialable(addr: &SocketAddr) -> bool {
    let ip_ok = match addr.ip() {
        IpAddr::V4(a) => !a.is_unspecified() && !a.is_multicast() && !a.is_broadcast(),
        IpAddr::V6(a) => !a.is_unspecified() && !a.is_multicast(),
    };
    addr.port() != 0 && ip_ok
}

impl PexMessage {
    /// Whether the message lists nobody.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.dropped.is_empty()
    }

    /// Parses the payload of an extended message that carries `ut_pex`, keeping at most
    /// [`MAX_PEX_PEERS`] added and [`MAX_PEX_PEERS`] dropped peers (the first ones, IPv4
    /// before IPv6). Addresses are returned as sent, valid or not (see [`is_dialable`]).
    pub fn decode(payload: &[u8]) -> Result<Self, PexMessageError> {
        let options = DecodeOptions {
            max_depth: MAX_DEPTH,
            strict: false,
        };
        let value = bencode::decode_with(payload, options).map_err(PexMessageError::Bencode)?;
        let Some(dict) = value.as_dict() else {
            return Err(PexMessageError::NotDict(value.type_name()));
        };
        let bytes = |key: &[u8]| dict.get(key).and_then(Value::as_bytes).unwrap_or(&[]);
        // Sized once (a swarm's host decodes one of these per peer a minute).
        let fits = |v4: &[u8], v6: &[u8]| (v4.len() / 6 + v6.len() / 18).min(MAX_PEX_PEERS);
        let mut added = Vec::with_capacity(fits(bytes(b"added"), bytes(b"added6")));
        for (list, flags, width) in [
            (bytes(b"added"), bytes(b"added.f"), 6),
            (bytes(b"added6"), bytes(b"added6.f"), 18),
        ] {
            let room = MAX_PEX_PEERS - added.len();
            for (i, entry) in list.chunks_exact(width).take(room).enumerate() {
                if let Some(addr) = compact_addr(entry) {
                    added.push((addr, flags.get(i).copied().unwrap_or(0)));
                }
            }
        }
        let mut dropped = Vec::with_capacity(fits(bytes(b"dropped"), bytes(b"dropped6")));
        for (list, width) in [(bytes(b"dropped"), 6), (bytes(b"dropped6"), 18)] {
            let room = MAX_PEX_PEERS - dropped.len();
            dropped.extend(list.chunks_exact(width).take(room).filter_map(compact_addr));
        }
        Ok(PexMessage { added, dropped })
    }

    /// Appends the bencoded dictionary to `out` (keys sorted; empty lists are sent empty,
    /// as libtorrent does, so the dictionary always has the four IPv4/IPv6 list keys).
    ///
    /// Encodes every entry given: a sender keeps to [`MAX_PEX_PEERS`] itself. Written
    /// straight into `out`, reserved once at its exact length: a swarm sends one of these
    /// to every peer every minute, and building the bencode value first cost a dozen
    /// allocations each.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        let is_v4 = |a: &SocketAddr| a.is_ipv4();
        let added = |v4: bool| self.added.iter().filter(move |(a, _)| is_v4(a) == v4);
        let dropped = |v4: bool| self.dropped.iter().filter(move |a| is_v4(a) == v4);
        out.put_u8(b'd');
        // Sorted keys: "added" < "added.f" < "added6" < "added6.f" < "dropped" < "dropped6".
        for v4 in [true, false] {
            let (key, flags_key, width) = if v4 {
                (&b"added"[..], &b"added.f"[..], 6)
            } else {
                (&b"added6"[..], &b"added6.f"[..], 18)
            };
            let count = added(v4).count();
            bencode::put_bytes(out, key);
            bencode::put_length(out, count * width);
            for (addr, _) in added(v4) {
                put_compact(addr, out);
            }
            bencode::put_bytes(out, flags_key);
            bencode::put_length(out, count);
            for (_, flags) in added(v4) {
                out.put_u8(*flags);
            }
        }
        for v4 in [true, false] {
            let (key, width) = if v4 {
                (&b"dropped"[..], 6)
            } else {
                (&b"dropped6"[..], 18)
            };
            bencode::put_bytes(out, key);
            bencode::put_length(out, dropped(v4).count() * width);
            for addr in dropped(v4) {
                put_compact(addr, out);
            }
        }
        out.put_u8(b'e');
    }

    /// The exact length of [`PexMessage::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        let v4_added = self.added.iter().filter(|(a, _)| a.is_ipv4()).count();
        let v6_added = self.added.len() - v4_added;
        let v4_dropped = self.dropped.iter().filter(|a| a.is_ipv4()).count();
        let v6_dropped = self.dropped.len() - v4_dropped;
        // `<len>:<key>` and `<len>:<value>`, for each of the six keys, in `d`…`e`.
        let item = |key: &[u8], value_len: usize| {
            decimal_len(key.len()) + 1 + key.len() + decimal_len(value_len) + 1 + value_len
        };
        2 + item(b"added", 6 * v4_added)
            + item(b"added.f", v4_added)
            + item(b"added6", 18 * v6_added)
            + item(b"added6.f", v6_added)
            + item(b"dropped", 6 * v4_dropped)
            + item(b"dropped6", 18 * v6_dropped)
    }

    /// The whole extended message, sent under `ext_id` (the id the *receiver* gave
    /// `ut_pex` in its handshake).
    pub fn to_message(&self, ext_id: u8) -> Message {
        let mut payload = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut payload);
        Message::Extended {
            id: ext_id,
            payload: payload.freeze(),
        }
    }
}

/// How many decimal digits `n` takes.
fn decimal_len(mut n: usize) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

/// An address from its compact form: 4 or 16 address bytes, then a big-endian port.
fn compact_addr(entry: &[u8]) -> Option<SocketAddr> {
    let (ip, port) = entry.split_at_checked(entry.len().checked_sub(2)?)?;
    let port = u16::from_be_bytes([port[0], port[1]]);
    let ip = if let Ok(v4) = <[u8; 4]>::try_from(ip) {
        IpAddr::V4(Ipv4Addr::from(v4))
    } else {
        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?))
    };
    Some(SocketAddr::new(ip, port))
}

fn put_compact(addr: &SocketAddr, out: &mut BytesMut) {
    match addr.ip() {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn round_trip_both_families() {
        let m = PexMessage {
            added: vec![
                (
                    addr("10.0.0.1:6881"),
                    pex_flags::REACHABLE | pex_flags::SEED,
                ),
                (addr("10.0.0.2:51413"), 0),
                (addr("[2001:db8::1]:6882"), pex_flags::REACHABLE),
            ],
            dropped: vec![addr("10.0.0.3:1"), addr("[2001:db8::2]:2")],
        };
        let mut out = BytesMut::new();
        m.encode(&mut out);
        assert!(bencode::decode_strict(&out).is_ok(), "canonical");
        assert_eq!(PexMessage::decode(&out), Ok(m));
    }

    #[test]
    fn wire_form_matches_bep_11() {
        let m = PexMessage {
            added: vec![(addr("1.2.3.4:258"), 0x12)],
            dropped: vec![],
        };
        let mut out = BytesMut::new();
        m.encode(&mut out);
        assert_eq!(
            &out[..],
            b"d5:added6:\x01\x02\x03\x04\x01\x027:added.f1:\x126:added60:8:added6.f0:\
              7:dropped0:8:dropped60:e"
        );
    }

    #[test]
    fn encoded_len_is_exact_and_messages_round_trip() {
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..300 {
            let addr = |rng: &mut fastrand::Rng| -> SocketAddr {
                if rng.bool() {
                    SocketAddr::from((rng.u32(..).to_be_bytes(), rng.u16(1..)))
                } else {
                    SocketAddr::from((rng.u128(..).to_be_bytes(), rng.u16(1..)))
                }
            };
            let m = PexMessage {
                added: (0..rng.usize(0..=MAX_PEX_PEERS))
                    .map(|_| (addr(&mut rng), rng.u8(..)))
                    .collect(),
                dropped: (0..rng.usize(0..=MAX_PEX_PEERS))
                    .map(|_| addr(&mut rng))
                    .collect(),
            };
            let mut out = BytesMut::new();
            m.encode(&mut out);
            assert_eq!(out.len(), m.encoded_len());
            // Decoding lists the IPv4 peers first, as they travel.
            let mut want = m.clone();
            want.added.sort_by_key(|(a, _)| a.is_ipv6());
            want.dropped.sort_by_key(SocketAddr::is_ipv6);
            assert_eq!(PexMessage::decode(&out), Ok(want));
        }
    }

    #[test]
    fn lenient_decoding() {
        // A partial trailing entry, flags missing for the second peer, a wrong-typed
        // `added6`, unknown keys.
        let payload = b"d5:added13:\x01\x02\x03\x04\x00\x01\x05\x06\x07\x08\x00\x02\xff\
            7:added.f1:\x106:added6i5e1:xli1ee7:dropped6:\x09\x09\x09\x09\x00\x03e";
        let m = PexMessage::decode(payload).expect("lenient");
        assert_eq!(
            m.added,
            vec![(addr("1.2.3.4:1"), 0x10), (addr("5.6.7.8:2"), 0)]
        );
        assert_eq!(m.dropped, vec![addr("9.9.9.9:3")]);
        assert_eq!(PexMessage::decode(b"de"), Ok(PexMessage::default()));
    }

    #[test]
    fn at_most_fifty_added_and_fifty_dropped_are_read() {
        let many: Vec<(SocketAddr, u8)> = (0..200u16)
            .map(|i| {
                (
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1)), 1000 + i),
                    0,
                )
            })
            .collect();
        let m = PexMessage {
            added: many.clone(),
            dropped: many.iter().map(|(a, _)| *a).collect(),
        };
        let mut out = BytesMut::new();
        m.encode(&mut out);
        let decoded = PexMessage::decode(&out).expect("decodes");
        assert_eq!(decoded.added.len(), MAX_PEX_PEERS);
        assert_eq!(decoded.dropped.len(), MAX_PEX_PEERS);
        assert_eq!(decoded.added[..], many[..MAX_PEX_PEERS]);
    }

    #[test]
    fn non_dictionaries_are_errors() {
        assert_eq!(
            PexMessage::decode(b"le"),
            Err(PexMessageError::NotDict("list"))
        );
        assert!(matches!(
            PexMessage::decode(b"d5:added"),
            Err(PexMessageError::Bencode(_))
        ));
        assert!(matches!(
            PexMessage::decode(b"d1:xllllllleeeeeeee"),
            Err(PexMessageError::Bencode(_))
        ));
    }

    #[test]
    fn dialable_addresses() {
        assert!(is_dialable(&addr("10.0.0.1:6881")));
        assert!(is_dialable(&addr("[2001:db8::1]:1")));
        for bad in [
            "10.0.0.1:0",
            "0.0.0.0:6881",
            "224.0.0.1:6881",
            "255.255.255.255:6881",
            "[::]:6881",
            "[ff02::1]:6881",
        ] {
            assert!(!is_dialable(&addr(bad)), "{bad}");
        }
    }
}
