//! Which block to request next: rarest first, started pieces first, random first pieces,
//! priorities and endgame. Pure and deterministic: randomness comes from the caller's rng.
//!
//! # What the picker knows
//!
//! - The geometry: piece length and total length (the last piece may be short), split into
//!   [`BLOCK_LEN`] (16 KiB) blocks (the last block of the last piece may be short).
//! - Our verified pieces ([`Picker::have`]) and a [`Priority`] per piece.
//! - Availability: how many connected peers have each piece, fed by
//!   [`peer_bitfield`](Picker::peer_bitfield), [`peer_have`](Picker::peer_have) and
//!   [`peer_left`](Picker::peer_left). The picker keeps no per-peer piece sets: the caller
//!   owns each peer's [`Bitfield`] and reports a `have` only when it is new
//!   ([`Bitfield::set`] returns whether it was), and on departure hands back the same
//!   bitfield it counted. A `have all` is `peer_bitfield(&Bitfield::full(n))`.
//! - The pieces in progress ("downloads"), each with a [`BlockState`] per block: `Free`,
//!   `Requested` by up to [`MAX_REQUESTS_PER_BLOCK`] peers, or `Received` from one peer (kept
//!   so [`piece_failed`](Picker::piece_failed) can name the contributors).
//!
//! Peers are named by a caller-chosen [`PeerKey`].
//!
//! # Picking ([`Picker::pick_blocks`])
//!
//! 1. Free blocks of pieces already in progress that the peer has (a piece is in progress
//!    from its first request until it is verified or failed), so pieces are completed rather
//!    than many being left half done. A piece that failed its hash before
//!    ([`Picker::prefer_one_peer`]) is left to the one peer that opened it, so its next
//!    failure names one sender.
//! 2. While we have verified fewer than [`RANDOM_FIRST_PIECES`] pieces, a new piece chosen at
//!    random among those the peer has, so a newcomer quickly owns something to trade.
//! 3. Otherwise rarest first: among the pieces the peer has and we still want, the one with
//!    the lowest availability; ties broken at random with the rng. `High` pieces come before
//!    any `Normal` piece, and `Normal` ones before any `Low` piece (in the random phase
//!    too); `Skip` pieces are never picked.
//! 4. Endgame ([`Picker::in_endgame`]): once no wanted piece has a `Free` block left, blocks
//!    already requested from *other* peers are requested again from this one, fewest
//!    outstanding copies first, never twice from the same peer and never more than
//!    [`MAX_REQUESTS_PER_BLOCK`] copies of a block at once. When one copy arrives,
//!    [`block_received`](Picker::block_received) names the other requesters so the caller
//!    can send them `cancel`.
//!
//! # Data structures and complexity
//!
//! `n` pieces, `P` peers, `D` pieces in progress, `B` blocks per piece.
//!
//! Pieces that are wanted, missing and not in progress sit in one of three lists (`High`,
//! `Normal`, `Low`), each ordered by availability in contiguous buckets (see `buckets.rs`). A change
//! of availability by one moves a piece across a bucket boundary with one swap: O(1).
//! Starting, verifying or failing a piece inserts or removes it: O(P) (the number of
//! buckets). Per-piece vectors give O(1) lookups; pieces in progress live in a `Vec`, so
//! iteration order never depends on a hasher.
//!
//! | operation | cost |
//! |---|---|
//! | `peer_have` | O(1) |
//! | `peer_bitfield`, `peer_left` | O(n / 64 + pieces set) |
//! | `pick_blocks`, phase 1 | O(D · B) |
//! | `pick_blocks`, phases 2–3, per new piece | O(n) worst case (a peer with few pieces); typically the size of the rarest non-empty bucket, whose scan stops at the first piece the peer has — empty buckets are jumped over, not visited — plus O(P) to take the piece out of its list |
//! | `pick_blocks`, phase 4 | O(D · B · `MAX_REQUESTS_PER_BLOCK`) |
//! | `block_received`, `request_cancelled` | O(1) (O(B + P) when a piece starts or is abandoned) |
//! | `peer_requests_dropped` | O(D · B) |
//! | `piece_verified`, `piece_failed` | O(B + P) |
//! | `set_piece_priority` | O(n + P) (lists rebuilt by counting sort) |
//! | `is_interesting` | O(n / 64) |
//!
//! Nothing is sorted per pick and nothing is allocated in the steady state: block vectors
//! of finished pieces are kept for reuse, and `out` is the caller's.
//!
//! Tie-breaking scans a bucket from a random start and takes the first piece the peer has;
//! it is cheap but not exactly uniform (a piece after a run of pieces the peer lacks is
//! likelier). That is enough to keep peers from converging on the same piece.
//!
//! Not here: piece-affinity per peer speed class, sequential/streaming mode, and a "seed
//! count" shortcut for `have all` (it is counted as a full bitfield).

mod buckets;
#[cfg(test)]
mod tests;

use std::ops::Range;

use crate::bitfield::Bitfield;
use buckets::{Buckets, NONE};

/// The caller's name for a peer connection (e.g. a slab index). Opaque to the picker.
pub type PeerKey = u32;

/// Size of a requested block: 16 KiB. Only the last block of the last piece is shorter.
pub const BLOCK_LEN: u32 = 16 * 1024;

/// While we have verified fewer pieces than this, new pieces are picked at random instead
/// of rarest first.
pub const RANDOM_FIRST_PIECES: u32 = 4;

/// The most peers one block is requested from at the same time (endgame duplicates
/// included): the first request plus at most two duplicates.
pub const MAX_REQUESTS_PER_BLOCK: usize = 3;

/// How much we want a piece.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Not wanted: never requested, not needed for completion.
    Skip,
    /// Wanted, but only once no `Normal` or `High` piece can be opened.
    Low,
    /// Wanted, rarest first.
    #[default]
    Normal,
    /// Wanted before every `Normal` piece.
    High,
}

/// One block to request: `request(piece, offset, len)` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockRequest {
    /// Piece index.
    pub piece: u32,
    /// Byte offset of the block within the piece (a multiple of [`BLOCK_LEN`]).
    pub offset: u32,
    /// Length in bytes: [`BLOCK_LEN`], or less for the last block of the last piece.
    pub len: u32,
}

/// The peers one block is currently requested from: at most [`MAX_REQUESTS_PER_BLOCK`],
/// stored inline (no allocation), in the order they were asked.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Requesters {
    peers: [PeerKey; MAX_REQUESTS_PER_BLOCK],
    len: u8,
}

impl Requesters {
    /// The requesting peers.
    pub fn as_slice(&self) -> &[PeerKey] {
        &self.peers[..self.len as usize]
    }

    /// Number of requesting peers.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// `true` when no peer is listed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `peer` is listed.
    pub fn contains(&self, peer: PeerKey) -> bool {
        self.as_slice().contains(&peer)
    }

    /// Adds `peer` unless full or already present; returns whether it was added.
    fn push(&mut self, peer: PeerKey) -> bool {
        let n = self.len as usize;
        if n >= MAX_REQUESTS_PER_BLOCK || self.contains(peer) {
            return false;
        }
        self.peers[n] = peer;
        self.len += 1;
        true
    }

    /// Removes `peer`, keeping the others in order; returns whether it was present.
    fn remove(&mut self, peer: PeerKey) -> bool {
        let n = self.len as usize;
        let Some(i) = self.peers[..n].iter().position(|&p| p == peer) else {
            return false;
        };
        self.peers.copy_within(i + 1..n, i);
        self.len -= 1;
        true
    }

    fn one(peer: PeerKey) -> Self {
        let mut r = Requesters::default();
        r.push(peer);
        r
    }
}

impl std::fmt::Debug for Requesters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// The state of one block of a piece in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockState {
    /// Neither requested nor received.
    Free,
    /// Requested and not yet received.
    Requested {
        /// The peers it is outstanding at.
        by: Requesters,
    },
    /// Received (not yet verified: verification is per piece).
    Received {
        /// The peer whose copy was kept.
        from: PeerKey,
    },
}

/// How an arriving block relates to what we asked for. See [`Picker::block_received`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Receipt {
    /// We had requested it from this peer: recorded as received.
    Requested,
    /// We still lacked it but had not requested it from this peer (it arrived after a
    /// cancel, a timeout or a choke dropped the request): recorded as received. Whether to
    /// accept unrequested data at all is the caller's policy; it must decide before calling.
    Unrequested,
    /// We already had it (received from another peer or the piece is verified): discard
    /// the data. Expected in endgame when a cancel was too late.
    Duplicate,
    /// Not a block of this torrent (piece out of range, offset not a block boundary or past
    /// the piece end): a protocol violation. Nothing was recorded.
    Invalid,
}

/// What the caller must do after a block arrived. See [`Picker::block_received`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockOutcome {
    /// Whether the data is new and kept.
    pub receipt: Receipt,
    /// Other peers the block was still requested from: send them `cancel`. Their requests
    /// are already forgotten by the picker.
    pub cancel: Requesters,
    /// Every block of the piece is now received: the caller should verify it and then call
    /// [`Picker::piece_verified`] or [`Picker::piece_failed`].
    pub piece_complete: bool,
}

/// Why a picker could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PickerError {
    /// The piece length was zero.
    #[error("piece length must be positive")]
    ZeroPieceLength,
    /// The torrent has more pieces than a `u32` index can address (`u32::MAX` itself is
    /// reserved).
    #[error(
        "{total_length} bytes in pieces of {piece_length} bytes is too many pieces (at most 2^32 - 2)"
    )]
    TooManyPieces {
        /// Total length in bytes.
        total_length: u64,
        /// Piece length in bytes.
        piece_length: u32,
    },
    /// The initial `have` bitfield does not cover exactly the torrent's pieces.
    #[error("have bitfield covers {got} pieces, the torrent has {expected}")]
    HaveLengthMismatch {
        /// Pieces covered by the bitfield.
        got: u32,
        /// Pieces in the torrent.
        expected: u32,
    },
}

/// Piece and block sizes.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    piece_length: u32,
    total_length: u64,
    num_pieces: u32,
}

impl Geometry {
    /// Length of `piece` in bytes, `None` if out of range.
    fn piece_len(&self, piece: u32) -> Option<u32> {
        if piece >= self.num_pieces {
            return None;
        }
        if piece + 1 < self.num_pieces {
            return Some(self.piece_length);
        }
        let before = u64::from(piece) * u64::from(self.piece_length);
        // The last piece is 1..=piece_length bytes, so this fits a u32.
        u32::try_from(self.total_length - before).ok()
    }

    fn blocks_in(&self, piece: u32) -> u32 {
        self.piece_len(piece).unwrap_or(0).div_ceil(BLOCK_LEN)
    }

    /// The request for block `block` of `piece` (both assumed in range).
    fn request(&self, piece: u32, block: u32) -> BlockRequest {
        let offset = block * BLOCK_LEN;
        let piece_len = self.piece_len(piece).unwrap_or(0);
        BlockRequest {
            piece,
            offset,
            len: piece_len.saturating_sub(offset).min(BLOCK_LEN),
        }
    }

    /// Index of the block at `offset` in `piece`, if that is a block boundary in range.
    fn block_index(&self, piece: u32, offset: u32) -> Option<u32> {
        let len = self.piece_len(piece)?;
        (offset % BLOCK_LEN == 0 && offset < len).then_some(offset / BLOCK_LEN)
    }
}

/// One piece in progress.
#[derive(Clone, Debug)]
struct Download {
    piece: u32,
    blocks: Vec<BlockState>,
    free: u32,
    received: u32,
    /// The one peer this piece is being downloaded from, for a piece that failed its hash
    /// before (see [`Picker::prefer_one_peer`]); other peers leave its free blocks alone.
    owner: Option<PeerKey>,
}

impl Download {
    fn untouched(&self) -> bool {
        self.free as usize == self.blocks.len()
    }
}

/// Which block to request next. See the module docs.
#[derive(Clone, Debug)]
pub struct Picker {
    geo: Geometry,
    have: Bitfield,
    /// Pieces with priority other than `Skip` that are not verified.
    wanted: Bitfield,
    priority: Vec<Priority>,
    availability: Vec<u32>,
    /// `[High, Normal, Low]`: wanted pieces that are not in progress, by availability.
    lists: [Buckets; 3],
    /// Index of each piece in its list's order, or `NONE`.
    pos: Vec<u32>,
    downloads: Vec<Download>,
    /// Index of each piece in `downloads`, or `NONE`.
    slot: Vec<u32>,
    /// Block vectors of finished downloads, reused to avoid allocating.
    spare: Vec<Vec<BlockState>>,
    /// Pieces that failed their hash: the peer that next opens one downloads it alone.
    solo: Bitfield,
}

/// Which list a priority's pieces live in.
fn list_of(p: Priority) -> Option<usize> {
    match p {
        Priority::High => Some(0),
        Priority::Normal => Some(1),
        Priority::Low => Some(2),
        Priority::Skip => None,
    }
}

impl Picker {
    /// A picker for a torrent of `total_length` bytes in pieces of `piece_length` bytes, with
    /// no piece verified yet, every piece `Normal` and no peer counted.
    pub fn new(piece_length: u32, total_length: u64) -> Result<Self, PickerError> {
        if piece_length == 0 {
            return Err(PickerError::ZeroPieceLength);
        }
        let num_pieces = u32::try_from(total_length.div_ceil(u64::from(piece_length)))
            .ok()
            .filter(|&n| n != u32::MAX)
            .ok_or(PickerError::TooManyPieces {
                total_length,
                piece_length,
            })?;
        let n = num_pieces as usize;
        let mut picker = Picker {
            geo: Geometry {
                piece_length,
                total_length,
                num_pieces,
            },
            have: Bitfield::new(num_pieces),
            wanted: Bitfield::full(num_pieces),
            priority: vec![Priority::Normal; n],
            availability: vec![0; n],
            lists: [Buckets::new(), Buckets::new(), Buckets::new()],
            pos: vec![NONE; n],
            downloads: Vec::new(),
            slot: vec![NONE; n],
            spare: Vec::new(),
            solo: Bitfield::new(num_pieces),
        };
        picker.rebuild_lists();
        Ok(picker)
    }

    /// Like [`new`](Self::new), starting from the pieces already verified in `have` (resume
    /// data or a recheck).
    pub fn with_have(
        piece_length: u32,
        total_length: u64,
        have: Bitfield,
    ) -> Result<Self, PickerError> {
        let mut picker = Picker::new(piece_length, total_length)?;
        if have.len() != picker.geo.num_pieces {
            return Err(PickerError::HaveLengthMismatch {
                got: have.len(),
                expected: picker.geo.num_pieces,
            });
        }
        for p in have.ones() {
            picker.wanted.clear(p);
        }
        picker.have = have;
        picker.rebuild_lists();
        Ok(picker)
    }

    // ----- geometry -------------------------------------------------------------------

    /// Number of pieces.
    pub fn num_pieces(&self) -> u32 {
        self.geo.num_pieces
    }

    /// The nominal piece length (every piece but possibly the last).
    pub fn piece_length(&self) -> u32 {
        self.geo.piece_length
    }

    /// Total length of the torrent in bytes.
    pub fn total_length(&self) -> u64 {
        self.geo.total_length
    }

    /// Length of `piece` in bytes (the last piece may be short), `None` if out of range.
    pub fn piece_len(&self, piece: u32) -> Option<u32> {
        self.geo.piece_len(piece)
    }

    /// Number of blocks in `piece`, `None` if out of range.
    pub fn blocks_in_piece(&self, piece: u32) -> Option<u32> {
        self.geo.piece_len(piece).map(|l| l.div_ceil(BLOCK_LEN))
    }

    /// The block of `piece` starting at `offset`, with its exact length, or `None` if that is
    /// not a block of this torrent. Use it to validate an incoming `piece` message's length
    /// (or a peer's `request`) before acting on it.
    pub fn block_at(&self, piece: u32, offset: u32) -> Option<BlockRequest> {
        let block = self.geo.block_index(piece, offset)?;
        Some(self.geo.request(piece, block))
    }

    // ----- our pieces and priorities --------------------------------------------------

    /// The pieces we have verified.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// The pieces we still want: not verified and not `Skip`.
    pub fn wanted(&self) -> &Bitfield {
        &self.wanted
    }

    /// `true` when every piece not marked `Skip` is verified.
    pub fn is_complete(&self) -> bool {
        self.wanted.is_empty()
    }

    /// Priority of `piece` (`Skip` if out of range).
    pub fn priority(&self, piece: u32) -> Priority {
        self.priority
            .get(piece as usize)
            .copied()
            .unwrap_or(Priority::Skip)
    }

    /// Sets the priority of every piece in `pieces` (clamped to the torrent). The session
    /// maps file priorities to piece ranges; where a piece spans two files it should pass the
    /// higher priority. A piece in progress keeps its received blocks when set to `Skip` and
    /// is simply no longer requested. O(n + P).
    pub fn set_piece_priority(&mut self, pieces: Range<u32>, priority: Priority) {
        let end = pieces.end.min(self.geo.num_pieces);
        for p in pieces.start..end {
            self.priority[p as usize] = priority;
            if !self.have.get(p) {
                if priority == Priority::Skip {
                    self.wanted.clear(p);
                } else {
                    self.wanted.set(p);
                }
            }
        }
        self.rebuild_lists();
    }

    // ----- availability ---------------------------------------------------------------

    /// How many counted peers have `piece` (0 if out of range).
    pub fn availability(&self, piece: u32) -> u32 {
        self.availability.get(piece as usize).copied().unwrap_or(0)
    }

    /// Counts a peer's `bitfield` (or `have all`, as a full bitfield). Pieces past our
    /// piece count are ignored.
    pub fn peer_bitfield(&mut self, peer_has: &Bitfield) {
        for p in peer_has.ones() {
            self.add_availability(p);
        }
    }

    /// Counts a peer's `have` for `piece`. Call it only when the piece is new for that peer.
    /// Returns `false` (and does nothing) if `piece` is out of range.
    pub fn peer_have(&mut self, piece: u32) -> bool {
        if piece >= self.geo.num_pieces {
            return false;
        }
        self.add_availability(piece);
        true
    }

    /// Uncounts a departing peer: pass the bitfield that was counted for it (its `bitfield`
    /// plus its `have`s). Counts never go below zero.
    pub fn peer_left(&mut self, peer_has: &Bitfield) {
        for p in peer_has.ones() {
            self.remove_availability(p);
        }
    }

    fn add_availability(&mut self, p: u32) {
        let Some(&a) = self.availability.get(p as usize) else {
            return;
        };
        if a == u32::MAX - 1 {
            return;
        }
        if self.pos[p as usize] != NONE {
            if let Some(l) = list_of(self.priority[p as usize]) {
                self.lists[l].increment(p, a, &mut self.pos);
            }
        }
        self.availability[p as usize] = a + 1;
    }

    fn remove_availability(&mut self, p: u32) {
        let Some(&a) = self.availability.get(p as usize) else {
            return;
        };
        if a == 0 {
            return;
        }
        if self.pos[p as usize] != NONE {
            if let Some(l) = list_of(self.priority[p as usize]) {
                self.lists[l].decrement(p, a, &mut self.pos);
            }
        }
        self.availability[p as usize] = a - 1;
    }

    /// Whether the peer has a piece we want (so we should be interested in it).
    pub fn is_interesting(&self, peer_has: &Bitfield) -> bool {
        peer_has.intersects(&self.wanted)
    }

    // ----- picking --------------------------------------------------------------------

    /// Appends to `out` up to `max` blocks to request from `peer`, which has the pieces in
    /// `peer_has`, and records them as requested by `peer`. See the module docs for the
    /// order. Appends nothing when the peer has nothing we want.
    pub fn pick_blocks(
        &mut self,
        peer: PeerKey,
        peer_has: &Bitfield,
        max: usize,
        rng: &mut fastrand::Rng,
        out: &mut Vec<BlockRequest>,
    ) {
        let mut budget = max;
        if budget == 0 {
            return;
        }
        // 1. Finish what is started.
        for d in 0..self.downloads.len() {
            if budget == 0 {
                return;
            }
            let piece = self.downloads[d].piece;
            if self.downloads[d].free > 0
                && self.downloads[d].owner.is_none_or(|o| o == peer)
                && peer_has.get(piece)
                && self.priority[piece as usize] != Priority::Skip
            {
                self.take_free(d, peer, &mut budget, out);
            }
        }
        // 2. and 3. Open new pieces.
        while budget > 0 {
            let Some(piece) = self.next_new_piece(peer_has, rng) else {
                break;
            };
            let d = self.start_download(piece);
            if self.solo.get(piece) {
                self.downloads[d].owner = Some(peer);
            }
            self.take_free(d, peer, &mut budget, out);
        }
        // 4. Endgame: only reached with budget left when no wanted block is free.
        if budget > 0 && self.in_endgame() {
            self.pick_duplicates(peer, peer_has, budget, rng, out);
        }
    }

    /// Requests the free blocks of download `d` from `peer`, in order, within `budget`.
    fn take_free(
        &mut self,
        d: usize,
        peer: PeerKey,
        budget: &mut usize,
        out: &mut Vec<BlockRequest>,
    ) {
        let geo = self.geo;
        let dl = &mut self.downloads[d];
        for (i, b) in dl.blocks.iter_mut().enumerate() {
            if *budget == 0 || dl.free == 0 {
                break;
            }
            if *b == BlockState::Free {
                *b = BlockState::Requested {
                    by: Requesters::one(peer),
                };
                dl.free -= 1;
                *budget -= 1;
                out.push(geo.request(dl.piece, i as u32));
            }
        }
    }

    /// The next piece to open for a peer that has `peer_has`: `High` list first, `Low` last.
    fn next_new_piece(&self, peer_has: &Bitfield, rng: &mut fastrand::Rng) -> Option<u32> {
        let random_phase = self.have.count_ones() < RANDOM_FIRST_PIECES;
        for list in &self.lists {
            let found = if random_phase {
                scan_from_random(list.as_slice(), peer_has, rng)
            } else {
                list.non_empty(|p| self.availability(p))
                    .find_map(|a| scan_from_random(list.bucket(a), peer_has, rng))
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Endgame: requests blocks already outstanding at other peers, fewest copies first.
    fn pick_duplicates(
        &mut self,
        peer: PeerKey,
        peer_has: &Bitfield,
        mut budget: usize,
        rng: &mut fastrand::Rng,
        out: &mut Vec<BlockRequest>,
    ) {
        let n = self.downloads.len();
        if n == 0 {
            return;
        }
        // A random first piece spreads the peers over the remaining pieces.
        let start = rng.usize(..n);
        let geo = self.geo;
        for copies in 1..MAX_REQUESTS_PER_BLOCK {
            for k in 0..n {
                let dl = &mut self.downloads[(start + k) % n];
                if !peer_has.get(dl.piece) || self.priority[dl.piece as usize] == Priority::Skip {
                    continue;
                }
                for (i, b) in dl.blocks.iter_mut().enumerate() {
                    if let BlockState::Requested { by } = b {
                        if by.len() == copies && by.push(peer) {
                            out.push(geo.request(dl.piece, i as u32));
                            budget -= 1;
                            if budget == 0 {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    /// `true` when some wanted piece is missing but none has a free block left: every
    /// missing block is requested (or received and awaiting verification). Picking then
    /// hands out duplicates.
    pub fn in_endgame(&self) -> bool {
        !self.is_complete()
            && self.lists.iter().all(Buckets::is_empty)
            && self
                .downloads
                .iter()
                .all(|d| d.free == 0 || self.priority[d.piece as usize] == Priority::Skip)
    }

    // ----- events ---------------------------------------------------------------------

    /// Records that the block of `piece` at `offset` arrived from `from`. The caller checks
    /// the data length first with [`block_at`](Self::block_at).
    pub fn block_received(&mut self, piece: u32, offset: u32, from: PeerKey) -> BlockOutcome {
        let mut outcome = BlockOutcome {
            receipt: Receipt::Invalid,
            cancel: Requesters::default(),
            piece_complete: false,
        };
        let Some(block) = self.geo.block_index(piece, offset) else {
            return outcome;
        };
        if self.have.get(piece) {
            outcome.receipt = Receipt::Duplicate;
            return outcome;
        }
        let d = match self.slot[piece as usize] {
            NONE => self.start_download(piece),
            d => d as usize,
        };
        let dl = &mut self.downloads[d];
        let state = &mut dl.blocks[block as usize];
        match *state {
            BlockState::Received { .. } => {
                outcome.receipt = Receipt::Duplicate;
                return outcome;
            }
            BlockState::Free => {
                outcome.receipt = Receipt::Unrequested;
                dl.free -= 1;
            }
            BlockState::Requested { mut by } => {
                outcome.receipt = if by.remove(from) {
                    Receipt::Requested
                } else {
                    Receipt::Unrequested
                };
                outcome.cancel = by;
            }
        }
        *state = BlockState::Received { from };
        dl.received += 1;
        outcome.piece_complete = dl.received as usize == dl.blocks.len();
        outcome
    }

    /// Forgets `peer`'s request for the block of `piece` at `offset` (we cancelled it, it
    /// timed out, or the peer rejected it). The block becomes free again unless other peers
    /// still have it requested. Returns whether such a request was recorded.
    pub fn request_cancelled(&mut self, piece: u32, offset: u32, peer: PeerKey) -> bool {
        let Some(block) = self.geo.block_index(piece, offset) else {
            return false;
        };
        let d = match self.slot[piece as usize] {
            NONE => return false,
            d => d as usize,
        };
        let dl = &mut self.downloads[d];
        let removed = drop_request(dl, block as usize, peer);
        if removed && dl.untouched() {
            self.abandon(d);
        }
        removed
    }

    /// Forgets every request outstanding at `peer` (it choked us without the fast
    /// extension, or disconnected). Returns how many were dropped. O(D · B).
    pub fn peer_requests_dropped(&mut self, peer: PeerKey) -> usize {
        let mut dropped = 0;
        // Backwards, so that `abandon`'s swap_remove only moves already visited entries.
        for d in (0..self.downloads.len()).rev() {
            let dl = &mut self.downloads[d];
            if dl.owner == Some(peer) {
                // Its owner stopped: whoever asks next may finish the piece.
                dl.owner = None;
            }
            for b in 0..dl.blocks.len() {
                if drop_request(dl, b, peer) {
                    dropped += 1;
                }
            }
            if dl.untouched() {
                self.abandon(d);
            }
        }
        dropped
    }

    /// The peers that delivered blocks of `piece` so far (ascending, each once); empty if
    /// the piece is not in progress.
    pub fn contributors(&self, piece: u32) -> Vec<PeerKey> {
        let mut out: Vec<PeerKey> = self
            .slot
            .get(piece as usize)
            .filter(|&&d| d != NONE)
            .and_then(|&d| self.downloads.get(d as usize))
            .map(|dl| {
                dl.blocks
                    .iter()
                    .filter_map(|b| match b {
                        BlockState::Received { from } => Some(*from),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Marks `piece` verified: it joins [`have`](Self::have) and its in-progress state is
    /// dropped. Returns `false` if it was already verified or is out of range.
    pub fn piece_verified(&mut self, piece: u32) -> bool {
        if !self.have.set(piece) {
            return false;
        }
        self.wanted.clear(piece);
        self.solo.clear(piece);
        self.unlist(piece);
        if let Some(dl) = self.remove_download(piece) {
            self.spare.push(dl.blocks);
        }
        true
    }

    /// Reports that `piece` failed its hash check. Returns the peers that contributed
    /// blocks (ascending, each once) so the caller can count the failure against them; the
    /// piece is reset to all `Free` and will be requested again. Requests still outstanding
    /// for it are forgotten (blocks arriving for them later count as `Unrequested`). Does
    /// nothing and returns nothing if the piece is verified or out of range.
    pub fn piece_failed(&mut self, piece: u32) -> Vec<PeerKey> {
        if piece >= self.geo.num_pieces || self.have.get(piece) {
            return Vec::new();
        }
        let mut contributors = Vec::new();
        if let Some(dl) = self.remove_download(piece) {
            for b in &dl.blocks {
                if let BlockState::Received { from } = b {
                    contributors.push(*from);
                }
            }
            self.spare.push(dl.blocks);
        }
        contributors.sort_unstable();
        contributors.dedup();
        self.list(piece);
        contributors
    }

    /// Asks that `piece` (which failed its hash) be downloaded from one peer: the peer that
    /// next opens it takes all its free blocks, and others leave them alone until that peer
    /// drops its requests ([`peer_requests_dropped`](Self::peer_requests_dropped)). Its next
    /// failure then names one sender, as libtorrent does after a hash failure. Endgame
    /// duplicates still go to anyone, so a single slow owner never stalls the end.
    pub fn prefer_one_peer(&mut self, piece: u32) {
        if piece < self.geo.num_pieces && !self.have.get(piece) {
            self.solo.set(piece);
        }
    }

    /// The peer `piece` is being downloaded from alone, if it has one
    /// ([`prefer_one_peer`](Self::prefer_one_peer)).
    pub fn owner(&self, piece: u32) -> Option<PeerKey> {
        let d = *self.slot.get(piece as usize)?;
        self.downloads.get(d as usize)?.owner
    }

    // ----- inspection -----------------------------------------------------------------

    /// Whether `piece` is in progress (some block requested or received, not verified).
    pub fn is_downloading(&self, piece: u32) -> bool {
        self.slot.get(piece as usize).is_some_and(|&s| s != NONE)
    }

    /// The pieces in progress, in no particular (but deterministic) order.
    pub fn downloading(&self) -> impl Iterator<Item = u32> + '_ {
        self.downloads.iter().map(|d| d.piece)
    }

    /// State of the block of `piece` at `offset` if the piece is in progress; `None` for an
    /// invalid block or a piece not in progress.
    pub fn block_state(&self, piece: u32, offset: u32) -> Option<BlockState> {
        let block = self.geo.block_index(piece, offset)?;
        let d = *self.slot.get(piece as usize)?;
        let dl = self.downloads.get(d as usize)?;
        dl.blocks.get(block as usize).copied()
    }

    // ----- internals ------------------------------------------------------------------

    /// Puts `piece` in its priority list if it is wanted, not in progress and not listed.
    fn list(&mut self, piece: u32) {
        let p = piece as usize;
        if !self.wanted.get(piece) || self.slot[p] != NONE || self.pos[p] != NONE {
            return;
        }
        if let Some(l) = list_of(self.priority[p]) {
            self.lists[l].insert(piece, self.availability[p], &mut self.pos);
        }
    }

    /// Takes `piece` out of its priority list if it is there.
    fn unlist(&mut self, piece: u32) {
        let p = piece as usize;
        if self.pos[p] == NONE {
            return;
        }
        if let Some(l) = list_of(self.priority[p]) {
            self.lists[l].remove(piece, self.availability[p], &mut self.pos);
        }
    }

    /// Rebuilds both lists from scratch (after priorities changed).
    fn rebuild_lists(&mut self) {
        let Picker {
            wanted,
            priority,
            availability,
            lists,
            pos,
            slot,
            geo,
            ..
        } = self;
        pos.fill(NONE);
        for (l, list) in lists.iter_mut().enumerate() {
            let members = (0..geo.num_pieces).filter(|&p| {
                wanted.get(p)
                    && slot[p as usize] == NONE
                    && list_of(priority[p as usize]) == Some(l)
            });
            list.rebuild(members, availability, pos);
        }
    }

    /// Moves `piece` from its list into a new all-free download; returns its index.
    fn start_download(&mut self, piece: u32) -> usize {
        self.unlist(piece);
        let n = self.geo.blocks_in(piece);
        let mut blocks = self.spare.pop().unwrap_or_default();
        blocks.clear();
        blocks.resize(n as usize, BlockState::Free);
        self.slot[piece as usize] = self.downloads.len() as u32;
        self.downloads.push(Download {
            piece,
            blocks,
            free: n,
            received: 0,
            owner: None,
        });
        self.downloads.len() - 1
    }

    /// Removes the download of `piece`, if any, keeping `slot` consistent.
    fn remove_download(&mut self, piece: u32) -> Option<Download> {
        let d = self.slot[piece as usize];
        if d == NONE {
            return None;
        }
        self.slot[piece as usize] = NONE;
        let dl = self.downloads.swap_remove(d as usize);
        if let Some(moved) = self.downloads.get(d as usize) {
            self.slot[moved.piece as usize] = d;
        }
        Some(dl)
    }

    /// Turns an untouched download (no block requested or received) back into a listed
    /// piece, so only pieces with real progress count as "started".
    fn abandon(&mut self, d: usize) {
        let piece = self.downloads[d].piece;
        if let Some(dl) = self.remove_download(piece) {
            self.spare.push(dl.blocks);
        }
        self.list(piece);
    }

    /// Checks every cross-structure invariant (tests only).
    #[cfg(test)]
    fn check_invariants(&self) {
        for (l, list) in self.lists.iter().enumerate() {
            list.check(&self.availability, &self.pos);
            for &p in list.as_slice() {
                assert_eq!(list_of(self.priority[p as usize]), Some(l));
            }
        }
        for p in 0..self.geo.num_pieces {
            let listed = self.pos[p as usize] != NONE;
            let downloading = self.slot[p as usize] != NONE;
            let want = !self.have.get(p) && self.priority[p as usize] != Priority::Skip;
            assert_eq!(self.wanted.get(p), want, "wanted bit of piece {p}");
            assert_eq!(listed, want && !downloading, "listing of piece {p}");
            assert!(
                !(self.have.get(p) && downloading),
                "verified piece {p} in progress"
            );
        }
        for (d, dl) in self.downloads.iter().enumerate() {
            assert_eq!(self.slot[dl.piece as usize] as usize, d);
            let free = dl.blocks.iter().filter(|b| **b == BlockState::Free).count();
            let recv = dl
                .blocks
                .iter()
                .filter(|b| matches!(b, BlockState::Received { .. }))
                .count();
            assert_eq!(dl.free as usize, free);
            assert_eq!(dl.received as usize, recv);
            assert!(!dl.untouched(), "untouched download of piece {}", dl.piece);
        }
    }
}

/// Removes `peer` from block `b`'s requesters, freeing the block if nobody is left.
fn drop_request(dl: &mut Download, b: usize, peer: PeerKey) -> bool {
    let BlockState::Requested { by } = &mut dl.blocks[b] else {
        return false;
    };
    if !by.remove(peer) {
        return false;
    }
    if by.is_empty() {
        dl.blocks[b] = BlockState::Free;
        dl.free += 1;
    }
    true
}

/// The first piece of `pieces` the peer has, scanning from a random start and wrapping.
fn scan_from_random(pieces: &[u32], peer_has: &Bitfield, rng: &mut fastrand::Rng) -> Option<u32> {
    if pieces.is_empty() {
        return None;
    }
    let start = rng.usize(..pieces.len());
    let (head, tail) = pieces.split_at(start);
    tail.iter().chain(head).copied().find(|&p| peer_has.get(p))
}
