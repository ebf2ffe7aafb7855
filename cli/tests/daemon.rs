//! `unchoke daemon` driven by the real `transmission-remote` (Debian `transmission-cli`
//! 3.00), on loopback only: the session-id handshake, adding a .torrent file and a magnet
//! link that complete from a libtorrent seed, listing, stop and start, session speed
//! limits, `/metrics`, a `kill -9` and restart that keeps the list and each torrent's
//! state, and removal with the data.
//!
//! How the daemon meets the seed: the torrent names an `unchoke tracker` on loopback, and
//! both the seed and the daemon announce to it, the path a real torrent takes (the daemon
//! has no way to be handed a peer over the RPC, nor needs one).

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, album_torrent, post, row, start_tracker};
use common::runtime::Runtime;
use common::tracker::lt_seed;
use common::{assert_same_file, info_json, run_bounded, write};

/// How long a step may take (a transfer of a few MiB on loopback takes a second or two).
const WAIT: Duration = Duration::from_secs(60);

/// The torrent's 3.2 MB took at least 2 s: a 900 kB/s download limit was in force (with
/// no limit it takes well under a second on loopback).
fn assert_slowed(took: Duration) {
    assert!(
        took >= Duration::from_secs(2),
        "3.2 MB downloaded in {took:?}: faster than the 900 kB/s limit allows"
    );
}

fn transmission_remote_drives_the_daemon(rt: Runtime) {
    common::require_tool("transmission-remote", &["--version"], "transmission-cli");
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_tracker, announce) = start_tracker(rt, &rt.ip(60));
    let (content, torrent, hash) = album_torrent(dir.path(), &announce, 31);
    // The seed is libtorrent (python3-libtorrent), as the issue asks: the daemon meets a
    // client it was not written with.
    let (_seed, _) = lt_seed(&torrent, &content, &rt.ip(61));

    let session = dir.path().join("session");
    let downloads = dir.path().join("downloads");
    // Something of the user's in the download directory: removing a torrent keeps it.
    write(&downloads, "keep.txt", b"mine");
    let daemon = Daemon::start(rt, &rt.ip(62), &session, &downloads);

    // The CSRF handshake: no id, or a wrong one, gets 409 with the id to use.
    let (status, id, _) = post(&daemon.rpc, None, r#"{"method":"session-get"}"#);
    assert_eq!(status, 409);
    let id = id.expect("409 carries X-Transmission-Session-Id");
    assert_eq!(id.len(), 48, "{id}");
    assert_eq!(post(&daemon.rpc, Some("wrong"), "{}").0, 409);
    let (status, _, body) = post(
        &daemon.rpc,
        Some(&id),
        r#"{"method":"session-get","tag":7}"#,
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["result"], "success", "{v}");
    assert_eq!(v["tag"], 7);
    // Malformed JSON and unknown methods are answered, not crashed on.
    let (status, _, body) = post(&daemon.rpc, Some(&id), "{\"method\":");
    assert_eq!(status, 200);
    assert!(body.contains("invalid JSON"), "{body}");
    let (_, _, body) = post(&daemon.rpc, Some(&id), r#"{"method":"port-test"}"#);
    assert!(body.contains("not supported"), "{body}");

    // Session speed limits (kB/s, as transmission-remote gives them): session-set
    // reaches the core, which then holds the download below them (the transfer below).
    daemon.remote(&["-d", "900", "-u", "120"]);
    let si = daemon.remote(&["-si"]);
    assert!(si.contains("Download speed limit: 900 kB/s"), "{si}");
    assert!(si.contains("Upload speed limit: 120 kB/s"), "{si}");

    // Add the .torrent file; it completes from the seed, no faster than the limit lets
    // it: 3.2 MB at 900 kB/s is about 3.5 s.
    let adding = Instant::now();
    let added = daemon.remote(&["-a", torrent.to_str().expect("utf-8")]);
    assert!(added.contains("success"), "{added}");
    let list = daemon.list_until("complete", |l| {
        row(l, 1).is_some_and(|r| r.contains("100%"))
    });
    assert_slowed(adding.elapsed());
    assert!(row(&list, 1).is_some_and(|r| r.contains("album")), "{list}");
    for f in ["album/one.bin", "album/sub/two.bin"] {
        assert_same_file(&content.join(f), &downloads.join(f));
    }
    let info = daemon.remote(&["-t", "1", "-i"]);
    assert!(info.contains(&hash), "{info}");
    // `/metrics` for a scraper: no session id; the complete torrent seeds, its size shown.
    let (status, body) = common::tracker::http_get(&daemon.rpc, "/metrics").expect("GET /metrics");
    let metrics = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{metrics}");
    assert!(
        metrics.contains("unchoke_torrents{status=\"seeding\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "unchoke_torrent_size_bytes{{hash=\"{hash}\",name=\"album\"}} 3200001"
        )),
        "{metrics}"
    );

    // Stop and start, seen in the list.
    daemon.remote(&["-t", "1", "-S"]);
    daemon.list_until("stopped", |l| {
        row(l, 1).is_some_and(|r| r.contains("Stopped"))
    });
    daemon.remote(&["-t", "1", "-s"]);
    daemon.list_until("started", |l| {
        row(l, 1).is_some_and(|r| !r.contains("Stopped"))
    });

    // The same torrent as a magnet link is a duplicate; the list holds it once.
    let magnet = format!("magnet:?xt=urn:btih:{hash}&tr={announce}");
    daemon.remote(&["-a", &magnet]);
    assert!(row(&daemon.remote(&["-l"]), 2).is_none());

    // Stopped, then killed with -9: the restarted daemon has the list, the state and
    // the data.
    daemon.remote(&["-t", "1", "-S"]);
    assert!(!daemon.stop("KILL").success());
    let daemon = Daemon::start(rt, &rt.ip(62), &session, &downloads);
    let list = daemon.list_until("restored", |l| {
        row(l, 1).is_some_and(|r| r.contains("100%") && r.contains("Stopped"))
    });
    assert!(row(&list, 1).is_some_and(|r| r.contains("album")), "{list}");
    let si = daemon.remote(&["-si"]);
    assert!(si.contains("Download speed limit: 900 kB/s"), "{si}");
    daemon.remote(&["-t", "1", "-s"]);
    daemon.list_until("started again", |l| {
        row(l, 1).is_some_and(|r| !r.contains("Stopped"))
    });

    // Remove with the data: its files and directories go, the user's file stays.
    daemon.remote(&["-t", "1", "--remove-and-delete"]);
    daemon.list_until("removed", |l| row(l, 1).is_none());
    assert!(!downloads.join("album").exists(), "album/ still there");
    assert_eq!(
        std::fs::read(downloads.join("keep.txt")).expect("kept"),
        b"mine"
    );

    // A magnet link: the metadata comes from the seed, then the data.
    // The restarted daemon holds the saved limit from its start.
    let magnet = format!("magnet:?xt=urn:btih:{hash}&dn=album&tr={announce}");
    let adding = Instant::now();
    daemon.remote(&["-a", &magnet]);
    daemon.list_until("the magnet complete", |l| {
        row(l, 2).is_some_and(|r| r.contains("100%") && r.contains("album"))
    });
    assert_slowed(adding.elapsed());
    daemon.remote(&["-D"]);
    let si = daemon.remote(&["-si"]);
    assert!(si.contains("Download speed limit: Unlimited"), "{si}");
    assert_same_file(
        &content.join("album/sub/two.bin"),
        &downloads.join("album/sub/two.bin"),
    );
    // Its metadata is kept as a .torrent file from now on (a restart needs no peer for it).
    let kept = session.join("torrents").join(format!("{hash}.torrent"));
    let deadline = Instant::now() + WAIT;
    while !kept.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never written",
            kept.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(info_json(&kept)["info_hash"], hash.as_str());

    // Restarted once more, the former magnet is back with its data, and its files are
    // known well enough to delete.
    assert!(!daemon.stop("KILL").success());
    let daemon = Daemon::start(rt, &rt.ip(62), &session, &downloads);
    daemon.list_until("the magnet restored", |l| {
        row(l, 1).is_some_and(|r| r.contains("100%") && r.contains("album"))
    });
    daemon.remote(&["-t", &hash, "--remove-and-delete"]);
    daemon.list_until("removed", |l| row(l, 1).is_none());
    assert!(!downloads.join("album").exists(), "album/ still there");

    // SIGTERM: a clean stop with the signal's status.
    assert_eq!(daemon.stop("TERM").code(), Some(143));
    eprintln!("daemon suite ({rt}) took {:?}", started.elapsed());
}

per_runtime!(transmission_remote_drives_the_daemon);

#[test]
fn a_non_loopback_rpc_address_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_bounded(
        &[
            "daemon",
            "--rpc",
            "0.0.0.0:0",
            "--session-dir",
            "s",
            "--download-dir",
            "d",
        ],
        dir.path(),
        WAIT,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
    assert!(!dir.path().join("s").exists(), "nothing is created");
}

#[test]
fn oversized_bodies_and_strange_hosts_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start(
        Runtime::Mio,
        "127.0.0.1",
        &dir.path().join("s"),
        &dir.path().join("d"),
    );
    let (_, id, _) = post(&daemon.rpc, None, "{}");
    let id = id.expect("session id");
    // A body past the 16 MiB limit is refused (413), and the daemon lives on.
    let mut s = TcpStream::connect(&daemon.rpc).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let len = 17 << 20;
    let mut writer = s.try_clone().expect("clone");
    let head = format!(
        "POST /transmission/rpc HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nX-Transmission-Session-Id: {id}\r\nContent-Length: {len}\r\n\r\n",
        daemon.rpc
    );
    let sender = std::thread::spawn(move || {
        // The server may close before taking it all: a failed write is fine.
        let _ = writer
            .write_all(head.as_bytes())
            .and_then(|()| writer.write_all(&vec![b' '; len]));
    });
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    let _ = sender.join();
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    // A page on another name (DNS rebinding) does not reach the RPC.
    let mut s = TcpStream::connect(&daemon.rpc).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        s,
        "POST /transmission/rpc HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\nX-Transmission-Session-Id: {id}\r\nContent-Length: 2\r\n\r\n{{}}"
    )
    .expect("send");
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 421"), "{response}");
    // And it still answers afterwards.
    assert_eq!(
        post(&daemon.rpc, Some(&id), r#"{"method":"session-stats"}"#).0,
        200
    );
}
