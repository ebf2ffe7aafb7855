//! Choosing what to download in `unchoke daemon`, driven by the real `transmission-remote`
//! (Debian `transmission-cli` 3.00) on loopback: a file marked unwanted (`-G`) is not
//! downloaded while the others complete and the torrent counts as done; wanting it again
//! (`-g`) fetches it; priorities (`-ph`/`-pl`), labels (`-L`) and a per-torrent limit
//! (`-t N -d`) are kept, shown, and still there after a `kill -9` and restart; the
//! peers of a torrent (`-ip`) are listed while it downloads.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::daemon::{Daemon, row, start_tracker};
use common::runtime::Runtime;
use common::{assert_same_file, data, info_json, run_ok, unchoke_seed, write};
use serde_json::json;

/// How long a step may take.
const WAIT: Duration = Duration::from_secs(60);

/// Three files whose middle one spans whole pieces (256 KiB pieces): the first and last
/// are wanted, the middle one not.
const SIZES: [usize; 3] = [1_500_000, 2_000_000, 1_000_000];
const NAMES: [&str; 3] = ["a.bin", "b.bin", "c.bin"];

fn files_can_be_skipped_prioritised_and_labelled(rt: Runtime) {
    common::require_tool("transmission-remote", &["--version"], "transmission-cli");
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_tracker, announce) = start_tracker(rt, &rt.ip(100));
    let content = dir.path().join("content");
    for (i, (name, size)) in NAMES.iter().zip(SIZES).enumerate() {
        write(&content, &format!("set/{name}"), &data(40 + i as u64, size));
    }
    let torrent = dir.path().join("set.torrent");
    run_ok(&[
        "create",
        content.join("set").to_str().expect("utf-8"),
        "-o",
        torrent.to_str().expect("utf-8"),
        "-t",
        &announce,
        "--piece-length",
        "262144",
    ]);
    assert_eq!(info_json(&torrent)["piece_length"], 262_144);
    // 1 MiB/s: the wanted 2.5 MB take over two seconds, time to see the seed as a peer.
    let (_seed, _) = unchoke_seed(
        rt,
        &torrent,
        &content,
        &rt.ip(101),
        &["--upload-limit", "1MiB/s"],
    );
    let session = dir.path().join("session");
    let downloads = dir.path().join("downloads");
    let daemon = Daemon::start(rt, &rt.ip(102), &session, &downloads);

    // Added stopped, so nothing is fetched before the choice is made.
    let added = daemon.call(json!({"method": "torrent-add", "arguments": {
        "filename": torrent.to_str().expect("utf-8"), "paused": true}}));
    assert_eq!(added["torrent-added"]["id"], 1, "{added}");
    daemon.remote(&["-t", "1", "-G", "1"]);
    daemon.remote(&["-t", "1", "-ph", "2", "-pl", "0"]);
    daemon.remote(&["-t", "1", "-L", "tv,hd"]);
    daemon.remote(&["-t", "1", "-d", "700"]);
    let files = daemon.remote(&["-t", "1", "-f"]);
    let line = |name: &str| {
        files
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} not in\n{files}"))
            .to_owned()
    };
    assert!(line("b.bin").contains(" No "), "{files}");
    assert!(
        line("a.bin").contains("Low") && line("a.bin").contains(" Yes "),
        "{files}"
    );
    assert!(line("c.bin").contains("High"), "{files}");
    let info = daemon.remote(&["-t", "1", "-i"]);
    assert!(info.contains("Download Limit: 700 kB/s"), "{info}");
    // The limit off again: the core's per-torrent limit goes with it.
    daemon.remote(&["-t", "1", "-D"]);
    let info = daemon.remote(&["-t", "1", "-i"]);
    assert!(info.contains("Download Limit: Unlimited"), "{info}");

    daemon.remote(&["-t", "1", "-s"]);
    // The seed shows up among the torrent's peers while the download runs.
    let deadline = Instant::now() + WAIT;
    loop {
        let peers = daemon.remote(&["-t", "1", "-ip"]);
        if peers.contains(&rt.ip(101)) {
            assert!(peers.contains("unchoke"), "client named: {peers}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the seed was never listed:\n{peers}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Done means the wanted files: 100 % with b.bin left out.
    daemon.list_until("done with the wanted files", |l| {
        row(l, 1).is_some_and(|r| r.contains("100%"))
    });
    let got = downloads.join("set");
    assert_same_file(&content.join("set/a.bin"), &got.join("a.bin"));
    assert_same_file(&content.join("set/c.bin"), &got.join("c.bin"));
    let b = std::fs::read(got.join("b.bin")).unwrap_or_default();
    assert_ne!(
        b,
        data(41, SIZES[1]),
        "b.bin was downloaded although unwanted"
    );
    let t = &daemon.call(json!({"method": "torrent-get", "arguments": {"ids": [1],
        "fields": ["sizeWhenDone", "totalSize", "leftUntilDone", "fileStats", "labels",
                   "priorities", "wanted"]}}))["torrents"][0];
    assert_eq!(t["leftUntilDone"], 0, "{t}");
    assert!(t["sizeWhenDone"].as_u64() < t["totalSize"].as_u64(), "{t}");
    assert_eq!(t["labels"], json!(["tv", "hd"]));
    assert_eq!(t["priorities"], json!([-1, 0, 1]));
    assert_eq!(t["wanted"], json!([1, 0, 1]));
    // Exact per-file progress: the wanted files whole, the unwanted one not.
    assert_eq!(t["fileStats"][0]["bytesCompleted"], SIZES[0]);
    assert_eq!(t["fileStats"][2]["bytesCompleted"], SIZES[2]);
    assert!(
        t["fileStats"][1]["bytesCompleted"].as_u64() < Some(SIZES[1] as u64),
        "{t}"
    );

    // Wanted again: it is fetched and the torrent completes.
    daemon.remote(&["-t", "1", "-g", "1"]);
    let deadline = Instant::now() + WAIT;
    while std::fs::read(got.join("b.bin")).unwrap_or_default() != data(41, SIZES[1]) {
        assert!(Instant::now() < deadline, "b.bin never completed");
        std::thread::sleep(Duration::from_millis(200));
    }
    daemon.list_until("complete", |l| {
        row(l, 1).is_some_and(|r| r.contains("100%"))
    });

    // Settings survive a kill -9.
    daemon.remote(&["-t", "1", "-G", "0"]);
    drop(daemon); // SIGKILL
    let daemon = Daemon::start(rt, &rt.ip(102), &session, &downloads);
    let t = &daemon.call(json!({"method": "torrent-get", "arguments": {"ids": [1],
        "fields": ["labels", "priorities", "wanted", "percentDone"]}}))["torrents"][0];
    assert_eq!(t["labels"], json!(["tv", "hd"]), "{t}");
    assert_eq!(t["priorities"], json!([-1, 0, 1]), "{t}");
    assert_eq!(t["wanted"], json!([0, 1, 1]), "{t}");
    daemon.list_until("complete after the restart", |l| {
        row(l, 1).is_some_and(|r| r.contains("100%"))
    });
    eprintln!("daemon files suite ({rt}) took {:?}", started.elapsed());
}

per_runtime!(files_can_be_skipped_prioritised_and_labelled);
