//! A torrent's own settings ([`TorrentSettings`]: files wanted and their priorities, its
//! speed limits, its seeding limits, its labels) and `torrent-set`, which changes them.
//!
//! The change is worked out here, purely, against the settings the engine shows: the RPC
//! checks every argument and every file index first, and only then hands each torrent its
//! whole new settings ([`crate::Engine::set_torrent`]). A bad request changes nothing.

use serde_json::{Value, json};

use crate::args::{self, set, valid_ratio};
use crate::{Engine, SpeedLimits, select};

/// How a torrent's seeding limit is chosen, as Transmission's `seedRatioMode` and
/// `seedIdleMode` say it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LimitMode {
    /// 0: the session's limit applies.
    #[default]
    Global,
    /// 1: the torrent's own limit applies.
    Own,
    /// 2: no limit for this torrent, whatever the session's.
    Unlimited,
}

impl LimitMode {
    /// Transmission's number for it.
    pub fn code(self) -> u64 {
        match self {
            LimitMode::Global => 0,
            LimitMode::Own => 1,
            LimitMode::Unlimited => 2,
        }
    }

    /// The mode Transmission's number names.
    pub fn from_code(code: u64) -> Option<LimitMode> {
        match code {
            0 => Some(LimitMode::Global),
            1 => Some(LimitMode::Own),
            2 => Some(LimitMode::Unlimited),
            _ => None,
        }
    }
}

/// A file's priority, as Transmission numbers them (`priority-low` -1, normal 0, high 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FilePriority {
    /// -1: after every normal file's pieces.
    Low,
    /// 0.
    #[default]
    Normal,
    /// 1: before every normal file's pieces.
    High,
}

impl FilePriority {
    /// Transmission's number for it.
    pub fn code(self) -> i64 {
        match self {
            FilePriority::Low => -1,
            FilePriority::Normal => 0,
            FilePriority::High => 1,
        }
    }

    /// The priority Transmission's number names (anything else is normal).
    pub fn from_code(code: i64) -> FilePriority {
        match code {
            -1 => FilePriority::Low,
            1 => FilePriority::High,
            _ => FilePriority::Normal,
        }
    }
}

/// The most labels a torrent keeps, and the longest label: bounds on what a client can
/// make the daemon store and save.
pub const MAX_LABELS: usize = 32;
/// See [`MAX_LABELS`].
pub const MAX_LABEL_LEN: usize = 128;

/// What one torrent has of its own. Per-file vectors follow the torrent's `files` (padding
/// left out); they are empty until the metadata is known, and a missing entry means
/// wanted at normal priority.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TorrentSettings {
    /// Its labels, in the order given.
    pub labels: Vec<String>,
    /// Whether each file is wanted (`files-wanted` / `files-unwanted`).
    pub wanted: Vec<bool>,
    /// Each file's priority.
    pub priorities: Vec<FilePriority>,
    /// Its own speed limits (`downloadLimit`/`downloadLimited`, `uploadLimit`/
    /// `uploadLimited`, kB/s); the session's apply as well.
    pub limits: SpeedLimits,
    /// `seedRatioMode`.
    pub ratio_mode: LimitMode,
    /// `seedRatioLimit`: stop seeding at this upload ratio (with [`LimitMode::Own`]).
    pub ratio_limit: f64,
    /// `seedIdleMode`.
    pub idle_mode: LimitMode,
    /// `seedIdleLimit`: stop seeding after this many minutes without uploading (with
    /// [`LimitMode::Own`]).
    pub idle_limit_minutes: u64,
}

impl TorrentSettings {
    /// Fresh settings: every file wanted at normal priority, no limit of its own, the
    /// session's seeding limits, Transmission's defaults for the values of the unused
    /// modes (ratio 2.0, 30 minutes).
    pub fn new() -> TorrentSettings {
        TorrentSettings {
            ratio_limit: 2.0,
            idle_limit_minutes: 30,
            ..TorrentSettings::default()
        }
    }

    /// Whether file `index` is wanted.
    pub fn is_wanted(&self, index: usize) -> bool {
        self.wanted.get(index).copied().unwrap_or(true)
    }

    /// File `index`'s priority.
    pub fn priority(&self, index: usize) -> FilePriority {
        self.priorities.get(index).copied().unwrap_or_default()
    }

    /// Drops trailing per-file entries that say what a missing entry says (wanted, normal):
    /// two settings that mean the same are then equal, and a torrent with every file
    /// wanted saves no per-file lists.
    fn trim(&mut self) {
        while self.wanted.last() == Some(&true) {
            self.wanted.pop();
        }
        while self.priorities.last() == Some(&FilePriority::Normal) {
            self.priorities.pop();
        }
    }

    /// The settings as `state.json` keeps them.
    pub fn to_json(&self) -> Value {
        json!({
            "labels": self.labels,
            "wanted": self.wanted,
            "priorities": self.priorities.iter().map(|p| p.code()).collect::<Vec<_>>(),
            "downloadLimit": self.limits.down_kbps,
            "downloadLimited": self.limits.down_enabled,
            "uploadLimit": self.limits.up_kbps,
            "uploadLimited": self.limits.up_enabled,
            "seedRatioMode": self.ratio_mode.code(),
            "seedRatioLimit": self.ratio_limit,
            "seedIdleMode": self.idle_mode.code(),
            "seedIdleLimit": self.idle_limit_minutes,
        })
    }

    /// Settings read back from [`TorrentSettings::to_json`]'s form; what is missing or
    /// out of range takes its default (a file written by an older daemon has none), and
    /// lists are cut to their bounds.
    pub fn from_json(v: &Value) -> TorrentSettings {
        let mut s = TorrentSettings::new();
        if let Some(labels) = v["labels"].as_array() {
            s.labels = labels
                .iter()
                .filter_map(Value::as_str)
                .filter(|l| check_label(l).is_ok())
                .take(MAX_LABELS)
                .map(str::to_string)
                .collect();
        }
        if let Some(w) = v["wanted"].as_array() {
            s.wanted = w.iter().map(|b| b.as_bool().unwrap_or(true)).collect();
        }
        if let Some(p) = v["priorities"].as_array() {
            s.priorities = p
                .iter()
                .map(|c| FilePriority::from_code(c.as_i64().unwrap_or(0)))
                .collect();
        }
        let kbps = |key: &str| v[key].as_u64().unwrap_or(0);
        let on = |key: &str| v[key].as_bool().unwrap_or(false);
        s.limits = SpeedLimits {
            down_kbps: kbps("downloadLimit"),
            down_enabled: on("downloadLimited"),
            up_kbps: kbps("uploadLimit"),
            up_enabled: on("uploadLimited"),
        };
        let mode = |key: &str| {
            v[key]
                .as_u64()
                .and_then(LimitMode::from_code)
                .unwrap_or_default()
        };
        s.ratio_mode = mode("seedRatioMode");
        s.idle_mode = mode("seedIdleMode");
        if let Some(r) = v["seedRatioLimit"].as_f64().filter(|r| valid_ratio(*r)) {
            s.ratio_limit = r;
        }
        if let Some(m) = v["seedIdleLimit"].as_u64() {
            s.idle_limit_minutes = m;
        }
        s.trim();
        s
    }
}

/// Why a label is refused, if it is. Transmission refuses commas (its own lists are
/// comma-separated); we refuse control characters too, which no display shows.
fn check_label(label: &str) -> Result<(), String> {
    if label.trim().is_empty() {
        return Err("a label may not be empty".into());
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(format!("a label has at most {MAX_LABEL_LEN} bytes"));
    }
    if label.contains(',') || label.chars().any(char::is_control) {
        return Err(format!(
            "label `{}`: no commas or control characters",
            label.escape_debug()
        ));
    }
    Ok(())
}

/// `torrent-set` keys of Transmission's spec that unchoke does not act on yet: refused by
/// name rather than ignored, so a client never believes a change was made.
const UNSUPPORTED: [&str; 8] = [
    "bandwidthPriority",
    "location",
    "peer-limit",
    "trackerAdd",
    "trackerRemove",
    "trackerReplace",
    "trackerList",
    "group",
];

/// `torrent-set`: every argument checked, then each selected torrent given its new
/// settings. Unknown keys are ignored, as Transmission does.
pub(crate) fn torrent_set(engine: &mut dyn Engine, args: &Value) -> Result<Value, String> {
    for key in UNSUPPORTED {
        if !args[key].is_null() {
            return Err(format!("`{key}` is not supported by unchoke yet"));
        }
    }
    if args["honorsSessionLimits"] == Value::Bool(false) {
        return Err(
            "`honorsSessionLimits` false is not supported: the session's limits always apply"
                .into(),
        );
    }
    let change = Change::parse(args)?;
    let position = args::number(args, "queuePosition")?;
    let torrents = engine.torrents(&[])?;
    let ids = select(args, &torrents)?;
    change.apply_to(engine, &torrents, &ids)?;
    if let Some(position) = position {
        // Several torrents at one place: the first named there, the next after it.
        for (k, &id) in ids.iter().enumerate() {
            engine.set_queue_position(id, position.saturating_add(k as u64))?;
        }
    }
    Ok(json!({}))
}

/// `torrent-add`'s settings for the torrent it adds (`labels`, `files-wanted`,
/// `priority-high`… as `torrent-set` takes them): checked before the add, so a request with
/// a malformed one adds nothing.
pub(crate) struct AddSettings(Change);

impl AddSettings {
    /// The settings keys of a `torrent-add` request.
    pub(crate) fn parse(args: &Value) -> Result<AddSettings, String> {
        Change::parse(args).map(AddSettings)
    }

    /// Gives the torrent just added (`id`) these settings. A file number past its files
    /// is refused here, after the add: the error says the torrent is in.
    pub(crate) fn apply(&self, engine: &mut dyn Engine, id: u64) -> Result<(), String> {
        if self.0.is_empty() {
            return Ok(());
        }
        let torrents = engine.torrents(&[])?;
        self.0
            .apply_to(engine, &torrents, &[id])
            .map_err(|e| format!("the torrent was added, but not its settings: {e}"))
    }
}

impl Change {
    /// Whether the request changes nothing.
    fn is_empty(&self) -> bool {
        self.wanted.is_none()
            && self.unwanted.is_none()
            && self.high.is_none()
            && self.normal.is_none()
            && self.low.is_none()
            && self.down_kbps.is_none()
            && self.down_enabled.is_none()
            && self.up_kbps.is_none()
            && self.up_enabled.is_none()
            && self.labels.is_none()
            && self.ratio_mode.is_none()
            && self.ratio_limit.is_none()
            && self.idle_mode.is_none()
            && self.idle_limit.is_none()
    }

    /// Applies the change to the torrents `ids` of `torrents`: every one checked first,
    /// then each changed one handed its new settings.
    fn apply_to(
        &self,
        engine: &mut dyn Engine,
        torrents: &[crate::TorrentView],
        ids: &[u64],
    ) -> Result<(), String> {
        let mut updates = Vec::new();
        for t in torrents.iter().filter(|t| ids.contains(&t.id)) {
            let mut settings = t.settings.clone();
            self.apply(&mut settings, t.has_metadata.then_some(t.files.len()))
                .map_err(|e| format!("torrent {}: {e}", t.id))?;
            if settings != t.settings {
                updates.push((t.id, settings));
            }
        }
        for (id, settings) in updates {
            engine.set_torrent(id, settings)?;
        }
        Ok(())
    }
}

/// Which files a `files-*` or `priority-*` key names.
#[derive(Debug)]
enum Files {
    /// An empty list: every file (Transmission's rule).
    All,
    /// These indexes into `files`.
    Some(Vec<usize>),
}

/// A parsed `torrent-set` request: `None` leaves a setting as it is.
#[derive(Debug, Default)]
struct Change {
    wanted: Option<Files>,
    unwanted: Option<Files>,
    high: Option<Files>,
    normal: Option<Files>,
    low: Option<Files>,
    down_kbps: Option<u64>,
    down_enabled: Option<bool>,
    up_kbps: Option<u64>,
    up_enabled: Option<bool>,
    labels: Option<Vec<String>>,
    ratio_mode: Option<LimitMode>,
    ratio_limit: Option<f64>,
    idle_mode: Option<LimitMode>,
    idle_limit: Option<u64>,
}

impl Change {
    fn parse(args: &Value) -> Result<Change, String> {
        let files = |key: &str| -> Result<Option<Files>, String> {
            match &args[key] {
                Value::Null => Ok(None),
                Value::Array(list) if list.is_empty() => Ok(Some(Files::All)),
                Value::Array(list) => list
                    .iter()
                    .map(|i| {
                        i.as_u64()
                            .and_then(|i| usize::try_from(i).ok())
                            .ok_or_else(|| format!("`{key}` is a list of file numbers"))
                    })
                    .collect::<Result<Vec<usize>, String>>()
                    .map(|l| Some(Files::Some(l))),
                _ => Err(format!("`{key}` is a list of file numbers")),
            }
        };
        let number = |key: &str| args::number(args, key);
        let flag = |key: &str| args::flag(args, key);
        let mode = |key: &str| -> Result<Option<LimitMode>, String> {
            number(key)?
                .map(|c| {
                    LimitMode::from_code(c).ok_or_else(|| {
                        format!("`{key}` is 0 (session's), 1 (own) or 2 (unlimited)")
                    })
                })
                .transpose()
        };
        let labels = match &args["labels"] {
            Value::Null => None,
            Value::Array(list) => {
                if list.len() > MAX_LABELS {
                    return Err(format!("at most {MAX_LABELS} labels"));
                }
                let mut labels: Vec<String> = Vec::new();
                for l in list {
                    let l = l.as_str().ok_or("`labels` is a list of strings")?;
                    check_label(l)?;
                    if !labels.iter().any(|x| x == l) {
                        labels.push(l.to_string());
                    }
                }
                Some(labels)
            }
            _ => return Err("`labels` is a list of strings".into()),
        };
        let ratio_limit = args::ratio(args, "seedRatioLimit")?;
        Ok(Change {
            wanted: files("files-wanted")?,
            unwanted: files("files-unwanted")?,
            high: files("priority-high")?,
            normal: files("priority-normal")?,
            low: files("priority-low")?,
            down_kbps: number("downloadLimit")?,
            down_enabled: flag("downloadLimited")?,
            up_kbps: number("uploadLimit")?,
            up_enabled: flag("uploadLimited")?,
            labels,
            ratio_mode: mode("seedRatioMode")?,
            ratio_limit,
            idle_mode: mode("seedIdleMode")?,
            idle_limit: number("seedIdleLimit")?,
        })
    }

    /// Applies the change to one torrent's settings; `files` is its file count (`None`
    /// before its metadata, when no file can be named).
    fn apply(&self, s: &mut TorrentSettings, files: Option<usize>) -> Result<(), String> {
        let per_file = [
            &self.wanted,
            &self.unwanted,
            &self.high,
            &self.normal,
            &self.low,
        ];
        if per_file.iter().any(|f| f.is_some()) {
            let Some(count) = files else {
                return Err("its files are not known yet (the metadata has not arrived)".into());
            };
            s.wanted.resize(count, true);
            s.priorities.resize(count, FilePriority::Normal);
            let indexes = |f: &Files| -> Result<Vec<usize>, String> {
                match f {
                    Files::All => Ok((0..count).collect()),
                    Files::Some(list) => match list.iter().find(|&&i| i >= count) {
                        Some(bad) => Err(format!(
                            "it has no file {bad} (files are numbered 0 to {})",
                            count.saturating_sub(1)
                        )),
                        None => Ok(list.clone()),
                    },
                }
            };
            for (files, wanted) in [(&self.wanted, true), (&self.unwanted, false)] {
                if let Some(f) = files {
                    for i in indexes(f)? {
                        s.wanted[i] = wanted;
                    }
                }
            }
            for (files, prio) in [
                (&self.high, FilePriority::High),
                (&self.normal, FilePriority::Normal),
                (&self.low, FilePriority::Low),
            ] {
                if let Some(f) = files {
                    for i in indexes(f)? {
                        s.priorities[i] = prio;
                    }
                }
            }
        }
        let l = &mut s.limits;
        set(&mut l.down_kbps, self.down_kbps);
        set(&mut l.down_enabled, self.down_enabled);
        set(&mut l.up_kbps, self.up_kbps);
        set(&mut l.up_enabled, self.up_enabled);
        set(&mut s.labels, self.labels.clone());
        set(&mut s.ratio_mode, self.ratio_mode);
        set(&mut s.ratio_limit, self.ratio_limit);
        set(&mut s.idle_mode, self.idle_mode);
        set(&mut s.idle_limit_minutes, self.idle_limit);
        s.trim();
        Ok(())
    }
}
