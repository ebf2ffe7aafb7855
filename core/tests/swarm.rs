//! Whole-swarm behaviour of the sans-IO core, deterministically, in memory: real sessions,
//! byte pipes with bandwidth, emulated disks, virtual time. No sockets.

use std::collections::BTreeMap;
use std::time::Duration;

use unchoke_core::bitfield::Bitfield;
use unchoke_core::session::Event;
use unchoke_core::time::Instant;
use unchoke_core::wire::Message;
use unchoke_sim::lab::{Behaviour, Swarm, make_content};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

fn all_complete(s: &Swarm, nodes: &[usize]) -> bool {
    nodes.iter().all(|&i| s.is_complete(i))
}

#[test]
fn one_seed_one_leecher() {
    let mut s = Swarm::new(make_content(MIB + 12_345, 1), 64 * KIB as u32, 4 * MIB);
    s.add_seed(Behaviour::Honest);
    let l = s.add_node(None, Behaviour::Honest);
    s.introduce(l);
    assert!(s.run_until(Duration::from_secs(120), |s| s.is_complete(l)));
    s.settle();
    assert!(s.disk_matches(l));
    let pieces = s.metainfo.info.piece_count();
    let verified = s
        .events(l)
        .filter(|(_, e)| matches!(e, Event::PieceVerified { .. }))
        .count();
    assert_eq!(verified as u32, pieces, "each piece verified exactly once");
    assert!(
        s.events(l)
            .any(|(_, e)| matches!(e, Event::TorrentComplete { .. }))
    );
}

/// Checks the tit-for-tat rules on everything that crossed the wire.
fn assert_choking_rules(s: &Swarm) {
    // Never more than 4 regular + 1 optimistic unchoked by any node at any time. Changes
    // made in one step reach the wire in connection order, so the count is checked once
    // every message of an instant has been applied.
    let mut unchoked: BTreeMap<usize, BTreeMap<usize, bool>> = BTreeMap::new();
    let mut i = 0;
    while i < s.sniffed().len() {
        let at = s.sniffed()[i].at;
        while i < s.sniffed().len() && s.sniffed()[i].at == at {
            let m = &s.sniffed()[i];
            let set = unchoked.entry(m.from).or_default();
            match m.message {
                Some(Message::Unchoke) => {
                    set.insert(m.to, true);
                }
                Some(Message::Choke) | None => {
                    set.insert(m.to, false);
                }
                _ => {}
            }
            i += 1;
        }
        for (node, set) in &unchoked {
            let n = set.values().filter(|u| **u).count();
            assert!(n <= 5, "node {node} unchoked {n} peers at {at:?}");
        }
    }
    // Regular rounds exactly every 10 s; optimistic rotations on every third round, 30 s
    // apart.
    for i in 0..s.node_count() {
        let rounds: Vec<(Instant, u64, bool)> = s
            .events(i)
            .filter_map(|(t, e)| match e {
                Event::ChokeRound {
                    round,
                    optimistic_rotated,
                    ..
                } => Some((*t, *round, *optimistic_rotated)),
                _ => None,
            })
            .collect();
        assert!(rounds.len() >= 5, "node {i} ran {} rounds", rounds.len());
        // Round 0 runs at the first tick after the torrent is added; the schedule is anchored
        // at that moment, so from round 1 on every round is on the 10 s grid.
        let rounds = &rounds[1..];
        for w in rounds.windows(2) {
            assert_eq!(w[1].0 - w[0].0, Duration::from_secs(10), "node {i}: {w:?}");
            assert_eq!(w[1].1, w[0].1 + 1);
        }
        for (t, round, rotated) in rounds {
            if round % 3 == 0 {
                assert!(
                    rotated,
                    "node {i}: round {round} at {t:?} must rotate the optimistic slot"
                );
            }
            assert_eq!(t.as_micros() % 10_000_000, 0, "round off the 10 s grid");
        }
        let scheduled: Vec<Instant> = rounds
            .iter()
            .filter(|(_, r, _)| r % 3 == 0)
            .map(|(t, _, _)| *t)
            .collect();
        for w in scheduled.windows(2) {
            assert_eq!(w[1] - w[0], Duration::from_secs(30));
        }
    }
}

fn eight_leechers(seed_content: u64) -> Swarm {
    let mut s = Swarm::new(
        make_content(4 * MIB, seed_content),
        64 * KIB as u32,
        32 * KIB,
    );
    s.sniff();
    s.add_seed(Behaviour::Honest);
    let leechers: Vec<usize> = (0..8)
        .map(|_| s.add_node(None, Behaviour::Honest))
        .collect();
    for &l in &leechers {
        s.introduce(l);
    }
    assert!(
        s.run_until(Duration::from_secs(600), |s| all_complete(s, &leechers)),
        "not all leechers completed by {:?}",
        s.now()
    );
    s
}

#[test]
fn one_seed_eight_leechers() {
    let mut s = eight_leechers(2);
    println!("eight leechers done at {:?}", s.now());
    s.settle();
    for l in 1..=8 {
        assert!(s.disk_matches(l), "leecher {l} bytes differ");
    }
    assert_choking_rules(&s);
    // Leechers trade with each other: the seed is not the only uploader.
    let leecher_upload: u64 = (1..=8)
        .map(|i| {
            s.session(i)
                .stats(s.torrent(i), s.now())
                .map_or(0, |st| st.uploaded)
        })
        .sum();
    let seed_upload = s
        .session(0)
        .stats(s.torrent(0), s.now())
        .map_or(0, |st| st.uploaded);
    assert!(
        leecher_upload > seed_upload,
        "leechers uploaded {leecher_upload} B, seed {seed_upload} B: peers should redistribute"
    );
    // Endgame happened and sent cancels for duplicate requests.
    assert!(
        s.sniffed()
            .iter()
            .any(|m| matches!(m.message, Some(Message::Cancel(_)))),
        "no cancel was sent"
    );
}

#[test]
fn same_seed_same_actions() {
    let a = eight_leechers(3);
    let b = eight_leechers(3);
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_eq!(a.now(), b.now());
}

#[test]
fn leecher_leaves_with_half_and_comes_back() {
    let mut s = Swarm::new(make_content(2 * MIB, 4), 32 * KIB as u32, MIB);
    s.add_seed(Behaviour::Honest);
    let a = s.add_node(None, Behaviour::Honest);
    let b = s.add_node(None, Behaviour::Honest);
    s.introduce(a);
    s.introduce(b);
    let pieces = s.metainfo.info.piece_count();
    let half = |s: &Swarm| {
        s.session(a)
            .stats(s.torrent(a), s.now())
            .is_some_and(|st| st.pieces_have >= pieces / 2)
    };
    assert!(s.run_until(Duration::from_secs(120), half));
    let had = s.session(a).have(s.torrent(a)).cloned().unwrap();
    s.leave(a);
    // While it is away the others go on; b must still be able to finish from the seed.
    assert!(s.run_until(Duration::from_secs(300), |s| s.is_complete(b)));
    s.run_until(Duration::from_secs(45), |_| false);
    s.rejoin(a);
    assert!(s.run_until(Duration::from_secs(300), |s| s.is_complete(a)));
    assert!(s.disk_matches(a) && s.disk_matches(b));
    // Nothing verified before leaving was downloaded again.
    let after = s.session(a).stats(s.torrent(a), s.now()).unwrap();
    let remaining = u64::from(pieces - had.count_ones()) * 32 * KIB as u64;
    assert!(
        after.downloaded <= remaining + 16 * KIB as u64 * 8,
        "re-downloaded {} B for {} B missing",
        after.downloaded,
        remaining
    );
}

#[test]
fn corrupt_peer_is_banned_and_download_completes() {
    let mut s = Swarm::new(make_content(2 * MIB, 5), 32 * KIB as u32, MIB);
    let bad = s.add_seed(Behaviour::Corrupt);
    s.add_seed(Behaviour::Honest);
    let l = s.add_node(None, Behaviour::Honest);
    s.introduce(l);
    assert!(s.run_until(Duration::from_secs(300), |s| s.is_complete(l)));
    s.settle();
    assert!(s.disk_matches(l));
    let bad_addr = s.addr(bad);
    assert!(
        s.events(l)
            .any(|(_, e)| matches!(e, Event::PeerBanned { addr, .. } if *addr == bad_addr)),
        "corrupt peer not banned"
    );
    assert!(
        s.events(l)
            .any(|(_, e)| matches!(e, Event::HashFailed { .. }))
    );
}

#[test]
fn rarest_piece_is_requested_first() {
    // 16 pieces of 32 KiB. The leecher has 0..6 (past the random-first phase). Among what it
    // lacks, piece 9 is held by one peer only; every other missing piece by three.
    let mut s = Swarm::new(make_content(16 * 32 * KIB, 6), 32 * KIB as u32, MIB);
    s.sniff();
    let others: Vec<u32> = (6..16).filter(|p| *p != 9).collect();
    let a = s.add_node(Some((6..16).collect()), Behaviour::Honest);
    let b = s.add_node(Some(others.clone()), Behaviour::Honest);
    let c = s.add_node(Some(others), Behaviour::Honest);
    let l = s.add_node(Some((0..6).collect()), Behaviour::Honest);
    let _ = (b, c);
    s.introduce(l);
    assert!(s.run_until(Duration::from_secs(60), |s| {
        s.sniffed()
            .iter()
            .any(|m| m.from == l && m.to == a && matches!(m.message, Some(Message::Request(_))))
    }));
    let first = s
        .sniffed()
        .iter()
        .find_map(|m| match m.message {
            Some(Message::Request(r)) if m.from == l && m.to == a => Some(r),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        first.index, 9,
        "first request to the only holder of piece 9"
    );
}

#[test]
fn requests_a_peer_never_answers_are_cancelled_at_the_request_timeout() {
    // The staller holds the odd pieces, unchokes the leecher and takes its requests but
    // never sends a block: the leecher's first requests are cancelled 30 s later (the
    // default `request_timeout`), at the first one-second tick past it, not at some later
    // walk over its peers. The staller comes 10 s after the leecher's first tick, so the
    // timer starts between two walks.
    let mut s = Swarm::new(make_content(16 * 32 * KIB, 7), 32 * KIB as u32, MIB);
    let l = s.add_node(
        Some((0..16).filter(|p| p % 2 == 0).collect()),
        Behaviour::Honest,
    );
    s.run_until(Duration::from_secs(10), |_| false);
    let staller = s.add_node(
        Some((0..16).filter(|p| p % 2 == 1).collect()),
        Behaviour::Stall,
    );
    s.sniff();
    s.introduce(l);
    s.run_until(Duration::from_secs(60), |_| false);
    let first = |kind: fn(&Message) -> bool| {
        s.sniffed()
            .iter()
            .find(|m| m.from == l && m.to == staller && m.message.as_ref().is_some_and(kind))
            .map(|m| m.at)
    };
    let request = first(|m| matches!(m, Message::Request(_))).expect("a request to the staller");
    let cancel = first(|m| matches!(m, Message::Cancel(_))).expect("a cancel to the staller");
    let waited = cancel - request;
    assert!(
        waited >= Duration::from_secs(30) && waited <= Duration::from_secs(31),
        "cancelled {waited:?} after the first request"
    );
}

#[test]
fn snubbed_peer_loses_its_regular_slot() {
    // The leecher has the even pieces, the staller the odd ones. The staller unchokes the
    // leecher and takes its requests but never sends a block: after 60 s it is snubbed and
    // must not hold a regular slot in the leecher's later rounds.
    let mut s = Swarm::new(make_content(16 * 32 * KIB, 7), 32 * KIB as u32, MIB);
    let staller = s.add_node(
        Some((0..16).filter(|p| p % 2 == 1).collect()),
        Behaviour::Stall,
    );
    let l = s.add_node(
        Some((0..16).filter(|p| p % 2 == 0).collect()),
        Behaviour::Honest,
    );
    s.introduce(l);
    s.run_until(Duration::from_secs(130), |_| false);
    let staller_conn = s.session(l).connections(s.torrent(l));
    assert_eq!(staller_conn.len(), 1, "leecher connected to the staller");
    let rounds: Vec<(Instant, bool)> = s
        .events(l)
        .filter_map(|(t, e)| match e {
            Event::ChokeRound { regular, .. } => Some((*t, regular.contains(&staller_conn[0]))),
            _ => None,
        })
        .collect();
    // Early on the staller is the only interested peer and gets a regular slot.
    assert!(
        rounds
            .iter()
            .any(|(t, reg)| *reg && t.as_micros() < 60_000_000),
        "{rounds:?}"
    );
    assert!(
        rounds.iter().any(|(t, _)| t.as_micros() >= 80_000_000),
        "{rounds:?}"
    );
    // After 60 s of waiting (plus one round), never again.
    for (t, reg) in &rounds {
        if t.as_micros() >= 80_000_000 {
            assert!(!reg, "snubbed peer held a regular slot at {t:?}");
        }
    }
    let _ = staller;
}

#[test]
fn skipped_files_are_not_downloaded_until_wanted() {
    use unchoke_core::picker::Priority;
    let mut s = Swarm::new(make_content(MIB, 8), 32 * KIB as u32, MIB);
    s.sniff();
    s.add_seed(Behaviour::Honest);
    let l = s.add_node(None, Behaviour::Honest);
    let (t, now) = (s.torrent(l), s.now());
    s.session_mut(l)
        .set_file_priorities(t, &[Priority::Skip], now);
    assert_eq!(s.session(l).piece_priority(t, 0), Some(Priority::Skip));
    s.introduce(l);
    s.run_until(Duration::from_secs(20), |_| false);
    let requests = |s: &Swarm| {
        s.sniffed()
            .iter()
            .filter(|m| m.from == l && matches!(m.message, Some(Message::Request(_))))
            .count()
    };
    assert_eq!(requests(&s), 0, "a skipped file was requested");
    let stats = s.session(l).stats(t, s.now()).unwrap();
    assert_eq!((stats.pieces_have, stats.pieces_missing), (0, 0));
    // Wanted again: it downloads.
    let now = s.now();
    s.session_mut(l)
        .set_file_priorities(t, &[Priority::High], now);
    assert!(s.run_until(Duration::from_secs(60), |s| s.is_complete(l)
        && s.disk_matches(l)));
    assert!(requests(&s) > 0);
}

/// `Session::pieces_written` is what resume data records so a restart reads only pieces
/// that may hold data: every piece with any byte on disk must be in it.
#[test]
fn pieces_written_covers_every_piece_on_disk() {
    let mut s = Swarm::new(make_content(MIB, 9), 32 * KIB as u32, MIB);
    s.add_seed(Behaviour::Honest);
    let l = s.add_node(Some(vec![0]), Behaviour::Honest);
    let t = s.torrent(l);
    let pieces = s.metainfo.info.piece_count();
    // What a start-up check found written but unverified; a wrong length is ignored.
    let mut found = Bitfield::new(pieces);
    found.set(pieces - 1);
    s.session_mut(l).note_pieces_written(t, &found);
    s.session_mut(l)
        .note_pieces_written(t, &Bitfield::full(pieces + 1));
    let written = |s: &Swarm| s.session(l).pieces_written(t).cloned().unwrap();
    assert_eq!(written(&s).ones().collect::<Vec<_>>(), vec![0, pieces - 1]);
    s.introduce(l);
    let half = |s: &Swarm| {
        s.session(l)
            .stats(t, s.now())
            .is_some_and(|st| st.pieces_have >= pieces / 2)
    };
    assert!(s.run_until(Duration::from_secs(120), half));
    let written = written(&s);
    let have = s.session(l).have(t).cloned().unwrap();
    assert!(have.ones().all(|p| written.get(p)), "written covers have");
    let piece_len = 32 * KIB;
    for p in 0..pieces {
        let start = p as usize * piece_len;
        let end = (start + piece_len).min(s.disk(l).len());
        if s.disk(l)[start..end].iter().any(|&b| b != 0) {
            assert!(written.get(p), "piece {p} holds data but is not in written");
        }
    }
    assert!(
        written.count_ones() < pieces,
        "not everything: the download is half done"
    );
}

#[test]
fn an_upload_only_partial_seed_serves_and_never_downloads() {
    let piece_len = 32 * KIB;
    let mut s = Swarm::new(make_content(MIB, 21), piece_len as u32, MIB);
    let pieces = s.metainfo.info.piece_count();
    s.add_seed(Behaviour::Honest);
    // A partial seed over read-only data: the first half of the pieces.
    let half: Vec<u32> = (0..pieces / 2).collect();
    let p = s.add_node(Some(half.clone()), Behaviour::Honest);
    let pt = s.torrent(p);
    let now = s.now();
    s.session_mut(p).set_upload_only(pt, true, now);
    let disk_before = s.disk(p).to_vec();
    let l = s.add_node(None, Behaviour::Honest);
    s.introduce(p);
    s.introduce(l);
    assert!(s.run_until(Duration::from_secs(120), |s| s.is_complete(l)));
    s.settle();
    assert!(s.disk_matches(l));
    // The partial seed took nothing: same pieces, same disk, nothing written.
    let have = s.session(p).have(pt).cloned().unwrap();
    assert_eq!(have.ones().collect::<Vec<_>>(), half);
    assert!(s.disk(p) == disk_before, "the read-only data changed");
    let written = s.session(p).pieces_written(pt).cloned().unwrap();
    assert_eq!(written.ones().collect::<Vec<_>>(), half, "no write emitted");
    // …and it served what it has.
    let stats = s.session(p).stats(pt, s.now()).unwrap();
    assert!(stats.uploaded > 0, "the partial seed uploaded nothing");
    assert!(
        !s.events(p)
            .any(|(_, e)| matches!(e, Event::PieceVerified { .. }))
    );
}

/// A seed dials only the peers the user named (`seed --peer`): a leecher that knows
/// nobody is reached and completes; the same seed told of the leecher by a tracker waits
/// for it to dial, as seeds do.
#[test]
fn a_seed_dials_the_peers_the_user_named_and_only_those() {
    use unchoke_core::vocab::PeerSource;
    let named = {
        let mut s = Swarm::new(make_content(MIB, 21), 32 * KIB as u32, MIB);
        let seed = s.add_seed(Behaviour::Honest);
        let l = s.add_node(None, Behaviour::Honest);
        s.introduce_to(seed, &[l]);
        s.run_until(Duration::from_secs(60), |s| s.is_complete(l)) && s.disk_matches(l)
    };
    assert!(named, "the leecher the user named was never dialled");
    let mut s = Swarm::new(make_content(MIB, 21), 32 * KIB as u32, MIB);
    let seed = s.add_seed(Behaviour::Honest);
    let l = s.add_node(None, Behaviour::Honest);
    let (t, now, to) = (s.torrent(seed), s.now(), s.addr(l));
    s.session_mut(seed)
        .add_peers_from(t, PeerSource::Tracker, &[to], now);
    assert!(
        !s.run_until(Duration::from_secs(60), |s| {
            let (t, now) = (s.torrent(l), s.now());
            s.session(l)
                .stats(t, now)
                .is_some_and(|st| st.pieces_have > 0)
        }),
        "a seed dialled a tracker's address"
    );
}
