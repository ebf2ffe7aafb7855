//! Slow readers, in virtual time: 20 peers that read at 8 KiB/s connect to a seed first and
//! stay interested forever; an honest leecher joining later must still be served at its
//! link's speed (upload slots by usefulness: slot trials, `core/src/torrent/choking.rs`).
//! And the other side of the rule: a seed whose every peer reads below the floor (its own
//! uplink is the limit) keeps all its slots full. Each test states its bound.

use std::time::Duration;

use unchoke_core::session::{ConnId, Direction, Event, TorrentId};
use unchoke_core::time::Instant;
use unchoke_core::wire::{BlockRequest, Handshake, Message, PeerId, Reserved};
use unchoke_sim::lab::{Behaviour, Swarm, make_content};

const KIB: usize = 1024;
/// Each link carries 1 MiB/s each way.
const LINK: usize = 1024 * KIB;
/// How fast an attacker reads.
const SLOW: usize = 8 * KIB;
const ATTACKERS: usize = 20;
/// The attackers' head start before the honest leecher joins: long enough for the seed to
/// have unchoked (and judged) every one of them, so the honest peer meets the attack at
/// full strength rather than a fresh seed.
const HEAD_START: Duration = Duration::from_secs(120);

/// A swarm over 2 MiB in 64 KiB pieces whose nodes account sends like the real runtimes.
fn swarm() -> Swarm {
    let mut s = Swarm::new(make_content(2 << 20, 17), 64 * KIB as u32, LINK);
    s.config.send_accounting = true;
    s
}

/// Seed (node 0) and honest leecher alone: how long the leecher takes, in virtual time.
fn baseline() -> Duration {
    let mut s = swarm();
    let seed = s.add_seed(Behaviour::Honest);
    let honest = s.add_node(Some(vec![]), Behaviour::Honest);
    s.introduce_to(honest, &[seed]);
    let start = s.now();
    assert!(
        s.run_until(Duration::from_secs(120), |s| s.is_complete(honest)),
        "baseline download finishes"
    );
    s.now() - start
}

/// What one attack run showed.
struct Outcome {
    /// Time from the honest leecher's joining to its completion, if it completed.
    took: Option<Duration>,
    /// The seed's choke rounds after the head start: (regular, optimistic) connections.
    rounds: Vec<(Instant, Vec<ConnId>, Option<ConnId>)>,
    /// The seed's connections to the attackers.
    attacker_conns: Vec<ConnId>,
    /// The seed's connection to the honest leecher.
    honest_conn: Option<ConnId>,
    fingerprint: (u64, u64),
}

/// The seed, 20 slow readers with [`HEAD_START`], then the honest leecher, run for at most
/// `limit` after it joins.
fn attack(limit: Duration) -> Outcome {
    let mut s = swarm();
    let seed = s.add_seed(Behaviour::Honest);
    // Attackers have nothing and never finish a piece (their disk never completes a
    // write), so they stay interested in the seed for the whole run.
    let attackers: Vec<usize> = (0..ATTACKERS)
        .map(|_| {
            let a = s.add_node(Some(vec![]), Behaviour::Stall);
            s.set_read_rate(a, SLOW);
            a
        })
        .collect();
    for &a in &attackers {
        s.introduce_to(a, &[seed]);
    }
    s.run_until(HEAD_START, |_| false);
    let honest = s.add_node(Some(vec![]), Behaviour::Honest);
    s.introduce_to(honest, &[seed]);
    let joined = s.now();
    let done = s.run_until(limit, |s| s.is_complete(honest));
    let attacker_conns = attackers
        .iter()
        .filter_map(|&a| s.conn_to(seed, a))
        .collect();
    let honest_conn = s.conn_to(seed, honest);
    let rounds = s
        .events(seed)
        .filter(|(at, _)| *at >= joined)
        .filter_map(|(at, e)| match e {
            Event::ChokeRound {
                regular,
                optimistic,
                ..
            } => Some((*at, regular.clone(), *optimistic)),
            _ => None,
        })
        .collect();
    Outcome {
        took: done.then(|| s.now() - joined),
        rounds,
        attacker_conns,
        honest_conn,
        fingerprint: s.fingerprint(),
    }
}

#[test]
fn honest_leecher_completes_within_three_baselines_while_slow_readers_attack() {
    let base = baseline();
    // Bound: 2× the unattacked download plus 5 s (two slot trials of 2–3 s: the longest a
    // slow reader keeps a slot the honest leecher asks for). Measured: the baseline itself (the
    // slow readers were all judged during the head start, so the leecher's interest takes
    // a slot from one of them at once).
    let bound = base * 2 + Duration::from_secs(5);
    let out = attack(bound + Duration::from_secs(60));
    assert_eq!(
        out.attacker_conns.len(),
        ATTACKERS,
        "every attacker stays connected"
    );
    let took = out.took.expect("the honest leecher completes under attack");
    assert!(
        took <= bound,
        "honest leecher took {took:?} under attack, bound {bound:?} (baseline {base:?})"
    );
    // From the first round after it joined until it completes, the honest leecher holds
    // a regular slot in every round: the slow readers rank after it (they keep only the
    // slots it cannot use).
    let honest = out
        .honest_conn
        .expect("the seed is connected to the honest leecher");
    let finished = out
        .rounds
        .first()
        .map(|r| r.0)
        .expect("the seed ran choke rounds")
        + took;
    let during: Vec<_> = out
        .rounds
        .iter()
        .skip(1)
        .filter(|r| r.0 < finished)
        .collect();
    for (at, regular, _optimistic) in &during {
        assert!(
            regular.contains(&honest),
            "at {at:?} the honest leecher holds no regular slot: {regular:?}"
        );
    }
    eprintln!(
        "baseline {base:?}, under attack {took:?}, {} rounds checked",
        during.len()
    );
}

#[test]
fn slow_reader_attack_is_deterministic() {
    let limit = Duration::from_secs(60);
    let a = attack(limit);
    let b = attack(limit);
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_eq!(a.took, b.took);
}

#[test]
fn a_seed_whose_every_peer_reads_below_the_floor_keeps_its_slots_full() {
    // Every link carries 12 KiB/s, below the 16 KiB/s floor: as for a seed whose own
    // uplink gives each peer less than the floor, every unchoked peer takes too little.
    // That is no reason to serve fewer of them. Bound: from the second round on, while at
    // least four leechers are interested, the seed holds four regular slots.
    let mut s = Swarm::new(make_content(16 << 20, 23), 256 * KIB as u32, 12 * KIB);
    s.config.send_accounting = true;
    let seed = s.add_seed(Behaviour::Honest);
    let leechers: Vec<usize> = (0..6)
        .map(|_| s.add_node(Some(vec![]), Behaviour::Honest))
        .collect();
    for &l in &leechers {
        s.introduce_to(l, &[seed]);
    }
    s.run_until(Duration::from_secs(120), |_| false);
    assert!(
        leechers.iter().all(|&l| !s.is_complete(l)),
        "every leecher still wants pieces from the seed at the end"
    );
    let rounds: Vec<_> = s
        .events(seed)
        .filter_map(|(at, e)| match e {
            Event::ChokeRound { regular, .. } => Some((*at, regular.len())),
            _ => None,
        })
        .collect();
    assert!(rounds.len() >= 10, "the seed ran its rounds: {rounds:?}");
    for (at, held) in rounds.iter().skip(2) {
        assert_eq!(
            *held, 4,
            "at {at:?} the seed held {held} regular slots: {rounds:?}"
        );
    }
}

/// A seed session (RNG seed `rng`) of [`swarm`]'s torrent with every piece.
fn full_seed(rng: u64) -> (unchoke_core::session::Session, TorrentId) {
    let s = swarm();
    let mut seed = unchoke_core::session::Session::new(s.config.clone(), rng, Instant::ZERO);
    let mut all = unchoke_core::bitfield::Bitfield::new(s.metainfo.info.piece_count());
    for p in 0..s.metainfo.info.piece_count() {
        all.set(p);
    }
    let torrent = seed
        .add_torrent(&s.metainfo, Some(all), Instant::ZERO)
        .expect("add torrent");
    (seed, torrent)
}

/// An inbound peer from 127.0.0.`ip` (fast extension on, peer id all `ip`) that
/// handshakes and says `interested` at `now`.
fn interested_peer(
    seed: &mut unchoke_core::session::Session,
    torrent: TorrentId,
    ip: u8,
    now: Instant,
) -> ConnId {
    let addr = format!("127.0.0.{ip}:40000").parse().expect("addr");
    let conn = seed.connection_opened(addr, Direction::Inbound, now);
    let mut buf = bytes::BytesMut::new();
    Handshake {
        reserved: Reserved::NONE.with_fast(),
        info_hash: swarm().metainfo.info_hash,
        peer_id: PeerId([ip; 20]),
    }
    .encode(&mut buf);
    Message::Interested.encode(&mut buf);
    seed.handle_bytes(conn, &mut buf, now);
    assert!(seed.connections(torrent).contains(&conn));
    conn
}

/// A [`full_seed`] and one [`interested_peer`] that joined at time zero.
fn seed_with_one_peer(rng: u64) -> (unchoke_core::session::Session, ConnId) {
    let (mut seed, torrent) = full_seed(rng);
    let conn = interested_peer(&mut seed, torrent, 9, Instant::ZERO);
    (seed, conn)
}

/// Every `Send` payload a session emits until it has nothing more to do now.
fn drain_sends(session: &mut unchoke_core::session::Session) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(action) = session.poll_action() {
        if let unchoke_core::session::Action::Send { data, .. } = action {
            out.extend_from_slice(&data);
        }
    }
    out
}

/// Whether `haystack` contains the encoding of `message`.
fn contains(haystack: &[u8], message: &Message) -> bool {
    let mut needle = bytes::BytesMut::new();
    message.encode(&mut needle);
    haystack.windows(needle.len()).any(|w| w == &needle[..])
}

#[test]
fn a_parked_upload_request_is_rejected_after_the_request_timeout() {
    // A seed whose disk never answers a read: the request stays parked. It must be
    // answered with a reject (BEP 6) within `upload_request_timeout` (30 s) plus one choke
    // round (10 s), and not before the time-out.
    let (mut seed, conn) = seed_with_one_peer(5);
    let mut now = Instant::ZERO;
    let sent = drain_sends(&mut seed);
    assert!(
        contains(&sent, &Message::Unchoke),
        "the only peer is unchoked"
    );
    let req = BlockRequest {
        index: 0,
        begin: 0,
        length: 16 * KIB as u32,
    };
    let mut buf = bytes::BytesMut::new();
    Message::Request(req).encode(&mut buf);
    seed.handle_bytes(conn, &mut buf, now);
    let mut rejected_at = None;
    while now < Instant::from_secs(60) && rejected_at.is_none() {
        now = seed
            .poll_timeout()
            .map_or(now + Duration::from_secs(1), |t| t.max(now))
            .min(now + Duration::from_secs(1));
        seed.handle_timeout(now);
        if contains(&drain_sends(&mut seed), &Message::RejectRequest(req)) {
            rejected_at = Some(now);
        }
    }
    let at = rejected_at.expect("the parked request is rejected");
    assert!(
        at >= Instant::from_secs(30) && at <= Instant::from_secs(40),
        "rejected at {at:?}"
    );
}

#[test]
fn cycling_request_and_cancel_never_has_more_reads_in_flight_than_the_queue_bound() {
    // A peer that requests a block and cancels it at once, over and over, while our disk
    // has not answered: each request used to start a read and each cancel to forget it,
    // so reads in flight grew without bound. Bound: never more than `max_queued_uploads`
    // reads unanswered for the peer, however many it asks for.
    let (mut seed, conn) = seed_with_one_peer(6);
    let now = Instant::ZERO;
    let max = swarm().config.max_queued_uploads;
    let mut reads = 0usize;
    for i in 0..(3 * max as u32) {
        let req = BlockRequest {
            index: i % 8,
            begin: 0,
            length: 16 * KIB as u32,
        };
        let mut buf = bytes::BytesMut::new();
        Message::Request(req).encode(&mut buf);
        Message::Cancel(req).encode(&mut buf);
        seed.handle_bytes(conn, &mut buf, now);
        while let Some(action) = seed.poll_action() {
            if matches!(action, unchoke_core::session::Action::ReadBlock { .. }) {
                reads += 1;
            }
        }
    }
    assert!(reads > 0, "the unchoked peer's requests were read at all");
    assert!(
        reads <= max,
        "{reads} reads in flight for one peer, bound {max}"
    );
}

/// A connection sent `unchoke`, and when.
type Unchoked = (ConnId, Instant);

/// One pass over a seed's actions: answers every read at once with zeros and
/// reports every byte handed out as accepted at once (a kernel send buffer with room for
/// all of it), and notes each connection sent an `unchoke` at `now`.
fn answer_at_once(
    seed: &mut unchoke_core::session::Session,
    now: Instant,
    unchoked: &mut Vec<Unchoked>,
) {
    use unchoke_core::session::Action;
    while let Some(action) = seed.poll_action() {
        match action {
            Action::ReadBlock { conn, block, .. } => {
                let data = bytes::Bytes::from(vec![0u8; block.length as usize]);
                seed.disk_read_done(conn, block, Ok(data), now);
            }
            Action::Send { conn, data } => {
                if contains(&data, &Message::Unchoke) {
                    unchoked.push((conn, now));
                }
                seed.handle_sent(conn, data.len(), now);
            }
            Action::SendBlock { conn, header, data } => {
                seed.handle_sent(conn, header.len() + data.len(), now);
            }
            _ => {}
        }
    }
}

#[test]
fn a_slow_reader_whose_pipeline_the_send_buffer_swallowed_loses_its_slot_two_seconds_after_its_unchoke()
 {
    // Five peers take the seed's five slots (four regular, one optimistic) at time zero;
    // each asks for ten blocks, which its socket accepts at once (a kernel send buffer
    // swallows a slow reader's whole pipeline at our speed), and then takes nothing more.
    // An honest peer says `interested` at 0.5 s. The readers' opening second shows
    // 160 KiB each and must not count as reading; the rest of their first window shows
    // nothing taken, so at exactly 2 s (their unchoke plus `slot_trial`, at its own
    // deadline and not on a 1 s tick) the honest peer gets a slot. Judging the whole first
    // window would have found 80 KiB/s there and waited for a second window (4 s or more).
    assert_eq!(swarm().config.slot_trial, Duration::from_secs(2));
    let (mut seed, torrent) = full_seed(11);
    let join = |seed: &mut unchoke_core::session::Session, i: u8, now: Instant| {
        interested_peer(seed, torrent, 10 + i, now)
    };
    let mut unchoked = Vec::new();
    let readers: Vec<ConnId> = (0..5).map(|i| join(&mut seed, i, Instant::ZERO)).collect();
    answer_at_once(&mut seed, Instant::ZERO, &mut unchoked);
    assert_eq!(unchoked.len(), 5, "every reader holds a slot: {unchoked:?}");
    for (n, &conn) in readers.iter().enumerate() {
        let mut buf = bytes::BytesMut::new();
        // Ten blocks over three of the 64 KiB pieces, a range of its own per reader.
        for b in 0..10u32 {
            Message::Request(BlockRequest {
                index: n as u32 * 3 + b / 4,
                begin: (b % 4) * 16 * KIB as u32,
                length: 16 * KIB as u32,
            })
            .encode(&mut buf);
        }
        seed.handle_bytes(conn, &mut buf, Instant::ZERO);
    }
    answer_at_once(&mut seed, Instant::ZERO, &mut unchoked);
    for &conn in &readers {
        assert!(
            seed.connections(torrent).contains(&conn),
            "a reader was dropped"
        );
    }
    // The timers, as a driver runs them: time jumps to each deadline the session asks
    // for, nothing finer, until `until` or `stop` holds.
    let run = |seed: &mut unchoke_core::session::Session,
               unchoked: &mut Vec<Unchoked>,
               from: Instant,
               until: Instant,
               stop: &dyn Fn(&[Unchoked]) -> bool| {
        let mut now = from;
        loop {
            let next = seed
                .poll_timeout()
                .expect("a running torrent has a deadline");
            if next > until || stop(unchoked) {
                return;
            }
            now = next.max(now);
            seed.handle_timeout(now);
            answer_at_once(seed, now, unchoked);
        }
    };
    let half = Instant::from_micros(500_000);
    run(&mut seed, &mut unchoked, Instant::ZERO, half, &|_| false);
    assert_eq!(
        unchoked.len(),
        5,
        "the first round kept the readers: {unchoked:?}"
    );
    let honest = join(&mut seed, 9, half);
    answer_at_once(&mut seed, half, &mut unchoked);
    run(
        &mut seed,
        &mut unchoked,
        half,
        Instant::from_secs(10),
        &|u| u.iter().any(|(c, _)| *c == honest),
    );
    let at = unchoked
        .iter()
        .find(|(c, _)| *c == honest)
        .map(|(_, t)| *t)
        .expect("the honest peer gets a slot");
    assert_eq!(
        at,
        Instant::from_secs(2),
        "unchoked at {at:?}: {unchoked:?} readers {readers:?}"
    );
}

#[test]
fn with_no_one_waiting_for_a_slot_the_verdicts_wait_for_the_housekeeping_tick() {
    // One peer, unchoked at 0.5 s, and no one else: a verdict on it could hand its slot to
    // no one, so the session must not wake at its verdict instants (1.5 s, the opening's
    // end; 2.5 s, the first window's) but only at its usual deadlines (the 1 s tick, the
    // choke round), where the verdict is made as well.
    let (mut seed, torrent) = full_seed(12);
    let half = Instant::from_micros(500_000);
    let conn = interested_peer(&mut seed, torrent, 9, half);
    let mut unchoked = Vec::new();
    answer_at_once(&mut seed, half, &mut unchoked);
    assert_eq!(
        unchoked,
        vec![(conn, half)],
        "the only peer is unchoked at once"
    );
    let mut wakes = Vec::new();
    let mut now = half;
    while now < Instant::from_secs(5) {
        now = seed
            .poll_timeout()
            .expect("a running torrent has a deadline")
            .max(now);
        wakes.push(now);
        seed.handle_timeout(now);
        answer_at_once(&mut seed, now, &mut unchoked);
    }
    for verdict in [1_500_000, 2_500_000, 4_500_000] {
        assert!(
            !wakes.contains(&Instant::from_micros(verdict)),
            "woken at a verdict instant with no one waiting: {wakes:?}"
        );
    }
}
