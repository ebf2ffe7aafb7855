//! Making `.torrent` files (v1, BEP 3 + BEP 12 tiers + BEP 19 web seeds + BEP 27 private).
//!
//! Pure: the caller lists the files and supplies their bytes. The work splits in three so a
//! caller can hash on every core:
//! 1. [`TorrentPlan::new`] fixes the file order ([`sort_files`]), checks every path and
//!    chooses the piece length ([`auto_piece_length`] unless given);
//! 2. the caller hashes each piece, in any order and on any thread, with
//!    [`TorrentPlan::hash_piece`] (or on its own from [`TorrentPlan::piece_spans`]);
//! 3. [`TorrentPlan::finish`] writes the bencoded torrent.
//!
//! [`create`] does all three sequentially from a [`BlockSource`].
//!
//! What goes where: the `info` dictionary holds only `length` (single file) or `files`
//! (each with `length` and `path`), `name`, `piece length`, `pieces` and, for a private
//! torrent, `private: 1`; so a single-file torrent has the same info-hash as `mktorrent`
//! makes for the same file and piece length. The outer dictionary holds `announce` (the
//! first tracker), `announce-list` (only with more than one tracker), `comment`,
//! `created by`, `creation date` and `url-list`, each only when given.
//!
//! v2-only and hybrid torrents (BEP 52, with BEP 47 padding files) are made by [`V2Plan`]
//! in [`v2`], in the same three steps.
//!
//! Not done: symlink entries, `source`, the executable and hidden attributes.

use std::collections::BTreeSet;

use sha1::Digest;

use crate::bencode::{self, Dict, List, Value};
use crate::layout::{BLOCK_SIZE, FileSpan, Layout, LayoutError};
use crate::metainfo::{ComponentError, check_component};

pub mod v2;

pub use v2::{PieceDigests, V2Plan};

/// The `created by` value unchoke writes: `unchoke/<version>`.
pub const CREATED_BY: &str = concat!("unchoke/", env!("CARGO_PKG_VERSION"));

/// Smallest piece length accepted (one 16 KiB block) and chosen automatically.
pub const MIN_PIECE_LENGTH: u32 = BLOCK_SIZE;

/// Largest piece length accepted when given explicitly (64 MiB).
pub const MAX_PIECE_LENGTH: u32 = 64 << 20;

/// Largest piece length [`auto_piece_length`] chooses (16 MiB).
pub const MAX_AUTO_PIECE_LENGTH: u32 = 16 << 20;

/// [`auto_piece_length`] picks the smallest piece length giving at most this many pieces.
pub const AUTO_MAX_PIECES: u64 = 2000;

/// The automatic piece length for `total_length` bytes of content.
///
/// Rule: the smallest power of two between 16 KiB and 16 MiB (inclusive) that cuts the
/// content into at most 2000 pieces; 16 MiB when even that gives more. So a torrent
/// between 32 MiB and 32 GiB gets 1001–2000 pieces, a smaller one 16 KiB pieces, a larger
/// one 16 MiB pieces.
///
/// | content          | piece length | pieces |
/// |------------------|--------------|--------|
/// | ≤ 31.25 MiB      | 16 KiB       | ≤ 2000 |
/// | 700 MiB          | 512 KiB      | 1400   |
/// | 4 GiB            | 4 MiB        | 1024   |
/// | 100 GiB          | 16 MiB       | 6400   |
pub fn auto_piece_length(total_length: u64) -> u32 {
    let mut piece = MIN_PIECE_LENGTH;
    while piece < MAX_AUTO_PIECE_LENGTH && total_length.div_ceil(u64::from(piece)) > AUTO_MAX_PIECES
    {
        piece *= 2;
    }
    piece
}

/// One file of a directory torrent: its path below the torrent's directory, and its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputFile {
    /// Path components below the torrent's top directory (no `name`), e.g. `["sub", "a.txt"]`.
    /// Empty for the file of a single-file torrent.
    pub path: Vec<String>,
    /// Size in bytes (may be 0).
    pub length: u64,
}

/// What the torrent holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// One file; the torrent's `name` is the file's name.
    SingleFile {
        /// Size in bytes.
        length: u64,
    },
    /// A directory (even with one file in it); the torrent's `name` is the directory's name.
    Directory(Vec<InputFile>),
}

/// Sorts directory entries into the order unchoke writes them: by the path's bytes with
/// components joined by `/`, compared byte by byte (unsigned), a prefix first.
///
/// This is `strcmp` on the relative path, which is what `mktorrent` 1.1 does (checked on a
/// tree holding `a/b`, `a-b/c`, `a.txt`, `a0`, `B/q`, `Z`, `.hidden`: it writes `.hidden`,
/// `B/q`, `Z`, `a-b/c`, `a.txt`, `a/b`, `a0`). Note the consequence: because `-` and `.`
/// sort before `/`, `a-b/c` and `a.txt` come before `a/b`, so one directory's files are not
/// always contiguous. Upper case sorts before lower case.
pub fn sort_files(files: &mut [InputFile]) {
    files.sort_by(|a, b| joined_bytes(&a.path).cmp(joined_bytes(&b.path)));
}

/// The path's bytes with `/` between components, without allocating.
fn joined_bytes(path: &[String]) -> impl Iterator<Item = u8> + '_ {
    path.iter()
        .enumerate()
        .flat_map(|(i, component)| (i > 0).then_some(b'/').into_iter().chain(component.bytes()))
}

/// Why a torrent could not be planned or written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    /// A directory torrent with no files in it.
    #[error("no files to put in the torrent")]
    NoFiles,
    /// Every file is empty: there is nothing to hash.
    #[error("the content is empty (0 bytes): a torrent needs at least one byte")]
    EmptyContent,
    /// The content adds up to more than `i64::MAX` bytes, more than bencode can write.
    #[error("the content is larger than 2^63 bytes")]
    TooLarge,
    /// A piece length that is not a power of two between the limits.
    #[error(
        "piece length {0} is not a power of two between {MIN_PIECE_LENGTH} and {MAX_PIECE_LENGTH}"
    )]
    BadPieceLength(u32),
    /// A directory file with no path components.
    #[error("a file has an empty path")]
    EmptyPath,
    /// A file path or the torrent name holds a component that loading would refuse
    /// (checked with [`check_component`], the same check as loading).
    #[error("bad path {path:?}: {reason}")]
    BadPath {
        /// The path, components joined with `/` (or the name).
        path: String,
        /// What is wrong with it.
        reason: ComponentError,
    },
    /// Two files with the same path.
    #[error("two files have the same path {0:?}")]
    DuplicatePath(String),
    /// A path used both as a file and as a directory (`a` and `a/b`).
    #[error("{0:?} is both a file and a directory")]
    FileIsDirectory(String),
    /// The storage layout refused the files (e.g. more than `u32::MAX` pieces).
    #[error("layout: {0}")]
    Layout(#[from] LayoutError),
    /// A hybrid torrent's file whose path is that of a BEP 47 padding file (`.pad/<n>`):
    /// clients would take it for padding and never write it.
    #[error(
        "{0:?} is where a hybrid torrent's padding files go (.pad/<length>); rename it or \
         make a v1 or v2-only torrent"
    )]
    PadPathTaken(String),
    /// [`TorrentPlan::finish`] or [`V2Plan::finish`] got the wrong number of piece hashes.
    #[error("expected {expected} piece hashes, got {got}")]
    WrongHashCount {
        /// The plan's piece count.
        expected: u32,
        /// How many were given.
        got: usize,
    },
}

/// Options for the outer dictionary and the torrent's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateOptions {
    /// The torrent's `name`: the file's name (single file) or the top directory's name.
    pub name: String,
    /// Tracker tiers (BEP 12), in order; empty URLs and empty tiers are dropped.
    pub trackers: Vec<Vec<String>>,
    /// Set `private: 1` in the info dictionary (BEP 27).
    pub private: bool,
    /// The `comment`.
    pub comment: Option<String>,
    /// The `created by` (see [`CREATED_BY`]).
    pub created_by: Option<String>,
    /// The `creation date` in seconds since the Unix epoch (the caller reads the clock).
    pub creation_date: Option<i64>,
    /// Web seed URLs (BEP 19 `url-list`).
    pub url_list: Vec<String>,
    /// The piece length for [`create`]; `None` for [`auto_piece_length`].
    pub piece_length: Option<u32>,
}

impl CreateOptions {
    /// Options for a public torrent named `name`, created by unchoke, with nothing else set.
    pub fn new(name: impl Into<String>) -> Self {
        CreateOptions {
            name: name.into(),
            trackers: Vec::new(),
            private: false,
            comment: None,
            created_by: Some(CREATED_BY.to_owned()),
            creation_date: None,
            url_list: Vec::new(),
            piece_length: None,
        }
    }
}

/// The files of a torrent-to-be in their final order, its piece length and layout.
#[derive(Debug)]
pub struct TorrentPlan {
    files: Vec<InputFile>,
    single_file: bool,
    piece_length: u32,
    total_length: u64,
    layout: Layout,
}

impl TorrentPlan {
    /// Checks and orders the content and fixes the piece length (`None`: automatic).
    ///
    /// Directory files are sorted with [`sort_files`]; from here on a file index (as in
    /// [`FileSpan::file`]) is a position in [`TorrentPlan::files`].
    pub fn new(content: Content, piece_length: Option<u32>) -> Result<TorrentPlan, CreateError> {
        let (mut files, single_file) = match content {
            Content::SingleFile { length } => (
                vec![InputFile {
                    path: Vec::new(),
                    length,
                }],
                true,
            ),
            Content::Directory(files) => (files, false),
        };
        if files.is_empty() {
            return Err(CreateError::NoFiles);
        }
        if !single_file {
            check_paths(&files)?;
            sort_files(&mut files);
        }
        let total_length = files
            .iter()
            .try_fold(0u64, |sum, f| sum.checked_add(f.length))
            .filter(|&t| i64::try_from(t).is_ok())
            .ok_or(CreateError::TooLarge)?;
        if total_length == 0 {
            return Err(CreateError::EmptyContent);
        }
        let piece_length = match piece_length {
            None => auto_piece_length(total_length),
            Some(p) => {
                if !p.is_power_of_two() || !(MIN_PIECE_LENGTH..=MAX_PIECE_LENGTH).contains(&p) {
                    return Err(CreateError::BadPieceLength(p));
                }
                p
            }
        };
        let layout = Layout::new(piece_length, files.iter().map(|f| f.length))?;
        Ok(TorrentPlan {
            files,
            single_file,
            piece_length,
            total_length,
            layout,
        })
    }

    /// The files in torrent order (one file with an empty path for a single-file torrent).
    pub fn files(&self) -> &[InputFile] {
        &self.files
    }

    /// Whether this is a single-file torrent.
    pub fn is_single_file(&self) -> bool {
        self.single_file
    }

    /// The piece length in bytes.
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// The content's size in bytes.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// How many pieces the content makes.
    pub fn piece_count(&self) -> u32 {
        self.layout.piece_count()
    }

    /// The size of piece `piece` (the last one may be short).
    pub fn piece_len(&self, piece: u32) -> u32 {
        self.layout.piece_len(piece)
    }

    /// The file ranges piece `piece` covers, in order.
    pub fn piece_spans(&self, piece: u32) -> impl Iterator<Item = FileSpan> + '_ {
        self.layout.piece_spans(piece)
    }

    /// The SHA-1 of piece `piece`, reading its bytes with `read(span, dst)`, which must fill
    /// `dst` (`span.len` bytes) from file `span.file` at `span.file_offset`. `buf` is scratch
    /// space, reused between calls to avoid allocating per piece.
    pub fn hash_piece<E>(
        &self,
        piece: u32,
        buf: &mut Vec<u8>,
        mut read: impl FnMut(&FileSpan, &mut [u8]) -> Result<(), E>,
    ) -> Result<[u8; 20], E> {
        let piece_start = u64::from(piece) * u64::from(self.piece_length);
        buf.clear();
        buf.resize(self.piece_len(piece) as usize, 0);
        for span in self.piece_spans(piece) {
            // Spans lie inside the piece by the layout's construction; a span that does not
            // is skipped rather than panicking, and the hash will then be wrong.
            let start = span.torrent_offset.saturating_sub(piece_start) as usize;
            let end = start.saturating_add(span.len as usize);
            if let Some(dst) = buf.get_mut(start..end) {
                read(&span, dst)?;
            }
        }
        Ok(sha1::Sha1::digest(&buf[..]).into())
    }

    /// Writes the bencoded torrent from the piece hashes (in piece order) and `options`
    /// (its `piece_length` is ignored: the plan's is used).
    pub fn finish(
        &self,
        piece_hashes: &[[u8; 20]],
        options: &CreateOptions,
    ) -> Result<Vec<u8>, CreateError> {
        if piece_hashes.len() != self.piece_count() as usize {
            return Err(CreateError::WrongHashCount {
                expected: self.piece_count(),
                got: piece_hashes.len(),
            });
        }
        check_component(&options.name).map_err(|reason| CreateError::BadPath {
            path: options.name.clone(),
            reason,
        })?;
        let pieces: Vec<u8> = piece_hashes.concat();

        // Lengths fit i64: the total was checked in `new`.
        let int = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
        let mut info = Dict::new(vec![
            (&b"name"[..], Value::Bytes(options.name.as_bytes())),
            (b"piece length", Value::Int(i64::from(self.piece_length))),
            (b"pieces", Value::Bytes(&pieces)),
        ]);
        if self.single_file {
            info.insert(b"length", int(self.total_length));
        } else {
            let files = self
                .files
                .iter()
                .map(|f| {
                    let path = f.path.iter().map(|c| Value::Bytes(c.as_bytes())).collect();
                    Value::Dict(Dict::new(vec![
                        (&b"length"[..], int(f.length)),
                        (b"path", Value::List(List::new(path))),
                    ]))
                })
                .collect();
            info.insert(b"files", Value::List(List::new(files)));
        }
        if options.private {
            info.insert(b"private", Value::Int(1));
        }

        Ok(write_torrent(info, Vec::new(), options))
    }
}

/// Writes the whole torrent: `info`, the top-level entries `top` (v2's `piece layers`) and
/// the outer keys `options` asks for, each only when given. Shared by v1 and v2 so both
/// kinds carry trackers, comments and web seeds the same way.
fn write_torrent<'a>(
    info: Dict<'a>,
    top: Vec<(&'a [u8], Value<'a>)>,
    options: &'a CreateOptions,
) -> Vec<u8> {
    let tiers: Vec<Vec<&str>> = options
        .trackers
        .iter()
        .map(|tier| {
            tier.iter()
                .map(String::as_str)
                .filter(|u| !u.is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|tier| !tier.is_empty())
        .collect();
    let mut outer = Dict::new(vec![(&b"info"[..], Value::Dict(info))]);
    for (key, value) in top {
        outer.insert(key, value);
    }
    if let Some(first) = tiers.first().and_then(|t| t.first()) {
        outer.insert(b"announce", Value::Bytes(first.as_bytes()));
    }
    if tiers.iter().map(Vec::len).sum::<usize>() > 1 {
        let list = tiers
            .iter()
            .map(|tier| {
                Value::List(List::new(
                    tier.iter().map(|u| Value::Bytes(u.as_bytes())).collect(),
                ))
            })
            .collect();
        outer.insert(b"announce-list", Value::List(List::new(list)));
    }
    if let Some(comment) = &options.comment {
        outer.insert(b"comment", Value::Bytes(comment.as_bytes()));
    }
    if let Some(created_by) = &options.created_by {
        outer.insert(b"created by", Value::Bytes(created_by.as_bytes()));
    }
    if let Some(date) = options.creation_date {
        outer.insert(b"creation date", Value::Int(date));
    }
    if !options.url_list.is_empty() {
        let urls = options
            .url_list
            .iter()
            .map(|u| Value::Bytes(u.as_bytes()))
            .collect();
        outer.insert(b"url-list", Value::List(List::new(urls)));
    }
    bencode::encode(&Value::Dict(outer))
}

/// Checks every component, duplicates, and paths that are both a file and a directory.
fn check_paths(files: &[InputFile]) -> Result<(), CreateError> {
    let mut seen: BTreeSet<&[String]> = BTreeSet::new();
    for f in files {
        let bad = |reason| CreateError::BadPath {
            path: f.path.join("/"),
            reason,
        };
        if f.path.is_empty() {
            return Err(CreateError::EmptyPath);
        }
        for component in &f.path {
            check_component(component).map_err(bad)?;
        }
        if !seen.insert(&f.path) {
            return Err(CreateError::DuplicatePath(f.path.join("/")));
        }
    }
    for f in files {
        for depth in 1..f.path.len() {
            if seen.contains(&f.path[..depth]) {
                return Err(CreateError::FileIsDirectory(f.path[..depth].join("/")));
            }
        }
    }
    Ok(())
}

/// Reads the content's bytes for [`create`].
pub trait BlockSource {
    /// The reader's error.
    type Error;
    /// Fills `buf` with the bytes of file `file` (an index into [`TorrentPlan::files`])
    /// starting at byte `offset` of that file.
    fn read_at(&mut self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error>;
}

/// Why [`create`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateFromSourceError<E> {
    /// The content or options were refused.
    #[error(transparent)]
    Create(#[from] CreateError),
    /// The source failed to read.
    #[error("reading file #{file} at offset {offset}: {source}")]
    Read {
        /// The file's index in [`TorrentPlan::files`].
        file: usize,
        /// The offset in that file.
        offset: u64,
        /// The source's error.
        source: E,
    },
}

/// Plans, hashes (sequentially, one piece at a time) and writes a torrent in one call, with
/// `options.piece_length` (or the automatic one).
///
/// File indices given to `source` refer to the sorted order of [`TorrentPlan::files`]; use
/// [`TorrentPlan`] directly to learn it beforehand or to hash in parallel.
pub fn create<S: BlockSource>(
    content: Content,
    source: &mut S,
    options: &CreateOptions,
) -> Result<Vec<u8>, CreateFromSourceError<S::Error>>
where
    S::Error: std::error::Error + 'static,
{
    let plan = TorrentPlan::new(content, options.piece_length)?;
    let mut buf = Vec::new();
    let mut hashes = Vec::with_capacity(plan.piece_count() as usize);
    for piece in 0..plan.piece_count() {
        let hash = plan.hash_piece(piece, &mut buf, |span, dst| {
            source
                .read_at(span.file, span.file_offset, dst)
                .map_err(|source| CreateFromSourceError::Read {
                    file: span.file,
                    offset: span.file_offset,
                    source,
                })
        })?;
        hashes.push(hash);
    }
    Ok(plan.finish(&hashes, options)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::Metainfo;

    /// Files held in memory, by index.
    struct Memory(Vec<Vec<u8>>);

    #[derive(Debug, thiserror::Error)]
    #[error("read past the end")]
    struct PastEnd;

    impl BlockSource for Memory {
        type Error = PastEnd;
        fn read_at(&mut self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), PastEnd> {
            let data = self.0.get(file).ok_or(PastEnd)?;
            let start = offset as usize;
            let src = data.get(start..start + buf.len()).ok_or(PastEnd)?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..len).map(|_| rng.u8(..)).collect()
    }

    fn sha1(data: &[u8]) -> [u8; 20] {
        sha1::Sha1::digest(data).into()
    }

    fn file(path: &str, length: u64) -> InputFile {
        InputFile {
            path: path.split('/').map(str::to_owned).collect(),
            length,
        }
    }

    #[test]
    fn auto_piece_length_table() {
        let k = 1024u64;
        let m = k * k;
        for (total, expected) in [
            (0, 16 * k),
            (1, 16 * k),
            (2000 * 16 * k, 16 * k),
            (2000 * 16 * k + 1, 32 * k),
            (700 * m, 512 * k),
            (m * 1024, m),
            (4 * m * 1024, 4 * m),
            (2000 * 16 * m, 16 * m),
            (100 * m * 1024, 16 * m),
            (u64::MAX, 16 * m),
        ] {
            let p = u64::from(auto_piece_length(total));
            assert_eq!(p, expected, "total {total}");
            assert!(p.is_power_of_two());
            // Never more than 2000 pieces unless the piece length is already at its cap,
            // and never a smaller power of two that would also have fit.
            if p < 16 * m {
                assert!(total.div_ceil(p) <= 2000);
            }
            if p > 16 * k {
                assert!(total.div_ceil(p / 2) > 2000);
            }
        }
    }

    #[test]
    fn sort_order_matches_mktorrent() {
        let mut files: Vec<InputFile> = ["a0", "a/b", "a.txt", "Z", "a-b/c", "B/q", ".hidden"]
            .iter()
            .map(|p| file(p, 1))
            .collect();
        sort_files(&mut files);
        let order: Vec<String> = files.iter().map(|f| f.path.join("/")).collect();
        assert_eq!(
            order,
            [".hidden", "B/q", "Z", "a-b/c", "a.txt", "a/b", "a0"]
        );
        // A prefix sorts first; bytes compare unsigned (non-ASCII after ASCII).
        let mut files = vec![file("ab", 1), file("é", 1), file("a", 1)];
        sort_files(&mut files);
        let order: Vec<String> = files.iter().map(|f| f.path.join("/")).collect();
        assert_eq!(order, ["a", "ab", "é"]);
    }

    #[test]
    fn single_file_torrent_parses_back() {
        let data = bytes(1, 3 * 65536 + 7);
        let mut options = CreateOptions::new("file.bin");
        options.piece_length = Some(65536);
        options.trackers = vec![vec!["http://t.example/announce".into()]];
        options.comment = Some("hello".into());
        options.creation_date = Some(1_700_000_000);
        let torrent = create(
            Content::SingleFile {
                length: data.len() as u64,
            },
            &mut Memory(vec![data.clone()]),
            &options,
        )
        .unwrap();
        let m = Metainfo::from_bytes(&torrent).unwrap();
        assert_eq!(m.info.name, "file.bin");
        assert!(!m.info.multi_file);
        assert!(!m.info.private);
        assert_eq!(m.info.piece_length, 65536);
        assert_eq!(m.info.total_length, data.len() as u64);
        assert_eq!(m.info.piece_hashes.len(), 4);
        let expected: Vec<[u8; 20]> = data.chunks(65536).map(sha1).collect();
        assert_eq!(m.info.piece_hashes, expected);
        assert_eq!(m.announce.as_deref(), Some("http://t.example/announce"));
        assert!(m.announce_list.is_empty(), "one tracker: no announce-list");
        assert_eq!(m.comment.as_deref(), Some("hello"));
        assert_eq!(m.created_by.as_deref(), Some(CREATED_BY));
        assert_eq!(m.creation_date, Some(1_700_000_000));
        // The info dictionary holds exactly the keys mktorrent writes, in canonical order.
        let mut expected_info =
            b"d6:lengthi196615e4:name8:file.bin12:piece lengthi65536e6:pieces80:".to_vec();
        expected_info.extend_from_slice(&expected.concat());
        expected_info.push(b'e');
        assert_eq!(&m.info_bytes[..], &expected_info[..]);
    }

    #[test]
    fn multi_file_hashes_cross_file_boundaries() {
        // Lengths chosen so pieces start and end inside files, a piece spans three files,
        // and an empty file sits between two others.
        let specs = [
            ("d/x", 10_000usize),
            ("a", 30_000),
            ("b/c", 5),
            ("b/e", 0),
            ("c", 20_000),
        ];
        let files: Vec<InputFile> = specs.iter().map(|&(p, n)| file(p, n as u64)).collect();
        let plan = TorrentPlan::new(Content::Directory(files), Some(16384)).unwrap();
        let order: Vec<String> = plan.files().iter().map(|f| f.path.join("/")).collect();
        assert_eq!(order, ["a", "b/c", "b/e", "c", "d/x"]);
        let contents: Vec<Vec<u8>> = plan
            .files()
            .iter()
            .enumerate()
            .map(|(i, f)| bytes(i as u64 + 10, f.length as usize))
            .collect();
        let all: Vec<u8> = contents.concat();
        let mut options = CreateOptions::new("dir");
        options.piece_length = Some(16384);
        options.private = true;
        options.trackers = vec![
            vec!["http://a/".into(), "http://b/".into()],
            vec![],
            vec!["udp://c:1".into()],
        ];
        options.url_list = vec!["http://seed.example/".into()];
        options.created_by = None;
        let torrent = create(
            Content::Directory(plan.files().to_vec()),
            &mut Memory(contents.clone()),
            &options,
        )
        .unwrap();
        let m = Metainfo::from_bytes(&torrent).unwrap();
        assert!(m.info.multi_file);
        assert!(m.info.private);
        assert_eq!(m.info.name, "dir");
        assert_eq!(m.info.total_length, all.len() as u64);
        let expected: Vec<[u8; 20]> = all.chunks(16384).map(sha1).collect();
        assert_eq!(m.info.piece_hashes, expected);
        let parsed: Vec<(String, u64)> = m
            .info
            .files
            .iter()
            .map(|f| (f.path.join("/"), f.length))
            .collect();
        let planned: Vec<(String, u64)> = plan
            .files()
            .iter()
            .map(|f| (f.path.join("/"), f.length))
            .collect();
        assert_eq!(parsed, planned);
        assert_eq!(m.announce.as_deref(), Some("http://a/"));
        assert_eq!(
            m.announce_list,
            vec![
                vec!["http://a/".to_owned(), "http://b/".to_owned()],
                vec!["udp://c:1".to_owned()]
            ]
        );
        assert_eq!(m.url_list, vec!["http://seed.example/"]);
        assert_eq!(m.created_by, None);
        assert_eq!(m.creation_date, None);
        assert_eq!(m.comment, None);
    }

    #[test]
    fn parallel_style_hashing_matches_create() {
        // Hashing pieces out of order with hash_piece and finishing gives the same bytes.
        let data = bytes(7, 100_000);
        let content = Content::SingleFile {
            length: data.len() as u64,
        };
        let options = CreateOptions::new("f");
        let plan = TorrentPlan::new(content.clone(), None).unwrap();
        assert_eq!(plan.piece_length(), 16384);
        let mut hashes = vec![[0u8; 20]; plan.piece_count() as usize];
        let mut buf = Vec::new();
        for piece in (0..plan.piece_count()).rev() {
            hashes[piece as usize] = plan
                .hash_piece(piece, &mut buf, |span, dst| {
                    let start = span.file_offset as usize;
                    dst.copy_from_slice(&data[start..start + dst.len()]);
                    Ok::<(), PastEnd>(())
                })
                .unwrap();
        }
        let a = plan.finish(&hashes, &options).unwrap();
        let b = create(content, &mut Memory(vec![data]), &options).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            plan.finish(&hashes[1..], &options),
            Err(CreateError::WrongHashCount {
                expected: 7,
                got: 6
            })
        );
    }

    #[test]
    fn bad_content_is_refused() {
        let dir = |paths: &[&str]| Content::Directory(paths.iter().map(|p| file(p, 1)).collect());
        assert_eq!(
            TorrentPlan::new(Content::Directory(vec![]), None).err(),
            Some(CreateError::NoFiles)
        );
        assert_eq!(
            TorrentPlan::new(Content::SingleFile { length: 0 }, None).err(),
            Some(CreateError::EmptyContent)
        );
        assert_eq!(
            TorrentPlan::new(
                Content::Directory(vec![file("a", u64::MAX / 2), file("b", u64::MAX / 2)]),
                None
            )
            .err(),
            Some(CreateError::TooLarge)
        );
        assert_eq!(
            TorrentPlan::new(Content::Directory(vec![file("a", 0), file("b", 0)]), None).err(),
            Some(CreateError::EmptyContent)
        );
        for p in [1000, 8192, 16385, 128 << 20, 0] {
            assert_eq!(
                TorrentPlan::new(dir(&["a"]), Some(p)).err(),
                Some(CreateError::BadPieceLength(p))
            );
        }
        assert_eq!(
            TorrentPlan::new(dir(&["a", "b", "a"]), None).err(),
            Some(CreateError::DuplicatePath("a".into()))
        );
        assert_eq!(
            TorrentPlan::new(dir(&["x/a/b", "x/a"]), None).err(),
            Some(CreateError::FileIsDirectory("x/a".into()))
        );
        // The same check as loading (metainfo::check_component), so nothing we write is
        // refused when read back.
        for (bad, reason) in [
            ("a/../b", ComponentError::ParentDir),
            ("./b", ComponentError::CurrentDir),
            ("a//b", ComponentError::Empty),
            ("a\\b", ComponentError::Separator('\\')),
            ("nul\0", ComponentError::Nul),
            ("x/con.txt", ComponentError::Reserved),
        ] {
            assert!(
                matches!(
                    TorrentPlan::new(dir(&[bad]), None),
                    Err(CreateError::BadPath { reason: r, .. }) if r == reason
                ),
                "{bad:?}"
            );
        }
        let no_components = Content::Directory(vec![InputFile {
            path: vec![],
            length: 1,
        }]);
        assert_eq!(
            TorrentPlan::new(no_components, None).err(),
            Some(CreateError::EmptyPath)
        );
        let plan = TorrentPlan::new(dir(&["a"]), None).unwrap();
        let hashes = vec![[0u8; 20]; 1];
        for name in ["", "..", "a/b"] {
            assert!(matches!(
                plan.finish(&hashes, &CreateOptions::new(name)),
                Err(CreateError::BadPath { .. })
            ));
        }
    }

    #[test]
    fn read_errors_carry_the_file_and_offset() {
        // The source holds fewer bytes than the plan says: the failing read is reported.
        let err = create(
            Content::Directory(vec![file("a", 10), file("b", 20)]),
            &mut Memory(vec![vec![0; 10], vec![0; 5]]),
            &CreateOptions::new("d"),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            CreateFromSourceError::Read {
                file: 1,
                offset: 0,
                ..
            }
        ));
    }
}
