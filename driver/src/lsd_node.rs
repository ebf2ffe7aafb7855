//! What a driver needs for local service discovery (BEP 14): the multicast sockets. Every
//! LSD rule — when to announce, whom to believe, rate limits — is the core's
//! (`Session::handle_lsd_datagram`, `Action::SendLsd`); a runtime only moves datagrams
//! between these sockets and the session: it reads every socket in
//! [`LsdSockets::readers`] and hands each `SendLsd` to [`LsdSender::send`].
//!
//! **Which families.** They follow the listen address, so an announce never names a port
//! we do not take on that family: a specific IPv4 address or `0.0.0.0` gives the IPv4
//! group only; a specific IPv6 address the IPv6 group only; the dual-stack wildcard `[::]`
//! (the CLI's default) both. The session announces to each group that opened
//! ([`unchoke_core::session::SessionConfig::lsd_families`]).
//!
//! **IPv4**: one socket bound to `0.0.0.0:6771` with `SO_REUSEADDR` and `SO_REUSEPORT`
//! (several clients on one host each get every announce: the kernel hands a multicast
//! datagram to every socket bound to the port that joined the group), joined to
//! `239.192.152.143` on the interface of the listen address, multicast loop on (clients on
//! the same host hear each other; the session ignores its own announces by their cookie),
//! TTL 1 (never routed off the link). Sends go out the same socket. With a specific IPv4
//! listen address, `IP_MULTICAST_IF` and the membership use it, so announces leave by that
//! address's interface and carry it as their source. With a loopback listen address that
//! interface is `lo`: the traffic never leaves the machine, whatever the routing table says
//! (checked on Linux: 2,000 datagrams sent with `IP_MULTICAST_IF` 127.0.0.1 all counted on
//! `lo`, none on `eth0`, while `ip route get 239.192.152.143` without it names `eth0`), and
//! it needs neither a multicast route nor the `MULTICAST` flag on `lo`. With `0.0.0.0` (or
//! `[::]`) the kernel picks the interface its routing table gives the group, usually the
//! default route's.
//!
//! **IPv6**: one socket bound to `[::]:6771`, `IPV6_V6ONLY` (IPv4 announces are the IPv4
//! socket's; without it a dual-stack socket could be handed them too, IPv4-mapped, and
//! each would count twice), the same `SO_REUSEADDR`/`SO_REUSEPORT`, joined to
//! `ff15::efc0:988f`, multicast loop on, hop limit 1. `ff15::` is site-local in scope; the
//! hop limit of 1 is what keeps announces on the link, as the IPv4 TTL does. The
//! membership's interface is an index, not an address:
//! - for `[::]`, index 0: the kernel joins on the interface its routing table gives the
//!   group (the `multicast ff00::/8` route of the first interface up), as the IPv4 socket
//!   does with `0.0.0.0`. Joining every interface was not done: announces would still
//!   leave by one, and a host on two LANs would learn peers on a LAN it never announces to;
//! - for a specific address, the interface that holds it (from `/proc/net/if_inet6` on
//!   Linux, or the address's own scope id; index 0 where neither says), also as
//!   `IPV6_MULTICAST_IF`. Sends then leave from a second socket bound to that address:
//!   unlike IPv4's `IP_MULTICAST_IF`, IPv6 has no option that sets the source address, and
//!   the kernel's source selection may pick another address of the host (a temporary
//!   SLAAC address, another address on the same link), one we do not listen on — the
//!   announce would then name a peer nobody can reach. With `[::]` any local address
//!   reaches the listener, so sends go out the receiving socket.
//!
//! IPv6 multicast on `lo` does not work on Linux (checked in a namespace: with the
//! `MULTICAST` flag and a `multicast ff00::/8 dev lo` route the membership is taken and
//! the send accepted, but the datagram is dropped on output as `Ip6OutNoRoutes`); a
//! loopback IPv6 listen address (`[::1]`) therefore leaves LSD off, with the kernel's
//! reason. The IPv6 test (`cli/tests/lsd.rs`) uses a veth pair inside its namespace.
//!
//! **Never fatal.** A family whose socket cannot be set up (port or group refused, no
//! multicast route, no IPv6) is told once as a [`ClientEvent::Lsd`] error and the other
//! family goes on; with neither, LSD is off for the run. The client always runs on.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};
use unchoke_core::lsd::{LSD_GROUP_V4, LSD_GROUP_V6, LSD_PORT, LsdFamilies, group_v4, group_v6};

use crate::{ClientConfig, ClientEvent};

/// Where a bound LSD socket announces from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LsdSocketInfo {
    /// The group joined (`239.192.152.143:6771` or `[ff15::efc0:988f]:6771`).
    pub group: SocketAddr,
    /// IPv4: the interface's address (`0.0.0.0`: the one the routing table gives the
    /// group). IPv6: the address announces leave from (`::`: any, the kernel's choice).
    pub interface: IpAddr,
    /// IPv6: the index of the interface joined (0: the one the routing table gives the
    /// group). Always 0 for IPv4, whose interface is named by its address.
    pub interface_index: u32,
}

/// Why local service discovery is off for one group, or at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LsdOff {
    /// The group that could not be joined; `None` when LSD is off for every group (not
    /// listening: no port to announce).
    pub group: Option<SocketAddr>,
    /// Why, in words for the user.
    pub reason: String,
}

/// The groups a client listening on `listen` joins, and on which interface each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LsdPlan {
    /// The IPv4 group on this interface address (`0.0.0.0`: any), if IPv4 is announced.
    pub v4: Option<Ipv4Addr>,
    /// The IPv6 group, if IPv6 is announced: the listen address (`::`: any) and the index
    /// of its interface (0: the routing table's choice).
    pub v6: Option<(Ipv6Addr, u32)>,
}

/// Which groups a client listening on `listen` announces to (see the module docs): IPv4 for
/// an IPv4 listener, IPv6 for a specific IPv6 one, both for `[::]`. `Err` when not
/// listening (nothing to announce).
pub fn lsd_plan(listen: Option<SocketAddr>) -> Result<LsdPlan, LsdOff> {
    let Some(listen) = listen.map(unchoke_core::dht::canonical) else {
        return Err(LsdOff {
            group: None,
            reason: "not listening: no port to announce".into(),
        });
    };
    Ok(match listen {
        SocketAddr::V4(a) => LsdPlan {
            v4: Some(*a.ip()),
            v6: None,
        },
        SocketAddr::V6(a) if a.ip().is_unspecified() => LsdPlan {
            v4: Some(Ipv4Addr::UNSPECIFIED),
            v6: Some((Ipv6Addr::UNSPECIFIED, 0)),
        },
        SocketAddr::V6(a) => {
            let index = match a.scope_id() {
                0 => interface_index(a.ip()).unwrap_or(0),
                scope => scope,
            };
            LsdPlan {
                v4: None,
                v6: Some((*a.ip(), index)),
            }
        }
    })
}

/// The sockets LSD runs on: what to read, and where sends go.
#[derive(Debug)]
pub struct LsdSockets {
    /// The sockets announces arrive on, one per group joined (IPv4's first), non-blocking:
    /// a runtime reads each and hands every datagram to
    /// [`crate::SessionHost::lsd_datagram`].
    pub readers: Vec<UdpSocket>,
    /// Where [`unchoke_core::session::Action::SendLsd`] goes.
    pub sender: LsdSender,
    /// The groups joined, for the session's config.
    pub families: LsdFamilies,
}

/// Sends announces out of the socket for the destination's family (see the module docs
/// for which socket that is). Non-blocking: a full socket buffer loses the datagram, and
/// the session announces again in 5 minutes.
#[derive(Debug)]
pub struct LsdSender {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl LsdSender {
    /// Sends `bytes` to `to` from the socket of its family; an error if there is none
    /// (that group was not joined) or the socket refused it.
    pub fn send(&self, to: SocketAddr, bytes: &[u8]) -> io::Result<usize> {
        let socket = match to {
            SocketAddr::V4(_) => self.v4.as_ref(),
            SocketAddr::V6(_) => self.v6.as_ref(),
        };
        match socket {
            Some(s) => s.send_to(bytes, to),
            None => Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "no LSD socket for this family",
            )),
        }
    }
}

/// Binds and joins the LSD sockets for a client listening on `listen` (see the module
/// docs), non-blocking. Returns the sockets of the groups that opened (`None`: none did)
/// and, for each group that did or did not, what to tell the user.
pub fn bind_lsd(
    listen: Option<SocketAddr>,
) -> (Option<LsdSockets>, Vec<Result<LsdSocketInfo, LsdOff>>) {
    let plan = match lsd_plan(listen) {
        Ok(plan) => plan,
        Err(off) => return (None, vec![Err(off)]),
    };
    let mut told = Vec::new();
    let mut readers = Vec::new();
    let mut sender = LsdSender { v4: None, v6: None };
    if let Some(interface) = plan.v4 {
        match bind_lsd_v4(interface).and_then(|s| Ok((s.try_clone()?, s))) {
            Ok((send, read)) => {
                readers.push(read);
                sender.v4 = Some(send);
                told.push(Ok(LsdSocketInfo {
                    group: group_v4(),
                    interface: interface.into(),
                    interface_index: 0,
                }));
            }
            Err(e) => told.push(Err(LsdOff {
                group: Some(group_v4()),
                reason: format!(
                    "cannot join the LSD group {LSD_GROUP_V4}:{LSD_PORT} on {interface}: {e}"
                ),
            })),
        }
    }
    if let Some((address, index)) = plan.v6 {
        match bind_lsd_v6(address, index) {
            Ok((read, send)) => {
                readers.push(read);
                sender.v6 = Some(send);
                told.push(Ok(LsdSocketInfo {
                    group: group_v6(),
                    interface: address.into(),
                    interface_index: index,
                }));
            }
            Err(e) => told.push(Err(LsdOff {
                group: Some(group_v6()),
                reason: format!(
                    "cannot join the LSD group [{LSD_GROUP_V6}]:{LSD_PORT} on {address} \
                     (interface {index}): {e}"
                ),
            })),
        }
    }
    let families = LsdFamilies {
        v4: sender.v4.is_some(),
        v6: sender.v6.is_some(),
    };
    let sockets = (!readers.is_empty()).then_some(LsdSockets {
        readers,
        sender,
        families,
    });
    (sockets, told)
}

/// What a runtime does before creating its [`crate::SessionHost`]: when `cfg.lsd` asks
/// for LSD, binds the sockets for a client listening on `listen` and says so (or why not,
/// per group) in [`ClientEvent::Lsd`] events. Returns the sockets (`None`: LSD off), the
/// config to build the host from (`lsd` set only when a socket is up, and the session's
/// `lsd_families` to the groups joined, so the session never announces into nothing) and
/// the events to tell the user.
pub fn open_lsd(
    cfg: &ClientConfig,
    listen: Option<SocketAddr>,
) -> (Option<LsdSockets>, ClientConfig, Vec<ClientEvent>) {
    let mut cfg = cfg.clone();
    if !cfg.lsd {
        return (None, cfg, Vec::new());
    }
    let (sockets, told) = bind_lsd(listen);
    let events = told.into_iter().map(ClientEvent::Lsd).collect();
    match &sockets {
        Some(s) => cfg.session.lsd_families = s.families,
        None => cfg.lsd = false,
    }
    (sockets, cfg, events)
}

/// A socket bound to the LSD port that other clients on this host may bind too.
fn shared_socket(domain: Domain) -> io::Result<Socket> {
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    // Other clients on this host (libtorrent, a second unchoke) bind the same port.
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    Ok(socket)
}

/// The IPv4 socket, on `interface` (`0.0.0.0`: any).
fn bind_lsd_v4(interface: Ipv4Addr) -> io::Result<UdpSocket> {
    let socket = shared_socket(Domain::IPV4)?;
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

/// The IPv6 sockets for a client listening on `address` (`::`: any) on interface `index`
/// (0: the routing table's choice): the one joined to the group, and the one sends leave
/// from (a second socket bound to `address` when it is a specific one, else a handle on
/// the first).
fn bind_lsd_v6(address: Ipv6Addr, index: u32) -> io::Result<(UdpSocket, UdpSocket)> {
    let socket = shared_socket(Domain::IPV6)?;
    socket.set_only_v6(true)?;
    socket
        .bind(&SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, LSD_PORT, 0, 0)).into())?;
    socket.join_multicast_v6(&LSD_GROUP_V6, index)?;
    multicast_out_v6(&socket, index)?;
    socket.set_nonblocking(true)?;
    let read: UdpSocket = socket.into();
    if address.is_unspecified() {
        let send = read.try_clone()?;
        return Ok((read, send));
    }
    let send = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    send.set_only_v6(true)?;
    // The scope id matters for a link-local address (and is ignored for others).
    send.bind(&SocketAddr::V6(SocketAddrV6::new(address, 0, 0, index)).into())?;
    multicast_out_v6(&send, index)?;
    send.set_nonblocking(true)?;
    Ok((read, send.into()))
}

/// Multicast sends from `socket`: out of interface `index` (0: by the routing table),
/// looped back to this host's other clients, never past the link.
fn multicast_out_v6(socket: &Socket, index: u32) -> io::Result<()> {
    if index != 0 {
        socket.set_multicast_if_v6(index)?;
    }
    socket.set_multicast_loop_v6(true)?;
    socket.set_multicast_hops_v6(1)
}

/// The index of the interface holding `ip`, where the system says (Linux:
/// `/proc/net/if_inet6`, one line per address: 32 hex digits, then the index in hex).
fn interface_index(ip: &Ipv6Addr) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/net/if_inet6").ok()?;
    index_in_if_inet6(&table, ip)
}

/// [`interface_index`]'s parse of `table`; lines that do not parse are skipped.
fn index_in_if_inet6(table: &str, ip: &Ipv6Addr) -> Option<u32> {
    let want: String = ip.octets().iter().map(|b| format!("{b:02x}")).collect();
    table.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let addr = fields.next()?;
        let index = fields.next()?;
        if !addr.eq_ignore_ascii_case(&want) {
            return None;
        }
        u32::from_str_radix(index, 16).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn the_groups_follow_the_listen_address() {
        assert_eq!(
            lsd_plan(Some(addr("127.0.0.3:1"))),
            Ok(LsdPlan {
                v4: Some(Ipv4Addr::new(127, 0, 0, 3)),
                v6: None
            })
        );
        assert_eq!(
            lsd_plan(Some(addr("0.0.0.0:1"))),
            Ok(LsdPlan {
                v4: Some(Ipv4Addr::UNSPECIFIED),
                v6: None
            })
        );
        assert_eq!(
            lsd_plan(Some(addr("[::]:1"))),
            Ok(LsdPlan {
                v4: Some(Ipv4Addr::UNSPECIFIED),
                v6: Some((Ipv6Addr::UNSPECIFIED, 0))
            })
        );
        // A specific IPv6 address: IPv6 only, on its interface (a scope id names it).
        assert_eq!(
            lsd_plan(Some(addr("[fe80::1%7]:1"))),
            Ok(LsdPlan {
                v4: None,
                v6: Some(("fe80::1".parse().expect("ip"), 7))
            })
        );
        let v6 = lsd_plan(Some(addr("[2001:db8::1]:1"))).expect("plan");
        assert_eq!(v6.v4, None);
        assert_eq!(
            v6.v6.map(|(a, _)| a),
            Some("2001:db8::1".parse().expect("ip"))
        );
        // An IPv4-mapped listen address is the IPv4 address it is.
        assert_eq!(
            lsd_plan(Some(addr("[::ffff:10.0.0.1]:1")))
                .expect("plan")
                .v4,
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        let off = lsd_plan(None).expect_err("not listening");
        assert_eq!(off.group, None);
    }

    #[test]
    fn if_inet6_gives_the_index_of_the_address() {
        let table = "00000000000000000000000000000001 01 80 10 80       lo\n\
                     fd000000000000000000000000000002 0b 40 00 80       v1\n\
                     garbage\n\
                     fe80000000000000f8286afffea34c42 03 40 20 80       v0\n";
        let ip = |s: &str| s.parse::<Ipv6Addr>().expect("ip");
        assert_eq!(index_in_if_inet6(table, &ip("::1")), Some(1));
        assert_eq!(index_in_if_inet6(table, &ip("fd00::2")), Some(11));
        assert_eq!(
            index_in_if_inet6(table, &ip("fe80::f828:6aff:fea3:4c42")),
            Some(3)
        );
        assert_eq!(index_in_if_inet6(table, &ip("fd00::3")), None);
    }

    #[test]
    fn a_sender_without_the_family_refuses() {
        let sender = LsdSender { v4: None, v6: None };
        let err = sender.send(group_v6(), b"x").expect_err("no socket");
        assert_eq!(err.kind(), io::ErrorKind::AddrNotAvailable);
    }
}
