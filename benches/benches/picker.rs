//! The picker mid-download (see `unchoke_benches::picker_state`: 256 KiB pieces, 30 %
//! verified, 64 pieces in progress with every block requested, peers with random bitfields
//! and 10 % seeds).
//!
//! One iteration is one `Picker::pick_blocks` call by a connected peer (peers drawn at
//! random). `pick_1` asks for one block — the call a connection makes each time a block
//! arrives and its pipeline has room for one more; about one call in 16 opens a new piece
//! (rarest first) and the others continue it. `refill_16` asks for 16 blocks at once (a
//! pipeline refilled after a choke/unchoke). Picks are timed in batches of 256 blocks; after
//! each batch the requests are withdrawn (`request_cancelled`, untimed) so every batch
//! starts from the same state instead of running the download to its end.
//!
//! Series: pieces 1,000 / 10,000 / 100,000 at 200 peers, and peers 20 / 200 / 2,000 at
//! 10,000 pieces. Picking a block should not grow with the number of pieces.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use unchoke_benches::picker_state::PickerScenario;
use unchoke_core::picker::{BlockRequest, PeerKey};

/// Blocks picked between two untimed resets.
const BATCH_BLOCKS: usize = 256;

/// Times `iters` calls of `pick_blocks(max)`, resetting the state every batch.
fn timed_picks(s: &mut PickerScenario, iters: u64, max: usize, order: &[PeerKey]) -> Duration {
    let calls_per_batch = (BATCH_BLOCKS / max.max(1)).max(1) as u64;
    let mut out: Vec<BlockRequest> = Vec::with_capacity(BATCH_BLOCKS);
    let mut picked: Vec<(PeerKey, usize)> = Vec::with_capacity(calls_per_batch as usize);
    let mut total = Duration::ZERO;
    let mut done = 0u64;
    let mut cursor = 0usize;
    while done < iters {
        let n = (iters - done).min(calls_per_batch);
        out.clear();
        picked.clear();
        let start = Instant::now();
        for _ in 0..n {
            let k = order[cursor % order.len()];
            cursor += 1;
            s.pick(k, max, &mut out);
            picked.push((k, out.len()));
        }
        total += start.elapsed();
        black_box(&out);
        let mut from = 0;
        for &(k, end) in &picked {
            s.unpick(k, &out[from..end]);
            from = end;
        }
        done += n;
    }
    total
}

fn scenario(pieces: u32, peers: usize) -> (PickerScenario, Vec<PeerKey>) {
    let s = match PickerScenario::build(pieces, peers, 0x5eed) {
        Ok(s) => s,
        Err(e) => panic!("cannot build the picker scenario: {e}"),
    };
    let mut rng = fastrand::Rng::with_seed(9);
    let order = (0..4096).map(|_| rng.u32(..peers as u32)).collect();
    (s, order)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("picker_pieces");
    for pieces in [1_000u32, 10_000, 100_000] {
        let (mut s, order) = scenario(pieces, 200);
        group.bench_with_input(BenchmarkId::new("pick_1", pieces), &pieces, |b, _| {
            b.iter_custom(|iters| timed_picks(&mut s, iters, 1, &order))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("picker_peers");
    for peers in [20usize, 200, 2_000] {
        let (mut s, order) = scenario(10_000, peers);
        group.bench_with_input(BenchmarkId::new("pick_1", peers), &peers, |b, _| {
            b.iter_custom(|iters| timed_picks(&mut s, iters, 1, &order))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("picker");
    let (mut s, order) = scenario(10_000, 200);
    group.bench_function("refill_16", |b| {
        b.iter_custom(|iters| timed_picks(&mut s, iters, 16, &order))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
