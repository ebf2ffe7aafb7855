//! The `metainfo` and `metainfo_structured` targets: `.torrent` parsing.
//!
//! Invariants checked whenever [`Metainfo::from_bytes`] accepts an input:
//! 1. `info_hash == SHA-1(info_bytes)` (computed here with the `sha1` crate; for a v2-only
//!    torrent the first 20 bytes of SHA-256, checked by the `metainfo_v2` target), and
//!    `info_bytes` are exactly the raw bytes of the top-level `info` value in the input (the
//!    input decodes as bencode, and its `info` is a dictionary whose span is `info_bytes`).
//! 2. `Info::from_bytes(info_bytes)` and `Metainfo::from_info_bytes(info_bytes)` (the
//!    magnet-link path) accept them and give the same `Info` and info-hash.
//! 3. `piece_length > 0`; `piece_hashes.len() == piece_count() == ⌈total_length /
//!    piece_length⌉` (v1 and hybrid; a v2-only torrent has no v1 pieces).
//! 4. Files: at least one; the first starts at offset 0, each next one where the previous
//!    ends, and the lengths sum to `total_length`. A single-file torrent has one file whose
//!    path is `[name]`.
//! 5. Every path component, and the name, is sane: non-empty, not `.` or `..`, no `/`, no
//!    `\`, no NUL.
//!
//! And for `metainfo_structured`, when the generated spec is clean (see
//! [`crate::torrent::TorrentSpec::expected`]): parsing must succeed and give back the name,
//! piece length, hashes, files, private flag, announce URL and info bytes that were written.

use sha1::Digest;
use unchoke_core::bencode;
use unchoke_core::metainfo::{Info, Metainfo};

use crate::torrent::TorrentSpec;

/// Parses `data` as a `.torrent` file and checks every invariant of an accepted one.
pub fn metainfo(data: &[u8]) {
    if let Ok(m) = Metainfo::from_bytes(data) {
        check_accepted(data, &m);
    }
    // The info dictionary parser on its own must hold the same invariants (it is what a
    // magnet download feeds with metadata received from peers).
    if let Ok(info) = Info::from_bytes(data) {
        check_info(&info);
    }
}

/// Builds a valid-looking torrent from `data` (via [`arbitrary`]) and parses it.
pub fn metainfo_structured(data: &[u8]) {
    let mut u = arbitrary::Unstructured::new(data);
    let Ok(spec) = u.arbitrary::<TorrentSpec>() else {
        return;
    };
    check_spec(&spec);
}

/// Parses the torrent `spec` describes and checks it (the shared body of
/// [`metainfo_structured`], also used by the replay harness).
pub fn check_spec(spec: &TorrentSpec) {
    let bytes = spec.to_bytes();
    let parsed = Metainfo::from_bytes(&bytes);
    if let Ok(m) = &parsed {
        check_accepted(&bytes, m);
    }
    let Some(want) = spec.expected() else {
        return;
    };
    let m = match parsed {
        Ok(m) => m,
        Err(e) => panic!("a clean torrent was refused: {e}\nspec: {spec:?}"),
    };
    let info = &m.info;
    assert_eq!(info.name, want.name, "name");
    assert_eq!(info.piece_length, want.piece_length, "piece length");
    assert_eq!(info.piece_hashes, want.piece_hashes, "piece hashes");
    assert_eq!(info.private, want.private, "private flag");
    assert_eq!(info.multi_file, want.multi_file, "multi-file flag");
    assert_eq!(info.total_length, want.total_length, "total length");
    let files: Vec<(Vec<String>, u64)> = info
        .files
        .iter()
        .map(|f| (f.path.clone(), f.length))
        .collect();
    assert_eq!(files, want.files, "files");
    assert_eq!(m.announce, want.announce, "announce");
    assert_eq!(&m.info_bytes[..], &want.info_bytes[..], "info bytes");
}

/// Invariants 1–5 for a torrent `Metainfo::from_bytes(input)` accepted.
fn check_accepted(input: &[u8], m: &Metainfo) {
    if !m.is_v2_only() {
        let digest: [u8; 20] = sha1::Sha1::digest(&m.info_bytes).into();
        assert_eq!(
            m.info_hash.0, digest,
            "info_hash is not SHA-1 of info_bytes"
        );
    }

    let top = match bencode::decode(input) {
        Ok(v) => v,
        Err(e) => panic!("accepted a torrent that is not bencode: {e}"),
    };
    let Some(info_value) = top.as_dict().and_then(|d| d.get(b"info")) else {
        panic!("accepted a torrent without a top-level info key");
    };
    let Some(raw) = info_value.as_dict().and_then(|d| d.raw()) else {
        panic!(
            "accepted a torrent whose info is a {}",
            info_value.type_name()
        );
    };
    assert!(
        raw == &m.info_bytes[..],
        "info_bytes ({} bytes) are not the info dictionary as written ({} bytes)",
        m.info_bytes.len(),
        raw.len()
    );

    match Info::from_bytes(&m.info_bytes) {
        Ok(again) => assert!(
            again == m.info,
            "Info::from_bytes(info_bytes) differs from Metainfo's info"
        ),
        Err(e) => panic!("Info::from_bytes refused the info_bytes Metainfo accepted: {e}"),
    }
    // The magnet path (metadata fetched from peers) must name the same torrent.
    match Metainfo::from_info_bytes(&m.info_bytes) {
        Ok(bare) => {
            assert_eq!(
                bare.info_hash, m.info_hash,
                "from_info_bytes hashes differently"
            );
            assert!(bare.info == m.info, "from_info_bytes parses differently");
        }
        Err(e) => panic!("from_info_bytes refused the info_bytes from_bytes accepted: {e}"),
    }
    check_info(&m.info);
}

/// Invariants 3–5 for one parsed `Info`.
fn check_info(info: &Info) {
    assert!(info.piece_length > 0, "piece length 0 accepted");
    let v2_only = info.piece_hashes.is_empty();
    let want_pieces = info.total_length.div_ceil(u64::from(info.piece_length));
    assert!(
        v2_only || info.piece_hashes.len() as u64 == want_pieces,
        "{} piece hashes for {} bytes in {}-byte pieces",
        info.piece_hashes.len(),
        info.total_length,
        info.piece_length
    );
    assert_eq!(
        info.piece_count() as usize,
        info.piece_hashes.len(),
        "piece_count() disagrees with the hashes"
    );

    check_component(&info.name, "name");
    assert!(!info.files.is_empty(), "a torrent with no files accepted");
    let mut offset = 0u64;
    for (i, f) in info.files.iter().enumerate() {
        assert_eq!(
            f.offset, offset,
            "file {i} starts at {} not {offset}",
            f.offset
        );
        assert!(!f.path.is_empty(), "file {i} has an empty path");
        for c in &f.path {
            check_component(c, "file path");
        }
        offset = match offset.checked_add(f.length) {
            Some(o) => o,
            None => panic!("file lengths overflow u64"),
        };
    }
    assert_eq!(
        offset, info.total_length,
        "file lengths do not sum to total_length"
    );
    if !info.multi_file {
        assert_eq!(
            info.files.len(),
            1,
            "single-file torrent with several files"
        );
        assert_eq!(
            info.files[0].path,
            vec![info.name.clone()],
            "single file's path"
        );
    }
}

fn check_component(c: &str, what: &str) {
    assert!(
        !c.is_empty()
            && c != "."
            && c != ".."
            && !c.contains('/')
            && !c.contains('\\')
            && !c.contains('\0'),
        "unsafe {what} component {c:?} accepted"
    );
}
