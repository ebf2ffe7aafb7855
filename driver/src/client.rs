//! [`ClientCore`]: the blocking client handle both drivers hand to users. Only how a
//! [`Command`] reaches the loop differs per runtime (a channel plus `mio::Waker`, or a smol
//! channel), so that is the one thing a driver passes in.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Receiver;
use unchoke_core::session::{
    LifecycleError, QueueLimits, RateLimits, SeedLimits, SeedLimitsError, TorrentId,
};
use unchoke_core::torrent::TorrentStats;

use crate::host::Command;
use crate::{
    AddMagnet, AddTorrent, ClientConfig, ClientError, ClientEvent, ShutdownReport, TorrentHandle,
    prepare_torrent,
};

/// How long a query to the loop may take before the client reports it gone.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Events kept for a user who does not read them; beyond this new ones are dropped.
pub const EVENT_BACKLOG: usize = 4096;

/// Delivers a command to the driver's loop (and wakes it).
pub type CommandSink = Box<dyn Fn(Command) -> Result<(), ClientError> + Send + Sync>;

/// A running client: add torrents, read counters and events, shut down. Every method
/// blocks the caller until the loop answered.
pub struct ClientCore {
    send: CommandSink,
    events: Receiver<ClientEvent>,
    local_addr: Option<SocketAddr>,
    dht_addr: Option<SocketAddr>,
    config: ClientConfig,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ClientCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl ClientCore {
    /// Sends the command `make` builds around a reply channel and waits for the answer
    /// (at most `timeout`; past it, or with the loop gone, the client counts as stopped).
    fn ask<T>(
        &self,
        timeout: std::time::Duration,
        make: impl FnOnce(crossbeam_channel::Sender<T>) -> Command,
    ) -> Result<T, ClientError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        (self.send)(make(reply))?;
        rx.recv_timeout(timeout).map_err(|_| ClientError::Stopped)
    }

    /// Wraps a started loop: `send` reaches it, `thread` runs it.
    pub fn new(
        send: CommandSink,
        events: Receiver<ClientEvent>,
        local_addr: Option<SocketAddr>,
        config: ClientConfig,
        thread: JoinHandle<()>,
    ) -> Self {
        ClientCore {
            send,
            events,
            local_addr,
            dht_addr: None,
            config,
            thread: Some(thread),
        }
    }

    /// Records where the driver bound the DHT's UDP socket.
    pub fn with_dht_addr(mut self, dht_addr: Option<SocketAddr>) -> Self {
        self.dht_addr = dht_addr;
        self
    }

    /// The DHT node's UDP address, when the client runs one.
    pub fn dht_addr(&self) -> Option<SocketAddr> {
        self.dht_addr
    }

    /// The address peers can reach us on (the bound port when 0 was asked for).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Events as they happen. Reading them is optional: beyond a backlog of
    /// [`EVENT_BACKLOG`] new ones are dropped (counters in [`ClientCore::stats`] are never
    /// lost).
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
        let info_hash = add.metainfo.info_hash;
        let id = self.ask(REPLY_TIMEOUT, |reply| Command::AddTorrent {
            metainfo: Box::new(add.metainfo.clone()),
            storage: Arc::new(prepared.storage),
            have: prepared.have,
            written: prepared.written,
            resume_path: prepared.resume_path,
            peers: add.peers,
            trackers: add.trackers,
            web_seeds: add.web_seeds,
            reply,
        })??;
        Ok(TorrentHandle {
            id,
            info_hash,
            check: prepared.check,
        })
    }

    /// Adds a torrent known only by its info-hash: the session fetches its metadata from
    /// peers (given here, from trackers, or through the DHT), verifies it, then sets up and
    /// checks the storage under `add.save_path` off the loop and starts downloading
    /// ([`ClientEvent::MetadataReady`], or [`ClientEvent::MetadataStorageFailed`]).
    /// Returns at once.
    ///
    /// [`ClientEvent::MetadataReady`]: crate::ClientEvent::MetadataReady
    /// [`ClientEvent::MetadataStorageFailed`]: crate::ClientEvent::MetadataStorageFailed
    pub fn add_magnet(&self, add: AddMagnet) -> Result<TorrentId, ClientError> {
        Ok(self.ask(REPLY_TIMEOUT, |reply| Command::AddMagnet {
            add: Box::new(add),
            reply,
        })??)
    }

    /// Gives the session more peers to dial for `torrent`.
    pub fn add_peers(&self, torrent: TorrentId, peers: Vec<SocketAddr>) -> Result<(), ClientError> {
        (self.send)(Command::AddPeers { torrent, peers })
    }

    /// Sets upload and download rate limits live, in bytes per second (`None` or 0:
    /// unlimited): the whole client's with `torrent` `None`, else that torrent's own (see
    /// [`unchoke_core::session::Session::set_limits`]). The initial session-wide limits
    /// are `ClientConfig::session`'s `upload_limit` and `download_limit`.
    pub fn set_limits(
        &self,
        torrent: Option<TorrentId>,
        limits: RateLimits,
    ) -> Result<Result<(), LifecycleError>, ClientError> {
        self.ask(REPLY_TIMEOUT, |reply| Command::SetLimits {
            torrent,
            limits,
            reply,
        })
    }

    /// The torrent's counters now.
    pub fn stats(&self, torrent: TorrentId) -> Result<Option<TorrentStats>, ClientError> {
        self.ask(REPLY_TIMEOUT, |reply| Command::Stats { torrent, reply })
    }

    /// Removes the torrent from the session (its peers disconnected, its trackers told
    /// `stopped`; see [`unchoke_core::session::Session::remove_torrent`]). Returns once no
    /// disk job holds its files any more, so the caller may then delete them. Its resume
    /// file and data are left where they are.
    pub fn remove(&self, torrent: TorrentId) -> Result<Result<(), LifecycleError>, ClientError> {
        // Waits for the disk jobs out to finish, like shutdown does.
        self.ask(REPLY_TIMEOUT * 6, |reply| Command::Remove {
            torrent,
            reply,
        })
    }

    /// Rechecks the torrent's data ([`unchoke_core::session::Session::start_recheck`]):
    /// it leaves its swarm and shows `Checking`; once the disk jobs out for it are done
    /// its files are hashed off the loop (everything: `add.recheck` is what the caller
    /// says, resume data is trusted only without it) and what the check found becomes its
    /// verified pieces. With `move_from`, its files are moved from there to
    /// `add.save_path` first ([`unchoke_storage::relocate`]) and it runs from there on.
    /// Returns once the check is under way; [`crate::ClientEvent::Rechecked`] tells the
    /// end. `add` is the torrent as it was added (its metainfo; where to look).
    pub fn recheck(
        &self,
        torrent: TorrentId,
        add: AddTorrent,
        move_from: Option<std::path::PathBuf>,
    ) -> Result<Result<(), LifecycleError>, ClientError> {
        self.ask(REPLY_TIMEOUT, |reply| Command::Recheck {
            torrent,
            add: Box::new(add),
            move_from,
            reply,
        })
    }

    /// Sets seeding limits live (see [`unchoke_core::session::Session::set_seed_limits`]):
    /// the client's defaults with `torrent` `None` (where `Limit::Session` means no limit),
    /// else that torrent's own, each limit following the defaults (`Limit::Session`), off
    /// (`Limit::Unlimited`) or its own (`Limit::Own`). A seed that reaches a limit pauses
    /// itself and says which in `Event::SeedLimitReached`; one already past a limit set
    /// here pauses at once. The initial defaults are `ClientConfig::session`'s
    /// `seed_limits`. Refused for an unknown torrent or a ratio that is negative or not
    /// finite.
    pub fn set_seed_limits(
        &self,
        torrent: Option<TorrentId>,
        limits: SeedLimits,
    ) -> Result<Result<(), SeedLimitsError>, ClientError> {
        self.ask(REPLY_TIMEOUT, |reply| Command::SetSeedLimits {
            torrent,
            limits,
            reply,
        })
    }

    /// Counts `totals` as what the torrent moved in earlier runs (the caller keeps them
    /// across restarts): its ratio limit and its `_ever` stats count them, trackers are
    /// not told them (see [`unchoke_core::session::Session::set_earlier_transfers`]).
    pub fn set_earlier_transfers(
        &self,
        torrent: TorrentId,
        totals: unchoke_core::session::TransferTotals,
    ) -> Result<Result<(), SeedLimitsError>, ClientError> {
        self.ask(REPLY_TIMEOUT, |reply| Command::SetEarlierTransfers {
            torrent,
            totals,
            reply,
        })
    }

    /// Sets how many torrents download and seed at once (see
    /// [`unchoke_core::session::Session::set_queue_limits`]; `None`: no limit). The others
    /// wait in `TorrentState::Queued`, in the order they were added, and start by
    /// themselves as slots free up; a raised limit starts them at once. The initial limits
    /// are `ClientConfig::session`'s `queue_limits`.
    pub fn set_queue_limits(&self, limits: QueueLimits) -> Result<(), ClientError> {
        self.ask(REPLY_TIMEOUT, |reply| Command::SetQueueLimits {
            limits,
            reply,
        })
    }

    /// Pauses the torrent ([`unchoke_core::session::Session::pause_torrent`]): no peer,
    /// no dial, its trackers told `stopped`; its verified data stays.
    pub fn pause(&self, torrent: TorrentId) -> Result<Result<(), LifecycleError>, ClientError> {
        self.ask(REPLY_TIMEOUT, |reply| Command::Pause { torrent, reply })
    }

    /// Moves the torrent to `position` in the queue order (0: first; past the end: last):
    /// which queued torrent starts next (see
    /// [`unchoke_core::session::Session::set_queue_position`]).
    pub fn set_queue_position(
        &self,
        torrent: TorrentId,
        position: usize,
    ) -> Result<Result<(), LifecycleError>, ClientError> {
        self.ask(REPLY_TIMEOUT, |reply| Command::SetQueuePosition {
            torrent,
            position,
            reply,
        })
    }

    /// Resumes a paused torrent ([`unchoke_core::session::Session::resume_torrent`]).
    pub fn resume(&self, torrent: TorrentId) -> Result<Result<(), LifecycleError>, ClientError> {
        self.ask(REPLY_TIMEOUT, |reply| Command::Resume { torrent, reply })
    }

    /// Every torrent in the client (magnets fetching their metadata included), in id
    /// order: where each stands and its counters, in one round trip to the loop.
    pub fn torrents(&self) -> Result<Vec<crate::TorrentStatus>, ClientError> {
        self.ask(REPLY_TIMEOUT, |reply| Command::Torrents { reply })
    }

    /// What the torrent's peers are doing and which pieces it has, for a status display
    /// (`None`: no such torrent).
    pub fn details(
        &self,
        torrent: TorrentId,
    ) -> Result<Option<crate::TorrentDetails>, ClientError> {
        self.ask(REPLY_TIMEOUT, |reply| Command::Details { torrent, reply })
    }

    /// Sets the torrent's file priorities (index = file index in the metainfo, padding
    /// files included; missing entries are `Normal`): see
    /// [`unchoke_core::session::Session::set_file_priorities`]. A magnet torrent takes them
    /// only once its metadata is known; before that the call does nothing. Commands run in
    /// order, so a later `torrents` or `details` already sees the change.
    pub fn set_file_priorities(
        &self,
        torrent: TorrentId,
        priorities: Vec<unchoke_core::picker::Priority>,
    ) -> Result<(), ClientError> {
        (self.send)(Command::SetFilePriorities {
            torrent,
            priorities,
        })
    }

    /// The DHT node's counters and table size (`None` when the client runs no DHT).
    pub fn dht_status(&self) -> Result<Option<crate::DhtStatus>, ClientError> {
        self.ask(REPLY_TIMEOUT, |reply| Command::DhtStats { reply })
    }

    /// Stops: no new input is taken, pending disk writes and hashes finish, resume data is
    /// saved and files are flushed; then the loop's thread ends. Later calls report
    /// [`ClientError::Stopped`].
    pub fn shutdown(&mut self) -> Result<Vec<ShutdownReport>, ClientError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        (self.send)(Command::Shutdown { reply })?;
        // Finishing queued disk work can take a while on a slow disk: allow for it.
        let reports = rx
            .recv_timeout(REPLY_TIMEOUT * 6)
            .map_err(|_| ClientError::Stopped);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        reports
    }
}

impl Drop for ClientCore {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.shutdown();
        }
    }
}
