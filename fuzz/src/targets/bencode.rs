//! The `bencode` target: the decoder and encoder of `unchoke_core::bencode` against each other.
//!
//! Invariants checked on every input (a failed `assert!` is a finding):
//! 1. Every decode error's offset lies within the input (`offset <= len`).
//! 2. Strict decoding accepts a subset of what lenient decoding accepts, and where both
//!    succeed they give the same value.
//! 3. Lenient success ⇒ `encode(v)` decodes *strictly* to `v` with every dictionary's keys
//!    stably sorted — unless `v` holds a repeated key, in which case strict decoding of the
//!    encoding fails with `DuplicateKey` (the encoder keeps duplicates, strict mode refuses
//!    them). Encoding is idempotent: re-encoding the strict result gives the same bytes.
//! 4. Strict success ⇒ `encode(v) == input`, byte for byte (strict input is canonical).
//! 5. Every list and dictionary in the tree carries a raw span that is a sub-slice of the
//!    input and that re-decodes on its own to an equal value; the top-level span is the
//!    whole input.
//! 6. `decode_prefix` agrees with `decode`: same error on failure; on success it used
//!    `1..=len` bytes, the prefix alone decodes to the same value, and `decode` succeeds
//!    exactly when the prefix is the whole input.
//! 7. The depth limit is exact: a value nested `n` containers deep decodes with
//!    `max_depth = n` and fails with `TooDeep` under `max_depth = n - 1`.

use unchoke_core::bencode::{self, DecodeErrorKind, DecodeOptions, Dict, List, Value};

/// Runs every bencode invariant on `data`. Panics (the fuzzer's finding) if one fails.
pub fn bencode(data: &[u8]) {
    let lenient = bencode::decode(data);
    let strict = bencode::decode_strict(data);

    for err in [lenient.as_ref().err(), strict.as_ref().err()]
        .into_iter()
        .flatten()
    {
        assert!(
            err.offset <= data.len(),
            "error offset {} past the input's {} bytes: {err}",
            err.offset,
            data.len()
        );
    }

    check_prefix(data, &lenient);

    match (&lenient, &strict) {
        (Err(_), Ok(v)) => panic!("strict decode accepted what lenient refused: {v:?}"),
        (Ok(l), Ok(s)) => assert_eq!(l, s, "strict and lenient decodes differ"),
        _ => {}
    }

    if let Ok(value) = &lenient {
        check_raw_spans(value, data, true);
        check_canonical_round_trip(value);
        check_depth_limit(data, value);
    }
    if let Ok(value) = &strict {
        let encoded = bencode::encode(value);
        assert!(
            encoded == data,
            "strict input is not reproduced by encode: {} bytes in, {} bytes out",
            data.len(),
            encoded.len()
        );
    }
}

/// Invariant 3.
fn check_canonical_round_trip(value: &Value<'_>) {
    let encoded = bencode::encode(value);
    match bencode::decode_strict(&encoded) {
        Ok(back) => {
            assert!(
                !has_duplicate_keys(value),
                "strict decode accepted an encoding with a repeated key"
            );
            assert_eq!(
                back,
                sorted(value),
                "canonical round trip changed the value"
            );
            assert_eq!(
                bencode::encode(&back),
                encoded,
                "encoding is not idempotent"
            );
        }
        Err(e) => {
            assert!(
                has_duplicate_keys(value) && e.kind == DecodeErrorKind::DuplicateKey,
                "the encoder produced bytes strict mode refuses: {e}"
            );
        }
    }
}

/// Invariant 5. `top` marks the outermost value, whose span must be the whole input.
fn check_raw_spans(value: &Value<'_>, input: &[u8], top: bool) {
    let raw = match value {
        Value::List(l) => l.raw(),
        Value::Dict(d) => d.raw(),
        Value::Int(_) | Value::Bytes(_) => return,
    };
    let Some(raw) = raw else {
        panic!("a decoded container has no raw span");
    };
    assert!(is_subslice(raw, input), "raw span is not inside the input");
    if top {
        assert_eq!(
            raw.len(),
            input.len(),
            "top-level raw span is not the whole input"
        );
    }
    match bencode::decode(raw) {
        Ok(again) => assert_eq!(&again, value, "raw span re-decodes to a different value"),
        Err(e) => panic!("raw span does not re-decode: {e}"),
    }
    match value {
        Value::List(l) => l
            .items()
            .iter()
            .for_each(|v| check_raw_spans(v, input, false)),
        Value::Dict(d) => d
            .entries()
            .iter()
            .for_each(|(_, v)| check_raw_spans(v, input, false)),
        Value::Int(_) | Value::Bytes(_) => {}
    }
}

/// Invariant 6.
fn check_prefix(data: &[u8], lenient: &Result<Value<'_>, unchoke_core::bencode::DecodeError>) {
    match bencode::decode_prefix(data, DecodeOptions::default()) {
        Ok((value, used)) => {
            assert!(
                (1..=data.len()).contains(&used),
                "prefix used {used} of {}",
                data.len()
            );
            match bencode::decode(&data[..used]) {
                Ok(again) => assert_eq!(again, value, "prefix re-decodes differently"),
                Err(e) => panic!("the used prefix does not decode alone: {e}"),
            }
            match lenient {
                Ok(v) => {
                    assert_eq!(used, data.len(), "decode accepted trailing bytes");
                    assert_eq!(v, &value, "decode and decode_prefix differ");
                }
                Err(e) => {
                    assert!(used < data.len(), "decode failed on a whole value: {e}");
                    assert_eq!(e.kind, DecodeErrorKind::TrailingData);
                    assert_eq!(e.offset, used, "trailing data reported at the wrong offset");
                }
            }
        }
        Err(prefix_err) => match lenient {
            Ok(_) => panic!("decode succeeded where decode_prefix failed: {prefix_err}"),
            Err(e) => assert_eq!(e, &prefix_err, "decode and decode_prefix disagree"),
        },
    }
}

/// Invariant 7.
fn check_depth_limit(data: &[u8], value: &Value<'_>) {
    let depth = nesting(value);
    let exact = DecodeOptions {
        max_depth: depth,
        strict: false,
    };
    if let Err(e) = bencode::decode_with(data, exact) {
        panic!("value {depth} deep refused with max_depth {depth}: {e}");
    }
    if depth > 0 {
        let tight = DecodeOptions {
            max_depth: depth - 1,
            strict: false,
        };
        match bencode::decode_with(data, tight) {
            Ok(_) => panic!("value {depth} deep accepted with max_depth {}", depth - 1),
            Err(e) => assert_eq!(
                e.kind,
                DecodeErrorKind::TooDeep { limit: depth - 1 },
                "wrong error under a tight depth limit"
            ),
        }
    }
}

/// How many containers deep `value` nests (0 for an integer or a string).
pub fn nesting(value: &Value<'_>) -> usize {
    match value {
        Value::Int(_) | Value::Bytes(_) => 0,
        Value::List(l) => 1 + l.items().iter().map(nesting).max().unwrap_or(0),
        Value::Dict(d) => {
            1 + d
                .entries()
                .iter()
                .map(|(_, v)| nesting(v))
                .max()
                .unwrap_or(0)
        }
    }
}

/// `value` with every dictionary's entries stably sorted by key: what the encoder writes.
pub fn sorted<'a>(value: &Value<'a>) -> Value<'a> {
    match value {
        Value::Int(i) => Value::Int(*i),
        Value::Bytes(b) => Value::Bytes(b),
        Value::List(l) => Value::List(List::new(l.items().iter().map(sorted).collect())),
        Value::Dict(d) => {
            let mut entries: Vec<(&'a [u8], Value<'a>)> =
                d.entries().iter().map(|(k, v)| (*k, sorted(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Dict(Dict::new(entries))
        }
    }
}

/// Whether any dictionary in `value` holds the same key twice.
pub fn has_duplicate_keys(value: &Value<'_>) -> bool {
    match value {
        Value::Int(_) | Value::Bytes(_) => false,
        Value::List(l) => l.items().iter().any(has_duplicate_keys),
        Value::Dict(d) => {
            let mut keys: Vec<&[u8]> = d.entries().iter().map(|(k, _)| *k).collect();
            keys.sort_unstable();
            keys.windows(2).any(|w| w[0] == w[1])
                || d.entries().iter().any(|(_, v)| has_duplicate_keys(v))
        }
    }
}

/// Whether `inner` lies within `outer`'s memory (a borrowed span of it).
fn is_subslice(inner: &[u8], outer: &[u8]) -> bool {
    let (start, end) = (
        outer.as_ptr() as usize,
        outer.as_ptr() as usize + outer.len(),
    );
    let (s, e) = (
        inner.as_ptr() as usize,
        inner.as_ptr() as usize + inner.len(),
    );
    start <= s && e <= end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_edge_cases_without_findings() {
        for input in [
            &b""[..],
            b"i0e",
            b"i-9223372036854775808e",
            b"0:",
            b"le",
            b"de",
            b"d1:bi1e1:ai2ee",
            b"d1:ai1e1:ai2ee",
            b"d4:infod1:bi1e1:ai2eee",
            b"l1:al1:bee",
            b"i1ei2e",
            b"d3:fooi1e3:barXe",
        ] {
            bencode(input);
        }
    }

    #[test]
    fn sorted_and_duplicates() {
        let v = bencode::decode(b"d1:bi1e1:ai2e1:bi3ee").unwrap();
        assert!(has_duplicate_keys(&v));
        assert_eq!(bencode::encode(&sorted(&v)), b"d1:ai2e1:bi1e1:bi3ee");
        assert_eq!(nesting(&v), 1);
        assert!(!has_duplicate_keys(
            &bencode::decode(b"d1:ad1:ai1eee").unwrap()
        ));
    }
}
