//! # unchoke-mio
//!
//! The `mio` driver of unchoke: one event-loop thread over every socket, with disk and
//! hashing on worker threads, running the sans-IO core of `unchoke-core`.
//!
//! Not built yet: this crate holds no code until the runtime-mio issue lands. Nothing here
//! pretends to work.
#![warn(missing_docs)]
