//! Data safety: access modes, links and special files, the preflight, cancellation, and
//! resume data that knows which pieces were never written.

use super::*;

/// Every path under `root` (relative), sorted: what a test compares before and after.
pub(super) fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn read_only_never_creates_extends_truncates_or_writes() {
    let dir = tempfile::tempdir().unwrap();
    let t = multi(16, &[F::File("a", 20), F::File("sub/b", 30)]);
    // Nothing there: nothing is created by any call.
    let s = storage_with(&t, dir.path(), StorageAccess::ReadOnly);
    s.create_files().unwrap();
    let outcome = s
        .verify_existing(None, 2, &no_progress, &NO_CANCEL)
        .unwrap();
    assert!(outcome.have.is_empty());
    let e = s.write_block(0, 0, t.piece(0)).unwrap_err();
    assert!(matches!(e, StorageError::ReadOnly { .. }), "{e}");
    let e = s
        .write_blocks(0, 0, &[Bytes::copy_from_slice(t.piece(0))])
        .unwrap_err();
    assert!(matches!(e, StorageError::ReadOnly { .. }), "{e}");
    assert!(s.read_block(0, 0, 16).unwrap_err().is_missing_data());
    s.flush().unwrap();
    assert_eq!(tree(dir.path()), Vec::<String>::new(), "nothing created");

    // A longer and a shorter file of other content: reported, never changed.
    let root = dir.path().join("multi");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("a"), [7u8; 40]).unwrap();
    fs::write(root.join("sub/b"), [9u8; 5]).unwrap();
    let s = storage_with(&t, dir.path(), StorageAccess::ReadOnly);
    let statuses: Vec<FileStatus> = s.inspect().into_iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![
            FileStatus::WrongSize { actual: 40 },
            FileStatus::WrongSize { actual: 5 }
        ]
    );
    s.create_files().unwrap();
    let outcome = s
        .verify_existing(None, 2, &no_progress, &NO_CANCEL)
        .unwrap();
    assert!(outcome.have.is_empty());
    assert!(s.write_block(3, 0, t.piece(3)).is_err());
    s.flush().unwrap();
    assert_eq!(fs::read(root.join("a")).unwrap(), [7u8; 40]);
    assert_eq!(fs::read(root.join("sub/b")).unwrap(), [9u8; 5]);
    assert_eq!(
        tree(dir.path()),
        vec!["multi", "multi/a", "multi/sub", "multi/sub/b"]
    );
}

#[test]
fn inspect_reports_each_file_in_the_users_terms() {
    let dir = tempfile::tempdir().unwrap();
    let t = multi(
        16,
        &[
            F::File("ok", 20),
            F::File("missing", 5),
            F::File("long", 10),
            F::File("dir", 3),
        ],
    );
    let root = dir.path().join("multi");
    fs::create_dir_all(root.join("dir")).unwrap();
    fs::write(root.join("ok"), [1u8; 20]).unwrap();
    fs::write(root.join("long"), [1u8; 11]).unwrap();
    let s = t.storage(dir.path(), 4);
    let reports = s.inspect();
    let statuses: Vec<&FileStatus> = reports.iter().map(|r| &r.status).collect();
    assert_eq!(
        statuses,
        vec![
            &FileStatus::Ok,
            &FileStatus::Missing,
            &FileStatus::WrongSize { actual: 11 },
            &FileStatus::NotRegular {
                at: root.join("dir"),
                kind: FileKind::Directory
            },
        ]
    );
    assert!(reports[1].to_string().ends_with("multi/missing is missing"));
    assert!(
        reports[3]
            .to_string()
            .ends_with("multi/dir is a directory, not a regular file")
    );
    // Sizes with thousands separators, as in the example.
    let big = FileReport {
        index: 0,
        path: "d/payload.bin".into(),
        expected: 3_000_000,
        status: FileStatus::WrongSize { actual: 4_000_000 },
    };
    assert_eq!(
        big.to_string(),
        "d/payload.bin is 4,000,000 bytes; the torrent says 3,000,000"
    );
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1000), "1,000");
    assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    // A directory where a file goes stops a download before it writes anything.
    let e = s.create_files().unwrap_err();
    assert!(matches!(e, StorageError::TooLong { actual: 11, .. }), "{e}");
    fs::write(root.join("long"), [1u8; 10]).unwrap();
    let e = s.create_files().unwrap_err();
    assert!(
        matches!(
            e,
            StorageError::NotRegular {
                kind: FileKind::Directory,
                ..
            }
        ),
        "{e}"
    );
    assert!(!root.join("missing").exists(), "refused before creating");
}

#[cfg(unix)]
#[test]
fn a_symlinked_file_is_never_written_through_but_is_seeded_through() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let t = single(16, 40);
    let target = outside.path().join("precious");
    fs::write(&target, &t.content).unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("single.bin")).unwrap();

    let s = t.storage(dir.path(), 4);
    assert_eq!(
        s.inspect()[0].status,
        FileStatus::Symlink {
            at: dir.path().join("single.bin")
        }
    );
    let e = s.create_files().unwrap_err();
    assert!(matches!(e, StorageError::Symlink { .. }), "{e}");
    assert!(
        e.to_string()
            .ends_with("single.bin is a symbolic link; unchoke does not write through links"),
        "{e}"
    );
    let e = s.write_block(0, 0, &[0xee; 16]).unwrap_err();
    assert!(matches!(e, StorageError::Symlink { .. }), "{e}");
    assert_eq!(
        fs::read(&target).unwrap(),
        t.content,
        "the link's target is untouched"
    );

    // Seeding follows the link: hash verification vouches for the content.
    let s = storage_with(&t, dir.path(), StorageAccess::ReadOnly);
    assert_eq!(s.inspect()[0].status, FileStatus::Ok);
    let outcome = s
        .verify_existing(None, 2, &no_progress, &NO_CANCEL)
        .unwrap();
    assert!(outcome.have.is_full());
    assert_eq!(&s.read_block(1, 0, 16).unwrap()[..], t.piece(1));
}

#[cfg(unix)]
#[test]
fn a_symlinked_directory_below_the_save_dir_is_refused_but_the_save_dir_may_be_one() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let t = multi(16, &[F::File("sub/x", 20), F::File("y", 12)]);
    let root = dir.path().join("multi");
    fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("sub")).unwrap();

    let s = t.storage(dir.path(), 4);
    let e = s.write_block(0, 0, t.piece(0)).unwrap_err();
    assert!(
        matches!(&e, StorageError::Symlink { path } if path == &root.join("sub")),
        "{e}"
    );
    assert!(s.create_files().is_err());
    assert_eq!(
        tree(outside.path()),
        Vec::<String>::new(),
        "nothing written outside"
    );

    // Read-only follows it (the user's own layout of their data).
    fs::write(outside.path().join("x"), &t.content[..20]).unwrap();
    let s = storage_with(&t, dir.path(), StorageAccess::ReadOnly);
    assert_eq!(&s.read_block(0, 0, 16).unwrap()[..], t.piece(0));

    // The save directory itself may be a link: the user chose it.
    let real = tempfile::tempdir().unwrap();
    let link = dir.path().join("save-link");
    std::os::unix::fs::symlink(real.path(), &link).unwrap();
    let s = t.storage(&link, 4);
    s.create_files().unwrap();
    t.write_all(&s, 16);
    s.flush().unwrap();
    assert_eq!(
        fs::read(real.path().join("multi/y")).unwrap(),
        &t.content[20..]
    );
}

#[cfg(unix)]
#[test]
fn a_fifo_where_a_file_goes_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let t = single(16, 40);
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        dir.path().join("single.bin"),
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    for access in [
        StorageAccess::ReadWrite,
        StorageAccess::ReadWriteTruncate,
        StorageAccess::ReadOnly,
    ] {
        let s = storage_with(&t, dir.path(), access);
        assert!(
            matches!(
                s.inspect()[0].status,
                FileStatus::NotRegular {
                    kind: FileKind::Fifo,
                    ..
                }
            ),
            "{access:?}"
        );
        let e = s.read_block(0, 0, 16).unwrap_err();
        assert!(
            matches!(
                e,
                StorageError::NotRegular {
                    kind: FileKind::Fifo,
                    ..
                }
            ),
            "{access:?}: {e}"
        );
        if access.writable() {
            let e = s.create_files().unwrap_err();
            assert!(e.to_string().contains("is a named pipe (FIFO)"), "{e}");
            assert!(s.write_block(0, 0, t.piece(0)).is_err());
        }
    }
}

#[test]
fn no_write_leaves_the_save_directory() {
    // The parser refuses `..` (and absolute paths) outright…
    let bytes = encode(&Value::Dict(Dict::new(vec![(
        &b"info"[..],
        Value::Dict(Dict::new(vec![
            (
                &b"files"[..],
                Value::List(List::new(vec![Value::Dict(Dict::new(vec![
                    (&b"length"[..], Value::Int(4)),
                    (
                        &b"path"[..],
                        Value::List(List::new(vec![Value::Bytes(b".."), Value::Bytes(b"evil")])),
                    ),
                ]))])),
            ),
            (&b"name"[..], Value::Bytes(b"t")),
            (&b"piece length"[..], Value::Int(16)),
            (&b"pieces"[..], Value::Bytes(&[0; 20])),
        ])),
    )])));
    assert!(Metainfo::from_bytes(&bytes).is_err());
    // …and the storage refuses such a path by itself, should one ever reach it.
    let dir = tempfile::tempdir().unwrap();
    let save = dir.path().join("save");
    fs::create_dir(&save).unwrap();
    let mut t = single(16, 4);
    t.info.multi_file = true;
    t.info.files[0].path = vec!["..".into(), "..".into(), "evil".into()];
    let s = t.storage(&save, 4);
    let e = s.write_block(0, 0, &t.content).unwrap_err();
    assert!(matches!(e, StorageError::OutsideSaveDir { .. }), "{e}");
    assert!(s.create_files().is_err());
    assert_eq!(
        tree(dir.path()),
        vec!["save"],
        "nothing outside, nothing inside"
    );
}

#[test]
fn a_raised_cancel_flag_stops_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let t = single(16, 16 * 64);
    let s = t.storage(dir.path(), 4);
    t.write_all(&s, 16);
    // Raised before: nothing is read.
    let raised = AtomicBool::new(true);
    let e = s
        .verify_existing(None, 2, &no_progress, &raised)
        .unwrap_err();
    assert!(matches!(e, StorageError::Cancelled), "{e}");
    // Raised during the check (after the third piece): every thread stops at its next
    // piece, so far fewer than all 64 are done.
    let cancel = AtomicBool::new(false);
    let done = AtomicU32::new(0);
    let e = s
        .verify_existing(
            None,
            2,
            &|n| {
                done.fetch_max(n, Ordering::Relaxed);
                if n >= 3 {
                    cancel.store(true, Ordering::Relaxed);
                }
            },
            &cancel,
        )
        .unwrap_err();
    assert!(matches!(e, StorageError::Cancelled), "{e}");
    assert!(
        done.into_inner() < 10,
        "the check went on after the flag rose"
    );
}

#[test]
fn resume_skips_pieces_never_written_and_reads_the_written_ones() {
    let dir = tempfile::tempdir().unwrap();
    // 8 pieces of 16 in one file.
    let t = single(16, 16 * 8);
    let path = dir.path().join("single.bin");
    let s = t.storage(dir.path(), 4);
    s.create_files().unwrap();
    t.write_piece(&s, 0, 16);
    t.write_piece(&s, 1, 16);
    // Piece 2 half written (a crash between two blocks): not zeros, not its hash.
    s.write_block(2, 0, t.range(2, 0, 8)).unwrap();
    s.flush().unwrap();

    // First check, no resume: everything read; the all-zero pieces count as unwritten.
    let outcome = s
        .verify_existing(None, 2, &no_progress, &NO_CANCEL)
        .unwrap();
    assert_eq!(outcome.have.ones().collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(outcome.written.ones().collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!((outcome.checked, outcome.skipped), (8, 0));

    let resume = s.resume_data(
        t.info_hash,
        outcome.have.clone(),
        Some(outcome.written.clone()),
    );
    let decoded = ResumeData::decode(&resume.encode()).unwrap();
    assert_eq!(decoded, resume);

    // Restart with it: 0 and 1 trusted, 2 hashed, 3..8 known empty and not read.
    let read = AtomicU32::new(0);
    let outcome = s
        .verify_existing(
            Some(&decoded),
            2,
            &|_| {
                read.fetch_add(1, Ordering::Relaxed);
            },
            &NO_CANCEL,
        )
        .unwrap();
    assert_eq!(outcome.have.ones().collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(outcome.trusted, 2);
    assert_eq!(
        outcome.checked - outcome.skipped,
        1,
        "only piece 2 is hashed"
    );
    assert_eq!(outcome.skipped, 5);
    assert_eq!(outcome.written.ones().collect::<Vec<_>>(), vec![0, 1, 2]);

    // An old resume file (no `written`) is read conservatively: every untrusted piece is
    // hashed.
    let mut old = decoded.clone();
    old.written = None;
    let old = ResumeData::decode(&old.encode()).unwrap();
    assert_eq!(old.written, None);
    let outcome = s
        .verify_existing(Some(&old), 2, &no_progress, &NO_CANCEL)
        .unwrap();
    assert_eq!(outcome.trusted, 2);
    assert_eq!((outcome.checked, outcome.skipped), (6, 0));

    // The file changed since the save (written by someone else, or by us before a
    // crash): nothing is known empty any more, and data written there is found.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    write_all_at(&f, t.piece(5), 5 * 16).unwrap();
    f.set_modified(SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    drop(f);
    let outcome = s
        .verify_existing(Some(&decoded), 2, &no_progress, &NO_CANCEL)
        .unwrap();
    assert_eq!(outcome.trusted, 0);
    assert_eq!((outcome.checked, outcome.skipped), (8, 0));
    assert_eq!(outcome.have.ones().collect::<Vec<_>>(), vec![0, 1, 5]);
}
