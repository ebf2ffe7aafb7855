//! The `krpc` target: the DHT's KRPC codec and a whole [`Dht`] node fed arbitrary datagrams
//! from a few sources, with time steps.
//!
//! Byte 0 seeds the node; its top bit makes it an IPv6 node (BEP 32) instead of an IPv4
//! one, and the next one turns BEP 42 node-id enforcement off. The rest is a script of operations, each an opcode byte and its
//! operands: `0 s len bytes…` a raw datagram from source `s`; `1 s m x` a well-formed query
//! (method `m`; `x` picks the target and whether an announce uses the token we were last
//! given); `2 a` a time step of `a`·100 ms then any due timeout; `3 s f n` a response to the
//! last query we sent to source `s` (flag bits: wrong id, wrong transaction, token, values;
//! `n` nodes pointing at the sources, IPv4 ones in `nodes`, IPv6 ones in `nodes6`; peer
//! values of both families; a BEP 42 `ip` naming one of two external addresses, a public
//! one or a private one); `4 k` starts a lookup of kind `k`. Queries carry a BEP 32
//! `want` chosen by `x`. Sources are four addresses of the node's family (three private,
//! one public: enough distinct voters to confirm an external address) and one of the
//! other. The node runs with tiny limits so they are reached.
//!
//! Invariants:
//! 1. Nothing panics; every raw datagram that decodes re-encodes to bytes that decode to
//!    the same message.
//! 2. Everything the node sends is valid KRPC, to an address of its family, and at most
//!    `REPLY_LIMIT` bytes.
//! 3. A datagram gets at most one reply (response or error) back to its source; a datagram
//!    that is not a query gets none.
//! 4. Bounds hold after every operation: routing table ≤ 160 × 8 nodes (and standbys ≤
//!    160 × 4), outstanding queries ≤ `max_outstanding`, lookups ≤ `max_lookups`, stored
//!    info-hashes and peers within the peer store's limits.
//! 5. There is always a deadline, and a lookup's `LookupDone` is reported once.
//! 6. BEP 42: every response the node sends carries the asker's address as `ip`; once an
//!    external address is confirmed, our id is valid for it; with enforcement on, every
//!    node in the routing table has an id valid for its address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use unchoke_core::InfoHash;
use unchoke_core::dht::krpc::{Body, CompactNode, CompactNode6, Message, Query, Response, Want};
use unchoke_core::dht::peer_store::{PeerStoreLimits, SwarmQuota};
use unchoke_core::dht::rate_limit::RateLimit;
use unchoke_core::dht::routing::{MAX_BUCKETS, REPLACEMENTS};
use unchoke_core::dht::{Dht, DhtAction, DhtConfig, Family, NodeId, canonical, node_id_security};
use unchoke_core::time::Instant;

/// The largest datagram the node may send: a full `find_node` answer (8 × 38 bytes of
/// `nodes6` at most, as the node has no sibling here) or a `get_peers` answer with
/// `max_values` peers is far below it.
const REPLY_LIMIT: usize = 600;

const MAX_PACKET: usize = 1500;

/// Four sources of the node's family (the last one public) and one of the other.
fn sources(family: Family) -> [SocketAddr; 5] {
    let v6 = |last: u16, port: u16| {
        SocketAddr::new(
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last).into(),
            port,
        )
    };
    match family {
        Family::V4 => [
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 6881)),
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 6881)),
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 3), 1)),
            v6(1, 6881),
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(81, 2, 3, 4), 6881)),
        ],
        Family::V6 => [
            v6(1, 6881),
            v6(2, 6881),
            // An IPv4-mapped address: the node takes it as IPv4, the other family.
            SocketAddr::new(Ipv4Addr::new(10, 0, 0, 3).to_ipv6_mapped().into(), 6881),
            v6(3, 1),
            SocketAddr::new(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 4).into(), 6881),
        ],
    }
}

/// The two external addresses `ip` may name: a public one and a private one.
fn external(family: Family, public: bool) -> SocketAddr {
    match (family, public) {
        (Family::V4, true) => SocketAddr::from(([81, 9, 9, 9], 6881)),
        (Family::V4, false) => SocketAddr::from(([192, 168, 9, 9], 6881)),
        (Family::V6, true) => SocketAddr::new(Ipv6Addr::new(0x2a00, 9, 0, 0, 0, 0, 0, 9).into(), 1),
        (Family::V6, false) => {
            SocketAddr::new(Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, 9).into(), 1)
        }
    }
}

fn config(family: Family, enforce_node_id: bool) -> DhtConfig {
    DhtConfig {
        family,
        enforce_node_id,
        max_outstanding: 8,
        max_lookups: 3,
        rate_limit: RateLimit {
            per_sec: 4,
            burst: 8,
            max_ips: 2,
        },
        peer_store: PeerStoreLimits {
            ttl: Duration::from_secs(60),
            max_per_hash: 4,
            max_hashes: 3,
            quota: Some(SwarmQuota {
                per_ip: 2,
                window: Duration::from_secs(120),
            }),
        },
        max_values: 5,
        ..DhtConfig::default()
    }
}

/// A source's node id as the script plays it (stable, so the node can learn it).
fn source_id(s: usize) -> NodeId {
    NodeId([s as u8 + 1; 20])
}

struct State {
    dht: Dht,
    now: Instant,
    /// The last transaction id of a query we sent to each address.
    last_query: BTreeMap<SocketAddr, Vec<u8>>,
    /// The last token each source was given.
    tokens: BTreeMap<SocketAddr, Vec<u8>>,
    done: BTreeSet<u64>,
}

impl State {
    /// Takes every action, checking invariants 2, 3 and 5; returns the replies to `from`.
    fn drain(&mut self, from: Option<SocketAddr>) -> usize {
        let mut replies = 0;
        while let Some(a) = self.dht.poll_action() {
            match a {
                DhtAction::Send { to, bytes } => {
                    assert!(
                        Family::of(&canonical(to)) == self.dht.family() && to.port() != 0,
                        "sent to {to}"
                    );
                    assert!(bytes.len() <= REPLY_LIMIT, "sent {} bytes", bytes.len());
                    let m = Message::decode(&bytes, MAX_PACKET).expect("we send valid KRPC");
                    match &m.body {
                        Body::Query(_) => {
                            self.last_query.insert(to, m.transaction.clone());
                        }
                        Body::Response(r) => {
                            assert_eq!(r.ip, Some(canonical(to)), "BEP 42 `ip` in answers");
                            if let Some(t) = &r.token {
                                self.tokens.insert(to, t.clone());
                            }
                            replies += usize::from(Some(to) == from);
                        }
                        Body::Error(_) => replies += usize::from(Some(to) == from),
                    }
                }
                DhtAction::Peers { peers, .. } => assert!(!peers.is_empty()),
                DhtAction::LookupDone { id, .. } => {
                    assert!(self.done.insert(id.0), "lookup {id:?} reported twice");
                }
            }
        }
        replies
    }

    fn check_bounds(&self) {
        let c = self.dht.config();
        let rt = self.dht.routing_table();
        assert!(rt.len() <= MAX_BUCKETS * 8);
        assert!(rt.bucket_count() <= MAX_BUCKETS);
        assert!(rt.replacement_count() <= MAX_BUCKETS * REPLACEMENTS);
        for i in 0..rt.bucket_count() {
            assert!(rt.bucket(i).len() <= 8);
        }
        assert!(self.dht.outstanding_queries() <= c.max_outstanding);
        assert!(self.dht.lookups_running() <= c.max_lookups);
        let store = self.dht.peer_store();
        assert!(store.hashes() <= c.peer_store.max_hashes);
        assert!(store.len() <= c.peer_store.max_hashes * c.peer_store.max_per_hash);
        assert!(self.dht.poll_timeout().is_some(), "no deadline");
        if let Some(ext) = self.dht.external_address() {
            assert!(
                node_id_security::verify(&self.dht.node_id(), ext),
                "our id does not match our confirmed address {ext}"
            );
        }
        if c.enforce_node_id {
            for e in rt.entries() {
                assert!(
                    node_id_security::verify(&e.id, e.addr.ip()),
                    "a non-compliant node in the table: {e:?}"
                );
            }
        }
    }

    /// Delivers `bytes` from `from` and checks invariant 3.
    fn deliver(&mut self, from: SocketAddr, bytes: &[u8]) {
        let is_query = matches!(
            Message::decode(bytes, MAX_PACKET),
            Ok(Message {
                body: Body::Query(_),
                ..
            })
        ) || Message::decode(bytes, MAX_PACKET).is_err_and(|e| e.reply_to.is_some());
        self.dht.handle_packet(from, bytes, self.now);
        let replies = self.drain(Some(from));
        assert!(replies <= 1, "{replies} replies to one datagram");
        if !is_query {
            assert_eq!(replies, 0, "a reply to a datagram that is no query");
        }
    }
}

/// Checks the codec round trip on `bytes` (invariant 1).
fn check_codec(bytes: &[u8]) {
    if let Ok(m) = Message::decode(bytes, MAX_PACKET) {
        let again = m.encode();
        let back = Message::decode(&again, MAX_PACKET).expect("re-encoding decodes");
        assert_eq!(back, m, "decode → encode → decode changed the message");
        assert_eq!(back.encode(), again, "encoding is not stable");
    }
}

/// Runs every KRPC/DHT invariant on `data`. Panics if one fails.
pub fn krpc(data: &[u8]) {
    check_codec(data);
    let Some((&seed, mut rest)) = data.split_first() else {
        return;
    };
    let family = if seed & 0x80 != 0 {
        Family::V6
    } else {
        Family::V4
    };
    let srcs = sources(family);
    let now = Instant::from_secs(1000);
    let enforce = seed & 0x40 == 0;
    let mut st = State {
        dht: Dht::new(config(family, enforce), u64::from(seed), now),
        now,
        last_query: BTreeMap::new(),
        tokens: BTreeMap::new(),
        done: BTreeSet::new(),
    };
    let _ = st.dht.bootstrap(&srcs, now);
    st.drain(None);
    st.check_bounds();

    let byte = |rest: &mut &[u8]| -> Option<u8> {
        let (&b, tail) = rest.split_first()?;
        *rest = tail;
        Some(b)
    };
    while let Some(op) = byte(&mut rest) {
        match op % 5 {
            0 => {
                let (Some(s), Some(len)) = (byte(&mut rest), byte(&mut rest)) else {
                    break;
                };
                let n = usize::from(len).min(rest.len());
                let (packet, tail) = rest.split_at(n);
                rest = tail;
                check_codec(packet);
                st.deliver(srcs[usize::from(s) % srcs.len()], packet);
            }
            1 => {
                let (Some(s), Some(m), Some(x)) =
                    (byte(&mut rest), byte(&mut rest), byte(&mut rest))
                else {
                    break;
                };
                let s = usize::from(s) % srcs.len();
                let id = source_id(s);
                let target = NodeId([x; 20]);
                let token = if x & 1 == 0 {
                    st.tokens.get(&srcs[s]).cloned().unwrap_or_default()
                } else {
                    vec![x; 8]
                };
                let want = Want {
                    n4: x & 4 != 0,
                    n6: x & 8 != 0,
                };
                let q = match m % 4 {
                    0 => Query::Ping { id },
                    1 => Query::FindNode { id, target, want },
                    2 => Query::GetPeers {
                        id,
                        info_hash: target,
                        want,
                    },
                    _ => Query::AnnouncePeer {
                        id,
                        info_hash: target,
                        port: u16::from(x) + 1,
                        implied_port: x & 2 != 0,
                        token,
                    },
                };
                let bytes = Message {
                    transaction: vec![m, x],
                    body: Body::Query(q),
                }
                .encode();
                st.deliver(srcs[s], &bytes);
            }
            2 => {
                let Some(a) = byte(&mut rest) else { break };
                st.now += Duration::from_millis(u64::from(a) * 100);
                if st.dht.poll_timeout().is_some_and(|t| t <= st.now) {
                    st.dht.handle_timeout(st.now);
                }
                st.drain(None);
            }
            3 => {
                let (Some(s), Some(f), Some(n)) =
                    (byte(&mut rest), byte(&mut rest), byte(&mut rest))
                else {
                    break;
                };
                let s = usize::from(s) % srcs.len();
                let Some(t) = st.last_query.get(&srcs[s]).cloned() else {
                    continue;
                };
                let t = if f & 2 != 0 { vec![t[0] ^ 1] } else { t };
                let id = if f & 1 != 0 {
                    NodeId([f; 20])
                } else {
                    source_id(s)
                };
                let mut nodes = Vec::new();
                let mut nodes6 = Vec::new();
                for k in 0..usize::from(n % 10) {
                    let id = NodeId([n.wrapping_add(k as u8); 20]);
                    match srcs[k % srcs.len()] {
                        SocketAddr::V4(addr) => nodes.push(CompactNode { id, addr }),
                        SocketAddr::V6(addr) => nodes6.push(CompactNode6 { id, addr }),
                    }
                }
                let mut values = Vec::new();
                if f & 8 != 0 {
                    values.push(SocketAddr::V4(SocketAddrV4::new(
                        Ipv4Addr::new(1, 2, 3, f),
                        u16::from(n),
                    )));
                }
                if f & 16 != 0 {
                    let ip = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, u16::from(f));
                    values.push(SocketAddr::new(ip.into(), u16::from(n)));
                }
                let r = Response {
                    id,
                    nodes,
                    nodes6,
                    values,
                    token: (f & 4 != 0).then(|| vec![f; 4]),
                    ip: (f & 32 != 0).then(|| external(family, f & 64 == 0)),
                };
                let bytes = Message {
                    transaction: t,
                    body: Body::Response(r),
                }
                .encode();
                st.deliver(srcs[s], &bytes);
            }
            _ => {
                let Some(k) = byte(&mut rest) else { break };
                let ih = InfoHash([k; 20]);
                let _ = match k % 3 {
                    0 => st.dht.get_peers(ih, st.now),
                    1 => st.dht.announce(ih, (k & 4 != 0).then_some(7000), st.now),
                    _ => st.dht.find_node(NodeId([k; 20]), st.now),
                };
                st.drain(None);
            }
        }
        st.check_bounds();
    }
}
