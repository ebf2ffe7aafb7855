//! Message Stream Encryption (MSE, also "protocol encryption", PE): the obfuscated
//! handshake libtorrent, Transmission, anacrolix and aria2 speak, as a pure state machine
//! over bytes, in both roles.
//!
//! ```text
//! 1 A→B  Ya, PadA                         Diffie-Hellman public key (96 bytes), 0–512 random bytes
//! 2 B→A  Yb, PadB
//! 3 A→B  HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
//!        ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
//! 4 B→A  ENCRYPT(VC, crypto_select, len(PadD), PadD), then the payload stream
//! 5 A→B  the payload stream
//! ```
//!
//! `S` is the shared secret (`Y^x mod P`, 96 bytes big-endian), `SKEY` the torrent's
//! info-hash (so a receiver serving many torrents finds which one is meant without the
//! info-hash ever crossing the wire), `VC` eight zero bytes, `HASH` SHA-1 over the
//! concatenation. `ENCRYPT` is RC4 keyed with `HASH('keyA', S, SKEY)` from A to B and
//! `HASH('keyB', S, SKEY)` from B to A, its first 1,024 bytes of keystream discarded; the
//! handshake's encrypted parts always use it, and after step 4 the stream is RC4 or
//! plaintext as `crypto_select` says (`0x01` plaintext, `0x02` RC4). The initial payload
//! `IA` (A's BitTorrent handshake, usually) rides in step 3 to save a round trip.
//!
//! The receiver finds step 3 by searching for `HASH('req1', S)` after `Ya` (PadA is at most
//! 512 bytes), the initiator finds step 4 by searching for `VC` encrypted after `Yb`; a
//! search that runs past the padding's bound fails (a peer speaking something else).
//! Every length read from the wire is checked before anything is allocated for it.
//!
//! Randomness (the 160-bit private keys, the padding) comes from the caller's RNG, so a
//! session's seeded RNG keeps tests and fuzzing deterministic. That RNG is not a
//! cryptographic one: MSE was designed as obfuscation against traffic shaping, not as
//! confidentiality (RC4 and a 768-bit group are both broken for that), and the CLI seeds
//! its session from the OS.
//!
//! **In the session** (`session/encryption.rs`): every dial speaks MSE unless
//! [`crate::session::EncryptionPolicy::Disable`] (or a plaintext retry) says otherwise, an
//! inbound connection is told apart by [`is_plaintext_handshake`], the receiver finds the
//! torrent among the session's in a [`Served`] table, and an RC4 stream is decrypted in
//! place in the connection's receive buffer and encrypted as it is queued. Tested here
//! (round trips between the two roles for every `crypto_select`, a known-answer vector
//! computed by an independent implementation, hostile input), in `core/tests/encryption.rs`
//! (sessions), and against libtorrent and Transmission over real sockets
//! (`cli/tests/mse_interop.rs`, `cli/tests/encryption.rs`).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use num_bigint::BigUint;
use rc4::{KeyInit, Rc4, StreamCipher};
use sha1::{Digest, Sha1};

/// Length of a public key and of the shared secret on the wire.
pub const KEY_LEN: usize = 96;
/// The longest padding the spec allows (PadA, PadB, PadC, PadD).
pub const MAX_PAD: usize = 512;
/// `crypto_provide`/`crypto_select` bit for plaintext after the handshake.
pub const CRYPTO_PLAINTEXT: u32 = 0x01;
/// `crypto_provide`/`crypto_select` bit for RC4 after the handshake.
pub const CRYPTO_RC4: u32 = 0x02;

/// The spec's 768-bit prime `P` (the generator `G` is 2).
const PRIME: [u8; KEY_LEN] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC9, 0x0F, 0xDA, 0xA2, 0x21, 0x68, 0xC2, 0x34,
    0xC4, 0xC6, 0x62, 0x8B, 0x80, 0xDC, 0x1C, 0xD1, 0x29, 0x02, 0x4E, 0x08, 0x8A, 0x67, 0xCC, 0x74,
    0x02, 0x0B, 0xBE, 0xA6, 0x3B, 0x13, 0x9B, 0x22, 0x51, 0x4A, 0x08, 0x79, 0x8E, 0x34, 0x04, 0xDD,
    0xEF, 0x95, 0x19, 0xB3, 0xCD, 0x3A, 0x43, 0x1B, 0x30, 0x2B, 0x0A, 0x6D, 0xF2, 0x5F, 0x14, 0x37,
    0x4F, 0xE1, 0x35, 0x6D, 0x6D, 0x51, 0xC2, 0x45, 0xE4, 0x85, 0xB5, 0x76, 0x62, 0x5E, 0x7E, 0xC6,
    0xF4, 0x4C, 0x42, 0xE9, 0xA6, 0x3A, 0x36, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x05, 0x63,
];
/// The verification constant.
const VC: [u8; 8] = [0; 8];
/// Keystream bytes each RC4 stream discards before use.
const DISCARD: usize = 1024;
/// Bytes of `ENCRYPT(VC, crypto_provide, len(PadC))` and of `ENCRYPT(VC, crypto_select,
/// len(PadD))`.
const VC_BLOCK: usize = VC.len() + 4 + 2;

/// How the stream continues after the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crypto {
    /// Plaintext (`crypto_select` 0x01): only the handshake was obfuscated.
    Plaintext,
    /// RC4 both ways (`crypto_select` 0x02).
    Rc4,
}

impl Crypto {
    /// The method's `crypto_provide`/`crypto_select` bit.
    pub fn bit(self) -> u32 {
        match self {
            Crypto::Plaintext => CRYPTO_PLAINTEXT,
            Crypto::Rc4 => CRYPTO_RC4,
        }
    }
}

/// One direction's RC4 keystream, past its first 1,024 bytes.
pub struct Cipher(Rc4);

impl Cipher {
    fn new(key: &[u8; 20]) -> Cipher {
        // A 20-byte key is within RC4's 1–256 bytes, so this cannot fail.
        let mut rc4 = match Rc4::new_from_slice(key) {
            Ok(rc4) => rc4,
            Err(_) => unreachable!("RC4 takes 20-byte keys"),
        };
        let mut discard = [0u8; DISCARD];
        rc4.apply_keystream(&mut discard);
        Cipher(rc4)
    }

    /// Encrypts or decrypts `data` in place (RC4 is its own inverse).
    pub fn apply(&mut self, data: &mut [u8]) {
        self.0.apply_keystream(data);
    }
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keystream's state.
        f.write_str("Cipher(RC4)")
    }
}

/// What a completed handshake leaves: the method, the torrent and the ciphers for the
/// payload stream.
#[derive(Debug)]
pub struct Established {
    /// How the stream continues.
    pub crypto: Crypto,
    /// The torrent (`SKEY`): the initiator's own, or the one the receiver matched.
    pub info_hash: [u8; 20],
    /// Encrypts what we send from now on; `None` for plaintext.
    pub send: Option<Cipher>,
    /// Decrypts what we receive from now on; `None` for plaintext. Bytes the caller's
    /// buffer still holds after [`Handshake::feed`] returned this are payload stream:
    /// decrypt them with it first.
    pub recv: Option<Cipher>,
    /// The initiator's initial payload, decrypted (the receiver's side; empty for the
    /// initiator). It is payload stream: the first bytes of the BitTorrent handshake.
    pub initial_payload: Bytes,
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MseError {
    /// A public key outside `2..P-1`.
    #[error("the peer's public key is out of range")]
    BadPublicKey,
    /// `HASH('req1', S)` not found within the padding's bound.
    #[error("no encrypted handshake found within {MAX_PAD} bytes of padding")]
    NoRequest,
    /// The encrypted `VC` not found within the padding's bound.
    #[error("no verification constant found within {MAX_PAD} bytes of padding")]
    NoVerification,
    /// The obfuscated info-hash names none of our torrents.
    #[error("the peer asked for a torrent we do not have")]
    UnknownTorrent,
    /// The decrypted `VC` was not zeros: wrong keys or a corrupt stream.
    #[error("the verification constant did not decrypt to zeros")]
    BadVerification,
    /// No method both sides allow.
    #[error("no common encryption method (the peer offers {offered:#x}, we allow {allowed:#x})")]
    NoCommonMethod {
        /// The peer's `crypto_provide`.
        offered: u32,
        /// What we allow.
        allowed: u32,
    },
    /// `crypto_select` is not exactly one of the methods we provided.
    #[error("the peer selected {0:#x}, which we did not offer")]
    BadSelect(u32),
    /// A padding length over [`MAX_PAD`].
    #[error("padding of {0} bytes (at most {MAX_PAD})")]
    PadTooLong(u16),
}

/// The torrents a receiver serves, keyed by their obfuscated info-hash
/// (`HASH('req2', SKEY)`, see [`obfuscated_hash`]), so the one a peer names is found in
/// O(log n) however many torrents a session holds. Cloning is O(1) (the table is shared):
/// every inbound handshake takes a snapshot, and a change (a torrent added or removed)
/// copies the table once, not per connection.
#[derive(Clone, Debug, Default)]
pub struct Served(std::sync::Arc<std::collections::BTreeMap<[u8; 20], [u8; 20]>>);

impl Served {
    /// A table serving these info-hashes.
    pub fn new(info_hashes: impl IntoIterator<Item = [u8; 20]>) -> Served {
        let mut served = Served::default();
        for h in info_hashes {
            served.insert(h);
        }
        served
    }

    /// Serves `info_hash` too.
    pub fn insert(&mut self, info_hash: [u8; 20]) {
        std::sync::Arc::make_mut(&mut self.0).insert(obfuscated_hash(&info_hash), info_hash);
    }

    /// Stops serving `info_hash`.
    pub fn remove(&mut self, info_hash: &[u8; 20]) {
        std::sync::Arc::make_mut(&mut self.0).remove(&obfuscated_hash(info_hash));
    }

    /// The info-hash whose obfuscated form is `req2`.
    fn find(&self, req2: &[u8; 20]) -> Option<[u8; 20]> {
        self.0.get(req2).copied()
    }
}

/// `HASH('req2', SKEY)`: how an initiator names torrent `info_hash` (xored with
/// `HASH('req3', S)` on the wire).
pub fn obfuscated_hash(info_hash: &[u8; 20]) -> [u8; 20] {
    hash(&[b"req2", info_hash])
}

/// The handshake state machine, either role. Feed it what arrives
/// ([`Handshake::feed`]) and send what it produces ([`Handshake::take_output`]) until
/// `feed` returns the [`Established`] stream.
pub struct Handshake {
    /// Our private key.
    private: BigUint,
    /// The receiver's choice when the initiator offers both methods and we allow both.
    prefer: Crypto,
    /// Bytes to send, until [`Handshake::take_output`] takes them.
    out: BytesMut,
    /// The receiver's public key and padding, held until `Ya` arrives.
    pending: BytesMut,
    state: State,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("state", &self.state.name())
            .field("unsent", &self.out.len())
            .finish()
    }
}

enum State {
    /// Initiator: waiting for `Yb`.
    AwaitYb {
        info_hash: [u8; 20],
        provide: u32,
        initial_payload: Bytes,
    },
    /// Initiator: searching for the encrypted `VC` after `Yb` and PadB.
    AwaitVc {
        keys: Keys,
        provide: u32,
        pattern: [u8; 8],
        skipped: usize,
    },
    /// Initiator: `crypto_select` and `len(PadD)`, then PadD.
    AwaitSelect { keys: Keys, provide: u32 },
    AwaitPadD {
        keys: Keys,
        crypto: Crypto,
        len: usize,
    },
    /// Receiver: waiting for `Ya`.
    AwaitYa { torrents: Served, allow: u32 },
    /// Receiver: searching for `HASH('req1', S)` after `Ya` and PadA.
    AwaitReq1 {
        torrents: Served,
        allow: u32,
        secret: [u8; KEY_LEN],
        skipped: usize,
    },
    /// Receiver: the obfuscated info-hash and `ENCRYPT(VC, crypto_provide, len(PadC))`.
    AwaitProvide {
        torrents: Served,
        allow: u32,
        secret: [u8; KEY_LEN],
    },
    /// Receiver: PadC and `len(IA)`, then IA.
    AwaitPadC {
        keys: Keys,
        crypto: Crypto,
        len: usize,
    },
    AwaitIa {
        keys: Keys,
        crypto: Crypto,
        len: usize,
    },
    /// Done, or failed: feeding more is an error of the caller's and changes nothing.
    Finished,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::AwaitYb { .. } => "await Yb",
            State::AwaitVc { .. } => "await VC",
            State::AwaitSelect { .. } => "await crypto_select",
            State::AwaitPadD { .. } => "await PadD",
            State::AwaitYa { .. } => "await Ya",
            State::AwaitReq1 { .. } => "await req1",
            State::AwaitProvide { .. } => "await crypto_provide",
            State::AwaitPadC { .. } => "await PadC",
            State::AwaitIa { .. } => "await IA",
            State::Finished => "finished",
        }
    }
}

/// Both directions' ciphers and the torrent they were keyed for.
struct Keys {
    send: Cipher,
    recv: Cipher,
    info_hash: [u8; 20],
}

impl Keys {
    /// The initiator sends with keyA; the receiver with keyB.
    fn new(secret: &[u8; KEY_LEN], info_hash: [u8; 20], initiator: bool) -> Keys {
        let a = Cipher::new(&hash(&[b"keyA", secret, &info_hash]));
        let b = Cipher::new(&hash(&[b"keyB", secret, &info_hash]));
        let (send, recv) = if initiator { (a, b) } else { (b, a) };
        Keys {
            send,
            recv,
            info_hash,
        }
    }

    fn established(self, crypto: Crypto, initial_payload: Bytes) -> Established {
        let rc4 = crypto == Crypto::Rc4;
        Established {
            crypto,
            info_hash: self.info_hash,
            send: rc4.then_some(self.send),
            recv: rc4.then_some(self.recv),
            initial_payload,
        }
    }
}

impl Handshake {
    /// The dialling side for torrent `info_hash`, offering the methods in `provide`
    /// (a set of `CRYPTO_*` bits), with `initial_payload` (our BitTorrent handshake,
    /// usually) sent inside step 3. Its length goes on the wire in 16 bits: only the first
    /// 65,535 bytes of a longer one are sent (a caller's error; a handshake is 68 bytes).
    /// Its first output is `Ya, PadA`.
    pub fn initiator(
        info_hash: [u8; 20],
        provide: u32,
        initial_payload: &[u8],
        rng: &mut fastrand::Rng,
    ) -> Handshake {
        let ia_len = initial_payload.len().min(usize::from(u16::MAX));
        let mut h = Handshake::start(rng);
        h.state = State::AwaitYb {
            info_hash,
            provide,
            initial_payload: Bytes::copy_from_slice(&initial_payload[..ia_len]),
        };
        h
    }

    /// The accepting side, serving `torrents` and allowing the
    /// methods in `allow` (RC4 is chosen when both sides allow it, plaintext otherwise;
    /// see [`Handshake::preferring`]).
    /// Its first output, `Yb, PadB`, comes once `Ya` has arrived.
    pub fn receiver(torrents: Served, allow: u32, rng: &mut fastrand::Rng) -> Handshake {
        let mut h = Handshake::start(rng);
        // The receiver answers only after Ya: its key and padding wait in `pending`.
        let key_and_pad = std::mem::take(&mut h.out);
        h.state = State::AwaitYa { torrents, allow };
        h.pending = key_and_pad;
        h
    }

    /// The method a receiver selects when the initiator offers both and both are allowed
    /// (RC4 unless told otherwise). libtorrent, by default, prefers plaintext: the
    /// handshake is what traffic shaping looks for, and RC4 costs CPU on every byte.
    pub fn preferring(mut self, crypto: Crypto) -> Handshake {
        self.prefer = crypto;
        self
    }

    /// A 160-bit private key and 0–512 bytes of padding from `rng`.
    fn start(rng: &mut fastrand::Rng) -> Handshake {
        let mut private = [0u8; 20];
        rng.fill(&mut private);
        let pad: Vec<u8> = (0..rng.usize(0..=MAX_PAD)).map(|_| rng.u8(..)).collect();
        Handshake::start_with(private, &pad)
    }

    /// Our public key (`2^private mod P`) followed by `pad`, ready to send.
    fn start_with(private: [u8; 20], pad: &[u8]) -> Handshake {
        let private = BigUint::from_bytes_be(&private);
        let public = BigUint::from(2u32).modpow(&private, &prime());
        let mut out = BytesMut::with_capacity(KEY_LEN + pad.len());
        out.put_slice(&to_key_bytes(&public));
        out.put_slice(pad);
        Handshake {
            private,
            prefer: Crypto::Rc4,
            out,
            pending: BytesMut::new(),
            state: State::Finished,
        }
    }
}

impl Handshake {
    /// Bytes to send now (empty when there are none).
    pub fn take_output(&mut self) -> Bytes {
        self.out.split().freeze()
    }

    /// Consumes from `input` what the handshake needs. `Ok(None)`: more input is needed
    /// (send [`Handshake::take_output`] first). `Ok(Some(..))`: done, and whatever is left
    /// in `input` is payload stream (still encrypted if RC4 was selected). After an error
    /// or completion the handshake is finished and consumes nothing more.
    pub fn feed(&mut self, input: &mut BytesMut) -> Result<Option<Established>, MseError> {
        loop {
            let state = std::mem::replace(&mut self.state, State::Finished);
            match self.step(state, input)? {
                Step::Wait(state) => {
                    self.state = state;
                    return Ok(None);
                }
                Step::Next(state) => self.state = state,
                Step::Done(established) => return Ok(Some(established)),
            }
        }
    }

    /// One transition: the state it leads to, or a wait for more input in `state`.
    fn step(&mut self, state: State, input: &mut BytesMut) -> Result<Step, MseError> {
        Ok(match state {
            State::Finished => Step::Wait(State::Finished),
            State::AwaitYb {
                info_hash,
                provide,
                initial_payload,
            } => {
                let Some(secret) = self.take_secret(input)? else {
                    return Ok(Step::Wait(State::AwaitYb {
                        info_hash,
                        provide,
                        initial_payload,
                    }));
                };
                let mut keys = Keys::new(&secret, info_hash, true);
                self.out.put_slice(&hash(&[b"req1", &secret]));
                self.out.put_slice(&xor(
                    &obfuscated_hash(&info_hash),
                    &hash(&[b"req3", &secret]),
                ));
                let start = self.out.len();
                self.out.put_slice(&VC);
                self.out.put_u32(provide);
                self.out.put_u16(0); // PadC: empty, as the spec suggests for now
                self.out.put_u16(initial_payload.len() as u16);
                self.out.put_slice(&initial_payload);
                keys.send.apply(&mut self.out[start..]);
                // What VC looks like under the receiver's keystream, found without
                // advancing the real one.
                let mut pattern = VC;
                Cipher::new(&hash(&[b"keyB", &secret, &info_hash])).apply(&mut pattern);
                Step::Next(State::AwaitVc {
                    keys,
                    provide,
                    pattern,
                    skipped: 0,
                })
            }
            State::AwaitVc {
                mut keys,
                provide,
                pattern,
                skipped,
            } => match search(input, &pattern, skipped, MseError::NoVerification)? {
                Found::At => {
                    let mut vc = input.split_to(VC.len());
                    keys.recv.apply(&mut vc);
                    Step::Next(State::AwaitSelect { keys, provide })
                }
                Found::Not(skipped) => Step::Wait(State::AwaitVc {
                    keys,
                    provide,
                    pattern,
                    skipped,
                }),
            },
            State::AwaitSelect { mut keys, provide } => {
                let Some(mut head) = take_decrypted(input, &mut keys, 6) else {
                    return Ok(Step::Wait(State::AwaitSelect { keys, provide }));
                };
                let select = head.get_u32();
                let pad = head.get_u16();
                let crypto = match select {
                    CRYPTO_RC4 if provide & CRYPTO_RC4 != 0 => Crypto::Rc4,
                    CRYPTO_PLAINTEXT if provide & CRYPTO_PLAINTEXT != 0 => Crypto::Plaintext,
                    other => return Err(MseError::BadSelect(other)),
                };
                Step::Next(State::AwaitPadD {
                    keys,
                    crypto,
                    len: pad_len(pad)?,
                })
            }
            State::AwaitPadD {
                mut keys,
                crypto,
                len,
            } => {
                if take_decrypted(input, &mut keys, len).is_none() {
                    return Ok(Step::Wait(State::AwaitPadD { keys, crypto, len }));
                }
                Step::Done(keys.established(crypto, Bytes::new()))
            }
            State::AwaitYa { torrents, allow } => {
                let Some(secret) = self.take_secret(input)? else {
                    return Ok(Step::Wait(State::AwaitYa { torrents, allow }));
                };
                let answer = std::mem::take(&mut self.pending);
                self.out.unsplit(answer);
                Step::Next(State::AwaitReq1 {
                    torrents,
                    allow,
                    secret,
                    skipped: 0,
                })
            }
            State::AwaitReq1 {
                torrents,
                allow,
                secret,
                skipped,
            } => {
                let req1 = hash(&[b"req1", &secret]);
                match search(input, &req1, skipped, MseError::NoRequest)? {
                    Found::At => {
                        input.advance(req1.len());
                        Step::Next(State::AwaitProvide {
                            torrents,
                            allow,
                            secret,
                        })
                    }
                    Found::Not(skipped) => Step::Wait(State::AwaitReq1 {
                        torrents,
                        allow,
                        secret,
                        skipped,
                    }),
                }
            }
            State::AwaitProvide {
                torrents,
                allow,
                secret,
            } => {
                if input.len() < 20 + VC_BLOCK {
                    return Ok(Step::Wait(State::AwaitProvide {
                        torrents,
                        allow,
                        secret,
                    }));
                }
                let mut named = [0u8; 20];
                input.copy_to_slice(&mut named);
                let req2 = xor(&named, &hash(&[b"req3", &secret]));
                let info_hash = torrents.find(&req2).ok_or(MseError::UnknownTorrent)?;
                let mut keys = Keys::new(&secret, info_hash, false);
                let mut head = input.split_to(VC_BLOCK);
                keys.recv.apply(&mut head);
                if head[..VC.len()] != VC {
                    return Err(MseError::BadVerification);
                }
                head.advance(VC.len());
                let offered = head.get_u32();
                let pad = head.get_u16();
                let common = offered & allow;
                let crypto = if common & self.prefer.bit() != 0 {
                    self.prefer
                } else if common & CRYPTO_RC4 != 0 {
                    Crypto::Rc4
                } else if common & CRYPTO_PLAINTEXT != 0 {
                    Crypto::Plaintext
                } else {
                    return Err(MseError::NoCommonMethod {
                        offered,
                        allowed: allow,
                    });
                };
                Step::Next(State::AwaitPadC {
                    keys,
                    crypto,
                    len: pad_len(pad)?,
                })
            }
            State::AwaitPadC {
                mut keys,
                crypto,
                len,
            } => {
                let Some(mut pad) = take_decrypted(input, &mut keys, len + 2) else {
                    return Ok(Step::Wait(State::AwaitPadC { keys, crypto, len }));
                };
                pad.advance(len);
                let ia = usize::from(pad.get_u16());
                Step::Next(State::AwaitIa {
                    keys,
                    crypto,
                    len: ia,
                })
            }
            State::AwaitIa {
                mut keys,
                crypto,
                len,
            } => {
                let Some(ia) = take_decrypted(input, &mut keys, len) else {
                    return Ok(Step::Wait(State::AwaitIa { keys, crypto, len }));
                };
                let start = self.out.len();
                self.out.put_slice(&VC);
                self.out.put_u32(crypto.bit());
                self.out.put_u16(0); // PadD: empty
                keys.send.apply(&mut self.out[start..]);
                Step::Done(keys.established(crypto, ia.freeze()))
            }
        })
    }

    /// The peer's public key, once 96 bytes are in: the shared secret `S`.
    fn take_secret(&mut self, input: &mut BytesMut) -> Result<Option<[u8; KEY_LEN]>, MseError> {
        if input.len() < KEY_LEN {
            return Ok(None);
        }
        let theirs = BigUint::from_bytes_be(&input.split_to(KEY_LEN));
        let p = prime();
        // 0, 1 and P-1 (and anything past P) would make the secret guessable.
        if theirs <= BigUint::from(1u32) || theirs >= &p - 1u32 {
            return Err(MseError::BadPublicKey);
        }
        Ok(Some(to_key_bytes(&theirs.modpow(&self.private, &p))))
    }

    /// Whether the handshake has finished (completed or failed).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }
}

/// A transition's outcome.
enum Step {
    /// More input is needed, in this state.
    Wait(State),
    /// Go on in this state with what is left.
    Next(State),
    /// The handshake completed.
    Done(Established),
}

/// Whether `first` bytes of an inbound connection begin a plaintext BitTorrent handshake
/// (`\x13BitTorrent protocol`) rather than an MSE public key: `Some(true)` plaintext,
/// `Some(false)` MSE, `None` not enough bytes to tell yet. A random public key begins
/// with those 20 bytes with probability 2⁻¹⁶⁰.
pub fn is_plaintext_handshake(first: &[u8]) -> Option<bool> {
    const PROTOCOL: &[u8; 20] = b"\x13BitTorrent protocol";
    let n = first.len().min(PROTOCOL.len());
    if first[..n] != PROTOCOL[..n] {
        return Some(false);
    }
    (n == PROTOCOL.len()).then_some(true)
}

/// Where a search for a marker stands.
enum Found {
    /// At the front of the input now.
    At,
    /// Not yet, with this many bytes of padding skipped so far.
    Not(usize),
}

/// Looks for `marker` in `input` after at most [`MAX_PAD`] bytes of padding in all
/// (`skipped` of them consumed before): drops the padding before it, or all but the last
/// `marker.len() - 1` bytes when it is not there yet; `error` once the padding's bound is
/// passed without it.
fn search(
    input: &mut BytesMut,
    marker: &[u8],
    skipped: usize,
    error: MseError,
) -> Result<Found, MseError> {
    if let Some(at) = input.windows(marker.len()).position(|w| w == marker) {
        if skipped + at > MAX_PAD {
            return Err(error);
        }
        input.advance(at);
        return Ok(Found::At);
    }
    let droppable = input.len().saturating_sub(marker.len() - 1);
    let skipped = skipped + droppable;
    if skipped > MAX_PAD {
        return Err(error);
    }
    input.advance(droppable);
    Ok(Found::Not(skipped))
}

/// The next `len` bytes of `input`, decrypted with `keys.recv`, once they are all in.
fn take_decrypted(input: &mut BytesMut, keys: &mut Keys, len: usize) -> Option<BytesMut> {
    if input.len() < len {
        return None;
    }
    let mut bytes = input.split_to(len);
    keys.recv.apply(&mut bytes);
    Some(bytes)
}

/// A padding length from the wire, checked.
fn pad_len(len: u16) -> Result<usize, MseError> {
    if usize::from(len) > MAX_PAD {
        return Err(MseError::PadTooLong(len));
    }
    Ok(usize::from(len))
}

fn prime() -> BigUint {
    BigUint::from_bytes_be(&PRIME)
}

/// `n` as 96 bytes big-endian (left-padded with zeros).
fn to_key_bytes(n: &BigUint) -> [u8; KEY_LEN] {
    let bytes = n.to_bytes_be();
    let mut out = [0u8; KEY_LEN];
    let len = bytes.len().min(KEY_LEN);
    out[KEY_LEN - len..].copy_from_slice(&bytes[bytes.len() - len..]);
    out
}

/// SHA-1 of the concatenation of `parts`.
fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

fn xor(a: &[u8; 20], b: &[u8; 20]) -> [u8; 20] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO_HASH: [u8; 20] = [7; 20];

    fn initiator_keyed(
        private: [u8; 20],
        info_hash: [u8; 20],
        provide: u32,
        ia: &[u8],
    ) -> Handshake {
        let mut h = Handshake::start_with(private, &[]);
        h.state = State::AwaitYb {
            info_hash,
            provide,
            initial_payload: Bytes::copy_from_slice(ia),
        };
        h
    }

    fn receiver_keyed(private: [u8; 20], torrents: Served, allow: u32) -> Handshake {
        let mut h = Handshake::start_with(private, &[]);
        h.pending = std::mem::take(&mut h.out);
        h.state = State::AwaitYa { torrents, allow };
        h
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Feeds `bytes` to `h` in chunks of random size (1–`max_chunk`), as a socket would
    /// deliver them; returns what completed it, if anything, and what was left over.
    fn feed_in_chunks(
        h: &mut Handshake,
        bytes: &[u8],
        max_chunk: usize,
        rng: &mut fastrand::Rng,
    ) -> Result<(Option<Established>, BytesMut), MseError> {
        let mut input = BytesMut::new();
        let mut at = 0;
        while at < bytes.len() {
            let n = rng.usize(1..=max_chunk).min(bytes.len() - at);
            input.extend_from_slice(&bytes[at..at + n]);
            at += n;
            if let Some(done) = h.feed(&mut input)? {
                input.extend_from_slice(&bytes[at..]);
                return Ok((Some(done), input));
            }
        }
        Ok((None, input))
    }

    #[test]
    fn known_answer_vector_from_an_independent_implementation() {
        // core/tests/vectors/mse_vector.py computes the same exchange with Python's `pow`,
        // `hashlib` and an RC4 written out: private keys 01..14 and 65..78, SKEY c8..db,
        // crypto_provide 3, IA the BitTorrent protocol string, no padding.
        let private_a: [u8; 20] = std::array::from_fn(|i| i as u8 + 1);
        let private_b: [u8; 20] = std::array::from_fn(|i| i as u8 + 101);
        let skey: [u8; 20] = std::array::from_fn(|i| i as u8 + 200);
        let ia = b"\x13BitTorrent protocol";
        let mut a = initiator_keyed(private_a, skey, CRYPTO_PLAINTEXT | CRYPTO_RC4, ia);
        let mut b = receiver_keyed(
            private_b,
            Served::new([[1; 20], skey]),
            CRYPTO_PLAINTEXT | CRYPTO_RC4,
        );
        let ya = a.take_output();
        assert_eq!(
            hex(&hash(&[&ya])),
            "9fa4c50e31ec4635ddb9ef30405e9db341313ed2"
        );
        assert!(b.take_output().is_empty(), "the receiver waits for Ya");
        assert!(b.feed(&mut BytesMut::from(&ya[..])).expect("Ya").is_none());
        let yb = b.take_output();
        assert_eq!(
            hex(&hash(&[&yb])),
            "a7c7be03f396035b04f7cf7d1f68f4cd46e9986d"
        );
        assert!(a.feed(&mut BytesMut::from(&yb[..])).expect("Yb").is_none());
        let step3 = a.take_output();
        assert_eq!(
            hex(&step3),
            "78fffb0f23055a793ff7609f359e04e383ec350560aef34caf7a6c843c5fd96a73da28c4\
             4e040a270dc4355ae7cc67707ec66051e854159b7787fc9f98d413bf6e77232076d3b7ac32b5127c"
        );
        let mut at_b = b
            .feed(&mut BytesMut::from(&step3[..]))
            .expect("step 3")
            .expect("the receiver is done");
        assert_eq!(at_b.crypto, Crypto::Rc4);
        assert_eq!(at_b.info_hash, skey);
        assert_eq!(&at_b.initial_payload[..], ia);
        let step4 = b.take_output();
        assert_eq!(hex(&step4), "a99e381373e3643a172941456266");
        let mut at_a = a
            .feed(&mut BytesMut::from(&step4[..]))
            .expect("step 4")
            .expect("the initiator is done");
        assert_eq!(at_a.crypto, Crypto::Rc4);
        let mut from_a = *b"hello from A";
        at_a.send.as_mut().expect("rc4").apply(&mut from_a);
        assert_eq!(hex(&from_a), "c2c11fa94d4e330c136a06cf");
        at_b.recv.as_mut().expect("rc4").apply(&mut from_a);
        assert_eq!(&from_a, b"hello from A");
        let mut from_b = *b"hello from B";
        at_b.send.as_mut().expect("rc4").apply(&mut from_b);
        assert_eq!(hex(&from_b), "5840681b74385d6b743a2d57");
    }

    #[test]
    fn both_roles_complete_for_every_crypto_select_whatever_the_chunking() {
        // (initiator offers, receiver allows, method chosen): RC4 whenever both allow it.
        let cases = [
            (
                CRYPTO_PLAINTEXT | CRYPTO_RC4,
                CRYPTO_PLAINTEXT | CRYPTO_RC4,
                Crypto::Rc4,
            ),
            (CRYPTO_RC4, CRYPTO_PLAINTEXT | CRYPTO_RC4, Crypto::Rc4),
            (
                CRYPTO_PLAINTEXT | CRYPTO_RC4,
                CRYPTO_PLAINTEXT,
                Crypto::Plaintext,
            ),
            (
                CRYPTO_PLAINTEXT,
                CRYPTO_PLAINTEXT | CRYPTO_RC4,
                Crypto::Plaintext,
            ),
        ];
        let mut rng = fastrand::Rng::with_seed(20);
        for (round, &(provide, allow, expected)) in cases.iter().cycle().take(40).enumerate() {
            let max_chunk = [1, 7, 64, 2000][round % 4];
            let hashes: Vec<[u8; 20]> = (0..50u8).map(|i| [i; 20]).collect();
            let wanted = hashes[rng.usize(..hashes.len())];
            let torrents = Served::new(hashes);
            let ia = b"\x13BitTorrent protocol and the rest of a handshake";
            let mut a = Handshake::initiator(wanted, provide, ia, &mut rng);
            let mut b = Handshake::receiver(torrents, allow, &mut rng);
            let (done, _) =
                feed_in_chunks(&mut b, &a.take_output(), max_chunk, &mut rng).expect("Ya and PadA");
            assert!(done.is_none());
            let (done, _) =
                feed_in_chunks(&mut a, &b.take_output(), max_chunk, &mut rng).expect("Yb and PadB");
            assert!(done.is_none());
            let (at_b, rest) =
                feed_in_chunks(&mut b, &a.take_output(), max_chunk, &mut rng).expect("step 3");
            let mut at_b = at_b.expect("the receiver is done");
            assert!(rest.is_empty(), "round {round}: nothing follows step 3");
            assert_eq!(at_b.crypto, expected, "round {round}");
            assert_eq!(at_b.info_hash, wanted);
            assert_eq!(&at_b.initial_payload[..], ia);
            // The receiver's payload follows step 4 at once, in the chosen method.
            let mut wire = b.take_output().to_vec();
            let mut payload = b"the receiver's handshake".to_vec();
            if let Some(send) = at_b.send.as_mut() {
                send.apply(&mut payload);
            }
            wire.extend_from_slice(&payload);
            let (at_a, mut rest) =
                feed_in_chunks(&mut a, &wire, max_chunk, &mut rng).expect("step 4");
            let mut at_a = at_a.expect("the initiator is done");
            assert_eq!(at_a.crypto, expected, "round {round}");
            assert_eq!(at_a.send.is_some(), expected == Crypto::Rc4);
            if let Some(recv) = at_a.recv.as_mut() {
                recv.apply(&mut rest);
            }
            assert_eq!(&rest[..], b"the receiver's handshake", "round {round}");
            assert!(a.is_finished() && b.is_finished());
        }
    }

    /// Runs a handshake until the receiver has answered: (initiator, receiver).
    fn to_step_three(
        provide: u32,
        allow: u32,
        torrents: Served,
    ) -> Result<Option<Established>, MseError> {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut a = Handshake::initiator(INFO_HASH, provide, b"", &mut rng);
        let mut b = Handshake::receiver(torrents, allow, &mut rng);
        b.feed(&mut BytesMut::from(&a.take_output()[..]))?;
        a.feed(&mut BytesMut::from(&b.take_output()[..]))?;
        b.feed(&mut BytesMut::from(&a.take_output()[..]))
    }

    #[test]
    fn a_receiver_preferring_plaintext_takes_it_only_when_offered() {
        let select = |provide: u32, allow: u32| {
            let mut rng = fastrand::Rng::with_seed(5);
            let mut a = Handshake::initiator(INFO_HASH, provide, b"", &mut rng);
            let mut b = Handshake::receiver(Served::new([INFO_HASH]), allow, &mut rng)
                .preferring(Crypto::Plaintext);
            b.feed(&mut BytesMut::from(&a.take_output()[..]))
                .expect("Ya");
            a.feed(&mut BytesMut::from(&b.take_output()[..]))
                .expect("Yb");
            let done = b
                .feed(&mut BytesMut::from(&a.take_output()[..]))
                .expect("step 3")
                .expect("done");
            done.crypto
        };
        let both = CRYPTO_RC4 | CRYPTO_PLAINTEXT;
        assert_eq!(select(both, both), Crypto::Plaintext);
        assert_eq!(select(CRYPTO_RC4, both), Crypto::Rc4);
        assert_eq!(select(both, CRYPTO_RC4), Crypto::Rc4);
    }

    #[test]
    fn refusals_name_the_reason() {
        assert_eq!(
            to_step_three(CRYPTO_PLAINTEXT, CRYPTO_RC4, Served::new([INFO_HASH])).err(),
            Some(MseError::NoCommonMethod {
                offered: CRYPTO_PLAINTEXT,
                allowed: CRYPTO_RC4
            })
        );
        assert_eq!(
            to_step_three(CRYPTO_RC4, CRYPTO_RC4, Served::new([[9; 20]])).err(),
            Some(MseError::UnknownTorrent)
        );
        assert!(to_step_three(CRYPTO_RC4, CRYPTO_RC4, Served::new([INFO_HASH])).is_ok());
        let text = MseError::NoCommonMethod {
            offered: 1,
            allowed: 2,
        }
        .to_string();
        assert!(text.contains("0x1") && text.contains("0x2"), "{text}");
    }

    #[test]
    fn padding_past_its_bound_and_bad_keys_are_refused() {
        let mut rng = fastrand::Rng::with_seed(4);
        // A receiver given a valid Ya and then 600 bytes without req1.
        let mut a = Handshake::initiator(INFO_HASH, CRYPTO_RC4, b"", &mut rng);
        let ya = a.take_output();
        let mut b = Handshake::receiver(Served::new([INFO_HASH]), CRYPTO_RC4, &mut rng);
        let mut input = BytesMut::from(&ya[..KEY_LEN]);
        input.extend_from_slice(&[0xAA; 600]);
        assert_eq!(b.feed(&mut input).err(), Some(MseError::NoRequest));
        assert!(b.is_finished());
        // An initiator given a valid Yb and then 600 bytes without the encrypted VC.
        let mut b = Handshake::receiver(Served::new([INFO_HASH]), CRYPTO_RC4, &mut rng);
        b.feed(&mut BytesMut::from(&ya[..])).expect("Ya");
        let yb = b.take_output();
        let mut input = BytesMut::from(&yb[..KEY_LEN]);
        input.extend_from_slice(&[0x55; 600]);
        assert_eq!(a.feed(&mut input).err(), Some(MseError::NoVerification));
        // Public keys that would make the secret guessable.
        let p_minus_1 = to_key_bytes(&(prime() - 1u32));
        for key in [
            [0u8; KEY_LEN],
            to_key_bytes(&BigUint::from(1u32)),
            p_minus_1,
            PRIME,
        ] {
            let mut b = Handshake::receiver(Served::new([INFO_HASH]), CRYPTO_RC4, &mut rng);
            assert_eq!(
                b.feed(&mut BytesMut::from(&key[..])).err(),
                Some(MseError::BadPublicKey)
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_end_in_an_answer_or_a_wait() {
        let mut rng = fastrand::Rng::with_seed(5);
        for case in 0..300 {
            let len = rng.usize(0..1500);
            let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            let mut h = if case % 2 == 0 {
                Handshake::receiver(
                    Served::new([INFO_HASH]),
                    CRYPTO_PLAINTEXT | CRYPTO_RC4,
                    &mut rng,
                )
            } else {
                Handshake::initiator(INFO_HASH, CRYPTO_RC4, b"x", &mut rng)
            };
            let _ = h.take_output();
            // Random bytes never pass the hash search, so no case completes.
            match feed_in_chunks(&mut h, &bytes, 97, &mut rng) {
                Ok((done, _)) => assert!(done.is_none(), "case {case}"),
                Err(e) => assert!(h.is_finished(), "case {case}: {e}"),
            }
        }
    }

    #[test]
    fn a_plaintext_handshake_is_told_from_a_public_key() {
        assert_eq!(is_plaintext_handshake(b""), None);
        assert_eq!(is_plaintext_handshake(b"\x13BitTorr"), None);
        assert_eq!(
            is_plaintext_handshake(b"\x13BitTorrent protocol\0\0"),
            Some(true)
        );
        assert_eq!(
            is_plaintext_handshake(b"\x13BitTorrent protocoX"),
            Some(false)
        );
        assert_eq!(is_plaintext_handshake(&[0xA0, 0x13]), Some(false));
    }
}
