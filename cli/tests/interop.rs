//! Torrents made by `unchoke create` against other implementations: the same info-hash as
//! mktorrent, and libtorrent-rasterbar loads them and verifies the original data at 100%.
//! These tests fail (not skip) when the tools are missing: CI installs mktorrent and
//! python3-libtorrent.
// Test helpers outside #[test] functions may unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{data, info_json, make_tree, run_ok, write};

fn mktorrent_hash(target: &Path, log2_piece: u32, out: &Path) -> String {
    common::require_tool("mktorrent", &["-h"], "mktorrent");
    let res = Command::new("mktorrent")
        .arg("-l")
        .arg(log2_piece.to_string())
        .arg("-o")
        .arg(out)
        .arg(target)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "mktorrent: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    info_json(out)["info_hash"].as_str().unwrap().to_owned()
}

fn unchoke_create(target: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "create",
        target.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ];
    args.extend_from_slice(extra);
    run_ok(&args);
    info_json(out)["info_hash"].as_str().unwrap().to_owned()
}

#[test]
fn single_file_matches_mktorrent() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "three-megs.bin", &data(42, 3 * 1024 * 1024 + 7));
    let ours = unchoke_create(
        &file,
        &dir.path().join("u.torrent"),
        &["--piece-length", "65536"],
    );
    let theirs = mktorrent_hash(&file, 16, &dir.path().join("m.torrent"));
    assert_eq!(ours, theirs);
}

#[test]
fn directory_matches_mktorrent() {
    // mktorrent sorts with strcmp on the relative path; so do we (names chosen where that
    // differs from per-component order: "a-b/c" < "a.txt" < "a/b").
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    make_tree(&root);
    write(&root, "a/b", &data(6, 20_000));
    write(&root, "a-b/c", &data(7, 20_000));
    write(&root, "a.txt", &data(8, 1));
    write(&root, "B/q", &data(9, 17_000));
    let ours = unchoke_create(
        &root,
        &dir.path().join("u.torrent"),
        &["--piece-length", "32K"],
    );
    let theirs = mktorrent_hash(&root, 15, &dir.path().join("m.torrent"));
    assert_eq!(ours, theirs);
}

fn libtorrent_check(torrent: &Path, save_path: &Path) -> (bool, String) {
    common::require_tool(
        common::PYTHON,
        &["-c", "import libtorrent"],
        "python3-libtorrent",
    );
    let res = Command::new(common::PYTHON)
        .arg(common::lt_check_script())
        .arg(torrent)
        .arg(save_path)
        .arg("60")
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    (res.status.success(), report)
}

#[test]
fn libtorrent_verifies_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "single.bin", &data(11, 1024 * 1024 + 12_345));
    let torrent = dir.path().join("single.torrent");
    unchoke_create(&file, &torrent, &["--piece-length", "16K"]);
    let (ok, report) = libtorrent_check(&torrent, dir.path());
    assert!(ok, "libtorrent: {report}");
    assert!(
        report.contains("files=1 pieces=65 progress=1.0000"),
        "{report}"
    );
}

#[test]
fn libtorrent_verifies_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    make_tree(&root);
    let torrent = dir.path().join("tree.torrent");
    // Automatic piece length (16 KiB here): pieces straddle every file boundary.
    unchoke_create(&root, &torrent, &[]);
    let (ok, report) = libtorrent_check(&torrent, dir.path());
    assert!(ok, "libtorrent: {report}");
    assert!(report.contains("files=6"), "{report}");

    // And the check is real: one flipped byte in the middle file fails it.
    let victim = root.join("sub/b.bin");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let (ok, report) = libtorrent_check(&torrent, dir.path());
    assert!(!ok, "libtorrent accepted corrupted data: {report}");
}
