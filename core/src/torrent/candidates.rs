//! The addresses a torrent may dial ([`Candidates`]): a hash map by address that also
//! counts its entries per [`PeerSource`] and carries a version.
//!
//! Why a hash map: every address of every PEX message is looked up here, and at N = 1,000
//! in the simulator (lists at their cap of 1,000) those B-tree searches over `SocketAddr`
//! keys were 4 % of the run. Nothing depends on the map's order: the walks that choose
//! (`maybe_connect`, the victim of a full list) order what they find by a total key of
//! their own, and the rest count. The hasher is seeded per session
//! ([`Candidates::with_seed`], from the session's seed, not its RNG), so a peer cannot
//! pick addresses that collide.
//!
//! Why the counts: when the list is full, a newcomer gets in only in the place of a
//! candidate of a lower rank that is not being dialled. Every PEX message that met a full
//! list walked all of it (up to `max_candidates`) to learn whether anyone could be
//! displaced, usually to find no one: at N = 300 in the simulator that walk was the
//! largest B-tree cost of the run. With the counts the answer costs a sum over six ranks
//! and a look at the few addresses being dialled ([`Candidates::displaceable`]).
//!
//! It also carries a **version**, raised by every change to the list (an entry added,
//! removed or altered), so a caller can tell that nothing changed since it last looked:
//! `maybe_connect` uses it to skip walking a list in which it found nothing to dial.
//!
//! Invariants: `per_source[r]` is the number of entries whose source has rank `r`; the
//! version differs from any earlier one whenever the entries differ. Every way to change
//! an entry keeps both: inserts and removals count and raise the version, and the only
//! mutable access to an entry is a [`CandidateMut`], which on drop re-counts a changed
//! source and raises the version if the entry changed at all.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use super::peer_set::Candidate;
use crate::vocab::PeerSource;

/// How many ranks [`PeerSource::rank`] has.
const RANKS: usize = 6;

/// The torrent's candidate addresses, by address, counted per source (module docs).
#[derive(Debug, Default)]
pub(super) struct Candidates {
    map: HashMap<SocketAddr, Candidate, FixedState>,
    per_source: [usize; RANKS],
    version: u64,
}

fn rank(source: PeerSource) -> usize {
    usize::from(source.rank())
}

impl Candidates {
    /// An empty list whose hasher is seeded with `seed` (module docs).
    pub(super) fn with_seed(seed: u64) -> Self {
        Candidates {
            map: HashMap::with_hasher(FixedState::with_seed(seed)),
            ..Candidates::default()
        }
    }

    /// How many addresses are kept.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(super) fn contains_key(&self, addr: &SocketAddr) -> bool {
        self.map.contains_key(addr)
    }

    pub(super) fn get(&self, addr: &SocketAddr) -> Option<&Candidate> {
        self.map.get(addr)
    }

    /// Changes whenever the entries change (module docs).
    pub(super) fn version(&self) -> u64 {
        self.version
    }

    /// Mutable access to one entry (counted again, and the version raised if it changed,
    /// on drop).
    pub(super) fn get_mut(&mut self, addr: &SocketAddr) -> Option<CandidateMut<'_>> {
        let candidate = self.map.get_mut(addr)?;
        let was = *candidate;
        Some(CandidateMut {
            candidate,
            per_source: &mut self.per_source,
            version: &mut self.version,
            was,
        })
    }

    /// Adds `addr` (replacing an entry already there).
    pub(super) fn insert(&mut self, addr: SocketAddr, candidate: Candidate) {
        self.version += 1;
        self.per_source[rank(candidate.source)] += 1;
        if let Some(old) = self.map.insert(addr, candidate) {
            self.per_source[rank(old.source)] -= 1;
        }
    }

    /// Takes `addr` out, if it is here.
    pub(super) fn remove(&mut self, addr: &SocketAddr) -> Option<Candidate> {
        let old = self.map.remove(addr)?;
        self.version += 1;
        self.per_source[rank(old.source)] -= 1;
        Some(old)
    }

    /// Keeps only the entries `keep` says yes to.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&SocketAddr, &Candidate) -> bool) {
        let per_source = &mut self.per_source;
        let version = &mut self.version;
        self.map.retain(|a, c| {
            let kept = keep(a, c);
            if !kept {
                per_source[rank(c.source)] -= 1;
                *version += 1;
            }
            kept
        });
    }

    /// The entries, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&SocketAddr, &Candidate)> {
        self.map.iter()
    }

    /// The addresses, in no particular order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &SocketAddr> {
        self.map.keys()
    }

    /// How many entries a newcomer from `source` may displace: those of a lower rank that
    /// are not being dialled (`connecting`, a few addresses, each also an entry here).
    /// Equal to walking every entry and counting, without the walk.
    pub(super) fn displaceable(
        &self,
        source: PeerSource,
        connecting: &BTreeSet<SocketAddr>,
    ) -> usize {
        let below: usize = self.per_source[..rank(source)].iter().sum();
        let dialled_below = connecting
            .iter()
            .filter(|a| self.map.get(*a).is_some_and(|c| c.source < source))
            .count();
        below - dialled_below
    }
}

/// For tests: the entry of an address that must be there.
#[cfg(test)]
impl std::ops::Index<&SocketAddr> for Candidates {
    type Output = Candidate;
    fn index(&self, addr: &SocketAddr) -> &Candidate {
        &self.map[addr]
    }
}

#[cfg(test)]
impl Candidates {
    /// For tests: the entries without their addresses, in no particular order.
    pub(super) fn values(&self) -> impl Iterator<Item = &Candidate> {
        self.map.values()
    }
}

/// One entry of [`Candidates`] open for change; when this is dropped a changed source is
/// counted again and a changed entry raises the version (the module's invariants).
pub(super) struct CandidateMut<'a> {
    candidate: &'a mut Candidate,
    per_source: &'a mut [usize; RANKS],
    version: &'a mut u64,
    was: Candidate,
}

impl Deref for CandidateMut<'_> {
    type Target = Candidate;
    fn deref(&self) -> &Candidate {
        self.candidate
    }
}

impl DerefMut for CandidateMut<'_> {
    fn deref_mut(&mut self) -> &mut Candidate {
        self.candidate
    }
}

impl Drop for CandidateMut<'_> {
    fn drop(&mut self) {
        let now = self.candidate.source;
        if now != self.was.source {
            self.per_source[rank(self.was.source)] -= 1;
            self.per_source[rank(now)] += 1;
        }
        if *self.candidate != self.was {
            *self.version += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Instant;

    fn candidate(source: PeerSource) -> Candidate {
        Candidate::new(source, Instant::ZERO)
    }

    /// The counted answer equals the walk it replaces, and the version moves whenever the
    /// entries change, under random inserts, removals (one by one and by `retain`),
    /// source changes and dials.
    #[test]
    fn displaceable_equals_counting_by_walk() {
        const SOURCES: [PeerSource; 6] = [
            PeerSource::Tracker,
            PeerSource::Dht,
            PeerSource::Lsd,
            PeerSource::Pex,
            PeerSource::Proven,
            PeerSource::User,
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut list = Candidates::with_seed(3);
        let mut connecting = BTreeSet::new();
        let addr = |n: u16| SocketAddr::from(([10, 0, 0, 1], n));
        let mut longest = 0;
        for _ in 0..20_000 {
            let before: Vec<(SocketAddr, Candidate)> = list.iter().map(|(a, c)| (*a, *c)).collect();
            let version = list.version();
            let a = addr(rng.u16(..300));
            let s = SOURCES[rng.usize(..SOURCES.len())];
            match rng.u8(..20) {
                0..=7 => list.insert(a, candidate(s)),
                8 | 9 => {
                    list.remove(&a);
                    connecting.remove(&a);
                }
                10..=12 => {
                    if let Some(mut c) = list.get_mut(&a) {
                        c.source = c.source.max(s);
                    }
                }
                13..=15 => {
                    if list.contains_key(&a) {
                        connecting.insert(a);
                    }
                }
                16..=18 => {
                    connecting.remove(&a);
                }
                _ => list.retain(|b, _| b.port() % 50 != a.port() % 50),
            }
            for s in SOURCES {
                let walked = list
                    .iter()
                    .filter(|(a, c)| c.source < s && !connecting.contains(a))
                    .count();
                assert_eq!(list.displaceable(s, &connecting), walked);
            }
            let after: Vec<(SocketAddr, Candidate)> = list.iter().map(|(a, c)| (*a, *c)).collect();
            if before != after {
                assert_ne!(
                    list.version(),
                    version,
                    "the entries changed, the version not"
                );
            }
            longest = longest.max(list.len());
        }
        assert!(longest > 100, "the list grew long: {longest}");
    }
}
