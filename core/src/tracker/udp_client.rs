//! Many BEP 15 announces at once over the session's one UDP socket, sans-IO: name
//! resolution asked of the driver, retransmission on the caller's clock, transaction ids
//! from the caller's seeded RNG, and connection ids kept per tracker address for
//! [`super::udp::CONNECTION_ID_LIFETIME`] so a later announce skips the connect round trip.
//!
//! One [`UdpAnnounce`] runs per key (the session's key is a torrent and a tracker URL: a
//! torrent has at most one announce out per tracker). Replies are matched to exchanges by source address and
//! transaction id, so any number of torrents may talk to one tracker at once.
//!
//! Only the first address a name resolves to is used: the driver orders them (its UDP
//! socket's family first), and over an unconnected UDP socket an unreachable address
//! looks exactly like a silent one, so trying the next would only split the time.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::failure::{ResolveError, TrackerFailure};
use super::http::HostPort;
use super::udp::{UdpAnnounce, UdpConnection};
use super::{AnnounceRequest, AnnounceResponse};
use crate::time::Instant;

/// Where one exchange stands.
#[derive(Debug)]
enum Stage {
    /// Waiting for the driver to resolve the host.
    Resolving,
    /// Talking to `addr`; `reused`: it started with a cached connection id (refused, it is
    /// retried once with a fresh connect).
    Talking {
        addr: SocketAddr,
        announce: Box<UdpAnnounce>,
        reused: bool,
    },
}

#[derive(Debug)]
struct Exchange {
    target: HostPort,
    request: AnnounceRequest,
    stage: Stage,
}

/// The UDP announces in flight and the connection ids worth keeping; see the module docs.
#[derive(Debug)]
pub struct UdpTrackers<K> {
    exchanges: BTreeMap<K, Exchange>,
    /// Per tracker address, the last connection id it gave.
    connections: BTreeMap<SocketAddr, UdpConnection>,
    /// Names to hand the driver, each once while it is out.
    to_resolve: VecDeque<HostPort>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    done: VecDeque<(K, Result<AnnounceResponse, TrackerFailure>)>,
}

impl<K> Default for UdpTrackers<K> {
    fn default() -> Self {
        UdpTrackers {
            exchanges: BTreeMap::new(),
            connections: BTreeMap::new(),
            to_resolve: VecDeque::new(),
            transmits: VecDeque::new(),
            done: VecDeque::new(),
        }
    }
}

impl<K: Ord + Clone> UdpTrackers<K> {
    /// Starts announcing `request` to the `udp://` tracker `url` under `key`, replacing an
    /// exchange under the same key. A URL that cannot be used fails at once (see
    /// [`UdpTrackers::poll_done`]).
    pub fn start(
        &mut self,
        key: K,
        url: &str,
        request: AnnounceRequest,
        rng: &mut fastrand::Rng,
        now: Instant,
    ) {
        self.exchanges.remove(&key);
        let target = match parse_udp_url(url) {
            Ok(t) => t,
            Err(e) => {
                self.done.push_back((key, Err(e)));
                return;
            }
        };
        if let Ok(ip) = target.host.parse::<IpAddr>() {
            let addr = SocketAddr::new(ip, target.port);
            let stage = self.talk(addr, &request, true, rng, now);
            self.exchanges.insert(
                key,
                Exchange {
                    target,
                    request,
                    stage,
                },
            );
            return;
        }
        let asked = self
            .exchanges
            .values()
            .any(|e| matches!(e.stage, Stage::Resolving) && e.target == target);
        if !asked {
            self.to_resolve.push_back(target.clone());
        }
        self.exchanges.insert(
            key,
            Exchange {
                target,
                request,
                stage: Stage::Resolving,
            },
        );
    }

    /// Forgets the exchange under `key` (its deadline passed); its replies are ignored.
    pub fn cancel(&mut self, key: &K) {
        self.exchanges.remove(key);
    }

    /// Whether an exchange runs under `key`.
    pub fn is_running(&self, key: &K) -> bool {
        self.exchanges.contains_key(key)
    }

    /// The driver resolved `host`:`port`: every exchange waiting for it starts talking to
    /// the first address (or fails). An answer nobody waits for is ignored.
    pub fn handle_resolved(
        &mut self,
        host: &str,
        port: u16,
        result: Result<Vec<SocketAddr>, ResolveError>,
        rng: &mut fastrand::Rng,
        now: Instant,
    ) {
        let waiting: Vec<K> = self
            .exchanges
            .iter()
            .filter(|(_, e)| {
                matches!(e.stage, Stage::Resolving)
                    && e.target.host == host
                    && e.target.port == port
            })
            .map(|(k, _)| k.clone())
            .collect();
        let first = match &result {
            Ok(addrs) => addrs.first().copied().ok_or(ResolveError::NoAddresses),
            Err(e) => Err(e.clone()),
        };
        for key in waiting {
            match first {
                Ok(addr) => {
                    let Some(request) = self.exchanges.get(&key).map(|e| e.request.clone()) else {
                        continue;
                    };
                    let stage = self.talk(addr, &request, true, rng, now);
                    if let Some(e) = self.exchanges.get_mut(&key) {
                        e.stage = stage;
                    }
                }
                Err(ref error) => {
                    self.exchanges.remove(&key);
                    let failure = TrackerFailure::Resolve {
                        host: host.to_string(),
                        error: error.clone(),
                    };
                    self.done.push_back((key, Err(failure)));
                }
            }
        }
    }

    /// A datagram from `from`: fed to the exchange it answers. Returns whether it was a
    /// tracker's (a BEP 15 response from an address an exchange talks to), so the caller
    /// hands anything else to the DHT.
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) -> bool {
        if !looks_like_bep15_reply(bytes) {
            return false;
        }
        let transaction_id = bytes
            .get(4..8)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes);
        let mut ours = false;
        let mut answered = None;
        for (key, e) in self.exchanges.iter_mut() {
            if let Stage::Talking { addr, announce, .. } = &mut e.stage {
                if *addr != from {
                    continue;
                }
                ours = true;
                if Some(announce.transaction_id()) == transaction_id {
                    // Errors that end the exchange show in `result()`.
                    let _ended = announce.handle_packet(bytes, now);
                    answered = Some(key.clone());
                    break;
                }
            }
        }
        if let Some(key) = answered {
            self.after_input(&key, now);
        }
        ours
    }

    /// Retransmits what is due and ends exchanges that ran out of retransmissions.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<K> = self
            .exchanges
            .iter()
            .filter(|(_, e)| match &e.stage {
                Stage::Talking { announce, .. } => {
                    announce.poll_timeout().is_some_and(|t| t <= now)
                }
                Stage::Resolving => false,
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(Exchange {
                stage: Stage::Talking { announce, .. },
                ..
            }) = self.exchanges.get_mut(&key)
            {
                announce.handle_timeout(now);
            }
            self.after_input(&key, now);
        }
        self.connections.retain(|_, c| c.is_fresh(now));
    }

    /// When [`UdpTrackers::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.exchanges
            .values()
            .filter_map(|e| match &e.stage {
                Stage::Talking { announce, .. } => announce.poll_timeout(),
                Stage::Resolving => None,
            })
            .min()
    }

    /// The next datagram to send, and where.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// The next name the driver must resolve.
    pub fn poll_resolve(&mut self) -> Option<HostPort> {
        self.to_resolve.pop_front()
    }

    /// The next finished exchange and its outcome.
    pub fn poll_done(&mut self) -> Option<(K, Result<AnnounceResponse, TrackerFailure>)> {
        self.done.pop_front()
    }

    /// The connection id cached for `addr`, if still fresh at `now`.
    pub fn connection(&self, addr: SocketAddr, now: Instant) -> Option<UdpConnection> {
        self.connections
            .get(&addr)
            .copied()
            .filter(|c| c.is_fresh(now))
    }

    /// Starts an exchange with `addr`, reusing its cached connection id when `reuse` and
    /// fresh, and queues its first datagram.
    fn talk(
        &mut self,
        addr: SocketAddr,
        request: &AnnounceRequest,
        reuse: bool,
        rng: &mut fastrand::Rng,
        now: Instant,
    ) -> Stage {
        let cached = self.connection(addr, now).filter(|_| reuse);
        let ipv6 = addr.is_ipv6() && !is_mapped_v4(addr);
        let mut announce = UdpAnnounce::with_connection(request.clone(), ipv6, cached, rng, now);
        while let Some(packet) = announce.poll_transmit(now) {
            self.transmits.push_back((addr, packet));
        }
        Stage::Talking {
            addr,
            announce: Box::new(announce),
            reused: cached.is_some(),
        }
    }

    /// After a datagram or a time-out: queue what the exchange sends next, keep its
    /// connection id, and report it if it ended.
    fn after_input(&mut self, key: &K, now: Instant) {
        let Some(e) = self.exchanges.get_mut(key) else {
            return;
        };
        let Stage::Talking {
            addr,
            announce,
            reused,
        } = &mut e.stage
        else {
            return;
        };
        let addr = *addr;
        while let Some(packet) = announce.poll_transmit(now) {
            self.transmits.push_back((addr, packet));
        }
        if let Some(c) = announce.connection().filter(|c| c.is_fresh(now)) {
            self.connections.insert(addr, c);
        }
        let Some(result) = announce.result() else {
            return;
        };
        // A cached id the tracker refused (it restarted, or keeps ids shorter than
        // CONNECTION_ID_LIFETIME): forget it and connect afresh, once.
        if *reused
            && result.is_err()
            && !matches!(result, Err(super::udp::UdpTrackerError::TimedOut))
        {
            self.connections.remove(&addr);
            let mut rng = announce_rng(announce);
            let request = e.request.clone();
            let stage = self.talk(addr, &request, false, &mut rng, now);
            if let Some(e) = self.exchanges.get_mut(key) {
                e.stage = stage;
            }
            return;
        }
        self.exchanges.remove(key);
        self.done
            .push_back((key.clone(), result.map_err(TrackerFailure::from)));
    }
}

/// A generator for a retry, drawn from the exchange's own (itself forked from the
/// session's), so the retry stays deterministic without borrowing the session's.
fn announce_rng(announce: &UdpAnnounce) -> fastrand::Rng {
    fastrand::Rng::with_seed(u64::from(announce.transaction_id()) ^ 0x9e37_79b9_7f4a_7c15)
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`): its tracker sends IPv4 peers.
fn is_mapped_v4(addr: SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V6(ip) => ip.to_ipv4_mapped().is_some(),
        IpAddr::V4(_) => false,
    }
}

/// Whether a datagram can be a BEP 15 reply: at least an action and a transaction id, the
/// action 0..=3. A DHT message is a bencoded dictionary and starts with `d` (0x64), which
/// no reply does (its first byte is 0).
pub fn looks_like_bep15_reply(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes.first() != Some(&b'd') && bytes[..4] <= [0, 0, 0, 3][..]
}

/// Host and port of a `udp://host:port[/path][?query]` URL. The path (BEP 41 URL data) is
/// not sent: the core's packets carry no options.
pub fn parse_udp_url(url: &str) -> Result<HostPort, TrackerFailure> {
    let invalid = |why: &str| TrackerFailure::InvalidUrl(format!("{url:?}: {why}"));
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("udp") => rest,
        _ => return Err(invalid("not a udp:// URL")),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..end).unwrap_or(rest);
    if let Some(b) = authority
        .bytes()
        .find(|b| b.is_ascii_control() || *b == b' ' || !b.is_ascii())
    {
        return Err(invalid(&format!("host contains byte 0x{b:02x}")));
    }
    if authority.contains('@') {
        return Err(invalid(
            "user credentials in tracker URLs are not supported",
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| invalid("unclosed '['"))?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(invalid("bad IPv6 literal"));
        }
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| invalid("a udp:// tracker URL needs a port"))?;
        (host, port)
    } else {
        authority
            .rsplit_once(':')
            .ok_or_else(|| invalid("a udp:// tracker URL needs a port"))?
    };
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    let port = match port.parse::<u16>() {
        Ok(0) | Err(_) => return Err(invalid("bad port")),
        Ok(p) => p,
    };
    Ok(HostPort {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_urls() {
        let hp = parse_udp_url("udp://tracker.example:6969/announce?x=1").expect("ok");
        assert_eq!(hp.host, "tracker.example");
        assert_eq!(hp.port, 6969);
        let hp = parse_udp_url("udp://[::1]:80").expect("ok");
        assert_eq!((hp.host.as_str(), hp.port), ("::1", 80));
        for bad in [
            "udp://t",
            "udp://t:",
            "udp://t:0",
            "udp://t:70000",
            "udp://:80",
            "udp://[::1]",
            "udp://[zz]:1",
            "udp://[::1:1",
            "udp://u@t:1",
            "udp://t x:1",
            "http://t:1",
        ] {
            assert!(
                matches!(parse_udp_url(bad), Err(TrackerFailure::InvalidUrl(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn dht_messages_are_not_tracker_replies() {
        assert!(!looks_like_bep15_reply(
            b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe"
        ));
        assert!(looks_like_bep15_reply(&[0, 0, 0, 1, 9, 9, 9, 9]));
        assert!(looks_like_bep15_reply(&[0, 0, 0, 3, 9, 9, 9, 9, b'x']));
        assert!(!looks_like_bep15_reply(&[0, 0, 0, 4, 9, 9, 9, 9]));
        assert!(!looks_like_bep15_reply(&[0, 0, 0, 1]));
    }
}
