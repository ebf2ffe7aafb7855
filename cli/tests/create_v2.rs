//! `unchoke create --v2` and `--hybrid` (BEP 52) against libtorrent: on a directory (an
//! empty file, odd sizes, files of one and of many pieces, nested directories whose v1 and
//! v2 orders differ) and on a single file, libtorrent loads what we made with the
//! info-hashes `unchoke info` prints, makes the very same info-hashes itself from the same
//! content, and its check of the data reports every piece; after one byte is flipped in a
//! copy of the data, exactly one piece fails. Plus the flags' usage errors and help.
// Test helpers outside #[test] functions may unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{data, info_json, lt_make_v2, require_libtorrent, run, run_ok, write};

/// The directory: `a/b` and `a-b/c` sort differently per component (v2's `file tree`)
/// than `/`-joined (v1's mktorrent order), which libtorrent's own hashes below check.
fn make_tree(root: &Path) {
    write(root, "a.bin", &data(1, 100_001));
    write(root, "empty", &[]);
    write(root, "a/b", &data(2, 20_000));
    write(root, "a-b/c", &data(3, 16_384));
    write(root, "sub/deeper/big.bin", &data(4, 300_000));
    write(root, "sub/tiny", &data(5, 7));
}

/// Runs `python3 ARGS...`, killed if it is still running after `timeout` (libtorrent's
/// check has its own deadline; this one guards against the interpreter hanging).
fn python_bounded(args: &[&std::ffi::OsStr], timeout: Duration) -> (bool, String) {
    let mut child = Command::new(common::PYTHON)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("python3 {args:?} still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The child has exited: its pipes hit end of file at once (the report is one line, far
    // below a pipe's buffer, so it cannot have blocked on a full pipe).
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (status.success(), report)
}

/// libtorrent loads `torrent` and checks the data under `save_path` (`lt_check.py`, 60 s
/// at most): whether every piece passed, and its report line.
fn lt_check(torrent: &Path, save_path: &Path) -> (bool, String) {
    let script = common::lt_check_script();
    python_bounded(
        &[
            script.as_os_str(),
            torrent.as_os_str(),
            save_path.as_os_str(),
            "60".as_ref(),
        ],
        Duration::from_secs(90),
    )
}

/// The value of `key=` in libtorrent's report line.
fn field<'a>(report: &'a str, key: &str) -> &'a str {
    report
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {report:?}"))
}

/// Copies a file or a directory tree.
fn copy_all(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_all(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}

/// One case: `unchoke create --KIND` of `content` with `piece_length`, checked as the file
/// header says. `victim` is the file (relative to `content`, empty for the content itself)
/// whose byte at `at` is flipped in the copy.
fn case(kind: &str, content: &Path, piece_length: u32, victim: &str, at: usize) {
    let what = format!("--{kind} {} {piece_length}", content.display());
    let parent = content.parent().unwrap();
    let name = content.file_name().unwrap().to_str().unwrap();
    let torrent = parent.join(format!("{name}-{kind}-{piece_length}.torrent"));
    let stdout = run_ok(&[
        "create",
        content.to_str().unwrap(),
        "-o",
        torrent.to_str().unwrap(),
        &format!("--{kind}"),
        "--piece-length",
        &piece_length.to_string(),
        "--no-date",
        "--quiet",
    ]);

    // What unchoke reads back from its own torrent.
    let v = info_json(&torrent);
    assert_eq!(v["meta_version"], 2, "{what}: {v}");
    assert_eq!(v["hybrid"], kind == "hybrid", "{what}: {v}");
    assert_eq!(v["piece_length"], piece_length, "{what}");
    let v2 = v["info_hash_v2"].as_str().unwrap().to_owned();
    let v1 = v["info_hash"].as_str().map(str::to_owned);
    assert_eq!(v1.is_some(), kind == "hybrid", "{what}: {v}");
    assert!(stdout.contains(&format!("info-hash v2: {v2}")), "{stdout}");
    if let Some(v1) = &v1 {
        assert!(stdout.contains(&format!("info-hash: {v1}")), "{stdout}");
    }

    // libtorrent loads it with the same info-hashes and finds every piece valid.
    let (ok, report) = lt_check(&torrent, parent);
    assert!(ok, "{what}: libtorrent: {report}");
    assert_eq!(field(&report, "progress"), "1.0000", "{what}: {report}");
    assert_eq!(field(&report, "v2"), v2, "{what}: {report}");
    assert_eq!(
        field(&report, "v1"),
        v1.as_deref().unwrap_or("none"),
        "{what}"
    );
    let pieces: u64 = field(&report, "pieces").parse().unwrap();
    assert_eq!(
        field(&report, "have"),
        pieces.to_string(),
        "{what}: {report}"
    );

    // libtorrent, making a torrent of the same content with the same piece length, gets
    // the same info dictionary: the same hashes.
    let theirs = parent.join(format!("{name}-{kind}-{piece_length}-lt.torrent"));
    let (lt_v1, lt_v2) = lt_make_v2(kind, content, &theirs, piece_length);
    assert_eq!(lt_v2, v2, "{what}");
    assert_eq!(lt_v1, v1, "{what}");

    // One flipped byte in a copy of the data: libtorrent's check fails that piece only.
    let copy = parent.join(format!("flipped-{kind}-{piece_length}"));
    copy_all(content, &copy.join(name));
    let target = if victim.is_empty() {
        copy.join(name)
    } else {
        copy.join(name).join(victim)
    };
    let mut bytes = std::fs::read(&target).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(&target, bytes).unwrap();
    let (ok, report) = lt_check(&torrent, &copy);
    assert!(
        !ok,
        "{what}: libtorrent accepted the flipped byte: {report}"
    );
    let progress: f64 = field(&report, "progress").parse().unwrap();
    assert!(progress < 1.0, "{what}: {report}");
    assert_eq!(
        field(&report, "have"),
        (pieces - 1).to_string(),
        "{what}: {report}"
    );
}

#[test]
fn libtorrent_loads_and_verifies_v2_and_hybrid() {
    require_libtorrent();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    make_tree(&tree);
    let single: PathBuf = write(dir.path(), "single.bin", &data(9, 123_457));
    for kind in ["v2", "hybrid"] {
        // 16 KiB: a.bin and big.bin span many pieces, a-b/c exactly one, the rest less.
        // 64 KiB: a.bin spans two pieces, a/b and a-b/c less than one.
        for piece_length in [16_384, 65_536] {
            case(kind, &tree, piece_length, "sub/deeper/big.bin", 200_000);
        }
        case(kind, &single, 32_768, "", 100_000);
    }
    eprintln!("six cases checked by libtorrent in {:?}", started.elapsed());
}

#[test]
fn the_flags_are_documented_and_refused_together() {
    let help = run_ok(&["create", "--help"]);
    assert!(help.contains("--v2") && help.contains("--hybrid"), "{help}");
    assert!(help.contains("v1 stays the default"), "{help}");

    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "f.bin", &data(1, 1000));
    let out_path = dir.path().join("f.torrent");
    let (f, out) = (file.to_str().unwrap(), out_path.to_str().unwrap());
    let both = run(&["create", f, "-o", out, "--v2", "--hybrid"]);
    assert_eq!(both.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let bad = run(&["create", f, "-o", out, "--v2", "--piece-length", "48K"]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("must be a power of two"), "{stderr}");
    assert!(!out_path.exists());
}

#[test]
fn a_file_where_padding_goes_is_refused_for_a_hybrid_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("d");
    write(&root, ".pad/16383", &data(1, 1));
    write(&root, "x", &data(2, 1));
    let out_path = dir.path().join("d.torrent");
    let (r, out) = (root.to_str().unwrap(), out_path.to_str().unwrap());
    let refused = run(&["create", r, "-o", out, "--hybrid", "--quiet"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(".pad/16383") && stderr.contains("padding"),
        "{stderr}"
    );
    assert!(!out_path.exists());
    run_ok(&["create", r, "-o", out, "--v2", "--quiet"]);
    let v = info_json(&out_path);
    assert_eq!(v["meta_version"], 2);
    assert!(v["info_hash"].is_null(), "{v}");
}
