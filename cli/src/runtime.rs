//! The `--runtime` choice: which driver runs a client or a tracker. Both drivers give the
//! same surface, so each command picks one here and does not care afterwards.

use std::net::SocketAddr;

use unchoke_driver::tracker_service::{
    TrackerServiceConfig, TrackerServiceError, TrackerServiceStats,
};
use unchoke_driver::{ClientConfig, ClientCore, ClientError};

/// The drivers `--runtime` can pick.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runtime {
    /// One `mio` event-loop thread plus disk worker threads.
    Mio,
    /// A `smol` session task, socket tasks, disk work on smol's blocking pool.
    Smol,
}

/// The client of whichever runtime was picked. Both deref to the same
/// [`ClientCore`](unchoke_driver::ClientCore).
pub(crate) enum Client {
    Mio(unchoke_mio::Client),
    Smol(unchoke_smol::Client),
}

impl Client {
    /// Starts a client on `runtime`.
    pub(crate) fn new(runtime: Runtime, config: ClientConfig) -> Result<Client, ClientError> {
        Ok(match runtime {
            Runtime::Mio => Client::Mio(unchoke_mio::Client::new(config)?),
            Runtime::Smol => Client::Smol(unchoke_smol::Client::new(config)?),
        })
    }
}

impl std::ops::Deref for Client {
    type Target = ClientCore;
    fn deref(&self) -> &ClientCore {
        match self {
            Client::Mio(c) => c,
            Client::Smol(c) => c,
        }
    }
}

impl std::ops::DerefMut for Client {
    fn deref_mut(&mut self) -> &mut ClientCore {
        match self {
            Client::Mio(c) => c,
            Client::Smol(c) => c,
        }
    }
}

/// The tracker service of whichever runtime was picked.
pub(crate) enum Tracker {
    Mio(unchoke_mio::TrackerService),
    Smol(unchoke_smol::TrackerService),
}

impl Tracker {
    /// Starts serving on `runtime`.
    pub(crate) fn start(
        runtime: Runtime,
        config: TrackerServiceConfig,
    ) -> Result<Tracker, TrackerServiceError> {
        Ok(match runtime {
            Runtime::Mio => Tracker::Mio(unchoke_mio::TrackerService::start(config)?),
            Runtime::Smol => Tracker::Smol(unchoke_smol::TrackerService::start(config)?),
        })
    }

    /// The bound HTTP address, if serving HTTP.
    pub(crate) fn http_addr(&self) -> Option<SocketAddr> {
        match self {
            Tracker::Mio(t) => t.http_addr(),
            Tracker::Smol(t) => t.http_addr(),
        }
    }

    /// The bound UDP address, if serving UDP.
    pub(crate) fn udp_addr(&self) -> Option<SocketAddr> {
        match self {
            Tracker::Mio(t) => t.udp_addr(),
            Tracker::Smol(t) => t.udp_addr(),
        }
    }

    /// Counters now.
    pub(crate) fn stats(&self) -> TrackerServiceStats {
        match self {
            Tracker::Mio(t) => t.stats(),
            Tracker::Smol(t) => t.stats(),
        }
    }

    /// Whether the service's loop still runs.
    pub(crate) fn is_running(&self) -> bool {
        match self {
            Tracker::Mio(t) => t.is_running(),
            Tracker::Smol(t) => t.is_running(),
        }
    }

    /// Stops serving; the final counters.
    pub(crate) fn shutdown(self) -> Result<TrackerServiceStats, TrackerServiceError> {
        match self {
            Tracker::Mio(t) => t.shutdown(),
            Tracker::Smol(t) => t.shutdown(),
        }
    }

    /// The announce URLs this tracker serves: HTTP first, then UDP.
    pub(crate) fn announce_urls(&self) -> Vec<String> {
        let mut urls = Vec::new();
        if let Some(a) = self.http_addr() {
            urls.push(format!("http://{a}/announce"));
        }
        if let Some(a) = self.udp_addr() {
            urls.push(format!("udp://{a}"));
        }
        urls
    }
}
