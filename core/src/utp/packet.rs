//! The uTP packet (BEP 29): a 20-byte header, an extension chain, a payload.
//!
//! ```text
//! 0       4       8               16              24              32
//! +-------+-------+---------------+---------------+---------------+
//! | type  | ver   | extension     | connection_id                 |
//! +-------+-------+---------------+---------------+---------------+
//! | timestamp_microseconds                                        |
//! +---------------+---------------+---------------+---------------+
//! | timestamp_difference_microseconds                             |
//! +---------------+---------------+---------------+---------------+
//! | wnd_size                                                      |
//! +---------------+---------------+---------------+---------------+
//! | seq_nr                        | ack_nr                        |
//! +---------------+---------------+---------------+---------------+
//! ```
//!
//! All fields are big-endian. `extension` names the first extension; each extension is
//! `next extension (1 byte) | length (1 byte) | length bytes`, and 0 ends the chain. The one
//! extension this crate speaks is 1, the selective ACK: a bitmask of at least 32 bits, a
//! multiple of 32, where bit `i` (least significant bit of byte `i / 8` first) says the
//! packet `ack_nr + 2 + i` was received (`ack_nr + 1` is, by definition, missing). Others
//! are skipped by their length.
//!
//! Decoding never panics and never allocates more than the input's length.

use bytes::Bytes;

/// The header's length without extensions.
pub const HEADER_LEN: usize = 20;
/// The protocol version this crate speaks (the header's low nibble).
pub const VERSION: u8 = 1;
/// The selective-ACK extension's number.
pub const EXT_SELECTIVE_ACK: u8 = 1;

/// The five packet types of BEP 29 (the header's high nibble).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `ST_DATA` (0): a payload, consuming one sequence number.
    Data,
    /// `ST_FIN` (1): the sender's last sequence number; consumes one.
    Fin,
    /// `ST_STATE` (2): an acknowledgement without payload; consumes no sequence number.
    State,
    /// `ST_RESET` (3): the connection is gone, at once.
    Reset,
    /// `ST_SYN` (4): opens a connection; consumes one sequence number.
    Syn,
}

impl PacketType {
    /// The type's number in the header.
    pub fn number(self) -> u8 {
        match self {
            PacketType::Data => 0,
            PacketType::Fin => 1,
            PacketType::State => 2,
            PacketType::Reset => 3,
            PacketType::Syn => 4,
        }
    }

    /// The type with that number, if any.
    pub fn from_number(n: u8) -> Option<PacketType> {
        Some(match n {
            0 => PacketType::Data,
            1 => PacketType::Fin,
            2 => PacketType::State,
            3 => PacketType::Reset,
            4 => PacketType::Syn,
            _ => return None,
        })
    }
}

/// Why bytes are not a uTP packet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer than the 20 header bytes.
    #[error("{0} bytes is shorter than a uTP header")]
    TooShort(usize),
    /// A version other than 1.
    #[error("uTP version {0} (only 1 is known)")]
    BadVersion(u8),
    /// A type nibble above 4.
    #[error("unknown uTP packet type {0}")]
    UnknownType(u8),
    /// An extension header or body runs past the end of the datagram.
    #[error("the uTP extension chain runs past the end of the packet")]
    MalformedExtension,
    /// An empty selective-ACK bitmask.
    #[error("a selective ACK of {0} bytes (must not be empty)")]
    BadSelectiveAckLength(u8),
}

/// One uTP packet, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// What the packet is.
    pub packet_type: PacketType,
    /// The connection id: the receiver's "receive" id (the SYN carries the sender's own).
    pub connection_id: u16,
    /// The sender's clock when it sent the packet, in microseconds (wraps).
    pub timestamp_micros: u32,
    /// The sender's clock at the last packet it received minus that packet's timestamp: the
    /// one-way delay plus clock offset, which LEDBAT compares against its minimum.
    pub timestamp_difference_micros: u32,
    /// The sender's free receive buffer, in bytes.
    pub wnd_size: u32,
    /// This packet's sequence number (for `State`, the next one the sender will use).
    pub seq_nr: u16,
    /// The last sequence number the sender received in order.
    pub ack_nr: u16,
    /// The selective-ACK bitmask, when the extension is present: bit `i` means
    /// `ack_nr + 2 + i` was received. Always a non-zero multiple of 4 bytes, at most 252,
    /// as BEP 29 says; a mask of another length is read and padded with zero bits:
    /// libtorrent 2.0 sends whatever length covers its reorder buffer (13 bytes were
    /// seen), and refusing those packets would drop every acknowledgement it sends after
    /// a loss.
    pub selective_ack: Option<Bytes>,
    /// The payload (empty for everything but `Data`, in practice).
    pub payload: Bytes,
}

impl Packet {
    /// A packet of type `packet_type` with every other field zero and no payload.
    pub fn new(packet_type: PacketType) -> Packet {
        Packet {
            packet_type,
            connection_id: 0,
            timestamp_micros: 0,
            timestamp_difference_micros: 0,
            wnd_size: 0,
            seq_nr: 0,
            ack_nr: 0,
            selective_ack: None,
            payload: Bytes::new(),
        }
    }

    /// Decodes one datagram. Unknown extensions are skipped; the first selective ACK is kept
    /// and any further one ignored. Copies the payload once.
    pub fn decode(data: &[u8]) -> Result<Packet, PacketError> {
        let header = data
            .get(..HEADER_LEN)
            .ok_or(PacketError::TooShort(data.len()))?;
        let be16 = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
        let be32 = |at: usize| {
            u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let version = header[0] & 0x0f;
        if version != VERSION {
            return Err(PacketError::BadVersion(version));
        }
        let type_number = header[0] >> 4;
        let packet_type =
            PacketType::from_number(type_number).ok_or(PacketError::UnknownType(type_number))?;
        let mut next_ext = header[1];
        let mut at = HEADER_LEN;
        let mut selective_ack = None;
        while next_ext != 0 {
            let (&following, &len) = data
                .get(at)
                .zip(data.get(at + 1))
                .ok_or(PacketError::MalformedExtension)?;
            let body = data
                .get(at + 2..at + 2 + usize::from(len))
                .ok_or(PacketError::MalformedExtension)?;
            if next_ext == EXT_SELECTIVE_ACK {
                if len == 0 {
                    return Err(PacketError::BadSelectiveAckLength(len));
                }
                if selective_ack.is_none() {
                    // Padded with zero bits (packets not received: the same meaning) to a
                    // whole number of 32-bit words, as ours are, and cut at 252 bytes.
                    let mut mask = body[..body.len().min(252)].to_vec();
                    mask.resize(mask.len().div_ceil(4) * 4, 0);
                    selective_ack = Some(Bytes::from(mask));
                }
            }
            next_ext = following;
            at += 2 + usize::from(len);
        }
        Ok(Packet {
            packet_type,
            connection_id: be16(2),
            timestamp_micros: be32(4),
            timestamp_difference_micros: be32(8),
            wnd_size: be32(12),
            seq_nr: be16(16),
            ack_nr: be16(18),
            selective_ack,
            payload: Bytes::copy_from_slice(data.get(at..).unwrap_or_default()),
        })
    }

    /// The encoded length.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.sack_to_send().map_or(0, |s| 2 + s.len()) + self.payload.len()
    }

    /// Appends the encoded packet to `out`. A selective ACK that is not a non-zero multiple
    /// of 4 bytes (at most 252) is padded with zero bytes or cut so the datagram is valid.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.push(self.packet_type.number() << 4 | VERSION);
        let sack = self.sack_to_send();
        out.push(if sack.is_some() { EXT_SELECTIVE_ACK } else { 0 });
        out.extend_from_slice(&self.connection_id.to_be_bytes());
        out.extend_from_slice(&self.timestamp_micros.to_be_bytes());
        out.extend_from_slice(&self.timestamp_difference_micros.to_be_bytes());
        out.extend_from_slice(&self.wnd_size.to_be_bytes());
        out.extend_from_slice(&self.seq_nr.to_be_bytes());
        out.extend_from_slice(&self.ack_nr.to_be_bytes());
        if let Some(mask) = sack {
            let padded = mask.len().div_ceil(4) * 4;
            out.push(0);
            // `padded` ≤ 252 by `sack_to_send`.
            out.push(u8::try_from(padded).unwrap_or(252));
            out.extend_from_slice(mask);
            out.resize(out.len() + padded - mask.len(), 0);
        }
        out.extend_from_slice(&self.payload);
    }

    /// The encoded packet as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// The bitmask as it goes on the wire: absent when empty, cut to 252 bytes (the largest
    /// multiple of 4 that fits the one-byte length).
    fn sack_to_send(&self) -> Option<&[u8]> {
        let mask = self.selective_ack.as_deref()?;
        if mask.is_empty() {
            return None;
        }
        Some(&mask[..mask.len().min(252)])
    }

    /// `true` when the selective ACK says `ack_nr + 2 + i` was received.
    pub fn sack_bit(&self, i: usize) -> bool {
        self.selective_ack
            .as_deref()
            .and_then(|m| m.get(i / 8))
            .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Packet {
        Packet {
            packet_type: PacketType::Data,
            connection_id: 0xBEEF,
            timestamp_micros: 0x0102_0304,
            timestamp_difference_micros: 0xA0B0_C0D0,
            wnd_size: 1 << 20,
            seq_nr: 65535,
            ack_nr: 17,
            selective_ack: Some(Bytes::from_static(&[0b101, 0, 0, 0x80])),
            payload: Bytes::from_static(b"hello"),
        }
    }

    #[test]
    fn round_trip_every_type() {
        for n in 0..5 {
            let mut p = sample();
            p.packet_type = PacketType::from_number(n).unwrap();
            let bytes = p.to_vec();
            assert_eq!(bytes.len(), p.encoded_len());
            assert_eq!(bytes[0], n << 4 | 1);
            assert_eq!(Packet::decode(&bytes).unwrap(), p);
        }
        let mut p = sample();
        p.selective_ack = None;
        p.payload = Bytes::new();
        let bytes = p.to_vec();
        assert_eq!(bytes.len(), HEADER_LEN);
        assert_eq!(Packet::decode(&bytes).unwrap(), p);
    }

    #[test]
    fn header_layout_is_big_endian() {
        let bytes = sample().to_vec();
        assert_eq!(&bytes[..4], &[0x01, 1, 0xBE, 0xEF]);
        assert_eq!(&bytes[16..20], &[0xFF, 0xFF, 0, 17]);
        assert_eq!(&bytes[20..22], &[0, 4]);
        assert!(sample().sack_bit(0));
        assert!(!sample().sack_bit(1));
        assert!(sample().sack_bit(2));
        assert!(sample().sack_bit(31));
        assert!(!sample().sack_bit(32));
    }

    #[test]
    fn a_selective_ack_of_any_length_decodes() {
        // libtorrent 2.0.8 sends bitmasks of whatever length its reorder buffer needs
        // (13 bytes seen on loopback), not the multiple of 4 BEP 29 asks for.
        // Our encoder pads to 4 bytes: libtorrent's datagram is built by hand.
        let mask = [
            0xc0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        let mut bytes = sample().to_vec()[..20].to_vec();
        bytes[1] = EXT_SELECTIVE_ACK;
        bytes.extend_from_slice(&[0, 13]);
        bytes.extend_from_slice(&mask);
        let decoded = Packet::decode(&bytes).unwrap();
        let mut padded = mask.to_vec();
        padded.extend_from_slice(&[0, 0, 0]);
        assert_eq!(decoded.selective_ack.as_deref(), Some(&padded[..]));
        assert!(decoded.payload.is_empty());
        assert!(!decoded.sack_bit(5) && decoded.sack_bit(6) && decoded.sack_bit(96));
        assert!(!decoded.sack_bit(97) && !decoded.sack_bit(104));
    }

    #[test]
    fn typed_errors() {
        let good = sample().to_vec();
        assert_eq!(Packet::decode(&good[..19]), Err(PacketError::TooShort(19)));
        let mut v = good.clone();
        v[0] = 0x02;
        assert_eq!(Packet::decode(&v), Err(PacketError::BadVersion(2)));
        v[0] = 0x51;
        assert_eq!(Packet::decode(&v), Err(PacketError::UnknownType(5)));
        // The extension's body runs past the end.
        assert_eq!(
            Packet::decode(&good[..23]),
            Err(PacketError::MalformedExtension)
        );
        let mut v = good.clone();
        v[21] = 0;
        assert_eq!(
            Packet::decode(&v),
            Err(PacketError::BadSelectiveAckLength(0))
        );
        // A header that names an extension but ends right there.
        let mut v = good[..20].to_vec();
        v[1] = 7;
        assert_eq!(Packet::decode(&v), Err(PacketError::MalformedExtension));
    }

    #[test]
    fn unknown_extensions_are_skipped() {
        let mut p = sample();
        p.selective_ack = None;
        let mut v = p.to_vec();
        // An extension 9 of three bytes, then a selective ACK of 4.
        v[1] = 9;
        let tail = v.split_off(20);
        v.extend_from_slice(&[1, 3, 0xAA, 0xBB, 0xCC, 0, 4, 1, 0, 0, 0]);
        v.extend_from_slice(&tail);
        let d = Packet::decode(&v).unwrap();
        assert_eq!(d.selective_ack.as_deref(), Some(&[1, 0, 0, 0][..]));
        assert_eq!(d.payload, p.payload);
    }

    #[test]
    fn odd_bitmasks_are_padded_on_encode() {
        let mut p = sample();
        p.selective_ack = Some(Bytes::from_static(&[0xFF, 1]));
        let d = Packet::decode(&p.to_vec()).unwrap();
        assert_eq!(d.selective_ack.as_deref(), Some(&[0xFF, 1, 0, 0][..]));
        p.selective_ack = Some(Bytes::from(vec![0xFF; 300]));
        let d = Packet::decode(&p.to_vec()).unwrap();
        assert_eq!(d.selective_ack.map(|m| m.len()), Some(252));
        p.selective_ack = Some(Bytes::new());
        assert_eq!(Packet::decode(&p.to_vec()).unwrap().selective_ack, None);
    }

    #[test]
    fn never_panics_on_short_or_random_input() {
        let mut rng = fastrand::Rng::with_seed(29);
        for _ in 0..20_000 {
            let len = rng.usize(0..64);
            let mut v: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            if len > 0 && rng.bool() {
                v[0] = (v[0] & 0x70) | 1;
            }
            if let Ok(p) = Packet::decode(&v) {
                assert_eq!(Packet::decode(&p.to_vec()).unwrap(), p);
            }
        }
    }
}
