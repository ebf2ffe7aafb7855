//! Making BitTorrent v2 (BEP 52) torrents: v2-only, and hybrid (v1 + v2 in one info
//! dictionary, readable by v1-only clients).
//!
//! The same three steps as v1 ([`super`]): [`V2Plan::new`] orders the files and fixes the
//! piece length; the caller hashes every piece with [`V2Plan::hash_piece`], in any order and
//! on any thread; [`V2Plan::finish`] writes the torrent.
//!
//! In v2 every file starts a new piece, so a piece (a work unit here) is a run of at most
//! `piece length` bytes of *one* file: a file of `n` bytes makes `ceil(n / piece length)`
//! pieces, an empty file none. Each piece's hash is the merkle root of its 16 KiB blocks
//! ([`merkle::piece_root`], padded with zero leaves as BEP 52 says); a file's piece hashes
//! are its *piece layer*, and they hash up to its `pieces root`
//! ([`merkle::root_from_piece_layer`]). A hybrid torrent pads each file's v1 bytes to a
//! piece boundary with a BEP 47 padding file, so its v1 pieces are the same byte runs and
//! one read gives both hashes (SHA-1 of the piece followed by the padding's zeros).
//!
//! What goes where (the same keys, in the same places, as libtorrent 2.0 writes, so the same
//! content and piece length give the same info-hashes):
//! - `info`: `file tree` (nested by path component; a file is `{"": {length, pieces root}}`,
//!   no `pieces root` for an empty file), `meta version: 2`, `name`, `piece length`,
//!   `private` when asked; a hybrid adds v1's `pieces` and `length` (single file) or
//!   `files` (with a padding file `{attr: "p", length, path: [".pad", "<length>"]}` after
//!   every non-empty file that does not end on a piece boundary, the last one included).
//! - top level: `piece layers`, a dictionary from `pieces root` to the file's piece layer
//!   (32 bytes per piece) for every file of more than one piece, empty when there is none;
//!   then the outer keys as for v1.
//!
//! File order is the `file tree`'s: bencode sorts dictionary keys bytewise, component by
//! component (so `a/b` comes before `a-b/c`, unlike v1's [`super::sort_files`]), and a
//! hybrid's v1 `files` list follows it, as BEP 52 requires.

use std::collections::BTreeMap;

use sha1::Digest;

use super::{
    Content, CreateError, CreateOptions, InputFile, MAX_PIECE_LENGTH, MIN_PIECE_LENGTH,
    auto_piece_length, check_paths, write_torrent,
};
use crate::bencode::{Dict, List, Value};
use crate::layout::{FileSpan, LayoutError};
use crate::metainfo::check_component;
use crate::metainfo::merkle::{self, Hash32};

/// The directory BEP 47 padding files are put in (libtorrent's convention: `.pad/<length>`).
pub const PAD_DIR: &str = ".pad";

/// The hashes of one v2 piece as it is created (not to be confused with
/// [`crate::piece_hashes::PieceHashes`], what a torrent's pieces are checked against).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PieceDigests {
    /// The merkle root of the piece's 16 KiB blocks: its entry in the file's piece layer.
    pub v2: Hash32,
    /// For a hybrid torrent, the SHA-1 of the v1 piece (the same bytes, followed by the
    /// padding's zeros up to a whole piece); `None` for a v2-only torrent.
    pub v1: Option<[u8; 20]>,
}

/// The files of a v2 or hybrid torrent-to-be in `file tree` order, its piece length and
/// its pieces (each a run of one file).
#[derive(Debug)]
pub struct V2Plan {
    files: Vec<InputFile>,
    single_file: bool,
    hybrid: bool,
    piece_length: u32,
    total_length: u64,
    /// `first_piece[i]`: the index of file `i`'s first piece; one more entry at the end,
    /// the piece count. An empty file's entry equals the next file's.
    first_piece: Vec<u32>,
}

impl V2Plan {
    /// Checks and orders the content and fixes the piece length (`None`: automatic, as for
    /// v1 with [`auto_piece_length`]). `hybrid` adds the v1 part.
    ///
    /// Directory files are sorted into `file tree` order; from here on a file index (as in
    /// [`FileSpan::file`]) is a position in [`V2Plan::files`]. A hybrid refuses a file
    /// whose path is one of its padding files' (`.pad/<n>`), which would be ambiguous.
    pub fn new(
        content: Content,
        piece_length: Option<u32>,
        hybrid: bool,
    ) -> Result<V2Plan, CreateError> {
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
            // Vec<String> compares component by component, each bytewise: the order of
            // bencode's sorted keys, walked depth first.
            files.sort_by(|a, b| a.path.cmp(&b.path));
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
        let pl = u64::from(piece_length);
        let mut first_piece = Vec::with_capacity(files.len() + 1);
        let mut pieces: u64 = 0;
        for f in &files {
            first_piece.push(pieces);
            pieces += f.length.div_ceil(pl);
        }
        first_piece.push(pieces);
        let first_piece = first_piece
            .into_iter()
            .map(u32::try_from)
            .collect::<Result<Vec<u32>, _>>()
            .map_err(|_| LayoutError::TooManyPieces { pieces })?;
        if hybrid {
            // The v1 content is every piece whole (padding included) but the last one's:
            // at most pieces × piece length, which must fit bencode's i64.
            if pieces
                .checked_mul(pl)
                .and_then(|n| i64::try_from(n).ok())
                .is_none()
            {
                return Err(CreateError::TooLarge);
            }
            if let Some(f) = files.iter().find(|f| is_pad_path(&f.path)) {
                return Err(CreateError::PadPathTaken(f.path.join("/")));
            }
        }
        Ok(V2Plan {
            files,
            single_file,
            hybrid,
            piece_length,
            total_length,
            first_piece,
        })
    }

    /// The files in `file tree` order (one file with an empty path for a single-file
    /// torrent).
    pub fn files(&self) -> &[InputFile] {
        &self.files
    }

    /// Whether this is a single-file torrent.
    pub fn is_single_file(&self) -> bool {
        self.single_file
    }

    /// Whether the torrent is a hybrid (v1 part included).
    pub fn is_hybrid(&self) -> bool {
        self.hybrid
    }

    /// The piece length in bytes.
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// The content's size in bytes (padding not counted).
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// How many pieces there are: the sum over the files of their own piece counts (for a
    /// hybrid, also its v1 piece count).
    pub fn piece_count(&self) -> u32 {
        self.first_piece.last().copied().unwrap_or(0)
    }

    /// Where piece `piece` lies: its file, the offset in that file and its length;
    /// `torrent_offset` is `piece × piece length` (the v2 view, and a hybrid's v1 offset,
    /// since every file starts on a piece boundary). `None` past the last piece.
    pub fn piece_span(&self, piece: u32) -> Option<FileSpan> {
        if piece >= self.piece_count() {
            return None;
        }
        // The last file whose first piece is at or before `piece`; empty files share their
        // successor's first piece, so the last of equals is the one that holds pieces.
        let file = self
            .first_piece
            .partition_point(|&first| first <= piece)
            .checked_sub(1)?;
        let f = self.files.get(file)?;
        let pl = u64::from(self.piece_length);
        let file_offset = u64::from(piece - self.first_piece.get(file)?) * pl;
        Some(FileSpan {
            file,
            file_offset,
            torrent_offset: u64::from(piece) * pl,
            len: f.length.saturating_sub(file_offset).min(pl),
        })
    }

    /// The size of piece `piece` (a file's last piece may be short); 0 past the end.
    pub fn piece_len(&self, piece: u32) -> u32 {
        // A span is at most one piece long, which fits u32.
        self.piece_span(piece)
            .map_or(0, |s| u32::try_from(s.len).unwrap_or(u32::MAX))
    }

    /// The hashes of piece `piece`, reading its bytes with `read(span, dst)`, which must
    /// fill `dst` (`span.len` bytes) from file `span.file` at `span.file_offset`. `buf` is
    /// scratch space, reused between calls. A piece past the end reads nothing and gives
    /// the hashes of no data (and [`V2Plan::finish`] then refuses the count).
    pub fn hash_piece<E>(
        &self,
        piece: u32,
        buf: &mut Vec<u8>,
        mut read: impl FnMut(&FileSpan, &mut [u8]) -> Result<(), E>,
    ) -> Result<PieceDigests, E> {
        buf.clear();
        let mut leaves = 1;
        if let Some(span) = self.piece_span(piece) {
            buf.resize(span.len as usize, 0);
            read(&span, buf)?;
            let length = self.files.get(span.file).map_or(0, |f| f.length);
            leaves = merkle::leaves_per_piece(self.piece_length, length);
        }
        // `leaves` holds the piece's blocks by leaves_per_piece's construction.
        let v2 = merkle::piece_root(buf, leaves).unwrap_or_default();
        let v1 = self.hybrid.then(|| {
            let mut h = sha1::Sha1::new();
            h.update(&buf[..]);
            // The padding file's zeros, so the v1 piece is whole; a single file has no
            // padding and its last piece stays short.
            if !self.single_file {
                let zeros = [0u8; 4096];
                let mut left = (self.piece_length as usize).saturating_sub(buf.len());
                while left > 0 {
                    let n = left.min(zeros.len());
                    h.update(&zeros[..n]);
                    left -= n;
                }
            }
            h.finalize().into()
        });
        Ok(PieceDigests { v2, v1 })
    }

    /// Writes the bencoded torrent from the piece hashes (in piece order) and `options`
    /// (its `piece_length` is ignored: the plan's is used).
    pub fn finish(
        &self,
        hashes: &[PieceDigests],
        options: &CreateOptions,
    ) -> Result<Vec<u8>, CreateError> {
        let count = self.piece_count();
        if hashes.len() != count as usize {
            return Err(CreateError::WrongHashCount {
                expected: count,
                got: hashes.len(),
            });
        }
        check_component(&options.name).map_err(|reason| CreateError::BadPath {
            path: options.name.clone(),
            reason,
        })?;

        // Each file's `pieces root`, and the piece layers of files of more than one piece
        // (keyed by root: two identical files share one entry).
        let mut roots: Vec<Option<Hash32>> = Vec::with_capacity(self.files.len());
        let mut layers: BTreeMap<Hash32, Vec<u8>> = BTreeMap::new();
        for window in self.first_piece.windows(2) {
            let layer: Vec<Hash32> = hashes
                .get(window[0] as usize..window[1] as usize)
                .unwrap_or_default()
                .iter()
                .map(|h| h.v2)
                .collect();
            let root = match layer.len() {
                0 => None,
                // A one-piece file's piece hash is padded to the file's own leaf count:
                // it is the file's root.
                1 => layer.first().copied(),
                _ => {
                    let root = merkle::root_from_piece_layer(&layer, self.piece_length);
                    if let Some(root) = root {
                        layers.insert(root, layer.concat());
                    }
                    root
                }
            };
            roots.push(root);
        }

        let mut info = Dict::new(vec![
            (&b"meta version"[..], Value::Int(2)),
            (b"name", Value::Bytes(options.name.as_bytes())),
            (b"piece length", Value::Int(i64::from(self.piece_length))),
        ]);
        let tree = if self.single_file {
            let leaf = leaf(self.total_length, roots.first().and_then(Option::as_ref));
            Dict::new(vec![(options.name.as_bytes(), leaf)])
        } else {
            file_tree(&self.files, &roots, 0)
        };
        info.insert(b"file tree", Value::Dict(tree));
        if options.private {
            info.insert(b"private", Value::Int(1));
        }

        // The hybrid's v1 part; owned here so the dictionary can borrow it.
        let v1_pieces: Vec<u8> = if self.hybrid {
            hashes
                .iter()
                .flat_map(|h| h.v1.unwrap_or_default())
                .collect()
        } else {
            Vec::new()
        };
        let pads = if self.hybrid && !self.single_file {
            self.pad_lengths()
        } else {
            Vec::new()
        };
        let pad_names: Vec<String> = pads.iter().map(u64::to_string).collect();
        if self.hybrid {
            info.insert(b"pieces", Value::Bytes(&v1_pieces));
            if self.single_file {
                info.insert(b"length", int(self.total_length));
            } else {
                let mut list = Vec::with_capacity(self.files.len() * 2);
                for ((f, &pad), pad_name) in self.files.iter().zip(&pads).zip(&pad_names) {
                    let path = f.path.iter().map(|c| Value::Bytes(c.as_bytes())).collect();
                    list.push(Value::Dict(Dict::new(vec![
                        (&b"length"[..], int(f.length)),
                        (b"path", Value::List(List::new(path))),
                    ])));
                    if pad > 0 {
                        let path = vec![
                            Value::Bytes(PAD_DIR.as_bytes()),
                            Value::Bytes(pad_name.as_bytes()),
                        ];
                        list.push(Value::Dict(Dict::new(vec![
                            (&b"attr"[..], Value::Bytes(b"p")),
                            (b"length", int(pad)),
                            (b"path", Value::List(List::new(path))),
                        ])));
                    }
                }
                info.insert(b"files", Value::List(List::new(list)));
            }
        }

        let layers = layers
            .iter()
            .map(|(root, layer)| (&root[..], Value::Bytes(layer)))
            .collect();
        Ok(write_torrent(
            info,
            vec![(&b"piece layers"[..], Value::Dict(Dict::new(layers)))],
            options,
        ))
    }

    /// The padding after each file of a multi-file hybrid: up to the next piece boundary
    /// for a non-empty file, none for an empty one (it takes no bytes, so the next file
    /// still starts on a boundary).
    fn pad_lengths(&self) -> Vec<u64> {
        let pl = u64::from(self.piece_length);
        self.files
            .iter()
            .map(|f| (pl - f.length % pl) % pl)
            .collect()
    }
}

/// Whether `path` is where a hybrid's padding file could go: `.pad/<digits>`.
fn is_pad_path(path: &[String]) -> bool {
    match path {
        [dir, name] => {
            dir == PAD_DIR && !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// A bencode integer from a length (checked to fit i64 when the plan was made).
fn int<'a>(n: u64) -> Value<'a> {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A file's node in the `file tree`: `{"": {length, pieces root}}` (no root when empty).
fn leaf<'a>(length: u64, root: Option<&'a Hash32>) -> Value<'a> {
    let mut d = Dict::new(vec![(&b"length"[..], int(length))]);
    if let Some(root) = root {
        d.insert(b"pieces root", Value::Bytes(&root[..]));
    }
    Value::Dict(Dict::new(vec![(&b""[..], Value::Dict(d))]))
}

/// The `file tree` dictionary of `files` (sorted, with their `roots`) at component `depth`:
/// consecutive files sharing a component there make one directory.
fn file_tree<'a>(files: &'a [InputFile], roots: &'a [Option<Hash32>], depth: usize) -> Dict<'a> {
    let mut dir = Dict::new(Vec::new());
    let mut i = 0;
    while let Some(f) = files.get(i) {
        let Some(name) = f.path.get(depth) else {
            // Cannot happen: paths were checked (no file is also a directory).
            i += 1;
            continue;
        };
        let end = i + files[i..]
            .iter()
            .take_while(|g| g.path.get(depth) == Some(name))
            .count();
        let node = if f.path.len() == depth + 1 {
            leaf(f.length, roots.get(i).and_then(Option::as_ref))
        } else {
            let (files, roots) = (&files[i..end], roots.get(i..end).unwrap_or_default());
            Value::Dict(file_tree(files, roots, depth + 1))
        };
        dir.insert(name.as_bytes(), node);
        i = end;
    }
    dir
}

#[cfg(test)]
mod tests;
