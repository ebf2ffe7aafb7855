//! uTP, the uTorrent transport protocol (BEP 29), as a sans-IO state machine.
//!
//! uTP carries a BitTorrent peer connection over UDP with its own reliability (sequence
//! numbers, acknowledgements, selective ACKs, retransmission) and a delay-based congestion
//! control, LEDBAT, that yields to other traffic: it aims at 100 ms of queuing delay and
//! backs off before TCP flows on the same link notice.
//!
//! # What is here
//!
//! - [`packet`]: the packet codec (header, extension chain, selective ACK), typed errors,
//!   never a panic on any input.
//! - [`seq`]: 16-bit sequence arithmetic across the 65535 → 0 wrap.
//! - [`rtt`]: RFC 6298 round-trip and time-out estimation with exponential back-off.
//! - [`ledbat`]: the congestion window (slow start, LEDBAT's delay-proportional growth no
//!   faster than TCP's, halving on loss, one packet after a time-out).
//! - [`conn`]: [`UtpConnection`], one connection — handshake, in-order delivery through a
//!   bounded reorder buffer, selective ACKs sent and honoured, fast retransmit on three
//!   duplicate ACKs (or three selectively acknowledged packets after a hole), retransmission
//!   time-outs, receive-window advertisement and zero-window probes, Nagle-style coalescing
//!   into packets of up to [`UtpConfig::max_packet_size`], keep-alives, time-outs, FIN and
//!   RESET. Its invariants are written at the top of that module.
//!
//! Everything takes the caller's [`Instant`](crate::time::Instant); nothing reads a clock or
//! draws randomness (connection ids and the acceptor's first sequence number come from the
//! caller).
//!
//! ```
//! use unchoke_core::time::Instant;
//! use unchoke_core::utp::{Packet, UtpConfig, UtpConnection, UtpState};
//!
//! let now = Instant::ZERO;
//! let mut a = UtpConnection::connect(7, now, UtpConfig::default());
//! let syn = Packet::decode(&a.poll_transmit(now).unwrap()).unwrap();
//! let mut b = UtpConnection::accept(&syn, now, UtpConfig::default()).unwrap();
//! while let Some(d) = b.poll_transmit(now) {
//!     a.handle_datagram(&d, now).unwrap();
//! }
//! assert_eq!(a.state(), UtpState::Connected);
//! a.write(b"hello");
//! while let Some(d) = a.poll_transmit(now) {
//!     b.handle_datagram(&d, now).unwrap();
//! }
//! assert_eq!(b.recv().as_deref(), Some(&b"hello"[..]));
//! ```
//!
//! # Where it is used
//!
//! The session runs these connections as peer connections
//! (`core/src/session/utp_streams.rs`): it demultiplexes its one UDP socket by content
//! (UDP tracker replies by transaction, a valid uTP header here, bencoded dictionaries to
//! the DHT), keys streams by peer address and connection id, feeds their bytes through the
//! same handshake, extension protocol and MSE as TCP, and dials by
//! `SessionConfig::transport` (`Tcp`, `Utp`, or `Both`: uTP first, TCP on failure).
//!
//! # What is not here yet
//!
//! - No path-MTU discovery: packets are at most [`UtpConfig::max_packet_size`] (1,400
//!   bytes).
//! - One copy each way beyond the wire's: [`UtpConnection::write`] copies into the send
//!   buffer and the session copies delivered payloads into its receive buffer.

pub mod conn;
pub mod ledbat;
pub mod packet;
pub mod rtt;
mod send_queue;
pub mod seq;

pub use conn::{AcceptError, UtpConfig, UtpConnection, UtpState, UtpStats};
pub use packet::{Packet, PacketError, PacketType};
