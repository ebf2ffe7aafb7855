//! Running the study: the plan every run shares, one simulation per swarm size on a pool
//! of threads, each publishing its progress for the display and stopping early on Ctrl-C. A run's outcome, success or failure, becomes one [`Row`].

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use unchoke_sim::{Arrivals, BandwidthClass, Churn, Loss, SimConfig, SimReport, Simulation};

use super::args::ChurnArg;
use super::display::Display;
use super::report::Row;

/// Everything every run of the study shares.
pub(super) struct Plan {
    /// Size of the file F in bytes.
    pub(super) file_size: u64,
    /// The piece length asked for; the simulator's default otherwise.
    pub(super) piece_length: Option<u32>,
    /// The server's upload rate u_s, bytes per second.
    pub(super) server_upload: f64,
    /// Every peer's upload rate u, bytes per second.
    pub(super) peer_upload: f64,
    /// Every peer's download rate d, bytes per second.
    pub(super) peer_download: f64,
    /// The one-way latency asked for; the simulator's default otherwise.
    pub(super) latency: Option<Duration>,
    /// Which peers leave mid-download, and for how long.
    pub(super) churn: Option<ChurnArg>,
    /// Whether the server leaves once the peers hold every piece between them.
    pub(super) server_departs: bool,
    /// The share of the peers that free-ride (0: none).
    pub(super) free_riders: f64,
    /// Whether peers find each other through the DHT instead of the tracker.
    pub(super) dht: bool,
    /// Bandwidth classes of the peers (empty: every peer has `peer_upload` and
    /// `peer_download`).
    pub(super) classes: Vec<BandwidthClass>,
    /// When the peers arrive.
    pub(super) arrivals: Arrivals,
    /// How long a peer seeds after completing before it leaves (`None`: to the end).
    pub(super) seed_time: Option<Duration>,
    /// Packet loss and datagram jitter on every path.
    pub(super) loss: Loss,
    /// The random seed asked for; the simulator's default otherwise.
    pub(super) seed: Option<u64>,
}

impl Plan {
    /// The simulator's configuration for `peers` peers: the study's defaults, with what
    /// the user chose.
    fn config(&self, peers: usize) -> SimConfig {
        let mut c = SimConfig::study(peers, self.file_size);
        c.server_upload = self.server_upload;
        c.peer_upload = self.peer_upload;
        c.peer_download = self.peer_download;
        if let Some(p) = self.piece_length {
            c.piece_length = p;
        }
        if let Some(l) = self.latency {
            c.latency = l;
        }
        if let Some(s) = self.seed {
            c.seed = s;
        }
        c.churn = self.churn.map(|c| Churn {
            fraction: c.fraction,
            away: c.away,
        });
        c.server_departs = self.server_departs;
        c.dht = self.dht;
        c.free_riders = self.free_riders;
        c.classes = self.classes.clone();
        c.arrivals = self.arrivals;
        c.seed_time = self.seed_time;
        c.loss = self.loss;
        c
    }

    /// The configuration of the run with `peers` peers, once the simulator has accepted
    /// it (without running it).
    pub(super) fn checked_config(&self, peers: usize) -> Result<SimConfig, String> {
        let config = self.config(peers);
        Simulation::new(config.clone()).map_err(|e| format!("the simulation cannot start: {e}"))?;
        Ok(config)
    }

    /// `F/u`: how long one peer needs to upload the file once.
    pub(super) fn one_upload_time(&self) -> f64 {
        self.file_size as f64 / self.peer_upload
    }
}

/// What one worker's simulation is doing now, for the progress display.
#[derive(Clone, Copy)]
pub(super) struct Running {
    /// The swarm size N being simulated.
    pub(super) peers: usize,
    /// The simulation's virtual time.
    pub(super) now: Duration,
    /// How many of its peers have the whole file.
    pub(super) completed: usize,
}

/// Runs the simulation for `peers` peers, publishing its progress into `slot`; `None`
/// when interrupted first.
fn simulate_one(
    plan: &Plan,
    peers: usize,
    slot: &Mutex<Option<Running>>,
    interrupted: &AtomicBool,
) -> Result<Option<SimReport>, String> {
    let mut sim = Simulation::new(plan.config(peers)).map_err(|e| e.to_string())?;
    // Events per call, adapted so one call takes about a tenth of a second: often enough
    // for the display and Ctrl-C, rarely enough to cost nothing.
    let mut chunk: u64 = 2_000;
    loop {
        let started = Instant::now();
        let finished = sim.run_for(chunk);
        let took = started.elapsed();
        if took < Duration::from_millis(50) {
            chunk = (chunk * 2).min(1 << 24);
        } else if took > Duration::from_millis(200) {
            chunk = (chunk / 2).max(100);
        }
        let p = sim.progress();
        if let Ok(mut s) = slot.lock() {
            *s = Some(Running {
                peers,
                now: p.now,
                completed: p.completed,
            });
        }
        if finished {
            return Ok(Some(sim.report()));
        }
        if interrupted.load(Ordering::SeqCst) {
            return Ok(None);
        }
    }
}

/// Runs every swarm size of `order` on `jobs` threads; returns the rows as they finish.
pub(super) fn run_all(
    plan: &Plan,
    order: &[usize],
    jobs: usize,
    display: &mut Display,
    interrupted: &AtomicBool,
) -> Vec<Row> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Running>>> = (0..jobs).map(|_| Mutex::new(None)).collect();
    let (tx, rx) = mpsc::channel::<Row>();
    let mut rows = Vec::with_capacity(order.len());
    std::thread::scope(|scope| {
        for slot in &slots {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    if interrupted.load(Ordering::SeqCst) {
                        return;
                    }
                    let Some(&peers) = order.get(next.fetch_add(1, Ordering::SeqCst)) else {
                        return;
                    };
                    let started = Instant::now();
                    // A panic in the simulator is its bug: report it as this run's failure
                    // rather than losing the run (the default hook already printed it).
                    let report = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        simulate_one(plan, peers, slot, interrupted)
                    }))
                    .unwrap_or_else(|_| Err("the simulator panicked".into()));
                    let wall = started.elapsed().as_secs_f64();
                    if let Ok(mut s) = slot.lock() {
                        *s = None;
                    }
                    // An interrupted run has no result: it is left out, not failed.
                    let Some(report) = report.transpose() else {
                        return;
                    };
                    // The run's own bounds: they count free riders and bandwidth
                    // classes as the simulator does (`SimConfig::bounds`).
                    let b = plan.config(peers).bounds();
                    let row = Row {
                        peers,
                        client_server: b.client_server,
                        p2p_bound: b.p2p,
                        wall,
                        report,
                    };
                    if tx.send(row).is_err() {
                        return;
                    }
                }
            });
        }
        // Only the workers hold senders now: the channel closes when the last one ends.
        drop(tx);
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(row) => {
                    display.finished(&row);
                    rows.push(row);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let running: Vec<Option<Running>> = slots
                .iter()
                .map(|s| s.lock().ok().and_then(|s| *s))
                .collect();
            display.tick(&running, rows.len(), order.len());
        }
    });
    rows
}
