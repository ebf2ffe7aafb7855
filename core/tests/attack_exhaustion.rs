//! Connection exhaustion and peer-id squatting, in virtual time: hostile peers that
//! handshake and idle (also reconnecting at once when evicted), partial handshakes kept
//! refilled, and a squatter using an honest peer's id must not stop an honest download
//! (admission, eviction, evicted-address memory and duplicate rules of
//! `core/src/session/admission.rs`). Attackers are raw connections into a node's session,
//! spoken for by the test; what the node sends them is dropped. Each test states its bound.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use unchoke_core::session::{ConnId, Direction};
use unchoke_core::wire::{Handshake, Message, PeerId, Reserved};
use unchoke_sim::lab::{Behaviour, Swarm, make_content};

const KIB: usize = 1024;

/// One hostile connection: where it comes from, the id it claims, what it says.
struct Attacker {
    addr: SocketAddr,
    peer_id: PeerId,
    /// Sends `interested` after its handshake (else it says nothing more).
    interested: bool,
    /// Its current connection into the target, if it opened one.
    conn: Option<ConnId>,
}

/// `n` attackers from distinct addresses 10.(k / 250).(k % 250 + 1) — virtual addresses,
/// nothing leaves the process — with random ids; every other one interested.
fn attackers(n: usize) -> Vec<Attacker> {
    let mut rng = fastrand::Rng::with_seed(99);
    (0..n)
        .map(|k| Attacker {
            addr: SocketAddr::from(([10, 1, (k / 250) as u8, (k % 250 + 1) as u8], 40000)),
            peer_id: PeerId::generate(&mut rng),
            interested: k % 2 == 0,
            conn: None,
        })
        .collect()
}

/// The 68-byte handshake for the swarm's torrent with `peer_id`.
fn handshake(s: &Swarm, peer_id: PeerId) -> BytesMut {
    let mut buf = BytesMut::new();
    Handshake {
        reserved: Reserved::NONE.with_fast(),
        info_hash: s.metainfo.info_hash,
        peer_id,
    }
    .encode(&mut buf);
    buf
}

/// Whether node `i` holds `conn` as an established peer of its torrent.
fn holds(s: &Swarm, i: usize, conn: ConnId) -> bool {
    s.session(i).connections(s.torrent(i)).contains(&conn)
}

/// Opens a connection from `a` into node `i` and handshakes (and says `interested`).
fn connect_and_handshake(s: &mut Swarm, i: usize, a: &mut Attacker) {
    let now = s.now();
    let conn = s
        .session_mut(i)
        .connection_opened(a.addr, Direction::Inbound, now);
    let mut buf = handshake(s, a.peer_id);
    if a.interested {
        Message::Interested.encode(&mut buf);
    }
    s.session_mut(i).handle_bytes(conn, &mut buf, now);
    a.conn = Some(conn);
}

/// Attackers not established on node `i` (refused or evicted) connect again.
fn refill(s: &mut Swarm, i: usize, all: &mut [Attacker]) {
    for a in all.iter_mut() {
        if a.conn.is_none_or(|c| !holds(s, i, c)) {
            connect_and_handshake(s, i, a);
        }
    }
}

/// How long an unattacked leecher takes to download the content from one seed.
fn baseline(content: &[u8], piece: u32, rate: usize) -> Duration {
    let mut s = Swarm::new(content.to_vec(), piece, rate);
    let seed = s.add_seed(Behaviour::Honest);
    let leecher = s.add_node(None, Behaviour::Honest);
    s.introduce_to(leecher, &[seed]);
    let start = s.now();
    assert!(s.run_until(Duration::from_secs(120), |s| s.is_complete(leecher)));
    s.now() - start
}

/// 300 attackers handshake with a seed and idle (`interested`: every other one says
/// `interested`, else none does); 50 get in and hold the slots, the 250 refused are gone.
/// An honest leecher then dials the seed. Returns how long it took to complete (`None`:
/// not within `bound`) and the baseline.
fn idle_flood(
    interested: bool,
    bound: impl Fn(Duration) -> Duration,
) -> (Option<Duration>, Duration) {
    let content = make_content(2 * 1024 * KIB, 5);
    let rate = 512 * KIB;
    let base = baseline(&content, 64 * KIB as u32, rate);
    let mut s = Swarm::new(content, 64 * KIB as u32, rate);
    let seed = s.add_seed(Behaviour::Honest);
    let leecher = s.add_node(None, Behaviour::Honest);
    let limit = s.config.max_peers_per_torrent;
    let mut hostile = attackers(300);
    for a in hostile.iter_mut() {
        a.interested &= interested;
    }
    refill(&mut s, seed, &mut hostile);
    let t = s.torrent(seed);
    assert_eq!(s.session(seed).connections(t).len(), limit);
    s.run_until(Duration::from_secs(1), |_| false);
    s.introduce_to(leecher, &[seed]);
    let start = s.now();
    let bound = bound(base);
    let mut most = 0;
    while !s.is_complete(leecher) && s.now() - start < bound {
        s.run_until(Duration::from_millis(500), |s| s.is_complete(leecher));
        most = most.max(s.session(seed).connections(t).len());
    }
    if !s.is_complete(leecher) {
        return (None, base);
    }
    assert!(s.disk_matches(leecher));
    // The limit held throughout: the leecher got in by evicting an idle attacker.
    assert_eq!(most, limit);
    let dropped = s
        .disconnects()
        .iter()
        .filter(|(_, node, why)| *node == seed && why == "connection limit reached")
        .count();
    assert!(
        dropped >= 251,
        "250 refused at once, then at least one evicted ({dropped})"
    );
    (Some(s.now() - start), base)
}

#[test]
fn three_hundred_idle_peers_are_evicted_for_an_honest_leecher_that_completes() {
    // Bound: the attackers, useless to the seed, hold their slots for
    // `evict_useless_after` (3 s) before any may be evicted; the leecher's first dial
    // (1 s into the attack) is refused and its second, 5 s on, gets in; then it downloads
    // at the baseline's pace: 15 s plus 2× the baseline (measured: 10 s; 21 s with the
    // full 10 s grace for useless peers).
    let bound = |base: Duration| Duration::from_secs(15) + base * 2;
    let (took, base) = idle_flood(false, bound);
    eprintln!("idlers: took {took:?}, baseline {base:?}");
    assert!(
        took.is_some(),
        "the honest leecher completes within {:?} of virtual time (baseline {base:?}) while \
         300 idle peers hold the seed's slots",
        bound(base)
    );
}

#[test]
fn interested_idle_peers_are_evicted_too_and_the_leecher_completes() {
    // Half the attackers say `interested` and never request: eviction lets the leecher in
    // as above, then the seed's slots must reach it. Each idler holds a slot for one slot
    // trial (2–3 s), is found wasting it and ranks last from then on; among peers not yet
    // tried the last to connect goes first, so the leecher waits at most one trial for a
    // slot held by an idler. Bound: the one above plus 5 s (it was ~83 s when slots went
    // by rate alone and idlers were never told apart).
    let bound = |base: Duration| Duration::from_secs(15 + 5) + base * 2;
    let (took, base) = idle_flood(true, bound);
    eprintln!("interested idlers: took {took:?}, baseline {base:?}");
    assert!(
        took.is_some(),
        "the honest leecher completes within {:?} of virtual time (baseline {base:?}) while \
         300 idle peers, half of them interested, hold the seed's slots",
        bound(base)
    );
}

#[test]
fn partial_handshakes_kept_refilled_do_not_lock_an_honest_leecher_out() {
    let content = make_content(2 * 1024 * KIB, 6);
    let rate = 512 * KIB;
    let base = baseline(&content, 64 * KIB as u32, rate);
    let mut s = Swarm::new(content, 64 * KIB as u32, rate);
    let seed = s.add_seed(Behaviour::Honest);
    let leecher = s.add_node(None, Behaviour::Honest);
    let pool = s.config.max_inbound_handshaking;
    // 500 addresses open connections that never send their handshake, 50 a second, so
    // the handshaking pool (100) is always full.
    let hostile = attackers(500);
    let mut next = 0usize;
    let mut open_some = |s: &mut Swarm, count: usize| {
        for _ in 0..count {
            let a = &hostile[next % hostile.len()];
            next += 1;
            let now = s.now();
            s.session_mut(seed)
                .connection_opened(a.addr, Direction::Inbound, now);
        }
    };
    for _ in 0..40 {
        open_some(&mut s, 5);
        s.run_until(Duration::from_millis(100), |_| false);
    }
    s.introduce_to(leecher, &[seed]);
    let start = s.now();
    // Bound: the leecher gets in on its first dial (the oldest silent socket gives way),
    // so it downloads at the baseline's pace: 2× the baseline plus 5 s.
    let bound = base * 2 + Duration::from_secs(5);
    while !s.is_complete(leecher) && s.now() - start < bound {
        open_some(&mut s, 5);
        s.run_until(Duration::from_millis(100), |s| s.is_complete(leecher));
    }
    assert!(
        s.is_complete(leecher),
        "the honest leecher completes within {bound:?} (baseline {base:?}) while {pool} \
         handshaking slots are kept full"
    );
    assert!(s.disk_matches(leecher));
}

#[test]
fn a_squatter_with_the_seeds_id_never_displaces_the_honest_connection() {
    let content = make_content(2 * 1024 * KIB, 7);
    let rate = 256 * KIB;
    let base = baseline(&content, 64 * KIB as u32, rate);
    let mut s = Swarm::new(content, 64 * KIB as u32, rate);
    let seed = s.add_seed(Behaviour::Honest);
    let leecher = s.add_node(None, Behaviour::Honest);
    let seed_id = s.session(seed).peer_id();
    let leecher_id = s.session(leecher).peer_id();
    // The squatter takes the seed's id at the leecher, and the leecher's id at the seed,
    // *before* the honest connection exists, and reconnects every second.
    let mut at_leecher = Attacker {
        addr: SocketAddr::from(([10, 9, 9, 9], 50000)),
        peer_id: seed_id,
        interested: false,
        conn: None,
    };
    let mut at_seed = Attacker {
        addr: SocketAddr::from(([10, 9, 9, 8], 50000)),
        peer_id: leecher_id,
        interested: true,
        conn: None,
    };
    // A third claims the leecher's own id at the leecher: a connection to itself, refused
    // on that id alone, with no effect on the real seed.
    let mut as_self = Attacker {
        addr: SocketAddr::from(([10, 9, 9, 7], 50000)),
        peer_id: leecher_id,
        interested: false,
        conn: None,
    };
    connect_and_handshake(&mut s, leecher, &mut at_leecher);
    connect_and_handshake(&mut s, seed, &mut at_seed);
    assert!(at_leecher.conn.is_some_and(|c| holds(&s, leecher, c)));
    s.introduce_to(leecher, &[seed]);
    let start = s.now();
    // Bound: a squatter that came first is displaced once it is `duplicate_grace` (5 s)
    // old; the leecher's redial after 5 s (or 10 s) then holds: 15 s plus 2× the baseline.
    let bound = Duration::from_secs(15) + base * 2;
    let mut honest: Option<ConnId> = None;
    let mut squats_refused_while_honest = 0;
    while !s.is_complete(leecher) && s.now() - start < bound {
        s.run_until(Duration::from_secs(1), |s| s.is_complete(leecher));
        // The honest connection, once it carried data, is the same one until the end.
        let t = s.torrent(leecher);
        let now_honest: Vec<ConnId> = s
            .session(leecher)
            .connections(t)
            .into_iter()
            .filter(|c| Some(*c) != at_leecher.conn)
            .collect();
        if let Some(h) = honest {
            assert!(
                s.is_complete(leecher) || now_honest.contains(&h),
                "the honest connection was dropped at {:?}",
                s.now()
            );
        } else if s.linked(leecher, seed)
            && s.session(leecher)
                .stats(t, s.now())
                .is_some_and(|st| st.pieces_have > 0)
        {
            honest = now_honest.first().copied();
        }
        if s.is_complete(leecher) {
            // Two seeds part ways (both sides have everything): nothing left to squat.
            break;
        }
        connect_and_handshake(&mut s, leecher, &mut as_self);
        assert!(!as_self.conn.is_some_and(|c| holds(&s, leecher, c)));
        for (node, a) in [(leecher, &mut at_leecher), (seed, &mut at_seed)] {
            connect_and_handshake(&mut s, node, a);
            if honest.is_some() {
                let held = a.conn.is_some_and(|c| holds(&s, node, c));
                assert!(
                    !held,
                    "a squatter displaced a productive connection at node {node}, {:?}",
                    s.now()
                );
                squats_refused_while_honest += 1;
            }
        }
    }
    assert!(
        s.is_complete(leecher),
        "the leecher completes within {bound:?} (baseline {base:?}) while its seed's id is \
         squatted"
    );
    assert!(s.disk_matches(leecher));
    assert!(honest.is_some());
    assert!(squats_refused_while_honest >= 2);
}

/// A leecher downloading from a seed, node `target`'s slots limited to 2: the honest
/// connection and one attacker. A newcomer arrives every second; only the idle attacker
/// may give way, never the connection carrying payload. `target` 0 is the seed (it
/// uploads to the leecher), 1 the leecher (the seed uploads to it).
fn newcomers_against_a_productive_peer(target: usize) {
    let content = make_content(2 * 1024 * KIB, 8);
    let rate = 128 * KIB;
    let mut s = Swarm::new(content, 64 * KIB as u32, rate);
    s.config.max_peers_per_torrent = 2;
    s.config.inbound_slots = 0;
    let seed = s.add_seed(Behaviour::Honest);
    let leecher = s.add_node(None, Behaviour::Honest);
    s.introduce_to(leecher, &[seed]);
    assert!(s.run_until(Duration::from_secs(10), |s| {
        s.session(leecher)
            .stats(s.torrent(leecher), s.now())
            .is_some_and(|st| st.pieces_have > 0)
    }));
    let t = s.torrent(target);
    let honest = s.session(target).connections(t);
    assert_eq!(honest.len(), 1);
    let mut hostile = attackers(40);
    let mut evicted_idle = 0;
    let mut last: Option<ConnId> = None;
    // 2 MiB at 128 KiB/s: 16 s at best; bound 40 s, a newcomer every second throughout.
    let bound = Duration::from_secs(40);
    let start = s.now();
    for a in hostile.iter_mut() {
        if s.is_complete(leecher) || s.now() - start >= bound {
            break;
        }
        connect_and_handshake(&mut s, target, a);
        let conns = s.session(target).connections(t);
        assert!(
            conns.contains(&honest[0]),
            "the productive connection was evicted at {:?}",
            s.now()
        );
        let joined = a.conn.is_some_and(|c| conns.contains(&c));
        if joined && last.is_some_and(|prev| !conns.contains(&prev)) {
            evicted_idle += 1;
        }
        if joined {
            last = a.conn;
        }
        s.run_until(Duration::from_secs(1), |s| s.is_complete(leecher));
    }
    s.run_until(bound.saturating_sub(s.now() - start), |s| {
        s.is_complete(leecher)
    });
    assert!(
        s.is_complete(leecher),
        "the leecher completes within {bound:?} while newcomers keep arriving"
    );
    assert!(s.disk_matches(leecher));
    // The first attacker takes the free slot; from `evict_idle_after` (10 s) on, an idle
    // one gives way to the next newcomer: at least one eviction before completion.
    assert!(
        evicted_idle >= 1,
        "idle attackers gave way to newcomers ({evicted_idle})"
    );
}

#[test]
fn a_peer_that_uploads_to_us_is_never_evicted() {
    newcomers_against_a_productive_peer(1);
}

#[test]
fn a_peer_we_upload_to_is_never_evicted() {
    newcomers_against_a_productive_peer(0);
}

#[test]
fn a_leecher_whose_slots_idle_attackers_fill_still_dials_its_seed() {
    let content = make_content(2 * 1024 * KIB, 9);
    let rate = 512 * KIB;
    let base = baseline(&content, 64 * KIB as u32, rate);
    let mut s = Swarm::new(content, 64 * KIB as u32, rate);
    let seed = s.add_seed(Behaviour::Honest);
    let leecher = s.add_node(None, Behaviour::Honest);
    let limit = s.config.max_peers_per_torrent;
    // 50 attackers dial the leecher, handshake, and say nothing more: every slot is
    // theirs, none interested, none interesting (they announce nothing).
    let mut hostile = attackers(limit);
    for a in hostile.iter_mut() {
        a.interested = false;
    }
    refill(&mut s, leecher, &mut hostile);
    let t = s.torrent(leecher);
    assert_eq!(s.session(leecher).connections(t).len(), limit);
    s.introduce_to(leecher, &[seed]);
    // Bound: once the attackers have been useless for `evict_idle_after` (10 s), the next
    // housekeeping tick dials the seed, whose handshake evicts one: 12 s plus 2× the
    // baseline.
    let bound = Duration::from_secs(12) + base * 2;
    let done = s.run_until(bound, |s| s.is_complete(leecher));
    assert!(
        done,
        "the leecher completes within {bound:?} (baseline {base:?}) with its slots full of \
         idle attackers"
    );
    assert!(s.disk_matches(leecher));
    // It got there by dialling past the limit and evicting, not by anyone leaving first:
    // the seed's connection joined while the attackers still held every other slot.
    let still = hostile
        .iter()
        .filter(|a| a.conn.is_some_and(|c| holds(&s, leecher, c)))
        .count();
    assert_eq!(still, limit - 1);
}

/// Twice as many attackers as the seed has slots handshake and idle, and every one not
/// established (refused, or evicted for a newcomer) connects again at once, every 200 ms.
/// An honest leecher dials the seed, and is told the seed's address again every 30 s (as
/// a tracker's answer would) so its give-up after three refusals does not end the run.
/// `memory` is `evicted_memory` (0: off). Returns how long the leecher took to complete
/// (`None`: not within `limit`).
fn reconnect_flood(memory: usize, limit: Duration) -> Option<Duration> {
    let content = make_content(2 * 1024 * KIB, 10);
    let rate = 512 * KIB;
    let mut s = Swarm::new(content, 64 * KIB as u32, rate);
    s.config.evicted_memory = memory;
    let seed = s.add_seed(Behaviour::Honest);
    let leecher = s.add_node(None, Behaviour::Honest);
    let slots = s.config.max_peers_per_torrent;
    let mut hostile = attackers(2 * slots);
    for a in hostile.iter_mut() {
        a.interested = false;
    }
    refill(&mut s, seed, &mut hostile);
    let t = s.torrent(seed);
    assert_eq!(s.session(seed).connections(t).len(), slots);
    s.run_until(Duration::from_secs(1), |_| false);
    let start = s.now();
    let mut told = None;
    while !s.is_complete(leecher) && s.now() - start < limit {
        if told.is_none_or(|at| s.now() - at >= Duration::from_secs(30)) {
            s.introduce_to(leecher, &[seed]);
            told = Some(s.now());
        }
        refill(&mut s, seed, &mut hostile);
        s.run_until(Duration::from_millis(200), |s| s.is_complete(leecher));
    }
    if !s.is_complete(leecher) {
        return None;
    }
    assert!(s.disk_matches(leecher));
    Some(s.now() - start)
}

#[test]
fn evicted_attackers_reconnecting_at_once_do_not_keep_an_honest_leecher_out() {
    let content = make_content(2 * 1024 * KIB, 10);
    let base = baseline(&content, 64 * KIB as u32, 512 * KIB);
    // Bound, with the memory: the first 50 attackers idle out at 10 s and the other 50
    // take their places (the evicted ones are remembered and refused while the seed is
    // full); at 20 s every attacker outside is remembered, so the 50 inside, idle, stay
    // until an honest newcomer evicts one. The leecher's dials at 0, 5 and 15 s find no
    // idle peer or a young one; it is told the seed again at 30 s and gets in: 35 s plus
    // 2× the baseline.
    let bound = Duration::from_secs(35) + base * 2;
    let with = reconnect_flood(1024, bound);
    // Without it, the evicted attackers reconnect with a fresh grace each time and evict
    // each other the moment any of them has idled 10 s: there is never an idle peer when
    // the leecher's handshake arrives.
    let limit = Duration::from_secs(120);
    let without = reconnect_flood(0, limit);
    println!(
        "honest leecher under a reconnecting idle flood (baseline {base:?}): with the \
         evicted-address memory {with:?}, without it {without:?} (None: not within \
         {limit:?})"
    );
    assert!(
        with.is_some(),
        "with the memory the honest leecher completes within {bound:?} of virtual time \
         (baseline {base:?}) while 100 idle attackers reconnect at once"
    );
    // Measurably worse without the memory: later by at least 30 s, or not at all.
    assert!(
        without.is_none_or(|w| with.is_some_and(|d| w >= d + Duration::from_secs(30))),
        "without the memory the leecher does worse: {without:?} against {with:?}"
    );
}

#[test]
fn an_evicted_address_loses_only_its_grace_and_is_admitted_when_there_is_room() {
    // A seed with two slots; three idle peers from distinct addresses (an honest seed
    // connecting to a seed looks the same: nothing to exchange).
    let mut s = Swarm::new(make_content(256 * KIB, 11), 64 * KIB as u32, 512 * KIB);
    s.config.max_peers_per_torrent = 2;
    let seed = s.add_seed(Behaviour::Honest);
    let mut peers = attackers(4);
    for a in peers.iter_mut() {
        a.interested = false;
    }
    connect_and_handshake(&mut s, seed, &mut peers[0]);
    connect_and_handshake(&mut s, seed, &mut peers[1]);
    s.run_until(Duration::from_secs(10), |_| false);
    // Idle for 10 s: p2 takes p0's place (the lowest id among equals).
    connect_and_handshake(&mut s, seed, &mut peers[2]);
    assert!(peers[2].conn.is_some_and(|c| holds(&s, seed, c)));
    assert!(
        !peers[0].conn.is_some_and(|c| holds(&s, seed, c)),
        "p0 evicted"
    );
    // p0 comes back at once: full, and it may not evict p1 (idle 10 s too) to get in.
    connect_and_handshake(&mut s, seed, &mut peers[0]);
    assert!(
        !peers[0].conn.is_some_and(|c| holds(&s, seed, c)),
        "no fresh grace"
    );
    assert!(peers[1].conn.is_some_and(|c| holds(&s, seed, c)));
    // p1 leaves: there is room, and p0 is admitted (no ban).
    if let Some(c) = peers[1].conn {
        let now = s.now();
        s.session_mut(seed).connection_closed(c, now);
    }
    s.run_until(Duration::from_millis(100), |_| false);
    connect_and_handshake(&mut s, seed, &mut peers[0]);
    assert!(
        peers[0].conn.is_some_and(|c| holds(&s, seed, c)),
        "admitted with room"
    );
    // A newcomer at once: p2 is young (0.1 s), but p0's idle time counts from before it
    // left, so p0 is the one that goes.
    connect_and_handshake(&mut s, seed, &mut peers[3]);
    assert!(peers[3].conn.is_some_and(|c| holds(&s, seed, c)));
    assert!(
        !peers[0].conn.is_some_and(|c| holds(&s, seed, c)),
        "p0 first to go"
    );
    assert!(peers[2].conn.is_some_and(|c| holds(&s, seed, c)));
}
