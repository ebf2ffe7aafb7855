//! One peer socket: its receive buffer (kept between reads, as the core asks) and its queue
//! of outgoing buffers written vectored.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};
use mio::net::TcpStream;
use unchoke_core::session::{ConnId, TorrentId};

/// Below this much free space the buffer gets a fresh allocation before reading.
const MIN_SPARE: usize = 16 * 1024;
/// Most buffers handed to one `writev`.
const MAX_IOVECS: usize = 64;

/// Where a socket is in its life.
#[derive(Debug)]
pub(crate) enum ConnState {
    /// Our non-blocking connect is in progress.
    /// The session decides when it has taken too long ([`unchoke_core::session::Action::CancelConnect`]).
    Connecting { torrent: TorrentId },
    /// Known to the session.
    Open(ConnId),
}

/// A peer socket and its buffers.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) addr: SocketAddr,
    pub(crate) state: ConnState,
    /// The socket may have more to read (mio is edge-triggered: we read until `WouldBlock`).
    pub(crate) read_ready: bool,
    recv: BytesMut,
    /// How much the next read asks for (grows while the peer streams to us).
    read_size: unchoke_driver::ReadSize,
    send: VecDeque<Bytes>,
}

/// What a read attempt found.
pub(crate) enum ReadOutcome {
    /// This many bytes were appended to the receive buffer.
    Data(usize),
    /// Nothing now; wait for the next readable event.
    WouldBlock,
    /// The peer closed its side, or the socket failed (the session needs no detail).
    Closed,
}

impl Conn {
    /// A socket, not yet reading.
    pub(crate) fn new(stream: TcpStream, addr: SocketAddr, state: ConnState) -> Self {
        Conn {
            stream,
            addr,
            state,
            read_ready: false,
            recv: BytesMut::new(),
            read_size: unchoke_driver::ReadSize::default(),
            send: VecDeque::new(),
        }
    }

    /// The session's id for this connection, once open.
    pub(crate) fn conn_id(&self) -> Option<ConnId> {
        match self.state {
            ConnState::Open(id) => Some(id),
            ConnState::Connecting { .. } => None,
        }
    }

    /// The buffer the session consumes messages from.
    pub(crate) fn recv_buf(&mut self) -> &mut BytesMut {
        &mut self.recv
    }

    /// One `read` into the receive buffer (straight into its spare capacity, see
    /// [`unchoke_driver::recv_into`]).
    pub(crate) fn read_once(&mut self) -> ReadOutcome {
        let want = self.read_size.next();
        if self.recv.capacity() - self.recv.len() < MIN_SPARE {
            // When blocks split from the old allocation are still alive, this allocates
            // anew and moves only the unconsumed tail (a partial message).
            self.recv.reserve(want);
        }
        let asked = want.min(self.recv.capacity() - self.recv.len());
        match unchoke_driver::recv_into(&self.stream, &mut self.recv, asked) {
            Ok(0) => ReadOutcome::Closed,
            Ok(n) => {
                self.read_size.observe(asked, n);
                ReadOutcome::Data(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ReadOutcome::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => ReadOutcome::Data(0),
            Err(_) => ReadOutcome::Closed,
        }
    }

    /// Queues a buffer; call [`Conn::flush`] to write.
    pub(crate) fn queue(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.send.push_back(data);
        }
    }

    /// Writes as much of the queue as the kernel takes, vectored, and says how much it took
    /// (for the session's `handle_sent`). `Ok` also when the kernel is full (the writable
    /// event will bring us back).
    pub(crate) fn flush(&mut self) -> io::Result<usize> {
        let mut written = 0;
        while !self.send.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (slot, buf) in slices.iter_mut().zip(self.send.iter()) {
                *slot = IoSlice::new(buf);
                count += 1;
            }
            match self.stream.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    self.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(written),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    /// Drops `n` written bytes from the front of the queue.
    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.send.front_mut() else {
                return;
            };
            if front.len() <= n {
                n -= front.len();
                self.send.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
}
