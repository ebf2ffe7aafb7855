//! The `mse` target: the MSE/PE handshake (`unchoke_core::mse`) on hostile and damaged
//! streams.
//!
//! The first byte picks a mode; the next eight seed the handshakes' RNG.
//! - **Mode 0 / 1**: the rest is fed, in chunks the input sizes, to a receiver (0) or to
//!   an initiator after its first output (1).
//! - **Mode 2**: a real exchange between an initiator and a receiver, with the methods,
//!   the initial payload's length, the chunk size and one byte to flip (or none) in either
//!   direction taken from the input.
//!
//! Invariants checked on every input:
//! 1. Nothing panics; a failed handshake is finished, and feeding it more consumes nothing
//!    and produces nothing.
//! 2. A handshake never holds more than it was given: its output before completion is at
//!    most a public key, 512 bytes of padding and one step's fixed part plus the initial
//!    payload.
//! 3. Random bytes (modes 0 and 1) never complete a handshake (they would have to contain
//!    `HASH('req1', S)` or the encrypted `VC`).
//! 4. An undamaged exchange (mode 2, no flip) completes on both sides with the same
//!    method — RC4 when both allow it — the same torrent, the receiver sees the initiator's
//!    initial payload, and a payload sent each way after it arrives intact. A damaged one
//!    ends in an error or a wait on at least one side, or completes with a method both
//!    allow.

use bytes::BytesMut;
use unchoke_core::mse::{
    CRYPTO_PLAINTEXT, CRYPTO_RC4, Crypto, Established, Handshake, MseError, Served,
};

const INFO_HASH: [u8; 20] = [0x42; 20];
/// The most a handshake may have produced before completing (invariant 2).
const MAX_OUTPUT: usize = 96 + 512 + 20 + 20 + 16 + 65_535;

/// Runs every `mse` invariant on `data`. Panics if one fails.
pub fn mse(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (seed, rest) = rest.split_at(rest.len().min(8));
    let mut seed_bytes = [0u8; 8];
    seed_bytes[..seed.len()].copy_from_slice(seed);
    let mut rng = fastrand::Rng::with_seed(u64::from_le_bytes(seed_bytes));
    match mode % 3 {
        0 | 1 => raw(mode % 3 == 0, rest, &mut rng),
        _ => exchange(rest, &mut rng),
    }
}

/// Modes 0 and 1: hostile bytes into one side.
fn raw(receiver: bool, data: &[u8], rng: &mut fastrand::Rng) {
    let mut h = if receiver {
        Handshake::receiver(
            Served::new([INFO_HASH, [1; 20]]),
            CRYPTO_PLAINTEXT | CRYPTO_RC4,
            rng,
        )
    } else {
        Handshake::initiator(INFO_HASH, CRYPTO_PLAINTEXT | CRYPTO_RC4, b"ia", rng)
    };
    let mut produced = h.take_output().len();
    let chunk = data.first().map_or(1, |&b| usize::from(b) + 1);
    let mut input = BytesMut::new();
    for piece in data.chunks(chunk) {
        input.extend_from_slice(piece);
        match h.feed(&mut input) {
            Ok(done) => assert!(done.is_none(), "random bytes completed a handshake"),
            Err(_) => {
                assert_finished(&mut h);
                return;
            }
        }
        produced += h.take_output().len();
        assert!(produced <= MAX_OUTPUT, "{produced} bytes produced");
    }
}

/// Invariant 1 for a failed handshake.
fn assert_finished(h: &mut Handshake) {
    assert!(h.is_finished(), "a failed handshake is not finished");
    let mut more = BytesMut::from(&[0u8; 700][..]);
    assert!(
        matches!(h.feed(&mut more), Ok(None)),
        "a finished handshake answered"
    );
    assert_eq!(more.len(), 700, "a finished handshake consumed input");
    assert!(
        h.take_output().is_empty(),
        "a finished handshake produced output"
    );
}

/// Mode 2: a real exchange, maybe damaged.
fn exchange(data: &[u8], rng: &mut fastrand::Rng) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let methods = |b: u8| match b % 3 {
        0 => CRYPTO_PLAINTEXT,
        1 => CRYPTO_RC4,
        _ => CRYPTO_PLAINTEXT | CRYPTO_RC4,
    };
    let (provide, allow) = (methods(byte(0)), methods(byte(1)));
    let ia: Vec<u8> = (0..usize::from(byte(2))).map(|i| i as u8).collect();
    let chunk = usize::from(byte(3)) + 1;
    // A flip: its direction (A→B or B→A) and position in that direction's stream; none
    // when the position byte is zero.
    let flip = (byte(4) != 0).then(|| (byte(5) % 2 == 0, u16::from_le_bytes([byte(6), byte(7)])));
    let mut a = Handshake::initiator(INFO_HASH, provide, &ia, rng);
    let mut b = Handshake::receiver(Served::new([[1; 20], INFO_HASH]), allow, rng);
    let mut to_b = Link::default();
    let mut to_a = Link::default();
    let (mut at_a, mut at_b): (Option<Established>, Option<Established>) = (None, None);
    let (mut failed_a, mut failed_b) = (None::<MseError>, None::<MseError>);
    // Each round moves what each side produced to the other, a chunk at a time, until a
    // round moves nothing: a side fed no new bytes cannot go on. A handshake is under
    // 1,500 bytes each way, so 4,000 rounds of at least a byte each are enough.
    for _ in 0..4_000 {
        let a_waits = at_a.is_none() && failed_a.is_none();
        let b_waits = at_b.is_none() && failed_b.is_none();
        let mut moved = false;
        if a_waits {
            moved |= to_b.send(&a.take_output(), flip.filter(|f| f.0));
        }
        if b_waits {
            moved |= to_a.send(&b.take_output(), flip.filter(|f| !f.0));
        }
        if b_waits && !to_b.pending.is_empty() {
            moved = true;
            match to_b.deliver(&mut b, chunk) {
                Ok(done) => at_b = done,
                Err(e) => failed_b = Some(e),
            }
            to_a.send(&b.take_output(), flip.filter(|f| !f.0));
        }
        if a_waits && !to_a.pending.is_empty() {
            moved = true;
            match to_a.deliver(&mut a, chunk) {
                Ok(done) => at_a = done,
                Err(e) => failed_a = Some(e),
            }
        }
        if !moved {
            break;
        }
    }
    if failed_a.is_some() {
        assert_finished(&mut a);
    }
    if failed_b.is_some() {
        assert_finished(&mut b);
    }
    for done in [&at_a, &at_b].into_iter().flatten() {
        assert!(
            done.crypto.bit() & provide & allow != 0,
            "{:?} chosen, offered {provide:#x}, allowed {allow:#x}",
            done.crypto
        );
    }
    if flip.is_some() {
        return;
    }
    let common = provide & allow;
    if common == 0 {
        assert!(
            matches!(failed_b, Some(MseError::NoCommonMethod { .. })),
            "no common method, yet the receiver says {failed_b:?}"
        );
        return;
    }
    let (Some(mut at_a), Some(mut at_b)) = (at_a, at_b) else {
        panic!("an undamaged exchange did not complete: {failed_a:?} {failed_b:?}");
    };
    let expected = if common & CRYPTO_RC4 != 0 {
        Crypto::Rc4
    } else {
        Crypto::Plaintext
    };
    assert_eq!((at_a.crypto, at_b.crypto), (expected, expected));
    assert_eq!((at_a.info_hash, at_b.info_hash), (INFO_HASH, INFO_HASH));
    assert_eq!(&at_b.initial_payload[..], &ia[..]);
    // The payload streams, each way, after what was left over.
    payload_arrives(&mut at_a, &mut at_b, &mut to_b);
    payload_arrives(&mut at_b, &mut at_a, &mut to_a);
}

/// A payload sent by `from` after its handshake arrives intact at `to` over `link`.
fn payload_arrives(from: &mut Established, to: &mut Established, link: &mut Link) {
    let mut payload = b"payload after the handshake".to_vec();
    if let Some(send) = from.send.as_mut() {
        send.apply(&mut payload);
    }
    let mut wire = link.pending.split().to_vec();
    assert!(wire.is_empty(), "bytes past the handshake: {}", wire.len());
    wire.extend_from_slice(&payload);
    if let Some(recv) = to.recv.as_mut() {
        recv.apply(&mut wire);
    }
    assert_eq!(&wire[..], b"payload after the handshake");
}

/// One direction's bytes in flight, flipped at one position if asked.
#[derive(Default)]
struct Link {
    /// Bytes sent and not delivered yet.
    pending: BytesMut,
    /// Bytes that entered this link so far (for the flip's position).
    sent: usize,
    /// Bytes the receiving handshake has not consumed yet.
    held: BytesMut,
}

impl Link {
    /// Puts `bytes` in flight; whether there were any.
    fn send(&mut self, bytes: &[u8], flip: Option<(bool, u16)>) -> bool {
        let start = self.pending.len();
        self.pending.extend_from_slice(bytes);
        if let Some((_, at)) = flip {
            let at = usize::from(at);
            if (self.sent..self.sent + bytes.len()).contains(&at) {
                self.pending[start + at - self.sent] ^= 0x01;
            }
        }
        self.sent += bytes.len();
        !bytes.is_empty()
    }

    /// Moves up to `chunk` bytes into `h` and feeds it.
    fn deliver(
        &mut self,
        h: &mut Handshake,
        chunk: usize,
    ) -> Result<Option<Established>, MseError> {
        let n = chunk.min(self.pending.len());
        self.held.extend_from_slice(&self.pending.split_to(n));
        let done = h.feed(&mut self.held)?;
        if done.is_some() {
            // What the handshake left is payload stream: keep it at the front.
            let mut rest = self.held.split();
            rest.extend_from_slice(&self.pending);
            self.pending = rest;
        }
        Ok(done)
    }
}
