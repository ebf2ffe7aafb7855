//! The 20-byte peer id each side sends in its handshake.

use std::fmt;

/// The client prefix of peer ids we generate (Azureus style: `-` + two letters naming the
/// client + four version characters + `-`).
const CLIENT_PREFIX: &[u8; 8] = b"-UC0001-";

/// A peer id: 20 arbitrary bytes chosen by a client, by convention starting with an
/// Azureus-style client tag such as `-TR2940-`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub [u8; 20]);

impl PeerId {
    /// A fresh peer id for us: `-UC0001-` followed by 12 random ASCII letters and digits.
    ///
    /// Printable characters keep the id readable in logs and safe in tracker query strings.
    pub fn generate(rng: &mut fastrand::Rng) -> PeerId {
        let mut id = [0u8; 20];
        id[..CLIENT_PREFIX.len()].copy_from_slice(CLIENT_PREFIX);
        for b in &mut id[CLIENT_PREFIX.len()..] {
            // `alphanumeric` yields only ASCII characters, so the cast keeps the whole value.
            *b = rng.alphanumeric() as u8;
        }
        PeerId(id)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The client the id names by the Azureus-style convention (`-TR4050-…` →
    /// "Transmission 4050"), for status displays: a known tag gets its client's name, an
    /// unknown well-formed tag its two letters; `None` when the id follows no convention.
    /// Only a hint: any client may send any id.
    pub fn client_name(&self) -> Option<String> {
        let id = &self.0;
        let tag = [id[1], id[2]];
        let version = &id[3..7];
        let well_formed = id[0] == b'-'
            && id[7] == b'-'
            && tag.iter().all(u8::is_ascii_alphanumeric)
            && version.iter().all(u8::is_ascii_alphanumeric);
        if !well_formed {
            return None;
        }
        let name = match &tag {
            b"LT" => "libtorrent",
            b"lt" => "libTorrent (rTorrent)",
            b"TR" => "Transmission",
            b"qB" => "qBittorrent",
            b"DE" => "Deluge",
            b"UT" => "\u{b5}Torrent",
            b"UM" => "\u{b5}Torrent Mac",
            b"BT" => "BitTorrent",
            b"AZ" => "Vuze",
            b"BI" => "BiglyBT",
            b"UC" => "unchoke",
            b"rq" | b"RQ" => "rqbit",
            b"KT" => "KTorrent",
            b"FD" => "Free Download Manager",
            b"WW" => "WebTorrent",
            // Both checked ASCII alphanumeric above.
            _ => {
                return Some(format!(
                    "{}{} {}",
                    tag[0] as char,
                    tag[1] as char,
                    ascii(version)
                ));
            }
        };
        Some(format!("{name} {}", ascii(version)))
    }
}

/// ASCII bytes (checked by the caller) as a string.
fn ascii(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

impl fmt::Display for PeerId {
    /// The id as text, with non-printable bytes escaped (`-TR2940-\x00\xff…`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId(\"{}\")", self.0.escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_follow_the_azureus_convention() {
        let name = |id: &[u8; 20]| PeerId(*id).client_name();
        assert_eq!(
            name(b"-TR4050-abcdefghijkl").as_deref(),
            Some("Transmission 4050")
        );
        assert_eq!(
            name(b"-LT2090-abcdefghijkl").as_deref(),
            Some("libtorrent 2090")
        );
        assert_eq!(name(b"-XY1234-abcdefghijkl").as_deref(), Some("XY 1234"));
        assert_eq!(name(b"M7-2-2--abcdefghijkl"), None);
        assert_eq!(name(b"-T\xff4050-abcdefghijkl"), None);
    }

    #[test]
    fn generated_ids_have_prefix_and_printable_tail() {
        let mut rng = fastrand::Rng::with_seed(7);
        let a = PeerId::generate(&mut rng);
        let b = PeerId::generate(&mut rng);
        assert_eq!(&a.0[..8], b"-UC0001-");
        assert!(a.0[8..].iter().all(|b| b.is_ascii_alphanumeric()));
        // Two draws from one rng differ: the tail really is random, not a constant.
        assert_ne!(a, b);
        // Same seed, same id: generation is deterministic given the rng.
        assert_eq!(a, PeerId::generate(&mut fastrand::Rng::with_seed(7)));
    }

    #[test]
    fn debug_is_readable_and_escapes_binary() {
        let id = PeerId(*b"-UC0001-abcdefghijkl");
        assert_eq!(format!("{id:?}"), "PeerId(\"-UC0001-abcdefghijkl\")");
        let mut raw = *b"-TR2940-abcdefghijkl";
        raw[19] = 0xff;
        raw[18] = 0;
        assert_eq!(format!("{}", PeerId(raw)), "-TR2940-abcdefghij\\x00\\xff");
    }
}
