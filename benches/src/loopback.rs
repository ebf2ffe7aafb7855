//! An in-process seed and leech over loopback TCP, for the `loopback` bench.
//!
//! [`LoopbackSwarm::start`] writes a file of random bytes into a temporary directory, makes
//! a single-file torrent of it and starts a seeding client on `127.0.0.1` (which checks the
//! data once, untimed). Each [`LoopbackSwarm::transfer`] then starts a fresh leeching client
//! on `127.0.0.2` in a fresh directory, dials the seed, and times the transfer from starting
//! the leecher until the session reports the torrent complete (every piece verified and
//! written); the leecher is then shut down and its directory removed, outside the timed
//! part. Both clients run on the same runtime; no tracker is involved; every wait is
//! bounded.

use std::fs::File;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};
use unchoke_core::create::{Content, CreateOptions, TorrentPlan};
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::Event;
use unchoke_driver::{AddTorrent, ClientConfig, ClientCore, ClientError, ClientEvent};

/// Name of the payload file (and of the torrent).
const PAYLOAD_NAME: &str = "payload.bin";

/// Which driver runs both clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// `unchoke-mio`: one event-loop thread plus disk workers.
    Mio,
    /// `unchoke-smol`: a session task with its socket tasks, disk work on smol's pool.
    Smol,
}

impl Runtime {
    /// Both runtimes, in the order the bench runs them.
    pub const ALL: [Runtime; 2] = [Runtime::Mio, Runtime::Smol];

    /// The runtime's name as `--runtime` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Mio => "mio",
            Runtime::Smol => "smol",
        }
    }
}

/// What can stop a loopback transfer.
#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    /// Writing or reading the payload or a temporary directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The torrent could not be made.
    #[error("cannot make the torrent: {0}")]
    Torrent(String),
    /// A client failed to start, add the torrent or answer.
    #[error("{role}: {source}")]
    Client {
        /// `seed` or `leech`.
        role: &'static str,
        /// Why.
        source: ClientError,
    },
    /// The seed did not find its data complete.
    #[error("the seed has {have} of {count} pieces after its check")]
    SeedIncomplete {
        /// Pieces found.
        have: u32,
        /// Pieces in the torrent.
        count: u32,
    },
    /// The leecher did not finish in time.
    #[error("the leecher did not complete within {0:?}")]
    Timeout(Duration),
    /// The downloaded file differs from the payload.
    #[error("the downloaded file differs from the payload")]
    Corrupt,
}

/// A client of either runtime; both deref to the shared [`ClientCore`].
enum Client {
    Mio(unchoke_mio::Client),
    Smol(unchoke_smol::Client),
}

impl Client {
    fn new(runtime: Runtime, config: ClientConfig) -> Result<Client, ClientError> {
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

/// A seeding client and its data; leechers come and go per [`transfer`](Self::transfer).
pub struct LoopbackSwarm {
    runtime: Runtime,
    metainfo: Metainfo,
    seed: Client,
    seed_addr: SocketAddr,
    payload_sha1: [u8; 20],
    /// Holds the seed's data and every leecher's directory; removed on drop.
    dir: tempfile::TempDir,
    transfers: u32,
}

impl std::fmt::Debug for LoopbackSwarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackSwarm")
            .field("runtime", &self.runtime)
            .field("seed_addr", &self.seed_addr)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LoopbackError + '_ {
    move |source| LoopbackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl LoopbackSwarm {
    /// Writes `size` random bytes in pieces of `piece_length`, makes the torrent and starts
    /// the seed on `127.0.0.1` (port chosen by the OS) on `runtime`. Blocks while the seed
    /// checks its data.
    pub fn start(runtime: Runtime, size: u64, piece_length: u32) -> Result<Self, LoopbackError> {
        let dir = tempfile::Builder::new()
            .prefix("unchoke-bench-loopback-")
            .tempdir()
            .map_err(io_err(&std::env::temp_dir()))?;
        let seed_dir = dir.path().join("seed");
        std::fs::create_dir_all(&seed_dir).map_err(io_err(&seed_dir))?;
        let (metainfo, payload_sha1) = make_payload(&seed_dir, size, piece_length)?;

        let seed = Client::new(runtime, config([127, 0, 0, 1])).map_err(|source| {
            LoopbackError::Client {
                role: "seed",
                source,
            }
        })?;
        let mut add = AddTorrent::new(metainfo.clone(), &seed_dir);
        add.trackers = Some(Vec::new());
        let handle = seed
            .add_torrent(add, &|_| {})
            .map_err(|source| LoopbackError::Client {
                role: "seed",
                source,
            })?;
        if handle.check.pieces_have != handle.check.piece_count {
            return Err(LoopbackError::SeedIncomplete {
                have: handle.check.pieces_have,
                count: handle.check.piece_count,
            });
        }
        let seed_addr = seed.local_addr().ok_or(LoopbackError::Client {
            role: "seed",
            source: ClientError::Stopped,
        })?;
        Ok(LoopbackSwarm {
            runtime,
            metainfo,
            seed,
            seed_addr,
            payload_sha1,
            dir,
            transfers: 0,
        })
    }

    /// The torrent's size in bytes.
    pub fn size(&self) -> u64 {
        self.metainfo.info.total_length
    }

    /// The runtime both clients run on.
    pub fn runtime(&self) -> Runtime {
        self.runtime
    }

    /// Downloads the torrent once into a fresh leecher on `127.0.0.2` and returns the time
    /// from starting the leecher to its session's "torrent complete". With `check_file`,
    /// the downloaded file is also hashed against the payload (untimed). Fails after
    /// `timeout`.
    pub fn transfer(
        &mut self,
        timeout: Duration,
        check_file: bool,
    ) -> Result<Duration, LoopbackError> {
        self.transfers += 1;
        let leech_dir = self.dir.path().join(format!("leech-{}", self.transfers));
        let leech_err = |source| LoopbackError::Client {
            role: "leech",
            source,
        };

        let started = Instant::now();
        let deadline = started + timeout;
        let mut leech = Client::new(self.runtime, config([127, 0, 0, 2])).map_err(leech_err)?;
        let mut add = AddTorrent::new(self.metainfo.clone(), &leech_dir);
        add.trackers = Some(Vec::new());
        add.peers.push(self.seed_addr);
        let handle = leech.add_torrent(add, &|_| {}).map_err(leech_err)?;
        let completed = wait_complete(&leech, handle.id, deadline).map_err(leech_err)?;
        let elapsed = started.elapsed();

        let shutdown = leech.shutdown().map_err(leech_err);
        let result = match (completed, shutdown) {
            (false, _) => Err(LoopbackError::Timeout(timeout)),
            (true, Err(e)) => Err(e),
            (true, Ok(_)) if check_file => {
                let path = leech_dir.join(PAYLOAD_NAME);
                if sha1_file(&path).map_err(io_err(&path))? == self.payload_sha1 {
                    Ok(elapsed)
                } else {
                    Err(LoopbackError::Corrupt)
                }
            }
            (true, Ok(_)) => Ok(elapsed),
        };
        std::fs::remove_dir_all(&leech_dir).map_err(io_err(&leech_dir))?;
        result
    }

    /// Stops the seed (it also stops when dropped) and removes the data.
    pub fn shutdown(mut self) -> Result<(), LoopbackError> {
        self.seed
            .shutdown()
            .map(|_| ())
            .map_err(|source| LoopbackError::Client {
                role: "seed",
                source,
            })
    }
}

/// A client listening on `ip` (port chosen by the OS), its dials bound to the same address.
fn config(ip: [u8; 4]) -> ClientConfig {
    ClientConfig {
        listen: Some(SocketAddr::from((ip, 0))),
        ..ClientConfig::default()
    }
}

/// Waits until `torrent` is complete or `deadline` passes; `Ok(false)` on the deadline.
/// The event is the signal; the counters are asked every 200 ms in case it was missed.
fn wait_complete(
    client: &ClientCore,
    torrent: unchoke_core::session::TorrentId,
    deadline: Instant,
) -> Result<bool, ClientError> {
    let mut next_poll = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        if now >= next_poll {
            if client.stats(torrent)?.is_some_and(|s| s.complete) {
                return Ok(true);
            }
            next_poll = now + Duration::from_millis(200);
        }
        let wait = next_poll.min(deadline).saturating_duration_since(now);
        match client.events().recv_timeout(wait) {
            Ok(ClientEvent::Session(Event::TorrentComplete { torrent: t })) if t == torrent => {
                return Ok(true);
            }
            Ok(_) | Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err(ClientError::Stopped);
            }
        }
    }
}

/// Writes `size` random bytes as `dir/payload.bin`, hashing pieces as it goes; returns the
/// torrent and the SHA-1 of the whole file.
fn make_payload(
    dir: &Path,
    size: u64,
    piece_length: u32,
) -> Result<(Metainfo, [u8; 20]), LoopbackError> {
    let plan = TorrentPlan::new(Content::SingleFile { length: size }, Some(piece_length))
        .map_err(|e| LoopbackError::Torrent(e.to_string()))?;
    let path = dir.join(PAYLOAD_NAME);
    let mut file = File::create(&path).map_err(io_err(&path))?;
    let mut rng = fastrand::Rng::with_seed(size);
    let mut whole = Sha1::new();
    let mut hashes = Vec::with_capacity(plan.piece_count() as usize);
    let mut buf = vec![0u8; plan.piece_length() as usize];
    for piece in 0..plan.piece_count() {
        let chunk = &mut buf[..plan.piece_len(piece) as usize];
        rng.fill(chunk);
        whole.update(&*chunk);
        hashes.push(Sha1::digest(&*chunk).into());
        file.write_all(chunk).map_err(io_err(&path))?;
    }
    file.sync_all().map_err(io_err(&path))?;
    let options = CreateOptions::new(PAYLOAD_NAME);
    let bytes = plan
        .finish(&hashes, &options)
        .map_err(|e| LoopbackError::Torrent(e.to_string()))?;
    let metainfo =
        Metainfo::from_bytes(&bytes).map_err(|e| LoopbackError::Torrent(e.to_string()))?;
    Ok((metainfo, whole.finalize().into()))
}

/// SHA-1 of a whole file.
fn sha1_file(path: &Path) -> std::io::Result<[u8; 20]> {
    let mut f = File::open(path)?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_runtimes_transfer_a_torrent_twice() {
        for runtime in Runtime::ALL {
            let mut swarm = LoopbackSwarm::start(runtime, 3 << 20, 256 * 1024).unwrap();
            assert_eq!(swarm.size(), 3 << 20);
            for _ in 0..2 {
                let t = swarm.transfer(Duration::from_secs(60), true).unwrap();
                assert!(t > Duration::ZERO);
            }
            // Each leecher's directory is gone once its transfer is timed.
            let leftovers = std::fs::read_dir(swarm.dir.path())
                .unwrap()
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("leech-"))
                .count();
            assert_eq!(leftovers, 0, "{}", runtime.name());
            swarm.shutdown().unwrap();
        }
    }
}
