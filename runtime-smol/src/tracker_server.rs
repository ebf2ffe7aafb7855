//! Serving the tracker over HTTP and UDP with `smol`: on a thread of its own, a
//! `LocalExecutor` runs an accept task, one task per HTTP connection, a UDP task and an
//! expiry timer task, all sharing the core's `TrackerServer` (through [`TrackerHost`]) in
//! an `Rc<RefCell<…>>` — never borrowed across an `.await`. What to answer is the core's
//! decision; these tasks only move bytes.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::rc::{Rc, Weak};
use std::time::Duration;

use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, LocalExecutor, Task, Timer};
use unchoke_core::tracker::server::HttpOutcome;
use unchoke_driver::tracker_service::{
    BURST, BoundSockets, HTTP_LINGER, HTTP_LINGER_MAX_BYTES, ServiceHandle, TrackerHost,
    TrackerServiceConfig, TrackerServiceError, TrackerServiceStats, UDP_BUFFER, http_read_room,
};

/// How long to wait before accepting again after `accept` failed for want of resources
/// (too many open files): long enough not to spin, short enough to barely be noticed.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// A tracker served over real sockets by `smol` tasks on a thread of its own.
///
/// ```no_run
/// use unchoke_smol::{TrackerService, TrackerServiceConfig};
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
        let mut http_addr = None;
        let mut listener = None;
        if let Some((l, addr)) = sockets.http {
            let l = Async::new(l).map_err(|source| TrackerServiceError::Bind {
                what: "HTTP",
                addr,
                source,
            })?;
            listener = Some(l);
            http_addr = Some(addr);
        }
        let mut udp_addr = None;
        let mut udp = None;
        if let Some((s, addr)) = sockets.udp {
            let s = Async::new(s).map_err(|source| TrackerServiceError::Bind {
                what: "UDP",
                addr,
                source,
            })?;
            udp = Some(s);
            udp_addr = Some(addr);
        }
        let host = TrackerHost::new(&config);
        let stats = host.stats();
        let limits = Limits {
            max_conns: config.max_http_connections,
            timeout: config.http_timeout,
        };
        let (stop, stopped) = smol::channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("unchoke-tracker".into())
            .spawn(move || {
                let ex = Rc::new(LocalExecutor::new());
                smol::block_on(ex.run(serve(ex.clone(), host, listener, udp, limits, stopped)));
                // Dropping the executor drops every task still pending, closing their
                // sockets before the thread (and so `shutdown`) ends.
                Ok(())
            })
            .map_err(TrackerServiceError::Start)?;
        // Closing the channel ends the executor's main future.
        let ask_stop = move || {
            stop.close();
        };
        Ok(TrackerService(ServiceHandle::new(
            http_addr,
            udp_addr,
            stats,
            thread,
            Box::new(ask_stop),
        )))
    }

    /// Stops serving, closes every socket and waits for the service's thread; returns the
    /// final counters.
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

/// The HTTP limits from the configuration.
#[derive(Clone, Copy, Debug)]
struct Limits {
    max_conns: usize,
    timeout: Duration,
}

type SharedHost = Rc<RefCell<TrackerHost>>;

/// The executor's main future: starts the tasks and runs until `stopped` closes. The
/// tasks are cancelled when their handles drop at its end.
async fn serve(
    ex: Rc<LocalExecutor<'static>>,
    host: TrackerHost,
    listener: Option<Async<TcpListener>>,
    udp: Option<Async<UdpSocket>>,
    limits: Limits,
    stopped: smol::channel::Receiver<()>,
) {
    let host = Rc::new(RefCell::new(host));
    let mut tasks: Vec<Task<()>> = vec![ex.spawn(expire_loop(host.clone()))];
    if let Some(listener) = listener {
        // Weak: the executor owns this task, and a strong reference back would keep the
        // executor (and every socket its tasks hold) alive after the thread's end.
        let weak = Rc::downgrade(&ex);
        tasks.push(ex.spawn(accept_loop(weak, host.clone(), listener, limits)));
    }
    if let Some(socket) = udp {
        tasks.push(ex.spawn(udp_loop(host.clone(), socket)));
    }
    // Returns when the service's sender closes (or is dropped).
    let _ = stopped.recv().await;
    drop(tasks);
}

/// Drops silent peers when they are due (waking at least every `MAX_SLEEP` so a peer
/// registered in between is never missed by long).
async fn expire_loop(host: SharedHost) {
    loop {
        let at = host.borrow().next_wakeup();
        Timer::at(at).await;
        host.borrow_mut().expire();
    }
}

/// Accepts connections and starts a task for each, closing the oldest when
/// `limits.max_conns` are open: a new client is more likely to be a live announce than
/// one that has been idle longest.
async fn accept_loop(
    ex: Weak<LocalExecutor<'static>>,
    host: SharedHost,
    listener: Async<TcpListener>,
    limits: Limits,
) {
    // Connection tasks by arrival; dropping a handle cancels the task and its socket.
    let mut conns: BTreeMap<u64, Task<()>> = BTreeMap::new();
    let mut next_id = 0u64;
    let mut burst = 0;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                conns.retain(|_, task| !task.is_finished());
                while conns.len() >= limits.max_conns {
                    conns.pop_first();
                }
                // The executor outlives its tasks; if it is gone, so is the service.
                let Some(ex) = ex.upgrade() else {
                    return;
                };
                let task = ex.spawn(serve_http(host.clone(), stream, peer, limits.timeout));
                conns.insert(next_id, task);
                next_id += 1;
            }
            Err(e) => match e.kind() {
                ErrorKind::Interrupted
                | ErrorKind::ConnectionAborted
                | ErrorKind::ConnectionReset => {}
                // Out of file descriptors or memory: free one and try again shortly.
                _ => {
                    conns.pop_first();
                    Timer::after(ACCEPT_RETRY).await;
                }
            },
        }
        // An accept that is always ready never yields: let the other tasks run.
        burst += 1;
        if burst >= BURST {
            burst = 0;
            smol::future::yield_now().await;
        }
    }
}

/// One HTTP exchange: read the request (within `timeout`), write the response (within
/// `timeout`), half-close, and linger until the client closes (see [`HTTP_LINGER`]).
async fn serve_http(
    host: SharedHost,
    mut stream: Async<TcpStream>,
    peer: SocketAddr,
    timeout: Duration,
) {
    let response = read_request(&host, &mut stream, peer)
        .or(async {
            Timer::after(timeout).await;
            None
        })
        .await;
    let Some(out) = response else {
        return;
    };
    let sent = async { stream.write_all(&out).await.is_ok() }
        .or(async {
            Timer::after(timeout).await;
            false
        })
        .await;
    if !sent {
        return;
    }
    // Half-close so the client sees the end of the response.
    let _ = stream.get_ref().shutdown(Shutdown::Write);
    linger(&mut stream)
        .or(async {
            Timer::after(timeout.min(HTTP_LINGER)).await;
        })
        .await;
}

/// Reads until the core has an answer; `None` if the client closed or failed first.
async fn read_request(
    host: &RefCell<TrackerHost>,
    stream: &mut Async<TcpStream>,
    peer: SocketAddr,
) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    loop {
        let len = buf.len();
        buf.resize(len + http_read_room(len), 0);
        let read = stream.read(&mut buf[len..]).await;
        buf.truncate(len + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => return None,
            Ok(_) => {
                if let HttpOutcome::Respond(out) = host.borrow_mut().handle_http(&buf, peer) {
                    return Some(out);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Discards what the client still sends until it closes, up to
/// [`HTTP_LINGER_MAX_BYTES`].
async fn linger(stream: &mut Async<TcpStream>) {
    let mut scratch = [0u8; 4096];
    let mut discarded = 0;
    while discarded <= HTTP_LINGER_MAX_BYTES {
        match stream.read(&mut scratch).await {
            Ok(0) => return,
            Ok(n) => discarded += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Answers datagrams. A reply that does not fit the socket's send buffer right now is
/// dropped rather than waited for: the client retransmits.
async fn udp_loop(host: SharedHost, socket: Async<UdpSocket>) {
    let mut buf = vec![0u8; UDP_BUFFER];
    let mut burst = 0;
    loop {
        let received = socket.recv_from(&mut buf).await;
        match received {
            Ok((n, source)) => {
                let reply = host.borrow_mut().handle_udp(&buf[..n], source);
                if let Some(reply) = reply {
                    let _ = socket.get_ref().send_to(&reply, source);
                }
            }
            // Errors queued on the socket (ICMP reports of earlier replies) concern one
            // datagram each: skip them, but let the other tasks run in case they repeat.
            Err(_) => burst = BURST,
        }
        // A socket that is always readable never yields: let the other tasks run.
        burst += 1;
        if burst >= BURST {
            burst = 0;
            smol::future::yield_now().await;
        }
    }
}
