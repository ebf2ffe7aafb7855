//! # unchoke-mio
//!
//! The `mio` driver of unchoke: runs the sans-IO core of `unchoke-core` over real sockets
//! and disk.
//!
//! - One thread runs `mio::Poll` over the listener and every peer socket; its timeout is
//!   the core's `poll_timeout`. Reads go into each connection's `BytesMut`, which the core
//!   splits blocks out of without copying; uploads are written vectored (header + block).
//! - Disk writes, disk reads and SHA-1 run on a small pool of worker threads that hand
//!   completions back through a queue and a `mio::Waker` (one wake per burst).
//! - The session's actions are carried out by `unchoke_driver::pump` through this driver's
//!   `Io` (`net.rs`); the loop only turns readiness into the host's inputs. Memory bounds,
//!   slow readers, admission and time-outs are the session's rules, not the loop's.
//! - Storage is `unchoke-storage`'s `FileStorage`; resume data is saved periodically and on
//!   [`ClientCore::shutdown`](unchoke_driver::ClientCore::shutdown), and trusted on restart only for files that did not change.
//!
//! ```no_run
//! use unchoke_mio::{AddTorrent, Client, ClientConfig};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let metainfo = unchoke_core::metainfo::Metainfo::from_bytes(&std::fs::read("a.torrent")?)?;
//! let mut client = Client::new(ClientConfig::default())?;
//! let mut add = AddTorrent::new(metainfo, "downloads");
//! add.peers.push("127.0.0.1:6881".parse()?);
//! let handle = client.add_torrent(add, &|_checked| {})?;
//! while !client.stats(handle.id)?.is_some_and(|s| s.complete) {
//!     std::thread::sleep(std::time::Duration::from_millis(200));
//! }
//! client.shutdown()?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod client;
mod conn;
mod disk;
mod event_loop;
mod handoff;
mod job_queue;
mod net;
mod tracker_server;

pub use client::Client;
pub use tracker_server::TrackerService;
// The configuration and the types of the public surface are shared with the smol driver.
pub use unchoke_driver::{
    AddTorrent, CheckReport, ClientConfig, ClientError, ClientEvent, ShutdownReport, TorrentHandle,
    default_resume_path,
};
// The tracker service's settings, counters and errors are shared with the smol driver.
pub use unchoke_driver::tracker_service::{
    TrackerServiceConfig, TrackerServiceError, TrackerServiceStats,
};
