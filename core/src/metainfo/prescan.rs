//! Counting a torrent's files from its raw bytes, without decoding it.
//!
//! Why: decoding builds a value tree and then one [`super::FileEntry`] per file; for a
//! torrent listing a million files that is hundreds of MB before [`Info::check_shape`] can
//! say no. This scan walks the bencode once, allocating nothing and never recursing, and
//! counts the entries of `info.files` that are not BEP 47 padding files — the same count
//! the limit uses — so an oversized torrent is refused at the cost of reading its bytes.
//!
//! It is not a validator: on anything it cannot follow it answers `None` and leaves the
//! verdict to the parser. It reads a dictionary key the way the lenient parser does (the
//! first occurrence wins).
//!
//! [`Info::check_shape`]: super::Info::check_shape

use super::shape::{ShapeError, ShapeLimits};

impl ShapeLimits {
    /// Refuses a whole `.torrent` file listing more than [`ShapeLimits::max_files`]
    /// files, before it is decoded. `Ok` when within the limit or when the bytes cannot be
    /// followed (the parser then names what is wrong); [`super::Info::check_shape`] is
    /// still to run on the parsed torrent for the other limits.
    pub fn precheck_torrent(&self, torrent: &[u8]) -> Result<(), ShapeError> {
        self.precheck(listed_files(torrent, true))
    }

    /// As [`ShapeLimits::precheck_torrent`], for a bare info dictionary (BEP 9 metadata).
    pub fn precheck_info(&self, info: &[u8]) -> Result<(), ShapeError> {
        self.precheck(listed_files(info, false))
    }

    fn precheck(&self, files: Option<usize>) -> Result<(), ShapeError> {
        match files {
            Some(files) if files > self.max_files => Err(ShapeError::TooManyFiles {
                files,
                max: self.max_files,
            }),
            _ => Ok(()),
        }
    }
}

/// Non-padding entries of `info.files` (`whole`: `bytes` is a torrent file holding an
/// `info` key; else it is the info dictionary). `None` when the bytes cannot be followed
/// or there is no `files` list (a single-file torrent lists one file).
fn listed_files(bytes: &[u8], whole: bool) -> Option<usize> {
    let mut s = Scan { b: bytes, pos: 0 };
    if whole {
        s.find_key(b"info")?;
    }
    s.find_key(b"files")?;
    s.count_files()
}

/// A cursor over bencode bytes.
struct Scan<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// `<len>:<bytes>` at the cursor; moves past it.
    fn byte_string(&mut self) -> Option<&'a [u8]> {
        let rest = self.b.get(self.pos..)?;
        let colon = rest.iter().position(|&c| c == b':')?;
        let digits = std::str::from_utf8(&rest[..colon]).ok()?;
        let len: usize = digits.parse().ok()?;
        let start = self.pos.checked_add(colon)?.checked_add(1)?;
        let end = start.checked_add(len)?;
        let s = self.b.get(start..end)?;
        self.pos = end;
        Some(s)
    }

    /// Moves past one value of any type, nested ones included, with a depth counter
    /// instead of recursion (hostile nesting cannot exhaust the stack).
    fn skip_value(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'i' => {
                    let rest = self.b.get(self.pos..)?;
                    self.pos += rest.iter().position(|&c| c == b'e')? + 1;
                }
                b'l' | b'd' => {
                    depth += 1;
                    self.pos += 1;
                }
                b'e' => {
                    depth = depth.checked_sub(1)?;
                    self.pos += 1;
                }
                b'0'..=b'9' => {
                    self.byte_string()?;
                }
                _ => return None,
            }
            if depth == 0 {
                return Some(());
            }
        }
    }

    /// With the cursor on a dictionary, moves it to the value of its first `key`.
    fn find_key(&mut self, key: &[u8]) -> Option<()> {
        if self.peek()? != b'd' {
            return None;
        }
        self.pos += 1;
        while self.peek()? != b'e' {
            if self.byte_string()? == key {
                return Some(());
            }
            self.skip_value()?;
        }
        None
    }

    /// With the cursor on the `files` list, counts its entries that are not padding files
    /// (whose first `attr` holds `p`, as the parser reads BEP 47).
    fn count_files(&mut self) -> Option<usize> {
        if self.peek()? != b'l' {
            return None;
        }
        self.pos += 1;
        let mut count = 0usize;
        while self.peek()? != b'e' {
            if self.peek()? != b'd' {
                // Not a file dictionary: the parser will refuse it; count it meanwhile.
                self.skip_value()?;
                count += 1;
                continue;
            }
            self.pos += 1;
            let mut attr_seen = false;
            let mut padding = false;
            while self.peek()? != b'e' {
                let k = self.byte_string()?;
                if k == b"attr" && !attr_seen && self.peek()?.is_ascii_digit() {
                    attr_seen = true;
                    padding = self.byte_string()?.contains(&b'p');
                } else {
                    attr_seen |= k == b"attr";
                    self.skip_value()?;
                }
            }
            self.pos += 1;
            if !padding {
                count += 1;
            }
        }
        Some(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::Metainfo;

    /// A torrent of `files` one-byte files, every other one a padding file when `pad`.
    fn torrent(files: usize, pad: bool) -> Vec<u8> {
        let mut b = b"d8:announce3:url4:infod5:filesl".to_vec();
        for i in 0..files {
            let name = format!("f{i}");
            let attr = if pad && i % 2 == 1 { "4:attr1:p" } else { "" };
            b.extend_from_slice(
                format!("d{attr}6:lengthi1e4:pathl{}:{name}ee", name.len()).as_bytes(),
            );
        }
        let pieces = files.div_ceil(16384);
        b.extend_from_slice(
            format!("e4:name1:t12:piece lengthi16384e6:pieces{}:", pieces * 20).as_bytes(),
        );
        b.extend_from_slice(&vec![0u8; pieces * 20]);
        b.extend_from_slice(b"ee");
        b
    }

    #[test]
    fn the_scan_counts_what_the_parser_counts() {
        for (files, pad) in [(1, false), (7, false), (9, true), (1001, false)] {
            let bytes = torrent(files, pad);
            let parsed = Metainfo::from_bytes(&bytes).expect("test torrent parses");
            assert_eq!(
                listed_files(&bytes, true),
                Some(parsed.info.real_file_count()),
                "{files} files, padding {pad}"
            );
            assert_eq!(
                listed_files(&parsed.info_bytes, false),
                Some(parsed.info.real_file_count())
            );
        }
    }

    #[test]
    fn precheck_refuses_over_the_limit_only() {
        let bytes = torrent(1001, false);
        let limits = |max_files| ShapeLimits {
            max_files,
            ..ShapeLimits::default()
        };
        assert_eq!(limits(1001).precheck_torrent(&bytes), Ok(()));
        assert_eq!(
            limits(1000).precheck_torrent(&bytes),
            Err(ShapeError::TooManyFiles {
                files: 1001,
                max: 1000
            })
        );
        // Padding files are not counted: 501 real files of 1001 entries.
        assert_eq!(limits(501).precheck_torrent(&torrent(1001, true)), Ok(()));
        assert!(limits(500).precheck_torrent(&torrent(1001, true)).is_err());
    }

    #[test]
    fn what_cannot_be_followed_is_left_to_the_parser() {
        let limits = ShapeLimits {
            max_files: 0,
            ..ShapeLimits::default()
        };
        let bytes = torrent(3, false);
        // A truncated torrent: the count needs the list's end, so no partial count.
        let list_end = bytes
            .windows(7)
            .position(|w| w == b"e4:name")
            .expect("the list's end");
        for cut in 0..=list_end {
            assert_eq!(listed_files(&bytes[..cut], true), None, "cut at {cut}");
        }
        for junk in [
            &b""[..],
            b"i5e",
            b"d4:info",
            b"d4:infoi1ee",
            b"d4:infod5:filesi3eee",
            b"d4:infod5:filesl99999999999999999999999:xeee",
            b"eeee",
            b"d4:infod5:filesllllllllllllllllllllllll",
        ] {
            assert_eq!(listed_files(junk, true), None, "{junk:?}");
            assert_eq!(limits.precheck_torrent(junk), Ok(()));
        }
        // A single-file torrent has no `files` list.
        assert_eq!(listed_files(b"d4:infod6:lengthi1e4:name1:xee", true), None);
    }
}
