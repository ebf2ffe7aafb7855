//! Small helpers for people who embed the core in their own event loop: what every driver
//! needs and none should have to write again.
//!
//! - [`StdClock`]: `std::time::Instant` → the core's [`crate::time::Instant`], from an
//!   origin (the one place a driver reads the real clock).
//! - [`verify_piece`] / [`piece_sha1`]: the check an [`crate::session::Action::VerifyPiece`]
//!   asks for (SHA-1, v2 merkle root, or both), over the blocks without concatenating them.
//! - [`MemoryStorage`]: a torrent's content held in memory, answering block reads and writes
//!   by its [`crate::storage::Layout`] — for examples, tests and simulations.
//!
//! The [`crate::session::Session`] never uses any of them: they sit beside it, on the
//! driver's side of the contract described in the crate docs.

mod clock;
mod memory;
mod verify;

pub use clock::StdClock;
pub use memory::{MemoryStorage, MemoryStorageError};
pub use verify::{piece_sha1, verify_piece};
