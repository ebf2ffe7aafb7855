//! `unchoke seed` → `unchoke download` over real sockets on 127.0.0.x, plus the errors a
//! user meets: incomplete data to seed, an unusable save path, a bad peer address.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::process::JsonProcess;
use common::{data, make_tree, run, run_ok, unchoke, write};

const LONG: Duration = Duration::from_secs(120);

fn create(target: &Path, out: &Path, piece_length: &str) {
    run_ok(&[
        "create",
        target.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--piece-length",
        piece_length,
    ]);
}

/// `unchoke seed TORRENT DIR --listen IP:0 --json`, waited for until it listens.
fn start_seed(torrent: &Path, dir: &Path, ip: &str, extra: &[&str]) -> (JsonProcess, String) {
    let mut cmd = unchoke();
    cmd.arg("seed")
        .arg(torrent)
        .arg(dir)
        .args(["--listen", &format!("{ip}:0"), "--json"])
        .args(extra);
    let mut seed = JsonProcess::spawn("seed", cmd);
    let addr = seed.wait_event("listening", LONG)["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    (seed, addr)
}

fn download_cmd(torrent: &Path, out: &Path, ip: &str, peers: &[&str]) -> Command {
    let mut cmd = unchoke();
    cmd.arg("download").arg(torrent).arg("-o").arg(out).args([
        "--listen",
        &format!("{ip}:0"),
        "--json",
    ]);
    for p in peers {
        cmd.args(["--peer", p]);
    }
    cmd
}

fn same_tree(a: &Path, b: &Path) {
    for entry in walk(a) {
        let rel = entry.strip_prefix(a).unwrap();
        let other = b.join(rel);
        assert!(
            std::fs::read(&entry).unwrap() == std::fs::read(&other).unwrap(),
            "{} differs from {}",
            entry.display(),
            other.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() == ".unchoke" {
            continue;
        }
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn single_file_seed_to_download() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let file = write(&src, "movie.bin", &data(7, 6 * 1024 * 1024 + 123));
    let torrent = dir.path().join("movie.torrent");
    create(&file, &torrent, "256K");

    let (_seed, addr) = start_seed(&torrent, &src, "127.0.0.1", &[]);
    let out = dir.path().join("out");
    let mut dl = JsonProcess::spawn(
        "download",
        download_cmd(&torrent, &out, "127.0.0.2", &[&addr]),
    );
    let done = dl.wait_event("complete", LONG);
    assert!(dl.wait_exit(LONG).success(), "{}", dl.dump());
    assert_eq!(done["pieces_have"], done["piece_count"]);
    assert!(done["downloaded"].as_u64().unwrap() >= 6 * 1024 * 1024 + 123);
    assert_eq!(
        std::fs::read(out.join("movie.bin")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    // Running again finds everything present: nothing is downloaded.
    let mut again = JsonProcess::spawn(
        "download again",
        download_cmd(&torrent, &out, "127.0.0.2", &[]),
    );
    let checked = again.wait_event("checked", LONG);
    assert_eq!(checked["pieces_have"], checked["piece_count"]);
    assert_eq!(checked["resumed"], true, "the resume file is used");
    assert!(again.wait_exit(LONG).success(), "{}", again.dump());
    assert_eq!(again.last("stopped").unwrap()["downloaded"], 0);
}

#[test]
fn multi_file_tree_seed_to_download() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let tree = src.join("tree");
    make_tree(&tree);
    write(&tree, "big/large.bin", &data(9, 3 * 1024 * 1024));
    let torrent = dir.path().join("tree.torrent");
    create(&tree, &torrent, "32K");

    let (_seed, addr) = start_seed(&torrent, &src, "127.0.0.1", &[]);
    let out = dir.path().join("out");
    let mut dl = JsonProcess::spawn(
        "download",
        download_cmd(&torrent, &out, "127.0.0.3", &[&addr]),
    );
    dl.wait_event("complete", LONG);
    assert!(dl.wait_exit(LONG).success(), "{}", dl.dump());
    same_tree(&tree, &out.join("tree"));
    assert!(
        out.join("tree/sub/empty").exists(),
        "empty files are created"
    );
}

#[test]
fn seeding_incomplete_data_is_refused_unless_partial() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let file = write(&src, "f.bin", &data(3, 1024 * 1024));
    let torrent = dir.path().join("f.torrent");
    create(&file, &torrent, "64K");
    // Damage one piece.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[70_000] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    let out = run(&[
        "seed",
        torrent.to_str().unwrap(),
        src.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("incomplete (15 of 16 pieces"), "{err}");
    assert!(err.contains("--partial"), "{err}");

    let (seed, _addr) = start_seed(&torrent, &src, "127.0.0.1", &["--partial"]);
    let checked = seed.last("checked").unwrap();
    assert_eq!(checked["pieces_have"], 15);
}

#[test]
fn unusable_save_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "f.bin", &data(3, 100_000));
    let torrent = dir.path().join("f.torrent");
    create(&file, &torrent, "16K");
    // A save path under a regular file cannot be created (root or not).
    let bad = file.join("sub");
    let out = run(&[
        "download",
        torrent.to_str().unwrap(),
        "-o",
        bad.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("f.bin/sub"), "{err}");
    assert!(err.to_lowercase().contains("not a directory"), "{err}");
}

#[test]
fn bad_peer_address_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "f.bin", &data(3, 100_000));
    let torrent = dir.path().join("f.torrent");
    create(&file, &torrent, "16K");
    let out = run(&[
        "download",
        torrent.to_str().unwrap(),
        "-o",
        dir.path().join("o").to_str().unwrap(),
        "--peer",
        "no-port-here",
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--peer no-port-here"), "{err}");
}
