//! A session running the DHT over both address families (BEP 32), in virtual time: one
//! node per family, each joining through the bootstrap address of its family; datagrams
//! routed by the sender's family (an IPv4-mapped IPv6 sender counts as IPv4, as a
//! dual-stack socket reports it); a torrent's lookup runs in both and is reported once,
//! with the peers of both handed to the torrent and dialled.

use std::net::SocketAddr;
use std::time::Duration;

use unchoke_core::dht::krpc::{Body, Message, Query, Response};
use unchoke_core::dht::node_id_security::with_prefix_for;
use unchoke_core::dht::{DhtConfig, DhtFamilies, Family, NodeId};
use unchoke_core::session::{Action, Event, Session, SessionConfig};
use unchoke_core::time::Instant;
use unchoke_sim::lab::{make_content, make_metainfo};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

#[test]
fn a_dual_stack_session_looks_up_in_both_families_and_dials_both_peers() {
    let node4 = addr("10.0.0.1:6881");
    let node6 = addr("[2001:db8::1]:6881");
    let peer4 = addr("10.0.0.9:7000");
    let peer6 = addr("[2001:db8::9]:7000");
    let config = SessionConfig {
        dht: Some(DhtConfig::default()),
        dht_families: DhtFamilies { v4: true, v6: true },
        listen_port: 6881,
        ..SessionConfig::default()
    };
    let metainfo = make_metainfo(&make_content(100_000, 3), 16 * 1024);
    let mut s = Session::new(config, 5, Instant::ZERO);
    let t = s
        .add_torrent(&metainfo, None, Instant::ZERO)
        .expect("add torrent");
    s.set_trackers(t, Vec::new(), Instant::ZERO);
    s.dht_bootstrap(&[node4, node6], Instant::ZERO);

    let mut now = Instant::ZERO;
    let mut sent = Vec::new();
    let mut lookups_done = Vec::new();
    let mut dialled = Vec::new();
    let until = Instant::ZERO + Duration::from_secs(20);
    while now < until {
        while let Some(action) = s.poll_action() {
            match action {
                Action::SendDatagram { to, bytes } => {
                    let Ok(Message {
                        transaction,
                        body: Body::Query(q),
                    }) = Message::decode(&bytes, 1500)
                    else {
                        continue;
                    };
                    sent.push((to, q.clone()));
                    // Each fake node answers in its family: an id, and for get_peers a
                    // token and one peer of its family.
                    // The IPv6 node is at a public address, so under BEP 42 (enforced by
                    // default) its id must match it; the IPv4 one is on a private network.
                    let (id, peer) = if to == node4 {
                        (NodeId([0x44; 20]), peer4)
                    } else if to == node6 {
                        (with_prefix_for(node6.ip(), NodeId([0x66; 20])), peer6)
                    } else {
                        continue;
                    };
                    let mut r = Response::id_only(id);
                    if let Query::GetPeers { .. } = q {
                        r.values = vec![peer];
                        r.token = Some(b"tk".to_vec());
                    }
                    let reply = Message {
                        transaction,
                        body: Body::Response(r),
                    }
                    .encode();
                    // The IPv4 node's answer arrives as a dual-stack socket reports it.
                    let from = match to {
                        SocketAddr::V4(a) => {
                            SocketAddr::new(a.ip().to_ipv6_mapped().into(), a.port())
                        }
                        SocketAddr::V6(_) => to,
                    };
                    s.handle_datagram(from, &reply, now);
                }
                Action::Connect { addr, .. } => dialled.push(addr),
                Action::Event(Event::DhtLookupDone {
                    peers, announced, ..
                }) => {
                    lookups_done.push((peers, announced));
                }
                _ => {}
            }
        }
        let next = s.poll_timeout().unwrap_or(until).max(now);
        now = next.max(now + Duration::from_millis(1));
        s.handle_timeout(now);
    }

    // Every query went to the node of its family; the IPv6 node asked for IPv6 nodes, the
    // IPv4 one as in BEP 5.
    assert!(!sent.is_empty());
    for (to, q) in &sent {
        assert!(*to == node4 || *to == node6, "query to {to}");
        if let Query::FindNode { want, .. } | Query::GetPeers { want, .. } = q {
            assert_eq!((want.n4, want.n6), (false, to.is_ipv6()), "{to}: {q:?}");
        }
    }
    assert!(
        sent.iter()
            .any(|(to, q)| *to == node6 && matches!(q, Query::AnnouncePeer { .. }))
    );
    assert!(
        sent.iter()
            .any(|(to, q)| *to == node4 && matches!(q, Query::AnnouncePeer { .. }))
    );
    // Each family's table holds its node; the mapped answers reached the IPv4 node.
    let (s4, n4) = s.dht_family_stats(Family::V4).expect("an IPv4 node");
    let (s6, n6) = s.dht_family_stats(Family::V6).expect("an IPv6 node");
    assert_eq!((n4, n6), (1, 1));
    assert_eq!((s4.wrong_family, s6.wrong_family, s4.unmatched), (0, 0, 0));
    assert_eq!(s.dht_stats().map(|(_, n)| n), Some(2));
    // One node id in both families (BEP 32's recommendation): the same in every query.
    let ids: std::collections::BTreeSet<NodeId> = sent.iter().map(|(_, q)| q.id()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let mut saved = s.dht_nodes();
    saved.sort();
    assert_eq!(saved, vec![node4, node6]);
    // A round of lookups is reported once, with both families' peers and announces (the
    // first round, started as the torrent was added before any bootstrap address was
    // given, asked nobody and found nothing in either family).
    assert_eq!(lookups_done.first(), Some(&(0, 0)), "{lookups_done:?}");
    assert_eq!(lookups_done.get(1), Some(&(2, 2)), "{lookups_done:?}");
    assert!(
        lookups_done.iter().all(|&(p, _)| p == 0 || p == 2),
        "no family's half of a round is reported alone: {lookups_done:?}"
    );
    assert!(
        dialled.contains(&peer4) && dialled.contains(&peer6),
        "{dialled:?}"
    );
}
