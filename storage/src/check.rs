//! Checking existing data: which pieces are on disk and correct, hashed on several
//! threads, with what resume data vouches for taken as it is ([`FileStorage::verify_existing`]).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

use unchoke_core::bitfield::Bitfield;
use unchoke_core::resume::{FileState, ResumeData};

use crate::{FileStorage, StorageError, lock};

/// What a check of the existing data found ([`FileStorage::verify_existing`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOutcome {
    /// The pieces present and correct.
    pub have: Bitfield,
    /// The pieces that may hold data: `have`, and pieces read that failed their hash and
    /// are not all zeros (partly written). Pieces skipped, known empty, or read as all
    /// zeros are not in it. For [`unchoke_core::resume::ResumeData::written`].
    pub written: Bitfield,
    /// Pieces taken from the resume data without reading them.
    pub trusted: u32,
    /// Pieces not trusted, hence examined: hashed, or `skipped`.
    pub checked: u32,
    /// Of `checked`, the pieces not even read: a file they need is missing or too short,
    /// or the resume data knows them empty (never written, files unchanged since).
    pub skipped: u32,
}

/// How one piece of a check turned out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PieceCheck {
    /// Read and matching its hash.
    Good,
    /// Read, failing its hash, with some non-zero byte (partly written).
    Bad,
    /// Read, failing its hash, all zeros (never written: a sparse hole or a fresh file).
    Empty,
    /// Not read (a file it needs is missing or short).
    Skipped,
}

impl FileStorage {
    /// Hashes `pieces` on `threads` threads (at least one; the calling thread is one of
    /// them) and returns the set of those matching their metainfo hash. `progress` is
    /// called (from any of the threads) with the number of pieces done so far.
    ///
    /// A piece needing a missing file, or bytes past the end of a shorter file, is simply
    /// absent and is not even read. Other IO errors (permission denied, a failing disk) stop
    /// the check and are returned. A piece index past the end is an error.
    pub fn check_pieces(
        &self,
        pieces: impl IntoIterator<Item = u32, IntoIter: Send>,
        threads: usize,
        progress: &(dyn Fn(u32) + Sync),
    ) -> Result<Bitfield, StorageError> {
        let states = self.current_states()?;
        let never = AtomicBool::new(false);
        Ok(self
            .check_with(pieces, threads, progress, &states, &never)?
            .have)
    }

    /// [`FileStorage::check_pieces`] against file states already taken; also returns the
    /// pieces that failed holding data and how many pieces were skipped unread. Stops with
    /// [`StorageError::Cancelled`] when `cancel` rises (looked at before every piece, in
    /// every thread).
    pub(crate) fn check_with(
        &self,
        pieces: impl IntoIterator<Item = u32, IntoIter: Send>,
        threads: usize,
        progress: &(dyn Fn(u32) + Sync),
        states: &[Option<FileState>],
        cancel: &AtomicBool,
    ) -> Result<Checked, StorageError> {
        let pieces = pieces.into_iter();
        // No more threads than pieces, when the iterator knows how many it holds.
        let threads = threads
            .max(1)
            .min(pieces.size_hint().1.unwrap_or(usize::MAX).max(1));
        let queue = Mutex::new(pieces);
        let have = Mutex::new(Bitfield::new(self.layout.piece_count()));
        let bad = Mutex::new(Bitfield::new(self.layout.piece_count()));
        let done = AtomicU32::new(0);
        let skipped = AtomicU32::new(0);
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<StorageError>> = Mutex::new(None);
        let work = || {
            // One piece-sized buffer per thread, reused for every piece.
            let mut buf = Vec::new();
            while !failed.load(Ordering::Relaxed) {
                if cancel.load(Ordering::Relaxed) {
                    failed.store(true, Ordering::Relaxed);
                    lock(&first_error).get_or_insert(StorageError::Cancelled);
                    break;
                }
                let Some(piece) = lock(&queue).next() else {
                    break;
                };
                match self.check_one(piece, states, &mut buf) {
                    Ok(PieceCheck::Good) => {
                        lock(&have).set(piece);
                    }
                    Ok(PieceCheck::Bad) => {
                        lock(&bad).set(piece);
                    }
                    Ok(PieceCheck::Empty) => {}
                    Ok(PieceCheck::Skipped) => {
                        skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        lock(&first_error).get_or_insert(e);
                        break;
                    }
                }
                progress(done.fetch_add(1, Ordering::Relaxed) + 1);
            }
        };
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(work);
            }
            work();
        });
        if let Some(e) = first_error
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            return Err(e);
        }
        Ok(Checked {
            have: have.into_inner().unwrap_or_else(PoisonError::into_inner),
            bad: bad.into_inner().unwrap_or_else(PoisonError::into_inner),
            skipped: skipped.into_inner(),
        })
    }

    /// Whether `piece` matches its hash, and if not whether it holds any data; skipped
    /// when a file it needs is missing or too short (per `states`, or found so while
    /// reading).
    pub(crate) fn check_one(
        &self,
        piece: u32,
        states: &[Option<FileState>],
        buf: &mut Vec<u8>,
    ) -> Result<PieceCheck, StorageError> {
        let expected = self
            .piece_hashes
            .expected(piece)
            .ok_or(StorageError::OutOfRange {
                piece,
                offset: 0,
                len: 0,
            })?;
        for span in self.layout.piece_spans(piece) {
            if self.slot(span.file)?.padding {
                continue;
            }
            let present = states
                .get(span.file)
                .copied()
                .flatten()
                .is_some_and(|s| s.length >= span.file_offset + span.len);
            if !present {
                return Ok(PieceCheck::Skipped);
            }
        }
        match self.read_piece(piece, buf) {
            Ok(()) if expected.matches(&[&buf[..]]) => Ok(PieceCheck::Good),
            Ok(()) if buf.iter().all(|&b| b == 0) => Ok(PieceCheck::Empty),
            Ok(()) => Ok(PieceCheck::Bad),
            // The file shrank or vanished since the states were taken.
            Err(e) if e.is_missing_data() => Ok(PieceCheck::Skipped),
            Err(e) => Err(e),
        }
    }

    /// Finds which pieces are present: those `resume` vouches for (see
    /// [`ResumeData::trusted_pieces`]) are taken as they are, those it knows empty
    /// ([`ResumeData::known_empty`]: never written, files unchanged) are skipped unread,
    /// every other piece is hashed on `threads` threads, and pieces needing missing files
    /// are skipped unread. `progress` gets the number of pieces done out of the piece
    /// count, the trusted and known-empty ones counted at once.
    ///
    /// `cancel` is looked at before every piece in every thread: once it rises the check
    /// stops with [`StorageError::Cancelled`] (a check never creates or changes a file).
    ///
    /// The caller checks that `resume` belongs to this torrent (info-hash) first; resume
    /// data whose piece or file count differs is ignored here.
    pub fn verify_existing(
        &self,
        resume: Option<&ResumeData>,
        threads: usize,
        progress: &(dyn Fn(u32) + Sync),
        cancel: &AtomicBool,
    ) -> Result<CheckOutcome, StorageError> {
        if cancel.load(Ordering::Relaxed) {
            return Err(StorageError::Cancelled);
        }
        let states = self.current_states()?;
        let count = self.layout.piece_count();
        let (mut have, empty) = match resume {
            Some(r) => (
                r.trusted_in(&self.layout, |i| self.is_pad(i), &states),
                r.known_empty_in(&self.layout, |i| self.is_pad(i), &states),
            ),
            None => (Bitfield::new(count), Bitfield::new(count)),
        };
        let trusted = have.count_ones();
        let known_empty = empty.count_ones();
        if trusted + known_empty > 0 {
            progress(trusted + known_empty);
        }
        let to_hash = have.zeros().filter(|&p| !empty.get(p));
        let checked = self.check_with(
            to_hash,
            threads,
            &|done| progress(trusted + known_empty + done),
            &states,
            cancel,
        )?;
        for piece in checked.have.ones() {
            have.set(piece);
        }
        let mut written = checked.bad;
        for piece in have.ones() {
            written.set(piece);
        }
        Ok(CheckOutcome {
            have,
            written,
            trusted,
            checked: count - trusted,
            skipped: checked.skipped + known_empty,
        })
    }
}

/// What [`FileStorage::check_with`] found.
pub(crate) struct Checked {
    /// Pieces matching their hash.
    have: Bitfield,
    /// Pieces failing their hash with some non-zero byte.
    bad: Bitfield,
    /// Pieces not read.
    skipped: u32,
}
