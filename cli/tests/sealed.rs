//! A deliberate connection to a non-loopback address, from inside a network namespace this
//! test makes itself (only `lo` up), so it never leaves the machine however the suite is
//! run: `unchoke download` told to dial 192.0.2.1 (TEST-NET-1) is refused by the kernel at
//! once ("network unreachable"), says so, and gives up by itself — it neither hangs nor
//! reaches out. `.ci/run` runs the whole suite in such a namespace (see its header); this
//! shows what a stray dial looks like there.
//!
//! The namespace: `unshare --net` as root, else `unshare --user --map-root-user --net`.
//! Like the interop tests, this fails (not skips) where neither works, naming why.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{create_torrent, data, write};

/// The `unshare` arguments that make a network namespace here.
fn seal() -> Vec<&'static str> {
    for args in [vec!["--net"], vec!["--user", "--map-root-user", "--net"]] {
        let ok = Command::new("unshare")
            .args(&args)
            .arg("true")
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return args;
        }
    }
    panic!(
        "cannot make a network namespace (`unshare --net` needs root, or user namespaces \
         for `unshare --user --map-root-user --net`)"
    );
}

#[test]
fn a_dial_beyond_loopback_in_a_sealed_namespace_fails_at_once_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "f.bin", &data(3, 300_000));
    let torrent = dir.path().join("f.torrent");
    create_torrent(&file, &torrent);
    let out = dir.path().join("out");
    let start = Instant::now();
    let output = Command::new("unshare")
        .args(seal())
        .args([
            "--",
            "bash",
            "-c",
            "ip link set lo up && exec \"$@\"",
            "sealed",
        ])
        .arg(env!("CARGO_BIN_EXE_unchoke"))
        .args(["download", "--no-lsd"])
        .arg(&torrent)
        .arg("-o")
        .arg(&out)
        .args(["--listen", "127.0.0.1:0", "--no-dht", "--peer-retries", "1"])
        .args(["--peer", "192.0.2.1:6881"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("192.0.2.1:6881: network unreachable"),
        "the failure names the address and the kernel's reason:\n{stderr}"
    );
    // The dial fails at once; the give-up waits its 10 s for anything else to turn up.
    assert!(
        took < Duration::from_secs(30),
        "took {took:?} to give up:\n{stderr}"
    );
}
