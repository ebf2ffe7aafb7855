//! The drivers `unchoke download` / `unchoke seed` run on (`--runtime`), the loopback
//! addresses each one's tests use, and `per_runtime!`, which runs one suite once per runtime.
//!
//! The two variants of a test run at the same time, so each runtime gets its own
//! 127.0.X.0/24: Transmission keys peers by IP and lt_peer.py re-dials `--connect` peers by
//! IP, so two variants sharing an address could see each other's peers.
#![allow(unused_macros)] // only the transfer suites use `per_runtime!`

use std::fmt;

/// One driver that `--runtime` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// `--runtime mio`: one `mio` event-loop thread plus disk workers.
    Mio,
    /// `--runtime smol`: async tasks on smol.
    Smol,
}

impl Runtime {
    /// The value of `--runtime`.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Mio => "mio",
            Runtime::Smol => "smol",
        }
    }

    /// `["--runtime", NAME]`, for an `unchoke download|seed` command line.
    pub fn args(self) -> [&'static str; 2] {
        ["--runtime", self.name()]
    }

    /// `127.0.{1 for mio, 2 for smol}.n`. A test file keeps each `n` to one test, so no two
    /// tests (of either runtime) share an address.
    pub fn ip(self, n: u8) -> String {
        let subnet = match self {
            Runtime::Mio => 1,
            Runtime::Smol => 2,
        };
        host(subnet, n)
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `127.0.3.n`: addresses for tests whose swarm mixes runtimes, apart from both runtimes'
/// own ranges.
pub fn mixed_ip(n: u8) -> String {
    host(3, n)
}

fn host(subnet: u8, n: u8) -> String {
    assert!(
        (1..=254).contains(&n),
        "host number {n} is not a usable address in 127.0.{subnet}.0/24"
    );
    format!("127.0.{subnet}.{n}")
}

/// Runs each listed test body `fn NAME(rt: Runtime)` once per runtime: generates
/// `mod mio { #[test] fn NAME() }` and `mod smol { #[test] fn NAME() }`, so one suite (not a
/// copy) covers both drivers and `cargo test -- mio::` or `-- smol::` picks one of them.
macro_rules! per_runtime {
    ($($name:ident),+ $(,)?) => {
        per_runtime!(@variant mio, Mio, $($name),+);
        per_runtime!(@variant smol, Smol, $($name),+);
    };
    (@variant $module:ident, $variant:ident, $($name:ident),+) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::common::runtime::Runtime::$variant);
                }
            )+
        }
    };
}
