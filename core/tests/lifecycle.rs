//! A torrent's and the session's lifecycle in virtual time: `close()` leaves every swarm
//! (`stopped` announces, final resume saves, disconnects) and drains within its deadline
//! whatever does not answer; `remove_torrent` while peers are mid-transfer; pause and
//! resume.

use std::time::Duration;

use sha1::{Digest, Sha1};
use unchoke_core::bencode::{self, Dict, List, Value};
use unchoke_core::metainfo::Metainfo;
use unchoke_core::session::{Event, LifecycleError, SessionConfig, TorrentId, TorrentState};
use unchoke_core::time::Instant;
use unchoke_core::tracker::server::{ServerConfig, TrackerServer};
use unchoke_core::tracker::{AnnounceEvent, AnnounceResponse};
use unchoke_sim::lab::{Behaviour, Swarm, make_content};

const KIB: usize = 1024;
/// How often the close test looks at the announces to answer `stopped` (virtual time).
const STEP: Duration = Duration::from_millis(10);
const PIECE: u32 = 32 * KIB as u32;

/// A seed and a leecher over a 64 KiB/s link: 1 MiB takes about 16 s.
fn swarm(tracker: bool) -> (Swarm, usize, usize) {
    let mut s = Swarm::new(make_content(1024 * KIB, 7), PIECE, 64 * KIB);
    if tracker {
        s.set_tracker(TrackerServer::new(ServerConfig::default(), 3));
    }
    let seed = s.add_seed(Behaviour::Honest);
    let leech = s.add_node(None, Behaviour::Honest);
    s.introduce(leech);
    (s, seed, leech)
}

fn verified(s: &Swarm, i: usize, torrent: TorrentId) -> u32 {
    s.events(i)
        .filter(|(_, e)| matches!(e, Event::PieceVerified { torrent: t, .. } if *t == torrent))
        .count() as u32
}

/// Node `i`'s announces with `event` at or after `since`.
fn announces_of(s: &Swarm, i: usize, event: AnnounceEvent, since: Instant) -> usize {
    s.announces()
        .iter()
        .filter(|(at, node, _, r)| *node == i && r.event == event && *at >= since)
        .count()
}

/// Node `i`'s disconnects for `reason` (its `Display` text) at or after `since`.
fn disconnects_of(s: &Swarm, i: usize, reason: &str, since: Instant) -> usize {
    s.disconnects()
        .iter()
        .filter(|(at, node, r)| *node == i && r == reason && *at >= since)
        .count()
}

#[test]
fn close_sends_stopped_and_drains_by_its_deadline_when_nothing_answers() {
    let (mut s, _, leech) = swarm(true);
    // The leecher's disk never finishes a write nor a save (the harness never answers
    // `stopped` either): only the close's own deadline ends it.
    s.set_disk_rate(leech, 0);
    s.set_save_answer(unchoke_sim::lab::SaveAnswer::Hold);
    s.run_until(Duration::from_secs(3), |_| false);
    assert!(s.unwritten(leech) > 0, "writes are out when closing");
    let closed_at = s.now();
    s.session_mut(leech).close(closed_at);
    assert!(!s.session(leech).is_drained());
    let cfg = SessionConfig::default();
    let drained = s.run_until(Duration::from_secs(30), |s| s.session(leech).is_drained());
    assert!(drained, "never drained");
    let took = s.now() - closed_at;
    assert!(
        took >= cfg.close_timeout && took <= cfg.close_timeout + Duration::from_millis(20),
        "drained {took:?} after close: the stuck disk holds it to close_timeout"
    );
    assert_eq!(
        announces_of(&s, leech, AnnounceEvent::Stopped, closed_at),
        1,
        "one stopped to the one tracker"
    );
    // Half the close's time waits for the stuck write, then the last save goes out anyway
    // and every peer is disconnected.
    let t = s.torrent(leech);
    let finals: Vec<_> = s
        .saves()
        .iter()
        .filter(|(at, node, _, _)| *node == leech && *at >= closed_at)
        .collect();
    assert_eq!(finals.len(), 1, "one final save: {finals:?}");
    assert!(finals[0].0 >= closed_at + cfg.close_timeout / 2);
    assert_eq!(finals[0].2, t);
    assert!(
        s.session(leech).final_saves().is_empty(),
        "the final save was never reported"
    );
    assert!(disconnects_of(&s, leech, "session closing", closed_at) >= 1);
    assert!(s.session(leech).connections(t).is_empty());
    // Everyone went with the final save; no connection came or went after it.
    let late = s
        .disconnects()
        .iter()
        .filter(|(at, node, _)| *node == leech && *at > finals[0].0)
        .count();
    assert_eq!(late, 0);
}

#[test]
fn close_with_everything_answering_drains_at_the_last_save_with_every_verified_piece() {
    let (mut s, _, leech) = swarm(true);
    s.run_until(Duration::from_secs(6), |_| false);
    let t = s.torrent(leech);
    let before = verified(&s, leech, t);
    assert!(before > 0, "mid-download");
    assert!(!s.is_complete(leech));
    let closed_at = s.now();
    s.session_mut(leech).close(closed_at);
    // The harness never answers `stopped`: answer it here, as a tracker would.
    let mut answered = 0;
    let mut drained_at = None;
    for _ in 0..2000 {
        s.run_until(STEP, |_| false);
        let stops: Vec<(TorrentId, String)> = s
            .announces()
            .iter()
            .filter(|(at, node, _, r)| {
                *node == leech && *at >= closed_at && r.event == AnnounceEvent::Stopped
            })
            .map(|(_, _, url, _)| (t, url.clone()))
            .collect();
        for (torrent, url) in stops.iter().skip(answered) {
            let now = s.now();
            s.session_mut(leech)
                .announce_done(*torrent, url, Ok(AnnounceResponse::default()), now);
        }
        answered = stops.len();
        if s.session(leech).is_drained() {
            drained_at = Some(s.now());
            break;
        }
    }
    let drained_at = drained_at.expect("drained");
    assert_eq!(answered, 1, "one stopped");
    assert!(
        drained_at - closed_at < Duration::from_secs(1),
        "drained {:?} after close, with everything answering",
        drained_at - closed_at
    );
    let finals: Vec<_> = s
        .saves()
        .iter()
        .filter(|(at, node, _, _)| *node == leech && *at >= closed_at)
        .collect();
    assert_eq!(finals.len(), 1, "{finals:?}");
    let have = s.session(leech).have(t).expect("have").clone();
    assert_eq!(finals[0].3, have, "the final save records what is verified");
    assert_eq!(have.count_ones(), verified(&s, leech, t));
    assert!(have.count_ones() >= before);
    assert_eq!(s.session(leech).final_saves(), vec![(t, true)]);
    assert_eq!(
        s.session(leech).torrent_state(t),
        Some(TorrentState::Closing)
    );
    let now = s.now();
    assert_eq!(
        s.session_mut(leech).pause_torrent(t, now),
        Err(LifecycleError::Closing)
    );
}

/// The swarm's content under another name: another info-hash, the same bytes at the same
/// places, so both torrents share each node's disk in the harness.
fn twin(s: &Swarm) -> Metainfo {
    let mut pieces = Vec::new();
    for chunk in s.content.chunks(PIECE as usize) {
        pieces.extend_from_slice(&Sha1::digest(chunk));
    }
    let info = Value::Dict(Dict::new(vec![
        (b"length", Value::Int(s.content.len() as i64)),
        (b"name", Value::Bytes(b"twin.bin")),
        (b"piece length", Value::Int(i64::from(PIECE))),
        (b"pieces", Value::Bytes(&pieces)),
    ]));
    let root = Value::Dict(Dict::new(vec![
        (b"info", info),
        (b"url-list", Value::List(List::new(vec![]))),
    ]));
    Metainfo::from_bytes(&bencode::encode(&root)).expect("twin parses")
}

#[test]
fn remove_torrent_mid_transfer_disconnects_its_peers_and_the_other_torrent_completes() {
    let (mut s, seed, leech) = swarm(false);
    let twin = twin(&s);
    assert_ne!(twin.info_hash, s.metainfo.info_hash);
    let now = s.now();
    let full = unchoke_core::bitfield::Bitfield::full(twin.info.piece_count());
    s.session_mut(seed)
        .add_torrent(&twin, Some(full), now)
        .expect("seed adds the twin");
    let b = s
        .session_mut(leech)
        .add_torrent(&twin, None, now)
        .expect("leech adds the twin");
    let seed_addr = s.addr(seed);
    s.session_mut(leech).add_peers(b, &[seed_addr], now);
    s.run_until(Duration::from_secs(4), |_| false);
    assert!(verified(&s, leech, b) > 0, "the twin is mid-transfer");
    assert!(!s.session(leech).connections(b).is_empty());
    let removed_at = s.now();
    assert_eq!(s.session_mut(leech).remove_torrent(b, removed_at), Ok(()));
    // Its id is refused from now on, without a panic.
    let sess = &mut s.session_mut(leech);
    assert!(sess.stats(b, removed_at).is_none());
    assert!(sess.connections(b).is_empty());
    assert!(sess.torrent_state(b).is_none());
    assert_eq!(
        sess.remove_torrent(b, removed_at),
        Err(LifecycleError::UnknownTorrent)
    );
    assert_eq!(
        sess.pause_torrent(b, removed_at),
        Err(LifecycleError::UnknownTorrent)
    );
    sess.add_peers(b, &[seed_addr], removed_at);
    sess.piece_hashed(b, 0, true, removed_at);
    sess.resume_saved(b, true, removed_at);
    // Completions already out for it arrive late and are ignored; the other torrent goes on.
    let a = s.torrent(leech);
    assert!(s.run_until(Duration::from_secs(60), |s| s.is_complete(leech)));
    assert!(s.disk_matches(leech));
    assert!(disconnects_of(&s, leech, "torrent removed", removed_at) >= 1);
    assert!(
        s.events(leech)
            .any(|(_, e)| *e == Event::TorrentRemoved { torrent: b })
    );
    assert!(
        !s.events(leech).any(|(at, e)| *at > removed_at
            && matches!(e, Event::PieceVerified { torrent, .. } if *torrent == b)),
        "nothing verified for the removed torrent"
    );
    assert_eq!(s.unwritten(leech), 0, "its writes were given back");
    assert_eq!(
        s.session_mut(leech).torrent_state(a),
        Some(TorrentState::Seeding)
    );
    // Added again, it gets a new id and completes (its pieces are on disk, verified again
    // from the peer here since the harness has no check).
    let now = s.now();
    let again = s
        .session_mut(leech)
        .add_torrent(&twin, None, now)
        .expect("re-add");
    assert_ne!(again, b);
    s.session_mut(leech).add_peers(again, &[seed_addr], now);
    let done = s.run_until(Duration::from_secs(60), |s| {
        s.session(leech)
            .stats(again, s.now())
            .is_some_and(|st| st.complete)
    });
    assert!(done, "the re-added torrent completes");
    assert!(s.disk_matches(leech));
}

#[test]
fn a_paused_torrent_trades_nothing_and_completes_after_resume() {
    let (mut s, _, leech) = swarm(true);
    s.sniff();
    s.run_until(Duration::from_secs(4), |_| false);
    let t = s.torrent(leech);
    let before = verified(&s, leech, t);
    assert!(before > 0 && !s.is_complete(leech));
    let paused_at = s.now();
    s.session_mut(leech)
        .pause_torrent(t, paused_at)
        .expect("pause");
    assert_eq!(
        s.session(leech).torrent_state(t),
        Some(TorrentState::Paused)
    );
    // Pausing twice is harmless.
    assert_eq!(s.session_mut(leech).pause_torrent(t, paused_at), Ok(()));
    s.run_until(Duration::from_secs(40), |_| false);
    let settle = paused_at + Duration::from_millis(200);
    let traffic = s
        .sniffed()
        .iter()
        .filter(|m| (m.from == leech || m.to == leech) && m.at > settle && m.message.is_some())
        .count();
    assert_eq!(traffic, 0, "no message to or from a paused torrent");
    assert!(s.session(leech).connections(t).is_empty());
    assert!(disconnects_of(&s, leech, "torrent paused", paused_at) >= 1);
    assert_eq!(
        announces_of(&s, leech, AnnounceEvent::Stopped, paused_at),
        1
    );
    let stats = s
        .session(leech)
        .stats(t, s.now())
        .expect("stats while paused");
    assert!(!stats.complete && stats.pieces_have >= before);
    assert!(!s.is_complete(leech));
    // Resume: `started` again, and the download finishes.
    let resumed_at = s.now();
    s.session_mut(leech)
        .resume_torrent(t, resumed_at)
        .expect("resume");
    assert!(s.run_until(Duration::from_secs(60), |s| s.is_complete(leech)));
    assert!(s.disk_matches(leech));
    assert!(announces_of(&s, leech, AnnounceEvent::Started, resumed_at) >= 1);
}

#[test]
fn the_final_save_waits_for_an_earlier_save_still_out() {
    let mut s = Swarm::new(make_content(1024 * KIB, 7), PIECE, 64 * KIB);
    s.config.resume_interval = Duration::from_secs(2);
    s.add_seed(Behaviour::Honest);
    let leech = s.add_node(None, Behaviour::Honest);
    s.introduce(leech);
    s.set_save_answer(unchoke_sim::lab::SaveAnswer::Hold);
    assert!(s.run_until(Duration::from_secs(20), |s| {
        s.saves().iter().any(|(_, node, _, _)| *node == leech)
    }));
    let closed_at = s.now();
    s.session_mut(leech).close(closed_at);
    s.run_until(Duration::from_secs(2), |_| false);
    let count = |s: &Swarm| {
        s.saves()
            .iter()
            .filter(|(_, node, _, _)| *node == leech)
            .count()
    };
    assert_eq!(count(&s), 1, "no final save while the earlier one is out");
    assert!(!s.session(leech).is_drained());
    // The earlier save comes back: the final one follows, and its answer drains the close.
    s.set_save_answer(unchoke_sim::lab::SaveAnswer::Ok);
    s.answer_held_saves(true);
    let drained = s.run_until(Duration::from_secs(1), |s| s.session(leech).is_drained());
    assert!(drained);
    assert_eq!(count(&s), 2);
    let t = s.torrent(leech);
    assert_eq!(s.session(leech).final_saves(), vec![(t, true)]);
}

#[test]
fn closing_an_idle_session_saves_each_torrent_once_and_drains_on_the_answer() {
    let s = Swarm::new(make_content(64 * KIB, 3), PIECE, 64 * KIB);
    let mut sess = unchoke_core::session::Session::new(SessionConfig::default(), 5, Instant::ZERO);
    let t = sess
        .add_torrent(&s.metainfo, None, Instant::ZERO)
        .expect("add");
    sess.set_trackers(t, Vec::new(), Instant::ZERO);
    while sess.poll_action().is_some() {}
    let at = Instant::ZERO + Duration::from_secs(1);
    sess.close(at);
    let actions: Vec<_> = std::iter::from_fn(|| sess.poll_action()).collect();
    let saves: Vec<_> = actions
        .iter()
        .filter(|a| matches!(a, unchoke_core::session::Action::SaveResume { torrent, .. } if *torrent == t))
        .collect();
    assert_eq!(
        saves.len(),
        1,
        "the last save, though nothing changed: {actions:?}"
    );
    assert!(!sess.is_drained(), "the save is not answered yet");
    assert!(
        sess.poll_timeout()
            .is_some_and(|d| d <= at + SessionConfig::default().close_timeout)
    );
    sess.resume_saved(t, true, at);
    assert!(sess.is_drained());
    // Inbound connections are refused while closing, with no peer event.
    let c = sess.connection_opened(
        "127.0.0.9:1".parse().expect("addr"),
        unchoke_core::session::Direction::Inbound,
        at,
    );
    let after: Vec<_> = std::iter::from_fn(|| sess.poll_action()).collect();
    assert!(
        after.iter().any(
            |a| matches!(a, unchoke_core::session::Action::Disconnect { conn, .. } if *conn == c)
        ),
        "{after:?}"
    );
}

#[test]
fn the_same_seed_gives_the_same_digest_through_pause_remove_and_close() {
    let run = || {
        let (mut s, seed, leech) = swarm(true);
        let twin = twin(&s);
        let now = s.now();
        let full = unchoke_core::bitfield::Bitfield::full(twin.info.piece_count());
        s.session_mut(seed)
            .add_torrent(&twin, Some(full), now)
            .expect("seed twin");
        let b = s
            .session_mut(leech)
            .add_torrent(&twin, None, now)
            .expect("twin");
        let seed_addr = s.addr(seed);
        s.session_mut(leech).add_peers(b, &[seed_addr], now);
        s.run_until(Duration::from_secs(3), |_| false);
        let t = s.torrent(leech);
        let now = s.now();
        s.session_mut(leech).pause_torrent(t, now).expect("pause");
        s.session_mut(leech).remove_torrent(b, now).expect("remove");
        s.run_until(Duration::from_secs(3), |_| false);
        let now = s.now();
        s.session_mut(leech).resume_torrent(t, now).expect("resume");
        s.run_until(Duration::from_secs(3), |_| false);
        let now = s.now();
        s.session_mut(leech).close(now);
        s.run_until(Duration::from_secs(12), |s| s.session(leech).is_drained());
        assert!(s.session(leech).is_drained());
        s.fingerprint()
    };
    assert_eq!(run(), run());
}

#[test]
fn poll_timeout_is_none_when_nothing_is_scheduled() {
    use unchoke_core::session::Session;
    let t0 = Instant::ZERO;
    let mut s = Session::new(SessionConfig::default(), 7, t0);
    assert_eq!(s.poll_timeout(), None, "no torrent, no DHT, no connection");

    let meta = unchoke_sim::lab::make_metainfo(&make_content(64 * 1024, 3), 16 * 1024);
    let id = s.add_torrent(&meta, None, t0).expect("add");
    s.set_trackers(id, Vec::new(), t0);
    while s.poll_action().is_some() {}
    assert!(
        s.poll_timeout().is_some(),
        "a running torrent has housekeeping"
    );

    let t1 = t0 + Duration::from_secs(1);
    s.close(t1);
    // Carry the close out: the final save is answered, then nothing is left to wake for.
    while let Some(action) = s.poll_action() {
        if let unchoke_core::session::Action::SaveResume { torrent, .. } = action {
            s.resume_saved(torrent, true, t1);
        }
    }
    assert!(s.is_drained());
    assert_eq!(
        s.poll_timeout(),
        None,
        "a drained session schedules nothing"
    );
}

#[test]
fn a_recheck_takes_the_torrent_out_of_its_swarm_and_its_result_replaces_the_verified_pieces() {
    let (mut s, _, leech) = swarm(true);
    s.sniff();
    s.run_until(Duration::from_secs(4), |_| false);
    let t = s.torrent(leech);
    let have = s.session(leech).have(t).expect("metadata").clone();
    let before = have.count_ones();
    assert!(before > 2 && !s.is_complete(leech));
    let at = s.now();
    s.session_mut(leech).start_recheck(t, at).expect("start");
    assert_eq!(
        s.session(leech).torrent_state(t),
        Some(TorrentState::Checking)
    );
    assert_eq!(
        s.session_mut(leech).start_recheck(t, at),
        Err(LifecycleError::Checking)
    );
    // While checking it trades nothing, like a paused torrent.
    s.run_until(Duration::from_secs(5), |_| false);
    assert!(s.session(leech).connections(t).is_empty());
    let settle = at + Duration::from_millis(200);
    let traffic = s
        .sniffed()
        .iter()
        .filter(|m| (m.from == leech || m.to == leech) && m.at > settle && m.message.is_some())
        .count();
    assert_eq!(traffic, 0, "no message to or from a torrent being checked");
    // A result of the wrong length changes nothing: still checking.
    let now = s.now();
    let wrong = unchoke_core::bitfield::Bitfield::new(have.len() + 1);
    assert!(matches!(
        s.session_mut(leech).finish_recheck(t, wrong, now),
        Err(LifecycleError::HaveMismatch { .. })
    ));
    assert_eq!(
        s.session(leech).torrent_state(t),
        Some(TorrentState::Checking)
    );
    // The check found one verified piece gone (a byte changed on disk, say): the torrent
    // has exactly what the check says, and fetches the lost piece again.
    let lost = have.ones().next().expect("a verified piece");
    let mut found = have.clone();
    found.clear(lost);
    s.session_mut(leech)
        .finish_recheck(t, found.clone(), now)
        .expect("finish");
    assert_eq!(s.session(leech).have(t), Some(&found));
    assert_eq!(
        s.session_mut(leech).finish_recheck(t, found, now),
        Err(LifecycleError::NotChecking)
    );
    assert_ne!(
        s.session(leech).torrent_state(t),
        Some(TorrentState::Checking)
    );
    assert!(s.run_until(Duration::from_secs(90), |s| s.is_complete(leech)));
    assert!(s.disk_matches(leech));
    assert!(
        announces_of(&s, leech, AnnounceEvent::Started, at) >= 1,
        "it rejoined"
    );
}
