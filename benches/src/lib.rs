//! Inputs shared by the benchmarks in `benches/benches/` (results in `RESULTS.md`).
//!
//! Generators here are deterministic (seeded) and built outside the timed code, so a
//! benchmark measures only the code under test. Each module's unit tests check that the
//! input really has the shape the benchmark's text claims.
//!
//! - [`multi_file_torrent`]: a large `.torrent` (bench `bencode`).
//! - [`wire_mix`]: a download's peer-message stream (bench `wire`).
//! - [`picker_state`]: a picker mid-download with many peers (bench `picker`).
//! - [`choker_peers`]: a torrent's peers as the choker sees them (bench `choker`).
//! - [`loopback`]: an in-process seed and leech over 127.0.0.x (bench `loopback`).

pub mod choker_peers;
pub mod loopback;
pub mod picker_state;
pub mod wire_mix;

/// A canonical (keys sorted) multi-file `.torrent` with `files` files spread over nested
/// directories (`d<i % 50>/s<i % 7>/file-<i>.dat`), lengths between 1 byte and 100 kB, and
/// `piece_length`-byte pieces whose hashes are filler bytes. Returns the file's bytes.
pub fn multi_file_torrent(files: usize, piece_length: u32) -> Vec<u8> {
    fn put_str(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(s.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(s);
    }
    fn put_int(out: &mut Vec<u8>, n: u64) {
        out.push(b'i');
        out.extend_from_slice(n.to_string().as_bytes());
        out.push(b'e');
    }
    let lengths: Vec<u64> = (0..files as u64).map(|i| i * 7919 % 100_000 + 1).collect();
    let total: u64 = lengths.iter().sum();
    let pieces = total.div_ceil(u64::from(piece_length.max(1)));

    let mut out = Vec::new();
    out.push(b'd');
    put_str(&mut out, b"announce");
    put_str(&mut out, b"http://127.0.0.1:6969/announce");
    put_str(&mut out, b"created by");
    put_str(&mut out, b"unchoke-benches");
    put_str(&mut out, b"info");
    out.push(b'd');
    put_str(&mut out, b"files");
    out.push(b'l');
    for (i, len) in lengths.iter().enumerate() {
        // Keys of a file dict in sorted order: length, path.
        out.push(b'd');
        put_str(&mut out, b"length");
        put_int(&mut out, *len);
        put_str(&mut out, b"path");
        out.push(b'l');
        put_str(&mut out, format!("d{}", i % 50).as_bytes());
        put_str(&mut out, format!("s{}", i % 7).as_bytes());
        put_str(&mut out, format!("file-{i}.dat").as_bytes());
        out.push(b'e');
        out.push(b'e');
    }
    out.push(b'e');
    put_str(&mut out, b"name");
    put_str(&mut out, b"bench");
    put_str(&mut out, b"piece length");
    put_int(&mut out, u64::from(piece_length));
    put_str(&mut out, b"pieces");
    let hashes: Vec<u8> = (0..pieces * 20).map(|i| (i * 31 % 251) as u8).collect();
    put_str(&mut out, &hashes);
    out.push(b'e');
    out.push(b'e');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_torrent_is_canonical_and_parses() {
        let bytes = multi_file_torrent(500, 1 << 20);
        // Canonical: strict decoding accepts it.
        assert!(unchoke_core::bencode::decode_strict(&bytes).is_ok());
        let m = unchoke_core::metainfo::Metainfo::from_bytes(&bytes).unwrap();
        assert_eq!(m.info.files.len(), 500);
        assert_eq!(m.info.files[12].path, ["d12", "s5", "file-12.dat"]);
        let total: u64 = (0..500u64).map(|i| i * 7919 % 100_000 + 1).sum();
        assert_eq!(m.info.total_length, total);
        assert_eq!(u64::from(m.info.piece_count()), total.div_ceil(1 << 20));
    }
}
