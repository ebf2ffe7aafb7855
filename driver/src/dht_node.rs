//! What a driver needs to run the session's DHT node (BEP 5): its settings, binding its
//! UDP socket, and the node list kept between runs. Every DHT rule — queries, routing,
//! lookups, when a torrent announces — is the core's (`unchoke_core::dht`,
//! `Session::handle_datagram`); a runtime only moves datagrams.
//!
//! IPv6 (BEP 32): the session runs a DHT node per address family its UDP socket can
//! reach ([`dht_families`]). We keep **one** UDP socket, of the listen address's family,
//! rather than a second socket for the other family: the design has one UDP socket per
//! session (DHT and UDP trackers share it and its port), a second one would need its own
//! registration and read loop in each runtime, and binding `0.0.0.0:P` and `[::]:P`
//! side by side needs `IPV6_V6ONLY`, which the standard library cannot set before
//! binding. So: `--listen 127.0.0.1:P`/`0.0.0.0:P` runs the IPv4 DHT as before;
//! `--listen [::1]:P` (or any IPv6 address) the IPv6 DHT; `--listen [::]:P` both over
//! one dual-stack socket — IPv4 senders appear as `::ffff:a.b.c.d` (the core takes them
//! as IPv4) and IPv4 destinations are sent to as such ([`datagram_destination`]). Where
//! the system makes `[::]` IPv6-only, the IPv4 node's sends fail and it finds nobody;
//! the IPv6 node goes on (not fatal, as the brief for the extra family asks).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

use unchoke_core::dht::DhtConfig;

/// The most nodes saved to (and read back from) the node file.
pub const MAX_SAVED_NODES: usize = 200;

/// The largest datagram read: KRPC messages fit well inside one Ethernet frame; the core
/// drops anything over its own `max_packet` (1,500 bytes), so reading a little more only
/// lets it count the oversized ones.
pub const DATAGRAM_BUFFER: usize = 2048;

/// Datagrams read in a row before the loop turns to its other sockets, so a flood on the
/// DHT port cannot starve the peers.
pub const DATAGRAM_BURST: usize = 256;

/// How to run the DHT node.
#[derive(Clone, Debug)]
pub struct DhtSettings {
    /// The UDP address to bind. Port 0 takes the TCP listen port when there is a listener
    /// (as other clients do: one port for both), else any free port.
    pub bind: SocketAddr,
    /// Nodes to join the DHT through.
    pub bootstrap: Vec<SocketAddr>,
    /// Routers to join through, by name (`(host, port)`): the session has them resolved
    /// and reports their failure (`Event::DhtJoinFailed`). Empty by default; the CLI
    /// gives `unchoke_core::dht::PUBLIC_ROUTERS`.
    pub routers: Vec<(String, u16)>,
    /// Where to keep good nodes between runs (read at start, written at shutdown);
    /// `None`: nothing kept.
    pub nodes_file: Option<PathBuf>,
    /// The node's limits and timings.
    pub config: DhtConfig,
}

impl DhtSettings {
    /// A node on `bind` joining through `bootstrap`, default limits, no node file.
    pub fn new(bind: SocketAddr, bootstrap: Vec<SocketAddr>) -> Self {
        DhtSettings {
            bind,
            bootstrap,
            routers: Vec::new(),
            nodes_file: None,
            config: DhtConfig::default(),
        }
    }
}

/// The address families the DHT runs over on a UDP socket bound to `local` (see the
/// module docs): given to the session as `SessionConfig::dht_families`.
pub fn dht_families(local: &SocketAddr) -> unchoke_core::dht::DhtFamilies {
    unchoke_core::dht::DhtFamilies::of_socket(local)
}

/// Where to send a datagram meant for `to` from a socket bound to an address of family
/// `local_is_v6`: an IPv4 destination from an IPv6 (dual-stack) socket as its
/// IPv4-mapped address `::ffff:a.b.c.d` (`send_to` refuses a bare IPv4 address there);
/// anything else unchanged (an IPv6 destination from an IPv4 socket simply fails to send,
/// as the network may lose it).
pub fn datagram_destination(local_is_v6: bool, to: SocketAddr) -> SocketAddr {
    match to {
        SocketAddr::V4(a) if local_is_v6 => {
            SocketAddr::new(a.ip().to_ipv6_mapped().into(), a.port())
        }
        _ => to,
    }
}

/// How a DHT socket failure is reported: as a listen error naming the UDP address.
pub fn dht_socket_error(settings: &DhtSettings, source: io::Error) -> crate::ClientError {
    crate::ClientError::Listen {
        addr: format!("{} (DHT, UDP)", settings.bind),
        source,
    }
}

/// [`bind_dht_socket`] and its bound address, failures as [`dht_socket_error`]s: what
/// both runtimes do before wrapping the socket in their own type.
pub fn bind_dht(
    settings: &DhtSettings,
    listen: Option<SocketAddr>,
) -> Result<(UdpSocket, SocketAddr), crate::ClientError> {
    let socket = bind_dht_socket(settings, listen).map_err(|e| dht_socket_error(settings, e))?;
    let addr = socket
        .local_addr()
        .map_err(|e| dht_socket_error(settings, e))?;
    Ok((socket, addr))
}

/// Binds the DHT's non-blocking UDP socket: `settings.bind`, with port 0 meaning the TCP
/// listener's port when `listen` is given (and free for UDP), else any port.
pub fn bind_dht_socket(
    settings: &DhtSettings,
    listen: Option<SocketAddr>,
) -> io::Result<UdpSocket> {
    let mut addr = settings.bind;
    let socket = match listen {
        Some(l) if addr.port() == 0 && l.port() != 0 => {
            addr.set_port(l.port());
            // The TCP port may be taken for UDP by someone else: then any port will do.
            crate::net::bind_udp_socket(addr)
                .or_else(|_| crate::net::bind_udp_socket(settings.bind))?
        }
        _ => crate::net::bind_udp_socket(addr)?,
    };
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The nodes saved in `path` (one `IP:PORT` a line; unreadable lines skipped, at most
/// [`MAX_SAVED_NODES`]). A missing file is no nodes.
pub fn load_nodes(path: &Path) -> io::Result<Vec<SocketAddr>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .take(MAX_SAVED_NODES)
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Writes `nodes` to `path` (at most [`MAX_SAVED_NODES`]), through a temporary file so a
/// crash never leaves half a list. Parent directories are created.
pub fn save_nodes(path: &Path, nodes: &[SocketAddr]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = String::new();
    for n in nodes.iter().take(MAX_SAVED_NODES) {
        text.push_str(&n.to_string());
        text.push('\n');
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_file_round_trips_and_skips_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("dht.nodes");
        assert_eq!(load_nodes(&path).expect("missing is empty"), Vec::new());
        let nodes: Vec<SocketAddr> = vec![
            "127.0.0.1:6881".parse().expect("addr"),
            "10.1.2.3:51413".parse().expect("addr"),
        ];
        save_nodes(&path, &nodes).expect("save");
        assert_eq!(load_nodes(&path).expect("load"), nodes);
        std::fs::write(
            &path,
            "127.0.0.2:1\nnot a node\n\n127.0.0.3:99999\n127.0.0.4:2\n",
        )
        .expect("write");
        let back = load_nodes(&path).expect("load");
        assert_eq!(
            back,
            vec![
                "127.0.0.2:1".parse::<SocketAddr>().expect("addr"),
                "127.0.0.4:2".parse().expect("addr")
            ]
        );
    }

    #[test]
    fn node_file_is_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dht.nodes");
        let many: Vec<SocketAddr> = (0..1000u16)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], 1000 + p)))
            .collect();
        save_nodes(&path, &many).expect("save");
        assert_eq!(load_nodes(&path).expect("load").len(), MAX_SAVED_NODES);
    }

    #[test]
    fn port_zero_follows_the_tcp_listener() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp");
        let listen = tcp.local_addr().expect("addr");
        let settings = DhtSettings::new("127.0.0.1:0".parse().expect("addr"), Vec::new());
        let udp = bind_dht_socket(&settings, Some(listen)).expect("bind");
        assert_eq!(udp.local_addr().expect("addr").port(), listen.port());
        // That UDP port is taken now: a second node falls back to any port.
        let other = bind_dht_socket(&settings, Some(listen)).expect("bind");
        assert_ne!(other.local_addr().expect("addr").port(), listen.port());
    }

    #[test]
    fn ipv4_destinations_from_an_ipv6_socket_are_mapped() {
        let v4: SocketAddr = "10.0.0.1:6881".parse().expect("addr");
        let v6: SocketAddr = "[2001:db8::1]:6881".parse().expect("addr");
        assert_eq!(datagram_destination(false, v4), v4);
        assert_eq!(datagram_destination(false, v6), v6);
        assert_eq!(datagram_destination(true, v6), v6);
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:6881".parse().expect("addr");
        assert_eq!(datagram_destination(true, v4), mapped);
        let any6: SocketAddr = "[::]:0".parse().expect("addr");
        let f = dht_families(&any6);
        assert!(f.v4 && f.v6);
        let lo6: SocketAddr = "[::1]:0".parse().expect("addr");
        let f = dht_families(&lo6);
        assert!(!f.v4 && f.v6);
        let f = dht_families(&v4);
        assert!(f.v4 && !f.v6);
    }
}
