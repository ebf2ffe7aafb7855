//! End-to-end transfer over loopback TCP inside one process (see
//! `unchoke_benches::loopback`): a seed on 127.0.0.1 and, per iteration, a fresh leecher on
//! 127.0.0.2 downloading a 64 MiB single-file torrent (1 MiB pieces) into a fresh temporary
//! directory, both on the same runtime (mio, then smol). An iteration is timed from starting
//! the leecher client to its session's "torrent complete" (every piece verified, every block
//! handed to the disk); its shutdown and clean-up are not timed. The first transfer of each
//! runtime also checks the downloaded file's SHA-1.
//!
//! Seed and leecher share the machine's cores; the leecher's writes end in the page cache.
//! 10 samples of one transfer each (flat sampling): about 5 s per runtime plus set-up.

use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use unchoke_benches::loopback::{LoopbackSwarm, Runtime};

const SIZE: u64 = 64 << 20;
const PIECE_LENGTH: u32 = 1 << 20;
/// Far beyond a transfer's normal time (well under a second), short enough to fail
/// visibly if a transfer stalls.
const TIMEOUT: Duration = Duration::from_secs(120);

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("loopback_64MiB");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(SIZE));
    for runtime in Runtime::ALL {
        let mut swarm = match LoopbackSwarm::start(runtime, SIZE, PIECE_LENGTH) {
            Ok(s) => s,
            Err(e) => panic!("{}: cannot start the seed: {e}", runtime.name()),
        };
        let mut first = true;
        group.bench_function(runtime.name(), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    match swarm.transfer(TIMEOUT, first) {
                        Ok(t) => total += t,
                        Err(e) => panic!("{}: transfer failed: {e}", runtime.name()),
                    }
                    first = false;
                }
                total
            })
        });
        if let Err(e) = swarm.shutdown() {
            eprintln!("{}: seed shutdown: {e}", runtime.name());
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
