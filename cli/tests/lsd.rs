//! Local service discovery (BEP 14) between real processes, with no tracker, no DHT and no
//! `--peer`: peers find each other only through the multicast group.
//!
//! Multicast must not reach a real LAN, so everything runs inside a network namespace this
//! test makes itself (only `lo` up), as `sealed.rs` does: the outer test re-runs this test
//! binary inside `unshare` with `UNCHOKE_LSD_INNER` set, and the inner run starts every
//! peer there. Multicast on `lo` needs nothing more: with a loopback listen address the
//! LSD socket's multicast interface is `lo` (`IP_MULTICAST_IF`), which needs neither the
//! `MULTICAST` flag nor a route (checked by hand before this was written).
//!
//! Inside: an unchoke seed (mio) and an unchoke download (smol) of one torrent, and a
//! libtorrent leech of it (`enable_lsd`); then a libtorrent seed of a second torrent and an
//! unchoke download of it. Every download completes with the seed's bytes.
//!
//! Over IPv6 (BEP 14's `[ff15::efc0:988f]:6771` group), in a namespace of its own:
//! IPv6 multicast does not work on `lo` (see `driver/src/lsd_node.rs`), so that namespace
//! adds a veth pair whose two ends are both inside it — nothing leaves the namespace. The
//! unchoke peers listen on unique-local addresses of one end (`v0`), so they run the IPv6
//! group only; libtorrent listens on the other end's (`v1`) address, the end the routing
//! table gives the group (`v0`'s multicast route is re-added with a worse metric), since
//! libtorrent sends its IPv6 announces from whichever address the kernel picks and an
//! announce names the sender's address. The namespace has no IPv4 but `127.0.0.1` on `lo`,
//! so no IPv4 announce can carry anything: a last unchoke download on the default
//! dual-stack `[::]` reports the IPv4 group off and still finds its seed over IPv6.
//!
//! The namespace: `unshare --net` as root, else `unshare --user --map-root-user --net`.
//! Like `sealed.rs`, this fails (not skips) where neither works, naming why.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::process::JsonProcess;
use common::{
    PYTHON, TRANSFER_WAIT, assert_same_file, completes, create_torrent, data, helper,
    require_libtorrent, seal, unchoke, write,
};

/// Set in the namespace's copy of this test binary.
const INNER: &str = "UNCHOKE_LSD_INNER";

/// Re-runs the test `name` of this binary inside a namespace of its own, set up by the
/// shell commands `setup`, with [`INNER`] set.
fn in_namespace(name: &str, setup: &str) {
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("unshare")
        .args(seal())
        .args([
            "--",
            "bash",
            "-c",
            &format!("set -e; {setup}; exec \"$@\""),
            "sealed",
        ])
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env(INNER, "1")
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the run inside the namespace failed");
}

#[test]
fn peers_find_each_other_by_local_service_discovery_in_a_sealed_namespace() {
    if std::env::var_os(INNER).is_some() {
        return inside();
    }
    require_libtorrent();
    in_namespace(
        "peers_find_each_other_by_local_service_discovery_in_a_sealed_namespace",
        "ip link set lo up",
    );
}

/// The IPv6 namespace (see the module docs): `lo`, and a veth pair `v0`–`v1` with
/// `fd00::1`–`fd00::3` on `v0` (the unchoke peers) and `fd00::10` on `v1` (libtorrent);
/// the group's route prefers `v1`. `nodad`: the addresses are usable at once.
const V6_NAMESPACE: &str = "ip link set lo up; \
    ip link add v0 type veth peer name v1; \
    for a in 1 2 3; do ip -6 addr add fd00::$a/64 dev v0 nodad; done; \
    ip -6 addr add fd00::10/64 dev v1 nodad; \
    ip link set v0 up; ip link set v1 up; \
    ip -6 route del multicast ff00::/8 dev v0 table local; \
    ip -6 route add multicast ff00::/8 dev v0 table local metric 2048";

#[test]
fn peers_find_each_other_over_the_ipv6_lsd_group_in_a_sealed_namespace() {
    if std::env::var_os(INNER).is_some() {
        return inside_v6();
    }
    require_libtorrent();
    in_namespace(
        "peers_find_each_other_over_the_ipv6_lsd_group_in_a_sealed_namespace",
        V6_NAMESPACE,
    );
}

/// `unchoke seed|download … --listen IP:0 --runtime RT --no-dht --json --verbose`, with LSD
/// (on by default) and no other source of peers.
fn unchoke_lsd(args: &[&Path], mode: &str, ip: &str, runtime: &str) -> JsonProcess {
    unchoke_lsd_on(args, mode, &format!("{ip}:0"), runtime)
}

/// [`unchoke_lsd`] listening on `listen` (`IP:PORT`, `[IPv6]:PORT`).
fn unchoke_lsd_on(args: &[&Path], mode: &str, listen: &str, runtime: &str) -> JsonProcess {
    let mut cmd = unchoke();
    cmd.arg(mode);
    for (i, a) in args.iter().enumerate() {
        if mode == "download" && i == 1 {
            cmd.arg("-o");
        }
        cmd.arg(a);
    }
    cmd.args(["--listen", listen, "--runtime", runtime])
        .args(["--no-dht", "--json", "--verbose"]);
    JsonProcess::spawn(&format!("unchoke {mode} {listen} ({runtime})"), cmd)
}

/// `lt_peer.py MODE TORRENT SAVE --listen IP --lsd` (no `--connect`).
fn lt_lsd(mode: &str, torrent: &Path, save: &Path, ip: &str) -> JsonProcess {
    let mut cmd = Command::new(PYTHON);
    cmd.arg(helper("lt_peer.py"))
        .arg(mode)
        .arg(torrent)
        .arg(save)
        .args(["--listen", ip, "--timeout", "120", "--lsd"]);
    JsonProcess::spawn(&format!("libtorrent {mode} {ip} (lsd)"), cmd)
}

/// The first `event` line, already read or waited for (lines are read in order, and
/// `lsd` and `listening` may come either way round).
fn event(p: &mut JsonProcess, event: &str) -> serde_json::Value {
    p.drain();
    match p.seen.iter().find(|v| v["event"] == event) {
        Some(v) => v.clone(),
        None => p.wait_event(event, TRANSFER_WAIT),
    }
}

fn lsd_on(p: &mut JsonProcess, ip: &str) {
    let on = event(p, "lsd");
    assert_eq!(on["group"], "239.192.152.143:6771", "{}", p.dump());
    assert_eq!(on["interface"], ip, "{}", p.dump());
}

fn inside() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    // unchoke → unchoke and unchoke → libtorrent, one torrent.
    let src = root.join("a");
    let file = write(&src, "a.bin", &data(41, 3_000_000));
    let torrent = root.join("a.torrent");
    create_torrent(&file, &torrent);
    let mut seed = unchoke_lsd(&[&torrent, &src], "seed", "127.0.0.2", "mio");
    lsd_on(&mut seed, "127.0.0.2");
    event(&mut seed, "listening");
    let out = root.join("out-unchoke");
    let mut down = unchoke_lsd(&[&torrent, &out], "download", "127.0.0.3", "smol");
    lsd_on(&mut down, "127.0.0.3");
    completes(&mut down);
    assert_same_file(&file, &out.join("a.bin"));
    let lt_out = root.join("out-lt");
    std::fs::create_dir_all(&lt_out).unwrap();
    let mut lt = lt_lsd("leech", &torrent, &lt_out, "127.0.0.4");
    lt.wait_event("finished", TRANSFER_WAIT);
    assert_same_file(&file, &lt_out.join("a.bin"));
    // The seed learnt both leechers from their announces.
    seed.drain();
    for ip in ["127.0.0.3", "127.0.0.4"] {
        assert!(
            seed.seen
                .iter()
                .any(|v| v["event"] == "lsd_peer" && v["addr"].as_str().unwrap().starts_with(ip)),
            "the seed never heard {ip} announce\n{}",
            seed.dump()
        );
    }
    lt.signal("TERM");
    seed.signal("INT");
    seed.wait_exit(TRANSFER_WAIT);

    // libtorrent → unchoke, another torrent.
    let src = root.join("b");
    let file = write(&src, "b.bin", &data(42, 2_000_000));
    let torrent = root.join("b.torrent");
    create_torrent(&file, &torrent);
    let mut lt_seed = lt_lsd("seed", &torrent, &src, "127.0.0.5");
    lt_seed.wait_event("listening", TRANSFER_WAIT);
    let out = root.join("out-from-lt");
    let mut down = unchoke_lsd(&[&torrent, &out], "download", "127.0.0.6", "mio");
    lsd_on(&mut down, "127.0.0.6");
    completes(&mut down);
    assert_same_file(&file, &out.join("b.bin"));
    lt_seed.signal("TERM");
}

/// The IPv6 group's `lsd` event, and no other group joined (read once `listening` is
/// there, which comes after every `lsd` line).
fn lsd_v6_only(p: &mut JsonProcess, interface: &str) {
    let on = event(p, "lsd");
    event(p, "listening");
    assert_eq!(on["group"], "[ff15::efc0:988f]:6771", "{}", p.dump());
    assert_eq!(on["interface"], interface, "{}", p.dump());
    let groups: Vec<&serde_json::Value> = p
        .seen
        .iter()
        .filter(|v| v["event"] == "lsd")
        .map(|v| &v["group"])
        .collect();
    assert_eq!(groups.len(), 1, "{}", p.dump());
}

/// Whether `p` has told of an LSD peer at `ip` (`[IPv6]:PORT`).
fn heard(p: &mut JsonProcess, ip: &str) -> bool {
    p.drain();
    p.seen.iter().any(|v| {
        v["event"] == "lsd_peer" && v["addr"].as_str().unwrap().starts_with(&format!("[{ip}]:"))
    })
}

fn inside_v6() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    // unchoke → unchoke and unchoke → libtorrent over the IPv6 group only.
    let src = root.join("a");
    let file = write(&src, "a.bin", &data(51, 3_000_000));
    let torrent = root.join("a.torrent");
    create_torrent(&file, &torrent);
    let mut seed = unchoke_lsd_on(&[&torrent, &src], "seed", "[fd00::1]:0", "mio");
    lsd_v6_only(&mut seed, "fd00::1");
    let out = root.join("out-unchoke");
    let mut down = unchoke_lsd_on(&[&torrent, &out], "download", "[fd00::2]:0", "smol");
    lsd_v6_only(&mut down, "fd00::2");
    completes(&mut down);
    assert_same_file(&file, &out.join("a.bin"));
    assert!(
        heard(&mut down, "fd00::1"),
        "the download never heard the seed\n{}",
        down.dump()
    );
    let lt_out = root.join("out-lt");
    std::fs::create_dir_all(&lt_out).unwrap();
    let mut lt = lt_lsd("leech", &torrent, &lt_out, "fd00::10");
    lt.wait_event("finished", TRANSFER_WAIT);
    assert_same_file(&file, &lt_out.join("a.bin"));
    // The seed learnt both leechers from their IPv6 announces.
    for ip in ["fd00::2", "fd00::10"] {
        assert!(
            heard(&mut seed, ip),
            "the seed never heard {ip} announce\n{}",
            seed.dump()
        );
    }
    lt.signal("TERM");
    seed.signal("INT");
    seed.wait_exit(TRANSFER_WAIT);

    // libtorrent → unchoke on the default dual-stack `[::]`: the IPv4 group cannot be
    // joined here (no IPv4 multicast route), which only leaves it out.
    let src = root.join("b");
    let file = write(&src, "b.bin", &data(52, 2_000_000));
    let torrent = root.join("b.torrent");
    create_torrent(&file, &torrent);
    let mut lt_seed = lt_lsd("seed", &torrent, &src, "fd00::10");
    lt_seed.wait_event("listening", TRANSFER_WAIT);
    let out = root.join("out-from-lt");
    let mut down = unchoke_lsd_on(&[&torrent, &out], "download", "[::]:0", "mio");
    lsd_v6_only(&mut down, "::");
    let off = event(&mut down, "lsd_off");
    assert_eq!(off["group"], "239.192.152.143:6771", "{}", down.dump());
    completes(&mut down);
    assert_same_file(&file, &out.join("b.bin"));
    // Its only peer was libtorrent, over IPv6: whichever side heard the other first
    // dialled (libtorrent often hears our announce and connects before its own arrives;
    // the first part checked that we hear libtorrent's).
    down.drain();
    assert!(
        down.seen.iter().any(|v| v["event"] == "peer_connected"
            && v["addr"].as_str().unwrap().starts_with("[fd00::10]:")),
        "the download never met libtorrent\n{}",
        down.dump()
    );
    lt_seed.signal("TERM");
}
