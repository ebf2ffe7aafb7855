//! A connection's encryption layer (MSE/PE, [`crate::mse`]), between the socket's bytes
//! and the BitTorrent handshake: which handshake a connection speaks ([`Stage`]), the
//! MSE handshake's progress, and, once a handshake settled on RC4, the decryption of what
//! arrives. The send side is the outbox's (see `vocab/outbox.rs`): bytes are encrypted as
//! they are queued.
//!
//! **Receive buffer rule.** The driver's receive buffer belongs to the connection: whatever
//! [`super::Session::handle_bytes`] leaves in it comes back at its front on the next call,
//! with new bytes behind. For an RC4 connection the session decrypts in place, so the
//! bytes it leaves are already plaintext: [`Decryptor::decrypted`] counts them, and only
//! what lies past them is decrypted on the next call. The piece payloads thus stay in the
//! receive buffer they arrived in (no copy), decrypted where they lie.
//!
//! **Policy** ([`EncryptionPolicy`]): an outbound dial speaks MSE unless the policy is
//! `disable` or the address is marked for a plaintext retry (it refused an encrypted
//! handshake before, under `prefer`); an inbound connection is told apart by its first
//! bytes (a plaintext handshake begins `\x13BitTorrent protocol`, an MSE one with a random
//! public key) and refused when the policy does not allow what it speaks.

use std::collections::BTreeMap;

use bytes::BytesMut;

use super::{ConnId, DisconnectReason, EncryptionPolicy, PeerGone};
use crate::mse::{self, Cipher};

/// Which handshake a connection is in.
#[derive(Debug)]
pub(super) enum Stage {
    /// Inbound and nothing told yet: plaintext or MSE is decided by its first bytes.
    Sniffing,
    /// The MSE handshake, either role.
    Mse(Box<mse::Handshake>),
    /// The BitTorrent handshake (in plaintext, or inside the stream MSE set up).
    BitTorrent,
}

/// What an outbound connection's failure before its handshake completed means for the
/// address: a plaintext retry or an ordinary failure.
pub(super) fn retries_in_plaintext(
    policy: EncryptionPolicy,
    stage: &Stage,
    reason: Option<&DisconnectReason>,
    gone: Option<&PeerGone>,
) -> bool {
    if policy != EncryptionPolicy::Prefer || !matches!(stage, Stage::Mse(_)) {
        return false;
    }
    // The peer hung up on our public key, answered something that is not MSE, or said
    // nothing: all what a peer that does not speak MSE does. Our own reasons (a pause, a
    // removal, the session closing, a full torrent) say nothing about the peer.
    matches!(
        reason,
        Some(DisconnectReason::Encryption(_) | DisconnectReason::HandshakeTimeout)
    ) || matches!(
        gone,
        Some(PeerGone::HungUp | PeerGone::HungUpOnEncryption | PeerGone::ReadFailed(_))
    )
}

/// What decrypts an RC4 connection's receive buffer.
#[derive(Debug)]
pub(super) struct Decryptor {
    cipher: Cipher,
    /// Bytes at the front of the receive buffer that are already plaintext (see the
    /// module's receive buffer rule).
    decrypted: usize,
}

/// The decryptors of every RC4 connection.
#[derive(Debug, Default)]
pub(super) struct Decryptors(BTreeMap<ConnId, Decryptor>);

impl Decryptors {
    /// `conn`'s stream is RC4 from the front of `buf` on: decrypts it all.
    pub(super) fn install(&mut self, conn: ConnId, mut cipher: Cipher, buf: &mut BytesMut) {
        cipher.apply(buf);
        self.0.insert(
            conn,
            Decryptor {
                cipher,
                decrypted: buf.len(),
            },
        );
    }

    /// Decrypts what arrived on `conn` since the last call (nothing for a connection that
    /// is not RC4).
    pub(super) fn decrypt_new(&mut self, conn: ConnId, buf: &mut BytesMut) {
        if let Some(d) = self.0.get_mut(&conn) {
            // A driver that (against the rule) handed in a shorter buffer only loses the
            // stream's sync, which the peer's framing then ends: never a panic.
            let from = d.decrypted.min(buf.len());
            d.cipher.apply(&mut buf[from..]);
            d.decrypted = buf.len();
        }
    }

    /// The session consumed what it could of `conn`'s buffer: what is left is plaintext.
    pub(super) fn left(&mut self, conn: ConnId, buf: &BytesMut) {
        if let Some(d) = self.0.get_mut(&conn) {
            d.decrypted = buf.len();
        }
    }

    /// Whether `conn` is an RC4 connection.
    pub(super) fn contains(&self, conn: ConnId) -> bool {
        self.0.contains_key(&conn)
    }

    /// `conn` is gone.
    pub(super) fn remove(&mut self, conn: ConnId) {
        self.0.remove(&conn);
    }
}
