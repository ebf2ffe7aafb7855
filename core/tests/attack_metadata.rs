//! Issue 17, the metadata liar, in virtual time: a magnet session with an honest peer and a
//! liar that claims another `metadata_size` (16 MiB) and answers slowly, or not at all,
//! must get the metadata from the honest peer within a stated bound.
//!
//! The rule under test (`core/src/torrent/metadata.rs`): the size is voted (most addresses,
//! then the smallest) at every request round, and a source that lets a request time out is
//! demoted, asked only when nobody else offers metadata.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use unchoke_core::info_hash::InfoHash;
use unchoke_core::session::{
    Action, ConnId, Direction, EncryptionPolicy, Event, MagnetOptions, Session, SessionConfig,
    TorrentId,
};
use unchoke_core::time::Instant;
use unchoke_core::wire::{
    Decoder, ExtensionHandshake, Handshake, Message, MetadataMessage, PeerId, Reserved,
    UT_METADATA, metadata_piece_len,
};

/// Our `ut_metadata` id (the session offers it as 2) and the raw peers' (3).
const OUR_ID: u8 = 2;
const THEIR_ID: u8 = 3;

/// A valid info dictionary of about 20 KB: two metadata pieces.
fn info_bytes() -> Bytes {
    let pieces = 1000usize;
    let mut v = format!(
        "d6:lengthi{}e4:name5:liars12:piece lengthi16384e6:pieces{}:",
        pieces * 16384,
        pieces * 20
    )
    .into_bytes();
    v.extend((0..pieces * 20).map(|i| (i * 7 % 251) as u8));
    v.push(b'e');
    Bytes::from(v)
}

/// How a raw peer answers our metadata requests.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Serves the real info dictionary at once.
    Honest,
    /// Claims `size` and answers each request with junk after `delay` (never if `None`).
    Liar { size: u64, delay: Option<Duration> },
}

struct Raw {
    kind: Kind,
    inbox: BytesMut,
    saw_handshake: bool,
    /// Answers due: (when, piece).
    due: Vec<(Instant, u32)>,
    closed: bool,
    requests: u32,
}

struct Harness {
    session: Session,
    torrent: TorrentId,
    now: Instant,
    info: Bytes,
    peers: BTreeMap<ConnId, Raw>,
    received_at: Option<Instant>,
    events: Vec<Event>,
}

impl Harness {
    fn new() -> Self {
        let info = info_bytes();
        let now = Instant::from_secs(1);
        let mut session = Session::new(
            SessionConfig {
                encryption: EncryptionPolicy::Disable,
                ..SessionConfig::default()
            },
            11,
            now,
        );
        let torrent = session
            .add_magnet(
                InfoHash::of_info_bytes(&info),
                MagnetOptions::default(),
                now,
            )
            .expect("add magnet");
        Harness {
            session,
            torrent,
            now,
            info,
            peers: BTreeMap::new(),
            received_at: None,
            events: Vec::new(),
        }
    }

    /// Connects a raw peer of `kind` from 10.0.0.`n` that offers metadata.
    fn connect(&mut self, n: u8, kind: Kind) -> ConnId {
        let addr: SocketAddr = format!("10.0.0.{n}:6881").parse().expect("address");
        let conn =
            self.session
                .connection_opened(addr, Direction::Outbound(self.torrent), self.now);
        let size = match kind {
            Kind::Honest => self.info.len() as u64,
            Kind::Liar { size, .. } => size,
        };
        let mut buf = BytesMut::new();
        let mut id = *b"-LT2080-000000000000";
        id[19] = n;
        Handshake {
            reserved: Reserved::NONE.with_fast().with_extension_protocol(),
            info_hash: InfoHash::of_info_bytes(&self.info),
            peer_id: PeerId(id),
        }
        .encode(&mut buf);
        ExtensionHandshake {
            m: [(UT_METADATA.to_owned(), THEIR_ID)].into_iter().collect(),
            metadata_size: Some(size),
            ..ExtensionHandshake::default()
        }
        .to_message()
        .encode(&mut buf);
        self.peers.insert(
            conn,
            Raw {
                kind,
                inbox: BytesMut::new(),
                saw_handshake: false,
                due: Vec::new(),
                closed: false,
                requests: 0,
            },
        );
        self.session.handle_bytes(conn, &mut buf, self.now);
        self.drain();
        conn
    }

    /// Takes the session's actions: requests are scheduled for answers, events kept.
    fn drain(&mut self) {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Send { conn, data } => {
                    if let Some(raw) = self.peers.get_mut(&conn) {
                        raw.inbox.extend_from_slice(&data);
                    }
                }
                Action::Disconnect { conn, .. } => {
                    if let Some(raw) = self.peers.get_mut(&conn) {
                        raw.closed = true;
                    }
                }
                Action::Event(e) => {
                    if matches!(e, Event::MetadataReceived { .. }) && self.received_at.is_none() {
                        self.received_at = Some(self.now);
                    }
                    self.events.push(e);
                }
                _ => {}
            }
        }
        let now = self.now;
        for raw in self.peers.values_mut() {
            if !raw.saw_handshake && raw.inbox.len() >= 68 {
                let _ = raw.inbox.split_to(68);
                raw.saw_handshake = true;
            }
            if !raw.saw_handshake {
                continue;
            }
            let decoder = Decoder::new(None, Default::default());
            while let Ok(Some(m)) = decoder.decode(&mut raw.inbox) {
                let Message::Extended { id, payload } = m else {
                    continue;
                };
                if id != THEIR_ID {
                    continue;
                }
                if let Ok(Some(MetadataMessage::Request { piece })) =
                    MetadataMessage::decode(&payload)
                {
                    raw.requests += 1;
                    let delay = match raw.kind {
                        Kind::Honest => Some(Duration::from_millis(50)),
                        Kind::Liar { delay, .. } => delay,
                    };
                    if let Some(d) = delay {
                        raw.due.push((now + d, piece));
                    }
                }
            }
        }
    }

    /// Delivers the answers due now.
    fn answer(&mut self) {
        let now = self.now;
        let mut out: Vec<(ConnId, BytesMut)> = Vec::new();
        for (conn, raw) in self.peers.iter_mut() {
            if raw.closed {
                continue;
            }
            let (ready, later): (Vec<_>, Vec<_>) = raw.due.drain(..).partition(|(t, _)| *t <= now);
            raw.due = later;
            let mut buf = BytesMut::new();
            for (_, piece) in ready {
                let (total, data) = match raw.kind {
                    Kind::Honest => {
                        let total = self.info.len() as u64;
                        let len = metadata_piece_len(total, piece).expect("in range");
                        let start = piece as usize * 16 * 1024;
                        (total, self.info.slice(start..start + len as usize))
                    }
                    Kind::Liar { size, .. } => {
                        let len = metadata_piece_len(size, piece).expect("in range");
                        (size, Bytes::from(vec![0xee; len as usize]))
                    }
                };
                MetadataMessage::Data {
                    piece,
                    total_size: total,
                    data,
                }
                .to_message(OUR_ID)
                .encode(&mut buf);
            }
            if !buf.is_empty() {
                out.push((*conn, buf));
            }
        }
        for (conn, mut buf) in out {
            self.session.handle_bytes(conn, &mut buf, now);
        }
        self.drain();
    }

    /// Runs in 100 ms steps for at most `limit`, until the metadata arrives.
    fn run(&mut self, limit: Duration) {
        let end = self.now + limit;
        while self.now < end && self.received_at.is_none() {
            self.now += Duration::from_millis(100);
            self.answer();
            if self.session.poll_timeout().is_some_and(|t| t <= self.now) {
                self.session.handle_timeout(self.now);
                self.drain();
            }
        }
    }

    fn received(&self) -> Option<Bytes> {
        self.events.iter().find_map(|e| match e {
            Event::MetadataReceived { metainfo, .. } => Some(metainfo.info_bytes.clone()),
            _ => None,
        })
    }
}

const LIAR_16_MIB_SLOW: Kind = Kind::Liar {
    size: 16 * 1024 * 1024,
    // Just inside the request time-out: a per-request deadline alone never drops it.
    delay: Some(Duration::from_secs(9)),
};

#[test]
fn a_16_mib_liar_connected_first_does_not_stall_the_fetch() {
    let mut h = Harness::new();
    let liar = h.connect(1, LIAR_16_MIB_SLOW);
    h.run(Duration::from_secs(1));
    assert!(
        h.peers[&liar].requests > 0,
        "the liar alone is asked at first"
    );
    let honest_at = h.now;
    h.connect(2, Kind::Honest);
    h.run(Duration::from_secs(60));
    let at = h.received_at.expect("the metadata arrived");
    // Bound: within 2 s of virtual time of the honest peer's arrival.
    assert!(
        at - honest_at <= Duration::from_secs(2),
        "{:?}",
        at - honest_at
    );
    assert_eq!(h.received(), Some(h.info.clone()));
    assert!(
        !h.events
            .iter()
            .any(|e| matches!(e, Event::MetadataHashFailed { .. })),
        "the liar's junk was never assembled"
    );
}

#[test]
fn a_16_mib_liar_connected_second_is_never_asked() {
    let mut h = Harness::new();
    let start = h.now;
    h.connect(1, Kind::Honest);
    let liar = h.connect(2, LIAR_16_MIB_SLOW);
    h.run(Duration::from_secs(60));
    let at = h.received_at.expect("the metadata arrived");
    assert!(at - start <= Duration::from_secs(2), "{:?}", at - start);
    assert_eq!(h.peers[&liar].requests, 0);
    assert_eq!(h.received(), Some(h.info.clone()));
}

#[test]
fn a_silent_liar_with_a_smaller_size_is_demoted_after_the_request_deadline() {
    // The liar claims a *smaller* size, which wins the tie-break, and never answers.
    let mut h = Harness::new();
    let start = h.now;
    let liar = h.connect(
        1,
        Kind::Liar {
            size: 10_000,
            delay: None,
        },
    );
    h.connect(2, Kind::Honest);
    h.run(Duration::from_secs(60));
    let at = h.received_at.expect("the metadata arrived");
    // Bound: the 10 s request deadline, plus 2 s for the honest fetch.
    assert!(at - start <= Duration::from_secs(12), "{:?}", at - start);
    assert!(
        at - start >= Duration::from_secs(10),
        "the liar was asked first"
    );
    assert_eq!(h.peers[&liar].requests, 1);
    assert_eq!(h.received(), Some(h.info.clone()));
}

#[test]
fn two_honest_peers_outvote_a_liar_with_a_smaller_size() {
    let mut h = Harness::new();
    let start = h.now;
    let liar = h.connect(
        1,
        Kind::Liar {
            size: 10_000,
            delay: None,
        },
    );
    h.connect(2, Kind::Honest);
    h.connect(3, Kind::Honest);
    h.run(Duration::from_secs(60));
    let at = h.received_at.expect("the metadata arrived");
    assert!(at - start <= Duration::from_secs(2), "{:?}", at - start);
    // Asked once while it was alone, then outvoted.
    assert!(h.peers[&liar].requests <= 1);
    assert_eq!(h.received(), Some(h.info.clone()));
}

#[test]
fn a_slow_liar_alone_is_still_asked() {
    // Nobody else offers metadata: the demoted liar is asked again rather than nobody.
    let mut h = Harness::new();
    let liar = h.connect(
        1,
        Kind::Liar {
            size: 40_000,
            delay: None,
        },
    );
    h.run(Duration::from_secs(25));
    assert!(h.received_at.is_none());
    assert!(h.peers[&liar].requests >= 3, "{}", h.peers[&liar].requests);
}
