//! `TrackerClient` (HTTP announces; HTTPS in `tracker_tls.rs` and name resolution; UDP trackers are the session's,
//! tested in virtual time in `core/tests/tracker_timing.rs`) over real sockets on 127.0.0.0/8, against the core's real tracker
//! server logic (`TrackerServer`) served by small std threads, and against hand-made
//! misbehaving trackers.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use unchoke_core::InfoHash;
use unchoke_core::tracker::http::HttpTrackerError;
use unchoke_core::tracker::server::{HttpOutcome, ServerConfig, TrackerServer};
use unchoke_core::tracker::{AnnounceEvent, AnnounceRequest};
use unchoke_core::tracker::{ResolveError, TrackerFailure};
use unchoke_core::wire::PeerId;
use unchoke_driver::Clock;
use unchoke_driver::tracker_client::TrackerClient;

/// No test server thread lives longer than this, whatever happens to its test.
const SERVER_LIFETIME: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(5);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip literal")
}

fn request(peer: u8, port: u16, left: u64) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: InfoHash([0x5a; 20]),
        peer_id: PeerId([peer; 20]),
        port,
        uploaded: 0,
        downloaded: 0,
        left,
        event: AnnounceEvent::Started,
        numwant: Some(50),
        key: u32::from(peer),
        ip: None,
        ipv6: None,
        tracker_id: None,
    }
}

/// A server thread stopped (and joined) on drop.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An HTTP server on 127.0.0.1: per connection, reads until `respond` (given the bytes so
/// far and the client's address) returns a response, writes it and closes.
/// `respond` returning `Some(vec![])` closes without writing anything.
fn spawn_http(
    mut respond: impl FnMut(&[u8], SocketAddr) -> Option<Vec<u8>> + Send + 'static,
) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let started = Instant::now();
        while !flag.load(Ordering::SeqCst) && started.elapsed() < SERVER_LIFETIME {
            let (mut stream, peer) = match listener.accept() {
                Ok(c) => c,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            };
            stream.set_nonblocking(false).expect("blocking");
            stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .expect("timeout");
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let conn_started = Instant::now();
            loop {
                if let Some(reply) = respond(&got, peer) {
                    let _ = stream.write_all(&reply);
                    break;
                }
                if flag.load(Ordering::SeqCst) || conn_started.elapsed() > Duration::from_secs(10) {
                    break;
                }
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
            }
        }
    });
    Server {
        addr,
        stop,
        thread: Some(thread),
    }
}

/// An HTTP tracker backed by the core's `TrackerServer`.
fn http_tracker(config: ServerConfig) -> Server {
    let mut server = TrackerServer::new(config, 7);
    let clock = Clock::start();
    spawn_http(move |bytes, peer| {
        if bytes.is_empty() {
            return None;
        }
        match server.handle_http_request(bytes, peer, clock.now()) {
            HttpOutcome::NeedMore => None,
            HttpOutcome::Respond(reply) => Some(reply),
        }
    })
}

/// An HTTP server answering every complete request head with `reply`.
fn canned_http(reply: &'static [u8]) -> Server {
    spawn_http(move |bytes, _| {
        bytes
            .windows(4)
            .any(|w| w == b"\r\n\r\n")
            .then(|| reply.to_vec())
    })
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

#[test]
fn client_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<TrackerClient>();
}

#[test]
fn http_two_peers_see_each_other_under_the_bound_ip() {
    let tracker = http_tracker(ServerConfig::default());
    let url = format!("http://{}/announce", tracker.addr);
    let a = TrackerClient::new(Some(ip("127.0.0.7")));
    let b = TrackerClient::new(None);
    // An unspecified bind IP means "the OS's choice", exactly like None.
    let c = TrackerClient::new(Some(ip("0.0.0.0")));

    let first = a.announce(&url, &request(1, 7001, 0), TIMEOUT).expect("a");
    assert_eq!(first.interval, 120);
    assert_eq!(first.min_interval, Some(30));
    assert!(first.peers.is_empty(), "alone in the swarm: {first:?}");

    let second = b
        .announce(&url, &request(2, 7002, 100), TIMEOUT)
        .expect("b");
    assert_eq!(second.peers, vec![addr("127.0.0.7:7001")]);
    assert_eq!((second.complete, second.incomplete), (Some(1), Some(1)));

    let again = a.announce(&url, &request(1, 7001, 0), TIMEOUT).expect("a");
    assert_eq!(again.peers, vec![addr("127.0.0.1:7002")]);

    let third = c
        .announce(&url, &request(3, 7003, 100), TIMEOUT)
        .expect("c");
    let mut peers = third.peers.clone();
    peers.sort();
    assert_eq!(peers, vec![addr("127.0.0.1:7002"), addr("127.0.0.7:7001")]);
}

#[test]
fn http_by_host_name() {
    // `localhost` comes from /etc/hosts: no DNS traffic. If it also resolves to ::1 (where
    // nothing listens) the client must fall back to 127.0.0.1.
    let tracker = http_tracker(ServerConfig::default());
    let url = format!("http://localhost:{}/announce", tracker.addr.port());
    let client = TrackerClient::new(None);
    let r = client
        .announce(&url, &request(1, 7001, 0), TIMEOUT)
        .expect("announce");
    assert_eq!(r.interval, 120);
}

#[test]
fn tracker_refusals_are_failures() {
    let config = ServerConfig {
        whitelist: Some(BTreeSet::new()),
        ..ServerConfig::default()
    };
    let http = http_tracker(config);
    let client = TrackerClient::new(None);
    {
        let url = format!("http://{}/announce", http.addr);
        let r = client.announce(&url, &request(1, 7001, 0), TIMEOUT);
        assert!(
            matches!(&r, Err(TrackerFailure::Refused(m)) if m == "torrent not tracked here"),
            "{url}: {r:?}"
        );
    }
    let canned =
        canned_http(b"HTTP/1.1 200 OK\r\nContent-Length: 28\r\n\r\nd14:failure reason7:go awaye");
    let r = client.announce(
        &format!("http://{}/announce", canned.addr),
        &request(1, 7001, 0),
        TIMEOUT,
    );
    assert!(
        matches!(&r, Err(TrackerFailure::Refused(m)) if m == "go away"),
        "{r:?}"
    );
    let text = r.expect_err("failure").to_string();
    assert!(text.contains("go away"), "{text}");
}

#[test]
fn http_bad_responses() {
    let client = TrackerClient::new(None);
    let run = |reply: &'static [u8]| {
        let server = canned_http(reply);
        client.announce(
            &format!("http://{}/announce", server.addr),
            &request(1, 7001, 0),
            TIMEOUT,
        )
    };
    let r = run(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    assert!(
        matches!(
            &r,
            Err(TrackerFailure::Http(HttpTrackerError::Status {
                status: 404,
                ..
            }))
        ),
        "{r:?}"
    );
    let r = run(b"SSH-2.0-OpenSSH_9.2\r\n\r\n");
    assert!(
        matches!(
            &r,
            Err(TrackerFailure::Http(HttpTrackerError::MalformedResponse(_)))
        ),
        "{r:?}"
    );
    let r = run(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot bncd!");
    assert!(
        matches!(&r, Err(TrackerFailure::Http(HttpTrackerError::Bencode(_)))),
        "{r:?}"
    );
    let r = run(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nd8:interval");
    assert!(
        matches!(
            &r,
            Err(TrackerFailure::Http(HttpTrackerError::Truncated(_)))
        ),
        "{r:?}"
    );
    // A body read until the connection closes, chunked framing: both fine.
    let r = run(b"HTTP/1.0 200 OK\r\n\r\nd8:intervali60e5:peers6:\x7f\x00\x00\x09\x1b\x59e");
    assert_eq!(r.expect("until close").peers, vec![addr("127.0.0.9:7001")]);
    let r = run(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                  8\r\nd8:inter\r\n7\r\nvali60e\r\n9\r\n5:peers0:\r\n1\r\ne\r\n0\r\n\r\n");
    assert_eq!(r.expect("chunked").interval, 60);
}

#[test]
fn http_silent_server_times_out() {
    // Accepts and reads, never answers.
    let server = spawn_http(|_, _| None);
    let client = TrackerClient::new(None);
    let started = Instant::now();
    let r = client.announce(
        &format!("http://{}/announce", server.addr),
        &request(1, 7001, 0),
        Duration::from_secs(1),
    );
    let took = started.elapsed();
    assert!(matches!(r, Err(TrackerFailure::Stalled)), "{r:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn http_refused_connection() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let client = TrackerClient::new(None);
    let r = client.announce(
        &format!("http://127.0.0.1:{port}/announce"),
        &request(1, 7001, 0),
        TIMEOUT,
    );
    assert!(
        matches!(&r, Err(TrackerFailure::Connect { addr, message })
            if addr.port() == port && message.contains("refused")),
        "{r:?}"
    );
}

#[test]
fn unsupported_and_invalid_urls() {
    let client = TrackerClient::new(None);
    let req = request(1, 7001, 0);
    // UDP trackers are the session's own: this client never takes one.
    let r = client.announce("udp://127.0.0.1:1", &req, TIMEOUT);
    assert!(
        matches!(&r, Err(TrackerFailure::UnsupportedScheme(s)) if s == "udp"),
        "{r:?}"
    );
    let r = client.announce("WSS://127.0.0.1:1/announce", &req, TIMEOUT);
    assert!(
        matches!(&r, Err(TrackerFailure::UnsupportedScheme(s)) if s == "wss"),
        "{r:?}"
    );
    let text = r.expect_err("wss").to_string();
    assert!(
        text.contains("wss://") && text.contains("not supported"),
        "{text}"
    );
    for bad in [
        "127.0.0.1:1/announce",
        "://127.0.0.1:1",
        "http://127.0.0.1:1/a b",
        "http://",
    ] {
        let r = client.announce(bad, &req, TIMEOUT);
        assert!(
            matches!(r, Err(TrackerFailure::InvalidUrl(_))),
            "{bad:?}: {r:?}"
        );
    }
}

#[test]
fn unresolvable_host() {
    // `bad..invalid` has an empty label: the system resolver rejects it without sending
    // any query, so this test needs no network (`nonexistent.invalid` would go to DNS).
    let client = TrackerClient::new(None);
    let url = "http://bad..invalid:6969/announce";
    let started = Instant::now();
    let r = client.announce(url, &request(1, 7001, 0), Duration::from_secs(3));
    assert!(
        matches!(&r, Err(TrackerFailure::Resolve { host, .. }) if host == "bad..invalid"),
        "{url}: {r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    // The same resolver answers the session's `Action::Resolve` for UDP trackers.
    let r = client.resolve("bad..invalid", 6969, Duration::from_secs(3));
    assert!(matches!(r, Err(ResolveError::Failed(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(7));
}

#[test]
fn names_resolve_with_the_bound_family_first() {
    // `localhost` comes from /etc/hosts: no DNS traffic.
    let client = TrackerClient::new(Some(ip("127.0.0.1")));
    let addrs = client
        .resolve("localhost", 6969, TIMEOUT)
        .expect("localhost resolves");
    assert!(addrs.iter().all(|a| a.port() == 6969), "{addrs:?}");
    assert!(addrs.first().is_some_and(SocketAddr::is_ipv4), "{addrs:?}");
    let mut unique = addrs.clone();
    unique.dedup();
    assert_eq!(unique, addrs, "each address once");
}
