//! Tracker timing in virtual time: the session owns every tracker timer (BEP 15
//! retransmission, connection ids kept 60 s, the overall announce deadline) on its own
//! clock and seeded RNG; a driver only resolves names and moves datagrams.

use std::net::SocketAddr;
use std::time::Duration;

use unchoke_core::bitfield::Bitfield;
use unchoke_core::dht::DhtConfig;
use unchoke_core::session::{Action, Event, Session, SessionConfig, TorrentId};
use unchoke_core::time::Instant;
use unchoke_core::tracker::server::{ServerConfig, TrackerServer};
use unchoke_core::tracker::udp::Request;
use unchoke_core::tracker::{AnnounceResponse, ResolveError};
use unchoke_sim::lab::{make_content, make_metainfo};

const KIB: u32 = 1024;
const TRACKER: &str = "127.0.0.1:6969";
/// Where the tracker sees the session's datagrams come from.
const US: &str = "127.0.1.2:7000";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn secs(n: u64) -> Instant {
    Instant::ZERO + Duration::from_secs(n)
}

/// One session, the datagrams it sent (with when), and the events it emitted; optionally
/// a real `TrackerServer` answering the datagrams sent to [`TRACKER`].
struct Rig {
    s: Session,
    now: Instant,
    sent: Vec<(Instant, SocketAddr, Vec<u8>)>,
    events: Vec<(Instant, Event)>,
    resolves: Vec<(String, u16)>,
    http: Vec<(Instant, TorrentId, String)>,
    connects: Vec<SocketAddr>,
    tracker: Option<TrackerServer>,
    /// Torrents are added complete (a seed never asks for peers early).
    seeding: bool,
}

impl Rig {
    fn new(config: SessionConfig, seed: u64) -> Rig {
        Rig {
            s: Session::new(config, seed, Instant::ZERO),
            now: Instant::ZERO,
            sent: Vec::new(),
            events: Vec::new(),
            resolves: Vec::new(),
            http: Vec::new(),
            connects: Vec::new(),
            tracker: None,
            seeding: false,
        }
    }

    fn config() -> SessionConfig {
        SessionConfig {
            listen_port: 7000,
            ..SessionConfig::default()
        }
    }

    /// Adds a torrent (content seed `n`) announcing to `tiers`, at the current time.
    fn add(&mut self, n: u64, tiers: Vec<Vec<String>>) -> TorrentId {
        let metainfo = make_metainfo(&make_content(40_000, n), 16 * KIB);
        let have = self
            .seeding
            .then(|| Bitfield::full(metainfo.info.piece_count()));
        let t = self
            .s
            .add_torrent(&metainfo, have, self.now)
            .expect("add torrent");
        self.s.set_trackers(t, tiers, self.now);
        self.drain();
        t
    }

    /// Carries out the session's actions; the tracker (if any) answers at once. Bounded:
    /// a tracker exchange is a handful of round trips.
    fn drain(&mut self) {
        for _ in 0..100 {
            let mut replies = Vec::new();
            while let Some(action) = self.s.poll_action() {
                match action {
                    Action::SendDatagram { to, bytes } => {
                        self.sent.push((self.now, to, bytes.to_vec()));
                        let server = self.tracker.as_mut().filter(|_| to == addr(TRACKER));
                        if let Some(reply) =
                            server.and_then(|t| t.handle_udp_packet(&bytes, addr(US), self.now))
                        {
                            replies.push(reply);
                        }
                    }
                    Action::Resolve { host, port } => self.resolves.push((host, port)),
                    Action::Announce { torrent, url, .. } => {
                        self.http.push((self.now, torrent, url));
                    }
                    Action::Connect { addr, .. } => self.connects.push(addr),
                    Action::Event(e) => self.events.push((self.now, e)),
                    _ => {}
                }
            }
            if replies.is_empty() {
                return;
            }
            for reply in replies {
                self.s.handle_datagram(addr(TRACKER), &reply, self.now);
            }
        }
        panic!("the session and the tracker never stopped talking");
    }

    /// Runs the session's timers up to `end`, exactly at each deadline it asks for.
    fn run_until(&mut self, end: Instant) {
        for _ in 0..1_000_000 {
            self.drain();
            let Some(next) = self.s.poll_timeout() else {
                break;
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            self.s.handle_timeout(self.now);
        }
        self.now = end;
        self.s.handle_timeout(end);
        self.drain();
    }

    /// When datagrams went to `to`, in seconds.
    fn sends_to(&self, to: &str) -> Vec<u64> {
        self.sent
            .iter()
            .filter(|(_, a, _)| *a == addr(to))
            .map(|(at, _, _)| (*at - Instant::ZERO).as_secs())
            .collect()
    }

    /// The BEP 15 requests sent to `to`.
    fn requests_to(&self, to: &str) -> Vec<Request> {
        self.sent
            .iter()
            .filter(|(_, a, _)| *a == addr(to))
            .map(|(_, _, b)| Request::decode(b).expect("a BEP 15 request"))
            .collect()
    }

    fn tracker_errors(&self) -> Vec<(u64, String, String)> {
        self.events
            .iter()
            .filter_map(|(at, e)| match e {
                Event::TrackerError { url, message, .. } => Some((
                    (*at - Instant::ZERO).as_secs(),
                    url.clone(),
                    message.clone(),
                )),
                _ => None,
            })
            .collect()
    }

    fn replies(&self) -> usize {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, Event::TrackerReply { .. }))
            .count()
    }
}

fn udp(a: &str) -> String {
    format!("udp://{a}/announce")
}

#[test]
fn a_silent_udp_tracker_gets_retransmissions_at_15_times_2_to_the_n() {
    // A deadline long enough to see the schedule go on.
    let config = SessionConfig {
        tracker_timeout: Duration::from_secs(1000),
        ..Rig::config()
    };
    let mut rig = Rig::new(config, 1);
    rig.add(1, vec![vec![udp(TRACKER)]]);
    rig.run_until(secs(999));
    // Waits of 15, 30, 60, 120, 240, 480 s after each transmission.
    assert_eq!(rig.sends_to(TRACKER), vec![0, 15, 45, 105, 225, 465, 945]);
    let requests = rig.requests_to(TRACKER);
    assert!(
        requests
            .iter()
            .all(|r| matches!(r, Request::Connect { .. }))
    );
    // Every transmission carries a new transaction id.
    let mut ids: Vec<u32> = requests
        .iter()
        .filter_map(|r| match r {
            Request::Connect { transaction_id } => Some(*transaction_id),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 7);
    assert!(rig.tracker_errors().is_empty(), "still within its deadline");
}

#[test]
fn a_silent_tracker_fails_at_the_deadline_and_the_next_of_the_tier_is_tried() {
    // The hard deadline alone: no attempt deadline before it (`attack_trackers.rs` shows
    // the next tracker asked in parallel at the 15 s attempt deadline).
    let config = SessionConfig {
        tracker_attempt_timeout: Duration::from_secs(60),
        ..Rig::config()
    };
    let mut rig = Rig::new(config, 2);
    rig.add(2, vec![vec![udp(TRACKER), udp("127.0.0.1:6970")]]);
    // BEP 12 shuffles a tier: whichever came first is the silent one here.
    let first = rig.sent[0].1;
    let (silent, other) = if first == addr(TRACKER) {
        (TRACKER, "127.0.0.1:6970")
    } else {
        ("127.0.0.1:6970", TRACKER)
    };
    rig.run_until(secs(59));
    assert_eq!(rig.sends_to(silent), vec![0, 15, 45]);
    assert!(rig.sends_to(other).is_empty(), "{:?}", rig.sends_to(other));
    assert!(rig.tracker_errors().is_empty());
    rig.run_until(secs(61));
    let errors = rig.tracker_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, 60);
    assert_eq!(errors[0].1, udp(silent));
    assert!(errors[0].2.contains("timed out after 60 s"), "{errors:?}");
    // The next tracker of the tier at once; the silent one is sent nothing more.
    assert_eq!(rig.sends_to(other), vec![60]);
    assert_eq!(rig.sends_to(silent), vec![0, 15, 45]);
}

#[test]
fn a_connection_id_is_reused_within_60_s_and_renewed_after() {
    let mut rig = Rig::new(Rig::config(), 3);
    // Seeds, told to come back in 2 min: only new torrents announce in this test.
    rig.seeding = true;
    rig.tracker = Some(TrackerServer::new(ServerConfig::default(), 5));
    rig.add(1, vec![vec![udp(TRACKER)]]);
    let kinds = |rig: &Rig| -> Vec<&'static str> {
        rig.requests_to(TRACKER)
            .iter()
            .map(|r| match r {
                Request::Connect { .. } => "connect",
                Request::Announce { .. } => "announce",
                Request::Scrape { .. } => "scrape",
            })
            .collect()
    };
    assert_eq!(kinds(&rig), vec!["connect", "announce"]);
    assert_eq!(rig.replies(), 1);
    // A second torrent 30 s later: the id is fresh, no connect.
    rig.run_until(secs(30));
    rig.add(2, vec![vec![udp(TRACKER)]]);
    assert_eq!(kinds(&rig), vec!["connect", "announce", "announce"]);
    assert_eq!(rig.replies(), 2);
    // A third 61 s after the connect: the id has expired, connect again.
    rig.run_until(secs(61));
    rig.add(3, vec![vec![udp(TRACKER)]]);
    assert_eq!(
        kinds(&rig),
        vec!["connect", "announce", "announce", "connect", "announce"]
    );
    assert_eq!(rig.replies(), 3);
    let ids: Vec<u64> = rig
        .requests_to(TRACKER)
        .iter()
        .filter_map(|r| match r {
            Request::Announce { connection_id, .. } => Some(*connection_id),
            _ => None,
        })
        .collect();
    assert_eq!(ids[0], ids[1], "reused");
    assert!(
        rig.tracker_errors().is_empty(),
        "{:?}",
        rig.tracker_errors()
    );
}

#[test]
fn a_refused_cached_connection_id_is_replaced_once() {
    let mut rig = Rig::new(Rig::config(), 4);
    rig.tracker = Some(TrackerServer::new(ServerConfig::default(), 5));
    rig.add(1, vec![vec![udp(TRACKER)]]);
    // The tracker restarts (another secret): the cached id is refused.
    rig.tracker = Some(TrackerServer::new(ServerConfig::default(), 6));
    rig.run_until(secs(10));
    rig.add(2, vec![vec![udp(TRACKER)]]);
    assert_eq!(rig.replies(), 2, "{:?}", rig.tracker_errors());
    assert!(
        rig.tracker_errors().is_empty(),
        "{:?}",
        rig.tracker_errors()
    );
    assert_eq!(
        rig.requests_to(TRACKER)
            .iter()
            .filter(|r| matches!(r, Request::Connect { .. }))
            .count(),
        2
    );
}

#[test]
fn tracker_names_are_resolved_by_the_driver() {
    let mut rig = Rig::new(Rig::config(), 5);
    rig.tracker = Some(TrackerServer::new(ServerConfig::default(), 5));
    let t1 = rig.add(1, vec![vec!["udp://tracker.test:6969/announce".into()]]);
    let _t2 = rig.add(2, vec![vec!["udp://tracker.test:6969".into()]]);
    // Asked once for both torrents; nothing sent before the answer.
    assert_eq!(rig.resolves, vec![("tracker.test".to_string(), 6969)]);
    assert!(rig.sent.is_empty());
    rig.now = secs(1);
    rig.s
        .handle_resolved("tracker.test", 6969, Ok(vec![addr(TRACKER)]), rig.now);
    rig.drain();
    assert_eq!(rig.replies(), 2, "{:?}", rig.tracker_errors());
    // A failed resolution is the announce's failure, in the user's words.
    let mut rig = Rig::new(Rig::config(), 5);
    rig.add(1, vec![vec!["udp://nowhere.test:1".into()]]);
    let error = ResolveError::Failed("Name or service not known".into());
    rig.s
        .handle_resolved("nowhere.test", 1, Err(error), rig.now);
    rig.drain();
    let errors = rig.tracker_errors();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .2
            .contains("cannot resolve tracker host \"nowhere.test\""),
        "{errors:?}"
    );
    // An answer nobody waits for is ignored.
    rig.s
        .handle_resolved("nowhere.test", 1, Ok(vec![addr(TRACKER)]), rig.now);
    rig.drain();
    assert!(rig.sent.is_empty());
    let _ = t1;
}

#[test]
fn an_http_announce_not_answered_in_time_fails_and_its_late_answer_is_ignored() {
    let mut rig = Rig::new(Rig::config(), 6);
    let url = "http://127.0.0.1:6969/announce".to_string();
    let t = rig.add(1, vec![vec![url.clone()]]);
    assert_eq!(rig.http.len(), 1);
    rig.run_until(secs(59));
    assert!(rig.tracker_errors().is_empty());
    rig.run_until(secs(60));
    let errors = rig.tracker_errors();
    assert_eq!(
        errors,
        vec![(
            60,
            url.clone(),
            "tracker did not answer: timed out after 60 s".into()
        )]
    );
    // The answer comes after all: no peers dialled from it, no reply reported.
    let late = AnnounceResponse {
        interval: 120,
        peers: vec![addr("127.0.0.5:6881")],
        ..AnnounceResponse::default()
    };
    rig.s.announce_done(t, &url, Ok(late), rig.now);
    rig.drain();
    assert_eq!(rig.replies(), 0);
    assert!(rig.connects.is_empty(), "{:?}", rig.connects);
}

#[test]
fn a_stopped_announce_has_the_short_deadline() {
    let mut rig = Rig::new(Rig::config(), 7);
    rig.tracker = Some(TrackerServer::new(ServerConfig::default(), 5));
    rig.add(1, vec![vec![udp(TRACKER)]]);
    assert_eq!(rig.replies(), 1);
    // The tracker goes silent; leaving sends `stopped` and gives up on it after 3 s.
    rig.tracker = None;
    rig.now = secs(10);
    rig.s.stop_announces(rig.now);
    rig.drain();
    assert_eq!(rig.s.announces_in_flight(), 1);
    rig.run_until(secs(12));
    assert_eq!(rig.s.announces_in_flight(), 1);
    rig.run_until(secs(13));
    assert_eq!(rig.s.announces_in_flight(), 0);
    let errors = rig.tracker_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].2.contains("timed out after 3 s"), "{errors:?}");
}

#[test]
fn dht_datagrams_still_reach_the_dht() {
    let config = SessionConfig {
        dht: Some(DhtConfig::default()),
        ..Rig::config()
    };
    let mut rig = Rig::new(config, 8);
    rig.add(1, vec![vec![udp(TRACKER)]]);
    let before = rig.sent.len();
    // A KRPC ping from the very address a tracker exchange talks to.
    let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
    rig.s.handle_datagram(addr(TRACKER), ping, rig.now);
    rig.drain();
    let answers: Vec<&Vec<u8>> = rig.sent[before..]
        .iter()
        .filter(|(_, to, _)| *to == addr(TRACKER))
        .map(|(_, _, b)| b)
        .collect();
    assert!(
        answers
            .iter()
            .any(|b| b.starts_with(b"d") && b.windows(6).any(|w| w == b"1:y1:r")),
        "the DHT answered the ping: {answers:?}"
    );
    // And the tracker exchange is untouched: its retransmission still comes at 15 s.
    rig.run_until(secs(16));
    let to_tracker: Vec<u64> = rig
        .sent
        .iter()
        .filter(|(_, to, b)| *to == addr(TRACKER) && !b.starts_with(b"d"))
        .map(|(at, _, _)| (*at - Instant::ZERO).as_secs())
        .collect();
    assert_eq!(to_tracker, vec![0, 15]);
}

#[test]
fn the_same_seed_sends_the_same_datagrams() {
    let run = |seed: u64| {
        let mut rig = Rig::new(Rig::config(), seed);
        rig.tracker = Some(TrackerServer::new(ServerConfig::default(), 5));
        rig.add(1, vec![vec![udp(TRACKER)]]);
        rig.add(2, vec![vec![udp("127.0.0.1:6970")]]);
        rig.run_until(secs(200));
        rig.sent
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
}

#[test]
fn leaving_abandons_regular_announces_still_out() {
    let mut rig = Rig::new(Rig::config(), 9);
    // A silent tracker: the `started` never comes back, so no `stopped` is owed.
    rig.add(1, vec![vec![udp(TRACKER)]]);
    assert_eq!(rig.s.announces_in_flight(), 1);
    rig.now = secs(5);
    rig.s.stop_announces(rig.now);
    rig.drain();
    assert_eq!(rig.s.announces_in_flight(), 0, "nothing left to wait for");
    let before = rig.sent.len();
    rig.run_until(secs(100));
    assert_eq!(rig.sent.len(), before, "no retransmission after leaving");
}

/// The swarm's flaky `tracker_peers_left: 1`: a UDP `stopped` started by leaving sat in the
/// session's queue until the next timer, which was its own 3 s deadline; it then timed out
/// and left at the very moment the session said it was drained, so nobody waited for the
/// tracker to read it (the last client of `unchoke swarm` exited before it did).
#[test]
fn a_udp_stopped_leaves_at_once_and_is_answered_before_its_deadline() {
    for how in ["close", "pause"] {
        let mut rig = Rig::new(Rig::config(), 10);
        rig.tracker = Some(TrackerServer::new(ServerConfig::default(), 5));
        let t = rig.add(1, vec![vec![udp(TRACKER)]]);
        assert_eq!(rig.replies(), 1);
        let registered = |rig: &Rig| rig.tracker.as_ref().map(TrackerServer::peer_count);
        assert_eq!(registered(&rig), Some(1));
        rig.now = secs(10);
        match how {
            "close" => rig.s.close(rig.now),
            _ => rig.s.pause_torrent(t, rig.now).expect("pause"),
        }
        // No timer runs: what leaving queued is carried out at once.
        rig.drain();
        assert_eq!(
            rig.sends_to(TRACKER).last(),
            Some(&10),
            "{how}: sent at once"
        );
        assert_eq!(registered(&rig), Some(0), "{how}: the tracker forgot us");
        assert_eq!(
            rig.s.announces_in_flight(),
            0,
            "{how}: answered, not waited"
        );
        assert!(
            rig.tracker_errors().is_empty(),
            "{how}: {:?}",
            rig.tracker_errors()
        );
    }
}
