//! Joining the DHT in virtual time: routers named by host are resolved through the driver
//! (`Action::Resolve`), bootstrapped from once resolved, and their failure — a name that
//! does not resolve, one never answered, addresses that stay silent — is reported once per
//! join (`Event::DhtJoinFailed`) and retried every 30 s. A DHT that knows a node keeps an
//! incomplete torrent from giving up; one with no way in does not.

use std::net::SocketAddr;
use std::time::Duration;

use unchoke_core::dht::krpc::{Body, Message, Response};
use unchoke_core::dht::{DhtConfig, NodeId};
use unchoke_core::session::{
    Action, DhtRouterFailure, Event, GiveUpReason, Session, SessionConfig, TorrentId,
};
use unchoke_core::time::Instant;
use unchoke_core::tracker::ResolveError;
use unchoke_sim::lab::{make_content, make_metainfo};

/// Longest a test runs in virtual time; every loop below is bounded by it.
const HORIZON: Duration = Duration::from_secs(120);

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn at(secs: u64) -> Instant {
    Instant::ZERO + Duration::from_secs(secs)
}

/// A session with a DHT holding one incomplete torrent and nothing else to get it from.
fn session() -> (Session, TorrentId) {
    let config = SessionConfig {
        dht: Some(DhtConfig::default()),
        ..SessionConfig::default()
    };
    let metainfo = make_metainfo(&make_content(100_000, 3), 16 * 1024);
    let mut s = Session::new(config, 11, Instant::ZERO);
    let t = s
        .add_torrent(&metainfo, None, Instant::ZERO)
        .expect("add torrent");
    // No tracker (without this call the session waits to be told the torrent's trackers).
    s.set_trackers(t, Vec::new(), Instant::ZERO);
    (s, t)
}

/// A name's answer: `None` leaves it unanswered.
type Answer = Option<Result<Vec<SocketAddr>, ResolveError>>;

/// How the fake network treats what the session asks for.
struct World {
    /// The answer to a name.
    resolve: fn(&str) -> Answer,
    /// The addresses whose DHT node answers every query.
    alive: Vec<SocketAddr>,
}

/// What a run saw, each with its virtual time.
#[derive(Default)]
struct Seen {
    resolves: Vec<(Instant, String)>,
    sent_to: Vec<(Instant, SocketAddr)>,
    join_failed: Vec<(Instant, usize, Vec<DhtRouterFailure>)>,
    gave_up: Vec<(Instant, GiveUpReason)>,
}

/// Drives `s` to each deadline until `until`, answering as `world` says.
fn run(s: &mut Session, world: &World, until: Instant, seen: &mut Seen) {
    let mut now = Instant::ZERO;
    loop {
        while let Some(action) = s.poll_action() {
            match action {
                Action::Resolve { host, port } => {
                    seen.resolves.push((now, host.clone()));
                    if let Some(result) = (world.resolve)(&host) {
                        s.handle_resolved(&host, port, result, now);
                    }
                }
                Action::SendDatagram { to, bytes } => {
                    seen.sent_to.push((now, to));
                    if !world.alive.contains(&to) {
                        continue;
                    }
                    let Ok(Message {
                        transaction,
                        body: Body::Query(_),
                    }) = Message::decode(&bytes, 1500)
                    else {
                        continue;
                    };
                    let reply = Message {
                        transaction,
                        body: Body::Response(Response::id_only(NodeId([0x5a; 20]))),
                    };
                    s.handle_datagram(to, &reply.encode(), now);
                }
                Action::Event(Event::DhtJoinFailed {
                    nodes_tried,
                    routers,
                }) => seen.join_failed.push((now, nodes_tried, routers)),
                Action::Event(Event::GaveUp { reason, .. }) => seen.gave_up.push((now, reason)),
                _ => {}
            }
        }
        let next = s.poll_timeout().unwrap_or(until).max(now);
        if next >= until {
            return;
        }
        now = next.max(now + Duration::from_millis(1));
        s.handle_timeout(now);
    }
}

#[test]
fn a_router_that_resolves_and_answers_lets_the_node_join_and_the_torrent_wait() {
    let (mut s, _) = session();
    s.dht_join_routers(&[("router.test".into(), 6881)], Instant::ZERO);
    let world = World {
        resolve: |host| {
            Some(if host == "router.test" {
                Ok(vec![addr("127.0.0.9:6881")])
            } else {
                Err(ResolveError::Failed("unknown".into()))
            })
        },
        alive: vec![addr("127.0.0.9:6881")],
    };
    let mut seen = Seen::default();
    run(&mut s, &world, Instant::ZERO + HORIZON, &mut seen);
    assert_eq!(seen.resolves, vec![(Instant::ZERO, "router.test".into())]);
    assert_eq!(
        seen.sent_to.first(),
        Some(&(Instant::ZERO, addr("127.0.0.9:6881"))),
        "the router's address is queried as soon as it is known"
    );
    assert!(seen.join_failed.is_empty(), "{:?}", seen.join_failed);
    assert!(
        seen.gave_up.is_empty(),
        "a DHT that knows a node may still find peers: {:?}",
        seen.gave_up
    );
    assert_eq!(s.dht_stats().map(|(_, table)| table), Some(1));
}

#[test]
fn routers_that_fail_are_named_once_per_join_retried_and_the_torrent_gives_up() {
    let (mut s, _) = session();
    s.dht_join_routers(
        &[("gone.test".into(), 6881), ("silent.test".into(), 1)],
        Instant::ZERO,
    );
    let world = World {
        // One name is unknown at once; the other is never answered (a hung resolver).
        resolve: |host| {
            (host == "gone.test").then(|| Err(ResolveError::Failed("no such host".into())))
        },
        alive: Vec::new(),
    };
    let mut seen = Seen::default();
    run(&mut s, &world, at(50), &mut seen);
    let resolved_at: Vec<Instant> = seen.resolves.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        resolved_at,
        vec![at(0), at(0), at(30), at(30)],
        "each name asked at once, and again 30 s after the first join began"
    );
    assert!(seen.sent_to.is_empty(), "nothing to send to");
    let (when, nodes_tried, routers) = seen.join_failed.first().expect("join failure");
    assert_eq!(
        *when,
        at(15),
        "the unanswered name counts as failed after 15 s"
    );
    assert_eq!(*nodes_tried, 0);
    assert_eq!(
        routers,
        &vec![
            DhtRouterFailure {
                router: "gone.test:6881".into(),
                reason: "no such host".into(),
            },
            DhtRouterFailure {
                router: "silent.test:1".into(),
                reason: "the name was not resolved in 15 s".into(),
            },
        ]
    );
    assert_eq!(
        seen.join_failed.iter().map(|j| j.0).collect::<Vec<_>>(),
        vec![at(15), at(45)],
        "one report per failed join"
    );
    let (gave_up_at, reason) = seen.gave_up.first().expect("gave up");
    assert_eq!(*reason, GiveUpReason::NothingGiven);
    assert!(
        *gave_up_at >= at(25) && *gave_up_at <= at(27),
        "gives up the grace period after the join failed: {gave_up_at:?}"
    );
}

#[test]
fn bootstrap_addresses_that_stay_silent_are_a_failed_join() {
    let (mut s, _) = session();
    s.dht_bootstrap(&[addr("127.0.0.9:6881")], Instant::ZERO);
    let world = World {
        resolve: |_| None,
        alive: Vec::new(),
    };
    let mut seen = Seen::default();
    run(&mut s, &world, Instant::ZERO + HORIZON, &mut seen);
    assert!(seen.resolves.is_empty());
    assert_eq!(
        seen.sent_to.first(),
        Some(&(Instant::ZERO, addr("127.0.0.9:6881")))
    );
    let (when, nodes_tried, routers) = seen.join_failed.first().expect("join failure");
    assert!(
        *when > Instant::ZERO && *when <= at(10),
        "after the query time-out: {when:?}"
    );
    assert_eq!(*nodes_tried, 1);
    assert!(routers.is_empty());
    assert_eq!(seen.gave_up.len(), 1, "{:?}", seen.gave_up);
}

#[test]
fn a_dht_with_no_way_in_is_no_source() {
    let (mut s, _) = session();
    let world = World {
        resolve: |_| None,
        alive: Vec::new(),
    };
    let mut seen = Seen::default();
    run(&mut s, &world, Instant::ZERO + HORIZON, &mut seen);
    assert!(
        seen.join_failed.is_empty(),
        "nothing was tried, nothing failed"
    );
    assert_eq!(seen.gave_up.len(), 1, "{:?}", seen.gave_up);
    assert!(seen.gave_up[0].0 <= at(11), "{:?}", seen.gave_up);
}
