//! Protocol encryption's costs (`unchoke_core::mse`): RC4 over a 16 KiB block (what every
//! piece payload on an RC4 connection costs each way, applied in place), and one whole MSE
//! handshake between the two roles (two 768-bit modular exponentiations per side, the
//! keystream discards, the hashes) — what each encrypted connection costs to set up.

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use unchoke_core::mse::{CRYPTO_PLAINTEXT, CRYPTO_RC4, Handshake, Served};

const BLOCK: usize = 16 * 1024;
const INFO_HASH: [u8; 20] = [7; 20];

/// One handshake, initiator and receiver in step; returns whether both finished.
fn handshake(seed: u64) -> bool {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut a = Handshake::initiator(INFO_HASH, CRYPTO_RC4 | CRYPTO_PLAINTEXT, b"hs", &mut rng);
    let mut b = Handshake::receiver(Served::new([INFO_HASH]), CRYPTO_RC4, &mut rng);
    let (mut a_done, mut b_done) = (false, false);
    for _ in 0..4 {
        let mut to_b = BytesMut::from(&a.take_output()[..]);
        b_done |= matches!(b.feed(&mut to_b), Ok(Some(_)));
        let mut to_a = BytesMut::from(&b.take_output()[..]);
        a_done |= matches!(a.feed(&mut to_a), Ok(Some(_)));
    }
    a_done && b_done
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("mse");
    // The keystream of a finished handshake, as a connection holds it.
    let mut rng = fastrand::Rng::with_seed(1);
    let mut a = Handshake::initiator(INFO_HASH, CRYPTO_RC4, b"", &mut rng);
    let mut b = Handshake::receiver(Served::new([INFO_HASH]), CRYPTO_RC4, &mut rng);
    let mut cipher = None;
    for _ in 0..4 {
        let mut to_b = BytesMut::from(&a.take_output()[..]);
        if let Ok(Some(done)) = b.feed(&mut to_b) {
            cipher = done.send;
        }
        let mut to_a = BytesMut::from(&b.take_output()[..]);
        let _ = a.feed(&mut to_a);
    }
    let Some(mut cipher) = cipher else {
        panic!("the bench's handshake did not settle on RC4");
    };
    let mut block = vec![0u8; BLOCK];
    rng.fill(&mut block);
    group.throughput(Throughput::Bytes(BLOCK as u64));
    group.bench_function("rc4_16KiB_in_place", |b| {
        b.iter(|| cipher.apply(black_box(&mut block)))
    });
    group.throughput(Throughput::Elements(1));
    let mut seed = 0;
    group.bench_function("handshake_both_roles", |b| {
        b.iter(|| {
            seed += 1;
            assert!(handshake(seed));
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
