//! Fuzz target bodies, shared by the cargo-fuzz binaries and the stable replay harness.
//!
//! - [`targets`]: one function per target; each checks invariants (not only "no panic")
//!   and panics on a finding. [`targets::ALL`] lists them by name.
//! - [`torrent`]: an [`arbitrary`]-driven generator of valid-looking `.torrent` files.
//! - [`inputs`]: deterministic seeded inputs and corpus mutations for replay on stable.
//! - [`replay`]: runs a target over the committed corpus and generated inputs, catching
//!   panics so a finding is reported with the input that caused it.
//!
//! See `fuzz/README.md` for how to fuzz for real and how to replay a crash file.

pub mod inputs;
pub mod replay;
pub mod targets;
pub mod torrent;
