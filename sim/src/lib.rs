//! A deterministic swarm simulator: many real [`Session`](unchoke_core::session::Session)s over a virtual network.
//!
//! Every host runs the same `Session` the drivers run; the simulator plays the driver's
//! part for all of them at once. It carries their bytes over a fluid network model
//! (`network`: upload and download capacities shared fairly, a latency per host), answers
//! their disk actions from one canonical copy of the file (`payload`), and answers their
//! announces with the core's own [`TrackerServer`](unchoke_core::tracker::server::TrackerServer) over the real HTTP encoding. Time is
//! virtual and jumps from event to event, so an hour-long swarm of a thousand peers runs in
//! seconds to minutes of wall time. Same [`SimConfig`] (seed included) ⇒ same result.
//!
//! It drives every rule the session owns as the real runtimes do: it reports what each
//! socket accepted (`handle_sent`, as a unit leaves the sender's link, and the partial
//! progress of a slow unit before each timer), so upload holding and slow-reader drops
//! run; peer events are on; a black-holed host ([`DisruptionKind::BlackHole`]) leaves
//! dials unanswered until the session's connect time-out cancels them; and every host
//! that leaves, and every host at the end, is `close`d and driven until `is_drained()`
//! ([`PolicyReport`] counts all of it, and the digest covers it). The sim's tracker is
//! HTTP only: a UDP announce URL's datagrams reach nobody and time out as the session
//! rules, and a tracker name never resolves.
//!
//! It exists to check the mission's claim with our own picker and choker: the time to get a
//! file to N peers stays bounded as N grows ([`study`] has the theory's bounds). Hosts may
//! also leave mid-download with part of the file and come back later ([`Churn`]), and the
//! server may leave once the peers hold a full copy between them.
//!
//! ```
//! use std::time::Duration;
//! use unchoke_sim::{SimConfig, Simulation};
//!
//! let mut config = SimConfig::study(3, 1024 * 1024);
//! config.piece_length = 64 * 1024;
//! let report = Simulation::new(config).expect("valid").run();
//! assert!(report.complete);
//! let ratio = report.ratio.expect("complete");
//! assert!(ratio >= 1.0, "never faster than the lower bound");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod datagram;
mod due_heap;
mod engine;
pub mod lab;
mod network;
mod payload;
pub mod study;
pub mod tcp_like;
pub mod transport_study;

use std::time::Duration;

use unchoke_core::session::{EncryptionPolicy, SessionConfig};

pub use engine::Simulation;
pub use study::Bounds;

/// Hosts that leave once in the middle of their download and come back later.
#[derive(Clone, Debug, PartialEq)]
pub struct Churn {
    /// Share of the peers that leave (0 to 1). Each leaving peer leaves after verifying a
    /// random number of pieces (at least one, never all), so it takes a subset with it.
    pub fraction: f64,
    /// How long a leaving peer stays away before it rejoins with the pieces it had.
    pub away: Duration,
}

/// Something that happens to one host at a given virtual time (for adversarial schedules:
/// tests and the `swarm` fuzz target).
#[derive(Clone, Debug, PartialEq)]
pub struct Disruption {
    /// When, from the start.
    pub at: Duration,
    /// Which host: 0 is the server, `1..=peers` the peers.
    pub host: usize,
    /// What happens.
    pub kind: DisruptionKind,
}

/// What a [`Disruption`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisruptionKind {
    /// The host leaves (gracefully: the tracker hears `stopped`). Ignored while away.
    Leave,
    /// The host comes back with the pieces it had verified. Ignored while present.
    Rejoin,
    /// From now on the host serves every block with its first byte flipped.
    Corrupt,
    /// The host's link carries nothing for this long (both directions), then recovers.
    Stall(Duration),
    /// For this long the host answers no dial: it neither accepts nor refuses (a
    /// black-holed address), so diallers wait until their session's connect time-out
    /// gives up ([`unchoke_core::session::Action::CancelConnect`]). Dials still held when it ends
    /// are accepted then; a dialler that gave up drops the late connection.
    BlackHole(Duration),
    /// For this long the host reads nothing from its connections (its download capacity
    /// is zero; it still uploads): senders' sockets accept nothing more, so their sessions'
    /// slow-reader rule drops it once `send_stall_timeout` passes.
    StopReading(Duration),
}

/// What to simulate. [`SimConfig::study`] gives the defaults of the distribution-time study.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Size of the one file, in bytes.
    pub file_size: u64,
    /// Piece length (a power of two, at least 16 KiB).
    pub piece_length: u32,
    /// Number of downloading peers (the server comes on top).
    pub peers: usize,
    /// The server's upload capacity, bytes per second.
    pub server_upload: f64,
    /// Each peer's upload capacity, bytes per second.
    pub peer_upload: f64,
    /// Each peer's download capacity, bytes per second.
    pub peer_download: f64,
    /// One-way latency of each host's link; a message between two hosts takes the sum of
    /// theirs.
    pub latency: Duration,
    /// Peers leaving and rejoining, if any.
    pub churn: Option<Churn>,
    /// Whether the server leaves for good once the online peers hold every piece between
    /// them (the swarm must then finish on its own).
    pub server_departs: bool,
    /// Seed of every random choice (content, sessions, tracker, churn).
    pub seed: u64,
    /// Virtual time after which the simulation stops, complete or not.
    pub time_limit: Duration,
    /// Settings of every host's session (the drivers' defaults unless changed, except
    /// encryption, off by default: the study measures the protocol, and an MSE key
    /// exchange per connection adds CPU to the run without changing the swarm).
    pub session: SessionConfig,
    /// Scheduled departures, returns, corruption and stalls (none by default).
    pub disruptions: Vec<Disruption>,
    /// Peers find each other through the DHT (BEP 5) instead of the tracker: every
    /// session runs a DHT node, joining through the server's, and announces to no tracker
    /// (default `false`).
    pub dht: bool,
    /// Share of the peers (0 to 1) that are free riders: real sessions that never upload
    /// (see [`SimConfig::free_rider_session`]). Exactly `round(free_riders · peers)` peers,
    /// chosen from the seed ([`SimConfig::free_rider_hosts`]); default 0.
    pub free_riders: f64,
    /// Bandwidth classes of the peers, for a heterogeneous swarm; empty (the default): every
    /// peer uploads [`SimConfig::peer_upload`] and downloads [`SimConfig::peer_download`].
    /// Peers are dealt to the classes in proportion to their shares
    /// ([`SimConfig::peer_classes`]).
    pub classes: Vec<BandwidthClass>,
    /// When the peers arrive (default: all at once, a flash crowd).
    pub arrivals: Arrivals,
    /// Packet loss and delay variation on every path (default: none).
    pub loss: Loss,
    /// How long a peer seeds after it completes before it leaves for good; `None` (the
    /// default): every peer stays and seeds until the swarm stops. Real swarms lose their
    /// finished peers (many leave at once); a departure only takes upload away, so the
    /// P2P bound still holds.
    pub seed_time: Option<Duration>,
}

/// Packet loss and delay variation on every path ([`SimConfig::loss`]), drawn from a
/// generator of their own (seeded from [`SimConfig::seed`], so turning them on changes no
/// other random choice).
///
/// - **Datagrams** (the DHT's UDP) are lost with probability `packet_loss` each, and each
///   one that arrives takes an extra delay drawn uniformly from `0..=jitter`, so two sent
///   back to back may arrive in the other order.
/// - **TCP connections** never lose or reorder what they deliver (TCP retransmits), but loss
///   caps their throughput: each flow carries at most `1.22 · MSS / (RTT · √p)` bytes per
///   second (Mathis et al. 1997, "The macroscopic behavior of the TCP congestion avoidance
///   algorithm"), with a 1,460-byte MSS and the path's round trip (twice the sum of the two
///   hosts' latencies, plus the mean jitter). The flow model has no packets, so that cap is
///   how loss shows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Loss {
    /// Probability (0 to 1, below 1) that a packet is lost.
    pub packet_loss: f64,
    /// The most extra one-way delay a datagram may take.
    pub jitter: Duration,
}

impl Loss {
    /// The largest rate a TCP flow can sustain on a path with this one-way latency (bytes
    /// per second; infinite without loss). See [`Loss`].
    pub fn tcp_cap(&self, one_way: Duration) -> f64 {
        if self.packet_loss <= 0.0 {
            return f64::INFINITY;
        }
        let rtt = (2.0 * one_way.as_secs_f64() + self.jitter.as_secs_f64()).max(1e-4);
        1.22 * 1460.0 / (rtt * self.packet_loss.sqrt())
    }
}

/// When the peers join the swarm ([`SimConfig::arrivals`]). The server is there from the
/// start either way.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Arrivals {
    /// Every peer at time 0.
    #[default]
    FlashCrowd,
    /// One after another, host 1 first, with independent exponential gaps of this mean (a
    /// Poisson process), the first gap before host 1 included.
    Poisson {
        /// The mean time between two arrivals.
        mean_gap: Duration,
    },
}

/// Peers with their own link capacities, for a heterogeneous swarm
/// ([`SimConfig::classes`]).
#[derive(Clone, Debug, PartialEq)]
pub struct BandwidthClass {
    /// This class's share of the peers (the shares of all classes are normalised to 1).
    pub share: f64,
    /// Upload capacity of each peer of the class, bytes per second.
    pub upload: f64,
    /// Download capacity of each peer of the class, bytes per second.
    pub download: f64,
}

/// Most bandwidth classes in one run.
pub const MAX_CLASSES: usize = 16;

impl SimConfig {
    /// The distribution-time study for `peers` peers and a file of `file_size` bytes:
    /// `F/u` = 1 hour, `u_s = 10·u`, `d = u_s`, 64 KiB pieces, 10 ms latency per host, no
    /// churn, seed 1, and a limit of 10 hours of virtual time.
    pub fn study(peers: usize, file_size: u64) -> SimConfig {
        let (server_upload, peer_upload, peer_download) = study::default_rates(file_size);
        SimConfig {
            file_size,
            piece_length: study::DEFAULT_PIECE_LENGTH,
            peers,
            server_upload,
            peer_upload,
            peer_download,
            latency: Duration::from_millis(10),
            churn: None,
            server_departs: false,
            seed: 1,
            time_limit: Duration::from_secs(10 * 3600),
            session: SessionConfig {
                encryption: EncryptionPolicy::Disable,
                ..SessionConfig::default()
            },
            disruptions: Vec::new(),
            dht: false,
            free_riders: 0.0,
            classes: Vec::new(),
            arrivals: Arrivals::FlashCrowd,
            seed_time: None,
            loss: Loss::default(),
        }
    }

    /// When each peer arrives, in microseconds of virtual time (`result[i]` is host
    /// `i + 1`'s): all 0 for a flash crowd; for Poisson arrivals the running sum of
    /// exponential gaps drawn from a generator of its own, seeded from
    /// [`SimConfig::seed`], so the arrivals change no other random choice of the run.
    pub fn arrival_times(&self) -> Vec<u64> {
        match self.arrivals {
            Arrivals::FlashCrowd => vec![0; self.peers],
            Arrivals::Poisson { mean_gap } => {
                let mean = mean_gap.as_secs_f64() * 1e6;
                let mut rng = fastrand::Rng::with_seed(self.seed ^ 0x6172_7269_7661_6c73);
                let mut at = 0.0f64;
                (0..self.peers)
                    .map(|_| {
                        // 1 − U lies in (0, 1]: its logarithm is finite.
                        at += -(1.0 - rng.f64()).ln() * mean;
                        at.round() as u64
                    })
                    .collect()
            }
        }
    }

    /// The class of every peer (`result[i]` is host `i + 1`'s index in
    /// [`SimConfig::classes`]); empty without classes. Class `k` gets
    /// `share_k / Σ shares · N` peers rounded by largest remainder (ties to the lower
    /// index), so the counts add up to `N` exactly; which peers is drawn from a generator
    /// of its own, seeded from [`SimConfig::seed`], so adding classes changes no other
    /// random choice of the run.
    pub fn peer_classes(&self) -> Vec<usize> {
        if self.classes.is_empty() || self.peers == 0 {
            return Vec::new();
        }
        let total: f64 = self.classes.iter().map(|c| c.share).sum();
        let exact: Vec<f64> = self
            .classes
            .iter()
            .map(|c| c.share / total * self.peers as f64)
            .collect();
        let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
        let mut left = self.peers.saturating_sub(counts.iter().sum());
        let mut by_remainder: Vec<usize> = (0..exact.len()).collect();
        by_remainder.sort_by(|&a, &b| {
            let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
            rb.total_cmp(&ra).then(a.cmp(&b))
        });
        for k in by_remainder {
            if left == 0 {
                break;
            }
            counts[k] += 1;
            left -= 1;
        }
        let mut classes: Vec<usize> = counts
            .iter()
            .enumerate()
            .flat_map(|(k, &n)| std::iter::repeat_n(k, n))
            .collect();
        let mut rng = fastrand::Rng::with_seed(self.seed ^ 0x636c_6173_7365_7321);
        rng.shuffle(&mut classes);
        classes
    }

    /// Upload and download capacity of every peer (`result[i]` is host `i + 1`'s): its
    /// class's, or [`SimConfig::peer_upload`] and [`SimConfig::peer_download`] without
    /// classes.
    pub fn peer_rates(&self) -> Vec<(f64, f64)> {
        if self.classes.is_empty() {
            return vec![(self.peer_upload, self.peer_download); self.peers];
        }
        self.peer_classes()
            .into_iter()
            .map(|k| (self.classes[k].upload, self.classes[k].download))
            .collect()
    }

    /// How many peers free-ride: `round(free_riders · peers)`.
    pub fn free_rider_count(&self) -> usize {
        if self.free_riders.is_nan() || self.free_riders <= 0.0 {
            return 0;
        }
        ((self.free_riders.min(1.0) * self.peers as f64).round() as usize).min(self.peers)
    }

    /// The hosts (`1..=peers`) that free-ride, sorted. Drawn from a generator of its own,
    /// seeded from [`SimConfig::seed`], so adding free riders changes no other random choice
    /// of the run (churn, sessions, tracker).
    pub fn free_rider_hosts(&self) -> Vec<usize> {
        let count = self.free_rider_count();
        if count == 0 {
            return Vec::new();
        }
        let mut rng = fastrand::Rng::with_seed(self.seed ^ 0x6672_6565_7269_6465);
        let mut hosts: Vec<usize> = (1..=self.peers).collect();
        rng.shuffle(&mut hosts);
        hosts.truncate(count);
        hosts.sort_unstable();
        hosts
    }

    /// The session settings of a free rider: [`SimConfig::session`] with no regular upload
    /// slot and a request queue of zero, so it serves no block to anyone.
    ///
    /// Why this model: the core's choker cannot turn its optimistic slot off by
    /// configuration (`ChokerConfig` has `regular_slots` but the optimistic slot is always
    /// drawn), so a free rider still unchokes one peer at a time; with
    /// `max_queued_uploads = 0` every request that peer sends is refused (a reject under
    /// BEP 6, or dropped without it) and no payload byte leaves. It also advertises a
    /// `reqq` of 0, which peers read as 1. Giving the host zero upload capacity in the
    /// network instead would leave the blocks it queued stuck on its links, and with them
    /// every control message behind them (its own requests, haves), and its session would
    /// drop its peers as stalled: that models a broken link, not a selfish client.
    pub fn free_rider_session(&self) -> SessionConfig {
        let mut session = self.session.clone();
        session.choker.regular_slots = 0;
        session.max_queued_uploads = 0;
        session
    }

    fn validate(&self) -> Result<(), SimError> {
        let rate_ok = |r: f64| r.is_finite() && r > 0.0;
        if !rate_ok(self.server_upload) || !rate_ok(self.peer_upload) {
            return Err(SimError::Invalid(
                "upload capacities must be positive and finite".into(),
            ));
        }
        if !rate_ok(self.peer_download) {
            return Err(SimError::Invalid(
                "the peers' download capacity must be positive and finite".into(),
            ));
        }
        if self.peers > MAX_PEERS {
            return Err(SimError::Invalid(format!(
                "{} peers: at most {MAX_PEERS} are simulated",
                self.peers
            )));
        }
        if let Some(d) = self.disruptions.iter().find(|d| d.host > self.peers) {
            return Err(SimError::Invalid(format!(
                "a disruption names host {} but there are only {} peers",
                d.host, self.peers
            )));
        }
        if !(self.loss.packet_loss.is_finite() && (0.0..1.0).contains(&self.loss.packet_loss)) {
            return Err(SimError::Invalid(format!(
                "packet loss must be from 0 to below 1, not {}",
                self.loss.packet_loss
            )));
        }
        if self.loss.jitter > Duration::from_secs(60) {
            return Err(SimError::Invalid(format!(
                "a jitter of {:?} is more than a minute",
                self.loss.jitter
            )));
        }
        if self.classes.len() > MAX_CLASSES {
            return Err(SimError::Invalid(format!(
                "{} bandwidth classes: at most {MAX_CLASSES}",
                self.classes.len()
            )));
        }
        if let Some(c) = self
            .classes
            .iter()
            .find(|c| !(c.share.is_finite() && c.share > 0.0))
        {
            return Err(SimError::Invalid(format!(
                "a bandwidth class's share must be positive, not {}",
                c.share
            )));
        }
        if self
            .classes
            .iter()
            .any(|c| !rate_ok(c.upload) || !rate_ok(c.download))
        {
            return Err(SimError::Invalid(
                "a bandwidth class's capacities must be positive and finite".into(),
            ));
        }
        if let Arrivals::Poisson { mean_gap } = self.arrivals {
            if mean_gap.is_zero() || mean_gap > Duration::from_secs(24 * 3600) {
                return Err(SimError::Invalid(format!(
                    "the mean time between arrivals must be above 0 and at most a day, not {mean_gap:?}"
                )));
            }
        }
        if !(0.0..=1.0).contains(&self.free_riders) {
            return Err(SimError::Invalid(format!(
                "free-rider fraction {} is not between 0 and 1",
                self.free_riders
            )));
        }
        if let Some(churn) = &self.churn {
            if !(0.0..=1.0).contains(&churn.fraction) {
                return Err(SimError::Invalid(format!(
                    "churn fraction {} is not between 0 and 1",
                    churn.fraction
                )));
            }
        }
        Ok(())
    }
}

/// The most peers one simulation runs (addresses are 127.x.y.z).
pub const MAX_PEERS: usize = 1 << 20;

/// Why a simulation cannot start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// A parameter is out of range.
    #[error("invalid simulation: {0}")]
    Invalid(String),
}

/// Where a running simulation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Virtual time.
    pub now: Duration,
    /// Peers that completed.
    pub completed: usize,
    /// Peers in all.
    pub peers: usize,
    /// Blocks delivered so far.
    pub blocks: u64,
    /// Events processed so far.
    pub events: u64,
    /// Payload bytes uploaded so far, by every host.
    pub uploaded: u64,
}

/// The outcome of a simulation.
#[derive(Clone, Debug, PartialEq)]
pub struct SimReport {
    /// Number of downloading peers.
    pub peers: usize,
    /// Every peer completed, with every piece verified, and no rule was broken.
    pub complete: bool,
    /// When the last peer completed (`None` unless `complete`).
    pub distribution_time: Option<Duration>,
    /// When each peer completed, if it did.
    pub completion_times: Vec<Option<Duration>>,
    /// Each peer's download time, from its arrival ([`SimConfig::arrivals`]) to its
    /// completion, if it completed (the completion time itself for a flash crowd).
    pub download_times: Vec<Option<Duration>>,
    /// The theory's bounds for this swarm.
    pub bounds: Bounds,
    /// Measured distribution time over the P2P lower bound (`None` unless complete and the
    /// bound is positive).
    pub ratio: Option<f64>,
    /// Payload bytes uploaded over what the whole swarm's upload capacity could have sent
    /// in the distribution time.
    pub utilisation: f64,
    /// Share of the swarm's upload capacity-time during which its hosts had something to
    /// send (at least one block queued on a connection). `utilisation / upload_busy` is how
    /// much of that the receivers' download shares let through.
    pub upload_busy: f64,
    /// Payload bytes the server uploaded.
    pub server_uploaded: u64,
    /// Payload bytes the peers uploaded.
    pub peers_uploaded: u64,
    /// Payload bytes received and thrown away (endgame duplicates, late copies).
    pub wasted: u64,
    /// Blocks delivered.
    pub blocks: u64,
    /// Events processed.
    pub events: u64,
    /// DHT datagrams delivered (0 unless [`SimConfig::dht`]).
    pub datagrams: u64,
    /// DHT datagrams lost on the way ([`SimConfig::loss`]).
    pub datagrams_lost: u64,
    /// Announces that reached the tracker.
    pub tracker_announces: u64,
    /// Departures (churn and the server's).
    pub leaves: u64,
    /// Returns after a departure.
    pub rejoins: u64,
    /// Pieces that failed verification (only expected from corrupt hosts).
    pub hash_failures: u64,
    /// Peers banned for corrupt data (only expected from corrupt hosts).
    pub bans: u64,
    /// Broken rules (a block served that the host lacked, a piece verified twice, a hash
    /// failure or a ban when no host corrupts data, more than 4 + 1 unchoked, a receive
    /// buffer holding a complete message after the session read it…). Empty when sound.
    pub violations: Vec<String>,
    /// What the rules the sessions own did: peer events, dials given up, socket
    /// accounting, resume saves, closes.
    pub policies: PolicyReport,
    /// A fingerprint of the run (completion times, bytes per host, events, and every count
    /// of [`SimReport::policies`] with each close's drain time): equal for equal
    /// configurations.
    pub digest: u64,
    /// Virtual time when the swarm stopped (every peer complete, the time limit, or
    /// nothing left to happen), before the final close.
    pub end: Duration,
    /// The swarm sampled every [`SAMPLE_INTERVAL`] of virtual time, from the first interval's
    /// end until the swarm stopped (observation only: sampling adds no event and changes
    /// no other figure of the report).
    pub samples: Vec<Sample>,
    /// The samples averaged over the steady phase (see [`Steady`]); `None` when no sample
    /// falls in it.
    pub steady: Option<Steady>,
    /// What free riders got (`None` without free riders).
    pub free_riding: Option<FreeRiding>,
    /// How each bandwidth class fared, in the order of [`SimConfig::classes`] (empty
    /// without classes).
    pub classes: Vec<ClassOutcome>,
}

/// How the peers of one bandwidth class fared ([`SimReport::classes`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ClassOutcome {
    /// Peers in the class.
    pub peers: usize,
    /// Their upload capacity, bytes per second.
    pub upload: f64,
    /// Their download capacity, bytes per second.
    pub download: f64,
    /// Median completion time of those that completed.
    pub median_completion: Option<Duration>,
    /// Payload they uploaded, all of them together.
    pub uploaded: u64,
    /// Payload they received (duplicates included), all of them together.
    pub downloaded: u64,
}

/// How often the swarm is sampled ([`SimReport::samples`]), in virtual time.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

/// The swarm at one instant: how the pieces' copies are spread among the peers, and how
/// much upload the past interval used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Virtual time of the sample.
    pub at: Duration,
    /// The fewest copies of any piece among the online peers (the server not counted).
    pub min_copies: u32,
    /// The most copies of any piece among the online peers.
    pub max_copies: u32,
    /// The normalised Shannon entropy of the copies: with `c_i` the copies of piece `i`
    /// among online peers, `P` pieces and `C = Σ c_i`, `H = −Σ (c_i/C)·ln(c_i/C) / ln P`
    /// (terms with `c_i = 0` count 0). It lies in `[0, 1]`: 1 when every piece has as many
    /// copies as every other (ideal diversity), lower as copies concentrate on fewer
    /// pieces; 0 when no peer holds anything (and 1 for a one-piece file once held).
    pub entropy: f64,
    /// Payload bytes uploaded during the interval ending here over what the contributors'
    /// upload capacity (the server and every peer that is not a free rider, online or not)
    /// could have sent in it. A block still on its link counts with the bytes that have
    /// flowed of it so far, so each interval is credited with exactly what it moved and the
    /// figure never exceeds 1 (up to rounding).
    pub utilisation: f64,
}

/// The samples' averages over the steady phase: from the first sample at which every
/// piece has at least one copy among the online peers (the server's first copy is out)
/// until the last sample before the first peer completes — the phase in which peers trade
/// with each other and rarest first shapes the spread. Without a completion, until the
/// swarm stopped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Steady {
    /// Its first sample's time.
    pub from: Duration,
    /// Its last sample's time.
    pub until: Duration,
    /// Samples averaged.
    pub samples: usize,
    /// Mean of [`Sample::entropy`].
    pub entropy: f64,
    /// Mean of [`Sample::min_copies`].
    pub min_copies: f64,
    /// Mean of [`Sample::max_copies`].
    pub max_copies: f64,
    /// Mean of [`Sample::utilisation`].
    pub utilisation: f64,
}

/// What the free riders of a run received (see [`SimConfig::free_riders`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FreeRiding {
    /// Free riders in the run.
    pub free_riders: usize,
    /// Payload bytes free riders received (duplicates included).
    pub received: u64,
    /// Their share of all payload the peers received over the whole run. Since every peer
    /// that completes receives one copy, a complete run gives about the equal share
    /// `free_riders / peers` whatever the choker did: see `share_while_leeching`.
    pub share: f64,
    /// Their share of the payload the peers received while every peer was still
    /// downloading (up to the last sample before the first completion): the phase where
    /// only tit-for-tat, the optimistic slot and the server decide who gets what, before
    /// completed peers seed to everyone. `None` if no sample fell before it.
    pub share_while_leeching: Option<f64>,
    /// Payload bytes free riders uploaded (0 unless the model leaks).
    pub uploaded: u64,
    /// Median completion time of the free riders that completed.
    pub median_completion: Option<Duration>,
    /// Median completion time of the contributing peers that completed.
    pub contributor_median_completion: Option<Duration>,
}

/// Counts of what the sessions' own rules did during a run, over every host. The
/// simulator drives them as the real runtimes do: `send_accounting` and `peer_events` are
/// on for every simulated session, whatever [`SimConfig::session`] says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyReport {
    /// [`unchoke_core::session::Event::PeerConnected`] events.
    pub peer_connected: u64,
    /// [`unchoke_core::session::Event::PeerDisconnected`] events.
    pub peer_disconnected: u64,
    /// Of those, peers dropped for not reading
    /// ([`unchoke_core::session::DisconnectReason::SlowReader`]).
    pub slow_reader_drops: u64,
    /// [`unchoke_core::session::Event::ConnectFailed`] events.
    pub connect_failed: u64,
    /// Of those, dials the session gave up on itself (its connect time-out).
    pub connect_timeouts: u64,
    /// [`unchoke_core::session::Action::CancelConnect`]s carried out.
    pub cancelled_dials: u64,
    /// Connections accepted after their dialler had given up, closed at once.
    pub late_accepts_dropped: u64,
    /// `handle_sent` calls (what a socket accepted), and the bytes they reported.
    pub sent_reports: u64,
    /// Bytes reported by `handle_sent`.
    pub sent_bytes: u64,
    /// [`unchoke_core::session::Action::SaveResume`]s carried out (all succeed).
    pub saves: u64,
    /// Sessions closed ([`unchoke_core::session::Session::close`]): hosts leaving, and every host
    /// still in the swarm at the end.
    pub closes: u64,
    /// Closes that ended with `is_drained()` within `close_timeout` (a close that does not
    /// is a violation).
    pub drained: u64,
    /// The longest time from `close` to `is_drained()`.
    pub longest_drain: Duration,
}
