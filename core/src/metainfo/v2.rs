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

/// The v1 file entries a v2-only torrent's files make (consecutive offsets, no padding; a
/// single file's path is `[name]`, as in v1): for showing and for the shape check, not for
/// v1 piece geometry (it has none).
pub(super) fn v1_entries(
    tree: &V2Tree,
    name: &str,
) -> Result<(Vec<FileEntry>, u64), MetainfoError> {
    let mut total: u64 = 0;
    let mut out = Vec::with_capacity(tree.files.len());
    for f in &tree.files {
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
        total = total
            .checked_add(f.length)
            .ok_or_else(|| MetainfoError::TotalOverflow {
                key: format!("info.file tree/{}", joined(&f.path)),
            })?;
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
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::Metainfo;
    use super::*;
    use crate::info_hash::InfoHash;

    /// A bencode value owning its bytes; dictionaries are encoded with sorted keys.
    #[derive(Clone)]
    enum B {
        I(i64),
        S(Vec<u8>),
        L(Vec<B>),
        D(Vec<(Vec<u8>, B)>),
    }

    impl B {
        fn encode(&self, out: &mut Vec<u8>) {
            match self {
                B::I(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
                B::S(s) => {
                    out.extend_from_slice(format!("{}:", s.len()).as_bytes());
                    out.extend_from_slice(s);
                }
                B::L(l) => {
                    out.push(b'l');
                    l.iter().for_each(|v| v.encode(out));
                    out.push(b'e');
                }
                B::D(d) => {
                    let mut d = d.clone();
                    d.sort_by(|a, b| a.0.cmp(&b.0));
                    out.push(b'd');
                    for (k, v) in &d {
                        B::S(k.clone()).encode(out);
                        v.encode(out);
                    }
                    out.push(b'e');
                }
            }
        }
        fn bytes(&self) -> Vec<u8> {
            let mut out = Vec::new();
            self.encode(&mut out);
            out
        }
        fn set(&mut self, key: &str, value: B) {
            if let B::D(d) = self {
                d.retain(|(k, _)| k != key.as_bytes());
                d.push((key.as_bytes().to_vec(), value));
            }
        }
    }

    fn s(x: &str) -> B {
        B::S(x.as_bytes().to_vec())
    }
    fn d(entries: Vec<(&str, B)>) -> B {
        B::D(
            entries
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    const PL: usize = 32 * 1024; // two leaves per piece

    fn content(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
            .collect()
    }

    /// The file node and (for a multi-piece file) the piece layer of `data`.
    /// A piece layer entry: the root and the concatenated piece hashes.
    type LayerEntry = (Vec<u8>, Vec<u8>);

    fn node(data: &[u8]) -> (B, Option<LayerEntry>) {
        let mut leaf = d(vec![("length", B::I(data.len() as i64))]);
        let mut layer = None;
        if let Some(root) = merkle::file_root(data) {
            leaf.set("pieces root", B::S(root.to_vec()));
            if data.len() > PL {
                let per = merkle::leaves_per_piece(PL as u32, data.len() as u64);
                let hashes: Vec<u8> = data
                    .chunks(PL)
                    .flat_map(|p| merkle::piece_root(p, per).unwrap())
                    .collect();
                layer = Some((root.to_vec(), hashes));
            }
        }
        (d(vec![("", leaf)]), layer)
    }

    /// A v2-only torrent of `files` (path, data) with `piece layers`.
    fn v2_torrent(files: &[(&[&str], Vec<u8>)]) -> (B, B) {
        let mut tree = d(vec![]);
        let mut layers = d(vec![]);
        for (path, data) in files {
            let (n, layer) = node(data);
            insert(&mut tree, path, n);
            if let Some((root, hashes)) = layer {
                if let B::D(l) = &mut layers {
                    l.push((root, B::S(hashes)));
                }
            }
        }
        let info = d(vec![
            ("name", s("top")),
            ("piece length", B::I(PL as i64)),
            ("meta version", B::I(2)),
            ("file tree", tree),
        ]);
        (info, layers)
    }

    fn insert(tree: &mut B, path: &[&str], n: B) {
        let B::D(entries) = tree else { return };
        let key = path[0].as_bytes().to_vec();
        if path.len() == 1 {
            entries.push((key, n));
            return;
        }
        if !entries.iter().any(|(k, _)| *k == key) {
            entries.push((key.clone(), d(vec![])));
        }
        let sub = entries.iter_mut().find(|(k, _)| *k == key).unwrap();
        insert(&mut sub.1, &path[1..], n);
    }

    fn torrent(info: &B, layers: &B) -> Vec<u8> {
        d(vec![
            ("info", info.clone()),
            ("piece layers", layers.clone()),
        ])
        .bytes()
    }

    fn files() -> Vec<(&'static [&'static str], Vec<u8>)> {
        vec![
            (&["a", "big"][..], content(3 * PL + 1000, 1)),
            (&["a", "empty"][..], Vec::new()),
            (&["small"][..], content(20_000, 2)),
        ]
    }

    fn v2_err(info: &B, layers: &B) -> V2Error {
        match Metainfo::from_bytes(&torrent(info, layers)) {
            Err(MetainfoError::V2(e)) => e,
            other => panic!("expected a V2Error, got {other:?}"),
        }
    }

    #[test]
    fn a_v2_only_torrent_is_read_with_its_layers_checked() {
        let (info, layers) = v2_torrent(&files());
        let m = Metainfo::from_bytes(&torrent(&info, &layers)).unwrap();
        assert!(m.is_v2_only() && !m.is_hybrid());
        let v2 = m.v2.as_ref().unwrap();
        let want = InfoHashV2::of_info_bytes(&info.bytes());
        assert_eq!(v2.info_hash, want);
        assert_eq!(m.info_hash, want.truncated());
        assert_eq!(v2.piece_length, PL as u32);
        assert!(v2.piece_layers_known);
        let paths: Vec<String> = v2.files.iter().map(|f| f.path.join("/")).collect();
        assert_eq!(paths, ["a/big", "a/empty", "small"]);
        assert_eq!(v2.files[0].piece_layer.len(), 4);
        assert!(v2.files[1].pieces_root.is_none() && v2.files[1].piece_layer.is_empty());
        assert_eq!(
            v2.files[2].piece_layer,
            vec![v2.files[2].pieces_root.unwrap()]
        );
        assert_eq!(v2.piece_count(), 4 + 1);
        assert_eq!(m.info.total_length, 3 * PL as u64 + 1000 + 20_000);
        assert!(m.info.multi_file && m.info.piece_hashes.is_empty());

        // A bare info dictionary: the same hashes, layers not known.
        let bare = Metainfo::from_info_bytes(&info.bytes()).unwrap();
        assert_eq!(bare.info_hash, m.info_hash);
        let bv2 = bare.v2.unwrap();
        assert!(!bv2.piece_layers_known && bv2.files[0].piece_layer.is_empty());
    }

    #[test]
    fn a_session_refuses_to_download_a_v2_only_torrent() {
        use crate::session::{AddTorrentError, Session, SessionConfig};
        use crate::time::Instant;
        let (info, layers) = v2_torrent(&files());
        let m = Metainfo::from_bytes(&torrent(&info, &layers)).unwrap();
        let mut s = Session::new(SessionConfig::default(), 1, Instant::ZERO);
        let e = s.add_torrent(&m, None, Instant::ZERO).unwrap_err();
        assert_eq!(e, AddTorrentError::V2Only(m.info_hash));
        assert!(e.to_string().contains("v2-only"), "{e}");
    }

    #[test]
    fn pieces_verify_against_the_layer() {
        let fs = files();
        let (info, layers) = v2_torrent(&fs);
        let m = Metainfo::from_bytes(&torrent(&info, &layers)).unwrap();
        let v2 = m.v2.unwrap();
        let pl = v2.piece_length;
        // A file of 4 pieces, the last one short (1000 bytes: padded to a whole piece).
        let big = &v2.files[0];
        for (i, piece) in fs[0].1.chunks(PL).enumerate() {
            assert_eq!(
                big.verify_piece(pl, i as u64, piece),
                Some(true),
                "piece {i}"
            );
            let mut bad = piece.to_vec();
            bad[0] ^= 1;
            assert_eq!(big.verify_piece(pl, i as u64, &bad), Some(false));
        }
        assert_eq!(big.verify_piece(pl, 4, &[]), None, "past the end");
        assert_eq!(big.verify_piece(pl, 0, &vec![0; PL + 1]), None, "too long");
        // A one-piece file: its piece hash is its root (padded to its own leaf count).
        let small = &v2.files[2];
        assert_eq!(small.verify_piece(pl, 0, &fs[2].1), Some(true));
        assert_eq!(small.verify_piece(pl, 0, &fs[2].1[1..]), Some(false));
        assert_eq!(v2.files[1].verify_piece(pl, 0, &[]), None, "an empty file");
    }

    #[test]
    fn a_single_file_v2_torrent() {
        let (mut info, _) = v2_torrent(&[(&["file.bin"], content(100, 3))]);
        info.set("name", s("shown"));
        let m = Metainfo::from_bytes(&torrent(&info, &d(vec![]))).unwrap();
        assert!(!m.info.multi_file && m.is_v2_only());
        assert_eq!(
            m.info.files[0].path,
            ["shown"],
            "a single file's path is the name"
        );
        assert_eq!(m.info.file_path(0), Some("shown".into()));
        assert_eq!(m.v2.unwrap().files[0].path, ["file.bin"]);
    }

    #[test]
    fn hybrid_torrents_get_both_hashes_and_must_agree() {
        let data = [content(PL + 5, 4), content(10, 5)];
        let (mut info, layers) =
            v2_torrent(&[(&["x"], data[0].clone()), (&["y"], data[1].clone())]);
        // v1: x, a padding file to the piece boundary, y.
        let pad = (2 * PL - data[0].len()) as i64;
        let v1_files = |second_len: i64, pad: i64| {
            B::L(vec![
                d(vec![
                    ("length", B::I((PL + 5) as i64)),
                    ("path", B::L(vec![s("x")])),
                ]),
                d(vec![
                    ("attr", s("p")),
                    ("length", B::I(pad)),
                    ("path", B::L(vec![s(".pad"), s("p")])),
                ]),
                d(vec![
                    ("length", B::I(second_len)),
                    ("path", B::L(vec![s("y")])),
                ]),
            ])
        };
        info.set("files", v1_files(10, pad));
        info.set("pieces", B::S(vec![7; 3 * 20]));
        let m = Metainfo::from_bytes(&torrent(&info, &layers)).unwrap();
        assert!(m.is_hybrid());
        assert_eq!(m.info_hash, InfoHash::of_info_bytes(&info.bytes()));
        assert_eq!(
            m.v2.unwrap().info_hash,
            InfoHashV2::of_info_bytes(&info.bytes())
        );

        let mut other = info.clone();
        other.set("files", v1_files(11, pad));
        other.set("pieces", B::S(vec![7; 3 * 20]));
        assert!(matches!(
            v2_err(&other, &layers),
            V2Error::HybridFileMismatch { index: 1, .. }
        ));
        other.set("files", v1_files(10, pad - 1));
        assert!(matches!(
            v2_err(&other, &layers),
            V2Error::HybridUnaligned { .. }
        ));
        other.set(
            "files",
            B::L(vec![d(vec![
                ("length", B::I((PL + 5) as i64)),
                ("path", B::L(vec![s("x")])),
            ])]),
        );
        other.set("pieces", B::S(vec![7; 2 * 20]));
        assert_eq!(
            v2_err(&other, &layers),
            V2Error::HybridFileCount { v1: 1, v2: 2 }
        );
    }

    #[test]
    fn bad_meta_version_and_piece_lengths() {
        let (mut info, layers) = v2_torrent(&files());
        info.set("meta version", B::I(3));
        assert_eq!(
            v2_err(&info, &layers),
            V2Error::UnsupportedMetaVersion { value: 3 }
        );
        for bad in [0, 8192, 3 * 16384, 1 << 29, -16384] {
            let (mut info, layers) = v2_torrent(&files());
            info.set("piece length", B::I(bad));
            assert_eq!(
                v2_err(&info, &layers),
                V2Error::BadPieceLength { value: bad }
            );
        }
    }

    #[test]
    fn bad_trees_are_refused() {
        let (mut info, layers) = v2_torrent(&files());
        info.set("file tree", d(vec![]));
        assert_eq!(v2_err(&info, &layers), V2Error::EmptyFileTree);

        info.set("file tree", d(vec![("dir", d(vec![]))]));
        assert!(matches!(
            v2_err(&info, &layers),
            V2Error::EmptyDirectory { path } if path == "dir"
        ));

        let (leaf, _) = node(&content(10, 0));
        let mut mixed = leaf.clone();
        mixed.set("other", leaf.clone());
        info.set("file tree", d(vec![("f", mixed)]));
        assert!(matches!(
            v2_err(&info, &layers),
            V2Error::FileAndDirectory { path } if path == "f"
        ));

        let mut deep = leaf.clone();
        for _ in 0..MAX_TREE_DEPTH {
            deep = d(vec![("d", deep)]);
        }
        info.set("file tree", deep.clone());
        assert!(Metainfo::from_bytes(&torrent(&info, &layers)).is_ok());
        info.set("file tree", d(vec![("d", deep)]));
        assert!(matches!(v2_err(&info, &layers), V2Error::TooDeep { .. }));

        for bad in ["..", "a/b", "", "con", "x\0y"] {
            info.set("file tree", d(vec![(bad, leaf.clone())]));
            let r = Metainfo::from_bytes(&torrent(&info, &layers));
            assert!(
                matches!(r, Err(MetainfoError::BadPathComponent { .. })),
                "{bad:?}: {r:?}"
            );
        }
        // A repeated key (lenient bencode keeps both): two files at one path.
        info.set(
            "file tree",
            d(vec![("f", leaf.clone()), ("f", leaf.clone())]),
        );
        let r = Metainfo::from_bytes(&torrent(&info, &layers));
        assert!(
            matches!(r, Err(MetainfoError::DuplicatePath { .. })),
            "{r:?}"
        );
        info.set("file tree", d(vec![("f", d(vec![("", s("x"))]))]));
        assert!(matches!(
            Metainfo::from_bytes(&torrent(&info, &layers)),
            Err(MetainfoError::WrongType { .. })
        ));
    }

    #[test]
    fn bad_roots_are_refused() {
        let (mut info, layers) = v2_torrent(&files());
        let leaf = |len: i64, root: Option<Vec<u8>>| {
            let mut l = d(vec![("length", B::I(len))]);
            if let Some(r) = root {
                l.set("pieces root", B::S(r));
            }
            d(vec![("f", d(vec![("", l)]))])
        };
        info.set("file tree", leaf(10, Some(vec![1; 31])));
        assert_eq!(
            v2_err(&info, &layers),
            V2Error::BadPiecesRoot {
                path: "f".into(),
                len: 31
            }
        );
        info.set("file tree", leaf(10, None));
        assert!(matches!(
            v2_err(&info, &layers),
            V2Error::MissingPiecesRoot { length: 10, .. }
        ));
        info.set("file tree", leaf(0, Some(vec![1; 32])));
        assert!(matches!(
            v2_err(&info, &layers),
            V2Error::RootOnEmptyFile { .. }
        ));
        info.set("file tree", leaf(-1, None));
        assert!(matches!(
            Metainfo::from_bytes(&torrent(&info, &layers)),
            Err(MetainfoError::NegativeLength { .. })
        ));
    }

    #[test]
    fn bad_piece_layers_are_refused() {
        let (info, layers) = v2_torrent(&files());
        assert!(matches!(
            v2_err(&info, &d(vec![])),
            V2Error::MissingPieceLayer { pieces: 4, .. }
        ));
        let B::D(entries) = &layers else { panic!() };
        let (root, B::S(hashes)) = entries[0].clone() else {
            panic!()
        };
        for cut in [1, 32] {
            let short = B::D(vec![(root.clone(), B::S(hashes[cut..].to_vec()))]);
            assert!(matches!(
                v2_err(&info, &short),
                V2Error::BadPieceLayerLength {
                    pieces: 4,
                    expected: 128,
                    ..
                }
            ));
        }
        let mut flipped = hashes.clone();
        flipped[100] ^= 1;
        let wrong = B::D(vec![(root.clone(), B::S(flipped))]);
        assert!(matches!(
            v2_err(&info, &wrong),
            V2Error::PieceLayerMismatch { .. }
        ));
        let not_bytes = B::D(vec![(root, B::I(1))]);
        assert!(matches!(
            Metainfo::from_bytes(&torrent(&info, &not_bytes)),
            Err(MetainfoError::WrongType { .. })
        ));
        // `piece layers` of the wrong type.
        let top = d(vec![("info", info.clone()), ("piece layers", B::I(0))]).bytes();
        assert!(matches!(
            Metainfo::from_bytes(&top),
            Err(MetainfoError::WrongType { .. })
        ));
    }

    #[test]
    fn every_prefix_of_a_v2_torrent_is_an_error() {
        let (info, layers) = v2_torrent(&files());
        let t = torrent(&info, &layers);
        for n in 0..t.len() {
            assert!(Metainfo::from_bytes(&t[..n]).is_err(), "prefix {n}");
        }
    }
}
