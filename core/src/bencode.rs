//! Bencode (BEP 3): a zero-copy decoder over `&[u8]` and an encoder.
//!
//! Decoded byte strings borrow the input; every list and dictionary remembers the exact
//! input bytes it was decoded from ([`List::raw`], [`Dict::raw`]) so that, for example, a
//! torrent's info-hash is computed over the `info` dictionary *as it appears in the file*,
//! never over a re-encoding.
//!
//! Limits, checked before any allocation:
//! - nesting depth ([`DecodeOptions::max_depth`], default 256);
//! - integers fit an `i64`, with no leading zeros, no `-0`, no empty digits;
//! - a string's declared length must fit in the remaining input.
//!
//! Memory: every decoded value consumes at least two input bytes, so the decoded tree is at
//! most `size_of::<Value>() / 2` times the input's size (about 24×), whatever the input.
//!
//! Modes: [`DecodeOptions::strict`] rejects non-canonical input (dictionary keys unsorted or
//! repeated); the default lenient mode accepts them, as real-world `.torrent` files need.

use std::fmt;

/// Default limit on how deeply lists and dictionaries may nest.
pub const DEFAULT_MAX_DEPTH: usize = 256;

/// A decoded bencode value. Byte strings and raw spans borrow the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// An integer (`i42e`).
    Int(i64),
    /// A byte string (`4:spam`); not necessarily UTF-8.
    Bytes(&'a [u8]),
    /// A list (`l…e`).
    List(List<'a>),
    /// A dictionary (`d…e`).
    Dict(Dict<'a>),
}

/// A bencode list and, when decoded, the input bytes it came from.
#[derive(Clone, Debug, Default)]
pub struct List<'a> {
    items: Vec<Value<'a>>,
    raw: Option<&'a [u8]>,
}

/// A bencode dictionary in input order and, when decoded, the input bytes it came from.
///
/// Keys keep their input order (and, in lenient mode, any duplicates); [`Dict::get`]
/// returns the first entry with a key. The encoder writes keys sorted.
#[derive(Clone, Debug, Default)]
pub struct Dict<'a> {
    entries: Vec<(&'a [u8], Value<'a>)>,
    raw: Option<&'a [u8]>,
}

impl<'a> List<'a> {
    /// A list built in code (it has no raw input span).
    pub fn new(items: Vec<Value<'a>>) -> Self {
        List { items, raw: None }
    }

    /// The items in order.
    pub fn items(&self) -> &[Value<'a>] {
        &self.items
    }

    /// The exact input bytes (`l…e`) this list was decoded from; `None` for a list built in code.
    pub fn raw(&self) -> Option<&'a [u8]> {
        self.raw
    }
}

impl PartialEq for List<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items
    }
}
impl Eq for List<'_> {}

impl<'a> Dict<'a> {
    /// A dictionary built in code (it has no raw input span). Keys need not be sorted:
    /// the encoder sorts them.
    pub fn new(entries: Vec<(&'a [u8], Value<'a>)>) -> Self {
        Dict { entries, raw: None }
    }

    /// The entries in input order.
    pub fn entries(&self) -> &[(&'a [u8], Value<'a>)] {
        &self.entries
    }

    /// The value of the first entry whose key is `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The exact input bytes (`d…e`) this dictionary was decoded from; `None` for one built
    /// in code.
    pub fn raw(&self) -> Option<&'a [u8]> {
        self.raw
    }

    /// Adds an entry (used when building a dictionary in code).
    pub fn insert(&mut self, key: &'a [u8], value: Value<'a>) {
        self.entries.push((key, value));
    }
}

impl PartialEq for Dict<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}
impl Eq for Dict<'_> {}

impl<'a> Value<'a> {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if this is a byte string holding valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The list, if this is one.
    pub fn as_list(&self) -> Option<&List<'a>> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// A short name of this value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "integer",
            Value::Bytes(_) => "byte string",
            Value::List(_) => "list",
            Value::Dict(_) => "dictionary",
        }
    }
}

/// What went wrong while decoding, without the position (see [`DecodeError`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The input ended while more was expected.
    UnexpectedEnd {
        /// What the decoder was looking for.
        expected: &'static str,
    },
    /// A byte that cannot start or continue the current item.
    UnexpectedByte {
        /// The byte found.
        found: u8,
        /// What the decoder was looking for.
        expected: &'static str,
    },
    /// An integer with a leading zero (`i03e`, `03:abc`).
    LeadingZero,
    /// The integer `-0`, which bencode forbids.
    NegativeZero,
    /// An integer or string length outside the allowed range.
    IntegerOverflow,
    /// A string whose declared length runs past the end of the input.
    StringTooLong {
        /// The declared length.
        declared: u64,
        /// How many bytes of input were left.
        remaining: usize,
    },
    /// Lists and dictionaries nested deeper than the limit.
    TooDeep {
        /// The configured limit.
        limit: usize,
    },
    /// A dictionary key that is not a byte string.
    KeyNotString,
    /// Strict mode: a dictionary key not greater than the one before it.
    UnsortedKey,
    /// Strict mode: a dictionary key that appears twice.
    DuplicateKey,
    /// Bytes left over after the top-level value.
    TrailingData,
}

/// A decoding failure and the byte offset in the input where it was detected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bencode: {kind} at byte {offset}")]
pub struct DecodeError {
    /// Offset of the offending byte from the start of the input.
    pub offset: usize,
    /// What was wrong there.
    pub kind: DecodeErrorKind,
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeErrorKind::UnexpectedEnd { expected } => {
                write!(f, "input ended, expected {expected}")
            }
            DecodeErrorKind::UnexpectedByte { found, expected } => {
                write!(f, "unexpected byte 0x{found:02x}")?;
                if found.is_ascii_graphic() {
                    write!(f, " ('{}')", *found as char)?;
                }
                write!(f, ", expected {expected}")
            }
            DecodeErrorKind::LeadingZero => f.write_str("number with a leading zero"),
            DecodeErrorKind::NegativeZero => f.write_str("integer -0"),
            DecodeErrorKind::IntegerOverflow => f.write_str("number out of range"),
            DecodeErrorKind::StringTooLong {
                declared,
                remaining,
            } => write!(
                f,
                "string declares {declared} bytes but only {remaining} remain"
            ),
            DecodeErrorKind::TooDeep { limit } => {
                write!(f, "nesting deeper than {limit} levels")
            }
            DecodeErrorKind::KeyNotString => f.write_str("dictionary key is not a byte string"),
            DecodeErrorKind::UnsortedKey => f.write_str("dictionary keys not in sorted order"),
            DecodeErrorKind::DuplicateKey => f.write_str("duplicate dictionary key"),
            DecodeErrorKind::TrailingData => f.write_str("data after the end of the value"),
        }
    }
}

/// How strictly to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Maximum nesting of lists and dictionaries.
    pub max_depth: usize,
    /// Reject dictionaries whose keys are unsorted or repeated.
    pub strict: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_depth: DEFAULT_MAX_DEPTH,
            strict: false,
        }
    }
}

impl DecodeOptions {
    /// Canonical-only decoding: keys must be strictly increasing.
    pub fn strict() -> Self {
        DecodeOptions {
            strict: true,
            ..Self::default()
        }
    }
}

/// Decodes exactly one value spanning all of `input` (lenient mode, default depth limit).
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    decode_with(input, DecodeOptions::default())
}

/// Decodes exactly one value spanning all of `input`, in strict (canonical) mode.
pub fn decode_strict(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    decode_with(input, DecodeOptions::strict())
}

/// Decodes exactly one value spanning all of `input` with the given options.
pub fn decode_with(input: &[u8], options: DecodeOptions) -> Result<Value<'_>, DecodeError> {
    let (value, used) = decode_prefix(input, options)?;
    if used != input.len() {
        return Err(DecodeError {
            offset: used,
            kind: DecodeErrorKind::TrailingData,
        });
    }
    Ok(value)
}

/// Decodes one value from the start of `input` and returns it with the number of bytes it
/// used; anything after it is left alone (useful for framed protocols such as BEP 9, where
/// binary data follows a bencoded header).
pub fn decode_prefix(
    input: &[u8],
    options: DecodeOptions,
) -> Result<(Value<'_>, usize), DecodeError> {
    let mut decoder = Decoder {
        input,
        pos: 0,
        options,
    };
    let value = decoder.value(0)?;
    Ok((value, decoder.pos))
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    options: DecodeOptions,
}

impl<'a> Decoder<'a> {
    fn err(&self, offset: usize, kind: DecodeErrorKind) -> DecodeError {
        DecodeError { offset, kind }
    }

    fn peek(&self, expected: &'static str) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.err(self.pos, DecodeErrorKind::UnexpectedEnd { expected }))
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, DecodeError> {
        match self.peek("a value")? {
            b'i' => {
                self.pos += 1;
                let n = self.integer(b'e')?;
                Ok(Value::Int(n))
            }
            b'0'..=b'9' => Ok(Value::Bytes(self.bytes()?)),
            b'l' => {
                let start = self.pos;
                self.enter(depth)?;
                let mut items = Vec::new();
                while self.peek("a list item or 'e'")? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(List {
                    items,
                    raw: Some(&self.input[start..self.pos]),
                }))
            }
            b'd' => {
                let start = self.pos;
                self.enter(depth)?;
                let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
                loop {
                    let b = self.peek("a dictionary key or 'e'")?;
                    if b == b'e' {
                        break;
                    }
                    if !b.is_ascii_digit() {
                        return Err(self.err(self.pos, DecodeErrorKind::KeyNotString));
                    }
                    let key_pos = self.pos;
                    let key = self.bytes()?;
                    if self.options.strict {
                        if let Some((prev, _)) = entries.last() {
                            if key == *prev {
                                return Err(self.err(key_pos, DecodeErrorKind::DuplicateKey));
                            }
                            if key < *prev {
                                return Err(self.err(key_pos, DecodeErrorKind::UnsortedKey));
                            }
                        }
                    }
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                }
                self.pos += 1;
                Ok(Value::Dict(Dict {
                    entries,
                    raw: Some(&self.input[start..self.pos]),
                }))
            }
            found => Err(self.err(
                self.pos,
                DecodeErrorKind::UnexpectedByte {
                    found,
                    expected: "'i', 'l', 'd' or a digit",
                },
            )),
        }
    }

    /// Consumes the `l`/`d` opening a container at `depth`, enforcing the depth limit.
    fn enter(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth >= self.options.max_depth {
            return Err(self.err(
                self.pos,
                DecodeErrorKind::TooDeep {
                    limit: self.options.max_depth,
                },
            ));
        }
        self.pos += 1;
        Ok(())
    }

    /// Parses a decimal integer ending at `terminator` (which is consumed).
    fn integer(&mut self, terminator: u8) -> Result<i64, DecodeError> {
        let start = self.pos;
        let negative = self.peek("a digit or '-'")? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        let mut magnitude: u64 = 0;
        loop {
            let b = self.peek(if terminator == b'e' {
                "a digit or 'e'"
            } else {
                "a digit or ':'"
            })?;
            if b == terminator {
                break;
            }
            if !b.is_ascii_digit() {
                return Err(self.err(
                    self.pos,
                    DecodeErrorKind::UnexpectedByte {
                        found: b,
                        expected: if terminator == b'e' {
                            "a digit or 'e'"
                        } else {
                            "a digit or ':'"
                        },
                    },
                ));
            }
            if self.pos > digits_start && self.input[digits_start] == b'0' {
                return Err(self.err(digits_start, DecodeErrorKind::LeadingZero));
            }
            magnitude = magnitude
                .checked_mul(10)
                .and_then(|m| m.checked_add(u64::from(b - b'0')))
                .ok_or_else(|| self.err(start, DecodeErrorKind::IntegerOverflow))?;
            self.pos += 1;
        }
        if self.pos == digits_start {
            return Err(self.err(
                self.pos,
                DecodeErrorKind::UnexpectedByte {
                    found: terminator,
                    expected: "a digit",
                },
            ));
        }
        self.pos += 1; // the terminator
        if negative {
            if magnitude == 0 {
                return Err(self.err(start, DecodeErrorKind::NegativeZero));
            }
            // -(2^63) is the one negative value whose magnitude does not fit an i64.
            0i64.checked_sub_unsigned(magnitude)
                .ok_or_else(|| self.err(start, DecodeErrorKind::IntegerOverflow))
        } else {
            i64::try_from(magnitude).map_err(|_| self.err(start, DecodeErrorKind::IntegerOverflow))
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        if self.peek("a digit")? == b'-' {
            return Err(self.err(
                start,
                DecodeErrorKind::UnexpectedByte {
                    found: b'-',
                    expected: "a string length",
                },
            ));
        }
        let declared = self.integer(b':')?;
        let remaining = self.input.len() - self.pos;
        // `integer` never returns a negative value here (no '-' was allowed).
        let len = declared as u64;
        if len > remaining as u64 {
            return Err(self.err(
                start,
                DecodeErrorKind::StringTooLong {
                    declared: len,
                    remaining,
                },
            ));
        }
        let len = len as usize;
        let s = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }
}

/// Encodes `value` canonically into a new buffer (dictionary keys sorted).
pub fn encode(value: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Encodes `value` canonically, appending to `out` (a `Vec<u8>` or `bytes::BytesMut`).
///
/// Dictionary keys are written in sorted order (stable, so lenient input with duplicate
/// keys keeps them, in input order).
pub fn encode_into<B: bytes::BufMut>(value: &Value<'_>, out: &mut B) {
    match value {
        Value::Int(i) => {
            out.put_u8(b'i');
            put_decimal(out, *i);
            out.put_u8(b'e');
        }
        Value::Bytes(b) => put_bytes(out, b),
        Value::List(l) => {
            out.put_u8(b'l');
            for item in &l.items {
                encode_into(item, out);
            }
            out.put_u8(b'e');
        }
        Value::Dict(d) => {
            out.put_u8(b'd');
            let mut order: Vec<&(&[u8], Value<'_>)> = d.entries.iter().collect();
            order.sort_by(|a, b| a.0.cmp(b.0));
            for (k, v) in order {
                put_bytes(out, k);
                encode_into(v, out);
            }
            out.put_u8(b'e');
        }
    }
}

/// Appends `<len>:<bytes>`.
pub fn put_bytes<B: bytes::BufMut>(out: &mut B, b: &[u8]) {
    put_length(out, b.len());
    out.put_slice(b);
}

/// Appends a byte string's length prefix (`<len>:`), for a caller that writes the `len`
/// bytes itself.
pub fn put_length<B: bytes::BufMut>(out: &mut B, len: usize) {
    put_decimal(out, i64::try_from(len).unwrap_or(i64::MAX));
    out.put_u8(b':');
}

/// Appends an integer's decimal digits (no `i`/`e`).
fn put_decimal<B: bytes::BufMut>(out: &mut B, n: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        out.put_u8(b'-');
    }
    out.put_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(input: &[u8]) -> DecodeErrorKind {
        decode(input).unwrap_err().kind
    }

    #[test]
    fn decodes_every_type() {
        let v = decode(b"d3:agei-42e4:listl1:ai7ee4:name4:spame").unwrap();
        let d = v.as_dict().unwrap();
        assert_eq!(d.get(b"age").unwrap().as_int(), Some(-42));
        assert_eq!(d.get(b"name").unwrap().as_str(), Some("spam"));
        let l = d.get(b"list").unwrap().as_list().unwrap();
        assert_eq!(l.items(), &[Value::Bytes(b"a"), Value::Int(7)]);
        assert_eq!(l.raw(), Some(&b"l1:ai7ee"[..]));
        assert_eq!(d.raw().unwrap().len(), 38);
    }

    #[test]
    fn byte_strings_borrow_the_input() {
        let input = b"5:hello".to_vec();
        let v = decode(&input).unwrap();
        let s = v.as_bytes().unwrap();
        assert_eq!(s.as_ptr(), input[2..].as_ptr());
    }

    #[test]
    fn raw_span_is_the_input_not_a_reencoding() {
        // Unsorted keys: a re-encoding would sort them, the raw span must not.
        let input = b"d4:infod1:bi1e1:ai2eee";
        let v = decode(input).unwrap();
        let info = v
            .as_dict()
            .unwrap()
            .get(b"info")
            .unwrap()
            .as_dict()
            .unwrap();
        assert_eq!(info.raw(), Some(&b"d1:bi1e1:ai2ee"[..]));
        assert_eq!(encode(&Value::Dict(info.clone())), b"d1:ai2e1:bi1ee");
    }

    #[test]
    fn integer_rules() {
        assert_eq!(decode(b"i0e").unwrap(), Value::Int(0));
        assert_eq!(decode(b"i-1e").unwrap(), Value::Int(-1));
        assert_eq!(
            decode(b"i9223372036854775807e").unwrap(),
            Value::Int(i64::MAX)
        );
        assert_eq!(
            decode(b"i-9223372036854775808e").unwrap(),
            Value::Int(i64::MIN)
        );
        assert_eq!(
            kind(b"i9223372036854775808e"),
            DecodeErrorKind::IntegerOverflow
        );
        assert_eq!(
            kind(b"i-9223372036854775809e"),
            DecodeErrorKind::IntegerOverflow
        );
        assert_eq!(
            kind(b"i99999999999999999999999e"),
            DecodeErrorKind::IntegerOverflow
        );
        assert_eq!(kind(b"i03e"), DecodeErrorKind::LeadingZero);
        assert_eq!(kind(b"i-03e"), DecodeErrorKind::LeadingZero);
        assert_eq!(kind(b"i00e"), DecodeErrorKind::LeadingZero);
        assert_eq!(kind(b"i-0e"), DecodeErrorKind::NegativeZero);
        assert!(matches!(
            kind(b"ie"),
            DecodeErrorKind::UnexpectedByte { .. }
        ));
        assert!(matches!(
            kind(b"i-e"),
            DecodeErrorKind::UnexpectedByte { .. }
        ));
        assert!(matches!(
            kind(b"i1x"),
            DecodeErrorKind::UnexpectedByte { found: b'x', .. }
        ));
        assert!(matches!(
            kind(b"i12"),
            DecodeErrorKind::UnexpectedEnd { .. }
        ));
        assert!(matches!(
            kind(b"i+1e"),
            DecodeErrorKind::UnexpectedByte { .. }
        ));
    }

    #[test]
    fn string_rules() {
        assert_eq!(decode(b"0:").unwrap(), Value::Bytes(b""));
        assert_eq!(kind(b"03:abc"), DecodeErrorKind::LeadingZero);
        assert!(matches!(
            kind(b"-1:a"),
            DecodeErrorKind::UnexpectedByte { .. }
        ));
        assert_eq!(
            decode(b"4:abc").unwrap_err(),
            DecodeError {
                offset: 0,
                kind: DecodeErrorKind::StringTooLong {
                    declared: 4,
                    remaining: 3
                }
            }
        );
        // A huge declared length is refused before anything is allocated.
        assert!(matches!(
            kind(b"18446744073709551615:x"),
            DecodeErrorKind::IntegerOverflow
        ));
        assert!(matches!(
            kind(b"9223372036854775807:x"),
            DecodeErrorKind::StringTooLong { .. }
        ));
        assert!(matches!(kind(b"3"), DecodeErrorKind::UnexpectedEnd { .. }));
    }

    #[test]
    fn errors_name_the_offset() {
        let e = decode(b"d3:fooi1e3:barXe").unwrap_err();
        assert_eq!(e.offset, 14);
        assert_eq!(
            e.to_string(),
            "bencode: unexpected byte 0x58 ('X'), expected 'i', 'l', 'd' or a digit at byte 14"
        );
        let e = decode(b"i1ei2e").unwrap_err();
        assert_eq!((e.offset, e.kind), (3, DecodeErrorKind::TrailingData));
        assert_eq!(
            kind(b""),
            DecodeErrorKind::UnexpectedEnd {
                expected: "a value"
            }
        );
        assert_eq!(kind(b"di1ei2ee"), DecodeErrorKind::KeyNotString);
        assert!(matches!(kind(b"l"), DecodeErrorKind::UnexpectedEnd { .. }));
        assert!(matches!(
            kind(b"d1:a"),
            DecodeErrorKind::UnexpectedEnd { .. }
        ));
    }

    #[test]
    fn depth_limit() {
        let deep_ok = [vec![b'l'; 256], vec![b'e'; 256]].concat();
        assert!(decode(&deep_ok).is_ok());
        let too_deep = [vec![b'l'; 257], vec![b'e'; 257]].concat();
        assert_eq!(kind(&too_deep), DecodeErrorKind::TooDeep { limit: 256 });
        // A million opening brackets fail fast at the limit without recursing further.
        let hostile = vec![b'd'; 1_000_000];
        let e = decode(&hostile).unwrap_err();
        assert!(matches!(
            e.kind,
            DecodeErrorKind::KeyNotString | DecodeErrorKind::TooDeep { .. }
        ));
        let hostile = vec![b'l'; 1_000_000];
        assert_eq!(
            decode(&hostile).unwrap_err().kind,
            DecodeErrorKind::TooDeep { limit: 256 }
        );
        let opts = DecodeOptions {
            max_depth: 2,
            strict: false,
        };
        assert!(decode_with(b"llee", opts).is_ok());
        assert!(decode_with(b"llleee", opts).is_err());
    }

    #[test]
    fn strict_mode_rejects_non_canonical_dicts() {
        assert!(decode_strict(b"d1:ai1e1:bi2ee").is_ok());
        let e = decode_strict(b"d1:bi1e1:ai2ee").unwrap_err();
        assert_eq!((e.offset, e.kind), (7, DecodeErrorKind::UnsortedKey));
        let e = decode_strict(b"d1:ai1e1:ai2ee").unwrap_err();
        assert_eq!((e.offset, e.kind), (7, DecodeErrorKind::DuplicateKey));
        // Lenient mode takes both, keeping input order; `get` finds the first.
        let v = decode(b"d1:ai1e1:ai2ee").unwrap();
        assert_eq!(v.as_dict().unwrap().get(b"a"), Some(&Value::Int(1)));
        // Keys compare as raw bytes, not as text.
        assert!(decode_strict(b"d1:Zi1e1:ai2ee").is_ok());
        assert!(decode_strict(b"d1:ai1e1:Zi2ee").is_err());
    }

    #[test]
    fn encode_is_canonical_and_round_trips() {
        let mut d = Dict::new(vec![]);
        d.insert(b"zeta", Value::Int(-7));
        d.insert(
            b"alpha",
            Value::List(List::new(vec![Value::Bytes(b"x"), Value::Int(0)])),
        );
        let encoded = encode(&Value::Dict(d.clone()));
        assert_eq!(encoded, b"d5:alphal1:xi0ee4:zetai-7ee");
        let back = decode_strict(&encoded).unwrap();
        // Equality follows entry order; the encoding sorted the keys.
        let mut sorted = d.entries().to_vec();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        assert_eq!(back, Value::Dict(Dict::new(sorted)));
        for n in [0, 1, -1, 10, -10, i64::MAX, i64::MIN] {
            let e = encode(&Value::Int(n));
            assert_eq!(decode_strict(&e).unwrap(), Value::Int(n), "{n}");
        }
    }

    #[test]
    fn encode_into_bytes_mut() {
        let mut buf = bytes::BytesMut::new();
        encode_into(&Value::Bytes(b"hi"), &mut buf);
        assert_eq!(&buf[..], b"2:hi");
    }

    #[test]
    fn prefix_leaves_the_rest() {
        let (v, used) = decode_prefix(b"d1:ai1eeRAWDATA", DecodeOptions::default()).unwrap();
        assert_eq!(used, 8);
        assert_eq!(v.as_dict().unwrap().get(b"a"), Some(&Value::Int(1)));
    }
}
