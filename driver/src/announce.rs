//! Tracker announces as jobs a driver runs off its loop: the session's
//! [`unchoke_core::session::Action::Announce`] becomes an [`AnnounceJob`] that carries
//! everything it needs (the shared [`TrackerClient`], the URL, the request and a time
//! limit); running it blocks (name resolution included) and yields a [`Completion`] for
//! the loop.

use std::sync::Arc;
use std::time::Duration;

use unchoke_core::session::TorrentId;
use unchoke_core::tracker::AnnounceRequest;

use crate::disk::Completion;
use crate::tracker_client::TrackerClient;

/// Time allowed for a regular announce. Over UDP this covers the first transmission and
/// BEP 15's retransmissions at 15 s and 45 s; a tracker slower than that has failed, and
/// the session's announcer moves on to the next one.
pub const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(60);
/// Socket time-out of an announce made while shutting down (`completed`, `stopped`), so
/// the blocking exchange does not outlive the exit for long. How long the close waits for
/// the answer is the session's decision (`SessionConfig::stopped_timeout`).
pub const STOPPED_TIMEOUT: Duration = Duration::from_secs(3);

/// One announce to carry out.
#[derive(Debug)]
pub struct AnnounceJob {
    /// The torrent.
    pub torrent: TorrentId,
    /// The tracker's URL.
    pub url: String,
    /// What to tell it.
    pub request: AnnounceRequest,
    /// Started while the client shuts down: a short socket time-out.
    pub during_shutdown: bool,
    client: Arc<TrackerClient>,
}

impl AnnounceJob {
    pub(crate) fn new(
        client: Arc<TrackerClient>,
        torrent: TorrentId,
        url: String,
        request: AnnounceRequest,
        during_shutdown: bool,
    ) -> Self {
        AnnounceJob {
            torrent,
            url,
            request,
            during_shutdown,
            client,
        }
    }

    /// How long the exchange may take in all.
    pub fn timeout(&self) -> Duration {
        if self.during_shutdown {
            STOPPED_TIMEOUT
        } else {
            ANNOUNCE_TIMEOUT
        }
    }

    /// Runs the exchange (blocking: call it on a worker thread or through
    /// `smol::unblock`) and reports it for [`crate::SessionHost::completion`].
    pub fn run(self) -> Completion {
        let result = self
            .client
            .announce(&self.url, &self.request, self.timeout())
            .map_err(|e| e.to_string());
        Completion::Announced {
            torrent: self.torrent,
            url: self.url,
            during_shutdown: self.during_shutdown,
            result,
        }
    }

    /// The completion to report if the job cannot even be started (no thread for it).
    pub fn failure(&self, why: &str) -> Completion {
        Completion::Announced {
            during_shutdown: self.during_shutdown,
            torrent: self.torrent,
            url: self.url.clone(),
            result: Err(why.to_string()),
        }
    }
}
