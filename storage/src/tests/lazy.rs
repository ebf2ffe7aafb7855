//! Lazy file creation: nothing before the first write, a file (with its directories, at
//! full length) when a block touches it, zero-length files with the block at their place or
//! at completion, and the link checks still made at the lazy open.

use super::safety::tree;
use super::*;

/// Files: `e0` (empty, at 0), `a` 0..20, `sub/b` 20..50, `sub/e` (empty, at 50),
/// `c/d/f` 50..60, `z` (empty, at the end). Pieces of 16: 0..16, 16..32, 32..48, 48..60.
fn shape() -> Torrent {
    multi(
        16,
        &[
            F::File("e0", 0),
            F::File("a", 20),
            F::File("sub/b", 30),
            F::File("sub/e", 0),
            F::File("c/d/f", 10),
            F::File("z", 0),
        ],
    )
}

fn len_of(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

#[test]
fn files_appear_with_the_first_block_touching_them() {
    let dir = tempfile::tempdir().unwrap();
    let t = shape();
    let root = dir.path().join("multi");
    let s = t.storage(dir.path(), 4);
    // The preflight and a check look, and create nothing.
    s.preflight_writes().unwrap();
    let outcome = s
        .verify_existing(None, 2, &no_progress, &NO_CANCEL)
        .unwrap();
    assert!(outcome.have.is_empty());
    assert_eq!(
        tree(dir.path()),
        Vec::<String>::new(),
        "nothing before a write"
    );

    // Piece 0 touches `a` only (and `e0` sits at its start).
    t.write_piece(&s, 0, 16);
    assert_eq!(tree(dir.path()), vec!["multi", "multi/a", "multi/e0"]);
    assert_eq!(len_of(&root.join("a")), 20, "created at its full length");
    assert_eq!(len_of(&root.join("e0")), 0);

    // A block in the middle of `sub/b`: the file and its directory appear, not its
    // siblings (`sub/e` lies past the block).
    s.write_block(1, 4, t.range(1, 4, 12)).unwrap();
    assert_eq!(
        tree(dir.path()),
        vec!["multi", "multi/a", "multi/e0", "multi/sub", "multi/sub/b"]
    );
    assert_eq!(len_of(&root.join("sub/b")), 30);
    assert!(!root.join("c").exists(), "an untouched file stays absent");

    // The last piece: the rest of `sub/b`, `sub/e` at 50, `c/d/f`, and `z` at the end.
    t.write_piece(&s, 3, 16);
    assert_eq!(len_of(&root.join("sub/e")), 0);
    assert_eq!(len_of(&root.join("c/d/f")), 10);
    assert_eq!(len_of(&root.join("z")), 0);

    t.write_piece(&s, 1, 16);
    t.write_piece(&s, 2, 16);
    assert_eq!(check(&s, 2), all_pieces(&t));
    assert_eq!(fs::read(root.join("a")).unwrap(), &t.content[..20]);
    assert_eq!(fs::read(root.join("sub/b")).unwrap(), &t.content[20..50]);
    assert_eq!(fs::read(root.join("c/d/f")).unwrap(), &t.content[50..]);
}

#[test]
fn completion_creates_the_files_no_write_made() {
    let dir = tempfile::tempdir().unwrap();
    let t = shape();
    let root = dir.path().join("multi");
    // A finished download whose empty files were removed (or never made by an older run).
    let s = t.storage(dir.path(), 4);
    t.write_all(&s, 16);
    s.flush().unwrap();
    for empty in ["e0", "sub/e", "z"] {
        fs::remove_file(root.join(empty)).unwrap();
    }
    let before = tree(dir.path());

    // A new run checks it complete: nothing is written, so only completion makes them.
    let s = t.storage(dir.path(), 4);
    s.preflight_writes().unwrap();
    let outcome = s
        .verify_existing(None, 2, &no_progress, &NO_CANCEL)
        .unwrap();
    assert!(outcome.have.is_full());
    assert_eq!(tree(dir.path()), before, "the check creates nothing");
    s.create_files().unwrap();
    for empty in ["e0", "sub/e", "z"] {
        assert_eq!(len_of(&root.join(empty)), 0, "{empty}");
    }
    assert_eq!(fs::read(root.join("a")).unwrap(), &t.content[..20]);
    assert_eq!(fs::read(root.join("sub/b")).unwrap(), &t.content[20..50]);
    assert_eq!(check(&s, 1), all_pieces(&t), "existing data kept");

    // Read-only storage creates nothing, complete or not.
    fs::remove_file(root.join("z")).unwrap();
    let ro = storage_with(&t, dir.path(), StorageAccess::ReadOnly);
    ro.create_files().unwrap();
    assert!(!root.join("z").exists());
}

#[test]
fn existing_data_is_kept_and_a_file_grown_after_the_preflight_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = shape();
    let root = dir.path().join("multi");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("a"), [7u8; 3]).unwrap();
    let s = t.storage(dir.path(), 4);
    s.preflight_writes().unwrap();

    // The first write to `a` extends it to its length and keeps its bytes.
    s.write_block(0, 8, t.range(0, 8, 8)).unwrap();
    let a = fs::read(root.join("a")).unwrap();
    assert_eq!(a.len(), 20);
    assert_eq!(&a[..3], &[7, 7, 7], "existing data is kept");
    assert_eq!(&a[8..16], t.range(0, 8, 8));

    // `sub/b` appears longer than the torrent says after the preflight: the lazy open
    // refuses it rather than cut it, and changes nothing.
    fs::write(root.join("sub/b"), [9u8; 50]).unwrap();
    let e = s.write_block(1, 4, t.range(1, 4, 12)).unwrap_err();
    assert!(
        matches!(&e, StorageError::TooLong { path, actual: 50, expected: 30 } if path == &root.join("sub/b")),
        "{e}"
    );
    assert_eq!(fs::read(root.join("sub/b")).unwrap(), [9u8; 50]);
}

#[cfg(unix)]
#[test]
fn a_link_planted_after_the_preflight_is_refused_at_the_lazy_open() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let t = shape();
    let root = dir.path().join("multi");
    let s = t.storage(dir.path(), 4);
    s.preflight_writes().unwrap();
    t.write_piece(&s, 0, 16);

    // Planted once the preflight passed and the first file exists: a directory link on
    // the way to `sub/b`, and a link in place of the empty file `z`.
    std::os::unix::fs::symlink(outside.path(), root.join("sub")).unwrap();
    fs::write(outside.path().join("target"), b"keep").unwrap();
    std::os::unix::fs::symlink(outside.path().join("target"), root.join("z")).unwrap();

    let e = s.write_block(1, 4, t.range(1, 4, 12)).unwrap_err();
    assert!(
        matches!(&e, StorageError::Symlink { path } if path == &root.join("sub")),
        "{e}"
    );
    // The last piece would create `z` (its place is the end): the link is not followed.
    fs::remove_file(root.join("sub")).unwrap();
    let e = s.write_block(3, 0, t.piece(3)).unwrap_err();
    assert!(matches!(&e, StorageError::Symlink { .. }), "{e}");
    assert_eq!(
        tree(outside.path()),
        vec!["target"],
        "nothing created outside"
    );
    assert_eq!(fs::read(outside.path().join("target")).unwrap(), b"keep");
    // Completion refuses it too, before creating anything.
    assert!(s.create_files().is_err());
    assert_eq!(fs::read(outside.path().join("target")).unwrap(), b"keep");
}
