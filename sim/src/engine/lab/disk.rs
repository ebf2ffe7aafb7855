//! The lab's emulated disks, and how the lab's driver answers a session: asynchronously,
//! as a real driver's completion queue does.
//!
//! Every answer (a write, a read, a hash, a resume save, a tracker reply, `metadata_ready`)
//! is an event at the same instant ([`DISK_LATENCY`] is 0) that runs after the session's
//! current actions were all carried out. A disk answering inside the action loop would let
//! a session see a read done before it handed out the block it read, and release held reads
//! past its `upload_read_ahead`. A slow disk's writes finish one after another at its rate.

use bytes::Bytes;
use unchoke_core::embed::verify_piece;

use super::super::{Ev, Simulation};
use super::LabNode;
use crate::lab::{Behaviour, SaveAnswer};
use crate::network::HostId;
use unchoke_core::session::{ConnId, DiskError, DiskErrorKind, PieceHash, TorrentId};
use unchoke_core::time::Instant;
use unchoke_core::tracker::{AnnounceResponse, TrackerFailure};
use unchoke_core::wire::BlockRequest;

/// How long the lab's honest disk (and tracker) take to answer, in microseconds.
pub(crate) const DISK_LATENCY: u64 = 0;

/// A lab event (see the module docs).
#[derive(Debug)]
pub(crate) enum LabEv {
    /// A slow disk finished the write of `data` at byte `at`.
    Written {
        host: HostId,
        incarnation: u32,
        torrent: TorrentId,
        piece: u32,
        at: usize,
        data: Bytes,
    },
    /// An answer for the session of `host` in this `incarnation`.
    Answer {
        host: HostId,
        incarnation: u32,
        answer: Answer,
    },
}

/// What the lab's driver answers a session.
#[derive(Debug)]
pub(crate) enum Answer {
    Written {
        torrent: TorrentId,
        piece: u32,
        result: Result<(), DiskError>,
    },
    Read {
        conn: ConnId,
        block: BlockRequest,
        result: Result<Bytes, DiskError>,
    },
    Hashed {
        torrent: TorrentId,
        piece: u32,
        ok: bool,
    },
    Saved {
        torrent: TorrentId,
        ok: bool,
    },
    Announced {
        torrent: TorrentId,
        url: String,
        result: Result<AnnounceResponse, TrackerFailure>,
    },
    /// The storage exists: the magnet's torrent may start (nothing on disk).
    MetadataReady {
        torrent: TorrentId,
    },
}

impl LabNode {
    /// Writes `data` at byte `at`, unless the emulated disk is full.
    fn store(&mut self, at: usize, data: &[u8]) -> Result<(), DiskError> {
        if let Some(space) = self.disk_space {
            let Some(left) = space.checked_sub(data.len()) else {
                return Err(DiskError::new(
                    DiskErrorKind::NoSpace,
                    format!("{} bytes at {at}: {space} bytes left", data.len()),
                ));
            };
            self.disk_space = Some(left);
        }
        match self.disk.get_mut(at..at + data.len()) {
            Some(dst) => {
                dst.copy_from_slice(data);
                Ok(())
            }
            None => Err(DiskError::new(
                DiskErrorKind::OutOfRange,
                format!("write at {at} past the end of the file"),
            )),
        }
    }
}

impl Simulation {
    /// Runs a lab event: a slow write finishing, or an answer reaching its session.
    pub(in crate::engine) fn lab_dispatch(&mut self, ev: LabEv) {
        let now = Instant::from_micros(self.now);
        match ev {
            LabEv::Written {
                host,
                incarnation,
                torrent,
                piece,
                at,
                data,
            } => {
                if !self.is_live(host, incarnation) {
                    return;
                }
                let node = &mut self.lab_mut().nodes[host];
                node.unwritten = node.unwritten.saturating_sub(data.len());
                let result = node.store(at, &data);
                if let Some(session) = self.session_mut(host) {
                    session.disk_write_done(torrent, piece, result, now);
                }
                self.drain(host);
            }
            LabEv::Answer {
                host,
                incarnation,
                answer,
            } => {
                if !self.is_live(host, incarnation) {
                    return;
                }
                let mut ready_failed = None;
                let Some(session) = self.session_mut(host) else {
                    return;
                };
                match answer {
                    Answer::Written {
                        torrent,
                        piece,
                        result,
                    } => session.disk_write_done(torrent, piece, result, now),
                    Answer::Read {
                        conn,
                        block,
                        result,
                    } => session.disk_read_done(conn, block, result, now),
                    Answer::Hashed { torrent, piece, ok } => {
                        session.piece_hashed(torrent, piece, ok, now)
                    }
                    Answer::Saved { torrent, ok } => session.resume_saved(torrent, ok, now),
                    Answer::Announced {
                        torrent,
                        url,
                        result,
                    } => session.announce_done(torrent, &url, result, now),
                    Answer::MetadataReady { torrent } => {
                        ready_failed = session.metadata_ready(torrent, None, now).err();
                    }
                }
                if let Some(e) = ready_failed {
                    self.violation(format!("host {host}: metadata_ready failed: {e}"));
                }
                self.drain(host);
            }
        }
    }

    /// Answers `host`'s session after the lab's disk latency (0: at the same instant,
    /// once its current actions are carried out).
    pub(super) fn lab_answer(&mut self, host: HostId, answer: Answer) {
        let incarnation = self.hosts[host].incarnation;
        let at = self.now + DISK_LATENCY;
        self.push(
            at,
            Ev::Lab(LabEv::Answer {
                host,
                incarnation,
                answer,
            }),
        );
    }

    /// Answers every save held under [`SaveAnswer::Hold`].
    pub(crate) fn lab_answer_held_saves(&mut self, ok: bool) {
        let held = std::mem::take(&mut self.lab_mut().held_saves);
        for (host, incarnation, torrent) in held {
            if self.is_live(host, incarnation) {
                self.lab_answer(host, Answer::Saved { torrent, ok });
            }
        }
    }

    /// A lab host's `WriteBlock`: stored on its emulated disk (a stalled disk never
    /// answers; a slow one answers after the writes before it and this one took their time).
    pub(super) fn lab_write(
        &mut self,
        host: HostId,
        (torrent, piece, offset): (TorrentId, u32, u32),
        data: Bytes,
    ) {
        let incarnation = self.hosts[host].incarnation;
        let now = self.now;
        let lab = self.lab_mut();
        let at = piece as usize * lab.piece_length + offset as usize;
        let node = &mut lab.nodes[host];
        if node.behaviour == Behaviour::Stall {
            return;
        }
        if let Some(rate) = node.disk_rate {
            let took = (data.len() as f64 / rate * 1e6).ceil();
            // A rate of 0 never finishes.
            let took = if took.is_finite() {
                took as u64
            } else {
                u64::MAX / 4
            };
            let done = node.disk_free_at.max(now).saturating_add(took);
            node.disk_free_at = done;
            node.unwritten += data.len();
            self.push(
                done,
                Ev::Lab(LabEv::Written {
                    host,
                    incarnation,
                    torrent,
                    piece,
                    at,
                    data,
                }),
            );
            return;
        }
        let result = node.store(at, &data);
        self.lab_answer(
            host,
            Answer::Written {
                torrent,
                piece,
                result,
            },
        );
    }

    /// A lab host's `ReadBlock`: served from its emulated disk as its [`Behaviour`] says.
    pub(super) fn lab_read(&mut self, host: HostId, conn: ConnId, block: BlockRequest) {
        let lab = self.lab_ref();
        let node = &lab.nodes[host];
        let at = block.index as usize * lab.piece_length + block.begin as usize;
        let flip = match node.behaviour {
            Behaviour::Honest => false,
            Behaviour::Corrupt => true,
            Behaviour::CorruptFirstBlock => block.begin == 0,
            Behaviour::Stall => return,
        };
        let result = match node.disk.get(at..at + block.length as usize) {
            Some(bytes) => {
                let mut data = bytes.to_vec();
                if flip {
                    data.iter_mut().for_each(|b| *b = !*b);
                }
                Ok(Bytes::from(data))
            }
            None => Err(DiskError::new(
                DiskErrorKind::OutOfRange,
                "read past the end of the file",
            )),
        };
        self.lab_answer(
            host,
            Answer::Read {
                conn,
                block,
                result,
            },
        );
    }

    /// A lab host's `VerifyPiece`: the check of the blocks it gave, as a driver makes it.
    pub(super) fn lab_verify(
        &mut self,
        host: HostId,
        (torrent, piece): (TorrentId, u32),
        expected: &PieceHash,
        blocks: &[Bytes],
    ) {
        let ok = verify_piece(blocks, expected);
        if ok {
            self.hosts[host].have.set(piece);
        }
        self.lab_answer(host, Answer::Hashed { torrent, piece, ok });
    }

    /// A lab host's `SaveResume`, answered as [`SaveAnswer`] says.
    pub(super) fn lab_save(&mut self, host: HostId, torrent: TorrentId) {
        let incarnation = self.hosts[host].incarnation;
        let lab = self.lab_mut();
        let ok = match lab.save_answer {
            SaveAnswer::Ok => true,
            SaveAnswer::Fail => false,
            SaveAnswer::Hold => {
                lab.held_saves.push((host, incarnation, torrent));
                return;
            }
        };
        self.lab_answer(host, Answer::Saved { torrent, ok });
    }
}
