//! The download/seed queue, hand-driven in virtual time: torrents beyond
//! `max_downloading` / `max_seeding` wait in `TorrentState::Queued` without dialling,
//! announcing or taking peers, in the order they were added, and start by themselves when
//! a slot frees up (a completion, a pause, a removal) or a limit is raised.

use std::net::SocketAddr;

use unchoke_core::bitfield::Bitfield;
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{
    Action, Direction, DisconnectReason, EncryptionPolicy, Event, MagnetOptions, QueueLimits,
    Session, SessionConfig, TorrentId, TorrentState,
};
use unchoke_core::time::Instant;
use unchoke_core::wire::{Message, Reserved};
use unchoke_sim::lab::{make_content, make_metainfo};

mod common;
use common::{complete_disk_work, drain, serve_requests};

const BLOCK: usize = 16 * 1024;
const DOWNLOADING: TorrentState = TorrentState::Queued { seed: false };
const SEED_QUEUED: TorrentState = TorrentState::Queued { seed: true };

fn config(limits: QueueLimits) -> SessionConfig {
    SessionConfig {
        encryption: EncryptionPolicy::Disable,
        queue_limits: limits,
        ..SessionConfig::default()
    }
}

fn downloads(n: usize) -> QueueLimits {
    QueueLimits {
        max_downloading: Some(n),
        max_seeding: None,
    }
}

/// A two-block torrent of its own (each `i` gives other content, so another info-hash).
fn torrent(i: u64) -> (Vec<u8>, Metainfo) {
    let content = make_content(2 * BLOCK, 100 + i);
    let metainfo = make_metainfo(&content, BLOCK as u32);
    (content, metainfo)
}

/// A peer address for torrent number `i`.
fn peer(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i + 1], 6881))
}

/// The torrents the actions dial for.
fn dialled(actions: &[Action]) -> Vec<TorrentId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Connect { torrent, .. } => Some(*torrent),
            _ => None,
        })
        .collect()
}

/// The queue events among the actions: `(torrent, queued?)`.
fn queue_events(actions: &[Action]) -> Vec<(TorrentId, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(Event::TorrentQueued { torrent }) => Some((*torrent, true)),
            Action::Event(Event::TorrentUnqueued { torrent }) => Some((*torrent, false)),
            _ => None,
        })
        .collect()
}

/// A session under `limits` with `n` torrents added at 1 s, each told one peer address
/// (`have_all`: added complete, as seeds). Returns the session, the torrents, and the
/// actions queued by it all.
fn session(
    limits: QueueLimits,
    n: u8,
    have_all: bool,
) -> (Session, Vec<TorrentId>, Vec<Action>, Vec<Metainfo>) {
    let now = Instant::from_secs(1);
    let mut s = Session::new(config(limits), 5, now);
    let mut ids = Vec::new();
    let mut metas = Vec::new();
    for i in 0..n {
        let (_, metainfo) = torrent(u64::from(i));
        let have = have_all.then(|| Bitfield::full(metainfo.info.piece_count()));
        let t = s.add_torrent(&metainfo, have, now).expect("add");
        s.set_trackers(t, Vec::new(), now);
        s.add_peers(t, &[peer(i)], now);
        ids.push(t);
        metas.push(metainfo);
    }
    let actions = drain(&mut s);
    (s, ids, actions, metas)
}

#[test]
fn beyond_max_downloading_torrents_wait_in_add_order_and_start_as_slots_free_up() {
    let (mut s, t, actions, metas) = session(downloads(1), 3, false);
    assert_eq!(s.torrent_state(t[0]), Some(TorrentState::Downloading));
    assert_eq!(s.torrent_state(t[1]), Some(DOWNLOADING));
    assert_eq!(s.torrent_state(t[2]), Some(DOWNLOADING));
    assert_eq!(
        dialled(&actions),
        vec![t[0]],
        "only the running torrent dials"
    );
    assert_eq!(queue_events(&actions), vec![(t[1], true), (t[2], true)]);

    // A peer coming in for a queued torrent is refused after its handshake.
    let mut now = Instant::from_secs(2);
    let c = s.connection_opened(peer(9), Direction::Inbound, now);
    let mut buf = common::opening(Reserved::NONE, metas[1].info_hash, 9, &[]);
    s.handle_bytes(c, &mut buf, now);
    let refused = drain(&mut s).into_iter().any(|a| {
        matches!(a, Action::Disconnect { conn, reason: DisconnectReason::TorrentQueued }
            if conn == c)
    });
    assert!(refused, "an inbound peer of a queued torrent is refused");
    // Time passes: the queued ones still dial nobody. (Less than a dial's time-out: the
    // first one's dial stays out, and is cancelled uncounted by the pause below.)
    for _ in 0..3 {
        now += std::time::Duration::from_secs(1);
        s.handle_timeout(now);
        let actions = drain(&mut s);
        assert!(dialled(&actions).iter().all(|&x| x == t[0]));
    }

    // Pausing the first starts the second at once (first in queue order), not the third.
    s.pause_torrent(t[0], now).expect("pause");
    let actions = drain(&mut s);
    assert_eq!(s.torrent_state(t[1]), Some(TorrentState::Downloading));
    assert_eq!(s.torrent_state(t[2]), Some(DOWNLOADING));
    assert_eq!(dialled(&actions), vec![t[1]]);
    assert_eq!(queue_events(&actions), vec![(t[1], false)]);

    // The first resumed finds its slot taken: it waits (a running torrent keeps its slot).
    s.resume_torrent(t[0], now).expect("resume");
    let actions = drain(&mut s);
    assert_eq!(s.torrent_state(t[0]), Some(DOWNLOADING));
    assert_eq!(queue_events(&actions), vec![(t[0], true)]);
    assert!(dialled(&actions).is_empty());

    // Removing the second starts the first (added before the third).
    s.remove_torrent(t[1], now).expect("remove");
    let actions = drain(&mut s);
    assert_eq!(s.torrent_state(t[0]), Some(TorrentState::Downloading));
    assert_eq!(s.torrent_state(t[2]), Some(DOWNLOADING));
    assert_eq!(dialled(&actions), vec![t[0]]);

    // Raising the limit starts the rest within the call.
    s.set_queue_limits(downloads(3), now);
    let actions = drain(&mut s);
    assert_eq!(s.torrent_state(t[2]), Some(TorrentState::Downloading));
    assert_eq!(dialled(&actions), vec![t[2]]);
    assert_eq!(queue_events(&actions), vec![(t[2], false)]);

    // Lowering it queues the last in queue order, which drops its peers.
    s.set_queue_limits(downloads(1), now);
    let actions = drain(&mut s);
    assert_eq!(s.torrent_state(t[0]), Some(TorrentState::Downloading));
    assert_eq!(s.torrent_state(t[2]), Some(DOWNLOADING));
    assert_eq!(queue_events(&actions), vec![(t[2], true)]);
}

#[test]
fn a_queue_position_decides_which_queued_torrent_starts_next() {
    let (mut s, t, _, _) = session(downloads(1), 3, false);
    let now = Instant::from_secs(2);
    assert_eq!(s.queue_position(t[2]), Some(2));
    s.set_queue_position(t[2], 0, now).expect("move");
    assert_eq!(s.queue_position(t[2]), Some(0));
    // Moving does not pre-empt the running one.
    assert_eq!(s.torrent_state(t[0]), Some(TorrentState::Downloading));
    s.pause_torrent(t[0], now).expect("pause");
    assert_eq!(s.torrent_state(t[2]), Some(TorrentState::Downloading));
    assert_eq!(s.torrent_state(t[1]), Some(DOWNLOADING));
}

/// Downloads torrent `t` (two blocks, one per piece) from a seed peer by hand; returns
/// the actions other than disk work queued by the last round (the one that completed it).
fn download(
    s: &mut Session,
    t: TorrentId,
    content: &[u8],
    metainfo: &Metainfo,
    now: Instant,
) -> Vec<Action> {
    let addr = peer(50);
    s.add_peers(t, &[addr], now);
    drain(s);
    let c = s.connection_opened(addr, Direction::Outbound(t), now);
    drain(s);
    let mut buf = common::opening(
        Reserved::NONE.with_extension_protocol(),
        metainfo.info_hash,
        1,
        &[
            Message::Bitfield(Bitfield::full(2).to_bytes().into()),
            Message::Unchoke,
        ],
    );
    s.handle_bytes(c, &mut buf, now);
    let mut actions = drain(s);
    for _ in 0..4 {
        serve_requests(s, c, &actions, content, BLOCK, now);
        let pending = drain(s);
        actions = complete_disk_work(s, t, content, BLOCK, pending, now);
        if s.have(t).is_some_and(|h| h.is_full()) {
            break;
        }
    }
    assert!(s.have(t).is_some_and(|h| h.is_full()), "downloaded");
    actions
}

#[test]
fn a_completed_download_frees_its_slot_and_queues_as_a_seed_when_seeds_are_full() {
    // One seed already running, one seeding slot: the download that completes must wait
    // as a seed, and the next download starts.
    let limits = QueueLimits {
        max_downloading: Some(1),
        max_seeding: Some(1),
    };
    let now = Instant::from_secs(1);
    let mut s = Session::new(config(limits), 5, now);
    let (_, seed_meta) = torrent(9);
    let seed = s
        .add_torrent(&seed_meta, Some(Bitfield::full(2)), now)
        .expect("add");
    let (content, first_meta) = torrent(0);
    let first = s.add_torrent(&first_meta, None, now).expect("add");
    let (_, second_meta) = torrent(1);
    let second = s.add_torrent(&second_meta, None, now).expect("add");
    for t in [seed, first, second] {
        s.set_trackers(t, Vec::new(), now);
    }
    s.add_peers(second, &[peer(7)], now);
    drain(&mut s);
    assert_eq!(s.torrent_state(seed), Some(TorrentState::Seeding));
    assert_eq!(s.torrent_state(first), Some(TorrentState::Downloading));
    assert_eq!(s.torrent_state(second), Some(DOWNLOADING));

    let actions = download(&mut s, first, &content, &first_meta, now);
    assert_eq!(s.torrent_state(first), Some(SEED_QUEUED));
    assert_eq!(s.torrent_state(second), Some(TorrentState::Downloading));
    assert!(
        s.connections(first).is_empty(),
        "a queued seed keeps no peer"
    );
    // Within the call that completed the first, the second dials its peer.
    assert_eq!(dialled(&actions), vec![second]);
    assert!(queue_events(&actions).contains(&(first, true)));
    assert!(queue_events(&actions).contains(&(second, false)));

    // The running seed paused: the queued one seeds.
    s.pause_torrent(seed, now).expect("pause");
    assert_eq!(s.torrent_state(first), Some(TorrentState::Seeding));
}

#[test]
fn max_seeding_queues_seeds_in_add_order_and_a_raised_limit_starts_them() {
    let limits = QueueLimits {
        max_downloading: None,
        max_seeding: Some(1),
    };
    let (mut s, t, actions, _) = session(limits, 3, true);
    assert_eq!(s.torrent_state(t[0]), Some(TorrentState::Seeding));
    assert_eq!(s.torrent_state(t[1]), Some(SEED_QUEUED));
    assert_eq!(s.torrent_state(t[2]), Some(SEED_QUEUED));
    assert_eq!(queue_events(&actions), vec![(t[1], true), (t[2], true)]);
    let now = Instant::from_secs(2);
    s.remove_torrent(t[0], now).expect("remove");
    assert_eq!(s.torrent_state(t[1]), Some(TorrentState::Seeding));
    assert_eq!(s.torrent_state(t[2]), Some(SEED_QUEUED));
    s.set_queue_limits(QueueLimits::default(), now);
    assert_eq!(s.torrent_state(t[2]), Some(TorrentState::Seeding));
}

#[test]
fn a_magnet_fetching_metadata_counts_as_a_download() {
    let (mut s, t, _, _) = session(downloads(1), 1, false);
    let now = Instant::from_secs(2);
    let (_, other) = torrent(5);
    let options = MagnetOptions {
        peers: vec![peer(8)],
        ..MagnetOptions::default()
    };
    let m = s.add_magnet(other.info_hash, options, now).expect("magnet");
    let actions = drain(&mut s);
    assert_eq!(s.torrent_state(m), Some(DOWNLOADING));
    assert!(dialled(&actions).is_empty(), "a queued magnet dials nobody");
    s.pause_torrent(t[0], now).expect("pause");
    let actions = drain(&mut s);
    assert_eq!(s.torrent_state(m), Some(TorrentState::FetchingMetadata));
    assert_eq!(dialled(&actions), vec![m]);
}

#[test]
fn a_queued_torrent_announces_nothing_until_it_starts_even_given_new_trackers() {
    let (mut s, t, _, _) = session(downloads(1), 2, false);
    let announced = |actions: &[Action]| -> Vec<TorrentId> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Announce { torrent, .. } => Some(*torrent),
                _ => None,
            })
            .collect()
    };
    let tiers = vec![vec!["http://tracker.example/announce".to_string()]];
    let now = Instant::from_secs(2);
    // The driver sets trackers after adding, as the daemon does.
    s.set_trackers(t[0], tiers.clone(), now);
    s.set_trackers(t[1], tiers, now);
    s.handle_timeout(now);
    let actions = drain(&mut s);
    assert_eq!(announced(&actions), vec![t[0]]);
    s.pause_torrent(t[0], now).expect("pause");
    let later = Instant::from_secs(3);
    s.handle_timeout(later);
    let actions = drain(&mut s);
    assert_eq!(announced(&actions), vec![t[1]], "the started one announces");
}

#[test]
fn a_download_queued_as_a_seed_the_moment_it_completes_still_tells_its_tracker_completed() {
    use unchoke_core::tracker::{AnnounceEvent, AnnounceResponse};
    let limits = QueueLimits {
        max_downloading: None,
        max_seeding: Some(0),
    };
    let now = Instant::from_secs(1);
    let mut s = Session::new(config(limits), 5, now);
    let (content, meta) = torrent(0);
    let t = s.add_torrent(&meta, None, now).expect("add");
    let url = "http://tracker.example/announce".to_string();
    s.set_trackers(t, vec![vec![url.clone()]], now);
    s.handle_timeout(now);
    let started = drain(&mut s)
        .into_iter()
        .any(|a| matches!(a, Action::Announce { request, .. } if request.event == AnnounceEvent::Started));
    assert!(started);
    s.announce_done(t, &url, Ok(AnnounceResponse::default()), now);
    drain(&mut s);
    let actions = download(&mut s, t, &content, &meta, now);
    assert_eq!(s.torrent_state(t), Some(SEED_QUEUED));
    let events: Vec<AnnounceEvent> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Announce { request, .. } => Some(request.event),
            _ => None,
        })
        .collect();
    assert_eq!(events, vec![AnnounceEvent::Completed]);
}
