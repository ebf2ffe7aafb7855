//! `torrent-verify`, `torrent-set-location` and `free-space` of `unchoke daemon`, driven by
//! the real `transmission-remote` (and raw RPC posts) on loopback: a verify of complete
//! data, a verify that finds a corrupted byte and downloads its piece again, a move of the
//! data into another directory (and a restart that finds it there), a move outside the
//! download directory refused, and the free space of the download directory.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, album_torrent, post, start_tracker};
use common::runtime::Runtime;
use common::{assert_same_file, unchoke_seed, write};

/// How long a step may take.
const WAIT: Duration = Duration::from_secs(60);

/// Polls `transmission-remote ARGS` until `ok` accepts its output (bounded by [`WAIT`]).
fn until(d: &Daemon, args: &[&str], what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = d.remote(args);
        if ok(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "never {what}; last:\n{out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Torrent 1's row of a `-l` listing.
fn row1(list: &str) -> Option<&str> {
    list.lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
}

/// The RPC's session id (from the 409 answer).
fn session_id(d: &Daemon) -> String {
    post(&d.rpc, None, "{}").1.expect("session id")
}

fn verify_and_move(rt: Runtime) {
    common::require_tool("transmission-remote", &["--version"], "transmission-cli");
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_tracker, announce) = start_tracker(rt, &rt.ip(70));
    let (content, torrent, _) = album_torrent(dir.path(), &announce, 41);
    let (_seed, _) = unchoke_seed(rt, &torrent, &content, &rt.ip(71), &[]);
    let session = dir.path().join("session");
    let downloads = dir.path().join("downloads");
    write(&downloads, "keep.txt", b"mine");
    let daemon = Daemon::start(rt, &rt.ip(72), &session, &downloads);
    let files = ["album/one.bin", "album/sub/two.bin"];
    let same = |root: &Path| {
        for f in files {
            assert_same_file(&content.join(f), &root.join(f));
        }
    };

    daemon.remote(&["-a", torrent.to_str().expect("utf-8")]);
    until(&daemon, &["-l"], "complete", |l| {
        row1(l).is_some_and(|r| r.contains("100%"))
    });
    same(&downloads);

    // A verify of complete data: it stays complete.
    daemon.remote(&["-t", "1", "-v"]);
    until(&daemon, &["-l"], "verified, complete", |l| {
        row1(l).is_some_and(|r| r.contains("100%") && !r.contains("Verifying"))
    });

    // One byte changed under the running daemon: the verify finds its piece bad, the
    // torrent drops below 100 % and downloads the piece again. The drop can be shorter
    // than a poll on loopback, so what proves it is the counter: payload received grows
    // by the piece fetched again.
    let id = session_id(&daemon);
    let downloaded = || -> u64 {
        let body =
            r#"{"method":"torrent-get","arguments":{"ids":[1],"fields":["downloadedEver"]}}"#;
        let (_, _, body) = post(&daemon.rpc, Some(&id), body);
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        v["arguments"]["torrents"][0]["downloadedEver"]
            .as_u64()
            .unwrap_or_else(|| panic!("no downloadedEver in {v}"))
    };
    let before = downloaded();
    let one = downloads.join("album/one.bin");
    let mut bytes = std::fs::read(&one).expect("read");
    bytes[1_000_000] ^= 0xff;
    std::fs::write(&one, &bytes).expect("corrupt");
    daemon.remote(&["-t", "1", "-v"]);
    let deadline = Instant::now() + WAIT;
    let mut seen_below = false;
    loop {
        let list = daemon.remote(&["-l"]);
        seen_below |= row1(&list).is_some_and(|r| !r.contains("100%"));
        if row1(&list).is_some_and(|r| r.contains("100%")) && downloaded() > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bad piece never came again:\n{list}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "verify after corruption: {} bytes fetched again, below 100 % seen by a poll: {seen_below}",
        downloaded() - before
    );
    same(&downloads);

    // Moved inside the download directory: the files leave the old place, arrive whole
    // in the new, and the torrent seeds from there.
    let moved = downloads.join("moved");
    daemon.remote(&["-t", "1", "--move", moved.to_str().expect("utf-8")]);
    let location = format!("Location: {}", moved.display());
    until(&daemon, &["-t", "1", "-i"], "at the new location", |i| {
        i.contains(&location) && i.contains("Percent Done: 100%")
    });
    same(&moved);
    assert!(!downloads.join("album").exists(), "album/ left behind");
    assert_eq!(
        std::fs::read(downloads.join("keep.txt")).expect("kept"),
        b"mine"
    );
    until(&daemon, &["-l"], "seeding from the new place", |l| {
        row1(l).is_some_and(|r| r.contains("100%") && (r.contains("Seeding") || r.contains("Idle")))
    });

    // Outside the download directory: refused, nothing moved.
    let outside: PathBuf = dir.path().join("outside");
    let (ok, text) = daemon.try_remote(&["-t", "1", "--move", outside.to_str().expect("utf-8")]);
    assert!(!ok && text.contains("outside"), "{text}");
    assert!(!outside.exists());
    same(&moved);

    // free-space: a number for the download directory, an error for a path outside.
    let ask = |path: &Path| -> serde_json::Value {
        let body = serde_json::json!({"method": "free-space", "arguments": {"path": path}});
        let (status, _, body) = post(&daemon.rpc, Some(&id), &body.to_string());
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("JSON")
    };
    let v = ask(&downloads);
    assert_eq!(v["result"], "success", "{v}");
    let free = v["arguments"]["size-bytes"].as_u64().expect("size-bytes");
    let total = v["arguments"]["total_size"].as_u64().expect("total_size");
    assert!(free > 0 && free <= total, "{v}");
    let v = ask(Path::new("/"));
    assert_ne!(v["result"], "success", "{v}");

    // Restarted after kill -9: still at the new location, complete.
    assert!(!daemon.stop("KILL").success());
    let daemon = Daemon::start(rt, &rt.ip(72), &session, &downloads);
    until(
        &daemon,
        &["-t", "1", "-i"],
        "restored at the new location",
        |i| i.contains(&location) && i.contains("Percent Done: 100%"),
    );
    assert!(
        !downloads.join("album").exists(),
        "nothing came back to the old place"
    );
    same(&moved);
    assert_eq!(daemon.stop("TERM").code(), Some(143));
    eprintln!("daemon move suite ({rt}) took {:?}", started.elapsed());
}

per_runtime!(verify_and_move);
