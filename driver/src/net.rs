//! Socket set-up the standard library does not offer: a non-blocking connect from a chosen
//! local address (tests give each client its own loopback address, and peers must see
//! that address, not 127.0.0.1).

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use unchoke_core::session::ConnectFailure;

/// Starts a non-blocking TCP connect to `addr`, bound first to `bind_ip` (port chosen by
/// the OS) when given and of the same family. The connect completes later: the socket
/// turns writable.
pub fn connect_nonblocking(
    addr: SocketAddr,
    bind_ip: Option<IpAddr>,
) -> io::Result<std::net::TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    if let Some(ip) = bind_ip.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}

/// Why a dial failed, as the session's typed reason (see
/// [`unchoke_core::session::Session::handle_connect_error`]). `timeout` is the connect
/// time-out an OS time-out is reported against. Unknown errors keep the OS's own words,
/// lower-cased and without the error number.
pub fn connect_failure(error: &io::Error, timeout: std::time::Duration) -> ConnectFailure {
    use io::ErrorKind as K;
    match error.kind() {
        K::ConnectionRefused => return ConnectFailure::Refused,
        K::TimedOut => return ConnectFailure::TimedOut(timeout),
        K::NetworkUnreachable => return ConnectFailure::NetworkUnreachable,
        K::HostUnreachable => return ConnectFailure::HostUnreachable,
        K::NetworkDown => return ConnectFailure::NetworkDown,
        K::ConnectionReset => return ConnectFailure::Reset,
        K::ConnectionAborted => return ConnectFailure::Aborted,
        K::AddrNotAvailable => return ConnectFailure::AddrNotAvailable,
        K::AddrInUse => return ConnectFailure::AddrInUse,
        K::PermissionDenied => return ConnectFailure::PermissionDenied,
        // Hung up with no error recorded: all that is known.
        K::NotConnected => return ConnectFailure::Unknown,
        _ => {}
    }
    let text = error.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => ConnectFailure::Other(first.to_lowercase().chain(chars).collect()),
        None => ConnectFailure::Unknown,
    }
}

/// Why a dial failed, in words for a person: `connection refused`, `timed out after 10 s`,
/// `network unreachable`… (the text of [`connect_failure`]). Never an `os error N` alone.
pub fn connect_error_text(error: &io::Error, timeout: std::time::Duration) -> String {
    connect_failure(error, timeout).to_string()
}

/// The accept queue asked for; the kernel caps it at `net.core.somaxconn` (4,096 here).
const LISTEN_BACKLOG: i32 = 4096;

/// Binds a TCP listener on `addr` (address reuse and a deep accept queue, as `std`'s `bind`). The IPv6
/// wildcard `[::]` is made **dual-stack** explicitly rather than left to the system's
/// `net.ipv6.bindv6only` setting: IPv4 peers then arrive as IPv4-mapped addresses, which
/// the session takes as the IPv4 addresses they are (`Session::connection_opened`).
pub fn bind_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if is_v6_wildcard(addr) {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    // As deep as the system allows (the kernel caps it at `net.core.somaxconn`), as `std`
    // does on Linux: with a shallow queue, a burst of connections (hundreds of peers, or an
    // attack) overflows it and an honest peer's SYN is dropped, costing it a 1 s retry.
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Binds a UDP socket on `addr`, dual-stack on the IPv6 wildcard like [`bind_listener`]
/// (send to IPv4 addresses through it with
/// [`crate::dht_node::datagram_destination`]).
pub fn bind_udp_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if is_v6_wildcard(addr) {
        socket.set_only_v6(false)?;
    }
    // uTP streams share this socket: at the default 208 KiB a burst of packets between two
    // reads overflows it and every drop costs a retransmission and a halved window
    // (libtorrent's uTP on loopback runs at 4–22 MB/s with the default, 134–217 MB/s with
    // 4 MiB; INTEROP-NOTES.md). Best effort: Linux caps the request at
    // `net.core.rmem_max`/`wmem_max` and reports double what it keeps; on the test
    // machine (both maxima 4 MiB) it grants 8,388,608 bytes each way (getsockopt).
    let _ = socket.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(UDP_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The receive and send buffers asked for the UDP socket (see [`bind_udp_socket`]).
pub const UDP_BUFFER_BYTES: usize = 4 << 20;

/// The receive and send buffer sizes the kernel granted `socket` (Linux reports double
/// what it keeps for its own bookkeeping).
pub fn udp_buffer_sizes(socket: &std::net::UdpSocket) -> io::Result<(usize, usize)> {
    let s = socket2::SockRef::from(socket);
    Ok((s.recv_buffer_size()?, s.send_buffer_size()?))
}

/// Our public IPv6 address, for BEP 7's `ipv6=` in announces: the listen address itself
/// when it is a public IPv6 one; on the IPv6 wildcard, the source address the routing
/// table picks to reach the IPv6 Internet (a UDP `connect` sends nothing, it only asks the
/// kernel for a route); `None` otherwise (IPv4 or loopback listeners, no IPv6 route).
pub(crate) fn public_ipv6(listen: Option<SocketAddr>) -> Option<std::net::Ipv6Addr> {
    let candidate = match listen? {
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            let probe = std::net::UdpSocket::bind("[::]:0").ok()?;
            // A documentation-free, globally routed address (a public DNS server's); only
            // the route to it matters.
            probe.connect("[2001:4860:4860::8888]:53").ok()?;
            match probe.local_addr().ok()? {
                SocketAddr::V6(local) => *local.ip(),
                SocketAddr::V4(_) => return None,
            }
        }
        SocketAddr::V6(a) => *a.ip(),
        SocketAddr::V4(_) => return None,
    };
    is_public_ipv6(candidate).then_some(candidate)
}

/// Whether peers elsewhere could reach `ip`: not loopback, unspecified, IPv4-mapped,
/// link-local (fe80::/10) or unique-local (fc00::/7).
fn is_public_ipv6(ip: std::net::Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.to_ipv4_mapped().is_some()
        || first & 0xffc0 == 0xfe80
        || first & 0xfe00 == 0xfc00)
}

fn is_v6_wildcard(addr: SocketAddr) -> bool {
    matches!(addr, SocketAddr::V6(a) if a.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_dual_stack_listener_takes_ipv4_peers_under_their_ipv4_address() {
        let Ok(listener) = bind_listener("[::]:0".parse().expect("addr")) else {
            return; // no IPv6 on this host: nothing dual-stack to check
        };
        let port = listener.local_addr().expect("local").port();
        let v4 = SocketAddr::from(([127, 0, 0, 1], port));
        let _client = std::net::TcpStream::connect(v4).expect("an IPv4 dial reaches [::]");
        let (_, peer) = listener.accept().expect("accept");
        assert!(peer.is_ipv6(), "seen mapped by the socket: {peer}");
        let peer = unchoke_core::dht::canonical(peer);
        assert_eq!(peer.ip(), v4.ip(), "{peer}");
    }

    #[test]
    fn a_dual_stack_udp_socket_reaches_ipv4_through_the_mapped_form() {
        let Ok(socket) = bind_udp_socket("[::]:0".parse().expect("addr")) else {
            return; // no IPv6 on this host
        };
        let local = socket.local_addr().ok();
        let v4 = std::net::UdpSocket::bind("127.0.0.1:0").expect("v4 socket");
        let to = v4.local_addr().expect("v4 addr");
        socket
            .send_to(
                b"hi",
                crate::dht_node::datagram_destination(local.is_some_and(|a| a.is_ipv6()), to),
            )
            .expect("sent");
        let mut buf = [0u8; 8];
        let (n, _) = v4.recv_from(&mut buf).expect("received");
        assert_eq!(&buf[..n], b"hi");
    }

    #[test]
    fn only_public_ipv6_addresses_are_announced() {
        let at = |s: &str| Some(s.parse::<SocketAddr>().expect("addr"));
        assert_eq!(public_ipv6(at("127.0.0.1:1")), None);
        assert_eq!(public_ipv6(at("[::1]:1")), None);
        assert_eq!(public_ipv6(at("[fe80::1]:1")), None);
        assert_eq!(public_ipv6(at("[fd00::1]:1")), None);
        assert_eq!(public_ipv6(at("[::ffff:1.2.3.4]:1")), None);
        assert_eq!(
            public_ipv6(at("[2001:db8::7]:1")),
            Some("2001:db8::7".parse().expect("ip"))
        );
        // The wildcard: whatever the host's route says, never a private address.
        if let Some(ip) = public_ipv6(at("[::]:1")) {
            assert!(is_public_ipv6(ip), "{ip}");
        }
    }

    #[test]
    fn connect_errors_read_as_words_without_error_numbers() {
        let ten = Duration::from_secs(10);
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(connect_error_text(&refused, ten), "connection refused");
        let unreachable = io::Error::from_raw_os_error(libc::ENETUNREACH);
        assert_eq!(connect_error_text(&unreachable, ten), "network unreachable");
        let timed_out = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
        assert_eq!(connect_error_text(&timed_out, ten), "timed out after 10 s");
        let other = io::Error::from_raw_os_error(libc::EPROTO);
        let text = connect_error_text(&other, ten);
        assert!(!text.contains("os error"), "{text}");
        assert!(text.starts_with("protocol"), "{text}");
    }

    #[test]
    fn a_refused_loopback_dial_says_connection_refused() {
        // A port nobody listens on: bind one, learn its number, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let error = std::net::TcpStream::connect(addr).expect_err("nobody listens");
        assert_eq!(
            connect_error_text(&error, Duration::from_secs(10)),
            "connection refused"
        );
    }
}

/// Smallest read a socket gets (and its first): what an idle or slow peer's buffer holds.
pub const READ_SIZE_MIN: usize = 32 * 1024;
/// Largest read: each read is one round of the session (its requests and disk jobs go out
/// after it), so a peer streaming to us at full speed is read in 256 KiB (≈ 16 blocks),
/// a quarter of the rounds, `writev`s and wake-ups of 64 KiB reads.
pub const READ_SIZE_MAX: usize = 256 * 1024;

/// How much to ask the kernel for on a socket's next read, adapted to how fast it fills:
/// doubled after a read that filled what was asked (more was waiting), halved after one
/// that did not, between [`READ_SIZE_MIN`] and [`READ_SIZE_MAX`].
///
/// Why adapt: blocks split out of a receive buffer keep its allocation alive, and a
/// connection keeps its buffer's spare capacity between reads. With a fixed 256 KiB, a seed
/// with a thousand peers that only send requests would hold a quarter of a GiB of mostly
/// empty buffers; this way only connections that stream to us get large ones.
#[derive(Debug, Clone, Copy)]
pub struct ReadSize(usize);

impl Default for ReadSize {
    fn default() -> Self {
        ReadSize(READ_SIZE_MIN)
    }
}

impl ReadSize {
    /// Bytes to reserve and ask for on the next read.
    pub fn next(self) -> usize {
        self.0
    }

    /// A read that asked for `asked` bytes got `got`.
    pub fn observe(&mut self, asked: usize, got: usize) {
        self.0 = if got >= asked {
            (self.0 * 2).min(READ_SIZE_MAX)
        } else {
            (self.0 / 2).max(READ_SIZE_MIN)
        };
    }
}

/// Receives at most `max` bytes from `socket` straight into the spare capacity of `buf`
/// and appends them: no zero-filling first (which cost ~5 % of a leecher's CPU at 1 GiB/s)
/// and no copy after. `Ok(0)` is the end of the stream — provided there was room to read
/// into: callers reserve spare capacity first and pass a non-zero `max` (with room for
/// nothing, `recv` also returns 0).
///
/// Errors are the socket's (`WouldBlock` for a non-blocking socket with nothing to read).
pub fn recv_into(
    socket: &impl std::os::fd::AsFd,
    buf: &mut bytes::BytesMut,
    max: usize,
) -> io::Result<usize> {
    let start = buf.len();
    let spare = buf.spare_capacity_mut();
    let room = spare.len().min(max);
    let n = socket2::SockRef::from(socket).recv(&mut spare[..room])?;
    // `recv` reports how many bytes the kernel wrote to the front of the slice; it cannot
    // write more than it was given, but the length is checked rather than trusted.
    let n = n.min(room);
    #[allow(unsafe_code)]
    // SAFETY: `BytesMut::set_len` needs the first `start + n` bytes initialised and
    // `start + n <= capacity`. Bytes `..start` were initialised already (they are `buf`'s
    // contents); bytes `start..start + n` are the first `n` of `spare`, which `recv` (a
    // `recv(2)` into that memory) has just written: socket2 documents that the returned
    // count of bytes at the start of the buffer are initialised. `n <= room <=
    // spare.len() = capacity - start`, so the length stays within the capacity.
    unsafe {
        buf.set_len(start + n);
    }
    Ok(n)
}

#[cfg(test)]
mod recv_tests {
    use super::{READ_SIZE_MAX, READ_SIZE_MIN, ReadSize, recv_into};

    #[test]
    fn read_size_grows_while_reads_fill_and_shrinks_when_they_do_not() {
        let mut size = ReadSize::default();
        assert_eq!(size.next(), READ_SIZE_MIN);
        for _ in 0..10 {
            let asked = size.next();
            size.observe(asked, asked);
        }
        assert_eq!(size.next(), READ_SIZE_MAX, "capped");
        size.observe(READ_SIZE_MAX, 100);
        assert_eq!(size.next(), READ_SIZE_MAX / 2, "one short read halves it");
        for _ in 0..10 {
            let asked = size.next();
            size.observe(asked, 17);
        }
        assert_eq!(size.next(), READ_SIZE_MIN, "floored");
    }
    use std::io::Write;

    #[test]
    fn appends_what_arrived_and_respects_the_limit() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut tx =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (rx, _) = listener.accept().expect("accept");
        tx.write_all(b"hello world").expect("write");
        let mut buf = bytes::BytesMut::with_capacity(64);
        buf.extend_from_slice(b">");
        let mut got = 0;
        // Blocking socket: each call returns what has arrived, at most 5 bytes.
        while got < 11 {
            let n = recv_into(&rx, &mut buf, 5).expect("recv");
            assert!(n > 0 && n <= 5, "read {n}");
            got += n;
        }
        assert_eq!(&buf[..], b">hello world");
        drop(tx);
        assert_eq!(recv_into(&rx, &mut buf, 5).expect("recv at end"), 0);
    }
}
