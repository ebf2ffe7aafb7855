//! The words of seeding limits and the download/seed queue: what a user sets
//! ([`SeedLimits`], [`QueueLimits`]) and which limit stopped a seed ([`SeedLimit`]). The
//! rules that apply them are the session's (`session/seed_limits.rs`, `session/queue.rs`).

use std::time::Duration;

/// One seeding limit as a torrent (or the session) holds it: follow the session's, a value
/// of its own, or none at all. Transmission's `seedRatioMode` / `seedIdleMode` are these
/// three: 0 = [`Limit::Session`], 1 = [`Limit::Own`], 2 = [`Limit::Unlimited`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Limit<T> {
    /// Per torrent: whatever the session's limit is, now and after it changes. For the
    /// session-wide limits themselves there is nothing above to follow: read as
    /// [`Limit::Unlimited`].
    #[default]
    Session,
    /// No limit, whatever the session's is.
    Unlimited,
    /// This value.
    Own(T),
}

impl<T: Copy> Limit<T> {
    /// The value in force when the session-wide limit is `session` (`None`: no limit).
    pub fn resolve(self, session: Limit<T>) -> Option<T> {
        match self {
            Limit::Own(v) => Some(v),
            Limit::Unlimited => None,
            Limit::Session => match session {
                Limit::Own(v) => Some(v),
                Limit::Session | Limit::Unlimited => None,
            },
        }
    }
}

/// When a seed stops by itself: the session-wide defaults
/// ([`super::SessionConfig::seed_limits`]) or one torrent's own
/// ([`crate::session::Session::set_seed_limits`]). Each limit applies only while the
/// torrent is seeding (every wanted piece verified) and running (neither paused nor
/// queued); the first reached pauses it ([`super::Event::SeedLimitReached`]).
///
/// `Default` is every limit [`Limit::Session`]: per torrent, follow the session; for the
/// session, no limit.
#[derive(Clone, Copy, Debug, Default)]
pub struct SeedLimits {
    /// Upload ratio: the torrent stops once `uploaded ≥ ratio × max(downloaded, bytes of
    /// its wanted pieces)`. A torrent that was complete when added downloaded nothing, so
    /// its ratio is counted against its size (the wanted part of it). 0 stops a seed at
    /// once. Must be finite and not negative.
    pub ratio: Limit<f64>,
    /// Seeding time: how long it may seed, counted afresh each time it starts seeding
    /// (completes, is resumed, or leaves the queue).
    pub seeding_time: Limit<Duration>,
    /// Idle time: how long it may seed without uploading a payload byte, counted from when
    /// it started seeding or last uploaded.
    pub idle: Limit<Duration>,
}

impl SeedLimits {
    /// No limit at all, whatever the session's are.
    pub const UNLIMITED: SeedLimits = SeedLimits {
        ratio: Limit::Unlimited,
        seeding_time: Limit::Unlimited,
        idle: Limit::Unlimited,
    };

    /// Whether every value is usable: a ratio finite and not negative.
    pub fn is_valid(&self) -> bool {
        match self.ratio {
            Limit::Own(r) => r.is_finite() && r >= 0.0,
            Limit::Session | Limit::Unlimited => true,
        }
    }
}

// Ratios are compared by `f64::total_cmp`, an equivalence on every `f64` (NaN included), so
// `Eq` holds and `SessionConfig` stays `Eq`.
impl PartialEq for SeedLimits {
    fn eq(&self, other: &Self) -> bool {
        let ratio = match (self.ratio, other.ratio) {
            (Limit::Own(a), Limit::Own(b)) => a.total_cmp(&b).is_eq(),
            (a, b) => std::mem::discriminant(&a) == std::mem::discriminant(&b),
        };
        ratio && self.seeding_time == other.seeding_time && self.idle == other.idle
    }
}

impl Eq for SeedLimits {}

/// Which seeding limit stopped a torrent ([`super::Event::SeedLimitReached`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedLimit {
    /// Its upload ratio reached the limit.
    Ratio,
    /// It seeded for as long as allowed.
    SeedingTime,
    /// It uploaded nothing for as long as allowed.
    Idle,
}

/// How many torrents of each kind run at once; the others wait in the queue
/// ([`crate::session::TorrentState::Queued`]) in the order they were added. `None`: no
/// limit. Downloads (magnet links fetching their metadata included) and seeds are counted
/// apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most torrents downloading (or fetching metadata) at once.
    pub max_downloading: Option<usize>,
    /// Most torrents seeding at once.
    pub max_seeding: Option<usize>,
}

/// Payload bytes a torrent moved in earlier runs of the program embedding the session
/// (kept by it across restarts, as Transmission keeps `uploadedEver`): counted by its
/// ratio limit and reported in [`crate::torrent::TorrentStats`]'s `uploaded_ever` and
/// `downloaded_ever`, never in what trackers are told (an announce counts one run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferTotals {
    /// Bytes sent.
    pub uploaded: u64,
    /// Bytes received.
    pub downloaded: u64,
}
