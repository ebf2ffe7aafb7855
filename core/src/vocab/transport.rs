//! Which transports peer connections use: TCP, uTP (BEP 29), or both.

use std::str::FromStr;

/// Which transports the session dials peers over ([`super::SessionConfig::transport`]).
///
/// Incoming connections are taken on both whatever this says, as libtorrent does — except
/// that a session set to [`Transport::Tcp`] answers a uTP SYN with a RESET, so a peer
/// trying uTP first falls back to TCP at once instead of waiting out its SYN time-outs.
///
/// [`Transport::Both`] is libtorrent's policy: **uTP first, TCP if uTP fails**. The dial
/// goes out as a uTP SYN; if the peer answers with a RESET, or nothing comes back within
/// [`super::SessionConfig::utp_connect_timeout`] (3 s by default), the same dial becomes
/// a TCP `Connect`, and the address is remembered as having no uTP for a while, so its
/// later redials go straight to TCP. The two are tried one after the other, never side by
/// side, so a dial never leaves two connections to one peer. (The issue's "try both and
/// keep whichever connects first" would open two and drop one every time, and libtorrent
/// itself does not do it: it prefers uTP and falls back.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP only (the core's default: a driver that never carries datagrams to the session
    /// still works unchanged; the drivers in this workspace default to [`Transport::Both`]).
    #[default]
    Tcp,
    /// uTP only: every dial is a uTP SYN, and a failed one counts as a failed dial.
    Utp,
    /// uTP first, TCP on failure (see above).
    Both,
}

impl Transport {
    /// The transport's name on the command line (`tcp`, `utp`, `both`).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Utp => "utp",
            Transport::Both => "both",
        }
    }

    /// Whether dials may go out over uTP.
    pub fn dials_utp(self) -> bool {
        matches!(self, Transport::Utp | Transport::Both)
    }
}

impl FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(Transport::Tcp),
            "utp" => Ok(Transport::Utp),
            "both" => Ok(Transport::Both),
            other => Err(format!(
                "unknown transport {other:?} (expected tcp, utp or both)"
            )),
        }
    }
}
