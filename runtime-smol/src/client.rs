//! The public face of the smol driver: the same surface as `unchoke-mio`'s `Client`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Receiver;
use smol::Async;
use unchoke_core::session::TorrentId;
use unchoke_core::torrent::TorrentStats;
use unchoke_driver::{
    AddTorrent, ClientConfig, ClientError, ClientEvent, ShutdownReport, TorrentHandle,
    prepare_torrent,
};

use crate::session_task::{Command, SessionTask};

/// How long a query to the session task may take before the client reports it gone.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Events kept for a user who does not read them.
const EVENT_BACKLOG: usize = 4096;

/// A BitTorrent client on `smol`: one session task owns the core's `Session`, with the
/// socket tasks on the same thread (a `LocalExecutor`) and disk work on smol's blocking
/// pool. The methods block the caller, like `unchoke-mio`'s.
pub struct Client {
    commands: smol::channel::Sender<Command>,
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
    /// Binds the listener (if any) and starts the session task.
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        let (listener, local_addr) = match config.listen {
            Some(addr) => {
                let listen_err = |source| ClientError::Listen {
                    addr: addr.to_string(),
                    source,
                };
                let l = Async::<std::net::TcpListener>::bind(addr).map_err(listen_err)?;
                let local = l.get_ref().local_addr().map_err(listen_err)?;
                (Some(l), Some(local))
            }
            None => (None, None),
        };
        let (commands, command_rx) = smol::channel::unbounded();
        let (event_tx, events) = crossbeam_channel::bounded(EVENT_BACKLOG);
        let cfg = config.clone();
        let port = local_addr.map_or(0, |a| a.port());
        let thread = std::thread::Builder::new()
            .name("unchoke-smol".into())
            .spawn(move || {
                let ex = std::rc::Rc::new(smol::LocalExecutor::new());
                let task = SessionTask::new(ex.clone(), cfg, listener, port, command_rx, event_tx);
                smol::block_on(ex.run(task.run()));
            })
            .map_err(ClientError::Start)?;
        Ok(Client {
            commands,
            events,
            local_addr,
            config,
            thread: Some(thread),
        })
    }

    /// The address peers can reach us on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Events as they happen (beyond a backlog of 4096 unread, new ones are dropped).
    pub fn events(&self) -> &Receiver<ClientEvent> {
        &self.events
    }

    /// Checks existing data, creates the files, then adds the torrent and dials
    /// `add.peers`. Blocks during the check.
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

    /// Stops: pending disk work finishes, resume data is saved and files are flushed; then
    /// the session task ends.
    pub fn shutdown(&mut self) -> Result<Vec<ShutdownReport>, ClientError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Shutdown { reply })?;
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
            .send_blocking(command)
            .map_err(|_| ClientError::Stopped)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.shutdown();
        }
    }
}
