//! The tracker service's test suite, run once per runtime: `runtime-mio/tests/tracker_server.rs`
//! and `runtime-smol/tests/tracker_server.rs` include this file as a module after naming
//! their crate `rt`. HTTP and UDP announces into one shared state, scrapes, timeouts,
//! connection limits, garbage input, expiry, shutdown, over real sockets on 127.0.0.1.
//! Every wait is bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use super::rt::{TrackerService, TrackerServiceConfig, TrackerServiceError, TrackerServiceStats};
use unchoke_core::InfoHash;
use unchoke_core::tracker::http::{
    HttpResponseReader, announce_url, parse_announce_response, parse_scrape_response,
    percent_encode_into, request_bytes,
};
use unchoke_core::tracker::server::ServerConfig;
use unchoke_core::tracker::udp::{Request, Response};
use unchoke_core::tracker::{AnnounceEvent, AnnounceRequest, AnnounceResponse, ScrapeEntry};
use unchoke_core::wire::PeerId;

const IO_TIMEOUT: Duration = Duration::from_secs(5);
const HASH: InfoHash = InfoHash([0xab; 20]);

fn local() -> Option<SocketAddr> {
    Some("127.0.0.1:0".parse().unwrap())
}

fn config() -> TrackerServiceConfig {
    TrackerServiceConfig {
        http: local(),
        udp: local(),
        rng_seed: Some(42),
        http_timeout: Duration::from_secs(1),
        ..TrackerServiceConfig::default()
    }
}

fn request(peer: u8, port: u16, left: u64) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: HASH,
        peer_id: PeerId([peer; 20]),
        port,
        uploaded: 0,
        downloaded: 0,
        left,
        event: AnnounceEvent::Started,
        numwant: None,
        key: u32::from(peer),
        ip: None,
        ipv6: None,
        tracker_id: None,
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Sends `raw` and returns the response's body (or the reader's error text).
fn exchange(addr: SocketAddr, raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut s = connect(addr);
    s.write_all(raw).map_err(|e| e.to_string())?;
    let mut reader = HttpResponseReader::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return reader.finish().map_err(|e| e.to_string());
        }
        if let Some(body) = reader.push(&buf[..n]).map_err(|e| e.to_string())? {
            return Ok(body);
        }
    }
}

/// The whole raw response to `raw` (status line included), read until the server closes.
fn raw_exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

fn http_announce(addr: SocketAddr, req: &AnnounceRequest) -> AnnounceResponse {
    let url = announce_url(&format!("http://{addr}/announce"), req).unwrap();
    let (_, raw) = request_bytes(&url).unwrap();
    parse_announce_response(&exchange(addr, &raw).unwrap()).unwrap()
}

fn http_scrape(addr: SocketAddr, hash: &InfoHash) -> ScrapeEntry {
    let mut url = format!("http://{addr}/scrape?info_hash=");
    percent_encode_into(&mut url, &hash.0);
    let (_, raw) = request_bytes(&url).unwrap();
    parse_scrape_response(&exchange(addr, &raw).unwrap(), hash).unwrap()
}

/// One BEP 15 request/response over `socket`, retransmitted every 2 s (loopback rarely
/// drops anything), for at most 10 s. Built and parsed with the core's client codec.
fn udp_call(socket: &UdpSocket, addr: SocketAddr, req: &Request) -> Response {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let tx = match req {
        Request::Connect { transaction_id }
        | Request::Announce { transaction_id, .. }
        | Request::Scrape { transaction_id, .. } => *transaction_id,
    };
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 2048];
    while Instant::now() < give_up {
        socket.send_to(&req.encode(), addr).unwrap();
        let resend = Instant::now() + Duration::from_secs(2);
        while Instant::now() < resend {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) if from == addr => {
                    let resp = Response::decode(&buf[..n], false).unwrap();
                    if resp.transaction_id() == tx {
                        return resp;
                    }
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("udp receive failed: {e}"),
            }
        }
    }
    panic!("no UDP answer within 10 s");
}

/// A connect + announce exchange from a fresh socket.
fn udp_announce(addr: SocketAddr, request: AnnounceRequest) -> AnnounceResponse {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let connection_id = udp_connect(&socket, addr);
    match udp_call(
        &socket,
        addr,
        &Request::Announce {
            connection_id,
            transaction_id: 0x2222,
            request,
        },
    ) {
        Response::Announce { response, .. } => response,
        other => panic!("expected an announce reply, got {other:?}"),
    }
}

fn udp_connect(socket: &UdpSocket, addr: SocketAddr) -> u64 {
    match udp_call(
        socket,
        addr,
        &Request::Connect {
            transaction_id: 0x1111,
        },
    ) {
        Response::Connect { connection_id, .. } => connection_id,
        other => panic!("expected a connect reply, got {other:?}"),
    }
}

/// Shuts `service` down on another thread and waits at most 5 s for it, so a hung
/// event loop fails the test instead of hanging it.
fn stop(service: TrackerService) -> TrackerServiceStats {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(service.shutdown());
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("shutdown did not return within 5 s")
        .unwrap()
}

/// Waits until `cond` holds, for at most `limit`.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Whether the server closed `s` (EOF or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

#[test]
fn http_and_udp_announces_share_one_swarm() {
    let service = TrackerService::start(config()).unwrap();
    let http = service.http_addr().unwrap();
    let udp = service.udp_addr().unwrap();
    assert_ne!(http.port(), 0);
    assert_ne!(udp.port(), 0);

    let first = http_announce(http, &request(1, 7001, 100));
    assert!(first.peers.is_empty(), "alone in the swarm: {first:?}");
    assert_eq!(first.incomplete, Some(1));

    let second = http_announce(http, &request(2, 7002, 0));
    let a: SocketAddr = "127.0.0.1:7001".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:7002".parse().unwrap();
    assert_eq!(second.peers, vec![a]);
    assert_eq!((second.complete, second.incomplete), (Some(1), Some(1)));

    let third = udp_announce(udp, request(3, 7003, 50));
    let mut seen = third.peers.clone();
    seen.sort();
    assert_eq!(seen, vec![a, b], "the UDP client sees both HTTP peers");
    assert_eq!(
        (third.complete, third.incomplete),
        (Some(1), Some(2)),
        "counts include the UDP peer"
    );

    let stats = service.stats();
    assert_eq!(
        (
            stats.swarms,
            stats.peers,
            stats.http_requests,
            stats.udp_packets
        ),
        (1, 3, 2, 2),
        "{stats:?}"
    );

    let scrape = http_scrape(http, &HASH);
    assert_eq!(
        scrape,
        ScrapeEntry {
            complete: 1,
            downloaded: 0,
            incomplete: 2
        }
    );
    let unknown = http_scrape(http, &InfoHash([0x01; 20]));
    assert_eq!(unknown, ScrapeEntry::default());

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let connection_id = udp_connect(&socket, udp);
    let scrape = Request::Scrape {
        connection_id,
        transaction_id: 0x3333,
        info_hashes: vec![HASH, InfoHash([0x01; 20])],
    };
    match udp_call(&socket, udp, &scrape) {
        Response::Scrape { entries, .. } => assert_eq!(
            entries,
            vec![
                ScrapeEntry {
                    complete: 1,
                    downloaded: 0,
                    incomplete: 2
                },
                ScrapeEntry::default()
            ]
        ),
        other => panic!("expected a scrape reply, got {other:?}"),
    }

    let mut leave = request(1, 7001, 100);
    leave.event = AnnounceEvent::Stopped;
    http_announce(http, &leave);
    assert_eq!(http_scrape(http, &HASH).incomplete, 1);

    let end = stop(service);
    assert_eq!((end.peers, end.http_requests, end.udp_packets), (2, 6, 4));
}

#[test]
fn silent_clients_are_closed_after_the_timeout_without_blocking_others() {
    let service = TrackerService::start(config()).unwrap();
    let http = service.http_addr().unwrap();
    let opened = Instant::now();
    let mut silent = connect(http);
    let mut partial = connect(http);
    partial.write_all(b"GET /announce?info_hash=").unwrap();

    // Served at once while the two idle connections are open.
    let served = Instant::now();
    let reply = http_announce(http, &request(1, 7001, 1));
    assert_eq!(reply.incomplete, Some(1));
    assert!(served.elapsed() < Duration::from_millis(900));

    assert!(closed_within(&mut silent, Duration::from_secs(4)));
    let waited = opened.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}, before the 1 s timeout"
    );
    assert!(waited < Duration::from_secs(4), "closed after {waited:?}");
    assert!(closed_within(&mut partial, Duration::from_secs(2)));

    // Still serving afterwards.
    assert_eq!(http_scrape(http, &HASH).incomplete, 1);
    stop(service);
}

#[test]
fn excess_idle_connections_do_not_lock_out_an_announce() {
    let service = TrackerService::start(TrackerServiceConfig {
        max_http_connections: 4,
        // Longer than the test: only the connection limit can free a slot.
        http_timeout: Duration::from_secs(60),
        ..config()
    })
    .unwrap();
    let http = service.http_addr().unwrap();
    let mut idle: Vec<TcpStream> = (0..10).map(|_| connect(http)).collect();

    let started = Instant::now();
    let reply = http_announce(http, &request(9, 7009, 1));
    assert_eq!(reply.incomplete, Some(1));
    assert!(started.elapsed() < Duration::from_secs(3));

    assert!(
        closed_within(&mut idle[0], Duration::from_secs(2)),
        "the oldest idle connection was closed"
    );
    // The newest idle connections are still open: at most `max` are kept, but they are.
    let last = idle.len() - 1;
    assert!(!closed_within(&mut idle[last], Duration::from_millis(200)));
    stop(service);
}

#[test]
fn concurrent_announces_over_both_fronts_are_all_served() {
    let service = TrackerService::start(config()).unwrap();
    let http = service.http_addr().unwrap();
    let udp = service.udp_addr().unwrap();
    let clients: Vec<_> = (0..48u8)
        .map(|i| {
            std::thread::spawn(move || {
                let req = request(i, 10_000 + u16::from(i), 1);
                if i % 3 == 0 {
                    udp_announce(udp, req)
                } else {
                    http_announce(http, &req)
                }
            })
        })
        .collect();
    for c in clients {
        let reply = c.join().unwrap();
        assert!(reply.incomplete.is_some_and(|n| n >= 1), "{reply:?}");
    }
    let stats = service.stats();
    assert_eq!((stats.swarms, stats.peers), (1, 48));
    assert_eq!(stats.http_requests, 32);
    assert_eq!(stats.udp_packets, 32, "16 connects + 16 announces");
    stop(service);
}

#[test]
fn garbage_is_answered_or_dropped_and_serving_goes_on() {
    let service = TrackerService::start(config()).unwrap();
    let http = service.http_addr().unwrap();
    let udp = service.udp_addr().unwrap();

    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut seed = 0x9e37_79b9_u32;
    let mut sent = 0u64;
    for len in [0usize, 1, 15, 16, 17, 97, 98, 99, 300, 1500] {
        for _ in 0..5 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    // xorshift: arbitrary bytes without a dependency.
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed.to_be_bytes()[0]
                })
                .collect();
            sender.send_to(&junk, udp).unwrap();
            sent += 1;
        }
    }
    // A well-framed announce with a made-up connection id gets a BEP 15 error back.
    let mut bad_id = vec![0u8; 8];
    bad_id.extend_from_slice(&1u32.to_be_bytes());
    bad_id.extend_from_slice(&0x5eed_u32.to_be_bytes());
    bad_id.resize(98, 0);
    sender.send_to(&bad_id, udp).unwrap();
    sent += 1;
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + IO_TIMEOUT;
    let error = loop {
        assert!(Instant::now() < deadline, "no error reply");
        let (n, _) = sender.recv_from(&mut buf).unwrap();
        if buf[4..8] == 0x5eed_u32.to_be_bytes() {
            break buf[..n].to_vec();
        }
    };
    assert_eq!(error[..4], 3u32.to_be_bytes(), "action 3: error");

    let head = raw_exchange(http, b"BREW /coffee HTCPCP/1.0\r\n\r\n");
    assert!(head.starts_with(b"HTTP/1.1 400"), "{head:?}");
    let huge = vec![b'a'; 20_000];
    let head = raw_exchange(http, &huge);
    assert!(head.starts_with(b"HTTP/1.1 400"), "{head:?}");
    let head = raw_exchange(http, b"GET /nothing HTTP/1.1\r\n\r\n");
    assert!(head.starts_with(b"HTTP/1.1 404"), "{head:?}");

    assert!(wait_until(IO_TIMEOUT, || service.stats().udp_packets == sent));
    assert!(service.is_running());
    let reply = udp_announce(udp, request(5, 7005, 1));
    assert_eq!(reply.incomplete, Some(1));
    assert_eq!(http_announce(http, &request(6, 7006, 1)).peers.len(), 1);
    let stats = stop(service);
    assert_eq!(stats.http_requests, 4);
    assert_eq!(stats.udp_packets, sent + 2);
}

#[test]
fn silent_peers_expire_on_the_timer() {
    let service = TrackerService::start(TrackerServiceConfig {
        server: ServerConfig {
            interval: Duration::from_secs(1),
            min_interval: Duration::from_secs(1),
            ..ServerConfig::default()
        },
        ..config()
    })
    .unwrap();
    let http = service.http_addr().unwrap();
    http_announce(http, &request(1, 7001, 1));
    assert_eq!(service.stats().peers, 1);
    // Expired 2 × interval after the announce, by the loop's own timer.
    assert!(wait_until(Duration::from_secs(5), || {
        service.stats().peers == 0
    }));
    assert_eq!(service.stats().swarms, 0);
    stop(service);
}

#[test]
fn shutdown_is_prompt_and_closes_everything() {
    let service = TrackerService::start(TrackerServiceConfig {
        http_timeout: Duration::from_secs(60),
        ..config()
    })
    .unwrap();
    let http = service.http_addr().unwrap();
    let mut idle = connect(http);
    http_announce(http, &request(1, 7001, 1));
    let started = Instant::now();
    stop(service);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(closed_within(&mut idle, Duration::from_secs(2)));
    assert!(TcpStream::connect_timeout(&http, IO_TIMEOUT).is_err());

    // Dropping stops it too.
    let dropped = TrackerService::start(config()).unwrap();
    let http = dropped.http_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        drop(dropped);
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(2))
        .expect("drop did not stop the service within 2 s");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(TcpStream::connect_timeout(&http, IO_TIMEOUT).is_err());
}

#[test]
fn bad_configurations_and_busy_ports_are_reported_at_start() {
    let none = TrackerService::start(TrackerServiceConfig {
        http: None,
        udp: None,
        ..config()
    });
    assert!(matches!(none, Err(TrackerServiceError::Config(_))));

    let first = TrackerService::start(config()).unwrap();
    let taken = first.http_addr();
    let clash = TrackerService::start(TrackerServiceConfig {
        http: taken,
        ..config()
    });
    match clash {
        Err(TrackerServiceError::Bind { what, addr, .. }) => {
            assert_eq!((what, Some(addr)), ("HTTP", taken));
        }
        other => panic!("expected a bind error, got {other:?}"),
    }

    // One front alone is fine.
    let udp_only = TrackerService::start(TrackerServiceConfig {
        http: None,
        ..config()
    })
    .unwrap();
    assert_eq!(udp_only.http_addr(), None);
    let reply = udp_announce(udp_only.udp_addr().unwrap(), request(1, 7001, 1));
    assert_eq!(reply.incomplete, Some(1));
    stop(udp_only);
    stop(first);
}
