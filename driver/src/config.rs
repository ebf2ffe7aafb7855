//! Settings of a [`crate::Client`].

use std::net::SocketAddr;
use std::time::Duration;

use unchoke_core::metainfo::ShapeLimits;
use unchoke_core::session::SessionConfig;

use crate::dht_node::DhtSettings;
use crate::tls::TrustRoots;

/// Everything a client ([`crate::ClientCore`]) can be told at start. `Default` gives the documented values.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Address to accept peers on; port 0 picks a free port ([`crate::ClientCore::local_addr`]
    /// says which). `None`: do not listen. Outgoing connections are bound to the same IP
    /// so peers see one address for us (default `0.0.0.0:0`).
    pub listen: Option<SocketAddr>,
    /// The core's settings. `listen_port` is filled in from the bound listener and
    /// `send_accounting` turned on (the runtimes report what sockets accept). Connection
    /// policy lives there: `max_inbound`, `max_inbound_handshaking`, `connect_timeout`,
    /// `max_unsent_bytes`, `send_stall_timeout`, `upload_read_ahead`; so does the bound on
    /// downloaded bytes waiting for the disk, `max_unwritten_bytes`. Its `transport`
    /// defaults to `Both` here (uTP first, TCP on failure): the UDP socket that carries it
    /// is always bound, on the listen address and port.
    pub session: SessionConfig,
    /// Seed of the core's RNG; `None` takes one from the OS-seeded `fastrand`.
    pub rng_seed: Option<u64>,
    /// Worker threads for disk reads, writes and SHA-1 (default: available cores, 2 to 4).
    pub disk_threads: usize,
    /// Most files held open at once per torrent (default 64).
    pub max_open_files: usize,
    /// Save resume data this often while running (default 15 s; the session schedules it,
    /// see `SessionConfig::resume_interval`), and on shutdown.
    pub resume_interval: Duration,
    /// Run a DHT node (BEP 5) on a UDP socket, finding and announcing every non-private
    /// torrent there (default `None`: no DHT).
    pub dht: Option<DhtSettings>,
    /// Local service discovery (BEP 14): join the LAN's multicast groups (IPv4, IPv6 or
    /// both, as the listen address says) on the listen address's interface and let the
    /// session announce its non-private torrents there and dial peers announcing them
    /// (default off; `unchoke download`/`seed` turn it on). A group whose socket cannot be
    /// set up is left out and [`crate::ClientEvent::Lsd`] says why; with none, LSD is off
    /// for the run; the client runs on. See [`crate::lsd_node`].
    pub lsd: bool,
    /// Bounds on a torrent's shape (file count, path lengths), checked before its storage
    /// is set up (default: `ShapeLimits::default()`, 100,000 files).
    pub shape: ShapeLimits,
    /// The authorities an `https://` tracker's certificate must lead to (default: the
    /// system's).
    pub tracker_roots: TrustRoots,
}

impl Default for ClientConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        ClientConfig {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 0))),
            // The client dials uTP first and falls back to TCP, as libtorrent does (the
            // core's own default is TCP only; see `Transport`).
            session: SessionConfig {
                transport: unchoke_core::session::Transport::Both,
                ..SessionConfig::default()
            },
            rng_seed: None,
            disk_threads: cores.clamp(2, 4),
            max_open_files: 64,
            resume_interval: Duration::from_secs(15),
            dht: None,
            lsd: false,
            shape: ShapeLimits::default(),
            tracker_roots: TrustRoots::System,
        }
    }
}
