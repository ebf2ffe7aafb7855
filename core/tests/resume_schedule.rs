//! Resume saves on the session's own clock (`Action::SaveResume`), in virtual time: they
//! come every `resume_interval` while pieces are verified and not while nothing changes,
//! one at a time per torrent, and a failed one is tried again.

use std::time::Duration;

use unchoke_core::time::Instant;
use unchoke_sim::lab::{Behaviour, SaveAnswer, Swarm, make_content};

const KIB: usize = 1024;
const INTERVAL: Duration = Duration::from_secs(5);

/// A seed and a leecher over a link slow enough that the download spans many intervals
/// (1 MiB at 16 KiB/s: about a minute, a 32 KiB piece every two seconds).
fn swarm() -> (Swarm, usize, usize) {
    let mut s = Swarm::new(make_content(1024 * KIB, 16), 32 * KIB as u32, 16 * KIB);
    s.config.resume_interval = INTERVAL;
    let seed = s.add_seed(Behaviour::Honest);
    let leech = s.add_node(None, Behaviour::Honest);
    s.introduce(leech);
    (s, seed, leech)
}

/// Node `i`'s saves: when, and how many pieces each recorded as verified.
fn saves_of(s: &Swarm, i: usize) -> Vec<(Instant, u32)> {
    s.saves()
        .iter()
        .filter(|(_, node, _, _)| *node == i)
        .map(|(at, _, _, have)| (*at, have.count_ones()))
        .collect()
}

#[test]
fn saves_come_every_interval_while_pieces_verify_and_stop_when_nothing_changes() {
    let (mut s, seed, leech) = swarm();
    assert!(s.run_until(Duration::from_secs(300), |s| s.is_complete(leech)));
    let done_at = s.now();
    s.run_until(INTERVAL * 4, |_| false);
    let saves = saves_of(&s, leech);
    assert!(
        saves.len() >= 8,
        "{} saves in a minute's download",
        saves.len()
    );
    // A piece verifies about every two seconds, so every round finds something new: the
    // saves are one interval apart (to the swarm's 10 ms step), each with more pieces.
    for pair in saves.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap >= INTERVAL && gap <= INTERVAL + Duration::from_millis(20),
            "saves {gap:?} apart: {saves:?}"
        );
        assert!(
            pair[1].1 > pair[0].1,
            "a save recorded nothing new: {saves:?}"
        );
    }
    let pieces = s.metainfo.info.piece_count();
    let (last_at, last_have) = *saves.last().expect("saves");
    assert_eq!(last_have, pieces, "the finished state was saved");
    assert!(
        last_at <= done_at + INTERVAL + Duration::from_millis(20),
        "nothing saved after the state stopped changing: {saves:?}"
    );
    // The seed's pieces never change: it never saves.
    assert!(saves_of(&s, seed).is_empty(), "{:?}", saves_of(&s, seed));
}

#[test]
fn an_unanswered_save_blocks_the_next_one() {
    let (mut s, _, leech) = swarm();
    s.set_save_answer(SaveAnswer::Hold);
    s.run_until(INTERVAL * 5, |_| false);
    let held = saves_of(&s, leech);
    assert_eq!(held.len(), 1, "saves overlapped: {held:?}");
    // Pieces kept verifying meanwhile; the answer frees the next round.
    s.set_save_answer(SaveAnswer::Ok);
    s.answer_held_saves(true);
    s.run_until(INTERVAL + Duration::from_millis(100), |_| false);
    let saves = saves_of(&s, leech);
    assert_eq!(saves.len(), 2, "{saves:?}");
    assert!(saves[1].1 > saves[0].1, "{saves:?}");
}

#[test]
fn a_failed_save_is_retried_every_interval_until_one_succeeds() {
    let (mut s, _, leech) = swarm();
    s.set_save_answer(SaveAnswer::Fail);
    assert!(s.run_until(Duration::from_secs(300), |s| s.is_complete(leech)));
    s.run_until(Duration::from_millis(100), |_| false);
    let before = saves_of(&s, leech).len();
    // Complete: nothing changes any more, yet nothing was ever saved, so every round
    // tries again.
    s.run_until(INTERVAL * 3, |_| false);
    let retries = saves_of(&s, leech).len() - before;
    assert_eq!(retries, 3, "{:?}", saves_of(&s, leech));
    // One success, and the schedule falls quiet.
    s.set_save_answer(SaveAnswer::Ok);
    s.run_until(INTERVAL * 4, |_| false);
    let after = saves_of(&s, leech).len() - before - retries;
    assert_eq!(after, 1, "{:?}", saves_of(&s, leech));
}

#[test]
fn the_same_inputs_give_the_same_saves() {
    let run = || {
        let (mut s, _, leech) = swarm();
        s.run_until(INTERVAL * 6, |_| false);
        (s.saves().to_vec(), s.fingerprint(), leech)
    };
    let (a, fa, leech) = run();
    let (b, fb, _) = run();
    assert!(a.iter().any(|(_, node, _, _)| *node == leech));
    assert_eq!(a, b);
    assert_eq!(fa, fb);
}
