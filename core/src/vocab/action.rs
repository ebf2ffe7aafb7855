//! What the session asks its driver to do ([`Action`]) and tells it ([`Event`]).

use std::net::SocketAddr;

use bytes::Bytes;

use super::disk_error::DiskError;
use super::web_seed::{WebSeedFailure, WebSeedId, WebSeedRange};
use crate::metainfo::{Metainfo, MetainfoError};
use crate::tracker::AnnounceRequest;
use crate::wire::{BlockRequest, WireError};

/// Identifies one torrent inside a [`crate::session::Session`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TorrentId(pub u32);

/// Identifies one peer connection inside a [`crate::session::Session`]. Never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The peer dialled us; the torrent is learnt from its handshake.
    Inbound,
    /// We dialled the peer (after an [`Action::Connect`]) for this torrent.
    Outbound(TorrentId),
}

/// Something the driver must do. Actions for one connection must be carried out in the
/// order they are polled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes to the connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// One or more encoded messages.
        data: Bytes,
    },
    /// Write a `piece` message: the 13-byte header then the block read from disk. Two
    /// buffers so the driver can write them vectored, never concatenated.
    SendBlock {
        /// The connection.
        conn: ConnId,
        /// Length prefix, id, index and begin.
        header: Bytes,
        /// The block's bytes, as given to [`crate::session::Session::disk_read_done`].
        data: Bytes,
    },
    /// Send this datagram from the session's UDP socket (the DHT's, when there is one;
    /// UDP trackers' replies come back through the same
    /// [`crate::session::Session::handle_datagram`]). Dropping it when the socket is full
    /// is fine: both the DHT and UDP trackers retransmit on time-out.
    SendDatagram {
        /// The destination.
        to: SocketAddr,
        /// A KRPC message or a BEP 15 request.
        bytes: Bytes,
    },
    /// Multicast this local service discovery announce (BEP 14) to `to`, an LSD group
    /// ([`crate::lsd::group_v4`] or [`crate::lsd::group_v6`], one of
    /// [`super::SessionConfig::lsd_families`]; the datagram's `Host` line names it), from
    /// the driver's LSD socket for that family. Only with [`super::SessionConfig::lsd`].
    /// Dropping it is fine: it is sent again in 5 minutes.
    SendLsd {
        /// The group's address and port.
        to: SocketAddr,
        /// The `BT-SEARCH` datagram.
        bytes: Bytes,
    },
    /// Resolve `host` (a UDP tracker's name) off the loop; then call
    /// [`crate::session::Session::handle_resolved`] with the same `host` and `port` and
    /// the addresses, those of the UDP socket's family first. The session's announce
    /// deadline bounds the wait: a late answer is ignored.
    Resolve {
        /// The host name.
        host: String,
        /// The port to pair with each address.
        port: u16,
    },
    /// Open a TCP connection to `addr` for `torrent`; then call
    /// [`crate::session::Session::connection_opened`] with [`Direction::Outbound`], or
    /// [`crate::session::Session::connect_failed`].
    Connect {
        /// The torrent the connection is for.
        torrent: TorrentId,
        /// The peer's address.
        addr: SocketAddr,
    },
    /// Give up the dial of an earlier [`Action::Connect`] for `torrent` to `addr`: the
    /// session's connect time-out ([`super::SessionConfig::connect_timeout`]) passed and it
    /// has counted the dial as failed. Close the half-open socket; report nothing more for
    /// it (a late `connection_opened` is accepted, a late failure ignored).
    CancelConnect {
        /// The torrent the dial was for.
        torrent: TorrentId,
        /// The peer's address.
        addr: SocketAddr,
    },
    /// Close the connection. The session has already forgotten it; any later input for it
    /// is ignored.
    Disconnect {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: DisconnectReason,
    },
    /// Write a downloaded block to storage; then call [`crate::session::Session::disk_write_done`].
    WriteBlock {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: u32,
        /// Offset of `data` in the piece.
        offset: u32,
        /// The block (shares the receive buffer's memory).
        data: Bytes,
    },
    /// Read a block from storage to upload it; then call [`crate::session::Session::disk_read_done`].
    ReadBlock {
        /// The connection that asked for it.
        conn: ConnId,
        /// The torrent.
        torrent: TorrentId,
        /// The block.
        block: BlockRequest,
    },
    /// Hash a complete piece from the blocks held in memory (no re-read) and compare with
    /// `expected` ([`crate::piece_hashes::PieceHash::matches`] does it all: SHA-1, the v2
    /// merkle root, or both for a hybrid); then call
    /// [`crate::session::Session::piece_hashed`].
    VerifyPiece {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: u32,
        /// What the metainfo says the piece hashes to.
        expected: crate::piece_hashes::PieceHash,
        /// The piece's blocks in order; their concatenation is the piece.
        blocks: Vec<Bytes>,
    },
    /// Announce to an HTTP tracker (UDP trackers are the session's own, through
    /// [`Action::Resolve`] and [`Action::SendDatagram`]); then call
    /// [`crate::session::Session::announce_done`] with the same `url`. The overall
    /// time-out is the session's ([`super::SessionConfig::tracker_timeout`]): the driver
    /// needs only time-outs per socket operation, and an answer after the session gave up
    /// is ignored.
    Announce {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker's announce URL.
        url: String,
        /// What to tell it.
        request: AnnounceRequest,
    },
    /// Fetch byte ranges from a web seed (BEP 19) over HTTP or HTTPS: one `GET` with a
    /// `Range` header per entry of `ranges`, in order (keep-alive, at most 5 redirects, no
    /// more body read than asked for); then call
    /// [`crate::session::Session::web_seed_data`] with the ranges' bytes concatenated, or
    /// [`crate::session::Session::web_seed_failed`] naming the range that failed. The
    /// time-out is the session's ([`super::SessionConfig::web_seed_timeout`]): an answer
    /// after it is ignored, so the driver needs only time-outs per socket operation.
    WebSeedRequest {
        /// The torrent.
        torrent: TorrentId,
        /// The web seed.
        seed: WebSeedId,
        /// The request's number, to give back with the answer.
        request: u64,
        /// What to fetch (at least one range; their lengths add up to at most a piece).
        ranges: Vec<WebSeedRange>,
    },
    /// Save `torrent`'s resume data (flush its files, then write `have` and `written`
    /// atomically); then call [`crate::session::Session::resume_saved`]. The session emits
    /// it every [`super::SessionConfig::resume_interval`] for a torrent whose pieces changed
    /// since its last save, and never again for that torrent until the save is reported.
    SaveResume {
        /// The torrent.
        torrent: TorrentId,
        /// The pieces verified (what a restart may trust without reading).
        have: crate::bitfield::Bitfield,
        /// The pieces that may hold data (`have` and more: a restart reads only these).
        written: crate::bitfield::Bitfield,
    },
    /// Something the user may want to know.
    Event(Event),
}

/// A notification for the driver's user; nothing needs doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// [`crate::session::Session::remove_torrent`] removed the torrent: its id is refused
    /// from now on, and late completions for it are ignored. The driver may drop its
    /// storage once the disk jobs it still runs for it have finished.
    TorrentRemoved {
        /// The id it had.
        torrent: TorrentId,
    },
    /// A piece passed its hash check and is stored.
    PieceVerified {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: u32,
    },
    /// A piece failed its hash check; it will be downloaded again.
    HashFailed {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: u32,
    },
    /// Every wanted piece of the torrent is verified and stored.
    TorrentComplete {
        /// The torrent.
        torrent: TorrentId,
    },
    /// A seeding limit was reached and the session paused the torrent itself, as
    /// [`crate::session::Session::pause_torrent`] would. Resuming it with its ratio still
    /// reached pauses it again at once (with this event): raise or clear the limit first.
    SeedLimitReached {
        /// The torrent.
        torrent: TorrentId,
        /// Which limit.
        limit: super::SeedLimit,
    },
    /// The torrent waits in the queue ([`crate::session::TorrentState::Queued`]): its
    /// kind (downloading or seeding) has as many torrents running as
    /// [`super::SessionConfig::queue_limits`] allows. It starts by itself when a slot
    /// frees up.
    TorrentQueued {
        /// The torrent.
        torrent: TorrentId,
    },
    /// The torrent left the queue: it started (a slot freed up or the limit was raised),
    /// or it was paused (by the user or a seeding limit) or rechecked. Not sent when it is
    /// removed ([`Event::TorrentRemoved`] says that).
    TorrentUnqueued {
        /// The torrent.
        torrent: TorrentId,
    },
    /// A peer sent data that failed verification too often and will not be reconnected.
    PeerBanned {
        /// The torrent.
        torrent: TorrentId,
        /// The peer's address.
        addr: SocketAddr,
    },
    /// A choking round ran (every 10 s; every third one also moves the optimistic unchoke).
    ChokeRound {
        /// The torrent.
        torrent: TorrentId,
        /// The round's number, counting from 1.
        round: u64,
        /// Connections holding regular upload slots after the round.
        regular: Vec<ConnId>,
        /// The connection holding the optimistic slot, if any.
        optimistic: Option<ConnId>,
        /// Whether this round moved the optimistic unchoke.
        optimistic_rotated: bool,
    },
    /// A tracker answered an announce.
    TrackerReply {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker.
        url: String,
        /// Peers it gave (before removing ones already known).
        peers: usize,
        /// Seeders it counts, if it said.
        seeders: Option<u32>,
        /// Leechers it counts, if it said.
        leechers: Option<u32>,
        /// Its `warning message`, if any.
        warning: Option<String>,
    },
    /// An announce failed (unreachable, time-out, `failure reason`); another tracker or a
    /// later retry takes over.
    TrackerError {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker.
        url: String,
        /// Why.
        message: String,
    },
    /// A tracker of the torrent uses a URL scheme the session cannot announce to (see
    /// [`super::SessionConfig::tracker_schemes`]): it is never announced to. Emitted once per
    /// URL when the trackers are set.
    TrackerUnsupported {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker's URL, as given.
        url: String,
        /// Its scheme, lower case (empty when the URL has none).
        scheme: String,
    },
    /// The torrent is incomplete and nothing can make progress: no peer connected, no
    /// address left to dial, no tracker it can announce to and no DHT, for
    /// [`super::SessionConfig::give_up_after`]. Emitted once per such stretch; the torrent
    /// stays in the session (a peer may still dial in), but the driver's user will usually
    /// stop. Never emitted while a usable tracker or the DHT could still find peers.
    GaveUp {
        /// The torrent.
        torrent: TorrentId,
        /// Why nothing is left to try.
        reason: GiveUpReason,
    },
    /// The DHT node could not join: its routing table is empty, every router's name
    /// failed or no address answered, and nothing is being tried right now. Emitted once
    /// per failed join; the node tries again every 30 s while its table stays empty. A
    /// torrent with no other source gives up meanwhile (see [`Event::GaveUp`]).
    DhtJoinFailed {
        /// Bootstrap addresses tried (saved nodes, given addresses, routers' addresses).
        nodes_tried: usize,
        /// Each router named by host, and why it did not help.
        routers: Vec<DhtRouterFailure>,
    },
    /// A DHT lookup for the torrent finished (see [`crate::session::Session::handle_datagram`]);
    /// the peers it found were already handed to the torrent to dial.
    DhtLookupDone {
        /// The torrent.
        torrent: TorrentId,
        /// Distinct peers the lookup found.
        peers: u32,
        /// Queries it sent.
        queries: u32,
        /// `announce_peer` queries sent (0 for a plain `get_peers`).
        announced: u32,
    },
    /// A peer on the LAN announced the torrent by local service discovery (BEP 14); its
    /// address was handed to the torrent to dial. At most once per announce received.
    LsdPeer {
        /// The torrent.
        torrent: TorrentId,
        /// The sender's IP with the port it announced.
        addr: SocketAddr,
    },
    /// A magnet torrent's metadata arrived from peers and matched the info-hash (for a
    /// v2-only link, with every piece layer fetched and checked too).
    /// The driver creates (or opens and checks) the torrent's storage from `metainfo`, then
    /// calls [`crate::session::Session::metadata_ready`] with the pieces already on disk; until then
    /// the torrent downloads nothing.
    MetadataReceived {
        /// The torrent.
        torrent: TorrentId,
        /// The parsed metadata (its `info_bytes` are the verified info dictionary; it has no
        /// trackers: those stay the magnet link's).
        metainfo: Box<Metainfo>,
    },
    /// A magnet torrent's complete metadata did not hash to the info-hash. The peers that
    /// sent it were struck and dropped; the fetch starts over from other peers.
    MetadataHashFailed {
        /// The torrent.
        torrent: TorrentId,
    },
    /// A magnet torrent's metadata hashed to the info-hash but is not a valid info
    /// dictionary: the torrent cannot be downloaded (the driver should remove it).
    MetadataError {
        /// The torrent.
        torrent: TorrentId,
        /// What is wrong with it (the parser's verdict on the info dictionary).
        error: MetainfoError,
    },
    /// A TCP connection to or from a peer is up and admitted (its handshake follows).
    /// Emitted once per connection, by [`crate::session::Session::connection_opened`]; a connection
    /// refused at admission gets no event.
    PeerConnected {
        /// The torrent, when known (we dialled for it); `None` for an inbound connection,
        /// whose handshake names it later.
        torrent: Option<TorrentId>,
        /// The peer's address.
        addr: SocketAddr,
        /// Whether the peer dialled us.
        inbound: bool,
    },
    /// A connection announced by [`Event::PeerConnected`] ended. Emitted once, whoever
    /// ended it: right after the session's [`Action::Disconnect`], or when the driver
    /// reports the socket closed.
    PeerDisconnected {
        /// The peer's address.
        addr: SocketAddr,
        /// Who ended it and why.
        reason: PeerGone,
    },
    /// A dial after [`Action::Connect`] failed: the driver reported the OS's reason, or the
    /// session's connect time-out passed (then [`ConnectFailure::TimedOut`]). Emitted once
    /// per dial.
    ConnectFailed {
        /// The torrent the dial was for.
        torrent: TorrentId,
        /// The peer's address.
        addr: SocketAddr,
        /// Why.
        reason: ConnectFailure,
    },
    /// A web seed (BEP 19) was added to the torrent: pieces are asked of it as of a peer
    /// that has them all.
    WebSeedAdded {
        /// The torrent.
        torrent: TorrentId,
        /// The web seed.
        seed: WebSeedId,
        /// Its URL, as given.
        url: String,
    },
    /// A web seed's URL cannot be used (its scheme is neither `http` nor `https`): it is
    /// never asked.
    WebSeedUnsupported {
        /// The torrent.
        torrent: TorrentId,
        /// The URL, as given.
        url: String,
    },
    /// A request to a web seed failed (an HTTP error, a connection closed mid-range, a
    /// time-out). Its blocks go back to the picker; the web seed is asked again after
    /// `retry_in` (growing with each failure in a row, bounded). After a 404 or 410 the
    /// file is not asked of this web seed again.
    WebSeedFailed {
        /// The torrent.
        torrent: TorrentId,
        /// The web seed.
        seed: WebSeedId,
        /// Its URL, as given.
        url: String,
        /// The torrent's file whose range failed (its path inside the torrent, `/`
        /// separated), when known.
        file: Option<String>,
        /// Why.
        reason: WebSeedFailure,
        /// When the web seed is asked again.
        retry_in: std::time::Duration,
    },
    /// A web seed sent data that failed verification (proven wrong, or whole pieces it
    /// sent alone failed `max_strikes` times): it is not asked again while the torrent
    /// lives.
    WebSeedBanned {
        /// The torrent.
        torrent: TorrentId,
        /// The web seed.
        seed: WebSeedId,
        /// Its URL, as given.
        url: String,
    },
    /// A block could not be written or read; the piece is downloaded again (writes) or the
    /// request refused (reads). Pieces already verified stay verified.
    StorageError {
        /// The torrent.
        torrent: TorrentId,
        /// The piece concerned.
        piece: u32,
        /// What the driver reported, typed (see [`super::DiskErrorKind`]: on
        /// [`super::DiskErrorKind::NoSpace`] retrying is pointless until space is freed).
        error: DiskError,
    },
}

/// Why a torrent gave up ([`Event::GaveUp`]): what it had to download from, and that all of
/// it is used up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GiveUpReason {
    /// Peers were given or found, and every one failed: its dials failed
    /// [`super::SessionConfig::max_connect_failures`] times, or it went away.
    PeersFailed {
        /// The peers given up on, in address order (at most [`FAILED_PEERS_LISTED`]).
        peers: Vec<FailedPeer>,
        /// Peers given up on in all (`peers` may list fewer).
        total: usize,
        /// Schemes of the torrent's trackers that the session cannot announce to (sorted,
        /// each once; empty when it had no tracker).
        unsupported_schemes: Vec<String>,
    },
    /// No peer was ever given or found, and the torrent's only trackers use schemes the
    /// session cannot announce to.
    TrackersUnsupported {
        /// Those schemes (sorted, each once).
        schemes: Vec<String>,
    },
    /// No peer, no tracker and no DHT was ever given: there was nothing to download from.
    NothingGiven,
}

/// Most peers [`GiveUpReason::PeersFailed`] lists one by one.
pub const FAILED_PEERS_LISTED: usize = 8;

/// A peer a torrent gave up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailedPeer {
    /// Its address.
    pub addr: SocketAddr,
    /// Failures counted against it: failed dials, and connections that ended.
    pub failures: u32,
    /// Whether a connection to it was ever established (it went away rather than
    /// refusing).
    pub connected: bool,
}

/// Why the session closed a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The peer broke the wire protocol.
    Protocol(WireError),
    /// The peer broke a rule the codec cannot see (e.g. a second bitfield).
    Misbehaved(&'static str),
    /// No complete handshake in time.
    HandshakeTimeout,
    /// Nothing received for too long.
    Idle,
    /// The handshake named a torrent this session does not have.
    UnknownTorrent,
    /// The handshake's info-hash differs from the torrent we dialled for.
    WrongTorrent,
    /// We connected to ourselves.
    SelfConnection,
    /// Already connected to this peer id on this torrent.
    Duplicate,
    /// The peer's address is banned for sending corrupt data.
    Banned,
    /// The connection limit is reached.
    TooManyConnections,
    /// Both sides have every piece: nothing left to trade.
    BothSeeds,
    /// The torrent was removed from the session.
    TorrentRemoved,
    /// The torrent was paused ([`crate::session::Session::pause_torrent`]): it holds no
    /// connection until it is resumed.
    TorrentPaused,
    /// The torrent waits in the queue ([`crate::session::TorrentState::Queued`]): it holds
    /// no connection until it starts.
    TorrentQueued,
    /// The session is closing ([`crate::session::Session::close`]): it leaves every swarm.
    SessionClosed,
    /// The peer does not read what it asked for: our unsent bytes to it passed
    /// [`super::SessionConfig::max_unsent_bytes`], or its socket accepted nothing for
    /// [`super::SessionConfig::send_stall_timeout`].
    SlowReader,
    /// The encrypted handshake (MSE) failed: the peer spoke something else, named a
    /// torrent we do not have, or offered no method we allow.
    Encryption(crate::mse::MseError),
    /// The peer's handshake was plaintext and [`super::EncryptionPolicy::Require`] is set.
    PlaintextRefused,
    /// The peer's handshake was encrypted and [`super::EncryptionPolicy::Disable`] is set.
    EncryptionDisabled,
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DisconnectReason::Protocol(e) => write!(f, "protocol error: {e}"),
            DisconnectReason::Misbehaved(what) => write!(f, "misbehaved: {what}"),
            DisconnectReason::HandshakeTimeout => f.write_str("handshake timed out"),
            DisconnectReason::Idle => f.write_str("peer silent for too long"),
            DisconnectReason::UnknownTorrent => f.write_str("handshake for an unknown torrent"),
            DisconnectReason::WrongTorrent => f.write_str("handshake for a different torrent"),
            DisconnectReason::SelfConnection => f.write_str("connected to ourselves"),
            DisconnectReason::Duplicate => f.write_str("duplicate connection to the same peer"),
            DisconnectReason::Banned => f.write_str("peer banned for corrupt data"),
            DisconnectReason::TooManyConnections => f.write_str("connection limit reached"),
            DisconnectReason::BothSeeds => f.write_str("both sides are seeds"),
            DisconnectReason::TorrentRemoved => f.write_str("torrent removed"),
            DisconnectReason::TorrentPaused => f.write_str("torrent paused"),
            DisconnectReason::TorrentQueued => f.write_str("torrent queued"),
            DisconnectReason::SessionClosed => f.write_str("session closing"),
            DisconnectReason::SlowReader => f.write_str("the peer does not read what it asked for"),
            DisconnectReason::Encryption(e) => write!(f, "encrypted handshake failed: {e}"),
            DisconnectReason::PlaintextRefused => f.write_str(
                "the peer does not encrypt its handshake and encryption is required \
                 (--encryption require)",
            ),
            DisconnectReason::EncryptionDisabled => f.write_str(
                "the peer's handshake is encrypted and encryption is disabled \
                 (--encryption disable)",
            ),
        }
    }
}

/// Why a dial failed ([`Event::ConnectFailed`]). The driver builds it from the OS's error
/// (see [`crate::session::Session::handle_connect_error`]); the session gives
/// [`ConnectFailure::TimedOut`] itself when its deadline passes. `Display` reads as words
/// for a person ("connection refused", "timed out after 10 s"), never an error number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectFailure {
    /// Nobody listens there.
    Refused,
    /// No route to the network.
    NetworkUnreachable,
    /// No route to the host.
    HostUnreachable,
    /// The local network is down.
    NetworkDown,
    /// The peer reset the connection while it was being set up.
    Reset,
    /// The connection was aborted locally.
    Aborted,
    /// The local address to dial from is not available.
    AddrNotAvailable,
    /// The local address to dial from is in use.
    AddrInUse,
    /// The OS refused the dial (a firewall rule, usually).
    PermissionDenied,
    /// No answer within this time: the session's connect time-out, or the OS's own.
    TimedOut(std::time::Duration),
    /// The socket hung up without saying why.
    Unknown,
    /// Any other reason, in the OS's words (lower case, without its error number).
    Other(String),
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            ConnectFailure::Refused => "connection refused",
            ConnectFailure::NetworkUnreachable => "network unreachable",
            ConnectFailure::HostUnreachable => "host unreachable",
            ConnectFailure::NetworkDown => "network down",
            ConnectFailure::Reset => "connection reset by the peer",
            ConnectFailure::Aborted => "connection aborted",
            ConnectFailure::AddrNotAvailable => "local address not available",
            ConnectFailure::AddrInUse => "local address in use",
            ConnectFailure::PermissionDenied => "permission denied (a firewall?)",
            ConnectFailure::TimedOut(after) => {
                return write!(f, "timed out after {} s", after.as_secs_f64());
            }
            ConnectFailure::Unknown => "connection failed",
            ConnectFailure::Other(words) => words,
        };
        f.write_str(text)
    }
}

/// How a connection ended ([`Event::PeerDisconnected`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerGone {
    /// The session closed it ([`Action::Disconnect`]) for this reason.
    Closed(DisconnectReason),
    /// The peer hung up (end of stream).
    HungUp,
    /// The peer hung up during our encrypted handshake: it may not accept encryption.
    /// With [`super::EncryptionPolicy::Prefer`] it is dialled again in plaintext.
    HungUpOnEncryption,
    /// Writing to the socket failed.
    WriteFailed,
    /// Reading from the socket failed, for this reason (the driver's `io::Error`, by kind).
    ReadFailed(std::io::ErrorKind),
}

impl std::fmt::Display for PeerGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerGone::Closed(reason) => reason.fmt(f),
            PeerGone::HungUp => f.write_str("closed by the peer"),
            PeerGone::HungUpOnEncryption => f.write_str(
                "closed by the peer during the encrypted handshake (it may not accept encryption)",
            ),
            PeerGone::WriteFailed => f.write_str("write failed"),
            PeerGone::ReadFailed(kind) => write!(f, "read failed: {kind}"),
        }
    }
}

/// Why one DHT router did not let the node join ([`Event::DhtJoinFailed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhtRouterFailure {
    /// The router as given, `host:port`.
    pub router: String,
    /// Why: its name did not resolve (the resolver's words), or its addresses did not
    /// answer.
    pub reason: String,
}
