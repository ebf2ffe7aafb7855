//! The error a command ends with, and the exit status it maps to.
//!
//! Exit status: 0 done (and, for `download`, every piece verified); 1 the work or its
//! input failed; 2 a usage error (what clap rejects, and every argument a command checks
//! itself: an address that does not resolve, an unsupported tracker URL, a piece length
//! that is not a power of two); 130 and 143 when SIGINT or SIGTERM stopped the command
//! (see [`crate::signals`]).

use std::fmt;

/// Why a command stopped short of success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The command line asks for something impossible: exit 2.
    Usage,
    /// The input or the work failed: exit 1.
    Failure,
}

/// A command's failure: what to print (`unchoke: <message>`) and the exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CliError {
    /// Usage or failure.
    pub(crate) kind: Kind,
    /// One line in the user's terms.
    pub(crate) message: String,
    /// The internals behind it (a parser's byte offset, an OS error), shown with
    /// `--verbose` only.
    pub(crate) detail: Option<String>,
}

impl CliError {
    /// A usage error (exit 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError {
            kind: Kind::Usage,
            message: message.into(),
            detail: None,
        }
    }

    /// A failure (exit 1).
    pub(crate) fn failure(message: impl Into<String>) -> Self {
        CliError {
            kind: Kind::Failure,
            message: message.into(),
            detail: None,
        }
    }

    /// The same error with internals to show under `--verbose`.
    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The exit status, when no signal stopped the command.
    pub(crate) fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Usage => 2,
            Kind::Failure => 1,
        }
    }

    /// The text to print after `unchoke: `: the message, and the detail when `verbose`.
    pub(crate) fn render(&self, verbose: bool) -> String {
        match &self.detail {
            Some(d) if verbose => format!("{} ({d})", self.message),
            _ => self.message.clone(),
        }
    }
}

/// The commands' existing `Err(String)`s are failures: `?` keeps working on them.
impl From<String> for CliError {
    fn from(message: String) -> Self {
        CliError::failure(message)
    }
}

impl From<&str> for CliError {
    fn from(message: &str) -> Self {
        CliError::failure(message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_exit_codes_and_detail_needs_verbose() {
        let e = CliError::usage("bad").with_detail("why");
        assert_eq!(e.exit_code(), 2);
        assert_eq!(e.render(false), "bad");
        assert_eq!(e.render(true), "bad (why)");
        let f: CliError = String::from("broke").into();
        assert_eq!((f.kind, f.exit_code()), (Kind::Failure, 1));
    }
}
