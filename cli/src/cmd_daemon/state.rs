//! The daemon's session directory: what it must remember across a restart.
//!
//! ```text
//! SESSION_DIR/
//!   state.json             the torrent list and the session's settings
//!   torrents/<hash>.torrent a copy of each .torrent added (a magnet is kept as its link)
//!   dht.nodes              DHT nodes that answered, for a faster start
//! ```
//!
//! Resume data (which pieces are verified) is the driver's usual resume file under each
//! torrent's download directory (`DIR/.unchoke/<hash>.resume`), so a restarted daemon only
//! hashes what may have changed. Every file here is written to a temporary file in the same
//! directory, flushed and renamed over the old one: a crash leaves the old list or the new
//! one, never half of either.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Bytes a `state.json` may have: far more than thousands of entries need, and a bound on
/// what a damaged or hostile file can make us allocate.
const MAX_STATE_FILE: u64 = 64 << 20;

/// How a torrent was added, so it can be added again after a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A .torrent file, copied to `torrents/<hash>.torrent`.
    TorrentFile,
    /// A magnet link (its metadata is fetched again after a restart; verified data is
    /// found again through the resume file).
    Magnet(String),
}

/// One torrent of the list.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    /// The v1 info-hash in hex: the torrent's name across restarts.
    pub(crate) hash: String,
    /// Where it was added from.
    pub(crate) source: Source,
    /// Its download directory.
    pub(crate) download_dir: PathBuf,
    /// Whether the user stopped it (it comes back stopped).
    pub(crate) paused: bool,
    /// When it was added, in seconds since the epoch (Transmission's `addedDate`).
    pub(crate) added: u64,
    /// Its own settings (`torrent-set`): files wanted, priorities, limits, labels.
    pub(crate) settings: TorrentSettings,
    /// Where it moves once complete: set when it was added while the session's
    /// `incomplete-dir` was on (it downloads there, in `download_dir`), cleared once the
    /// move was tried.
    pub(crate) complete_dir: Option<PathBuf>,
    /// Payload bytes it sent and received over its whole life here (Transmission's
    /// `uploadedEver`/`downloadedEver`), as of the last save: handed back to the core on a
    /// restart, so a ratio limit counts them.
    pub(crate) uploaded_ever: u64,
    /// See `uploaded_ever`.
    pub(crate) downloaded_ever: u64,
    /// It stopped itself at a seeding limit (Transmission's `isFinished`); a start clears it.
    pub(crate) finished: bool,
    /// Its place in the queue order as last set (0: first); a restart puts it back there.
    pub(crate) queue_position: usize,
}

impl Entry {
    /// A torrent added now: its own settings fresh, nothing transferred, last in the
    /// queue (as the core puts a new torrent).
    pub(crate) fn new(
        hash: String,
        source: Source,
        download_dir: PathBuf,
        paused: bool,
        complete_dir: Option<PathBuf>,
    ) -> Entry {
        Entry {
            hash,
            source,
            download_dir,
            paused,
            added: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            settings: TorrentSettings::new(),
            complete_dir,
            uploaded_ever: 0,
            downloaded_ever: 0,
            finished: false,
            queue_position: usize::MAX,
        }
    }
}

/// What `state.json` holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct State {
    /// The torrents, in the order they were added.
    pub(crate) torrents: Vec<Entry>,
    /// The session's settings, as the RPC last set them.
    pub(crate) session: SessionSettings,
}

use unchoke_rpc::{SessionSettings, TorrentSettings};

/// The session directory.
#[derive(Debug)]
pub(crate) struct SessionDir {
    dir: PathBuf,
}

impl SessionDir {
    /// Opens (creating) the directory and its `torrents/` folder.
    pub(crate) fn open(dir: &Path) -> Result<SessionDir, String> {
        std::fs::create_dir_all(dir.join("torrents"))
            .map_err(|e| format!("cannot create the session directory {}: {e}", dir.display()))?;
        Ok(SessionDir {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// Where the copy of torrent `hash`'s .torrent file lives.
    pub(crate) fn torrent_file(&self, hash: &str) -> PathBuf {
        self.dir.join("torrents").join(format!("{hash}.torrent"))
    }

    /// Reads `state.json`; a missing file is an empty list (a first start).
    pub(crate) fn load(&self) -> Result<State, String> {
        let path = self.dir.join("state.json");
        let bytes = match std::fs::File::open(&path) {
            Ok(f) => {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(f, MAX_STATE_FILE + 1),
                    &mut bytes,
                )
                .map_err(|e| format!("{}: {e}", path.display()))?;
                if bytes.len() as u64 > MAX_STATE_FILE {
                    return Err(format!(
                        "{}: larger than {MAX_STATE_FILE} bytes",
                        path.display()
                    ));
                }
                bytes
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?;
        State::from_json(&v).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Writes `state.json` atomically.
    pub(crate) fn save(&self, state: &State) -> Result<(), String> {
        let text = serde_json::to_vec_pretty(&state.to_json())
            .map_err(|e| format!("cannot encode the torrent list: {e}"))?;
        write_atomically(&self.dir.join("state.json"), &text)
    }

    /// Keeps a copy of a .torrent file's bytes, atomically.
    pub(crate) fn save_torrent_file(&self, hash: &str, bytes: &[u8]) -> Result<(), String> {
        write_atomically(&self.torrent_file(hash), bytes)
    }

    /// Forgets the copy of torrent `hash`'s .torrent file (if any).
    pub(crate) fn remove_torrent_file(&self, hash: &str) {
        // Missing already is fine; any other failure only leaves a stale copy behind.
        let _ = std::fs::remove_file(self.torrent_file(hash));
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, flushed to
/// disk and renamed over `path`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    // The rename itself is durable once the directory is synced; a failure here (some
    // filesystems refuse fsync on a directory) leaves a rename that is merely not yet on disk.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl State {
    fn to_json(&self) -> Value {
        let torrents: Vec<Value> = self
            .torrents
            .iter()
            .map(|e| {
                let mut v = json!({
                    "hash": e.hash,
                    "download_dir": e.download_dir.to_string_lossy(),
                    "paused": e.paused,
                    "added": e.added,
                });
                if let Source::Magnet(link) = &e.source {
                    v["magnet"] = json!(link);
                }
                if e.settings != TorrentSettings::new() {
                    v["settings"] = e.settings.to_json();
                }
                if let Some(d) = &e.complete_dir {
                    v["complete_dir"] = json!(d.to_string_lossy());
                }
                if e.uploaded_ever > 0 || e.downloaded_ever > 0 {
                    v["uploaded"] = json!(e.uploaded_ever);
                    v["downloaded"] = json!(e.downloaded_ever);
                }
                if e.finished {
                    v["finished"] = json!(true);
                }
                v["queue"] = json!(e.queue_position);
                v
            })
            .collect();
        // The session's settings at the top level under their RPC names, beside the
        // list (the first daemon kept only the speed limits there, the same way).
        let mut v = self.session.to_json();
        v["version"] = json!(1);
        v["torrents"] = json!(torrents);
        v
    }

    fn from_json(v: &Value) -> Result<State, String> {
        if v["version"] != 1 {
            return Err(format!("unknown version {}", v["version"]));
        }
        let mut torrents = Vec::new();
        for t in v["torrents"].as_array().ok_or("no `torrents` list")? {
            let hash = t["hash"].as_str().ok_or("a torrent without `hash`")?;
            // The hash names a file in `torrents/`: only hex digits may get that far.
            if hash.len() != 40 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("`{}` is not a hex info-hash", hash.escape_debug()));
            }
            let dir = t["download_dir"]
                .as_str()
                .ok_or("a torrent without `download_dir`")?;
            torrents.push(Entry {
                hash: hash.to_ascii_lowercase(),
                source: match t["magnet"].as_str() {
                    Some(link) => Source::Magnet(link.to_string()),
                    None => Source::TorrentFile,
                },
                download_dir: PathBuf::from(dir),
                paused: t["paused"].as_bool().unwrap_or(false),
                added: t["added"].as_u64().unwrap_or(0),
                settings: TorrentSettings::from_json(&t["settings"]),
                complete_dir: t["complete_dir"].as_str().map(PathBuf::from),
                uploaded_ever: t["uploaded"].as_u64().unwrap_or(0),
                downloaded_ever: t["downloaded"].as_u64().unwrap_or(0),
                finished: t["finished"].as_bool().unwrap_or(false),
                // An older list has none: its order is the queue's.
                queue_position: t["queue"]
                    .as_u64()
                    .and_then(|q| usize::try_from(q).ok())
                    .unwrap_or(torrents.len()),
            });
        }
        Ok(State {
            torrents,
            session: SessionSettings::from_json(v),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_survives_a_save_and_a_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sd = SessionDir::open(dir.path()).expect("open");
        assert_eq!(sd.load().expect("empty"), State::default());
        let state = State {
            torrents: vec![
                Entry {
                    hash: "a".repeat(40),
                    source: Source::TorrentFile,
                    download_dir: PathBuf::from("/tmp/x y"),
                    paused: true,
                    added: 7,
                    settings: TorrentSettings::new(),
                    complete_dir: None,
                    uploaded_ever: 0,
                    downloaded_ever: 0,
                    finished: false,
                    queue_position: 1,
                },
                Entry {
                    hash: "b".repeat(40),
                    source: Source::Magnet(format!("magnet:?xt=urn:btih:{}", "b".repeat(40))),
                    download_dir: PathBuf::from("/tmp/z"),
                    paused: false,
                    added: 8,
                    settings: TorrentSettings {
                        labels: vec!["linux".into()],
                        wanted: vec![false],
                        ..TorrentSettings::new()
                    },
                    complete_dir: Some(PathBuf::from("/tmp/done")),
                    uploaded_ever: 5 << 30,
                    downloaded_ever: 7,
                    finished: true,
                    queue_position: 0,
                },
            ],
            session: SessionSettings {
                incomplete_dir: "/tmp/partial".into(),
                incomplete_dir_enabled: true,
                seed_queue_enabled: true,
                seed_queue_size: 4,
                limits: unchoke_rpc::SpeedLimits {
                    down_kbps: 100,
                    down_enabled: true,
                    up_kbps: 5,
                    up_enabled: false,
                },
                ..SessionSettings::default()
            },
        };
        sd.save(&state).expect("save");
        assert_eq!(sd.load().expect("load"), state);
        // Nothing but the file itself is left (the temporary was renamed).
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}"); // state.json and torrents/
    }

    #[test]
    fn a_damaged_or_hostile_state_file_is_an_error_not_a_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sd = SessionDir::open(dir.path()).expect("open");
        std::fs::write(dir.path().join("state.json"), b"{not json").expect("write");
        assert!(sd.load().is_err());
        let evil =
            json!({"version": 1, "torrents": [{"hash": "../../etc/passwd", "download_dir": "/"}]});
        std::fs::write(dir.path().join("state.json"), evil.to_string()).expect("write");
        let e = sd.load().expect_err("refused");
        assert!(e.contains("not a hex info-hash"), "{e}");
    }
}
