//! A deliberate connection to a non-loopback address, from inside a network namespace this
//! test makes itself (only `lo` up), so it never leaves the machine however the suite is
//! run: `unchoke download` told to dial 192.0.2.1 (TEST-NET-1) is refused by the kernel at
//! once ("network unreachable"), says so, and gives up by itself — it neither hangs nor
//! reaches out. `.ci/run` runs the whole suite in such a namespace (see its header); this
//! shows what a stray dial looks like there.
//!
//! Also the public DHT's routers, tried by default: inside the namespace their names cannot
//! be resolved, which is reported router by router, and a magnet link with no other source
//! gives up by itself instead of waiting forever.
//!
//! The namespace: `unshare --net` as root, else `unshare --user --map-root-user --net`.
//! Like the interop tests, this fails (not skips) where neither works, naming why.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{create_torrent, data, seal, write};

/// `unchoke` run inside a network namespace of its own with only `lo` up (arguments to
/// follow).
fn sealed_unchoke() -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(seal())
        .args([
            "--",
            "bash",
            "-c",
            "ip link set lo up && exec \"$@\"",
            "sealed",
        ])
        .arg(env!("CARGO_BIN_EXE_unchoke"));
    cmd
}

#[test]
fn a_dial_beyond_loopback_in_a_sealed_namespace_fails_at_once_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "f.bin", &data(3, 300_000));
    let torrent = dir.path().join("f.torrent");
    create_torrent(&file, &torrent);
    let out = dir.path().join("out");
    let start = Instant::now();
    let output = sealed_unchoke()
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

/// `unchoke download MAGNET` with nothing but its defaults: the DHT runs and tries the
/// public routers; inside the sealed namespace their names do not resolve. Each router's
/// failure is named, and the download gives up by itself, naming the DHT, within its
/// bounded wait.
#[test]
fn the_default_dht_routers_are_tried_and_their_failure_is_reported_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let magnet = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567";
    let start = Instant::now();
    let output = sealed_unchoke()
        .arg("download")
        .arg(magnet)
        .arg("-o")
        .arg(&out)
        // A wildcard address (loopback would leave the public routers out on purpose),
        // inside the namespace only.
        .args(["--listen", "0.0.0.0:0"])
        // The defaults, whatever the developer's environment says.
        .env_remove("UNCHOKE_DHT_ROUTERS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for (host, port) in unchoke_core::dht::PUBLIC_ROUTERS {
        assert!(
            stderr.contains(&format!("router {host}:{port}: ")),
            "each default router's failure is named:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("DHT: could not join"),
        "the failed join is reported:\n{stderr}"
    );
    assert!(
        stderr.contains("the DHT could not be joined"),
        "the give-up names the DHT:\n{stderr}"
    );
    assert!(
        took < Duration::from_secs(60),
        "took {took:?} to give up:\n{stderr}"
    );
}
