//! # unchoke-smol
//!
//! The `smol` driver of unchoke: the same core and the same public surface as
//! `unchoke-mio`, on async tasks.
//!
//! - One session task, on a thread of its own, owns the core's `Session`; the socket tasks
//!   run on the same thread (a `LocalExecutor`), so no hand-off crosses threads. Per peer socket
//!   (`Async<TcpStream>`) a reader task hands filled chunks of its receive buffer to the
//!   session task (no copy) over a bounded channel, and a writer task drains a queue of
//!   buffers with vectored writes (uploads: header + block, never concatenated).
//! - The core's deadline is a `smol::Timer`; SHA-1 and resume saves run through
//!   `smol::unblock`; block reads go in batches, block writes in merged batches with one
//!   batch in flight at a time.
//! - The session's actions are carried out by `unchoke_driver::pump` through this driver's
//!   `Io` (`task_io.rs`); the session task only turns socket events, completions and
//!   commands into the host's inputs. Memory bounds, slow readers, admission and time-outs
//!   are the session's rules: it stops requesting, and the readers keep reading.
//! - Configuration, the start-up check, disk jobs and the public types are shared with the
//!   mio driver through `unchoke-driver`.
#![warn(missing_docs)]

mod client;
mod peer_io;
mod session_task;
mod task_io;
mod tracker_server;

pub use client::Client;
pub use tracker_server::TrackerService;
pub use unchoke_driver::tracker_service::{
    TrackerServiceConfig, TrackerServiceError, TrackerServiceStats,
};
pub use unchoke_driver::{
    AddTorrent, CheckReport, ClientConfig, ClientError, ClientEvent, ShutdownReport, TorrentHandle,
    default_resume_path,
};
