//! `have` deferral (`SessionConfig::defer_haves`): a verified piece's `have` leaves with
//! the connection's next other message or at the next one-second housekeeping tick, never
//! later; off, it leaves the moment the piece is verified. Run on the lab swarm with its
//! wire sniffer, in virtual time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use unchoke_core::session::Event;
use unchoke_core::time::Instant;
use unchoke_core::wire::Message;
use unchoke_sim::lab::{Behaviour, Swarm, make_content};

const KIB: usize = 1024;

/// A seed and three leechers, 64 pieces of 16 KiB over 256 KiB/s links: each leecher
/// verifies several pieces a second, so deferred `have`s have something to batch.
/// Returns every `have` sent as (sender, receiver, piece, when) and each host's verify
/// times per piece.
#[allow(clippy::type_complexity)]
fn run(
    defer: bool,
) -> (
    Vec<(usize, usize, u32, Instant)>,
    BTreeMap<(usize, u32), Instant>,
) {
    let mut s = Swarm::new(make_content(64 * 16 * KIB, 11), 16 * KIB as u32, 256 * KIB);
    s.config.defer_haves = defer;
    s.add_seed(Behaviour::Honest);
    let leechers: Vec<usize> = (0..3)
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
    let haves = s
        .sniffed()
        .iter()
        .filter_map(|m| match m.message {
            Some(Message::Have { index }) => Some((m.from, m.to, index, m.at)),
            _ => None,
        })
        .collect();
    let mut verified = BTreeMap::new();
    for i in 0..s.node_count() {
        for (at, e) in s.events(i) {
            if let Event::PieceVerified { piece, .. } = e {
                verified.insert((i, *piece), *at);
            }
        }
    }
    (haves, verified)
}

#[test]
fn deferred_haves_leave_within_a_tick_of_the_verify_and_in_batches() {
    let (haves, verified) = run(true);
    assert!(!haves.is_empty());
    for &(from, to, piece, at) in &haves {
        let v = verified[&(from, piece)];
        assert!(
            at >= v && at - v <= Duration::from_secs(1),
            "host {from}'s have {piece} to {to} left {:?} after its verify",
            at - v
        );
    }
    // Batched: fewer sends than `have`s, and some left later than their verify.
    let sends: BTreeSet<(usize, usize, Instant)> =
        haves.iter().map(|&(f, t, _, at)| (f, t, at)).collect();
    assert!(
        sends.len() * 2 < haves.len(),
        "{} haves in {} sends",
        haves.len(),
        sends.len()
    );
    assert!(haves.iter().any(|&(f, _, p, at)| at > verified[&(f, p)]));
}

#[test]
fn undeferred_haves_leave_at_the_verify() {
    let (haves, verified) = run(false);
    assert!(!haves.is_empty());
    for &(from, to, piece, at) in &haves {
        assert_eq!(
            at,
            verified[&(from, piece)],
            "host {from}'s have {piece} to {to}"
        );
    }
}
