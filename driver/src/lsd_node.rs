//! What a driver needs for local service discovery (BEP 14): the multicast socket. Every
//! LSD rule — when to announce, whom to believe, rate limits — is the core's
//! (`Session::handle_lsd_datagram`, `Action::SendLsd`); a runtime only moves datagrams
//! between this socket and the session.
//!
//! One IPv4 socket, bound to `0.0.0.0:6771` with `SO_REUSEADDR` and `SO_REUSEPORT` (several
//! clients on one host each get every announce: the kernel hands a multicast datagram to
//! every socket bound to the port that joined the group), joined to `239.192.152.143` on the
//! interface of the listen address, multicast loop on (clients on the same host hear each
//! other; the session ignores its own announces by their cookie), TTL 1 (never routed off
//! the link). Sends go out the same socket.
//!
//! **The interface.** With a specific IPv4 listen address, `IP_MULTICAST_IF` and the
//! membership use it, so announces leave by that address's interface and carry it as their
//! source. With a loopback listen address that interface is `lo`: the traffic never leaves
//! the machine, whatever the routing table says (checked on Linux: 2,000 datagrams sent
//! with `IP_MULTICAST_IF` 127.0.0.1 all counted on `lo`, none on `eth0`, while
//! `ip route get 239.192.152.143` without it names `eth0`), and it needs neither a
//! multicast route nor the `MULTICAST` flag on `lo`. With `0.0.0.0` (or `[::]`) the kernel
//! picks the interface its routing table gives the group, usually the default route's.
//!
//! **IPv6 is absent**: the IPv6 group (`ff15::efc0:988f`) is not joined. Its scope is
//! site-local and a membership needs an interface index; whether it works on loopback in a
//! test namespace was not tried in the time this was built, so no IPv6 LSD socket is bound
//! and the session announces over IPv4 only. A specific IPv6 listen address turns LSD off (an
//! IPv4 announce would name a port we do not take on IPv4).
//!
//! **Never fatal.** Any failure (port or group refused, no multicast route, no IPv4) turns
//! LSD off for the run, with the reason told to the user; the client runs on.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};
use unchoke_core::lsd::{LSD_GROUP_V4, LSD_PORT};

use crate::{ClientConfig, ClientEvent};

/// Where a bound LSD socket announces from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LsdSocketInfo {
    /// The group joined (`239.192.152.143:6771`).
    pub group: SocketAddr,
    /// The interface's address (`0.0.0.0`: the one the routing table gives the group).
    pub interface: Ipv4Addr,
}

/// The interface LSD uses for a client listening on `listen`: its IPv4 address if it is a
/// specific one, any interface for an unspecified one, and none (LSD off) for a specific
/// IPv6 address or no listener (nothing to announce).
pub fn lsd_interface(listen: Option<SocketAddr>) -> Result<Ipv4Addr, String> {
    match listen.map(|a| a.ip()) {
        None => Err("not listening: no port to announce".into()),
        Some(IpAddr::V4(ip)) => Ok(ip),
        Some(IpAddr::V6(ip)) if ip.is_unspecified() => Ok(Ipv4Addr::UNSPECIFIED),
        Some(IpAddr::V6(ip)) => Err(format!(
            "listening on IPv6 address {ip}: local service discovery is IPv4 only"
        )),
    }
}

/// Binds and joins the IPv4 LSD socket for a client listening on `listen` (see the module
/// docs); non-blocking. `Err` says why LSD is off, in words for the user.
pub fn bind_lsd(listen: Option<SocketAddr>) -> Result<(UdpSocket, LsdSocketInfo), String> {
    let interface = lsd_interface(listen)?;
    let socket = bind_lsd_v4(interface).map_err(|e| {
        format!("cannot join the LSD group {LSD_GROUP_V4}:{LSD_PORT} on {interface}: {e}")
    })?;
    let group = SocketAddr::V4(SocketAddrV4::new(LSD_GROUP_V4, LSD_PORT));
    Ok((socket, LsdSocketInfo { group, interface }))
}

/// What a runtime does before creating its [`crate::SessionHost`]: when `cfg.lsd` asks
/// for LSD, binds the socket for a client listening on `listen` and says so (or why not)
/// in a [`ClientEvent::Lsd`]. Returns the socket (`None`: LSD off), the config to build
/// the host from (`lsd` set only when the socket is up, so the session never announces
/// into nothing) and the event to tell the user.
pub fn open_lsd(
    cfg: &ClientConfig,
    listen: Option<SocketAddr>,
) -> (Option<UdpSocket>, ClientConfig, Option<ClientEvent>) {
    let mut cfg = cfg.clone();
    if !cfg.lsd {
        return (None, cfg, None);
    }
    match bind_lsd(listen) {
        Ok((socket, info)) => (Some(socket), cfg, Some(ClientEvent::Lsd(Ok(info)))),
        Err(why) => {
            cfg.lsd = false;
            (None, cfg, Some(ClientEvent::Lsd(Err(why))))
        }
    }
}

/// The socket itself, on `interface` (`0.0.0.0`: any).
fn bind_lsd_v4(interface: Ipv4Addr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    // Other clients on this host (libtorrent, a second unchoke) bind the same port.
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, LSD_PORT)).into())?;
    socket.join_multicast_v4(&LSD_GROUP_V4, &interface)?;
    if !interface.is_unspecified() {
        // Sends leave by the listen address's interface (lo for a loopback address).
        socket.set_multicast_if_v4(&interface)?;
    }
    socket.set_multicast_loop_v4(true)?;
    socket.set_multicast_ttl_v4(1)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interface_follows_the_listen_address() {
        let v4: SocketAddr = "127.0.0.3:1".parse().expect("addr");
        assert_eq!(lsd_interface(Some(v4)), Ok(Ipv4Addr::new(127, 0, 0, 3)));
        let any6: SocketAddr = "[::]:1".parse().expect("addr");
        assert_eq!(lsd_interface(Some(any6)), Ok(Ipv4Addr::UNSPECIFIED));
        assert!(lsd_interface(Some("[::1]:1".parse().expect("addr"))).is_err());
        assert!(lsd_interface(None).is_err());
    }
}
