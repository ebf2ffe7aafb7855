//! `unchoke info`: good and bad torrent files, magnet links, JSON keys, exit codes.
// Test helpers outside #[test] functions may unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{data, run, run_ok, write};

/// A small single-file torrent made by `unchoke create` in `dir`.
fn small_torrent(dir: &std::path::Path) -> std::path::PathBuf {
    let file = write(dir, "hello.txt", &data(9, 50_000));
    let out = dir.join("hello.torrent");
    run_ok(&[
        "create",
        file.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--quiet",
        "--tracker",
        "http://127.0.0.1:1/announce",
        "--comment",
        "a comment",
    ]);
    out
}

#[test]
fn malformed_files_give_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8]); 5] = [
        ("truncated.torrent", b"d4:infod4:name"),
        ("garbage.torrent", b"\x00\xffnot bencode at all"),
        ("empty.torrent", b""),
        ("list.torrent", b"li1ee"),
        ("noinfo.torrent", b"d8:announce3:urle"),
    ];
    for (name, bytes) in cases {
        let path = write(dir.path(), name, bytes);
        let out = run(&["info", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}: exit status");
        assert!(out.stdout.is_empty(), "{name}: nothing on stdout");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            stderr.lines().count(),
            1,
            "{name}: one line, got {stderr:?}"
        );
        assert!(
            stderr.starts_with(&format!("unchoke: `{}` ", path.display())),
            "{name}: names the file: {stderr:?}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr:?}");
    }
}

#[test]
fn missing_file_and_directory_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.torrent");
    let out = run(&["info", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("nope.torrent") && stderr.contains("no such file"),
        "{stderr}"
    );

    let out = run(&["info", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("is a directory")
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["info"]).status.code(), Some(2));
    assert_eq!(run(&["info", "a", "b"]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn text_output_shows_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = small_torrent(dir.path());
    let out = run_ok(&["info", torrent.to_str().unwrap()]);
    for expected in [
        "name:          hello.txt",
        "total size:    48.83 KiB (50000 bytes)",
        "piece length:  16.00 KiB (16384 bytes)",
        "pieces:        4",
        "private:       no",
        "comment:       a comment",
        "tier 1:  http://127.0.0.1:1/announce",
        "files (1):",
        "48.83 KiB  hello.txt",
        "magnet:        magnet:?xt=urn:btih:",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn json_has_stable_keys() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = small_torrent(dir.path());
    let v = common::info_json(&torrent);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = vec![
        "event",
        "time",
        "kind",
        "name",
        "info_hash",
        "info_hash_v2",
        "meta_version",
        "hybrid",
        "total_size",
        "piece_length",
        "piece_count",
        "private",
        "trackers",
        "url_list",
        "comment",
        "created_by",
        "creation_date",
        "files",
        "peers",
        "magnet",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(v["kind"], "torrent");
    assert_eq!(v["name"], "hello.txt");
    assert_eq!(v["total_size"], 50_000);
    assert_eq!(v["piece_length"], 16384);
    assert_eq!(v["piece_count"], 4);
    assert_eq!(v["private"], false);
    assert_eq!(v["comment"], "a comment");
    assert_eq!(v["created_by"], "unchoke/0.1.0");
    assert!(v["creation_date"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(
        v["trackers"],
        serde_json::json!([["http://127.0.0.1:1/announce"]])
    );
    assert_eq!(
        v["files"],
        serde_json::json!([{"path": "hello.txt", "size": 50_000, "padding": false}])
    );
    let hash = v["info_hash"].as_str().unwrap();
    assert_eq!(hash.len(), 40);
    assert!(v["info_hash_v2"].is_null());
    assert_eq!(v["meta_version"], 1);
    assert_eq!(v["hybrid"], false);
    assert!(v["magnet"].as_str().unwrap().contains(hash));
}

#[test]
fn magnet_links() {
    let hash = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
    let link = format!("magnet:?xt=urn:btih:{hash}&dn=My+Film&tr=udp%3A%2F%2Ft%3A1&x.pe=[::1]:7");
    let out = run_ok(&["info", &link]);
    assert!(out.contains("name:          My Film"), "{out}");
    assert!(out.contains(&format!("info-hash:     {hash}")), "{out}");
    assert!(out.contains("tier 1:  udp://t:1"), "{out}");
    assert!(out.contains("peer:          [::1]:7"), "{out}");

    let v: serde_json::Value = serde_json::from_str(&run_ok(&["info", "--json", &link])).unwrap();
    assert_eq!(v["kind"], "magnet");
    assert_eq!(v["name"], "My Film");
    assert_eq!(v["info_hash"], hash);
    assert_eq!(v["trackers"], serde_json::json!([["udp://t:1"]]));
    assert_eq!(v["peers"], serde_json::json!(["[::1]:7"]));
    assert!(v["total_size"].is_null());
    assert_eq!(
        v["magnet"],
        format!(
            "magnet:?xt=urn:btih:{hash}&dn=My%20Film&tr=udp%3A%2F%2Ft%3A1&x.pe=%5B%3A%3A1%5D%3A7"
        )
    );

    let bad_escape = format!("magnet:?xt=urn:btih:{hash}&dn=%zz");
    for bad in ["magnet:?dn=x", "magnet:?xt=urn:btih:12", &bad_escape] {
        let out = run(&["info", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("unchoke: ") && stderr.contains("magnet"),
            "{stderr}"
        );
    }
}

#[test]
fn hostile_names_do_not_reach_the_terminal() {
    // A torrent whose name holds an escape sequence: shown escaped, never raw.
    let dir = tempfile::tempdir().unwrap();
    let pieces = [0u8; 20];
    let mut bytes =
        b"d4:infod6:lengthi5e4:name7:a\x1b[2Jbc12:piece lengthi16384e6:pieces20:".to_vec();
    bytes.extend_from_slice(&pieces);
    bytes.extend_from_slice(b"ee");
    let path = write(dir.path(), "evil.torrent", &bytes);
    let out = run(&["info", path.to_str().unwrap()]);
    // Whether metainfo accepts the name or not, no raw ESC reaches stdout or stderr.
    assert!(!out.stdout.contains(&0x1b), "raw escape on stdout");
    assert!(!out.stderr.contains(&0x1b), "raw escape on stderr");
}
