//! The words the core's modules share: ids ([`TorrentId`], [`ConnId`]), who opened a
//! connection ([`Direction`]), what the core asks of a driver ([`Action`]) and tells it
//! ([`Event`]), the reasons a connection ends or a torrent gives up, and the session's
//! tunables ([`SessionConfig`]), plus the output queue both layers write to.
//!
//! This module is a leaf of the core's dependency graph: it imports lower building blocks
//! (`wire`, `tracker`, `metainfo`, `choker`, `dht` for their value types) and nothing from
//! [`crate::torrent`] or [`crate::session`]. `torrent` builds on it, `session` builds on
//! both, so no module points back up at the one that owns it. A driver keeps naming these
//! types through [`crate::session`], which re-exports all of them.

mod action;
mod config;
pub mod conn_map;
mod disk_error;
mod encryption;
mod geometry;
pub(crate) mod outbox;
mod peer_source;
mod seeding;
mod transport;
mod web_seed;

pub use action::{
    Action, ConnId, ConnectFailure, DhtRouterFailure, Direction, DisconnectReason, Event,
    FAILED_PEERS_LISTED, FailedPeer, GiveUpReason, PeerGone, TorrentId,
};
pub use config::SessionConfig;
pub use disk_error::{DiskError, DiskErrorKind};
pub use encryption::{CryptoLevel, EncryptionPolicy};
pub use geometry::GeometryError;
pub use peer_source::PeerSource;
pub use seeding::{Limit, QueueLimits, SeedLimit, SeedLimits, TransferTotals};
pub use transport::Transport;
pub use web_seed::{WebSeedError, WebSeedFailure, WebSeedId, WebSeedRange, WebSeedStats};
