//! Node ids: 160-bit identifiers in the same space as info-hashes, compared by XOR distance.

use std::fmt;

use crate::info_hash::InfoHash;

/// A DHT node id (or any 160-bit target: an info-hash, a random id in a bucket's range).
///
/// Ordering of ids themselves is lexicographic; closeness is [`NodeId::distance`], whose
/// result is itself a `NodeId` compared as a big-endian unsigned integer (the derived `Ord`
/// on the byte array is exactly that).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; 20]);

impl NodeId {
    /// The id length in bytes.
    pub const LEN: usize = 20;

    /// A uniformly random id from the injected RNG.
    pub fn random(rng: &mut fastrand::Rng) -> Self {
        let mut id = [0u8; 20];
        rng.fill(&mut id);
        NodeId(id)
    }

    /// The id in `bytes`, if it is exactly 20 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 20]>::try_from(bytes).ok().map(NodeId)
    }

    /// The XOR distance to `other`; smaller (as an unsigned big-endian number) is closer.
    pub fn distance(&self, other: &NodeId) -> NodeId {
        let mut d = [0u8; 20];
        for (i, b) in d.iter_mut().enumerate() {
            *b = self.0[i] ^ other.0[i];
        }
        NodeId(d)
    }

    /// How many leading bits are zero (160 for the zero id). Applied to a distance, this is
    /// the length of the prefix two ids share, which picks the routing-table bucket.
    pub fn leading_zeros(&self) -> u32 {
        let mut n = 0;
        for b in self.0 {
            if b == 0 {
                n += 8;
            } else {
                return n + b.leading_zeros();
            }
        }
        n
    }

    /// Bit `i` counted from the most significant (bit 0 is the top bit of byte 0).
    pub fn bit(&self, i: u32) -> bool {
        let byte = (i / 8) as usize;
        byte < 20 && self.0[byte] & (0x80 >> (i % 8)) != 0
    }

    /// A random id that shares its first `prefix_len` bits with `self` and then, when
    /// `flip_next` is set, differs in the next bit: exactly the ids whose distance to `self`
    /// has `prefix_len` leading zeros. Without `flip_next`, any id sharing the prefix.
    pub fn random_with_prefix(
        &self,
        prefix_len: u32,
        flip_next: bool,
        rng: &mut fastrand::Rng,
    ) -> NodeId {
        let mut out = NodeId::random(rng);
        for i in 0..prefix_len.min(160) {
            out.set_bit(i, self.bit(i));
        }
        if flip_next && prefix_len < 160 {
            out.set_bit(prefix_len, !self.bit(prefix_len));
        }
        out
    }

    fn set_bit(&mut self, i: u32, value: bool) {
        let byte = (i / 8) as usize;
        let mask = 0x80u8 >> (i % 8);
        if let Some(b) = self.0.get_mut(byte) {
            if value {
                *b |= mask;
            } else {
                *b &= !mask;
            }
        }
    }
}

impl From<InfoHash> for NodeId {
    fn from(h: InfoHash) -> Self {
        NodeId(h.0)
    }
}

impl From<NodeId> for InfoHash {
    fn from(id: NodeId) -> Self {
        InfoHash(id.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight hex digits tell ids apart in logs; the full forty only add noise.
        write!(f, "NodeId(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
