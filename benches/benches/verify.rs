//! Piece verification as the drivers do it: the piece is held as the 16 KiB `Bytes` blocks
//! it arrived in and hashed without concatenating them (`unchoke_core::embed::piece_sha1`, run
//! by the `Job::Verify` disk job), beside the bare `sha1` crate hashing the same bytes as one
//! contiguous buffer, and the BitTorrent v2 checks (the piece's SHA-256 merkle root; a
//! hybrid's SHA-1 and root) through the same job. 256 KiB and 4 MiB pieces; throughput in
//! piece bytes. The `sha1` crate
//! picks the CPU's SHA extensions (SHA-NI) at run time when present.

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sha1::{Digest, Sha1};
use std::hint::black_box;
use unchoke_core::embed::piece_sha1;
use unchoke_core::metainfo::merkle;
use unchoke_core::piece_hashes::V2PieceHash;
use unchoke_core::session::{PieceHash, TorrentId};
use unchoke_driver::disk::{self, Completion, Job, ReadCache};

const BLOCK: usize = 16 * 1024;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    let cache = ReadCache::default();
    for (label, size) in [("256KiB", 256 * 1024usize), ("4MiB", 4 << 20)] {
        let mut rng = fastrand::Rng::with_seed(size as u64);
        let mut contiguous = vec![0u8; size];
        rng.fill(&mut contiguous);
        let blocks: Vec<Bytes> = contiguous
            .chunks(BLOCK)
            .map(Bytes::copy_from_slice)
            .collect();
        let expected = PieceHash::v1(Sha1::digest(&contiguous).into());
        group.throughput(Throughput::Bytes(size as u64));

        group.bench_with_input(BenchmarkId::new("piece_sha1", label), &size, |b, _| {
            b.iter(|| piece_sha1(black_box(&blocks)))
        });
        group.bench_with_input(
            BenchmarkId::new("driver_verify_job", label),
            &size,
            |b, _| {
                b.iter(|| {
                    let job = Job::Verify {
                        torrent: TorrentId(0),
                        piece: 0,
                        expected: expected.clone(),
                        blocks: blocks.clone(),
                    };
                    match disk::run(job, &cache) {
                        Completion::Hashed { ok, .. } => ok,
                        _ => false,
                    }
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("sha1_contiguous", label), &size, |b, _| {
            b.iter(|| -> [u8; 20] { Sha1::digest(black_box(&contiguous)).into() })
        });
        // BitTorrent v2: the piece's merkle root over its 16 KiB leaves (SHA-256), and a
        // hybrid's both checks, through the same disk job.
        let leaves = size / BLOCK;
        let root = merkle::piece_root(&contiguous, leaves).expect("a whole piece");
        let v2 = V2PieceHash {
            root,
            leaves: leaves as u32,
            data_len: size as u32,
        };
        for (name, expected) in [
            (
                "driver_verify_job_v2",
                PieceHash {
                    v1: None,
                    v2: Some(v2),
                },
            ),
            (
                "driver_verify_job_hybrid",
                PieceHash {
                    v1: expected.v1,
                    v2: Some(v2),
                },
            ),
        ] {
            group.bench_with_input(BenchmarkId::new(name, label), &size, |b, _| {
                b.iter(|| {
                    let job = Job::Verify {
                        torrent: TorrentId(0),
                        piece: 0,
                        expected: expected.clone(),
                        blocks: blocks.clone(),
                    };
                    match disk::run(job, &cache) {
                        Completion::Hashed { ok, .. } => ok,
                        _ => false,
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
