//! Peers found through trackers, with no `--peer` given: `unchoke download` announcing to
//! opentracker (Debian's, over HTTP and over UDP) to find a libtorrent seed, and
//! `unchoke tracker` bringing a libtorrent seed, a Transmission leecher and an unchoke
//! leecher together; plus `unchoke tracker`'s swarm quota and limits (announces from several
//! loopback addresses) and its start-up errors.
//!
//! The swarm tests run once per `--runtime` (`mio::NAME`, `smol::NAME`, from
//! `per_runtime!`). Addresses: 127.0.4.n (opentracker tests) and 127.0.5.n (`unchoke
//! tracker` tests), n + 100 for smol, so the two variants, running at the same time, never
//! share an address (Transmission keys peers by IP, trackers list peers by IP); the
//! start-up error tests use 127.0.5.9 and .10, the swarm quota test 127.0.5.11-.14, the
//! IPv6 test ::1 (both variants: the tracker keeps each its own swarm, no IP is shared
//! within one). Every process is killed when its handle drops, also when a test fails
//! half-way.
//!
//! What the tools do that shapes these tests (see INTEROP-NOTES.md): opentracker serves
//! whitelisted info-hashes only and lists the announcing peer back to itself; libtorrent
//! announces to the torrent's trackers from its listen address and re-announces no more
//! often than every 5 minutes, so the trackers here keep peers for longer than a test
//! runs; Transmission 3.00 never dials loopback peers, so it gets data only from the
//! peers that dial it after learning its address from the tracker.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::JsonProcess;
use common::runtime::Runtime;
use common::tracker::{
    OpenTracker, Scrape, announced, lt_seed, mktorrent, wait_matching, wait_scrape,
};
use common::{
    PYTHON, assert_dialled, assert_same_file, completes, data, helper, require_tool, unchoke,
    unchoke_download,
};
use serde_json::Value;

/// Bound on each wait for a transfer or a tracker reply.
const LONG: Duration = Duration::from_secs(90);
/// Bound on a process start-up failure.
const SHORT: Duration = Duration::from_secs(15);
/// Bound on the Transmission leecher: it asks for its first block 7-11 s after a peer
/// connects and downloads at only ~25 MB/s on loopback.
const TRANSMISSION: Duration = Duration::from_secs(120);

const MIB: usize = 1024 * 1024;

/// `127.0.SUBNET.n`, n + 100 for smol.
fn ip(rt: Runtime, subnet: u8, n: u8) -> String {
    assert!((1..100).contains(&n), "host {n} out of this file's plan");
    let host = match rt {
        Runtime::Mio => n,
        Runtime::Smol => n + 100,
    };
    format!("127.0.{subnet}.{host}")
}

/// `dir/seed/NAME` of `len` pseudo-random bytes; returns the data directory.
fn payload(dir: &Path, name: &str, len: usize, seed: u64) -> PathBuf {
    let data_dir = dir.join("seed");
    common::write(&data_dir, name, &data(seed, len));
    data_dir
}

/// The `tracker` lines `p` printed for `url`.
fn replies_from<'a>(p: &'a JsonProcess, url: &str) -> Vec<&'a Value> {
    p.seen
        .iter()
        .filter(|v| v["event"] == "tracker" && v["url"] == url)
        .collect()
}

per_runtime!(
    finds_a_libtorrent_seed_through_opentracker_over_http,
    finds_a_libtorrent_seed_through_opentracker_over_udp,
    unchoke_tracker_brings_libtorrent_transmission_and_unchoke_together,
    one_address_creates_at_most_its_quota_of_swarms_and_others_still_can,
    finds_a_libtorrent_seed_through_unchoke_tracker_over_ipv6,
);

/// IPv6 end to end on ::1: `unchoke tracker` serving HTTP and UDP on [::1], a libtorrent
/// seed on ::1 announcing over HTTP (the torrent's tracker), and unchoke announcing over
/// UDP (BEP 15 over IPv6: 18-byte peers) finds it and downloads. Both runtime variants
/// share ::1; every port is the kernel's choice.
fn finds_a_libtorrent_seed_through_unchoke_tracker_over_ipv6(rt: Runtime) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = unchoke();
    cmd.arg("tracker")
        .args(rt.args())
        .args(["--http", "[::1]:0", "--udp", "[::1]:0", "--json"]);
    let mut tracker = JsonProcess::spawn(&format!("unchoke tracker ({rt}) [::1]"), cmd);
    let listening = tracker.wait_event("listening", SHORT);
    let http = listening["http"].as_str().expect("http addr").to_owned();
    let udp = listening["udp"].as_str().expect("udp addr").to_owned();
    assert!(
        http.starts_with("[::1]:") && udp.starts_with("[::1]:"),
        "{listening}"
    );
    let http_url = format!("http://{http}/announce");
    let udp_url = format!("udp://{udp}");

    let name = "six.bin";
    let src = payload(
        dir.path(),
        name,
        5 * MIB + 6,
        66 + u64::from(rt == Runtime::Smol),
    );
    let torrent = dir.path().join("six.torrent");
    mktorrent(&src.join(name), &torrent, Some(&http_url));
    let (mut seed, seed_addr) = lt_seed(&torrent, &src, "::1");
    announced(&mut seed, &http_url, 0);

    let out = dir.path().join("out");
    let mut dl = unchoke_download(
        rt,
        &torrent,
        &out,
        "[::1]",
        // libtorrent here speaks TCP only and leaves a uTP SYN unanswered: dial over TCP
        // (with `both` the seed may dial us first while our uTP attempt waits 3 s).
        &["--no-trackers", "--tracker", &udp_url, "--transport", "tcp"],
    );
    completes(&mut dl);
    assert_same_file(&src.join(name), &out.join(name));
    assert_dialled(&dl, &seed_addr);
}

fn finds_a_libtorrent_seed_through_opentracker_over_http(rt: Runtime) {
    through_opentracker(rt, false, 1);
}

fn finds_a_libtorrent_seed_through_opentracker_over_udp(rt: Runtime) {
    through_opentracker(rt, true, 4);
}

/// A libtorrent seed registers with opentracker (the torrent's own tracker); then unchoke,
/// given no peer, announces to it, learns the seed and downloads from it. Addresses
/// 127.0.4.`first`…`first + 2`.
fn through_opentracker(rt: Runtime, udp: bool, first: u8) {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = "o.bin";
    let src = payload(dir.path(), name, 4 * MIB + 777, u64::from(first));
    // The info-hash does not depend on the announce URL: whitelist it before the tracker's
    // port (part of the URL) is known.
    let hash = mktorrent(&src.join(name), &dir.path().join("bare.torrent"), None);
    let tracker = OpenTracker::start(&ip(rt, 4, first), &dir.path().join("ot"), &[&hash]);
    let url = if udp {
        tracker.udp_url()
    } else {
        tracker.http_url()
    };
    let torrent = dir.path().join("o.torrent");
    assert_eq!(mktorrent(&src.join(name), &torrent, Some(&url)), hash);

    let (mut seed, seed_addr) = lt_seed(&torrent, &src, &ip(rt, 4, first + 1));
    // Registered before unchoke asks: opentracker lists the announcing peer itself.
    announced(&mut seed, &url, 1);

    let out = dir.path().join("out");
    // libtorrent here speaks TCP only and leaves a uTP SYN unanswered: dial over TCP
    // (with `both` the seed may dial us first while our uTP attempt waits 3 s).
    let mut dl = unchoke_download(
        rt,
        &torrent,
        &out,
        &ip(rt, 4, first + 2),
        &["--transport", "tcp"],
    );
    dl.wait_event("complete", LONG);
    let status = dl.wait_exit(LONG);
    assert!(status.success(), "{status}\n{}", dl.dump());
    assert_same_file(&src.join(name), &out.join(name));

    let replies = replies_from(&dl, &url);
    assert!(
        replies
            .iter()
            .any(|r| r["peers"].as_u64().unwrap_or(0) >= 1
                && r["seeders"].as_u64().unwrap_or(0) >= 1),
        "no reply from {url} listing the seed\n{}",
        dl.dump()
    );
    assert_dialled(&dl, &seed_addr);
    // unchoke's clean stop told the tracker `completed` (counted as a download), then
    // `stopped` (deregistered): only the seed remains.
    let s = wait_scrape(&tracker.addr, &hash, LONG, |s| {
        s.complete == 1 && s.incomplete == 0 && s.downloaded >= 1
    });
    assert_eq!(s.downloaded, 1, "{s:?}");
}

/// `unchoke tracker` on 127.0.5.1 serves a torrent whose own tracker it is. A libtorrent
/// seed (.2) and a Transmission leecher (.3) announce to it over HTTP; an unchoke leecher
/// (.4, `--seed` so it stays) announces over UDP only. Nobody is given a peer: unchoke
/// learns both others from the tracker and dials them, fetches from the seed, and
/// Transmission, which never dials loopback peers, gets its pieces from whoever dials it.
/// Both leechers end with the right data, and the tracker's scrape shows all three peers
/// and both completions.
fn unchoke_tracker_brings_libtorrent_transmission_and_unchoke_together(rt: Runtime) {
    require_tool("transmission-daemon", &["--version"], "transmission-daemon");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = unchoke();
    // The default --interval (120 s, peers kept 240 s) outlasts the test: libtorrent
    // re-announces only every 5 minutes, so a short interval would expire the seed.
    cmd.arg("tracker")
        .args(rt.args())
        .args(["--http", &format!("{}:0", ip(rt, 5, 1))])
        .args(["--udp", &format!("{}:0", ip(rt, 5, 1))])
        .arg("--json");
    let mut tracker = JsonProcess::spawn(&format!("unchoke tracker ({rt})"), cmd);
    let listening = tracker.wait_event("listening", SHORT);
    let http = listening["http"].as_str().expect("http addr").to_owned();
    let udp = listening["udp"].as_str().expect("udp addr").to_owned();
    let http_url = format!("http://{http}/announce");
    let udp_url = format!("udp://{udp}");
    let urls = listening["announce"].as_array().expect("announce urls");
    assert!(
        urls.contains(&Value::from(http_url.as_str()))
            && urls.contains(&Value::from(udp_url.as_str())),
        "{listening}"
    );

    let name = "t.bin";
    let len = 8 * MIB + 4321;
    let src = payload(dir.path(), name, len, 50 + u64::from(rt == Runtime::Smol));
    let torrent = dir.path().join("t.torrent");
    let hash = mktorrent(&src.join(name), &torrent, Some(&http_url));

    let (mut seed, seed_addr) = lt_seed(&torrent, &src, &ip(rt, 5, 2));
    announced(&mut seed, &http_url, 0);

    let tr_out = dir.path().join("transmission");
    std::fs::create_dir_all(&tr_out).expect("mkdir");
    let tr_ip = ip(rt, 5, 3);
    let mut cmd = Command::new(PYTHON);
    cmd.arg(helper("tr_peer.py"))
        .arg("leech")
        .arg(&torrent)
        .arg(&tr_out)
        .args(["--listen", &tr_ip, "--port", "0", "--rpc-port", "0"])
        // It keeps seeding (and stays registered) until the test stops it.
        .args([
            "--tracker-events",
            "--keep-seeding",
            "300",
            "--timeout",
            "300",
        ])
        .arg("--config-dir")
        .arg(dir.path().join("tr-config"));
    let mut transmission = JsonProcess::spawn(&format!("transmission leech {tr_ip}"), cmd);
    let tr_addr = transmission.wait_event("listening", LONG)["addr"]
        .as_str()
        .expect("listening addr")
        .to_owned();
    // Registered (and told about the seed) before unchoke's first announce.
    announced(&mut transmission, &http_url, 1);

    let out = dir.path().join("unchoke");
    let mut dl = unchoke_download(
        rt,
        &torrent,
        &out,
        &ip(rt, 5, 4),
        // libtorrent and Transmission here speak TCP only: dial over TCP (see above).
        &[
            "--no-trackers",
            "--tracker",
            &udp_url,
            "--seed",
            "--transport",
            "tcp",
        ],
    );
    let reply = wait_matching(&mut dl, "tracker", LONG, |v| v["url"] == udp_url.as_str());
    assert_eq!(reply["peers"], 2, "the seed and Transmission: {reply}");
    // The tracker saw all three (unchoke does not count itself among the peers it gets).
    wait_scrape(&http, &hash, LONG, |s| s.complete + s.incomplete == 3);

    dl.wait_event("complete", LONG);
    assert_same_file(&src.join(name), &out.join(name));
    transmission.wait_event("finished", TRANSMISSION);

    // Both leechers' `completed` reached the tracker; all three are seeds now.
    let s: Scrape = wait_scrape(&http, &hash, LONG, |s| {
        s.complete == 3 && s.incomplete == 0 && s.downloaded >= 2
    });
    assert_eq!(s.downloaded, 2, "{s:?}");

    dl.signal("INT");
    let status = dl.wait_exit(LONG);
    assert_eq!(status.code(), Some(130), "{status}\n{}", dl.dump());
    assert_dialled(&dl, &seed_addr);
    assert_dialled(&dl, &tr_addr);
    // Transmission takes data only from peers that dial it: unchoke, which found it
    // through the tracker, served it (here, so far, the whole file).
    let uploaded = dl.last("stopped").expect("a stopped line")["uploaded"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        uploaded >= 256 * 1024,
        "unchoke served Transmission only {uploaded} B\n{}",
        dl.dump()
    );
    // --no-trackers: the torrent's own (HTTP) tracker was never asked.
    let http_replies = replies_from(&dl, &http_url);
    assert!(
        http_replies.is_empty()
            && !dl
                .seen
                .iter()
                .any(|v| v["event"] == "tracker_error" && v["url"] == http_url.as_str()),
        "announced to the torrent's tracker despite --no-trackers\n{}",
        dl.dump()
    );
    // Unchoke's clean stop deregistered it: the seed and Transmission remain.
    wait_scrape(&http, &hash, LONG, |s| s.complete == 2 && s.incomplete == 0);

    transmission.signal("TERM");
    let tr_stop = transmission.wait_event("stopped", LONG);
    assert!(
        transmission.wait_exit(LONG).success(),
        "{}",
        transmission.dump()
    );
    assert!(
        tr_stop["downloaded"].as_u64().unwrap_or(0) >= len as u64,
        "Transmission fetched the whole file over the wire: {tr_stop}"
    );
    // Compared once the daemon has stopped (and flushed its cache).
    assert_same_file(&src.join(name), &tr_out.join(name));

    tracker.signal("INT");
    assert_eq!(
        tracker.wait_exit(SHORT).code(),
        Some(130),
        "{}",
        tracker.dump()
    );
    let stopped = tracker.last("stopped").cloned().unwrap_or_default();
    assert!(
        stopped["http_requests"].as_u64().unwrap_or(0) >= 2
            && stopped["udp_packets"].as_u64().unwrap_or(0) >= 2,
        "the tracker counted announces over both transports: {stopped}"
    );
}

/// Announces each info-hash in `hashes` (40 hex digits) over HTTP to the tracker at
/// `http` from the local address `source` (Python's `http.client` binds the source; std's
/// `TcpStream` cannot): per announce, the failure reason, or "" when it was accepted.
fn announce_from(http: &str, source: &str, hashes: &[String]) -> Vec<String> {
    const SCRIPT: &str = r#"
import http.client, json, sys
host, port = sys.argv[1].rsplit(":", 1)
source = sys.argv[2]
for n, h in enumerate(sys.argv[3:]):
    q = "".join("%" + h[i:i + 2] for i in range(0, 40, 2))
    conn = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    conn.request("GET", "/announce?info_hash=%s&peer_id=-UT0000-%012d&port=%d"
                 "&uploaded=0&downloaded=0&left=0&compact=1" % (q, n, 6881 + n))
    body = conn.getresponse().read()
    conn.close()
    print(json.dumps({"hash": h, "body": body.decode("latin-1")}), flush=True)
"#;
    let out = Command::new(PYTHON)
        .args(["-c", SCRIPT, http, source])
        .args(hashes)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "announces from {source}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("a JSON line");
            let body: Vec<u8> = v["body"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .map(|c| c as u8)
                .collect();
            let reply = unchoke_core::bencode::decode(&body).expect("a bencoded reply");
            let root = reply.as_dict().expect("a dictionary");
            if root.get(b"failure reason".as_slice()).is_none() {
                assert!(root.get(b"peers".as_slice()).is_some(), "{line}");
            }
            root.get(b"failure reason".as_slice())
                .and_then(|r| r.as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(lines.len(), hashes.len(), "one reply per announce");
    lines
}

/// `unchoke tracker --max-swarms 4 --max-swarms-per-ip 3` on 127.0.5.11. Address .12
/// announces five new info-hashes: three create swarms, the next two are refused with
/// the quota's reason, and its announce into a swarm it already created still works.
/// Address .13 then creates one (its own quota is untouched): four swarms, the maximum.
/// Address .14 creates one more: not refused, the least recently announced one-peer swarm
/// (.12's second) is evicted for it.
fn one_address_creates_at_most_its_quota_of_swarms_and_others_still_can(rt: Runtime) {
    let mut cmd = unchoke();
    cmd.arg("tracker")
        .args(rt.args())
        .args(["--http", &format!("{}:0", ip(rt, 5, 11))])
        .args(["--max-swarms", "4", "--max-swarms-per-ip", "3"])
        .arg("--json");
    let mut tracker = JsonProcess::spawn(&format!("unchoke tracker ({rt})"), cmd);
    let listening = tracker.wait_event("listening", SHORT);
    let http = listening["http"].as_str().expect("http addr").to_owned();
    let hash = |n: u8| format!("{:02x}", 0xa0 + n).repeat(20);
    let refused = "too many new torrents from this address: try again later";
    // Peers the tracker lists for hash `n` (a swarm it does not track scrapes as none).
    let peers =
        |n: u8| common::tracker::scrape(&http, &hash(n)).map_or(0, |s| s.complete + s.incomplete);

    let first: Vec<String> = (1..=5).map(hash).collect();
    let said = announce_from(&http, &ip(rt, 5, 12), &first);
    assert_eq!(said[..3], ["", "", ""], "within the quota: {said:?}");
    assert_eq!(said[3..], [refused, refused], "past the quota: {said:?}");
    for n in 1..=3 {
        assert_eq!(peers(n), 1, "a swarm .12 created: {n}");
    }
    for n in 4..=5 {
        assert_eq!(peers(n), 0, "no swarm for a refused hash {n}");
    }
    // Into a swarm it created: no new swarm, no quota spent.
    assert_eq!(announce_from(&http, &ip(rt, 5, 12), &[hash(1)]), [""]);

    assert_eq!(announce_from(&http, &ip(rt, 5, 13), &[hash(6)]), [""]);
    assert_eq!(announce_from(&http, &ip(rt, 5, 14), &[hash(7)]), [""]);
    for n in [1, 3, 6, 7] {
        assert_eq!(peers(n), 1, "a swarm kept: {n}");
    }
    assert_eq!(
        peers(2),
        0,
        "the least recently announced swarm was evicted for the fifth"
    );

    tracker.signal("INT");
    assert_eq!(
        tracker.wait_exit(SHORT).code(),
        Some(130),
        "{}",
        tracker.dump()
    );
    let stopped = tracker.last("stopped").cloned().unwrap_or_default();
    assert_eq!(stopped["swarms"], 4, "--max-swarms held: {stopped}");
}

/// `unchoke tracker ARGS --json`, expected to fail at start-up: its stderr.
fn tracker_fails(args: &[&str]) -> String {
    let mut cmd = unchoke();
    cmd.arg("tracker").args(args).arg("--json");
    let mut p = JsonProcess::spawn("unchoke tracker (bad start)", cmd);
    let status = p.wait_exit(SHORT);
    assert_eq!(status.code(), Some(1), "{}", p.dump());
    assert!(
        p.last("listening").is_none(),
        "it must not claim to listen\n{}",
        p.dump()
    );
    p.dump()
}

#[test]
fn a_malformed_whitelist_line_is_named_and_the_tracker_does_not_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("allowed.txt");
    std::fs::write(
        &list,
        "# torrents we serve\n\n2e5ad9c481bd0ccf88b41a09eca71f2d663bf608\n2E5AD9C481\nfine-after\n",
    )
    .expect("write whitelist");
    let said = tracker_fails(&[
        "--whitelist",
        list.to_str().expect("utf-8 path"),
        "--http",
        "127.0.5.10:0",
    ]);
    assert!(
        said.contains("allowed.txt:4:") && said.contains("2E5AD9C481"),
        "the error names the file, line 4 and its text: {said}"
    );
    assert!(
        !said.contains("allowed.txt:5:"),
        "stops at the first bad line: {said}"
    );

    let missing = dir.path().join("missing.txt");
    let said = tracker_fails(&[
        "--whitelist",
        missing.to_str().expect("utf-8 path"),
        "--http",
        "127.0.5.10:0",
    ]);
    assert!(said.contains("missing.txt"), "{said}");
}

#[test]
fn a_port_in_use_is_a_clear_bind_error() {
    let taken = std::net::TcpListener::bind("127.0.5.9:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let said = tracker_fails(&["--http", &addr]);
    assert!(
        said.contains("HTTP") && said.contains(&addr) && said.contains("in use"),
        "the error names the socket, the address and the cause: {said}"
    );

    let taken_udp = std::net::UdpSocket::bind("127.0.5.9:0").expect("bind");
    let addr = taken_udp.local_addr().expect("addr").to_string();
    let said = tracker_fails(&["--udp", &addr]);
    assert!(
        said.contains("UDP") && said.contains(&addr) && said.contains("in use"),
        "the error names the socket, the address and the cause: {said}"
    );
}

#[test]
fn swarm_limits_out_of_range_are_usage_errors() {
    for (cmd, flag, value) in [
        ("tracker", "--max-swarms", "0"),
        ("tracker", "--max-swarms-per-ip", "2000000"),
        ("tracker", "--swarm-quota-window", "0"),
        ("dht", "--max-swarms", "0"),
        ("dht", "--max-swarms-per-ip", "many"),
    ] {
        let out = common::run(&[cmd, flag, value, "--json"]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd} {flag} {value}: {said}");
        assert!(said.contains(flag), "the error names {flag}: {said}");
    }
}
