//! Typed disk errors, in virtual time: a leecher whose disk fills up mid-download is told
//! so by [`Event::StorageError`] carrying [`DiskErrorKind::NoSpace`], keeps every piece it
//! had verified, never counts a piece whose write failed, and completes once space is freed.

use std::time::Duration;

use unchoke_core::bitfield::Bitfield;
use unchoke_core::session::{DiskError, DiskErrorKind, Event};
use unchoke_sim::lab::{Behaviour, Swarm, make_content};

const KIB: usize = 1024;
const PIECE: usize = 64 * KIB;

/// The storage errors node `i` reported: (piece, error).
fn storage_errors(s: &Swarm, i: usize) -> Vec<(u32, DiskError)> {
    s.events(i)
        .filter_map(|(_, e)| match e {
            Event::StorageError { piece, error, .. } => Some((*piece, error.clone())),
            _ => None,
        })
        .collect()
}

/// Whether every piece node `i` counts as had holds the content's bytes on its disk.
fn had_pieces_are_on_disk(s: &Swarm, i: usize, have: &Bitfield) -> bool {
    have.ones().all(|p| {
        let start = p as usize * PIECE;
        let end = (start + PIECE).min(s.content.len());
        s.disk(i)[start..end] == s.content[start..end]
    })
}

#[test]
fn a_full_disk_is_reported_typed_and_loses_no_verified_piece() {
    // 16 pieces of 64 KiB; the leecher's disk takes five and a half of them.
    let mut s = Swarm::new(make_content(16 * PIECE, 7), PIECE as u32, 4_000 * KIB);
    let seed = s.add_seed(Behaviour::Honest);
    let leecher = s.add_node(None, Behaviour::Honest);
    s.set_disk_space(leecher, Some(5 * PIECE + PIECE / 2));
    s.introduce_to(leecher, &[seed]);
    let torrent = s.torrent(leecher);
    let have = |s: &Swarm| {
        s.session(leecher)
            .have(torrent)
            .cloned()
            .expect("the torrent stays in the session")
    };

    let filled = s.run_until(Duration::from_secs(30), |s| {
        !storage_errors(s, leecher).is_empty()
    });
    assert!(
        filled,
        "the leecher's disk fills up and the session says so"
    );
    let errors = storage_errors(&s, leecher);
    let (piece, error) = &errors[0];
    assert_eq!(error.kind(), DiskErrorKind::NoSpace, "{error}");
    assert!(error.is_no_space());
    assert!(
        error.to_string().starts_with("disk full: "),
        "the cause is named for users: {error}"
    );
    let had = have(&s);
    assert!(
        had.count_ones() <= 5,
        "at most the pieces that fit were verified ({} had)",
        had.count_ones()
    );

    // While the disk stays full, pieces keep failing to be written: nothing verified is
    // lost, and no piece whose write failed is ever counted as had.
    let mut lost = None;
    let mut wrongly_had = None;
    s.run_until(Duration::from_secs(5), |s| {
        let now_have = have(s);
        if let Some(p) = had.ones().find(|&p| !now_have.get(p)) {
            lost.get_or_insert(p);
        }
        if !had_pieces_are_on_disk(s, leecher, &now_have) {
            wrongly_had.get_or_insert(now_have.clone());
        }
        false
    });
    assert_eq!(
        lost, None,
        "a verified piece was lost after the disk filled"
    );
    assert_eq!(
        wrongly_had, None,
        "a piece counted as had does not hold its bytes on disk"
    );
    let after = have(&s);
    assert!(
        !after.get(*piece),
        "piece {piece}, whose write failed, is not counted as had"
    );
    assert!(
        storage_errors(&s, leecher)
            .iter()
            .all(|(_, e)| e.kind() == DiskErrorKind::NoSpace),
        "every failure is the full disk"
    );

    // Space is freed: the pieces that failed are downloaded again and the copy completes.
    s.set_disk_space(leecher, None);
    let complete = s.run_until(Duration::from_secs(60), |s| s.is_complete(leecher));
    assert!(complete, "the leecher completes once the disk has room");
    assert!(s.disk_matches(leecher), "with the right bytes");
}
