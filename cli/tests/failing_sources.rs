//! Downloads with nothing to download from end promptly, with one line saying why, and exit
//! 1: a `--peer` that refuses every connection (its OS reason shown once), a torrent whose
//! only trackers use schemes unchoke cannot announce to, and a torrent with no tracker and
//! no peer at all. Every test runs once per `--runtime`, on the runtime's own loopback
//! addresses (`Runtime::ip(n)`, one `n` per test in this file).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use common::process::JsonProcess;
use common::runtime::Runtime;
use common::{data, run_ok, unchoke, write};

/// Longest any of these downloads may run before the test calls it hung.
const LIMIT: Duration = Duration::from_secs(90);

/// A 100 kB torrent in `dir` (trackers: `trackers`, one tier each); returns its path.
fn torrent(dir: &Path, trackers: &[&str]) -> String {
    let file = write(dir, "src/payload.bin", &data(15, 100_000));
    let out = dir.join("t.torrent");
    let mut args = vec![
        "create".to_string(),
        file.to_str().unwrap().to_string(),
        "-o".into(),
        out.to_str().unwrap().to_string(),
        "-q".into(),
    ];
    for t in trackers {
        args.push("-t".into());
        args.push((*t).to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&args);
    out.to_str().unwrap().to_string()
}

/// Runs `unchoke download TORRENT -o DIR/out --listen IP:0 --runtime RT EXTRA…` to its end
/// (at most `LIMIT`): its exit status, how long it took, and the process (lines, stderr).
fn download(
    rt: Runtime,
    dir: &Path,
    torrent: &str,
    ip: &str,
    extra: &[&str],
) -> (ExitStatus, Duration, JsonProcess) {
    let mut cmd = unchoke();
    cmd.args(["download", "--no-lsd", torrent, "-o"])
        .arg(dir.join("out"))
        .args(["--listen", &format!("{ip}:0")])
        .args(rt.args())
        .args(extra);
    let started = Instant::now();
    let mut p = JsonProcess::spawn(&format!("download ({rt})"), cmd);
    let status = p.wait_exit(LIMIT);
    (status, started.elapsed(), p)
}

/// The last non-empty line of `text`.
fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// A `--peer` that refuses every connection: each refusal is shown once with its OS reason
/// (`connection refused`), and the download stops with exit 1 within about 30 s (3 tries
/// 5 s and 10 s apart, then the 10 s grace), naming the peer and the tries.
fn a_refusing_peer_ends_the_download_with_the_os_reason(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let torrent = torrent(dir.path(), &[]);
    // A port nobody listens on: bound on this test's own address, then closed.
    let ip = rt.ip(10);
    let port = std::net::TcpListener::bind(format!("{ip}:0"))
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let peer = format!("{ip}:{port}");
    let (status, took, p) = download(
        rt,
        dir.path(),
        &torrent,
        &rt.ip(11),
        &["--peer", &peer, "--json"],
    );
    let stderr = p.stderr();
    assert_eq!(status.code(), Some(1), "{}", p.dump());
    assert!(
        took < Duration::from_secs(40),
        "took {took:?}\n{}",
        p.dump()
    );
    let failures: Vec<_> = p
        .seen
        .iter()
        .filter(|v| v["event"] == "connect_failed")
        .collect();
    assert_eq!(failures.len(), 1, "shown once, not per retry\n{}", p.dump());
    assert_eq!(failures[0]["addr"], peer.as_str());
    assert_eq!(failures[0]["detail"], "connection refused", "{}", p.dump());
    let last = last_line(&stderr);
    assert!(
        last.contains(&format!("{peer} refused every connection (3 tries)"))
            && last.contains("no tracker, no DHT"),
        "{stderr}"
    );
}

/// A torrent whose only trackers are `wss://` and `ftp://`, with no DHT and no peer:
/// each tracker is named once, and the download stops promptly naming the schemes.
fn only_unsupported_trackers_end_the_download_naming_the_schemes(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let wss = "wss://tracker.example/announce";
    let ftp = "ftp://tracker.example/announce";
    let torrent = torrent(dir.path(), &[wss, ftp]);
    let (status, took, p) = download(rt, dir.path(), &torrent, &rt.ip(20), &[]);
    let stderr = p.stderr();
    assert_eq!(status.code(), Some(1), "{}", p.dump());
    assert!(took < Duration::from_secs(30), "took {took:?}\n{stderr}");
    for url in [wss, ftp] {
        let named = stderr
            .lines()
            .filter(|l| l.contains("warning") && l.contains(url))
            .count();
        assert_eq!(named, 1, "{url} named once\n{stderr}");
    }
    let last = last_line(&stderr);
    assert!(
        last.contains("only trackers use unsupported schemes (ftp, wss)"),
        "{stderr}"
    );
}

/// No tracker, no `--peer`, no DHT: with `-q` the download still ends with one error line
/// on stderr, which does not claim that a peer was given.
fn no_tracker_and_no_peer_says_nothing_was_given(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let torrent = torrent(dir.path(), &[]);
    let (status, took, p) = download(rt, dir.path(), &torrent, &rt.ip(30), &["-q"]);
    let stderr = p.stderr();
    assert_eq!(status.code(), Some(1), "{}", p.dump());
    assert!(took < Duration::from_secs(30), "took {took:?}\n{stderr}");
    let last = last_line(&stderr);
    assert!(
        last.contains("nothing to download from") && last.contains("no --peer was given"),
        "{stderr}"
    );
    for claim in ["unreachable", "every peer", "refused"] {
        assert!(!stderr.contains(claim), "{claim:?} in {stderr}");
    }
}

per_runtime!(
    a_refusing_peer_ends_the_download_with_the_os_reason,
    only_unsupported_trackers_end_the_download_naming_the_schemes,
    no_tracker_and_no_peer_says_nothing_was_given,
);
