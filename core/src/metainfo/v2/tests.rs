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
    // The v1 view is padded so each file starts a piece and every piece is whole: "a/big"
    // ends 1,000 bytes into its fourth piece and "small" 20,000 bytes into its only one;
    // "a/empty" takes no bytes.
    let pad = |len: usize| PL as u64 - len as u64;
    assert_eq!(m.info.total_length, 5 * PL as u64);
    let view: Vec<(String, u64, u64, bool)> = m
        .info
        .files
        .iter()
        .map(|f| (f.path.join("/"), f.length, f.offset, f.padding))
        .collect();
    assert_eq!(
        view,
        [
            ("a/big".to_owned(), 3 * PL as u64 + 1000, 0, false),
            (
                format!(".pad/{}", pad(1000)),
                pad(1000),
                3 * PL as u64 + 1000,
                true
            ),
            ("a/empty".to_owned(), 0, 4 * PL as u64, false),
            ("small".to_owned(), 20_000, 4 * PL as u64, false),
            (
                format!(".pad/{}", pad(20_000)),
                pad(20_000),
                4 * PL as u64 + 20_000,
                true
            ),
        ]
    );
    assert_eq!(m.info.layout().piece_count() as u64, v2.piece_count());
    assert!(m.info.multi_file && m.info.piece_hashes.is_empty());

    // A bare info dictionary: the same hashes, layers not known.
    let bare = Metainfo::from_info_bytes(&info.bytes()).unwrap();
    assert_eq!(bare.info_hash, m.info_hash);
    let bv2 = bare.v2.unwrap();
    assert!(!bv2.piece_layers_known && bv2.files[0].piece_layer.is_empty());
}

#[test]
fn a_session_adds_a_v2_only_torrent_but_not_one_whose_layers_are_unknown() {
    use crate::piece_hashes::PieceHashesError;
    use crate::session::{AddTorrentError, Session, SessionConfig};
    use crate::time::Instant;
    let (info, layers) = v2_torrent(&files());
    let m = Metainfo::from_bytes(&torrent(&info, &layers)).unwrap();
    let mut s = Session::new(SessionConfig::default(), 1, Instant::ZERO);
    let t = s.add_torrent(&m, None, Instant::ZERO).unwrap();
    assert_eq!(s.have(t).unwrap().len(), 5);

    let bare = Metainfo::from_info_bytes(&info.bytes()).unwrap();
    let mut s = Session::new(SessionConfig::default(), 1, Instant::ZERO);
    let e = s.add_torrent(&bare, None, Instant::ZERO).unwrap_err();
    assert_eq!(
        e,
        AddTorrentError::PieceHashes(m.info_hash, PieceHashesError::LayersUnknown)
    );
    assert!(e.to_string().contains("piece layers are not known"), "{e}");
}

#[test]
fn every_piece_of_a_v2_only_torrent_is_checked_against_its_files_layer() {
    use crate::piece_hashes::PieceHashes;
    let fs = files();
    let (info, layers) = v2_torrent(&fs);
    let m = Metainfo::from_bytes(&torrent(&info, &layers)).unwrap();
    let hashes = PieceHashes::from_metainfo(&m).unwrap();
    assert_eq!(hashes.piece_count(), 5);
    assert!(hashes.has_v2());
    // The torrent's content as peers send it: each file's pieces, each file's last piece
    // padded with zeros to a whole piece.
    let mut wire = fs[0].1.clone();
    wire.resize(4 * PL, 0);
    wire.extend_from_slice(&fs[2].1);
    wire.resize(5 * PL, 0);
    let layout = m.info.layout();
    for piece in 0..5u32 {
        let start = piece as usize * PL;
        let end = start + layout.piece_len(piece) as usize;
        let expected = hashes.expected(piece).unwrap();
        assert_eq!(expected.v1, None);
        let v2 = expected.v2.unwrap();
        assert!(expected.matches(&[&wire[start..end]]), "piece {piece}");
        let mut bad = wire[start..end].to_vec();
        bad[0] ^= 1;
        assert!(!expected.matches(&[&bad[..]]), "piece {piece} changed");
        if piece == 3 {
            // "a/big"'s last piece: 1,000 bytes of file, then padding.
            assert_eq!(v2.data_len, 1000);
            let mut dirty = wire[start..end].to_vec();
            dirty[5000] = 1;
            assert!(!expected.matches(&[&dirty[..]]), "non-zero padding");
        }
    }
    assert_eq!(hashes.expected(4).unwrap().v2.unwrap().data_len, 20_000);
    assert!(hashes.expected(5).is_none());
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
    let (mut info, layers) = v2_torrent(&[(&["x"], data[0].clone()), (&["y"], data[1].clone())]);
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
