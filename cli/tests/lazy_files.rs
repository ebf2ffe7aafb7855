//! Lazy file creation seen from the outside: a download creates no file of the torrent
//! before data arrives, creates each file as the first block touching it is written, never
//! creates a file no data reached (an interrupted download leaves no empty tree), and ends
//! with the exact tree (sizes, bytes, zero-length files), also after a resume.
//!
//! Every test runs once per `--runtime` (`per_runtime!`), on loopback addresses of its own
//! (`Runtime::ip(n)`, one `n` per test).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::process::JsonProcess;
use common::runtime::Runtime;
use common::tracker::free_tcp_udp_port;
use common::{TRANSFER_WAIT, completes, data, run_ok, unchoke, unchoke_seed, write};

/// A multi-file tree with zero-length files (one at the very end, in a directory of its
/// own) and a 600 KB file `m/big.bin`, in `root/tree`; returns the tree's path.
fn source_tree(root: &Path) -> PathBuf {
    let tree = root.join("tree");
    write(&tree, "a.bin", &data(1, 100_000));
    write(&tree, "m/big.bin", &data(2, 600_000));
    write(&tree, "sub/b.bin", &data(3, 70_001));
    write(&tree, "sub/empty", &[]);
    write(&tree, "sub/deeper/c.bin", &data(4, 5));
    write(&tree, "zz/last/empty", &[]);
    tree
}

/// `unchoke create TREE -o OUT --piece-length 16K -q` (no tracker).
fn create(tree: &Path, out: &Path) {
    run_ok(&[
        "create",
        tree.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--piece-length",
        "16K",
    ]);
}

/// `unchoke download TORRENT -o OUT --runtime RT --listen IP:0 --json --verbose --no-dht`
/// with `--peer` for each of `peers`.
fn download(rt: Runtime, torrent: &Path, out: &Path, ip: &str, peers: &[&str]) -> JsonProcess {
    let mut cmd = unchoke();
    cmd.args(["download", "--no-lsd"])
        .arg(torrent)
        .arg("-o")
        .arg(out)
        .args(rt.args())
        .args([
            "--listen",
            &format!("{ip}:0"),
            "--json",
            "--verbose",
            "--no-dht",
        ]);
    for p in peers {
        cmd.args(["--peer", p]);
    }
    JsonProcess::spawn(&format!("download ({rt}) {ip}"), cmd)
}

/// Every path below `dir` (relative, sorted; `.unchoke` left out) with its size, `None`
/// for a directory.
fn listing(dir: &Path) -> Vec<(String, Option<u64>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Option<u64>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == ".unchoke") {
                continue;
            }
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.push((rel, None));
                walk(root, &p, out);
            } else {
                out.push((rel, Some(meta.len())));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Asserts `got` holds exactly the files and directories of `want`, with the same bytes.
fn same_tree(want: &Path, got: &Path) {
    assert_eq!(listing(got), listing(want), "the trees differ");
    for (rel, size) in listing(want) {
        if size.is_some() {
            assert!(
                std::fs::read(want.join(&rel)).unwrap() == std::fs::read(got.join(&rel)).unwrap(),
                "{rel} differs"
            );
        }
    }
}

fn no_file_before_data_and_the_exact_tree_after(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let tree = source_tree(&src);
    let torrent = dir.path().join("tree.torrent");
    create(&tree, &torrent);
    let out = dir.path().join("out");

    // The download starts before its only peer listens: its first dial is refused, and
    // it retries (5 s later).
    let seed_ip = rt.ip(2);
    let seed_addr = format!("{seed_ip}:{}", free_tcp_udp_port(&seed_ip));
    let mut dl = download(rt, &torrent, &out, &rt.ip(1), &[&seed_addr]);
    dl.wait_event("listening", TRANSFER_WAIT);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        listing(&out),
        Vec::<(String, Option<u64>)>::new(),
        "no file of the torrent before any data\n{}",
        dl.dump()
    );

    // The seed comes up where the download looks: it completes with the exact tree.
    let mut cmd = unchoke();
    cmd.args(["seed", "--no-lsd"])
        .arg(&torrent)
        .arg(&src)
        .args(rt.args())
        .args(["--listen", &seed_addr, "--json"]);
    let mut seed = JsonProcess::spawn(&format!("seed ({rt}) {seed_addr}"), cmd);
    seed.wait_event("listening", TRANSFER_WAIT);
    completes(&mut dl);
    same_tree(&tree, &out.join("tree"));

    // A zero-length file removed since is made again when a new run checks it complete.
    std::fs::remove_file(out.join("tree/zz/last/empty")).unwrap();
    std::fs::remove_dir(out.join("tree/zz/last")).unwrap();
    let mut again = download(rt, &torrent, &out, &rt.ip(1), &[]);
    let checked = again.wait_event("checked", TRANSFER_WAIT);
    assert_eq!(checked["pieces_have"], checked["piece_count"]);
    assert!(again.wait_exit(TRANSFER_WAIT).success(), "{}", again.dump());
    same_tree(&tree, &out.join("tree"));
}

fn an_interrupted_download_holds_only_files_data_reached_and_resumes(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let tree = source_tree(&src);
    let torrent = dir.path().join("tree.torrent");
    create(&tree, &torrent);

    // A partial seed whose copy of `m/big.bin` is wrong throughout: it has no piece
    // touching that file, so the download can never write a byte of it.
    let partial = dir.path().join("partial");
    let bad_tree = source_tree(&partial);
    let mut big = std::fs::read(bad_tree.join("m/big.bin")).unwrap();
    big.iter_mut().for_each(|b| *b ^= 0xff);
    std::fs::write(bad_tree.join("m/big.bin"), &big).unwrap();
    let (_partial_seed, partial_addr) =
        unchoke_seed(rt, &torrent, &partial, &rt.ip(3), &["--partial"]);

    let out = dir.path().join("out");
    let mut dl = download(rt, &torrent, &out, &rt.ip(4), &[&partial_addr]);
    dl.wait_event("peer_connected", TRANSFER_WAIT);
    // Files the partial seed can give appear.
    let deadline = Instant::now() + TRANSFER_WAIT;
    let reached = [
        "tree/a.bin",
        "tree/sub/b.bin",
        "tree/sub/deeper/c.bin",
        ".unchoke",
    ];
    while !reached.iter().all(|p| out.join(p).exists()) {
        assert!(Instant::now() < deadline, "{}", dl.dump());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    dl.signal("INT");
    assert_eq!(
        dl.wait_exit(TRANSFER_WAIT).code(),
        Some(130),
        "{}",
        dl.dump()
    );
    assert!(
        !out.join("tree/m/big.bin").exists() && !out.join("tree/m").exists(),
        "a file no data reached is not created: {:?}",
        listing(&out)
    );
    assert_eq!(
        std::fs::metadata(out.join("tree/sub/b.bin")).unwrap().len(),
        70_001,
        "a file is created at its full length"
    );

    // Resumed against a complete seed: it finishes with the exact tree.
    let (_seed, seed_addr) = unchoke_seed(rt, &torrent, &src, &rt.ip(5), &[]);
    let mut resumed = download(rt, &torrent, &out, &rt.ip(4), &[&seed_addr]);
    let checked = resumed.wait_event("checked", TRANSFER_WAIT);
    let had = checked["pieces_have"].as_u64().unwrap();
    assert!(
        had > 0 && checked["pieces_have"] != checked["piece_count"],
        "the resumed run starts from the pieces it had: {checked}"
    );
    completes(&mut resumed);
    same_tree(&tree, &out.join("tree"));
}

per_runtime!(
    no_file_before_data_and_the_exact_tree_after,
    an_interrupted_download_holds_only_files_data_reached_and_resumes,
);
