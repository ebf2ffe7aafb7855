//! The `utp_packet` target: the uTP packet codec (`unchoke_core::utp::packet`) on raw bytes.
//!
//! Invariants:
//! 1. Decoding never panics.
//! 2. What decodes re-encodes to a packet that decodes equal, no longer than the input (only
//!    unknown or repeated extensions are dropped) but for up to 3 bytes of padding of a
//!    selective ACK that was not a multiple of 4 bytes (libtorrent sends those), with the
//!    same header bytes but for the extension byte, and re-encoding that is a fixed point.
//! 3. Inputs shorter than the header, or with a version other than 1, are refused.

use unchoke_core::utp::packet::HEADER_LEN;
use unchoke_core::utp::{Packet, PacketError};

/// Runs every `utp_packet` invariant on `data`. Panics if one fails.
pub fn utp_packet(data: &[u8]) {
    let decoded = Packet::decode(data);
    if data.len() < HEADER_LEN {
        assert_eq!(decoded, Err(PacketError::TooShort(data.len())));
        return;
    }
    if data[0] & 0x0f != 1 {
        assert!(matches!(decoded, Err(PacketError::BadVersion(_))));
        return;
    }
    let Ok(p) = decoded else {
        return;
    };
    let again = p.to_vec();
    assert_eq!(again.len(), p.encoded_len());
    assert!(
        again.len() <= data.len() + 3,
        "{} bytes re-encoded from {}",
        again.len(),
        data.len()
    );
    assert_eq!(again[0], data[0]);
    assert_eq!(again[2..HEADER_LEN], data[2..HEADER_LEN]);
    let q = Packet::decode(&again).expect("a re-encoded packet decodes");
    assert_eq!(q, p);
    assert_eq!(q.to_vec(), again, "re-encoding is a fixed point");
    if let Some(mask) = &p.selective_ack {
        assert!(!mask.is_empty() && mask.len() % 4 == 0 && mask.len() <= 252);
    }
    assert!(
        data.ends_with(&p.payload),
        "the payload is the datagram's tail"
    );
}
