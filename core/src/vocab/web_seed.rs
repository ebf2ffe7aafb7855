//! Web seeds (BEP 19): the words the session and a driver share about an HTTP server used
//! as a source of pieces. The rules (which pieces, how many requests in flight, time-outs,
//! back-off, bans) are the torrent's (`torrent/web_seed.rs`); a driver only performs the
//! HTTP range requests an [`super::Action::WebSeedRequest`] describes and reports the bytes
//! or a [`WebSeedError`].

use std::time::Duration;

/// Identifies one web seed of one torrent (its index in the torrent's list, never reused
/// while the torrent lives).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WebSeedId(pub u32);

/// One HTTP range to fetch: `len` bytes of the file at `url` from byte `start` (the
/// request's `Range: bytes=start-(start+len-1)`). Never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSeedRange {
    /// The file's URL, built from the web seed's URL as BEP 19 says (for a multi-file
    /// torrent: the base, the torrent's name and the file's path, each component
    /// percent-escaped).
    pub url: String,
    /// Offset of the first byte inside the file.
    pub start: u64,
    /// How many bytes (at least 1).
    pub len: u64,
}

/// Why a web seed request failed, in terms a user can act on. `Display` words it ("HTTP
/// 404", "the server closed the connection after 1000 of 4096 bytes").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebSeedFailure {
    /// The server answered with this status instead of `206 Partial Content` (or `200` for
    /// a range that is the whole file). A 404 or 410 takes the file off this web seed.
    Status(u16),
    /// The body ended early: the server closed the connection mid-range, or said a shorter
    /// length than asked.
    Short {
        /// Bytes received of this range.
        got: u64,
        /// Bytes asked for.
        expected: u64,
    },
    /// The server does not serve byte ranges (a `200` with the whole file for a range that
    /// is not it, or a `Content-Range` that is not the one asked for).
    NoRanges,
    /// More redirects than a driver follows (at most 5).
    TooManyRedirects,
    /// The host's name could not be resolved, or nothing answered at its addresses.
    Connect(String),
    /// The TLS handshake of an `https://` web seed failed (the words name why).
    Tls(String),
    /// The URL cannot be requested (not `http://` or `https://`, or malformed).
    InvalidUrl(String),
    /// Any other transport error, in the driver's words.
    Io(String),
    /// No answer within the session's [`super::SessionConfig::web_seed_timeout`].
    TimedOut(Duration),
}

impl std::fmt::Display for WebSeedFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebSeedFailure::Status(code) => write!(f, "HTTP {code}"),
            WebSeedFailure::Short { got, expected } => write!(
                f,
                "the server closed the connection after {got} of {expected} bytes"
            ),
            WebSeedFailure::NoRanges => f.write_str("the server does not serve byte ranges"),
            WebSeedFailure::TooManyRedirects => f.write_str("too many redirects"),
            WebSeedFailure::Connect(why) => write!(f, "cannot connect: {why}"),
            WebSeedFailure::Tls(why) => write!(f, "TLS failed: {why}"),
            WebSeedFailure::InvalidUrl(why) => write!(f, "unusable URL: {why}"),
            WebSeedFailure::Io(why) => f.write_str(why),
            WebSeedFailure::TimedOut(after) => {
                write!(f, "no answer within {} s", after.as_secs_f64())
            }
        }
    }
}

/// A failed [`super::Action::WebSeedRequest`], as a driver reports it to
/// [`crate::session::Session::web_seed_failed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSeedError {
    /// Index of the range (in the action's `ranges`) that failed.
    pub range: usize,
    /// Why.
    pub failure: WebSeedFailure,
}

/// What a torrent's web seed has done so far ([`crate::torrent::TorrentStats::web_seeds`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSeedStats {
    /// Its id.
    pub id: WebSeedId,
    /// Its URL, as given.
    pub url: String,
    /// Payload bytes received from it (including data that later failed verification).
    pub downloaded: u64,
    /// Requests that failed.
    pub failures: u64,
    /// Requests answered and not yet answered.
    pub in_flight: usize,
    /// Banned for sending wrong data: never asked again.
    pub banned: bool,
}
