//! Choosing whom to dial (the choice `Torrent::maybe_connect` makes once it knows its free
//! slots and the due candidates), and remembering a walk of the candidates that found
//! nobody, so it is not repeated while nothing it depended on changed.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::time::Instant;
use crate::vocab::PeerSource;

/// A walk of the candidates that found nobody to dial, with what it depended on, so the
/// next `maybe_connect` can tell the walk would find nobody again without making it: with
/// free slots it runs every second, and at N = 1,000 in the simulator walking up to
/// `max_candidates` addresses each time was 5 % of the run.
#[derive(Debug, Clone)]
pub(super) struct IdleDialScan {
    /// [`super::candidates::Candidates::version`] then.
    candidates: u64,
    /// The addresses being dialled then, in order.
    connecting: Vec<SocketAddr>,
    /// Where the connected peers listened then, sorted.
    listening: Vec<SocketAddr>,
    /// Whether the torrent was complete then (a seed dials only the user's peers).
    seeding: bool,
    /// The earliest back-off end among the candidates then: from it on, one may be due.
    until: Option<Instant>,
}

impl IdleDialScan {
    /// Records a walk that found nobody: the candidate list's `version`, the addresses
    /// being dialled, where the connected peers listen (sorted), whether the torrent is
    /// complete, and the earliest back-off end among the candidates.
    pub(super) fn new(
        version: u64,
        connecting: &BTreeSet<SocketAddr>,
        listening: Vec<SocketAddr>,
        seeding: bool,
        until: Option<Instant>,
    ) -> Self {
        IdleDialScan {
            candidates: version,
            connecting: connecting.iter().copied().collect(),
            listening,
            seeding,
            until,
        }
    }

    /// Whether a walk at `now` would find nobody to dial, as this one did: every input of
    /// the walk is as it was, and no back-off has ended since.
    pub(super) fn still_idle(
        &self,
        version: u64,
        connecting: &BTreeSet<SocketAddr>,
        seeding: bool,
        listening: &[SocketAddr],
        now: Instant,
    ) -> bool {
        self.candidates == version
            && self.seeding == seeding
            && self.until.is_none_or(|until| now < until)
            && self.listening == listening
            && self.connecting.iter().eq(connecting.iter())
    }
}

/// Which of the `due` candidates to dial with `slots` free: best source first (a user's
/// `--peer` before a tracker's flood), tracker addresses in at most `tracker_slots`, and
/// within a source a random choice, not the lowest addresses: every peer that learns the
/// same list (a DHT lookup returns whole swarms) would otherwise fill its slots with the
/// same peers, and the swarm would split into cliques that never trade (the simulator saw
/// 100 DHT peers split into two halves of 50).
///
/// The draw is a partial shuffle of each source's addresses in address order, so it does
/// not depend on the order `due` comes in. One dial (the usual case: the one dial allowed
/// past a full peer list) picks its address by selection rather than sorting the whole
/// list, with the same draw and the same result ([`choose_dials_by_sorting`] is the
/// general case, and a test holds the two equal).
pub(super) fn choose_dials(
    due: Vec<(PeerSource, SocketAddr)>,
    slots: usize,
    tracker_slots: usize,
    rng: &mut fastrand::Rng,
) -> Vec<SocketAddr> {
    let trackers = due
        .iter()
        .filter(|(s, _)| *s == PeerSource::Tracker)
        .count();
    let usable = due.len() - trackers + trackers.min(tracker_slots);
    if slots.min(usable) != 1 {
        return choose_dials_by_sorting(due, slots, tracker_slots, rng);
    }
    let Some(best) = due.iter().map(|(s, _)| *s).max() else {
        return Vec::new();
    };
    let mut group: Vec<SocketAddr> = due
        .iter()
        .filter(|(s, _)| *s == best)
        .map(|(_, a)| *a)
        .collect();
    // Only tracker addresses when the best source is the tracker, and then at most
    // `tracker_slots` of them (at least one: `usable` is 1).
    let end = if best == PeerSource::Tracker {
        group.len().min(tracker_slots)
    } else {
        group.len()
    };
    let j = rng.usize(0..end);
    let (_, chosen, _) = group.select_nth_unstable(j);
    vec![*chosen]
}

/// [`choose_dials`] for any number of dials: sorts `due` by source, best first, then
/// address, and shuffles the first `slots` places source by source.
fn choose_dials_by_sorting(
    mut due: Vec<(PeerSource, SocketAddr)>,
    slots: usize,
    tracker_slots: usize,
    rng: &mut fastrand::Rng,
) -> Vec<SocketAddr> {
    due.sort_unstable_by_key(|&(source, addr)| (std::cmp::Reverse(source), addr));
    let tracker_at = due
        .iter()
        .position(|(s, _)| *s == PeerSource::Tracker)
        .unwrap_or(due.len());
    due.truncate(tracker_at + tracker_slots.min(due.len() - tracker_at));
    let take = slots.min(due.len());
    let mut start = 0;
    while start < take {
        let source = due[start].0;
        let end = due[start..]
            .iter()
            .position(|(s, _)| *s != source)
            .map_or(due.len(), |n| start + n);
        for i in start..take.min(end) {
            let j = rng.usize(i..end);
            due.swap(i, j);
        }
        start = end;
    }
    due.truncate(take);
    due.into_iter().map(|(_, a)| a).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_dial_chosen_by_selection_is_the_one_sorting_chooses() {
        // Random due lists (sources, addresses, order), slots and tracker places: the
        // selection path for a single dial returns what sorting returns and leaves the
        // RNG where sorting leaves it; for more dials the two are the same code.
        const SOURCES: [PeerSource; 4] = [
            PeerSource::Tracker,
            PeerSource::Dht,
            PeerSource::Pex,
            PeerSource::User,
        ];
        let mut draw = fastrand::Rng::with_seed(5);
        let mut single = 0;
        for case in 0..5_000u64 {
            let mut addrs: Vec<u16> = (0..draw.u16(0..60)).map(|_| draw.u16(1..500)).collect();
            addrs.sort_unstable();
            addrs.dedup();
            draw.shuffle(&mut addrs);
            let due: Vec<(PeerSource, SocketAddr)> = addrs
                .iter()
                .map(|&p| {
                    let source = SOURCES[draw.usize(..SOURCES.len())];
                    (
                        source,
                        SocketAddr::from(([10, 2, (p >> 8) as u8, p as u8], p)),
                    )
                })
                .collect();
            let slots = draw.usize(0..4);
            let tracker_slots = draw.usize(0..4);
            let (mut a, mut b) = (
                fastrand::Rng::with_seed(case),
                fastrand::Rng::with_seed(case),
            );
            let chosen = choose_dials(due.clone(), slots, tracker_slots, &mut a);
            let sorted = choose_dials_by_sorting(due, slots, tracker_slots, &mut b);
            assert_eq!(chosen, sorted, "case {case}");
            assert_eq!(a.u64(..), b.u64(..), "case {case}: the RNG");
            single += usize::from(chosen.len() == 1);
        }
        assert!(single > 1_000, "only {single} single dials");
    }
}
