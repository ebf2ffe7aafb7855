//! Why an announce failed, typed: the session's API takes these instead of strings, so a
//! driver says *what* went wrong (it builds them from `io::Error`, an HTTP status or a
//! bencode error) and the session words it once for the user ([`std::fmt::Display`] is
//! the text of [`crate::session::Event::TrackerError`]).

use std::io;
use std::net::SocketAddr;

use super::http::HttpTrackerError;
use super::udp::UdpTrackerError;

/// Why one announce failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrackerFailure {
    /// The URL's scheme is none of `http`, `https` and `udp` (given lower-case).
    #[error(
        "tracker URL scheme `{0}://` is not supported: only http://, https:// and udp:// \
         trackers work"
    )]
    UnsupportedScheme(String),
    /// The URL cannot be used (no host, bad port, forbidden characters…).
    #[error("invalid tracker URL: {0}")]
    InvalidUrl(String),
    /// The tracker's host name did not resolve.
    #[error("cannot resolve tracker host {host:?}: {error}")]
    Resolve {
        /// The host name.
        host: String,
        /// What the resolver said.
        error: ResolveError,
    },
    /// No address of the tracker could be reached (refused, unreachable); the error is
    /// that of the last address tried.
    #[error("cannot reach tracker at {addr}: {message}")]
    Connect {
        /// The tracker address tried last.
        addr: SocketAddr,
        /// The operating system's words.
        message: String,
    },
    /// The connection failed after it was set up (reset, broken pipe…), or a local socket
    /// could not be made.
    #[error("tracker connection failed: {0}")]
    Io(String),
    /// An `https://` tracker's TLS session could not be set up or broke: its certificate
    /// was not accepted, the handshake failed, or the port does not speak TLS.
    #[error("TLS with the tracker failed: {0}")]
    Tls(TlsFailure),
    /// One socket operation (connect, write, read) waited longer than the driver allows.
    #[error("tracker did not answer in time")]
    Stalled,
    /// The session's own deadline for the whole announce passed
    /// ([`crate::session::SessionConfig::tracker_timeout`]); a late answer is ignored.
    #[error("tracker did not answer: timed out after {secs} s")]
    TimedOut {
        /// The deadline that passed, in whole seconds.
        secs: u64,
    },
    /// The HTTP tracker's response is not a usable announce response (bad status,
    /// malformed or truncated HTTP, bad bencode, missing keys, too large).
    #[error(transparent)]
    Http(HttpTrackerError),
    /// The UDP tracker's response is not a usable announce response.
    #[error(transparent)]
    Udp(UdpTrackerError),
    /// The tracker refused the announce: the HTTP `failure reason` or a BEP 15 error
    /// packet, with the tracker's message.
    #[error("tracker refused the announce: {0}")]
    Refused(String),
}

impl TrackerFailure {
    /// The failure an `io::Error` of an established exchange stands for: a time-out of a
    /// socket operation is [`TrackerFailure::Stalled`], anything else
    /// [`TrackerFailure::Io`].
    pub fn from_io(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => TrackerFailure::Stalled,
            _ => TrackerFailure::Io(e.to_string()),
        }
    }
}

impl From<HttpTrackerError> for TrackerFailure {
    /// The tracker's own refusal and URL problems keep their own variants.
    fn from(e: HttpTrackerError) -> Self {
        match e {
            HttpTrackerError::Failure(reason) => TrackerFailure::Refused(reason),
            HttpTrackerError::InvalidUrl(why) => TrackerFailure::InvalidUrl(why),
            e => TrackerFailure::Http(e),
        }
    }
}

impl From<UdpTrackerError> for TrackerFailure {
    /// A BEP 15 error packet is the tracker's refusal.
    fn from(e: UdpTrackerError) -> Self {
        match e {
            UdpTrackerError::Tracker(message) => TrackerFailure::Refused(message),
            e => TrackerFailure::Udp(e),
        }
    }
}

/// Why TLS with an `https://` tracker failed, in the user's terms. The driver runs TLS and
/// sorts its library's errors into these; the texts say what to do where there is
/// something to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlsFailure {
    /// The certificate chain does not lead to a trusted root: a self-signed or private-CA
    /// certificate, or a server that sent an incomplete chain.
    #[error(
        "the tracker's certificate is not signed by a trusted authority (give --ca-file \
         for a private CA)"
    )]
    UnknownIssuer,
    /// The certificate is valid but names other hosts than the one in the URL.
    #[error("the tracker's certificate is for another host (not {host}{})", presented_text(.presented))]
    WrongHost {
        /// The host of the tracker URL (a name or an IP address).
        host: String,
        /// The names and addresses the certificate is for, when the TLS library said.
        presented: Vec<String>,
    },
    /// The certificate's validity period has ended.
    #[error("the tracker's certificate has expired")]
    Expired,
    /// The certificate's validity period has not begun (or this machine's clock is wrong).
    #[error("the tracker's certificate is not valid yet (is this machine's clock right?)")]
    NotYetValid,
    /// The certificate was revoked by its issuer.
    #[error("the tracker's certificate has been revoked")]
    Revoked,
    /// The certificate was refused for another reason (bad signature, wrong purpose,
    /// malformed…), in the TLS library's words.
    #[error("the tracker's certificate was refused: {0}")]
    BadCertificate(String),
    /// The server ended the handshake with a TLS alert (it refused us, e.g. no common
    /// protocol version or cipher suite), named as the library names it.
    #[error("the tracker refused the TLS handshake (alert: {0})")]
    Alert(String),
    /// What came back is not TLS at all: most likely a plain HTTP server on this port
    /// (an `https://` URL for an `http://` tracker).
    #[error("the tracker did not answer in TLS (is it a plain http:// tracker on this port?)")]
    NotTls,
    /// The server closed the connection before the handshake was done.
    #[error("the tracker closed the connection during the TLS handshake")]
    ClosedDuringHandshake,
    /// No trusted root certificates could be loaded from the system (a machine without a
    /// CA bundle); the text says what was tried.
    #[error("no trusted certificate authorities to check the tracker with: {0}")]
    NoTrustedRoots(String),
    /// Any other TLS error, in the library's words.
    #[error("{0}")]
    Other(String),
}

/// `; it is for a, b` when the certificate's names are known, else nothing.
fn presented_text(presented: &[String]) -> String {
    if presented.is_empty() {
        String::new()
    } else {
        format!("; it is for {}", presented.join(", "))
    }
}

/// Why a name did not resolve (the answer to [`crate::session::Action::Resolve`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The resolver answered with no address.
    #[error("no addresses")]
    NoAddresses,
    /// The resolver failed (unknown name, no network…), in its words.
    #[error("{0}")]
    Failed(String),
}

impl ResolveError {
    /// The error a driver's resolver call (`ToSocketAddrs`) gave.
    pub fn from_io(e: &io::Error) -> Self {
        ResolveError::Failed(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_timeouts_keep_their_words() {
        assert_eq!(
            TrackerFailure::from(HttpTrackerError::Failure("no".into())),
            TrackerFailure::Refused("no".into())
        );
        assert_eq!(
            TrackerFailure::from(UdpTrackerError::Tracker("go away".into())).to_string(),
            "tracker refused the announce: go away"
        );
        assert_eq!(
            TrackerFailure::from_io(&io::ErrorKind::WouldBlock.into()),
            TrackerFailure::Stalled
        );
        assert_eq!(
            TrackerFailure::Tls(TlsFailure::WrongHost {
                host: "127.0.0.1".into(),
                presented: vec!["other.test".into()],
            })
            .to_string(),
            "TLS with the tracker failed: the tracker's certificate is for another host \
             (not 127.0.0.1; it is for other.test)"
        );
        assert!(
            TrackerFailure::Tls(TlsFailure::UnknownIssuer)
                .to_string()
                .contains("not signed by a trusted authority (give --ca-file")
        );
        assert_eq!(
            TrackerFailure::TimedOut { secs: 60 }.to_string(),
            "tracker did not answer: timed out after 60 s"
        );
    }
}
