//! BEP 11 peer exchange: real sessions learning peers from each other over in-memory pipes,
//! and one session's PEX rules checked against hand-made peers (rate, caps, self, dropped).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use unchoke_core::mse::{self, CRYPTO_RC4};
use unchoke_core::session::{
    Action, ConnId, Direction, EncryptionPolicy, Session, SessionConfig, TorrentId,
};
use unchoke_core::time::Instant;
use unchoke_core::wire::{
    Decoder, ExtensionHandshake, Handshake, Limits, MAX_PEX_PEERS, Message, PeerId, PexMessage,
    Reserved, UT_PEX, pex_flags,
};
use unchoke_sim::lab::{Behaviour, Swarm, make_content, make_metainfo};

const KIB: usize = 1024;

#[test]
fn a_leecher_learns_a_peer_from_pex_and_connects_to_it() {
    // Slow links: both leechers are still leeching (and dialling) when PEX arrives.
    let mut s = Swarm::new(make_content(2048 * KIB, 4), 16 * KIB as u32, 64 * KIB);
    s.sniff();
    let a = s.add_seed(Behaviour::Honest);
    let b = s.add_node(None, Behaviour::Honest);
    let l = s.add_node(None, Behaviour::Honest);
    // B and L each know only A.
    s.introduce_to(b, &[a]);
    s.introduce_to(l, &[a]);
    assert!(s.run_until(Duration::from_secs(5), |s| s.linked(a, b) && s.linked(a, l)));
    assert!(!s.linked(l, b));
    assert!(
        s.run_until(Duration::from_secs(30), |s| s.linked(l, b)),
        "L never connected to B"
    );
    // It was A's PEX message that told L about B: sent before L and B were linked, listing
    // B's listen address (B dialled A, so A knows it from B's extension handshake).
    let b_addr = s.addr(b);
    let told = s
        .sniffed()
        .iter()
        .find_map(|w| match &w.message {
            Some(Message::Extended { id: 1, payload }) if w.from == a && w.to == l => {
                PexMessage::decode(payload).ok().map(|m| (w.at, m))
            }
            _ => None,
        })
        .expect("A sent L a PEX message");
    assert!(
        told.1.added.iter().any(|(addr, _)| *addr == b_addr),
        "{told:?}"
    );
    assert!(
        told.1.added.iter().all(|(addr, _)| *addr != s.addr(l)),
        "told about itself"
    );
    assert!(
        told.0 >= support_first_delay(),
        "PEX sent too early: {:?}",
        told.0
    );
    assert!(!s.is_complete(l) && !s.is_complete(b));
    assert!(s.run_until(Duration::from_secs(300), |s| s.is_complete(l)
        && s.is_complete(b)));
    s.settle();
    assert!(s.disk_matches(l) && s.disk_matches(b));
}

/// The first PEX message goes out some seconds after connecting, not at once.
fn support_first_delay() -> Instant {
    Instant::ZERO + Duration::from_secs(5)
}

/// One session with a torrent and hand-made peers that speak `ut_pex` under id 7.
struct Bench {
    session: Session,
    torrent: TorrentId,
    now: Instant,
    info_hash: unchoke_core::InfoHash,
    sent: BTreeMap<ConnId, Vec<(Instant, Message)>>,
    /// Every address the session dialled, in order.
    dialled: Vec<SocketAddr>,
}

impl Bench {
    fn new(max_peers: usize) -> Self {
        Bench::with_policy(max_peers, EncryptionPolicy::Disable)
    }

    fn with_policy(max_peers: usize, encryption: EncryptionPolicy) -> Self {
        let metainfo = make_metainfo(&make_content(64 * KIB, 9), 16 * KIB as u32);
        let now = Instant::from_secs(1);
        let config = SessionConfig {
            max_peers_per_torrent: max_peers,
            encryption,
            ..SessionConfig::default()
        };
        let mut session = Session::new(config, 17, now);
        let torrent = session.add_torrent(&metainfo, None, now).expect("add");
        Bench {
            session,
            torrent,
            now,
            info_hash: metainfo.info_hash,
            sent: BTreeMap::new(),
            dialled: Vec::new(),
        }
    }

    /// Connects a peer (inbound from `ip`:40000, listening on 6881) that offers `ut_pex`.
    fn connect(&mut self, ip: [u8; 4]) -> ConnId {
        let addr = SocketAddr::from((ip, 40000));
        let c = self
            .session
            .connection_opened(addr, Direction::Inbound, self.now);
        let mut buf = self.opening(ip);
        self.session.handle_bytes(c, &mut buf, self.now);
        self.drain();
        c
    }

    /// As [`Bench::connect`], from an IPv6 address (`ip`, port 40000; listening on 6881;
    /// its peer id made from `id`).
    fn connect_v6(&mut self, ip: std::net::Ipv6Addr, id: [u8; 4]) -> ConnId {
        let addr = SocketAddr::from((ip, 40000));
        let c = self
            .session
            .connection_opened(addr, Direction::Inbound, self.now);
        let mut buf = self.opening(id);
        self.session.handle_bytes(c, &mut buf, self.now);
        self.drain();
        c
    }

    /// As [`Bench::connect`], the peer speaking MSE (RC4): its opening travels as the
    /// handshake's initial payload.
    fn connect_encrypted(&mut self, ip: [u8; 4]) -> ConnId {
        let addr = SocketAddr::from((ip, 40000));
        let c = self
            .session
            .connection_opened(addr, Direction::Inbound, self.now);
        let mut rng = fastrand::Rng::with_seed(u64::from(ip[3]));
        let opening = self.opening(ip);
        let mut peer = mse::Handshake::initiator(self.info_hash.0, CRYPTO_RC4, &opening, &mut rng);
        let mut buf = BytesMut::new();
        for _ in 0..3 {
            buf.extend_from_slice(&peer.take_output());
            self.session.handle_bytes(c, &mut buf, self.now);
            let mut reply = BytesMut::new();
            while let Some(action) = self.session.poll_action() {
                if let Action::Send { conn, data } = action {
                    if conn == c {
                        reply.extend_from_slice(&data);
                    }
                }
            }
            let _ = peer.feed(&mut reply).expect("the session's MSE");
        }
        assert_eq!(
            self.session
                .stats(self.torrent, self.now)
                .expect("stats")
                .encrypted_peers,
            1
        );
        c
    }

    /// A peer's first bytes: handshake, extension handshake (ut_pex as 7, listening on
    /// 6881), have none.
    fn opening(&self, ip: [u8; 4]) -> BytesMut {
        let mut buf = BytesMut::new();
        let mut id = *b"-XX0001-000000000000";
        id[8..12].copy_from_slice(&ip);
        Handshake {
            reserved: Reserved::NONE.with_fast().with_extension_protocol(),
            info_hash: self.info_hash,
            peer_id: PeerId(id),
        }
        .encode(&mut buf);
        ExtensionHandshake {
            m: [(UT_PEX.to_owned(), 7)].into_iter().collect(),
            p: Some(6881),
            ..ExtensionHandshake::default()
        }
        .to_message()
        .encode(&mut buf);
        Message::HaveNone.encode(&mut buf);
        buf
    }

    fn send(&mut self, conn: ConnId, message: &Message) {
        let mut buf = BytesMut::new();
        message.encode(&mut buf);
        self.session.handle_bytes(conn, &mut buf, self.now);
        self.drain();
    }

    /// Lets time pass; the peers send a keep-alive every 30 s so they are not idle.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while self.now < end {
            self.now += Duration::from_secs(1);
            if (self.now - Instant::ZERO).as_secs() % 30 == 0 {
                for conn in self.session.connections(self.torrent) {
                    self.send(conn, &Message::KeepAlive);
                }
            }
            self.session.handle_timeout(self.now);
            self.drain();
        }
    }

    fn drain(&mut self) {
        while let Some(action) = self.session.poll_action() {
            if let Action::Connect { addr, .. } = action {
                self.dialled.push(addr);
            }
            if let Action::Send { conn, data } = action {
                let mut buf = BytesMut::from(&data[..]);
                if buf.first() == Some(&19) {
                    let _ = buf.split_to(68);
                }
                let decoder = Decoder::new(None, Limits::default());
                while let Ok(Some(m)) = decoder.decode(&mut buf) {
                    self.sent.entry(conn).or_default().push((self.now, m));
                }
            }
        }
    }

    /// The PEX messages sent to `conn`, with when.
    fn pex_to(&self, conn: ConnId) -> Vec<(Instant, PexMessage)> {
        self.sent
            .get(&conn)
            .into_iter()
            .flatten()
            .filter_map(|(t, m)| match m {
                Message::Extended { id: 7, payload } => {
                    Some((*t, PexMessage::decode(payload).expect("valid PEX")))
                }
                _ => None,
            })
            .collect()
    }

    fn known_peers(&self) -> usize {
        self.session
            .stats(self.torrent, self.now)
            .expect("stats")
            .known_peers
    }
}

#[test]
fn a_connected_peer_is_not_dialled_at_the_address_it_listens_on() {
    let mut bench = Bench::new(80);
    // Inbound from 10.0.0.1:40000 (an ephemeral port), listening on 6881 (its extension
    // handshake says so).
    let conn = bench.connect([10, 0, 0, 1]);
    let listen = SocketAddr::from(([10, 0, 0, 1], 6881));
    let other = SocketAddr::from(([10, 0, 0, 2], 6881));
    // A tracker (or PEX) names both.
    bench
        .session
        .add_peers(bench.torrent, &[listen, other], bench.now);
    bench.drain();
    bench.advance(Duration::from_secs(60));
    assert!(bench.dialled.contains(&other), "{:?}", bench.dialled);
    assert!(
        !bench.dialled.contains(&listen),
        "dialled a peer already connected: {:?}",
        bench.dialled
    );
    // Once it is gone, its address is a candidate like any other.
    bench.session.connection_closed(conn, bench.now);
    bench.drain();
    bench.advance(Duration::from_secs(60));
    assert!(bench.dialled.contains(&listen), "{:?}", bench.dialled);
}

#[test]
fn pex_is_sent_once_a_minute_at_most_fifty_at_a_time_never_about_the_receiver() {
    let mut bench = Bench::new(80);
    let first = bench.connect([10, 0, 0, 1]);
    let others: Vec<ConnId> = (0..60u8).map(|i| bench.connect([10, 0, 1, i])).collect();
    bench.advance(Duration::from_secs(200));
    let messages = bench.pex_to(first);
    assert!(messages.len() >= 2, "{messages:?}");
    for pair in messages.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= Duration::from_secs(60),
            "{messages:?}"
        );
    }
    assert!(messages[0].0 - Instant::from_secs(1) >= Duration::from_secs(5));
    let (_, m1) = &messages[0];
    let (_, m2) = &messages[1];
    assert_eq!(m1.added.len(), MAX_PEX_PEERS);
    assert_eq!(m2.added.len(), 10, "the rest in the next message");
    let me = SocketAddr::from(([10, 0, 0, 1], 6881));
    for (addr, flags) in m1.added.iter().chain(&m2.added) {
        assert_ne!(*addr, me, "told a peer about itself");
        assert_eq!(addr.port(), 6881, "listed at the listen port from `p`");
        assert_eq!(
            flags & pex_flags::REACHABLE,
            0,
            "inbound peers are not marked reachable"
        );
    }
    // Nothing told twice.
    let mut all: Vec<SocketAddr> = m1.added.iter().chain(&m2.added).map(|(a, _)| *a).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 60);

    // A peer that leaves is reported dropped in the next message.
    let gone = others[3];
    bench.session.connection_closed(gone, bench.now);
    bench.advance(Duration::from_secs(61));
    let last = bench.pex_to(first).pop().expect("a later message").1;
    assert_eq!(last.dropped, vec![SocketAddr::from(([10, 0, 1, 3], 6881))]);
    assert!(last.added.is_empty());
}

#[test]
fn received_pex_is_rate_limited_capped_and_filtered() {
    let mut bench = Bench::new(50);
    let peer = bench.connect([10, 0, 0, 1]);
    assert_eq!(bench.known_peers(), 0);
    let mut added: Vec<(SocketAddr, u8)> = (0..200u16)
        .map(|i| {
            (
                SocketAddr::from(([10, 2, (i / 250) as u8, (i % 250) as u8 + 1], 6881)),
                0,
            )
        })
        .collect();
    // Invalid entries first: they are dropped, not dialled.
    added.splice(
        0..0,
        [
            (SocketAddr::from(([10, 9, 9, 9], 0)), 0),
            (SocketAddr::from(([0, 0, 0, 0], 6881)), 0),
            (SocketAddr::from(([224, 0, 0, 1], 6881)), 0),
        ],
    );
    let message = PexMessage {
        added,
        dropped: vec![],
    }
    .to_message(1);
    bench.send(peer, &message);
    // At most 50 read, 3 of them invalid.
    assert_eq!(bench.known_peers(), MAX_PEX_PEERS - 3);
    // Another message 10 s later is ignored, whatever it says.
    bench.advance(Duration::from_secs(10));
    let second = PexMessage {
        added: vec![(SocketAddr::from(([10, 3, 0, 1], 6881)), 0)],
        dropped: vec![],
    }
    .to_message(1);
    let before = bench.known_peers();
    bench.send(peer, &second);
    assert_eq!(bench.known_peers(), before);
    assert_eq!(bench.session.pex_ignored(bench.torrent), 1);
    // A minute after the first, the next is taken.
    bench.advance(Duration::from_secs(50));
    let before = bench.known_peers();
    bench.send(peer, &second);
    assert_eq!(bench.session.pex_ignored(bench.torrent), 1);
    assert_eq!(bench.known_peers(), before + 1);
    // Garbage under the PEX id is ignored (and counted), not fatal.
    bench.advance(Duration::from_secs(60));
    bench.send(
        peer,
        &Message::Extended {
            id: 1,
            payload: bytes::Bytes::from_static(b"not bencode"),
        },
    );
    assert_eq!(bench.session.pex_ignored(bench.torrent), 2);
    assert!(bench.session.connections(bench.torrent).contains(&peer));
}

#[test]
fn received_pex_never_names_us_as_a_candidate() {
    // libtorrent's PEX list includes its recipient: our own listen address must not be
    // dialled (it would only end in "connected to ourselves").
    let mut bench = Bench::new(50);
    let own = SocketAddr::from(([10, 7, 7, 7], 6881));
    bench.session.add_own_address(own);
    let peer = bench.connect([10, 0, 0, 1]);
    let message = PexMessage {
        added: vec![(own, 0x10), (SocketAddr::from(([10, 7, 7, 8], 6881)), 0x10)],
        dropped: vec![],
    }
    .to_message(1);
    bench.send(peer, &message);
    assert_eq!(
        bench.known_peers(),
        1,
        "only the other address is a candidate"
    );
}

/// Peers that spoke MSE with us are listed with the "prefers encryption" flag; plaintext
/// ones without it.
#[test]
fn pex_flags_the_peers_that_encrypt() {
    let mut b = Bench::with_policy(50, EncryptionPolicy::Prefer);
    b.connect_encrypted([10, 0, 0, 1]);
    let told = b.connect([10, 0, 0, 2]);
    b.connect([10, 0, 0, 3]);
    b.advance(Duration::from_secs(20));
    let pex = b.pex_to(told);
    let flags = |ip: [u8; 4]| {
        pex.iter()
            .flat_map(|(_, m)| m.added.iter())
            .find(|(a, _)| *a == SocketAddr::from((ip, 6881)))
            .map(|(_, f)| *f)
    };
    let encrypted = flags([10, 0, 0, 1]).expect("the encrypted peer listed");
    assert_ne!(encrypted & pex_flags::PREFERS_ENCRYPTION, 0);
    let plain = flags([10, 0, 0, 3]).expect("the plaintext peer listed");
    assert_eq!(plain & pex_flags::PREFERS_ENCRYPTION, 0);
}

/// A peer that took only our plaintext retry is dialled in plaintext from then on — until
/// someone's PEX says it prefers encryption: then it is worth an encrypted dial again.
#[test]
fn a_pex_flag_saying_a_peer_prefers_encryption_earns_it_an_encrypted_dial_again() {
    let mut b = Bench::with_policy(50, EncryptionPolicy::Prefer);
    let p = b.connect([10, 0, 0, 1]);
    let q = b.connect([10, 0, 0, 2]);
    let x = SocketAddr::from(([10, 0, 0, 9], 6881));
    let pex = |flags: u8| PexMessage {
        added: vec![(x, flags)],
        dropped: vec![],
    };
    // Opens our dial of X and returns whether its first bytes are a plaintext handshake.
    let dial = |b: &mut Bench| -> (ConnId, bool) {
        assert_eq!(b.dialled.last(), Some(&x), "X was dialled");
        b.dialled.clear();
        let c = b
            .session
            .connection_opened(x, Direction::Outbound(b.torrent), b.now);
        let mut first = Vec::new();
        while let Some(action) = b.session.poll_action() {
            if let Action::Send { conn, data } = action {
                if conn == c {
                    first.extend_from_slice(&data);
                }
            }
        }
        (c, first.starts_with(b"\x13BitTorrent protocol"))
    };
    // Our extension handshake names ut_pex 1: what the peers send it under.
    b.send(p, &pex(0).to_message(1));
    let (c, plaintext) = dial(&mut b);
    assert!(!plaintext, "the first dial is encrypted");
    b.session
        .handle_closed(c, unchoke_core::session::PeerGone::HungUp, b.now);
    b.drain();
    let (c, plaintext) = dial(&mut b);
    assert!(plaintext, "the retry is plaintext");
    b.session
        .handle_closed(c, unchoke_core::session::PeerGone::HungUp, b.now);
    b.drain();
    assert!(b.dialled.is_empty(), "a failed plaintext dial backs off");
    b.send(q, &pex(pex_flags::PREFERS_ENCRYPTION).to_message(1));
    b.advance(Duration::from_secs(6));
    let (_, plaintext) = dial(&mut b);
    assert!(
        !plaintext,
        "flagged as preferring encryption: encrypted again"
    );
}

/// PEX carries IPv6 peers (`added6`): a peer connected over IPv6 is told to an IPv4 one at
/// its IPv6 listen address, and an IPv6 address learnt by PEX is dialled.
#[test]
fn pex_carries_ipv6_peers_both_ways() {
    let mut b = Bench::new(50);
    let v6: std::net::Ipv6Addr = "fd00::17".parse().expect("address");
    b.connect_v6(v6, [9, 9, 9, 9]);
    let told = b.connect([10, 0, 0, 2]);
    b.advance(Duration::from_secs(20));
    let listed: Vec<SocketAddr> = b
        .pex_to(told)
        .iter()
        .flat_map(|(_, m)| m.added.iter().map(|(a, _)| *a))
        .collect();
    assert!(listed.contains(&SocketAddr::from((v6, 6881))), "{listed:?}");
    // The encoding puts it in `added6`.
    let wire = PexMessage {
        added: vec![(SocketAddr::from((v6, 6881)), 0)],
        dropped: vec![],
    }
    .to_message(1);
    let Message::Extended { payload, .. } = &wire else {
        panic!("an extended message");
    };
    assert!(payload.windows(8).any(|w| w == b"6:added6"), "{payload:?}");

    // And an IPv6 address from a peer's PEX is dialled.
    let other: std::net::Ipv6Addr = "fd00::99".parse().expect("address");
    let message = PexMessage {
        added: vec![(SocketAddr::from((other, 6881)), 0)],
        dropped: vec![],
    };
    b.send(told, &message.to_message(1));
    b.advance(Duration::from_secs(2));
    assert!(
        b.dialled.contains(&SocketAddr::from((other, 6881))),
        "{:?}",
        b.dialled
    );
}
