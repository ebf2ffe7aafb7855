//! BEP 52 merkle trees: SHA-256 over 16 KiB blocks, one tree per file.
//!
//! A file's tree has one leaf per 16 KiB block (the last block may be shorter and is hashed
//! as it is). The leaf layer is padded to a power of two with all-zero 32-byte hashes; an
//! inner node is SHA-256 of its two children concatenated. The root is the file's
//! `pieces root`.
//!
//! The *piece layer* is the layer whose nodes each cover `piece length` bytes. It is what a
//! `.torrent` file's `piece layers` holds for files larger than one piece. Built up from the
//! piece layer alone, the tree is padded with the root of an all-zero subtree of a piece's
//! height ([`zero_subtree_root`]), which is what those zero leaves hash up to.
//!
//! The hash of one piece ([`piece_root`]) pads the piece's blocks with zero leaves up to the
//! piece's leaf count: `piece length / 16 KiB` for a file of more than one piece (the last
//! piece is padded as if it were whole), and the next power of two of the file's block count
//! for a file of one piece (its piece hash is then its `pieces root`); see
//! [`leaves_per_piece`].

use sha2::{Digest, Sha256};

/// The size of a merkle leaf: 16 KiB.
pub const BLOCK_SIZE: usize = 16 * 1024;

/// A SHA-256 hash: a leaf, an inner node or a root.
pub type Hash32 = [u8; 32];

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Hash32 {
    Sha256::digest(data).into()
}

/// SHA-256 of two nodes concatenated: their parent.
pub fn hash_pair(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut h = Sha256::new();
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of a subtree of `2^height` all-zero leaves (height 0: the zero leaf itself).
pub fn zero_subtree_root(height: u32) -> Hash32 {
    let mut h = [0u8; 32];
    for _ in 0..height {
        h = hash_pair(&h, &h);
    }
    h
}

/// The root over `nodes` padded to `width` nodes with `pad` (and each layer up with the pad's
/// parent). `None` if `width` is not a power of two or is smaller than `nodes.len()`.
pub fn root_of(nodes: &[Hash32], width: usize, pad: Hash32) -> Option<Hash32> {
    if !width.is_power_of_two() || nodes.len() > width {
        return None;
    }
    let mut layer: Vec<Hash32> = nodes.to_vec();
    let mut pad = pad;
    let mut width = width;
    while width > 1 {
        if layer.len() % 2 == 1 {
            layer.push(pad);
        }
        layer = layer
            .chunks_exact(2)
            .map(|p| hash_pair(&p[0], &p[1]))
            .collect();
        pad = hash_pair(&pad, &pad);
        width /= 2;
    }
    Some(layer.first().copied().unwrap_or(pad))
}

/// The leaf hashes of `data`: SHA-256 of each 16 KiB block, the last one possibly shorter.
pub fn block_hashes(data: &[u8]) -> Vec<Hash32> {
    data.chunks(BLOCK_SIZE).map(sha256).collect()
}

/// How many leaves one piece's subtree has in a file of `file_length` bytes: `piece_length /
/// 16 KiB` when the file spans more than one piece, else the next power of two of the file's
/// block count (at least 1). `piece_length` is a power of two of at least 16 KiB.
pub fn leaves_per_piece(piece_length: u32, file_length: u64) -> usize {
    let per_piece = (piece_length as usize / BLOCK_SIZE).max(1);
    if file_length > u64::from(piece_length) {
        per_piece
    } else {
        let blocks = usize::try_from(file_length.div_ceil(BLOCK_SIZE as u64)).unwrap_or(1);
        blocks.max(1).next_power_of_two().min(per_piece)
    }
}

/// The merkle root of one piece's bytes, its 16 KiB leaves padded with zero hashes to
/// `leaves` (see [`leaves_per_piece`]): what the piece layer holds for this piece. `None` if
/// `leaves` is not a power of two or the data has more blocks than that.
pub fn piece_root(data: &[u8], leaves: usize) -> Option<Hash32> {
    root_of(&block_hashes(data), leaves, [0; 32])
}

/// A whole file's `pieces root` computed from its bytes (`None` for an empty file, which has
/// no root).
pub fn file_root(data: &[u8]) -> Option<Hash32> {
    if data.is_empty() {
        return None;
    }
    let leaves = block_hashes(data);
    root_of(&leaves, leaves.len().next_power_of_two(), [0; 32])
}

/// A file's `pieces root` built up from its piece layer (one hash per piece of
/// `piece_length` bytes), padded to a power of two with the root of an all-zero piece.
/// `None` for an empty layer or a piece length below 16 KiB or not a power of two.
pub fn root_from_piece_layer(layer: &[Hash32], piece_length: u32) -> Option<Hash32> {
    if layer.is_empty() || !piece_length.is_power_of_two() || (piece_length as usize) < BLOCK_SIZE {
        return None;
    }
    let height = (piece_length as usize / BLOCK_SIZE).trailing_zeros();
    root_of(
        layer,
        layer.len().next_power_of_two(),
        zero_subtree_root(height),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn one_block_file_root_is_its_hash() {
        let d = data(1000);
        assert_eq!(file_root(&d), Some(sha256(&d)));
        assert_eq!(file_root(&[]), None);
    }

    #[test]
    fn three_blocks_pad_with_a_zero_leaf() {
        let d = data(2 * BLOCK_SIZE + 5);
        let l: Vec<Hash32> = d.chunks(BLOCK_SIZE).map(sha256).collect();
        let want = hash_pair(&hash_pair(&l[0], &l[1]), &hash_pair(&l[2], &[0; 32]));
        assert_eq!(file_root(&d), Some(want));
        assert_eq!(piece_root(&d, 4), Some(want));
        assert_eq!(
            piece_root(&d, 2),
            None,
            "three blocks do not fit in two leaves"
        );
        assert_eq!(piece_root(&d, 3), None, "not a power of two");
    }

    #[test]
    fn the_piece_layer_hashes_up_to_the_file_root() {
        // 64 KiB pieces (4 leaves), a file of 2 pieces and a bit: 3 pieces, padded to 4.
        let piece_length = 64 * 1024;
        let d = data(2 * piece_length + 3 * BLOCK_SIZE + 7);
        let per = leaves_per_piece(piece_length as u32, d.len() as u64);
        assert_eq!(per, 4);
        let layer: Vec<Hash32> = d
            .chunks(piece_length)
            .map(|p| piece_root(p, per).unwrap_or_default())
            .collect();
        assert_eq!(layer.len(), 3);
        let root = root_from_piece_layer(&layer, piece_length as u32);
        assert_eq!(root, file_root(&d));
        let mut wrong = layer.clone();
        wrong[2][0] ^= 1;
        assert_ne!(root_from_piece_layer(&wrong, piece_length as u32), root);
        assert_eq!(root_from_piece_layer(&[], piece_length as u32), None);
        assert_eq!(root_from_piece_layer(&layer, 1000), None);
    }

    #[test]
    fn leaves_per_piece_follows_the_padding_rule() {
        let pl = 256 * 1024; // 16 leaves
        assert_eq!(leaves_per_piece(pl, 1), 1);
        assert_eq!(leaves_per_piece(pl, 3 * BLOCK_SIZE as u64), 4);
        assert_eq!(leaves_per_piece(pl, u64::from(pl)), 16);
        assert_eq!(leaves_per_piece(pl, u64::from(pl) + 1), 16);
        // A one-piece file's piece hash is its root.
        let d = data(5 * BLOCK_SIZE);
        assert_eq!(
            piece_root(&d, leaves_per_piece(pl, d.len() as u64)),
            file_root(&d)
        );
    }

    #[test]
    fn zero_subtrees() {
        assert_eq!(zero_subtree_root(0), [0; 32]);
        assert_eq!(zero_subtree_root(1), hash_pair(&[0; 32], &[0; 32]));
        assert_eq!(root_of(&[], 4, [0; 32]), Some(zero_subtree_root(2)));
    }
}
