//! `have` deferral (`SessionConfig::defer_haves`): a verified piece's `have` to a peer we
//! choke leaves with the connection's next other message or at the next one-second
//! housekeeping tick, never later; to a peer we unchoke, and with deferral off to anyone,
//! it leaves the moment the piece is verified. Run on the lab swarm with its wire sniffer,
//! in virtual time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use unchoke_core::session::Event;
use unchoke_core::time::Instant;
use unchoke_core::wire::Message;
use unchoke_sim::lab::{Behaviour, Swarm, make_content};

const KIB: usize = 1024;

/// One `have` on the wire: sender, receiver, piece, when it left, and whether, when the
/// piece was verified, the sender choked the receiver and the receiver was interested in
/// the sender (`None`: a message changing it went out at that very instant, so the order
/// is not known from the sniffer).
struct HaveSent {
    from: usize,
    to: usize,
    piece: u32,
    at: Instant,
    choked_at_verify: Option<bool>,
    interested_at_verify: Option<bool>,
}

/// The state a list of `(when, state)` changes, in order, gives at `at`, starting from
/// `initial`; `None` when one of them is at `at` itself.
fn state_at(changes: &[(Instant, bool)], at: Instant, initial: bool) -> Option<bool> {
    if changes.iter().any(|&(t, _)| t == at) {
        return None;
    }
    Some(
        changes
            .iter()
            .take_while(|&&(t, _)| t < at)
            .last()
            .map_or(initial, |&(_, state)| state),
    )
}

/// A seed and eight leechers, 64 pieces of 16 KiB over 256 KiB/s links: each leecher
/// verifies several pieces a second and chokes some of the others (4 + 1 slots), so
/// deferred `have`s have something to batch. Returns every `have` sent and each host's
/// verify times per piece.
fn run(defer: bool) -> (Vec<HaveSent>, BTreeMap<(usize, u32), Instant>) {
    let mut s = Swarm::new(make_content(64 * 16 * KIB, 11), 16 * KIB as u32, 256 * KIB);
    s.config.defer_haves = defer;
    s.add_seed(Behaviour::Honest);
    let leechers: Vec<usize> = (0..8)
        .map(|_| s.add_node(None, Behaviour::Honest))
        .collect();
    for &l in &leechers {
        s.introduce(l);
    }
    s.sniff();
    let done = s.run_until(Duration::from_secs(120), |s| {
        leechers.iter().all(|&l| s.is_complete(l))
    });
    assert!(done, "the leechers did not complete");
    for &l in &leechers {
        assert!(s.disk_matches(l), "host {l}'s file differs");
    }
    let mut verified = BTreeMap::new();
    for i in 0..s.node_count() {
        for (at, e) in s.events(i) {
            if let Event::PieceVerified { piece, .. } = e {
                verified.insert((i, *piece), *at);
            }
        }
    }
    // Every choke and unchoke, and every interest change, per direction, in order (a
    // closed connection chokes and is not interested).
    let mut chokes: BTreeMap<(usize, usize), Vec<(Instant, bool)>> = BTreeMap::new();
    let mut interest: BTreeMap<(usize, usize), Vec<(Instant, bool)>> = BTreeMap::new();
    for m in s.sniffed() {
        let (list, state) = match m.message {
            Some(Message::Choke) => (&mut chokes, true),
            Some(Message::Unchoke) => (&mut chokes, false),
            Some(Message::Interested) => (&mut interest, true),
            Some(Message::NotInterested) => (&mut interest, false),
            None => {
                chokes.entry((m.from, m.to)).or_default().push((m.at, true));
                (&mut interest, false)
            }
            _ => continue,
        };
        list.entry((m.from, m.to)).or_default().push((m.at, state));
    }
    let changes = |map: &BTreeMap<(usize, usize), Vec<(Instant, bool)>>, key| {
        map.get(&key).cloned().unwrap_or_default()
    };
    let haves = s
        .sniffed()
        .iter()
        .filter_map(|m| match m.message {
            Some(Message::Have { index }) => Some(HaveSent {
                from: m.from,
                to: m.to,
                piece: index,
                at: m.at,
                choked_at_verify: state_at(
                    &changes(&chokes, (m.from, m.to)),
                    verified[&(m.from, index)],
                    true,
                ),
                interested_at_verify: state_at(
                    &changes(&interest, (m.to, m.from)),
                    verified[&(m.from, index)],
                    false,
                ),
            }),
            _ => None,
        })
        .collect();
    (haves, verified)
}

#[test]
fn deferred_haves_leave_within_a_tick_of_the_verify_and_in_batches() {
    let (haves, verified) = run(true);
    assert!(!haves.is_empty());
    for h in &haves {
        let v = verified[&(h.from, h.piece)];
        assert!(
            h.at >= v && h.at - v <= Duration::from_secs(1),
            "host {}'s have {} to {} left {:?} after its verify",
            h.from,
            h.piece,
            h.to,
            h.at - v
        );
        if h.choked_at_verify == Some(false) || h.interested_at_verify == Some(false) {
            assert_eq!(
                h.at, v,
                "an unchoked or uninterested peer hears at once: {} to {}",
                h.from, h.to
            );
        }
    }
    // To choked, interested peers: batched (fewer sends than `have`s), some later than
    // their verify.
    let deferred: Vec<&HaveSent> = haves
        .iter()
        .filter(|h| h.choked_at_verify == Some(true) && h.interested_at_verify == Some(true))
        .collect();
    let sends: BTreeSet<(usize, usize, Instant)> =
        deferred.iter().map(|h| (h.from, h.to, h.at)).collect();
    assert!(
        sends.len() * 3 < deferred.len() * 2,
        "{} haves to choked, interested peers in {} sends",
        deferred.len(),
        sends.len()
    );
    assert!(deferred.iter().any(|h| h.at > verified[&(h.from, h.piece)]));
}

#[test]
fn undeferred_haves_leave_at_the_verify() {
    let (haves, verified) = run(false);
    assert!(!haves.is_empty());
    for h in &haves {
        assert_eq!(
            h.at,
            verified[&(h.from, h.piece)],
            "host {}'s have {} to {}",
            h.from,
            h.piece,
            h.to
        );
    }
}
