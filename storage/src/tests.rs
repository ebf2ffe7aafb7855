use std::fs::OpenOptions;
use std::path::Path;

use std::fs;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use sha1::Digest;
use unchoke_core::bitfield::Bitfield;
use unchoke_core::layout::LayoutError;
use unchoke_core::metainfo::Info;
use unchoke_core::resume::{FileState, ResumeData, ResumeError};

use super::positional::{read_full, write_all_at, write_full};
use super::*;
use unchoke_core::InfoHash;
use unchoke_core::bencode::{Dict, List, Value, encode};
use unchoke_core::metainfo::Metainfo;

/// One entry of a test torrent's file list.
enum F {
    /// A real file: path with `/` separators, length.
    File(&'static str, u64),
    /// A BEP 47 padding file of this length.
    Pad(u64),
}

/// A torrent made through the metainfo parser, with its content.
struct Torrent {
    info: Info,
    info_hash: InfoHash,
    content: Vec<u8>,
}

fn sha1(data: &[u8]) -> [u8; 20] {
    sha1::Sha1::digest(data).into()
}

fn hashes(content: &[u8], piece_length: u32) -> Vec<u8> {
    content
        .chunks(piece_length as usize)
        .flat_map(sha1)
        .collect()
}

fn parse(info: Value<'_>) -> Torrent {
    let bytes = encode(&Value::Dict(Dict::new(vec![(b"info", info)])));
    let m = Metainfo::from_bytes(&bytes).expect("test torrent parses");
    Torrent {
        info: m.info,
        info_hash: m.info_hash,
        content: Vec::new(),
    }
}

fn random_bytes(rng: &mut fastrand::Rng, len: u64) -> Vec<u8> {
    // Never zero, so a block of zeros (a hole) never passes for data.
    (0..len).map(|_| rng.u8(1..)).collect()
}

fn multi(piece_length: u32, files: &[F]) -> Torrent {
    let mut rng = fastrand::Rng::with_seed(u64::from(piece_length) + files.len() as u64);
    let mut content = Vec::new();
    let paths: Vec<Vec<String>> = files
        .iter()
        .map(|f| match f {
            F::File(p, len) => {
                content.extend(random_bytes(&mut rng, *len));
                p.split('/').map(str::to_owned).collect()
            }
            F::Pad(len) => {
                content.extend(std::iter::repeat_n(0u8, *len as usize));
                vec![".pad".to_owned(), len.to_string()]
            }
        })
        .collect();
    let pieces = hashes(&content, piece_length);
    let list: Vec<Value<'_>> = files
        .iter()
        .zip(&paths)
        .map(|(f, path)| {
            let (len, pad) = match f {
                F::File(_, len) => (*len, false),
                F::Pad(len) => (*len, true),
            };
            let mut entries = vec![
                (&b"length"[..], Value::Int(len as i64)),
                (
                    &b"path"[..],
                    Value::List(List::new(
                        path.iter().map(|c| Value::Bytes(c.as_bytes())).collect(),
                    )),
                ),
            ];
            if pad {
                entries.push((&b"attr"[..], Value::Bytes(b"p")));
            }
            Value::Dict(Dict::new(entries))
        })
        .collect();
    let mut t = parse(Value::Dict(Dict::new(vec![
        (b"name", Value::Bytes(b"multi")),
        (b"piece length", Value::Int(i64::from(piece_length))),
        (b"pieces", Value::Bytes(&pieces)),
        (b"files", Value::List(List::new(list))),
    ])));
    t.content = content;
    t
}

fn single_with(name: &str, piece_length: u32, content: Vec<u8>) -> Torrent {
    let pieces = hashes(&content, piece_length);
    let mut t = parse(Value::Dict(Dict::new(vec![
        (b"name", Value::Bytes(name.as_bytes())),
        (b"piece length", Value::Int(i64::from(piece_length))),
        (b"pieces", Value::Bytes(&pieces)),
        (b"length", Value::Int(content.len() as i64)),
    ])));
    t.content = content;
    t
}

fn single(piece_length: u32, len: u64) -> Torrent {
    let mut rng = fastrand::Rng::with_seed(len);
    single_with("single.bin", piece_length, random_bytes(&mut rng, len))
}

/// The piece hashes of a v1 torrent's `info`.
fn v1_hashes(info: &Info) -> PieceHashes {
    PieceHashes::v1_only(info.piece_hashes.clone(), info.piece_length)
}

/// A cancel flag never raised.
static NO_CANCEL: AtomicBool = AtomicBool::new(false);

fn storage_with(t: &Torrent, dir: &Path, access: StorageAccess) -> FileStorage {
    FileStorage::open(
        &t.info,
        v1_hashes(&t.info),
        dir,
        StorageOptions {
            access,
            ..StorageOptions::default()
        },
    )
    .unwrap()
}

impl Torrent {
    fn storage(&self, dir: &Path, max_open_files: usize) -> FileStorage {
        FileStorage::open(
            &self.info,
            v1_hashes(&self.info),
            dir,
            StorageOptions {
                max_open_files,
                ..StorageOptions::default()
            },
        )
        .unwrap()
    }

    fn range(&self, piece: u32, offset: u32, len: u32) -> &[u8] {
        let start =
            (u64::from(piece) * u64::from(self.info.piece_length)) as usize + offset as usize;
        &self.content[start..start + len as usize]
    }

    fn piece(&self, piece: u32) -> &[u8] {
        let len = self.info.layout().piece_len(piece);
        self.range(piece, 0, len)
    }

    /// Writes `piece` in blocks of `block` bytes.
    fn write_piece(&self, s: &FileStorage, piece: u32, block: u32) {
        let len = self.info.layout().piece_len(piece);
        let mut off = 0;
        while off < len {
            let n = block.min(len - off);
            s.write_block(piece, off, self.range(piece, off, n))
                .unwrap();
            off += n;
        }
    }

    fn write_all(&self, s: &FileStorage, block: u32) {
        for p in 0..self.info.piece_count() {
            self.write_piece(s, p, block);
        }
    }
}

fn no_progress(_: u32) {}

fn check(s: &FileStorage, threads: usize) -> Vec<u32> {
    let all = 0..s.layout().piece_count();
    s.check_pieces(all, threads, &no_progress)
        .unwrap()
        .ones()
        .collect()
}

fn all_pieces(t: &Torrent) -> Vec<u32> {
    (0..t.info.piece_count()).collect()
}

/// Whether the current user can open `path` for writing despite its permissions (root).
fn writable_anyway(path: &Path) -> bool {
    OpenOptions::new().write(true).open(path).is_ok()
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn storage_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FileStorage>();
    assert_send_sync::<StorageError>();
}

#[test]
fn single_file_write_read_check() {
    let dir = tempfile::tempdir().unwrap();
    let t = single(32, 100); // pieces 32, 32, 32, 4
    let s = t.storage(dir.path(), 64);
    let path = dir.path().join("single.bin");
    assert_eq!(s.file_path(0), Some(path.as_path()));
    assert!(!path.exists(), "open touches no file");
    s.create_files().unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), 100);
    assert_eq!(
        check(&s, 2),
        Vec::<u32>::new(),
        "a sparse file has no piece"
    );

    t.write_piece(&s, 0, 10);
    t.write_piece(&s, 3, 3);
    assert_eq!(check(&s, 1), vec![0, 3]);
    assert_eq!(check(&s, 3), vec![0, 3]);
    assert_eq!(&s.read_block(0, 5, 20).unwrap()[..], t.range(0, 5, 20));
    assert_eq!(&s.read_block(3, 0, 4).unwrap()[..], t.piece(3));
    let mut buf = vec![9; 1000];
    s.read_piece(3, &mut buf).unwrap();
    assert_eq!(buf, t.piece(3));
    s.read_piece(0, &mut buf).unwrap();
    assert_eq!(buf, t.piece(0));
    // Out-of-range requests are errors, not panics.
    for (p, o, l) in [(4, 0, 1), (3, 0, 5), (0, 30, 3), (u32::MAX, 0, 1)] {
        assert!(matches!(
            s.read_block(p, o, l),
            Err(StorageError::OutOfRange { .. })
        ));
    }
    assert!(matches!(
        s.write_block(3, 2, &[1, 2, 3]),
        Err(StorageError::OutOfRange { piece: 3, .. })
    ));
    assert!(matches!(
        s.read_piece(4, &mut buf),
        Err(StorageError::OutOfRange { .. })
    ));
    assert!(matches!(
        s.check_pieces([7], 1, &no_progress),
        Err(StorageError::OutOfRange { piece: 7, .. })
    ));
    s.flush().unwrap();
}

#[test]
fn multi_file_blocks_span_files() {
    let dir = tempfile::tempdir().unwrap();
    // Pieces of 16 over a=7, empty=0, sub/b=13, sub/deeper/c=25, d=1 (46 bytes, 3 pieces).
    let t = multi(
        16,
        &[
            F::File("a", 7),
            F::File("empty", 0),
            F::File("sub/b", 13),
            F::File("sub/deeper/c", 25),
            F::File("d", 1),
        ],
    );
    let s = t.storage(dir.path(), 64);
    let root = dir.path().join("multi");
    assert_eq!(s.file_path(3), Some(root.join("sub/deeper/c").as_path()));
    s.create_files().unwrap();
    assert_eq!(fs::metadata(root.join("empty")).unwrap().len(), 0);
    assert_eq!(fs::metadata(root.join("sub/deeper/c")).unwrap().len(), 25);

    // Blocks of 5 cross every file boundary somewhere.
    t.write_all(&s, 5);
    assert_eq!(check(&s, 2), all_pieces(&t));
    // A block crossing a, b and c's boundaries reads back whole.
    assert_eq!(&s.read_block(0, 3, 13).unwrap()[..], t.range(0, 3, 13));
    assert_eq!(&s.read_block(2, 0, 14).unwrap()[..], t.piece(2));
    // The files hold exactly their share of the content.
    assert_eq!(fs::read(root.join("a")).unwrap(), &t.content[0..7]);
    assert_eq!(fs::read(root.join("sub/b")).unwrap(), &t.content[7..20]);
    assert_eq!(
        fs::read(root.join("sub/deeper/c")).unwrap(),
        &t.content[20..45]
    );
    assert_eq!(fs::read(root.join("d")).unwrap(), &t.content[45..46]);
}

#[test]
fn writes_create_missing_files_and_directories() {
    let dir = tempfile::tempdir().unwrap();
    let t = multi(16, &[F::File("x/y/z", 20), F::File("w", 12)]);
    let s = t.storage(dir.path(), 4);
    // No create_files: the first write makes what it needs.
    t.write_all(&s, 16);
    assert_eq!(check(&s, 1), all_pieces(&t));
    assert_eq!(
        fs::read(dir.path().join("multi/x/y/z")).unwrap(),
        &t.content[..20]
    );
}

#[test]
fn create_files_resizes_to_the_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let t = multi(16, &[F::File("short", 20), F::File("long", 12)]);
    let root = dir.path().join("multi");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("short"), [1u8; 3]).unwrap();
    fs::write(root.join("long"), [2u8; 50]).unwrap();
    // A download never cuts bytes that are not the torrent's: refused, nothing changed
    // (not even the short file, looked at before anything is touched).
    let s = t.storage(dir.path(), 64);
    let e = s.create_files().unwrap_err();
    assert!(
        matches!(&e, StorageError::TooLong { path, actual: 50, expected: 12 } if path == &root.join("long")),
        "{e}"
    );
    assert!(
        e.to_string()
            .ends_with("long is 50 bytes; the torrent says 12"),
        "{e}"
    );
    assert_eq!(fs::read(root.join("short")).unwrap(), [1u8; 3]);
    assert_eq!(fs::read(root.join("long")).unwrap(), [2u8; 50]);
    // Told to truncate, it does.
    let s = storage_with(&t, dir.path(), StorageAccess::ReadWriteTruncate);
    s.create_files().unwrap();
    let short = fs::read(root.join("short")).unwrap();
    assert_eq!(short.len(), 20);
    assert_eq!(&short[..3], &[1, 1, 1], "existing data is kept");
    assert_eq!(
        fs::read(root.join("long")).unwrap(),
        vec![2u8; 12],
        "a longer file is truncated to the torrent's length"
    );
}

#[test]
fn padding_files() {
    let dir = tempfile::tempdir().unwrap();
    // Pieces of 16: x=10 + pad 6 | y=10 + pad 6 | z=3.
    let t = multi(
        16,
        &[
            F::File("x", 10),
            F::Pad(6),
            F::File("y", 10),
            F::Pad(6),
            F::File("z", 3),
        ],
    );
    assert!(t.info.files[1].padding && t.info.files[3].padding);
    let s = t.storage(dir.path(), 64);
    s.create_files().unwrap();
    let root = dir.path().join("multi");
    assert!(
        !root.join(".pad").exists(),
        "padding files are never created"
    );
    assert!(root.join("y").exists());

    // A block with non-zero bytes in the padding is refused and writes nothing, not even
    // the part that belongs to x.
    let mut bad = t.piece(0).to_vec();
    bad[12] = 7;
    let err = s.write_block(0, 0, &bad).unwrap_err();
    assert!(matches!(
        err,
        StorageError::NonZeroPadding {
            piece: 0,
            offset: 0,
            ..
        }
    ));
    assert!(err.to_string().contains("padding"), "{err}");
    assert_eq!(fs::read(root.join("x")).unwrap(), vec![0u8; 10]);

    t.write_all(&s, 7);
    assert!(!root.join(".pad").exists());
    assert_eq!(check(&s, 2), all_pieces(&t));
    // Reading across padding gives zeros for it.
    let b = s.read_block(1, 8, 8).unwrap();
    assert_eq!(&b[..2], &t.content[24..26]);
    assert_eq!(&b[2..], &[0u8; 6]);
    // Padding is never "missing": file states say None for it, and a check does not skip.
    let states = s.file_states();
    assert_eq!(states[1], None);
    assert!(states[0].is_some() && states[2].is_some());
    let outcome = s
        .verify_existing(None, 2, &no_progress, &NO_CANCEL)
        .unwrap();
    assert_eq!(outcome.skipped, 0);
    assert!(outcome.have.is_full());
}

#[test]
fn check_finds_exactly_the_pieces_written() {
    let dir = tempfile::tempdir().unwrap();
    let t = multi(
        64,
        &[
            F::File("one", 300),
            F::File("two", 5),
            F::File("three", 400),
        ],
    );
    let s = t.storage(dir.path(), 2);
    s.create_files().unwrap();
    let mut rng = fastrand::Rng::with_seed(3);
    let mut written: Vec<u32> = all_pieces(&t).into_iter().filter(|_| rng.bool()).collect();
    for &p in &written {
        t.write_piece(&s, p, 16);
    }
    // A piece written with one wrong byte is not had.
    let victim = (0..t.info.piece_count())
        .find(|p| !written.contains(p))
        .unwrap();
    let mut wrong = t.piece(victim).to_vec();
    wrong[0] ^= 1;
    s.write_block(victim, 0, &wrong).unwrap();
    written.sort_unstable();
    let seen = std::sync::Mutex::new(Vec::new());
    let have = s
        .check_pieces(all_pieces(&t), 3, &|n| seen.lock().unwrap().push(n))
        .unwrap();
    assert_eq!(have.ones().collect::<Vec<_>>(), written);
    let mut seen = seen.into_inner().unwrap();
    seen.sort_unstable();
    assert_eq!(seen, (1..=t.info.piece_count()).collect::<Vec<_>>());
    // Checking a subset only looks at that subset.
    let have = s.check_pieces(written.clone().into_iter().take(2), 2, &no_progress);
    assert_eq!(have.unwrap().count_ones(), 2.min(written.len() as u32));
}

#[test]
fn missing_and_short_files_are_not_had() {
    let dir = tempfile::tempdir().unwrap();
    // Pieces of 16: a=20 [0,20), b=20 [20,40), c=24 [40,64).
    // Piece 0: a; 1: a, b; 2: b, c; 3: c.
    let t = multi(16, &[F::File("a", 20), F::File("b", 20), F::File("c", 24)]);
    let s = t.storage(dir.path(), 64);
    t.write_all(&s, 16);
    assert_eq!(check(&s, 2), vec![0, 1, 2, 3]);
    s.flush().unwrap();
    let root = dir.path().join("multi");
    fs::remove_file(root.join("a")).unwrap();
    // c loses its last 5 bytes: piece 3 runs past its end.
    let c = OpenOptions::new().write(true).open(root.join("c")).unwrap();
    c.set_len(19).unwrap();
    drop(c);
    // A fresh storage (no cached handles to the removed file).
    let s = t.storage(dir.path(), 64);
    let outcome = s
        .verify_existing(None, 2, &no_progress, &NO_CANCEL)
        .unwrap();
    assert_eq!(outcome.have.ones().collect::<Vec<_>>(), vec![2]);
    assert_eq!((outcome.trusted, outcome.checked), (0, 4));
    assert_eq!(
        outcome.skipped, 3,
        "pieces 0, 1 (a missing) and 3 (c short) unread"
    );
    assert_eq!(check(&s, 1), vec![2]);
    // Reading the data that is not there is an error, never zeros.
    let e = s.read_block(3, 0, 16).unwrap_err();
    assert!(e.is_missing_data(), "{e}");
    assert_eq!(e.io_error().unwrap().kind(), io::ErrorKind::UnexpectedEof);
    let e = s.read_block(0, 0, 4).unwrap_err();
    assert!(e.is_missing_data() && !e.is_disk_full(), "{e}");
    assert!(e.to_string().contains("multi/a"), "{e}");
    // Everything missing: nothing read, nothing had.
    let empty = tempfile::tempdir().unwrap();
    let s = t.storage(empty.path(), 64);
    let outcome = s
        .verify_existing(None, 2, &no_progress, &NO_CANCEL)
        .unwrap();
    assert!(outcome.have.is_empty());
    assert_eq!(outcome.skipped, 4);
}

#[cfg(unix)]
#[test]
fn read_only_files_are_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let t = multi(16, &[F::File("a", 20), F::File("b", 30)]);
    {
        let s = t.storage(dir.path(), 64);
        t.write_all(&s, 16);
        s.flush().unwrap();
    }
    let root = dir.path().join("multi");
    chmod(&root.join("a"), 0o444);
    chmod(&root.join("b"), 0o444);
    chmod(&root, 0o555);
    let privileged = writable_anyway(&root.join("a"));
    let s = t.storage(dir.path(), 64);
    let outcome = s
        .verify_existing(None, 2, &no_progress, &NO_CANCEL)
        .unwrap();
    assert!(outcome.have.is_full());
    assert_eq!(&s.read_block(1, 0, 16).unwrap()[..], t.piece(1));
    if !privileged {
        // The handles are read-only, and a write says why it failed.
        let e = s.write_block(0, 0, t.piece(0)).unwrap_err();
        assert_eq!(
            e.io_error().unwrap().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert!(matches!(
            e,
            StorageError::Io {
                op: StorageOp::Open,
                ..
            }
        ));
        // Reads keep working after the failed write.
        assert_eq!(&s.read_block(0, 0, 16).unwrap()[..], t.piece(0));
    }
    chmod(&root, 0o755);
}

/// Root may open any file with write access, except a program being run (`ETXTBSY`): the
/// test binary itself, seeded as a single-file torrent, exercises the read-only fallback
/// whoever runs the test.
#[cfg(target_os = "linux")]
#[test]
fn a_file_that_cannot_be_opened_for_writing_is_still_seeded() {
    let exe = std::env::current_exe().unwrap();
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name().and_then(|n| n.to_str())) else {
        panic!("test binary path {exe:?}");
    };
    let t = single_with(name, 1 << 22, fs::read(&exe).unwrap());
    let s = t.storage(dir, 64);
    let last = t.info.piece_count() - 1;
    assert_eq!(
        s.check_pieces([0, last], 2, &no_progress)
            .unwrap()
            .count_ones(),
        2
    );
    assert_eq!(
        &s.read_block(0, 100, 1000).unwrap()[..],
        t.range(0, 100, 1000)
    );
    if !writable_anyway(&exe) {
        assert_eq!(lock(&s.handles).writable(0), Some(false));
        // A write needs a writable handle and cannot get one; nothing is modified.
        let e = s.write_block(0, 0, t.range(0, 0, 10)).unwrap_err();
        assert!(
            matches!(
                e,
                StorageError::Io {
                    op: StorageOp::Open,
                    ..
                }
            ),
            "{e}"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_read_only_handle_is_reopened_for_writing() {
    let dir = tempfile::tempdir().unwrap();
    let t = single(16, 40);
    let path = dir.path().join("single.bin");
    {
        let s = t.storage(dir.path(), 64);
        t.write_all(&s, 16);
    }
    chmod(&path, 0o444);
    let privileged = writable_anyway(&path);
    let s = t.storage(dir.path(), 64);
    assert_eq!(&s.read_block(0, 0, 16).unwrap()[..], t.piece(0));
    let writable = || lock(&s.handles).writable(0);
    assert_eq!(writable(), Some(privileged));
    chmod(&path, 0o644);
    let mut data = t.piece(1).to_vec();
    data.reverse();
    s.write_block(1, 0, &data).unwrap();
    assert_eq!(writable(), Some(true));
    assert_eq!(&s.read_block(1, 0, 16).unwrap()[..], &data[..]);
    assert_eq!(&fs::read(&path).unwrap()[16..32], &data[..]);
    assert_eq!(s.open_handles(), 1);
}

#[cfg(unix)]
#[test]
fn permission_errors_are_errors_not_missing_data() {
    let dir = tempfile::tempdir().unwrap();
    let t = multi(16, &[F::File("a", 20), F::File("b", 30)]);
    {
        let s = t.storage(dir.path(), 64);
        t.write_all(&s, 16);
    }
    let b = dir.path().join("multi/b");
    chmod(&b, 0o000);
    if OpenOptions::new().read(true).open(&b).is_ok() {
        // Privileged: permissions do not apply; nothing to test here.
        chmod(&b, 0o644);
        return;
    }
    let s = t.storage(dir.path(), 64);
    let e = s
        .verify_existing(None, 2, &no_progress, &NO_CANCEL)
        .unwrap_err();
    assert_eq!(
        e.io_error().unwrap().kind(),
        io::ErrorKind::PermissionDenied
    );
    assert!(!e.is_missing_data());
    chmod(&b, 0o644);
}

#[test]
fn one_open_file_at_most_with_many_files() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<F> = (0..20)
        .map(|i| {
            let name: &'static str = Box::leak(format!("f{i:02}").into_boxed_str());
            F::File(name, 7 + i)
        })
        .collect();
    let t = multi(32, &files);
    let s = t.storage(dir.path(), 1);
    s.create_files().unwrap();
    // Blocks of 11 hop between files all the time.
    t.write_all(&s, 11);
    assert!(s.open_handles() <= 1);
    for p in 0..t.info.piece_count() {
        assert_eq!(
            &s.read_block(p, 0, t.info.layout().piece_len(p)).unwrap()[..],
            t.piece(p)
        );
        assert!(s.open_handles() <= 1);
    }
    assert_eq!(check(&s, 2), all_pieces(&t));
    assert!(s.open_handles() <= 1);
    // Written files whose handles were evicted are still synced by flush.
    assert!(s.dirty.iter().any(|d| d.load(Ordering::Relaxed)));
    s.flush().unwrap();
    assert!(s.dirty.iter().all(|d| !d.load(Ordering::Relaxed)));
    // A written file deleted before the flush has nothing left to sync, and is not
    // recreated by it.
    t.write_piece(&s, 0, 32);
    fs::remove_file(dir.path().join("multi/f00")).unwrap();
    s.flush().unwrap();
    assert!(!dir.path().join("multi/f00").exists());
    assert!(format!("{s:?}").contains("files: 20"));
    // max_open_files 0 is taken as 1.
    let s = t.storage(dir.path(), 0);
    assert_eq!(t.info.layout().file_pieces(0), 0..1);
    assert_eq!(check(&s, 1), all_pieces(&t)[1..]);
    assert_eq!(s.open_handles(), 1);
}

#[test]
fn concurrent_writes_from_several_threads() {
    let dir = tempfile::tempdir().unwrap();
    let t = multi(
        64,
        &[
            F::File("a", 1000),
            F::File("b", 333),
            F::File("c/d", 2000),
            F::File("e", 1),
        ],
    );
    let s = t.storage(dir.path(), 2);
    let pieces = t.info.piece_count();
    std::thread::scope(|scope| {
        for k in 0..4u32 {
            let (s, t) = (&s, &t);
            scope.spawn(move || {
                // Thread k writes every fourth piece, backwards, in blocks of 13.
                for p in (0..pieces).rev().filter(|p| p % 4 == k) {
                    t.write_piece(s, p, 13);
                }
            });
        }
    });
    assert!(s.open_handles() <= 2);
    assert_eq!(check(&s, 4), all_pieces(&t));
    s.flush().unwrap();
}

#[test]
fn resume_trusts_unchanged_files_and_rechecks_changed_ones() {
    let dir = tempfile::tempdir().unwrap();
    // Pieces of 16: a=20 [0,20), b=20 [20,40), c=24 [40,64).
    // Piece 0: a; 1: a, b; 2: b, c; 3: c.
    let t = multi(16, &[F::File("a", 20), F::File("b", 20), F::File("c", 24)]);
    let resume_path = dir.path().join("state/t.resume");
    let s = t.storage(dir.path(), 64);
    s.create_files().unwrap();
    t.write_all(&s, 16);
    s.flush().unwrap();
    let have = s.check_pieces(all_pieces(&t), 2, &no_progress).unwrap();
    assert!(have.is_full());
    // Give each file a known, distinct modification time (whole seconds ago), so later
    // changes are visible whatever the file system's timestamp granularity.
    let root = dir.path().join("multi");
    let base = SystemTime::now() - std::time::Duration::from_secs(1000);
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let f = OpenOptions::new()
            .write(true)
            .open(root.join(name))
            .unwrap();
        f.set_modified(base + std::time::Duration::from_secs(i as u64))
            .unwrap();
    }
    let data = s.resume_data(t.info_hash, have, None);
    FileStorage::save_resume(&resume_path, &data).unwrap();
    assert!(!dir.path().join("state/t.resume.tmp").exists());
    drop(s);

    // Restart: everything is trusted, nothing is read.
    let s = t.storage(dir.path(), 64);
    let loaded = FileStorage::load_resume(&resume_path).unwrap().unwrap();
    assert_eq!(loaded, data);
    loaded.check_matches(&t.info_hash, &t.info).unwrap();
    let outcome = s
        .verify_existing(Some(&loaded), 2, &no_progress, &NO_CANCEL)
        .unwrap();
    assert!(outcome.have.is_full());
    assert_eq!((outcome.trusted, outcome.checked), (4, 0));

    // b is modified afterwards (one byte of piece 2 corrupted): its pieces are rechecked,
    // the others still trusted.
    let f = OpenOptions::new().write(true).open(root.join("b")).unwrap();
    write_all_at(&f, &[0], 19).unwrap();
    f.set_modified(base + std::time::Duration::from_secs(77))
        .unwrap();
    drop(f);
    assert_eq!(
        loaded
            .trusted_pieces(&t.info, &s.file_states())
            .ones()
            .collect::<Vec<_>>(),
        vec![0, 3]
    );
    assert_eq!(
        loaded
            .pieces_to_check(&t.info, &s.file_states())
            .ones()
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    let calls = AtomicU32::new(0);
    let last = AtomicU32::new(0);
    let outcome = s
        .verify_existing(
            Some(&loaded),
            2,
            &|n| {
                calls.fetch_add(1, Ordering::Relaxed);
                last.fetch_max(n, Ordering::Relaxed);
            },
            &NO_CANCEL,
        )
        .unwrap();
    assert_eq!(outcome.have.ones().collect::<Vec<_>>(), vec![0, 1, 3]);
    assert_eq!(
        (outcome.trusted, outcome.checked, outcome.skipped),
        (2, 2, 0)
    );
    assert_eq!(last.into_inner(), 4, "progress reaches the piece count");
    assert_eq!(
        calls.into_inner(),
        3,
        "once for the trusted pieces, once per hashed piece"
    );

    // What the resume cannot see: a change that restores the old time is trusted.
    let f = OpenOptions::new().write(true).open(root.join("c")).unwrap();
    write_all_at(&f, &[0], 23).unwrap();
    f.set_modified(base + std::time::Duration::from_secs(2))
        .unwrap();
    drop(f);
    let outcome = s
        .verify_existing(Some(&loaded), 1, &no_progress, &NO_CANCEL)
        .unwrap();
    assert!(outcome.have.get(3), "unchanged length and mtime: trusted");
    // Without resume data the corruption is found.
    let outcome = s
        .verify_existing(None, 1, &no_progress, &NO_CANCEL)
        .unwrap();
    assert_eq!(outcome.have.ones().collect::<Vec<_>>(), vec![0, 1]);
}

#[test]
fn resume_files_load_and_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.resume");
    assert!(
        FileStorage::load_resume(&path).unwrap().is_none(),
        "missing: no resume"
    );
    let mut have = Bitfield::new(10);
    have.set(4);
    let data = ResumeData::new(
        InfoHash([3; 20]),
        have,
        vec![
            Some(FileState {
                length: 5,
                mtime_nanos: 1,
            }),
            None,
        ],
    );
    FileStorage::save_resume(&path, &data).unwrap();
    assert_eq!(FileStorage::load_resume(&path).unwrap(), Some(data.clone()));
    // Overwriting replaces the file whole.
    let mut newer = data.clone();
    newer.have.set(9);
    FileStorage::save_resume(&path, &newer).unwrap();
    assert_eq!(FileStorage::load_resume(&path).unwrap(), Some(newer));
    let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    // Garbage is a typed error, never a panic.
    fs::write(&path, b"d14:unchoke resumei1e4:haveli").unwrap();
    let e = FileStorage::load_resume(&path).unwrap_err();
    assert!(matches!(
        e,
        StorageError::BadResume {
            source: ResumeError::Bencode(_),
            ..
        }
    ));
    assert!(e.to_string().contains("r.resume"), "{e}");
    // A directory where the file should be is an IO error.
    let e = FileStorage::load_resume(dir.path()).unwrap_err();
    assert!(
        matches!(
            e,
            StorageError::Io {
                op: StorageOp::ReadResume,
                ..
            }
        ),
        "{e}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn disk_full_is_recognised() {
    // /dev/full answers every write with ENOSPC, but a device is never written to: a
    // single-file torrent named "full" saved in /dev is refused before any write.
    if Path::new("/dev/full").exists() {
        let t = single_with("full", 16, vec![1; 16]);
        let s = t.storage(Path::new("/dev"), 4);
        let e = s.write_block(0, 0, &[1; 16]).unwrap_err();
        assert!(
            matches!(
                e,
                StorageError::NotRegular {
                    kind: FileKind::Device,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("/dev/full is a device"), "{e}");
    }
    // An error built from the raw code, as a write on a full disk reports it.
    let e = StorageError::Io {
        op: StorageOp::Write,
        path: "x".into(),
        source: io::Error::from_raw_os_error(28),
    };
    assert!(e.is_disk_full());
    assert!(
        !StorageError::OutOfRange {
            piece: 0,
            offset: 0,
            len: 0
        }
        .is_disk_full()
    );
}

#[test]
fn inconsistent_torrents_are_refused() {
    let t = single(16, 40);
    let mut info = t.info.clone();
    info.piece_hashes.pop();
    assert!(matches!(
        FileStorage::open(
            &info,
            v1_hashes(&info),
            Path::new("/nonexistent"),
            StorageOptions::default()
        ),
        Err(StorageError::HashCountMismatch {
            hashes: 2,
            pieces: 3
        })
    ));
    info.piece_length = 0;
    assert!(matches!(
        FileStorage::open(
            &info,
            v1_hashes(&info),
            Path::new("/nonexistent"),
            StorageOptions::default()
        ),
        Err(StorageError::Layout(LayoutError::ZeroPieceLength))
    ));
    assert_eq!(
        StorageOptions::default().max_open_files,
        DEFAULT_MAX_OPEN_FILES
    );
}

#[test]
fn positional_loops_handle_short_and_interrupted_calls() {
    // A source that returns at most 3 bytes per call and is interrupted every other call.
    let src: Vec<u8> = (0..50).collect();
    let mut calls = 0;
    let mut buf = [0u8; 20];
    read_full(&mut buf, 10, |b, o| {
        calls += 1;
        if calls % 2 == 0 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let o = o as usize;
        let n = b.len().min(3).min(src.len().saturating_sub(o));
        b[..n].copy_from_slice(&src[o..o + n]);
        Ok(n)
    })
    .unwrap();
    assert_eq!(&buf[..], &src[10..30]);
    // Running off the end is UnexpectedEof.
    let e = read_full(&mut buf, 45, |b, o| {
        let o = o as usize;
        let n = b.len().min(src.len().saturating_sub(o));
        b[..n].copy_from_slice(&src[o..o + n]);
        Ok(n)
    })
    .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);

    let mut sink = [0u8; 30];
    write_full(&src[..25], 5, |b, o| {
        let n = b.len().min(4);
        sink[o as usize..o as usize + n].copy_from_slice(&b[..n]);
        Ok(n)
    })
    .unwrap();
    assert_eq!(&sink[5..30], &src[..25]);
    let e = write_full(&src[..5], 0, |_, _| Ok(0)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WriteZero);
}

#[test]
fn vectored_runs_of_blocks_span_files_and_padding() {
    let dir = tempfile::tempdir().unwrap();
    let t = multi(
        16,
        &[
            F::File("a", 7),
            F::Pad(9),
            F::File("sub/b", 13),
            F::File("c", 19),
        ],
    );
    let s = t.storage(dir.path(), 1);
    // Each piece written as one run of blocks of 3 bytes (the last shorter).
    for piece in 0..t.info.piece_count() {
        let len = t.info.layout().piece_len(piece);
        let blocks: Vec<Bytes> = (0..len)
            .step_by(3)
            .map(|off| Bytes::copy_from_slice(t.range(piece, off, 3.min(len - off))))
            .collect();
        s.write_blocks(piece, 0, &blocks).unwrap();
    }
    assert_eq!(check(&s, 1), all_pieces(&t));
    let root = dir.path().join("multi");
    assert!(!root.join(".pad").exists(), "padding is never written");
    assert_eq!(fs::read(root.join("c")).unwrap(), &t.content[29..48]);
    // A run starting mid-piece; and non-zero bytes over padding are refused whole.
    s.write_blocks(1, 2, &[Bytes::copy_from_slice(t.range(1, 2, 5))])
        .unwrap();
    let err = s
        .write_blocks(0, 6, &[Bytes::from_static(&[1, 1, 1])])
        .unwrap_err();
    assert!(matches!(err, StorageError::NonZeroPadding { .. }), "{err}");
    assert_eq!(fs::read(root.join("a")).unwrap(), &t.content[0..7]);
    // Out of range is an error, not a panic.
    assert!(
        s.write_blocks(2, 15, &[Bytes::from_static(&[0; 8])])
            .is_err()
    );
}

mod lazy;
mod safety;

/// What the session is told for each real failure: the kind it may act on, and the
/// storage's own words (file and operation) kept for people.
#[test]
fn storage_errors_reach_the_session_typed() {
    use unchoke_core::session::DiskErrorKind;
    let dir = tempfile::tempdir().unwrap();
    // Pieces of 16: a=10 + pad 6 | b=20.
    let t = multi(16, &[F::File("a", 10), F::Pad(6), F::File("b", 20)]);
    let s = t.storage(dir.path(), 64);
    s.create_files().unwrap();

    // A file shorter than the torrent says: the data is not there.
    let b = dir.path().join("multi/b");
    OpenOptions::new()
        .write(true)
        .open(&b)
        .unwrap()
        .set_len(4)
        .unwrap();
    let e = s.read_block(1, 0, 16).unwrap_err().to_disk_error();
    assert_eq!(e.kind(), DiskErrorKind::ShortRead, "{e}");
    assert!(e.detail().contains("multi/b"), "names the file: {e}");

    // A block outside its piece, and bad bytes where padding lies.
    let e = s.write_block(9, 0, &[0; 4]).unwrap_err().to_disk_error();
    assert_eq!(e.kind(), DiskErrorKind::OutOfRange, "{e}");
    let mut bad = t.piece(0).to_vec();
    bad[12] = 1;
    let e = s.write_block(0, 0, &bad).unwrap_err().to_disk_error();
    assert_eq!(e.kind(), DiskErrorKind::BadData, "{e}");
    assert!(!e.is_no_space() && !e.to_string().starts_with("disk full"));

    // A write to storage opened for seeding.
    let ro = storage_with(&t, dir.path(), StorageAccess::ReadOnly);
    let e = ro
        .write_block(0, 0, t.piece(0))
        .unwrap_err()
        .to_disk_error();
    assert_eq!(e.kind(), DiskErrorKind::ReadOnly, "{e}");

    // A missing file, read through a fresh storage.
    fs::remove_file(&b).unwrap();
    let fresh = t.storage(dir.path(), 64);
    let e = fresh.read_block(1, 0, 16).unwrap_err().to_disk_error();
    assert_eq!(e.kind(), DiskErrorKind::NotFound, "{e}");

    // A full device, as the system reports it: "disk full" leads the message.
    let full = StorageError::Io {
        op: StorageOp::Write,
        path: b.clone(),
        source: io::Error::from(io::ErrorKind::StorageFull),
    };
    assert!(full.is_disk_full());
    let e = full.to_disk_error();
    assert_eq!(e.kind(), DiskErrorKind::NoSpace);
    assert_eq!(e.to_string(), format!("disk full: {full}"));
}
