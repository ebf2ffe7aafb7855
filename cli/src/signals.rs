//! Stopping on SIGINT and SIGTERM, told apart (exit 130 and 143, as shells report a
//! process killed by them), with a second signal ending the process at once.
//!
//! The first signal only raises a flag: long-running commands poll it (and hand it to the
//! driver as the start-up check's [`CancelFlag`](unchoke_driver::CancelFlag)), stop
//! cleanly, save resume data and return. A second signal while the first is being handled
//! means the user will not wait for that: the process exits at once from the handler.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};

/// A signal that stops a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    /// SIGINT: Ctrl-C in a terminal.
    Int,
    /// SIGTERM: `kill`, a service manager stopping us.
    Term,
}

impl Signal {
    /// The exit status after a clean stop on this signal: 128 + its number, as a shell
    /// shows for a process it killed, so scripts can tell "interrupted" from "failed".
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Signal::Int => 130,
            Signal::Term => 143,
        }
    }

    /// Its usual name, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }

    fn number(self) -> i32 {
        match self {
            Signal::Int => SIGINT,
            Signal::Term => SIGTERM,
        }
    }
}

/// The handlers' shared state, installed once per process.
struct Installed {
    /// Raised by the first SIGINT or SIGTERM.
    flag: Arc<AtomicBool>,
    /// The number of the signal that raised it (0: none yet).
    which: Arc<AtomicUsize>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Installs the handlers (once; later calls return the same flag) and returns the flag the
/// first SIGINT or SIGTERM raises. Call it before any long work starts, so that no signal
/// falls between the default action and the handler.
pub(crate) fn install() -> Result<Arc<AtomicBool>, String> {
    if let Some(done) = INSTALLED.get() {
        return Ok(done.flag.clone());
    }
    let flag = Arc::new(AtomicBool::new(false));
    let which = Arc::new(AtomicUsize::new(0));
    for signal in [Signal::Int, Signal::Term] {
        let number = signal.number();
        let fail = |e: std::io::Error| format!("cannot install the {} handler: {e}", signal.name());
        // Registered before the flag is raised, so it sees the flag as an earlier signal
        // left it: a second signal exits at once, with this signal's status.
        signal_hook::flag::register_conditional_shutdown(
            number,
            i32::from(signal.exit_code()),
            flag.clone(),
        )
        .map_err(fail)?;
        // `number` is a small positive constant: the cast cannot lose anything.
        signal_hook::flag::register_usize(number, which.clone(), number.unsigned_abs() as usize)
            .map_err(fail)?;
        signal_hook::flag::register(number, flag.clone()).map_err(fail)?;
    }
    let installed = INSTALLED.get_or_init(|| Installed { flag, which });
    Ok(installed.flag.clone())
}

/// The signal that asked the process to stop, if one did.
pub(crate) fn received() -> Option<Signal> {
    let installed = INSTALLED.get()?;
    if !installed.flag.load(Ordering::SeqCst) {
        return None;
    }
    // The flag is also a magnet's cancel flag, which the driver raises itself as it shuts
    // down (to stop a check of existing data): only a handler records which signal came,
    // before it raises the flag, so a flag raised with no signal recorded is no signal.
    let which = installed.which.load(Ordering::SeqCst);
    if which == SIGTERM.unsigned_abs() as usize {
        Some(Signal::Term)
    } else if which == SIGINT.unsigned_abs() as usize {
        Some(Signal::Int)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_128_plus_the_signal_number() {
        for s in [Signal::Int, Signal::Term] {
            assert_eq!(i32::from(s.exit_code()), 128 + s.number(), "{}", s.name());
        }
    }
}
