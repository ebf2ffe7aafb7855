//! Resume data: which pieces were verified, and what the files looked like at that moment.
//!
//! Pure encode/decode (bencode) and the trust rule; no file is touched here (the
//! `unchoke-storage` crate's `FileStorage` reads and writes resume files atomically).
//!
//! # Why trusting a resume file is safe
//!
//! A resume file is written after the pieces in [`ResumeData::have`] were verified *and*
//! flushed to disk, together with each file's length and modification time at that moment.
//! Writing to a file updates its modification time, so a file written after the resume file
//! was saved (a download that went on, a crash mid-write, someone editing the file) no
//! longer matches its saved state, and every piece touching it is hashed again. A piece
//! whose every (non-padding) file still has the saved length and time is trusted without
//! reading it. What this cannot see: a change that keeps both the length and the
//! modification time (a tool that restores `mtime` after editing, or a write landing in the
//! same timestamp tick as the save on a file system with coarse timestamps); a forced
//! recheck (no resume) covers those.
//!
//! # Why skipping never-written pieces is safe
//!
//! [`ResumeData::written`] lists the pieces that may hold data (verified, or written but
//! not verified yet: the session marks a piece the moment it emits a write for it). A piece
//! in neither `have` nor `written` was never written by us; if every file it touches is
//! unchanged since the save (same rule as above), nobody else wrote it either, so it is
//! known empty and is not read ([`ResumeData::known_empty`]). Files written after the
//! save (a crash mid-download) changed their time, so their pieces are all hashed again. A
//! resume file without `written` (older versions) is read conservatively: every piece not
//! trusted may hold data.
//!
//! # Format (version 1)
//!
//! A bencoded dictionary:
//!
//! ```text
//! { "unchoke resume": 1,
//!   "info hash": <20 bytes>,
//!   "pieces": <piece count>,
//!   "have": <bitfield, wire layout, ceil(pieces / 8) bytes>,
//!   "files": [ { "length": n, "mtime": seconds, "mtime ns": 0..1e9 } | {} (missing), ... ],
//!   "written": <bitfield, as "have"; optional: absent means every piece may hold data> }
//! ```
//!
//! `written` was added without a version change: older readers ignore the key, and a file
//! without it is read as "nothing known to be empty".

use crate::InfoHash;
use crate::bencode::{self, DecodeError, Dict, List, Value};
use crate::bitfield::{Bitfield, BitfieldError};
use crate::layout::Layout;
use crate::metainfo::Info;

/// The format version this code writes and reads.
pub const FORMAT_VERSION: i64 = 1;

const KEY_VERSION: &str = "unchoke resume";
const KEY_INFO_HASH: &str = "info hash";
const KEY_PIECES: &str = "pieces";
const KEY_HAVE: &str = "have";
const KEY_FILES: &str = "files";
const KEY_LENGTH: &str = "length";
const KEY_MTIME: &str = "mtime";
const KEY_MTIME_NS: &str = "mtime ns";
const KEY_WRITTEN: &str = "written";

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// A file's length and modification time, as seen on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileState {
    /// Length in bytes.
    pub length: u64,
    /// Modification time in nanoseconds since the Unix epoch (negative before it).
    pub mtime_nanos: i128,
}

/// What a resume file records for one torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeData {
    /// The torrent this data belongs to.
    pub info_hash: InfoHash,
    /// Number of pieces of the torrent; must equal `have.len()` (checked when decoding).
    pub piece_count: u32,
    /// The pieces verified and flushed to disk when the data was taken.
    pub have: Bitfield,
    /// Each file's state at that moment, in torrent order (`None`: missing, or a padding
    /// file).
    pub files: Vec<Option<FileState>>,
    /// The pieces that may hold data (a superset of `have`: also pieces written but not
    /// verified when the data was taken); `None` when unknown (resume files from older
    /// versions), meaning any piece may.
    pub written: Option<Bitfield>,
}

/// Why resume data was refused. Every case means the same to a caller: there is no usable
/// resume, check the data by hashing it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// Not bencode at all.
    #[error("resume data is not valid bencode: {0}")]
    Bencode(#[from] DecodeError),
    /// Bencode, but not a dictionary.
    #[error("resume data is not a dictionary")]
    NotADictionary,
    /// A required key is absent.
    #[error("resume data has no {key:?} key")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A key holds the wrong kind of value.
    #[error("resume data key {key:?} should be {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What it should hold.
        expected: &'static str,
    },
    /// A format version this code does not understand.
    #[error("resume data has format version {0}, only version {FORMAT_VERSION} is understood")]
    UnsupportedVersion(i64),
    /// The info-hash is not 20 bytes.
    #[error("resume data's info hash is {0} bytes long, expected 20")]
    BadInfoHash(usize),
    /// The piece count is negative or too large.
    #[error("resume data's piece count {0} is out of range")]
    BadPieceCount(i64),
    /// The `have` bitfield does not fit the piece count.
    #[error("resume data's have bitfield: {0}")]
    Bitfield(#[from] BitfieldError),
    /// A file entry is malformed.
    #[error("resume data's entry for file {index}: {what}")]
    BadFileState {
        /// Index of the file entry.
        index: usize,
        /// What is wrong with it.
        what: &'static str,
    },
    /// A resume file larger than any resume for the torrent can be.
    #[error("resume file is {size} bytes, more than the {limit} bytes this torrent's can take")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The largest plausible size.
        limit: u64,
    },
    /// The data belongs to another torrent.
    #[error("resume data is for torrent {found}, not {expected}")]
    OtherTorrent {
        /// The torrent being resumed.
        expected: InfoHash,
        /// The torrent the data names.
        found: InfoHash,
    },
    /// The piece count differs from the torrent's.
    #[error("resume data has {found} pieces, the torrent has {expected}")]
    PieceCountMismatch {
        /// The torrent's.
        expected: u32,
        /// The data's.
        found: u32,
    },
    /// The file count differs from the torrent's.
    #[error("resume data has {found} files, the torrent has {expected}")]
    FileCountMismatch {
        /// The torrent's.
        expected: usize,
        /// The data's.
        found: usize,
    },
}

impl ResumeData {
    /// Resume data for `info_hash` with the verified pieces `have` and the files' states.
    pub fn new(info_hash: InfoHash, have: Bitfield, files: Vec<Option<FileState>>) -> Self {
        ResumeData {
            info_hash,
            piece_count: have.len(),
            have,
            files,
            written: None,
        }
    }

    /// The same data recording which pieces may hold data (see [`ResumeData::written`]);
    /// `have` is added to it, since a verified piece holds data.
    pub fn with_written(mut self, mut written: Bitfield) -> Self {
        if written.len() == self.have.len() {
            for p in self.have.ones() {
                written.set(p);
            }
            self.written = Some(written);
        }
        self
    }

    /// The bencoded form (see the module documentation).
    ///
    /// A length past `i64::MAX` or a time past ±2⁶³ seconds cannot come from a real file;
    /// such values are clamped, so they decode to something else and simply never match.
    pub fn encode(&self) -> Vec<u8> {
        let have = self.have.to_bytes();
        let files: Vec<Value<'_>> = self
            .files
            .iter()
            .map(|state| {
                let entries = match state {
                    None => Vec::new(),
                    Some(s) => {
                        let secs = s.mtime_nanos.div_euclid(NANOS_PER_SEC);
                        let secs = i64::try_from(secs).unwrap_or(if secs < 0 {
                            i64::MIN
                        } else {
                            i64::MAX
                        });
                        // rem_euclid of 1e9 is in 0..1e9, which fits an i64.
                        let nanos = s.mtime_nanos.rem_euclid(NANOS_PER_SEC) as i64;
                        vec![
                            (
                                KEY_LENGTH.as_bytes(),
                                Value::Int(i64::try_from(s.length).unwrap_or(i64::MAX)),
                            ),
                            (KEY_MTIME.as_bytes(), Value::Int(secs)),
                            (KEY_MTIME_NS.as_bytes(), Value::Int(nanos)),
                        ]
                    }
                };
                Value::Dict(Dict::new(entries))
            })
            .collect();
        let mut entries = vec![
            (KEY_VERSION.as_bytes(), Value::Int(FORMAT_VERSION)),
            (KEY_INFO_HASH.as_bytes(), Value::Bytes(&self.info_hash.0)),
            (
                KEY_PIECES.as_bytes(),
                Value::Int(i64::from(self.piece_count)),
            ),
            (KEY_HAVE.as_bytes(), Value::Bytes(&have)),
            (KEY_FILES.as_bytes(), Value::List(List::new(files))),
        ];
        let written = self.written.as_ref().map(Bitfield::to_bytes);
        if let Some(w) = &written {
            entries.push((KEY_WRITTEN.as_bytes(), Value::Bytes(w)));
        }
        let root = Value::Dict(Dict::new(entries));
        bencode::encode(&root)
    }

    /// Parses resume data. Checks the format only; see [`ResumeData::check_matches`] (or
    /// [`ResumeData::decode_for`]) for whether it belongs to a given torrent.
    pub fn decode(bytes: &[u8]) -> Result<ResumeData, ResumeError> {
        let root = bencode::decode(bytes)?;
        let root = root.as_dict().ok_or(ResumeError::NotADictionary)?;
        let version = get_int(root, KEY_VERSION)?;
        if version != FORMAT_VERSION {
            return Err(ResumeError::UnsupportedVersion(version));
        }
        let hash = get_bytes(root, KEY_INFO_HASH)?;
        let info_hash =
            InfoHash(<[u8; 20]>::try_from(hash).map_err(|_| ResumeError::BadInfoHash(hash.len()))?);
        let pieces = get_int(root, KEY_PIECES)?;
        let piece_count = u32::try_from(pieces).map_err(|_| ResumeError::BadPieceCount(pieces))?;
        let have = Bitfield::from_bytes(get_bytes(root, KEY_HAVE)?, piece_count)?;
        let list = match root.get(KEY_FILES.as_bytes()) {
            None => return Err(ResumeError::Missing { key: KEY_FILES }),
            Some(v) => v.as_list().ok_or(ResumeError::WrongType {
                key: KEY_FILES,
                expected: "a list",
            })?,
        };
        // Each entry is at least two input bytes, so this is bounded by the input.
        let files = list
            .items()
            .iter()
            .enumerate()
            .map(|(index, v)| decode_file_state(index, v))
            .collect::<Result<Vec<_>, _>>()?;
        let written = match root.get(KEY_WRITTEN.as_bytes()) {
            None => None,
            Some(v) => {
                let bytes = v.as_bytes().ok_or(ResumeError::WrongType {
                    key: KEY_WRITTEN,
                    expected: "a byte string",
                })?;
                Some(Bitfield::from_bytes(bytes, piece_count)?)
            }
        };
        Ok(ResumeData {
            info_hash,
            piece_count,
            have,
            files,
            written,
        })
    }

    /// [`ResumeData::decode`], then [`ResumeData::check_matches`].
    pub fn decode_for(
        bytes: &[u8],
        info_hash: &InfoHash,
        info: &Info,
    ) -> Result<ResumeData, ResumeError> {
        let data = ResumeData::decode(bytes)?;
        data.check_matches(info_hash, info)?;
        Ok(data)
    }

    /// Whether this data belongs to the torrent `info_hash` / `info`: same info-hash, piece
    /// count and file count. A mismatch means "no resume".
    pub fn check_matches(&self, info_hash: &InfoHash, info: &Info) -> Result<(), ResumeError> {
        if self.info_hash != *info_hash {
            return Err(ResumeError::OtherTorrent {
                expected: *info_hash,
                found: self.info_hash,
            });
        }
        if self.piece_count != info.piece_count() || self.have.len() != info.piece_count() {
            return Err(ResumeError::PieceCountMismatch {
                expected: info.piece_count(),
                found: self.piece_count,
            });
        }
        if self.files.len() != info.files.len() {
            return Err(ResumeError::FileCountMismatch {
                expected: info.files.len(),
                found: self.files.len(),
            });
        }
        Ok(())
    }

    /// The pieces of [`have`](Self::have) that can be trusted without hashing them: every
    /// non-padding file the piece touches has the same length and modification time now
    /// (`current`, in torrent order, e.g. from `FileStorage::file_states`) as when the data
    /// was saved, and is long enough to hold the piece's bytes. See the module documentation
    /// for why. Data whose piece or file count does not fit `info` trusts nothing.
    pub fn trusted_pieces(&self, info: &Info, current: &[Option<FileState>]) -> Bitfield {
        self.trusted_in(&info.layout(), |i| is_pad(info, i), current)
    }

    /// Every piece that is not [trusted](Self::trusted_pieces): those to hash.
    pub fn pieces_to_check(&self, info: &Info, current: &[Option<FileState>]) -> Bitfield {
        let trusted = self.trusted_pieces(info, current);
        let mut out = Bitfield::new(trusted.len());
        for piece in trusted.zeros() {
            out.set(piece);
        }
        out
    }

    /// [`ResumeData::trusted_pieces`] over a layout, with `is_pad(file)` telling padding
    /// files (which are never on disk and always trusted: their bytes are zeros).
    ///
    /// Public for `unchoke-storage`, which holds a torrent's layout and padding flags rather
    /// than its [`Info`]; the trust rule itself stays here, next to its reasons.
    pub fn trusted_in(
        &self,
        layout: &Layout,
        is_pad: impl Fn(usize) -> bool,
        current: &[Option<FileState>],
    ) -> Bitfield {
        let mut out = Bitfield::new(layout.piece_count());
        if !self.fits(layout, current) {
            return out;
        }
        // One pass over the files, then one over the pieces: O(files + pieces).
        let unchanged: Vec<bool> = self
            .files
            .iter()
            .zip(current)
            .map(|(saved, now)| matches!((saved, now), (Some(a), Some(b)) if a == b))
            .collect();
        for piece in self.have.ones() {
            let trusted = layout.piece_spans(piece).all(|span| {
                if is_pad(span.file) {
                    return true;
                }
                let long_enough = current
                    .get(span.file)
                    .copied()
                    .flatten()
                    .is_some_and(|s| s.length >= span.file_offset.saturating_add(span.len));
                long_enough && unchanged.get(span.file).copied().unwrap_or(false)
            });
            if trusted {
                out.set(piece);
            }
        }
        out
    }
}

impl ResumeData {
    /// The pieces known to hold no data (see the module documentation): in neither `have`
    /// nor [`written`](Self::written), with every non-padding file they touch unchanged
    /// since the save (`current` as for [`ResumeData::trusted_pieces`]). Empty when
    /// `written` is unknown or the shapes do not fit.
    pub fn known_empty(&self, info: &Info, current: &[Option<FileState>]) -> Bitfield {
        self.known_empty_in(&info.layout(), |i| is_pad(info, i), current)
    }

    /// [`ResumeData::known_empty`] over a layout, `is_pad` as for
    /// [`ResumeData::trusted_in`] (public for `unchoke-storage` for the same reason).
    pub fn known_empty_in(
        &self,
        layout: &Layout,
        is_pad: impl Fn(usize) -> bool,
        current: &[Option<FileState>],
    ) -> Bitfield {
        let mut out = Bitfield::new(layout.piece_count());
        let Some(written) = &self.written else {
            return out;
        };
        if !self.fits(layout, current) || written.len() != layout.piece_count() {
            return out;
        }
        // A file missing then and now is unchanged too: nothing can have been written to it.
        let unchanged: Vec<bool> = self
            .files
            .iter()
            .zip(current)
            .map(|(saved, now)| saved == now)
            .collect();
        for piece in written.zeros() {
            if self.have.get(piece) {
                continue;
            }
            let empty = layout.piece_spans(piece).all(|span| {
                is_pad(span.file) || unchanged.get(span.file).copied().unwrap_or(false)
            });
            if empty {
                out.set(piece);
            }
        }
        out
    }
}

impl ResumeData {
    /// Whether this data and the files' `current` states have the shape of `layout`
    /// (piece and file counts): data that does not fit vouches for nothing.
    fn fits(&self, layout: &Layout, current: &[Option<FileState>]) -> bool {
        let files = layout.file_count();
        self.piece_count == layout.piece_count()
            && self.have.len() == layout.piece_count()
            && self.files.len() == files
            && current.len() == files
    }
}

fn is_pad(info: &Info, file: usize) -> bool {
    info.files.get(file).is_some_and(|f| f.padding)
}

fn get_int(d: &Dict<'_>, key: &'static str) -> Result<i64, ResumeError> {
    d.get(key.as_bytes())
        .ok_or(ResumeError::Missing { key })?
        .as_int()
        .ok_or(ResumeError::WrongType {
            key,
            expected: "an integer",
        })
}

fn get_bytes<'a>(d: &Dict<'a>, key: &'static str) -> Result<&'a [u8], ResumeError> {
    d.get(key.as_bytes())
        .ok_or(ResumeError::Missing { key })?
        .as_bytes()
        .ok_or(ResumeError::WrongType {
            key,
            expected: "a byte string",
        })
}

/// One entry of `files`: `{}` for a missing file, else all three keys.
fn decode_file_state(index: usize, v: &Value<'_>) -> Result<Option<FileState>, ResumeError> {
    let bad = |what| ResumeError::BadFileState { index, what };
    let d = v.as_dict().ok_or(bad("not a dictionary"))?;
    if d.entries().is_empty() {
        return Ok(None);
    }
    let int = |key: &str| d.get(key.as_bytes()).and_then(Value::as_int);
    let length = int(KEY_LENGTH).ok_or(bad("no integer length"))?;
    let secs = int(KEY_MTIME).ok_or(bad("no integer mtime"))?;
    let nanos = int(KEY_MTIME_NS).ok_or(bad("no integer mtime ns"))?;
    let length = u64::try_from(length).map_err(|_| bad("negative length"))?;
    if !(0..1_000_000_000).contains(&nanos) {
        return Err(bad("mtime ns outside 0..1000000000"));
    }
    Ok(Some(FileState {
        length,
        mtime_nanos: i128::from(secs) * NANOS_PER_SEC + i128::from(nanos),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::FileEntry;

    fn info(piece_length: u32, files: &[(u64, bool)]) -> Info {
        let mut offset = 0;
        let entries: Vec<FileEntry> = files
            .iter()
            .enumerate()
            .map(|(i, &(length, padding))| {
                let e = FileEntry {
                    path: vec![format!("f{i}")],
                    length,
                    offset,
                    padding,
                    executable: false,
                    hidden: false,
                };
                offset += length;
                e
            })
            .collect();
        let pieces = offset.div_ceil(u64::from(piece_length)) as usize;
        Info {
            name: "t".into(),
            piece_length,
            piece_hashes: vec![[0; 20]; pieces],
            private: false,
            multi_file: true,
            files: entries,
            total_length: offset,
        }
    }

    fn state(length: u64, mtime_nanos: i128) -> Option<FileState> {
        Some(FileState {
            length,
            mtime_nanos,
        })
    }

    fn sample() -> ResumeData {
        let mut have = Bitfield::new(13);
        for p in [0, 3, 8, 12] {
            have.set(p);
        }
        ResumeData::new(
            InfoHash([0xab; 20]),
            have,
            vec![
                state(10, 1_700_000_000_123_456_789),
                None,
                state(0, -1_500_000_001), // before the epoch: negative seconds, positive ns
                state(u64::from(u32::MAX) * 4, 0),
            ],
        )
    }

    #[test]
    fn roundtrip() {
        let r = sample();
        let bytes = r.encode();
        assert_eq!(ResumeData::decode(&bytes).unwrap(), r);
        // The encoding is canonical bencode and names its version.
        assert!(bencode::decode_strict(&bytes).is_ok());
        assert!(bytes.starts_with(b"d5:filesl"));
        assert!(bytes.windows(19).any(|w| w == b"14:unchoke resumei1"));
        // Empty torrent bits: zero pieces and files still round-trips.
        let empty = ResumeData::new(InfoHash([0; 20]), Bitfield::new(0), Vec::new());
        assert_eq!(ResumeData::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn corrupt_bytes_are_errors_not_panics() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(ResumeData::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..2000 {
            let mut b = bytes.clone();
            for _ in 0..rng.usize(1..4) {
                let i = rng.usize(..b.len());
                b[i] = rng.u8(..);
            }
            // Any outcome but a panic is fine; a success must re-encode consistently.
            if let Ok(r) = ResumeData::decode(&b) {
                assert_eq!(r.have.len(), r.piece_count);
            }
        }
        assert!(matches!(
            ResumeData::decode(b"i1e"),
            Err(ResumeError::NotADictionary)
        ));
        assert!(matches!(
            ResumeData::decode(b"garbage"),
            Err(ResumeError::Bencode(_))
        ));
    }

    #[test]
    fn typed_errors() {
        let enc = |entries: Vec<(&'static str, Value<'static>)>| {
            bencode::encode(&Value::Dict(Dict::new(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.as_bytes(), v))
                    .collect(),
            )))
        };
        let hash: &'static [u8] = &[1; 20];
        let good = || {
            vec![
                (KEY_VERSION, Value::Int(1)),
                (KEY_INFO_HASH, Value::Bytes(hash)),
                (KEY_PIECES, Value::Int(9)),
                (KEY_HAVE, Value::Bytes(&[0xff, 0x80])),
                (KEY_FILES, Value::List(List::new(vec![]))),
            ]
        };
        let with = |key: &'static str, v: Value<'static>| {
            let mut e = good();
            for entry in &mut e {
                if entry.0 == key {
                    entry.1 = v.clone();
                }
            }
            ResumeData::decode(&enc(e))
        };
        let ok = ResumeData::decode(&enc(good())).unwrap();
        assert_eq!(ok.have.count_ones(), 9);
        assert_eq!(
            with(KEY_VERSION, Value::Int(2)),
            Err(ResumeError::UnsupportedVersion(2))
        );
        assert_eq!(
            with(KEY_INFO_HASH, Value::Bytes(b"short")),
            Err(ResumeError::BadInfoHash(5))
        );
        assert_eq!(
            with(KEY_PIECES, Value::Int(-1)),
            Err(ResumeError::BadPieceCount(-1))
        );
        assert!(matches!(
            with(KEY_PIECES, Value::Int(100)),
            Err(ResumeError::Bitfield(BitfieldError::WrongLength { .. }))
        ));
        assert_eq!(
            with(KEY_HAVE, Value::Int(3)),
            Err(ResumeError::WrongType {
                key: KEY_HAVE,
                expected: "a byte string"
            })
        );
        let mut missing = good();
        missing.retain(|e| e.0 != KEY_FILES);
        assert_eq!(
            ResumeData::decode(&enc(missing)),
            Err(ResumeError::Missing { key: KEY_FILES })
        );
        let file = |entries: Vec<(&'static [u8], Value<'static>)>| {
            with(
                KEY_FILES,
                Value::List(List::new(vec![Value::Dict(Dict::new(entries))])),
            )
        };
        assert!(matches!(
            file(vec![(b"length", Value::Int(1))]),
            Err(ResumeError::BadFileState { index: 0, .. })
        ));
        assert!(matches!(
            file(vec![
                (b"length", Value::Int(-1)),
                (b"mtime", Value::Int(0)),
                (b"mtime ns", Value::Int(0))
            ]),
            Err(ResumeError::BadFileState {
                what: "negative length",
                ..
            })
        ));
        assert!(matches!(
            file(vec![
                (b"length", Value::Int(1)),
                (b"mtime", Value::Int(0)),
                (b"mtime ns", Value::Int(1_000_000_000))
            ]),
            Err(ResumeError::BadFileState { .. })
        ));
        let e = with(KEY_VERSION, Value::Int(7)).unwrap_err();
        assert!(e.to_string().contains("version 7"), "{e}");
    }

    #[test]
    fn matching_a_torrent() {
        let i = info(16, &[(10, false), (6, true), (40, false)]);
        let good = ResumeData::new(InfoHash([1; 20]), Bitfield::new(4), vec![None, None, None]);
        assert_eq!(good.check_matches(&InfoHash([1; 20]), &i), Ok(()));
        assert!(matches!(
            good.check_matches(&InfoHash([2; 20]), &i),
            Err(ResumeError::OtherTorrent { .. })
        ));
        let mut wrong = good.clone();
        wrong.files.pop();
        assert_eq!(
            wrong.check_matches(&InfoHash([1; 20]), &i),
            Err(ResumeError::FileCountMismatch {
                expected: 3,
                found: 2
            })
        );
        let wrong = ResumeData::new(InfoHash([1; 20]), Bitfield::new(5), vec![None; 3]);
        assert!(matches!(
            ResumeData::decode_for(&wrong.encode(), &InfoHash([1; 20]), &i),
            Err(ResumeError::PieceCountMismatch {
                expected: 4,
                found: 5
            })
        ));
    }

    #[test]
    fn trust_follows_file_states() {
        // Pieces of 16: files a=10 [0,10), pad=6 [10,16), b=40 [16,56), c=8 [56,64).
        // Piece 0: a (+pad); pieces 1, 2: b; piece 3: b and c.
        let i = info(16, &[(10, false), (6, true), (40, false), (8, false)]);
        let saved = vec![state(10, 100), None, state(40, 200), state(8, 300)];
        let r = ResumeData::new(InfoHash([0; 20]), Bitfield::full(4), saved.clone());
        let ones = |b: Bitfield| b.ones().collect::<Vec<_>>();
        assert_eq!(ones(r.trusted_pieces(&i, &saved)), vec![0, 1, 2, 3]);
        assert!(r.pieces_to_check(&i, &saved).is_empty());

        // c was written since: only the piece touching c is rechecked.
        let mut now = saved.clone();
        now[3] = state(8, 301);
        assert_eq!(ones(r.trusted_pieces(&i, &now)), vec![0, 1, 2]);
        assert_eq!(ones(r.pieces_to_check(&i, &now)), vec![3]);

        // b changed length: pieces 1..=3 are rechecked.
        let mut now = saved.clone();
        now[2] = state(41, 200);
        assert_eq!(ones(r.trusted_pieces(&i, &now)), vec![0]);

        // a is missing now.
        let mut now = saved.clone();
        now[0] = None;
        assert_eq!(ones(r.trusted_pieces(&i, &now)), vec![1, 2, 3]);

        // Only pieces in `have` are ever trusted.
        let mut have = Bitfield::new(4);
        have.set(2);
        let r2 = ResumeData::new(InfoHash([0; 20]), have, saved.clone());
        assert_eq!(ones(r2.trusted_pieces(&i, &saved)), vec![2]);
        assert_eq!(ones(r2.pieces_to_check(&i, &saved)), vec![0, 1, 3]);

        // A file saved shorter than the piece needs (consistent but incomplete) is not
        // trusted for the bytes it lacks.
        let short = vec![state(10, 100), None, state(20, 200), state(8, 300)];
        let r3 = ResumeData::new(InfoHash([0; 20]), Bitfield::full(4), short.clone());
        assert_eq!(ones(r3.trusted_pieces(&i, &short)), vec![0, 1]);

        // Mismatched shapes trust nothing.
        assert!(r.trusted_pieces(&i, &saved[..3]).is_empty());
        let other = info(16, &[(10, false), (6, true), (40, false), (9, false)]);
        assert!(r.trusted_pieces(&other, &saved).is_empty());
    }

    #[test]
    fn written_round_trips_and_is_optional() {
        let mut w = Bitfield::new(13);
        w.set(5);
        let r = sample().with_written(w);
        let written = r.written.clone().unwrap();
        // `have` is always part of it.
        assert_eq!(written.ones().collect::<Vec<_>>(), vec![0, 3, 5, 8, 12]);
        let bytes = r.encode();
        assert!(bencode::decode_strict(&bytes).is_ok());
        assert_eq!(ResumeData::decode(&bytes).unwrap(), r);
        // A file without the key (older versions) decodes with `None`.
        let old = sample();
        assert!(!old.encode().windows(7).any(|w| w == b"written"));
        assert_eq!(ResumeData::decode(&old.encode()).unwrap().written, None);
        // A wrong length is refused like a bad `have`.
        let mut bad = sample();
        bad.written = Some(Bitfield::new(20));
        assert!(matches!(
            ResumeData::decode(&bad.encode()),
            Err(ResumeError::Bitfield(_))
        ));
        // A length that does not fit is dropped rather than saved wrong.
        assert_eq!(sample().with_written(Bitfield::new(2)).written, None);
    }

    #[test]
    fn known_empty_needs_written_and_unchanged_files() {
        // Pieces of 16: a=10 [0,10), pad=6, b=40 [16,56), c=8 [56,64).
        let i = info(16, &[(10, false), (6, true), (40, false), (8, false)]);
        let saved = vec![state(10, 100), None, state(40, 200), None];
        let mut have = Bitfield::new(4);
        have.set(0);
        let mut written = Bitfield::new(4);
        written.set(1);
        let r = ResumeData::new(InfoHash([0; 20]), have, saved.clone()).with_written(written);
        let ones = |b: Bitfield| b.ones().collect::<Vec<_>>();
        // Piece 2 (b only) and piece 3 (b and c, c missing then and now) are known empty.
        assert_eq!(ones(r.known_empty(&i, &saved)), vec![2, 3]);
        // b changed: nothing in it is known empty.
        let mut now = saved.clone();
        now[2] = state(40, 201);
        assert!(r.known_empty(&i, &now).is_empty());
        // c appeared: piece 3 may hold data now.
        let mut now = saved.clone();
        now[3] = state(8, 5);
        assert_eq!(ones(r.known_empty(&i, &now)), vec![2]);
        // Without `written` nothing is known empty.
        let mut old = r.clone();
        old.written = None;
        assert!(old.known_empty(&i, &saved).is_empty());
    }
}
