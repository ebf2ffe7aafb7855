use super::*;

const KIB: u32 = 1024;

fn rng(seed: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed)
}

fn bits(len: u32, set: &[u32]) -> Bitfield {
    let mut b = Bitfield::new(len);
    for &i in set {
        assert!(b.set(i));
    }
    b
}

/// A picker of `n` one-block pieces.
fn one_block_pieces(n: u32) -> Picker {
    Picker::new(BLOCK_LEN, u64::from(n) * u64::from(BLOCK_LEN)).unwrap()
}

/// Leaves the random-first phase by verifying the first `RANDOM_FIRST_PIECES` pieces.
fn past_random_phase(p: &mut Picker) {
    for i in 0..RANDOM_FIRST_PIECES {
        assert!(p.piece_verified(i));
    }
}

fn pick(p: &mut Picker, peer: PeerKey, has: &Bitfield, max: usize, seed: u64) -> Vec<BlockRequest> {
    let mut out = Vec::new();
    p.pick_blocks(peer, has, max, &mut rng(seed), &mut out);
    p.check_invariants();
    out
}

#[test]
fn rejects_bad_geometry() {
    assert_eq!(
        Picker::new(0, 10).unwrap_err(),
        PickerError::ZeroPieceLength
    );
    assert!(matches!(
        Picker::new(1, u64::from(u32::MAX) + 5),
        Err(PickerError::TooManyPieces { .. })
    ));
    assert_eq!(
        Picker::with_have(BLOCK_LEN, 10 * u64::from(BLOCK_LEN), Bitfield::new(9)).unwrap_err(),
        PickerError::HaveLengthMismatch {
            got: 9,
            expected: 10
        }
    );
}

#[test]
fn last_piece_and_last_block_are_short() {
    // 3 pieces of 40 KiB, the last one 10 KiB + 100 bytes.
    let total = 2 * 40 * u64::from(KIB) + 10 * u64::from(KIB) + 100;
    let p = Picker::new(40 * KIB, total).unwrap();
    assert_eq!(p.num_pieces(), 3);
    assert_eq!(p.piece_len(0), Some(40 * KIB));
    assert_eq!(p.piece_len(2), Some(10 * KIB + 100));
    assert_eq!(p.piece_len(3), None);
    // A 40 KiB piece is 16 + 16 + 8 KiB.
    assert_eq!(p.blocks_in_piece(0), Some(3));
    assert_eq!(p.block_at(0, 2 * BLOCK_LEN).unwrap().len, 8 * KIB);
    assert_eq!(p.blocks_in_piece(2), Some(1));
    assert_eq!(p.block_at(2, 0).unwrap().len, 10 * KIB + 100);
    // Not block boundaries or past the end.
    assert_eq!(p.block_at(0, 100), None);
    assert_eq!(p.block_at(0, 3 * BLOCK_LEN), None);
    assert_eq!(p.block_at(2, BLOCK_LEN), None);
    assert_eq!(p.block_at(3, 0), None);

    // Picking everything yields exactly these blocks.
    let mut p = p;
    let all = Bitfield::full(3);
    p.peer_bitfield(&all);
    let mut got = pick(&mut p, 1, &all, 100, 5);
    got.sort();
    let lens: Vec<(u32, u32, u32)> = got.iter().map(|r| (r.piece, r.offset, r.len)).collect();
    assert_eq!(
        lens,
        vec![
            (0, 0, BLOCK_LEN),
            (0, BLOCK_LEN, BLOCK_LEN),
            (0, 2 * BLOCK_LEN, 8 * KIB),
            (1, 0, BLOCK_LEN),
            (1, BLOCK_LEN, BLOCK_LEN),
            (1, 2 * BLOCK_LEN, 8 * KIB),
            (2, 0, 10 * KIB + 100),
        ]
    );
}

#[test]
fn picks_the_rarest_piece_after_the_random_phase() {
    let n = 20;
    let mut p = one_block_pieces(n);
    past_random_phase(&mut p);
    // Three peers have everything; a fourth has everything but piece 13; pieces 7 and 13
    // are additionally lacking at one of the full peers, and piece 7 at a second one.
    let all = Bitfield::full(n);
    p.peer_bitfield(&all);
    let mut most = Bitfield::full(n);
    most.clear(13);
    most.clear(7);
    p.peer_bitfield(&most);
    let mut fewer = Bitfield::full(n);
    fewer.clear(7);
    p.peer_bitfield(&fewer);
    assert_eq!(p.availability(7), 1);
    assert_eq!(p.availability(13), 2);
    assert_eq!(p.availability(0), 3);
    for seed in 0..20 {
        let mut q = p.clone();
        let got = pick(&mut q, 9, &all, 2, seed);
        assert_eq!(got.iter().map(|r| r.piece).collect::<Vec<_>>(), vec![7, 13]);
    }
    // A peer without piece 7 gets the next rarest it has.
    let got = pick(&mut p, 9, &fewer, 1, 1);
    assert_eq!(got[0].piece, 13);
}

#[test]
fn random_tie_break_follows_the_seed() {
    let n = 64;
    let mut p = one_block_pieces(n);
    past_random_phase(&mut p);
    let all = Bitfield::full(n);
    p.peer_bitfield(&all);
    let first = |seed| pick(&mut p.clone(), 1, &all, 1, seed)[0].piece;
    assert_eq!(first(3), first(3), "same seed, same pick");
    let distinct: std::collections::BTreeSet<u32> = (0..32).map(first).collect();
    assert!(
        distinct.len() > 4,
        "seeds should spread the picks: {distinct:?}"
    );
    assert!(distinct.iter().all(|&q| q >= RANDOM_FIRST_PIECES));
}

#[test]
fn random_phase_ignores_rarity() {
    let n = 64;
    let mut p = one_block_pieces(n);
    let all = Bitfield::full(n);
    p.peer_bitfield(&all);
    p.peer_bitfield(&bits(n, &(1..n).collect::<Vec<_>>()));
    // Piece 0 is the single rarest piece, but with nothing verified picks are random.
    let picks: std::collections::BTreeSet<u32> = (0..16)
        .map(|s| pick(&mut p.clone(), 1, &all, 1, s)[0].piece)
        .collect();
    assert!(picks.len() > 3, "random phase picks spread out: {picks:?}");
    // After the random phase the rarest piece is always first.
    for i in 1..=RANDOM_FIRST_PIECES {
        p.piece_verified(i);
    }
    for s in 0..16 {
        assert_eq!(pick(&mut p.clone(), 1, &all, 1, s)[0].piece, 0);
    }
}

#[test]
fn started_pieces_are_finished_first() {
    // 10 pieces of 4 blocks.
    let n = 10;
    let mut p = Picker::new(4 * BLOCK_LEN, u64::from(n) * 4 * u64::from(BLOCK_LEN)).unwrap();
    past_random_phase(&mut p);
    let all = Bitfield::full(n);
    p.peer_bitfield(&all);
    p.peer_bitfield(&all);
    let a = pick(&mut p, 1, &all, 1, 1);
    let started = a[0].piece;
    assert!(p.is_downloading(started));
    // Make another piece strictly rarest: the started one must still come first.
    let rare = if started == 9 { 8 } else { 9 };
    let mut without_rare = Bitfield::full(n);
    without_rare.clear(rare);
    p.peer_left(&all);
    p.peer_bitfield(&without_rare);
    assert!(p.availability(rare) < p.availability(started));
    let b = pick(&mut p, 2, &all, 4, 2);
    assert_eq!(
        b.iter().map(|r| (r.piece, r.offset)).collect::<Vec<_>>(),
        vec![
            (started, BLOCK_LEN),
            (started, 2 * BLOCK_LEN),
            (started, 3 * BLOCK_LEN),
            (rare, 0)
        ]
    );
}

#[test]
fn skip_never_high_first() {
    let n = 12;
    let mut p = one_block_pieces(n);
    let all = Bitfield::full(n);
    p.peer_bitfield(&all);
    p.set_piece_priority(0..6, Priority::Skip);
    p.set_piece_priority(9..10, Priority::High);
    p.set_piece_priority(11..100, Priority::High); // clamped to the torrent
    assert_eq!(p.priority(11), Priority::High);
    assert_eq!(p.priority(5), Priority::Skip);
    assert_eq!(p.wanted().count_ones(), 6);
    let got = pick(&mut p, 1, &all, 100, 7);
    let pieces: Vec<u32> = got.iter().map(|r| r.piece).collect();
    assert_eq!(pieces.len(), 6);
    let mut high = pieces[..2].to_vec();
    high.sort();
    assert_eq!(high, vec![9, 11], "High pieces first: {pieces:?}");
    assert!(pieces.iter().all(|&q| q >= 6), "no Skip piece: {pieces:?}");
    // A peer with only Skip pieces is not interesting and gets nothing.
    let skip_only = bits(n, &[0, 1, 2]);
    assert!(!p.is_interesting(&skip_only));
    assert!(pick(&mut p, 2, &skip_only, 10, 1).is_empty());
    // Completion ignores Skip pieces.
    for q in 6..n {
        p.block_received(q, 0, 1);
        p.piece_verified(q);
    }
    assert!(p.is_complete());
    assert!(!p.in_endgame());
}

#[test]
fn low_pieces_only_after_every_normal_one() {
    let n = 10;
    let mut p = one_block_pieces(n);
    let all = Bitfield::full(n);
    p.peer_bitfield(&all);
    p.set_piece_priority(0..5, Priority::Low);
    p.set_piece_priority(7..8, Priority::High);
    assert_eq!(p.priority(3), Priority::Low);
    assert_eq!(p.wanted().count_ones(), 10, "Low pieces are wanted");
    let got = pick(&mut p, 1, &all, 100, 3);
    let pieces: Vec<u32> = got.iter().map(|r| r.piece).collect();
    assert_eq!(pieces.len(), 10);
    assert_eq!(pieces[0], 7, "High first: {pieces:?}");
    let mut normal = pieces[1..5].to_vec();
    normal.sort();
    assert_eq!(normal, vec![5, 6, 8, 9], "Normal before Low: {pieces:?}");
    // A peer with only Low pieces is still worth asking.
    assert!(p.is_interesting(&bits(n, &[0])));
}

#[test]
fn never_picks_what_the_peer_lacks_or_we_have() {
    let n = 40;
    let mut p = one_block_pieces(n);
    let odd: Vec<u32> = (0..n).filter(|i| i % 2 == 1).collect();
    let has = bits(n, &odd);
    p.peer_bitfield(&has);
    p.peer_bitfield(&Bitfield::full(n));
    for q in [1, 3, 5, 7, 9, 2] {
        p.piece_verified(q);
    }
    for seed in 0..10 {
        let got = pick(&mut p.clone(), 1, &has, 100, seed);
        assert_eq!(got.len(), 15);
        for r in got {
            assert!(has.get(r.piece), "peer lacks {}", r.piece);
            assert!(!p.have().get(r.piece), "we have {}", r.piece);
        }
    }
    assert!(p.is_interesting(&has));
    assert!(!p.is_interesting(&bits(n, &[1, 3, 2])));
    assert!(pick(&mut p, 1, &Bitfield::new(n), 100, 1).is_empty());
}

#[test]
fn endgame_duplicates_only_when_all_requested_and_not_to_the_same_peer() {
    // 2 pieces of 4 blocks.
    let mut p = Picker::new(4 * BLOCK_LEN, 8 * u64::from(BLOCK_LEN)).unwrap();
    let all = Bitfield::full(2);
    for _ in 0..5 {
        p.peer_bitfield(&all);
    }
    let a = pick(&mut p, 1, &all, 4, 1);
    assert_eq!(a.len(), 4);
    let (x, y) = (a[0].piece, 1 - a[0].piece);
    assert!(!p.in_endgame(), "the other piece is untouched");
    // A peer that has only A's piece gets no duplicate while piece y still has free blocks.
    assert!(pick(&mut p, 9, &bits(2, &[x]), 100, 2).is_empty());
    // B gets the other piece's free blocks: no duplicates while free blocks remain.
    let b = pick(&mut p, 2, &all, 4, 2);
    assert!(b.len() == 4 && b.iter().all(|r| r.piece == y), "{b:?}");
    assert!(p.in_endgame());
    // A now duplicates B's blocks, never its own.
    let a2 = pick(&mut p, 1, &all, 100, 3);
    assert!(a2.len() == 4 && a2.iter().all(|r| r.piece == y), "{a2:?}");
    assert!(
        pick(&mut p, 1, &all, 100, 3).is_empty(),
        "A has every block requested"
    );
    let b2 = pick(&mut p, 2, &all, 100, 3);
    assert!(b2.len() == 4 && b2.iter().all(|r| r.piece == x), "{b2:?}");
    // C adds a third copy of every block; then the bound is reached.
    assert_eq!(pick(&mut p, 3, &all, 100, 4).len(), 8);
    assert!(
        pick(&mut p, 4, &all, 100, 5).is_empty(),
        "every block at the bound"
    );
    let st = p.block_state(x, 0).unwrap();
    assert!(matches!(st, BlockState::Requested { by } if by.as_slice() == [1, 2, 3]));
}

#[test]
fn endgame_prefers_blocks_with_fewest_copies() {
    let mut p = Picker::new(2 * BLOCK_LEN, 2 * u64::from(BLOCK_LEN)).unwrap();
    let all = Bitfield::full(1);
    p.peer_bitfield(&all);
    assert_eq!(pick(&mut p, 1, &all, 1, 1)[0].offset, 0);
    assert_eq!(pick(&mut p, 2, &all, 1, 1)[0].offset, BLOCK_LEN);
    // Block 0 gets a second copy from peer 3.
    assert_eq!(pick(&mut p, 3, &all, 1, 1)[0].offset, 0);
    // Peer 4: block 1 has one copy, block 0 two: block 1 first.
    let d = pick(&mut p, 4, &all, 2, 1);
    assert_eq!(
        d.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![BLOCK_LEN, 0]
    );
}

#[test]
fn block_received_names_other_requesters() {
    let mut p = Picker::new(2 * BLOCK_LEN, 2 * u64::from(BLOCK_LEN)).unwrap();
    let all = Bitfield::full(1);
    p.peer_bitfield(&all);
    pick(&mut p, 1, &all, 2, 1);
    pick(&mut p, 2, &all, 2, 1);
    pick(&mut p, 3, &all, 1, 1);
    // Block 0 is at peers 1, 2, 3; block 1 at 1 and 2.
    let o = p.block_received(0, 0, 2);
    assert_eq!(o.receipt, Receipt::Requested);
    assert_eq!(o.cancel.as_slice(), &[1, 3]);
    assert!(!o.piece_complete);
    // The cancelled copy arriving anyway is a duplicate.
    let late = p.block_received(0, 0, 3);
    assert_eq!(late.receipt, Receipt::Duplicate);
    assert!(late.cancel.is_empty());
    // Block 1 arrives from a peer that never had it requested: kept, and both requesters
    // are to be cancelled. The piece is complete.
    let o = p.block_received(0, BLOCK_LEN, 7);
    assert_eq!(o.receipt, Receipt::Unrequested);
    assert_eq!(o.cancel.as_slice(), &[1, 2]);
    assert!(o.piece_complete);
    p.check_invariants();
    assert!(p.piece_verified(0));
    assert!(!p.piece_verified(0));
    assert!(p.is_complete());
    assert_eq!(p.block_received(0, 0, 1).receipt, Receipt::Duplicate);
    // Invalid blocks are reported, not panicked on.
    assert_eq!(p.block_received(1, 0, 1).receipt, Receipt::Invalid);
    assert_eq!(p.block_received(0, 5, 1).receipt, Receipt::Invalid);
    assert_eq!(
        p.block_received(u32::MAX, u32::MAX, 1).receipt,
        Receipt::Invalid
    );
    p.check_invariants();
}

#[test]
fn piece_failed_returns_contributors_and_reopens_the_piece() {
    let mut p = Picker::new(3 * BLOCK_LEN, 6 * u64::from(BLOCK_LEN)).unwrap();
    let all = Bitfield::full(2);
    p.peer_bitfield(&all);
    let got = pick(&mut p, 5, &all, 3, 1);
    let piece = got[0].piece;
    assert!(got.iter().all(|r| r.piece == piece));
    assert!(!p.block_received(piece, 0, 5).piece_complete);
    assert!(!p.block_received(piece, BLOCK_LEN, 2).piece_complete);
    assert!(p.block_received(piece, 2 * BLOCK_LEN, 5).piece_complete);
    assert_eq!(p.piece_failed(piece), vec![2, 5]);
    p.check_invariants();
    assert!(!p.is_downloading(piece));
    assert!(!p.have().get(piece));
    // The same piece is requestable again, in full, even by a contributor.
    let other = 1 - piece;
    let only = bits(2, &[piece]);
    let again = pick(&mut p, 5, &only, 10, 2);
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|r| r.piece == piece));
    // Failing a piece that is not in progress reports no one; verified pieces are immune.
    assert!(p.piece_failed(other).is_empty());
    p.piece_verified(other);
    assert!(p.piece_failed(other).is_empty());
    assert!(p.have().get(other));
    assert!(p.piece_failed(99).is_empty());
    p.check_invariants();
}

#[test]
fn a_failed_piece_is_downloaded_again_from_one_peer() {
    // One piece of four blocks. After it fails, peer 5 opens it with a one-block budget;
    // peer 7 then finds nothing to take until peer 5 drops its requests.
    let mut p = Picker::new(4 * BLOCK_LEN, 4 * u64::from(BLOCK_LEN)).unwrap();
    let all = Bitfield::full(1);
    p.peer_bitfield(&all);
    p.peer_bitfield(&all);
    let got = pick(&mut p, 5, &all, 4, 1);
    for (i, r) in got.iter().enumerate() {
        let from = if i == 0 { 7 } else { 5 };
        p.block_received(r.piece, r.offset, from);
    }
    assert_eq!(p.piece_failed(0), vec![5, 7]);
    assert_eq!(p.owner(0), None, "not in progress");
    p.prefer_one_peer(0);
    assert_eq!(pick(&mut p, 5, &all, 1, 2).len(), 1);
    assert_eq!(p.owner(0), Some(5));
    assert!(pick(&mut p, 7, &all, 4, 3).is_empty(), "owned by peer 5");
    assert_eq!(
        pick(&mut p, 5, &all, 4, 4).len(),
        3,
        "its owner takes the rest"
    );
    // The owner goes away: the piece is open to anyone again.
    p.peer_requests_dropped(5);
    assert_eq!(p.owner(0), None);
    assert_eq!(pick(&mut p, 7, &all, 4, 5).len(), 4);
    assert_eq!(p.owner(0), Some(7), "the next opener owns it");
    // Verified, the preference is gone.
    for r in 0..4 {
        p.block_received(0, r * BLOCK_LEN, 7);
    }
    assert!(p.piece_verified(0));
    assert_eq!(p.owner(0), None);
    p.check_invariants();
}

#[test]
fn peer_left_restores_availability() {
    let n = 16;
    let mut p = one_block_pieces(n);
    past_random_phase(&mut p);
    let all = Bitfield::full(n);
    let partial = bits(n, &[4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    p.peer_bitfield(&all);
    p.peer_bitfield(&partial);
    assert!(p.peer_have(15));
    assert!(!p.peer_have(n));
    p.check_invariants();
    assert_eq!(p.availability(15), 2);
    // Departure of the partial peer (with its have) brings every count back to 1.
    let mut departed = partial.clone();
    departed.set(15);
    p.peer_left(&departed);
    p.check_invariants();
    for q in 0..n {
        assert_eq!(p.availability(q), 1, "piece {q}");
    }
    // Its return restores the counts, and uncounting twice never goes below zero.
    p.peer_bitfield(&departed);
    assert_eq!(p.availability(15), 2);
    p.peer_left(&all);
    p.peer_left(&all);
    p.peer_left(&all);
    assert!((0..n).all(|q| p.availability(q) == 0));
    p.check_invariants();
    // A bitfield sized for another torrent cannot reach past our pieces.
    let longer = Bitfield::full(n + 100);
    p.peer_bitfield(&longer);
    assert!((0..n).all(|q| p.availability(q) == 1));
    assert!(
        pick(&mut p, 1, &longer, 1000, 1)
            .iter()
            .all(|r| r.piece < n)
    );
    p.peer_left(&longer);
    p.check_invariants();
}

#[test]
fn dropped_and_cancelled_requests_become_free() {
    let mut p = Picker::new(4 * BLOCK_LEN, 8 * u64::from(BLOCK_LEN)).unwrap();
    let all = Bitfield::full(2);
    p.peer_bitfield(&all);
    let a = pick(&mut p, 1, &all, 3, 1);
    let piece = a[0].piece;
    assert!(p.request_cancelled(piece, a[1].offset, 1));
    assert!(
        !p.request_cancelled(piece, a[1].offset, 1),
        "already forgotten"
    );
    assert!(!p.request_cancelled(piece, 1, 1), "not a block boundary");
    assert_eq!(p.block_state(piece, a[1].offset), Some(BlockState::Free));
    // Peer 2 gets the freed block first, then the never-requested one.
    let b = pick(&mut p, 2, &all, 2, 2);
    assert_eq!(
        b.iter().map(|r| (r.piece, r.offset)).collect::<Vec<_>>(),
        vec![(piece, a[1].offset), (piece, 3 * BLOCK_LEN)]
    );
    // Peer 1 chokes: its two remaining requests are dropped, peer 2's stay.
    assert_eq!(p.peer_requests_dropped(1), 2);
    p.check_invariants();
    assert_eq!(p.block_state(piece, 0), Some(BlockState::Free));
    assert!(p.is_downloading(piece));
    // Peer 2 leaves too: the piece has no progress and goes back to the pool.
    assert_eq!(p.peer_requests_dropped(2), 2);
    p.check_invariants();
    assert!(!p.is_downloading(piece));
    assert_eq!(p.peer_requests_dropped(2), 0);
}

#[test]
fn dropping_a_duplicate_keeps_the_block_requested() {
    let mut p = one_block_pieces(1);
    let all = Bitfield::full(1);
    p.peer_bitfield(&all);
    pick(&mut p, 1, &all, 1, 1);
    assert_eq!(pick(&mut p, 2, &all, 1, 1).len(), 1, "endgame duplicate");
    assert!(p.request_cancelled(0, 0, 1));
    assert!(matches!(
        p.block_state(0, 0),
        Some(BlockState::Requested { by }) if by.as_slice() == [2]
    ));
    assert!(p.in_endgame());
}

#[test]
fn skipping_a_started_piece_stops_requests_but_keeps_blocks() {
    let mut p = Picker::new(2 * BLOCK_LEN, 4 * u64::from(BLOCK_LEN)).unwrap();
    let all = Bitfield::full(2);
    p.peer_bitfield(&all);
    let a = pick(&mut p, 1, &all, 1, 1);
    let piece = a[0].piece;
    p.block_received(piece, 0, 1);
    p.set_piece_priority(piece..piece + 1, Priority::Skip);
    p.check_invariants();
    let b = pick(&mut p, 2, &all, 10, 1);
    assert!(b.iter().all(|r| r.piece != piece));
    assert_eq!(b.len(), 2);
    // Back to Normal: the started piece continues where it stopped.
    p.set_piece_priority(piece..piece + 1, Priority::Normal);
    p.check_invariants();
    let c = pick(&mut p, 3, &all, 1, 1);
    assert_eq!(
        c,
        vec![BlockRequest {
            piece,
            offset: BLOCK_LEN,
            len: BLOCK_LEN
        }]
    );
}

#[test]
fn with_have_resumes() {
    let n = 8;
    let have = bits(n, &[0, 1, 2, 3, 4, 5]);
    let mut p = Picker::with_have(BLOCK_LEN, u64::from(n) * u64::from(BLOCK_LEN), have).unwrap();
    p.check_invariants();
    let all = Bitfield::full(n);
    p.peer_bitfield(&all);
    let got = pick(&mut p, 1, &all, 10, 1);
    let mut pieces: Vec<u32> = got.iter().map(|r| r.piece).collect();
    pieces.sort();
    assert_eq!(pieces, vec![6, 7]);
    assert!(!p.is_interesting(&bits(n, &[0, 5])));
}

/// A fake peer for the simulated download: what it has and its outstanding requests.
struct FakePeer {
    key: PeerKey,
    has: Bitfield,
    queue: Vec<BlockRequest>,
    /// Requests cancelled too late: the peer sends the block anyway.
    late: Vec<BlockRequest>,
}

/// Runs a whole download against three peers through the picker alone: requests are
/// answered in a random order, one bad copy of a piece fails its hash check, one peer
/// chokes us midway. Every block must be received exactly once per successful attempt of
/// its piece, apart from duplicates during endgame.
fn simulate(seed: u64) -> usize {
    let piece_len = 4 * BLOCK_LEN;
    let total = 37 * u64::from(piece_len) + 5000;
    let mut p = Picker::new(piece_len, total).unwrap();
    let n = p.num_pieces();
    let mut r = rng(seed);
    let mut peers: Vec<FakePeer> = (0..3)
        .map(|k| FakePeer {
            key: k + 10,
            has: Bitfield::new(n),
            queue: Vec::new(),
            late: Vec::new(),
        })
        .collect();
    // Peer 0 is a seed; peers 1 and 2 have random halves.
    peers[0].has = Bitfield::full(n);
    for q in 0..n {
        if r.bool() {
            peers[1].has.set(q);
        }
        if r.bool() {
            peers[2].has.set(q);
        }
    }
    for peer in &peers {
        p.peer_bitfield(&peer.has);
    }
    let bad_piece = n / 2;
    let mut bad_pending = true;
    let mut new_blocks: Vec<u32> = vec![0; (n * 4) as usize];
    let mut duplicates = 0;
    let mut verified = vec![0u32; n as usize];
    let mut failed_once = false;
    let mut choked_once = false;
    let mut saw_endgame = false;
    let mut steps = 0;
    while !p.is_complete() {
        steps += 1;
        assert!(steps < 100_000, "download does not make progress");
        for i in 0..peers.len() {
            // Keep a pipeline of up to 6 requests per peer.
            let room = 6usize.saturating_sub(peers[i].queue.len());
            let mut out = Vec::new();
            let endgame = p.in_endgame();
            saw_endgame |= endgame;
            p.pick_blocks(peers[i].key, &peers[i].has, room, &mut r, &mut out);
            for req in &out {
                let elsewhere = peers.iter().filter(|x| x.queue.contains(req)).count();
                assert!(
                    elsewhere == 0 || endgame,
                    "duplicate request outside endgame"
                );
                assert!(
                    elsewhere < MAX_REQUESTS_PER_BLOCK,
                    "too many copies of {req:?}"
                );
                assert!(peers[i].has.get(req.piece));
                assert!(!p.have().get(req.piece));
                assert!(
                    !peers[i].queue.contains(req),
                    "block requested twice from the same peer"
                );
            }
            peers[i].queue.extend(out);
        }
        p.check_invariants();
        // Midway, peer 1 chokes us: its requests are dropped on both sides.
        if !choked_once && p.have().count_ones() >= n / 3 {
            choked_once = true;
            let dropped = p.peer_requests_dropped(peers[1].key);
            assert_eq!(dropped, peers[1].queue.len());
            peers[1].queue.clear();
        }
        // Each peer answers one of its outstanding requests at random, or first sends a
        // copy whose cancel came too late.
        for i in 0..peers.len() {
            let late = !peers[i].late.is_empty() && r.bool();
            let req = if late {
                peers[i].late.remove(0)
            } else if peers[i].queue.is_empty() {
                continue;
            } else {
                let j = r.usize(..peers[i].queue.len());
                peers[i].queue.swap_remove(j)
            };
            let o = p.block_received(req.piece, req.offset, peers[i].key);
            match o.receipt {
                Receipt::Requested if !late => {}
                // A late copy is normally a duplicate; if its piece failed meanwhile it is
                // useful data again.
                Receipt::Unrequested if late => {}
                Receipt::Duplicate if late => duplicates += 1,
                other => panic!("unexpected receipt {other:?} for {req:?} (late: {late})"),
            }
            if o.receipt != Receipt::Duplicate {
                new_blocks[(req.piece * 4 + req.offset / BLOCK_LEN) as usize] += 1;
            }
            for c in o.cancel.as_slice() {
                // The other requesters are sent `cancel`; the picker forgot them already.
                let peer = peers.iter_mut().find(|x| x.key == *c).unwrap();
                let before = peer.queue.len();
                peer.queue.retain(|x| x != &req);
                assert_eq!(
                    peer.queue.len(),
                    before - 1,
                    "cancel target had the request"
                );
                if r.bool() {
                    peer.late.push(req);
                }
            }
            if o.piece_complete {
                if req.piece == bad_piece && bad_pending {
                    bad_pending = false;
                    failed_once = true;
                    let contributors = p.piece_failed(req.piece);
                    assert!(contributors.contains(&peers[i].key));
                    let blocks = p.blocks_in_piece(req.piece).unwrap();
                    for b in 0..blocks {
                        new_blocks[(req.piece * 4 + b) as usize] -= 1;
                    }
                } else {
                    assert!(p.piece_verified(req.piece));
                    verified[req.piece as usize] += 1;
                }
            }
        }
        p.check_invariants();
    }
    assert!(failed_once && choked_once && saw_endgame);
    assert!(p.have().is_full());
    assert!(
        verified.iter().all(|&v| v == 1),
        "every piece verified once"
    );
    for q in 0..n {
        for b in 0..p.blocks_in_piece(q).unwrap() {
            assert_eq!(new_blocks[(q * 4 + b) as usize], 1, "piece {q} block {b}");
        }
    }
    // Copies still in flight are duplicates now that everything is verified.
    for peer in &mut peers {
        for req in peer.late.drain(..) {
            let o = p.block_received(req.piece, req.offset, peer.key);
            assert_eq!(o.receipt, Receipt::Duplicate);
            duplicates += 1;
        }
    }
    assert!(!p.in_endgame());
    duplicates
}

#[test]
fn simulated_download_with_three_peers() {
    let duplicates: usize = (0..8).map(simulate).sum();
    assert!(duplicates > 0, "late endgame copies were exercised");
}
