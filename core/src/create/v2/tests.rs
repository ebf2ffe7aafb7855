use sha2::Digest as _;

use super::*;
use crate::bencode;
use crate::metainfo::Metainfo;

const K16: usize = 16 * 1024;

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// SHA-256 straight from the `sha2` crate, not through `merkle`: the expectations below
/// are computed independently of the code under test.
fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

fn sha256_pair(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    sha256(&[&a[..], &b[..]].concat())
}

fn sha1(data: &[u8]) -> [u8; 20] {
    sha1::Sha1::digest(data).into()
}

fn file(path: &str, length: usize) -> InputFile {
    InputFile {
        path: path.split('/').map(str::to_owned).collect(),
        length: length as u64,
    }
}

fn options(name: &str) -> CreateOptions {
    CreateOptions {
        created_by: None,
        ..CreateOptions::new(name)
    }
}

/// Hashes every piece of `plan` (last first, as a parallel caller may) from `data`, one
/// entry per file of `plan.files()`, and writes the torrent.
fn make(plan: &V2Plan, data: &[Vec<u8>], options: &CreateOptions) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut hashes = vec![PieceDigests::default(); plan.piece_count() as usize];
    for piece in (0..plan.piece_count()).rev() {
        hashes[piece as usize] = plan
            .hash_piece(piece, &mut buf, |span, dst| {
                let start = span.file_offset as usize;
                dst.copy_from_slice(&data[span.file][start..start + dst.len()]);
                Ok::<(), ()>(())
            })
            .unwrap();
    }
    plan.finish(&hashes, options).unwrap()
}

#[test]
fn one_block_file_exact_bytes() {
    // BEP 52: the leaf is SHA-256 of the block as it is (not zero-filled to 16 KiB); one
    // leaf is its own root. A file of one piece has no `piece layers` entry.
    let data = bytes(1, 1000);
    let plan = V2Plan::new(Content::SingleFile { length: 1000 }, Some(16384), false).unwrap();
    assert_eq!(plan.piece_count(), 1);
    let torrent = make(&plan, std::slice::from_ref(&data), &options("f"));
    let mut want = b"d4:infod9:file treed1:fd0:d6:lengthi1000e11:pieces root32:".to_vec();
    want.extend_from_slice(&sha256(&data));
    want.extend_from_slice(b"eee12:meta versioni2e4:name1:f12:piece lengthi16384ee");
    want.extend_from_slice(b"12:piece layersdee");
    assert_eq!(torrent, want, "{}", String::from_utf8_lossy(&torrent));

    let m = Metainfo::from_bytes(&torrent).unwrap();
    assert!(m.is_v2_only());
    let v2 = m.v2.unwrap();
    assert_eq!(v2.files[0].pieces_root, Some(sha256(&data)));
    assert_eq!(v2.info_hash.0, sha256(&m.info_bytes));
}

#[test]
fn three_block_file_exact_piece_layer() {
    // 16 KiB pieces: three pieces (two whole blocks and 5 bytes). The piece layer is the
    // three leaves; the root pads them to four with a zero hash.
    let data = bytes(2, 2 * K16 + 5);
    let plan = V2Plan::new(
        Content::SingleFile {
            length: data.len() as u64,
        },
        Some(16384),
        false,
    )
    .unwrap();
    assert_eq!(plan.piece_count(), 3);
    assert_eq!(plan.piece_len(2), 5);
    let torrent = make(&plan, std::slice::from_ref(&data), &options("f"));
    let l: Vec<[u8; 32]> = data.chunks(K16).map(sha256).collect();
    let root = sha256_pair(&sha256_pair(&l[0], &l[1]), &sha256_pair(&l[2], &[0; 32]));
    let mut want = b"d4:infod9:file treed1:fd0:d6:lengthi32773e11:pieces root32:".to_vec();
    want.extend_from_slice(&root);
    want.extend_from_slice(b"eee12:meta versioni2e4:name1:f12:piece lengthi16384ee");
    want.extend_from_slice(b"12:piece layersd32:");
    want.extend_from_slice(&root);
    want.extend_from_slice(b"96:");
    want.extend_from_slice(&l.concat());
    want.extend_from_slice(b"ee");
    assert_eq!(torrent, want);
    let m = Metainfo::from_bytes(&torrent).unwrap();
    assert_eq!(m.v2.unwrap().files[0].piece_layer, l);

    // With 32 KiB pieces: two pieces, the second a single short block padded with a zero
    // leaf to the piece's two leaves.
    let plan = V2Plan::new(
        Content::SingleFile {
            length: data.len() as u64,
        },
        Some(32768),
        false,
    )
    .unwrap();
    let torrent = make(&plan, std::slice::from_ref(&data), &options("f"));
    let layer = [sha256_pair(&l[0], &l[1]), sha256_pair(&l[2], &[0; 32])];
    let m = Metainfo::from_bytes(&torrent).unwrap();
    let v2 = m.v2.unwrap();
    assert_eq!(v2.files[0].piece_layer, layer);
    assert_eq!(
        v2.files[0].pieces_root,
        Some(sha256_pair(&layer[0], &layer[1]))
    );
}

#[test]
fn hybrid_pads_every_file_to_a_piece_exact_v1_part() {
    let a = bytes(3, 1000);
    let b = bytes(4, 5);
    let plan = V2Plan::new(
        Content::Directory(vec![file("b", 5), file("a", 1000)]),
        Some(16384),
        true,
    )
    .unwrap();
    assert_eq!(plan.piece_count(), 2);
    let torrent = make(&plan, &[a.clone(), b.clone()], &options("d"));
    let m = Metainfo::from_bytes(&torrent).unwrap();
    assert!(m.is_hybrid());
    // v1: a, 15384 bytes of padding, b, 16379 bytes of padding; each piece its file's
    // bytes followed by zeros.
    let padded = |d: &[u8]| [d, &vec![0; K16 - d.len()][..]].concat();
    assert_eq!(m.info.piece_hashes, [sha1(&padded(&a)), sha1(&padded(&b))]);
    let mut files = b"5:filesl".to_vec();
    files.extend_from_slice(b"d6:lengthi1000e4:pathl1:aee");
    files.extend_from_slice(b"d4:attr1:p6:lengthi15384e4:pathl4:.pad5:15384ee");
    files.extend_from_slice(b"d6:lengthi5e4:pathl1:bee");
    files.extend_from_slice(b"d4:attr1:p6:lengthi16379e4:pathl4:.pad5:16379ee");
    files.push(b'e');
    let info = &m.info_bytes[..];
    assert!(
        info.windows(files.len()).any(|w| w == &files[..]),
        "{}",
        String::from_utf8_lossy(info)
    );
    let layout: Vec<(String, u64, u64, bool)> = m
        .info
        .files
        .iter()
        .map(|f| (f.path.join("/"), f.length, f.offset, f.padding))
        .collect();
    assert_eq!(
        layout,
        [
            ("a".into(), 1000, 0, false),
            (".pad/15384".into(), 15384, 1000, true),
            ("b".into(), 5, 16384, false),
            (".pad/16379".into(), 16379, 16389, true),
        ]
    );
    let v2 = m.v2.unwrap();
    assert_eq!(v2.files[0].pieces_root, Some(sha256(&a)));
    assert_eq!(v2.files[1].pieces_root, Some(sha256(&b)));
    // The v2 info-hash is SHA-256 of the same info dictionary, the v1 one SHA-1 of it.
    assert_eq!(v2.info_hash.0, sha256(info));
    assert_eq!(m.info_hash.0, sha1(info));
}

/// A tree with an empty file (first, and between others), odd sizes, files of one, two
/// and more pieces, identical files, and nested directories whose order differs between
/// the v1 (`/`-joined) and the `file tree` (per component) sort.
fn tree() -> Vec<InputFile> {
    vec![
        file("a-b/c", 100_001),
        file("a/b", 16_385),
        file("a.txt", 7),
        file("0empty", 0),
        file("sub/deeper/big", 5 * K16 + 3),
        file("sub/empty", 0),
        file("sub/same1", 40_000),
        file("sub/same2", 40_000),
        file("z", 65_536),
    ]
}

#[test]
fn trees_parse_back_v2_and_hybrid() {
    for hybrid in [false, true] {
        for piece_length in [16384, 32768, 65536, 131072] {
            let case = format!("hybrid {hybrid}, piece length {piece_length}");
            let plan = V2Plan::new(Content::Directory(tree()), Some(piece_length), hybrid).unwrap();
            let order: Vec<String> = plan.files().iter().map(|f| f.path.join("/")).collect();
            assert_eq!(
                order,
                [
                    "0empty",
                    "a/b",
                    "a-b/c",
                    "a.txt",
                    "sub/deeper/big",
                    "sub/empty",
                    "sub/same1",
                    "sub/same2",
                    "z"
                ],
                "{case}"
            );
            let data: Vec<Vec<u8>> = plan
                .files()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    // The two `same` files hold the same bytes.
                    let seed = if f.path.join("/") == "sub/same2" {
                        6
                    } else {
                        i as u64
                    };
                    bytes(seed, f.length as usize)
                })
                .collect();
            let mut options = options("tree");
            options.private = true;
            options.trackers = vec![vec!["http://t.example/a".into()]];
            options.creation_date = Some(1);
            let torrent = make(&plan, &data, &options);
            let m = Metainfo::from_bytes(&torrent).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(m.is_hybrid(), hybrid, "{case}");
            assert_eq!(m.is_v2_only(), !hybrid, "{case}");
            assert!(m.info.private, "{case}");
            assert_eq!(m.announce.as_deref(), Some("http://t.example/a"));
            let v2 = m.v2.as_ref().unwrap();
            assert!(v2.piece_layers_known);
            assert_eq!(v2.piece_length, piece_length);
            assert_eq!(v2.piece_count(), u64::from(plan.piece_count()), "{case}");
            assert_eq!(v2.files.len(), data.len());
            for ((f, d), planned) in v2.files.iter().zip(&data).zip(plan.files()) {
                assert_eq!(f.path, planned.path, "{case}");
                assert_eq!(f.length, d.len() as u64, "{case}");
                // The root is the whole file's merkle root, however it was cut in pieces.
                assert_eq!(f.pieces_root, merkle::file_root(d), "{case} {:?}", f.path);
                for (i, piece) in d.chunks(piece_length as usize).enumerate() {
                    assert_eq!(
                        f.verify_piece(piece_length, i as u64, piece),
                        Some(true),
                        "{case} {:?} piece {i}",
                        f.path
                    );
                }
            }
            if hybrid {
                // v1 pieces: the files in tree order, each padded to a piece with zeros.
                let mut v1 = Vec::new();
                for d in &data {
                    v1.extend_from_slice(d);
                    v1.resize(v1.len().next_multiple_of(piece_length as usize), 0);
                }
                let want: Vec<[u8; 20]> = v1.chunks(piece_length as usize).map(sha1).collect();
                assert_eq!(m.info.piece_hashes, want, "{case}");
                assert_eq!(m.info.total_length, v1.len() as u64, "{case}");
            } else {
                assert!(m.info.piece_hashes.is_empty());
            }
        }
    }
}

#[test]
fn identical_files_share_one_piece_layer() {
    let plan = V2Plan::new(Content::Directory(tree()), Some(16384), false).unwrap();
    let data: Vec<Vec<u8>> = plan
        .files()
        .iter()
        .map(|f| bytes(f.path.len() as u64 * 1000 + f.length, f.length as usize))
        .collect();
    let torrent = make(&plan, &data, &options("t"));
    let root = bencode::decode(&torrent).unwrap();
    let layers = root.as_dict().unwrap().get(b"piece layers").unwrap();
    // Multi-piece files: a/b, a-b/c, sub/deeper/big, same1 = same2, z.
    assert_eq!(layers.as_dict().unwrap().entries().len(), 5);
    Metainfo::from_bytes(&torrent).unwrap();
}

#[test]
fn a_directory_of_one_file_and_hybrid_single_file() {
    let data = bytes(9, 50_000);
    // A directory holding one file stays a directory (`files`, a padding file after it).
    let plan = V2Plan::new(
        Content::Directory(vec![file("only", 50_000)]),
        Some(16384),
        true,
    )
    .unwrap();
    let m = Metainfo::from_bytes(&make(&plan, std::slice::from_ref(&data), &options("d"))).unwrap();
    assert!(m.info.multi_file);
    assert_eq!(m.info.files.len(), 2);
    assert!(m.info.files[1].padding);
    assert_eq!(m.v2.unwrap().files[0].path, ["only"]);
    // A single file: `length`, no padding, the last v1 piece short.
    let plan = V2Plan::new(Content::SingleFile { length: 50_000 }, Some(16384), true).unwrap();
    let m =
        Metainfo::from_bytes(&make(&plan, std::slice::from_ref(&data), &options("one"))).unwrap();
    assert!(!m.info.multi_file);
    assert!(m.is_hybrid());
    let want: Vec<[u8; 20]> = data.chunks(K16).map(sha1).collect();
    assert_eq!(m.info.piece_hashes, want);
    assert_eq!(m.v2.unwrap().files[0].path, ["one"]);
}

#[test]
fn piece_spans_skip_empty_files() {
    let plan = V2Plan::new(
        Content::Directory(vec![
            file("a", 0),
            file("b", 2 * K16 + 1),
            file("c", 0),
            file("d", 1),
        ]),
        Some(16384),
        false,
    )
    .unwrap();
    let spans: Vec<(usize, u64, u64, u64)> = (0..plan.piece_count())
        .filter_map(|p| plan.piece_span(p))
        .map(|s| (s.file, s.file_offset, s.torrent_offset, s.len))
        .collect();
    let k = K16 as u64;
    assert_eq!(
        spans,
        [
            (1, 0, 0, k),
            (1, k, k, k),
            (1, 2 * k, 2 * k, 1),
            (3, 0, 3 * k, 1)
        ]
    );
    assert_eq!(plan.piece_span(4), None);
    assert_eq!(plan.piece_len(4), 0);
}

#[test]
fn refusals() {
    let dir = |files: Vec<InputFile>| Content::Directory(files);
    for p in [1000, 8192, 16385, 3 << 14, 128 << 20, 0] {
        assert_eq!(
            V2Plan::new(dir(vec![file("a", 1)]), Some(p), false).err(),
            Some(CreateError::BadPieceLength(p))
        );
    }
    assert_eq!(
        V2Plan::new(dir(vec![file("a", 0)]), None, true).err(),
        Some(CreateError::EmptyContent)
    );
    assert_eq!(
        V2Plan::new(dir(vec![]), None, true).err(),
        Some(CreateError::NoFiles)
    );
    assert_eq!(
        V2Plan::new(dir(vec![file("a", 1), file("a", 2)]), None, false).err(),
        Some(CreateError::DuplicatePath("a".into()))
    );
    // A real file where a padding file would go is refused for a hybrid only.
    let pad = || dir(vec![file(".pad/16383", 1), file("x", 1)]);
    assert_eq!(
        V2Plan::new(pad(), None, true).err(),
        Some(CreateError::PadPathTaken(".pad/16383".into()))
    );
    assert!(V2Plan::new(pad(), None, false).is_ok());
    assert!(V2Plan::new(dir(vec![file(".pad/notes", 1)]), None, true).is_ok());
    let plan = V2Plan::new(dir(vec![file("a", 40_000)]), Some(16384), false).unwrap();
    assert_eq!(
        plan.finish(&[PieceDigests::default(); 2], &options("x")),
        Err(CreateError::WrongHashCount {
            expected: 3,
            got: 2
        })
    );
    assert!(matches!(
        plan.finish(&[PieceDigests::default(); 3], &options("..")),
        Err(CreateError::BadPath { .. })
    ));
}
