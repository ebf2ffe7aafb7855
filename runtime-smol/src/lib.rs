//! # unchoke-smol
//!
//! The `smol` driver of unchoke: async tasks over `Async` sockets, blocking disk and hashing
//! work on smol's pool, running the sans-IO core of `unchoke-core`.
//!
//! Not built yet: this crate holds no code until the runtime-smol issue lands. Nothing here
//! pretends to work.
#![warn(missing_docs)]
