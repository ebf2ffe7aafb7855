//! Tracker work a driver runs off its loop: the session's
//! [`unchoke_core::session::Action::Announce`] (an HTTP announce) and
//! [`unchoke_core::session::Action::Resolve`] (a UDP tracker's name) become an
//! [`AnnounceJob`] that carries everything it needs (the shared [`TrackerClient`] and what
//! to do); running it blocks and yields a [`Completion`] for the loop.
//!
//! No deadline lives here: the session times announces out on its own clock and ignores
//! late answers; a job only bounds each socket operation ([`OP_TIMEOUT`], or
//! [`SHUTDOWN_OP_TIMEOUT`] while shutting down) so its thread ends eventually.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use unchoke_core::session::TorrentId;
use unchoke_core::tracker::{AnnounceRequest, ResolveError, TrackerFailure};

use crate::disk::Completion;
use crate::tracker_client::TrackerClient;

/// Longest one step of a job (resolving, connecting, one write or read) may take. As long
/// as the session's default announce deadline: a step that outlasts it is answered too
/// late to matter, and the thread is free again.
pub const OP_TIMEOUT: Duration = Duration::from_secs(60);
/// The same for a job started while the client shuts down (`completed`, `stopped`): the
/// session stops waiting for its answer after `stopped_tracker_timeout` (3 s by default),
/// so the thread need not live much longer.
pub const SHUTDOWN_OP_TIMEOUT: Duration = Duration::from_secs(3);

/// What a job does.
#[derive(Debug)]
pub enum JobKind {
    /// Announce to an HTTP tracker.
    Announce {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker's URL.
        url: String,
        /// What to tell it.
        request: AnnounceRequest,
    },
    /// Resolve a UDP tracker's host name.
    Resolve {
        /// The name.
        host: String,
        /// The port to pair with each address.
        port: u16,
    },
}

/// One piece of tracker work to carry out.
#[derive(Debug)]
pub struct AnnounceJob {
    /// What to do.
    pub kind: JobKind,
    /// Started while the client shuts down: a short socket time-out (how long the close waits
    /// for the answer is the session's `stopped_tracker_timeout`).
    pub during_shutdown: bool,
    client: Arc<TrackerClient>,
}

impl AnnounceJob {
    pub(crate) fn new(client: Arc<TrackerClient>, kind: JobKind, during_shutdown: bool) -> Self {
        AnnounceJob {
            kind,
            during_shutdown,
            client,
        }
    }

    /// Runs the job (blocking: call it on a worker thread or through `smol::unblock`)
    /// and reports it for [`crate::SessionHost::completion`].
    pub fn run(self) -> Completion {
        let op_timeout = if self.during_shutdown {
            SHUTDOWN_OP_TIMEOUT
        } else {
            OP_TIMEOUT
        };
        match self.kind {
            JobKind::Announce {
                torrent,
                url,
                request,
            } => {
                let result = self.client.announce(&url, &request, op_timeout);
                Completion::Announced {
                    torrent,
                    url,
                    during_shutdown: self.during_shutdown,
                    result,
                }
            }
            JobKind::Resolve { host, port } => {
                let result: Result<Vec<SocketAddr>, ResolveError> =
                    self.client.resolve(&host, port, op_timeout);
                Completion::Resolved { host, port, result }
            }
        }
    }

    /// The completion to report if the job cannot even be started (no thread for it).
    pub fn failure(&self, why: &str) -> Completion {
        match &self.kind {
            JobKind::Announce { torrent, url, .. } => Completion::Announced {
                during_shutdown: self.during_shutdown,
                torrent: *torrent,
                url: url.clone(),
                result: Err(TrackerFailure::Io(why.to_string())),
            },
            JobKind::Resolve { host, port } => Completion::Resolved {
                host: host.clone(),
                port: *port,
                result: Err(ResolveError::Failed(why.to_string())),
            },
        }
    }
}
