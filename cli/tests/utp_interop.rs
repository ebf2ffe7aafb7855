//! uTP (BEP 29) against libtorrent-rasterbar (Debian python3-libtorrent, driven by
//! helpers/lt_peer.py) over 127.0.x.y: libtorrent with TCP switched off both ways
//! (`enable_outgoing_tcp`/`enable_incoming_tcp` false) seeds to `unchoke download
//! --transport utp` and leeches from `unchoke seed --transport utp`, on both runtimes,
//! byte for byte; and a mixed swarm where one libtorrent seed speaks uTP only and another
//! TCP only, which `--transport both` downloads from together. That the bytes went over
//! uTP is checked on both sides: libtorrent's own view of each connection (its peer flag
//! `utp_socket`, reported by lt_peer.py as `"transport"`) and unchoke's `utp_peers` count.
//! These tests fail, not skip, when libtorrent or mktorrent is missing (`.ci/run` installs
//! them).
//!
//! Addresses: `Runtime::ip(n)` with n from 101 up, one n per test in this file (the
//! real-peer suites use lower numbers), `mixed_ip(n)` likewise.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::JsonProcess;
use common::runtime::{Runtime, mixed_ip};
use common::{
    assert_same_file, completes, free_port, from_ip, helper, mktorrent, require_libtorrent,
    require_tool, unchoke_seed,
};

const LONG: Duration = Duration::from_secs(120);
const MIB: usize = 1024 * 1024;

/// libtorrent's UDP socket buffers: raised as its uTP needs on loopback (INTEROP-NOTES.md).
const LT_SOCKET_BUFFER: &str = "4194304";

/// Incompressible test data.
fn random_file(path: &Path, len: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut rng = fastrand::Rng::with_seed(len as u64 ^ 0x75_7470);
    let mut buf = vec![0u8; len];
    rng.fill(&mut buf);
    std::fs::write(path, buf).unwrap();
}

/// `DIR/seed/NAME` of `len` random bytes and `DIR/NAME.torrent` (mktorrent, 256 KiB
/// pieces): the data directory and the torrent.
fn one_file_torrent(dir: &Path, name: &str, len: usize) -> (PathBuf, PathBuf) {
    let data_dir = dir.join("seed");
    random_file(&data_dir.join(name), len);
    let torrent = dir.join(format!("{name}.torrent"));
    mktorrent(&data_dir.join(name), &torrent, 18);
    (data_dir, torrent)
}

/// A libtorrent seed of `torrent` on `ip` speaking only `transport` (`tcp` or `utp`),
/// its UDP socket buffers raised: the process and its address.
fn lt_seed(
    torrent: &Path,
    dir: &Path,
    ip: &str,
    transport: &str,
    extra: &[&str],
) -> (JsonProcess, String) {
    let mut args = vec![
        "--transport",
        transport,
        "--socket-buffer",
        LT_SOCKET_BUFFER,
    ];
    args.extend(extra.iter().copied());
    common::tracker::lt_seed_with(torrent, dir, ip, &args)
}

/// The most `utp_peers` any progress or complete line of `p` read so far reported.
/// Transfers here are rate-limited to last a few seconds: unchoke prints progress once a
/// second, and a finished transfer's peer is gone by its `complete` line.
fn max_utp_peers(p: &JsonProcess) -> u64 {
    p.seen
        .iter()
        .filter_map(|v| v["utp_peers"].as_u64())
        .max()
        .unwrap_or(0)
}

/// `dl` (an `unchoke download`) completes with `name` byte for byte as in `src`, having
/// counted a uTP peer (`what` says which case failed).
fn downloads_over_utp(dl: &mut JsonProcess, src: &Path, out: &Path, name: &str, what: &str) {
    completes(dl);
    assert_same_file(&src.join(name), &out.join(name));
    assert!(
        max_utp_peers(dl) >= 1,
        "{what}: unchoke never counted a uTP peer\n{}",
        dl.dump()
    );
}

/// `seed` (an `unchoke seed`) counted a uTP peer in what it printed so far; then it is
/// stopped and waited for.
fn stops_having_seeded_over_utp(seed: &mut JsonProcess) {
    seed.drain();
    assert!(
        max_utp_peers(seed) >= 1,
        "unchoke never counted a uTP peer\n{}",
        seed.dump()
    );
    seed.signal("TERM");
    seed.wait_exit(LONG);
}

/// The transports libtorrent saw on its connections from `ip` (lt_peer.py's "peers").
fn transports_from(peers: &serde_json::Value, ip: &str) -> Vec<String> {
    peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["ip"] == ip)
        .map(|p| p["transport"].as_str().unwrap_or("unknown").to_owned())
        .collect()
}

per_runtime!(
    libtorrent_utp_only_seeds_to_unchoke,
    unchoke_seeds_to_libtorrent_utp_only,
    unchoke_to_unchoke_over_utp_with_and_without_udp_batching,
);

fn libtorrent_utp_only_seeds_to_unchoke(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let (src, torrent) = one_file_torrent(dir.path(), "u.bin", 24 * MIB + 4321);
    let (lt_ip, our_ip) = (rt.ip(101), rt.ip(102));
    let (mut seed, addr) = lt_seed(&torrent, &src, &lt_ip, "utp", &[]);
    let out = dir.path().join("out");
    let limit = ["--download-limit", "8MiB/s"];
    let mut args = vec!["--transport", "utp", "--peer", &addr];
    args.extend(limit.iter().copied());
    let mut dl = common::unchoke_download(rt, &torrent, &out, &our_ip, &args);
    downloads_over_utp(&mut dl, &src, &out, "u.bin", "from libtorrent");
    seed.signal("TERM");
    let peers = seed.wait_event("peers", LONG);
    let transports = transports_from(&peers, &our_ip);
    assert!(
        !transports.is_empty() && transports.iter().all(|t| t == "utp"),
        "libtorrent saw {transports:?}: {peers}"
    );
    assert!(from_ip(&peers, &our_ip, "uploaded") >= 24 * MIB as u64);
}

fn unchoke_seeds_to_libtorrent_utp_only(rt: Runtime) {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let (src, torrent) = one_file_torrent(dir.path(), "v.bin", 24 * MIB + 77);
    let (our_ip, lt_ip) = (rt.ip(103), rt.ip(104));
    let (mut seed, addr) = unchoke_seed(
        rt,
        &torrent,
        &src,
        &our_ip,
        &["--transport", "utp", "--upload-limit", "8MiB/s"],
    );
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(helper("lt_peer.py"))
        .arg("leech")
        .arg(&torrent)
        .arg(&out)
        .args(["--listen", &lt_ip, "--timeout", "300", "--connect", &addr])
        .args(["--transport", "utp", "--socket-buffer", LT_SOCKET_BUFFER]);
    let mut leech = JsonProcess::spawn(&format!("libtorrent utp leech {lt_ip}"), cmd);
    leech.wait_event("finished", LONG);
    let peers = leech.wait_event("peers", LONG);
    assert!(leech.wait_exit(LONG).success(), "{}", leech.dump());
    assert_same_file(&src.join("v.bin"), &out.join("v.bin"));
    let transports = transports_from(&peers, &our_ip);
    assert!(
        !transports.is_empty() && transports.iter().all(|t| t == "utp"),
        "libtorrent saw {transports:?}: {peers}"
    );
    assert!(from_ip(&peers, &our_ip, "downloaded") >= 24 * MIB as u64);
    stops_having_seeded_over_utp(&mut seed);
}

/// unchoke seeds to unchoke over uTP, byte for byte, with the UDP socket batched (GSO
/// sends, GRO reads: `driver::udp_batch`) and with batching off (`UNCHOKE_UDP_OFFLOAD=off`,
/// one datagram per system call): the offload changes how datagrams are moved, never what
/// arrives.
fn unchoke_to_unchoke_over_utp_with_and_without_udp_batching(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let (src, torrent) = one_file_torrent(dir.path(), "b.bin", 16 * MIB + 999);
    for (n, offload) in [(105, "on"), (107, "off")] {
        let (seed_ip, leech_ip) = (rt.ip(n), rt.ip(n + 1));
        let mut seed_cmd = common::unchoke();
        seed_cmd
            .env("UNCHOKE_UDP_OFFLOAD", offload)
            .args(["seed", "--no-lsd"])
            .arg(&torrent)
            .arg(&src)
            .args(rt.args())
            .args(["--listen", &format!("{seed_ip}:0"), "--json", "--verbose"])
            .args(["--transport", "utp"]);
        let mut seed = JsonProcess::spawn(&format!("unchoke seed {seed_ip}"), seed_cmd);
        let addr = seed.wait_event("listening", LONG)["addr"]
            .as_str()
            .expect("listening address")
            .to_owned();
        let out = dir.path().join(format!("out-{offload}"));
        let mut dl_cmd = common::unchoke();
        dl_cmd
            .env("UNCHOKE_UDP_OFFLOAD", offload)
            .args(["download", "--no-lsd"])
            .arg(&torrent)
            .arg("-o")
            .arg(&out)
            .args(rt.args())
            .args(["--listen", &format!("{leech_ip}:0"), "--json", "--verbose"])
            .args(["--transport", "utp", "--peer", &addr])
            // Long enough (2 s) for progress lines that count the uTP peer.
            .args(["--download-limit", "8MiB/s"]);
        let mut dl = JsonProcess::spawn(&format!("unchoke download {leech_ip}"), dl_cmd);
        downloads_over_utp(&mut dl, &src, &out, "b.bin", &format!("offload {offload}"));
        seed.signal("TERM");
        seed.wait_exit(LONG);
    }
}

/// Transmission 3 (tests/helpers/tr_peer.py) with its uTP on, as `mode` (`seed` or
/// `leech`) of `torrent` in `dir` on `ip`: the process and its peer address. Its uTP is
/// libutp, BitTorrent Inc.'s reference implementation, not libtorrent's.
fn tr_utp_peer(
    mode: &str,
    torrent: &Path,
    dir: &Path,
    ip: &str,
    config: &Path,
) -> (JsonProcess, String) {
    require_tool("transmission-daemon", &["--version"], "transmission-daemon");
    let port = free_port(ip);
    // The RPC interface is not a peer address: tr_peer.py serves it on 127.0.0.1.
    let rpc = free_port("127.0.0.1");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(helper("tr_peer.py"))
        .arg(mode)
        .arg(torrent)
        .arg(dir)
        .args(["--listen", ip, "--port", &port.to_string()])
        .args(["--rpc-port", &rpc.to_string(), "--timeout", "300", "--utp"])
        .arg("--config-dir")
        .arg(config);
    let mut p = JsonProcess::spawn(&format!("transmission {mode} {ip}"), cmd);
    let addr = p.wait_event("listening", LONG)["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    (p, addr)
}

/// Whether any status line Transmission printed so far listed a uTP peer from `ip`.
fn transmission_saw_utp_from(p: &JsonProcess, ip: &str) -> bool {
    p.seen.iter().any(|v| {
        v["utp_addrs"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x.as_str().is_some_and(|s| s.starts_with(&format!("{ip}:"))))
        })
    })
}

/// Transmission seeds to `unchoke download --transport utp` (which dials it: Transmission
/// never dials loopback peers) over uTP, byte for byte; both sides say the connection was
/// uTP (our `utp_peers`, Transmission's peer flag `T`).
#[test]
fn transmission_utp_seeds_to_unchoke() {
    let rt = Runtime::Mio;
    let dir = tempfile::tempdir().unwrap();
    let (src, torrent) = one_file_torrent(dir.path(), "t.bin", 12 * MIB + 3);
    let (tr_ip, our_ip) = (rt.ip(109), rt.ip(110));
    let (mut seed, addr) = tr_utp_peer("seed", &torrent, &src, &tr_ip, &dir.path().join("tr"));
    let out = dir.path().join("out");
    let args = [
        "--transport",
        "utp",
        "--peer",
        &addr,
        "--download-limit",
        "4MiB/s",
    ];
    let mut dl = common::unchoke_download(rt, &torrent, &out, &our_ip, &args);
    downloads_over_utp(&mut dl, &src, &out, "t.bin", "from Transmission");
    seed.drain();
    assert!(
        transmission_saw_utp_from(&seed, &our_ip),
        "Transmission never listed us as a uTP peer\n{}",
        seed.dump()
    );
    seed.signal("TERM");
    seed.wait_exit(LONG);
}

/// `unchoke seed --transport utp` dials a Transmission leecher over uTP and it downloads
/// everything, byte for byte, over that connection.
#[test]
fn unchoke_utp_seeds_to_transmission() {
    let rt = Runtime::Smol;
    let dir = tempfile::tempdir().unwrap();
    let (src, torrent) = one_file_torrent(dir.path(), "w.bin", 12 * MIB + 11);
    let (tr_ip, our_ip) = (rt.ip(111), rt.ip(112));
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let (mut leech, addr) = tr_utp_peer("leech", &torrent, &out, &tr_ip, &dir.path().join("tr"));
    let (mut seed, _) = unchoke_seed(
        rt,
        &torrent,
        &src,
        &our_ip,
        &[
            "--transport",
            "utp",
            "--peer",
            &addr,
            "--upload-limit",
            "4MiB/s",
        ],
    );
    leech.wait_event("finished", LONG);
    assert!(leech.wait_exit(LONG).success(), "{}", leech.dump());
    assert_same_file(&src.join("w.bin"), &out.join("w.bin"));
    assert!(
        transmission_saw_utp_from(&leech, &our_ip),
        "Transmission never listed us as a uTP peer\n{}",
        leech.dump()
    );
    stops_having_seeded_over_utp(&mut seed);
}

/// One libtorrent seed with uTP only, one with TCP only; unchoke with `--transport both`
/// (on mio: both runtimes' uTP is covered above) dials both and completes with bytes from
/// each, over the transport each one speaks: uTP to the first, TCP to the second after
/// its uTP dial fails.
#[test]
fn mixed_swarm_utp_only_and_tcp_only_libtorrent_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let (src, torrent) = one_file_torrent(dir.path(), "w.bin", 32 * MIB + 5);
    let (utp_ip, tcp_ip, our_ip) = (mixed_ip(101), mixed_ip(102), mixed_ip(103));
    // Each seed limited to 3 MB/s, so the transfer lasts past the TCP fallback (up to 3 s
    // if libtorrent leaves our SYN unanswered) and both have time to serve.
    let limit = ["--upload-limit", "3000000"];
    let (mut utp_seed, utp_addr) = lt_seed(&torrent, &src, &utp_ip, "utp", &limit);
    let (mut tcp_seed, tcp_addr) = lt_seed(&torrent, &src, &tcp_ip, "tcp", &limit);
    let out = dir.path().join("out");
    let mut dl = common::unchoke_download(
        Runtime::Mio,
        &torrent,
        &out,
        &our_ip,
        &[
            "--transport",
            "both",
            "--peer",
            &utp_addr,
            "--peer",
            &tcp_addr,
        ],
    );
    completes(&mut dl);
    assert_same_file(&src.join("w.bin"), &out.join("w.bin"));
    utp_seed.signal("TERM");
    tcp_seed.signal("TERM");
    let from_utp = utp_seed.wait_event("peers", LONG);
    let from_tcp = tcp_seed.wait_event("peers", LONG);
    let (via_utp, via_tcp) = (
        from_ip(&from_utp, &our_ip, "uploaded"),
        from_ip(&from_tcp, &our_ip, "uploaded"),
    );
    assert!(
        via_utp > 0 && via_tcp > 0,
        "unchoke got {via_utp} bytes from the uTP seed and {via_tcp} from the TCP seed"
    );
    assert!(via_utp + via_tcp >= 32 * MIB as u64);
    let utp_transports = transports_from(&from_utp, &our_ip);
    assert!(
        !utp_transports.is_empty() && utp_transports.iter().all(|t| t == "utp"),
        "{from_utp}"
    );
    let tcp_transports = transports_from(&from_tcp, &our_ip);
    assert!(
        !tcp_transports.is_empty() && tcp_transports.iter().all(|t| t == "tcp"),
        "{from_tcp}"
    );
}
