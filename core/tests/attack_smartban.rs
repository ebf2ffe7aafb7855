//! Poisoning attacks against the smart ban, in virtual time: liars that corrupt one block
//! of every piece beside an honest seed, two such liars, and a liar that sends whole bad
//! pieces alone. The honest leecher completes within a stated bound, every liar is banned,
//! and the honest seed — which shares many failed pieces with the liars — never is.

use std::net::SocketAddr;
use std::time::Duration;

use unchoke_core::session::Event;
use unchoke_core::wire::Message;
use unchoke_sim::lab::{Behaviour, Swarm, make_content};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// 4 MiB in 8 pieces of 512 KiB (32 blocks each) over links of 256 KiB/s. A peer's
/// pipeline holds about two seconds of its rate (32 blocks), so the peers share most
/// pieces block by block: a liar's bad first block sits beside the honest seed's blocks,
/// which is what got honest seeds banned when every co-sender took a strike.
fn swarm(seed: u64) -> Swarm {
    let mut s = Swarm::new(make_content(4 * MIB, seed), 512 * KIB as u32, 256 * KIB);
    s.sniff();
    s
}

/// Virtual time the honest leecher needs with the honest seed alone (the baseline, about
/// 16 s).
fn baseline(seed: u64) -> Duration {
    let mut s = swarm(seed);
    s.add_seed(Behaviour::Honest);
    let l = s.add_node(None, Behaviour::Honest);
    s.introduce(l);
    assert!(s.run_until(Duration::from_secs(120), |s| s.is_complete(l)));
    s.now() - unchoke_core::time::Instant::ZERO
}

/// Whether node `l` emitted `PeerBanned` for `addr`.
fn banned(s: &Swarm, l: usize, addr: SocketAddr) -> bool {
    s.events(l)
        .any(|(_, e)| matches!(e, Event::PeerBanned { addr: a, .. } if a.ip() == addr.ip()))
}

/// Pieces that failed their hash at node `l`.
fn failed_pieces(s: &Swarm, l: usize) -> Vec<u32> {
    s.events(l)
        .filter_map(|(_, e)| match e {
            Event::HashFailed { piece, .. } => Some(*piece),
            _ => None,
        })
        .collect()
}

/// Whether node `from` sent node `to` a block of a piece in `pieces`.
fn sent_block_of(s: &Swarm, from: usize, to: usize, pieces: &[u32]) -> bool {
    s.sniffed().iter().any(|m| {
        m.from == from
            && m.to == to
            && matches!(&m.message, Some(Message::Piece { index, .. }) if pieces.contains(index))
    })
}

/// One liar serving the first block of every piece corrupted, beside one honest seed.
/// Returns the swarm after the run and the nodes (liar, honest seed, leecher).
fn one_liar(seed_base: u64) -> (Swarm, usize, usize, usize, bool) {
    let mut s = swarm(7);
    s.seed_base = seed_base;
    let liar = s.add_seed(Behaviour::CorruptFirstBlock);
    let honest = s.add_seed(Behaviour::Honest);
    let l = s.add_node(None, Behaviour::Honest);
    s.introduce(l);
    let done = s.run_until(Duration::from_secs(120), |s| s.is_complete(l));
    s.settle();
    (s, liar, honest, l, done)
}

#[test]
fn a_liar_corrupting_first_blocks_is_banned_and_the_honest_seed_never_is() {
    // Bound: the leecher completes within 3× the baseline (the honest seed alone, ~16 s)
    // while the liar runs — and in any case within 120 s of virtual time.
    let base = baseline(7);
    let (s, liar, honest, l, done) = one_liar(1000);
    assert!(done, "the honest leecher did not complete within 120 s");
    let took = s.events(l).find_map(|(t, e)| {
        matches!(e, Event::TorrentComplete { .. }).then(|| *t - unchoke_core::time::Instant::ZERO)
    });
    let took = took.expect("TorrentComplete emitted");
    eprintln!("baseline {base:?}, under attack {took:?}");
    assert!(
        took <= base * 3,
        "completed in {took:?}, more than 3× the baseline {base:?}"
    );
    assert!(s.disk_matches(l));
    let failed = failed_pieces(&s, l);
    assert!(!failed.is_empty(), "the liar never made a piece fail");
    assert!(
        sent_block_of(&s, honest, l, &failed),
        "no failed piece was shared with the honest seed: the attack was not exercised"
    );
    assert!(banned(&s, l, s.addr(liar)), "the liar was not banned");
    let bans = s
        .events(l)
        .filter(|(_, e)| matches!(e, Event::PeerBanned { .. }))
        .count();
    assert_eq!(bans, 1, "one ban, announced once");
    assert!(!banned(&s, l, s.addr(honest)), "the honest seed was banned");
}

#[test]
fn two_liars_are_banned_beside_one_honest_seed() {
    // Bound: the leecher completes within 3× the baseline (~16 s), and within 120 s.
    let base = baseline(8);
    let mut s = swarm(8);
    let a = s.add_seed(Behaviour::CorruptFirstBlock);
    let b = s.add_seed(Behaviour::CorruptFirstBlock);
    let honest = s.add_seed(Behaviour::Honest);
    let l = s.add_node(None, Behaviour::Honest);
    s.introduce(l);
    let start = s.now();
    assert!(
        s.run_until(Duration::from_secs(120), |s| s.is_complete(l)),
        "the honest leecher did not complete within 120 s"
    );
    let took = s.now() - start;
    eprintln!("baseline {base:?}, under attack {took:?}");
    assert!(
        took <= base * 3,
        "completed in {took:?}, more than 3× the baseline {base:?}"
    );
    s.settle();
    assert!(s.disk_matches(l));
    let failed = failed_pieces(&s, l);
    assert!(sent_block_of(&s, honest, l, &failed));
    assert!(banned(&s, l, s.addr(a)), "liar a not banned");
    assert!(banned(&s, l, s.addr(b)), "liar b not banned");
    assert!(!banned(&s, l, s.addr(honest)), "the honest seed was banned");
}

#[test]
fn a_liar_sending_whole_bad_pieces_alone_is_banned_after_max_strikes() {
    // The leecher knows only the liar at first: nothing can verify, so the only evidence
    // is its sole failures, and it is banned at the `max_strikes`-th (3), within 120 s.
    // Then an honest seed arrives; the leecher completes within 120 s after that.
    let mut s = swarm(9);
    let liar = s.add_seed(Behaviour::Corrupt);
    let honest = s.add_seed(Behaviour::Honest);
    let l = s.add_node(None, Behaviour::Honest);
    s.introduce_to(l, &[liar]);
    let liar_addr = s.addr(liar);
    assert!(
        s.run_until(Duration::from_secs(120), |s| banned(s, l, liar_addr)),
        "the lone liar was not banned within 120 s"
    );
    let before_ban = s
        .events(l)
        .take_while(|(_, e)| !matches!(e, Event::PeerBanned { .. }))
        .filter(|(_, e)| matches!(e, Event::HashFailed { .. }))
        .count();
    assert_eq!(
        before_ban, s.config.max_strikes as usize,
        "banned after {before_ban} failed pieces"
    );
    s.introduce_to(l, &[honest]);
    assert!(
        s.run_until(Duration::from_secs(120), |s| s.is_complete(l)),
        "no completion from the honest seed after the ban"
    );
    s.settle();
    assert!(s.disk_matches(l));
    assert!(!banned(&s, l, s.addr(honest)));
    assert!(
        !s.linked(l, liar) && !s.linked(liar, l),
        "the banned liar is still connected"
    );
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let (a, ..) = one_liar(1000);
    let (b, ..) = one_liar(1000);
    assert_eq!(a.fingerprint(), b.fingerprint());
    let (c, ..) = one_liar(2000);
    assert_ne!(
        a.fingerprint(),
        c.fingerprint(),
        "the fingerprint does not depend on the seed"
    );
}
