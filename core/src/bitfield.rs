//! A set of piece indexes, in the BitTorrent `bitfield` wire layout.
//!
//! [`Bitfield`] holds one bit per piece. On the wire (BEP 3) the high bit of byte 0 is piece
//! 0, the next bit piece 1, and so on; the message carries exactly `ceil(len / 8)` bytes and
//! the spare bits at the end of the last byte must be zero. Internally the bits are kept in
//! big-endian `u64` words with that same order, so the wire bytes are the words' big-endian
//! bytes truncated, and scanning skips 64 pieces at a time.
//!
//! Piece indexes are `u32`, the width of a piece index on the wire. Indexes arrive from
//! peers, so an out-of-range index never panics: [`Bitfield::get`] answers `false` and
//! [`Bitfield::set`] / [`Bitfield::clear`] do nothing and answer `false`.
//!
//! Invariants: bits at or past `len` are always zero, and the cached count of ones always
//! equals the number of set bits.

use bytes::BufMut;

/// Why a received bitfield was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BitfieldError {
    /// The byte count does not match the number of pieces.
    #[error("bitfield is {got} bytes long, expected {expected} bytes for {pieces} pieces")]
    WrongLength {
        /// Bytes received.
        got: usize,
        /// Bytes required: `ceil(pieces / 8)`.
        expected: usize,
        /// Number of pieces in the torrent.
        pieces: u32,
    },
    /// Bits past the last piece were set.
    #[error(
        "bitfield has spare bits set in its last byte (byte {byte}, value {value:#04x}); \
         only {pieces} pieces exist"
    )]
    SpareBitsSet {
        /// Index of the offending (last) byte.
        byte: usize,
        /// Its value.
        value: u8,
        /// Number of pieces in the torrent.
        pieces: u32,
    },
}

/// A fixed-length set of piece indexes with a cached count of members.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Bitfield {
    /// Bit `i` is bit `63 - i % 64` of `words[i / 64]` (most significant first, as on the
    /// wire). Bits at or past `len` are zero.
    words: Vec<u64>,
    len: u32,
    ones: u32,
}

/// Mask of the bit for index `i` within its word.
const fn bit(i: u32) -> u64 {
    1u64 << (63 - (i % 64))
}

/// Mask of the valid bits of the last word for a bitfield of `len` bits (all ones when the
/// last word is full).
const fn last_word_mask(len: u32) -> u64 {
    match len % 64 {
        0 => u64::MAX,
        r => !(u64::MAX >> r),
    }
}

impl Bitfield {
    /// An empty set over `len` pieces (no piece present).
    pub fn new(len: u32) -> Self {
        Bitfield {
            words: vec![0; len.div_ceil(64) as usize],
            len,
            ones: 0,
        }
    }

    /// A full set over `len` pieces (every piece present), e.g. for a `have all` message.
    pub fn full(len: u32) -> Self {
        let mut words = vec![u64::MAX; len.div_ceil(64) as usize];
        if let Some(last) = words.last_mut() {
            *last &= last_word_mask(len);
        }
        Bitfield {
            words,
            len,
            ones: len,
        }
    }

    /// Parses the payload of a `bitfield` message for a torrent of `len` pieces.
    ///
    /// The payload must be exactly `ceil(len / 8)` bytes and its spare trailing bits must be
    /// zero (BEP 3); anything else is an error, never a panic.
    pub fn from_bytes(bytes: &[u8], len: u32) -> Result<Self, BitfieldError> {
        let expected = len.div_ceil(8) as usize;
        if bytes.len() != expected {
            return Err(BitfieldError::WrongLength {
                got: bytes.len(),
                expected,
                pieces: len,
            });
        }
        if len % 8 != 0 {
            if let Some(&last) = bytes.last() {
                let spare = 0xFFu8 >> (len % 8);
                if last & spare != 0 {
                    return Err(BitfieldError::SpareBitsSet {
                        byte: expected - 1,
                        value: last,
                        pieces: len,
                    });
                }
            }
        }
        let mut words = Vec::with_capacity(len.div_ceil(64) as usize);
        let mut ones = 0;
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            let w = u64::from_be_bytes(buf);
            ones += w.count_ones();
            words.push(w);
        }
        Ok(Bitfield { words, len, ones })
    }

    /// The wire form: `ceil(len / 8)` bytes, piece 0 in the high bit of byte 0.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.byte_len());
        self.write_bytes(&mut out);
        out
    }

    /// Appends the wire form to `out` (e.g. a `BytesMut` send buffer) without an
    /// intermediate allocation.
    pub fn write_bytes<B: BufMut>(&self, out: &mut B) {
        let mut remaining = self.byte_len();
        for w in &self.words {
            let bytes = w.to_be_bytes();
            let n = remaining.min(8);
            out.put_slice(&bytes[..n]);
            remaining -= n;
        }
    }

    /// Length of the wire form in bytes: `ceil(len / 8)`.
    pub fn byte_len(&self) -> usize {
        self.len.div_ceil(8) as usize
    }

    /// Number of pieces the set ranges over (not the number present; see
    /// [`count_ones`](Self::count_ones)).
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Number of pieces present. O(1): the count is cached.
    pub fn count_ones(&self) -> u32 {
        self.ones
    }

    /// Number of pieces absent.
    pub fn count_zeros(&self) -> u32 {
        self.len - self.ones
    }

    /// `true` when every piece is present (also for a zero-length set).
    pub fn is_full(&self) -> bool {
        self.ones == self.len
    }

    /// `true` when no piece is present (also for a zero-length set).
    pub fn is_empty(&self) -> bool {
        self.ones == 0
    }

    /// Whether piece `index` is present; `false` when `index >= len`.
    pub fn get(&self, index: u32) -> bool {
        if index >= self.len {
            return false;
        }
        self.words[(index / 64) as usize] & bit(index) != 0
    }

    /// Adds piece `index`. Returns `true` if it was absent before (the set changed), `false`
    /// if it was already present or `index >= len` (then nothing happens), so a caller can
    /// count a peer's `have` only once.
    pub fn set(&mut self, index: u32) -> bool {
        if index >= self.len {
            return false;
        }
        let w = &mut self.words[(index / 64) as usize];
        if *w & bit(index) != 0 {
            return false;
        }
        *w |= bit(index);
        self.ones += 1;
        true
    }

    /// Removes piece `index`. Returns `true` if it was present before, `false` if it was
    /// absent or `index >= len` (then nothing happens).
    pub fn clear(&mut self, index: u32) -> bool {
        if index >= self.len {
            return false;
        }
        let w = &mut self.words[(index / 64) as usize];
        if *w & bit(index) == 0 {
            return false;
        }
        *w &= !bit(index);
        self.ones -= 1;
        true
    }

    /// Whether some piece is present in both `self` and `other` (over the shorter length).
    pub fn intersects(&self, other: &Bitfield) -> bool {
        self.words.iter().zip(&other.words).any(|(a, b)| a & b != 0)
    }

    /// Indexes of the present pieces, ascending.
    pub fn ones(&self) -> Indexes<'_> {
        Indexes::new(&self.words, self.len, false)
    }

    /// Indexes of the absent pieces, ascending.
    pub fn zeros(&self) -> Indexes<'_> {
        Indexes::new(&self.words, self.len, true)
    }
}

/// Iterator over the present (or absent) piece indexes of a [`Bitfield`], ascending.
///
/// Built by [`Bitfield::ones`] and [`Bitfield::zeros`]; skips 64 indexes per empty word.
#[derive(Clone, Debug)]
pub struct Indexes<'a> {
    words: &'a [u64],
    len: u32,
    invert: bool,
    /// Index of the word loaded into `current`.
    word: usize,
    /// Remaining wanted bits of `words[word]` (already inverted and masked).
    current: u64,
}

impl<'a> Indexes<'a> {
    fn new(words: &'a [u64], len: u32, invert: bool) -> Self {
        let mut it = Indexes {
            words,
            len,
            invert,
            word: 0,
            current: 0,
        };
        it.current = it.load(0);
        it
    }

    /// The wanted bits of word `i`: inverted for `zeros`, never past `len`.
    fn load(&self, i: usize) -> u64 {
        let Some(&w) = self.words.get(i) else {
            return 0;
        };
        let mut w = if self.invert { !w } else { w };
        if i + 1 == self.words.len() {
            w &= last_word_mask(self.len);
        }
        w
    }
}

impl Iterator for Indexes<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        while self.current == 0 {
            self.word += 1;
            if self.word >= self.words.len() {
                return None;
            }
            self.current = self.load(self.word);
        }
        let lead = self.current.leading_zeros();
        self.current &= !(1u64 << (63 - lead));
        // `word` < words.len() = ceil(len / 64) and len is a u32, so this fits.
        Some(self.word as u32 * 64 + lead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_and_full() {
        let b = Bitfield::new(70);
        assert_eq!(b.len(), 70);
        assert_eq!(b.count_ones(), 0);
        assert!(b.is_empty());
        assert!(!b.is_full());
        let f = Bitfield::full(70);
        assert_eq!(f.count_ones(), 70);
        assert!(f.is_full());
        assert!(f.get(69));
        assert!(!f.get(70));
        // Spare bits stay zero on the wire.
        let bytes = f.to_bytes();
        assert_eq!(bytes.len(), 9);
        assert_eq!(bytes[8], 0b1111_1100, "pieces 64..70 in the high six bits");
        assert!(bytes[..8].iter().all(|&b| b == 0xFF));
        assert_eq!(Bitfield::from_bytes(&bytes, 70).unwrap(), f);
    }

    #[test]
    fn zero_length() {
        let b = Bitfield::new(0);
        assert!(b.is_empty() && b.is_full());
        assert!(b.to_bytes().is_empty());
        assert_eq!(Bitfield::from_bytes(&[], 0).unwrap(), b);
        assert_eq!(Bitfield::full(0), b);
        assert_eq!(b.ones().count(), 0);
        assert_eq!(b.zeros().count(), 0);
    }

    #[test]
    fn wire_layout_high_bit_first() {
        let mut b = Bitfield::new(12);
        assert!(b.set(0));
        assert!(b.set(9));
        assert!(b.set(11));
        assert_eq!(b.to_bytes(), vec![0b1000_0000, 0b0101_0000]);
        let parsed = Bitfield::from_bytes(&[0b0100_0001, 0b1000_0000], 9).unwrap();
        assert_eq!(parsed.ones().collect::<Vec<_>>(), vec![1, 7, 8]);
        assert_eq!(parsed.count_ones(), 3);
    }

    #[test]
    fn round_trip_across_word_boundaries() {
        let mut rng = fastrand::Rng::with_seed(7);
        for len in [1u32, 7, 8, 9, 63, 64, 65, 127, 128, 129, 1000] {
            let mut b = Bitfield::new(len);
            let mut expect = Vec::new();
            for i in 0..len {
                if rng.bool() {
                    b.set(i);
                    expect.push(i);
                }
            }
            assert_eq!(b.count_ones() as usize, expect.len());
            assert_eq!(b.ones().collect::<Vec<_>>(), expect);
            let zeros: Vec<u32> = (0..len).filter(|i| !expect.contains(i)).collect();
            assert_eq!(b.zeros().collect::<Vec<_>>(), zeros);
            let bytes = b.to_bytes();
            assert_eq!(bytes.len(), len.div_ceil(8) as usize);
            let mut via_bufmut = bytes::BytesMut::new();
            b.write_bytes(&mut via_bufmut);
            assert_eq!(&via_bufmut[..], &bytes[..]);
            assert_eq!(Bitfield::from_bytes(&bytes, len).unwrap(), b);
        }
    }

    #[test]
    fn rejects_wrong_length() {
        assert_eq!(
            Bitfield::from_bytes(&[0, 0], 17),
            Err(BitfieldError::WrongLength {
                got: 2,
                expected: 3,
                pieces: 17
            })
        );
        assert!(matches!(
            Bitfield::from_bytes(&[0, 0, 0, 0], 17),
            Err(BitfieldError::WrongLength { got: 4, .. })
        ));
        assert!(Bitfield::from_bytes(&[0], 0).is_err());
    }

    #[test]
    fn rejects_spare_bits() {
        // 10 pieces: the last byte may only use its two high bits.
        assert!(Bitfield::from_bytes(&[0xFF, 0b1100_0000], 10).is_ok());
        let err = Bitfield::from_bytes(&[0xFF, 0b1110_0000], 10).unwrap_err();
        assert_eq!(
            err,
            BitfieldError::SpareBitsSet {
                byte: 1,
                value: 0b1110_0000,
                pieces: 10
            }
        );
        assert!(err.to_string().contains("byte 1"));
        assert!(Bitfield::from_bytes(&[0b0000_0001], 7).is_err());
    }

    #[test]
    fn out_of_range_never_panics() {
        let mut b = Bitfield::new(10);
        assert!(!b.get(10));
        assert!(!b.get(u32::MAX));
        assert!(!b.set(10));
        assert!(!b.set(u32::MAX));
        assert!(!b.clear(u32::MAX));
        assert_eq!(b.count_ones(), 0);
        assert_eq!(b.to_bytes(), vec![0, 0]);
    }

    #[test]
    fn set_and_clear_report_changes_and_keep_count() {
        let mut b = Bitfield::new(100);
        assert!(b.set(64));
        assert!(!b.set(64), "second set of the same index is not a change");
        assert_eq!(b.count_ones(), 1);
        assert!(b.get(64));
        assert!(!b.get(63) && !b.get(65));
        assert!(b.clear(64));
        assert!(!b.clear(64));
        assert_eq!(b.count_ones(), 0);
        for i in 0..100 {
            b.set(i);
        }
        assert!(b.is_full());
        assert_eq!(b.count_zeros(), 0);
        assert_eq!(b, Bitfield::full(100));
    }

    #[test]
    fn intersects() {
        let mut a = Bitfield::new(200);
        let mut b = Bitfield::new(200);
        a.set(3);
        b.set(150);
        assert!(!a.intersects(&b));
        b.set(3);
        assert!(a.intersects(&b));
    }
}
