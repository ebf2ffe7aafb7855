//! One simulated swarm, with the swarm's upload utilisation over time: where the measured
//! distribution time loses against the lower bound (start-up, the middle, the end).
//!
//! ```sh
//! cargo run --release -p unchoke-sim --example sim_timeline -- PEERS [FILE_MIB] [PIECE_KIB]
//! ```
//!
//! With `UNCHOKE_SIM_DHT=1` the peers find each other through the DHT instead of the tracker.
//!
//! Defaults: 30 peers, the study's 64 MiB file in 64 KiB pieces, `F/u` = 1 h, `u_s = 10·u`.
//! Each column is `time: utilisation (peers complete)` over the preceding ~2 minutes.

use std::time::Instant;

use unchoke_sim::{SimConfig, Simulation};

fn arg<T: std::str::FromStr>(n: usize) -> Option<T> {
    std::env::args().nth(n).and_then(|a| a.parse().ok())
}

fn main() {
    let peers: usize = arg(1).unwrap_or(30);
    let mib: u64 = arg(2).unwrap_or(64);
    let mut config = SimConfig::study(peers, mib * 1024 * 1024);
    if let Some(kib) = arg::<u32>(3) {
        config.piece_length = kib * 1024;
    }
    config.dht = std::env::var_os("UNCHOKE_SIM_DHT").is_some();
    let capacity = config.server_upload + peers as f64 * config.peer_upload;
    let mut sim = match Simulation::new(config) {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let (mut last_t, mut last_up) = (0.0f64, 0u64);
    let mut columns = Vec::new();
    while !sim.run_for(20_000) {
        let p = sim.progress();
        let t = p.now.as_secs_f64();
        if t - last_t >= 120.0 {
            let used = (p.uploaded - last_up) as f64 / ((t - last_t) * capacity);
            columns.push(format!("{t:.0}s: {used:.2} ({})", p.completed));
            (last_t, last_up) = (t, p.uploaded);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!("{}", columns.join("\n"));
    let r = sim.report();
    println!(
        "peers {} complete {} time {:.1} s bound {:.1} s ratio {:.3} utilisation {:.3} busy {:.3} \
         wasted {} B blocks {} events {} wall {wall:.2} s ({:.0} blocks/s)",
        r.peers,
        r.complete,
        r.distribution_time.map_or(f64::NAN, |d| d.as_secs_f64()),
        r.bounds.p2p,
        r.ratio.unwrap_or(f64::NAN),
        r.utilisation,
        r.upload_busy,
        r.wasted,
        r.blocks,
        r.events,
        r.blocks as f64 / wall,
    );
    for v in &r.violations {
        println!("violation: {v}");
    }
}
