//! The session's settings as Transmission's `session-get`/`session-set` name them
//! ([`SessionSettings`]): speed limits, where incomplete downloads wait, seeding limits
//! and the download and seed queues. Parsed and checked here; the engine applies and keeps
//! them ([`crate::Engine::set_settings`]).

use serde_json::{Value, json};

use crate::args::{self, set, valid_ratio};
use crate::{Engine, RPC_VERSION, RPC_VERSION_MINIMUM, SPEED_UNIT, SpeedLimits};

/// What `session-set` changes and the daemon keeps across restarts.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionSettings {
    /// The session's speed limits.
    pub limits: SpeedLimits,
    /// `incomplete-dir`: where torrents download until complete, then move to their
    /// download directory (with `incomplete_dir_enabled`). Empty: none set.
    pub incomplete_dir: String,
    /// `incomplete-dir-enabled`.
    pub incomplete_dir_enabled: bool,
    /// `seedRatioLimited`: torrents stop seeding at `seed_ratio_limit` (unless their own
    /// setting says otherwise).
    pub seed_ratio_limited: bool,
    /// `seedRatioLimit`.
    pub seed_ratio_limit: f64,
    /// `idle-seeding-limit-enabled`: torrents stop seeding after `idle_seeding_minutes`
    /// without uploading.
    pub idle_seeding_limited: bool,
    /// `idle-seeding-limit`, minutes.
    pub idle_seeding_minutes: u64,
    /// `download-queue-enabled`: at most `download_queue_size` torrents download at once;
    /// the others wait their turn.
    pub download_queue_enabled: bool,
    /// `download-queue-size`.
    pub download_queue_size: u64,
    /// `seed-queue-enabled`: at most `seed_queue_size` torrents seed at once.
    pub seed_queue_enabled: bool,
    /// `seed-queue-size`.
    pub seed_queue_size: u64,
}

impl Default for SessionSettings {
    /// Transmission's defaults: no limit of any kind on, ratio 2.0 and 30 minutes when
    /// turned on, queues of 5 downloads and 10 seeds.
    fn default() -> Self {
        SessionSettings {
            limits: SpeedLimits::default(),
            incomplete_dir: String::new(),
            incomplete_dir_enabled: false,
            seed_ratio_limited: false,
            seed_ratio_limit: 2.0,
            idle_seeding_limited: false,
            idle_seeding_minutes: 30,
            download_queue_enabled: false,
            download_queue_size: 5,
            seed_queue_enabled: false,
            seed_queue_size: 10,
        }
    }
}

/// The largest queue size taken: far above any real use, a bound on a typo.
pub const MAX_QUEUE_SIZE: u64 = 100_000;

impl SessionSettings {
    /// The settings under their RPC names (also how `state.json` keeps them).
    pub fn to_json(&self) -> Value {
        json!({
            "speed-limit-down": self.limits.down_kbps,
            "speed-limit-down-enabled": self.limits.down_enabled,
            "speed-limit-up": self.limits.up_kbps,
            "speed-limit-up-enabled": self.limits.up_enabled,
            "incomplete-dir": self.incomplete_dir,
            "incomplete-dir-enabled": self.incomplete_dir_enabled,
            "seedRatioLimited": self.seed_ratio_limited,
            "seedRatioLimit": self.seed_ratio_limit,
            "idle-seeding-limit-enabled": self.idle_seeding_limited,
            "idle-seeding-limit": self.idle_seeding_minutes,
            "download-queue-enabled": self.download_queue_enabled,
            "download-queue-size": self.download_queue_size,
            "seed-queue-enabled": self.seed_queue_enabled,
            "seed-queue-size": self.seed_queue_size,
        })
    }

    /// `self` with the keys of `args` that name a setting applied, every value checked
    /// first; keys we do not know are left alone (Transmission ignores them).
    pub fn with(&self, args: &Value) -> Result<SessionSettings, String> {
        let number = |key: &str| args::number(args, key);
        let flag = |key: &str| args::flag(args, key);
        let queue = |key: &str| -> Result<Option<u64>, String> {
            match number(key)? {
                Some(n) if n == 0 || n > MAX_QUEUE_SIZE => {
                    Err(format!("`{key}` must be between 1 and {MAX_QUEUE_SIZE}"))
                }
                n => Ok(n),
            }
        };
        let mut s = self.clone();
        set(&mut s.limits.down_kbps, number("speed-limit-down")?);
        set(
            &mut s.limits.down_enabled,
            flag("speed-limit-down-enabled")?,
        );
        set(&mut s.limits.up_kbps, number("speed-limit-up")?);
        set(&mut s.limits.up_enabled, flag("speed-limit-up-enabled")?);
        match &args["incomplete-dir"] {
            Value::Null => {}
            Value::String(d) => s.incomplete_dir = d.clone(),
            _ => return Err("`incomplete-dir` must be a path".into()),
        }
        set(
            &mut s.incomplete_dir_enabled,
            flag("incomplete-dir-enabled")?,
        );
        if s.incomplete_dir_enabled && s.incomplete_dir.is_empty() {
            return Err("`incomplete-dir-enabled` needs an `incomplete-dir`".into());
        }
        set(&mut s.seed_ratio_limited, flag("seedRatioLimited")?);
        set(
            &mut s.seed_ratio_limit,
            args::ratio(args, "seedRatioLimit")?,
        );
        set(
            &mut s.idle_seeding_limited,
            flag("idle-seeding-limit-enabled")?,
        );
        set(&mut s.idle_seeding_minutes, number("idle-seeding-limit")?);
        set(
            &mut s.download_queue_enabled,
            flag("download-queue-enabled")?,
        );
        set(&mut s.download_queue_size, queue("download-queue-size")?);
        set(&mut s.seed_queue_enabled, flag("seed-queue-enabled")?);
        set(&mut s.seed_queue_size, queue("seed-queue-size")?);
        Ok(s)
    }

    /// Settings read back from [`SessionSettings::to_json`]'s form, what is missing or
    /// bad taking its default (a file of an older daemon has only the speed limits).
    pub fn from_json(v: &Value) -> SessionSettings {
        let d = SessionSettings::default();
        let number = |key: &str, default: u64| v[key].as_u64().unwrap_or(default);
        let flag = |key: &str| v[key].as_bool().unwrap_or(false);
        let queue = |key: &str, default: u64| {
            v[key]
                .as_u64()
                .filter(|n| (1..=MAX_QUEUE_SIZE).contains(n))
                .unwrap_or(default)
        };
        SessionSettings {
            limits: SpeedLimits {
                down_kbps: number("speed-limit-down", 0),
                down_enabled: flag("speed-limit-down-enabled"),
                up_kbps: number("speed-limit-up", 0),
                up_enabled: flag("speed-limit-up-enabled"),
            },
            incomplete_dir: v["incomplete-dir"].as_str().unwrap_or_default().to_string(),
            incomplete_dir_enabled: flag("incomplete-dir-enabled")
                && v["incomplete-dir"].as_str().is_some_and(|d| !d.is_empty()),
            seed_ratio_limited: flag("seedRatioLimited"),
            seed_ratio_limit: v["seedRatioLimit"]
                .as_f64()
                .filter(|r| valid_ratio(*r))
                .unwrap_or(d.seed_ratio_limit),
            idle_seeding_limited: flag("idle-seeding-limit-enabled"),
            idle_seeding_minutes: number("idle-seeding-limit", d.idle_seeding_minutes),
            download_queue_enabled: flag("download-queue-enabled"),
            download_queue_size: queue("download-queue-size", d.download_queue_size),
            seed_queue_enabled: flag("seed-queue-enabled"),
            seed_queue_size: queue("seed-queue-size", d.seed_queue_size),
        }
    }
}

/// `session-get`.
pub(crate) fn session_get(engine: &mut dyn Engine) -> Value {
    let p = engine.peer_settings();
    let mut v = engine.settings().to_json();
    let rest = json!({
        "version": format!("unchoke {}", env!("CARGO_PKG_VERSION")),
        "rpc-version": RPC_VERSION,
        "rpc-version-minimum": RPC_VERSION_MINIMUM,
        "download-dir": engine.download_dir(),
        // Features not built yet, reported as off so clients do not offer them as on.
        // transmission-remote -si prints its LIMITS section only when every one of these
        // is there.
        "alt-speed-enabled": false,
        "alt-speed-down": 0,
        "alt-speed-up": 0,
        "alt-speed-time-enabled": false,
        "alt-speed-time-begin": 540,
        "alt-speed-time-end": 1020,
        "alt-speed-time-day": 127,
        "peer-limit-global": 200,
        "peer-limit-per-torrent": 50,
        "peer-port": p.port,
        "start-added-torrents": true,
        "rename-partial-files": false,
        "encryption": "preferred",
        "dht-enabled": p.dht,
        "pex-enabled": true,
        "lpd-enabled": p.lsd,
        "utp-enabled": false,
        "port-forwarding-enabled": false,
        "units": {
            "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"],
            "speed-bytes": SPEED_UNIT,
            "size-units": ["kB", "MB", "GB", "TB"],
            "size-bytes": 1000,
            "memory-units": ["KiB", "MiB", "GiB", "TiB"],
            "memory-bytes": 1024,
        },
    });
    if let (Value::Object(v), Value::Object(rest)) = (&mut v, rest) {
        v.extend(rest);
    }
    v
}

/// `session-set`: every value checked, then the whole new settings handed to the engine
/// once (nothing when nothing changed).
pub(crate) fn session_set(engine: &mut dyn Engine, args: &Value) -> Result<Value, String> {
    let now = engine.settings();
    let new = now.with(args)?;
    if new != now {
        engine.set_settings(new)?;
    }
    Ok(json!({}))
}
