//! The peer wire codec on the message mix of a download (see `unchoke_benches::wire_mix`:
//! per 256 KiB piece 16 `piece`s, 16 `request`s, 2 `have`s, a `cancel` every 4 pieces, a
//! keep-alive and a PEX message every 64 pieces; `piece`s are 99.9 % of the bytes).
//!
//! - `recv_path`: what a driver does with received bytes, minus the syscall: the stream
//!   arrives in 64 KiB reads appended to the connection's `BytesMut` (the copy `read` makes),
//!   and after each read every complete message is decoded (`piece` data split out without
//!   copying) and dropped. Throughput: stream bytes.
//! - `decode_control`: `Decoder::decode` alone over the mix's non-`piece` messages, from a
//!   filled buffer: the per-message cost (throughput in messages).
//! - `encode_copy`: `Message::encode` of the whole mix into one buffer (copies every block).
//! - `encode_upload`: the upload path: `encode_piece_header` for `piece`s (the block itself
//!   goes out as its own `Bytes` in a vectored write, never copied) and `Message::encode`
//!   for the rest. Throughput counts the frames' full wire size, so it reads as "wire bytes
//!   the encoder keeps up with", not as a memory bandwidth.

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use unchoke_benches::wire_mix;
use unchoke_core::wire::{Decoder, Limits, Message, encode_piece_header};

/// Pieces in the mix: 16 MiB of blocks, 2,198 messages (1,174 of them not `piece`s).
const PIECES: u32 = 64;
/// The read size of the drivers' receive path.
const READ_CHUNK: usize = 64 * 1024;

fn bench(c: &mut Criterion) {
    let mix = wire_mix::download_mix(PIECES, 42);
    let stream = wire_mix::encode_stream(&mix);
    let decoder = Decoder::new(wire_mix::geometry(), Limits::default());

    let mut group = c.benchmark_group("wire");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("recv_path", |b| {
        b.iter(|| {
            let mut buf = BytesMut::with_capacity(2 * READ_CHUNK);
            let mut messages = 0usize;
            for chunk in stream.chunks(READ_CHUNK) {
                buf.extend_from_slice(black_box(chunk));
                while let Ok(Some(m)) = decoder.decode(&mut buf) {
                    black_box(&m);
                    messages += 1;
                }
            }
            messages
        })
    });

    let mut out = BytesMut::with_capacity(stream.len());
    group.bench_function("encode_copy", |b| {
        b.iter(|| {
            out.clear();
            for m in black_box(&mix) {
                m.encode(&mut out);
            }
            out.len()
        })
    });
    let mut out = BytesMut::with_capacity(64 * 1024);
    group.bench_function("encode_upload", |b| {
        b.iter(|| {
            out.clear();
            let mut wire = 0usize;
            for m in black_box(&mix) {
                match m {
                    Message::Piece { index, begin, data } => {
                        encode_piece_header(*index, *begin, data.len() as u32, &mut out);
                        wire += data.len();
                    }
                    other => other.encode(&mut out),
                }
            }
            wire + out.len()
        })
    });

    let control = wire_mix::control_messages(&mix);
    let control_stream = wire_mix::encode_stream(&control);
    group.throughput(Throughput::Elements(control.len() as u64));
    group.bench_function("decode_control", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&control_stream[..]),
            |buf| {
                let mut messages = 0usize;
                while let Ok(Some(m)) = decoder.decode(buf) {
                    black_box(&m);
                    messages += 1;
                }
                messages
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
