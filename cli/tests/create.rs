//! `unchoke create`: round trips through `unchoke info`, refusals, and error messages.
// Test helpers outside #[test] functions may unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{data, info_json, make_tree, run, run_ok, write};

#[test]
fn directory_round_trip_through_info() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    make_tree(&root);
    let out = dir.path().join("tree.torrent");
    let stdout = run_ok(&[
        "create",
        root.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--piece-length",
        "32K",
        "--private",
        "--no-date",
        "-t",
        "http://a.example/announce,http://b.example/announce",
        "-t",
        "udp://c.example:80",
        "--web-seed",
        "http://seed.example/files/",
        "--comment",
        "round trip",
        "--quiet",
    ]);
    let v = info_json(&out);
    assert_eq!(v["name"], "tree");
    assert_eq!(v["private"], true);
    assert_eq!(v["piece_length"], 32768);
    let total = 100_000 + 70_001 + 5 + 40_000 + 33_333;
    assert_eq!(v["total_size"], total);
    assert_eq!(v["piece_count"], (total as u64).div_ceil(32768));
    assert!(v["creation_date"].is_null(), "--no-date");
    assert_eq!(v["comment"], "round trip");
    assert_eq!(
        v["trackers"],
        serde_json::json!([
            ["http://a.example/announce", "http://b.example/announce"],
            ["udp://c.example:80"]
        ])
    );
    assert_eq!(
        v["url_list"],
        serde_json::json!(["http://seed.example/files/"])
    );
    // Deterministic order (bytewise on the path), hidden and empty files included.
    let files: Vec<(String, u64)> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("tree/.hidden", 40_000),
        ("tree/a.bin", 100_000),
        ("tree/sub/b.bin", 70_001),
        ("tree/sub/deeper/c.bin", 5),
        ("tree/sub/empty", 0),
        ("tree/z.bin", 33_333),
    ]
    .map(|(p, n)| (p.to_owned(), n));
    assert_eq!(files, expected);
    // What create printed matches what info reads back.
    let hash = v["info_hash"].as_str().unwrap();
    assert!(stdout.contains(&format!("info-hash: {hash}")), "{stdout}");
    assert!(
        stdout.contains(&format!("magnet: magnet:?xt=urn:btih:{hash}&dn=tree&tr=")),
        "{stdout}"
    );

    // Same input, same options, --no-date: the very same bytes (deterministic order).
    let again = dir.path().join("again.torrent");
    run_ok(&[
        "create",
        root.to_str().unwrap(),
        "-o",
        again.to_str().unwrap(),
        "--piece-length",
        "32768",
        "--private",
        "--no-date",
        "-t",
        "http://a.example/announce,http://b.example/announce",
        "-t",
        "udp://c.example:80",
        "--web-seed",
        "http://seed.example/files/",
        "--comment",
        "round trip",
        "--quiet",
        "--threads",
        "1",
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn automatic_piece_length_and_name_override() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "f.bin", &data(1, 40 << 20));
    let out = dir.path().join("f.torrent");
    run_ok(&[
        "create",
        file.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "-n",
        "other",
    ]);
    let v = info_json(&out);
    // 40 MiB: 32 KiB pieces would give 1280 pieces, 16 KiB 2560 (> 2000).
    assert_eq!(v["piece_length"], 32768);
    assert_eq!(v["piece_count"], 1280);
    assert_eq!(v["name"], "other");
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "f.bin", &data(1, 1000));
    let out = write(dir.path(), "f.torrent", b"precious");
    let args = [
        "create",
        file.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ];
    let res = run(&args);
    assert_eq!(res.status.code(), Some(1));
    let stderr = String::from_utf8(res.stderr).unwrap();
    assert!(
        stderr.contains("already exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");

    let mut forced = args.to_vec();
    forced.push("--force");
    run_ok(&forced);
    assert_eq!(info_json(&out)["name"], "f.bin");
    // No temporary file left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.torrent");
    let out_s = out.to_str().unwrap();
    let check = |args: &[&str], needle: &str| {
        let res = run(args);
        assert_eq!(res.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8(res.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("unchoke: ") && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
        assert!(!out.exists(), "no output on failure");
    };
    let missing = dir.path().join("missing");
    check(
        &["create", missing.to_str().unwrap(), "-o", out_s],
        "no such file",
    );

    let empty_dir = dir.path().join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    check(
        &["create", empty_dir.to_str().unwrap(), "-o", out_s],
        "holds no files",
    );

    let zeros = dir.path().join("zeros");
    write(&zeros, "a", &[]);
    write(&zeros, "b/c", &[]);
    check(&["create", zeros.to_str().unwrap(), "-o", out_s], "empty");

    let f = write(dir.path(), "f", &data(1, 10));
    // Usage errors (clap, and the values it checks for us) exit 2.
    for (args, needle) in [
        (
            &[
                "create",
                f.to_str().unwrap(),
                "-o",
                out_s,
                "--piece-length",
                "1000",
            ][..],
            "power of two",
        ),
        (
            &["create", f.to_str().unwrap(), "-o", out_s, "-n", "a/b"][..],
            "name \"a/b\"",
        ),
    ] {
        let res = run(args);
        assert_eq!(res.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(res.stderr).unwrap();
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!out.exists(), "no output on failure");
    }
    assert_eq!(run(&["create", f.to_str().unwrap()]).status.code(), Some(2));
    assert_eq!(
        run(&[
            "create",
            f.to_str().unwrap(),
            "-o",
            out_s,
            "--piece-length",
            "lots"
        ])
        .status
        .code(),
        Some(2)
    );
}

#[cfg(unix)]
#[test]
fn unreadable_file_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    write(&root, "ok", &data(1, 100));
    let locked = write(&root, "locked", &data(2, 100));
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&locked).is_ok() {
        // Running as root: permissions do not stop reads, nothing to test.
        return;
    }
    let out = dir.path().join("t.torrent");
    let res = run(&[
        "create",
        root.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(res.status.code(), Some(1));
    let stderr = String::from_utf8(res.stderr).unwrap();
    assert!(
        stderr.contains("locked") && stderr.contains("Permission denied"),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[cfg(unix)]
#[test]
fn symlinks_inside_the_tree_are_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    write(&root, "real", &data(1, 100));
    std::os::unix::fs::symlink("real", root.join("link")).unwrap();
    let out = dir.path().join("t.torrent");
    let res = run(&[
        "create",
        root.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(res.status.success());
    let stderr = String::from_utf8(res.stderr).unwrap();
    assert!(
        stderr.contains("skipping symbolic link") && stderr.contains("link"),
        "{stderr}"
    );
    let v = info_json(&out);
    assert_eq!(v["files"].as_array().unwrap().len(), 1);
    assert_eq!(v["files"][0]["path"], "t/real");
}

#[test]
fn output_inside_the_tree_is_not_hashed_into_itself() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    write(&root, "a", &data(1, 100));
    let out = root.join("t.torrent");
    let args = [
        "create",
        root.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--no-date",
    ];
    run_ok(&args);
    let first = std::fs::read(&out).unwrap();
    let mut forced = args.to_vec();
    forced.push("--force");
    run_ok(&forced);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        first,
        "the old torrent was not included"
    );
}

#[test]
fn plain_progress_when_not_a_terminal() {
    // The tests' stderr is a pipe: plain lines, ending at 100%; --quiet silences them.
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "f", &data(1, 300_000));
    let out = dir.path().join("f.torrent");
    let res = run(&[
        "create",
        file.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(res.status.success());
    let stderr = String::from_utf8(res.stderr).unwrap();
    assert!(
        stderr.starts_with("hashing 292.97 KiB in 19 pieces of 16.00 KiB"),
        "{stderr}"
    );
    assert!(stderr.trim_end().ends_with("hashing: 100%"), "{stderr}");
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "no terminal codes"
    );
    let quiet = run(&[
        "create",
        file.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "-f",
    ]);
    assert!(quiet.status.success() && quiet.stderr.is_empty());
}
