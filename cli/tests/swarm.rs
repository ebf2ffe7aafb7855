//! `unchoke swarm`: a whole local swarm (embedded tracker, one seed, N leechers on
//! 127.0.0.1, every address learnt from the tracker) completes, verifies every copy, and
//! shows the leechers redistributing: together they upload more than the seed.

mod common;

use std::time::Duration;

use common::process::JsonProcess;
use common::runtime::Runtime;
use serde_json::Value;

/// Runs `unchoke swarm --json` with `extra` arguments and returns its summary line.
fn swarm_summary(runtime: Runtime, extra: &[&str]) -> (Value, JsonProcess) {
    let mut cmd = common::unchoke();
    cmd.args(["swarm", "--json", "--timeout", "240"])
        .args(runtime.args())
        .args(extra);
    let mut p = JsonProcess::spawn("swarm", cmd);
    let summary = p.wait_event("summary", Duration::from_secs(300));
    let status = p.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "swarm failed: {status}\n{}", p.dump());
    (summary, p)
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("summary lacks {key}: {v}"))
}

fn eight_leechers_redistribute(runtime: Runtime) {
    let size = 24 * 1024 * 1024u64;
    let (summary, p) = swarm_summary(
        runtime,
        &[
            "--leechers",
            "8",
            "--size",
            "24MiB",
            "--piece-length",
            "64K",
        ],
    );
    assert_eq!(u64_of(&summary, "leechers"), 8);
    assert_eq!(u64_of(&summary, "size"), size);
    assert_eq!(u64_of(&summary, "verified"), 8, "every copy verified");
    let seed = u64_of(&summary, "seed_uploaded");
    let peers = u64_of(&summary, "peers_uploaded");
    assert!(
        peers > seed,
        "the peers uploaded {peers} bytes, the seed {seed}: no redistribution?\n{}",
        p.dump()
    );
    // Every copy came from somewhere: uploads cover the N copies delivered.
    assert!(seed + peers >= 8 * size, "{seed} + {peers} < 8 × {size}");
    assert!(seed > 0, "the seed never uploaded");
    let per: &Vec<Value> = summary["per_leecher"].as_array().expect("per_leecher");
    assert_eq!(per.len(), 8);
    assert!(
        per.iter().all(|l| l["seconds"].as_f64().is_some()),
        "a leecher has no completion time: {summary}"
    );
    // Both tracker fronts were used (each client's tier holds the HTTP and the UDP URL).
    assert!(
        u64_of(&summary, "tracker_http_requests") + u64_of(&summary, "tracker_udp_packets") >= 9
    );
    assert_eq!(
        u64_of(&summary, "tracker_peers_left"),
        0,
        "every client told the tracker `stopped` when it shut down"
    );
    let setup = p.last("setup").expect("setup event");
    let trackers = setup["trackers"].as_array().expect("trackers");
    assert!(trackers.iter().any(|t| {
        t.as_str()
            .is_some_and(|t| t.starts_with("http://127.0.0.1:"))
    }));
    assert!(trackers.iter().any(|t| {
        t.as_str()
            .is_some_and(|t| t.starts_with("udp://127.0.0.1:"))
    }));
}

#[test]
fn eight_leechers_redistribute_on_mio() {
    eight_leechers_redistribute(Runtime::Mio);
}

#[test]
fn eight_leechers_redistribute_on_smol() {
    eight_leechers_redistribute(Runtime::Smol);
}

#[test]
fn kept_directory_holds_every_copy_and_the_torrent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (summary, _) = swarm_summary(
        Runtime::Mio,
        &[
            "--leechers",
            "2",
            "--size",
            "1MiB",
            "--dir",
            dir.path().to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(u64_of(&summary, "verified"), 2);
    let original = std::fs::read(dir.path().join("seed/swarm-payload.bin")).expect("payload");
    assert_eq!(original.len(), 1 << 20);
    for l in ["leecher-01", "leecher-02"] {
        let copy = std::fs::read(dir.path().join(l).join("swarm-payload.bin")).expect("copy");
        assert!(copy == original, "{l} differs from the payload");
    }
    let info = common::info_json(&dir.path().join("swarm.torrent"));
    assert_eq!(info["total_size"].as_u64(), Some(1 << 20), "{info}");
    assert_eq!(
        info["trackers"][0].as_array().map(Vec::len),
        Some(2),
        "{info}"
    );
}

#[test]
fn refuses_a_non_empty_directory_and_bad_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("precious.txt"), b"keep me").expect("write");
    let out = common::run(&["swarm", "--dir", dir.path().to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("precious.txt")).expect("still there"),
        b"keep me"
    );
    for bad in [
        ["--size", "0"],
        ["--size", "12XB"],
        ["--piece-length", "1000"],
    ] {
        let out = common::run(&["swarm", bad[0], bad[1]]);
        assert_eq!(out.status.code(), Some(2), "{bad:?} accepted");
    }
}
