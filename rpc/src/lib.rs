//! Transmission's RPC, the part that is pure: a request body in, a response body out, over
//! an [`Engine`] that holds the torrents. No socket, no thread and no file here, so every
//! method is tested with a fake engine (below); `http.rs` carries the bytes and `daemon.rs`
//! is the real engine (the `unchoke` binary's `cmd_daemon`). A crate of its own so that
//! the fuzz crate reaches it (target `rpc`).
//!
//! The format is Transmission's RPC spec (rpc-version 17, as Transmission 3.00 speaks it):
//! a request `{"method": M, "arguments": {...}, "tag": N}` gets `{"result": "success" or
//! an error text, "arguments": {...}, "tag": N}`. Torrent `ids` are a number, a hash, a
//! list of those, or absent for every torrent.

use std::path::PathBuf;

use serde_json::{Map, Value, json};

mod args;
mod metrics;
mod queue;
mod session;
mod torrent_set;
pub use metrics::metrics;
pub use session::{MAX_QUEUE_SIZE, SessionSettings};
pub use torrent_set::{FilePriority, LimitMode, MAX_LABEL_LEN, MAX_LABELS, TorrentSettings};

/// The session's speed limits as Transmission keeps them: a value in kB/s (1000 bytes)
/// and whether it applies, separately (`transmission-remote -D` turns a limit off and a
/// later `session-get` still shows its value).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpeedLimits {
    /// `speed-limit-down`, kB/s.
    pub down_kbps: u64,
    /// `speed-limit-down-enabled`.
    pub down_enabled: bool,
    /// `speed-limit-up`, kB/s.
    pub up_kbps: u64,
    /// `speed-limit-up-enabled`.
    pub up_enabled: bool,
}

/// Transmission's speed unit: a kB is 1000 bytes (its `units.speed-bytes`).
pub const SPEED_UNIT: u64 = 1000;

impl SpeedLimits {
    /// The download limit for the core, bytes per second (`None`: unlimited).
    pub fn download_bytes(&self) -> Option<u64> {
        (self.down_enabled && self.down_kbps > 0).then(|| self.down_kbps.saturating_mul(SPEED_UNIT))
    }

    /// The upload limit for the core, bytes per second (`None`: unlimited).
    pub fn upload_bytes(&self) -> Option<u64> {
        (self.up_enabled && self.up_kbps > 0).then(|| self.up_kbps.saturating_mul(SPEED_UNIT))
    }
}

/// The RPC version we answer with, and the oldest client version we accept: Transmission
/// 3.00's (its `transmission-remote` checks neither for the methods used here).
pub const RPC_VERSION: u64 = 17;
/// The oldest RPC version whose clients we understand.
pub const RPC_VERSION_MINIMUM: u64 = 14;

/// Where a torrent stands, in Transmission's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Stopped by the user (Transmission 0).
    Stopped,
    /// Checking existing data (2).
    Checking,
    /// Waiting in the queue for a download slot (3).
    DownloadQueued,
    /// Downloading, or fetching a magnet's metadata (4).
    Downloading,
    /// Complete, waiting in the queue for a seeding slot (5).
    SeedQueued,
    /// Complete and seeding (6).
    Seeding,
}

impl Status {
    /// Transmission's `status` number.
    fn code(self) -> u64 {
        match self {
            Status::Stopped => 0,
            Status::Checking => 2,
            Status::DownloadQueued => 3,
            Status::Downloading => 4,
            Status::SeedQueued => 5,
            Status::Seeding => 6,
        }
    }
}

/// One torrent as the engine shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct TorrentView {
    /// The daemon's number for it (stable while the daemon runs).
    pub id: u64,
    /// v1 info-hash, hex.
    pub hash: String,
    /// Its name (a magnet's `dn` or hash until the metadata is known).
    pub name: String,
    /// Where it stands.
    pub status: Status,
    /// Whether the metadata is known (a magnet's arrives from peers).
    pub has_metadata: bool,
    /// Total size in bytes (0 until the metadata is known).
    pub total_size: u64,
    /// Bytes of verified pieces.
    pub have: u64,
    /// Bytes of wanted pieces not verified yet (files not wanted are not waited for).
    pub left: u64,
    /// Payload bytes received over its whole life in the daemon.
    pub downloaded: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Bytes per second received.
    pub rate_down: u64,
    /// Bytes per second sent.
    pub rate_up: u64,
    /// Connected peers.
    pub peers: usize,
    /// Peers we unchoke (who may download from us).
    pub unchoked: usize,
    /// Its download directory.
    pub download_dir: String,
    /// Why it cannot run, if it cannot (a restored torrent whose data directory vanished,
    /// a magnet whose storage could not be set up).
    pub error: Option<String>,
    /// When it was added, seconds since the epoch.
    pub added: u64,
    /// Number of pieces and their length (0 until the metadata is known).
    pub pieces: (u32, u32),
    /// Whether the torrent is private.
    pub private: bool,
    /// Its files in torrent order, BEP 47 padding left out (empty until the metadata is
    /// known).
    pub files: Vec<FileView>,
    /// Its trackers' announce URLs, tier by tier (BEP 12).
    pub trackers: Vec<Vec<String>>,
    /// What it has of its own (files wanted, limits, labels).
    pub settings: TorrentSettings,
    /// It stopped itself at a seeding limit (Transmission's `isFinished`).
    pub finished: bool,
    /// Its place in the queue order (0: first), which says which queued torrent starts
    /// next.
    pub queue_position: u64,
    /// Its connected peers, when the caller asked for its details
    /// ([`Engine::torrents`]); `None` otherwise.
    pub peer_list: Option<Vec<PeerView>>,
}

/// One connected peer, for `peers`.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerView {
    /// Its address.
    pub addr: std::net::SocketAddr,
    /// Its client, as its peer id names it (empty when it follows no convention).
    pub client: String,
    /// It dialled us.
    pub incoming: bool,
    /// The connection is encrypted.
    pub encrypted: bool,
    /// We choke it.
    pub am_choking: bool,
    /// We are interested in it.
    pub am_interested: bool,
    /// It chokes us.
    pub peer_choking: bool,
    /// It is interested in us.
    pub peer_interested: bool,
    /// Share of the pieces it has, 0.0 to 1.0.
    pub progress: f64,
    /// Bytes per second it sends us.
    pub rate_down: u64,
    /// Bytes per second we send it.
    pub rate_up: u64,
}

/// One file of a torrent, for `files` and `fileStats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileView {
    /// Its path as Transmission gives it: under the torrent's name for a multi-file torrent,
    /// `/`-separated.
    pub name: String,
    /// Its length in bytes.
    pub length: u64,
    /// Bytes of it held: exact when the torrent's details were asked for
    /// ([`Engine::torrents`]), else the torrent's share applied to the file (exact at 0 %
    /// and 100 %, an estimate in between).
    pub have: u64,
}

/// What `torrent-add` carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddSource {
    /// `filename`: a path on the daemon's machine.
    Path(PathBuf),
    /// `filename`: a magnet link.
    Magnet(String),
    /// `filename`: an `http://` or `https://` URL of a .torrent file, fetched by the
    /// engine.
    Url(String),
    /// `metainfo`: the .torrent file's bytes (base64-decoded).
    Metainfo(Vec<u8>),
}

/// A `torrent-add` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddRequest {
    /// What to add.
    pub source: AddSource,
    /// `download-dir`, if given (the engine confines it).
    pub download_dir: Option<PathBuf>,
    /// `paused`: add it stopped.
    pub paused: bool,
}

/// What `torrent-add` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Added {
    /// The torrent's number.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its hash.
    pub hash: String,
    /// It was there already (`torrent-duplicate`).
    pub duplicate: bool,
}

/// How the daemon meets peers, for `session-get`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerSettings {
    /// The port peers reach us on.
    pub port: u16,
    /// Whether a DHT node runs.
    pub dht: bool,
    /// Whether local service discovery runs.
    pub lsd: bool,
}

/// What the RPC needs from the daemon. Errors are the text the client shows.
pub trait Engine {
    /// The default download directory.
    fn download_dir(&self) -> String;
    /// How the daemon meets peers.
    fn peer_settings(&self) -> PeerSettings;
    /// The session's settings now.
    fn settings(&self) -> SessionSettings;
    /// Gives the session these settings (checked by the RPC), applied at once and kept
    /// across restarts.
    fn set_settings(&mut self, settings: SessionSettings) -> Result<(), String>;
    /// Every torrent, in id order; those in `details` with their peers and exact per-file
    /// progress (a round trip each, so only for the torrents a client looks into).
    fn torrents(&mut self, details: &[u64]) -> Result<Vec<TorrentView>, String>;
    /// Moves torrent `id` to `position` in the queue order (0: first; past the end: last).
    fn set_queue_position(&mut self, id: u64, position: u64) -> Result<(), String>;
    /// Gives torrent `id` these settings (checked by the RPC against its files), applied
    /// at once and kept across restarts.
    fn set_torrent(&mut self, id: u64, settings: TorrentSettings) -> Result<(), String>;
    /// Adds a torrent.
    fn add(&mut self, add: AddRequest) -> Result<Added, String>;
    /// Starts (resumes) these torrents.
    fn start(&mut self, ids: &[u64]) -> Result<(), String>;
    /// Stops (pauses) these torrents.
    fn stop(&mut self, ids: &[u64]) -> Result<(), String>;
    /// Removes these torrents, and their downloaded data with `delete_data`.
    fn remove(&mut self, ids: &[u64], delete_data: bool) -> Result<(), String>;
    /// Re-checks these torrents' data on disk (`torrent-verify`); returns once the checks
    /// are under way.
    fn verify(&mut self, ids: &[u64]) -> Result<(), String>;
    /// Points these torrents at `location` (`torrent-set-location`), moving their files
    /// there with `move_data`, else only looking there; the engine confines `location`.
    fn set_location(
        &mut self,
        ids: &[u64],
        location: PathBuf,
        move_data: bool,
    ) -> Result<(), String>;
    /// Bytes free for us and the total size of the filesystem holding `path`
    /// (`free-space`); the engine refuses a path outside its download directory.
    fn free_space(&mut self, path: PathBuf) -> Result<(u64, u64), String>;
}

/// Answers one request body (the HTTP layer has bounded its size and checked the session
/// id). Never fails: anything wrong is the `result` text.
pub fn handle(engine: &mut dyn Engine, body: &[u8]) -> Value {
    let request: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return reply(Err("the request is not a JSON object".into()), &Value::Null),
        Err(e) => return reply(Err(format!("invalid JSON: {e}")), &Value::Null),
    };
    let tag = &request["tag"];
    let Some(method) = request["method"].as_str() else {
        return reply(Err("no method name".into()), tag);
    };
    let empty = Value::Object(Map::new());
    let args = match &request["arguments"] {
        Value::Null => &empty,
        a @ Value::Object(_) => a,
        _ => return reply(Err("`arguments` is not an object".into()), tag),
    };
    let result = match method {
        "session-get" => Ok(session::session_get(engine)),
        "session-set" => session::session_set(engine, args),
        "session-stats" => session_stats(engine),
        "torrent-get" => torrent_get(engine, args),
        "torrent-add" => torrent_add(engine, args),
        "torrent-start" | "torrent-start-now" => {
            with_ids(engine, args, |e, ids| e.start(ids)).map(|()| json!({}))
        }
        "torrent-stop" => with_ids(engine, args, |e, ids| e.stop(ids)).map(|()| json!({})),
        "torrent-remove" => {
            let delete = args["delete-local-data"].as_bool().unwrap_or(false);
            with_ids(engine, args, |e, ids| e.remove(ids, delete)).map(|()| json!({}))
        }
        "torrent-verify" => with_ids(engine, args, |e, ids| e.verify(ids)).map(|()| json!({})),
        "torrent-set" => torrent_set::torrent_set(engine, args),
        "queue-move-top" => queue::queue_move(engine, args, queue::Move::Top),
        "queue-move-up" => queue::queue_move(engine, args, queue::Move::Up),
        "queue-move-down" => queue::queue_move(engine, args, queue::Move::Down),
        "queue-move-bottom" => queue::queue_move(engine, args, queue::Move::Bottom),
        "torrent-set-location" => torrent_set_location(engine, args),
        "free-space" => free_space(engine, args),
        other => Err(format!(
            "method `{}` is not supported by unchoke yet",
            other.escape_debug()
        )),
    };
    reply(result, tag)
}

/// The response object.
fn reply(result: Result<Value, String>, tag: &Value) -> Value {
    let mut out = match result {
        Ok(arguments) => json!({"result": "success", "arguments": arguments}),
        Err(e) => json!({"result": e, "arguments": {}}),
    };
    // Only a number is a tag (Transmission's clients send one to match answers).
    if tag.is_number() {
        out["tag"] = tag.clone();
    }
    out
}

fn session_stats(engine: &mut dyn Engine) -> Result<Value, String> {
    let torrents = engine.torrents(&[])?;
    let paused = torrents
        .iter()
        .filter(|t| t.status == Status::Stopped)
        .count();
    let down: u64 = torrents.iter().map(|t| t.downloaded).sum();
    let up: u64 = torrents.iter().map(|t| t.uploaded).sum();
    let stats = json!({
        "uploadedBytes": up,
        "downloadedBytes": down,
        "filesAdded": torrents.len(),
        "sessionCount": 1,
        "secondsActive": 0,
    });
    Ok(json!({
        "activeTorrentCount": torrents.len() - paused,
        "pausedTorrentCount": paused,
        "torrentCount": torrents.len(),
        "downloadSpeed": torrents.iter().map(|t| t.rate_down).sum::<u64>(),
        "uploadSpeed": torrents.iter().map(|t| t.rate_up).sum::<u64>(),
        "cumulative-stats": stats,
        "current-stats": stats,
    }))
}

/// The torrents `args["ids"]` names, by number or hash; absent: all. A name that matches
/// nothing is skipped, as Transmission does.
pub(crate) fn select(args: &Value, torrents: &[TorrentView]) -> Result<Vec<u64>, String> {
    let names: Vec<&Value> = match &args["ids"] {
        Value::Null => return Ok(torrents.iter().map(|t| t.id).collect()),
        // "recently-active" means the torrents active lately; all of them is a superset.
        Value::String(s) if s == "recently-active" => {
            return Ok(torrents.iter().map(|t| t.id).collect());
        }
        Value::Array(list) => list.iter().collect(),
        one => vec![one],
    };
    let mut ids = Vec::new();
    for name in names {
        let found = match name {
            // A number that is no id (negative, fractional) names nothing.
            Value::Number(n) => n.as_u64().and_then(|n| torrents.iter().find(|t| t.id == n)),
            Value::String(s) => torrents.iter().find(|t| t.hash.eq_ignore_ascii_case(s)),
            _ => return Err("`ids` holds numbers and hash strings".into()),
        };
        if let Some(t) = found.filter(|t| !ids.contains(&t.id)) {
            ids.push(t.id);
        }
    }
    Ok(ids)
}

fn with_ids(
    engine: &mut dyn Engine,
    args: &Value,
    f: impl FnOnce(&mut dyn Engine, &[u64]) -> Result<(), String>,
) -> Result<(), String> {
    let torrents = engine.torrents(&[])?;
    let ids = select(args, &torrents)?;
    f(engine, &ids)
}

fn torrent_get(engine: &mut dyn Engine, args: &Value) -> Result<Value, String> {
    let fields: Option<Vec<&str>> = match &args["fields"] {
        Value::Null => None,
        Value::Array(list) => Some(list.iter().filter_map(Value::as_str).collect()),
        _ => return Err("`fields` is a list of names".into()),
    };
    // Peers and exact file progress cost a round trip per torrent: only when asked for,
    // and only for the torrents named (a list refresh of every torrent asks for neither).
    let wants_details = fields
        .as_ref()
        .is_none_or(|f| f.iter().any(|n| DETAIL_FIELDS.contains(n)));
    let details = if wants_details && !args["ids"].is_null() {
        select(args, &engine.torrents(&[])?)?
    } else {
        Vec::new()
    };
    let torrents = engine.torrents(&details)?;
    let ids = select(args, &torrents)?;
    let list: Vec<Value> = torrents
        .iter()
        .filter(|t| ids.contains(&t.id))
        .map(|t| {
            let all = torrent_fields(
                t,
                fields
                    .as_ref()
                    .is_none_or(|f| f.iter().any(|n| LIST_FIELDS.contains(n))),
            );
            match &fields {
                None => all,
                Some(names) => {
                    let mut picked = Map::new();
                    for name in names {
                        if let Some(v) = all.get(*name) {
                            picked.insert((*name).to_string(), v.clone());
                        }
                    }
                    Value::Object(picked)
                }
            }
        })
        .collect();
    Ok(json!({"torrents": list}))
}

/// Transmission's "unknown" ETA (`TR_ETA_UNKNOWN`) and "not applicable" (`TR_ETA_NOT_AVAIL`).
const ETA_UNKNOWN: i64 = -2;
const ETA_NOT_AVAILABLE: i64 = -1;

/// The fields whose size grows with the torrent's files or trackers: built only when asked
/// for (a list refresh asks for none of them, and a torrent may have thousands of files).
const LIST_FIELDS: [&str; 6] = [
    "files",
    "fileStats",
    "priorities",
    "wanted",
    "trackers",
    "trackerStats",
];

/// The fields that need a torrent's details ([`Engine::torrents`]).
const DETAIL_FIELDS: [&str; 4] = ["peers", "files", "fileStats", "peersFrom"];

/// Every field we know of one torrent; the [`LIST_FIELDS`] only with `lists`.
fn torrent_fields(t: &TorrentView, lists: bool) -> Value {
    let left = t.left;
    let percent = if !t.has_metadata {
        0.0
    } else if t.have + left == 0 {
        1.0
    } else {
        t.have as f64 / (t.have + left) as f64
    };
    let eta = if left == 0 && t.has_metadata {
        ETA_NOT_AVAILABLE
    } else if t.rate_down > 0 && t.status == Status::Downloading {
        i64::try_from(left / t.rate_down).unwrap_or(i64::MAX)
    } else {
        ETA_UNKNOWN
    };
    // Transmission's tr_getRatio: against what was downloaded, else what is held (a seed
    // that never downloaded); -1 "not available", -2 "infinite".
    let base = if t.downloaded > 0 {
        t.downloaded
    } else {
        t.have
    };
    let ratio = if base > 0 {
        t.uploaded as f64 / base as f64
    } else if t.uploaded > 0 {
        -2.0
    } else {
        -1.0
    };
    let active = t.status == Status::Downloading || t.status == Status::Seeding;
    let mut fields = json!({
        "id": t.id,
        "name": t.name,
        "hashString": t.hash,
        "status": t.status.code(),
        "error": if t.error.is_some() { 3 } else { 0 },
        "errorString": t.error.clone().unwrap_or_default(),
        "totalSize": t.total_size,
        // Transmission's: the wanted pieces' bytes, held or not.
        "sizeWhenDone": t.have + left,
        "leftUntilDone": left,
        "haveValid": t.have,
        "haveUnchecked": 0,
        "desiredAvailable": 0,
        "percentDone": percent,
        "metadataPercentComplete": if t.has_metadata { 1.0 } else { 0.0 },
        "recheckProgress": 0.0,
        "rateDownload": t.rate_down,
        "rateUpload": t.rate_up,
        "eta": eta,
        "uploadRatio": ratio,
        "uploadedEver": t.uploaded,
        "downloadedEver": t.downloaded,
        "corruptEver": 0,
        "peersConnected": t.peers,
        // The core counts connected and unchoked peers, not who is sending right now: a
        // peer is counted as sending while data arrives at all.
        "peersSendingToUs": if active && t.rate_down > 0 { t.peers } else { 0 },
        "peersGettingFromUs": if active && t.rate_up > 0 { t.unchoked } else { 0 },
        "webseedsSendingToUs": 0,
        // Transmission's "finished": stopped after reaching a seeding limit.
        "isFinished": t.finished,
        "isStalled": false,
        "isPrivate": t.private,
        "downloadDir": t.download_dir,
        "addedDate": t.added,
        "activityDate": 0,
        "doneDate": 0,
        "startDate": t.added,
        "dateCreated": 0,
        "pieceCount": t.pieces.0,
        "pieceSize": t.pieces.1,
        "queuePosition": t.queue_position,
    });
    // Two objects: one `json!` of them all is past the macro's recursion limit.
    let rest = json!({
        "magnetLink": format!("magnet:?xt=urn:btih:{}", t.hash),
        "comment": "",
        "creator": "",
        "labels": t.settings.labels,
        "bandwidthPriority": 0,
        "honorsSessionLimits": true,
        "downloadLimit": t.settings.limits.down_kbps,
        "downloadLimited": t.settings.limits.down_enabled,
        "uploadLimit": t.settings.limits.up_kbps,
        "uploadLimited": t.settings.limits.up_enabled,
        "seedRatioMode": t.settings.ratio_mode.code(),
        "seedRatioLimit": t.settings.ratio_limit,
        "seedIdleMode": t.settings.idle_mode.code(),
        "seedIdleLimit": t.settings.idle_limit_minutes,
        "secondsDownloading": 0,
        "secondsSeeding": 0,
        "peer-limit": 50,
        "webseeds": [],
        "fileCount": t.files.len(),
    });
    if let (Value::Object(f), Value::Object(r)) = (&mut fields, rest) {
        f.extend(r);
        if lists {
            f.extend(list_fields(t));
        }
        if let Some(peers) = &t.peer_list {
            f.extend(peer_fields(peers));
        }
    }
    fields
}

/// `files`, `fileStats`, `priorities`, `wanted`, `trackers` and `trackerStats`.
fn list_fields(t: &TorrentView) -> Map<String, Value> {
    let files: Vec<Value> = t
        .files
        .iter()
        .map(|f| json!({"name": f.name, "length": f.length, "bytesCompleted": f.have}))
        .collect();
    let s = &t.settings;
    let stats: Vec<Value> = t
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            json!({
                "bytesCompleted": f.have,
                "wanted": s.is_wanted(i),
                "priority": s.priority(i).code(),
            })
        })
        .collect();
    let mut trackers = Vec::new();
    for (tier, urls) in t.trackers.iter().enumerate() {
        for url in urls {
            trackers.push(json!({
                "id": trackers.len(),
                "tier": tier,
                "announce": url,
                "scrape": "",
            }));
        }
    }
    let mut m = Map::new();
    m.insert("files".into(), Value::Array(files));
    m.insert("fileStats".into(), Value::Array(stats));
    let priorities: Vec<i64> = (0..t.files.len()).map(|i| s.priority(i).code()).collect();
    // Numbers, not booleans: Transmission sends 1/0 here.
    let wanted: Vec<u8> = (0..t.files.len())
        .map(|i| u8::from(s.is_wanted(i)))
        .collect();
    m.insert("priorities".into(), json!(priorities));
    m.insert("wanted".into(), json!(wanted));
    m.insert("trackers".into(), Value::Array(trackers.clone()));
    // The announce URLs we know, with no announce results (the driver does not report
    // them per torrent yet).
    m.insert("trackerStats".into(), Value::Array(trackers));
    m
}

/// `peers` and `peersFrom`. The core does not keep where an outgoing peer was learnt of
/// (tracker, DHT, PEX…), so `peersFrom` counts only the incoming ones; the other sources
/// are 0.
fn peer_fields(peers: &[PeerView]) -> Map<String, Value> {
    let list: Vec<Value> = peers
        .iter()
        .map(|p| {
            let downloading = !p.peer_choking && p.am_interested;
            let uploading = !p.am_choking && p.peer_interested;
            json!({
                "address": p.addr.ip().to_string(),
                "port": p.addr.port(),
                "clientName": p.client,
                "clientIsChoked": p.peer_choking,
                "clientIsInterested": p.am_interested,
                "peerIsChoked": p.am_choking,
                "peerIsInterested": p.peer_interested,
                "isDownloadingFrom": downloading,
                "isUploadingTo": uploading,
                "isEncrypted": p.encrypted,
                "isIncoming": p.incoming,
                "isUTP": false,
                "flagStr": flag_str(p),
                "progress": p.progress,
                "rateToClient": p.rate_down,
                "rateToPeer": p.rate_up,
            })
        })
        .collect();
    let incoming = peers.iter().filter(|p| p.incoming).count();
    let mut m = Map::new();
    m.insert("peers".into(), Value::Array(list));
    m.insert(
        "peersFrom".into(),
        json!({
            "fromIncoming": incoming,
            "fromCache": 0,
            "fromDht": 0,
            "fromLpd": 0,
            "fromLtep": 0,
            "fromPex": 0,
            "fromTracker": 0,
        }),
    );
    m
}

/// Transmission's peer flags: `D`/`d` downloading from it (or interested and choked),
/// `U`/`u` uploading to it (or it is interested and we choke it), `K` it unchoked us and
/// we are not interested, `?` we unchoked it and it is not interested, `E` encrypted,
/// `I` incoming.
fn flag_str(p: &PeerView) -> String {
    let mut f = String::new();
    if p.am_interested {
        f.push(if p.peer_choking { 'd' } else { 'D' });
    } else if !p.peer_choking {
        f.push('K');
    }
    if p.peer_interested {
        f.push(if p.am_choking { 'u' } else { 'U' });
    } else if !p.am_choking {
        f.push('?');
    }
    if p.encrypted {
        f.push('E');
    }
    if p.incoming {
        f.push('I');
    }
    f
}

fn torrent_set_location(engine: &mut dyn Engine, args: &Value) -> Result<Value, String> {
    let location = match &args["location"] {
        Value::String(l) if !l.is_empty() => PathBuf::from(l),
        _ => return Err("torrent-set-location needs `location`, a path".into()),
    };
    // Transmission's default is to only look in the new place.
    let move_data = match &args["move"] {
        Value::Null => false,
        Value::Bool(b) => *b,
        _ => return Err("`move` must be true or false".into()),
    };
    // Unlike the other torrent methods, no `ids` is no torrent: moving every torrent by
    // accident is not undone easily.
    if args["ids"].is_null() {
        return Err("torrent-set-location needs `ids`".into());
    }
    with_ids(engine, args, |e, ids| {
        e.set_location(ids, location, move_data)
    })
    .map(|()| json!({}))
}

/// `free-space`: Transmission 3 answers `path`, `size-bytes` and `total_size`.
fn free_space(engine: &mut dyn Engine, args: &Value) -> Result<Value, String> {
    let Value::String(path) = &args["path"] else {
        return Err("free-space needs `path`".into());
    };
    let (free, total) = engine.free_space(PathBuf::from(path))?;
    Ok(json!({"path": path, "size-bytes": free, "total_size": total}))
}

fn torrent_add(engine: &mut dyn Engine, args: &Value) -> Result<Value, String> {
    use base64::Engine as _;
    let source = match (&args["filename"], &args["metainfo"]) {
        (_, Value::String(b64)) => {
            // Some clients wrap the base64 text in lines.
            let clean: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(clean.as_bytes())
                .map_err(|e| format!("`metainfo` is not base64: {e}"))?;
            AddSource::Metainfo(bytes)
        }
        (Value::String(name), _) if name.starts_with("magnet:") => AddSource::Magnet(name.clone()),
        (Value::String(name), _) if is_http_url(name) => AddSource::Url(name.clone()),
        (Value::String(name), _) if name.contains("://") => {
            return Err(format!(
                "adding from {} is not supported: give an http(s) URL, a path on the \
                 daemon's machine, a magnet link or `metainfo`",
                name.escape_debug()
            ));
        }
        (Value::String(name), _) => AddSource::Path(PathBuf::from(name)),
        _ => return Err("torrent-add needs `filename` or `metainfo`".into()),
    };
    let download_dir = match &args["download-dir"] {
        Value::Null => None,
        Value::String(d) => Some(PathBuf::from(d)),
        _ => return Err("`download-dir` must be a path".into()),
    };
    // Its settings are checked before anything is added.
    let settings = torrent_set::AddSettings::parse(args)?;
    let added = engine.add(AddRequest {
        source,
        download_dir,
        paused: args["paused"].as_bool().unwrap_or(false),
    })?;
    let key = if added.duplicate {
        "torrent-duplicate"
    } else {
        "torrent-added"
    };
    // A duplicate keeps its own settings, as Transmission's does.
    if !added.duplicate {
        settings.apply(engine, added.id)?;
    }
    Ok(json!({ key: {"id": added.id, "name": added.name, "hashString": added.hash} }))
}

/// Whether `filename` is an `http://` or `https://` URL (the scheme in any case, as URLs
/// allow).
fn is_http_url(name: &str) -> bool {
    let lower = |n: usize| name.get(..n).map(str::to_ascii_lowercase);
    lower(7).as_deref() == Some("http://") || lower(8).as_deref() == Some("https://")
}

#[cfg(test)]
mod tests;
