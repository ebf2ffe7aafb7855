//! Finding peers without a tracker, against real libtorrent (Debian python3-libtorrent,
//! driven by helpers/lt_peer.py): the DHT (BEP 5) in both directions, magnet links whose
//! metadata comes from peers (BEP 9, with `x.pe` peers, a `tr` tracker and the DHT), peer exchange
//! (BEP 11), and `unchoke dht` nodes joining, storing announces and keeping their node
//! file. These tests fail, not skip, when a tool is missing: `.ci/run` installs them.
//!
//! The IPv6 tests (BEP 32) run every process on `::1`, the only IPv6 loopback address:
//! they tell processes apart by port, and the two runtime variants' DHT nodes could meet
//! only if one learnt the other's port, which no test gives out.
//!
//! Every test runs once per `--runtime` (`mio::NAME`, `smol::NAME`, from `per_runtime!`;
//! `unchoke dht` takes `--runtime` too). Addresses: `Runtime::ip(n)`, 127.0.1.n for mio and
//! 127.0.2.n for smol, with n from 200 up (one n per process of one test here; the other
//! test files use these subnets only below 100), so the two variants, running at the same
//! time, never share an address, and no test's DHT node can meet another test's. Every
//! process is killed when its handle drops, also when a test fails half-way.
//!
//! What libtorrent does that shapes these tests: its DHT needs the loopback settings
//! lt_peer.py's `--dht` sets (no one-node-per-/24 rule, no BEP 42 node-id enforcement);
//! its DHT node starts after the listen sockets, and a torrent added before that skips its
//! first DHT announce for 15 minutes, so lt_peer.py re-announces once the bootstrap is
//! done (without that, ~1 run in 3 never found its peer); a node's lookup never consults
//! its own store, so two nodes alone never find each other's torrents: each test puts an
//! `unchoke dht` node in the middle. Its ut_pex sends the first (full) list as soon as it
//! has two peers and the extension handshake is done, then a diff once a minute; a
//! libtorrent peer that finishes drops its connections to seeds, so the PEX go-between
//! here is a leech kept incomplete by a download cap.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::JsonProcess;
use common::runtime::Runtime;
use common::tracker::wait_matching;
use common::{
    PYTHON, assert_dialled, assert_same_file, completes, data, from_ip, helper, info_json,
    require_libtorrent, unchoke, unchoke_download, unchoke_seed,
};
use serde_json::Value;

/// Bound on each wait for a transfer, a lookup or an announce.
const LONG: Duration = Duration::from_secs(90);
/// Bound on the wait for peers learnt through PEX (libtorrent sends its first list within
/// seconds, but a diff only once a minute).
const PEX_WAIT: Duration = Duration::from_secs(120);
/// Bound on a process starting or stopping.
const SHORT: Duration = Duration::from_secs(20);

const MIB: usize = 1024 * 1024;

/// A v1 torrent of `target` by mktorrent (pieces of 2^log2_piece, no tracker); returns its
/// `unchoke info --json`.
fn mktorrent(target: &Path, out: &Path, log2_piece: u32) -> Value {
    common::mktorrent(target, out, log2_piece);
    info_json(out)
}

/// `dir/seed/NAME` of `len` pseudo-random bytes and `dir/NAME.torrent` (256 KiB pieces):
/// the data directory, the torrent and its info-hash.
fn one_file_torrent(dir: &Path, name: &str, len: usize, seed: u64) -> (PathBuf, PathBuf, String) {
    let src = dir.join("seed");
    common::write(&src, name, &data(seed, len));
    let torrent = dir.join(format!("{name}.torrent"));
    let info = mktorrent(&src.join(name), &torrent, 18);
    (src, torrent, info["info_hash"].as_str().unwrap().to_owned())
}

fn addr_of(p: &mut JsonProcess) -> String {
    p.wait_event("listening", SHORT)["addr"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn ip_of(addr: &str) -> &str {
    addr.rsplit_once(':').unwrap().0
}

/// `unchoke dht --listen IP:0 --runtime RT --json --report-every 1 EXTRA…`, waited for
/// until it listens; returns it and its UDP address.
fn dht_node(rt: Runtime, ip: &str, extra: &[&str]) -> (JsonProcess, String) {
    dht_node_at(rt, &format!("{ip}:0"), extra)
}

fn dht_node_at(rt: Runtime, listen: &str, extra: &[&str]) -> (JsonProcess, String) {
    let mut cmd = unchoke();
    cmd.args(["dht", "--listen", listen])
        .args(rt.args())
        .args(["--json", "--report-every", "1"])
        .args(extra);
    let mut p = JsonProcess::spawn(&format!("unchoke dht ({rt}) {listen}"), cmd);
    let addr = addr_of(&mut p);
    (p, addr)
}

/// Waits until `node`'s status shows at least `n` stored announces.
fn stores_announces(node: &mut JsonProcess, n: u64, timeout: Duration) -> Value {
    wait_matching(node, "status", timeout, |v| {
        v["announces_stored"].as_u64().unwrap_or(0) >= n
    })
}

/// `lt_peer.py MODE TORRENT DIR --listen IP --timeout 300 EXTRA…`.
fn lt_peer(mode: &str, torrent: &str, dir: &Path, ip: &str, extra: &[&str]) -> JsonProcess {
    require_libtorrent();
    std::fs::create_dir_all(dir).unwrap();
    let mut cmd = Command::new(PYTHON);
    cmd.arg(helper("lt_peer.py"))
        .arg(mode)
        .arg(torrent)
        .arg(dir)
        .args(["--listen", ip, "--timeout", "300"])
        .args(extra);
    JsonProcess::spawn(&format!("libtorrent {mode} {ip}"), cmd)
}

/// A libtorrent seed, waited for until it has checked its data and listens; returns it and
/// its address.
fn lt_seed(torrent: &Path, dir: &Path, ip: &str, extra: &[&str]) -> (JsonProcess, String) {
    let mut p = lt_peer("seed", torrent.to_str().unwrap(), dir, ip, extra);
    let addr = p.wait_event("listening", LONG)["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    (p, addr)
}

/// Stops `p` with SIGTERM and waits for its exit.
fn stop(p: &mut JsonProcess) {
    p.signal("TERM");
    p.wait_exit(SHORT);
}

/// The files under `root`, as paths relative to it.
fn tree(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                out.insert(rel.to_str().unwrap().to_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

per_runtime!(
    unchoke_finds_a_libtorrent_seed_through_the_dht_alone,
    libtorrent_finds_an_unchoke_seed_through_the_dht_alone,
    a_magnet_with_an_x_pe_peer_fetches_a_multi_file_tree_from_libtorrent,
    a_magnet_with_only_a_tracker_finds_a_libtorrent_seed_through_it,
    unchoke_learns_a_seed_from_libtorrent_pex_and_downloads_from_it,
    dht_nodes_join_store_announces_and_keep_their_node_file,
    unchoke_finds_a_libtorrent_seed_through_the_dht_over_ipv6,
    an_unchoke_seed_is_found_through_the_dht_over_ipv6,
    a_dht_node_on_the_ipv6_wildcard_joins_both_families,
);

/// A libtorrent seed announces itself through an `unchoke dht` node; `unchoke download`
/// given only the bare magnet link and that node as its DHT router (`--dht-routers`: the
/// name goes through the core's resolve step, as the public routers' do) finds it, fetches
/// the metadata from it, downloads, and announces itself to libtorrent's DHT node too.
fn unchoke_finds_a_libtorrent_seed_through_the_dht_alone(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let len = 3 * MIB + 4321;
    let (src, torrent, hash) = one_file_torrent(dir.path(), "d.bin", len, 201);

    let (mut node, node_addr) = dht_node(rt, &rt.ip(200), &[]);
    let (mut seed, seed_addr) = lt_seed(
        &torrent,
        &src,
        &rt.ip(201),
        &["--dht", "--dht-bootstrap", &node_addr],
    );
    // libtorrent announces after its bootstrap: wait until our node holds the announce.
    stores_announces(&mut node, 1, LONG);

    let out = dir.path().join("out");
    let magnet = format!("magnet:?xt=urn:btih:{hash}");
    // libtorrent here speaks TCP only and leaves a uTP SYN unanswered: dial over TCP, so the
    // dial this test checks is the one that connects (with `both` the seed may dial us
    // first while our uTP attempt waits out its 3 s).
    let mut dl = unchoke_download(
        rt,
        &magnet,
        &out,
        &rt.ip(202),
        &["--dht-routers", &node_addr, "--transport", "tcp"],
    );
    let our_addr = addr_of(&mut dl);
    let lookup = wait_matching(&mut dl, "dht_lookup", LONG, |v| {
        v["peers"].as_u64().unwrap_or(0) >= 1
    });
    assert!(lookup["announced"].as_u64().unwrap_or(0) >= 1, "{lookup}");
    let meta = dl.wait_event("metadata", LONG);
    assert_eq!(meta["name"], "d.bin", "{meta}");
    assert_eq!(meta["total_length"], len as u64, "{meta}");
    assert_eq!(meta["piece_count"], len.div_ceil(1 << 18) as u64, "{meta}");
    completes(&mut dl);
    assert_dialled(&dl, &seed_addr);
    assert_same_file(&src.join("d.bin"), &out.join("d.bin"));

    // unchoke's announce_peer, with the token libtorrent's node gave it, was accepted.
    let announce = wait_matching(&mut seed, "dht_announce_in", LONG, |v| {
        v["addr"] == our_addr.as_str()
    });
    assert_eq!(announce["info_hash"], hash.as_str(), "{announce}");
    stop(&mut seed);
    let peers = seed.last("peers").cloned().unwrap();
    assert!(
        from_ip(&peers, &rt.ip(202), "uploaded") >= len as u64,
        "{peers}"
    );
}

/// `unchoke seed` announces itself through an `unchoke dht` node; a libtorrent leech given
/// only the bare magnet link and that node finds it, gets the metadata and every byte from
/// it.
fn libtorrent_finds_an_unchoke_seed_through_the_dht_alone(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let len = 3 * MIB + 999;
    let (src, torrent, hash) = one_file_torrent(dir.path(), "r.bin", len, 211);

    let (mut node, node_addr) = dht_node(rt, &rt.ip(210), &[]);
    let seed_ip = rt.ip(211);
    let (mut seed, seed_addr) = unchoke_seed(
        rt,
        &torrent,
        &src,
        &seed_ip,
        &["--dht-bootstrap", &node_addr],
    );
    let dht_addr = seed.wait_event("dht_listening", SHORT)["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(dht_addr, seed_addr, "the DHT port defaults to the TCP one");
    let lookup = wait_matching(&mut seed, "dht_lookup", LONG, |v| {
        v["announced"].as_u64().unwrap_or(0) >= 1
    });
    assert_eq!(lookup["peers"], 0, "nobody else has it yet: {lookup}");
    stores_announces(&mut node, 1, LONG);

    let out = dir.path().join("out");
    let magnet = format!("magnet:?xt=urn:btih:{hash}");
    let mut leech = lt_peer(
        "leech",
        &magnet,
        &out,
        &rt.ip(212),
        &["--dht", "--dht-bootstrap", &node_addr],
    );
    wait_matching(&mut leech, "dht_peers", LONG, |v| {
        v["peers"].as_u64().unwrap_or(0) >= 1
    });
    leech.wait_event("metadata", LONG);
    leech.wait_event("finished", LONG);
    let peers = leech.wait_event("peers", LONG);
    assert!(leech.wait_exit(LONG).success(), "{}", leech.dump());
    assert_same_file(&src.join("r.bin"), &out.join("r.bin"));
    assert_eq!(
        from_ip(&peers, &seed_ip, "downloaded"),
        len as u64,
        "{peers}"
    );

    stop(&mut seed);
    assert!(
        seed.seen.iter().any(|v| v["event"] == "peer_connected"
            && v["detail"] == "inbound"
            && v["addr"].as_str().is_some_and(|a| ip_of(a) == rt.ip(212))),
        "the libtorrent leech never connected\n{}",
        seed.dump()
    );
    let stopped = seed.last("stopped").cloned().unwrap();
    assert!(
        stopped["uploaded"].as_u64().unwrap() >= len as u64,
        "{stopped}"
    );
}

/// A magnet link naming one peer (`x.pe`, a libtorrent seed) and a display name, no
/// tracker, no DHT: unchoke fetches the metadata (two ut_metadata pieces: over 16 KiB of
/// piece hashes) and lays out the multi-file tree it describes, empty file included.
fn a_magnet_with_an_x_pe_peer_fetches_a_multi_file_tree_from_libtorrent(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("seed");
    let root = src.join("album");
    common::write(&root, "a.bin", &data(221, 20 * MIB + 17));
    common::write(&root, "disc2/b.bin", &data(222, 6 * MIB + 999));
    common::write(&root, "disc2/deeper/c.bin", &data(223, 5));
    common::write(&root, "disc2/empty", &[]);
    common::write(&root, "notes.txt", &data(224, 3000));
    let torrent = dir.path().join("album.torrent");
    // 32 KiB pieces: 830-odd piece hashes, so the info dictionary spans two metadata pieces.
    let info = mktorrent(&root, &torrent, 15);
    let hash = info["info_hash"].as_str().unwrap();
    let pieces = info["piece_count"].as_u64().unwrap();
    assert!(pieces * 20 > 16 * 1024, "{info}");

    let (_seed, seed_addr) = lt_seed(&torrent, &src, &rt.ip(221), &[]);
    let out = dir.path().join("out");
    let magnet = format!("magnet:?xt=urn:btih:{hash}&x.pe={seed_addr}&dn=album");
    // libtorrent here speaks TCP only and leaves a uTP SYN unanswered: dial over TCP, so the
    // dial this test checks is the one that connects (with `both` the seed may dial us
    // first while our uTP attempt waits out its 3 s).
    let mut dl = unchoke_download(
        rt,
        &magnet,
        &out,
        &rt.ip(222),
        &["--no-dht", "--transport", "tcp"],
    );
    let fetching = dl.wait_event("fetching_metadata", SHORT);
    assert_eq!(fetching["info_hash"], hash, "{fetching}");
    let meta = dl.wait_event("metadata", LONG);
    assert_eq!(meta["name"], "album", "{meta}");
    assert_eq!(meta["piece_count"], pieces, "{meta}");
    assert_eq!(meta["total_length"], info["total_size"], "{meta}");
    assert_eq!(
        meta["files"].as_u64(),
        Some(info["files"].as_array().unwrap().len() as u64),
        "{meta}"
    );
    completes(&mut dl);
    assert_dialled(&dl, &seed_addr);
    assert!(
        dl.last("dht_listening").is_none(),
        "--no-dht ran a DHT node\n{}",
        dl.dump()
    );

    let got = tree(&out.join("album"));
    assert_eq!(
        got,
        tree(&root),
        "the tree laid out from the fetched metadata"
    );
    for f in &got {
        assert_same_file(&root.join(f), &out.join("album").join(f));
    }
}

/// U (unchoke) is given one peer: L, a libtorrent leech with little to offer (its upload
/// and download capped) that dialled C, an unchoke seed. L's ut_pex message names C; U
/// dials C, an address it was never given, and downloads from it. C, a seed, never dials
/// anyone, so U's connection to C can only come from PEX.
fn a_magnet_with_only_a_tracker_finds_a_libtorrent_seed_through_it(rt: Runtime) {
    // `tr=` is the link's only peer source: the magnet torrent announces (with `left` set
    // while it has no metadata) to `unchoke tracker`, which knows the libtorrent seed.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = unchoke();
    cmd.arg("tracker")
        .args(rt.args())
        .args(["--http", &format!("{}:0", rt.ip(244)), "--json"]);
    let mut tracker = JsonProcess::spawn(&format!("unchoke tracker ({rt})"), cmd);
    let http = tracker.wait_event("listening", SHORT)["http"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("http://{http}/announce");

    let (src, torrent, hash) = one_file_torrent(dir.path(), "tr.bin", 3 * MIB + 5, 244);
    let (mut seed, seed_addr) = lt_seed(
        &torrent,
        &src,
        &rt.ip(245),
        &["--tracker", &url, "--tracker-events"],
    );
    wait_matching(&mut seed, "tracker_reply", LONG, |v| {
        v["url"] == url.as_str()
    });

    let out = dir.path().join("out");
    let magnet = format!("magnet:?xt=urn:btih:{hash}&tr={url}");
    // libtorrent here speaks TCP only and leaves a uTP SYN unanswered: dial over TCP, so the
    // dial this test checks is the one that connects (with `both` the seed may dial us
    // first while our uTP attempt waits out its 3 s).
    let mut dl = unchoke_download(
        rt,
        &magnet,
        &out,
        &rt.ip(246),
        &["--no-dht", "--transport", "tcp"],
    );
    let reply = wait_matching(&mut dl, "tracker", LONG, |v| v["url"] == url.as_str());
    assert!(reply["peers"].as_u64().unwrap_or(0) >= 1, "{reply}");
    dl.wait_event("metadata", LONG);
    completes(&mut dl);
    assert_dialled(&dl, &seed_addr);
    assert_same_file(&src.join("tr.bin"), &out.join("tr.bin"));
}

fn unchoke_learns_a_seed_from_libtorrent_pex_and_downloads_from_it(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let len = 4 * MIB + 321;
    let (src, torrent, _hash) = one_file_torrent(dir.path(), "p.bin", len, 231);

    let (mut c, c_addr) = unchoke_seed(rt, &torrent, &src, &rt.ip(231), &["--no-dht"]);
    let l_ip = rt.ip(232);
    let mut l = lt_peer(
        "leech",
        torrent.to_str().unwrap(),
        &dir.path().join("l"),
        &l_ip,
        &[
            "--connect",
            &c_addr,
            "--download-limit",
            "32000",
            "--upload-limit",
            "16000",
        ],
    );
    let l_addr = addr_of(&mut l);
    // L lists only peers it is connected to (and dialled or knows the listen port of).
    wait_matching(&mut l, "peer_connected", LONG, |v| {
        v["addr"] == c_addr.as_str()
    });

    let u_ip = rt.ip(233);
    let out = dir.path().join("out");
    let started = Instant::now();
    let mut u = unchoke_download(
        rt,
        torrent.to_str().unwrap(),
        &out,
        &u_ip,
        &["--peer", &l_addr, "--no-dht"],
    );
    wait_matching(&mut u, "peer_connected", PEX_WAIT, |v| {
        v["addr"] == c_addr.as_str() && v["detail"] == "outbound"
    });
    eprintln!(
        "[{rt}] dialled C {:.1} s after start (PEX from libtorrent)",
        started.elapsed().as_secs_f64()
    );
    let done = completes(&mut u);
    assert_same_file(&src.join("p.bin"), &out.join("p.bin"));

    // What U got from L is a small part at most; the rest came from C.
    stop(&mut l);
    let peers = l.last("peers").cloned().unwrap();
    let from_l = from_ip(&peers, &u_ip, "uploaded");
    let downloaded = done["downloaded"].as_u64().unwrap();
    assert!(
        downloaded.saturating_sub(from_l) >= len as u64 / 2,
        "U downloaded {downloaded} B, {from_l} B of them from L: {peers}"
    );
    stop(&mut c);
    assert!(
        c.seen.iter().any(|v| v["event"] == "peer_connected"
            && v["detail"] == "inbound"
            && v["addr"].as_str().is_some_and(|a| ip_of(a) == u_ip)),
        "C never saw U\n{}",
        c.dump()
    );
    let stopped = c.last("stopped").cloned().unwrap();
    assert!(
        stopped["uploaded"].as_u64().unwrap() >= len as u64 / 2,
        "{stopped}"
    );
}

/// Three `unchoke dht` nodes: A and B join through N and learn of each other from it; an
/// `unchoke seed` announces through N and the nodes store it; A, stopped, writes its good
/// nodes to `--nodes-file`, and rejoins from that file alone on restart.
fn dht_nodes_join_store_announces_and_keep_their_node_file(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let nodes_file = dir.path().join("a.nodes");
    let nodes_file_arg = nodes_file.to_str().unwrap();

    let (mut n, n_addr) = dht_node(rt, &rt.ip(240), &[]);
    let (mut b, b_addr) = dht_node(rt, &rt.ip(241), &["--bootstrap", &n_addr]);
    wait_matching(&mut b, "status", LONG, |v| {
        v["good_nodes"].as_u64().unwrap_or(0) >= 1
    });
    let (mut a, a_addr) = dht_node(
        rt,
        &rt.ip(242),
        &["--bootstrap", &n_addr, "--nodes-file", nodes_file_arg],
    );
    // A knows N (its bootstrap) and B (from N's answer); N knows both.
    wait_matching(&mut a, "status", LONG, |v| {
        v["good_nodes"].as_u64().unwrap_or(0) >= 2
    });
    wait_matching(&mut n, "status", LONG, |v| {
        v["good_nodes"].as_u64().unwrap_or(0) >= 2
    });

    let len = MIB;
    let (src, torrent, _hash) = one_file_torrent(dir.path(), "n.bin", len, 243);
    let (mut seed, _) = unchoke_seed(
        rt,
        &torrent,
        &src,
        &rt.ip(243),
        &["--dht-bootstrap", &n_addr],
    );
    let seed_node = seed.wait_event("dht_listening", SHORT)["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let lookup = wait_matching(&mut seed, "dht_lookup", LONG, |v| {
        v["announced"].as_u64().unwrap_or(0) >= 1
    });
    // The seed announced to the closest nodes it found: every one of the three here.
    let announced = lookup["announced"].as_u64().unwrap();
    assert!(announced >= 3, "{lookup}");
    for node in [&mut n, &mut a, &mut b] {
        stores_announces(node, 1, LONG);
    }
    let n_status = n.last("status").cloned().unwrap();
    assert!(n_status["queries_in"].as_u64().unwrap() >= 3, "{n_status}");

    stop(&mut a);
    assert!(a.last("stopped").is_some(), "{}", a.dump());
    let saved = std::fs::read_to_string(&nodes_file).unwrap();
    let lines: BTreeSet<&str> = saved.lines().collect();
    for expected in [&n_addr, &b_addr, &seed_node] {
        assert!(
            lines.contains(expected.as_str()),
            "{expected} missing from the node file:\n{saved}"
        );
    }
    assert!(
        !lines.contains(a_addr.as_str()),
        "a node lists itself:\n{saved}"
    );

    // Restarted with no --bootstrap: the file alone brings it back into the DHT.
    let (mut again, again_addr) = dht_node_at(rt, &a_addr, &["--nodes-file", nodes_file_arg]);
    assert_eq!(again_addr, a_addr);
    wait_matching(&mut again, "status", LONG, |v| {
        v["good_nodes"].as_u64().unwrap_or(0) >= 2
    });
    stop(&mut again);
    stop(&mut seed);
    stop(&mut b);
    stop(&mut n);
}

/// BEP 32 over real sockets: an `unchoke dht` node on `[::1]`; a libtorrent seed on `::1`
/// announces through it over IPv6 (its `get_peers`/`announce_peer` reach our IPv6 node);
/// `unchoke download` of the bare magnet link, listening on `[::1]:0` with that node as
/// its only way in, finds the seed through the IPv6 DHT (18-byte peer values), fetches the
/// metadata and every byte, and announces itself over IPv6 to libtorrent's node too.
fn unchoke_finds_a_libtorrent_seed_through_the_dht_over_ipv6(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let len = 3 * MIB + 606;
    let (src, torrent, hash) = one_file_torrent(dir.path(), "six.bin", len, 206);

    let (mut node, node_addr) = dht_node_at(rt, "[::1]:0", &[]);
    assert!(node_addr.starts_with("[::1]:"), "{node_addr}");
    let (mut seed, seed_addr) = lt_seed(
        &torrent,
        &src,
        "::1",
        &["--dht", "--dht-bootstrap", &node_addr],
    );
    assert!(seed_addr.starts_with("[::1]:"), "{seed_addr}");
    stores_announces(&mut node, 1, LONG);

    let out = dir.path().join("out");
    let magnet = format!("magnet:?xt=urn:btih:{hash}");
    // libtorrent here speaks TCP only and leaves a uTP SYN unanswered: dial over TCP, so the
    // dial this test checks is the one that connects (with `both` the seed may dial us
    // first while our uTP attempt waits out its 3 s).
    let mut dl = unchoke_download(
        rt,
        &magnet,
        &out,
        "[::1]",
        &["--dht-bootstrap", &node_addr, "--transport", "tcp"],
    );
    let our_addr = addr_of(&mut dl);
    assert!(our_addr.starts_with("[::1]:"), "{our_addr}");
    let dht_addr = dl.wait_event("dht_listening", SHORT)["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        dht_addr.starts_with("[::1]:"),
        "the DHT runs over IPv6: {dht_addr}"
    );
    let lookup = wait_matching(&mut dl, "dht_lookup", LONG, |v| {
        v["peers"].as_u64().unwrap_or(0) >= 1
    });
    assert!(lookup["announced"].as_u64().unwrap_or(0) >= 1, "{lookup}");
    let meta = dl.wait_event("metadata", LONG);
    assert_eq!(meta["name"], "six.bin", "{meta}");
    completes(&mut dl);
    assert_dialled(&dl, &seed_addr);
    assert_same_file(&src.join("six.bin"), &out.join("six.bin"));

    // Our announce_peer reached libtorrent's IPv6 node with a token it accepted (its
    // alert prints the UDP source as `::1:PORT`; our DHT port is our TCP port).
    let unbracketed = our_addr.replace(['[', ']'], "");
    let announce = wait_matching(&mut seed, "dht_announce_in", LONG, |v| {
        v["addr"] == unbracketed.as_str()
    });
    assert_eq!(announce["info_hash"], hash.as_str(), "{announce}");
    stop(&mut seed);
    stop(&mut node);
}

/// Two unchoke processes and an `unchoke dht` node, all on `::1`: `unchoke seed` announces
/// over IPv6, and `unchoke download` of the bare magnet link finds it through the node.
fn an_unchoke_seed_is_found_through_the_dht_over_ipv6(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let len = 2 * MIB + 66;
    let (src, torrent, hash) = one_file_torrent(dir.path(), "u6.bin", len, 216);

    let (mut node, node_addr) = dht_node_at(rt, "[::1]:0", &[]);
    let (mut seed, seed_addr) = unchoke_seed(
        rt,
        &torrent,
        &src,
        "[::1]",
        &["--dht-bootstrap", &node_addr],
    );
    let lookup = wait_matching(&mut seed, "dht_lookup", LONG, |v| {
        v["announced"].as_u64().unwrap_or(0) >= 1
    });
    assert_eq!(lookup["peers"], 0, "nobody else has it yet: {lookup}");
    stores_announces(&mut node, 1, LONG);

    let out = dir.path().join("out");
    let magnet = format!("magnet:?xt=urn:btih:{hash}");
    let mut dl = unchoke_download(rt, &magnet, &out, "[::1]", &["--dht-bootstrap", &node_addr]);
    wait_matching(&mut dl, "dht_lookup", LONG, |v| {
        v["peers"].as_u64().unwrap_or(0) >= 1
    });
    completes(&mut dl);
    assert_dialled(&dl, &seed_addr);
    assert_same_file(&src.join("u6.bin"), &out.join("u6.bin"));
    stop(&mut seed);
    stop(&mut node);
}

/// `unchoke dht --listen [::]:0`: one dual-stack socket, a node per family. Bootstrapped
/// from an IPv4 node and an IPv6 node, it holds both (two table entries), and each of them
/// holds it: the IPv4 node heard it over IPv4 (IPv4-mapped on our side), the IPv6 one over
/// IPv6.
fn a_dht_node_on_the_ipv6_wildcard_joins_both_families(rt: Runtime) {
    let (mut node4, addr4) = dht_node(rt, &rt.ip(230), &[]);
    let (mut node6, addr6) = dht_node_at(rt, "[::1]:0", &[]);
    let (mut dual, dual_addr) = dht_node_at(
        rt,
        "[::]:0",
        &["--bootstrap", &addr4, "--bootstrap", &addr6],
    );
    assert!(dual_addr.starts_with("[::]:"), "{dual_addr}");
    let has = |n: u64| move |v: &Value| v["nodes"].as_u64().unwrap_or(0) >= n;
    wait_matching(&mut dual, "status", LONG, has(2));
    wait_matching(&mut node4, "status", LONG, has(1));
    wait_matching(&mut node6, "status", LONG, has(1));
    for p in [&mut dual, &mut node4, &mut node6] {
        stop(p);
    }
}
