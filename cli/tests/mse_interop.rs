//! `unchoke_core::mse` (the MSE/PE handshake) against libtorrent-rasterbar
//! (python3-libtorrent through helpers/lt_peer.py) over real sockets on 127.0.7.x. The
//! session does not use MSE yet (issue 20), so these drive the handshake's state machine
//! directly over a `TcpStream`, as a runtime will:
//! - we dial a libtorrent seed that refuses plaintext (`pe_forced`, RC4 only): our
//!   initiator completes, the BitTorrent handshake we sent inside the initial payload is
//!   answered by libtorrent's own, RC4-decrypted, naming the torrent, and the message after
//!   it decrypts to a valid peer message (the keystreams stay in step);
//! - the same with plaintext selected after the handshake (libtorrent allows only that);
//! - a libtorrent leech that refuses plaintext dials us: our receiver, serving three
//!   torrents, finds the one it asks for, and libtorrent's handshake comes through.
//!
//! Like every interop test these fail, not skip, when libtorrent is missing.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::process::JsonProcess;
use common::tracker::info_hash_bytes;
use common::{create_torrent, info_json, lt_peer_with_encryption, write};
use unchoke_core::mse::{CRYPTO_PLAINTEXT, CRYPTO_RC4, Crypto, Established, Handshake, Served};

const WAIT: Duration = Duration::from_secs(30);
const PROTOCOL: &[u8] = b"\x13BitTorrent protocol";

/// A 1 MiB single-file torrent and its data: (data dir, torrent, info-hash).
fn fixture(dir: &Path) -> (PathBuf, PathBuf, [u8; 20]) {
    let data_dir = dir.join("data");
    let file = write(&data_dir, "payload.bin", &common::data(77, 1 << 20));
    let torrent = dir.join("payload.torrent");
    create_torrent(&file, &torrent);
    let hex = info_json(&torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let info_hash: [u8; 20] = info_hash_bytes(&hex).try_into().unwrap();
    (data_dir, torrent, info_hash)
}

/// libtorrent refusing plaintext (`--encryption forced`), allowing `level` after the
/// handshake.
fn libtorrent(
    mode: &str,
    torrent: &Path,
    save: &Path,
    ip: &str,
    level: &str,
    args: &[&str],
) -> JsonProcess {
    lt_peer_with_encryption(mode, torrent, save, ip, ("forced", level), args)
}

/// Our BitTorrent handshake for `info_hash` (extension protocol bit set).
fn bt_handshake(info_hash: &[u8; 20]) -> Vec<u8> {
    let mut h = PROTOCOL.to_vec();
    h.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0]);
    h.extend_from_slice(info_hash);
    h.extend_from_slice(b"-UC0001-mseinterop01");
    h
}

/// Runs `handshake` over `stream` until it completes: what it established, and the
/// payload-stream bytes that arrived with its end (as received, still encrypted).
fn drive(
    stream: &mut TcpStream,
    handshake: &mut Handshake,
    peer: &mut JsonProcess,
) -> (Established, BytesMut) {
    let deadline = Instant::now() + WAIT;
    let mut input = BytesMut::new();
    let mut buf = [0u8; 4096];
    loop {
        // Whatever the last input produced goes out before we wait for more.
        let done = handshake
            .feed(&mut input)
            .unwrap_or_else(|e| panic!("MSE: {e}"));
        let out = handshake.take_output();
        if !out.is_empty() {
            stream.write_all(&out).unwrap();
        }
        if let Some(done) = done {
            return (done, input);
        }
        assert!(
            Instant::now() < deadline,
            "the MSE handshake did not finish in {WAIT:?}"
        );
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            std::thread::sleep(Duration::from_millis(500));
            peer.drain();
            panic!(
                "libtorrent closed the connection during the MSE handshake ({handshake:?})\n{}",
                peer.dump()
            );
        }
        input.extend_from_slice(&buf[..n]);
    }
}

/// The next `n` payload-stream bytes, decrypted. `plain` holds what arrived before and is
/// not used yet, already decrypted: the handshake's leftover (see [`decrypted_leftover`])
/// and what an earlier call read past its `n`.
fn read_stream(
    stream: &mut TcpStream,
    plain: &mut Vec<u8>,
    done: &mut Established,
    n: usize,
) -> Vec<u8> {
    let mut buf = [0u8; 4096];
    while plain.len() < n {
        let got = stream.read(&mut buf).unwrap();
        assert!(
            got > 0,
            "libtorrent closed the connection after the MSE handshake"
        );
        let chunk = &mut buf[..got];
        if let Some(recv) = done.recv.as_mut() {
            recv.apply(chunk);
        }
        plain.extend_from_slice(chunk);
    }
    plain.drain(..n).collect()
}

/// The payload-stream bytes that arrived with the handshake's end, decrypted once.
fn decrypted_leftover(done: &mut Established, mut leftover: BytesMut) -> Vec<u8> {
    if let Some(recv) = done.recv.as_mut() {
        recv.apply(&mut leftover);
    }
    leftover.to_vec()
}

/// Dials a libtorrent seed that forces encryption and allows `level` after it: the
/// method it selects, and its handshake and first message decrypted.
fn dial_libtorrent_seed(ip_seed: &str, level: &str, provide: u32) -> Crypto {
    let dir = tempfile::tempdir().unwrap();
    let (data_dir, torrent, info_hash) = fixture(dir.path());
    let mut seed = libtorrent("seed", &torrent, &data_dir, ip_seed, level, &[]);
    let addr = seed.wait_event("listening", WAIT)["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let remote: std::net::SocketAddr = addr.parse().unwrap();
    let mut stream = TcpStream::connect_timeout(&remote, WAIT).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut handshake =
        Handshake::initiator(info_hash, provide, &bt_handshake(&info_hash), &mut rng);
    let (mut done, leftover) = drive(&mut stream, &mut handshake, &mut seed);
    let mut pending = decrypted_leftover(&mut done, leftover);
    assert_eq!(done.info_hash, info_hash);
    let theirs = read_stream(&mut stream, &mut pending, &mut done, 68);
    assert_eq!(
        &theirs[..20],
        PROTOCOL,
        "libtorrent's handshake: {theirs:?}\n{}",
        seed.dump()
    );
    assert_eq!(&theirs[28..48], &info_hash, "it names our torrent");
    // Its next message (extension handshake, bitfield or have-all): a sane length and id
    // means both keystreams are still in step after the handshake.
    let head = read_stream(&mut stream, &mut pending, &mut done, 5);
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    assert!(
        (1..=1 << 20).contains(&len) && [5, 14, 20].contains(&head[4]),
        "the message after libtorrent's handshake decrypts to length {len}, id {}",
        head[4]
    );
    seed.signal("TERM");
    seed.wait_exit(WAIT);
    done.crypto
}

#[test]
fn we_dial_a_libtorrent_seed_that_refuses_plaintext_and_speak_rc4() {
    let crypto = dial_libtorrent_seed("127.0.7.1", "rc4", CRYPTO_PLAINTEXT | CRYPTO_RC4);
    assert_eq!(crypto, Crypto::Rc4);
}

#[test]
fn we_dial_a_libtorrent_seed_that_selects_plaintext_after_the_handshake() {
    let crypto = dial_libtorrent_seed("127.0.7.3", "plaintext", CRYPTO_PLAINTEXT | CRYPTO_RC4);
    assert_eq!(crypto, Crypto::Plaintext);
}

#[test]
fn a_libtorrent_leech_that_refuses_plaintext_dials_us_and_is_understood() {
    let dir = tempfile::tempdir().unwrap();
    let (_data, torrent, info_hash) = fixture(dir.path());
    let listener = TcpListener::bind("127.0.7.5:0").unwrap();
    let ours = listener.local_addr().unwrap().to_string();
    let save = dir.path().join("leech");
    std::fs::create_dir_all(&save).unwrap();
    let mut leech = libtorrent(
        "leech",
        &torrent,
        &save,
        "127.0.7.6",
        "rc4",
        &["--connect", &ours],
    );
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "libtorrent never dialled us\n{}",
                    leech.dump()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut rng = fastrand::Rng::with_seed(8);
    let torrents = Served::new([[1; 20], info_hash, [2; 20]]);
    let mut handshake = Handshake::receiver(torrents, CRYPTO_PLAINTEXT | CRYPTO_RC4, &mut rng);
    let (mut done, leftover) = drive(&mut stream, &mut handshake, &mut leech);
    let mut pending = decrypted_leftover(&mut done, leftover);
    assert_eq!(done.info_hash, info_hash, "the torrent found among three");
    assert_eq!(done.crypto, Crypto::Rc4, "libtorrent allows RC4 only");
    // libtorrent's BitTorrent handshake: in the initial payload, or right after it.
    let mut theirs = done.initial_payload.to_vec();
    if theirs.len() < 68 {
        let more = read_stream(&mut stream, &mut pending, &mut done, 68 - theirs.len());
        theirs.extend_from_slice(&more);
    }
    assert_eq!(
        &theirs[..20],
        PROTOCOL,
        "libtorrent's handshake: {theirs:?}"
    );
    assert_eq!(&theirs[28..48], &info_hash);
    leech.signal("TERM");
    leech.wait_exit(WAIT);
}
