//! Serving the tracker: what the mio and smol tracker services share around the sans-IO
//! [`TrackerServer`] of `unchoke-core` — their configuration, counters and errors, binding
//! the sockets, and [`TrackerHost`], which feeds the server requests stamped with the
//! clock and keeps the counters current. Each driver only moves bytes between sockets and
//! a `TrackerHost`; every decision about a request is the core's.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant as StdInstant};

use unchoke_core::tracker::server::{HttpOutcome, MAX_HTTP_REQUEST, ServerConfig, TrackerServer};

use crate::Clock;

/// The default port of both fronts: the customary BitTorrent tracker port.
pub const DEFAULT_TRACKER_PORT: u16 = 6969;

/// The most HTTP connections served at once unless configured otherwise.
pub const DEFAULT_MAX_HTTP_CONNECTIONS: usize = 512;

/// How long a client has to send its request unless configured otherwise.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// After a response is sent, how long the service waits for the client to close before it
/// closes itself. Closing a socket with unread request bytes makes the kernel send a reset,
/// which can destroy the response before the client reads it; so the service half-closes,
/// discards what the client still sends, and only then closes.
pub const HTTP_LINGER: Duration = Duration::from_secs(2);

/// The most bytes discarded while lingering: a client that keeps sending is cut off.
pub const HTTP_LINGER_MAX_BYTES: usize = 64 * 1024;

/// The receive buffer for one datagram. BEP 15 requests are at most 16 + 74·20 bytes; a
/// larger datagram is cut short and the core answers it with an error.
pub const UDP_BUFFER: usize = 2048;

/// The most datagrams or accepted connections handled in a row before the loop turns to
/// its other sockets, so a flood on one front cannot starve the other.
pub const BURST: usize = 256;

/// The longest the loops sleep without looking at the expiry timer.
pub const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Where and how to serve a tracker.
#[derive(Clone, Debug)]
pub struct TrackerServiceConfig {
    /// Where to accept HTTP announces and scrapes (`/announce`, `/scrape`); `None`: no HTTP
    /// front. Port 0 picks a free port (see the services' `http_addr`).
    pub http: Option<SocketAddr>,
    /// Where to answer BEP 15 UDP packets; `None`: no UDP front. Port 0 picks a free port.
    pub udp: Option<SocketAddr>,
    /// The tracker's limits and timings.
    pub server: ServerConfig,
    /// Seed of the tracker's randomness (peer subsets, the UDP connection-id secret);
    /// `None`: drawn from the OS. Set it only for reproducible tests: a known seed lets
    /// anyone forge UDP connection ids.
    pub rng_seed: Option<u64>,
    /// The most HTTP connections open at once; when a new one arrives at the limit, the
    /// oldest is closed, so idle connections cannot lock announces out. At least 1.
    pub max_http_connections: usize,
    /// A client must send its whole request within this long after connecting (and then
    /// read the response within this long), else it is disconnected. Not zero.
    pub http_timeout: Duration,
}

impl Default for TrackerServiceConfig {
    /// Both fronts on `127.0.0.1:6969`, default server limits, a random seed, 512 HTTP
    /// connections, a 10 s request timeout.
    fn default() -> Self {
        let local = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, DEFAULT_TRACKER_PORT));
        TrackerServiceConfig {
            http: Some(local),
            udp: Some(local),
            server: ServerConfig::default(),
            rng_seed: None,
            max_http_connections: DEFAULT_MAX_HTTP_CONNECTIONS,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
        }
    }
}

impl TrackerServiceConfig {
    /// Checks the settings the services rely on.
    pub fn validate(&self) -> Result<(), TrackerServiceError> {
        if self.http.is_none() && self.udp.is_none() {
            return Err(TrackerServiceError::Config(
                "neither an HTTP nor a UDP address to serve on",
            ));
        }
        if self.max_http_connections == 0 {
            return Err(TrackerServiceError::Config(
                "max_http_connections must be at least 1",
            ));
        }
        if self.http_timeout.is_zero() {
            return Err(TrackerServiceError::Config("http_timeout must not be zero"));
        }
        Ok(())
    }

    /// The seed to use: the configured one, else one drawn from the OS's randomness.
    pub fn seed(&self) -> u64 {
        self.rng_seed.unwrap_or_else(random_seed)
    }
}

/// A seed the outside world cannot guess: `RandomState`'s keys come from the OS's
/// randomness; the time only makes two seeds drawn in one thread differ further.
fn random_seed() -> u64 {
    let mut h = std::hash::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(nanos);
    h.finish()
}

/// Counters of a running tracker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackerServiceStats {
    /// Swarms (torrents with at least one peer) tracked now.
    pub swarms: usize,
    /// Peers registered now, over all swarms.
    pub peers: usize,
    /// HTTP requests answered (announces, scrapes and refusals such as `400`/`404`).
    pub http_requests: u64,
    /// UDP datagrams received and handed to the tracker (answered or dropped).
    pub udp_packets: u64,
}

/// What can go wrong when starting or running a tracker service.
#[derive(Debug, thiserror::Error)]
pub enum TrackerServiceError {
    /// The configuration cannot be served (see [`TrackerServiceConfig::validate`]).
    #[error("invalid tracker configuration: {0}")]
    Config(&'static str),
    /// A socket could not be bound or set up.
    #[error("cannot bind the {what} tracker socket on {addr}: {source}")]
    Bind {
        /// Which front: `"HTTP"` or `"UDP"`.
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// An OS resource (poller, waker, thread) could not be created.
    #[error("cannot start the tracker: {0}")]
    Start(io::Error),
    /// The event loop stopped on an I/O error before it was asked to.
    #[error("the tracker's event loop failed: {0}")]
    Loop(io::Error),
    /// The event loop's thread panicked.
    #[error("the tracker's event loop panicked")]
    Panicked,
}

/// The sockets of a tracker service, bound and non-blocking, ready for a driver's poller.
#[derive(Debug)]
pub struct BoundSockets {
    /// The HTTP listener and its actual address.
    pub http: Option<(TcpListener, SocketAddr)>,
    /// The UDP socket and its actual address.
    pub udp: Option<(UdpSocket, SocketAddr)>,
}

impl BoundSockets {
    /// Validates `config` and binds its sockets, so that address errors are reported by
    /// `start` rather than lost in the event loop's thread.
    pub fn bind(config: &TrackerServiceConfig) -> Result<BoundSockets, TrackerServiceError> {
        config.validate()?;
        let http = match config.http {
            Some(addr) => {
                let err = |source| TrackerServiceError::Bind {
                    what: "HTTP",
                    addr,
                    source,
                };
                let l = TcpListener::bind(addr).map_err(err)?;
                l.set_nonblocking(true).map_err(err)?;
                let local = l.local_addr().map_err(err)?;
                Some((l, local))
            }
            None => None,
        };
        let udp = match config.udp {
            Some(addr) => {
                let err = |source| TrackerServiceError::Bind {
                    what: "UDP",
                    addr,
                    source,
                };
                let s = UdpSocket::bind(addr).map_err(err)?;
                s.set_nonblocking(true).map_err(err)?;
                let local = s.local_addr().map_err(err)?;
                Some((s, local))
            }
            None => None,
        };
        Ok(BoundSockets { http, udp })
    }
}

/// A running service's counters, readable from any thread.
#[derive(Clone, Debug, Default)]
pub struct StatsHandle(Arc<Mutex<TrackerServiceStats>>);

impl StatsHandle {
    /// The counters now.
    pub fn get(&self) -> TrackerServiceStats {
        // The counters stay consistent even if a holder panicked: take them anyway.
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut TrackerServiceStats)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// The tracker as an event loop holds it: the core's [`TrackerServer`], the clock its
/// times come from, and the counters published to [`StatsHandle`]s. Counters are updated
/// before a reply is returned, so a client that got its answer sees itself counted.
#[derive(Debug)]
pub struct TrackerHost {
    server: TrackerServer,
    clock: Clock,
    stats: StatsHandle,
}

impl TrackerHost {
    /// A tracker with `config`'s server settings and seed, its clock starting now.
    pub fn new(config: &TrackerServiceConfig) -> TrackerHost {
        TrackerHost {
            server: TrackerServer::new(config.server.clone(), config.seed()),
            clock: Clock::start(),
            stats: StatsHandle::default(),
        }
    }

    /// A handle on the counters, for the service's owner.
    pub fn stats(&self) -> StatsHandle {
        self.stats.clone()
    }

    /// The core's server (for inspection, e.g. scrapes).
    pub fn server(&self) -> &TrackerServer {
        &self.server
    }

    /// Hands the bytes received so far on an HTTP connection from `source` to the core.
    pub fn handle_http(&mut self, request: &[u8], source: SocketAddr) -> HttpOutcome {
        let outcome = self
            .server
            .handle_http_request(request, source, self.clock.now());
        if matches!(outcome, HttpOutcome::Respond(_)) {
            self.publish(|s| s.http_requests += 1);
        }
        outcome
    }

    /// Hands one datagram from `source` to the core; returns the reply to send, if any.
    pub fn handle_udp(&mut self, packet: &[u8], source: SocketAddr) -> Option<Vec<u8>> {
        let reply = self
            .server
            .handle_udp_packet(packet, source, self.clock.now());
        self.publish(|s| s.udp_packets += 1);
        reply
    }

    /// Drops the peers that have been silent too long, if any are due; returns how many.
    pub fn expire(&mut self) -> usize {
        let now = self.clock.now();
        if self.server.next_expiry().is_none_or(|at| at > now) {
            return 0;
        }
        let dropped = self.server.expire(now);
        self.publish(|_| ());
        dropped
    }

    /// When [`TrackerHost::expire`] should next run: the next peer's expiry, but no later
    /// than [`MAX_SLEEP`] from now.
    pub fn next_wakeup(&self) -> StdInstant {
        let cap = StdInstant::now() + MAX_SLEEP;
        match self.server.next_expiry() {
            Some(at) => self.clock.to_std(at).min(cap),
            None => cap,
        }
    }

    /// Applies `f` to the counters and refreshes the swarm and peer counts.
    fn publish(&self, f: impl FnOnce(&mut TrackerServiceStats)) {
        let (swarms, peers) = (self.server.swarm_count(), self.server.peer_count());
        self.stats.update(|s| {
            f(s);
            s.swarms = swarms;
            s.peers = peers;
        });
    }
}

/// How many more request bytes to read on a connection holding `buffered` bytes. The core
/// answers `400` once [`MAX_HTTP_REQUEST`] bytes hold no complete head, so a request buffer
/// never grows past that; the result is at least 1 so a read never looks like end of file.
pub fn http_read_room(buffered: usize) -> usize {
    MAX_HTTP_REQUEST.saturating_sub(buffered).max(1)
}

/// What the mio and smol tracker services share once started: the bound addresses, the
/// counters, and the thread serving, with how to ask it to stop. Each runtime's
/// `TrackerService` derefs to it; dropping it stops and joins the thread.
pub struct ServiceHandle {
    http_addr: Option<SocketAddr>,
    udp_addr: Option<SocketAddr>,
    stats: StatsHandle,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
    stop: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for ServiceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackerService")
            .field("http_addr", &self.http_addr)
            .field("udp_addr", &self.udp_addr)
            .finish_non_exhaustive()
    }
}

impl ServiceHandle {
    /// Wraps a started service: `thread` serves until `stop` is called (and returns the
    /// loop's own failure, if it stopped on one).
    pub fn new(
        http_addr: Option<SocketAddr>,
        udp_addr: Option<SocketAddr>,
        stats: StatsHandle,
        thread: std::thread::JoinHandle<io::Result<()>>,
        stop: Box<dyn Fn() + Send + Sync>,
    ) -> Self {
        ServiceHandle {
            http_addr,
            udp_addr,
            stats,
            thread: Some(thread),
            stop,
        }
    }

    /// The address the HTTP front is bound to (the actual port when 0 was asked for).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The address the UDP front is bound to (the actual port when 0 was asked for).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// The counters now.
    pub fn stats(&self) -> TrackerServiceStats {
        self.stats.get()
    }

    /// Whether the service's thread still runs (it stops on shutdown, or when its loop
    /// failed; `stop_and_join` then reports why).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops serving, closes every socket and waits for the thread; returns the final
    /// counters, or why the loop had stopped on its own. Later calls return the counters.
    pub fn stop_and_join(&mut self) -> Result<TrackerServiceStats, TrackerServiceError> {
        let Some(thread) = self.thread.take() else {
            return Ok(self.stats.get());
        };
        (self.stop)();
        match thread.join() {
            Ok(Ok(())) => Ok(self.stats.get()),
            Ok(Err(e)) => Err(TrackerServiceError::Loop(e)),
            Err(_) => Err(TrackerServiceError::Panicked),
        }
    }
}

impl Drop for ServiceHandle {
    fn drop(&mut self) {
        // Nobody is left to hear about a failure.
        let _ = self.stop_and_join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_unservable_configs() {
        let mut c = TrackerServiceConfig::default();
        assert!(c.validate().is_ok());
        c.max_http_connections = 0;
        assert!(matches!(c.validate(), Err(TrackerServiceError::Config(_))));
        c = TrackerServiceConfig {
            http_timeout: Duration::ZERO,
            ..TrackerServiceConfig::default()
        };
        assert!(matches!(c.validate(), Err(TrackerServiceError::Config(_))));
        c = TrackerServiceConfig {
            http: None,
            udp: None,
            ..TrackerServiceConfig::default()
        };
        assert!(matches!(
            BoundSockets::bind(&c),
            Err(TrackerServiceError::Config(_))
        ));
    }

    #[test]
    fn seeds_differ_unless_fixed() {
        let mut c = TrackerServiceConfig::default();
        assert_ne!(c.seed(), c.seed());
        c.rng_seed = Some(7);
        assert_eq!(c.seed(), 7);
    }

    #[test]
    fn host_counts_requests_and_packets() {
        let mut host = TrackerHost::new(&TrackerServiceConfig {
            rng_seed: Some(1),
            ..TrackerServiceConfig::default()
        });
        let stats = host.stats();
        let src: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(
            host.handle_http(b"GET /announce", src),
            HttpOutcome::NeedMore
        );
        assert_eq!(stats.get().http_requests, 0);
        let req = b"GET /announce?info_hash=%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01&peer_id=-UC0001-aaaaaaaaaaaa&port=6881&uploaded=0&downloaded=0&left=5 HTTP/1.1\r\n\r\n";
        assert!(matches!(
            host.handle_http(req, src),
            HttpOutcome::Respond(_)
        ));
        assert_eq!(host.handle_udp(b"short", src), None);
        assert_eq!(
            stats.get(),
            TrackerServiceStats {
                swarms: 1,
                peers: 1,
                http_requests: 1,
                udp_packets: 1,
            }
        );
        assert_eq!(host.expire(), 0, "nobody is due yet");
        assert!(host.next_wakeup() <= StdInstant::now() + MAX_SLEEP);
    }

    #[test]
    fn read_room_is_bounded_and_never_zero() {
        assert_eq!(http_read_room(0), MAX_HTTP_REQUEST);
        assert_eq!(http_read_room(MAX_HTTP_REQUEST), 1);
        assert_eq!(http_read_room(MAX_HTTP_REQUEST + 5), 1);
    }
}
