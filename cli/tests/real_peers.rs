//! `unchoke download` / `unchoke seed` against real BitTorrent clients over 127.0.0.x:
//! libtorrent-rasterbar (Debian python3-libtorrent, driven by helpers/lt_peer.py) and
//! Transmission 3 (helpers/tr_peer.py). These tests fail, not skip, when a tool is missing:
//! `.ci/run` installs them.
//!
//! Each client gets its own loopback address (Transmission keys peers by IP, and the mixed
//! swarm test tells peers apart by IP).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::JsonProcess;
use common::{require_tool, unchoke};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(90);
const MIB: usize = 1024 * 1024;

fn helper(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/helpers")
        .join(name)
}

fn require_libtorrent() {
    require_tool(
        "/usr/bin/python3",
        &["-c", "import libtorrent"],
        "python3-libtorrent",
    );
}

/// Incompressible test data, fast to make in a debug build.
fn random_file(path: &Path, len: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut rng = fastrand::Rng::with_seed(len as u64 ^ path.as_os_str().len() as u64);
    let mut buf = vec![0u8; len];
    for chunk in buf.chunks_mut(8) {
        let x = rng.u64(..).to_le_bytes();
        chunk.copy_from_slice(&x[..chunk.len()]);
    }
    std::fs::write(path, buf).unwrap();
}

/// A v1 torrent by mktorrent (piece length 2^log2).
fn mktorrent(target: &Path, out: &Path, log2_piece: u32) {
    require_tool("mktorrent", &["-h"], "mktorrent");
    let st = Command::new("mktorrent")
        .args(["-l", &log2_piece.to_string(), "-o"])
        .arg(out)
        .arg(target)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
}

fn lt_seed(torrent: &Path, dir: &Path, ip: &str, extra: &[&str]) -> (JsonProcess, String) {
    require_libtorrent();
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(helper("lt_peer.py"))
        .arg("seed")
        .arg(torrent)
        .arg(dir)
        .args(["--listen", ip, "--timeout", "300"])
        .args(extra);
    let mut p = JsonProcess::spawn(&format!("libtorrent seed {ip}"), cmd);
    let addr = p.wait_event("listening", LONG)["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    (p, addr)
}

fn lt_leech(torrent: &Path, dir: &Path, ip: &str, connect: &[&str], extra: &[&str]) -> JsonProcess {
    require_libtorrent();
    std::fs::create_dir_all(dir).unwrap();
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(helper("lt_peer.py"))
        .arg("leech")
        .arg(torrent)
        .arg(dir)
        .args(["--listen", ip, "--timeout", "300"])
        .args(extra);
    for c in connect {
        cmd.args(["--connect", c]);
    }
    JsonProcess::spawn(&format!("libtorrent leech {ip}"), cmd)
}

fn unchoke_download(
    torrent: &Path,
    out: &Path,
    ip: &str,
    peers: &[&str],
    extra: &[&str],
) -> JsonProcess {
    let mut cmd = unchoke();
    cmd.arg("download")
        .arg(torrent)
        .arg("-o")
        .arg(out)
        .args(["--listen", &format!("{ip}:0"), "--json"])
        .args(extra);
    for p in peers {
        cmd.args(["--peer", p]);
    }
    JsonProcess::spawn(&format!("unchoke download {ip}"), cmd)
}

fn unchoke_seed(torrent: &Path, dir: &Path, ip: &str) -> (JsonProcess, String) {
    let mut cmd = unchoke();
    cmd.arg("seed")
        .arg(torrent)
        .arg(dir)
        .args(["--listen", &format!("{ip}:0"), "--json"]);
    let mut p = JsonProcess::spawn(&format!("unchoke seed {ip}"), cmd);
    let addr = p.wait_event("listening", LONG)["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    (p, addr)
}

fn assert_same_file(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

/// Waits for a successful exit with every piece verified; returns the "complete" line.
fn completes(p: &mut JsonProcess) -> Value {
    let done = p.wait_event("complete", LONG);
    assert!(p.wait_exit(LONG).success(), "{}", p.dump());
    assert_eq!(done["pieces_have"], done["piece_count"]);
    done
}

/// Sum of a per-peer counter over the peers at `ip` in lt_peer.py's "peers" event.
fn from_ip(peers: &Value, ip: &str, key: &str) -> u64 {
    peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["ip"] == ip)
        .map(|p| p[key].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn libtorrent_seeds_a_64_mib_file_to_unchoke() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("seed");
    random_file(&src.join("big.bin"), 64 * MIB + 4321);
    let torrent = dir.path().join("big.torrent");
    mktorrent(&src.join("big.bin"), &torrent, 18);

    let (_seed, addr) = lt_seed(&torrent, &src, "127.0.0.1", &[]);
    let out = dir.path().join("out");
    let mut dl = unchoke_download(&torrent, &out, "127.0.0.2", &[&addr], &[]);
    completes(&mut dl);
    assert_same_file(&src.join("big.bin"), &out.join("big.bin"));
}

#[test]
fn libtorrent_seeds_a_multi_file_hybrid_torrent_with_padding_to_unchoke() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("seed");
    let tree = src.join("album");
    random_file(&tree.join("a.bin"), 40 * MIB + 17);
    random_file(&tree.join("disc2/b.bin"), 20 * MIB + 999);
    random_file(&tree.join("disc2/c.bin"), 5 * MIB + 1);
    random_file(&tree.join("notes.txt"), 3000);
    let torrent = dir.path().join("album.torrent");
    // libtorrent's own creator: a hybrid v1+v2 torrent with BEP 47 padding files.
    let st = Command::new("/usr/bin/python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/helpers/lt.py"))
        .arg("create")
        .arg(&tree)
        .arg(&torrent)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );

    let (_seed, addr) = lt_seed(&torrent, &src, "127.0.0.1", &[]);
    let out = dir.path().join("out");
    let mut dl = unchoke_download(&torrent, &out, "127.0.0.3", &[&addr], &[]);
    completes(&mut dl);
    for f in ["a.bin", "disc2/b.bin", "disc2/c.bin", "notes.txt"] {
        assert_same_file(&tree.join(f), &out.join("album").join(f));
    }
    assert!(
        !out.join("album/.pad").exists(),
        "padding files are not created"
    );
}

#[test]
fn unchoke_seeds_to_libtorrent() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("seed");
    random_file(&src.join("big.bin"), 64 * MIB + 77);
    let torrent = dir.path().join("big.torrent");
    mktorrent(&src.join("big.bin"), &torrent, 20);

    let (_seed, addr) = unchoke_seed(&torrent, &src, "127.0.0.1");
    let out = dir.path().join("out");
    let mut leech = lt_leech(&torrent, &out, "127.0.0.4", &[&addr], &[]);
    leech.wait_event("finished", LONG);
    assert!(leech.wait_exit(LONG).success(), "{}", leech.dump());
    assert_same_file(&src.join("big.bin"), &out.join("big.bin"));
}

#[test]
fn transmission_seeds_to_unchoke() {
    require_tool("transmission-daemon", &["--version"], "transmission-daemon");
    require_tool("transmission-remote", &["--version"], "transmission-cli");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("seed");
    random_file(&src.join("t.bin"), 12 * MIB + 5);
    let torrent = dir.path().join("t.torrent");
    mktorrent(&src.join("t.bin"), &torrent, 18);

    let port = free_port("127.0.0.5");
    let rpc = free_port("127.0.0.1");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(helper("tr_peer.py"))
        .arg("seed")
        .arg(&torrent)
        .arg(&src)
        .args(["--listen", "127.0.0.5", "--port", &port.to_string()])
        .args(["--rpc-port", &rpc.to_string(), "--timeout", "300"])
        .arg("--config-dir")
        .arg(dir.path().join("tr-config"));
    let mut seed = JsonProcess::spawn("transmission seed", cmd);
    let addr = seed.wait_event("listening", LONG)["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = dir.path().join("out");
    // Transmission never dials loopback peers: we dial it.
    let mut dl = unchoke_download(&torrent, &out, "127.0.0.6", &[&addr], &[]);
    completes(&mut dl);
    assert_same_file(&src.join("t.bin"), &out.join("t.bin"));
}

/// A port nobody listens on right now at `ip` (for tools that need one given).
fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn mixed_swarm_unchoke_trades_both_ways_with_a_libtorrent_leecher() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("seed");
    random_file(&src.join("m.bin"), 48 * MIB);
    let torrent = dir.path().join("m.torrent");
    mktorrent(&src.join("m.bin"), &torrent, 18);

    // A slow seed, so the two leechers have pieces to trade while it serves them.
    let (_seed, seed_addr) = lt_seed(&torrent, &src, "127.0.0.1", &["--upload-limit", "4000000"]);
    let lt_out = dir.path().join("lt");
    let unchoke_out = dir.path().join("unchoke");
    let mut ours = unchoke_download(
        &torrent,
        &unchoke_out,
        "127.0.0.7",
        &[&seed_addr],
        &["--seed"],
    );
    let our_addr = ours.wait_event("listening", LONG)["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut theirs = lt_leech(
        &torrent,
        &lt_out,
        "127.0.0.8",
        &[&seed_addr, &our_addr],
        &["--keep-seeding", "3"],
    );
    ours.wait_event("complete", LONG);
    theirs.wait_event("finished", LONG);
    let peers = theirs.wait_event("peers", LONG);
    assert!(theirs.wait_exit(LONG).success(), "{}", theirs.dump());
    assert_same_file(&src.join("m.bin"), &unchoke_out.join("m.bin"));
    assert_same_file(&src.join("m.bin"), &lt_out.join("m.bin"));
    let got_from_unchoke = from_ip(&peers, "127.0.0.7", "downloaded");
    let gave_to_unchoke = from_ip(&peers, "127.0.0.7", "uploaded");
    assert!(
        got_from_unchoke >= MIB as u64,
        "the libtorrent leecher got only {got_from_unchoke} B from unchoke: {peers}"
    );
    assert!(
        gave_to_unchoke >= MIB as u64,
        "unchoke got only {gave_to_unchoke} B from the libtorrent leecher: {peers}"
    );
    let progress = ours.last("progress").cloned().unwrap_or_default();
    assert!(
        progress["uploaded"].as_u64().unwrap_or(0) >= MIB as u64,
        "{progress}"
    );
}

#[test]
fn a_peer_sending_corrupt_data_is_banned_and_the_download_completes() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    random_file(&good.join("c.bin"), 24 * MIB);
    let torrent = dir.path().join("c.torrent");
    mktorrent(&good.join("c.bin"), &torrent, 18);
    // A copy with one byte flipped in every piece, served without checking.
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let mut bytes = std::fs::read(good.join("c.bin")).unwrap();
    for i in (1000..bytes.len()).step_by(1 << 18) {
        bytes[i] ^= 0x5a;
    }
    std::fs::write(bad.join("c.bin"), &bytes).unwrap();

    let (_liar, liar_addr) = lt_seed(&torrent, &bad, "127.0.0.9", &["--seed-mode"]);
    let (_honest, honest_addr) =
        lt_seed(&torrent, &good, "127.0.0.1", &["--upload-limit", "8000000"]);
    let out = dir.path().join("out");
    let mut dl = unchoke_download(
        &torrent,
        &out,
        "127.0.0.10",
        &[&liar_addr, &honest_addr],
        &[],
    );
    let banned = dl.wait_event("banned", LONG);
    assert!(
        banned["addr"].as_str().unwrap().starts_with("127.0.0.9:"),
        "{banned}"
    );
    let done = completes(&mut dl);
    assert!(done["hash_failures"].as_u64().unwrap() >= 1, "{done}");
    assert_same_file(&good.join("c.bin"), &out.join("c.bin"));
}

#[test]
fn a_download_killed_at_half_resumes_without_fetching_verified_pieces_again() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("seed");
    random_file(&src.join("r.bin"), 64 * MIB);
    let torrent = dir.path().join("r.torrent");
    mktorrent(&src.join("r.bin"), &torrent, 18);
    let total = 64 * MIB as u64;

    // Throttled so the download is still going when we kill it.
    let (_seed, addr) = lt_seed(&torrent, &src, "127.0.0.1", &["--upload-limit", "16000000"]);
    let out = dir.path().join("out");
    let mut first = unchoke_download(&torrent, &out, "127.0.0.11", &[&addr], &[]);
    loop {
        let p = first.wait_event("progress", LONG);
        if p["bytes_have"].as_u64().unwrap() >= total / 2 {
            break;
        }
    }
    first.signal("KILL");
    first.wait_exit(LONG);

    let mut second = unchoke_download(&torrent, &out, "127.0.0.11", &[&addr], &[]);
    let checked = second.wait_event("checked", LONG);
    let have = checked["pieces_have"].as_u64().unwrap();
    let pieces = checked["piece_count"].as_u64().unwrap();
    assert!(
        have * 2 >= pieces - 8,
        "only {have} of {pieces} pieces survived the kill"
    );
    let remainder = (pieces - have) * (256 * 1024);
    let done = completes(&mut second);
    let downloaded = done["downloaded"].as_u64().unwrap();
    // Slack: a few pieces in flight when the last progress line was printed.
    assert!(
        downloaded <= remainder + 4 * MIB as u64,
        "downloaded {downloaded} B after resuming; the unverified remainder was {remainder} B"
    );
    assert_same_file(&src.join("r.bin"), &out.join("r.bin"));
}

#[test]
fn an_unreachable_peer_is_reported_and_the_download_gives_up() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("seed");
    random_file(&src.join("u.bin"), MIB);
    let torrent = dir.path().join("u.torrent");
    mktorrent(&src.join("u.bin"), &torrent, 16);
    // Nothing listens on port 1 of 127.0.0.12.
    let mut dl = unchoke_download(
        &torrent,
        &dir.path().join("out"),
        "127.0.0.12",
        &["127.0.0.12:1"],
        &["--peer-retries", "1"],
    );
    let failed = dl.wait_event("connect_failed", LONG);
    assert_eq!(failed["addr"], "127.0.0.12:1");
    let status = dl.wait_exit(LONG);
    assert_eq!(status.code(), Some(1), "{}", dl.dump());
    assert!(dl.dump().contains("no peers left"), "{}", dl.dump());
}

#[test]
fn a_seed_vanishing_mid_download_stops_it_cleanly_and_a_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("seed");
    random_file(&src.join("v.bin"), 24 * MIB);
    let torrent = dir.path().join("v.torrent");
    mktorrent(&src.join("v.bin"), &torrent, 18);
    let out = dir.path().join("out");

    let (seed, addr) = lt_seed(&torrent, &src, "127.0.0.13", &["--upload-limit", "4000000"]);
    let mut dl = unchoke_download(
        &torrent,
        &out,
        "127.0.0.14",
        &[&addr],
        &["--peer-retries", "1"],
    );
    loop {
        let p = dl.wait_event("progress", LONG);
        if p["pieces_have"].as_u64().unwrap() >= 8 {
            break;
        }
    }
    drop(seed); // kills the libtorrent seed
    let status = dl.wait_exit(LONG);
    assert_eq!(status.code(), Some(1), "{}", dl.dump());
    assert!(dl.dump().contains("no peers left"), "{}", dl.dump());
    let kept = dl.last("stopped").unwrap()["pieces_have"].as_u64().unwrap();
    assert!(kept >= 8, "{}", dl.dump());

    // A clean stop saved resume data: the rerun trusts it and fetches only the rest.
    let (_seed, addr) = lt_seed(&torrent, &src, "127.0.0.13", &[]);
    let mut again = unchoke_download(&torrent, &out, "127.0.0.14", &[&addr], &[]);
    let checked = again.wait_event("checked", LONG);
    assert_eq!(checked["resumed"], true, "{checked}");
    assert_eq!(checked["pieces_have"].as_u64().unwrap(), kept, "{checked}");
    let done = completes(&mut again);
    let remainder = (96 - kept) * 256 * 1024;
    assert!(
        done["downloaded"].as_u64().unwrap() <= remainder + MIB as u64,
        "{done}"
    );
    assert_same_file(&src.join("v.bin"), &out.join("v.bin"));
}

/// A full disk mid-download: runs inside a private mount namespace (`unshare -m`, root)
/// on an 8 MiB tmpfs, so the disk really fills. The download stops with a clear "disk
/// full" error; after the tmpfs is grown, a rerun keeps every piece verified before.
#[test]
fn a_full_disk_stops_the_download_clearly_and_verified_pieces_survive() {
    require_tool("unshare", &["--version"], "util-linux");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("seed");
    random_file(&src.join("d.bin"), 12 * MIB);
    let torrent = dir.path().join("d.torrent");
    mktorrent(&src.join("d.bin"), &torrent, 18);
    let (_seed, addr) = lt_seed(&torrent, &src, "127.0.0.15", &["--upload-limit", "8000000"]);
    let mnt = dir.path().join("small-disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let bin = env!("CARGO_BIN_EXE_unchoke");
    let run = format!(
        "{bin} download {t} -o {m}/out --peer {addr} --listen 127.0.0.16:0 --json",
        t = torrent.display(),
        m = mnt.display()
    );
    let script = format!(
        "set -u; mount -t tmpfs -o size=8m tmpfs {m} || exit 99; \
         {run}; echo \"{{\\\"event\\\":\\\"exit\\\",\\\"code\\\":$?}}\"; \
         mount -o remount,size=64m {m} || exit 98; \
         {run}; echo \"{{\\\"event\\\":\\\"exit\\\",\\\"code\\\":$?}}\"; \
         cmp {m}/out/d.bin {src}/d.bin && echo '{{\"event\":\"same\"}}'",
        m = mnt.display(),
        src = src.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c", &script]);
    let mut p = JsonProcess::spawn("download on a small tmpfs", cmd);
    let status = p.wait_exit(LONG);
    assert!(
        status.success(),
        "the namespace script failed ({status:?}; 99/98: mount not permitted — this test \
         needs root, as .ci/run has)\n{}",
        p.dump()
    );
    let exits: Vec<i64> = p
        .seen
        .iter()
        .filter(|v| v["event"] == "exit")
        .map(|v| v["code"].as_i64().unwrap())
        .collect();
    assert_eq!(
        exits,
        [1, 0],
        "first run fails on the full disk, the rerun completes\n{}",
        p.dump()
    );
    assert!(
        p.dump().contains("disk full"),
        "the error names the cause\n{}",
        p.dump()
    );
    let stopped = p.seen.iter().find(|v| v["event"] == "stopped").unwrap();
    let kept = stopped["pieces_have"].as_u64().unwrap();
    let checked = p
        .seen
        .iter()
        .rev()
        .find(|v| v["event"] == "checked")
        .unwrap();
    assert!(
        kept > 0 && checked["pieces_have"].as_u64().unwrap() >= kept,
        "{}",
        p.dump()
    );
    assert!(
        p.last("same").is_some(),
        "the completed file matches\n{}",
        p.dump()
    );
}
