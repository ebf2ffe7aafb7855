//! The swarm simulator's speed: one whole simulated distribution per iteration — a server
//! and N peers running real sessions over the virtual network until every peer has the
//! 4 MiB file (64 KiB pieces, 256 blocks; peers upload 64 KiB/s, the server ten times that,
//! downloads as fast as the server: the study's proportions with `F/u` = 64 s, since the
//! study's `F/u` = 1 h on 4 MiB would mean links too slow for the 30 s request time-out).
//! Throughput is in
//! simulated block transfers, so the figure reads as blocks per wall second. Series: 5, 20
//! and 50 peers (the cost per block grows with N: `have` messages to every connection and a
//! wake-up per session per virtual second). The study itself (`unchoke simulate`) records
//! the large runs in RESULTS.md.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use unchoke_sim::{SimConfig, Simulation};

fn config(peers: usize) -> SimConfig {
    let mut c = SimConfig::study(peers, 4 * 1024 * 1024);
    c.piece_length = 64 * 1024;
    c.peer_upload = 64.0 * 1024.0;
    c.server_upload = 10.0 * c.peer_upload;
    c.peer_download = c.server_upload;
    c
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sim_swarm");
    group.sample_size(10);
    for peers in [5usize, 20, 50] {
        // Deterministic: every iteration simulates the same swarm, so the block count of
        // one run is the count of all.
        let blocks = Simulation::new(config(peers))
            .map(|s| s.run().blocks)
            .unwrap_or(0);
        group.throughput(Throughput::Elements(blocks));
        group.bench_with_input(BenchmarkId::from_parameter(peers), &peers, |b, &n| {
            b.iter(|| Simulation::new(config(n)).map(|s| s.run().blocks))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
