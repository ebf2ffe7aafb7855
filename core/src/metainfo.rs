//! `.torrent` files (BEP 3 v1 metainfo), with BEP 12 tracker tiers, BEP 19 web seeds,
//! BEP 27 private flag and BEP 47 file attributes (padding files of hybrid v1+v2 torrents).
//!
//! Decoding is lenient about bencode form (real files have unsorted keys), but the
//! info-hash is SHA-1 over the `info` dictionary's bytes *exactly as they appear in the
//! file*, so a non-canonical file still gets the hash every other client computes.
//!
//! Validation: everything under `info` defines the content and is checked strictly —
//! required keys, types, lengths, the piece hash count, and every path component (see
//! [`check_component`]); each error names the key (`info.files[3].length`). Outside `info`:
//! `announce`, `announce-list` and `url-list` must have the right types (a tier given as a
//! bare string is taken as a one-tracker tier, empty URLs and empty tiers are dropped);
//! `comment` and `created by` are human text, decoded lossily when not UTF-8 (their
//! `.utf-8` variants preferred); `creation date` must be an integer.
//!
//! BitTorrent v2 (BEP 52) and hybrid v1+v2 torrents (libtorrent 2.0's default): the v2
//! parts (`meta version`, `file tree`, `piece layers`) are read into [`Metainfo::v2`]
//! ([`V2Info`]: the SHA-256 info-hash, the files with their `pieces root` and piece layer,
//! each layer checked against its root with [`merkle`]). A hybrid's v1 part is read too —
//! `files` with its BEP 47 padding files, `pieces` — and must list the same files as its
//! `file tree` ([`V2Error`]). Padding files stay in [`Info::files`] because they occupy
//! torrent offsets, flagged [`FileEntry::padding`]: storage must never create them and
//! treats their bytes as zeros. A v2-only torrent has no v1 pieces ([`Info::piece_hashes`]
//! is empty, [`Metainfo::is_v2_only`]): it can be shown, not yet downloaded.
//!
//! Limits on the torrent's shape (file count, path lengths) are a separate, configurable
//! check after parsing: [`Info::check_shape`] with [`ShapeLimits`].
//!
//! Not supported: symlink entries (BEP 47 `l`; they are read as ordinary files of their
//! declared length), per-file `sha1`, a torrent with no data (total length 0).

use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;

use crate::bencode::{self, DecodeError, Dict, List, Value};
use crate::info_hash::{InfoHash, InfoHashV2};
use crate::layout::Layout;

pub mod merkle;
mod prescan;
mod shape;
mod v2;
pub use shape::{DEFAULT_MAX_FILES, DEFAULT_MAX_PATH_LEN, ShapeError, ShapeLimits};
pub use v2::{MAX_TREE_DEPTH, MIN_PIECE_LENGTH_V2, V2Error, V2File, V2Info};

/// The largest piece length accepted: 256 MiB.
pub const MAX_PIECE_LENGTH: u32 = 256 << 20;

/// The longest path component accepted, in bytes (the common file-system limit).
pub const MAX_COMPONENT_LEN: usize = 255;

/// Why a `.torrent` file (or a bare info dictionary) was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetainfoError {
    /// The bytes are not valid bencode (the error carries the byte offset).
    #[error(transparent)]
    Bencode(#[from] DecodeError),
    /// The torrent is beyond the shape limits in force (too many files, a path too long):
    /// refused before anything is created for it.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// The top-level value (of the file, or of a bare info dictionary) is not a dictionary.
    #[error("{what} is not a bencoded dictionary (found {found})")]
    NotADictionary {
        /// "the torrent file" or "the info dictionary".
        what: &'static str,
        /// What was found instead, with its article ("a list").
        found: &'static str,
    },
    /// A required key is absent.
    #[error("missing key `{key}`")]
    MissingKey {
        /// Dotted path of the key, e.g. `info.files[3].length`.
        key: String,
    },
    /// A key holds a value of the wrong type.
    #[error("`{key}` should be {expected}, found {found}")]
    WrongType {
        /// Dotted path of the key.
        key: String,
        /// The type wanted ("an integer").
        expected: &'static str,
        /// The type found ("a byte string").
        found: &'static str,
    },
    /// A string that must be UTF-8 (a tracker URL) is not.
    #[error("`{key}` is not valid UTF-8")]
    NotUtf8 {
        /// Dotted path of the key.
        key: String,
    },
    /// `piece length` is 0, negative or above [`MAX_PIECE_LENGTH`].
    #[error(
        "`info.piece length` is {value}; it must be between 1 and {MAX_PIECE_LENGTH} (256 MiB)"
    )]
    BadPieceLength {
        /// The value found.
        value: i64,
    },
    /// `pieces` is not a whole number of 20-byte SHA-1 hashes.
    #[error("`info.pieces` is {len} bytes long, not a multiple of 20")]
    PiecesNotMultipleOf20 {
        /// Its length in bytes.
        len: usize,
    },
    /// `pieces` holds a different number of hashes than the content needs.
    #[error(
        "`info.pieces` holds {found} hashes, but {total_length} bytes in pieces of \
         {piece_length} bytes need {expected}"
    )]
    PieceCountMismatch {
        /// Hashes present.
        found: u64,
        /// Hashes needed: `ceil(total_length / piece_length)`.
        expected: u64,
        /// The content's total length.
        total_length: u64,
        /// The piece length.
        piece_length: u32,
    },
    /// The content needs more pieces than a `u32` can count.
    #[error(
        "the content needs {pieces} pieces, more than {} a piece index can hold",
        u32::MAX
    )]
    TooManyPieces {
        /// Pieces needed.
        pieces: u64,
    },
    /// A file length is negative.
    #[error("`{key}` is negative ({value})")]
    NegativeLength {
        /// Dotted path of the key.
        key: String,
        /// The value found.
        value: i64,
    },
    /// The file lengths add up past `u64::MAX`.
    #[error("the total length overflows 64 bits at `{key}`")]
    TotalOverflow {
        /// The length that made the sum overflow.
        key: String,
    },
    /// `info.files` is an empty list.
    #[error("`info.files` is empty")]
    NoFiles,
    /// Every file is empty: there is nothing to share.
    #[error("the torrent holds no data (total length 0)")]
    NoData,
    /// Neither `length` nor `files` is in the info dictionary.
    #[error("missing key `info.length` (single file) or `info.files` (several files)")]
    NoLengthOrFiles,
    /// The v2 (BEP 52) part is invalid, or a hybrid's v1 and v2 parts disagree.
    #[error(transparent)]
    V2(#[from] V2Error),
    /// A file's path is an empty list.
    #[error("`{key}` is an empty path")]
    EmptyPath {
        /// Dotted path of the key, e.g. `info.files[3].path`.
        key: String,
    },
    /// A path component (or the torrent's name) is not acceptable as a file name.
    #[error("`{key}` ({component:?}) is not allowed as a file name: {reason}")]
    BadPathComponent {
        /// Where: `info.name` or `info.files[3].path[1]`.
        key: String,
        /// The component, lossily decoded.
        component: String,
        /// What is wrong with it.
        reason: ComponentError,
    },
    /// Two files have the same path.
    #[error("`info.files[{index}]` has the same path ({path}) as `info.files[{first}]`")]
    DuplicatePath {
        /// The later file.
        index: usize,
        /// The earlier file.
        first: usize,
        /// The path, components joined by `/`.
        path: String,
    },
    /// A file's path is also used as a directory by another file.
    #[error("`info.files[{file}]` ({path}) is used as a directory by `info.files[{inside}]`")]
    FileIsDirectory {
        /// The file whose path is another's directory.
        file: usize,
        /// A file inside that "directory".
        inside: usize,
        /// The path, components joined by `/`.
        path: String,
    },
}

/// Why a single path component is not an acceptable file name (see [`check_component`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ComponentError {
    /// An empty component (`a//b`).
    #[error("empty name")]
    Empty,
    /// `.`
    #[error("\".\" refers to the directory itself")]
    CurrentDir,
    /// `..`
    #[error("\"..\" would leave the download directory")]
    ParentDir,
    /// Starts with `/` or `\` (or a drive letter on Windows).
    #[error("absolute path")]
    Absolute,
    /// Holds `/` or `\`.
    #[error("contains the path separator {0:?}")]
    Separator(char),
    /// Holds a NUL byte.
    #[error("contains a NUL byte")]
    Nul,
    /// Longer than [`MAX_COMPONENT_LEN`] bytes.
    #[error("{0} bytes long, more than the {MAX_COMPONENT_LEN} file systems allow")]
    TooLong(usize),
    /// A name Windows reserves for devices (`CON`, `NUL`, `COM1`, `lpt2.txt`, …): refused on
    /// every system so torrents stay portable.
    #[error("a device name reserved on Windows")]
    Reserved,
    /// A character this operating system forbids in file names (only on Windows:
    /// `< > : " | ? *` and control characters).
    #[error("contains {0:?}, not allowed in file names on this system")]
    InvalidChar(char),
    /// Not UTF-8, and no valid `.utf-8` variant was given.
    #[error("not valid UTF-8")]
    NotUtf8,
}

/// Checks that `component` is acceptable as one file or directory name on any common file
/// system, and safe: it cannot name anything outside the download directory.
///
/// Refused: empty, `.`, `..`, a leading `/` or `\`, `/` or `\` inside, NUL, more than
/// [`MAX_COMPONENT_LEN`] bytes, Windows device names (`CON`, `PRN`, `AUX`, `NUL`,
/// `COM1`–`COM9`, `LPT1`–`LPT9`, in any case and with any extension) and, on Windows only,
/// the characters Windows forbids and a trailing dot or space.
pub fn check_component(component: &str) -> Result<(), ComponentError> {
    match component {
        "" => return Err(ComponentError::Empty),
        "." => return Err(ComponentError::CurrentDir),
        ".." => return Err(ComponentError::ParentDir),
        _ => {}
    }
    if component.starts_with(['/', '\\']) {
        return Err(ComponentError::Absolute);
    }
    if let Some(sep) = component.chars().find(|&c| c == '/' || c == '\\') {
        return Err(ComponentError::Separator(sep));
    }
    if component.contains('\0') {
        return Err(ComponentError::Nul);
    }
    if component.len() > MAX_COMPONENT_LEN {
        return Err(ComponentError::TooLong(component.len()));
    }
    if is_windows_reserved(component) {
        return Err(ComponentError::Reserved);
    }
    if cfg!(windows) {
        let b = component.as_bytes();
        if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
            return Err(ComponentError::Absolute);
        }
        if let Some(c) = component
            .chars()
            .find(|&c| matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') || c < ' ')
        {
            return Err(ComponentError::InvalidChar(c));
        }
        if let Some(c) = component.chars().last().filter(|&c| c == '.' || c == ' ') {
            return Err(ComponentError::InvalidChar(c));
        }
    }
    Ok(())
}

/// `CON`, `con.txt`, `Com1.tar.gz`, `NUL ` …: the part before the first dot, trailing
/// spaces removed, compared without case.
fn is_windows_reserved(component: &str) -> bool {
    let stem = component
        .split('.')
        .next()
        .unwrap_or("")
        .trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" => true,
        s if s.len() == 4 && (s.starts_with("COM") || s.starts_with("LPT")) => {
            matches!(s.as_bytes()[3], b'1'..=b'9')
        }
        _ => false,
    }
}

/// A parsed `.torrent` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metainfo {
    /// The 20-byte hash the torrent goes by on the wire: SHA-1 of the raw `info` dictionary
    /// (its v1 identity) for a v1 or hybrid torrent; the truncated v2 info-hash
    /// ([`InfoHashV2::truncated`]) for a v2-only one.
    pub info_hash: InfoHash,
    /// The v2 (BEP 52) metadata of a v2-only or hybrid torrent; `None` for a v1 torrent.
    pub v2: Option<V2Info>,
    /// The `info` dictionary's bytes exactly as in the file (BEP 9 serves them to peers).
    pub info_bytes: Bytes,
    /// The parsed `info` dictionary.
    pub info: Info,
    /// `announce`: the single tracker URL (absent or empty: `None`).
    pub announce: Option<String>,
    /// `announce-list` (BEP 12): tracker tiers in file order; empty if absent.
    pub announce_list: Vec<Vec<String>>,
    /// `url-list` (BEP 19): web seed URLs.
    pub url_list: Vec<String>,
    /// `comment` (`comment.utf-8` preferred).
    pub comment: Option<String>,
    /// `created by` (`created by.utf-8` preferred).
    pub created_by: Option<String>,
    /// `creation date`: seconds since the Unix epoch.
    pub creation_date: Option<i64>,
}

/// The parsed `info` dictionary: what the content is and how it is cut into pieces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// `name`: the file name (single-file) or the top directory's name (multi-file);
    /// `name.utf-8` preferred. Checked with [`check_component`].
    pub name: String,
    /// `piece length`, 1 ..= [`MAX_PIECE_LENGTH`].
    pub piece_length: u32,
    /// `pieces`: one SHA-1 per piece; empty for a v2-only torrent (see [`Metainfo::v2`]).
    pub piece_hashes: Vec<[u8; 20]>,
    /// `private` (BEP 27): only the torrent's trackers may be used to find peers.
    pub private: bool,
    /// True when the `files` key was used (the content lives in a directory `name`).
    pub multi_file: bool,
    /// The files in content order; a single-file torrent has one entry with `path = [name]`.
    pub files: Vec<FileEntry>,
    /// Sum of all file lengths, padding files included.
    pub total_length: u64,
}

/// One file of a torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components; for a multi-file torrent relative to the `name` directory.
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
    /// Offset of the file's first byte in the torrent's concatenated content.
    pub offset: u64,
    /// A BEP 47 padding file (`attr` holds `p`): never written to disk, its bytes are zeros.
    pub padding: bool,
    /// BEP 47 `x`: the file should be executable.
    pub executable: bool,
    /// BEP 47 `h`: the file should be hidden.
    pub hidden: bool,
}

impl Metainfo {
    /// Parses a `.torrent` file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
        let root = bencode::decode(bytes)?;
        let root = root.as_dict().ok_or(MetainfoError::NotADictionary {
            what: "the torrent file",
            found: with_article(&root),
        })?;
        let info_value = root
            .get(b"info")
            .ok_or_else(|| missing(Loc::Root, "info"))?;
        let info_dict = info_value
            .as_dict()
            .ok_or_else(|| wrong_type(Loc::Root, "info", "a dictionary", info_value))?;
        // Always present for a decoded dictionary; the fallback only keeps this panic-free.
        let raw = info_dict
            .raw()
            .ok_or_else(|| wrong_type(Loc::Root, "info", "a dictionary", info_value))?;
        let empty = Dict::new(Vec::new());
        let layers = v2::piece_layers(root)?.unwrap_or(&empty);
        let (info_hash, info, v2) = info_part(info_dict, raw, Some(layers))?;

        let announce = match get_bytes(root, Loc::Root, "announce")? {
            Some(b) => Some(utf8(b, Loc::Root, "announce")?).filter(|s| !s.is_empty()),
            None => None,
        };
        let announce_list = parse_announce_list(root)?;
        let url_list = parse_url_list(root)?;
        let comment = get_text(root, "comment")?;
        let created_by = get_text(root, "created by")?;
        let creation_date = get_int(root, Loc::Root, "creation date")?;

        Ok(Metainfo {
            info_hash,
            v2,
            info_bytes: Bytes::copy_from_slice(raw),
            info,
            announce,
            announce_list,
            url_list,
            comment,
            created_by,
            creation_date,
        })
    }

    /// A metainfo made from a bare info dictionary (as fetched with BEP 9 for a magnet
    /// link): no trackers, no comment. The info-hash is SHA-1 of `raw_info` (the truncated
    /// SHA-256 for a v2-only dictionary). A v2 part's piece layers are not known
    /// ([`V2Info::piece_layers_known`]): they come from peers.
    pub fn from_info_bytes(raw_info: &[u8]) -> Result<Metainfo, MetainfoError> {
        let v = bencode::decode(raw_info)?;
        let d = v.as_dict().ok_or(MetainfoError::NotADictionary {
            what: "the info dictionary",
            found: with_article(&v),
        })?;
        let (info_hash, info, v2) = info_part(d, raw_info, None)?;
        Ok(Metainfo {
            info_hash,
            v2,
            info_bytes: Bytes::copy_from_slice(raw_info),
            info,
            announce: None,
            announce_list: Vec::new(),
            url_list: Vec::new(),
            comment: None,
            created_by: None,
            creation_date: None,
        })
    }

    /// A v2-only torrent: BEP 52 metadata and no v1 pieces. Downloading one is not built
    /// yet; [`Session::add_torrent`](crate::session::Session::add_torrent) refuses it.
    pub fn is_v2_only(&self) -> bool {
        self.v2.is_some() && self.info.piece_hashes.is_empty()
    }

    /// A hybrid torrent: both v1 pieces and v2 metadata, describing the same files.
    pub fn is_hybrid(&self) -> bool {
        self.v2.is_some() && !self.info.piece_hashes.is_empty()
    }

    /// The trackers to use, as BEP 12 tiers: `announce-list` if it has any tracker, else
    /// `[[announce]]` if present, else nothing.
    pub fn tracker_tiers(&self) -> Vec<Vec<String>> {
        if !self.announce_list.is_empty() {
            self.announce_list.clone()
        } else if let Some(a) = &self.announce {
            vec![vec![a.clone()]]
        } else {
            Vec::new()
        }
    }

    /// Where file `file_index` goes, relative to the download directory (see
    /// [`Info::file_path`]); `None` for an index past the end.
    pub fn save_path_of(&self, file_index: usize) -> Option<PathBuf> {
        self.info.file_path(file_index)
    }
}

impl Info {
    /// Parses a bare bencoded info dictionary (e.g. metadata fetched for a magnet link).
    pub fn from_bytes(raw_info: &[u8]) -> Result<Info, MetainfoError> {
        let v = bencode::decode(raw_info)?;
        let d = v.as_dict().ok_or(MetainfoError::NotADictionary {
            what: "the info dictionary",
            found: with_article(&v),
        })?;
        Ok(Info::parse_dict(d)?.0)
    }

    /// How many pieces the content makes (for a v1 torrent, one per hash).
    pub fn piece_count(&self) -> u32 {
        // From the geometry, not `piece_hashes` (empty for a v2-only torrent); for a v1
        // torrent the parser checked they agree, and that the count fits a u32.
        let count = self
            .total_length
            .div_ceil(u64::from(self.piece_length.max(1)));
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// The SHA-1 of `piece`, or `None` past the end.
    pub fn piece_hash(&self, piece: u32) -> Option<&[u8; 20]> {
        self.piece_hashes.get(piece as usize)
    }

    /// The piece/file geometry (padding files included, as they occupy offsets).
    ///
    /// Always exact for an `Info` from [`Info::from_bytes`] or [`Metainfo::from_bytes`]; if
    /// the public fields were later changed into something invalid (zero piece length,
    /// overflowing lengths), the layout is empty.
    pub fn layout(&self) -> Layout {
        Layout::new(self.piece_length, self.files.iter().map(|f| f.length))
            .unwrap_or_else(|_| Layout::empty(self.piece_length))
    }

    /// Where file `index` goes relative to the download directory: `name` for a
    /// single-file torrent, `name/a/b` for a multi-file one; `None` past the end.
    pub fn file_path(&self, index: usize) -> Option<PathBuf> {
        let file = self.files.get(index)?;
        if !self.multi_file {
            return Some(PathBuf::from(&self.name));
        }
        let mut p = PathBuf::from(&self.name);
        p.extend(&file.path);
        Some(p)
    }

    /// The v1 view of an info dictionary and, when `meta version` is 2, its v2 file tree
    /// (checked against the v1 files for a hybrid).
    fn parse_dict(d: &Dict<'_>) -> Result<(Info, Option<v2::V2Tree>), MetainfoError> {
        let loc = Loc::Info;
        let is_v2 = v2::meta_version(d)?;
        let tree = if is_v2 {
            Some(v2::parse_tree(d)?)
        } else {
            None
        };
        let pieces = match (get_bytes(d, loc, "pieces")?, tree) {
            (Some(p), tree) => {
                let info = Info::from_v1_dict(d, p)?;
                if let Some(t) = &tree {
                    v2::check_hybrid(&info.files, info.piece_length, &t.files)?;
                }
                return Ok((info, tree));
            }
            (None, Some(tree)) => tree,
            (None, None) => return Err(missing(loc, "pieces")),
        };
        // v2-only: the v1 view has the files and no pieces.
        let name = name_of(d)?;
        let (files, total_length) = v2::v1_entries(&pieces, &name)?;
        if total_length == 0 {
            return Err(MetainfoError::NoData);
        }
        let multi_file = !pieces.single_file;
        if multi_file {
            check_unique_paths(&files)?;
        }
        let info = Info {
            name,
            piece_length: pieces.piece_length,
            piece_hashes: Vec::new(),
            private: get_int(d, loc, "private")?.is_some_and(|p| p != 0),
            multi_file,
            files,
            total_length,
        };
        Ok((info, Some(pieces)))
    }

    /// The v1 part of an info dictionary whose `pieces` is `pieces`.
    fn from_v1_dict(d: &Dict<'_>, pieces: &[u8]) -> Result<Info, MetainfoError> {
        let loc = Loc::Info;
        let name = name_of(d)?;
        let piece_length = require(get_int(d, loc, "piece length")?, loc, "piece length")?;
        let piece_length = u32::try_from(piece_length)
            .ok()
            .filter(|p| (1..=MAX_PIECE_LENGTH).contains(p))
            .ok_or(MetainfoError::BadPieceLength {
                value: piece_length,
            })?;
        if pieces.len() % 20 != 0 {
            return Err(MetainfoError::PiecesNotMultipleOf20 { len: pieces.len() });
        }
        let private = get_int(d, loc, "private")?.is_some_and(|p| p != 0);

        let (multi_file, files, total_length) = match d.get(b"files") {
            Some(v) => {
                let list = v
                    .as_list()
                    .ok_or_else(|| wrong_type(loc, "files", "a list", v))?;
                let (files, total) = parse_files(list)?;
                (true, files, total)
            }
            None => {
                let length = get_int(d, loc, "length")?.ok_or(MetainfoError::NoLengthOrFiles)?;
                let length = non_negative(length, || loc.key("length"))?;
                let file = FileEntry {
                    path: vec![name.clone()],
                    length,
                    offset: 0,
                    padding: false,
                    executable: false,
                    hidden: false,
                };
                let file = apply_attr(file, d, loc)?;
                (false, vec![file], length)
            }
        };
        if total_length == 0 {
            return Err(MetainfoError::NoData);
        }
        let expected = total_length.div_ceil(u64::from(piece_length));
        let found = (pieces.len() / 20) as u64;
        if found != expected {
            if expected > u64::from(u32::MAX) {
                return Err(MetainfoError::TooManyPieces { pieces: expected });
            }
            return Err(MetainfoError::PieceCountMismatch {
                found,
                expected,
                total_length,
                piece_length,
            });
        }
        if expected > u64::from(u32::MAX) {
            return Err(MetainfoError::TooManyPieces { pieces: expected });
        }
        let piece_hashes = pieces
            .chunks_exact(20)
            .map(|c| {
                let mut h = [0u8; 20];
                h.copy_from_slice(c);
                h
            })
            .collect();
        if multi_file {
            check_unique_paths(&files)?;
        }
        Ok(Info {
            name,
            piece_length,
            piece_hashes,
            private,
            multi_file,
            files,
            total_length,
        })
    }
}

/// The info dictionary `d` (whose raw bytes are `raw`) read: the wire info-hash, the v1
/// view, the v2 metadata. `layers` is the top-level `piece layers` (required for files of
/// more than one piece), or `None` for a bare info dictionary (layers unknown).
fn info_part(
    d: &Dict<'_>,
    raw: &[u8],
    layers: Option<&Dict<'_>>,
) -> Result<(InfoHash, Info, Option<V2Info>), MetainfoError> {
    let (info, tree) = Info::parse_dict(d)?;
    let v2 = match tree {
        Some(mut tree) => {
            let known = v2::attach_layers(&mut tree, layers)?;
            Some(V2Info {
                info_hash: InfoHashV2::of_info_bytes(raw),
                piece_length: tree.piece_length,
                files: tree.files,
                piece_layers_known: known,
            })
        }
        None => None,
    };
    let info_hash = match &v2 {
        Some(v2) if info.piece_hashes.is_empty() => v2.info_hash.truncated(),
        _ => InfoHash::of_info_bytes(raw),
    };
    Ok((info_hash, info, v2))
}

/// `name` (`name.utf-8` preferred when it is valid UTF-8), checked as a path component.
fn name_of(d: &Dict<'_>) -> Result<String, MetainfoError> {
    let utf8_variant = d.get(b"name.utf-8").and_then(Value::as_str);
    let raw = require(get_bytes(d, Loc::Info, "name")?, Loc::Info, "name")?;
    let name = match utf8_variant {
        Some(s) => s,
        None => std::str::from_utf8(raw).map_err(|_| MetainfoError::BadPathComponent {
            key: "info.name".into(),
            component: String::from_utf8_lossy(raw).into_owned(),
            reason: ComponentError::NotUtf8,
        })?,
    };
    check_component(name).map_err(|reason| MetainfoError::BadPathComponent {
        key: "info.name".into(),
        component: name.to_owned(),
        reason,
    })?;
    Ok(name.to_owned())
}

/// The entries of `info.files`, with their offsets, and the total length.
fn parse_files(list: &List<'_>) -> Result<(Vec<FileEntry>, u64), MetainfoError> {
    if list.items().is_empty() {
        return Err(MetainfoError::NoFiles);
    }
    let mut files = Vec::with_capacity(list.items().len());
    let mut total: u64 = 0;
    for (i, item) in list.items().iter().enumerate() {
        let loc = Loc::File(i);
        let d = item.as_dict().ok_or_else(|| MetainfoError::WrongType {
            key: format!("info.files[{i}]"),
            expected: "a dictionary",
            found: with_article(item),
        })?;
        let length = require(get_int(d, loc, "length")?, loc, "length")?;
        let length = non_negative(length, || loc.key("length"))?;
        let path = file_path(d, i)?;
        let entry = FileEntry {
            path,
            length,
            offset: total,
            padding: false,
            executable: false,
            hidden: false,
        };
        files.push(apply_attr(entry, d, loc)?);
        total = total
            .checked_add(length)
            .ok_or_else(|| MetainfoError::TotalOverflow {
                key: loc.key("length"),
            })?;
    }
    Ok((files, total))
}

/// A file's `path` (`path.utf-8` preferred when it is a list of UTF-8 strings), checked.
fn file_path(d: &Dict<'_>, i: usize) -> Result<Vec<String>, MetainfoError> {
    let loc = Loc::File(i);
    let utf8_variant: Option<Vec<&str>> = d
        .get(b"path.utf-8")
        .and_then(Value::as_list)
        .and_then(|l| l.items().iter().map(Value::as_str).collect());
    let list = require(get_list(d, loc, "path")?, loc, "path")?;
    let components: Vec<&str> = match utf8_variant {
        Some(c) => c,
        None => {
            let mut out = Vec::with_capacity(list.items().len());
            for (j, c) in list.items().iter().enumerate() {
                let bytes = c.as_bytes().ok_or_else(|| MetainfoError::WrongType {
                    key: format!("info.files[{i}].path[{j}]"),
                    expected: "a byte string",
                    found: with_article(c),
                })?;
                let s =
                    std::str::from_utf8(bytes).map_err(|_| MetainfoError::BadPathComponent {
                        key: format!("info.files[{i}].path[{j}]"),
                        component: String::from_utf8_lossy(bytes).into_owned(),
                        reason: ComponentError::NotUtf8,
                    })?;
                out.push(s);
            }
            out
        }
    };
    if components.is_empty() {
        return Err(MetainfoError::EmptyPath {
            key: loc.key("path"),
        });
    }
    for (j, c) in components.iter().enumerate() {
        check_component(c).map_err(|reason| MetainfoError::BadPathComponent {
            key: format!("info.files[{i}].path[{j}]"),
            component: (*c).to_owned(),
            reason,
        })?;
    }
    Ok(components.into_iter().map(str::to_owned).collect())
}

/// Reads the BEP 47 `attr` string into the entry's flags.
fn apply_attr(mut f: FileEntry, d: &Dict<'_>, loc: Loc) -> Result<FileEntry, MetainfoError> {
    if let Some(attr) = get_bytes(d, loc, "attr")? {
        f.padding = attr.contains(&b'p');
        f.executable = attr.contains(&b'x');
        f.hidden = attr.contains(&b'h');
    }
    Ok(f)
}

/// Refuses two non-padding files with the same path, or a file whose path is another
/// file's directory. (Padding files may repeat: libtorrent names them `.pad/<size>`.)
fn check_unique_paths(files: &[FileEntry]) -> Result<(), MetainfoError> {
    let mut order: Vec<usize> = (0..files.len()).filter(|&i| !files[i].padding).collect();
    order.sort_by(|&a, &b| files[a].path.cmp(&files[b].path).then(a.cmp(&b)));
    // Sorted by components, a path that is a prefix of others comes right before the
    // first of them, so comparing neighbours finds every clash.
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let (pa, pb) = (&files[a].path, &files[b].path);
        if pa == pb {
            return Err(MetainfoError::DuplicatePath {
                index: b,
                first: a,
                path: pa.join("/"),
            });
        }
        if pb.starts_with(pa) {
            return Err(MetainfoError::FileIsDirectory {
                file: a,
                inside: b,
                path: pa.join("/"),
            });
        }
    }
    Ok(())
}

fn parse_announce_list(root: &Dict<'_>) -> Result<Vec<Vec<String>>, MetainfoError> {
    let Some(list) = get_list(root, Loc::Root, "announce-list")? else {
        return Ok(Vec::new());
    };
    let mut tiers = Vec::new();
    for (i, tier) in list.items().iter().enumerate() {
        let mut urls = Vec::new();
        match tier {
            // Some creators write a flat list of URLs: each is then a tier of its own.
            Value::Bytes(b) => urls.push(utf8_at(b, || format!("announce-list[{i}]"))?),
            Value::List(l) => {
                for (j, u) in l.items().iter().enumerate() {
                    let key = || format!("announce-list[{i}][{j}]");
                    let b = u.as_bytes().ok_or_else(|| MetainfoError::WrongType {
                        key: key(),
                        expected: "a byte string",
                        found: with_article(u),
                    })?;
                    urls.push(utf8_at(b, key)?);
                }
            }
            other => {
                return Err(MetainfoError::WrongType {
                    key: format!("announce-list[{i}]"),
                    expected: "a list",
                    found: with_article(other),
                });
            }
        }
        urls.retain(|u| !u.is_empty());
        if !urls.is_empty() {
            tiers.push(urls);
        }
    }
    Ok(tiers)
}

fn parse_url_list(root: &Dict<'_>) -> Result<Vec<String>, MetainfoError> {
    let mut urls = Vec::new();
    match root.get(b"url-list") {
        None => {}
        Some(Value::Bytes(b)) => urls.push(utf8_at(b, || "url-list".to_owned())?),
        Some(Value::List(l)) => {
            for (i, u) in l.items().iter().enumerate() {
                let key = || format!("url-list[{i}]");
                let b = u.as_bytes().ok_or_else(|| MetainfoError::WrongType {
                    key: key(),
                    expected: "a byte string",
                    found: with_article(u),
                })?;
                urls.push(utf8_at(b, key)?);
            }
        }
        Some(other) => {
            return Err(wrong_type(
                Loc::Root,
                "url-list",
                "a byte string or a list",
                other,
            ));
        }
    }
    urls.retain(|u| !u.is_empty());
    Ok(urls)
}

/// Human text at the top level: `<key>.utf-8` preferred, else `<key>` decoded lossily.
fn get_text(root: &Dict<'_>, key: &str) -> Result<Option<String>, MetainfoError> {
    let utf8_key = format!("{key}.utf-8");
    if let Some(s) = root.get(utf8_key.as_bytes()).and_then(Value::as_str) {
        return Ok(Some(s.to_owned()));
    }
    Ok(get_bytes(root, Loc::Root, key)?.map(|b| String::from_utf8_lossy(b).into_owned()))
}

/// Where a key lives, for error messages (formatted only when an error is made).
#[derive(Clone, Copy)]
enum Loc {
    Root,
    Info,
    File(usize),
}

impl Loc {
    fn key(self, key: &str) -> String {
        self.to_string() + key
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Root => Ok(()),
            Loc::Info => f.write_str("info."),
            Loc::File(i) => write!(f, "info.files[{i}]."),
        }
    }
}

fn with_article(v: &Value<'_>) -> &'static str {
    match v {
        Value::Int(_) => "an integer",
        Value::Bytes(_) => "a byte string",
        Value::List(_) => "a list",
        Value::Dict(_) => "a dictionary",
    }
}

fn missing(loc: Loc, key: &str) -> MetainfoError {
    MetainfoError::MissingKey { key: loc.key(key) }
}

fn wrong_type(loc: Loc, key: &str, expected: &'static str, found: &Value<'_>) -> MetainfoError {
    MetainfoError::WrongType {
        key: loc.key(key),
        expected,
        found: with_article(found),
    }
}

fn require<T>(v: Option<T>, loc: Loc, key: &str) -> Result<T, MetainfoError> {
    v.ok_or_else(|| missing(loc, key))
}

fn get_int(d: &Dict<'_>, loc: Loc, key: &str) -> Result<Option<i64>, MetainfoError> {
    match d.get(key.as_bytes()) {
        None => Ok(None),
        Some(Value::Int(i)) => Ok(Some(*i)),
        Some(other) => Err(wrong_type(loc, key, "an integer", other)),
    }
}

fn get_bytes<'a>(d: &Dict<'a>, loc: Loc, key: &str) -> Result<Option<&'a [u8]>, MetainfoError> {
    match d.get(key.as_bytes()) {
        None => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b)),
        Some(other) => Err(wrong_type(loc, key, "a byte string", other)),
    }
}

fn get_list<'d, 'a>(
    d: &'d Dict<'a>,
    loc: Loc,
    key: &str,
) -> Result<Option<&'d List<'a>>, MetainfoError> {
    match d.get(key.as_bytes()) {
        None => Ok(None),
        Some(Value::List(l)) => Ok(Some(l)),
        Some(other) => Err(wrong_type(loc, key, "a list", other)),
    }
}

fn utf8(b: &[u8], loc: Loc, key: &str) -> Result<String, MetainfoError> {
    utf8_at(b, || loc.key(key))
}

fn utf8_at(b: &[u8], key: impl FnOnce() -> String) -> Result<String, MetainfoError> {
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| MetainfoError::NotUtf8 { key: key() })
}

fn non_negative(value: i64, key: impl FnOnce() -> String) -> Result<u64, MetainfoError> {
    u64::try_from(value).map_err(|_| MetainfoError::NegativeLength { key: key(), value })
}

#[cfg(test)]
mod tests;
