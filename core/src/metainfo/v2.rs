//! The BEP 52 (BitTorrent v2) parts of a torrent: the info dictionary's `file tree` and
//! `meta version`, the top-level `piece layers`, and the check that a hybrid torrent's v1
//! and v2 file lists describe the same files.
//!
//! Validation is strict, like the v1 part's: `piece length` a power of two of at least
//! 16 KiB; every name checked with [`check_component`](super::check_component); a file node
//! (`""`) alone in its dictionary; `pieces root` 32 bytes, present exactly for non-empty
//! files; each piece layer a whole number of 32-byte hashes, one per piece of its file, that
//! hashes up to the file's `pieces root` ([`super::merkle`]). The tree's depth is bounded
//! ([`MAX_TREE_DEPTH`]) and nothing is allocated beyond what the input holds.

use super::merkle::{self, Hash32};
use super::{
    ComponentError, FileEntry, MAX_PIECE_LENGTH, MetainfoError, check_component, with_article,
};
use crate::bencode::{Dict, Value};
use crate::info_hash::InfoHashV2;

/// The deepest `file tree` accepted (directories plus the file's own level).
pub const MAX_TREE_DEPTH: usize = 64;

/// The smallest v2 piece length: one 16 KiB merkle leaf.
pub const MIN_PIECE_LENGTH_V2: u32 = merkle::BLOCK_SIZE as u32;

/// Why the v2 part of a torrent was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum V2Error {
    /// `meta version` is present but not 2.
    #[error("`info.meta version` is {value}; only 2 (BEP 52) is known")]
    UnsupportedMetaVersion {
        /// The value found.
        value: i64,
    },
    /// A v2 `piece length` that is not a power of two between 16 KiB and 256 MiB.
    #[error(
        "`info.piece length` is {value}; a v2 torrent needs a power of two from 16 KiB to 256 MiB"
    )]
    BadPieceLength {
        /// The value found.
        value: i64,
    },
    /// `file tree` has no files.
    #[error("`info.file tree` holds no files")]
    EmptyFileTree,
    /// A directory of the tree holds nothing.
    #[error("`info.file tree` directory {path:?} is empty")]
    EmptyDirectory {
        /// The directory's path, components joined by `/`.
        path: String,
    },
    /// A file node (key `""`) shares its dictionary with other keys.
    #[error("`info.file tree` entry {path:?} is both a file and a directory")]
    FileAndDirectory {
        /// The path, components joined by `/`.
        path: String,
    },
    /// The tree nests deeper than [`MAX_TREE_DEPTH`].
    #[error("`info.file tree` nests deeper than {MAX_TREE_DEPTH} levels at {path:?}")]
    TooDeep {
        /// The path reached, components joined by `/`.
        path: String,
    },
    /// A `pieces root` that is not 32 bytes.
    #[error("`pieces root` of {path:?} is {len} bytes, not 32")]
    BadPiecesRoot {
        /// The file's path.
        path: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A non-empty file without `pieces root`.
    #[error("{path:?} ({length} bytes) has no `pieces root`")]
    MissingPiecesRoot {
        /// The file's path.
        path: String,
        /// Its length.
        length: u64,
    },
    /// An empty file with a `pieces root` (BEP 52: absent for empty files).
    #[error("{path:?} is empty but has a `pieces root`")]
    RootOnEmptyFile {
        /// The file's path.
        path: String,
    },
    /// A file larger than one piece whose piece layer is missing from `piece layers`.
    #[error("`piece layers` has no entry for {path:?}, which spans {pieces} pieces")]
    MissingPieceLayer {
        /// The file's path.
        path: String,
        /// Pieces the file spans.
        pieces: u64,
    },
    /// A piece layer of the wrong length (not a multiple of 32, or not one hash per piece).
    #[error("the piece layer of {path:?} is {len} bytes; its {pieces} pieces need {expected}")]
    BadPieceLayerLength {
        /// The file's path.
        path: String,
        /// The layer's length in bytes.
        len: usize,
        /// Pieces the file spans.
        pieces: u64,
        /// Bytes expected: 32 per piece.
        expected: u64,
    },
    /// A piece layer that does not hash up to its file's `pieces root`.
    #[error("the piece layer of {path:?} does not hash up to its `pieces root`")]
    PieceLayerMismatch {
        /// The file's path.
        path: String,
    },
    /// A hybrid torrent whose v1 and v2 parts list different numbers of files.
    #[error("hybrid torrent: the v1 part lists {v1} files, the v2 `file tree` {v2}")]
    HybridFileCount {
        /// Non-padding files in `info.files` (or 1 for `info.length`).
        v1: usize,
        /// Files in `file tree`.
        v2: usize,
    },
    /// A hybrid torrent whose v1 and v2 parts disagree on a file.
    #[error("hybrid torrent: file {index} is {v1:?} in the v1 part but {v2:?} in `file tree`")]
    HybridFileMismatch {
        /// Position among the non-padding files.
        index: usize,
        /// The v1 file: path and length.
        v1: String,
        /// The v2 file: path and length.
        v2: String,
    },
    /// A hybrid torrent whose v1 file does not start on a piece boundary (BEP 52 pads
    /// every file to one so the v1 and v2 pieces cover the same bytes).
    #[error("hybrid torrent: {path:?} starts at offset {offset}, not on a piece boundary")]
    HybridUnaligned {
        /// The file's path.
        path: String,
        /// Its offset in the v1 content.
        offset: u64,
    },
}

/// One file of a v2 `file tree`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2File {
    /// Path components; for a multi-file torrent relative to the `name` directory.
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
    /// `pieces root`: the root of the file's merkle tree; `None` for an empty file.
    pub pieces_root: Option<Hash32>,
    /// One hash per piece of the file (the piece layer, [`merkle`]). For a file of one piece
    /// it is `[pieces root]`; for an empty file, and for a larger file whose layer is not
    /// known yet (a bare info dictionary from a magnet link), it is empty.
    pub piece_layer: Vec<Hash32>,
    /// BEP 47 `x`: the file should be executable.
    pub executable: bool,
    /// BEP 47 `h`: the file should be hidden.
    pub hidden: bool,
}

impl V2File {
    /// How many pieces of `piece_length` bytes the file spans (0 when empty).
    pub fn piece_count(&self, piece_length: u32) -> u64 {
        self.length.div_ceil(u64::from(piece_length.max(1)))
    }

    /// Whether `data` is piece `index` of this file (pieces of `piece_length` bytes, the
    /// last one shorter): its merkle root ([`merkle::piece_root`], padded as BEP 52 says)
    /// equals the piece layer's hash. `None` when that hash is not known (an index past
    /// the end, or a layer not fetched yet) or `data` is longer than a piece.
    pub fn verify_piece(&self, piece_length: u32, index: u64, data: &[u8]) -> Option<bool> {
        let expected = self.piece_layer.get(usize::try_from(index).ok()?)?;
        let leaves = merkle::leaves_per_piece(piece_length, self.length);
        Some(merkle::piece_root(data, leaves)? == *expected)
    }
}

/// The v2 metadata of a v2-only or hybrid torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2Info {
    /// SHA-256 of the raw `info` dictionary.
    pub info_hash: InfoHashV2,
    /// `piece length`: a power of two, 16 KiB ..= 256 MiB.
    pub piece_length: u32,
    /// The files in `file tree` order (keys sorted, depth first).
    pub files: Vec<V2File>,
    /// Whether every file's piece layer is known and checked (always after
    /// [`Metainfo::from_bytes`](super::Metainfo::from_bytes); not for a bare info
    /// dictionary, whose layers come from peers).
    pub piece_layers_known: bool,
}

impl V2Info {
    /// Total v2 pieces: each file starts a new piece.
    pub fn piece_count(&self) -> u64 {
        self.files
            .iter()
            .map(|f| f.piece_count(self.piece_length))
            .fold(0, u64::saturating_add)
    }

    /// The files whose piece layers are still unknown (more than one piece and an empty
    /// layer): each one's `pieces root` and piece count. Empty once
    /// [`V2Info::piece_layers_known`].
    pub fn missing_layers(&self) -> Vec<(Hash32, u64)> {
        self.files
            .iter()
            .filter(|f| f.piece_count(self.piece_length) > 1 && f.piece_layer.is_empty())
            .filter_map(|f| Some((f.pieces_root?, f.piece_count(self.piece_length))))
            .collect()
    }

    /// Gives every file whose layer is missing the layer `layers` holds for its `pieces
    /// root`, if that has one hash per piece and hashes up to the root (others are left
    /// missing); then records and returns whether every layer is known.
    pub fn fill_piece_layers(
        &mut self,
        layers: &std::collections::BTreeMap<Hash32, Vec<Hash32>>,
    ) -> bool {
        let piece_length = self.piece_length;
        for f in &mut self.files {
            let pieces = f.piece_count(piece_length);
            let (Some(root), true) = (f.pieces_root, f.piece_layer.is_empty() && pieces > 1) else {
                continue;
            };
            if let Some(layer) = layers.get(&root) {
                if layer.len() as u64 == pieces
                    && merkle::root_from_piece_layer(layer, piece_length) == Some(root)
                {
                    f.piece_layer = layer.clone();
                }
            }
        }
        self.piece_layers_known = self.missing_layers().is_empty();
        self.piece_layers_known
    }

    /// Sum of the file lengths (saturating; a parsed torrent's never overflows).
    pub fn total_length(&self) -> u64 {
        self.files
            .iter()
            .map(|f| f.length)
            .fold(0, u64::saturating_add)
    }
}

/// What the info dictionary's v2 keys hold, before the info-hash and piece layers are added.
pub(super) struct V2Tree {
    pub(super) piece_length: u32,
    pub(super) files: Vec<V2File>,
    /// The tree is one file at the top level (a single-file torrent).
    pub(super) single_file: bool,
}

/// Reads `meta version`: `Ok(false)` when absent (a v1 torrent), `Ok(true)` when 2.
pub(super) fn meta_version(d: &Dict<'_>) -> Result<bool, MetainfoError> {
    match d.get(b"meta version") {
        None => Ok(false),
        Some(Value::Int(2)) => Ok(true),
        Some(Value::Int(value)) => Err(V2Error::UnsupportedMetaVersion { value: *value }.into()),
        Some(other) => Err(MetainfoError::WrongType {
            key: "info.meta version".into(),
            expected: "an integer",
            found: with_article(other),
        }),
    }
}

/// Parses the v2 keys of an info dictionary whose `meta version` is 2.
pub(super) fn parse_tree(d: &Dict<'_>) -> Result<V2Tree, MetainfoError> {
    let piece_length = match d.get(b"piece length") {
        Some(Value::Int(p)) => *p,
        Some(other) => {
            return Err(MetainfoError::WrongType {
                key: "info.piece length".into(),
                expected: "an integer",
                found: with_article(other),
            });
        }
        None => {
            return Err(MetainfoError::MissingKey {
                key: "info.piece length".into(),
            });
        }
    };
    let piece_length = u32::try_from(piece_length)
        .ok()
        .filter(|p| p.is_power_of_two() && (MIN_PIECE_LENGTH_V2..=MAX_PIECE_LENGTH).contains(p))
        .ok_or(V2Error::BadPieceLength {
            value: piece_length,
        })?;
    let tree = match d.get(b"file tree") {
        Some(Value::Dict(t)) => t,
        Some(other) => {
            return Err(MetainfoError::WrongType {
                key: "info.file tree".into(),
                expected: "a dictionary",
                found: with_article(other),
            });
        }
        None => {
            return Err(MetainfoError::MissingKey {
                key: "info.file tree".into(),
            });
        }
    };
    if tree.entries().is_empty() {
        return Err(V2Error::EmptyFileTree.into());
    }
    let mut files = Vec::new();
    let mut path = Vec::new();
    walk(tree, &mut path, &mut files)?;
    let single_file = files.len() == 1 && files.first().is_some_and(|f| f.path.len() == 1);
    Ok(V2Tree {
        piece_length,
        files,
        single_file,
    })
}

fn joined(path: &[String]) -> String {
    path.join("/")
}

/// Depth-first over a directory dictionary, in key order.
fn walk(
    dir: &Dict<'_>,
    path: &mut Vec<String>,
    out: &mut Vec<V2File>,
) -> Result<(), MetainfoError> {
    if path.len() >= MAX_TREE_DEPTH {
        return Err(V2Error::TooDeep { path: joined(path) }.into());
    }
    for (key, value) in dir.entries() {
        let name = std::str::from_utf8(key).map_err(|_| MetainfoError::BadPathComponent {
            key: format!("info.file tree/{}", joined(path)),
            component: String::from_utf8_lossy(key).into_owned(),
            reason: ComponentError::NotUtf8,
        })?;
        check_component(name).map_err(|reason| MetainfoError::BadPathComponent {
            key: format!("info.file tree/{}", joined(path)),
            component: name.to_owned(),
            reason,
        })?;
        path.push(name.to_owned());
        let node = value.as_dict().ok_or_else(|| MetainfoError::WrongType {
            key: format!("info.file tree/{}", joined(path)),
            expected: "a dictionary",
            found: with_article(value),
        })?;
        match node.get(b"") {
            Some(leaf) => {
                if node.entries().len() != 1 {
                    return Err(V2Error::FileAndDirectory { path: joined(path) }.into());
                }
                out.push(leaf_file(leaf, path)?);
            }
            None if node.entries().is_empty() => {
                return Err(V2Error::EmptyDirectory { path: joined(path) }.into());
            }
            None => walk(node, path, out)?,
        }
        path.pop();
    }
    Ok(())
}

/// A file node's `""` dictionary: `length`, `pieces root`, `attr`.
fn leaf_file(leaf: &Value<'_>, path: &[String]) -> Result<V2File, MetainfoError> {
    let at = |k: &str| format!("info.file tree/{}/\"\".{k}", joined(path));
    let d = leaf.as_dict().ok_or_else(|| MetainfoError::WrongType {
        key: format!("info.file tree/{}/\"\"", joined(path)),
        expected: "a dictionary",
        found: with_article(leaf),
    })?;
    let length = match d.get(b"length") {
        Some(Value::Int(l)) => u64::try_from(*l).map_err(|_| MetainfoError::NegativeLength {
            key: at("length"),
            value: *l,
        })?,
        Some(other) => {
            return Err(MetainfoError::WrongType {
                key: at("length"),
                expected: "an integer",
                found: with_article(other),
            });
        }
        None => return Err(MetainfoError::MissingKey { key: at("length") }),
    };
    let pieces_root = match d.get(b"pieces root") {
        None => None,
        Some(Value::Bytes(b)) => {
            let root: Hash32 = (*b).try_into().map_err(|_| V2Error::BadPiecesRoot {
                path: joined(path),
                len: b.len(),
            })?;
            Some(root)
        }
        Some(other) => {
            return Err(MetainfoError::WrongType {
                key: at("pieces root"),
                expected: "a byte string",
                found: with_article(other),
            });
        }
    };
    match (length, pieces_root) {
        (0, Some(_)) => {
            return Err(V2Error::RootOnEmptyFile { path: joined(path) }.into());
        }
        (1.., None) => {
            return Err(V2Error::MissingPiecesRoot {
                path: joined(path),
                length,
            }
            .into());
        }
        _ => {}
    }
    let attr = match d.get(b"attr") {
        None => &[][..],
        Some(Value::Bytes(b)) => b,
        Some(other) => {
            return Err(MetainfoError::WrongType {
                key: at("attr"),
                expected: "a byte string",
                found: with_article(other),
            });
        }
    };
    Ok(V2File {
        path: path.to_vec(),
        length,
        pieces_root,
        piece_layer: Vec::new(),
        executable: attr.contains(&b'x'),
        hidden: attr.contains(&b'h'),
    })
}

/// Fills each file's piece layer: a one-piece file's is its root; a larger file's comes
/// from `layers` (the top-level `piece layers`, when given), checked against its root.
/// Entries of `layers` that no file names are ignored. Returns whether every layer is known.
pub(super) fn attach_layers(
    tree: &mut V2Tree,
    layers: Option<&Dict<'_>>,
) -> Result<bool, MetainfoError> {
    let piece_length = tree.piece_length;
    let mut all_known = true;
    for f in &mut tree.files {
        let Some(root) = f.pieces_root else { continue };
        let pieces = f.piece_count(piece_length);
        if pieces <= 1 {
            f.piece_layer = vec![root];
            continue;
        }
        let Some(layers) = layers else {
            all_known = false;
            continue;
        };
        let layer = match layers.get(&root) {
            Some(Value::Bytes(b)) => *b,
            Some(other) => {
                return Err(MetainfoError::WrongType {
                    key: format!("piece layers[{}]", joined(&f.path)),
                    expected: "a byte string",
                    found: with_article(other),
                });
            }
            None => {
                return Err(V2Error::MissingPieceLayer {
                    path: joined(&f.path),
                    pieces,
                }
                .into());
            }
        };
        let expected = pieces.saturating_mul(32);
        if layer.len() as u64 != expected {
            return Err(V2Error::BadPieceLayerLength {
                path: joined(&f.path),
                len: layer.len(),
                pieces,
                expected,
            }
            .into());
        }
        let hashes: Vec<Hash32> = layer
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        if merkle::root_from_piece_layer(&hashes, piece_length) != Some(root) {
            return Err(V2Error::PieceLayerMismatch {
                path: joined(&f.path),
            }
            .into());
        }
        f.piece_layer = hashes;
    }
    Ok(all_known)
}

/// The top-level `piece layers` dictionary, if present.
pub(super) fn piece_layers<'d, 'a>(
    root: &'d Dict<'a>,
) -> Result<Option<&'d Dict<'a>>, MetainfoError> {
    match root.get(b"piece layers") {
        None => Ok(None),
        Some(Value::Dict(d)) => Ok(Some(d)),
        Some(other) => Err(MetainfoError::WrongType {
            key: "piece layers".into(),
            expected: "a dictionary",
            found: with_article(other),
        }),
    }
}

/// The v1 file entries a v2-only torrent's files make: the files in tree order (a single
/// file's path is `[name]`, as in v1), each non-empty one whose end is not on a piece
/// boundary followed by a BEP 47 padding entry (`.pad/<len>`) up to the boundary — the
/// last file too.
///
/// Why padding: BEP 52 starts every file on a piece boundary and numbers pieces across the
/// whole torrent, so the wire's piece indices, bitfields and requests follow exactly this
/// padded geometry; with it, a v2-only torrent's pieces, blocks and file spans are the same
/// arithmetic as a hybrid's ([`crate::layout::Layout`]), and padding is never written
/// (storage treats it as zeros). Why after the last file too: libtorrent lays a v2-only
/// torrent out so, making every piece whole, and asks for a whole 16 KiB block where a
/// file's tail ends in one; without the tail padding such a request would run past our
/// last piece.
pub(super) fn v1_entries(
    tree: &V2Tree,
    name: &str,
) -> Result<(Vec<FileEntry>, u64), MetainfoError> {
    let piece_length = u64::from(tree.piece_length.max(1));
    let mut total: u64 = 0;
    let mut out = Vec::with_capacity(tree.files.len() * 2);
    for f in &tree.files {
        let overflow = || MetainfoError::TotalOverflow {
            key: format!("info.file tree/{}", joined(&f.path)),
        };
        out.push(FileEntry {
            path: if tree.single_file {
                vec![name.to_owned()]
            } else {
                f.path.clone()
            },
            length: f.length,
            offset: total,
            padding: false,
            executable: f.executable,
            hidden: f.hidden,
        });
        total = total.checked_add(f.length).ok_or_else(overflow)?;
        let tail = total % piece_length;
        if f.length > 0 && tail != 0 {
            let pad = piece_length - tail;
            out.push(FileEntry {
                path: vec![".pad".to_owned(), pad.to_string()],
                length: pad,
                offset: total,
                padding: true,
                executable: false,
                hidden: false,
            });
            total = total.checked_add(pad).ok_or_else(overflow)?;
        }
    }
    Ok((out, total))
}

/// Checks that a hybrid torrent's v1 files (padding aside) are the v2 files, in order, with
/// the same paths and lengths, and that each non-empty one starts on a piece boundary.
pub(super) fn check_hybrid(
    v1: &[FileEntry],
    v1_piece_length: u32,
    v2: &[V2File],
) -> Result<(), V2Error> {
    let real: Vec<&FileEntry> = v1.iter().filter(|f| !f.padding).collect();
    if real.len() != v2.len() {
        return Err(V2Error::HybridFileCount {
            v1: real.len(),
            v2: v2.len(),
        });
    }
    for (index, (a, b)) in real.iter().zip(v2).enumerate() {
        if a.path != b.path || a.length != b.length {
            return Err(V2Error::HybridFileMismatch {
                index,
                v1: format!("{} ({} bytes)", joined(&a.path), a.length),
                v2: format!("{} ({} bytes)", joined(&b.path), b.length),
            });
        }
        if a.length > 0 && a.offset % u64::from(v1_piece_length.max(1)) != 0 {
            return Err(V2Error::HybridUnaligned {
                path: joined(&a.path),
                offset: a.offset,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
