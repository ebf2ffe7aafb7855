use std::time::Duration;

use super::*;
use crate::choker::Choker;
use crate::picker::Picker;
use crate::storage::Layout;
use crate::torrent::test_world::World;
use crate::vocab::TorrentId;

/// A one-piece torrent with nothing verified, so it dials.
fn torrent() -> Torrent {
    let layout = Layout::new(16384, [16384]).expect("layout");
    let picker = Picker::new(16384, 16384).expect("picker");
    let choker = Choker::new(Default::default(), Instant::ZERO);
    Torrent::new(
        TorrentId(0),
        crate::InfoHash([1; 20]),
        crate::piece_hashes::PieceHashes::v1_only(vec![[0; 20]], 16384),
        layout,
        picker,
        choker,
    )
    .expect("torrent")
}

/// Runs `maybe_connect` at `now` and returns the addresses it dialled.
fn dial(t: &mut Torrent, config: &SessionConfig, now: Instant) -> Vec<SocketAddr> {
    let mut world = World::with(config.clone(), 7);
    t.maybe_connect(&mut world.ctx(), now);
    world
        .drain()
        .into_iter()
        .filter_map(|action| match action {
            Action::Connect { addr, .. } => Some(addr),
            _ => None,
        })
        .collect()
}

#[test]
fn failed_dials_back_off_doubling_then_give_up() {
    let config = SessionConfig::default(); // 5 s delay, 3 failures
    let addr: SocketAddr = "127.0.0.1:6881".parse().expect("addr");
    let mut t = torrent();
    t.add_candidates(
        &[addr],
        PeerSource::User,
        config.max_candidates,
        Instant::ZERO,
    );
    assert_eq!(dial(&mut t, &config, Instant::ZERO), vec![addr]);
    assert!(
        dial(&mut t, &config, Instant::ZERO).is_empty(),
        "dialled once at a time"
    );

    t.connect_failed(addr, &config, Instant::ZERO);
    assert!(dial(&mut t, &config, Instant::from_millis(4999)).is_empty());
    assert_eq!(dial(&mut t, &config, Instant::from_secs(5)), vec![addr]);

    t.connect_failed(addr, &config, Instant::from_secs(5));
    let second = Instant::from_secs(5) + Duration::from_secs(10);
    assert!(dial(&mut t, &config, Instant::from_secs(14)).is_empty());
    assert_eq!(dial(&mut t, &config, second), vec![addr]);

    t.connect_failed(addr, &config, second);
    assert!(!t.has_candidates());
    assert!(dial(&mut t, &config, Instant::from_secs(3600)).is_empty());
    let (listed, total) = t.given_up_peers(8);
    assert_eq!(total, 1);
    assert_eq!(
        listed,
        vec![FailedPeer {
            addr,
            failures: 3,
            connected: false
        }]
    );
}

#[test]
fn skipping_an_idle_walk_dials_exactly_what_walking_dials() {
    // Two torrents fed the same random addresses, failures, successes and clock; one
    // forgets its last idle walk before every `maybe_connect`, so it always walks.
    // They must dial the same addresses at the same instants.
    let config = SessionConfig::default();
    let mut rng = fastrand::Rng::with_seed(11);
    let (mut cached, mut walking) = (torrent(), torrent());
    let addr = |n: u8| SocketAddr::from(([10, 0, 1, n], 6881));
    let mut now = Instant::ZERO;
    let (mut dials, mut skipped) = (0, 0);
    for _ in 0..3_000 {
        match rng.u8(..10) {
            0 => {
                let batch: Vec<SocketAddr> =
                    (0..rng.u8(1..4)).map(|_| addr(rng.u8(..40))).collect();
                for t in [&mut cached, &mut walking] {
                    t.add_candidates(&batch, PeerSource::Pex, config.max_candidates, now);
                }
            }
            1..=3 => {
                if let Some(&a) = cached.connecting.iter().nth(rng.usize(..8)) {
                    for t in [&mut cached, &mut walking] {
                        t.connect_failed(a, &config, now);
                    }
                }
            }
            4 => {
                if let Some(&a) = cached.connecting.iter().next() {
                    for t in [&mut cached, &mut walking] {
                        t.forget_candidate(a);
                    }
                }
            }
            _ => now += Duration::from_millis(u64::from(rng.u16(..1500))),
        }
        let was_cached = cached.idle_dial_scan.is_some();
        walking.idle_dial_scan = None;
        let a = dial(&mut cached, &config, now);
        let b = dial(&mut walking, &config, now);
        assert_eq!(a, b, "at {now:?}");
        dials += a.len();
        skipped += usize::from(was_cached && cached.idle_dial_scan.is_some() && a.is_empty());
    }
    assert!(dials > 100, "only {dials} dials");
    assert!(skipped > 100, "only {skipped} walks skipped");
}

#[test]
fn candidates_are_bounded_and_never_banned() {
    let config = SessionConfig::default();
    let mut t = torrent();
    let banned: SocketAddr = "127.0.0.2:1".parse().expect("addr");
    t.trust.adjust(banned.ip(), -100, config.max_strikes);
    let addrs: Vec<SocketAddr> = (1..=5)
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        .chain([banned])
        .collect();
    t.add_candidates(&addrs, PeerSource::User, 3, Instant::ZERO);
    assert_eq!(t.candidates.len(), 3);
    t.add_candidates(&[banned], PeerSource::User, 10, Instant::ZERO);
    assert!(!t.candidates.contains_key(&banned));
    assert!(t.peers_seen());
}

#[test]
fn a_flood_never_pushes_out_or_outranks_a_better_source() {
    let config = SessionConfig::default(); // 8 dials at once
    let mut t = torrent();
    let user: SocketAddr = "127.0.0.9:9".parse().expect("addr");
    let pex: SocketAddr = "127.0.0.8:8".parse().expect("addr");
    let junk: Vec<SocketAddr> = (1..=1000u16)
        .map(|p| SocketAddr::from(([10, 0, 0, 1], p)))
        .collect();
    // The flood comes first and fills every place.
    t.add_candidates(&junk, PeerSource::Tracker, 100, Instant::ZERO);
    assert_eq!(t.candidates.len(), 100);
    t.add_candidates(&[user], PeerSource::User, 100, Instant::ZERO);
    t.add_candidates(&[pex], PeerSource::Pex, 100, Instant::ZERO);
    assert_eq!(t.candidates.len(), 100, "still bounded");
    assert!(t.candidates.contains_key(&user) && t.candidates.contains_key(&pex));
    // More flood cannot displace them.
    let more: Vec<SocketAddr> = (1..=1000u16)
        .map(|p| SocketAddr::from(([10, 0, 0, 2], p)))
        .collect();
    t.add_candidates(&more, PeerSource::Tracker, 100, Instant::ZERO);
    assert!(t.candidates.contains_key(&user) && t.candidates.contains_key(&pex));
    // Best source first: the user's, then PEX, then six of the flood.
    let dialled = dial(&mut t, &config, Instant::ZERO);
    assert_eq!(dialled.len(), config.max_connecting);
    assert_eq!(&dialled[..2], &[user, pex]);
    // A flood alone leaves a quarter of the dial slots to a better source coming later.
    let mut f = torrent();
    f.add_candidates(&junk, PeerSource::Tracker, 100, Instant::ZERO);
    assert_eq!(dial(&mut f, &config, Instant::ZERO).len(), 6);
    f.add_candidates(&[user], PeerSource::User, 100, Instant::ZERO);
    assert_eq!(dial(&mut f, &config, Instant::ZERO), vec![user]);
    // A better source renaming an address raises it; a worse one does not lower it.
    let some_junk = junk[5];
    t.add_candidates(&[user], PeerSource::Tracker, 100, Instant::ZERO);
    if let Some(c) = t.candidates.get(&some_junk) {
        let before = c.source;
        t.add_candidates(&[some_junk], PeerSource::Dht, 100, Instant::ZERO);
        assert!(t.candidates[&some_junk].source >= before.max(PeerSource::Dht));
    }
    assert_eq!(t.candidates[&user].source, PeerSource::User);
}

#[test]
fn a_batch_meeting_a_full_list_displaces_exactly_the_lower_ranked_and_raises_the_known() {
    let mut t = torrent();
    let at = |host: u8, port: u16| SocketAddr::from(([10, 0, 1, host], port));
    let pex: Vec<SocketAddr> = (1..=8).map(|p| at(1, p)).collect();
    let tracker = [at(2, 1), at(2, 2)];
    t.add_candidates(&pex, PeerSource::Pex, 10, Instant::ZERO);
    t.add_candidates(&tracker, PeerSource::Tracker, 10, Instant::ZERO);
    assert_eq!(t.candidates.len(), 10);
    // A PEX message naming both tracker addresses' first (raised, not added) and five
    // new ones after a new one: one tracker candidate is left to displace, so exactly
    // one newcomer gets in; the later known address is still raised.
    let news: Vec<SocketAddr> = (1..=5).map(|p| at(3, p)).collect();
    let mut batch = vec![tracker[0]];
    batch.extend(&news);
    batch.push(tracker[1]);
    t.add_candidates(&batch, PeerSource::Pex, 10, Instant::ZERO);
    assert_eq!(t.candidates.len(), 10, "still bounded");
    assert_eq!(t.candidates[&tracker[0]].source, PeerSource::Pex);
    let admitted: Vec<&SocketAddr> = news
        .iter()
        .filter(|a| t.candidates.contains_key(a))
        .collect();
    assert_eq!(admitted, vec![&news[0]]);
    // The other tracker address was displaced before the batch named it again, and
    // then could not get back in (nobody lower left to displace).
    assert!(!t.candidates.contains_key(&tracker[1]));
    assert!(t.candidates.values().all(|c| c.source == PeerSource::Pex));
}

#[test]
fn a_dialled_peer_keeps_its_rank_when_it_leaves_and_a_useful_one_is_proven() {
    let config = SessionConfig::default();
    let user: SocketAddr = "127.0.0.9:9".parse().expect("addr");
    let tracker: SocketAddr = "127.0.0.8:8".parse().expect("addr");
    let mut t = torrent();
    t.add_candidates(&[user], PeerSource::User, 100, Instant::ZERO);
    t.add_candidates(&[tracker], PeerSource::Tracker, 100, Instant::ZERO);
    let mut world = World::with(config, 7);
    let mut ctx = world.ctx();
    t.maybe_connect(&mut ctx, Instant::ZERO);
    for (n, addr) in [user, tracker].into_iter().enumerate() {
        let theirs = Handshake {
            reserved: wire::Reserved::NONE,
            info_hash: t.info_hash,
            peer_id: wire::PeerId([n as u8; 20]),
        };
        let conn = ConnId(n as u64);
        let outbound = Direction::Outbound(TorrentId(0));
        t.add_peer(
            conn,
            addr,
            outbound,
            wire::Reserved::NONE,
            &theirs,
            None,
            &mut ctx,
            Instant::ZERO,
        );
    }
    assert!(!t.has_candidates(), "connected peers are no candidates");
    // The tracker's peer sent a block: proven. The user's sent nothing: still the user's.
    if let Some(p) = t.peers.get_mut(&ConnId(1)) {
        p.last_block = Some(Instant::from_secs(1));
    }
    let later = Instant::from_secs(2);
    t.connection_closed(ConnId(0), &mut ctx, later);
    t.connection_closed(ConnId(1), &mut ctx, later);
    assert_eq!(t.candidates[&user].source, PeerSource::User);
    assert_eq!(t.candidates[&tracker].source, PeerSource::Proven);
    assert!(t.peer_sources.is_empty(), "nothing kept for peers gone");
}

/// A torrent at its peer limit (2) with both peers useless dials one address past the
/// limit, then no other until `evict_dial_interval` has passed since that dial, however
/// the dials end.
fn dials_past_the_limit(interval: Duration) -> Vec<(u64, SocketAddr)> {
    let config = SessionConfig {
        max_peers_per_torrent: 2,
        inbound_slots: 0,
        evict_dial_interval: interval,
        ..SessionConfig::default()
    };
    let mut t = torrent();
    let mut world = World::with(config.clone(), 7);
    for n in 0..2u8 {
        let theirs = Handshake {
            reserved: wire::Reserved::NONE,
            info_hash: t.info_hash,
            peer_id: wire::PeerId([n; 20]),
        };
        let addr = SocketAddr::from(([10, 0, 0, n], 6881));
        t.add_peer(
            ConnId(u64::from(n)),
            addr,
            Direction::Inbound,
            wire::Reserved::NONE,
            &theirs,
            None,
            &mut world.ctx(),
            Instant::ZERO,
        );
    }
    let spare: Vec<SocketAddr> = (1..=40u8)
        .map(|n| SocketAddr::from(([10, 0, 1, n], 6881)))
        .collect();
    t.add_candidates(
        &spare,
        PeerSource::Pex,
        config.max_candidates,
        Instant::ZERO,
    );
    let mut dialled = Vec::new();
    for second in 0..60 {
        let now = Instant::from_secs(second);
        for addr in dial(&mut t, &config, now) {
            dialled.push((second, addr));
            // The dial ends at once, refused: its slot is free again at the next tick.
            t.connect_failed(addr, &config, now);
        }
    }
    dialled
}

#[test]
fn dials_past_the_limit_are_spaced_by_the_interval() {
    // The two peers become useless (neither side interested) 3 s after connecting.
    let spaced = dials_past_the_limit(Duration::from_secs(10));
    let seconds: Vec<u64> = spaced.iter().map(|(s, _)| *s).collect();
    assert_eq!(seconds, vec![3, 13, 23, 33, 43, 53]);
    // Without the interval, one goes out every tick its predecessor has ended.
    let unspaced = dials_past_the_limit(Duration::ZERO);
    assert_eq!(unspaced.len(), 57, "{unspaced:?}");
}

#[test]
fn a_dialled_peer_that_leaves_a_full_candidate_list_keeps_the_bound() {
    // Regression (fuzz target `session_hostile`): a dialled peer that hung up came back
    // as a candidate even with the list full, one over `max_candidates` per peer.
    let config = SessionConfig {
        max_candidates: 4,
        ..SessionConfig::default()
    };
    let addr = |n: u8| -> SocketAddr { SocketAddr::from(([127, 0, 1, n], 6881)) };
    let mut t = torrent();
    t.add_candidates(&[addr(1), addr(2)], PeerSource::Tracker, 4, Instant::ZERO);
    let mut world = World::with(config.clone(), 7);
    let mut ctx = world.ctx();
    t.maybe_connect(&mut ctx, Instant::ZERO);
    let outbound = Direction::Outbound(TorrentId(0));
    for (n, a) in [addr(1), addr(2)].into_iter().enumerate() {
        let theirs = Handshake {
            reserved: wire::Reserved::NONE,
            info_hash: t.info_hash,
            peer_id: wire::PeerId([n as u8; 20]),
        };
        let conn = ConnId(n as u64);
        let none = wire::Reserved::NONE;
        t.add_peer(
            conn,
            a,
            outbound,
            none,
            &theirs,
            None,
            &mut ctx,
            Instant::ZERO,
        );
    }
    // The list fills up again while they are connected.
    let more: Vec<SocketAddr> = (10..20).map(addr).collect();
    t.add_candidates(&more, PeerSource::Tracker, 4, Instant::ZERO);
    assert_eq!(t.candidates.len(), 4);
    // One sent us data (proven: it displaces a tracker address), one did not.
    if let Some(p) = t.peers.get_mut(&ConnId(0)) {
        p.last_block = Some(Instant::from_secs(1));
    }
    let later = Instant::from_secs(2);
    t.connection_closed(ConnId(0), &mut ctx, later);
    t.connection_closed(ConnId(1), &mut ctx, later);
    assert_eq!(t.candidates.len(), 4, "the candidate bound holds");
    assert_eq!(t.candidates[&addr(1)].source, PeerSource::Proven);
    assert!(
        !t.candidates.contains_key(&addr(2)),
        "no room for a tracker address"
    );
}

#[test]
fn a_dial_in_flight_at_a_ban_does_not_make_the_ip_a_candidate_again() {
    // Regression (fuzz target `session_hostile`): the failure of a dial that was in
    // flight when its IP was banned put the banned address back among the candidates.
    let config = SessionConfig::default();
    let a: SocketAddr = "127.0.1.7:6881".parse().expect("addr");
    let mut t = torrent();
    t.add_candidates(&[a], PeerSource::Tracker, 100, Instant::ZERO);
    assert_eq!(dial(&mut t, &config, Instant::ZERO), vec![a]);
    let mut world = World::with(config.clone(), 7);
    t.ban_on_proof(a, &mut world.ctx(), Instant::from_secs(1));
    assert!(!t.candidates.contains_key(&a));
    t.connect_failed(a, &config, Instant::from_secs(2));
    assert!(
        !t.candidates.contains_key(&a),
        "a banned IP is never a candidate"
    );
    assert!(!t.has_candidates());
}
