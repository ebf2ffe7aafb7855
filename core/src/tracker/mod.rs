//! Trackers, sans-IO: the client side of announcing (HTTP and UDP, BEP 3/15/23/7) and the
//! tracker *server* logic. Nothing here opens a socket or reads a clock: requests are built
//! as bytes, responses parsed from bytes, and time comes in as [`crate::time::Instant`].
//!
//! - [`http`]: the HTTP announce exchange (request line and query, response framing with
//!   `httparse`, chunked bodies, bencoded body, compact/dictionary/IPv6 peers).
//! - [`udp`]: the BEP 15 exchange (connect / announce / scrape packets, transaction ids,
//!   connection-id expiry, retransmission schedule).
//! - [`udp_client`]: many BEP 15 exchanges over one socket (resolution asked of the
//!   driver, retransmission, connection ids kept per tracker address).
//! - [`failure`]: why an announce failed, typed ([`TrackerFailure`]).
//! - [`announcer`]: when to announce to which tracker with which event (BEP 12 tiers,
//!   back-off on failure).
//! - [`server`]: swarms per info-hash answering announces with a random subset of peers.

pub mod announcer;
pub mod failure;
pub mod http;
pub mod server;
pub mod udp;
pub mod udp_client;

pub use failure::{ResolveError, TlsFailure, TrackerFailure};

use std::net::{IpAddr, SocketAddr};

use crate::info_hash::InfoHash;
use crate::wire::PeerId;

/// The `event` of an announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnnounceEvent {
    /// A regular re-announce.
    None,
    /// The first announce of a download.
    Started,
    /// The download just finished.
    Completed,
    /// The client is leaving the swarm.
    Stopped,
}

/// What a client tells a tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Our peer id.
    pub peer_id: PeerId,
    /// Our listen port.
    pub port: u16,
    /// Payload bytes sent so far.
    pub uploaded: u64,
    /// Payload bytes received so far.
    pub downloaded: u64,
    /// Bytes still missing.
    pub left: u64,
    /// Why we announce.
    pub event: AnnounceEvent,
    /// How many peers we would like (`None`: the tracker's default).
    pub numwant: Option<u32>,
    /// A random number fixed for the session, so the tracker recognises us across IP
    /// changes.
    pub key: u32,
    /// Our address as we want it advertised (`None`: the tracker uses the packet's source).
    pub ip: Option<IpAddr>,
    /// Our IPv6 address (BEP 7 `ipv6=`), so a tracker reached over IPv4 can hand us to
    /// IPv6 peers too (HTTP only: BEP 15 has no field for it). `None`: not sent.
    pub ipv6: Option<std::net::Ipv6Addr>,
    /// The `tracker id` the tracker gave us earlier, if any (HTTP only).
    pub tracker_id: Option<String>,
}

/// What a tracker answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnnounceResponse {
    /// Seconds until the next regular announce.
    pub interval: u32,
    /// Seconds the tracker wants at least between announces.
    pub min_interval: Option<u32>,
    /// An id to send back on later announces (HTTP only).
    pub tracker_id: Option<String>,
    /// Seeders in the swarm, if said.
    pub complete: Option<u32>,
    /// Leechers in the swarm, if said.
    pub incomplete: Option<u32>,
    /// Peers to try (IPv4 and IPv6, duplicates removed, in the tracker's order).
    pub peers: Vec<SocketAddr>,
    /// A warning to show the user; the announce still succeeded.
    pub warning: Option<String>,
}

/// Swarm counts for one torrent, from a scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScrapeEntry {
    /// Seeders.
    pub complete: u32,
    /// Completed downloads ever reported.
    pub downloaded: u32,
    /// Leechers.
    pub incomplete: u32,
}
