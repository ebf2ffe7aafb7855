//! The tasks that move bytes for one peer socket: a reader that hands filled chunks of its
//! receive buffer to the session task (blocking while the task's bounded queue is full; the
//! session bounds download memory by not requesting), a writer that drains a queue of buffers with vectored
//! writes, and the non-blocking connect.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use smol::channel::{Receiver, Sender};
use smol::io::AsyncWriteExt;
use smol::{Async, Timer};
use unchoke_core::session::PeerGone;

/// Below this much free space the reader takes a fresh allocation.
const MIN_SPARE: usize = 16 * 1024;
/// Most buffers handed to one vectored write.
const MAX_IOVECS: usize = 64;

/// Identifies a socket inside the session task (also before the session knows it).
pub(crate) type Token = u64;

/// What the socket tasks tell the session task.
pub(crate) enum NetEvent {
    /// A peer dialled us.
    Accepted {
        stream: Async<TcpStream>,
        addr: SocketAddr,
    },
    /// Our dial finished.
    Connected {
        token: Token,
        result: io::Result<Async<TcpStream>>,
    },
    /// Bytes arrived (a chunk split off the reader's buffer: no copy).
    Data { token: Token, data: BytesMut },
    /// The socket is finished.
    Closed { token: Token, reason: PeerGone },
}

/// Reads until the socket ends, sending each chunk to the session task.
pub(crate) async fn read_loop(token: Token, stream: Arc<Async<TcpStream>>, net: Sender<NetEvent>) {
    let mut buf = BytesMut::new();
    // Grows while the peer streams to us (see `ReadSize`), as in the mio driver.
    let mut read_size = unchoke_driver::ReadSize::default();
    let reason = loop {
        let want = read_size.next();
        if buf.capacity() - buf.len() < MIN_SPARE {
            buf.reserve(want);
        }
        let asked = want.min(buf.capacity() - buf.len());
        // Straight into the spare capacity (no zero-fill), as in the mio driver.
        match stream
            .read_with(|s| unchoke_driver::recv_into(s, &mut buf, asked))
            .await
        {
            Ok(0) => break PeerGone::HungUp,
            Ok(n) => {
                read_size.observe(asked, n);
                let data = buf.split();
                if net.send(NetEvent::Data { token, data }).await.is_err() {
                    return; // the session task is gone
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break PeerGone::ReadFailed(e.kind()),
        }
    };
    let _ = net.send(NetEvent::Closed { token, reason }).await;
}

/// Writes everything queued, vectored, until the queue is closed (then the socket is
/// dropped) or a write fails (reported as `Closed`). What each write took goes to `sent`
/// (unbounded, so the writer never waits on the session task), for `handle_sent`.
pub(crate) async fn write_loop(
    token: Token,
    stream: Arc<Async<TcpStream>>,
    queue: Receiver<Bytes>,
    sent: Sender<(Token, usize)>,
    net: Sender<NetEvent>,
) {
    let mut pending: VecDeque<Bytes> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match queue.recv().await {
                Ok(b) => pending.push_back(b),
                Err(_) => return, // closed: we are told to go
            }
        }
        while pending.len() < MAX_IOVECS {
            match queue.try_recv() {
                Ok(b) => pending.push_back(b),
                Err(_) => break,
            }
        }
        let slices: Vec<IoSlice<'_>> = pending.iter().map(|b| IoSlice::new(b)).collect();
        let written = (&*stream).write_vectored(&slices).await;
        drop(slices);
        match written {
            Ok(0) => break,
            Ok(mut n) => {
                let _ = sent.try_send((token, n));
                while n > 0 {
                    let Some(front) = pending.front_mut() else {
                        break;
                    };
                    if front.len() <= n {
                        n -= front.len();
                        pending.pop_front();
                    } else {
                        front.advance(n);
                        n = 0;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = net
        .send(NetEvent::Closed {
            token,
            reason: PeerGone::WriteFailed,
        })
        .await;
}

/// Dials `addr` from `bind_ip` and reports the outcome. No time-out here: the session
/// decides when a dial has taken too long and the task is dropped.
pub(crate) async fn connect(
    token: Token,
    addr: SocketAddr,
    bind_ip: Option<IpAddr>,
    net: Sender<NetEvent>,
) {
    let result = async {
        let stream = Async::new(unchoke_driver::connect_nonblocking(addr, bind_ip)?)?;
        // A non-blocking connect completes when the socket turns writable.
        stream.writable().await?;
        if let Some(e) = stream.get_ref().take_error()? {
            return Err(e);
        }
        stream.get_ref().peer_addr()?;
        let _ = stream.get_ref().set_nodelay(true);
        Ok(stream)
    }
    .await;
    let _ = net.send(NetEvent::Connected { token, result }).await;
}

/// Accepts connections until the listener fails or the session task goes away.
pub(crate) async fn accept_loop(listener: Async<std::net::TcpListener>, net: Sender<NetEvent>) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.get_ref().set_nodelay(true);
                if net.send(NetEvent::Accepted { stream, addr }).await.is_err() {
                    return;
                }
            }
            // A connection reset before accept, or out of descriptors: keep listening, but
            // not in a hot loop.
            Err(_) => {
                Timer::after(Duration::from_millis(50)).await;
            }
        }
    }
}
