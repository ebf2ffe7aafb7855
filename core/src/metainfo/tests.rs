use super::*;
use crate::bencode::encode;

fn bs(s: &[u8]) -> Value<'_> {
    Value::Bytes(s)
}

fn list(items: Vec<Value<'_>>) -> Value<'_> {
    Value::List(List::new(items))
}

fn dict<'a>(entries: Vec<(&'a [u8], Value<'a>)>) -> Value<'a> {
    Value::Dict(Dict::new(entries))
}

fn path(components: &[&'static str]) -> Value<'static> {
    list(components.iter().map(|c| bs(c.as_bytes())).collect())
}

fn file(len: i64, components: &[&'static str]) -> Value<'static> {
    dict(vec![
        (b"length", Value::Int(len)),
        (b"path", path(components)),
    ])
}

/// A whole torrent around `info`, with an announce URL.
fn torrent(info: Value<'_>) -> Vec<u8> {
    encode(&dict(vec![
        (b"announce", bs(b"http://t.example/announce")),
        (b"info", info),
    ]))
}

/// A valid multi-file info dict: files of 5, 0 and 20 bytes in 16-byte pieces.
fn multi_info<'a>(files: Value<'a>, pieces: &'a [u8]) -> Value<'a> {
    dict(vec![
        (b"name", bs(b"dir")),
        (b"piece length", Value::Int(16)),
        (b"pieces", bs(pieces)),
        (b"files", files),
    ])
}

type Entries<'a> = Vec<(&'a [u8], Value<'a>)>;

const TWO_HASHES: &[u8; 40] = &[7u8; 40];

fn good_files() -> Value<'static> {
    list(vec![
        file(5, &["a.txt"]),
        file(0, &["empty"]),
        file(20, &["sub", "b.bin"]),
    ])
}

fn parse(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
    Metainfo::from_bytes(bytes)
}

fn err_of(info: Value<'_>) -> MetainfoError {
    parse(&torrent(info)).unwrap_err()
}

/// An info dict for one file with the given files list, replacing `path` of the last.
fn with_path(components: &[&'static str]) -> MetainfoError {
    err_of(multi_info(
        list(vec![file(5, &["ok"]), file(20, components)]),
        TWO_HASHES,
    ))
}

fn bad_component(e: MetainfoError) -> (String, ComponentError) {
    match e {
        MetainfoError::BadPathComponent { key, reason, .. } => (key, reason),
        other => panic!("expected a bad path component, got {other:?}"),
    }
}

#[test]
fn parses_a_multi_file_torrent() {
    let bytes = torrent(multi_info(good_files(), TWO_HASHES));
    let m = parse(&bytes).unwrap();
    assert_eq!(m.info.name, "dir");
    assert!(m.info.multi_file);
    assert_eq!(m.info.total_length, 25);
    assert_eq!(m.info.piece_length, 16);
    assert_eq!(m.info.piece_count(), 2);
    assert_eq!(m.info.piece_hash(1), Some(&[7u8; 20]));
    assert_eq!(m.info.piece_hash(2), None);
    let offsets: Vec<_> = m.info.files.iter().map(|f| (f.offset, f.length)).collect();
    assert_eq!(offsets, vec![(0, 5), (5, 0), (5, 20)]);
    assert_eq!(m.info.files[2].path, vec!["sub", "b.bin"]);
    assert_eq!(
        m.save_path_of(2),
        Some(PathBuf::from("dir").join("sub").join("b.bin"))
    );
    assert_eq!(m.save_path_of(3), None);
    assert_eq!(m.announce.as_deref(), Some("http://t.example/announce"));
    assert_eq!(
        m.tracker_tiers(),
        vec![vec!["http://t.example/announce".to_owned()]]
    );
    let layout = m.info.layout();
    assert_eq!((layout.piece_count(), layout.file_count()), (2, 3));
    assert_eq!(layout.file_pieces(2), 0..2);
    // The info-hash is over the raw info bytes.
    let info_start = bytes.windows(6).position(|w| w == b"4:info").unwrap() + 6;
    let raw = &bytes[info_start..bytes.len() - 1];
    assert_eq!(&m.info_bytes[..], raw);
    assert_eq!(m.info_hash, InfoHash::of_info_bytes(raw));
    // A bare info dict parses to the same Info and hash.
    assert_eq!(Info::from_bytes(raw).unwrap(), m.info);
    let bare = Metainfo::from_info_bytes(raw).unwrap();
    assert_eq!(bare.info_hash, m.info_hash);
    assert!(bare.tracker_tiers().is_empty());
}

#[test]
fn parses_a_single_file_torrent_with_all_the_extras() {
    let info = dict(vec![
        (b"name", bs(b"file.iso")),
        (b"piece length", Value::Int(16384)),
        (b"pieces", bs(&[1u8; 20])),
        (b"length", Value::Int(100)),
        (b"private", Value::Int(1)),
    ]);
    let bytes = encode(&dict(vec![
        (b"info", info),
        (b"announce", bs(b"http://a/ann")),
        (
            b"announce-list",
            list(vec![
                list(vec![bs(b"http://t1/a"), bs(b"udp://t2:80")]),
                list(vec![]),
                list(vec![bs(b""), bs(b"http://t3/a")]),
                // A flat URL instead of a tier: a tier of its own.
                bs(b"http://t4/a"),
            ]),
        ),
        (b"url-list", bs(b"http://seed/")),
        (b"comment", bs(b"caf\xe9")),
        (b"created by", bs(b"mktorrent 1.1")),
        (b"creation date", Value::Int(1_700_000_000)),
    ]));
    let m = parse(&bytes).unwrap();
    assert!(!m.info.multi_file);
    assert!(m.info.private);
    assert_eq!(m.info.files.len(), 1);
    assert_eq!(m.info.files[0].path, vec!["file.iso"]);
    assert_eq!(m.info.files[0].length, 100);
    assert_eq!(m.save_path_of(0), Some(PathBuf::from("file.iso")));
    assert_eq!(
        m.announce_list,
        vec![
            vec!["http://t1/a".to_owned(), "udp://t2:80".to_owned()],
            vec!["http://t3/a".to_owned()],
            vec!["http://t4/a".to_owned()],
        ]
    );
    assert_eq!(m.tracker_tiers(), m.announce_list);
    assert_eq!(m.url_list, vec!["http://seed/"]);
    // Non-UTF-8 human text is decoded lossily.
    assert_eq!(m.comment.as_deref(), Some("caf\u{fffd}"));
    assert_eq!(m.created_by.as_deref(), Some("mktorrent 1.1"));
    assert_eq!(m.creation_date, Some(1_700_000_000));
}

#[test]
fn unsorted_keys_hash_as_in_the_file() {
    // Keys out of order (a lenient file): the hash is over these exact bytes.
    let raw: &[u8] = b"d6:lengthi3e4:name1:x12:piece lengthi4e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    let unsorted: &[u8] =
        b"d4:name1:x6:lengthi3e12:piece lengthi4e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    let file = [&b"d4:info"[..], unsorted, b"e"].concat();
    let m = parse(&file).unwrap();
    assert_eq!(m.info_hash, InfoHash::of_info_bytes(unsorted));
    assert_ne!(m.info_hash, InfoHash::of_info_bytes(raw));
    assert_eq!(m.info.total_length, 3);
    assert_eq!(m.announce, None);
    assert!(m.tracker_tiers().is_empty());
}

#[test]
fn url_list_as_list_and_utf8_variants_preferred() {
    let info = dict(vec![
        (b"name", bs(b"n\xff")),
        (b"name.utf-8", bs("név".as_bytes())),
        (b"piece length", Value::Int(16)),
        (b"pieces", bs(&[0u8; 20])),
        (
            b"files",
            list(vec![dict(vec![
                (b"length", Value::Int(3)),
                (b"path", list(vec![bs(b"\xfe\xfd")])),
                (b"path.utf-8", list(vec![bs("fájl".as_bytes())])),
            ])]),
        ),
    ]);
    let bytes = encode(&dict(vec![
        (b"info", info),
        (
            b"url-list",
            list(vec![bs(b"http://a/"), bs(b""), bs(b"http://b/")]),
        ),
        (b"comment", bs(b"x")),
        (b"comment.utf-8", bs("ü".as_bytes())),
    ]));
    let m = parse(&bytes).unwrap();
    assert_eq!(m.info.name, "név");
    assert_eq!(m.info.files[0].path, vec!["fájl"]);
    assert_eq!(m.url_list, vec!["http://a/", "http://b/"]);
    assert_eq!(m.comment.as_deref(), Some("ü"));
}

#[test]
fn non_utf8_names_without_a_variant_are_refused() {
    let info = multi_info(
        list(vec![dict(vec![
            (b"length", Value::Int(20)),
            (b"path", list(vec![bs(b"a"), bs(b"\xff")])),
        ])]),
        TWO_HASHES,
    );
    let e = err_of(info);
    assert_eq!(
        bad_component(e.clone()),
        ("info.files[0].path[1]".to_owned(), ComponentError::NotUtf8)
    );
    assert_eq!(
        e.to_string(),
        "`info.files[0].path[1]` (\"\u{fffd}\") is not allowed as a file name: not valid UTF-8"
    );
    let e = err_of(dict(vec![
        (b"name", bs(b"\xff")),
        (b"piece length", Value::Int(16)),
        (b"pieces", bs(&[0u8; 20])),
        (b"length", Value::Int(1)),
    ]));
    assert_eq!(
        bad_component(e),
        ("info.name".to_owned(), ComponentError::NotUtf8)
    );
}

#[test]
fn padding_files_and_attributes() {
    // A hybrid-style file list: pad files (duplicate `.pad/N` paths allowed) in between.
    let info = dict(vec![
        (b"name", bs(b"h")),
        (b"piece length", Value::Int(16)),
        (b"pieces", bs(&[0u8; 60])),
        (
            b"files",
            list(vec![
                dict(vec![
                    (b"attr", bs(b"x")),
                    (b"length", Value::Int(10)),
                    (b"path", path(&["run.sh"])),
                ]),
                dict(vec![
                    (b"attr", bs(b"p")),
                    (b"length", Value::Int(6)),
                    (b"path", path(&[".pad", "6"])),
                ]),
                dict(vec![
                    (b"attr", bs(b"h")),
                    (b"length", Value::Int(10)),
                    (b"path", path(&[".hidden"])),
                ]),
                dict(vec![
                    (b"attr", bs(b"p")),
                    (b"length", Value::Int(6)),
                    (b"path", path(&[".pad", "6"])),
                ]),
                file(3, &["last"]),
            ]),
        ),
    ]);
    let m = parse(&torrent(info)).unwrap();
    let f = &m.info.files;
    assert_eq!(m.info.total_length, 35);
    assert!(f[0].executable && !f[0].padding && !f[0].hidden);
    assert!(f[1].padding && f[3].padding);
    assert!(f[2].hidden && !f[2].padding);
    assert!(!f[4].padding && !f[4].executable);
    assert_eq!(f[2].offset, 16);
    assert_eq!(f[4].offset, 32);
}

#[test]
fn hostile_paths_are_refused() {
    let cases: &[(&[&'static str], ComponentError)] = &[
        (&["..", "etc", "passwd"], ComponentError::ParentDir),
        (&["a", ".."], ComponentError::ParentDir),
        (&["."], ComponentError::CurrentDir),
        (&["/etc", "passwd"], ComponentError::Absolute),
        (&["\\windows"], ComponentError::Absolute),
        (&["a", "", "b"], ComponentError::Empty),
        (&[""], ComponentError::Empty),
        (&["a/b"], ComponentError::Separator('/')),
        (&["..\\..\\x"], ComponentError::Separator('\\')),
        (&["nul\0byte"], ComponentError::Nul),
        (&["CON"], ComponentError::Reserved),
        (&["dir", "nul.txt"], ComponentError::Reserved),
        (&["Com1.tar.gz"], ComponentError::Reserved),
        (&["lpt9"], ComponentError::Reserved),
    ];
    for (components, reason) in cases {
        let (key, got) = bad_component(with_path(components));
        assert_eq!(got, *reason, "{components:?}");
        assert!(key.starts_with("info.files[1].path["), "{key}");
    }
    let (key, _) = bad_component(with_path(&["a", "..", "b"]));
    assert_eq!(key, "info.files[1].path[1]");
    let long: &'static str = "x".repeat(256).leak();
    assert_eq!(
        bad_component(with_path(&[long])).1,
        ComponentError::TooLong(256)
    );
    // 255 bytes and names that merely resemble reserved ones are fine.
    for ok in [
        "x".repeat(255),
        "COM0".into(),
        "CONSOLE".into(),
        "com10".into(),
        "...".into(),
        ".pad".into(),
    ] {
        assert_eq!(check_component(&ok), Ok(()), "{ok}");
    }
    assert_eq!(
        with_path(&[]),
        MetainfoError::EmptyPath {
            key: "info.files[1].path".into()
        }
    );
    // The name is checked too.
    for bad in [&b".."[..], b"", b"/abs", b"a/b"] {
        let e = err_of(dict(vec![
            (b"name", bs(bad)),
            (b"piece length", Value::Int(16)),
            (b"pieces", bs(&[0u8; 20])),
            (b"length", Value::Int(1)),
        ]));
        assert_eq!(bad_component(e).0, "info.name");
    }
    let e = with_path(&["..", "x"]);
    assert_eq!(
        e.to_string(),
        "`info.files[1].path[0]` (\"..\") is not allowed as a file name: \
         \"..\" would leave the download directory"
    );
}

#[test]
fn duplicate_and_clashing_paths_are_refused() {
    let e = err_of(multi_info(
        list(vec![file(5, &["a"]), file(20, &["a"])]),
        TWO_HASHES,
    ));
    assert_eq!(
        e,
        MetainfoError::DuplicatePath {
            index: 1,
            first: 0,
            path: "a".into()
        }
    );
    let e = err_of(multi_info(
        list(vec![
            file(5, &["d", "x"]),
            file(10, &["d"]),
            file(10, &["e"]),
        ]),
        TWO_HASHES,
    ));
    assert_eq!(
        e,
        MetainfoError::FileIsDirectory {
            file: 1,
            inside: 0,
            path: "d".into()
        }
    );
}

#[test]
fn bad_pieces_and_piece_lengths() {
    let e = err_of(multi_info(good_files(), &[0u8; 39]));
    assert_eq!(e, MetainfoError::PiecesNotMultipleOf20 { len: 39 });
    let e = err_of(multi_info(good_files(), &[0u8; 60]));
    assert_eq!(
        e,
        MetainfoError::PieceCountMismatch {
            found: 3,
            expected: 2,
            total_length: 25,
            piece_length: 16
        }
    );
    assert_eq!(
        e.to_string(),
        "`info.pieces` holds 3 hashes, but 25 bytes in pieces of 16 bytes need 2"
    );
    for pl in [0, -16, 1 << 30, i64::MAX, i64::from(MAX_PIECE_LENGTH) + 1] {
        let e = err_of(dict(vec![
            (b"name", bs(b"x")),
            (b"piece length", Value::Int(pl)),
            (b"pieces", bs(&[0u8; 20])),
            (b"length", Value::Int(1)),
        ]));
        assert_eq!(e, MetainfoError::BadPieceLength { value: pl }, "{pl}");
    }
    // 256 MiB itself is accepted.
    let m = parse(&torrent(dict(vec![
        (b"name", bs(b"x")),
        (b"piece length", Value::Int(i64::from(MAX_PIECE_LENGTH))),
        (b"pieces", bs(&[0u8; 20])),
        (b"length", Value::Int(1)),
    ])))
    .unwrap();
    assert_eq!(m.info.piece_length, MAX_PIECE_LENGTH);
}

#[test]
fn lengths_negative_huge_and_overflowing() {
    let e = err_of(multi_info(
        list(vec![file(5, &["a"]), file(-1, &["b"])]),
        TWO_HASHES,
    ));
    assert_eq!(
        e,
        MetainfoError::NegativeLength {
            key: "info.files[1].length".into(),
            value: -1
        }
    );
    assert_eq!(e.to_string(), "`info.files[1].length` is negative (-1)");
    // A huge declared length: refused by the hash count, nothing is allocated for it.
    let e = err_of(dict(vec![
        (b"name", bs(b"x")),
        (b"piece length", Value::Int(16384)),
        (b"pieces", bs(&[0u8; 20])),
        (b"length", Value::Int(i64::MAX)),
    ]));
    assert!(matches!(e, MetainfoError::TooManyPieces { .. }), "{e:?}");
    let e = err_of(dict(vec![
        (b"name", bs(b"x")),
        (b"piece length", Value::Int(i64::from(MAX_PIECE_LENGTH))),
        (b"pieces", bs(&[0u8; 20])),
        (b"length", Value::Int(1 << 40)),
    ]));
    assert!(
        matches!(e, MetainfoError::PieceCountMismatch { expected: 4096, .. }),
        "{e:?}"
    );
    // Three files of i64::MAX bytes sum past u64::MAX.
    let e = err_of(multi_info(
        list(vec![
            file(i64::MAX, &["a"]),
            file(i64::MAX, &["b"]),
            file(i64::MAX, &["c"]),
        ]),
        TWO_HASHES,
    ));
    assert_eq!(
        e,
        MetainfoError::TotalOverflow {
            key: "info.files[2].length".into()
        }
    );
    // All files empty: no data.
    let e = err_of(multi_info(list(vec![file(0, &["a"])]), b""));
    assert_eq!(e, MetainfoError::NoData);
    let e = err_of(multi_info(list(vec![]), b""));
    assert_eq!(e, MetainfoError::NoFiles);
}

#[test]
fn missing_and_wrong_typed_keys_are_named() {
    assert_eq!(
        parse(b"li1ee").unwrap_err().to_string(),
        "the torrent file is not a bencoded dictionary (found a list)"
    );
    assert_eq!(
        Info::from_bytes(b"i3e").unwrap_err().to_string(),
        "the info dictionary is not a bencoded dictionary (found an integer)"
    );
    assert_eq!(
        parse(b"de").unwrap_err(),
        MetainfoError::MissingKey { key: "info".into() }
    );
    assert_eq!(
        parse(b"d4:infoi1ee").unwrap_err().to_string(),
        "`info` should be a dictionary, found an integer"
    );
    let e = err_of(multi_info(
        list(vec![
            file(5, &["a"]),
            dict(vec![(b"length", bs(b"20")), (b"path", path(&["b"]))]),
        ]),
        TWO_HASHES,
    ));
    assert_eq!(
        e.to_string(),
        "`info.files[1].length` should be an integer, found a byte string"
    );
    let e = err_of(multi_info(
        list(vec![file(5, &["a"]), dict(vec![(b"path", path(&["b"]))])]),
        TWO_HASHES,
    ));
    assert_eq!(e.to_string(), "missing key `info.files[1].length`");
    let e = err_of(multi_info(
        list(vec![
            file(5, &["a"]),
            dict(vec![(b"length", Value::Int(20))]),
        ]),
        TWO_HASHES,
    ));
    assert_eq!(e.to_string(), "missing key `info.files[1].path`");
    let e = err_of(multi_info(list(vec![Value::Int(1)]), TWO_HASHES));
    assert_eq!(
        e.to_string(),
        "`info.files[0]` should be a dictionary, found an integer"
    );
    let e = err_of(multi_info(
        list(vec![dict(vec![
            (b"length", Value::Int(25)),
            (b"path", list(vec![Value::Int(3)])),
        ])]),
        TWO_HASHES,
    ));
    assert_eq!(
        e.to_string(),
        "`info.files[0].path[0]` should be a byte string, found an integer"
    );
    let e = err_of(dict(vec![
        (b"name", bs(b"x")),
        (b"piece length", Value::Int(16)),
        (b"pieces", bs(&[0u8; 20])),
    ]));
    assert_eq!(e, MetainfoError::NoLengthOrFiles);
    let e = err_of(dict(vec![
        (b"piece length", Value::Int(16)),
        (b"pieces", bs(&[0u8; 20])),
        (b"length", Value::Int(1)),
    ]));
    assert_eq!(e.to_string(), "missing key `info.name`");
    let e = err_of(dict(vec![
        (b"name", bs(b"x")),
        (b"pieces", bs(&[0u8; 20])),
        (b"length", Value::Int(1)),
    ]));
    assert_eq!(e.to_string(), "missing key `info.piece length`");
    let e = err_of(dict(vec![
        (b"name", bs(b"x")),
        (b"piece length", Value::Int(16)),
        (b"length", Value::Int(1)),
    ]));
    assert_eq!(e.to_string(), "missing key `info.pieces`");
    let e = err_of(dict(vec![
        (b"name", bs(b"x")),
        (b"piece length", Value::Int(16)),
        (b"pieces", bs(&[0u8; 20])),
        (b"length", Value::Int(1)),
        (b"private", bs(b"yes")),
    ]));
    assert_eq!(
        e.to_string(),
        "`info.private` should be an integer, found a byte string"
    );
    // Top-level keys.
    let info = || multi_info(good_files(), TWO_HASHES);
    let cases: Vec<(Entries<'_>, &str)> = vec![
        (
            vec![(b"announce", Value::Int(1))],
            "`announce` should be a byte string, found an integer",
        ),
        (
            vec![(b"announce", bs(b"\xff"))],
            "`announce` is not valid UTF-8",
        ),
        (
            vec![(b"announce-list", list(vec![list(vec![Value::Int(1)])]))],
            "`announce-list[0][0]` should be a byte string, found an integer",
        ),
        (
            vec![(b"announce-list", list(vec![Value::Int(1)]))],
            "`announce-list[0]` should be a list, found an integer",
        ),
        (
            vec![(b"url-list", Value::Int(1))],
            "`url-list` should be a byte string or a list, found an integer",
        ),
        (
            vec![(b"creation date", bs(b"today"))],
            "`creation date` should be an integer, found a byte string",
        ),
    ];
    for (mut entries, msg) in cases {
        entries.push((b"info", info()));
        let e = parse(&encode(&dict(entries))).unwrap_err();
        assert_eq!(e.to_string(), msg);
    }
}

#[test]
fn bencode_errors_carry_the_offset() {
    let e = parse(b"d4:infod4:name1:xe").unwrap_err();
    assert!(
        matches!(e, MetainfoError::Bencode(DecodeError { offset: 18, .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("at byte 18"), "{e}");
}

#[test]
fn every_prefix_of_a_valid_torrent_is_an_error() {
    let bytes = encode(&dict(vec![
        (b"announce", bs(b"http://t/a")),
        (b"comment", bs(b"c")),
        (b"info", multi_info(good_files(), TWO_HASHES)),
    ]));
    assert!(parse(&bytes).is_ok());
    for end in 0..bytes.len() {
        assert!(parse(&bytes[..end]).is_err(), "prefix of {end} bytes");
    }
    // And flipping any single byte never panics.
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0xff;
        let _ = parse(&b);
        b[i] = b'0';
        let _ = parse(&b);
    }
}
