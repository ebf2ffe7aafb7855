//! `unchoke daemon` killed with `-9` while holding ten torrents in different states comes
//! back with each in its state and nothing verified lost: three complete and seeding, two
//! complete and stopped, two added stopped (never started), one magnet link whose metadata
//! no peer has, and two that were downloading from slow seeds until just before the kill
//! (after the restart they have at least the pieces they had verified).
//!
//! Real processes on loopback: an `unchoke tracker`, a second daemon seeding the first
//! seven torrents, two rate-limited `unchoke seed`s for the last two, and the daemon under
//! test, all talking Transmission's RPC over HTTP.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, post, start_tracker};
use common::runtime::Runtime;
use common::{data, info_json, run_ok, unchoke_seed, write};
use serde_json::{Value, json};

/// How long a step may take.
const WAIT: Duration = Duration::from_secs(90);

/// A JSON-RPC client for one daemon: keeps the session id, retrying once on a 409.
struct Rpc {
    addr: String,
    id: Option<String>,
}

impl Rpc {
    fn new(daemon: &Daemon) -> Rpc {
        Rpc {
            addr: daemon.rpc.clone(),
            id: None,
        }
    }

    /// `method` with `arguments`; panics unless the result is "success".
    fn call(&mut self, method: &str, arguments: Value) -> Value {
        let body = json!({ "method": method, "arguments": arguments }).to_string();
        for _ in 0..2 {
            let (status, id, text) = post(&self.addr, self.id.as_deref(), &body);
            if status == 409 {
                self.id = id;
                continue;
            }
            assert_eq!(status, 200, "{method}: {text}");
            let v: Value = serde_json::from_str(&text).expect("a JSON answer");
            assert_eq!(v["result"], "success", "{method} {arguments}: {v}");
            return v["arguments"].clone();
        }
        panic!("{method}: the session id was refused twice");
    }

    /// Every torrent's `id`, `hashString`, `status`, `percentDone`, `haveValid` (bytes of
    /// verified pieces) and `error`, by hash.
    fn torrents(&mut self) -> Vec<Value> {
        let fields = json!([
            "id",
            "hashString",
            "status",
            "percentDone",
            "haveValid",
            "error"
        ]);
        self.call("torrent-get", json!({ "fields": fields }))["torrents"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The torrent with hash `hash`.
    fn torrent(&mut self, hash: &str) -> Value {
        self.torrents()
            .into_iter()
            .find(|t| t["hashString"] == hash)
            .unwrap_or_else(|| panic!("no torrent {hash}"))
    }

    /// Polls until `ok` accepts torrent `hash` (bounded by [`WAIT`]).
    fn wait_for(&mut self, hash: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let t = self.torrent(hash);
            if ok(&t) {
                return t;
            }
            assert!(Instant::now() < deadline, "{hash} never {what}: {t}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Adds the .torrent at `path` (paused or not); returns its hash.
    fn add(&mut self, path: &Path, paused: bool) -> String {
        let added = self.call(
            "torrent-add",
            json!({ "filename": path.to_str().expect("utf-8"), "paused": paused }),
        );
        added["torrent-added"]["hashString"]
            .as_str()
            .expect("hashString")
            .to_owned()
    }
}

/// Transmission's `status` numbers.
const STOPPED: u64 = 0;
const DOWNLOADING: u64 = 4;
const SEEDING: u64 = 6;

/// A single-file torrent of `len` bytes (`content/NAME`), announcing to `tracker`.
fn make(dir: &Path, name: &str, len: usize, seed: u64, tracker: &str) -> (PathBuf, String) {
    write(&dir.join("content"), name, &data(seed, len));
    let torrent = dir.join(format!("{name}.torrent"));
    run_ok(&[
        "create",
        dir.join("content").join(name).to_str().expect("utf-8"),
        "-o",
        torrent.to_str().expect("utf-8"),
        "-t",
        tracker,
        "--piece-length",
        "16K",
    ]);
    let hash = info_json(&torrent)["info_hash"]
        .as_str()
        .expect("info_hash")
        .to_owned();
    (torrent, hash)
}

#[test]
fn a_daemon_killed_with_ten_torrents_comes_back_with_each_in_its_state() {
    let rt = Runtime::Mio;
    let dir = tempfile::tempdir().expect("tempdir");
    let (_tracker, announce) = start_tracker(rt, &rt.ip(80));

    // Seven small torrents the seeding daemon has, two large ones for slow seeds.
    let small: Vec<(PathBuf, String)> = (0..7)
        .map(|i| {
            make(
                dir.path(),
                &format!("s{i}.bin"),
                300_000 + i * 1000,
                40 + i as u64,
                &announce,
            )
        })
        .collect();
    let large: Vec<(PathBuf, String)> = (0..2)
        .map(|i| {
            make(
                dir.path(),
                &format!("l{i}.bin"),
                8 << 20,
                60 + i as u64,
                &announce,
            )
        })
        .collect();
    let seeder = Daemon::start(
        rt,
        &rt.ip(81),
        &dir.path().join("seeder-session"),
        &dir.path().join("content"),
    );
    let mut s = Rpc::new(&seeder);
    for (torrent, hash) in &small {
        s.add(torrent, false);
        s.wait_for(hash, "checked complete", |t| t["percentDone"] == 1.0);
    }
    // 256 KiB/s each: the 8 MiB take half a minute, so they are mid-way at the kill.
    let slow: Vec<_> = large
        .iter()
        .enumerate()
        .map(|(i, (torrent, _))| {
            unchoke_seed(
                rt,
                torrent,
                &dir.path().join("content"),
                &rt.ip(82 + i as u8),
                &["--upload-limit", "256KiB/s"],
            )
        })
        .collect();

    let session = dir.path().join("session");
    let downloads = dir.path().join("downloads");
    let daemon = Daemon::start(rt, &rt.ip(85), &session, &downloads);
    let mut d = Rpc::new(&daemon);
    // 0-2: complete and seeding.
    for (torrent, hash) in &small[..3] {
        d.add(torrent, false);
        d.wait_for(hash, "complete", |t| t["percentDone"] == 1.0);
    }
    // 3-4: complete, then stopped.
    for (torrent, hash) in &small[3..5] {
        d.add(torrent, false);
        let t = d.wait_for(hash, "complete", |t| t["percentDone"] == 1.0);
        d.call("torrent-stop", json!({ "ids": [t["id"]] }));
        d.wait_for(hash, "stopped", |t| t["status"] == STOPPED);
    }
    // 5-6: added stopped, never started.
    for (torrent, _) in &small[5..7] {
        d.add(torrent, true);
    }
    // 7: a magnet link nobody has the metadata of.
    let lonely = "0123456789abcdef0123456789abcdef01234567";
    d.call(
        "torrent-add",
        json!({ "filename": format!("magnet:?xt=urn:btih:{lonely}&dn=lonely&tr={announce}") }),
    );
    // 8-9: downloading from the slow seeds.
    for (torrent, hash) in &large {
        d.add(torrent, false);
        d.wait_for(hash, "a quarter done", |t| {
            t["percentDone"].as_f64().unwrap_or(0.0) >= 0.25
        });
    }
    // The slow seeds go first: from here no piece can arrive, so what the daemon says it
    // has verified at the kill is what it must have after the restart (pieces verified
    // since its last resume save included: the restart hashes what may hold data).
    for (mut seed, _) in slow {
        seed.signal("TERM");
        seed.wait_exit(WAIT);
    }
    std::thread::sleep(Duration::from_secs(1));
    let before: Vec<Value> = d.torrents();
    assert_eq!(before.len(), 10, "{before:?}");
    let status = daemon.stop("KILL");
    assert!(!status.success(), "killed");

    let daemon = Daemon::start(rt, &rt.ip(86), &session, &downloads);
    let mut d = Rpc::new(&daemon);
    let after = d.torrents();
    assert_eq!(after.len(), 10, "every torrent is back: {after:?}");
    for (hash, want) in small[..3]
        .iter()
        .map(|(_, h)| (h, SEEDING))
        .chain(small[3..7].iter().map(|(_, h)| (h, STOPPED)))
    {
        let t = d.wait_for(hash, "back in its state", |t| t["status"] == want);
        let was = before
            .iter()
            .find(|b| b["hashString"] == *hash)
            .expect("was there");
        assert_eq!(t["percentDone"], was["percentDone"], "{t} was {was}");
    }
    let magnet = d.torrent(lonely);
    assert_eq!(magnet["status"], DOWNLOADING, "{magnet}");
    assert_eq!(magnet["percentDone"], 0.0, "{magnet}");
    for (_, hash) in &large {
        let was = before
            .iter()
            .find(|b| b["hashString"] == *hash)
            .expect("was there")["haveValid"]
            .as_u64()
            .unwrap_or(0);
        assert!(was > 0, "{hash} had verified pieces at the kill");
        // Nothing verified lost: once the restart's check is done (no peer can give it
        // anything now) it has at least what it had.
        let t = d.wait_for(hash, "checked again", |t| t["status"] == DOWNLOADING);
        assert!(
            t["haveValid"].as_u64().unwrap_or(0) >= was,
            "{t}, had {was}"
        );
        assert!(t["percentDone"].as_f64().unwrap_or(1.0) < 1.0, "{t}");
    }
    let _ = daemon.stop("TERM");
}
