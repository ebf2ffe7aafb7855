//! The BEP 3 handshake: `\x13BitTorrent protocol`, 8 reserved bytes, info-hash, peer id.

use std::fmt;

use bytes::{Buf, BufMut, BytesMut};

use super::{PeerId, WireError};
use crate::InfoHash;

/// The protocol name every handshake starts with (after its length byte, 19).
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";

/// A handshake's size in bytes: 1 + 19 + 8 + 20 + 20.
pub const HANDSHAKE_LEN: usize = 68;

/// Offset of the reserved bytes, the info-hash and the peer id in a handshake.
const RESERVED_AT: usize = 1 + PROTOCOL.len();
const INFO_HASH_AT: usize = RESERVED_AT + 8;
const PEER_ID_AT: usize = INFO_HASH_AT + 20;

/// The 8 reserved handshake bytes, kept whole so bits we do not interpret survive a round
/// trip. Bits are numbered as the BEPs do: byte index, then mask.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Reserved(pub [u8; 8]);

impl Reserved {
    /// No extension announced.
    pub const NONE: Reserved = Reserved([0; 8]);

    /// BEP 10 extension protocol: `reserved[5] & 0x10`.
    pub const fn extension_protocol(self) -> bool {
        self.0[5] & 0x10 != 0
    }

    /// BEP 6 fast extension: `reserved[7] & 0x04`.
    pub const fn fast(self) -> bool {
        self.0[7] & 0x04 != 0
    }

    /// BEP 5 DHT (the peer answers DHT queries on the port it sends in a `port` message):
    /// `reserved[7] & 0x01`.
    pub const fn dht(self) -> bool {
        self.0[7] & 0x01 != 0
    }

    /// These bits plus the extension protocol bit.
    pub const fn with_extension_protocol(mut self) -> Self {
        self.0[5] |= 0x10;
        self
    }

    /// These bits plus the fast extension bit.
    pub const fn with_fast(mut self) -> Self {
        self.0[7] |= 0x04;
        self
    }

    /// These bits plus the DHT bit.
    pub const fn with_dht(mut self) -> Self {
        self.0[7] |= 0x01;
        self
    }
}

impl fmt::Debug for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reserved(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        for (on, name) in [
            (self.extension_protocol(), " extension"),
            (self.fast(), " fast"),
            (self.dht(), " dht"),
        ] {
            if on {
                f.write_str(name)?;
            }
        }
        write!(f, ")")
    }
}

/// A BEP 3 handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The reserved bytes: which extensions the sender supports.
    pub reserved: Reserved,
    /// The torrent the sender wants to talk about.
    pub info_hash: InfoHash,
    /// The sender's peer id.
    pub peer_id: PeerId,
}

impl Handshake {
    /// Appends the 68-byte handshake to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(HANDSHAKE_LEN);
        out.put_u8(PROTOCOL.len() as u8);
        out.put_slice(PROTOCOL);
        out.put_slice(&self.reserved.0);
        out.put_slice(&self.info_hash.0);
        out.put_slice(&self.peer_id.0);
    }

    /// Parses a handshake from the start of `buf`, consuming its 68 bytes.
    ///
    /// Returns `Ok(None)` (consuming nothing) while fewer than 68 bytes are there. The
    /// protocol name is checked on every call against the bytes already received, so a peer
    /// speaking another protocol is refused as soon as its first wrong byte arrives.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Handshake>, WireError> {
        let Some(prefix) = Self::check_prefix(buf, HANDSHAKE_LEN)? else {
            return Ok(None);
        };
        let handshake = Handshake {
            reserved: prefix.0,
            info_hash: prefix.1,
            peer_id: PeerId(array_at(buf, PEER_ID_AT)),
        };
        buf.advance(HANDSHAKE_LEN);
        Ok(Some(handshake))
    }

    /// The reserved bytes and info-hash of a handshake at the start of `buf`, as soon as its
    /// first 48 bytes are there (before the peer id), without consuming anything.
    ///
    /// An accepting side uses this to find the torrent and answer before the peer id
    /// arrives, as BEP 3 allows initiators to wait for.
    pub fn peek_info_hash(buf: &[u8]) -> Result<Option<(Reserved, InfoHash)>, WireError> {
        Self::check_prefix(buf, PEER_ID_AT)
    }

    /// Checks the protocol name in what `buf` holds so far; once `need` bytes (at least
    /// [`PEER_ID_AT`]) are there, returns the reserved bytes and the info-hash.
    fn check_prefix(buf: &[u8], need: usize) -> Result<Option<(Reserved, InfoHash)>, WireError> {
        if let Some(&len) = buf.first() {
            if usize::from(len) != PROTOCOL.len() {
                return Err(WireError::HandshakeProtocolLength(len));
            }
        }
        let name = buf.get(1..).unwrap_or_default();
        for (i, (&found, &want)) in name.iter().zip(PROTOCOL.iter()).enumerate() {
            if found != want {
                return Err(WireError::HandshakeProtocolName {
                    offset: 1 + i,
                    found,
                });
            }
        }
        if buf.len() < need {
            return Ok(None);
        }
        Ok(Some((
            Reserved(array_at(buf, RESERVED_AT)),
            InfoHash(array_at(buf, INFO_HASH_AT)),
        )))
    }
}

/// The `N` bytes of `buf` from `at`; callers have checked `buf` is long enough.
fn array_at<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handshake {
        Handshake {
            reserved: Reserved::NONE
                .with_extension_protocol()
                .with_fast()
                .with_dht(),
            info_hash: InfoHash([0xab; 20]),
            peer_id: PeerId(*b"-UC0001-abcdefghijkl"),
        }
    }

    #[test]
    fn reserved_bits_are_where_the_beps_put_them() {
        let r = Reserved::NONE.with_extension_protocol();
        assert_eq!(r.0, [0, 0, 0, 0, 0, 0x10, 0, 0]);
        assert!(r.extension_protocol() && !r.fast() && !r.dht());
        let r = Reserved::NONE.with_fast();
        assert_eq!(r.0, [0, 0, 0, 0, 0, 0, 0, 0x04]);
        assert!(!r.extension_protocol() && r.fast() && !r.dht());
        let r = Reserved::NONE.with_dht();
        assert_eq!(r.0, [0, 0, 0, 0, 0, 0, 0, 0x01]);
        assert!(!r.extension_protocol() && !r.fast() && r.dht());
        assert_eq!(
            format!("{:?}", sample().reserved),
            "Reserved(0000000000100005 extension fast dht)"
        );
    }

    #[test]
    fn round_trip_with_trailing_bytes_left_alone() {
        let mut buf = BytesMut::new();
        sample().encode(&mut buf);
        assert_eq!(buf.len(), HANDSHAKE_LEN);
        assert_eq!(&buf[..20], b"\x13BitTorrent protocol");
        buf.put_slice(b"\0\0\0\0");
        assert_eq!(Handshake::decode(&mut buf).unwrap(), Some(sample()));
        assert_eq!(&buf[..], b"\0\0\0\0");
    }

    #[test]
    fn unknown_reserved_bits_survive() {
        let mut h = sample();
        h.reserved = Reserved([0x80, 1, 2, 3, 4, 5, 6, 7]);
        let mut buf = BytesMut::new();
        h.encode(&mut buf);
        assert_eq!(Handshake::decode(&mut buf).unwrap(), Some(h));
    }

    #[test]
    fn truncated_handshake_waits_for_more_at_every_length() {
        let mut full = BytesMut::new();
        sample().encode(&mut full);
        for n in 0..HANDSHAKE_LEN {
            let mut buf = BytesMut::from(&full[..n]);
            assert_eq!(Handshake::decode(&mut buf).unwrap(), None, "at {n} bytes");
            assert_eq!(buf.len(), n, "nothing consumed at {n} bytes");
        }
    }

    #[test]
    fn peek_sees_info_hash_before_peer_id() {
        let mut full = BytesMut::new();
        sample().encode(&mut full);
        assert_eq!(Handshake::peek_info_hash(&full[..47]).unwrap(), None);
        assert_eq!(
            Handshake::peek_info_hash(&full[..48]).unwrap(),
            Some((sample().reserved, sample().info_hash))
        );
    }

    #[test]
    fn wrong_protocol_is_refused_at_the_first_wrong_byte() {
        let mut buf = BytesMut::from(&b"\x13BitTorrent protocoX"[..]);
        assert_eq!(
            Handshake::decode(&mut buf),
            Err(WireError::HandshakeProtocolName {
                offset: 19,
                found: b'X'
            })
        );
        // An HTTP request arriving on the peer port fails on its first byte.
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        let err = Handshake::decode(&mut buf).unwrap_err();
        assert_eq!(err, WireError::HandshakeProtocolLength(b'G'));
        assert_eq!(
            err.to_string(),
            "handshake: protocol name length is 71, expected 19 (\"BitTorrent protocol\")"
        );
        // A wrong byte is seen even when the handshake is incomplete.
        let mut buf = BytesMut::from(&b"\x13Bit"[..]);
        assert_eq!(Handshake::decode(&mut buf).unwrap(), None);
        let mut buf = BytesMut::from(&b"\x13Bat"[..]);
        assert!(matches!(
            Handshake::decode(&mut buf),
            Err(WireError::HandshakeProtocolName { offset: 2, .. })
        ));
    }
}
