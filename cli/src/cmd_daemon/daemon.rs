//! The real [`Engine`]: the daemon's torrents over one running client, their list kept in
//! the session directory. It only forwards: whether a torrent may be paused, what a
//! removal does to its peers and trackers, how a rate limit is kept, is the core's.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Component, Path, PathBuf};

use unchoke_core::magnet::Magnet;
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{Event, RateLimits, TorrentId, TorrentState, TransferTotals};
use unchoke_driver::{AddMagnet, AddTorrent, ClientEvent, TorrentDetails};

use super::rpc::SessionSettings;
use super::rpc::{
    AddRequest, AddSource, Added, Engine, PeerSettings, Status, TorrentSettings, TorrentView,
};
use super::state::{Entry, SessionDir, Source, State};
use super::views::{
    core_limits, core_priorities, files_of, peer_view, queue_limits, session_seed_limits,
    torrent_seed_limits, trackers_of,
};
use crate::runtime::Client;

/// How often the torrents' byte counters are saved while they move.
const COUNTERS_SAVE: std::time::Duration = std::time::Duration::from_secs(60);

/// Bytes a .torrent file named by `torrent-add`'s `filename` may have (as `metainfo` is
/// bounded by the HTTP body's limit).
const MAX_TORRENT_FILE: u64 = 16 << 20;

/// One torrent of the daemon.
struct Slot {
    /// The RPC's number for it.
    id: u64,
    /// The session's id; `None` when it could not be added (see `error`).
    core: Option<TorrentId>,
    /// What the session directory remembers of it.
    entry: Entry,
    /// Its metadata, once known (a magnet's comes from peers).
    metainfo: Option<Box<Metainfo>>,
    /// Why it does not run, if it does not.
    error: Option<String>,
    /// A magnet's `dn` until the metadata names it.
    display_name: Option<String>,
}

impl Slot {
    fn name(&self) -> String {
        match (&self.metainfo, &self.display_name) {
            (Some(m), _) => m.info.name.clone(),
            (None, Some(dn)) => dn.clone(),
            (None, None) => self.entry.hash.clone(),
        }
    }
}

/// The daemon's state: the client, the torrents, the session directory.
pub(crate) struct Daemon {
    client: Client,
    dir: SessionDir,
    /// The `--download-dir`, absolute and resolved: no RPC call puts data outside it.
    root: PathBuf,
    /// The session's settings as the RPC last set them.
    settings: SessionSettings,
    /// When the torrents' counters were last saved ([`Daemon::save_counters`]).
    counters_saved: std::time::Instant,
    slots: Vec<Slot>,
    next_id: u64,
    peers: PeerSettings,
}

impl Daemon {
    /// A daemon over a started client; `root` is the resolved download directory.
    pub(crate) fn new(
        client: Client,
        dir: SessionDir,
        root: PathBuf,
        settings: SessionSettings,
        peers: PeerSettings,
    ) -> Self {
        Daemon {
            peers,
            client,
            dir,
            root,
            settings,
            counters_saved: std::time::Instant::now(),
            slots: Vec::new(),
            next_id: 1,
        }
    }

    /// Adds back every torrent of the saved list, each in the state it was left in. One
    /// that cannot be added (its .torrent copy lost, its directory gone) stays listed with
    /// its error instead of stopping the others. Returns how many run.
    pub(crate) fn restore(&mut self, state: &State) -> usize {
        // Numbered in the list's order (the order they were added), but handed to the
        // client in their saved queue order: the core queues torrents in the order they
        // come, so the ones that start are the ones that ran before.
        let mut slots: Vec<Slot> = Vec::with_capacity(state.torrents.len());
        for entry in &state.torrents {
            slots.push(Slot {
                id: self.take_id(),
                core: None,
                entry: entry.clone(),
                metainfo: None,
                error: None,
                display_name: None,
            });
        }
        let mut order: Vec<usize> = (0..slots.len()).collect();
        order.sort_by_key(|&i| (slots[i].entry.queue_position, i));
        for i in order {
            let slot = &mut slots[i];
            if let Err(e) = self.start_entry(slot) {
                slot.error = Some(e);
            }
        }
        self.slots = slots;
        self.note_queue_positions();
        self.slots.iter().filter(|s| s.core.is_some()).count()
    }

    /// Copies the core's queue positions into the entries (saved with the list).
    fn note_queue_positions(&mut self) {
        let Ok(statuses) = self.client.torrents() else {
            return;
        };
        for slot in &mut self.slots {
            if let Some(st) = slot.core.and_then(|c| statuses.iter().find(|s| s.id == c)) {
                slot.entry.queue_position = st.queue_position;
            }
        }
    }

    /// Stops the client: resume data saved, trackers told.
    pub(crate) fn shutdown(mut self) -> Result<(), String> {
        self.save_state()?;
        let reports = self.client.shutdown().map_err(|e| e.to_string())?;
        // The last counters, so the next run's ratios count all of this one.
        for report in reports {
            if let (Some(slot), Some(stats)) = (
                self.slots
                    .iter_mut()
                    .find(|s| s.core == Some(report.torrent)),
                report.stats,
            ) {
                slot.entry.uploaded_ever = stats.uploaded_ever;
                slot.entry.downloaded_ever = stats.downloaded_ever;
            }
        }
        self.save_state()
    }

    /// Copies each torrent's counters into its entry and saves the list when they moved
    /// and [`COUNTERS_SAVE`] has passed since the last such save: a `kill -9` loses at
    /// most that much of them.
    fn save_counters(&mut self) {
        if self.counters_saved.elapsed() < COUNTERS_SAVE {
            return;
        }
        self.counters_saved = std::time::Instant::now();
        let Ok(statuses) = self.client.torrents() else {
            return;
        };
        let mut moved = false;
        for slot in &mut self.slots {
            let Some(st) = slot.core.and_then(|c| statuses.iter().find(|s| s.id == c)) else {
                continue;
            };
            let (up, down) = (st.stats.uploaded_ever, st.stats.downloaded_ever);
            if (up, down) != (slot.entry.uploaded_ever, slot.entry.downloaded_ever) {
                slot.entry.uploaded_ever = up;
                slot.entry.downloaded_ever = down;
                moved = true;
            }
        }
        if moved {
            if let Err(e) = self.save_state() {
                warn(&e);
            }
        }
    }

    /// Reads what the client told meanwhile: a magnet's metadata arrived (its name and
    /// files are known now, and it is kept as a .torrent file from now on, so a restart
    /// needs no peer to know it) or its storage failed.
    pub(crate) fn drain_events(&mut self) {
        let events: Vec<ClientEvent> = self.client.events().try_iter().collect();
        let mut changed = false;
        let mut counters_now = false;
        for event in events {
            match event {
                ClientEvent::MetadataReady {
                    torrent, metainfo, ..
                } => {
                    let Some(slot) = self.slots.iter_mut().find(|s| s.core == Some(torrent)) else {
                        continue;
                    };
                    if let Source::Magnet(link) = &slot.entry.source {
                        if let Some(bytes) = Magnet::parse(link)
                            .ok()
                            .and_then(|magnet| torrent_from_magnet(&metainfo, &magnet))
                        {
                            match self.dir.save_torrent_file(&slot.entry.hash, &bytes) {
                                Ok(()) => {
                                    slot.entry.source = Source::TorrentFile;
                                    changed = true;
                                }
                                // The magnet link stays: the metadata is fetched again
                                // after a restart.
                                Err(e) => warn(&e),
                            }
                        }
                    }
                    slot.metainfo = Some(metainfo);
                    if slot.entry.settings != TorrentSettings::new() {
                        if let Err(e) = Self::apply_settings(&self.client, slot) {
                            warn(&format!("torrent {}: {e}", slot.id));
                        }
                    }
                }
                ClientEvent::Rechecked {
                    torrent,
                    save_path,
                    result,
                } => {
                    let Some(slot) = self.slots.iter_mut().find(|s| s.core == Some(torrent)) else {
                        continue;
                    };
                    // Where the data is now, whether the move worked or was put back: a
                    // restart looks there.
                    if slot.entry.download_dir != save_path {
                        slot.entry.download_dir = save_path;
                        changed = true;
                    }
                    slot.error = result.err();
                }
                ClientEvent::Session(Event::SeedLimitReached { torrent, .. }) => {
                    // The core paused it; it stays stopped after a restart, as
                    // Transmission's finished torrents do, until the user starts it.
                    if let Some(slot) = self.slots.iter_mut().find(|s| s.core == Some(torrent)) {
                        slot.entry.paused = true;
                        slot.entry.finished = true;
                        changed = true;
                        // Its counters too: a restart must find the ratio it stopped at.
                        counters_now = true;
                    }
                }
                ClientEvent::MetadataStorageFailed { torrent, message } => {
                    if let Some(slot) = self.slots.iter_mut().find(|s| s.core == Some(torrent)) {
                        slot.error = Some(message);
                    }
                }
                _ => {}
            }
        }
        if counters_now {
            self.counters_saved = std::time::Instant::now() - COUNTERS_SAVE;
        }
        if changed {
            if let Err(e) = self.save_state() {
                warn(&e);
            }
        }
        self.move_completed();
        self.save_counters();
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Hands a listed torrent to the client (and pauses it if it was left paused).
    fn start_entry(&mut self, slot: &mut Slot) -> Result<(), String> {
        let dir = confine(&self.root, &slot.entry.download_dir)?;
        match &slot.entry.source {
            Source::TorrentFile => {
                let path = self.dir.torrent_file(&slot.entry.hash);
                let bytes = read_bounded(&path)?;
                let metainfo =
                    Metainfo::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
                let add = AddTorrent::new(metainfo.clone(), &dir);
                let handle = self
                    .client
                    .add_torrent(add, &|_| {})
                    .map_err(|e| e.to_string())?;
                slot.core = Some(handle.id);
                slot.metainfo = Some(Box::new(metainfo));
            }
            Source::Magnet(link) => {
                let magnet = Magnet::parse(link).map_err(|e| format!("{link}: {e}"))?;
                slot.display_name = magnet.display_name.clone();
                let id = self
                    .client
                    .add_magnet(magnet_add(&magnet, &dir))
                    .map_err(|e| e.to_string())?;
                slot.core = Some(id);
            }
        }
        if slot.entry.paused {
            if let Some(core) = slot.core {
                self.client
                    .pause(core)
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            }
        }
        if slot.entry.uploaded_ever > 0 || slot.entry.downloaded_ever > 0 {
            if let Some(core) = slot.core {
                let totals = TransferTotals {
                    uploaded: slot.entry.uploaded_ever,
                    downloaded: slot.entry.downloaded_ever,
                };
                self.client
                    .set_earlier_transfers(core, totals)
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            }
        }
        // Only settings that differ from a fresh torrent's cost a round trip: a restart
        // with a thousand plain torrents sends none.
        if slot.entry.settings != TorrentSettings::new() {
            Self::apply_settings(&self.client, slot)?;
        }
        Ok(())
    }

    /// Hands the core a torrent's own settings: its limits, and its file priorities once
    /// its files are known (a magnet's are applied when its metadata arrives).
    fn apply_settings(client: &Client, slot: &Slot) -> Result<(), String> {
        let Some(core) = slot.core else {
            return Ok(());
        };
        let settings = &slot.entry.settings;
        client
            .set_limits(Some(core), core_limits(settings))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        client
            .set_seed_limits(Some(core), torrent_seed_limits(settings))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if let Some(m) = &slot.metainfo {
            client
                .set_file_priorities(core, core_priorities(m, settings))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Writes the torrent list and the limits to the session directory.
    fn save_state(&self) -> Result<(), String> {
        self.dir.save(&State {
            torrents: self.slots.iter().map(|s| s.entry.clone()).collect(),
            session: self.settings.clone(),
        })
    }

    /// The slots `ids` name.
    fn slots_of<'a>(&'a mut self, ids: &'a [u64]) -> impl Iterator<Item = &'a mut Slot> + 'a {
        self.slots.iter_mut().filter(|s| ids.contains(&s.id))
    }

    /// Deletes what a torrent downloaded under its directory: its files, the directories
    /// they made once empty, and its resume file. Never through a symlink: a path with a
    /// symlink on the way is left alone, and nothing outside the download directory is
    /// touched.
    fn delete_data(&self, slot: &Slot) -> Result<(), String> {
        let dir = confine(&self.root, &slot.entry.download_dir)?;
        let mut files = vec![PathBuf::from(".unchoke").join(format!("{}.resume", slot.entry.hash))];
        if let Some(m) = &slot.metainfo {
            // BEP 47 padding is never written: a path it names is not ours to delete.
            files.extend(
                (0..m.info.files.len())
                    .filter(|&i| !m.info.files[i].padding)
                    .filter_map(|i| m.info.file_path(i)),
            );
        }
        unchoke_storage::delete_files(&files, &dir).map_err(|e| e.to_string())
    }

    /// Adds a torrent whose metadata is known (a .torrent file).
    fn add_metainfo(&mut self, bytes: &[u8], dir: PathBuf, paused: bool) -> Result<Added, String> {
        let metainfo =
            Metainfo::from_bytes(bytes).map_err(|e| format!("not a usable .torrent file: {e}"))?;
        let hash = metainfo.info_hash.to_hex();
        if let Some(dup) = self.duplicate(&hash) {
            return Ok(dup);
        }
        let (dir, complete_dir) = self.placement(dir)?;
        // The copy first: a crash right after the add must not lose the torrent.
        self.dir.save_torrent_file(&hash, bytes)?;
        let entry = Entry::new(hash.clone(), Source::TorrentFile, dir, paused, complete_dir);
        self.add_entry(entry)
    }

    /// Adds a magnet link.
    fn add_magnet(&mut self, link: &str, dir: PathBuf, paused: bool) -> Result<Added, String> {
        let magnet = Magnet::parse(link).map_err(|e| format!("not a usable magnet link: {e}"))?;
        if magnet.v2_only {
            return Err(
                "a v2-only magnet link (no urn:btih:) is not supported yet; add its .torrent file"
                    .into(),
            );
        }
        let hash = magnet.info_hash.to_hex();
        if let Some(dup) = self.duplicate(&hash) {
            return Ok(dup);
        }
        let (dir, complete_dir) = self.placement(dir)?;
        let entry = Entry::new(
            hash,
            Source::Magnet(link.to_string()),
            dir,
            paused,
            complete_dir,
        );
        self.add_entry(entry)
    }

    /// Where a torrent bound for `dir` downloads, and where it moves once complete: with
    /// the session's `incomplete-dir` on, there and then `dir`; else `dir` and no move.
    fn placement(&self, dir: PathBuf) -> Result<(PathBuf, Option<PathBuf>), String> {
        if !self.settings.incomplete_dir_enabled {
            return Ok((dir, None));
        }
        let partial = confine(&self.root, Path::new(&self.settings.incomplete_dir))?;
        if partial == dir {
            return Ok((dir, None));
        }
        Ok((partial, Some(dir)))
    }

    /// Moves the torrents waiting to (those added while `incomplete-dir` was on) once the
    /// core says they are complete: the same safe move as `set-location --move`. The
    /// destination is forgotten when the move is tried, so a move that fails (the data
    /// put back, the error shown) is not tried again and again.
    fn move_completed(&mut self) {
        if self.slots.iter().all(|s| s.entry.complete_dir.is_none()) {
            return;
        }
        let statuses = match self.client.torrents() {
            Ok(s) => s,
            Err(e) => return warn(&e.to_string()),
        };
        let mut moved = false;
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            let (Some(core), Some(to)) = (slot.core, slot.entry.complete_dir.clone()) else {
                continue;
            };
            let done = statuses
                .iter()
                .any(|st| st.id == core && st.state == TorrentState::Seeding);
            if !done {
                continue;
            }
            if let Err(e) = self.start_move(&self.slots[i], &to, true) {
                warn(&format!(
                    "torrent {}: moving it to {}: {e}",
                    self.slots[i].id,
                    to.display()
                ));
                self.slots[i].error = Some(format!("could not move it to {}: {e}", to.display()));
            }
            self.slots[i].entry.complete_dir = None;
            moved = true;
        }
        if moved {
            if let Err(e) = self.save_state() {
                warn(&e);
            }
        }
    }

    /// Points a torrent at `to`, moving its files there with `move_data` (else only
    /// looking there), by a recheck the client runs off the loop.
    fn start_move(&self, slot: &Slot, to: &Path, move_data: bool) -> Result<(), String> {
        let (Some(core), Some(m)) = (slot.core, &slot.metainfo) else {
            return Err("its metadata is not known yet".into());
        };
        let from = confine(&self.root, &slot.entry.download_dir)?;
        if from == to {
            return Ok(());
        }
        let mut add = AddTorrent::new((**m).clone(), to);
        // Moved files keep their times, and their resume file goes along: it is
        // trusted as usual. Only looking in a new place hashes what is there.
        add.recheck = !move_data;
        self.client
            .recheck(core, add, move_data.then_some(from))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Starts a new entry and lists it; nothing is listed if the client refused it.
    fn add_entry(&mut self, entry: Entry) -> Result<Added, String> {
        let mut slot = Slot {
            id: 0,
            core: None,
            entry,
            metainfo: None,
            error: None,
            display_name: None,
        };
        if let Err(e) = self.start_entry(&mut slot) {
            if slot.entry.source == Source::TorrentFile {
                self.dir.remove_torrent_file(&slot.entry.hash);
            }
            if let Some(core) = slot.core {
                let _ = self.client.remove(core);
            }
            return Err(e);
        }
        slot.id = self.take_id();
        let added = Added {
            id: slot.id,
            name: slot.name(),
            hash: slot.entry.hash.clone(),
            duplicate: false,
        };
        self.slots.push(slot);
        self.save_state()?;
        Ok(added)
    }

    fn duplicate(&self, hash: &str) -> Option<Added> {
        self.slots
            .iter()
            .find(|s| s.entry.hash == hash)
            .map(|s| Added {
                id: s.id,
                name: s.name(),
                hash: s.entry.hash.clone(),
                duplicate: true,
            })
    }
}

impl Engine for Daemon {
    fn download_dir(&self) -> String {
        self.root.to_string_lossy().into_owned()
    }

    fn settings(&self) -> SessionSettings {
        self.settings.clone()
    }

    fn peer_settings(&self) -> PeerSettings {
        self.peers
    }

    fn set_settings(&mut self, settings: SessionSettings) -> Result<(), String> {
        // Checked before anything is applied: a refused directory changes nothing.
        if settings.incomplete_dir_enabled {
            confine(&self.root, Path::new(&settings.incomplete_dir))?;
        }
        let seeds = session_seed_limits(&settings);
        if seeds != session_seed_limits(&self.settings) {
            self.client
                .set_seed_limits(None, seeds)
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        let queue = queue_limits(&settings);
        if queue != queue_limits(&self.settings) {
            self.client
                .set_queue_limits(queue)
                .map_err(|e| e.to_string())?;
        }
        if settings.limits != self.settings.limits {
            let rates = RateLimits {
                upload: settings.limits.upload_bytes(),
                download: settings.limits.download_bytes(),
            };
            self.client
                .set_limits(None, rates)
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        self.settings = settings;
        self.save_state()
    }

    fn torrents(&mut self, details: &[u64]) -> Result<Vec<TorrentView>, String> {
        self.drain_events();
        let statuses = self.client.torrents().map_err(|e| e.to_string())?;
        let mut detailed: Vec<(u64, TorrentDetails)> = Vec::new();
        for slot in self.slots.iter().filter(|s| details.contains(&s.id)) {
            if let Some(core) = slot.core {
                if let Some(d) = self.client.details(core).map_err(|e| e.to_string())? {
                    detailed.push((slot.id, d));
                }
            }
        }
        Ok(self
            .slots
            .iter()
            .map(|slot| {
                let status = slot
                    .core
                    .and_then(|core| statuses.iter().find(|s| s.id == core));
                let (state, stats) = match status {
                    Some(s) => (
                        match s.state {
                            TorrentState::Paused | TorrentState::Closing => Status::Stopped,
                            TorrentState::Checking => Status::Checking,
                            TorrentState::FetchingMetadata | TorrentState::Downloading => {
                                Status::Downloading
                            }
                            TorrentState::Seeding => Status::Seeding,
                            TorrentState::Queued { seed: false } => Status::DownloadQueued,
                            TorrentState::Queued { seed: true } => Status::SeedQueued,
                        },
                        Some(&s.stats),
                    ),
                    None => (Status::Stopped, None),
                };
                let info = slot.metainfo.as_ref().map(|m| &m.info);
                let detail = detailed
                    .iter()
                    .find(|(id, _)| *id == slot.id)
                    .map(|(_, d)| d);
                TorrentView {
                    id: slot.id,
                    hash: slot.entry.hash.clone(),
                    name: slot.name(),
                    status: state,
                    has_metadata: stats.is_some_and(|s| s.has_metadata),
                    total_size: stats.map_or(0, |s| s.total_length),
                    have: stats.map_or(0, |s| s.bytes_have),
                    left: stats.map_or(0, |s| s.bytes_left),
                    // Over its whole life here; before the client knows it (not added),
                    // what was saved.
                    downloaded: stats.map_or(slot.entry.downloaded_ever, |s| s.downloaded_ever),
                    uploaded: stats.map_or(slot.entry.uploaded_ever, |s| s.uploaded_ever),
                    finished: slot.entry.finished,
                    queue_position: status.map_or(slot.entry.queue_position, |s| s.queue_position)
                        as u64,
                    rate_down: stats.map_or(0, |s| s.download_rate),
                    rate_up: stats.map_or(0, |s| s.upload_rate),
                    peers: stats.map_or(0, |s| s.peers),
                    unchoked: stats.map_or(0, |s| s.unchoked),
                    download_dir: slot.entry.download_dir.to_string_lossy().into_owned(),
                    error: slot.error.clone(),
                    added: slot.entry.added,
                    pieces: info.map_or((0, 0), |i| (i.piece_count(), i.piece_length)),
                    private: info.is_some_and(|i| i.private),
                    files: slot.metainfo.as_deref().map_or_else(Vec::new, |m| {
                        let have = stats.map_or(0, |s| s.bytes_have);
                        let total = stats.map_or(0, |s| s.total_length);
                        files_of(m, have, total, detail.and_then(|d| d.have.as_ref()))
                    }),
                    trackers: slot.metainfo.as_deref().map_or_else(Vec::new, trackers_of),
                    settings: slot.entry.settings.clone(),
                    peer_list: detail.map(|d| d.peers.iter().map(peer_view).collect()),
                }
            })
            .collect())
    }

    fn set_queue_position(&mut self, id: u64, position: u64) -> Result<(), String> {
        let Some(core) = self.slots.iter().find(|s| s.id == id).and_then(|s| s.core) else {
            return Err(format!(
                "torrent {id} is not running: it has no place in the queue"
            ));
        };
        self.client
            .set_queue_position(core, usize::try_from(position).unwrap_or(usize::MAX))
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("torrent {id}: {e}"))?;
        self.note_queue_positions();
        self.save_state()
    }

    fn set_torrent(&mut self, id: u64, settings: TorrentSettings) -> Result<(), String> {
        let Some(pos) = self.slots.iter().position(|s| s.id == id) else {
            return Err(format!("no torrent {id}"));
        };
        let before = std::mem::replace(&mut self.slots[pos].entry.settings, settings);
        if let Err(e) = Self::apply_settings(&self.client, &self.slots[pos]) {
            self.slots[pos].entry.settings = before;
            return Err(format!("torrent {id}: {e}"));
        }
        self.save_state()
    }

    fn add(&mut self, add: AddRequest) -> Result<Added, String> {
        let dir = match &add.download_dir {
            Some(d) => confine(&self.root, d)?,
            None => self.root.clone(),
        };
        match add.source {
            AddSource::Metainfo(bytes) => self.add_metainfo(&bytes, dir, add.paused),
            AddSource::Path(path) => {
                let bytes = read_bounded(&path)?;
                self.add_metainfo(&bytes, dir, add.paused)
            }
            AddSource::Magnet(link) => self.add_magnet(&link, dir, add.paused),
            AddSource::Url(url) => {
                let bytes = super::fetch::torrent_file(&url)?;
                self.add_metainfo(&bytes, dir, add.paused)
            }
        }
    }

    fn start(&mut self, ids: &[u64]) -> Result<(), String> {
        let client = &self.client;
        let mut errors = Vec::new();
        for slot in self.slots.iter_mut().filter(|s| ids.contains(&s.id)) {
            match slot.core {
                Some(core) => match client.resume(core).map_err(|e| e.to_string())? {
                    Ok(()) => {
                        slot.entry.paused = false;
                        slot.entry.finished = false;
                    }
                    Err(e) => errors.push(format!("torrent {}: {e}", slot.id)),
                },
                None => errors.push(format!(
                    "torrent {} cannot start: {}",
                    slot.id,
                    slot.error.as_deref().unwrap_or("it was not added")
                )),
            }
        }
        self.save_state()?;
        all_done(errors)
    }

    fn stop(&mut self, ids: &[u64]) -> Result<(), String> {
        let client = &self.client;
        let mut errors = Vec::new();
        for slot in self.slots.iter_mut().filter(|s| ids.contains(&s.id)) {
            if let Some(core) = slot.core {
                if let Err(e) = client.pause(core).map_err(|e| e.to_string())? {
                    errors.push(format!("torrent {}: {e}", slot.id));
                    continue;
                }
            }
            slot.entry.paused = true;
        }
        self.save_state()?;
        all_done(errors)
    }

    fn verify(&mut self, ids: &[u64]) -> Result<(), String> {
        let mut errors = Vec::new();
        for slot in self.slots.iter().filter(|s| ids.contains(&s.id)) {
            let (Some(core), Some(m)) = (slot.core, &slot.metainfo) else {
                errors.push(format!(
                    "torrent {}: its metadata is not known yet",
                    slot.id
                ));
                continue;
            };
            let dir = confine(&self.root, &slot.entry.download_dir)?;
            let mut add = AddTorrent::new((**m).clone(), dir);
            // Hash everything: a verify is asked for because the data may have changed
            // under resume data that still looks right.
            add.recheck = true;
            if let Err(e) = self
                .client
                .recheck(core, add, None)
                .map_err(|e| e.to_string())?
            {
                errors.push(format!("torrent {}: {e}", slot.id));
            }
        }
        all_done(errors)
    }

    fn set_location(
        &mut self,
        ids: &[u64],
        location: PathBuf,
        move_data: bool,
    ) -> Result<(), String> {
        let to = confine(&self.root, &location)?;
        let mut errors = Vec::new();
        for slot in self.slots.iter().filter(|s| ids.contains(&s.id)) {
            if let Err(e) = self.start_move(slot, &to, move_data) {
                errors.push(format!("torrent {}: {e}", slot.id));
            }
        }
        // The user chose where they go: a move waiting for completion is dropped.
        for slot in self.slots.iter_mut().filter(|s| ids.contains(&s.id)) {
            slot.entry.complete_dir = None;
        }
        self.save_state()?;
        all_done(errors)
    }

    fn free_space(&mut self, path: PathBuf) -> Result<(u64, u64), String> {
        let dir = confine(&self.root, &path)?;
        unchoke_storage::free_space(&dir).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn remove(&mut self, ids: &[u64], delete_data: bool) -> Result<(), String> {
        let mut errors = Vec::new();
        let ids: Vec<u64> = self.slots_of(ids).map(|s| s.id).collect();
        for id in ids {
            let Some(pos) = self.slots.iter().position(|s| s.id == id) else {
                continue;
            };
            let slot = self.slots.remove(pos);
            if let Some(core) = slot.core {
                // Returns once no disk job holds its files: deleting after it is safe.
                if let Err(e) = self.client.remove(core).map_err(|e| e.to_string())? {
                    errors.push(format!("torrent {id}: {e}"));
                }
            }
            if slot.entry.source == Source::TorrentFile {
                self.dir.remove_torrent_file(&slot.entry.hash);
            }
            if delete_data {
                if let Err(e) = self.delete_data(&slot) {
                    errors.push(format!("torrent {id}: {e}"));
                }
            }
        }
        self.save_state()?;
        all_done(errors)
    }
}

/// The add request for a magnet link: its peers (those that resolve), trackers (a tier
/// each) and web seeds.
fn magnet_add(magnet: &Magnet, dir: &Path) -> AddMagnet {
    let peers: Vec<SocketAddr> = magnet
        .peers
        .iter()
        .filter_map(|p| p.to_socket_addrs().ok().and_then(|mut a| a.next()))
        .collect();
    AddMagnet {
        info_hash: magnet.info_hash,
        save_path: dir.to_path_buf(),
        peers,
        trackers: magnet.trackers.iter().map(|t| vec![t.clone()]).collect(),
        display_name: magnet.display_name.clone(),
        recheck: false,
        access: unchoke_driver::Access::ReadWrite,
        cancel: unchoke_driver::CancelFlag::default(),
        web_seeds: magnet.web_seeds.clone(),
    }
}

/// A .torrent file for metadata fetched through a magnet link: the info dictionary as it
/// was verified against the info-hash, with the link's trackers (a tier each) and web
/// seeds. `None` when the result would not read back as the same torrent (a hybrid's piece
/// layers are not in its info dictionary): the magnet link is kept then.
fn torrent_from_magnet(metainfo: &Metainfo, magnet: &Magnet) -> Option<Vec<u8>> {
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(format!("{}:", s.len()).as_bytes());
        out.extend_from_slice(s);
    }
    // Keys in bencode's sorted order: announce-list, info, url-list.
    let mut out = b"d".to_vec();
    if !magnet.trackers.is_empty() {
        string(&mut out, b"announce-list");
        out.push(b'l');
        for t in &magnet.trackers {
            out.push(b'l');
            string(&mut out, t.as_bytes());
            out.push(b'e');
        }
        out.push(b'e');
    }
    string(&mut out, b"info");
    out.extend_from_slice(&metainfo.info_bytes);
    if !magnet.web_seeds.is_empty() {
        string(&mut out, b"url-list");
        out.push(b'l');
        for w in &magnet.web_seeds {
            string(&mut out, w.as_bytes());
        }
        out.push(b'e');
    }
    out.push(b'e');
    Metainfo::from_bytes(&out)
        .ok()
        .filter(|m| m.info_hash == metainfo.info_hash && !m.is_hybrid() && !m.is_v2_only())
        .map(|_| out)
}

/// Tells the user of something that went wrong without stopping the daemon.
fn warn(message: &str) {
    eprintln!("unchoke daemon: {}", crate::output::printable(message));
}

/// `dir` (absolute, or relative to `root`) if it is `root` or below it, reached without
/// `..` and without a symlink below `root`: where the daemon may write and delete.
pub(crate) fn confine(root: &Path, dir: &Path) -> Result<PathBuf, String> {
    let refuse = || {
        format!(
            "download directory {} is outside the daemon's download directory {}",
            dir.display(),
            root.display()
        )
    };
    let full = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        root.join(dir)
    };
    let rel = full.strip_prefix(root).map_err(|_| refuse())?;
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(refuse());
    }
    if unchoke_storage::symlink_below(root, rel) {
        return Err(format!(
            "download directory {}: a symlink on the way (not followed)",
            dir.display()
        ));
    }
    Ok(full)
}

/// A .torrent file's bytes, refused past [`MAX_TORRENT_FILE`].
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(MAX_TORRENT_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_TORRENT_FILE {
        return Err(format!(
            "{}: larger than {MAX_TORRENT_FILE} bytes; not a .torrent file",
            path.display()
        ));
    }
    Ok(bytes)
}

/// `Ok` when no torrent of a command failed, else every failure in one message (the RPC
/// acts on each torrent it can and reports the rest).
fn all_done(errors: Vec<String>) -> Result<(), String> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_dirs_stay_inside_the_root_and_off_symlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("dl");
        std::fs::create_dir_all(root.join("movies")).expect("mkdir");
        assert_eq!(confine(&root, &root).expect("root"), root);
        assert_eq!(
            confine(&root, Path::new("movies")).expect("relative"),
            root.join("movies")
        );
        assert_eq!(
            confine(&root, &root.join("new/sub")).expect("not there yet"),
            root.join("new/sub")
        );
        for bad in [
            tmp.path().to_path_buf(),
            root.join("../elsewhere"),
            PathBuf::from("/etc"),
            PathBuf::from("../x"),
        ] {
            assert!(confine(&root, &bad).is_err(), "{}", bad.display());
        }
        std::os::unix::fs::symlink(tmp.path(), root.join("out")).expect("symlink");
        assert!(confine(&root, &root.join("out/x")).is_err());
    }
}
