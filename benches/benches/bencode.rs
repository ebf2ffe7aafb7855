//! Decoding speed of a large multi-file torrent (20,000 files in nested directories):
//! lenient vs strict bencode decoding, canonical re-encoding, and full `Metainfo` parsing
//! (which also validates every path and hashes the info dictionary). Throughput is the
//! torrent file's size, so the figures read as MB/s of `.torrent` input.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use unchoke_core::bencode;
use unchoke_core::metainfo::Metainfo;

const FILES: usize = 20_000;
const PIECE_LENGTH: u32 = 1 << 20;

fn bench(c: &mut Criterion) {
    let torrent = unchoke_benches::multi_file_torrent(FILES, PIECE_LENGTH);
    let mut group = c.benchmark_group("torrent_20k_files");
    group.throughput(Throughput::Bytes(torrent.len() as u64));
    group.bench_function("decode_lenient", |b| {
        b.iter(|| bencode::decode(black_box(&torrent)).map(|v| black_box(v).type_name()))
    });
    group.bench_function("decode_strict", |b| {
        b.iter(|| bencode::decode_strict(black_box(&torrent)).map(|v| black_box(v).type_name()))
    });
    if let Ok(value) = bencode::decode(&torrent) {
        group.bench_function("encode", |b| b.iter(|| bencode::encode(black_box(&value))));
    }
    group.bench_function("metainfo_from_bytes", |b| {
        b.iter(|| Metainfo::from_bytes(black_box(&torrent)).map(|m| m.info.files.len()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
