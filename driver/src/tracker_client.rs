//! The blocking IO of HTTP(S) tracker announces and of name resolution, shared by both
//! drivers.
//!
//! The protocol and every timer live in the core: the session times whole announces out
//! (`SessionConfig::tracker_timeout`) and runs UDP trackers (BEP 15) itself over the
//! driver's one UDP socket, asking the driver only to resolve names
//! ([`TrackerClient::resolve`]). What is left here is moving bytes: resolve, connect, write
//! the request, read the response, each socket operation bounded by a fixed time-out so a
//! worker thread is never stuck for good. For `https://` the same bytes go through a TLS
//! session ([`crate::tls`]) whose handshake is bounded by the same time-outs, so a
//! worker thread is never stuck for good. Drivers call it on a worker thread (mio) or
//! inside `smol::unblock` (smol), never on their event loop: it blocks.
//!
//! Why sockets are bound to the listen IP: trackers register the *source* address of an
//! announce. A client listening on 127.0.1.5 (loopback tests give each client its own
//! address) must announce from 127.0.1.5, or the swarm would be told to dial 127.0.0.1.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use unchoke_core::tracker::http::{
    HttpResponseReader, HttpScheme, announce_url, parse_announce_response, request_bytes,
};
use unchoke_core::tracker::{
    AnnounceRequest, AnnounceResponse, ResolveError, TlsFailure, TrackerFailure,
};

use crate::ClientError;
use crate::dht_node::{DhtSettings, bind_dht};
use crate::tls::{self, TrustRoots};

/// The read buffer of an HTTP exchange.
const HTTP_READ_CHUNK: usize = 16 * 1024;
/// The shortest wait handed to a socket: the OS refuses a zero timeout.
const MIN_WAIT: Duration = Duration::from_millis(1);

/// Announces over HTTP and HTTPS and resolves tracker names, blocking, with sockets bound
/// to the client's listen IP.
///
/// `Send + Sync`: one client serves every torrent's announces from several threads at
/// once.
#[derive(Debug)]
pub struct TrackerClient {
    /// The local IP of tracker sockets; `None`: the OS's choice.
    bind_ip: Option<IpAddr>,
    /// The authorities an `https://` tracker's certificate must lead to.
    roots: TrustRoots,
    /// The TLS configuration, built from `roots` on the first `https://` announce and
    /// shared by every later one: a client with only `http://` and `udp://` trackers never
    /// reads the system's certificate store.
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, TlsFailure>>,
}

impl TrackerClient {
    /// A client whose tracker sockets are bound to `bind_ip`, the client's listen IP
    /// (`None` or an unspecified address: the OS chooses), checking `https://` trackers
    /// against the system's authorities.
    pub fn new(bind_ip: Option<IpAddr>) -> Self {
        Self::with_roots(bind_ip, TrustRoots::System)
    }

    /// Like [`TrackerClient::new`], checking `https://` trackers against `roots`.
    pub fn with_roots(bind_ip: Option<IpAddr>, roots: TrustRoots) -> Self {
        TrackerClient {
            bind_ip: bind_ip.filter(|ip| !ip.is_unspecified()),
            roots,
            tls: OnceLock::new(),
        }
    }

    /// One announce to the `http://` or `https://` tracker `url`. `op_timeout` bounds each
    /// step (name resolution, connect, the TLS handshake's and the exchange's every write
    /// and read) on its own: the overall deadline is the session's, which ignores an
    /// answer that comes after it.
    ///
    /// Blocks the calling thread; run it off the event loop.
    pub fn announce(
        &self,
        url: &str,
        request: &AnnounceRequest,
        op_timeout: Duration,
    ) -> Result<AnnounceResponse, TrackerFailure> {
        let wait = op_timeout.max(MIN_WAIT);
        let scheme = url
            .split_once("://")
            .map(|(s, _)| s)
            .ok_or_else(|| TrackerFailure::InvalidUrl(format!("{url:?} has no scheme")))?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(TrackerFailure::InvalidUrl(format!(
                "{url:?} has no valid scheme"
            )));
        }
        let Some(http_scheme) = HttpScheme::of(url) else {
            return Err(TrackerFailure::UnsupportedScheme(
                scheme.to_ascii_lowercase(),
            ));
        };
        let full = announce_url(url, request)?;
        let (host, bytes) = request_bytes(&full)?;
        // Before any IO: a bad --ca-file or an empty system store fails every https
        // announce the same way, without touching the network.
        let tls = match http_scheme {
            HttpScheme::Http => None,
            HttpScheme::Https => {
                let config = self.tls_config()?;
                let name = tls::server_name(&host.host).map_err(TrackerFailure::InvalidUrl)?;
                Some((config, name))
            }
        };
        let addrs =
            self.resolve(&host.host, host.port, wait)
                .map_err(|error| TrackerFailure::Resolve {
                    host: host.host.clone(),
                    error,
                })?;
        let mut stream = self.connect_tcp(&addrs, wait)?;
        stream
            .set_write_timeout(Some(wait))
            .and_then(|()| stream.set_read_timeout(Some(wait)))
            .map_err(|e| TrackerFailure::from_io(&e))?;
        let body = match tls {
            None => exchange(&mut stream, &bytes, |e| TrackerFailure::from_io(&e))?,
            Some((config, name)) => {
                let mut conn = rustls::ClientConnection::new(config, name)
                    .map_err(|e| TrackerFailure::Tls(tls::failure(&e, &host.host)))?;
                // The handshake on its own, so its failures read as TLS ones (a refused
                // certificate, a plain HTTP server) rather than as a broken exchange.
                while conn.is_handshaking() {
                    conn.complete_io(&mut stream)
                        .map_err(|e| tls_io_failure(&e, &host.host, true))?;
                }
                let mut tls_stream = rustls::StreamOwned::new(conn, stream);
                exchange(&mut tls_stream, &bytes, |e| {
                    tls_io_failure(&e, &host.host, false)
                })?
            }
        };
        Ok(parse_announce_response(&body)?)
    }

    /// The shared TLS configuration, built on first use.
    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, TrackerFailure> {
        self.tls
            .get_or_init(|| tls::client_config(&self.roots))
            .clone()
            .map_err(TrackerFailure::Tls)
    }

    /// Connects to the first address that answers, each attempt bounded by `wait`.
    fn connect_tcp(
        &self,
        addrs: &[SocketAddr],
        wait: Duration,
    ) -> Result<TcpStream, TrackerFailure> {
        let mut last: Option<(SocketAddr, io::Error)> = None;
        for &addr in addrs {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
                .map_err(|e| TrackerFailure::Io(e.to_string()))?;
            if let Some(ip) = self.bind_ip_for(addr) {
                socket.bind(&SocketAddr::new(ip, 0).into()).map_err(|e| {
                    TrackerFailure::Io(format!("cannot bind a tracker socket to {ip}: {e}"))
                })?;
            }
            match socket.connect_timeout(&addr.into(), wait) {
                Ok(()) => return Ok(socket.into()),
                Err(e) => last = Some((addr, e)),
            }
        }
        Err(match last {
            Some((_, e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                TrackerFailure::Stalled
            }
            Some((addr, e)) => TrackerFailure::Connect {
                addr,
                message: e.to_string(),
            },
            None => TrackerFailure::Stalled,
        })
    }

    /// The local IP to bind a socket towards `addr` to: ours if it is of the same family.
    fn bind_ip_for(&self, addr: SocketAddr) -> Option<IpAddr> {
        self.bind_ip.filter(|ip| ip.is_ipv4() == addr.is_ipv4())
    }

    /// `host`'s addresses paired with `port`, each once, those of our bind family first
    /// (the ones a tracker will register us under and our UDP socket can reach),
    /// otherwise in the resolver's order. An IP literal is its own answer. The resolver
    /// runs on a helper thread so `wait` bounds it: `getaddrinfo` has no time-out of its
    /// own. Blocks; answers [`unchoke_core::session::Action::Resolve`] too.
    pub fn resolve(
        &self,
        host: &str,
        port: u16,
        wait: Duration,
    ) -> Result<Vec<SocketAddr>, ResolveError> {
        let mut addrs = if let Ok(ip) = host.parse::<IpAddr>() {
            vec![SocketAddr::new(ip, port)]
        } else {
            resolve_name(host, port, wait)?
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
            return Err(ResolveError::NoAddresses);
        }
        Ok(addrs)
    }
}

/// Writes the request and reads the response until the core's reader has a whole body.
/// `io_failure` words a socket error (plain or TLS).
fn exchange(
    stream: &mut (impl Read + Write),
    request: &[u8],
    io_failure: impl Fn(io::Error) -> TrackerFailure,
) -> Result<Vec<u8>, TrackerFailure> {
    stream
        .write_all(request)
        .and_then(|()| stream.flush())
        .map_err(&io_failure)?;
    let mut reader = HttpResponseReader::new();
    let mut buf = vec![0u8; HTTP_READ_CHUNK];
    let mut received = false;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(reader.finish()?),
            Ok(n) => {
                received = true;
                let data = buf.get(..n).unwrap_or_default();
                if let Some(body) = reader.push(data)? {
                    return Ok(body);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A server that closes without reading all of our request makes the kernel
            // send a reset instead of a FIN; a TLS server that closes without a
            // close_notify reads as an unexpected EOF (many trackers do, and the HTTP
            // framing, not TLS, tells whether the response was whole). After a response
            // has started, either is its end: the reader tells whether it was complete.
            Err(e)
                if received
                    && matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::UnexpectedEof
                    ) =>
            {
                return Ok(reader.finish()?);
            }
            Err(e) => return Err(io_failure(e)),
        }
    }
}

/// The failure a socket error of a TLS connection to `host` stands for: a `rustls` error
/// (carried inside the `io::Error`) in the user's terms, a time-out as
/// [`TrackerFailure::Stalled`], an end of the connection during the handshake as
/// [`TlsFailure::ClosedDuringHandshake`], anything else as IO.
fn tls_io_failure(e: &io::Error, host: &str, handshaking: bool) -> TrackerFailure {
    if let Some(tls_error) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return TrackerFailure::Tls(tls::failure(tls_error, host));
    }
    if handshaking
        && matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
        )
    {
        return TrackerFailure::Tls(TlsFailure::ClosedDuringHandshake);
    }
    TrackerFailure::from_io(e)
}

/// Binds the client's one non-blocking UDP socket, which carries the DHT's datagrams and
/// the session's UDP tracker exchanges: the DHT's socket when the client runs a node
/// (returned with its address), else one on the listen IP and port — UDP trackers
/// register the *source* address and port, and tests give each client its own 127.0.1.x
/// — or any port on that IP if the port is taken for UDP.
pub fn bind_udp(
    dht: Option<&DhtSettings>,
    listen: Option<SocketAddr>,
) -> Result<(UdpSocket, Option<SocketAddr>), ClientError> {
    if let Some(settings) = dht {
        let (socket, addr) = bind_dht(settings, listen)?;
        return Ok((socket, Some(addr)));
    }
    let wanted = listen.unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
    let error = |source| ClientError::Listen {
        addr: format!("udp {wanted}"),
        source,
    };
    let socket = crate::net::bind_udp_socket(wanted)
        .or_else(|_| crate::net::bind_udp_socket(SocketAddr::new(wanted.ip(), 0)))
        .map_err(error)?;
    socket.set_nonblocking(true).map_err(error)?;
    Ok((socket, None))
}

/// Resolves a host name on a helper thread, waiting at most `wait`. A late answer is
/// dropped with the thread.
fn resolve_name(host: &str, port: u16, wait: Duration) -> Result<Vec<SocketAddr>, ResolveError> {
    let (tx, rx) = mpsc::channel();
    let name = host.to_string();
    std::thread::Builder::new()
        .name("tracker-resolve".into())
        .spawn(move || {
            let result = (name.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect::<Vec<_>>);
            // The caller may have given up already; then nobody listens.
            let _ignored = tx.send(result);
        })
        .map_err(|e| ResolveError::from_io(&e))?;
    match rx.recv_timeout(wait.max(MIN_WAIT)) {
        Ok(Ok(addrs)) => Ok(addrs),
        Ok(Err(e)) => Err(ResolveError::from_io(&e)),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(ResolveError::Failed(format!(
            "no answer within {} s",
            wait.as_secs()
        ))),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(ResolveError::Failed(
            "the resolver thread ended without an answer".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_resolve_to_themselves_ours_first() {
        let client = TrackerClient::new(Some("127.0.0.1".parse().expect("ip")));
        let addrs = client
            .resolve("127.0.0.9", 80, Duration::from_secs(1))
            .expect("literal");
        assert_eq!(addrs, vec!["127.0.0.9:80".parse().expect("addr")]);
    }

    #[test]
    fn other_schemes_are_refused_before_any_io() {
        let client = TrackerClient::new(None);
        let request = AnnounceRequest {
            info_hash: unchoke_core::InfoHash([1; 20]),
            peer_id: unchoke_core::wire::PeerId([2; 20]),
            port: 1,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: unchoke_core::tracker::AnnounceEvent::None,
            numwant: None,
            key: 0,
            ip: None,
            ipv6: None,
            tracker_id: None,
        };
        let r = client.announce("udp://127.0.0.1:1", &request, Duration::from_secs(1));
        assert!(
            matches!(&r, Err(TrackerFailure::UnsupportedScheme(s)) if s == "udp"),
            "{r:?}"
        );
    }
}
