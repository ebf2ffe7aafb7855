//! The 20-byte SHA-1 info-hash that names a v1 torrent, with its hex and base32 forms, and
//! the 32-byte SHA-256 info-hash that names a v2 (BEP 52) torrent.

use std::fmt;

/// A v1 info-hash: SHA-1 of the bencoded `info` dictionary exactly as it appears in the
/// `.torrent` file.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InfoHash(pub [u8; 20]);

/// Why a textual info-hash was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InfoHashParseError {
    /// Neither 40 hex digits nor 32 base32 characters.
    #[error("info-hash must be 40 hex digits or 32 base32 characters, got {0} characters")]
    BadLength(usize),
    /// A character outside the alphabet, at the given position.
    #[error("info-hash has an invalid character {ch:?} at position {position}")]
    BadCharacter {
        /// The character found.
        ch: char,
        /// Its position in the text (0-based, in characters).
        position: usize,
    },
}

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

impl InfoHash {
    /// SHA-1 of `bytes` (the raw bencoded info dictionary).
    pub fn of_info_bytes(bytes: &[u8]) -> Self {
        use sha1::Digest;
        InfoHash(sha1::Sha1::digest(bytes).into())
    }

    /// Lower-case hex, 40 characters.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(40);
        for b in self.0 {
            s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            s.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
        }
        s
    }

    /// Upper-case RFC 4648 base32 without padding, 32 characters (as older magnet links use).
    pub fn to_base32(&self) -> String {
        let mut s = String::with_capacity(32);
        // 160 bits = 32 groups of 5 bits exactly.
        let mut acc: u64 = 0;
        let mut bits = 0;
        for b in self.0 {
            acc = (acc << 8) | u64::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                s.push(BASE32_ALPHABET[((acc >> bits) & 31) as usize] as char);
            }
        }
        s
    }

    /// Parses 40 hex digits (either case) or 32 base32 characters (either case).
    pub fn parse(text: &str) -> Result<Self, InfoHashParseError> {
        let chars: Vec<char> = text.chars().collect();
        match chars.len() {
            40 => {
                let mut out = [0u8; 20];
                for (i, pair) in chars.chunks(2).enumerate() {
                    let hi = hex_digit(pair[0], 2 * i)?;
                    let lo = hex_digit(pair[1], 2 * i + 1)?;
                    out[i] = (hi << 4) | lo;
                }
                Ok(InfoHash(out))
            }
            32 => {
                let mut out = [0u8; 20];
                let mut acc: u64 = 0;
                let mut bits = 0;
                let mut n = 0;
                for (position, &ch) in chars.iter().enumerate() {
                    let up = ch.to_ascii_uppercase();
                    let v = BASE32_ALPHABET
                        .iter()
                        .position(|&a| char::from(a) == up)
                        .ok_or(InfoHashParseError::BadCharacter { ch, position })?;
                    acc = (acc << 5) | v as u64;
                    bits += 5;
                    if bits >= 8 {
                        bits -= 8;
                        out[n] = (acc >> bits) as u8;
                        n += 1;
                    }
                }
                Ok(InfoHash(out))
            }
            n => Err(InfoHashParseError::BadLength(n)),
        }
    }
}

/// A v2 info-hash (BEP 52): SHA-256 of the bencoded `info` dictionary exactly as it appears
/// in the `.torrent` file. Handshakes, trackers and the DHT use its first 20 bytes
/// ([`InfoHashV2::truncated`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InfoHashV2(pub [u8; 32]);

impl InfoHashV2 {
    /// SHA-256 of `bytes` (the raw bencoded info dictionary).
    pub fn of_info_bytes(bytes: &[u8]) -> Self {
        use sha2::Digest;
        InfoHashV2(sha2::Sha256::digest(bytes).into())
    }

    /// The first 20 bytes: the form a v2 torrent goes by on the wire (handshake, trackers,
    /// DHT), as BEP 52 says.
    pub fn truncated(&self) -> InfoHash {
        let mut out = [0u8; 20];
        out.copy_from_slice(&self.0[..20]);
        InfoHash(out)
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            s.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
        }
        s
    }

    /// Parses 64 hex digits (either case).
    pub fn parse(text: &str) -> Result<Self, InfoHashParseError> {
        let chars: Vec<char> = text.chars().collect();
        if chars.len() != 64 {
            return Err(InfoHashParseError::BadLength(chars.len()));
        }
        let mut out = [0u8; 32];
        for (i, pair) in chars.chunks(2).enumerate() {
            let hi = hex_digit(pair[0], 2 * i)?;
            let lo = hex_digit(pair[1], 2 * i + 1)?;
            out[i] = (hi << 4) | lo;
        }
        Ok(InfoHashV2(out))
    }
}

impl fmt::Display for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHashV2({})", self.to_hex())
    }
}

fn hex_digit(ch: char, position: usize) -> Result<u8, InfoHashParseError> {
    ch.to_digit(16)
        .map(|d| d as u8)
        .ok_or(InfoHashParseError::BadCharacter { ch, position })
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_of_known_input() {
        // SHA-1("abc"), the FIPS 180 test vector.
        let h = InfoHash::of_info_bytes(b"abc");
        assert_eq!(h.to_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn sha256_of_known_input_and_its_truncation() {
        // SHA-256("abc"), the FIPS 180 test vector.
        let h = InfoHashV2::of_info_bytes(b"abc");
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(h.to_hex(), hex);
        assert_eq!(h.truncated().to_hex(), hex[..40]);
        assert_eq!(InfoHashV2::parse(&hex.to_uppercase()), Ok(h));
        assert_eq!(
            InfoHashV2::parse(&hex[..40]),
            Err(InfoHashParseError::BadLength(40))
        );
        assert!(InfoHashV2::parse(&format!("{}x", &hex[..63])).is_err());
    }

    #[test]
    fn hex_and_base32_round_trip() {
        let h = InfoHash(
            *b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\xfa\xfb\xfc\xfd\xfe\xff\x10\x20\x30\x40",
        );
        assert_eq!(InfoHash::parse(&h.to_hex()), Ok(h));
        assert_eq!(InfoHash::parse(&h.to_hex().to_uppercase()), Ok(h));
        assert_eq!(h.to_base32().len(), 32);
        assert_eq!(InfoHash::parse(&h.to_base32()), Ok(h));
        assert_eq!(InfoHash::parse(&h.to_base32().to_lowercase()), Ok(h));
    }

    #[test]
    fn base32_known_value() {
        // RFC 4648: base32("foobar") = "MZXW6YTBOI======"; our hash is 20 bytes, so check
        // a 20-byte value whose encoding is easy to derive: all zero bytes -> all 'A'.
        assert_eq!(InfoHash([0; 20]).to_base32(), "A".repeat(32));
        assert_eq!(InfoHash([0xff; 20]).to_base32(), "7".repeat(32));
    }

    #[test]
    fn bad_text_is_refused() {
        assert_eq!(
            InfoHash::parse("abc"),
            Err(InfoHashParseError::BadLength(3))
        );
        let bad = format!("{}g", "0".repeat(39));
        assert_eq!(
            InfoHash::parse(&bad),
            Err(InfoHashParseError::BadCharacter {
                ch: 'g',
                position: 39
            })
        );
        let bad32 = format!("{}1", "A".repeat(31));
        assert!(matches!(
            InfoHash::parse(&bad32),
            Err(InfoHashParseError::BadCharacter {
                ch: '1',
                position: 31
            })
        ));
    }
}
