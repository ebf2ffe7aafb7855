//! Bounded torrent shape, on the real binary once per runtime: a torrent listing more files
//! than `--max-files` is refused by `download` and `seed` with a message that says so, and
//! nothing is created in the save directory; the same torrent within the limit is set up;
//! `unchoke info` shows it and warns.
//!
//! The torrents are written as bencode directly: 1,001 one-byte files against
//! `--max-files 1000` shows the rule without a real million-file tree.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::run_bounded;
use common::runtime::Runtime;

/// Files in the test torrent: one past the limit the tests give.
const FILES: usize = 1001;

/// Writes a multi-file torrent `shape/` of `files` one-byte files `fNNNN` to `dir` and
/// returns its path. The piece hash is the SHA-1 of the zeros a fresh download holds, so
/// nothing here depends on a peer.
fn many_file_torrent(dir: &Path, files: usize) -> PathBuf {
    use sha1::Digest;
    let mut list = Vec::new();
    for i in 0..files {
        let name = format!("f{i:04}");
        list.extend_from_slice(format!("d6:lengthi1e4:pathl{}:{name}ee", name.len()).as_bytes());
    }
    let hash: [u8; 20] = sha1::Sha1::digest(vec![0u8; files]).into();
    let mut b = b"d4:infod5:filesl".to_vec();
    b.extend_from_slice(&list);
    b.extend_from_slice(b"e4:name5:shape12:piece lengthi16384e6:pieces20:");
    b.extend_from_slice(&hash);
    b.extend_from_slice(b"ee");
    let path = dir.join("shape.torrent");
    std::fs::write(&path, b).expect("write the torrent");
    path
}

/// Entries of `dir`, or none when it does not exist.
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn download_refuses_more_files_than_max_files_and_creates_nothing(rt: Runtime) {
    let root = tempfile::tempdir().expect("tempdir");
    let torrent = many_file_torrent(root.path(), FILES);
    let save = root.path().join("save");
    std::fs::create_dir(&save).expect("mkdir save");
    let listen = format!("{}:0", rt.ip(90));
    let out = run_bounded(
        &[
            "download",
            "--no-lsd",
            torrent.to_str().expect("utf-8 path"),
            "-o",
            save.to_str().expect("utf-8 path"),
            "--listen",
            &listen,
            "--max-files",
            "1000",
            rt.args()[0],
            rt.args()[1],
        ],
        root.path(),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(
            "the torrent lists 1,001 files; unchoke accepts at most 1,000 (--max-files to change)"
        ),
        "stderr: {stderr}"
    );
    assert_eq!(
        entries(&save),
        Vec::<String>::new(),
        "a refused torrent creates nothing"
    );

    // `seed` refuses it the same way, before looking at the data.
    let out = run_bounded(
        &[
            "seed",
            "--no-lsd",
            torrent.to_str().expect("utf-8 path"),
            save.to_str().expect("utf-8 path"),
            "--listen",
            &listen,
            "--max-files",
            "1000",
            rt.args()[0],
            rt.args()[1],
        ],
        root.path(),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("lists 1,001 files"), "stderr: {stderr}");
    assert_eq!(entries(&save), Vec::<String>::new());
}

fn the_same_torrent_within_the_limit_is_set_up(rt: Runtime) {
    let root = tempfile::tempdir().expect("tempdir");
    let torrent = many_file_torrent(root.path(), FILES);
    let save = root.path().join("save");
    let listen = format!("{}:0", rt.ip(91));
    // No peer, tracker or DHT: the download gives up after its grace period, but only
    // once it was set up (the save directory made) — the limit, not something else,
    // refused the torrent above. Its files come with the data, so none exists.
    let out = run_bounded(
        &[
            "download",
            "--no-lsd",
            torrent.to_str().expect("utf-8 path"),
            "-o",
            save.to_str().expect("utf-8 path"),
            "--listen",
            &listen,
            "--max-files",
            "1001",
            "--no-dht",
            rt.args()[0],
            rt.args()[1],
        ],
        root.path(),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("--max-files"), "stderr: {stderr}");
    assert!(
        stderr.contains("nothing to download from"),
        "stderr: {stderr}"
    );
    assert!(save.is_dir(), "stderr: {stderr}");
    assert_eq!(entries(&save.join("shape")), Vec::<String>::new());
}

per_runtime!(
    download_refuses_more_files_than_max_files_and_creates_nothing,
    the_same_torrent_within_the_limit_is_set_up,
);

#[test]
fn info_shows_the_count_and_warns_when_over() {
    let root = tempfile::tempdir().expect("tempdir");
    let torrent = many_file_torrent(root.path(), FILES);
    let path = torrent.to_str().expect("utf-8 path");
    let over = run_bounded(
        &["info", path, "--max-files", "1000"],
        root.path(),
        Duration::from_secs(30),
    );
    assert!(over.status.success(), "{over:?}");
    let stdout = String::from_utf8_lossy(&over.stdout);
    let stderr = String::from_utf8_lossy(&over.stderr);
    assert!(stdout.contains("files (1001)"), "stdout: {stdout}");
    assert!(
        stderr.contains("warning: the torrent lists 1,001 files; unchoke accepts at most 1,000"),
        "stderr: {stderr}"
    );
    let within = run_bounded(&["info", path], root.path(), Duration::from_secs(30));
    assert!(within.status.success(), "{within:?}");
    assert!(
        !String::from_utf8_lossy(&within.stderr).contains("warning"),
        "no warning under the default limit"
    );
}
