//! What each piece of a torrent must hash to: the SHA-1 of BEP 3 (v1 and hybrid torrents),
//! the merkle root of BEP 52 (v2-only and hybrid torrents), or both.
//!
//! Pieces are numbered across the whole torrent in the v1 view of its files
//! ([`crate::metainfo::Info::files`]): for a hybrid that view is the metainfo's own (with its
//! padding files); for a v2-only torrent it is the padded view the parser builds, so in both
//! every non-empty file starts a piece. A v2 piece is then piece `i - first` of the file
//! whose first piece is `first`, and its hash is that file's piece layer entry.
//!
//! A piece that ends a file may be followed, in the same piece, by padding: the v2 hash
//! covers only the file's bytes ([`V2PieceHash::data_len`]), and the padding must be zeros.
//! For a hybrid the v1 SHA-1 covers the padding too, and a piece must pass **both** checks,
//! so a peer whose data fits one hash and not the other is caught.

use crate::embed::piece_sha1;
use crate::metainfo::Metainfo;
use crate::metainfo::merkle::{self, Hash32};
use crate::wire::HashRequest;
use sha2::{Digest, Sha256};

/// What one piece must hash to. [`PieceHash::matches`] checks data against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PieceHash {
    /// The SHA-1 of the whole piece, padding included (v1 and hybrid torrents).
    pub v1: Option<[u8; 20]>,
    /// The merkle root of the piece's file bytes (v2-only and hybrid torrents).
    pub v2: Option<V2PieceHash>,
}

/// The BEP 52 hash of one piece: the root of its 16 KiB leaves' SHA-256s, padded with zero
/// leaves to [`V2PieceHash::leaves`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V2PieceHash {
    /// The piece layer's entry for this piece (the file's `pieces root` for a file of one
    /// piece).
    pub root: Hash32,
    /// The leaf count of the piece's subtree ([`merkle::leaves_per_piece`]).
    pub leaves: u32,
    /// How many of the piece's bytes belong to the file; the rest is padding.
    pub data_len: u32,
}

impl PieceHash {
    /// A v1 piece: its SHA-1 only.
    pub fn v1(sha1: [u8; 20]) -> PieceHash {
        PieceHash {
            v1: Some(sha1),
            v2: None,
        }
    }

    /// Whether `blocks`, concatenated, are the piece: every hash it has matches (a hybrid's
    /// two both), and any bytes past a v2 piece's file data are zeros. A hash with neither
    /// part matches nothing.
    pub fn matches<B: AsRef<[u8]>>(&self, blocks: &[B]) -> bool {
        if self.v1.is_none() && self.v2.is_none() {
            return false;
        }
        if self.v1.is_some_and(|sha1| piece_sha1(blocks) != sha1) {
            return false;
        }
        self.v2.is_none_or(|v2| v2.matches(blocks))
    }
}

impl V2PieceHash {
    /// Whether `blocks`, concatenated, hash to this root with their bytes past
    /// [`V2PieceHash::data_len`] all zero (and there are at least `data_len` bytes).
    pub fn matches<B: AsRef<[u8]>>(&self, blocks: &[B]) -> bool {
        let data_len = self.data_len as usize;
        let mut leaves: Vec<Hash32> = Vec::new();
        let mut leaf = Sha256::new();
        let mut in_leaf = 0usize;
        let mut seen = 0usize;
        for block in blocks {
            let mut bytes = block.as_ref();
            while !bytes.is_empty() {
                if seen >= data_len {
                    // Padding: never hashed by v2, but it must be zeros (BEP 47).
                    if bytes.iter().any(|&b| b != 0) {
                        return false;
                    }
                    seen += bytes.len();
                    break;
                }
                let take = bytes
                    .len()
                    .min(merkle::BLOCK_SIZE - in_leaf)
                    .min(data_len - seen);
                leaf.update(&bytes[..take]);
                in_leaf += take;
                seen += take;
                bytes = &bytes[take..];
                if in_leaf == merkle::BLOCK_SIZE || seen == data_len {
                    leaves.push(std::mem::take(&mut leaf).finalize().into());
                    in_leaf = 0;
                }
            }
        }
        if seen < data_len || data_len == 0 {
            return false;
        }
        merkle::root_of(&leaves, self.leaves as usize, [0; 32]) == Some(self.root)
    }
}

/// One non-empty file of a v2 or hybrid torrent, placed in the piece numbering.
#[derive(Clone, Debug, PartialEq, Eq)]
struct V2Run {
    /// The file's `pieces root`.
    root: Hash32,
    /// The file's first piece in the torrent.
    first_piece: u32,
    /// The file's length in bytes (not zero).
    length: u64,
    /// The file's piece layer: one root per piece of the file.
    layer: Vec<Hash32>,
}

/// Every piece's [`PieceHash`] for one torrent, built from its metainfo. Holds the v1
/// SHA-1s and the v2 piece layers as the metainfo does: 20 and 32 bytes per piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PieceHashes {
    piece_count: u32,
    piece_length: u32,
    v1: Vec<[u8; 20]>,
    /// Sorted by `first_piece`; empty for a v1 torrent.
    v2: Vec<V2Run>,
}

/// Why a torrent's piece hashes could not be laid out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PieceHashesError {
    /// A v2 torrent whose piece layers are not known yet (a bare info dictionary from a
    /// magnet link): its pieces cannot be checked.
    #[error("the torrent's v2 piece layers are not known, so its pieces cannot be checked")]
    LayersUnknown,
    /// The v1 hashes are not one per piece.
    #[error("{hashes} piece hashes for {pieces} pieces")]
    CountMismatch {
        /// Hashes given.
        hashes: usize,
        /// Pieces in the layout.
        pieces: u32,
    },
    /// A v2 file's piece layer does not fit where the v1 view puts the file.
    #[error("v2 file {file} does not fit the torrent's pieces")]
    V2Misplaced {
        /// Index of the file among the v2 files.
        file: usize,
    },
}

impl PieceHashes {
    /// The hashes of a v1 torrent with `piece_count` pieces of `piece_length` bytes.
    pub fn v1_only(v1: Vec<[u8; 20]>, piece_length: u32) -> PieceHashes {
        PieceHashes {
            piece_count: u32::try_from(v1.len()).unwrap_or(u32::MAX),
            piece_length,
            v1,
            v2: Vec::new(),
        }
    }

    /// The hashes `metainfo` gives for each of its pieces: the SHA-1s, the v2 piece
    /// layers, or both for a hybrid.
    pub fn from_metainfo(metainfo: &Metainfo) -> Result<PieceHashes, PieceHashesError> {
        let layout = metainfo.info.layout();
        let piece_count = layout.piece_count();
        let piece_length = metainfo.info.piece_length;
        let v1 = metainfo.info.piece_hashes.clone();
        if !v1.is_empty() && v1.len() != piece_count as usize {
            return Err(PieceHashesError::CountMismatch {
                hashes: v1.len(),
                pieces: piece_count,
            });
        }
        let mut v2 = Vec::new();
        // A hybrid whose layers are not known yet (its info dictionary came from a magnet
        // link) is checked by SHA-1 alone until they are; a v2-only one cannot be checked.
        let v2_info = metainfo
            .v2
            .as_ref()
            .filter(|info| info.piece_layers_known || v1.is_empty());
        if let Some(info) = v2_info {
            if !info.piece_layers_known {
                return Err(PieceHashesError::LayersUnknown);
            }
            // The v1 view's real files are the v2 files in order (the parser checks this
            // for a hybrid and builds it so for a v2-only torrent).
            let real = metainfo.info.files.iter().filter(|f| !f.padding);
            for (index, (entry, file)) in real.zip(&info.files).enumerate() {
                if file.length == 0 {
                    continue;
                }
                let misplaced = PieceHashesError::V2Misplaced { file: index };
                if entry.length != file.length || entry.offset % u64::from(piece_length.max(1)) != 0
                {
                    return Err(misplaced);
                }
                let first_piece = u32::try_from(entry.offset / u64::from(piece_length))
                    .map_err(|_| misplaced.clone())?;
                let pieces = file.piece_count(piece_length);
                if file.piece_layer.len() as u64 != pieces
                    || u64::from(first_piece) + pieces > u64::from(piece_count)
                {
                    return Err(misplaced);
                }
                let Some(root) = file.pieces_root else {
                    return Err(misplaced);
                };
                v2.push(V2Run {
                    root,
                    first_piece,
                    length: file.length,
                    layer: file.piece_layer.clone(),
                });
            }
        } else if v1.len() != piece_count as usize {
            return Err(PieceHashesError::CountMismatch {
                hashes: v1.len(),
                pieces: piece_count,
            });
        }
        Ok(PieceHashes {
            piece_count,
            piece_length,
            v1,
            v2,
        })
    }

    /// How many pieces the torrent has.
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }

    /// Whether the torrent has v2 hashes (a v2-only or hybrid torrent).
    pub fn has_v2(&self) -> bool {
        !self.v2.is_empty()
    }

    /// BEP 47 padding bytes at the end of `piece`, whose length is `piece_len`: what a v2
    /// piece holds past its file's data (0 for a v1 piece, whose padding files, if any,
    /// are not known here).
    pub fn padding_in(&self, piece: u32, piece_len: u32) -> u32 {
        self.v2_of(piece)
            .map_or(0, |v2| piece_len.saturating_sub(v2.data_len))
    }

    /// What `piece` must hash to; `None` past the end, and for a v2-only torrent's piece
    /// that lies wholly in padding (which no file owns and no peer sends).
    pub fn expected(&self, piece: u32) -> Option<PieceHash> {
        if piece >= self.piece_count {
            return None;
        }
        let v1 = self.v1.get(piece as usize).copied();
        let v2 = self.v2_of(piece);
        if v1.is_none() && v2.is_none() {
            return None;
        }
        Some(PieceHash { v1, v2 })
    }

    /// The v2 hash of `piece`, if a v2 file holds it.
    fn v2_of(&self, piece: u32) -> Option<V2PieceHash> {
        let at = self.v2.partition_point(|run| run.first_piece <= piece);
        let run = self.v2.get(at.checked_sub(1)?)?;
        let index = piece - run.first_piece;
        let root = *run.layer.get(index as usize)?;
        let start = u64::from(index) * u64::from(self.piece_length);
        let data_len = (run.length - start).min(u64::from(self.piece_length));
        Some(V2PieceHash {
            root,
            leaves: u32::try_from(merkle::leaves_per_piece(self.piece_length, run.length)).ok()?,
            data_len: u32::try_from(data_len).ok()?,
        })
    }
}

impl PieceHashes {
    /// The merkle tree above the piece layer of the file whose `pieces root` is `root`,
    /// for answering `hash request`s ([`FileTree::answer`]); `None` if no file of more
    /// than one piece has that root. Costs one SHA-256 per piece: callers keep it.
    pub fn file_tree(&self, root: &Hash32) -> Option<FileTree> {
        let run = self.v2.iter().find(|run| run.root == *root)?;
        FileTree::new(&run.layer, self.piece_length, run.length)
    }

    /// The files whose piece layers a hash request can ask for: each one's `pieces
    /// root` and piece count (files of more than one piece).
    pub fn layered_files(&self) -> impl Iterator<Item = (Hash32, usize)> + '_ {
        self.v2
            .iter()
            .filter(|run| run.layer.len() > 1)
            .map(|run| (run.root, run.layer.len()))
    }
}

/// The most base-layer hashes we send for one `hash request` (BEP 52: requests SHOULD
/// NOT ask for more than 512).
pub const MAX_SERVED_HASHES: u32 = 512;

/// One file's merkle tree from its piece layer up to its root, each layer padded to its
/// full width: what answering `hash request`s needs (we keep no block hashes, so the
/// leaf layers are not served).
///
/// Levels count from the leaves (16 KiB blocks) as BEP 52's `base layer` does: the tree
/// has `next_power_of_two(blocks)` leaves, its root is at level `top = log2(leaves)`,
/// and the piece layer is at `log2(piece length / 16 KiB)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileTree {
    piece_level: u32,
    top: u32,
    /// `layers[i]`: the nodes at level `piece_level + i`; the last is `[root]`.
    layers: Vec<Vec<Hash32>>,
}

impl FileTree {
    /// The tree over `layer` (a file of `length` bytes cut into `piece_length` pieces);
    /// `None` for a file of one piece or less, or a layer that does not fit.
    fn new(layer: &[Hash32], piece_length: u32, length: u64) -> Option<FileTree> {
        let block = merkle::BLOCK_SIZE as u64;
        let leaves = length.div_ceil(block).checked_next_power_of_two()?;
        let top = leaves.trailing_zeros();
        let piece_level = (u64::from(piece_length) / block).max(1).trailing_zeros();
        if piece_level >= top {
            return None;
        }
        let width = usize::try_from(leaves >> piece_level).ok()?;
        if layer.len() > width || layer.len() < 2 {
            return None;
        }
        let mut current = layer.to_vec();
        current.resize(width, merkle::zero_subtree_root(piece_level));
        let mut layers = vec![current];
        while let Some(below) = layers.last().filter(|l| l.len() > 1) {
            let above: Vec<Hash32> = below
                .chunks_exact(2)
                .map(|pair| merkle::hash_pair(&pair[0], &pair[1]))
                .collect();
            layers.push(above);
        }
        Some(FileTree {
            piece_level,
            top,
            layers,
        })
    }

    /// The file's `pieces root`.
    pub fn root(&self) -> Hash32 {
        self.layers
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or_default()
    }

    /// The answer to `request` (its pieces root must be this file's): the base layer's
    /// hashes `[index, index + length)`, then one uncle hash per proof layer, starting
    /// at the level where the requested hashes' own subtree ends — the layout libtorrent
    /// sends and checks (the uncles below that level are computable from the hashes
    /// themselves, so BEP 52 omits them). `None` (answer with `hash reject`) for a layer
    /// below the piece layer, a range outside the layer, fewer than 2 hashes (BEP 52's
    /// minimum; every layer we serve is at least 2 wide) or more than
    /// [`MAX_SERVED_HASHES`], or proofs reaching the root.
    pub fn answer(&self, request: &HashRequest) -> Option<Vec<Hash32>> {
        let base = request.base_layer;
        if base < self.piece_level
            || base >= self.top
            || request.length < 2
            || request.length > MAX_SERVED_HASHES
            || request.proof_layers >= self.top - base
        {
            return None;
        }
        let layer = self.layers.get((base - self.piece_level) as usize)?;
        let index = request.index as usize;
        let end = index.checked_add(request.length as usize)?;
        let mut out = layer.get(index..end)?.to_vec();
        // Levels whose uncle lies inside the requested range are skipped: with 2^k
        // hashes, the first k - 1 proof layers.
        let first_uncle = request
            .length
            .next_power_of_two()
            .trailing_zeros()
            .saturating_sub(1);
        for i in first_uncle..request.proof_layers {
            let level = (base - self.piece_level + i + 1) as usize;
            let node = (index >> (i + 1)) ^ 1;
            out.push(*self.layers.get(level)?.get(node)?);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
            .collect()
    }

    /// The v2 hash of `file` as the one piece (of 64 KiB) of a file of its length.
    fn one_piece(file: &[u8]) -> V2PieceHash {
        let leaves = merkle::leaves_per_piece(64 * 1024, file.len() as u64);
        V2PieceHash {
            root: merkle::piece_root(file, leaves).unwrap(),
            leaves: leaves as u32,
            data_len: file.len() as u32,
        }
    }

    #[test]
    fn a_v2_piece_matches_however_its_blocks_are_cut() {
        let file = data(40_000, 1);
        let hash = one_piece(&file);
        assert_eq!(hash.leaves, 4);
        assert!(hash.matches(&[&file[..]]));
        assert!(hash.matches(&[&file[..16_384], &file[16_384..]]));
        assert!(hash.matches(&[&file[..100], &file[100..30_000], &file[30_000..]]));
        // Zero padding after the file's bytes is allowed, as a hybrid's piece carries.
        let mut padded = file.clone();
        padded.resize(64 * 1024, 0);
        assert!(hash.matches(&[&padded[..16_384], &padded[16_384..]]));
    }

    #[test]
    fn a_v2_piece_with_a_changed_byte_short_data_or_dirty_padding_fails() {
        let file = data(40_000, 2);
        let hash = one_piece(&file);
        let mut changed = file.clone();
        changed[39_999] ^= 1;
        assert!(!hash.matches(&[&changed[..]]));
        assert!(!hash.matches(&[&file[..39_999]]));
        let none: [&[u8]; 0] = [];
        assert!(!hash.matches(&none));
        let mut padded = file.clone();
        padded.resize(64 * 1024, 0);
        padded[50_000] = 9;
        assert!(!hash.matches(&[&padded[..]]));
    }

    #[test]
    fn a_hybrid_piece_needs_both_hashes() {
        let file = data(40_000, 3);
        let v2 = one_piece(&file);
        let good = PieceHash {
            v1: Some(piece_sha1(&[&file[..]])),
            v2: Some(v2),
        };
        assert!(good.matches(&[&file[..]]));
        // Right SHA-1 of other data: the v2 root no longer matches, and the reverse.
        let other = data(40_000, 4);
        let v1_lies = PieceHash {
            v1: Some(piece_sha1(&[&other[..]])),
            v2: Some(v2),
        };
        assert!(!v1_lies.matches(&[&file[..]]));
        assert!(!v1_lies.matches(&[&other[..]]));
        assert!(PieceHash::v1(piece_sha1(&[&other[..]])).matches(&[&other[..]]));
        let empty = PieceHash { v1: None, v2: None };
        assert!(!empty.matches(&[&file[..]]));
    }

    /// A file of ten 16 KiB blocks less 100 bytes in 32 KiB pieces: 5 pieces, 16 leaves,
    /// so the piece layer (level 1) is 8 wide and the root is at level 4.
    fn five_piece_file() -> (Vec<u8>, FileTree, Hash32) {
        let file = data(10 * 16_384 - 100, 5);
        let layer: Vec<Hash32> = file
            .chunks(32_768)
            .map(|p| merkle::piece_root(p, 2).unwrap())
            .collect();
        let root = merkle::file_root(&file).unwrap();
        let tree = FileTree::new(&layer, 32_768, file.len() as u64).unwrap();
        assert_eq!(tree.root(), root);
        (file, tree, root)
    }

    fn request(base_layer: u32, index: u32, length: u32, proof_layers: u32) -> HashRequest {
        HashRequest {
            pieces_root: [0; 32],
            base_layer,
            index,
            length,
            proof_layers,
        }
    }

    #[test]
    fn a_hash_request_for_the_piece_layer_gets_it_padded() {
        let (file, tree, _) = five_piece_file();
        let got = tree.answer(&request(1, 0, 8, 0)).unwrap();
        assert_eq!(got.len(), 8);
        for (i, piece) in file.chunks(32_768).enumerate() {
            assert_eq!(got[i], merkle::piece_root(piece, 2).unwrap());
        }
        // Beyond the file: the roots of all-zero pieces.
        assert!(got[5..].iter().all(|h| *h == merkle::zero_subtree_root(1)));
    }

    #[test]
    fn proof_hashes_lead_from_the_requested_hashes_to_the_root() {
        let (_, tree, root) = five_piece_file();
        for (index, length, proofs) in [
            (4u32, 2u32, 2u32),
            (0, 4, 2),
            (2, 2, 2),
            (6, 2, 2),
            (4, 4, 2),
        ] {
            let got = tree.answer(&request(1, index, length, proofs)).unwrap();
            // Up from the requested hashes, then one uncle per level above their subtree.
            let base = &got[..length as usize];
            let mut node =
                merkle::root_of(base, length.next_power_of_two() as usize, [0; 32]).unwrap();
            let mut at = index / length.next_power_of_two();
            let uncles = &got[length as usize..];
            let levels = length.next_power_of_two().trailing_zeros();
            assert_eq!(
                uncles.len() as u32,
                proofs + 1 - levels.max(1),
                "{index} {length}"
            );
            for uncle in uncles {
                node = if at % 2 == 0 {
                    merkle::hash_pair(&node, uncle)
                } else {
                    merkle::hash_pair(uncle, &node)
                };
                at /= 2;
            }
            assert_eq!(node, root, "index {index} length {length} proofs {proofs}");
        }
    }

    #[test]
    fn hash_requests_out_of_bounds_are_refused() {
        let (_, tree, _) = five_piece_file();
        for r in [
            request(0, 0, 2, 0), // the leaf layer: not kept
            request(4, 0, 1, 0), // the root's level
            request(1, 6, 4, 0), // past the layer's end
            request(1, 0, 0, 0), // nothing
            request(1, 2, 1, 2), // one hash: BEP 52 asks for at least two
            request(1, 0, 8, 3), // proofs up to the root
            request(1, u32::MAX, 2, 0),
        ] {
            assert_eq!(tree.answer(&r), None, "{r:?}");
        }
        assert!(tree.answer(&request(1, 0, 8, 2)).is_some());
        // A file of one piece has no tree to ask about.
        assert_eq!(FileTree::new(&[[1; 32]], 32_768, 20_000), None);
    }
}
