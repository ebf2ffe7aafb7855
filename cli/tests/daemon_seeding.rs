//! Seeding limits and the download queue in `unchoke daemon`, driven by the real
//! `transmission-remote` and raw RPC calls on loopback: a seed given a ratio limit
//! (`-t N -sr`) stops itself once an `unchoke download` took that much from it, shows as
//! finished, stays stopped with its counters after a `kill -9` and restart, pauses again
//! at once when started past its limit, and seeds on once the limit is lifted (`-SR`);
//! a download queue of one holds the others back (status 3), starts the first in queue
//! order when a slot frees (`queue-move-top` changes that order), and keeps the order across
//! a `kill -9`.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::daemon::{Daemon, album_torrent, start_tracker};
use common::runtime::Runtime;
use common::{assert_same_file, completes, unchoke_download};
use serde_json::{Value, json};

/// How long a step may take.
const WAIT: Duration = Duration::from_secs(60);

/// Torrent 1's fields `fields`.
fn torrent(daemon: &Daemon, fields: &[&str]) -> Value {
    daemon.call(json!({"method": "torrent-get", "arguments": {"ids": [1], "fields": fields}}))
        ["torrents"][0]
        .clone()
}

/// Polls torrent 1 until `ok` accepts it (bounded by [`WAIT`]).
fn until(daemon: &Daemon, what: &str, fields: &[&str], ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let t = torrent(daemon, fields);
        if ok(&t) {
            return t;
        }
        assert!(Instant::now() < deadline, "never {what}: {t}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_seed_stops_at_its_ratio_and_stays_stopped_after_a_restart() {
    common::require_tool("transmission-remote", &["--version"], "transmission-cli");
    let rt = Runtime::Mio;
    let dir = tempfile::tempdir().expect("tempdir");
    let (_tracker, announce) = start_tracker(rt, &rt.ip(110));
    // The daemon's download directory holds the data: it seeds what it checks there.
    let (content, torrent_file, _) = album_torrent(dir.path(), &announce, 91);
    let session = dir.path().join("session");
    let daemon = Daemon::start(rt, &rt.ip(111), &session, &content);
    daemon.call(json!({"method": "torrent-add", "arguments": {
        "filename": torrent_file.to_str().expect("utf-8"), "paused": true}}));
    daemon.remote(&["-t", "1", "-sr", "1"]);
    let t = torrent(&daemon, &["seedRatioMode", "seedRatioLimit"]);
    assert_eq!(
        (t["seedRatioMode"].as_u64(), t["seedRatioLimit"].as_f64()),
        (Some(1), Some(1.0))
    );
    daemon.remote(&["-t", "1", "-s"]);
    until(&daemon, "seeding", &["status"], |t| t["status"] == 6);

    // One downloader takes the whole torrent from it: ratio 1 reached, it stops itself.
    let out = dir.path().join("leech");
    let mut leech = unchoke_download(rt, &torrent_file, &out, &rt.ip(112), &[]);
    completes(&mut leech);
    assert_same_file(&content.join("album/one.bin"), &out.join("album/one.bin"));
    let t = until(
        &daemon,
        "stopped at its ratio",
        &[
            "status",
            "isFinished",
            "uploadedEver",
            "totalSize",
            "uploadRatio",
        ],
        |t| t["status"] == 0 && t["isFinished"] == true,
    );
    let size = t["totalSize"].as_u64().expect("size");
    assert!(t["uploadedEver"].as_u64() >= Some(size), "{t}");

    // kill -9: it comes back stopped, finished, with what it uploaded.
    drop(daemon);
    let daemon = Daemon::start(rt, &rt.ip(111), &session, &content);
    let t = until(
        &daemon,
        "restored",
        &["status", "isFinished", "uploadedEver"],
        |t| t["status"] == 0,
    );
    assert_eq!(t["isFinished"], true, "{t}");
    assert!(t["uploadedEver"].as_u64() >= Some(size), "{t}");
    // Started past its limit: the core stops it again at once.
    daemon.remote(&["-t", "1", "-s"]);
    std::thread::sleep(Duration::from_millis(500));
    let t = torrent(&daemon, &["status", "isFinished"]);
    assert_eq!(
        (t["status"].as_u64(), &t["isFinished"]),
        (Some(0), &json!(true)),
        "{t}"
    );
    // No ratio limit for it: it seeds on.
    daemon.remote(&["-t", "1", "-SR"]);
    daemon.remote(&["-t", "1", "-s"]);
    until(
        &daemon,
        "seeding without a limit",
        &["status", "isFinished"],
        |t| t["status"] == 6 && t["isFinished"] == false,
    );
}

#[test]
fn a_download_queue_of_one_holds_the_others_back_in_queue_order() {
    let rt = Runtime::Mio;
    let dir = tempfile::tempdir().expect("tempdir");
    // A tracker nobody answers on: both torrents stay downloading, with no peer.
    let dead = format!("http://{}:9/announce", rt.ip(113));
    let (_, first, _) = album_torrent(&dir.path().join("a"), &dead, 92);
    let (_, second, _) = album_torrent(&dir.path().join("b"), &dead, 93);
    let (_, third, _) = album_torrent(&dir.path().join("c"), &dead, 94);
    let session = dir.path().join("session");
    let downloads = dir.path().join("downloads");
    let daemon = Daemon::start(rt, &rt.ip(114), &session, &downloads);
    daemon.call(json!({"method": "session-set", "arguments": {
        "download-queue-enabled": true, "download-queue-size": 1}}));
    for t in [&first, &second, &third] {
        daemon.call(json!({"method": "torrent-add",
            "arguments": {"filename": t.to_str().expect("utf-8")}}));
    }
    let statuses = |d: &Daemon| -> Vec<u64> {
        d.call(json!({"method": "torrent-get", "arguments": {"fields": ["id", "status"]}}))
            ["torrents"]
            .as_array()
            .expect("list")
            .iter()
            .map(|t| t["status"].as_u64().expect("status"))
            .collect()
    };
    assert_eq!(
        statuses(&daemon),
        vec![4, 3, 3],
        "the others wait (3: queued to download)"
    );
    // The third first in the queue: it starts next, before the second.
    daemon.call(json!({"method": "queue-move-top", "arguments": {"ids": [3]}}));
    daemon.call(json!({"method": "torrent-stop", "arguments": {"ids": [1]}}));
    assert_eq!(
        statuses(&daemon),
        vec![0, 3, 4],
        "the first in the queue starts when a slot frees"
    );
    let positions = |d: &Daemon| -> Vec<u64> {
        d.call(json!({"method": "torrent-get", "arguments": {"fields": ["id", "queuePosition"]}}))
            ["torrents"]
            .as_array()
            .expect("list")
            .iter()
            .map(|t| t["queuePosition"].as_u64().expect("position"))
            .collect()
    };
    assert_eq!(positions(&daemon), vec![1, 2, 0]);
    // kill -9: the queue order, the limit and who waits come back.
    drop(daemon);
    let daemon = Daemon::start(rt, &rt.ip(114), &session, &downloads);
    assert_eq!(
        positions(&daemon),
        vec![1, 2, 0],
        "the order survives a restart"
    );
    assert_eq!(statuses(&daemon), vec![0, 3, 4]);
    // A larger queue starts the waiting one too.
    daemon.call(json!({"method": "session-set", "arguments": {"download-queue-size": 2}}));
    assert_eq!(statuses(&daemon), vec![0, 4, 4]);
    let si = daemon.call(json!({"method": "session-get"}));
    assert_eq!(si["download-queue-enabled"], true, "{si}");
    assert_eq!(si["download-queue-size"], 2, "{si}");
}
