//! BitTorrent v2 (BEP 52) metadata against libtorrent: v2-only and hybrid torrents made by
//! libtorrent (single and multi-file, an empty file, odd sizes, several piece lengths) are
//! read by `unchoke info` with libtorrent's v1 and v2 info-hashes, magnet links included.
//! v2 transfers are `v2_transfer.rs`.
// Test helpers outside #[test] functions may unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{info_json, lt_make_v2 as lt_make, require_libtorrent, run, run_ok, write};

#[test]
fn info_hashes_equal_libtorrents() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let (multi, single) = common::v2_content(dir.path());
    let mut checked = 0;
    for kind in ["v2", "hybrid"] {
        for (content, what) in [(&multi, "multi"), (&single, "single")] {
            for piece_length in [16_384, 65_536] {
                let torrent = dir
                    .path()
                    .join(format!("{kind}-{what}-{piece_length}.torrent"));
                let (v1, v2) = lt_make(kind, content, &torrent, piece_length);
                let v = info_json(&torrent);
                let case = format!("{kind} {what} {piece_length}: {v}");
                assert_eq!(v["info_hash_v2"].as_str(), Some(v2.as_str()), "{case}");
                assert_eq!(v["info_hash"].as_str(), v1.as_deref(), "{case}");
                assert_eq!(v["meta_version"], 2, "{case}");
                assert_eq!(v["hybrid"], kind == "hybrid", "{case}");
                assert_eq!(v["piece_length"], piece_length, "{case}");
                let real: Vec<(&str, u64)> = v["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|f| f["padding"] == false)
                    .map(|f| (f["path"].as_str().unwrap(), f["size"].as_u64().unwrap()))
                    .collect();
                if what == "multi" {
                    assert_eq!(
                        real,
                        [
                            ("multi/a.bin", 100_000),
                            ("multi/empty", 0),
                            ("multi/sub/odd", 16_385),
                            ("multi/sub/three", 150_000),
                            ("multi/sub/tiny", 7),
                            ("multi/z.bin", 70_001),
                        ],
                        "{case}"
                    );
                } else {
                    assert_eq!(real, [("single.bin", 123_457)], "{case}");
                }
                // The magnet link carries the v2 hash (and the v1 one for a hybrid).
                let magnet = v["magnet"].as_str().unwrap();
                assert!(magnet.contains(&format!("xt=urn:btmh:1220{v2}")), "{case}");
                assert_eq!(magnet.contains("xt=urn:btih:"), v1.is_some(), "{case}");

                let text = run_ok(&["info", torrent.to_str().unwrap()]);
                assert!(text.contains(&format!("info-hash v2:  {v2}")), "{text}");
                let version = if kind == "hybrid" {
                    "2 (hybrid v1 + v2)"
                } else {
                    "2 (v2-only)"
                };
                assert!(
                    text.contains(&format!("meta version:  {version}")),
                    "{text}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 8);
}

#[test]
fn a_changed_piece_layer_is_refused() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let (multi, _) = common::v2_content(dir.path());
    let torrent = dir.path().join("v2.torrent");
    lt_make("v2", &multi, &torrent, 16_384);
    let mut bytes = std::fs::read(&torrent).unwrap();
    // The last bytes before the final `ee` are the end of a piece layer hash.
    let at = bytes.len() - 3;
    bytes[at] ^= 0xff;
    let bad = write(dir.path(), "bad.torrent", &bytes);
    let out = run(&["info", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("does not hash up to its `pieces root`"),
        "{stderr}"
    );
}
