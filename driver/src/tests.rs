//! `prepare_torrent`: what it refuses before hashing, what it never creates, and how fast
//! a raised cancel flag stops it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;

/// A single-file torrent `name` of `len` bytes in pieces of `piece`; the hashes are of
/// zeros, so a sparse file of that length verifies.
fn metainfo(name: &str, len: u64, piece: u32) -> Metainfo {
    let count = len.div_ceil(u64::from(piece));
    let zero_piece: [u8; 20] = sha1::Sha1::digest(vec![0u8; piece as usize]).into();
    let last_len = len - (count - 1) * u64::from(piece);
    let last: [u8; 20] = sha1::Sha1::digest(vec![0u8; last_len as usize]).into();
    let mut pieces = Vec::new();
    for i in 0..count {
        pieces.extend_from_slice(if i + 1 == count { &last } else { &zero_piece });
    }
    let mut b = format!(
        "d4:infod6:lengthi{len}e4:name{}:{name}12:piece lengthi{piece}e6:pieces{}:",
        name.len(),
        pieces.len()
    )
    .into_bytes();
    b.extend_from_slice(&pieces);
    b.extend_from_slice(b"ee");
    Metainfo::from_bytes(&b).expect("test torrent parses")
}

use sha1::Digest;

fn config() -> ClientConfig {
    ClientConfig {
        disk_threads: 2,
        ..ClientConfig::default()
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn read_only_refuses_a_missing_or_wrong_directory_before_hashing() {
    let root = tempfile::tempdir().expect("tempdir");
    let m = metainfo("payload.bin", 3_000_000, 1 << 18);
    let mut add = AddTorrent::new(m, root.path().join("nowhere"));
    add.access = Access::ReadOnly;
    add.require_complete = true;
    let e = prepare_torrent(&config(), &add, &|_| {}).expect_err("missing directory");
    assert!(matches!(e, ClientError::NoDataDir { .. }), "{e}");
    assert!(
        e.to_string().contains(
            "nowhere does not exist; it must contain DATA_DIR/payload.bin, 3,000,000 bytes"
        ),
        "{e}"
    );
    assert!(!root.path().join("nowhere").exists());

    // A longer file: listed, with what the directory must hold; nothing hashed or changed.
    std::fs::write(root.path().join("payload.bin"), vec![1u8; 4_000_000]).expect("write");
    add.save_path = root.path().to_path_buf();
    let hashed = std::sync::atomic::AtomicU32::new(0);
    let e = prepare_torrent(&config(), &add, &|n| {
        hashed.store(n, Ordering::Relaxed);
    })
    .expect_err("longer file");
    assert!(matches!(e, ClientError::DataMismatch { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("payload.bin is 4,000,000 bytes; the torrent says 3,000,000"),
        "{e}"
    );
    assert_eq!(hashed.into_inner(), 0, "refused before hashing");
    assert_eq!(listing(root.path()), vec!["payload.bin"]);
    assert_eq!(
        std::fs::metadata(root.path().join("payload.bin"))
            .expect("stat")
            .len(),
        4_000_000
    );

    // --partial: a missing file is fine, and nothing is created for it.
    std::fs::remove_file(root.path().join("payload.bin")).expect("rm");
    add.require_complete = false;
    let p = prepare_torrent(&config(), &add, &|_| {}).expect("partial seed");
    assert_eq!(p.check.pieces_have, 0);
    assert_eq!(listing(root.path()), Vec::<String>::new());
}

#[test]
fn a_save_path_that_is_a_file_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let afile = root.path().join("afile");
    std::fs::write(&afile, b"x").expect("write");
    let add = AddTorrent::new(metainfo("p", 100, 64), &afile);
    let e = prepare_torrent(&config(), &add, &|_| {}).expect_err("a file");
    assert!(matches!(e, ClientError::SaveDirIsFile { .. }), "{e}");
    assert!(
        e.to_string().ends_with("afile is a file; give a directory"),
        "{e}"
    );
    assert_eq!(std::fs::read(&afile).expect("read"), b"x");
}

#[test]
fn a_raised_cancel_flag_stops_a_long_check_at_once_and_creates_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    // 4 GiB sparse: hashing it all would take far longer than the test allows.
    let len: u64 = 4 << 30;
    let file = std::fs::File::create(data.join("big.bin")).expect("create");
    file.set_len(len).expect("sparse file");
    drop(file);
    let add = AddTorrent::new(metainfo("big.bin", len, 1 << 18), &data);
    let cancel = add.cancel.clone();
    // Real time, from the one clock adapter (shared with the raiser: it is `Copy`).
    let started = crate::Clock::start();
    let raiser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        cancel.store(true, Ordering::SeqCst);
        started.elapsed()
    });
    let e = prepare_torrent(&config(), &add, &|_| {}).expect_err("cancelled");
    let stopped = started.elapsed();
    let raised = raiser.join().expect("raiser thread");
    assert!(matches!(e, ClientError::Cancelled), "{e}");
    assert!(
        stopped.saturating_sub(raised) < Duration::from_millis(500),
        "stopped {:?} after the flag rose",
        stopped.saturating_sub(raised)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        listing(&data),
        vec!["big.bin"],
        "no resume, nothing created"
    );

    // In a directory that does not exist yet, an interrupted download creates nothing.
    let fresh = root.path().join("fresh");
    let add = AddTorrent::new(metainfo("big.bin", len, 1 << 18), &fresh);
    add.cancel.store(true, Ordering::SeqCst);
    let e = prepare_torrent(&config(), &add, &|_| {}).expect_err("cancelled");
    assert!(matches!(e, ClientError::Cancelled), "{e}");
    assert!(!fresh.exists());
}

#[test]
fn a_torrent_beyond_the_shape_limits_is_refused_before_anything_is_created() {
    let root = tempfile::tempdir().expect("tempdir");
    let save = root.path().join("downloads");
    let add = AddTorrent::new(metainfo("payload.bin", 100_000, 1 << 14), &save);
    let mut cfg = config();
    cfg.shape.max_files = 0;
    let e = prepare_torrent(&cfg, &add, &|_| {}).expect_err("one file is over a limit of 0");
    assert!(
        matches!(
            e,
            ClientError::Shape(ShapeError::TooManyFiles { files: 1, max: 0 })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("--max-files"), "{e}");
    // "payload.bin" is 11 bytes: a 10-byte path limit refuses it too.
    cfg.shape.max_files = 1;
    cfg.shape.max_path_len = 10;
    let e = prepare_torrent(&cfg, &add, &|_| {}).expect_err("path over the limit");
    assert!(
        matches!(
            e,
            ClientError::Shape(ShapeError::PathTooLong { len: 11, .. })
        ),
        "{e}"
    );
    assert!(
        !save.exists(),
        "nothing may be created for a refused torrent"
    );
    // Within the limits the same torrent is set up: the save directory is made, its
    // files come with the data (created lazily by the storage).
    cfg.shape.max_path_len = 11;
    prepare_torrent(&cfg, &add, &|_| {}).expect("within the limits");
    assert!(save.is_dir());
    assert_eq!(listing(&save), Vec::<String>::new());
}

/// The upload read cache reuses evicted piece buffers; a reused buffer must hold the new
/// piece's bytes, and a piece whose block is still held (queued for a peer) must never be
/// overwritten.
#[test]
fn the_read_cache_reuses_only_buffers_no_one_holds_and_serves_the_right_bytes() {
    use crate::disk::ReadCache;
    use unchoke_core::wire::BlockRequest;
    const PIECE: u32 = 1 << 20;
    const PIECES: u32 = 40; // 40 MiB: more than twice the cache's 16 MiB
    let dir = tempfile::tempdir().expect("tempdir");
    let byte_at = |i: u64| (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    let data: Vec<u8> = (0..u64::from(PIECE * PIECES)).map(byte_at).collect();
    std::fs::write(dir.path().join("f.bin"), &data).expect("write data");
    let m = metainfo("f.bin", data.len() as u64, PIECE);
    let storage = unchoke_storage::FileStorage::open(
        &m.info,
        PieceHashes::from_metainfo(&m).expect("v1 hashes"),
        dir.path(),
        unchoke_storage::StorageOptions::default(),
    )
    .expect("open");
    let cache = ReadCache::default();
    let torrent = TorrentId(0);
    let read = |index: u32, begin: u32| {
        let block = BlockRequest {
            index,
            begin,
            length: 16 * 1024,
        };
        cache.read(torrent, &storage, block).expect("read")
    };
    let expect = |index: u32, begin: u32| {
        let at = (index * PIECE + begin) as usize;
        &data[at..at + 16 * 1024]
    };
    // A block of piece 0 kept alive, as if still queued for a peer.
    let held = read(0, 0);
    for round in 0..2 {
        for index in 0..PIECES {
            let begin = (index + round) % 64 * 16 * 1024;
            assert_eq!(
                &read(index, begin)[..],
                expect(index, begin),
                "piece {index}"
            );
        }
    }
    assert_eq!(&held[..], expect(0, 0), "a held block was overwritten");
}

#[test]
fn a_resume_save_syncs_the_written_files_before_recording_them() {
    use crate::disk::{Completion, Job, ReadCache, run};
    use unchoke_core::bitfield::Bitfield;
    const PIECE: u32 = 16 * 1024;
    let dir = tempfile::tempdir().expect("tempdir");
    let m = metainfo("f.bin", u64::from(PIECE) * 2, PIECE);
    let storage = std::sync::Arc::new(
        unchoke_storage::FileStorage::open(
            &m.info,
            PieceHashes::from_metainfo(&m).expect("v1 hashes"),
            dir.path(),
            unchoke_storage::StorageOptions::default(),
        )
        .expect("open"),
    );
    storage
        .write_block(0, 0, &vec![0u8; PIECE as usize])
        .expect("write");
    assert!(storage.has_unflushed_writes());
    let mut have = Bitfield::new(2);
    have.set(0);
    let path = dir.path().join("f.resume");
    let done = run(
        Job::SaveResume {
            torrent: TorrentId(0),
            storage: storage.clone(),
            path: path.clone(),
            info_hash: m.info_hash,
            have,
            written: None,
        },
        &ReadCache::default(),
    );
    assert!(
        matches!(done, Completion::ResumeSaved { result: Ok(()), .. }),
        "{done:?}"
    );
    assert!(path.exists(), "the resume file was written");
    assert!(
        !storage.has_unflushed_writes(),
        "the resume data was saved before the data it records was synced"
    );
}
