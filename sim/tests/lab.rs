//! The lab harness itself (`unchoke_sim::lab`): the core's multi-session tests rely on it,
//! so its own promises are checked here — a download completes byte for byte over the
//! simulator's network, the run is deterministic, and the emulated disks and sniffer do
//! what they say.

use std::time::Duration;

use unchoke_core::session::Event;
use unchoke_core::wire::Message;
use unchoke_sim::lab::{Behaviour, Swarm, make_content};

const KIB: usize = 1024;

fn pair(link: usize) -> (Swarm, usize, usize) {
    let mut s = Swarm::new(make_content(512 * KIB, 3), 64 * KIB as u32, link);
    let seed = s.add_seed(Behaviour::Honest);
    let leech = s.add_node(None, Behaviour::Honest);
    s.introduce(leech);
    (s, seed, leech)
}

#[test]
fn a_leecher_completes_byte_for_byte_within_the_link_rate() {
    let (mut s, seed, leech) = pair(256 * KIB);
    s.sniff();
    assert!(
        s.run_until(Duration::from_secs(1), |s| s.linked(seed, leech)
            && s.linked(leech, seed))
    );
    assert!(s.run_until(Duration::from_secs(60), |s| s.is_complete(leech)));
    // 512 KiB over a 256 KiB/s link: never faster than the link allows.
    assert!(s.now().as_micros() >= 2_000_000, "done at {:?}", s.now());
    assert!(s.disk_matches(leech));
    assert!(s.violations().is_empty(), "{:?}", s.violations());
    let pieces = s
        .sniffed()
        .iter()
        .filter(|m| m.from == seed && matches!(m.message, Some(Message::Piece { .. })))
        .count();
    assert_eq!(pieces, 512 / 16, "every block crossed the wire once");
    assert!(
        s.close_all(Duration::from_secs(30)),
        "every session drained"
    );
}

#[test]
fn the_same_swarm_twice_gives_the_same_fingerprint() {
    let run = || {
        let (mut s, _, leech) = pair(128 * KIB);
        assert!(s.run_until(Duration::from_secs(60), |s| s.is_complete(leech)));
        (s.fingerprint(), s.now())
    };
    assert_eq!(run(), run());
}

#[test]
fn a_slow_disk_holds_writes_and_a_full_one_fails_them() {
    let (mut s, _, leech) = pair(1024 * KIB);
    s.set_disk_rate(leech, 64 * KIB);
    assert!(s.run_until(Duration::from_secs(5), |s| s.unwritten(leech) > 0));
    assert!(s.run_until(Duration::from_secs(60), |s| s.is_complete(leech)));
    assert_eq!(s.unwritten(leech), 0);
    assert!(s.disk_matches(leech));

    let (mut s, _, leech) = pair(1024 * KIB);
    s.set_disk_space(leech, Some(100 * KIB));
    s.run_until(Duration::from_secs(10), |_| false);
    assert!(!s.is_complete(leech));
    assert!(
        s.events(leech)
            .any(|(_, e)| matches!(e, Event::StorageError { .. })),
        "a full disk reports a storage error"
    );
}
