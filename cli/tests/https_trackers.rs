//! HTTPS trackers end to end: opentracker (Debian's, plain HTTP) behind stunnel (TLS
//! terminator) on 127.0.0.1, with a CA and server certificates made in the test (rcgen).
//! A libtorrent seed registers with opentracker over plain HTTP; `unchoke download` is given
//! only `--tracker https://127.0.0.1:PORT/announce --ca-file ca.pem` and finds the seed
//! through TLS. With the wrong CA, or a certificate for another host, the download names
//! the certificate error and still completes from the other source it was given (`--peer`).
//!
//! Each test runs once per `--runtime` (`per_runtime!`). Addresses: opentracker, the seed
//! and unchoke on 127.0.6.n (n + 100 for smol, so the two variants never share one); stunnel
//! on 127.0.0.1 (the certificates' IP SAN), on a port of its own per test. No name is
//! resolved: the URL's host is an IP literal, checked against the certificate's IP SAN.
//! opentracker registers a peer under the connection's source address, so unchoke, behind
//! stunnel, is listed back to itself as 127.0.0.1 (a dial there is refused, harmlessly);
//! the seed announces directly and is listed under its own address.
//! Every process is killed through its child handle when the test ends or fails.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::process::JsonProcess;
use common::runtime::Runtime;
use common::tls::{LOCALHOST, Stunnel, TestCa};
use common::tracker::{OpenTracker, announced, lt_seed_with, mktorrent};
use common::{assert_dialled, assert_same_file, data, unchoke_download};

/// Bound on a transfer and on the processes' exits.
const LONG: Duration = Duration::from_secs(90);

const MIB: usize = 1024 * 1024;

/// `127.0.6.n`, n + 100 for smol.
fn ip(rt: Runtime, n: u8) -> String {
    assert!((1..100).contains(&n), "host {n} out of this file's plan");
    let host = match rt {
        Runtime::Mio => n,
        Runtime::Smol => n + 100,
    };
    format!("127.0.6.{host}")
}

/// What each test starts: opentracker with a libtorrent seed registered, and stunnel in
/// front of the tracker presenting a certificate the test chose.
struct Swarm {
    dir: tempfile::TempDir,
    /// The payload file the seed has.
    src: PathBuf,
    name: &'static str,
    torrent: PathBuf,
    /// Fields drop in order: the seed, then stunnel, then the tracker.
    _seed: JsonProcess,
    seed_addr: String,
    stunnel: Stunnel,
    _tracker: OpenTracker,
    /// The CA that signed stunnel's certificate, as a PEM file.
    ca_pem: PathBuf,
}

/// Starts opentracker on 127.0.6.`first`, a libtorrent seed on .`first + 1` announcing to
/// it over plain HTTP, and stunnel on 127.0.0.1 with a certificate for `dns` and `ips`
/// signed by a fresh CA.
fn swarm(rt: Runtime, first: u8, dns: &[&str], ips: &[std::net::IpAddr]) -> Swarm {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = "s.bin";
    let data_dir = dir.path().join("seed");
    common::write(
        &data_dir,
        name,
        &data(
            600 + u64::from(first) + 7 * u64::from(rt == Runtime::Smol),
            6 * MIB + 99,
        ),
    );
    let src = data_dir.join(name);
    // The info-hash does not depend on the announce URL: whitelist it before the
    // tracker's port is known.
    let hash = mktorrent(&src, &dir.path().join("bare.torrent"), None);
    let tracker = OpenTracker::start(&ip(rt, first), &dir.path().join("ot"), &[&hash]);
    let http_url = tracker.http_url();
    let torrent = dir.path().join("s.torrent");
    assert_eq!(mktorrent(&src, &torrent, Some(&http_url)), hash);
    // 4 MB/s: the transfer takes over a second, so a failed announce (answered within
    // milliseconds) is reported before the download completes and exits, even on a busy
    // machine.
    let (mut seed, seed_addr) = lt_seed_with(
        &torrent,
        &data_dir,
        &ip(rt, first + 1),
        &["--upload-limit", "4000000"],
    );
    // Registered before unchoke asks: opentracker lists the announcing peer itself.
    announced(&mut seed, &http_url, 1);

    let ca = TestCa::new("unchoke test CA");
    let ca_pem = ca.write_pem(&dir.path().join("ca.pem"));
    let (crt, key) = ca.server_cert(dir.path(), "tracker", dns, ips);
    let stunnel = Stunnel::start(&dir.path().join("stunnel"), &crt, &key, &tracker.addr);
    Swarm {
        src,
        name,
        torrent,
        _seed: seed,
        seed_addr,
        stunnel,
        _tracker: tracker,
        ca_pem,
        dir,
    }
}

impl Swarm {
    /// `unchoke download` of the torrent on 127.0.6.`n`, announcing only to stunnel's
    /// https:// URL (not the torrent's own plain one), with no DHT, plus `extra`.
    fn download(&self, rt: Runtime, n: u8, extra: &[&str]) -> (JsonProcess, PathBuf) {
        let out = self.dir.path().join("out");
        let url = self.stunnel.https_url();
        // libtorrent here speaks TCP only and leaves a uTP SYN unanswered: dial over TCP,
        // so the dial the tests check is the one that connects.
        let mut args = vec![
            "--no-trackers",
            "--no-dht",
            "--tracker",
            url.as_str(),
            "--transport",
            "tcp",
        ];
        args.extend_from_slice(extra);
        let dl = unchoke_download(rt, &self.torrent, &out, &ip(rt, n), &args);
        (dl, out)
    }

    /// Waits for `dl` to complete and exit cleanly, and checks the bytes.
    fn completes(&self, dl: &mut JsonProcess, out: &Path) {
        dl.wait_event("complete", LONG);
        let status = dl.wait_exit(LONG);
        assert!(status.success(), "{status}\n{}", dl.dump());
        assert_same_file(&self.src, &out.join(self.name));
    }
}

/// The `tracker_error` messages `dl` printed for `url`.
fn tracker_errors(dl: &JsonProcess, url: &str) -> Vec<String> {
    dl.seen
        .iter()
        .filter(|v| v["event"] == "tracker_error" && v["url"] == url)
        .filter_map(|v| v["message"].as_str().map(str::to_owned))
        .collect()
}

per_runtime!(
    finds_a_libtorrent_seed_through_an_https_tracker,
    an_untrusted_certificate_is_named_and_the_download_completes_from_its_peer,
    a_certificate_for_another_host_is_named_and_the_download_completes_from_its_peer,
);

/// The seed is found through the HTTPS tracker only (no `--peer`): the reply over TLS lists
/// it, unchoke dials it and downloads identical bytes.
fn finds_a_libtorrent_seed_through_an_https_tracker(rt: Runtime) {
    let s = swarm(rt, 1, &["tracker.test"], &[LOCALHOST]);
    let ca = s.ca_pem.to_str().expect("utf-8 path").to_owned();
    let (mut dl, out) = s.download(rt, 3, &["--ca-file", &ca]);
    s.completes(&mut dl, &out);
    let url = s.stunnel.https_url();
    assert!(
        dl.seen.iter().any(|v| v["event"] == "tracker"
            && v["url"] == url
            && v["peers"].as_u64().unwrap_or(0) >= 1),
        "no reply from {url} listing the seed\n{}",
        dl.dump()
    );
    assert!(tracker_errors(&dl, &url).is_empty(), "{}", dl.dump());
    assert_dialled(&dl, &s.seed_addr);
}

/// A CA file of another authority: the tracker's certificate is refused as untrusted (said
/// in those words, with the hint), and the download completes from `--peer`.
fn an_untrusted_certificate_is_named_and_the_download_completes_from_its_peer(rt: Runtime) {
    let s = swarm(rt, 11, &["tracker.test"], &[LOCALHOST]);
    let other = TestCa::new("some other CA").write_pem(&s.dir.path().join("other-ca.pem"));
    let other = other.to_str().expect("utf-8 path").to_owned();
    let (mut dl, out) = s.download(rt, 13, &["--ca-file", &other, "--peer", &s.seed_addr]);
    s.completes(&mut dl, &out);
    let errors = tracker_errors(&dl, &s.stunnel.https_url());
    assert!(
        errors.iter().any(|m| m.contains(
            "the tracker's certificate is not signed by a trusted authority (give --ca-file"
        )),
        "{errors:?}\n{}",
        dl.dump()
    );
}

/// A certificate for `other.test` only, at 127.0.0.1: refused as being for another host,
/// and the download completes from `--peer`.
fn a_certificate_for_another_host_is_named_and_the_download_completes_from_its_peer(rt: Runtime) {
    let s = swarm(rt, 21, &["other.test"], &[]);
    let ca = s.ca_pem.to_str().expect("utf-8 path").to_owned();
    let (mut dl, out) = s.download(rt, 23, &["--ca-file", &ca, "--peer", &s.seed_addr]);
    s.completes(&mut dl, &out);
    let errors = tracker_errors(&dl, &s.stunnel.https_url());
    assert!(
        errors.iter().any(|m| m
            .contains("the tracker's certificate is for another host (not 127.0.0.1")
            && m.contains("other.test")),
        "{errors:?}\n{}",
        dl.dump()
    );
}
