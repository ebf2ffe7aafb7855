//! The tracker service on the smol runtime: the shared suite in
//! `driver/tests/suites/tracker_service.rs`, run against `unchoke_smol::TrackerService`.

// A failed unwrap in a test's helper is a failed test.
#![allow(clippy::unwrap_used)]

use unchoke_smol as rt;

#[path = "../../driver/tests/suites/tracker_service.rs"]
mod suite;
