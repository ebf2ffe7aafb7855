//! # unchoke-core
//!
//! The sans-IO heart of unchoke, a BitTorrent engine. Nothing in this crate touches a socket,
//! a clock, a thread, a file (outside the optional `fs` feature) or global randomness: it
//! parses and produces bytes, and (in later modules) takes time and input as arguments and
//! answers with actions for a driver to carry out.
//!
//! Modules present today:
//! - [`bencode`]: zero-copy decoder and canonical encoder.
//! - [`info_hash`]: the v1 info-hash and its hex / base32 forms.
//! - [`time`]: the injected monotonic [`time::Instant`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bencode;
pub mod info_hash;
pub mod time;

pub use info_hash::InfoHash;
