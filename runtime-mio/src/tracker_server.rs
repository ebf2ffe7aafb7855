//! Serving the tracker over HTTP and UDP with `mio`: one thread polls the HTTP listener,
//! every HTTP connection, the UDP socket and a waker, and sleeps until the next socket
//! event, connection deadline or peer expiry. What to answer is decided by the core's
//! `TrackerServer` (through [`TrackerHost`]); this loop only moves bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant as StdInstant};

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use unchoke_core::tracker::server::HttpOutcome;
use unchoke_driver::tracker_service::{
    BURST, BoundSockets, HTTP_LINGER, HTTP_LINGER_MAX_BYTES, ServiceHandle, TrackerHost,
    TrackerServiceConfig, TrackerServiceError, TrackerServiceStats, UDP_BUFFER, http_read_room,
};

const WAKER: Token = Token(0);
const LISTENER: Token = Token(1);
const UDP: Token = Token(2);
/// Connection tokens count up from here, so a smaller token is an older connection.
const FIRST_CONN: usize = 3;

/// How long to wait before accepting again after `accept` failed for want of resources
/// (too many open files): long enough not to spin, short enough to barely be noticed.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// A tracker served over real sockets by a `mio` event loop on a thread of its own.
///
/// ```no_run
/// use unchoke_mio::{TrackerService, TrackerServiceConfig};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let service = TrackerService::start(TrackerServiceConfig::default())?;
/// println!("announce to http://{}/announce", service.http_addr().ok_or("no http")?);
/// std::thread::sleep(std::time::Duration::from_secs(60));
/// let stats = service.shutdown()?;
/// println!("{} peers in {} swarms", stats.peers, stats.swarms);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TrackerService(ServiceHandle);

impl TrackerService {
    /// Binds the configured sockets and starts serving on a new thread. Address and
    /// configuration errors are returned here, not discovered later.
    pub fn start(config: TrackerServiceConfig) -> Result<TrackerService, TrackerServiceError> {
        let sockets = BoundSockets::bind(&config)?;
        let http_addr = sockets.http.as_ref().map(|(_, a)| *a);
        let udp_addr = sockets.udp.as_ref().map(|(_, a)| *a);
        let host = TrackerHost::new(&config);
        let stats = host.stats();
        let poll = Poll::new().map_err(TrackerServiceError::Start)?;
        let waker =
            Arc::new(Waker::new(poll.registry(), WAKER).map_err(TrackerServiceError::Start)?);
        let event_loop = EventLoop::new(poll, host, sockets, &config)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("unchoke-tracker".into())
            .spawn(move || event_loop.run(&thread_stop))
            .map_err(TrackerServiceError::Start)?;
        let ask_stop = move || {
            stop.store(true, Ordering::Release);
            // If waking fails the loop still sees the flag within its longest sleep.
            let _ = waker.wake();
        };
        Ok(TrackerService(ServiceHandle::new(
            http_addr,
            udp_addr,
            stats,
            thread,
            Box::new(ask_stop),
        )))
    }

    /// Stops serving, closes every socket and waits for the loop's thread; returns the
    /// final counters, or why the loop had stopped on its own.
    pub fn shutdown(mut self) -> Result<TrackerServiceStats, TrackerServiceError> {
        self.0.stop_and_join()
    }
}

impl std::ops::Deref for TrackerService {
    type Target = ServiceHandle;
    fn deref(&self) -> &ServiceHandle {
        &self.0
    }
}

/// Where one HTTP connection is.
#[derive(Debug)]
enum Phase {
    /// Collecting the request.
    Reading(Vec<u8>),
    /// Sending the response: all of `out`, `sent` bytes so far.
    Writing { out: Vec<u8>, sent: usize },
    /// Response sent and our side half-closed: discarding what the client still sends
    /// until it closes (see [`HTTP_LINGER`]).
    Lingering { discarded: usize },
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    phase: Phase,
    /// When the connection is closed whatever its phase.
    deadline: StdInstant,
}

impl Conn {
    /// Reads, answers and writes as far as the socket allows without blocking. Returns
    /// whether the connection stays open.
    fn advance(&mut self, host: &mut TrackerHost, timeout: Duration) -> bool {
        loop {
            match &mut self.phase {
                Phase::Reading(buf) => {
                    let len = buf.len();
                    buf.resize(len + http_read_room(len), 0);
                    let read = self.stream.read(&mut buf[len..]);
                    buf.truncate(len + *read.as_ref().unwrap_or(&0));
                    match read {
                        // Closed before the request was complete: nothing to answer.
                        Ok(0) => return false,
                        Ok(_) => {
                            if let HttpOutcome::Respond(out) = host.handle_http(buf, self.peer) {
                                self.phase = Phase::Writing { out, sent: 0 };
                                self.deadline = StdInstant::now() + timeout;
                            }
                        }
                        Err(e) => match e.kind() {
                            ErrorKind::WouldBlock => return true,
                            ErrorKind::Interrupted => {}
                            _ => return false,
                        },
                    }
                }
                Phase::Writing { out, sent } => match self.stream.write(&out[*sent..]) {
                    Ok(0) => return false,
                    Ok(n) => {
                        *sent += n;
                        if *sent >= out.len() {
                            // Half-close so the client sees the end of the response.
                            let _ = self.stream.shutdown(Shutdown::Write);
                            self.phase = Phase::Lingering { discarded: 0 };
                            self.deadline = StdInstant::now() + timeout.min(HTTP_LINGER);
                        }
                    }
                    Err(e) => match e.kind() {
                        ErrorKind::WouldBlock => return true,
                        ErrorKind::Interrupted => {}
                        _ => return false,
                    },
                },
                Phase::Lingering { discarded } => {
                    let mut scratch = [0u8; 4096];
                    match self.stream.read(&mut scratch) {
                        Ok(0) => return false,
                        Ok(n) => {
                            *discarded += n;
                            if *discarded > HTTP_LINGER_MAX_BYTES {
                                return false;
                            }
                        }
                        Err(e) => match e.kind() {
                            ErrorKind::WouldBlock => return true,
                            ErrorKind::Interrupted => {}
                            _ => return false,
                        },
                    }
                }
            }
        }
    }
}

/// The loop's whole state; lives on the loop's thread.
struct EventLoop {
    poll: Poll,
    host: TrackerHost,
    listener: Option<TcpListener>,
    udp: Option<UdpSocket>,
    /// Open HTTP connections by token; tokens only grow, so the first is the oldest.
    conns: BTreeMap<usize, Conn>,
    /// Every connection's deadline, soonest first.
    deadlines: BTreeSet<(StdInstant, usize)>,
    next_token: usize,
    max_conns: usize,
    timeout: Duration,
    /// The listener may hold more connections (a burst ended before `WouldBlock`).
    accept_ready: bool,
    /// Don't accept before this (after running out of file descriptors).
    accept_retry_at: Option<StdInstant>,
    /// The UDP socket may hold more datagrams.
    udp_ready: bool,
    udp_buf: Vec<u8>,
}

impl EventLoop {
    fn new(
        poll: Poll,
        host: TrackerHost,
        sockets: BoundSockets,
        config: &TrackerServiceConfig,
    ) -> Result<EventLoop, TrackerServiceError> {
        let mut listener = None;
        if let Some((l, addr)) = sockets.http {
            let mut l = TcpListener::from_std(l);
            poll.registry()
                .register(&mut l, LISTENER, Interest::READABLE)
                .map_err(|source| TrackerServiceError::Bind {
                    what: "HTTP",
                    addr,
                    source,
                })?;
            listener = Some(l);
        }
        let mut udp = None;
        if let Some((s, addr)) = sockets.udp {
            let mut s = UdpSocket::from_std(s);
            poll.registry()
                .register(&mut s, UDP, Interest::READABLE)
                .map_err(|source| TrackerServiceError::Bind {
                    what: "UDP",
                    addr,
                    source,
                })?;
            udp = Some(s);
        }
        Ok(EventLoop {
            poll,
            host,
            listener,
            udp,
            conns: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            next_token: FIRST_CONN,
            max_conns: config.max_http_connections,
            timeout: config.http_timeout,
            // Sockets bound before registration may already hold work.
            accept_ready: true,
            accept_retry_at: None,
            udp_ready: true,
            udp_buf: vec![0; UDP_BUFFER],
        })
    }

    fn run(mut self, stop: &AtomicBool) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut ready = Vec::new();
        while !stop.load(Ordering::Acquire) {
            let timeout = self.poll_timeout(StdInstant::now());
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if stop.load(Ordering::Acquire) {
                break;
            }
            ready.clear();
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    LISTENER => self.accept_ready = true,
                    UDP => self.udp_ready = true,
                    Token(key) => ready.push(key),
                }
            }
            if self.udp_ready {
                self.serve_udp();
            }
            for &key in &ready {
                self.drive(key);
            }
            let now = StdInstant::now();
            if self.accept_ready && self.accept_retry_at.is_none_or(|at| at <= now) {
                self.accept(now);
            }
            self.close_overdue(StdInstant::now());
            self.host.expire();
        }
        Ok(())
    }

    /// How long `poll` may sleep: not at all while a socket may hold more work, else
    /// until the first connection deadline, accept retry or peer expiry.
    fn poll_timeout(&self, now: StdInstant) -> Duration {
        let accept_now = self.accept_ready && self.accept_retry_at.is_none_or(|at| at <= now);
        if self.udp_ready || accept_now {
            return Duration::ZERO;
        }
        let mut wake = self.host.next_wakeup();
        if let Some(&(deadline, _)) = self.deadlines.first() {
            wake = wake.min(deadline);
        }
        if let Some(at) = self.accept_retry_at {
            wake = wake.min(at);
        }
        wake.saturating_duration_since(now)
    }

    /// Answers up to [`BURST`] datagrams. A reply that does not fit the socket's send
    /// buffer right now is dropped rather than waited for: the client retransmits.
    fn serve_udp(&mut self) {
        let Some(socket) = &self.udp else {
            self.udp_ready = false;
            return;
        };
        for _ in 0..BURST {
            match socket.recv_from(&mut self.udp_buf) {
                Ok((n, source)) => {
                    if let Some(reply) = self.host.handle_udp(&self.udp_buf[..n], source) {
                        let _ = socket.send_to(&reply, source);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.udp_ready = false;
                    return;
                }
                // Errors queued on the socket (ICMP reports of earlier replies) concern
                // one datagram each; the burst bound keeps this finite.
                Err(_) => {}
            }
        }
    }

    /// Accepts up to [`BURST`] connections.
    fn accept(&mut self, now: StdInstant) {
        self.accept_retry_at = None;
        for _ in 0..BURST {
            let accepted = match &self.listener {
                Some(l) => l.accept(),
                None => {
                    self.accept_ready = false;
                    return;
                }
            };
            match accepted {
                Ok((stream, peer)) => self.admit(stream, peer, now),
                Err(e) => match e.kind() {
                    ErrorKind::WouldBlock => {
                        self.accept_ready = false;
                        return;
                    }
                    ErrorKind::Interrupted
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::ConnectionReset => {}
                    // Out of file descriptors or memory: free one and try again shortly.
                    _ => {
                        self.close_oldest();
                        self.accept_retry_at = Some(now + ACCEPT_RETRY);
                        return;
                    }
                },
            }
        }
    }

    /// Takes in a new connection, closing the oldest one if the limit is reached: a new
    /// client is more likely to be a live announce than one that has been idle longest.
    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, now: StdInstant) {
        while self.conns.len() >= self.max_conns {
            self.close_oldest();
        }
        let key = self.next_token;
        self.next_token = self.next_token.wrapping_add(1).max(FIRST_CONN);
        // Edge-triggered: the first write normally succeeds at once; WRITABLE is what
        // wakes a response that had to wait for buffer space.
        if self
            .poll
            .registry()
            .register(
                &mut stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            return;
        }
        let deadline = now + self.timeout;
        self.deadlines.insert((deadline, key));
        self.conns.insert(
            key,
            Conn {
                stream,
                peer,
                phase: Phase::Reading(Vec::new()),
                deadline,
            },
        );
    }

    fn drive(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        let before = conn.deadline;
        let alive = conn.advance(&mut self.host, self.timeout);
        let after = conn.deadline;
        // The index must follow the deadline before `close` looks the entry up by it.
        if after != before {
            self.deadlines.remove(&(before, key));
            self.deadlines.insert((after, key));
        }
        if !alive {
            self.close(key);
        }
    }

    fn close_overdue(&mut self, now: StdInstant) {
        while let Some(&(deadline, key)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            // Removed here too, so a stale entry can never stall this loop.
            self.deadlines.pop_first();
            self.close(key);
        }
    }

    fn close_oldest(&mut self) {
        if let Some(&key) = self.conns.keys().next() {
            self.close(key);
        }
    }

    fn close(&mut self, key: usize) {
        if let Some(mut conn) = self.conns.remove(&key) {
            self.deadlines.remove(&(conn.deadline, key));
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
    }
}
