//! The `rpc` target: `unchoke daemon`'s Transmission RPC (`unchoke_rpc::handle`) over a
//! fake engine holding three torrents.
//!
//! The first input byte chooses the mode: the rest as a raw request body, or as
//! `arbitrary` choices that build a well-formed-looking request (a known or unknown method,
//! `ids` as a number, a hash, a list, garbage or absent, `fields`, speed limits, a
//! `filename`/`metainfo` of arbitrary content, a tag of any JSON type).
//!
//! Invariants:
//! 1. Nothing panics; every answer is a JSON object whose `result` is a string.
//! 2. A numeric `tag` is echoed as it came.
//! 3. A successful `torrent-get` lists only torrents that exist, each at most once, with
//!    the fields asked for (`id` when asked) and no others.
//! 4. Start, stop, remove, verify and set-location reach the engine only with ids it
//!    holds, each at most once.
//! 5. A successful `session-set` leaves limits the engine accepted; a failed request
//!    changes nothing.
//! 6. A failed `torrent-set` gives no torrent new settings (every argument and file
//!    number is checked first); a successful one names only existing torrents.

use std::path::PathBuf;

use arbitrary::{Arbitrary, Unstructured};
use serde_json::{Value, json};
use unchoke_rpc::{
    AddRequest, Added, Engine, PeerSettings, SessionSettings, Status, TorrentSettings, TorrentView,
    handle,
};

/// The fake engine: three torrents (ids 1–3), records what it was asked to do.
struct Fake {
    torrents: Vec<TorrentView>,
    settings: SessionSettings,
    touched: Vec<u64>,
}

fn view(id: u64) -> TorrentView {
    TorrentView {
        id,
        hash: format!("{id:x}").repeat(40).chars().take(40).collect(),
        name: format!("t{id}"),
        status: Status::Downloading,
        has_metadata: id != 3,
        total_size: 1000 * id,
        have: 250,
        left: 750,
        downloaded: 300,
        uploaded: 600,
        rate_down: 25,
        rate_up: 0,
        peers: 2,
        unchoked: 1,
        download_dir: "/dl".into(),
        error: (id == 2).then(|| "gone".to_owned()),
        added: 5,
        pieces: (4, 256),
        private: false,
        // Torrent 3 is a magnet without its metadata: no files.
        files: if id == 3 {
            Vec::new()
        } else {
            (0..3)
                .map(|i| unchoke_rpc::FileView {
                    name: format!("t{id}/f{i}"),
                    length: 300,
                    have: 0,
                })
                .collect()
        },
        trackers: vec![vec!["http://t.example/announce".into()]],
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
        Ok(())
    }
    fn torrents(&mut self, details: &[u64]) -> Result<Vec<TorrentView>, String> {
        for id in details {
            assert!(
                self.torrents.iter().any(|t| t.id == *id),
                "details asked for torrent {id}, which does not exist"
            );
        }
        Ok(self.torrents.clone())
    }
    fn set_queue_position(&mut self, id: u64, _position: u64) -> Result<(), String> {
        self.touch(&[id]);
        Ok(())
    }
    fn set_torrent(&mut self, id: u64, settings: TorrentSettings) -> Result<(), String> {
        self.touch(&[id]);
        let t = self
            .torrents
            .iter_mut()
            .find(|t| t.id == id)
            .expect("touch checked it exists");
        assert!(
            settings.wanted.len() <= t.files.len() && settings.priorities.len() <= t.files.len(),
            "per-file settings past the torrent's {} files: {settings:?}",
            t.files.len()
        );
        t.settings = settings;
        Ok(())
    }
    fn add(&mut self, add: AddRequest) -> Result<Added, String> {
        let _ = add;
        Err("the fake engine adds nothing".into())
    }
    fn start(&mut self, ids: &[u64]) -> Result<(), String> {
        self.touch(ids);
        Ok(())
    }
    fn stop(&mut self, ids: &[u64]) -> Result<(), String> {
        self.touch(ids);
        Ok(())
    }
    fn remove(&mut self, ids: &[u64], _delete_data: bool) -> Result<(), String> {
        self.touch(ids);
        Ok(())
    }
    fn verify(&mut self, ids: &[u64]) -> Result<(), String> {
        self.touch(ids);
        Ok(())
    }
    fn set_location(&mut self, ids: &[u64], to: PathBuf, _move_data: bool) -> Result<(), String> {
        self.touch(ids);
        if to.starts_with("/dl") {
            Ok(())
        } else {
            Err("outside the download directory".into())
        }
    }
    fn free_space(&mut self, path: PathBuf) -> Result<(u64, u64), String> {
        if path.starts_with("/dl") {
            Ok((1 << 30, 1 << 40))
        } else {
            Err("outside the download directory".into())
        }
    }
}

impl Fake {
    fn touch(&mut self, ids: &[u64]) {
        let mut seen = Vec::new();
        for id in ids {
            assert!(
                self.torrents.iter().any(|t| t.id == *id),
                "the engine was asked about torrent {id}, which does not exist"
            );
            assert!(!seen.contains(id), "torrent {id} named twice in one call");
            seen.push(*id);
        }
        self.touched.extend_from_slice(ids);
    }
}

/// What `ids` is in a built request.
#[derive(Arbitrary, Debug)]
enum Ids {
    Absent,
    Number(i64),
    Hash(u8),
    List(Vec<i64>),
    Recent,
    Junk(String),
}

/// A request built from choices.
#[derive(Arbitrary, Debug)]
struct Built {
    method: u8,
    ids: Ids,
    fields: Vec<u8>,
    tag: Option<i64>,
    down: Option<i64>,
    up: Option<u32>,
    enabled: (bool, bool),
    filename: Option<String>,
    metainfo: Option<String>,
    delete: bool,
    extra: Option<String>,
    /// `files-wanted`/`-unwanted`, `priority-*` (chosen by `file_key`) and `labels`.
    files: Option<Vec<i64>>,
    file_key: u8,
    labels: Option<Vec<String>>,
}

const METHODS: &[&str] = &[
    "session-get",
    "session-set",
    "session-stats",
    "torrent-get",
    "torrent-add",
    "torrent-start",
    "torrent-start-now",
    "torrent-stop",
    "torrent-remove",
    "torrent-verify",
    "torrent-set-location",
    "torrent-set",
    "queue-move-top",
    "queue-move-down",
    "free-space",
    "port-test",
    "",
];

const FIELDS: &[&str] = &[
    "id",
    "name",
    "status",
    "percentDone",
    "rateDownload",
    "hashString",
    "files",
    "fileStats",
    "trackers",
    "eta",
    "error",
    "peers",
    "wanted",
    "priorities",
    "labels",
    "sizeWhenDone",
    "nonsense",
];

impl Built {
    fn request(&self) -> Value {
        let method = METHODS[usize::from(self.method) % METHODS.len()];
        let mut args = serde_json::Map::new();
        match &self.ids {
            Ids::Absent => {}
            Ids::Number(n) => {
                args.insert("ids".into(), json!(n % 6));
            }
            Ids::Hash(h) => {
                args.insert("ids".into(), json!(view(u64::from(h % 4)).hash));
            }
            Ids::List(l) => {
                args.insert(
                    "ids".into(),
                    json!(l.iter().map(|n| n % 6).collect::<Vec<_>>()),
                );
            }
            Ids::Recent => {
                args.insert("ids".into(), json!("recently-active"));
            }
            Ids::Junk(s) => {
                args.insert("ids".into(), json!({ "x": s }));
            }
        }
        if !self.fields.is_empty() {
            let fields: Vec<&str> = self
                .fields
                .iter()
                .map(|f| FIELDS[usize::from(*f) % FIELDS.len()])
                .collect();
            args.insert("fields".into(), json!(fields));
        }
        if let Some(d) = self.down {
            args.insert("speed-limit-down".into(), json!(d));
            args.insert("speed-limit-down-enabled".into(), json!(self.enabled.0));
        }
        if let Some(u) = self.up {
            args.insert("speed-limit-up".into(), json!(u));
            args.insert("speed-limit-up-enabled".into(), json!(self.enabled.1));
        }
        if let Some(f) = &self.filename {
            args.insert("filename".into(), json!(f));
        }
        if let Some(m) = &self.metainfo {
            args.insert("metainfo".into(), json!(m));
            // The same text as a location or a path (set-location, free-space).
            args.insert("location".into(), json!(m));
            args.insert("path".into(), json!(m));
            args.insert("move".into(), json!(self.delete));
        }
        args.insert("delete-local-data".into(), json!(self.delete));
        if let Some(f) = &self.files {
            const KEYS: [&str; 5] = [
                "files-wanted",
                "files-unwanted",
                "priority-high",
                "priority-normal",
                "priority-low",
            ];
            let key = KEYS[usize::from(self.file_key) % KEYS.len()];
            args.insert(
                key.into(),
                json!(f.iter().map(|i| i % 5).collect::<Vec<_>>()),
            );
        }
        if let Some(l) = &self.labels {
            args.insert("labels".into(), json!(l));
        }
        if let Some(x) = &self.extra {
            args.insert(x.clone(), json!(x));
        }
        let mut request = json!({ "method": method, "arguments": args });
        if let Some(t) = self.tag {
            request["tag"] = json!(t);
        }
        request
    }
}

/// Runs the mode the first byte chooses. Panics if an invariant fails.
pub fn rpc(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let body: Vec<u8> = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let mut u = Unstructured::new(rest);
        let Ok(built) = Built::arbitrary(&mut u) else {
            return;
        };
        built.request().to_string().into_bytes()
    };
    let mut engine = Fake {
        torrents: (1..=3).map(view).collect(),
        settings: SessionSettings::default(),
        touched: Vec::new(),
    };
    let before = engine.settings.clone();
    let answer = handle(&mut engine, &body);
    let result = answer["result"]
        .as_str()
        .unwrap_or_else(|| panic!("no result string in {answer}"));
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(tag) = request.get("tag").filter(|t| t.is_i64() || t.is_u64()) {
        assert_eq!(&answer["tag"], tag, "the tag is echoed");
    }
    if result != "success" {
        assert_eq!(
            engine.settings, before,
            "a failed request changed the settings"
        );
        if request["method"] == "torrent-set" {
            assert!(
                engine.touched.is_empty(),
                "a failed torrent-set changed torrents {:?}",
                engine.touched
            );
        }
        return;
    }
    if request["method"] == "torrent-get" {
        let list = answer["arguments"]["torrents"]
            .as_array()
            .unwrap_or_else(|| panic!("torrent-get without a list: {answer}"));
        let asked: Vec<&str> = request["arguments"]["fields"]
            .as_array()
            .map(|f| f.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut ids = Vec::new();
        for t in list {
            let object = t.as_object().expect("each torrent an object");
            if !asked.is_empty() {
                for key in object.keys() {
                    assert!(
                        asked.contains(&key.as_str()),
                        "{key} was not asked for: {t}"
                    );
                }
            }
            if let Some(id) = object.get("id").and_then(Value::as_u64) {
                assert!((1..=3).contains(&id), "torrent {id} does not exist");
                assert!(!ids.contains(&id), "torrent {id} listed twice");
                ids.push(id);
            } else {
                assert!(!asked.contains(&"id"), "id asked for but missing: {t}");
            }
        }
    }
}
