//! Write tokens: proof that an `announce_peer` comes from an address that recently asked us
//! `get_peers`, so nobody can register a third party's address in a swarm.
//!
//! A token is the first [`TOKEN_LEN`] bytes of SHA-1(secret ‖ requester's IP). The secret
//! rotates every period given to [`TokenSecrets::new`] (5 minutes by default, as BEP 5
//! suggests) and the previous one stays valid, so a token lives between one and two rotation
//! periods. Secrets come from the injected RNG; nothing is stored per requester.

use std::net::IpAddr;
use std::time::Duration;

use sha1::{Digest, Sha1};

use crate::time::Instant;

/// Bytes in a token we hand out: enough that guessing one is hopeless within its lifetime,
/// short enough to keep `get_peers` answers small.
pub const TOKEN_LEN: usize = 8;

/// The current and previous token secrets.
#[derive(Clone, Debug)]
pub struct TokenSecrets {
    current: [u8; 16],
    previous: [u8; 16],
    rotated_at: Instant,
    rotation: Duration,
}

impl TokenSecrets {
    /// Fresh secrets drawn from `rng`, rotating every `rotation`.
    pub fn new(rng: &mut fastrand::Rng, rotation: Duration, now: Instant) -> Self {
        let mut current = [0u8; 16];
        let mut previous = [0u8; 16];
        rng.fill(&mut current);
        rng.fill(&mut previous);
        TokenSecrets {
            current,
            previous,
            rotated_at: now,
            rotation,
        }
    }

    /// When the secret next rotates.
    pub fn next_rotation(&self) -> Instant {
        self.rotated_at + self.rotation
    }

    /// Rotates as many times as the elapsed time calls for (at most twice matters: after
    /// two rotations neither old secret survives).
    pub fn maybe_rotate(&mut self, rng: &mut fastrand::Rng, now: Instant) {
        let mut rotations = 0;
        while now >= self.next_rotation() && rotations < 2 {
            self.previous = self.current;
            rng.fill(&mut self.current);
            self.rotated_at = self.next_rotation();
            rotations += 1;
        }
        if now >= self.next_rotation() {
            // Time jumped far ahead: restart the period from now.
            self.rotated_at = now;
        }
    }

    /// The token for requests from `ip`.
    pub fn token(&self, ip: IpAddr) -> [u8; TOKEN_LEN] {
        make(&self.current, ip)
    }

    /// Whether `token` was issued to `ip` under the current or the previous secret.
    pub fn validate(&self, ip: IpAddr, token: &[u8]) -> bool {
        token == make(&self.current, ip) || token == make(&self.previous, ip)
    }
}

fn make(secret: &[u8; 16], ip: IpAddr) -> [u8; TOKEN_LEN] {
    let mut h = Sha1::new();
    h.update(secret);
    match ip {
        IpAddr::V4(v4) => h.update(v4.octets()),
        IpAddr::V6(v6) => h.update(v6.octets()),
    }
    let digest = h.finalize();
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(&digest[..TOKEN_LEN]);
    out
}
