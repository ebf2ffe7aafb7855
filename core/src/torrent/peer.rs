//! One connected peer's state inside a torrent.

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::bitfield::Bitfield;
use crate::picker::{BlockRequest, PeerKey};
use crate::rate::{CHOKE_WINDOW, PIPELINE_WINDOW, RateMeter};
use crate::time::Instant;
use crate::vocab::Direction;
use crate::wire::{self, Decoder, PeerId};

/// Everything the torrent knows about one established connection.
///
/// Invariants: `outstanding` holds exactly the blocks the picker records as requested by
/// `key` (both change together); `uploads` holds requests whose `ReadBlock` is in flight and
/// that we still intend to serve; `requests_since` is `Some` iff `outstanding` is non-empty.
#[derive(Debug)]
pub(super) struct Peer {
    pub(super) key: PeerKey,
    pub(super) addr: SocketAddr,
    pub(super) peer_id: PeerId,
    pub(super) direction: Direction,
    /// The stream its MSE handshake settled on (`None`: a plaintext connection).
    pub(super) crypto: Option<crate::mse::Crypto>,
    /// Both sides announced BEP 6 (fast).
    pub(super) fast: bool,
    /// Both sides announced BEP 10 (extension protocol).
    pub(super) extensions: bool,
    pub(super) decoder: Decoder,

    pub(super) am_choking: bool,
    pub(super) am_interested: bool,
    pub(super) peer_choking: bool,
    pub(super) peer_interested: bool,

    /// The pieces the peer has, sized to the torrent's piece count. Before the metadata is
    /// known there are no pieces, so it is empty (0 pieces, which `is_full` too: never read
    /// then) and what the peer announces waits in `pending`.
    pub(super) has: Bitfield,
    /// Whether the peer already told us what it has (`bitfield`, `have all`, `have none`
    /// or a `have`). Those three may come once, before any `have`. Other messages may
    /// precede them: libtorrent sends its extension handshake first, which BEP 6's
    /// "first message" wording does not foresee.
    pub(super) availability_known: bool,

    /// Our requests to the peer, with when they were sent.
    pub(super) outstanding: Vec<(BlockRequest, Instant)>,
    pub(super) requests_since: Option<Instant>,
    /// Since when we have been waiting on this peer for a block: set when a request goes out
    /// while none was waiting, moved on by each block, cleared when nothing is outstanding.
    /// Unlike `requests_since` a request time-out does not reset it, so a peer that stalls
    /// through several time-outs is still snubbed after 60 s.
    pub(super) snub_clock: Option<Instant>,
    /// After a request timeout the pipeline shrinks to one block until a block arrives.
    pub(super) timed_out: bool,
    /// The peer's requests being read from disk for upload, with when each arrived.
    pub(super) uploads: Vec<(wire::BlockRequest, Instant)>,
    /// The peer's requests accepted for upload that wait for upload tokens (a rate limit,
    /// [`crate::limits`]) before their `ReadBlock`, oldest first, with when each arrived.
    /// Non-empty only while a limit is set or was just lifted; while non-empty the peer
    /// has a turn in the session's upload queue.
    pub(super) throttled: VecDeque<(wire::BlockRequest, Instant)>,
    /// Pieces the peer lets us request while it chokes us (BEP 6 `allowed fast`; see
    /// `allowed_fast.rs`).
    pub(super) allowed_fast: Vec<u32>,
    /// Pieces we let the peer request while we choke it.
    pub(super) granted_fast: Vec<u32>,
    /// Whether its first `interested` was answered with our grant already.
    pub(super) granted_asked: bool,
    /// Pieces the peer suggested (BEP 6 `suggest piece`; see `suggest.rs`).
    pub(super) suggested: Vec<u32>,
    /// Reads still in flight for requests dropped from `uploads` (cancelled, choked,
    /// expired): their answers will be ignored, but until they come they count against
    /// `max_queued_uploads`, or a peer cycling request and cancel would have us read
    /// without bound.
    pub(super) orphan_reads: usize,
    /// Bytes of ours the peer's socket accepted ([`crate::session::Session::handle_sent`]):
    /// what it really took, which the choker ranks by when sends are accounted.
    pub(super) accepted: RateMeter,
    /// Since when bytes handed out for the peer have waited unsent without a break.
    pub(super) backlog_since: Option<Instant>,
    /// What the peer's socket had accepted when the current backlog began
    /// ([`Self::accepted`]'s total then; meaningful while `backlog_since` is `Some`).
    pub(super) backlog_taken: u64,
    /// Took less than `SessionConfig::slow_reader_rate` from a whole slot trial: ranks
    /// after peers that did not (see `torrent/choking.rs`).
    pub(super) wasted_slot: bool,
    /// The current unchoke's trial; `None` while we choke the peer.
    pub(super) slot: Option<super::choking::SlotTrial>,
    /// The peer's `reqq`: how many requests it queues (BEP 10); 250 if not told.
    pub(super) reqq: usize,
    /// What the peer's extension handshake said about the extensions we use.
    pub(super) ext: PeerExtensions,
    /// Availability the peer announced before we had the metadata (magnet torrents): kept
    /// here, bounded, and applied once the piece count is known.
    pub(super) pending: PendingAvailability,
    /// Our BEP 9 exchange with the peer.
    pub(super) meta: PeerMetadata,
    /// Our BEP 11 exchange with the peer.
    pub(super) pex: PeerPex,

    pub(super) download: RateMeter,
    pub(super) download_fast: RateMeter,
    pub(super) upload: RateMeter,
    pub(super) connected_at: Instant,
    pub(super) last_received: Instant,
    pub(super) last_sent: Instant,
    pub(super) last_block: Option<Instant>,
    /// BEP 52 `hash request`s answered while we choked the peer (see `hash_exchange.rs`).
    pub(super) hash_answers_choked: u32,
}

impl Peer {
    /// Bytes the peer has taken from us so far: what its socket accepted when sends are
    /// accounted, else what we handed out for it (a harness that delivers everything).
    pub(super) fn taken(&self, send_accounting: bool) -> u64 {
        if send_accounting {
            self.accepted.total()
        } else {
            self.upload.total()
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
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
            crypto: None,
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
            allowed_fast: Vec::new(),
            granted_fast: Vec::new(),
            granted_asked: false,
            suggested: Vec::new(),
            orphan_reads: 0,
            throttled: VecDeque::new(),
            accepted: RateMeter::new(CHOKE_WINDOW, now),
            backlog_since: None,
            backlog_taken: 0,
            wasted_slot: false,
            slot: None,
            reqq: 250,
            ext: PeerExtensions::default(),
            pending: PendingAvailability::default(),
            meta: PeerMetadata {
                in_flight: 0,
                rested_until: None,
                serve_window: now,
                served_in_window: 0,
            },
            pex: PeerPex {
                next_send: now + super::pex::PEX_FIRST_DELAY,
                told: super::pex_told::ToldSet::default(),
                last_received: None,
            },
            download: RateMeter::new(CHOKE_WINDOW, now),
            download_fast: RateMeter::new(PIPELINE_WINDOW, now),
            upload: RateMeter::new(CHOKE_WINDOW, now),
            connected_at: now,
            last_received: now,
            last_sent: now,
            last_block: None,
            hash_answers_choked: 0,
        }
    }

    /// How many requests to keep outstanding: the measured rate times the configured
    /// look-ahead, in blocks, within `[min, min(max, reqq)]`.
    pub(super) fn pipeline_target(
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

    /// Upload requests accepted and not yet answered: read from disk or waiting for tokens.
    pub(super) fn upload_requests(&self) -> usize {
        self.uploads.len() + self.throttled.len()
    }

    /// Whether `req` is already among the upload requests accepted.
    pub(super) fn has_upload_request(&self, req: &wire::BlockRequest) -> bool {
        self.uploads.iter().any(|(r, _)| r == req) || self.throttled.iter().any(|(r, _)| r == req)
    }

    /// Drops the upload requests `drop` picks (given each request and when it arrived),
    /// those being read first, then those waiting for tokens, each in arrival order;
    /// returns them. A dropped request whose read is in flight becomes an orphan read
    /// (its answer is ignored, and it counts against `max_queued_uploads` until it comes).
    pub(super) fn drop_uploads(
        &mut self,
        mut drop: impl FnMut(&wire::BlockRequest, Instant) -> bool,
    ) -> Vec<wire::BlockRequest> {
        let mut dropped = Vec::new();
        self.uploads.retain(|(req, since)| {
            let go = drop(req, *since);
            if go {
                dropped.push(*req);
            }
            !go
        });
        self.orphan_reads += dropped.len();
        self.throttled.retain(|(req, since)| {
            let go = drop(req, *since);
            if go {
                dropped.push(*req);
            }
            !go
        });
        dropped
    }

    /// Forgets our outstanding request for `block`; returns whether it was there.
    pub(super) fn take_outstanding(&mut self, piece: u32, offset: u32) -> bool {
        let before = self.outstanding.len();
        self.outstanding
            .retain(|(b, _)| !(b.piece == piece && b.offset == offset));
        if self.outstanding.is_empty() {
            self.requests_since = None;
        }
        self.outstanding.len() != before
    }
}

/// The parts of a peer's BEP 10 extension handshake we act on.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct PeerExtensions {
    /// The id to send `ut_metadata` messages to the peer under.
    pub(super) ut_metadata: Option<u8>,
    /// The id to send `ut_pex` messages to the peer under.
    pub(super) ut_pex: Option<u8>,
    /// The size of the info dictionary the peer says it has.
    pub(super) metadata_size: Option<u64>,
    /// The port the peer listens on (`p`): how an inbound peer can be dialled.
    pub(super) listen_port: Option<u16>,
    /// The peer said it will not download (`upload_only`, BEP 21): a seed, or a download
    /// that wants nothing more. With our `have`s to it cut to the pieces it lacks, this is
    /// how two complete unchoke peers learn that neither can give the other anything.
    pub(super) upload_only: bool,
}

/// `bitfield` / `have` / `have all` received while the torrent's piece count is unknown.
///
/// `bits` holds the bitfield's bytes with every later `have` set in it; it never grows past
/// the bitfield of the largest torrent whose metadata we would accept (checked by the
/// caller), so a peer cannot make us buffer more.
#[derive(Debug, Default, Clone)]
pub(super) struct PendingAvailability {
    pub(super) bits: Vec<u8>,
    /// The length of the `bitfield` message, if one came: it must match the piece count.
    pub(super) bitfield_len: Option<usize>,
    /// `have all` came.
    pub(super) all: bool,
}

impl PendingAvailability {
    /// Marks piece `index` as announced.
    pub(super) fn set(&mut self, index: u32) {
        let byte = (index / 8) as usize;
        if self.bits.len() <= byte {
            self.bits.resize(byte + 1, 0);
        }
        self.bits[byte] |= 0x80 >> (index % 8);
    }

    /// The announced pieces as a bitfield of `piece_count` pieces, or why they do not fit.
    pub(super) fn resolve(&self, piece_count: u32) -> Result<Bitfield, &'static str> {
        if self.all {
            return Ok(Bitfield::full(piece_count));
        }
        let len = piece_count.div_ceil(8) as usize;
        if self.bitfield_len.is_some_and(|l| l != len) {
            return Err("bitfield size does not match the metadata's piece count");
        }
        let mut bits = self.bits.clone();
        if bits.len() > len {
            if bits[len..].iter().any(|&b| b != 0) {
                return Err("have for a piece past the metadata's last piece");
            }
            bits.truncate(len);
        }
        bits.resize(len, 0);
        // Spare bits of the last byte (a `have` past the end, or a dirty bitfield).
        Bitfield::from_bytes(&bits, piece_count)
            .map_err(|_| "have or bitfield past the metadata's last piece")
    }
}

/// One peer's side of the metadata exchange (BEP 9).
#[derive(Debug, Clone, Copy)]
pub(super) struct PeerMetadata {
    /// Our metadata requests to the peer not yet answered.
    pub(super) in_flight: u32,
    /// After a reject, the peer is not asked again before this (as libtorrent: a minute).
    pub(super) rested_until: Option<Instant>,
    /// Start of the current one-second window of requests we served.
    pub(super) serve_window: Instant,
    /// Requests served in that window.
    pub(super) served_in_window: u32,
}

/// One peer's side of peer exchange (BEP 11).
#[derive(Debug, Clone)]
pub(super) struct PeerPex {
    /// When we may next send the peer a PEX message.
    pub(super) next_send: Instant,
    /// The addresses we told the peer about and have not told it dropped since, walked
    /// in address order by `pex_news` (a swarm holds one per connection: kept compact).
    pub(super) told: super::pex_told::ToldSet,
    /// When we last accepted a PEX message from the peer.
    pub(super) last_received: Option<Instant>,
}
