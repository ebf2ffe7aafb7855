//! What `download` says about peers and trackers that fail: each peer's connect failure
//! once (with the OS's reason), each unsupported tracker once, and the one line that ends a
//! download the core gave up on ([`Event::GaveUp`](unchoke_core::session::Event::GaveUp)).
//! The decision to give up is the core's; this module only puts it into words.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use unchoke_core::session::{FailedPeer, GiveUpReason};
use unchoke_core::torrent::TorrentStats;

/// Connect failures seen so far, per peer: the last reason and whether every one was a
/// refusal (so the final line can say "refused every connection").
#[derive(Debug, Default)]
pub(crate) struct DialFailures {
    by_peer: BTreeMap<SocketAddr, (String, bool)>,
    /// Why each peer's last connection ended (for peers whose dials did not fail).
    hung_up: BTreeMap<SocketAddr, String>,
}

impl DialFailures {
    /// Records a failed dial; returns whether it is the peer's first (the one shown
    /// without `--verbose`: retries repeat the same story).
    pub(crate) fn note(&mut self, addr: SocketAddr, reason: &str) -> bool {
        let refused = reason == "connection refused";
        match self.by_peer.get_mut(&addr) {
            Some((last, all_refused)) => {
                *last = reason.to_string();
                *all_refused &= refused;
                false
            }
            None => {
                self.by_peer.insert(addr, (reason.to_string(), refused));
                true
            }
        }
    }

    /// Records why a connection to `addr` ended: the last reason for a peer that never got
    /// past its handshake (one that hung up on our encrypted handshake, say) is what the
    /// final line names, rather than "could not be reached".
    pub(crate) fn note_disconnect(&mut self, addr: SocketAddr, reason: &str) {
        self.hung_up.insert(addr, reason.to_string());
    }

    /// One peer given up on, in words: `127.0.0.1:1 refused every connection (3 tries)`.
    fn describe(&self, peer: &FailedPeer) -> String {
        let tries = match peer.failures {
            1 => "1 try".to_string(),
            n => format!("{n} tries"),
        };
        match self.by_peer.get(&peer.addr) {
            _ if peer.connected => format!("{} connected but went away ({tries})", peer.addr),
            Some((_, true)) => format!("{} refused every connection ({tries})", peer.addr),
            Some((last, false)) => format!("{}: {last} ({tries})", peer.addr),
            None => match self.hung_up.get(&peer.addr) {
                Some(last) => format!("{}: {last} ({tries})", peer.addr),
                None => format!("{} could not be reached ({tries})", peer.addr),
            },
        }
    }
}

/// The warning for a tracker the session cannot announce to (named once, when added).
pub(crate) fn unsupported_tracker(url: &str, scheme: &str) -> String {
    let scheme = if scheme.is_empty() {
        "no scheme".to_string()
    } else {
        format!("{scheme}://")
    };
    format!(
        "tracker {url}: skipped: {scheme} is not supported (only http://, https:// and udp:// \
         trackers work)"
    )
}

/// The error that ends a download the core gave up on. `what` names the torrent; `stats`
/// (when known) tells how far it got; `dht_join_failed`: the DHT ran but could not be
/// joined (its warning said why), rather than being off.
pub(crate) fn message(
    what: &str,
    reason: &GiveUpReason,
    dials: &DialFailures,
    stats: Option<&TorrentStats>,
    dht_join_failed: bool,
) -> String {
    let dht = if dht_join_failed {
        "the DHT could not be joined"
    } else {
        "no DHT"
    };
    let help = "give --peer HOST:PORT, an http://, https:// or udp:// --tracker, or \
                --dht-bootstrap HOST:PORT";
    match reason {
        GiveUpReason::NothingGiven => format!(
            "{what}: nothing to download from: no --peer was given, and there is no tracker \
             and {dht} ({help})"
        ),
        GiveUpReason::TrackersUnsupported { schemes } => format!(
            "{what}: nothing to download from: the torrent's only trackers use unsupported \
             schemes ({}), {dht}, no --peer ({help})",
            schemes.join(", ")
        ),
        GiveUpReason::PeersFailed {
            peers,
            total,
            unsupported_schemes,
        } => {
            let mut failed: Vec<String> = peers.iter().map(|p| dials.describe(p)).collect();
            if *total > peers.len() {
                failed.push(format!("{} more", total - peers.len()));
            }
            let who = match (total, failed.as_slice()) {
                (0, _) => "the peers that connected to us went away".to_string(),
                (1, [one]) => one.clone(),
                _ => format!("every peer failed: {}", failed.join(", ")),
            };
            let trackers = if unsupported_schemes.is_empty() {
                "no tracker".to_string()
            } else {
                format!(
                    "the trackers use unsupported schemes ({})",
                    unsupported_schemes.join(", ")
                )
            };
            let progress = match stats {
                Some(s) if s.has_metadata => format!(
                    "{} of {} pieces verified and kept",
                    s.pieces_have, s.piece_count
                ),
                Some(_) => "the metadata was not fetched".to_string(),
                None => "verified pieces are kept".to_string(),
            };
            format!(
                "{what}: no peers left: {who}; nothing else to try ({trackers}, {dht}) \
                 ({progress}; run again with a reachable --peer to resume)"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn each_peer_is_shown_once_and_refusals_read_as_such() {
        let mut dials = DialFailures::default();
        dials.note_disconnect(
            addr("127.0.0.1:9"),
            "closed by the peer during the encrypted handshake",
        );
        assert!(
            dials
                .describe(&FailedPeer {
                    addr: addr("127.0.0.1:9"),
                    failures: 3,
                    connected: false
                })
                .contains("during the encrypted handshake (3 tries)")
        );
        assert!(dials.note(addr("127.0.0.1:1"), "connection refused"));
        assert!(!dials.note(addr("127.0.0.1:1"), "connection refused"));
        assert!(dials.note(addr("127.0.0.1:2"), "timed out after 10 s"));
        let reason = GiveUpReason::PeersFailed {
            peers: vec![
                FailedPeer {
                    addr: addr("127.0.0.1:1"),
                    failures: 3,
                    connected: false,
                },
                FailedPeer {
                    addr: addr("127.0.0.1:2"),
                    failures: 3,
                    connected: false,
                },
            ],
            total: 2,
            unsupported_schemes: vec!["wss".into()],
        };
        let text = message("t.torrent", &reason, &dials, None, false);
        assert!(
            text.contains("127.0.0.1:1 refused every connection (3 tries)"),
            "{text}"
        );
        assert!(
            text.contains("127.0.0.1:2: timed out after 10 s (3 tries)"),
            "{text}"
        );
        assert!(text.contains("unsupported schemes (wss)"), "{text}");
    }

    #[test]
    fn nothing_given_does_not_claim_a_peer_was_given() {
        let text = message(
            "t.torrent",
            &GiveUpReason::NothingGiven,
            &DialFailures::default(),
            None,
            false,
        );
        assert!(text.contains("no --peer was given"), "{text}");
        assert!(text.contains("no DHT"), "{text}");
        assert!(!text.contains("unreachable"), "{text}");
        assert!(!text.contains("every peer"), "{text}");
    }

    #[test]
    fn a_dht_that_could_not_be_joined_is_named_as_such() {
        let text = message(
            "t.torrent",
            &GiveUpReason::NothingGiven,
            &DialFailures::default(),
            None,
            true,
        );
        assert!(text.contains("the DHT could not be joined"), "{text}");
        assert!(!text.contains("no DHT"), "{text}");
    }
}
