//! Local service discovery (BEP 14) between real processes, with no tracker, no DHT and no
//! `--peer`: peers find each other only through the multicast group.
//!
//! Multicast must not reach a real LAN, so everything runs inside a network namespace this
//! test makes itself (only `lo` up), as `sealed.rs` does: the outer test re-runs this test
//! binary inside `unshare` with `UNCHOKE_LSD_INNER` set, and the inner run starts every
//! peer there. Multicast on `lo` needs nothing more: with a loopback listen address the
//! LSD socket's multicast interface is `lo` (`IP_MULTICAST_IF`), which needs neither the
//! `MULTICAST` flag nor a route (checked by hand before this was written).
//!
//! Inside: an unchoke seed (mio) and an unchoke download (smol) of one torrent, and a
//! libtorrent leech of it (`enable_lsd`); then a libtorrent seed of a second torrent and an
//! unchoke download of it. Every download completes with the seed's bytes.
//!
//! The namespace: `unshare --net` as root, else `unshare --user --map-root-user --net`.
//! Like `sealed.rs`, this fails (not skips) where neither works, naming why.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::process::JsonProcess;
use common::{
    PYTHON, TRANSFER_WAIT, assert_same_file, completes, create_torrent, data, helper,
    require_libtorrent, seal, unchoke, write,
};

/// Set in the namespace's copy of this test binary.
const INNER: &str = "UNCHOKE_LSD_INNER";

#[test]
fn peers_find_each_other_by_local_service_discovery_in_a_sealed_namespace() {
    if std::env::var_os(INNER).is_some() {
        return inside();
    }
    require_libtorrent();
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("unshare")
        .args(seal())
        .args([
            "--",
            "bash",
            "-c",
            "ip link set lo up && exec \"$@\"",
            "sealed",
        ])
        .arg(exe)
        .args([
            "--exact",
            "peers_find_each_other_by_local_service_discovery_in_a_sealed_namespace",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(INNER, "1")
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the run inside the namespace failed");
}

/// `unchoke seed|download … --listen IP:0 --runtime RT --no-dht --json --verbose`, with LSD
/// (on by default) and no other source of peers.
fn unchoke_lsd(args: &[&Path], mode: &str, ip: &str, runtime: &str) -> JsonProcess {
    let mut cmd = unchoke();
    cmd.arg(mode);
    for (i, a) in args.iter().enumerate() {
        if mode == "download" && i == 1 {
            cmd.arg("-o");
        }
        cmd.arg(a);
    }
    cmd.args(["--listen", &format!("{ip}:0"), "--runtime", runtime])
        .args(["--no-dht", "--json", "--verbose"]);
    JsonProcess::spawn(&format!("unchoke {mode} {ip} ({runtime})"), cmd)
}

/// `lt_peer.py MODE TORRENT SAVE --listen IP --lsd` (no `--connect`).
fn lt_lsd(mode: &str, torrent: &Path, save: &Path, ip: &str) -> JsonProcess {
    let mut cmd = Command::new(PYTHON);
    cmd.arg(helper("lt_peer.py"))
        .arg(mode)
        .arg(torrent)
        .arg(save)
        .args(["--listen", ip, "--timeout", "120", "--lsd"]);
    JsonProcess::spawn(&format!("libtorrent {mode} {ip} (lsd)"), cmd)
}

/// The first `event` line, already read or waited for (lines are read in order, and
/// `lsd` and `listening` may come either way round).
fn event(p: &mut JsonProcess, event: &str) -> serde_json::Value {
    p.drain();
    match p.seen.iter().find(|v| v["event"] == event) {
        Some(v) => v.clone(),
        None => p.wait_event(event, TRANSFER_WAIT),
    }
}

fn lsd_on(p: &mut JsonProcess, ip: &str) {
    let on = event(p, "lsd");
    assert_eq!(on["group"], "239.192.152.143:6771", "{}", p.dump());
    assert_eq!(on["interface"], ip, "{}", p.dump());
}

fn inside() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    // unchoke → unchoke and unchoke → libtorrent, one torrent.
    let src = root.join("a");
    let file = write(&src, "a.bin", &data(41, 3_000_000));
    let torrent = root.join("a.torrent");
    create_torrent(&file, &torrent);
    let mut seed = unchoke_lsd(&[&torrent, &src], "seed", "127.0.0.2", "mio");
    lsd_on(&mut seed, "127.0.0.2");
    event(&mut seed, "listening");
    let out = root.join("out-unchoke");
    let mut down = unchoke_lsd(&[&torrent, &out], "download", "127.0.0.3", "smol");
    lsd_on(&mut down, "127.0.0.3");
    completes(&mut down);
    assert_same_file(&file, &out.join("a.bin"));
    let lt_out = root.join("out-lt");
    std::fs::create_dir_all(&lt_out).unwrap();
    let mut lt = lt_lsd("leech", &torrent, &lt_out, "127.0.0.4");
    lt.wait_event("finished", TRANSFER_WAIT);
    assert_same_file(&file, &lt_out.join("a.bin"));
    // The seed learnt both leechers from their announces.
    seed.drain();
    for ip in ["127.0.0.3", "127.0.0.4"] {
        assert!(
            seed.seen
                .iter()
                .any(|v| v["event"] == "lsd_peer" && v["addr"].as_str().unwrap().starts_with(ip)),
            "the seed never heard {ip} announce\n{}",
            seed.dump()
        );
    }
    lt.signal("TERM");
    seed.signal("INT");
    seed.wait_exit(TRANSFER_WAIT);

    // libtorrent → unchoke, another torrent.
    let src = root.join("b");
    let file = write(&src, "b.bin", &data(42, 2_000_000));
    let torrent = root.join("b.torrent");
    create_torrent(&file, &torrent);
    let mut lt_seed = lt_lsd("seed", &torrent, &src, "127.0.0.5");
    lt_seed.wait_event("listening", TRANSFER_WAIT);
    let out = root.join("out-from-lt");
    let mut down = unchoke_lsd(&[&torrent, &out], "download", "127.0.0.6", "mio");
    lsd_on(&mut down, "127.0.0.6");
    completes(&mut down);
    assert_same_file(&file, &out.join("b.bin"));
    lt_seed.signal("TERM");
}
