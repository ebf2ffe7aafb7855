//! The RPC's methods over a fake engine.
use super::*;

/// An engine of plain data that records what it was asked.
#[derive(Default)]
struct Fake {
    torrents: Vec<TorrentView>,
    settings: SessionSettings,
    calls: Vec<String>,
    added: Vec<AddRequest>,
    /// The ids `torrents` was last asked details for.
    details: Vec<u64>,
}

fn view(id: u64, hash_char: char) -> TorrentView {
    TorrentView {
        id,
        hash: hash_char.to_string().repeat(40),
        name: format!("t{id}"),
        status: Status::Downloading,
        has_metadata: true,
        total_size: 1000,
        have: 250,
        left: 750,
        downloaded: 300,
        uploaded: 600,
        rate_down: 25,
        rate_up: 0,
        peers: 2,
        unchoked: 1,
        download_dir: "/dl".into(),
        error: None,
        added: 5,
        pieces: (4, 256),
        private: false,
        files: vec![
            FileView {
                name: format!("t{id}/a"),
                length: 600,
                have: 150,
            },
            FileView {
                name: format!("t{id}/b"),
                length: 400,
                have: 100,
            },
        ],
        trackers: vec![vec!["http://t/announce".into()]],
        settings: TorrentSettings::new(),
        finished: false,
        queue_position: id,
        peer_list: None,
    }
}

impl Engine for Fake {
    fn download_dir(&self) -> String {
        "/dl".into()
    }
    fn peer_settings(&self) -> PeerSettings {
        PeerSettings::default()
    }
    fn settings(&self) -> SessionSettings {
        self.settings.clone()
    }
    fn set_settings(&mut self, settings: SessionSettings) -> Result<(), String> {
        self.settings = settings;
        self.calls.push("limits".into());
        Ok(())
    }
    fn torrents(&mut self, details: &[u64]) -> Result<Vec<TorrentView>, String> {
        self.details = details.to_vec();
        let peer = PeerView {
            addr: "127.0.0.9:6881".parse().expect("addr"),
            client: "libtorrent 2090".into(),
            incoming: true,
            encrypted: false,
            am_choking: false,
            am_interested: true,
            peer_choking: false,
            peer_interested: true,
            progress: 0.5,
            rate_down: 100,
            rate_up: 200,
        };
        Ok(self
            .torrents
            .iter()
            .cloned()
            .map(|mut t| {
                if details.contains(&t.id) {
                    t.peer_list = Some(vec![peer.clone()]);
                }
                t
            })
            .collect())
    }
    fn set_queue_position(&mut self, id: u64, position: u64) -> Result<(), String> {
        self.calls.push(format!("queue {id} {position}"));
        // As the engine does: take it out, put it at `position` (clamped), renumber.
        let mut order: Vec<u64> = {
            let mut v: Vec<(u64, u64)> = self
                .torrents
                .iter()
                .map(|t| (t.queue_position, t.id))
                .collect();
            v.sort_unstable();
            v.into_iter()
                .map(|(_, id)| id)
                .filter(|&x| x != id)
                .collect()
        };
        order.insert((position as usize).min(order.len()), id);
        for (k, id) in order.iter().enumerate() {
            if let Some(t) = self.torrents.iter_mut().find(|t| t.id == *id) {
                t.queue_position = k as u64;
            }
        }
        Ok(())
    }
    fn set_torrent(&mut self, id: u64, settings: TorrentSettings) -> Result<(), String> {
        self.calls.push(format!("set {id}"));
        if let Some(t) = self.torrents.iter_mut().find(|t| t.id == id) {
            t.settings = settings;
        }
        Ok(())
    }
    fn add(&mut self, add: AddRequest) -> Result<Added, String> {
        self.added.push(add);
        if !self.torrents.iter().any(|t| t.id == 9) {
            self.torrents.push(view(9, 'c'));
        }
        Ok(Added {
            id: 9,
            name: "new".into(),
            hash: "c".repeat(40),
            duplicate: false,
        })
    }
    fn start(&mut self, ids: &[u64]) -> Result<(), String> {
        self.calls.push(format!("start {ids:?}"));
        Ok(())
    }
    fn stop(&mut self, ids: &[u64]) -> Result<(), String> {
        self.calls.push(format!("stop {ids:?}"));
        Ok(())
    }
    fn remove(&mut self, ids: &[u64], delete_data: bool) -> Result<(), String> {
        self.calls.push(format!("remove {ids:?} {delete_data}"));
        Ok(())
    }
    fn verify(&mut self, ids: &[u64]) -> Result<(), String> {
        self.calls.push(format!("verify {ids:?}"));
        Ok(())
    }
    fn set_location(
        &mut self,
        ids: &[u64],
        location: PathBuf,
        move_data: bool,
    ) -> Result<(), String> {
        self.calls.push(format!(
            "location {ids:?} {} {move_data}",
            location.display()
        ));
        Ok(())
    }
    fn free_space(&mut self, path: PathBuf) -> Result<(u64, u64), String> {
        if path.starts_with("/dl") {
            Ok((5, 10))
        } else {
            Err("outside".into())
        }
    }
}

fn fake() -> Fake {
    Fake {
        torrents: vec![view(1, 'a'), view(2, 'b')],
        ..Fake::default()
    }
}

fn call(engine: &mut Fake, request: Value) -> Value {
    handle(engine, request.to_string().as_bytes())
}

#[test]
fn session_get_says_what_transmission_remote_needs() {
    let r = call(&mut fake(), json!({"method": "session-get", "tag": 3}));
    assert_eq!(r["result"], "success");
    assert_eq!(r["tag"], 3);
    assert_eq!(r["arguments"]["rpc-version"], RPC_VERSION);
    assert_eq!(r["arguments"]["download-dir"], "/dl");
}

#[test]
fn ids_are_numbers_hashes_lists_or_absent() {
    let mut e = fake();
    call(
        &mut e,
        json!({"method": "torrent-stop", "arguments": {"ids": [2]}}),
    );
    call(
        &mut e,
        json!({"method": "torrent-stop", "arguments": {"ids": 1}}),
    );
    let hash = "B".repeat(40);
    call(
        &mut e,
        json!({"method": "torrent-start", "arguments": {"ids": [hash]}}),
    );
    call(&mut e, json!({"method": "torrent-start"}));
    call(
        &mut e,
        json!({"method": "torrent-start", "arguments": {"ids": [7]}}),
    );
    call(
        &mut e,
        json!({"method": "torrent-remove", "arguments": {"ids": [1], "delete-local-data": true}}),
    );
    assert_eq!(
        e.calls,
        [
            "stop [2]",
            "stop [1]",
            "start [2]",
            "start [1, 2]",
            "start []",
            "remove [1] true"
        ]
    );
    let r = call(
        &mut e,
        json!({"method": "torrent-stop", "arguments": {"ids": [{}]}}),
    );
    assert_ne!(r["result"], "success");
}

#[test]
fn torrent_get_returns_the_fields_asked_for() {
    let r = call(
        &mut fake(),
        json!({"method": "torrent-get", "arguments": {"ids": [2], "fields": ["id", "percentDone", "leftUntilDone", "status", "uploadRatio", "nonsense"]}}),
    );
    assert_eq!(r["result"], "success");
    let list = r["arguments"]["torrents"].as_array().expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0],
        json!({"id": 2, "percentDone": 0.25, "leftUntilDone": 750, "status": 4, "uploadRatio": 2.0})
    );
}

#[test]
fn torrent_get_lists_files_and_trackers_only_when_asked() {
    let r = call(
        &mut fake(),
        json!({"method": "torrent-get", "arguments": {"ids": [1], "fields": ["id", "files", "fileStats", "trackers"]}}),
    );
    let t = &r["arguments"]["torrents"][0];
    assert_eq!(
        t["files"],
        json!([
            {"name": "t1/a", "length": 600, "bytesCompleted": 150},
            {"name": "t1/b", "length": 400, "bytesCompleted": 100},
        ])
    );
    assert_eq!(t["fileStats"][1]["wanted"], true);
    assert_eq!(t["trackers"][0]["announce"], "http://t/announce");
    let r = call(
        &mut fake(),
        json!({"method": "torrent-get", "arguments": {"ids": [1], "fields": ["id", "fileCount"]}}),
    );
    assert_eq!(
        r["arguments"]["torrents"][0],
        json!({"id": 1, "fileCount": 2})
    );
    // No `fields`: everything, the lists too.
    let r = call(&mut fake(), json!({"method": "torrent-get"}));
    assert_eq!(r["arguments"]["torrents"][1]["files"][0]["name"], "t2/a");
}

#[test]
fn session_set_maps_transmission_remote_d_and_u_to_limits() {
    let mut e = fake();
    let r = call(
        &mut e,
        json!({"method": "session-set", "arguments": {"speed-limit-down": 100, "speed-limit-down-enabled": true}}),
    );
    assert_eq!(r["result"], "success");
    assert_eq!(e.settings.limits.download_bytes(), Some(100_000));
    assert_eq!(e.settings.limits.upload_bytes(), None);
    call(
        &mut e,
        json!({"method": "session-set", "arguments": {"speed-limit-down-enabled": false, "speed-limit-up": 7, "speed-limit-up-enabled": true}}),
    );
    assert_eq!(e.settings.limits.download_bytes(), None);
    assert_eq!(e.settings.limits.upload_bytes(), Some(7000));
    let r = call(&mut e, json!({"method": "session-get"}));
    assert_eq!(r["arguments"]["speed-limit-down"], 100);
    assert_eq!(r["arguments"]["speed-limit-down-enabled"], false);
    let r = call(
        &mut e,
        json!({"method": "session-set", "arguments": {"speed-limit-up": "fast"}}),
    );
    assert_ne!(r["result"], "success");
}

#[test]
fn torrent_add_takes_a_path_a_magnet_or_base64_metainfo() {
    let mut e = fake();
    let r = call(
        &mut e,
        json!({"method": "torrent-add", "arguments": {"filename": "/x/a.torrent", "paused": true}}),
    );
    assert_eq!(r["arguments"]["torrent-added"]["id"], 9);
    call(
        &mut e,
        json!({"method": "torrent-add", "arguments": {"filename": "magnet:?xt=urn:btih:x", "download-dir": "/dl/sub"}}),
    );
    call(
        &mut e,
        json!({"method": "torrent-add", "arguments": {"metainfo": "aGVs\nbG8="}}),
    );
    assert_eq!(
        e.added,
        [
            AddRequest {
                source: AddSource::Path("/x/a.torrent".into()),
                download_dir: None,
                paused: true
            },
            AddRequest {
                source: AddSource::Magnet("magnet:?xt=urn:btih:x".into()),
                download_dir: Some("/dl/sub".into()),
                paused: false
            },
            AddRequest {
                source: AddSource::Metainfo(b"hello".to_vec()),
                download_dir: None,
                paused: false
            },
        ]
    );
    for bad in [
        json!({"method": "torrent-add", "arguments": {"metainfo": "!!!"}}),
        json!({"method": "torrent-add", "arguments": {"filename": "ftp://x/y.torrent"}}),
        json!({"method": "torrent-add", "arguments": {}}),
    ] {
        let r = call(&mut e, bad);
        assert_ne!(r["result"], "success", "{r}");
    }
    assert_eq!(e.added.len(), 3);
}

#[test]
fn malformed_requests_and_unknown_methods_get_error_results() {
    let mut e = fake();
    for body in [
        &b"{not json"[..],
        b"[1,2]",
        b"{}",
        b"{\"method\": 5}",
        b"{\"method\": \"torrent-get\", \"arguments\": []}",
        b"{\"method\": \"blocklist-update\"}",
        &[0xff, 0xfe, 0x00],
    ] {
        let r = handle(&mut e, body);
        let result = r["result"].as_str().expect("a result text");
        assert_ne!(result, "success", "{}", String::from_utf8_lossy(body));
    }
    let r = handle(&mut e, b"{\"method\": \"blocklist-update\"}");
    assert!(
        r["result"]
            .as_str()
            .is_some_and(|s| s.contains("not supported")),
        "{r}"
    );
    assert!(e.calls.is_empty());
}

#[test]
fn verify_set_location_and_free_space() {
    let mut e = fake();
    let r = call(
        &mut e,
        json!({"method": "torrent-verify", "arguments": {"ids": [1]}}),
    );
    assert_eq!(r["result"], "success");
    call(
        &mut e,
        json!({"method": "torrent-set-location", "arguments": {"ids": [2], "location": "/dl/new", "move": true}}),
    );
    call(
        &mut e,
        json!({"method": "torrent-set-location", "arguments": {"ids": [1], "location": "/dl/x"}}),
    );
    for bad in [
        json!({"method": "torrent-set-location", "arguments": {"ids": [1]}}),
        json!({"method": "torrent-set-location", "arguments": {"ids": [1], "location": "/dl/x", "move": "yes"}}),
        json!({"method": "torrent-set-location", "arguments": {"location": "/dl/x", "move": true}}),
        json!({"method": "free-space", "arguments": {}}),
        json!({"method": "free-space", "arguments": {"path": "/etc"}}),
    ] {
        let r = call(&mut e, bad);
        assert_ne!(r["result"], "success", "{r}");
    }
    assert_eq!(
        e.calls,
        [
            "verify [1]",
            "location [2] /dl/new true",
            "location [1] /dl/x false"
        ]
    );
    let r = call(
        &mut e,
        json!({"method": "free-space", "arguments": {"path": "/dl"}}),
    );
    assert_eq!(
        r["arguments"],
        json!({"path": "/dl", "size-bytes": 5, "total_size": 10})
    );
}

#[test]
fn session_stats_counts_torrents() {
    let mut e = fake();
    e.torrents[0].status = Status::Stopped;
    let r = call(&mut e, json!({"method": "session-stats"}));
    assert_eq!(r["arguments"]["torrentCount"], 2);
    assert_eq!(r["arguments"]["pausedTorrentCount"], 1);
    assert_eq!(r["arguments"]["downloadSpeed"], 50);
}

#[test]
fn metrics_give_every_family_with_help_and_type_and_a_series_per_torrent() {
    let mut e = fake();
    e.torrents[0].name = "odd \"name\"\nhere".into();
    let text = metrics(&mut e).expect("metrics");
    for family in [
        "unchoke_torrents",
        "unchoke_download_rate_bytes",
        "unchoke_upload_rate_bytes",
        "unchoke_downloaded_bytes_total",
        "unchoke_uploaded_bytes_total",
        "unchoke_peers",
        "unchoke_torrent_verified_bytes",
        "unchoke_torrent_size_bytes",
        "unchoke_torrent_peers",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family}\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family}\n{text}"
        );
    }
    assert!(
        text.contains("unchoke_torrents{status=\"downloading\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("unchoke_torrents{status=\"seeding\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("unchoke_downloaded_bytes_total 600"),
        "{text}"
    );
    assert!(text.contains("unchoke_peers 4"), "{text}");
    // One series per torrent, the name escaped so the line stays one line.
    assert_eq!(
        text.matches("unchoke_torrent_size_bytes{").count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("name=\"odd \\\"name\\\"\\nhere\"} 250"),
        "{text}"
    );
    for line in text.lines() {
        assert!(
            line.starts_with('#') || line.starts_with("unchoke_"),
            "{line}"
        );
    }
}

#[test]
fn torrent_set_changes_files_limits_and_labels_and_torrent_get_shows_them() {
    let mut e = fake();
    let r = call(
        &mut e,
        json!({"method": "torrent-set", "arguments": {
            "ids": [1], "files-unwanted": [1], "priority-high": [0],
            "downloadLimit": 50, "downloadLimited": true, "labels": ["tv", "hd", "tv"],
            "seedRatioMode": 1, "seedRatioLimit": 1.5,
        }}),
    );
    assert_eq!(r["result"], "success", "{r}");
    assert_eq!(e.calls, vec!["set 1"]);
    let s = &e.torrents[0].settings;
    assert_eq!(s.wanted, vec![true, false]);
    assert_eq!(s.priorities, vec![FilePriority::High]);
    assert!(s.limits.down_enabled && s.limits.down_kbps == 50);
    assert_eq!(s.labels, vec!["tv", "hd"], "duplicates dropped");
    assert_eq!(s.ratio_mode, LimitMode::Own);
    let r = call(
        &mut e,
        json!({"method": "torrent-get", "arguments": {"ids": [1],
            "fields": ["wanted", "priorities", "fileStats", "labels", "downloadLimit",
                       "downloadLimited", "seedRatioMode", "seedRatioLimit"]}}),
    );
    let t = &r["arguments"]["torrents"][0];
    assert_eq!(t["wanted"], json!([1, 0]));
    assert_eq!(t["priorities"], json!([1, 0]));
    assert_eq!(t["fileStats"][1]["wanted"], false);
    assert_eq!(t["labels"], json!(["tv", "hd"]));
    assert_eq!(t["downloadLimit"], 50);
    assert_eq!(t["downloadLimited"], true);
    assert_eq!(t["seedRatioMode"], 1);
    assert_eq!(t["seedRatioLimit"], 1.5);
    // An empty list names every file.
    call(
        &mut e,
        json!({"method": "torrent-set", "arguments": {"ids": [1], "files-wanted": []}}),
    );
    assert!(
        e.torrents[0].settings.wanted.is_empty(),
        "all wanted: nothing to keep"
    );
}

#[test]
fn a_bad_torrent_set_changes_nothing() {
    let mut e = fake();
    for (args, needle) in [
        (json!({"ids": [1, 2], "files-unwanted": [2]}), "no file 2"),
        (json!({"files-wanted": ["x"]}), "list of file numbers"),
        (json!({"labels": ["a,b"]}), "no commas"),
        (json!({"labels": [""]}), "empty"),
        (json!({"downloadLimit": -1}), "whole number"),
        (json!({"seedRatioMode": 7}), "0 (session's)"),
        (json!({"seedRatioLimit": "x"}), "number"),
        (json!({"trackerAdd": ["http://x"]}), "not supported"),
        (json!({"honorsSessionLimits": false}), "always apply"),
    ] {
        let r = call(&mut e, json!({"method": "torrent-set", "arguments": args}));
        let text = r["result"].as_str().expect("text");
        assert!(text.contains(needle), "{args}: {text}");
    }
    assert!(e.calls.is_empty(), "{:?}", e.calls);
    // No file can be named before the metadata.
    e.torrents[1].has_metadata = false;
    let r = call(
        &mut e,
        json!({"method": "torrent-set", "arguments": {"ids": [2], "files-wanted": [0]}}),
    );
    assert!(
        r["result"]
            .as_str()
            .expect("text")
            .contains("not known yet")
    );
    // A change that changes nothing calls nothing.
    call(
        &mut e,
        json!({"method": "torrent-set", "arguments": {"ids": [1], "files-wanted": [0]}}),
    );
    assert!(e.calls.is_empty(), "{:?}", e.calls);
}

#[test]
fn peers_are_asked_for_only_for_the_torrents_named() {
    let mut e = fake();
    let r = call(
        &mut e,
        json!({"method": "torrent-get", "arguments": {"ids": [2], "fields": ["id", "peers"]}}),
    );
    assert_eq!(e.details, vec![2]);
    let p = &r["arguments"]["torrents"][0]["peers"][0];
    assert_eq!(p["address"], "127.0.0.9");
    assert_eq!(p["port"], 6881);
    assert_eq!(p["clientName"], "libtorrent 2090");
    assert_eq!(p["flagStr"], "DUI");
    assert_eq!(p["rateToPeer"], 200);
    // A list refresh of every torrent asks for no details.
    call(
        &mut e,
        json!({"method": "torrent-get", "arguments": {"fields": ["id", "peers"]}}),
    );
    assert!(e.details.is_empty());
    call(
        &mut e,
        json!({"method": "torrent-get", "arguments": {"ids": [1], "fields": ["id", "name"]}}),
    );
    assert!(e.details.is_empty());
}

#[test]
fn size_when_done_counts_wanted_pieces_only() {
    let mut e = fake();
    e.torrents[0].left = 250; // the rest is not wanted
    let r = call(
        &mut e,
        json!({"method": "torrent-get", "arguments": {"ids": [1],
            "fields": ["sizeWhenDone", "leftUntilDone", "percentDone", "totalSize"]}}),
    );
    let t = &r["arguments"]["torrents"][0];
    assert_eq!(t["totalSize"], 1000);
    assert_eq!(t["sizeWhenDone"], 500);
    assert_eq!(t["leftUntilDone"], 250);
    assert_eq!(t["percentDone"], 0.5);
}

#[test]
fn settings_survive_their_json_form() {
    let mut s = TorrentSettings::new();
    s.labels = vec!["a".into()];
    s.wanted = vec![true, false];
    s.priorities = vec![FilePriority::Low, FilePriority::High];
    s.limits.up_kbps = 7;
    s.limits.up_enabled = true;
    s.idle_mode = LimitMode::Unlimited;
    s.idle_limit_minutes = 5;
    assert_eq!(TorrentSettings::from_json(&s.to_json()), s);
    s.wanted = vec![false, true, true];
    let back = TorrentSettings::from_json(&s.to_json());
    assert_eq!(back.wanted, vec![false], "trailing defaults trimmed");
    assert!(!back.is_wanted(0) && back.is_wanted(2));
    // An older state file has none of it: the defaults.
    assert_eq!(
        TorrentSettings::from_json(&json!({})),
        TorrentSettings::new()
    );
}

#[test]
fn session_set_checks_every_value_then_sets_them_all() {
    let mut e = fake();
    let r = call(
        &mut e,
        json!({"method": "session-set", "arguments": {
            "incomplete-dir": "/dl/partial", "incomplete-dir-enabled": true,
            "seedRatioLimited": true, "seedRatioLimit": 1.25,
            "idle-seeding-limit-enabled": true, "idle-seeding-limit": 9,
            "download-queue-enabled": true, "download-queue-size": 2,
            "seed-queue-enabled": true, "seed-queue-size": 3,
            "some-future-key": 1,
        }}),
    );
    assert_eq!(r["result"], "success", "{r}");
    assert_eq!(e.calls, vec!["limits"], "one call with everything");
    let s = e.settings.clone();
    assert!(s.incomplete_dir_enabled && s.incomplete_dir == "/dl/partial");
    assert!(s.seed_ratio_limited && s.seed_ratio_limit == 1.25);
    assert!(s.idle_seeding_limited && s.idle_seeding_minutes == 9);
    assert!(s.download_queue_enabled && s.download_queue_size == 2);
    assert!(s.seed_queue_enabled && s.seed_queue_size == 3);
    let got = call(&mut e, json!({"method": "session-get"}));
    assert_eq!(got["arguments"]["seedRatioLimit"], 1.25);
    assert_eq!(got["arguments"]["download-queue-size"], 2);
    assert_eq!(got["arguments"]["incomplete-dir"], "/dl/partial");
    assert_eq!(SessionSettings::from_json(&s.to_json()), s);

    let before = e.settings.clone();
    for (args, needle) in [
        (
            json!({"seedRatioLimited": true, "seedRatioLimit": -1}),
            "≥ 0",
        ),
        (json!({"download-queue-size": 0}), "between 1"),
        (
            json!({"speed-limit-down": 5, "seed-queue-enabled": "yes"}),
            "true or false",
        ),
        (json!({"incomplete-dir": 3}), "a path"),
    ] {
        let r = call(&mut e, json!({"method": "session-set", "arguments": args}));
        assert!(
            r["result"].as_str().expect("text").contains(needle),
            "{args}: {r}"
        );
    }
    assert_eq!(e.settings, before, "a refused request changed nothing");
    let r = call(
        &mut fake(),
        json!({"method": "session-set", "arguments": {"incomplete-dir-enabled": true}}),
    );
    assert!(
        r["result"].as_str().expect("text").contains("needs an"),
        "{r}"
    );
}

#[test]
fn http_and_https_filenames_are_urls_for_the_engine_to_fetch() {
    let mut e = fake();
    for url in ["http://x/y.torrent", "HTTPS://x/y.torrent?a=1"] {
        let r = call(
            &mut e,
            json!({"method": "torrent-add", "arguments": {"filename": url}}),
        );
        assert_eq!(r["result"], "success", "{r}");
    }
    let sources: Vec<_> = e.added.iter().map(|a| a.source.clone()).collect();
    assert_eq!(
        sources,
        [
            AddSource::Url("http://x/y.torrent".into()),
            AddSource::Url("HTTPS://x/y.torrent?a=1".into())
        ]
    );
}

#[test]
fn torrent_add_takes_the_settings_torrent_set_takes() {
    let mut e = fake();
    let r = call(
        &mut e,
        json!({"method": "torrent-add", "arguments": {"filename": "/x.torrent",
            "labels": ["tv"], "files-unwanted": [1], "priority-high": [0]}}),
    );
    assert_eq!(r["result"], "success", "{r}");
    let t = e.torrents.iter().find(|t| t.id == 9).expect("added");
    assert_eq!(t.settings.labels, vec!["tv"]);
    assert_eq!(t.settings.wanted, vec![true, false]);
    assert_eq!(t.settings.priorities, vec![FilePriority::High]);
    // A malformed setting: nothing is added.
    let mut e = fake();
    let r = call(
        &mut e,
        json!({"method": "torrent-add", "arguments": {"filename": "/x.torrent", "labels": 5}}),
    );
    assert!(
        r["result"].as_str().expect("text").contains("labels"),
        "{r}"
    );
    assert!(e.added.is_empty());
    // A file it does not have: added, and the answer says its settings were not.
    let r = call(
        &mut e,
        json!({"method": "torrent-add", "arguments": {"filename": "/x.torrent", "files-wanted": [7]}}),
    );
    let text = r["result"].as_str().expect("text");
    assert!(
        text.contains("was added, but not its settings") && text.contains("no file 7"),
        "{r}"
    );
    assert_eq!(e.added.len(), 1);
}

#[test]
fn the_queue_order_moves_as_transmission_moves_it() {
    let mut e = fake();
    e.torrents.push(view(3, 'd'));
    let order = |e: &Fake| {
        let mut v: Vec<(u64, u64)> = e
            .torrents
            .iter()
            .map(|t| (t.queue_position, t.id))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
    };
    let r = call(
        &mut e,
        json!({"method": "queue-move-top", "arguments": {"ids": [3]}}),
    );
    assert_eq!(r["result"], "success", "{r}");
    assert_eq!(order(&e), vec![3, 1, 2]);
    call(
        &mut e,
        json!({"method": "queue-move-down", "arguments": {"ids": [3]}}),
    );
    assert_eq!(order(&e), vec![1, 3, 2]);
    call(
        &mut e,
        json!({"method": "queue-move-bottom", "arguments": {"ids": [1]}}),
    );
    assert_eq!(order(&e), vec![3, 2, 1]);
    call(
        &mut e,
        json!({"method": "queue-move-up", "arguments": {"ids": [1]}}),
    );
    assert_eq!(order(&e), vec![3, 1, 2]);
    call(
        &mut e,
        json!({"method": "torrent-set", "arguments": {"ids": [2], "queuePosition": 0}}),
    );
    assert_eq!(order(&e), vec![2, 3, 1]);
    let r = call(
        &mut e,
        json!({"method": "torrent-get", "arguments": {"ids": [1], "fields": ["queuePosition"]}}),
    );
    assert_eq!(r["arguments"]["torrents"][0]["queuePosition"], 2);
    let r = call(
        &mut e,
        json!({"method": "torrent-set", "arguments": {"ids": [2], "queuePosition": -1}}),
    );
    assert!(
        r["result"]
            .as_str()
            .expect("text")
            .contains("queuePosition"),
        "{r}"
    );
}
