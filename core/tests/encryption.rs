//! Protocol encryption (MSE/PE) in the session: which handshake a connection speaks under
//! each policy, the plaintext retry, the receive buffer rule for RC4 streams, and whole
//! swarms of sessions trading encrypted — every `crypto_select`, in memory, in virtual time.
//!
//! The fake peers here speak MSE with the core's own `mse::Handshake` (tested against an
//! independent implementation's vector and against libtorrent in `cli/tests/mse_interop.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use unchoke_core::mse::{self, CRYPTO_PLAINTEXT, CRYPTO_RC4, Cipher, Crypto};
use unchoke_core::session::{
    Action, ConnId, CryptoLevel, Direction, DisconnectReason, EncryptionPolicy, Event, PeerGone,
    Session, SessionConfig, TorrentId,
};
use unchoke_core::time::Instant;
use unchoke_core::wire::{Handshake, Message, PeerId, Reserved};
use unchoke_sim::lab::{Behaviour, Swarm, make_content, make_metainfo};

mod common;
use common::{drain, sent_bytes};

const KIB: usize = 1024;

fn config(encryption: EncryptionPolicy, crypto_level: CryptoLevel) -> SessionConfig {
    SessionConfig {
        encryption,
        crypto_level,
        peer_events: true,
        ..SessionConfig::default()
    }
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], 6881))
}

fn disconnect_of(actions: &[Action], conn: ConnId) -> Option<DisconnectReason> {
    actions.iter().find_map(|a| match a {
        Action::Disconnect { conn: c, reason } if *c == conn => Some(reason.clone()),
        _ => None,
    })
}

fn connects(actions: &[Action]) -> Vec<SocketAddr> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Connect { addr, .. } => Some(*addr),
            _ => None,
        })
        .collect()
}

fn their_handshake(info_hash: unchoke_core::info_hash::InfoHash) -> BytesMut {
    let mut hs = BytesMut::new();
    Handshake {
        reserved: Reserved::NONE.with_fast().with_extension_protocol(),
        info_hash,
        peer_id: PeerId(*b"-LT2080-abcdefghijkl"),
    }
    .encode(&mut hs);
    hs
}

/// A peer that dials the session and speaks MSE, with its own ends of the ciphers once
/// the handshake is done.
struct Dialler {
    handshake: mse::Handshake,
    send: Option<Cipher>,
    recv: Option<Cipher>,
    crypto: Option<Crypto>,
    /// What the session sent after the MSE handshake, decrypted.
    stream: BytesMut,
}

impl Dialler {
    fn new(info_hash: [u8; 20], provide: u32, initial: &[u8], seed: u64) -> Dialler {
        let mut rng = fastrand::Rng::with_seed(seed);
        Dialler {
            handshake: mse::Handshake::initiator(info_hash, provide, initial, &mut rng),
            send: None,
            recv: None,
            crypto: None,
            stream: BytesMut::new(),
        }
    }

    /// Takes what the session sent; returns what to send it.
    fn receive(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut input = BytesMut::from(bytes);
        if self.crypto.is_none() {
            if let Some(done) = self.handshake.feed(&mut input).expect("session's MSE") {
                self.crypto = Some(done.crypto);
                self.send = done.send;
                self.recv = done.recv;
            }
        }
        if self.crypto.is_some() {
            if let Some(c) = self.recv.as_mut() {
                c.apply(&mut input);
            }
            self.stream.extend_from_slice(&input);
        }
        self.handshake.take_output().to_vec()
    }

    /// Opens the handshake on the session's `conn` and answers it `rounds` times (whole
    /// replies through one receive buffer); what the last answer made the session do is
    /// left for the caller to drain.
    fn exchange(
        &mut self,
        s: &mut Session,
        conn: ConnId,
        buf: &mut BytesMut,
        rounds: usize,
        now: Instant,
    ) {
        let ya = self.handshake.take_output();
        feed(s, conn, buf, &ya, 4096, now);
        for _ in 0..rounds {
            let reply = self.receive(&sent_bytes(&drain(s), conn));
            feed(s, conn, buf, &reply, 4096, now);
        }
    }

    /// `plain` as the stream carries it.
    fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut bytes = plain.to_vec();
        if let Some(c) = self.send.as_mut() {
            c.apply(&mut bytes);
        }
        bytes
    }
}

/// Feeds `bytes` to the session on `conn` in pieces of at most `chunk` bytes, through one
/// receive buffer kept between calls as a driver keeps it.
fn feed(
    s: &mut Session,
    conn: ConnId,
    buf: &mut BytesMut,
    bytes: &[u8],
    chunk: usize,
    now: Instant,
) {
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        s.handle_bytes(conn, buf, now);
    }
}

/// A session serving three torrents; a peer dials it with MSE for the second, in every
/// pairing of what it provides and what we allow, its bytes cut into pieces of every size
/// down to one: the session finds the torrent from the obfuscated hash, answers in the
/// stream the handshake settled on (its BitTorrent handshake, then its bitfield), and
/// reads the peer's requests from the stream, decrypted where they lie.
#[test]
fn an_inbound_mse_peer_is_routed_to_its_torrent_and_served_in_the_settled_stream() {
    let contents: Vec<Vec<u8>> = (0..3).map(|i| make_content(100 * KIB, i)).collect();
    let metainfos: Vec<_> = contents
        .iter()
        .map(|c| make_metainfo(c, 16 * 1024))
        .collect();
    // (what the peer offers, what we allow, the stream settled on)
    let both = CRYPTO_RC4 | CRYPTO_PLAINTEXT;
    let cases = [
        (both, CryptoLevel::Both, Crypto::Plaintext),
        (CRYPTO_RC4, CryptoLevel::Both, Crypto::Rc4),
        (CRYPTO_PLAINTEXT, CryptoLevel::Both, Crypto::Plaintext),
        (both, CryptoLevel::Plaintext, Crypto::Plaintext),
        (both, CryptoLevel::Rc4, Crypto::Rc4),
        (CRYPTO_RC4, CryptoLevel::Rc4, Crypto::Rc4),
    ];
    for (round, &(provide, level, expected)) in cases.iter().enumerate() {
        for chunk in [1, 3, 97, 4096] {
            let now = Instant::from_secs(1);
            let mut s = Session::new(config(EncryptionPolicy::Require, level), 5, now);
            let ids: Vec<TorrentId> = metainfos
                .iter()
                .map(|m| {
                    let have = Some(unchoke_core::bitfield::Bitfield::full(m.info.piece_count()));
                    s.add_torrent(m, have, now).expect("add")
                })
                .collect();
            let wanted = &metainfos[1];
            let c = s.connection_opened(addr(9), Direction::Inbound, now);
            let mut buf = BytesMut::new();
            let mut peer = Dialler::new(
                wanted.info_hash.0,
                provide,
                &their_handshake(wanted.info_hash),
                round as u64,
            );
            let ya = peer.handshake.take_output();
            feed(&mut s, c, &mut buf, &ya, chunk, now);
            for _ in 0..4 {
                let actions = drain(&mut s);
                assert_eq!(
                    disconnect_of(&actions, c),
                    None,
                    "round {round} chunk {chunk}"
                );
                let reply = peer.receive(&sent_bytes(&actions, c));
                feed(&mut s, c, &mut buf, &reply, chunk, now);
            }
            assert_eq!(peer.crypto, Some(expected), "round {round}");
            assert_eq!(
                s.connections(ids[1]),
                vec![c],
                "routed to the torrent MSE named"
            );
            let ours = Handshake::decode(&mut peer.stream)
                .expect("our handshake decodes")
                .expect("complete");
            assert_eq!(ours.info_hash, wanted.info_hash);
            // Our first message: `have all` (both speak BEP 6), in the clear of the stream.
            let mut expect = BytesMut::new();
            Message::HaveAll.encode(&mut expect);
            assert!(peer.stream.starts_with(&expect), "round {round}");
            // Its requests come through the stream: a read of the block follows.
            let mut plain = BytesMut::new();
            Message::Interested.encode(&mut plain);
            let sealed = peer.seal(&plain);
            feed(&mut s, c, &mut buf, &sealed, chunk, now);
            s.handle_timeout(now + Duration::from_secs(11));
            let actions = drain(&mut s);
            assert_eq!(disconnect_of(&actions, c), None);
            let mut plain = BytesMut::new();
            Message::Request(unchoke_core::wire::BlockRequest {
                index: 2,
                begin: 0,
                length: 16 * 1024,
            })
            .encode(&mut plain);
            let sealed = peer.seal(&plain);
            feed(
                &mut s,
                c,
                &mut buf,
                &sealed,
                chunk,
                now + Duration::from_secs(11),
            );
            let actions = drain(&mut s);
            assert!(
                actions
                    .iter()
                    .any(|a| matches!(a, Action::ReadBlock { block, .. } if block.index == 2)),
                "round {round} chunk {chunk}: the request was read from the stream: {actions:?}"
            );
            assert_eq!(s.stats(ids[1], now).expect("stats").encrypted_peers, 1);
        }
    }
}

/// Two policies refuse what they do not allow, each with its own reason.
#[test]
fn require_refuses_plaintext_and_disable_refuses_mse_by_name() {
    let metainfo = make_metainfo(&make_content(50 * KIB, 1), 16 * 1024);
    let now = Instant::from_secs(1);

    let mut s = Session::new(config(EncryptionPolicy::Require, CryptoLevel::Both), 1, now);
    s.add_torrent(&metainfo, None, now).expect("add");
    let c = s.connection_opened(addr(2), Direction::Inbound, now);
    drain(&mut s);
    s.handle_bytes(c, &mut their_handshake(metainfo.info_hash), now);
    let actions = drain(&mut s);
    assert_eq!(
        disconnect_of(&actions, c),
        Some(DisconnectReason::PlaintextRefused)
    );
    assert!(
        DisconnectReason::PlaintextRefused
            .to_string()
            .contains("encryption is required")
    );

    let mut s = Session::new(config(EncryptionPolicy::Disable, CryptoLevel::Both), 1, now);
    s.add_torrent(&metainfo, None, now).expect("add");
    let c = s.connection_opened(addr(2), Direction::Inbound, now);
    drain(&mut s);
    let mut peer = Dialler::new(metainfo.info_hash.0, CRYPTO_RC4, b"", 3);
    s.handle_bytes(
        c,
        &mut BytesMut::from(&peer.handshake.take_output()[..]),
        now,
    );
    let actions = drain(&mut s);
    assert_eq!(
        disconnect_of(&actions, c),
        Some(DisconnectReason::EncryptionDisabled)
    );

    // And a peer naming a torrent we do not have is told so.
    let mut s = Session::new(config(EncryptionPolicy::Prefer, CryptoLevel::Both), 1, now);
    s.add_torrent(&metainfo, None, now).expect("add");
    let c = s.connection_opened(addr(2), Direction::Inbound, now);
    drain(&mut s);
    let mut peer = Dialler::new([7; 20], CRYPTO_RC4, b"", 3);
    let mut buf = BytesMut::new();
    peer.exchange(&mut s, c, &mut buf, 1, now);
    assert_eq!(
        disconnect_of(&drain(&mut s), c),
        Some(DisconnectReason::Encryption(mse::MseError::UnknownTorrent))
    );
}

/// Dials `addr(3)` for the torrent: the connection and its first bytes.
fn dial(s: &mut Session, t: TorrentId, now: Instant) -> (ConnId, Vec<u8>) {
    let c = s.connection_opened(addr(3), Direction::Outbound(t), now);
    let first = sent_bytes(&drain(s), c);
    (c, first)
}

const PLAINTEXT_START: &[u8] = b"\x13BitTorrent protocol";

/// `prefer`: a peer that hangs up on our public key is dialled again at once, in
/// plaintext, without a failure counted; if the plaintext dial fails too, that failure
/// counts (back-off). `require`: no plaintext retry, the usual back-off, and the next dial
/// is encrypted again. Either way the hang-up is reported as one during encryption.
#[test]
fn a_peer_refusing_mse_is_retried_once_in_plaintext_under_prefer_only() {
    let metainfo = make_metainfo(&make_content(50 * KIB, 1), 16 * 1024);
    for policy in [EncryptionPolicy::Prefer, EncryptionPolicy::Require] {
        let now = Instant::from_secs(1);
        let mut s = Session::new(config(policy, CryptoLevel::Both), 1, now);
        let t = s.add_torrent(&metainfo, None, now).expect("add");
        s.add_peers(t, &[addr(3)], now);
        assert_eq!(connects(&drain(&mut s)), vec![addr(3)]);
        let (c, first) = dial(&mut s, t, now);
        assert!(first.len() >= mse::KEY_LEN && !first.starts_with(PLAINTEXT_START));
        s.handle_closed(c, PeerGone::HungUp, now);
        let actions = drain(&mut s);
        assert!(
            actions.iter().any(|a| matches!(
                a,
                Action::Event(Event::PeerDisconnected {
                    reason: PeerGone::HungUpOnEncryption,
                    ..
                })
            )),
            "{actions:?}"
        );
        match policy {
            EncryptionPolicy::Prefer => {
                assert_eq!(connects(&actions), vec![addr(3)], "redialled at once");
                let (c, first) = dial(&mut s, t, now);
                assert!(first.starts_with(PLAINTEXT_START), "the retry is plaintext");
                s.handle_closed(c, PeerGone::HungUp, now);
                let actions = drain(&mut s);
                assert!(
                    connects(&actions).is_empty(),
                    "a plaintext failure backs off"
                );
                assert!(actions.iter().any(|a| matches!(
                    a,
                    Action::Event(Event::PeerDisconnected {
                        reason: PeerGone::HungUp,
                        ..
                    })
                )));
            }
            _ => {
                assert!(connects(&actions).is_empty(), "no plaintext retry");
                s.handle_timeout(now + Duration::from_secs(6));
                assert_eq!(
                    connects(&drain(&mut s)),
                    vec![addr(3)],
                    "after the back-off"
                );
                let (_, first) = dial(&mut s, t, now + Duration::from_secs(6));
                assert!(!first.starts_with(PLAINTEXT_START), "encrypted again");
            }
        }
    }
}

/// A peer that answers our public key with something that is not MSE (a plaintext-only
/// client reading it as a handshake and answering its own) fails the handshake by name
/// and, under `prefer`, gets the plaintext retry too.
#[test]
fn an_answer_that_is_not_mse_fails_by_name_and_is_retried_in_plaintext() {
    let metainfo = make_metainfo(&make_content(50 * KIB, 1), 16 * 1024);
    let now = Instant::from_secs(1);
    let mut s = Session::new(config(EncryptionPolicy::Prefer, CryptoLevel::Both), 1, now);
    let t = s.add_torrent(&metainfo, None, now).expect("add");
    s.add_peers(t, &[addr(3)], now);
    drain(&mut s);
    let (c, _) = dial(&mut s, t, now);
    // 96 bytes of a "public key" that is really P-1 (refused), as junk would often be.
    let mut junk = BytesMut::from(&[0xff; 96][..]);
    s.handle_bytes(c, &mut junk, now);
    let actions = drain(&mut s);
    assert_eq!(
        disconnect_of(&actions, c),
        Some(DisconnectReason::Encryption(mse::MseError::BadPublicKey))
    );
    assert_eq!(connects(&actions), vec![addr(3)]);
    let (_, first) = dial(&mut s, t, now);
    assert!(first.starts_with(PLAINTEXT_START));
}

/// A driver that frames a block itself on an encrypted connection (it cannot: the frame
/// is ciphertext) is told so by the connection's end, not by a corrupt piece.
#[test]
fn a_block_framed_by_the_driver_on_an_encrypted_connection_ends_it() {
    let metainfo = make_metainfo(&make_content(50 * KIB, 1), 16 * 1024);
    let now = Instant::from_secs(1);
    let mut s = Session::new(config(EncryptionPolicy::Prefer, CryptoLevel::Rc4), 1, now);
    let t = s.add_torrent(&metainfo, None, now).expect("add");
    let c = s.connection_opened(addr(4), Direction::Inbound, now);
    let mut buf = BytesMut::new();
    let mut peer = Dialler::new(
        metainfo.info_hash.0,
        CRYPTO_RC4,
        &their_handshake(metainfo.info_hash),
        1,
    );
    peer.exchange(&mut s, c, &mut buf, 3, now);
    assert_eq!(s.connections(t), vec![c]);
    assert!(!s.frames_in_clear(c));
    s.handle_block(c, 0, 0, Bytes::from(vec![0u8; 16 * 1024]), now);
    assert!(matches!(
        disconnect_of(&drain(&mut s), c),
        Some(DisconnectReason::Misbehaved(_))
    ));
}

/// Whole swarms in the lab, every pairing of levels: a seed and three leechers that all
/// encrypt complete with the right bytes, and every connection they held was encrypted.
#[test]
fn encrypted_swarms_complete_for_every_crypto_level() {
    for (seed_level, leech_level) in [
        (CryptoLevel::Both, CryptoLevel::Both),
        (CryptoLevel::Rc4, CryptoLevel::Both),
        (CryptoLevel::Plaintext, CryptoLevel::Both),
        (CryptoLevel::Both, CryptoLevel::Plaintext),
    ] {
        let mut s = Swarm::new(make_content(600 * KIB + 123, 2), 32 * KIB as u32, 1 << 20);
        s.config = SessionConfig {
            encryption: EncryptionPolicy::Require,
            crypto_level: seed_level,
            ..Swarm::node_config()
        };
        let seed = s.add_seed(Behaviour::Honest);
        s.config.crypto_level = leech_level;
        s.config.encryption = EncryptionPolicy::Prefer;
        let leechers: Vec<usize> = (0..3)
            .map(|_| s.add_node(None, Behaviour::Honest))
            .collect();
        for &l in &leechers {
            s.introduce(l);
        }
        let mut encrypted_seen = false;
        let mut plaintext_seen = false;
        let done = s.run_until(Duration::from_secs(300), |s| {
            for i in std::iter::once(seed).chain(leechers.iter().copied()) {
                if let Some(st) = s.session(i).stats(s.torrent(i), s.now()) {
                    encrypted_seen |= st.encrypted_peers > 0;
                    plaintext_seen |= st.encrypted_peers < st.peers;
                }
            }
            leechers.iter().all(|&l| s.is_complete(l))
        });
        assert!(
            done,
            "{seed_level:?}/{leech_level:?}: {:?}",
            s.disconnects()
        );
        s.settle();
        for &l in &leechers {
            assert!(s.disk_matches(l));
        }
        assert!(encrypted_seen);
        assert!(
            !plaintext_seen,
            "the seed requires encryption: no plaintext peer"
        );
        assert!(s.violations().is_empty(), "{:?}", s.violations());
    }
}

/// A leecher that prefers encryption still gets the file from a seed that disables it:
/// refused once (by name), retried in plaintext.
#[test]
fn prefer_downloads_from_a_plaintext_only_seed() {
    let mut s = Swarm::new(make_content(300 * KIB, 3), 32 * KIB as u32, 1 << 20);
    let seed = s.add_seed(Behaviour::Honest);
    s.config.encryption = EncryptionPolicy::Prefer;
    let l = s.add_node(None, Behaviour::Honest);
    s.introduce(l);
    assert!(s.run_until(Duration::from_secs(120), |s| s.is_complete(l)));
    s.settle();
    assert!(s.disk_matches(l));
    assert!(
        s.disconnects()
            .iter()
            .any(|(_, node, reason)| *node == seed && reason.contains("encryption is disabled")),
        "{:?}",
        s.disconnects()
    );
}
