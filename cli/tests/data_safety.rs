//! Data safety of `seed` and `download`, run on the real binary once per runtime: a seed
//! pointed at the wrong directory changes and creates nothing, a download never cuts a
//! longer file without `--force` nor writes through a planted symlink, and a restart hashes
//! only the pieces that may hold data.

#[macro_use]
mod common;

use std::path::Path;
use std::process::Command;

use common::process::JsonProcess;
use common::runtime::Runtime;
use common::{TRANSFER_WAIT, completes, data, run, run_ok, unchoke, unchoke_seed, write};

/// The torrent's payload size (the example).
const SIZE: usize = 3_000_000;

/// `sha256sum FILE`.
fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_owned()
}

/// Every path under `root`, sorted (relative).
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.push(
                p.strip_prefix(root)
                    .expect("below root")
                    .display()
                    .to_string(),
            );
            if e.file_type().expect("file type").is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A torrent of a `SIZE`-byte `payload.bin` (in `root/src`), pieces of `piece`; returns
/// the torrent's path and the payload.
fn torrent(root: &Path, piece: &str) -> (std::path::PathBuf, Vec<u8>) {
    let payload = data(15, SIZE);
    let file = write(&root.join("src"), "payload.bin", &payload);
    let t = root.join("t.torrent");
    run_ok(&[
        "create",
        file.to_str().expect("utf-8 path"),
        "-o",
        t.to_str().expect("utf-8 path"),
        "-q",
        "--piece-length",
        piece,
    ]);
    (t, payload)
}

/// Runs `unchoke seed TORRENT DIR` and asserts it refused: exit status 1, `dir`'s tree
/// and `file` (if given) unchanged, stderr naming `names` and what DATA_DIR must hold.
fn assert_seed_refused(rt: Runtime, t: &Path, dir: &Path, names: &str) -> String {
    let before_tree = tree(dir);
    let data_file = dir.join("payload.bin");
    let before = data_file.exists().then(|| sha256(&data_file));
    let out = run(&[
        "seed",
        "--no-lsd",
        t.to_str().expect("utf-8 path"),
        dir.to_str().expect("utf-8 path"),
        rt.args()[0],
        rt.args()[1],
        "--listen",
        "127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(names), "{stderr}");
    assert!(
        stderr.contains("DATA_DIR/payload.bin, 3,000,000 bytes"),
        "{stderr}"
    );
    assert_eq!(tree(dir), before_tree, "nothing created (no .unchoke/)");
    if let Some(before) = before {
        assert_eq!(sha256(&data_file), before, "the file is byte-identical");
    }
    stderr
}

fn seed_on_a_longer_different_file_changes_nothing(rt: Runtime) {
    let root = tempfile::tempdir().expect("tempdir");
    let (t, _) = torrent(root.path(), "256K");
    let dir = root.path().join("d");
    write(&dir, "payload.bin", &data(99, 4_000_000));
    let stderr = assert_seed_refused(
        rt,
        &t,
        &dir,
        "payload.bin is 4,000,000 bytes; the torrent says 3,000,000",
    );
    assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
}

fn seed_on_a_shorter_file_changes_nothing(rt: Runtime) {
    let root = tempfile::tempdir().expect("tempdir");
    let (t, payload) = torrent(root.path(), "256K");
    let dir = root.path().join("d");
    write(&dir, "payload.bin", &payload[..1_000_000]);
    assert_seed_refused(
        rt,
        &t,
        &dir,
        "payload.bin is 1,000,000 bytes; the torrent says 3,000,000",
    );
}

fn seed_on_a_missing_directory_creates_nothing(rt: Runtime) {
    let root = tempfile::tempdir().expect("tempdir");
    let (t, _) = torrent(root.path(), "256K");
    let dir = root.path().join("nowhere");
    assert_seed_refused(rt, &t, &dir, "nowhere does not exist");
    assert!(!dir.exists(), "the directory was not created");
}

fn seed_on_data_that_fails_its_hash_writes_no_resume(rt: Runtime) {
    let root = tempfile::tempdir().expect("tempdir");
    let (t, mut payload) = torrent(root.path(), "256K");
    // Right size, one byte wrong: refused after hashing, still nothing written.
    payload[1000] ^= 0xff;
    let dir = root.path().join("d");
    write(&dir, "payload.bin", &payload);
    let before = sha256(&dir.join("payload.bin"));
    let out = run(&[
        "seed",
        "--no-lsd",
        t.to_str().expect("utf-8 path"),
        dir.to_str().expect("utf-8 path"),
        rt.args()[0],
        rt.args()[1],
        "--listen",
        "127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("incomplete"), "{stderr}");
    assert_eq!(tree(&dir), vec!["payload.bin"], "no .unchoke/");
    assert_eq!(sha256(&dir.join("payload.bin")), before);
}

/// `unchoke download TORRENT -o DIR --peer PEER`, run to its end (a refusal comes before
/// any peer is dialled).
fn download(rt: Runtime, t: &Path, dir: &Path, peer: &str) -> std::process::Output {
    run(&[
        "download",
        "--no-lsd",
        t.to_str().expect("utf-8 path"),
        "-o",
        dir.to_str().expect("utf-8 path"),
        rt.args()[0],
        rt.args()[1],
        "--listen",
        "127.0.0.1:0",
        "--peer",
        peer,
    ])
}

fn download_refuses_a_longer_file_without_force(rt: Runtime) {
    let root = tempfile::tempdir().expect("tempdir");
    let (t, payload) = torrent(root.path(), "256K");
    let dir = root.path().join("d");
    let longer = data(98, 4_000_000);
    write(&dir, "payload.bin", &longer);
    let before = sha256(&dir.join("payload.bin"));
    let (mut seed, addr) = unchoke_seed(rt, &t, &root.path().join("src"), &rt.ip(1), &[]);
    let out = download(rt, &t, &dir, &addr);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("payload.bin is 4,000,000 bytes; the torrent says 3,000,000"),
        "{stderr}"
    );
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(sha256(&dir.join("payload.bin")), before, "untouched");
    assert_eq!(tree(&dir), vec!["payload.bin"]);

    // With --force the file is cut to the torrent's size and completed.
    let mut dl = common::unchoke_download(rt, &t, &dir, &rt.ip(2), &["--peer", &addr, "--force"]);
    completes(&mut dl);
    assert!(
        std::fs::read(dir.join("payload.bin")).expect("read payload") == payload,
        "the download completed the file"
    );
    seed.signal("INT");
    seed.wait_exit(TRANSFER_WAIT);
}

#[cfg(unix)]
fn download_does_not_write_through_a_planted_symlink(rt: Runtime) {
    let root = tempfile::tempdir().expect("tempdir");
    let (t, _) = torrent(root.path(), "256K");
    let outside = write(root.path(), "outside/precious", b"the user's own bytes");
    let dir = root.path().join("d");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::os::unix::fs::symlink(&outside, dir.join("payload.bin")).expect("symlink");
    let out = download(rt, &t, &dir, "127.0.0.1:9");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("payload.bin is a symbolic link; unchoke does not write through links"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&outside).expect("read outside file"),
        b"the user's own bytes"
    );
    assert_eq!(tree(&dir), vec!["payload.bin"], "nothing else created");
}

/// `seed --partial --json` on `dir`, until its `checked` line; then SIGINT (the exit code of
/// an interrupted run is not this test's business). Returns the `checked` line.
fn checked_then_interrupted(rt: Runtime, t: &Path, dir: &Path) -> serde_json::Value {
    let mut cmd = unchoke();
    cmd.args(["seed", "--no-lsd"])
        .arg(t)
        .arg(dir)
        .args(rt.args())
        .args(["--listen", "127.0.0.1:0", "--json", "--partial"]);
    let mut p = JsonProcess::spawn(&format!("unchoke seed --partial ({rt})"), cmd);
    let checked = p.wait_event("checked", TRANSFER_WAIT);
    p.wait_event("listening", TRANSFER_WAIT);
    p.signal("INT");
    p.wait_exit(TRANSFER_WAIT);
    checked
}

fn a_restart_hashes_only_the_pieces_written(rt: Runtime) {
    let root = tempfile::tempdir().expect("tempdir");
    // 3,000,000 bytes in pieces of 128 KiB: 23 pieces.
    let (t, payload) = torrent(root.path(), "128K");
    let piece = 128 * 1024;
    let pieces = SIZE.div_ceil(piece);
    // Half done: pieces 0..11 verified, 11 and 12 partly written (garbage), the rest never
    // written (zeros: a sparse file as a killed download leaves it).
    let mut on_disk = vec![0u8; SIZE];
    on_disk[..11 * piece].copy_from_slice(&payload[..11 * piece]);
    on_disk[11 * piece..11 * piece + 5000].fill(0xab);
    on_disk[12 * piece + 100..12 * piece + 200].fill(0xcd);
    let dir = root.path().join("d");
    write(&dir, "payload.bin", &on_disk);

    let first = checked_then_interrupted(rt, &t, &dir);
    assert_eq!(first["pieces_have"], 11, "{first}");
    assert_eq!(
        first["hashed"], pieces,
        "no resume data yet: all read: {first}"
    );
    assert!(
        dir.join(".unchoke").is_dir(),
        "an accepted seed saves resume data"
    );

    let second = checked_then_interrupted(rt, &t, &dir);
    assert_eq!(second["pieces_have"], 11, "{second}");
    assert_eq!(second["trusted"], 11, "{second}");
    assert_eq!(
        second["hashed"], 2,
        "only the two partly written pieces are read: {second}"
    );
    assert_eq!(
        std::fs::read(dir.join("payload.bin")).expect("read payload"),
        on_disk
    );
}

/// `seed --partial` next to a full seed: it serves its half and never downloads into its
/// read-only data (before the core knew "upload only", the write failed and the seed
/// stopped with a storage error).
fn a_partial_seed_never_downloads(rt: Runtime) {
    let root = tempfile::tempdir().expect("tempdir");
    let (t, payload) = torrent(root.path(), "128K");
    let half = 11 * 128 * 1024;
    let mut on_disk = vec![0u8; SIZE];
    on_disk[..half].copy_from_slice(&payload[..half]);
    let partial_dir = root.path().join("partial");
    write(&partial_dir, "payload.bin", &on_disk);
    let before = sha256(&partial_dir.join("payload.bin"));
    let (mut full, full_addr) = unchoke_seed(rt, &t, &root.path().join("src"), &rt.ip(1), &[]);
    let (mut partial, partial_addr) = unchoke_seed(
        rt,
        &t,
        &partial_dir,
        &rt.ip(2),
        &["--partial", "--peer", &full_addr],
    );
    let out = root.path().join("out");
    let mut dl = common::unchoke_download(
        rt,
        &t,
        &out,
        &rt.ip(3),
        &["--peer", &partial_addr, "--peer", &full_addr],
    );
    completes(&mut dl);
    assert!(std::fs::read(out.join("payload.bin")).expect("read copy") == payload);
    partial.signal("INT");
    let status = partial.wait_exit(TRANSFER_WAIT);
    assert_eq!(status.code(), Some(130), "{}", partial.dump());
    assert!(
        !partial.dump().contains("\"error\""),
        "the partial seed failed: {}",
        partial.dump()
    );
    assert_eq!(
        sha256(&partial_dir.join("payload.bin")),
        before,
        "read-only data changed"
    );
    full.signal("INT");
    full.wait_exit(TRANSFER_WAIT);
}

per_runtime!(
    seed_on_a_longer_different_file_changes_nothing,
    seed_on_a_shorter_file_changes_nothing,
    seed_on_a_missing_directory_creates_nothing,
    seed_on_data_that_fails_its_hash_writes_no_resume,
    download_refuses_a_longer_file_without_force,
    download_does_not_write_through_a_planted_symlink,
    a_restart_hashes_only_the_pieces_written,
    a_partial_seed_never_downloads,
);
