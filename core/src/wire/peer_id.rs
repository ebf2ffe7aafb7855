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
