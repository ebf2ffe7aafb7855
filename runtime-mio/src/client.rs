//! The public face of the driver: start a client, add torrents, watch progress, shut down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use mio::{Poll, Waker};
use unchoke_core::session::TorrentId;
use unchoke_core::torrent::TorrentStats;
use unchoke_driver::{
    AddTorrent, ClientConfig, ClientError, ClientEvent, ShutdownReport, TorrentHandle,
    prepare_torrent,
};

use crate::event_loop::{Command, EventLoop, WAKER};

/// How long a query to the event loop may take before the client reports it gone.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Events kept for a user who does not read them; older ones are dropped beyond this.
const EVENT_BACKLOG: usize = 4096;

/// A BitTorrent client on `mio`: one event-loop thread over every socket, plus disk
/// workers. Protocol rules live in the core's `Session`; this only moves bytes.
pub struct Client {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    events: Receiver<ClientEvent>,
    local_addr: Option<SocketAddr>,
    config: ClientConfig,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Binds the listener (if any) and starts the event loop and disk threads.
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        let poll = Poll::new().map_err(ClientError::Start)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(ClientError::Start)?);
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (event_tx, events) = crossbeam_channel::bounded(EVENT_BACKLOG);
        let mut lp = EventLoop::new(poll, waker.clone(), &config, command_rx, event_tx)?;
        let local_addr = lp.local_addr();
        let thread = std::thread::Builder::new()
            .name("unchoke-mio".into())
            .spawn(move || lp.run())
            .map_err(ClientError::Start)?;
        Ok(Client {
            commands,
            waker,
            events,
            local_addr,
            config,
            thread: Some(thread),
        })
    }

    /// The address peers can reach us on (the bound port when 0 was asked for).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Events as they happen. Reading them is optional: beyond a backlog of 4096 the
    /// oldest unread ones are dropped (counters in [`Client::stats`] are never lost).
    pub fn events(&self) -> &Receiver<ClientEvent> {
        &self.events
    }

    /// Checks existing data (trusting the resume file where the files did not change since
    /// it was written; `progress` gets the number of pieces checked so far), creates the
    /// files, then adds the torrent and dials `add.peers`. Blocks during the check.
    pub fn add_torrent(
        &self,
        add: AddTorrent,
        progress: &(dyn Fn(u32) + Sync),
    ) -> Result<TorrentHandle, ClientError> {
        let prepared = prepare_torrent(&self.config, &add, progress)?;
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Command::AddTorrent {
            metainfo: Box::new(add.metainfo.clone()),
            storage: Arc::new(prepared.storage),
            have: prepared.have,
            resume_path: prepared.resume_path,
            peers: add.peers,
            reply,
        })?;
        let id = rx
            .recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| ClientError::Stopped)??;
        Ok(TorrentHandle {
            id,
            info_hash: add.metainfo.info_hash,
            check: prepared.check,
        })
    }

    /// Gives the session more peers to dial for `torrent`.
    pub fn add_peers(&self, torrent: TorrentId, peers: Vec<SocketAddr>) -> Result<(), ClientError> {
        self.send(Command::AddPeers { torrent, peers })
    }

    /// The torrent's counters now.
    pub fn stats(&self, torrent: TorrentId) -> Result<Option<TorrentStats>, ClientError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Stats { torrent, reply })?;
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| ClientError::Stopped)
    }

    /// Stops: no new input is taken, pending disk writes and hashes finish, resume data is
    /// saved and files are flushed; then the threads end. Safe to call once; later calls
    /// report [`ClientError::Stopped`].
    pub fn shutdown(&mut self) -> Result<Vec<ShutdownReport>, ClientError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Shutdown { reply })?;
        // Finishing queued disk work can take a while on a slow disk: allow for it.
        let reports = rx
            .recv_timeout(REPLY_TIMEOUT * 6)
            .map_err(|_| ClientError::Stopped);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        reports
    }

    fn send(&self, command: Command) -> Result<(), ClientError> {
        self.commands
            .send(command)
            .map_err(|_| ClientError::Stopped)?;
        self.waker.wake().map_err(|_| ClientError::Stopped)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.shutdown();
        }
    }
}
