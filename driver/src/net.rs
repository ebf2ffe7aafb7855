//! Socket set-up the standard library does not offer: a non-blocking connect from a chosen
//! local address (tests give each client its own loopback address, and peers must see
//! that address, not 127.0.0.1).

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

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
