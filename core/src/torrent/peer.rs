//! One connected peer's state inside a torrent.

use std::net::SocketAddr;

use crate::bitfield::Bitfield;
use crate::picker::{BlockRequest, PeerKey};
use crate::rate::{CHOKE_WINDOW, PIPELINE_WINDOW, RateMeter};
use crate::session::Direction;
use crate::time::Instant;
use crate::wire::{self, Decoder, PeerId};

/// Everything the torrent knows about one established connection.
///
/// Invariants: `outstanding` holds exactly the blocks the picker records as requested by
/// `key` (both change together); `uploads` holds requests whose `ReadBlock` is in flight and
/// that we still intend to serve; `requests_since` is `Some` iff `outstanding` is non-empty.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) key: PeerKey,
    pub(crate) addr: SocketAddr,
    pub(crate) peer_id: PeerId,
    pub(crate) direction: Direction,
    /// Both sides announced BEP 6 (fast).
    pub(crate) fast: bool,
    /// Both sides announced BEP 10 (extension protocol).
    pub(crate) extensions: bool,
    pub(crate) decoder: Decoder,

    pub(crate) am_choking: bool,
    pub(crate) am_interested: bool,
    pub(crate) peer_choking: bool,
    pub(crate) peer_interested: bool,

    pub(crate) has: Bitfield,
    /// Whether the peer already told us what it has (`bitfield`, `have all`, `have none`
    /// or a `have`). Those three may come once, before any `have`. Other messages may
    /// precede them: libtorrent sends its extension handshake first, which BEP 6's
    /// "first message" wording does not foresee.
    pub(crate) availability_known: bool,

    /// Our requests to the peer, with when they were sent.
    pub(crate) outstanding: Vec<(BlockRequest, Instant)>,
    pub(crate) requests_since: Option<Instant>,
    /// Since when we have been waiting on this peer for a block: set when a request goes out
    /// while none was waiting, moved on by each block, cleared when nothing is outstanding.
    /// Unlike `requests_since` a request time-out does not reset it, so a peer that stalls
    /// through several time-outs is still snubbed after 60 s.
    pub(crate) snub_clock: Option<Instant>,
    /// After a request timeout the pipeline shrinks to one block until a block arrives.
    pub(crate) timed_out: bool,
    /// The peer's requests being read from disk for upload.
    pub(crate) uploads: Vec<wire::BlockRequest>,
    /// The peer's `reqq`: how many requests it queues (BEP 10); 250 if not told.
    pub(crate) reqq: usize,

    pub(crate) download: RateMeter,
    pub(crate) download_fast: RateMeter,
    pub(crate) upload: RateMeter,
    pub(crate) connected_at: Instant,
    pub(crate) last_received: Instant,
    pub(crate) last_sent: Instant,
    pub(crate) last_block: Option<Instant>,
}

impl Peer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        key: PeerKey,
        addr: SocketAddr,
        peer_id: PeerId,
        direction: Direction,
        fast: bool,
        extensions: bool,
        decoder: Decoder,
        piece_count: u32,
        now: Instant,
    ) -> Self {
        Peer {
            key,
            addr,
            peer_id,
            direction,
            fast,
            extensions,
            decoder,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            has: Bitfield::new(piece_count),
            availability_known: false,
            outstanding: Vec::new(),
            requests_since: None,
            snub_clock: None,
            timed_out: false,
            uploads: Vec::new(),
            reqq: 250,
            download: RateMeter::new(CHOKE_WINDOW, now),
            download_fast: RateMeter::new(PIPELINE_WINDOW, now),
            upload: RateMeter::new(CHOKE_WINDOW, now),
            connected_at: now,
            last_received: now,
            last_sent: now,
            last_block: None,
        }
    }

    /// How many requests to keep outstanding: the measured rate times the configured
    /// look-ahead, in blocks, within `[min, min(max, reqq)]`.
    pub(crate) fn pipeline_target(
        &self,
        now: Instant,
        lookahead_millis: u64,
        min: usize,
        max: usize,
    ) -> usize {
        if self.timed_out {
            return 1;
        }
        let rate = self.download_fast.rate(now);
        let ahead = rate.saturating_mul(lookahead_millis) / 1000 / u64::from(wire::MAX_BLOCK_LEN);
        let cap = max.min(self.reqq).max(1);
        usize::try_from(ahead)
            .unwrap_or(usize::MAX)
            .clamp(min.min(cap), cap)
    }

    /// Forgets our outstanding request for `block`; returns whether it was there.
    pub(crate) fn take_outstanding(&mut self, piece: u32, offset: u32) -> bool {
        let before = self.outstanding.len();
        self.outstanding
            .retain(|(b, _)| !(b.piece == piece && b.offset == offset));
        if self.outstanding.is_empty() {
            self.requests_since = None;
        }
        self.outstanding.len() != before
    }
}
