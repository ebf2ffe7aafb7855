//! The UDP tracker exchange (BEP 15), sans-IO: packet encoders and decoders for both sides,
//! and [`UdpAnnounce`], the client state machine for one announce (connect, announce,
//! retransmission after 15·2ⁿ s, connection ids valid for 60 s).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::info_hash::InfoHash;
use crate::time::Instant;
use crate::wire::PeerId;

use super::http::push_compact;
use super::{AnnounceEvent, AnnounceRequest, AnnounceResponse, ScrapeEntry};

/// The constant that opens every connect request (BEP 15's "magic").
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// `action` of a connect exchange.
pub const ACTION_CONNECT: u32 = 0;
/// `action` of an announce exchange.
pub const ACTION_ANNOUNCE: u32 = 1;
/// `action` of a scrape exchange.
pub const ACTION_SCRAPE: u32 = 2;
/// `action` of an error response.
pub const ACTION_ERROR: u32 = 3;
/// Length of an IPv4-form announce request.
pub const ANNOUNCE_REQUEST_LEN: usize = 98;
/// At most this many info-hashes fit one scrape request (BEP 15).
pub const MAX_SCRAPE_HASHES: usize = 74;
/// How long a connection id may be used after it was received.
pub const CONNECTION_ID_LIFETIME: Duration = Duration::from_secs(60);
/// The highest retransmission exponent: after the wait of 15·2⁸ s the exchange fails.
pub const MAX_RETRANSMIT_EXPONENT: u32 = 8;

/// Why a UDP tracker packet or exchange failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UdpTrackerError {
    /// A packet is shorter than its kind requires.
    #[error("{what} packet is {len} bytes, at least {need} needed")]
    TooShort {
        /// The packet kind.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The minimum.
        need: usize,
    },
    /// A packet has a length its kind does not allow.
    #[error("{what} packet has invalid length {len}")]
    BadLength {
        /// The packet kind.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A connect request lacks the protocol id.
    #[error("connect request has wrong protocol id {0:#x}")]
    BadProtocolId(u64),
    /// An action number we do not know.
    #[error("unknown action {0}")]
    UnknownAction(u32),
    /// A response answers another kind of request than ours.
    #[error("expected action {expected}, got {got}")]
    WrongAction {
        /// The action we wait for.
        expected: u32,
        /// The action received.
        got: u32,
    },
    /// An announce request has an event number outside 0..=3.
    #[error("unknown announce event {0}")]
    BadEvent(u32),
    /// A scrape request names more hashes than fit a packet.
    #[error("scrape request with {0} info-hashes (at most {MAX_SCRAPE_HASHES})")]
    TooManyHashes(usize),
    /// The tracker answered with an error (action 3).
    #[error("tracker error: {0}")]
    Tracker(String),
    /// No answer after every retransmission.
    #[error("tracker timed out")]
    TimedOut,
}

/// A request packet, as the tracker side sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Asks for a connection id.
    Connect {
        /// Transaction id.
        transaction_id: u32,
    },
    /// An announce (IPv4 form; BEP 41 options after it are ignored).
    Announce {
        /// Connection id from a connect response.
        connection_id: u64,
        /// Transaction id.
        transaction_id: u32,
        /// The announce (`tracker_id` is always `None` over UDP).
        request: AnnounceRequest,
    },
    /// A scrape of up to [`MAX_SCRAPE_HASHES`] torrents.
    Scrape {
        /// Connection id from a connect response.
        connection_id: u64,
        /// Transaction id.
        transaction_id: u32,
        /// The torrents.
        info_hashes: Vec<InfoHash>,
    },
}

/// A response packet, as the client side sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// A connection id.
    Connect {
        /// Transaction id of the request.
        transaction_id: u32,
        /// The id to use for the next 60 s.
        connection_id: u64,
    },
    /// An announce answer (`tracker_id` and `warning` are always `None` over UDP).
    Announce {
        /// Transaction id of the request.
        transaction_id: u32,
        /// The answer.
        response: AnnounceResponse,
    },
    /// Scrape counts, in the order of the request's hashes.
    Scrape {
        /// Transaction id of the request.
        transaction_id: u32,
        /// One entry per hash.
        entries: Vec<ScrapeEntry>,
    },
    /// The tracker refused the request.
    Error {
        /// Transaction id of the request.
        transaction_id: u32,
        /// Its message.
        message: String,
    },
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(x)
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

fn need(what: &'static str, b: &[u8], n: usize) -> Result<(), UdpTrackerError> {
    if b.len() < n {
        Err(UdpTrackerError::TooShort {
            what,
            len: b.len(),
            need: n,
        })
    } else {
        Ok(())
    }
}

fn event_number(e: AnnounceEvent) -> u32 {
    match e {
        AnnounceEvent::None => 0,
        AnnounceEvent::Completed => 1,
        AnnounceEvent::Started => 2,
        AnnounceEvent::Stopped => 3,
    }
}

impl Request {
    /// The request's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ANNOUNCE_REQUEST_LEN);
        match self {
            Request::Connect { transaction_id } => {
                out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
            }
            Request::Announce {
                connection_id,
                transaction_id,
                request: r,
            } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&r.info_hash.0);
                out.extend_from_slice(r.peer_id.as_bytes());
                out.extend_from_slice(&r.downloaded.to_be_bytes());
                out.extend_from_slice(&r.left.to_be_bytes());
                out.extend_from_slice(&r.uploaded.to_be_bytes());
                out.extend_from_slice(&event_number(r.event).to_be_bytes());
                // The IPv4 form has room for an IPv4 address only; 0 means "the sender".
                let ip = match r.ip {
                    Some(IpAddr::V4(v4)) => u32::from(v4),
                    _ => 0,
                };
                out.extend_from_slice(&ip.to_be_bytes());
                out.extend_from_slice(&r.key.to_be_bytes());
                let num_want = r
                    .numwant
                    .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX));
                out.extend_from_slice(&num_want.to_be_bytes());
                out.extend_from_slice(&r.port.to_be_bytes());
            }
            Request::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for h in info_hashes {
                    out.extend_from_slice(&h.0);
                }
            }
        }
        out
    }

    /// Decodes a request packet.
    pub fn decode(b: &[u8]) -> Result<Request, UdpTrackerError> {
        need("request", b, 16)?;
        let connection_id = be_u64(b, 0);
        let action = be_u32(b, 8);
        let transaction_id = be_u32(b, 12);
        match action {
            ACTION_CONNECT => {
                if b.len() != 16 {
                    return Err(UdpTrackerError::BadLength {
                        what: "connect request",
                        len: b.len(),
                    });
                }
                if connection_id != PROTOCOL_ID {
                    return Err(UdpTrackerError::BadProtocolId(connection_id));
                }
                Ok(Request::Connect { transaction_id })
            }
            ACTION_ANNOUNCE => {
                need("announce request", b, ANNOUNCE_REQUEST_LEN)?;
                let mut info_hash = [0u8; 20];
                info_hash.copy_from_slice(&b[16..36]);
                let mut peer_id = [0u8; 20];
                peer_id.copy_from_slice(&b[36..56]);
                let event = match be_u32(b, 80) {
                    0 => AnnounceEvent::None,
                    1 => AnnounceEvent::Completed,
                    2 => AnnounceEvent::Started,
                    3 => AnnounceEvent::Stopped,
                    e => return Err(UdpTrackerError::BadEvent(e)),
                };
                let ip = be_u32(b, 84);
                let num_want = be_u32(b, 92) as i32;
                Ok(Request::Announce {
                    connection_id,
                    transaction_id,
                    request: AnnounceRequest {
                        info_hash: InfoHash(info_hash),
                        peer_id: PeerId(peer_id),
                        downloaded: be_u64(b, 56),
                        left: be_u64(b, 64),
                        uploaded: be_u64(b, 72),
                        event,
                        ip: (ip != 0).then(|| IpAddr::V4(Ipv4Addr::from(ip))),
                        ipv6: None,
                        key: be_u32(b, 88),
                        numwant: u32::try_from(num_want).ok(),
                        port: u16::from_be_bytes([b[96], b[97]]),
                        tracker_id: None,
                    },
                })
            }
            ACTION_SCRAPE => {
                let hashes = &b[16..];
                if hashes.is_empty() || hashes.len() % 20 != 0 {
                    return Err(UdpTrackerError::BadLength {
                        what: "scrape request",
                        len: b.len(),
                    });
                }
                if hashes.len() / 20 > MAX_SCRAPE_HASHES {
                    return Err(UdpTrackerError::TooManyHashes(hashes.len() / 20));
                }
                let info_hashes = hashes
                    .chunks_exact(20)
                    .map(|c| {
                        let mut h = [0u8; 20];
                        h.copy_from_slice(c);
                        InfoHash(h)
                    })
                    .collect();
                Ok(Request::Scrape {
                    connection_id,
                    transaction_id,
                    info_hashes,
                })
            }
            a => Err(UdpTrackerError::UnknownAction(a)),
        }
    }
}

impl Response {
    /// The transaction id this response answers.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Response::Connect { transaction_id, .. }
            | Response::Announce { transaction_id, .. }
            | Response::Scrape { transaction_id, .. }
            | Response::Error { transaction_id, .. } => *transaction_id,
        }
    }

    /// The response's bytes. An announce response lists only the peers of the family of
    /// the request (`ipv6`: the tracker was reached over IPv6), as BEP 15 defines.
    pub fn encode(&self, ipv6: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        match self {
            Response::Connect {
                transaction_id,
                connection_id,
            } => {
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&connection_id.to_be_bytes());
            }
            Response::Announce {
                transaction_id,
                response,
            } => {
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(&response.interval.to_be_bytes());
                out.extend_from_slice(&response.incomplete.unwrap_or(0).to_be_bytes());
                out.extend_from_slice(&response.complete.unwrap_or(0).to_be_bytes());
                for p in &response.peers {
                    match p.ip() {
                        IpAddr::V4(v4) if !ipv6 => out.extend_from_slice(&v4.octets()),
                        IpAddr::V6(v6) if ipv6 => out.extend_from_slice(&v6.octets()),
                        _ => continue,
                    }
                    out.extend_from_slice(&p.port().to_be_bytes());
                }
            }
            Response::Scrape {
                transaction_id,
                entries,
            } => {
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for e in entries {
                    out.extend_from_slice(&e.complete.to_be_bytes());
                    out.extend_from_slice(&e.downloaded.to_be_bytes());
                    out.extend_from_slice(&e.incomplete.to_be_bytes());
                }
            }
            Response::Error {
                transaction_id,
                message,
            } => {
                out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(message.as_bytes());
            }
        }
        out
    }

    /// Decodes a response packet; `ipv6` says the tracker was reached over IPv6, so
    /// announce peers are 18-byte entries instead of 6-byte ones.
    pub fn decode(b: &[u8], ipv6: bool) -> Result<Response, UdpTrackerError> {
        need("response", b, 8)?;
        let action = be_u32(b, 0);
        let transaction_id = be_u32(b, 4);
        match action {
            ACTION_CONNECT => {
                // Trackers may pad; BEP 15 says to accept packets longer than expected.
                need("connect response", b, 16)?;
                Ok(Response::Connect {
                    transaction_id,
                    connection_id: be_u64(b, 8),
                })
            }
            ACTION_ANNOUNCE => {
                need("announce response", b, 20)?;
                let entry = if ipv6 { 18 } else { 6 };
                let peers = &b[20..];
                if peers.len() % entry != 0 {
                    return Err(UdpTrackerError::BadLength {
                        what: "announce response",
                        len: b.len(),
                    });
                }
                let mut response = AnnounceResponse {
                    interval: be_u32(b, 8),
                    incomplete: Some(be_u32(b, 12)),
                    complete: Some(be_u32(b, 16)),
                    ..AnnounceResponse::default()
                };
                push_compact(&mut response.peers, &mut HashSet::new(), peers, ipv6);
                Ok(Response::Announce {
                    transaction_id,
                    response,
                })
            }
            ACTION_SCRAPE => {
                let body = &b[8..];
                if body.len() % 12 != 0 {
                    return Err(UdpTrackerError::BadLength {
                        what: "scrape response",
                        len: b.len(),
                    });
                }
                let entries = body
                    .chunks_exact(12)
                    .map(|c| ScrapeEntry {
                        complete: be_u32(c, 0),
                        downloaded: be_u32(c, 4),
                        incomplete: be_u32(c, 8),
                    })
                    .collect();
                Ok(Response::Scrape {
                    transaction_id,
                    entries,
                })
            }
            ACTION_ERROR => Ok(Response::Error {
                transaction_id,
                message: String::from_utf8_lossy(&b[8..]).into_owned(),
            }),
            a => Err(UdpTrackerError::UnknownAction(a)),
        }
    }
}

/// A connection id and when it was received: usable until [`CONNECTION_ID_LIFETIME`] later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpConnection {
    /// The id.
    pub id: u64,
    /// When the connect response arrived.
    pub received: Instant,
}

impl UdpConnection {
    /// Whether the id may still be used at `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.received + CONNECTION_ID_LIFETIME
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Announcing(UdpConnection),
    Done,
}

/// One announce to one UDP tracker (BEP 15), sans-IO.
///
/// The driver sends what [`poll_transmit`](Self::poll_transmit) returns, feeds every
/// datagram from the tracker to [`handle_packet`](Self::handle_packet), calls
/// [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout), and
/// stops once [`result`](Self::result) is `Some`.
///
/// Each request waits 15·2ⁿ s for its answer, n counting every transmission of the whole
/// exchange from 0 to 8 (so the exchange ends within 15·511 s even when a tracker answers
/// connects but never announces); then it fails with [`UdpTrackerError::TimedOut`]. Every
/// transmission gets a fresh random transaction id, and only the latest one is accepted.
#[derive(Debug)]
pub struct UdpAnnounce {
    request: AnnounceRequest,
    ipv6: bool,
    rng: fastrand::Rng,
    phase: Phase,
    /// The last connection id received, kept for the next announce.
    connection: Option<UdpConnection>,
    transaction_id: u32,
    attempt: u32,
    send_pending: bool,
    deadline: Instant,
    result: Option<Result<AnnounceResponse, UdpTrackerError>>,
}

impl UdpAnnounce {
    /// Starts an announce that first asks for a connection id. `ipv6`: the tracker is
    /// reached over IPv6 (its peers come as 18-byte entries).
    pub fn new(
        request: AnnounceRequest,
        ipv6: bool,
        rng: &mut fastrand::Rng,
        now: Instant,
    ) -> Self {
        Self::with_connection(request, ipv6, None, rng, now)
    }

    /// Starts an announce reusing `connection` when it is still fresh at `now`.
    pub fn with_connection(
        request: AnnounceRequest,
        ipv6: bool,
        connection: Option<UdpConnection>,
        rng: &mut fastrand::Rng,
        now: Instant,
    ) -> Self {
        let fresh = connection.filter(|c| c.is_fresh(now));
        let mut a = UdpAnnounce {
            request,
            ipv6,
            rng: rng.fork(),
            phase: fresh.map_or(Phase::Connecting, Phase::Announcing),
            connection,
            transaction_id: 0,
            attempt: 0,
            send_pending: false,
            deadline: now,
            result: None,
        };
        a.schedule_send(now);
        a
    }

    /// The next announce to the same tracker, reusing this one's connection id if it is
    /// still fresh at `now`.
    pub fn next(&mut self, request: AnnounceRequest, now: Instant) -> UdpAnnounce {
        let connection = self.connection;
        let ipv6 = self.ipv6;
        Self::with_connection(request, ipv6, connection, &mut self.rng, now)
    }

    /// The last connection id received (or given), to reuse for a later announce.
    pub fn connection(&self) -> Option<UdpConnection> {
        self.connection
    }

    /// The transaction id the next accepted response must carry.
    pub fn transaction_id(&self) -> u32 {
        self.transaction_id
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(15u64 << self.attempt.min(MAX_RETRANSMIT_EXPONENT))
    }

    fn schedule_send(&mut self, now: Instant) {
        if let Phase::Announcing(c) = self.phase {
            if !c.is_fresh(now) {
                self.phase = Phase::Connecting;
            }
        }
        self.transaction_id = self.rng.u32(..);
        self.send_pending = true;
        self.deadline = now + self.timeout();
    }

    fn finish(&mut self, result: Result<AnnounceResponse, UdpTrackerError>) {
        self.phase = Phase::Done;
        self.send_pending = false;
        self.result = Some(result);
    }

    /// The datagram to send now, if any.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if !self.send_pending || self.phase == Phase::Done {
            return None;
        }
        self.send_pending = false;
        // The wait starts when the packet actually leaves.
        self.deadline = now + self.timeout();
        let packet = match self.phase {
            Phase::Connecting => Request::Connect {
                transaction_id: self.transaction_id,
            },
            Phase::Announcing(c) => Request::Announce {
                connection_id: c.id,
                transaction_id: self.transaction_id,
                request: self.request.clone(),
            },
            Phase::Done => return None,
        };
        Some(packet.encode())
    }

    /// Feeds a datagram from the tracker. Datagrams too short to carry a transaction id
    /// give an error but leave the exchange running; those with another transaction id are
    /// ignored (`Ok`). A datagram with our transaction id that is malformed, of the wrong
    /// action or a tracker error ends the exchange with that error.
    pub fn handle_packet(&mut self, packet: &[u8], now: Instant) -> Result<(), UdpTrackerError> {
        if self.phase == Phase::Done {
            return Ok(());
        }
        need("response", packet, 8)?;
        if be_u32(packet, 4) != self.transaction_id {
            return Ok(());
        }
        let expected = match self.phase {
            Phase::Connecting => ACTION_CONNECT,
            _ => ACTION_ANNOUNCE,
        };
        let response = match Response::decode(packet, self.ipv6) {
            Ok(r) => r,
            Err(e) => {
                self.finish(Err(e.clone()));
                return Err(e);
            }
        };
        match (self.phase, response) {
            (Phase::Connecting, Response::Connect { connection_id, .. }) => {
                let c = UdpConnection {
                    id: connection_id,
                    received: now,
                };
                self.connection = Some(c);
                self.phase = Phase::Announcing(c);
                self.schedule_send(now);
                Ok(())
            }
            (Phase::Announcing(_), Response::Announce { response, .. }) => {
                self.finish(Ok(response));
                Ok(())
            }
            (_, Response::Error { message, .. }) => {
                let e = UdpTrackerError::Tracker(message);
                self.finish(Err(e.clone()));
                Err(e)
            }
            (_, other) => {
                let got = match other {
                    Response::Connect { .. } => ACTION_CONNECT,
                    Response::Announce { .. } => ACTION_ANNOUNCE,
                    Response::Scrape { .. } => ACTION_SCRAPE,
                    Response::Error { .. } => ACTION_ERROR,
                };
                let e = UdpTrackerError::WrongAction { expected, got };
                self.finish(Err(e.clone()));
                Err(e)
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.phase != Phase::Done).then_some(self.deadline)
    }

    /// Retransmits (with a new transaction id, reconnecting if the connection id expired)
    /// or gives up, if the deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Done || now < self.deadline {
            return;
        }
        if self.attempt >= MAX_RETRANSMIT_EXPONENT {
            self.finish(Err(UdpTrackerError::TimedOut));
            return;
        }
        self.attempt += 1;
        self.schedule_send(now);
    }

    /// The outcome, once the exchange is over.
    pub fn result(&self) -> Option<Result<AnnounceResponse, UdpTrackerError>> {
        self.result.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn request() -> AnnounceRequest {
        AnnounceRequest {
            info_hash: InfoHash([0x11; 20]),
            peer_id: PeerId([0x22; 20]),
            port: 0x1ae1,
            uploaded: 3,
            downloaded: 1,
            left: 2,
            event: AnnounceEvent::Started,
            numwant: Some(10),
            key: 0xcafe_babe,
            ip: Some("1.2.3.4".parse().expect("ip")),
            ipv6: None,
            tracker_id: None,
        }
    }

    #[test]
    fn connect_request_bytes_match_bep15() {
        let bytes = Request::Connect {
            transaction_id: 0x0102_0304,
        }
        .encode();
        assert_eq!(
            bytes,
            [
                0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 1, 2, 3, 4
            ]
        );
        assert_eq!(
            Request::decode(&bytes),
            Ok(Request::Connect {
                transaction_id: 0x0102_0304
            })
        );
        let mut wrong = bytes.clone();
        wrong[0] = 1;
        assert!(matches!(
            Request::decode(&wrong),
            Err(UdpTrackerError::BadProtocolId(_))
        ));
        assert!(matches!(
            Request::decode(&bytes[..15]),
            Err(UdpTrackerError::TooShort { .. })
        ));
    }

    #[test]
    fn announce_request_layout_and_round_trip() {
        let req = Request::Announce {
            connection_id: 0x1122_3344_5566_7788,
            transaction_id: 9,
            request: request(),
        };
        let b = req.encode();
        assert_eq!(b.len(), ANNOUNCE_REQUEST_LEN);
        assert_eq!(&b[0..8], &0x1122_3344_5566_7788u64.to_be_bytes());
        assert_eq!(&b[8..12], &[0, 0, 0, 1]);
        assert_eq!(&b[12..16], &[0, 0, 0, 9]);
        assert_eq!(&b[16..36], &[0x11; 20]);
        assert_eq!(&b[36..56], &[0x22; 20]);
        assert_eq!(&b[56..64], &1u64.to_be_bytes()); // downloaded
        assert_eq!(&b[64..72], &2u64.to_be_bytes()); // left
        assert_eq!(&b[72..80], &3u64.to_be_bytes()); // uploaded
        assert_eq!(&b[80..84], &[0, 0, 0, 2]); // started
        assert_eq!(&b[84..88], &[1, 2, 3, 4]);
        assert_eq!(&b[88..92], &[0xca, 0xfe, 0xba, 0xbe]);
        assert_eq!(&b[92..96], &[0, 0, 0, 10]);
        assert_eq!(&b[96..98], &[0x1a, 0xe1]);
        assert_eq!(Request::decode(&b), Ok(req));
        let mut r = request();
        r.numwant = None;
        r.ip = None;
        r.event = AnnounceEvent::None;
        let b = Request::Announce {
            connection_id: 1,
            transaction_id: 2,
            request: r.clone(),
        }
        .encode();
        assert_eq!(&b[92..96], &[0xff; 4]);
        let Ok(Request::Announce { request: back, .. }) = Request::decode(&b) else {
            panic!("decodes");
        };
        assert_eq!(back, r);
        assert!(matches!(
            Request::decode(&b[..97]),
            Err(UdpTrackerError::TooShort { .. })
        ));
        let mut bad_event = b.clone();
        bad_event[83] = 4;
        assert_eq!(
            Request::decode(&bad_event),
            Err(UdpTrackerError::BadEvent(4))
        );
    }

    #[test]
    fn responses_round_trip() {
        let v4 = AnnounceResponse {
            interval: 1800,
            complete: Some(4),
            incomplete: Some(7),
            peers: vec![
                "127.0.0.1:6881".parse().expect("addr"),
                "10.1.2.3:80".parse().expect("addr"),
            ],
            ..AnnounceResponse::default()
        };
        let r = Response::Announce {
            transaction_id: 5,
            response: v4,
        };
        let b = r.encode(false);
        assert_eq!(b.len(), 20 + 12);
        assert_eq!(
            &b[..20],
            &[0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 7, 8, 0, 0, 0, 7, 0, 0, 0, 4]
        );
        assert_eq!(Response::decode(&b, false), Ok(r));
        let v6 = AnnounceResponse {
            interval: 60,
            complete: Some(0),
            incomplete: Some(1),
            peers: vec!["[::1]:7000".parse().expect("addr")],
            ..AnnounceResponse::default()
        };
        let r6 = Response::Announce {
            transaction_id: 6,
            response: v6,
        };
        let b6 = r6.encode(true);
        assert_eq!(b6.len(), 38);
        assert_eq!(Response::decode(&b6, true), Ok(r6));
        // The same bytes read as IPv4 are 18 bytes of 6-byte entries: 3 peers.
        assert!(Response::decode(&b6, false).is_ok());
        assert!(matches!(
            Response::decode(&b[..25], false),
            Err(UdpTrackerError::BadLength { .. })
        ));
        for r in [
            Response::Connect {
                transaction_id: 1,
                connection_id: u64::MAX,
            },
            Response::Scrape {
                transaction_id: 2,
                entries: vec![ScrapeEntry {
                    complete: 1,
                    downloaded: 2,
                    incomplete: 3,
                }],
            },
            Response::Error {
                transaction_id: 3,
                message: "unregistered torrent".into(),
            },
        ] {
            assert_eq!(Response::decode(&r.encode(false), false), Ok(r));
        }
        assert!(matches!(
            Response::decode(&[0, 0, 0, 0, 0, 0, 0, 1, 0], false),
            Err(UdpTrackerError::TooShort { .. })
        ));
        assert_eq!(
            Response::decode(&[0, 0, 0, 9, 0, 0, 0, 1], false),
            Err(UdpTrackerError::UnknownAction(9))
        );
    }

    #[test]
    fn scrape_request_round_trip_and_limits() {
        let r = Request::Scrape {
            connection_id: 3,
            transaction_id: 4,
            info_hashes: vec![InfoHash([1; 20]), InfoHash([2; 20])],
        };
        let b = r.encode();
        assert_eq!(b.len(), 56);
        assert_eq!(Request::decode(&b), Ok(r));
        assert!(matches!(
            Request::decode(&b[..50]),
            Err(UdpTrackerError::BadLength { .. })
        ));
        let many = Request::Scrape {
            connection_id: 3,
            transaction_id: 4,
            info_hashes: vec![InfoHash([1; 20]); MAX_SCRAPE_HASHES + 1],
        };
        assert_eq!(
            Request::decode(&many.encode()),
            Err(UdpTrackerError::TooManyHashes(MAX_SCRAPE_HASHES + 1))
        );
    }

    fn connect_reply(a: &UdpAnnounce, id: u64) -> Vec<u8> {
        Response::Connect {
            transaction_id: a.transaction_id(),
            connection_id: id,
        }
        .encode(false)
    }

    fn announce_reply(a: &UdpAnnounce) -> Vec<u8> {
        Response::Announce {
            transaction_id: a.transaction_id(),
            response: AnnounceResponse {
                interval: 900,
                complete: Some(1),
                incomplete: Some(2),
                peers: vec!["127.0.0.1:7000".parse().expect("addr")],
                ..AnnounceResponse::default()
            },
        }
        .encode(false)
    }

    #[test]
    fn full_exchange() {
        let mut rng = fastrand::Rng::with_seed(1);
        let t0 = Instant::from_secs(100);
        let mut a = UdpAnnounce::new(request(), false, &mut rng, t0);
        let connect = a.poll_transmit(t0).expect("connect first");
        assert_eq!(
            Request::decode(&connect),
            Ok(Request::Connect {
                transaction_id: a.transaction_id()
            })
        );
        assert_eq!(a.poll_transmit(t0), None);
        // A reply with another transaction id is ignored.
        let mut stray = connect_reply(&a, 1);
        stray[7] ^= 1;
        assert_eq!(a.handle_packet(&stray, t0), Ok(()));
        assert_eq!(a.poll_transmit(t0), None);
        let connect_txn = a.transaction_id();
        a.handle_packet(&connect_reply(&a, 0xabcd), t0).expect("ok");
        assert_ne!(a.transaction_id(), connect_txn, "a new transaction id");
        let ann = a.poll_transmit(t0).expect("announce");
        let Ok(Request::Announce {
            connection_id,
            transaction_id,
            request: r,
        }) = Request::decode(&ann)
        else {
            panic!("an announce");
        };
        assert_eq!(
            (connection_id, transaction_id),
            (0xabcd, a.transaction_id())
        );
        assert_eq!(r, request());
        assert_eq!(a.result(), None);
        a.handle_packet(&announce_reply(&a), t0).expect("ok");
        let res = a.result().expect("done").expect("success");
        assert_eq!(res.interval, 900);
        assert_eq!(
            res.peers,
            vec!["127.0.0.1:7000".parse::<SocketAddr>().expect("addr")]
        );
        assert_eq!(a.poll_timeout(), None);
        assert_eq!(a.poll_transmit(t0), None);
    }

    #[test]
    fn tracker_error_and_wrong_action_end_the_exchange() {
        let mut rng = fastrand::Rng::with_seed(2);
        let mut a = UdpAnnounce::new(request(), false, &mut rng, Instant::ZERO);
        a.poll_transmit(Instant::ZERO);
        let err = Response::Error {
            transaction_id: a.transaction_id(),
            message: "go away".into(),
        }
        .encode(false);
        let e = UdpTrackerError::Tracker("go away".into());
        assert_eq!(a.handle_packet(&err, Instant::ZERO), Err(e.clone()));
        assert_eq!(a.result(), Some(Err(e)));
        assert_eq!(a.poll_timeout(), None);

        let mut a = UdpAnnounce::new(request(), false, &mut rng, Instant::ZERO);
        a.poll_transmit(Instant::ZERO);
        let wrong = announce_reply(&a);
        assert_eq!(
            a.handle_packet(&wrong, Instant::ZERO),
            Err(UdpTrackerError::WrongAction {
                expected: ACTION_CONNECT,
                got: ACTION_ANNOUNCE
            })
        );
        assert!(matches!(a.result(), Some(Err(_))));

        // Too short to carry a transaction id: an error, but the exchange goes on.
        let mut a = UdpAnnounce::new(request(), false, &mut rng, Instant::ZERO);
        a.poll_transmit(Instant::ZERO);
        assert!(a.handle_packet(&[0, 0, 0], Instant::ZERO).is_err());
        assert_eq!(a.result(), None);
    }

    #[test]
    fn retransmission_schedule() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut now = Instant::ZERO;
        let mut a = UdpAnnounce::new(request(), false, &mut rng, now);
        let mut sends = Vec::new();
        let mut txns = HashSet::new();
        for _ in 0..20 {
            if a.poll_transmit(now).is_some() {
                sends.push(now.as_micros() / 1_000_000);
                txns.insert(a.transaction_id());
            }
            let Some(deadline) = a.poll_timeout() else {
                break;
            };
            // Nothing happens a little before the deadline.
            a.handle_timeout(Instant::from_micros(deadline.as_micros() - 1));
            assert_eq!(a.poll_transmit(now), None);
            now = deadline;
            a.handle_timeout(now);
        }
        assert_eq!(sends, [0, 15, 45, 105, 225, 465, 945, 1905, 3825]);
        assert_eq!(now, Instant::from_secs(3825 + 3840));
        assert_eq!(txns.len(), 9, "a new transaction id per transmission");
        assert_eq!(a.result(), Some(Err(UdpTrackerError::TimedOut)));
        assert_eq!(UdpTrackerError::TimedOut.to_string(), "tracker timed out");
    }

    #[test]
    fn connection_id_expires_after_60_s() {
        let mut rng = fastrand::Rng::with_seed(4);
        let t0 = Instant::from_secs(10);
        let mut a = UdpAnnounce::new(request(), false, &mut rng, t0);
        a.poll_transmit(t0);
        a.handle_packet(&connect_reply(&a, 77), t0).expect("ok");
        a.poll_transmit(t0);
        a.handle_packet(&announce_reply(&a), t0).expect("ok");
        assert_eq!(
            a.connection(),
            Some(UdpConnection {
                id: 77,
                received: t0
            })
        );

        // 59 s later the id is reused: the first packet is the announce.
        let t1 = Instant::from_secs(69);
        let mut b = a.next(request(), t1);
        let p = b.poll_transmit(t1).expect("send");
        assert!(matches!(
            Request::decode(&p),
            Ok(Request::Announce {
                connection_id: 77,
                ..
            })
        ));
        // Its retransmission at 84 s is past the id's lifetime: it reconnects.
        let t2 = b.poll_timeout().expect("deadline");
        b.handle_timeout(t2);
        let p = b.poll_transmit(t2).expect("send");
        assert!(matches!(Request::decode(&p), Ok(Request::Connect { .. })));

        // 60 s after the connect response, a new announce starts with a connect.
        let t3 = Instant::from_secs(70);
        let mut c = a.next(request(), t3);
        let p = c.poll_transmit(t3).expect("send");
        assert!(matches!(Request::decode(&p), Ok(Request::Connect { .. })));
        c.handle_packet(&connect_reply(&c, 78), t3).expect("ok");
        assert_eq!(c.connection().map(|c| c.id), Some(78));
    }

    #[test]
    fn ipv6_tracker_peers() {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut a = UdpAnnounce::new(request(), true, &mut rng, Instant::ZERO);
        a.poll_transmit(Instant::ZERO);
        a.handle_packet(&connect_reply(&a, 1), Instant::ZERO)
            .expect("ok");
        a.poll_transmit(Instant::ZERO);
        let reply = Response::Announce {
            transaction_id: a.transaction_id(),
            response: AnnounceResponse {
                interval: 60,
                peers: vec![
                    "[2001:db8::1]:6881".parse().expect("addr"),
                    "127.0.0.1:1".parse().expect("addr"),
                ],
                ..AnnounceResponse::default()
            },
        }
        .encode(true);
        a.handle_packet(&reply, Instant::ZERO).expect("ok");
        let r = a.result().expect("done").expect("ok");
        assert_eq!(
            r.peers,
            vec!["[2001:db8::1]:6881".parse::<SocketAddr>().expect("addr")]
        );
    }
}
