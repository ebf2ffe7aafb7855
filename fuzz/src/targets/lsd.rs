//! The `lsd` target: the BEP 14 parser, and a whole [`Session`] with local service
//! discovery on fed arbitrary datagrams on its LSD entry, well-formed announces and time
//! steps.
//!
//! The input is first parsed as one datagram. Then it is a script: byte 0 seeds the
//! session and picks its groups (`seed % 3`: IPv4, IPv6, both); each operation is an opcode
//! byte and its operands: `0 s len bytes…` a raw datagram from source `s`; `1 s k p` an
//! announce of torrent `k` (or an unknown hash) on port `p` from source `s`, with the
//! `Host` line of the source's family; `2 a` a time step of `a`·100 ms then any due
//! timeout. Sources are four IPv4 addresses, a unique-local and a link-local (scoped) IPv6
//! address, and an IPv4-mapped one.
//!
//! Invariants:
//! 1. Nothing panics; a datagram that parses has a port, 1 to `MAX_INFO_HASHES` distinct
//!    hashes, and encodes back to bytes that parse to the same announce.
//! 2. Every `SendLsd` goes to one of the session's groups with that group's `Host` line, is
//!    at most `MAX_DATAGRAM` bytes, parses, names only our torrents and our port, and two to
//!    the same group are never less than a second apart.
//! 3. An `LsdPeer` event names one of our torrents and the sender's IP (an IPv4-mapped
//!    sender as its IPv4 address, a scoped one with its scope id); counters add up.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use unchoke_core::InfoHash;
use unchoke_core::dht::canonical;
use unchoke_core::lsd::{
    LsdAnnounce, LsdFamilies, MAX_DATAGRAM, MAX_INFO_HASHES, group_v4, group_v6,
};
use unchoke_core::session::{Action, Event, Session, SessionConfig};
use unchoke_core::time::Instant;
use unchoke_sim::lab::{make_content, make_metainfo};

const PORT: u16 = 6881;

fn sources() -> [SocketAddr; 7] {
    let v4 = |i| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, i), 6771));
    let v6 = |ip: Ipv6Addr, scope| SocketAddr::V6(SocketAddrV6::new(ip, 6771, 0, scope));
    [
        v4(1),
        v4(2),
        v4(3),
        v4(4),
        v6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 5), 0),
        v6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 6), 2),
        v6(Ipv4Addr::new(10, 0, 0, 7).to_ipv6_mapped(), 0),
    ]
}

/// The group a source's announces come to.
fn group_of(from: SocketAddr) -> SocketAddr {
    match canonical(from) {
        SocketAddr::V4(_) => group_v4(),
        SocketAddr::V6(_) => group_v6(),
    }
}

/// Checks invariant 1 on `bytes`.
fn check_parse(bytes: &[u8]) {
    if let Ok(a) = LsdAnnounce::parse(bytes) {
        assert_ne!(a.port, 0);
        assert!((1..=MAX_INFO_HASHES).contains(&a.info_hashes.len()));
        for (i, h) in a.info_hashes.iter().enumerate() {
            assert!(!a.info_hashes[..i].contains(h), "repeated hash");
        }
        for group in [group_v4(), group_v6()] {
            let again = a.encode(group);
            assert_eq!(
                LsdAnnounce::parse(&again),
                Ok(a.clone()),
                "encode → parse changed it"
            );
        }
    }
}

struct State {
    session: Session,
    now: Instant,
    ours: Vec<InfoHash>,
    families: LsdFamilies,
    /// When each group was last sent to (IPv4, IPv6).
    last_sent: [Option<Instant>; 2],
}

impl State {
    /// Takes every action, checking invariants 2 and 3.
    fn drain(&mut self, from: Option<SocketAddr>) {
        while let Some(a) = self.session.poll_action() {
            match a {
                Action::SendLsd { to, bytes } => {
                    assert!(
                        self.families.groups().any(|g| g == to),
                        "not our group: {to}"
                    );
                    assert!(bytes.len() <= MAX_DATAGRAM);
                    let host = format!("\r\nHost: {to}\r\n");
                    assert!(
                        bytes.windows(host.len()).any(|w| w == host.as_bytes()),
                        "Host line of another group"
                    );
                    let a = LsdAnnounce::parse(&bytes).expect("we send valid announces");
                    assert_eq!(a.port, PORT);
                    assert!(a.info_hashes.iter().all(|h| self.ours.contains(h)));
                    let family = usize::from(to.is_ipv6());
                    if let Some(last) = self.last_sent[family] {
                        assert!(self.now.saturating_duration_since(last) >= Duration::from_secs(1));
                    }
                    self.last_sent[family] = Some(self.now);
                }
                Action::SendDatagram { .. } => panic!("no DHT, no UDP tracker: no datagram"),
                Action::Event(Event::LsdPeer { torrent, addr }) => {
                    assert!(self.session.stats(torrent, self.now).is_some());
                    let sender = from.map(canonical);
                    assert_eq!(
                        Some(addr.ip()),
                        sender.map(|f| f.ip()),
                        "peer is the sender"
                    );
                    if let (SocketAddr::V6(peer), Some(SocketAddr::V6(f))) = (addr, sender) {
                        assert_eq!(peer.scope_id(), f.scope_id(), "scope id lost");
                    }
                }
                _ => {}
            }
        }
        if let Some(st) = self.session.lsd_stats() {
            assert!(st.own + st.rate_limited + st.invalid <= st.received);
        }
    }
}

/// Runs every LSD invariant on `data`. Panics if one fails.
pub fn lsd(data: &[u8]) {
    check_parse(data);
    let Some((&seed, mut rest)) = data.split_first() else {
        return;
    };
    let families = match seed % 3 {
        0 => LsdFamilies::default(),
        1 => LsdFamilies {
            v4: false,
            v6: true,
        },
        _ => LsdFamilies { v4: true, v6: true },
    };
    let config = SessionConfig {
        listen_port: PORT,
        lsd: true,
        lsd_families: families,
        ..SessionConfig::default()
    };
    let now = Instant::from_secs(1000);
    let mut st = State {
        session: Session::new(config, u64::from(seed), now),
        now,
        ours: Vec::new(),
        families,
        last_sent: [None, None],
    };
    for k in 0..2u64 {
        let m = make_metainfo(&make_content(20_000, k), 16 * 1024);
        st.session.add_torrent(&m, None, now).expect("add");
        st.ours.push(m.info_hash);
    }
    let srcs = sources();
    let byte = |rest: &mut &[u8]| -> Option<u8> {
        let (&b, tail) = rest.split_first()?;
        *rest = tail;
        Some(b)
    };
    while let Some(op) = byte(&mut rest) {
        match op % 3 {
            0 => {
                let (Some(s), Some(len)) = (byte(&mut rest), byte(&mut rest)) else {
                    break;
                };
                let n = (usize::from(len) * 8).min(rest.len());
                let (packet, tail) = rest.split_at(n);
                rest = tail;
                check_parse(packet);
                let from = srcs[usize::from(s) % srcs.len()];
                st.session.handle_lsd_datagram(from, packet, st.now);
                st.drain(Some(from));
            }
            1 => {
                let (Some(s), Some(k), Some(p)) =
                    (byte(&mut rest), byte(&mut rest), byte(&mut rest))
                else {
                    break;
                };
                let hash = st
                    .ours
                    .get(usize::from(k % 3))
                    .copied()
                    .unwrap_or(InfoHash([k; 20]));
                let a = LsdAnnounce {
                    port: u16::from(p),
                    info_hashes: vec![hash],
                    cookie: (k & 4 != 0).then(|| format!("{k:x}")),
                };
                let from = srcs[usize::from(s) % srcs.len()];
                st.session
                    .handle_lsd_datagram(from, &a.encode(group_of(from)), st.now);
                st.drain(Some(from));
            }
            _ => {
                let Some(a) = byte(&mut rest) else { break };
                st.now += Duration::from_millis(u64::from(a) * 100);
                if st.session.poll_timeout().is_some_and(|t| t <= st.now) {
                    st.session.handle_timeout(st.now);
                }
                st.drain(None);
            }
        }
    }
}
