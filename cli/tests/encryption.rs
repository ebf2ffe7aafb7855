//! Protocol encryption (MSE/PE) end to end, against real clients over 127.0.x.y, once per
//! `--runtime`:
//! - a libtorrent seed that refuses plaintext and allows RC4 only seeds to a default
//!   `unchoke download`, and libtorrent reports the connection RC4-encrypted;
//! - `unchoke seed` serves a libtorrent leech that refuses plaintext (it dials us: our
//!   receiver), RC4 again;
//! - Transmission with encryption required seeds to unchoke (we dial it), and gives a
//!   plaintext-only unchoke nothing (the control);
//! - `--encryption require` refuses a plaintext-only libtorrent both ways and says why;
//! - a default unchoke still downloads from a plaintext-only libtorrent (its encrypted
//!   dial is refused, the plaintext retry works).
//!
//! Addresses: `Runtime::ip(n)` (127.0.1.n for mio, 127.0.2.n for smol), one `n` per test
//! in this file. Like every interop test these fail, not skip, when a tool is missing.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::JsonProcess;
use common::runtime::Runtime;
use common::{
    PYTHON, TRANSFER_WAIT, assert_same_file, completes, create_torrent, data, free_port, helper,
    lt_peer_with_encryption, require_tool, unchoke_download, unchoke_seed, write,
};

const WAIT: Duration = Duration::from_secs(60);

/// A 16 MiB single-file torrent and its data: (data dir, torrent, file name).
fn fixture(dir: &Path, seed: u64) -> (PathBuf, PathBuf, &'static str) {
    let data_dir = dir.join("seed");
    let file = write(&data_dir, "secret.bin", &data(seed, 16 * 1024 * 1024 + 333));
    let torrent = dir.join("secret.torrent");
    create_torrent(&file, &torrent);
    (data_dir, torrent, "secret.bin")
}

/// libtorrent with these encryption settings (see `common::lt_peer_with_encryption`).
fn libtorrent(
    mode: &str,
    torrent: &Path,
    save: &Path,
    ip: &str,
    policy: &str,
    level: &str,
    args: &[&str],
) -> JsonProcess {
    lt_peer_with_encryption(mode, torrent, save, ip, (policy, level), args)
}

fn listening(p: &mut JsonProcess) -> String {
    p.wait_event("listening", WAIT)["addr"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// How libtorrent saw its connections from `ip` (lt_peer.py's "peers" event, written when
/// it stops).
fn lt_encryption_of(p: &mut JsonProcess, ip: &str) -> Vec<String> {
    let peers = p.wait_event("peers", WAIT);
    peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["ip"] == ip)
        .map(|x| x["encryption"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// libtorrent saw our connection RC4-encrypted, and none in plaintext. ("unknown": a
/// connection it counted a block on but never polled, which a fast transfer can leave.)
fn assert_rc4(seen: &[String]) {
    assert!(
        seen.iter().any(|e| e == "rc4") && seen.iter().all(|e| e == "rc4" || e == "unknown"),
        "libtorrent saw our connections as {seen:?}"
    );
}

per_runtime!(
    a_libtorrent_seed_refusing_plaintext_seeds_to_unchoke_over_rc4,
    unchoke_seeds_to_a_libtorrent_leech_refusing_plaintext,
    transmission_requiring_encryption_seeds_to_unchoke,
    require_refuses_a_plaintext_only_peer_both_ways_and_says_why,
    a_default_download_still_works_from_a_plaintext_only_peer,
);

fn a_libtorrent_seed_refusing_plaintext_seeds_to_unchoke_over_rc4(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let (src, torrent, name) = fixture(dir.path(), 1);
    let mut seed = libtorrent("seed", &torrent, &src, &rt.ip(1), "forced", "rc4", &[]);
    let addr = listening(&mut seed);
    let out = dir.path().join("out");
    let mut dl = unchoke_download(rt, &torrent, &out, &rt.ip(2), &["--peer", &addr]);
    // Transmission refuses plaintext in this mode: the download is the proof.
    completes(&mut dl);
    assert_same_file(&src.join(name), &out.join(name));
    seed.signal("TERM");
    let seen = lt_encryption_of(&mut seed, &rt.ip(2));
    assert_rc4(&seen);
}

fn unchoke_seeds_to_a_libtorrent_leech_refusing_plaintext(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let (src, torrent, name) = fixture(dir.path(), 2);
    let (mut us, addr) = unchoke_seed(rt, &torrent, &src, &rt.ip(3), &[]);
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut leech = libtorrent(
        "leech",
        &torrent,
        &out,
        &rt.ip(4),
        "forced",
        "rc4",
        &["--connect", &addr],
    );
    leech.wait_event("finished", TRANSFER_WAIT);
    let seen = lt_encryption_of(&mut leech, &rt.ip(3));
    assert!(leech.wait_exit(WAIT).success(), "{}", leech.dump());
    assert_same_file(&src.join(name), &out.join(name));
    assert_rc4(&seen);
    us.signal("INT");
    us.wait_exit(WAIT);
}

fn transmission_requiring_encryption_seeds_to_unchoke(rt: Runtime) {
    require_tool("transmission-daemon", &["--version"], "transmission-daemon");
    let dir = tempfile::tempdir().unwrap();
    let (src, torrent, name) = fixture(dir.path(), 3);
    let tr_ip = rt.ip(5);
    let port = free_port(&tr_ip);
    let rpc = free_port("127.0.0.1");
    let mut cmd = Command::new(PYTHON);
    cmd.arg(helper("tr_peer.py"))
        .args(["seed"])
        .arg(&torrent)
        .arg(&src)
        .args(["--listen", &tr_ip, "--port", &port.to_string()])
        .args(["--rpc-port", &rpc.to_string(), "--timeout", "300"])
        .args(["--encryption", "required"])
        .arg("--config-dir")
        .arg(dir.path().join("tr-config"));
    let mut seed = JsonProcess::spawn(&format!("transmission seed {tr_ip} (required)"), cmd);
    let addr = listening(&mut seed);
    let out = dir.path().join("out");
    // Transmission never dials loopback peers: we dial it.
    let mut dl = unchoke_download(rt, &torrent, &out, &rt.ip(6), &["--peer", &addr]);
    completes(&mut dl);
    assert_same_file(&src.join(name), &out.join(name));
    // The control: in plaintext, the same Transmission gives us nothing, so the download
    // above was encrypted.
    let plain_out = dir.path().join("plain");
    let mut plain = unchoke_download(
        rt,
        &torrent,
        &plain_out,
        &rt.ip(6),
        &[
            "--peer",
            &addr,
            "--encryption",
            "disable",
            "--peer-retries",
            "1",
        ],
    );
    assert!(
        !plain.wait_exit(TRANSFER_WAIT).success(),
        "{}",
        plain.dump()
    );
    assert!(
        plain.seen.iter().all(|v| v["event"] != "complete"),
        "{}",
        plain.dump()
    );
    seed.signal("TERM");
    seed.wait_exit(WAIT);
}

fn require_refuses_a_plaintext_only_peer_both_ways_and_says_why(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let (src, torrent, _) = fixture(dir.path(), 4);

    // We dial a libtorrent seed that speaks plaintext only: it hangs up on our public key,
    // and with `require` there is no plaintext retry. The download gives up naming why.
    let mut seed = libtorrent("seed", &torrent, &src, &rt.ip(7), "disabled", "both", &[]);
    let addr = listening(&mut seed);
    let out = dir.path().join("out");
    let mut dl = unchoke_download(
        rt,
        &torrent,
        &out,
        &rt.ip(8),
        &[
            "--peer",
            &addr,
            "--encryption",
            "require",
            "--peer-retries",
            "2",
        ],
    );
    let status = dl.wait_exit(TRANSFER_WAIT);
    assert!(!status.success(), "{}", dl.dump());
    let stderr = dl.stderr();
    assert!(
        stderr.contains("during the encrypted handshake"),
        "the error names the encrypted handshake:\n{}",
        dl.dump()
    );

    // A plaintext-only libtorrent leech dials our seed that requires encryption: refused,
    // with the reason in our peer events, and it gets nothing.
    let (mut us, ours) = unchoke_seed(rt, &torrent, &src, &rt.ip(9), &["--encryption", "require"]);
    let leech_out = dir.path().join("leech");
    std::fs::create_dir_all(&leech_out).unwrap();
    let mut leech = libtorrent(
        "leech",
        &torrent,
        &leech_out,
        &rt.ip(10),
        "disabled",
        "both",
        &["--connect", &ours],
    );
    let refused = us.wait_event("peer_disconnected", WAIT);
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.contains("encryption is required")),
        "{refused}\n{}",
        us.dump()
    );
    leech.signal("TERM");
    leech.wait_exit(WAIT);
    assert!(
        !leech.seen.iter().any(|v| v["event"] == "finished"),
        "the plaintext leech got the file"
    );
    us.signal("INT");
    us.wait_exit(WAIT);
}

fn a_default_download_still_works_from_a_plaintext_only_peer(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let (src, torrent, name) = fixture(dir.path(), 5);
    let mut seed = libtorrent("seed", &torrent, &src, &rt.ip(11), "disabled", "both", &[]);
    let addr = listening(&mut seed);
    let out = dir.path().join("out");
    let mut dl = unchoke_download(rt, &torrent, &out, &rt.ip(12), &["--peer", &addr]);
    completes(&mut dl);
    assert_same_file(&src.join(name), &out.join(name));
    // The first (encrypted) dial was hung up on, the retry was plaintext.
    assert!(
        dl.seen.iter().any(|v| v["event"] == "peer_disconnected"
            && v["detail"]
                .as_str()
                .is_some_and(|d| d.contains("encrypted handshake"))),
        "{}",
        dl.dump()
    );
}
