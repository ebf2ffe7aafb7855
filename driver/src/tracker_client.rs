//! The blocking IO of one tracker announce, shared by both drivers.
//!
//! The protocol lives sans-IO in [`unchoke_core::tracker`]: this module only resolves the
//! tracker's name, opens sockets bound to the client's listen address, moves bytes and
//! enforces one overall deadline. Drivers call [`TrackerClient::announce`] on a worker
//! thread (mio) or inside `smol::unblock` (smol), never on their event loop: it blocks.
//!
//! Why sockets are bound to the listen IP: trackers register the *source* address of an
//! announce. A client listening on 127.0.1.5 (loopback tests give each client its own
//! address) must announce from 127.0.1.5, or the swarm would be told to dial 127.0.0.1.
//!
//! UDP trackers (BEP 15) hand out connection ids that are valid for about a minute and,
//! with many trackers (including `unchoke tracker`), only for the source address *and
//! port* that asked. So a [`TrackerClient`] keeps, per tracker address, the connected UDP
//! socket together with its connection id, and a later announce within the id's lifetime
//! reuses both, saving the connect round trip.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant as StdInstant};

use socket2::{Domain, Protocol, Socket, Type};
use unchoke_core::tracker::http::{
    HostPort, HttpResponseReader, HttpTrackerError, announce_url, parse_announce_response,
    request_bytes,
};
use unchoke_core::tracker::udp::{UdpAnnounce, UdpConnection, UdpTrackerError};
use unchoke_core::tracker::{AnnounceRequest, AnnounceResponse};

use crate::Clock;

/// The read buffer of an HTTP exchange.
const HTTP_READ_CHUNK: usize = 16 * 1024;
/// The largest datagram a UDP tracker can send (an IPv4 UDP payload's maximum).
const MAX_DATAGRAM: usize = 65_536;
/// The shortest wait handed to a socket timeout: the OS refuses a zero timeout, and a
/// deadline a few microseconds away is better rounded up than spun on.
const MIN_WAIT: Duration = Duration::from_millis(1);

/// Why an announce failed.
#[derive(Debug, thiserror::Error)]
pub enum TrackerIoError {
    /// The URL's scheme is neither `http` nor `udp` (the scheme is given lower-case).
    /// `https` trackers land here: they would need TLS, which unchoke does not implement.
    #[error(
        "tracker URL scheme `{0}://` is not supported: only http:// and udp:// trackers \
         work (https:// would need TLS, which unchoke does not implement)"
    )]
    UnsupportedScheme(String),
    /// The URL cannot be used (no scheme, no host, bad port, forbidden characters…).
    #[error("invalid tracker URL: {0}")]
    InvalidUrl(String),
    /// The tracker's host name did not resolve.
    #[error("cannot resolve tracker host {host:?}: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// What the resolver said.
        source: io::Error,
    },
    /// A socket could not be bound to the client's address.
    #[error("cannot bind a tracker socket to {ip}: {source}")]
    Bind {
        /// The local address asked for.
        ip: IpAddr,
        /// Why.
        source: io::Error,
    },
    /// No address of the tracker could be reached (refused, unreachable); the error is
    /// that of the last address tried.
    #[error("cannot reach tracker at {addr}: {source}")]
    Connect {
        /// The tracker address tried last.
        addr: SocketAddr,
        /// Why it failed.
        source: io::Error,
    },
    /// The connection failed after it was set up (reset, broken pipe…).
    #[error("tracker connection failed: {0}")]
    Io(io::Error),
    /// The announce did not complete within its timeout.
    #[error("tracker did not answer in time")]
    Timeout,
    /// The HTTP tracker's response is not a usable announce response (bad status,
    /// malformed or truncated HTTP, bad bencode, missing keys, too large).
    #[error(transparent)]
    Http(HttpTrackerError),
    /// The UDP tracker's response is not a usable announce response.
    #[error(transparent)]
    Udp(UdpTrackerError),
    /// The tracker refused the announce: the HTTP `failure reason`
    /// ([`HttpTrackerError::Failure`]) or a BEP 15 error packet
    /// ([`UdpTrackerError::Tracker`]), with the tracker's message.
    #[error("tracker refused the announce: {0}")]
    Failure(String),
}

/// One UDP tracker's socket and the connection id it obtained, kept between announces.
#[derive(Debug)]
struct UdpSession {
    socket: UdpSocket,
    connection: UdpConnection,
}

/// Announces over HTTP or UDP, blocking, with name resolution on the calling thread (or
/// a helper thread it waits for, so the timeout bounds resolution too).
///
/// `Send + Sync`: one client serves every torrent's announces from several threads at
/// once.
#[derive(Debug)]
pub struct TrackerClient {
    /// The local IP of tracker sockets; `None`: the OS's choice.
    bind_ip: Option<IpAddr>,
    /// Converts between real time and the core's time for the UDP state machine and the
    /// lifetime of cached connection ids.
    clock: Clock,
    /// Per UDP tracker address: an idle socket and its connection id. An announce takes
    /// the entry out while it runs, so two concurrent announces never share a socket
    /// (each would swallow the other's replies).
    udp: Mutex<HashMap<SocketAddr, UdpSession>>,
}

impl TrackerClient {
    /// A client whose tracker sockets are bound to `bind_ip`, the client's listen IP
    /// (`None` or an unspecified address: the OS chooses).
    pub fn new(bind_ip: Option<IpAddr>) -> Self {
        TrackerClient {
            bind_ip: bind_ip.filter(|ip| !ip.is_unspecified()),
            clock: Clock::start(),
            udp: Mutex::new(HashMap::new()),
        }
    }

    /// One announce to `url` (`http://` or `udp://`), giving up after `timeout` overall:
    /// name resolution, connect, send and receive all count against it.
    ///
    /// Blocks the calling thread; run it off the event loop.
    pub fn announce(
        &self,
        url: &str,
        request: &AnnounceRequest,
        timeout: Duration,
    ) -> Result<AnnounceResponse, TrackerIoError> {
        let started = StdInstant::now();
        // A huge timeout (Duration::MAX) means "no deadline to speak of".
        let deadline = started
            .checked_add(timeout)
            .unwrap_or_else(|| started + Duration::from_secs(365 * 24 * 3600));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| TrackerIoError::InvalidUrl(format!("{url:?} has no scheme")))?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(TrackerIoError::InvalidUrl(format!(
                "{url:?} has no valid scheme"
            )));
        }
        match scheme.to_ascii_lowercase().as_str() {
            "http" => self.announce_http(url, request, deadline),
            "udp" => self.announce_udp(url, rest, request, deadline),
            other => Err(TrackerIoError::UnsupportedScheme(other.to_string())),
        }
    }

    // ---- HTTP -------------------------------------------------------------------------

    fn announce_http(
        &self,
        url: &str,
        request: &AnnounceRequest,
        deadline: StdInstant,
    ) -> Result<AnnounceResponse, TrackerIoError> {
        let full = announce_url(url, request).map_err(http_error)?;
        let (host, bytes) = request_bytes(&full).map_err(http_error)?;
        let addrs = self.resolve(&host, deadline)?;
        let mut stream = self.connect_tcp(&addrs, deadline)?;

        stream
            .set_write_timeout(Some(remaining(deadline)?))
            .map_err(TrackerIoError::Io)?;
        stream.write_all(&bytes).map_err(io_error)?;

        let mut reader = HttpResponseReader::new();
        let mut buf = vec![0u8; HTTP_READ_CHUNK];
        let mut received = false;
        let body = loop {
            stream
                .set_read_timeout(Some(remaining(deadline)?))
                .map_err(TrackerIoError::Io)?;
            match stream.read(&mut buf) {
                Ok(0) => break reader.finish().map_err(http_error)?,
                Ok(n) => {
                    received = true;
                    let data = buf.get(..n).unwrap_or_default();
                    if let Some(body) = reader.push(data).map_err(http_error)? {
                        break body;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A server that closes without reading all of our request makes the
                // kernel send a reset instead of a FIN: after a response has started,
                // that is its end (the reader tells whether the response was complete).
                Err(e)
                    if received
                        && matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                        ) =>
                {
                    break reader.finish().map_err(http_error)?;
                }
                Err(e) => return Err(io_error(e)),
            }
        };
        parse_announce_response(&body).map_err(http_error)
    }

    /// Connects to the first address that answers, sharing the time left between the
    /// addresses still to try so that one black-holed address cannot use it all.
    fn connect_tcp(
        &self,
        addrs: &[SocketAddr],
        deadline: StdInstant,
    ) -> Result<TcpStream, TrackerIoError> {
        let mut last: Option<(SocketAddr, io::Error)> = None;
        for (i, &addr) in addrs.iter().enumerate() {
            let budget = attempt_budget(deadline, addrs.len() - i)?;
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
                .map_err(TrackerIoError::Io)?;
            if let Some(ip) = self.bind_ip_for(addr) {
                socket
                    .bind(&SocketAddr::new(ip, 0).into())
                    .map_err(|source| TrackerIoError::Bind { ip, source })?;
            }
            match socket.connect_timeout(&addr.into(), budget) {
                Ok(()) => return Ok(socket.into()),
                Err(e) => last = Some((addr, e)),
            }
        }
        Err(unreachable(last, deadline))
    }

    // ---- UDP --------------------------------------------------------------------------

    fn announce_udp(
        &self,
        url: &str,
        after_scheme: &str,
        request: &AnnounceRequest,
        deadline: StdInstant,
    ) -> Result<AnnounceResponse, TrackerIoError> {
        let host = parse_udp_authority(url, after_scheme)?;
        let addrs = self.resolve(&host, deadline)?;
        let mut last: Option<(SocketAddr, io::Error)> = None;
        for (i, &addr) in addrs.iter().enumerate() {
            let budget = attempt_budget(deadline, addrs.len() - i)?;
            // The last address may use everything left; earlier ones their share.
            let end = StdInstant::now() + budget;
            match self.udp_exchange(addr, request, end) {
                Ok(response) => return Ok(response),
                Err(UdpAttempt::Fatal(e)) => return Err(e),
                Err(UdpAttempt::Unreachable(e)) => last = Some((addr, e)),
                Err(UdpAttempt::TimedOut) => {
                    last = Some((addr, io::ErrorKind::TimedOut.into()));
                }
            }
        }
        Err(unreachable(last, deadline))
    }

    /// One announce to one tracker address, reusing a cached socket and connection id
    /// when fresh. If a cached id is refused (the tracker restarted, or its idea of the
    /// id's lifetime is shorter than ours) the announce is repeated once with a new
    /// connect on the same socket.
    fn udp_exchange(
        &self,
        addr: SocketAddr,
        request: &AnnounceRequest,
        end: StdInstant,
    ) -> Result<AnnounceResponse, UdpAttempt> {
        let cached = self.take_udp_session(addr);
        let (socket, connection) = match cached {
            Some(s) => (s.socket, Some(s.connection)),
            None => (self.udp_socket(addr)?, None),
        };
        let (mut outcome, mut got) = self.run_udp(&socket, addr, request, connection, end);
        if connection.is_some() && matches!(outcome, Err(UdpAttempt::Fatal(_))) {
            (outcome, got) = self.run_udp(&socket, addr, request, None, end);
        }
        if outcome.is_ok() {
            if let Some(connection) = got {
                self.put_udp_session(addr, UdpSession { socket, connection });
            }
        }
        outcome
    }

    /// Drives [`UdpAnnounce`] on `socket` until it has a result or `end` passes. Returns
    /// the outcome and the connection id the exchange ended with.
    fn run_udp(
        &self,
        socket: &UdpSocket,
        addr: SocketAddr,
        request: &AnnounceRequest,
        connection: Option<UdpConnection>,
        end: StdInstant,
    ) -> (Result<AnnounceResponse, UdpAttempt>, Option<UdpConnection>) {
        let mut rng = fastrand::Rng::new();
        let mut exchange = UdpAnnounce::with_connection(
            request.clone(),
            addr.is_ipv6(),
            connection,
            &mut rng,
            self.clock.now(),
        );
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let outcome = loop {
            let now = self.clock.now();
            let mut send_error = None;
            while let Some(packet) = exchange.poll_transmit(now) {
                if let Err(e) = socket.send(&packet) {
                    send_error = Some(e);
                    break;
                }
            }
            if let Some(e) = send_error {
                break Err(UdpAttempt::from_io(e));
            }
            if let Some(result) = exchange.result() {
                break result.map_err(|e| UdpAttempt::Fatal(udp_error(e)));
            }
            // Wake for the next retransmission or the deadline, whichever comes first.
            let wake = exchange
                .poll_timeout()
                .map_or(end, |t| self.clock.to_std(t).min(end));
            let std_now = StdInstant::now();
            if std_now >= end {
                break Err(UdpAttempt::TimedOut);
            }
            let wait = wake.saturating_duration_since(std_now).max(MIN_WAIT);
            if let Err(e) = socket.set_read_timeout(Some(wait)) {
                break Err(UdpAttempt::Fatal(TrackerIoError::Io(e)));
            }
            // The socket is connected: the kernel drops datagrams from any other source.
            match socket.recv(&mut buf) {
                Ok(n) => {
                    let packet = buf.get(..n).unwrap_or_default();
                    // A datagram too short to carry a transaction id is an error that
                    // leaves the exchange running; one that ends it shows in `result()`.
                    let _ignored = exchange.handle_packet(packet, self.clock.now());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    exchange.handle_timeout(self.clock.now());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(UdpAttempt::from_io(e)),
            }
        };
        (outcome, exchange.connection())
    }

    /// A UDP socket bound to the client's IP (or the family's unspecified address) and
    /// connected to `addr`, so that only the tracker's datagrams reach it and ICMP
    /// "port unreachable" surfaces as an error instead of a silent timeout.
    fn udp_socket(&self, addr: SocketAddr) -> Result<UdpSocket, UdpAttempt> {
        let ip = self.bind_ip_for(addr).unwrap_or(match addr {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        });
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .map_err(|source| UdpAttempt::Fatal(TrackerIoError::Bind { ip, source }))?;
        socket.connect(addr).map_err(UdpAttempt::from_io)?;
        Ok(socket)
    }

    fn udp_sessions(&self) -> MutexGuard<'_, HashMap<SocketAddr, UdpSession>> {
        // The map holds no invariant a panicking holder could break half-way.
        self.udp.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Takes the idle session for `addr` out of the cache if its id is still fresh.
    fn take_udp_session(&self, addr: SocketAddr) -> Option<UdpSession> {
        let now = self.clock.now();
        self.udp_sessions()
            .remove(&addr)
            .filter(|s| s.connection.is_fresh(now))
    }

    /// Returns a session to the cache, dropping (and closing) every expired one.
    fn put_udp_session(&self, addr: SocketAddr, session: UdpSession) {
        let now = self.clock.now();
        let mut sessions = self.udp_sessions();
        sessions.retain(|_, s| s.connection.is_fresh(now));
        if session.connection.is_fresh(now) {
            sessions.insert(addr, session);
        }
    }

    // ---- shared -----------------------------------------------------------------------

    /// The local IP to bind a socket towards `addr` to: ours if it is of the same family.
    fn bind_ip_for(&self, addr: SocketAddr) -> Option<IpAddr> {
        self.bind_ip.filter(|ip| ip.is_ipv4() == addr.is_ipv4())
    }

    /// The tracker's addresses, those of our bind family first (they are the ones the
    /// tracker will register us under), otherwise in the resolver's order.
    fn resolve(
        &self,
        host: &HostPort,
        deadline: StdInstant,
    ) -> Result<Vec<SocketAddr>, TrackerIoError> {
        let mut addrs = if let Ok(ip) = host.host.parse::<IpAddr>() {
            vec![SocketAddr::new(ip, host.port)]
        } else {
            resolve_name(host, deadline)?
        };
        let mut seen = Vec::with_capacity(addrs.len());
        addrs.retain(|a| {
            let new = !seen.contains(a);
            seen.push(*a);
            new
        });
        if let Some(ip) = self.bind_ip {
            addrs.sort_by_key(|a| a.is_ipv4() != ip.is_ipv4());
        }
        if addrs.is_empty() {
            return Err(TrackerIoError::Resolve {
                host: host.host.clone(),
                source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
            });
        }
        Ok(addrs)
    }
}

/// How one UDP address attempt ended, when not with a response.
#[derive(Debug)]
enum UdpAttempt {
    /// The tracker answered with an error, or a local failure: no point trying another
    /// address.
    Fatal(TrackerIoError),
    /// The address cannot be reached: try the next.
    Unreachable(io::Error),
    /// No answer within this address's share of the time: try the next.
    TimedOut,
}

impl UdpAttempt {
    fn from_io(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => UdpAttempt::TimedOut,
            _ => UdpAttempt::Unreachable(e),
        }
    }
}

/// Resolves a host name on a helper thread so the deadline bounds the wait:
/// `getaddrinfo` has no timeout of its own and may take the resolver's full retry
/// schedule. A late answer is dropped with the thread.
fn resolve_name(host: &HostPort, deadline: StdInstant) -> Result<Vec<SocketAddr>, TrackerIoError> {
    let wait = remaining(deadline)?;
    let (tx, rx) = mpsc::channel();
    let name = host.host.clone();
    let port = host.port;
    std::thread::Builder::new()
        .name("tracker-resolve".into())
        .spawn(move || {
            let result = (name.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect::<Vec<_>>);
            // The announce may have given up already; then nobody listens.
            let _ignored = tx.send(result);
        })
        .map_err(TrackerIoError::Io)?;
    match rx.recv_timeout(wait) {
        Ok(Ok(addrs)) => Ok(addrs),
        Ok(Err(source)) => Err(TrackerIoError::Resolve {
            host: host.host.clone(),
            source,
        }),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(TrackerIoError::Timeout),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(TrackerIoError::Resolve {
            host: host.host.clone(),
            source: io::Error::other("the resolver thread ended without an answer"),
        }),
    }
}

/// Host and port of a `udp://host:port[/path][?query]` URL; `rest` is what follows
/// `udp://`. The path (BEP 41 URL data) is not sent: the core's packets carry no options.
fn parse_udp_authority(url: &str, rest: &str) -> Result<HostPort, TrackerIoError> {
    let invalid = |why: &str| TrackerIoError::InvalidUrl(format!("{url:?}: {why}"));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..end).unwrap_or(rest);
    if let Some(b) = authority
        .bytes()
        .find(|b| b.is_ascii_control() || *b == b' ' || !b.is_ascii())
    {
        return Err(invalid(&format!("host contains byte 0x{b:02x}")));
    }
    if authority.contains('@') {
        return Err(invalid(
            "user credentials in tracker URLs are not supported",
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| invalid("unclosed '['"))?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(invalid("bad IPv6 literal"));
        }
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| invalid("a udp:// tracker URL needs a port"))?;
        (host, port)
    } else {
        authority
            .rsplit_once(':')
            .ok_or_else(|| invalid("a udp:// tracker URL needs a port"))?
    };
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    let port = match port.parse::<u16>() {
        Ok(0) | Err(_) => return Err(invalid("bad port")),
        Ok(p) => p,
    };
    Ok(HostPort {
        host: host.to_string(),
        port,
    })
}

/// Time left before `deadline`, or [`TrackerIoError::Timeout`] when none is.
fn remaining(deadline: StdInstant) -> Result<Duration, TrackerIoError> {
    deadline
        .checked_duration_since(StdInstant::now())
        .filter(|d| !d.is_zero())
        .ok_or(TrackerIoError::Timeout)
}

/// The share of the time left for one of `left` addresses still to try.
fn attempt_budget(deadline: StdInstant, left: usize) -> Result<Duration, TrackerIoError> {
    let all = remaining(deadline)?;
    let share = all / u32::try_from(left.max(1)).unwrap_or(u32::MAX);
    Ok(share.max(MIN_WAIT).min(all))
}

/// The error after every address failed: a timeout if time ran out or the last address
/// timed out, else the last address's error.
fn unreachable(last: Option<(SocketAddr, io::Error)>, deadline: StdInstant) -> TrackerIoError {
    match last {
        Some((_, e)) if e.kind() == io::ErrorKind::TimedOut => TrackerIoError::Timeout,
        _ if StdInstant::now() >= deadline => TrackerIoError::Timeout,
        Some((addr, source)) => TrackerIoError::Connect { addr, source },
        None => TrackerIoError::Timeout,
    }
}

fn io_error(e: io::Error) -> TrackerIoError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => TrackerIoError::Timeout,
        _ => TrackerIoError::Io(e),
    }
}

fn http_error(e: HttpTrackerError) -> TrackerIoError {
    match e {
        HttpTrackerError::Failure(reason) => TrackerIoError::Failure(reason),
        HttpTrackerError::InvalidUrl(why) => TrackerIoError::InvalidUrl(why),
        HttpTrackerError::HttpsUnsupported => TrackerIoError::UnsupportedScheme("https".into()),
        e => TrackerIoError::Http(e),
    }
}

fn udp_error(e: UdpTrackerError) -> TrackerIoError {
    match e {
        UdpTrackerError::Tracker(message) => TrackerIoError::Failure(message),
        UdpTrackerError::TimedOut => TrackerIoError::Timeout,
        e => TrackerIoError::Udp(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_host(url: &str) -> Result<HostPort, TrackerIoError> {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        parse_udp_authority(url, rest)
    }

    #[test]
    fn udp_urls() {
        let hp = udp_host("udp://tracker.example:6969/announce?x=1").expect("ok");
        assert_eq!(
            hp,
            HostPort {
                host: "tracker.example".into(),
                port: 6969
            }
        );
        let hp = udp_host("udp://[::1]:80").expect("ok");
        assert_eq!(
            hp,
            HostPort {
                host: "::1".into(),
                port: 80
            }
        );
        for bad in [
            "udp://t",
            "udp://t:",
            "udp://t:0",
            "udp://t:70000",
            "udp://:80",
            "udp://[::1]",
            "udp://[zz]:1",
            "udp://[::1:1",
            "udp://u@t:1",
            "udp://t x:1",
        ] {
            assert!(
                matches!(udp_host(bad), Err(TrackerIoError::InvalidUrl(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn budgets_share_the_time_left() {
        let deadline = StdInstant::now() + Duration::from_secs(10);
        let one = attempt_budget(deadline, 1).expect("time left");
        let two = attempt_budget(deadline, 2).expect("time left");
        assert!(one > Duration::from_secs(9) && one <= Duration::from_secs(10));
        assert!(two > Duration::from_millis(4500) && two <= Duration::from_secs(5));
        assert!(matches!(
            attempt_budget(StdInstant::now(), 1),
            Err(TrackerIoError::Timeout)
        ));
    }

    #[test]
    fn errors_map_to_their_variants() {
        assert!(matches!(
            http_error(HttpTrackerError::Failure("no".into())),
            TrackerIoError::Failure(m) if m == "no"
        ));
        assert!(matches!(
            udp_error(UdpTrackerError::Tracker("no".into())),
            TrackerIoError::Failure(m) if m == "no"
        ));
        assert!(matches!(
            udp_error(UdpTrackerError::TimedOut),
            TrackerIoError::Timeout
        ));
        assert!(matches!(
            io_error(io::ErrorKind::WouldBlock.into()),
            TrackerIoError::Timeout
        ));
    }
}
