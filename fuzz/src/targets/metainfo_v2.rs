//! The `metainfo_v2` target: BitTorrent v2 (BEP 52) and hybrid `.torrent` parsing.
//!
//! Each input is used twice:
//! - **as a `.torrent` file**: whenever [`Metainfo::from_bytes`] accepts one with v2 metadata,
//!   1. `v2.info_hash == SHA-256(info_bytes)` (computed here with the `sha2` crate), and the
//!      wire `info_hash` is its first 20 bytes for a v2-only torrent, SHA-1 of the bytes for
//!      a hybrid;
//!   2. `piece length` is a power of two of at least 16 KiB;
//!   3. a file has a `pieces root` exactly when it is not empty; its piece layer holds one
//!      hash per piece and hashes up to that root ([`merkle::root_from_piece_layer`]), and a
//!      one-piece file's layer is its root;
//!   4. a hybrid's non-padding v1 files are the v2 files (paths and lengths, in order); a
//!      v2-only torrent's v1 view has the same lengths and no v1 pieces;
//!   5. the bare info dictionary (the magnet path) gives the same hashes and files, with
//!      the piece layers unknown;
//! - **as choices for a generated torrent** (via [`arbitrary`]): up to four files (empty
//!   ones, odd sizes, a subdirectory), a piece length of 16, 32 or 64 KiB, v2-only or hybrid
//!   with BEP 47 padding. That torrent is written with independently computed merkle trees
//!   and v1 hashes and must be accepted, with each `pieces root` equal to the root of its
//!   file's bytes; flipping a byte of a piece layer must get it refused.

use arbitrary::{Arbitrary, Unstructured};
use sha1::Digest as _;
use unchoke_core::metainfo::{Metainfo, merkle};

/// Checks `data` as a torrent file, then as the recipe of a generated one.
pub fn metainfo_v2(data: &[u8]) {
    if let Ok(m) = Metainfo::from_bytes(data) {
        check_accepted(&m);
    }
    if let Ok(spec) = Unstructured::new(data).arbitrary::<Spec>() {
        check_generated(&spec);
    }
}

/// Invariants 1–5 for an accepted torrent.
fn check_accepted(m: &Metainfo) {
    let Some(v2) = &m.v2 else { return };
    let sha256: [u8; 32] = sha2::Sha256::digest(&m.info_bytes).into();
    assert_eq!(v2.info_hash.0, sha256, "v2 info-hash is not SHA-256(info)");
    if m.is_v2_only() {
        assert_eq!(
            m.info_hash.0[..],
            sha256[..20],
            "wire hash is not truncated"
        );
    } else {
        let sha1: [u8; 20] = sha1::Sha1::digest(&m.info_bytes).into();
        assert_eq!(m.info_hash.0, sha1, "hybrid wire hash is not SHA-1(info)");
    }
    let pl = v2.piece_length;
    assert!(pl.is_power_of_two() && pl >= 16 * 1024, "piece length {pl}");
    for f in &v2.files {
        assert_eq!(f.pieces_root.is_some(), f.length > 0, "root iff non-empty");
        let pieces = f.piece_count(pl) as usize;
        if let Some(root) = f.pieces_root {
            if pieces == 1 {
                assert_eq!(f.piece_layer, vec![root], "one-piece layer");
            } else if v2.piece_layers_known {
                assert_eq!(f.piece_layer.len(), pieces, "layer length");
                assert_eq!(
                    merkle::root_from_piece_layer(&f.piece_layer, pl),
                    Some(root),
                    "layer does not hash to the root"
                );
            }
        }
    }
    let v1: Vec<(&[String], u64)> = m
        .info
        .files
        .iter()
        .filter(|f| !f.padding)
        .map(|f| (&f.path[..], f.length))
        .collect();
    if m.is_hybrid() {
        let v2_files: Vec<(&[String], u64)> =
            v2.files.iter().map(|f| (&f.path[..], f.length)).collect();
        assert_eq!(v1, v2_files, "hybrid v1 and v2 files differ");
    } else {
        assert!(m.info.piece_hashes.is_empty());
        let lengths: Vec<u64> = v2.files.iter().map(|f| f.length).collect();
        let v1_lengths: Vec<u64> = v1.iter().map(|f| f.1).collect();
        assert_eq!(lengths, v1_lengths, "v2-only file lengths");
    }
    match Metainfo::from_info_bytes(&m.info_bytes) {
        Ok(bare) => {
            assert_eq!(bare.info_hash, m.info_hash, "bare info hashes differently");
            let bare_v2 = bare.v2.as_ref().map(|b| (b.info_hash, b.files.len()));
            assert_eq!(bare_v2, Some((v2.info_hash, v2.files.len())));
        }
        Err(e) => panic!("from_info_bytes refused what from_bytes accepted: {e}"),
    }
}

/// One generated file.
#[derive(Debug, Arbitrary)]
struct FileSpec {
    /// Length: `len % 100_000`, or 0 when `empty`.
    len: u32,
    empty: bool,
    /// Put it in the subdirectory `d`.
    in_dir: bool,
    seed: u8,
}

/// A generated torrent.
#[derive(Debug, Arbitrary)]
struct Spec {
    files: Vec<FileSpec>,
    /// 16 KiB << (this % 3).
    piece_shift: u8,
    hybrid: bool,
    /// Which byte of the first piece layer to flip.
    flip: u16,
}

struct File {
    path: Vec<String>,
    data: Vec<u8>,
}

fn check_generated(spec: &Spec) {
    let pl = (16 * 1024usize) << (spec.piece_shift % 3);
    let mut files: Vec<File> = spec
        .files
        .iter()
        .take(4)
        .enumerate()
        .map(|(i, f)| {
            let len = if f.empty {
                0
            } else {
                (f.len % 100_000) as usize
            };
            let name = format!("f{i}");
            let path = if f.in_dir {
                vec!["d".to_owned(), name]
            } else {
                vec![name]
            };
            let mut x = u32::from(f.seed).wrapping_mul(2_654_435_761) | 1;
            let data = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            File { path, data }
        })
        .collect();
    // `file tree` order: sorted by path components.
    files.sort_by(|a, b| a.path.cmp(&b.path));
    if files.iter().all(|f| f.data.is_empty()) {
        return; // no data: refused as v1 would be
    }
    let (bytes, layer_at) = write_torrent(&files, pl, spec.hybrid);
    let m = match Metainfo::from_bytes(&bytes) {
        Ok(m) => m,
        Err(e) => panic!("a clean generated v2 torrent was refused: {e}\n{spec:?}"),
    };
    check_accepted(&m);
    assert_eq!(m.is_hybrid(), spec.hybrid);
    let Some(v2) = &m.v2 else {
        panic!("no v2 metadata")
    };
    assert_eq!(v2.files.len(), files.len());
    for (got, want) in v2.files.iter().zip(&files) {
        assert_eq!(got.path, want.path);
        assert_eq!(got.pieces_root, root_of(&want.data), "pieces root");
    }
    if let Some((start, len)) = layer_at {
        let mut bad = bytes.clone();
        bad[start + usize::from(spec.flip) % len] ^= 1;
        assert!(
            Metainfo::from_bytes(&bad).is_err(),
            "a flipped piece layer byte was accepted"
        );
    }
}

// Independent SHA-256 merkle helpers (not the core's), written from BEP 52.

fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

fn parent(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(a);
    buf[32..].copy_from_slice(b);
    sha256(&buf)
}

/// Root over `leaves` padded with zero leaves to `width` (a power of two).
fn tree(leaves: Vec<[u8; 32]>, width: usize) -> [u8; 32] {
    let mut layer = leaves;
    layer.resize(width, [0; 32]);
    while layer.len() > 1 {
        layer = layer.chunks(2).map(|p| parent(&p[0], &p[1])).collect();
    }
    layer[0]
}

fn leaves(data: &[u8]) -> Vec<[u8; 32]> {
    data.chunks(16 * 1024).map(sha256).collect()
}

fn root_of(data: &[u8]) -> Option<[u8; 32]> {
    if data.is_empty() {
        return None;
    }
    let l = leaves(data);
    let width = l.len().next_power_of_two();
    Some(tree(l, width))
}

/// Piece hashes of a file of more than one piece: each piece's subtree, padded.
fn piece_layer(data: &[u8], pl: usize) -> Vec<u8> {
    let per = pl / (16 * 1024);
    data.chunks(pl).flat_map(|p| tree(leaves(p), per)).collect()
}

fn bstr(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{}:", s.len()).as_bytes());
    out.extend_from_slice(s);
}

fn bint(out: &mut Vec<u8>, i: usize) {
    out.extend_from_slice(format!("i{i}e").as_bytes());
}

/// The torrent's bytes and where the first piece layer's hashes lie (start, length).
fn write_torrent(files: &[File], pl: usize, hybrid: bool) -> (Vec<u8>, Option<(usize, usize)>) {
    // file tree: files sorted, those under `d` grouped in one dictionary.
    let mut ft = b"d".to_vec();
    let leaf = |out: &mut Vec<u8>, f: &File| {
        out.extend_from_slice(b"d0:d");
        bstr(out, b"length");
        bint(out, f.data.len());
        if let Some(root) = root_of(&f.data) {
            bstr(out, b"pieces root");
            bstr(out, &root);
        }
        out.extend_from_slice(b"ee");
    };
    let mut in_dir = files.iter().filter(|f| f.path.len() == 2).peekable();
    let top = files.iter().filter(|f| f.path.len() == 1);
    // Keys at the top: "d" sorts before "f…".
    if in_dir.peek().is_some() {
        bstr(&mut ft, b"d");
        ft.push(b'd');
        for f in in_dir {
            bstr(&mut ft, f.path[1].as_bytes());
            leaf(&mut ft, f);
        }
        ft.push(b'e');
    }
    for f in top {
        bstr(&mut ft, f.path[0].as_bytes());
        leaf(&mut ft, f);
    }
    ft.push(b'e');

    let mut info = b"d".to_vec();
    bstr(&mut info, b"file tree");
    info.extend_from_slice(&ft);
    let mut content = Vec::new();
    if hybrid {
        bstr(&mut info, b"files");
        info.push(b'l');
        let last = files.iter().rposition(|f| !f.data.is_empty());
        for (i, f) in files.iter().enumerate() {
            info.extend_from_slice(b"d");
            bstr(&mut info, b"length");
            bint(&mut info, f.data.len());
            bstr(&mut info, b"path");
            info.push(b'l');
            for c in &f.path {
                bstr(&mut info, c.as_bytes());
            }
            info.extend_from_slice(b"ee");
            content.extend_from_slice(&f.data);
            let pad = (pl - content.len() % pl) % pl;
            if pad > 0 && Some(i) != last && !f.data.is_empty() {
                info.extend_from_slice(b"d4:attr1:p");
                bstr(&mut info, b"length");
                bint(&mut info, pad);
                info.extend_from_slice(b"4:pathl4:.pad");
                bstr(&mut info, pad.to_string().as_bytes());
                info.extend_from_slice(b"ee");
                content.resize(content.len() + pad, 0);
            }
        }
        info.push(b'e');
    }
    bstr(&mut info, b"meta version");
    bint(&mut info, 2);
    bstr(&mut info, b"name");
    bstr(&mut info, b"top");
    bstr(&mut info, b"piece length");
    bint(&mut info, pl);
    if hybrid {
        let pieces: Vec<u8> = content
            .chunks(pl)
            .flat_map(|p| <[u8; 20]>::from(sha1::Sha1::digest(p)))
            .collect();
        bstr(&mut info, b"pieces");
        bstr(&mut info, &pieces);
    }
    info.push(b'e');

    let mut out = b"d".to_vec();
    bstr(&mut out, b"info");
    out.extend_from_slice(&info);
    bstr(&mut out, b"piece layers");
    out.push(b'd');
    let mut layer_at = None;
    let mut layers: Vec<([u8; 32], Vec<u8>)> = files
        .iter()
        .filter(|f| f.data.len() > pl)
        .filter_map(|f| Some((root_of(&f.data)?, piece_layer(&f.data, pl))))
        .collect();
    layers.sort_by_key(|l| l.0);
    layers.dedup_by(|a, b| a.0 == b.0);
    for (root, hashes) in &layers {
        bstr(&mut out, root);
        out.extend_from_slice(format!("{}:", hashes.len()).as_bytes());
        if layer_at.is_none() {
            layer_at = Some((out.len(), hashes.len()));
        }
        out.extend_from_slice(hashes);
    }
    out.extend_from_slice(b"ee");
    (out, layer_at)
}
