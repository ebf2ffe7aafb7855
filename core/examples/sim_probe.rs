//! Probe.
use std::time::Instant;
use unchoke_core::sim::{SimConfig, Simulation};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let mb: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    let mut c = SimConfig::study(n, mb * 1024 * 1024);
    if let Some(pl) = args.get(3).and_then(|a| a.parse::<u32>().ok()) {
        c.piece_length = pl * 1024;
    }
    if let Some(mp) = std::env::var("MINPIPE").ok().and_then(|v| v.parse().ok()) {
        c.session.min_pipeline = mp;
    }
    let t = Instant::now();
    let cap = c.server_upload + n as f64 * c.peer_upload;
    let mut sim = Simulation::new(c).expect("ok");
    let mut last = (0.0f64, 0u64, 0usize);
    let mut series = Vec::new();
    while !sim.run_for(20_000) {
        let p = sim.progress();
        let t = p.now.as_secs_f64();
        if t - last.0 >= 120.0 {
            let u = (p.uploaded - last.1) as f64 / ((t - last.0) * cap);
            series.push(format!("{:.0}s:{:.2}({})", t, u, p.completed));
            last = (t, p.uploaded, p.completed);
        }
    }
    println!("{}", series.join(" "));
    let r = sim.report();
    let w = t.elapsed().as_secs_f64();
    println!(
        "n={n} complete={} D={:?} bound={:.1} ratio={:?} util={:.3} busy={:.3} blocks={} events={} wasted={} server={} peers={} wall={w:.2}s blocks/s={:.0} end={:?}",
        r.complete,
        r.distribution_time.map(|d| d.as_secs_f64()),
        r.bounds.p2p,
        r.ratio,
        r.utilisation,
        r.upload_busy,
        r.blocks,
        r.events,
        r.wasted,
        r.server_uploaded,
        r.peers_uploaded,
        r.blocks as f64 / w,
        r.end
    );
    for v in r.violations.iter().take(5) {
        println!("  {v}");
    }
}
