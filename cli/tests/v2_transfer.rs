//! BitTorrent v2 (BEP 52) transfers against libtorrent, real processes on loopback:
//! libtorrent-made v2-only torrents (single and multi-file, an empty file, odd sizes)
//! downloaded by `unchoke download` from a libtorrent seed (then seeded again from their
//! resume data, nothing re-hashed) and seeded by `unchoke seed` to a libtorrent leecher,
//! byte-identical, on both runtimes; `btmh` magnet links both ways (the info dictionary and
//! the piece layers fetched from the other side); a peer corrupting v2 pieces is
//! banned while the download completes from an honest seed; and a hybrid's piece must match
//! both its v1 and its v2 hash, so a peer whose data fits only one of them is caught.
// Test helpers outside #[test] functions may unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::process::JsonProcess;
use common::runtime::Runtime;
use common::tracker::{lt_seed, lt_seed_with};
use common::{
    PYTHON, TRANSFER_WAIT, completes, data, helper, info_json, lt_make_v2, require_libtorrent,
    unchoke_download, unchoke_seed, write,
};

/// Every file under `expected` (a file or a directory) exists with the same bytes under
/// `save` (where a download of it was saved), empty files included.
fn assert_same_tree(expected: &Path, save: &Path) {
    let got = save.join(expected.file_name().unwrap());
    if expected.is_file() {
        assert!(
            std::fs::read(expected).unwrap() == std::fs::read(&got).unwrap(),
            "{} differs from {}",
            got.display(),
            expected.display()
        );
        return;
    }
    for entry in std::fs::read_dir(expected).unwrap() {
        let path = entry.unwrap().path();
        assert_same_tree(&path, &got);
    }
}

/// `lt_peer.py leech TORRENT SAVE --listen IP --connect ADDR`, with a time-out.
fn lt_leech(torrent: &Path, save: &Path, ip: &str, connect: &str) -> JsonProcess {
    require_libtorrent();
    let mut cmd = Command::new(PYTHON);
    cmd.arg(helper("lt_peer.py"))
        .arg("leech")
        .arg(torrent)
        .arg(save)
        .args(["--listen", ip, "--connect", connect, "--timeout", "120"]);
    JsonProcess::spawn(&format!("libtorrent leech {ip}"), cmd)
}

/// The cases each direction runs: (content, piece length, name, kind for lt_make_v2).
fn cases(root: &Path) -> Vec<(PathBuf, u32, &'static str, &'static str)> {
    let (multi, single) = common::v2_content(root);
    vec![
        (multi.clone(), 32_768, "multi", "v2"),
        (single, 16_384, "single", "v2"),
        // A hybrid: its pieces pass only if both its SHA-1 and merkle root match.
        (multi, 16_384, "hybrid", "hybrid"),
    ]
}

per_runtime!(
    libtorrent_seeds_v2_only_and_hybrid_and_unchoke_downloads_them,
    unchoke_seeds_v2_only_and_hybrid_and_libtorrent_downloads_them,
    libtorrent_fetches_a_v2_magnet_link_from_unchoke,
    unchoke_fetches_a_v2_magnet_link_from_libtorrent,
);

fn libtorrent_seeds_v2_only_and_hybrid_and_unchoke_downloads_them(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    for (n, (content, piece_length, name, kind)) in cases(dir.path()).into_iter().enumerate() {
        let torrent = dir.path().join(format!("{name}.torrent"));
        let (v1, v2) = lt_make_v2(kind, &content, &torrent, piece_length);
        // The wire hash: a hybrid's v1 hash, a v2-only torrent's truncated v2 hash.
        let wire_hash = v1.unwrap_or_else(|| v2[..40].to_owned());
        let (mut seed, seed_addr) =
            lt_seed(&torrent, content.parent().unwrap(), &rt.ip(10 + n as u8));
        let save = dir.path().join(format!("save-{name}"));
        let mut leech = unchoke_download(
            rt,
            &torrent,
            &save,
            &rt.ip(20 + n as u8),
            &["--peer", &seed_addr],
        );
        let done = completes(&mut leech);
        assert_eq!(done["info_hash"], wire_hash.as_str(), "{done}");
        assert_eq!(done["hash_failures"], 0, "{done}");
        assert_same_tree(&content, &save);
        if name != "single" {
            assert!(save.join("multi/empty").is_file(), "the empty file is made");
            assert!(
                !save.join("multi/.pad").exists(),
                "padding is never written"
            );
        }
        seed.signal("TERM");
        seed.wait_exit(TRANSFER_WAIT);
        // The resume data the download left covers the v2 torrent: seeding what it
        // saved trusts every piece without hashing one.
        let (mut again, _) = unchoke_seed(rt, &torrent, &save, &rt.ip(25 + n as u8), &[]);
        let checked = again.last("checked").cloned().unwrap_or_default();
        assert_eq!(checked["resumed"], true, "{checked}");
        assert_eq!(checked["hashed"], 0, "{checked}");
        assert_eq!(checked["trusted"], checked["piece_count"], "{checked}");
        again.signal("TERM");
        again.wait_exit(TRANSFER_WAIT);
    }
}

fn unchoke_seeds_v2_only_and_hybrid_and_libtorrent_downloads_them(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    for (n, (content, piece_length, name, kind)) in cases(dir.path()).into_iter().enumerate() {
        let torrent = dir.path().join(format!("{name}.torrent"));
        lt_make_v2(kind, &content, &torrent, piece_length);
        let (mut seed, seed_addr) = unchoke_seed(
            rt,
            &torrent,
            content.parent().unwrap(),
            &rt.ip(30 + n as u8),
            &[],
        );
        let save = dir.path().join(format!("lt-{name}"));
        std::fs::create_dir_all(&save).unwrap();
        let mut leech = lt_leech(&torrent, &save, &rt.ip(40 + n as u8), &seed_addr);
        let finished = leech.try_wait_event("finished", TRANSFER_WAIT);
        assert!(
            finished.is_some(),
            "libtorrent did not finish {name}\n{}\n{}",
            leech.dump(),
            seed.dump()
        );
        leech.wait_exit(TRANSFER_WAIT);
        assert_same_tree(&content, &save);
        seed.signal("TERM");
        seed.wait_exit(TRANSFER_WAIT);
    }
}

/// libtorrent given only `magnet:?xt=urn:btmh:…` and unchoke's address: it takes the info
/// dictionary (BEP 9, checked against the SHA-256) and every multi-piece file's piece
/// layer (BEP 52 `hash request`s, answered from our metadata) from unchoke, then the data.
fn libtorrent_fetches_a_v2_magnet_link_from_unchoke(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let (multi, _) = common::v2_content(dir.path());
    let torrent = dir.path().join("multi.torrent");
    let (_, v2) = lt_make_v2("v2", &multi, &torrent, 16_384);
    let (mut seed, seed_addr) =
        unchoke_seed(rt, &torrent, multi.parent().unwrap(), &rt.ip(45), &[]);
    let save = dir.path().join("lt-magnet");
    std::fs::create_dir_all(&save).unwrap();
    let magnet = format!("magnet:?xt=urn:btmh:1220{v2}&dn=multi");
    let mut leech = lt_leech(Path::new(&magnet), &save, &rt.ip(46), &seed_addr);
    leech.wait_event("metadata", TRANSFER_WAIT);
    let finished = leech.try_wait_event("finished", TRANSFER_WAIT);
    assert!(
        finished.is_some(),
        "libtorrent did not finish the v2 magnet\n{}\n{}",
        leech.dump(),
        seed.dump()
    );
    let status = leech.last("status").cloned().unwrap_or_default();
    assert_eq!(status["hash_failures"], 0, "{status}");
    leech.wait_exit(TRANSFER_WAIT);
    assert_same_tree(&multi, &save);
    seed.signal("TERM");
    seed.wait_exit(TRANSFER_WAIT);
    // The layers came from us: libtorrent asked for them and got them.
    let last = seed.last("stopped").cloned().unwrap_or_default();
    assert!(
        last["hash_requests_answered"].as_u64().unwrap_or(0) > 0,
        "{last}\n{}",
        seed.dump()
    );
}

/// `unchoke download magnet:?xt=urn:btmh:…` with a libtorrent seed as its only peer: the
/// info dictionary (checked against the truncated SHA-256 the swarm goes by), then every
/// multi-piece file's piece layer (BEP 52 `hash request`s to libtorrent, each layer
/// checked against its `pieces root`), then the data, byte-identical.
fn unchoke_fetches_a_v2_magnet_link_from_libtorrent(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let (multi, _) = common::v2_content(dir.path());
    let torrent = dir.path().join("multi.torrent");
    // 16 KiB pieces: "sub/three" (150,000 bytes) has a layer of 10 hashes.
    let (_, v2) = lt_make_v2("v2", &multi, &torrent, 16_384);
    let (mut seed, seed_addr) = lt_seed(&torrent, multi.parent().unwrap(), &rt.ip(47));
    let save = dir.path().join("magnet-save");
    let magnet = format!("magnet:?xt=urn:btmh:1220{v2}&dn=multi");
    let mut leech = unchoke_download(rt, &magnet, &save, &rt.ip(48), &["--peer", &seed_addr]);
    let meta = leech.wait_event("metadata", TRANSFER_WAIT);
    assert_eq!(meta["info_hash"], v2[..40], "{meta}");
    assert_eq!(meta["files"], 6, "{meta}");
    let done = completes(&mut leech);
    assert_eq!(done["hash_failures"], 0, "{done}");
    assert_same_tree(&multi, &save);
    seed.signal("TERM");
    seed.wait_exit(TRANSFER_WAIT);
}

/// The piece length of the single-file torrents below: the file is exactly 8 pieces, so
/// no piece has padding and hostile_peer.py's seed serves every block unchanged but one.
const PIECE: u32 = 32_768;

/// `hostile_peer.py poison`: a seed of `file` for `info_hash` whose first block of every
/// piece is garbage.
fn poisoner(info_hash: &str, file: &Path, ip: &str) -> (JsonProcess, String) {
    let mut cmd = Command::new(PYTHON);
    cmd.arg(helper("hostile_peer.py"))
        .arg("poison")
        .args(["--info-hash", info_hash, "--listen", ip, "--timeout", "120"])
        .arg("--data")
        .arg(file)
        .args(["--piece-length", &PIECE.to_string()]);
    let mut p = JsonProcess::spawn(&format!("poisoner {ip}"), cmd);
    let addr = p.wait_event("listening", TRANSFER_WAIT)["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    (p, addr)
}

/// The addresses a download reported banned.
fn banned(p: &JsonProcess) -> Vec<String> {
    p.seen
        .iter()
        .filter(|v| v["event"] == "banned")
        .filter_map(|v| v["addr"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_peer_corrupting_v2_pieces_is_banned_and_the_download_completes_from_an_honest_seed() {
    require_libtorrent();
    let rt = Runtime::Mio;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir.path().join("data"),
        "eight.bin",
        &data(7, 8 * PIECE as usize),
    );
    let torrent = dir.path().join("eight.torrent");
    let (_, v2) = lt_make_v2("v2", &file, &torrent, PIECE);
    // The honest seed uploads at 64 KiB/s (the 256 KiB take 4 s), so the fast poisoner
    // is asked for pieces before the honest seed could give them all.
    let (mut seed, seed_addr) = lt_seed_with(
        &torrent,
        file.parent().unwrap(),
        &rt.ip(50),
        &["--upload-limit", "65536"],
    );
    let (mut liar, liar_addr) = poisoner(&v2[..40], &file, &rt.ip(51));
    let save = dir.path().join("save");
    let mut leech = unchoke_download(
        rt,
        &torrent,
        &save,
        &rt.ip(52),
        &["--peer", &liar_addr, "--peer", &seed_addr],
    );
    let done = completes(&mut leech);
    assert_same_tree(&file, &save);
    assert!(
        done["hash_failures"].as_u64().unwrap_or(0) > 0,
        "the corrupt pieces failed their v2 check: {done}"
    );
    assert_eq!(
        banned(&leech),
        std::slice::from_ref(&liar_addr),
        "{}",
        leech.dump()
    );
    liar.signal("TERM");
    liar.wait_exit(TRANSFER_WAIT);
    seed.signal("TERM");
    seed.wait_exit(TRANSFER_WAIT);
}

/// A hybrid torrent of `file` whose v1 (`part` "v1") or v2 ("v2") hashes are those of
/// `other` instead; returns its path and the info-hash peers use for it.
fn mixed_hybrid(dir: &Path, file: &Path, other: &Path, part: &str) -> (PathBuf, String) {
    let good = dir.join("good.torrent");
    let bad = dir.join("other.torrent");
    lt_make_v2("hybrid", file, &good, PIECE);
    lt_make_v2("hybrid", other, &bad, PIECE);
    let out = dir.join(format!("mixed-{part}.torrent"));
    let st = Command::new(PYTHON)
        .arg(helper("mix_hybrid.py"))
        .args([&good, &bad, &out])
        .arg(part)
        .status()
        .unwrap();
    assert!(st.success(), "mix_hybrid.py failed");
    let info = info_json(&out);
    assert_eq!(info["hybrid"], true, "{info}");
    (out, info["info_hash"].as_str().unwrap().to_owned())
}

#[test]
fn a_hybrid_piece_that_matches_only_one_of_its_hashes_is_refused_and_the_peer_banned() {
    require_libtorrent();
    let rt = Runtime::Smol;
    let dir = tempfile::tempdir().unwrap();
    let original = data(8, 8 * PIECE as usize);
    let file = write(&dir.path().join("good"), "eight.bin", &original);
    // What the poisoner will serve: the first 16 KiB of every piece XORed with 0x5a.
    let mut served = original.clone();
    for piece in served.chunks_mut(PIECE as usize) {
        piece[..16_384].iter_mut().for_each(|b| *b ^= 0x5a);
    }
    let poisoned = write(&dir.path().join("served"), "eight.bin", &served);
    // v1 hashes of what is served, v2 hashes of the original (part "v1"), and the reverse
    // (part "v2"): either way one of a piece's two hashes fails.
    for (n, part) in ["v1", "v2"].into_iter().enumerate() {
        let (torrent, info_hash) = mixed_hybrid(dir.path(), &file, &poisoned, part);
        let (liar, liar_addr) = poisoner(&info_hash, &file, &rt.ip(60 + n as u8));
        let save = dir.path().join(format!("save-{part}"));
        let mut leech = unchoke_download(
            rt,
            &torrent,
            &save,
            &rt.ip(70 + n as u8),
            &["--peer", &liar_addr],
        );
        let ban = leech.try_wait_event("banned", TRANSFER_WAIT);
        assert_eq!(
            ban.as_ref().and_then(|v| v["addr"].as_str()),
            Some(liar_addr.as_str()),
            "part {part}: the peer whose data matches only one hash is banned\n{}",
            leech.dump()
        );
        leech.signal("TERM");
        leech.wait_exit(TRANSFER_WAIT);
        let have = leech
            .last("stopped")
            .map(|v| v["pieces_have"].clone())
            .unwrap_or_default();
        assert_eq!(have, 0, "part {part}: no piece passed\n{}", leech.dump());
        liar.signal("TERM");
    }
}
