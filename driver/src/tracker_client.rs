//! The blocking IO of HTTP tracker announces and of name resolution, shared by both
//! drivers.
//!
//! The protocol and every timer live in the core: the session times whole announces out
//! (`SessionConfig::tracker_timeout`) and runs UDP trackers (BEP 15) itself over the
//! driver's one UDP socket, asking the driver only to resolve names
//! ([`TrackerClient::resolve`]). What is left here is moving bytes: resolve, connect, write
//! the request, read the response, each socket operation bounded by a fixed time-out so a
//! worker thread is never stuck for good. Drivers call it on a worker thread (mio) or
//! inside `smol::unblock` (smol), never on their event loop: it blocks.
//!
//! Why sockets are bound to the listen IP: trackers register the *source* address of an
//! announce. A client listening on 127.0.1.5 (loopback tests give each client its own
//! address) must announce from 127.0.1.5, or the swarm would be told to dial 127.0.0.1.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use unchoke_core::tracker::http::{
    HttpResponseReader, announce_url, parse_announce_response, request_bytes,
};
use unchoke_core::tracker::{AnnounceRequest, AnnounceResponse, ResolveError, TrackerFailure};

use crate::ClientError;
use crate::dht_node::{DhtSettings, bind_dht};

/// The read buffer of an HTTP exchange.
const HTTP_READ_CHUNK: usize = 16 * 1024;
/// The shortest wait handed to a socket: the OS refuses a zero timeout.
const MIN_WAIT: Duration = Duration::from_millis(1);

/// Announces over HTTP and resolves tracker names, blocking, with sockets bound to the
/// client's listen IP.
///
/// `Send + Sync`: one client serves every torrent's announces from several threads at
/// once.
#[derive(Debug)]
pub struct TrackerClient {
    /// The local IP of tracker sockets; `None`: the OS's choice.
    bind_ip: Option<IpAddr>,
}

impl TrackerClient {
    /// A client whose tracker sockets are bound to `bind_ip`, the client's listen IP
    /// (`None` or an unspecified address: the OS chooses).
    pub fn new(bind_ip: Option<IpAddr>) -> Self {
        TrackerClient {
            bind_ip: bind_ip.filter(|ip| !ip.is_unspecified()),
        }
    }

    /// One announce to the `http://` tracker `url`. `op_timeout` bounds each step (name
    /// resolution, connect, every write and read) on its own: the overall deadline is the
    /// session's, which ignores an answer that comes after it.
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
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(TrackerFailure::UnsupportedScheme(
                scheme.to_ascii_lowercase(),
            ));
        }
        let full = announce_url(url, request)?;
        let (host, bytes) = request_bytes(&full)?;
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
        stream
            .write_all(&bytes)
            .map_err(|e| TrackerFailure::from_io(&e))?;

        let mut reader = HttpResponseReader::new();
        let mut buf = vec![0u8; HTTP_READ_CHUNK];
        let mut received = false;
        let body = loop {
            match stream.read(&mut buf) {
                Ok(0) => break reader.finish()?,
                Ok(n) => {
                    received = true;
                    let data = buf.get(..n).unwrap_or_default();
                    if let Some(body) = reader.push(data)? {
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
                    break reader.finish()?;
                }
                Err(e) => return Err(TrackerFailure::from_io(&e)),
            }
        };
        Ok(parse_announce_response(&body)?)
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
    let socket = UdpSocket::bind(wanted)
        .or_else(|_| UdpSocket::bind(SocketAddr::new(wanted.ip(), 0)))
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
            tracker_id: None,
        };
        let r = client.announce("udp://127.0.0.1:1", &request, Duration::from_secs(1));
        assert!(
            matches!(&r, Err(TrackerFailure::UnsupportedScheme(s)) if s == "udp"),
            "{r:?}"
        );
    }
}
