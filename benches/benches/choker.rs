//! One regular choke round (`Choker::on_timeout` when a round is due) over a torrent's
//! peers (see `unchoke_benches::choker_peers`: 70 % interested, 10 % snubbed, 5 % new,
//! random rates with many ties at 0), while leeching (ranked by download rate). Every
//! iteration is the next round, 10 s later, so the optimistic slot rotates every third one,
//! as in a real session. Series: 100, 1,000 and 10,000 peers; throughput in peers per
//! second, so a flat figure means a linear cost.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use unchoke_benches::choker_peers::{self, NOW};
use unchoke_core::choker::{Choker, ChokerConfig};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("choker_round");
    for n in [100usize, 1_000, 10_000] {
        let peers = choker_peers::peers(n, 11);
        let mut choker = Choker::new(ChokerConfig::default(), NOW);
        let mut rng = fastrand::Rng::with_seed(12);
        let mut now = NOW;
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let decision = choker.on_timeout(now, false, black_box(&peers), &mut rng);
                now += Duration::from_secs(10);
                decision
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
