//! Held `have`s (`SessionConfig::have_delay`): a verified piece's `have` to a peer we
//! choke that is interested in us leaves with the connection's next other message (our
//! unchoke included), when the peer says it is not interested, or within the delay, never
//! later; to a peer we unchoke or one not interested, and with a zero delay to anyone, it
//! leaves the moment the piece is verified. Run on the lab swarm with its wire sniffer, in
//! virtual time.

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
/// is not known from the sniffer); with the first unchoke of the receiver and the first
/// `not interested` from it, strictly between the verify and the `have`.
struct HaveSent {
    from: usize,
    to: usize,
    piece: u32,
    at: Instant,
    choked_at_verify: Option<bool>,
    interested_at_verify: Option<bool>,
    unchoked_while_held: Option<Instant>,
    uninterested_while_held: Option<Instant>,
}

/// The first change in `changes` to `state` strictly between `from` and `to`.
fn change_between(
    changes: &[(Instant, bool)],
    state: bool,
    from: Instant,
    to: Instant,
) -> Option<Instant> {
    changes
        .iter()
        .find(|&&(t, s)| s == state && t > from && t < to)
        .map(|&(t, _)| t)
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
fn run(have_delay: Duration) -> (Vec<HaveSent>, BTreeMap<(usize, u32), Instant>) {
    let mut s = Swarm::new(make_content(64 * 16 * KIB, 11), 16 * KIB as u32, 256 * KIB);
    s.config.have_delay = have_delay;
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
            Some(Message::Have { index }) => {
                let chokes = changes(&chokes, (m.from, m.to));
                let interest = changes(&interest, (m.to, m.from));
                let v = verified[&(m.from, index)];
                Some(HaveSent {
                    from: m.from,
                    to: m.to,
                    piece: index,
                    at: m.at,
                    choked_at_verify: state_at(&chokes, v, true),
                    interested_at_verify: state_at(&interest, v, false),
                    unchoked_while_held: change_between(&chokes, false, v, m.at),
                    uninterested_while_held: change_between(&interest, false, v, m.at),
                })
            }
            _ => None,
        })
        .collect();
    (haves, verified)
}

/// Every `have` left within `delay` of its verify, at once to a peer unchoked or not
/// interested then, and never after an unchoke or a `not interested` that came while it
/// was held; those to choked, interested peers were batched (fewer sends than `have`s),
/// some after their verify. Returns how many were held and in how many sends.
fn check_held(
    haves: &[HaveSent],
    verified: &BTreeMap<(usize, u32), Instant>,
    delay: Duration,
) -> (usize, usize) {
    assert!(!haves.is_empty());
    for h in haves {
        let v = verified[&(h.from, h.piece)];
        let what = format!("host {}'s have {} to {}", h.from, h.piece, h.to);
        assert!(
            h.at >= v && h.at - v <= delay,
            "{what} left {:?} after its verify",
            h.at - v
        );
        if h.choked_at_verify == Some(false) || h.interested_at_verify == Some(false) {
            assert_eq!(
                h.at, v,
                "{what}: an unchoked or uninterested peer hears at once"
            );
        }
        assert_eq!(
            h.unchoked_while_held, None,
            "{what} left after the unchoke, at {:?}",
            h.at
        );
        assert_eq!(
            h.uninterested_while_held, None,
            "{what} left after the peer said it was not interested, at {:?}",
            h.at
        );
    }
    let held: Vec<&HaveSent> = haves
        .iter()
        .filter(|h| h.choked_at_verify == Some(true) && h.interested_at_verify == Some(true))
        .collect();
    let sends: BTreeSet<(usize, usize, Instant)> =
        held.iter().map(|h| (h.from, h.to, h.at)).collect();
    assert!(
        sends.len() * 3 < held.len() * 2,
        "{} haves to choked, interested peers in {} sends",
        held.len(),
        sends.len()
    );
    assert!(held.iter().any(|h| h.at > verified[&(h.from, h.piece)]));
    (held.len(), sends.len())
}

#[test]
fn held_haves_leave_within_a_second_delay_and_in_batches() {
    let delay = Duration::from_secs(1);
    let (haves, verified) = run(delay);
    check_held(&haves, &verified, delay);
}

#[test]
fn held_haves_leave_within_the_default_delay_and_in_batches() {
    let delay = unchoke_core::session::SessionConfig::default().have_delay;
    assert!(delay > Duration::from_secs(1));
    let (haves, verified) = run(delay);
    check_held(&haves, &verified, delay);
}

#[test]
fn with_no_delay_haves_leave_at_the_verify() {
    let (haves, verified) = run(Duration::ZERO);
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
