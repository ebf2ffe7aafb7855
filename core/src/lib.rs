//! # unchoke-core
//!
//! The sans-IO heart of unchoke, a BitTorrent engine. Nothing in this crate touches a socket,
//! a clock, a thread, a file or global randomness: it parses and produces bytes, takes time
//! and input as arguments, and answers with actions for a driver to carry out (see
//! [`session`]).
//!
//! Modules:
//! - [`bencode`]: zero-copy decoder (byte offsets in every error, depth and length limits,
//!   strict canonical mode) and canonical encoder.
//! - [`info_hash`]: the v1 info-hash and its hex / base32 forms.
//! - [`metainfo`]: `.torrent` files (v1, and hybrid v1+v2 read as v1), validated and with
//!   sanitised paths; [`magnet`]: magnet links; [`create`]: torrent creation (pure).
//! - [`storage`]: piece ↔ file-span layout math.
#![cfg_attr(
    feature = "fs",
    doc = "  With the `fs` feature, [`storage::FileStorage`]: blocking positional file IO."
)]
//! - [`resume`]: resume data (verified pieces and file states), encoded as bencode.
//! - [`wire`]: the peer wire protocol (BEP 3, 6, 10): handshake, messages, an incremental
//!   decoder that checks every limit before allocating.
//! - [`bitfield`], [`picker`] (rarest first, random first pieces, endgame, priorities),
//!   [`rate`] (rate meters), [`choker`] (tit-for-tat: 4 regular slots every 10 s, one
//!   optimistic every 30 s, anti-snubbing).
//! - [`vocab`]: the shared vocabulary (ids, [`session::Action`], [`session::Event`],
//!   reasons, [`session::SessionConfig`]), a leaf that imports neither of the next two;
//!   [`torrent`] (one torrent's swarm state, split by job) builds on it, and [`session`]
//!   (many torrents, routing, handshakes; the API a driver calls) on both.
//! - [`tracker`]: trackers, sans-IO: the HTTP and UDP (BEP 15) announce exchanges and the
//!   tracker server (random peer subsets, expiry, HTTP and UDP fronts).
//! - [`dht`]: a sans-IO Mainline DHT node (BEP 5): KRPC codec, routing table, iterative
//!   `get_peers`/announce lookups, write tokens, peer store, per-IP rate limiting.
//! - [`time`]: the injected monotonic [`time::Instant`].
#![cfg_attr(
    feature = "sim",
    doc = "- [`sim`]: the deterministic swarm simulator (many sessions over a virtual network) and the distribution-time study."
)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bencode;
pub mod bitfield;
pub mod choker;
pub mod create;
pub mod dht;
pub mod info_hash;
pub mod magnet;
pub mod metainfo;
pub mod picker;
pub mod rate;
pub mod resume;
pub mod session;
#[cfg(feature = "sim")]
pub mod sim;
pub mod storage;
pub mod time;
pub mod torrent;
pub mod tracker;
pub mod vocab;
pub mod wire;

pub use info_hash::InfoHash;
