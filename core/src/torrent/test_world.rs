//! A test-only stand-in for the session around one torrent: everything a [`Ctx`] borrows
//! (outbox, RNG, settings, own addresses, closed connections, write budget), owned by the
//! test, so `torrent/` unit tests call torrent methods without a `Session`.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::{Ctx, WriteBudget};
use crate::vocab::outbox::Outbox;
use crate::vocab::{Action, ConnId, SessionConfig};

/// Everything a torrent call needs from a session.
pub(super) struct World {
    pub(super) config: SessionConfig,
    pub(super) out: Outbox,
    pub(super) rng: fastrand::Rng,
    pub(super) own: BTreeSet<SocketAddr>,
    pub(super) closed: Vec<ConnId>,
    pub(super) writes: WriteBudget,
    pub(super) limits: crate::limits::SessionLimits,
}

impl World {
    /// Default settings, RNG seeded with 1.
    pub(super) fn new() -> Self {
        Self::with(SessionConfig::default(), 1)
    }

    /// These settings, RNG seeded with `seed`.
    pub(super) fn with(config: SessionConfig, seed: u64) -> Self {
        let writes = WriteBudget::new(config.max_unwritten_bytes);
        World {
            config,
            out: Outbox::default(),
            rng: fastrand::Rng::with_seed(seed),
            own: BTreeSet::new(),
            closed: Vec::new(),
            writes,
            limits: crate::limits::SessionLimits::default(),
        }
    }

    /// The context a torrent method takes.
    pub(super) fn ctx(&mut self) -> Ctx<'_> {
        Ctx {
            out: &mut self.out,
            rng: &mut self.rng,
            config: &self.config,
            own_addrs: &self.own,
            closed: &mut self.closed,
            writes: &mut self.writes,
            limits: &mut self.limits,
        }
    }

    /// Every action emitted since the last call.
    pub(super) fn drain(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.out.pop()).collect()
    }
}
