//! uTP streams as peer connections, in virtual time on the lab (`unchoke_sim::lab`):
//! whole sessions dial and accept over uTP through their one UDP socket, with datagrams
//! lost and reordered on the way, and `Transport::Both` falls back to TCP for a peer
//! that has no uTP.
// The hand-driven pair below unwraps what its own fixed setup returns: a failure there is
// a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use unchoke_core::session::{EncryptionPolicy, Event, SessionConfig, Transport};
use unchoke_sim::Loss;
use unchoke_sim::lab::{Behaviour, Swarm, make_content};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

fn config(transport: Transport) -> SessionConfig {
    SessionConfig {
        transport,
        ..Swarm::node_config()
    }
}

/// A seed and two leechers, all `Utp` only, over datagrams that meet `loss`: every
/// leecher completes byte-identically, every connection was uTP (no TCP link ever
/// opened), and returns the swarm for more checks.
fn utp_swarm(loss: Loss, encryption: EncryptionPolicy) -> Swarm {
    let mut s = Swarm::new(make_content(2 * MIB + 777, 9), 64 * KIB as u32, 4 * MIB);
    s.config = SessionConfig {
        encryption,
        ..config(Transport::Utp)
    };
    s.set_datagram_loss(loss);
    let seed = s.add_seed(Behaviour::Honest);
    let a = s.add_node(None, Behaviour::Honest);
    let b = s.add_node(None, Behaviour::Honest);
    s.introduce(a);
    s.introduce(b);
    let done = s.run_until(Duration::from_secs(600), |s| {
        s.is_complete(a) && s.is_complete(b)
    });
    assert!(
        done,
        "leechers incomplete under {loss:?}: a {:?}, b {:?}",
        s.session(a).utp_stats(),
        s.session(b).utp_stats()
    );
    s.settle();
    for i in [a, b] {
        assert!(s.disk_matches(i), "host {i}'s bytes differ");
        for j in [seed, a, b] {
            assert!(!s.linked(i, j), "a TCP link {i}–{j} in a uTP-only swarm");
        }
        let st = s.session(i).utp_stats();
        assert!(st.dials_connected >= 1, "host {i}: {st:?}");
        assert_eq!(st.fallbacks_to_tcp, 0);
        assert!(st.bytes_received >= 2 * MIB as u64 / 3, "host {i}: {st:?}");
    }
    let seed_stats = s.session(seed).utp_stats();
    assert!(
        seed_stats.accepted >= 2,
        "the seed accepted: {seed_stats:?}"
    );
    assert!(
        s.violations().is_empty(),
        "violations: {:?}",
        s.violations()
    );
    s
}

#[test]
fn utp_only_swarm_completes_without_loss() {
    let s = utp_swarm(Loss::default(), EncryptionPolicy::Disable);
    assert_eq!(s.session(0).utp_stats().retransmits, 0, "nothing was lost");
}

#[test]
fn utp_only_swarm_completes_under_1_percent_loss_with_reordering() {
    let s = utp_swarm(
        Loss {
            packet_loss: 0.01,
            jitter: Duration::from_millis(20),
        },
        EncryptionPolicy::Disable,
    );
    assert!(
        s.session(0).utp_stats().retransmits > 0,
        "losses were repaired by retransmission: {:?}",
        s.session(0).utp_stats()
    );
}

#[test]
fn utp_only_swarm_completes_under_5_percent_loss_with_reordering() {
    let s = utp_swarm(
        Loss {
            packet_loss: 0.05,
            jitter: Duration::from_millis(50),
        },
        EncryptionPolicy::Disable,
    );
    assert!(s.session(0).utp_stats().retransmits > 0);
}

#[test]
fn mse_runs_over_utp_like_over_tcp() {
    // Encryption required on every host: the MSE handshake and RC4 stream ride the uTP
    // byte stream unchanged.
    utp_swarm(
        Loss {
            packet_loss: 0.01,
            jitter: Duration::from_millis(10),
        },
        EncryptionPolicy::Require,
    );
}

#[test]
fn both_prefers_utp_between_peers_that_have_it() {
    let mut s = Swarm::new(make_content(MIB, 3), 64 * KIB as u32, 4 * MIB);
    s.config = config(Transport::Both);
    let seed = s.add_seed(Behaviour::Honest);
    let l = s.add_node(None, Behaviour::Honest);
    s.introduce(l);
    assert!(s.run_until(Duration::from_secs(120), |s| s.is_complete(l)));
    assert!(s.disk_matches(l));
    assert!(!s.linked(l, seed), "the TCP path was not used");
    let st = s.session(l).utp_stats();
    assert_eq!((st.dials_connected, st.fallbacks_to_tcp), (1, 0), "{st:?}");
}

#[test]
fn both_falls_back_to_tcp_when_the_peer_has_no_utp() {
    let mut s = Swarm::new(make_content(MIB, 4), 64 * KIB as u32, 4 * MIB);
    // The seed speaks TCP only: it answers the leecher's SYN with a RESET.
    s.config = config(Transport::Tcp);
    let seed = s.add_seed(Behaviour::Honest);
    s.config = config(Transport::Both);
    let l = s.add_node(None, Behaviour::Honest);
    s.introduce(l);
    assert!(s.run_until(Duration::from_secs(120), |s| s.is_complete(l)));
    assert!(s.disk_matches(l));
    // No uTP stream ever opened on either side: the bytes came over TCP (the link itself
    // is gone by now: a seed drops a peer that completed).
    assert_eq!(s.session(seed).utp_stats().accepted, 0);
    let st = s.session(l).utp_stats();
    assert_eq!(
        (st.dials, st.dials_failed, st.fallbacks_to_tcp),
        (1, 1, 1),
        "{st:?}"
    );
    assert_eq!(st.dials_connected, 0);
    assert!(s.session(seed).utp_stats().resets_sent >= 1);
    // One dial, one connection: the failed uTP attempt is not a failed dial.
    let failed = s
        .events(l)
        .filter(|(_, e)| matches!(e, Event::ConnectFailed { .. }))
        .count();
    assert_eq!(failed, 0);
}

#[test]
fn both_falls_back_to_tcp_when_syns_go_unanswered() {
    let mut s = Swarm::new(make_content(MIB, 5), 64 * KIB as u32, 4 * MIB);
    s.config = config(Transport::Tcp);
    let seed = s.add_seed(Behaviour::Honest);
    s.config = config(Transport::Both);
    let l = s.add_node(None, Behaviour::Honest);
    // Every datagram is lost: no RESET comes back, the dial waits out its 3 s.
    s.set_datagram_loss(Loss {
        packet_loss: 0.999_999,
        jitter: Duration::ZERO,
    });
    s.introduce(l);
    let start = s.now();
    assert!(s.run_until(Duration::from_secs(60), |s| s.linked(l, seed)));
    let waited = s.now() - start;
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "fell back after {waited:?}"
    );
    assert_eq!(s.session(l).utp_stats().fallbacks_to_tcp, 1);
}

#[test]
fn utp_only_dial_to_a_tcp_only_peer_fails_as_refused() {
    let mut s = Swarm::new(make_content(256 * KIB, 6), 64 * KIB as u32, 4 * MIB);
    s.config = config(Transport::Tcp);
    let seed = s.add_seed(Behaviour::Honest);
    s.config = SessionConfig {
        peer_events: true,
        ..config(Transport::Utp)
    };
    let l = s.add_node(None, Behaviour::Honest);
    s.introduce(l);
    s.run_until(Duration::from_secs(2), |_| false);
    assert!(!s.linked(l, seed));
    assert!(!s.is_complete(l));
    let refused = s
        .events(l)
        .filter(|(_, e)| {
            matches!(
                e,
                Event::ConnectFailed {
                    reason: unchoke_core::session::ConnectFailure::Refused,
                    ..
                }
            )
        })
        .count();
    assert_eq!(refused, 1, "the RESET is a refused dial");
}

#[test]
fn closing_sends_fins_and_streams_drain() {
    let mut s = utp_swarm(Loss::default(), EncryptionPolicy::Disable);
    assert!(s.close_all(Duration::from_secs(30)));
}

/// Two sessions driven by hand over a perfect wire (no lab), so a test decides how many
/// datagrams reach a session before it is polled: a seed `a` and a leecher `b`, both
/// `Utp`. Disk work is answered at once from `content`.
struct Pair {
    content: Vec<u8>,
    piece_length: usize,
    sessions: [unchoke_core::session::Session; 2],
    torrents: [unchoke_core::session::TorrentId; 2],
    addrs: [std::net::SocketAddr; 2],
    /// Datagrams in flight to each session, in order.
    wire: [Vec<(std::net::SocketAddr, bytes::Bytes)>; 2],
    now: unchoke_core::time::Instant,
}

impl Pair {
    fn new() -> Pair {
        use unchoke_core::session::Session;
        let content = make_content(MIB, 11);
        let piece_length = 64 * KIB;
        let metainfo = unchoke_sim::lab::make_metainfo(&content, piece_length as u32);
        let now = unchoke_core::time::Instant::ZERO;
        let config = config(Transport::Utp);
        let mut a = Session::new(config.clone(), 1, now);
        let mut b = Session::new(config, 2, now);
        let pieces = metainfo.info.piece_count();
        let mut all = unchoke_core::bitfield::Bitfield::new(pieces);
        for p in 0..pieces {
            all.set(p);
        }
        let ta = a.add_torrent(&metainfo, Some(all), now).unwrap();
        let tb = b.add_torrent(&metainfo, None, now).unwrap();
        for (s, t) in [(&mut a, ta), (&mut b, tb)] {
            s.set_trackers(t, Vec::new(), now);
        }
        Pair {
            content,
            piece_length,
            sessions: [a, b],
            torrents: [ta, tb],
            addrs: [
                "10.0.0.1:6881".parse().unwrap(),
                "10.0.0.2:6881".parse().unwrap(),
            ],
            wire: [Vec::new(), Vec::new()],
            now,
        }
    }

    /// Carries out session `i`'s actions: datagrams onto the wire, disk work answered.
    /// Returns how many datagrams it sent.
    fn drain(&mut self, i: usize) -> usize {
        use unchoke_core::session::Action;
        let mut sent = 0;
        for _ in 0..100_000 {
            let Some(action) = self.sessions[i].poll_action() else {
                return sent;
            };
            let now = self.now;
            let s = &mut self.sessions[i];
            match action {
                Action::SendDatagram { to, bytes } => {
                    let j = self.addrs.iter().position(|a| *a == to).unwrap();
                    self.wire[j].push((self.addrs[i], bytes));
                    sent += 1;
                }
                Action::ReadBlock { conn, block, .. } => {
                    let start = block.index as usize * self.piece_length + block.begin as usize;
                    let data = bytes::Bytes::copy_from_slice(
                        &self.content[start..start + block.length as usize],
                    );
                    s.disk_read_done(conn, block, Ok(data), now);
                }
                Action::WriteBlock { torrent, piece, .. } => {
                    s.disk_write_done(torrent, piece, Ok(()), now)
                }
                Action::VerifyPiece {
                    torrent,
                    piece,
                    expected,
                    blocks,
                } => {
                    let ok = expected.matches(&blocks);
                    s.piece_hashed(torrent, piece, ok, now);
                }
                Action::Connect { .. } | Action::Send { .. } | Action::SendBlock { .. } => {
                    panic!("a uTP-only session asked the driver for TCP: {action:?}")
                }
                _ => {}
            }
        }
        panic!("session {i} never ran out of actions");
    }

    /// Hands session `i` every datagram on its wire as one burst, then polls it.
    /// Returns (datagrams delivered, datagrams it sent back).
    fn burst(&mut self, i: usize) -> (usize, usize) {
        let batch = std::mem::take(&mut self.wire[i]);
        for (from, bytes) in &batch {
            self.sessions[i].handle_datagram(*from, bytes, self.now);
        }
        (batch.len(), self.drain(i))
    }
}

#[test]
fn a_burst_of_datagrams_is_acknowledged_once_per_stream() {
    let mut p = Pair::new();
    let (tb, a_addr) = (p.torrents[1], p.addrs[0]);
    let now = p.now;
    p.sessions[1].add_peers(tb, &[a_addr], now);
    let mut biggest_burst = (0, 0);
    for _ in 0..10_000 {
        if p.sessions[1].have(tb).is_some_and(|h| h.is_full()) {
            break;
        }
        p.drain(0);
        p.drain(1);
        if p.wire[0].is_empty() && p.wire[1].is_empty() {
            // Nothing in flight: time moves to the next deadline.
            let next = [p.sessions[0].poll_timeout(), p.sessions[1].poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            p.now = next.max(p.now);
            let now = p.now;
            p.sessions[0].handle_timeout(now);
            p.sessions[1].handle_timeout(now);
            continue;
        }
        p.burst(0);
        let (delivered, answered) = p.burst(1);
        if delivered > biggest_burst.0 {
            biggest_burst = (delivered, answered);
        }
    }
    assert!(p.sessions[1].have(tb).is_some_and(|h| h.is_full()));
    let (delivered, answered) = biggest_burst;
    assert!(
        delivered >= 20,
        "the seed sent bursts of {delivered} packets"
    );
    // The leecher's answer to a burst of data: its requests (at most a few packets) and
    // one acknowledgement, not one per packet.
    assert!(
        answered <= 4,
        "{delivered} datagrams answered with {answered}"
    );
}

#[test]
fn a_peer_that_falls_silent_mid_transfer_times_out_and_its_stream_is_dropped() {
    let mut s = Swarm::new(make_content(8 * MIB, 12), 256 * KIB as u32, 4 * MIB);
    s.config = SessionConfig {
        peer_events: true,
        ..config(Transport::Utp)
    };
    // Round trips of up to 100 ms: the transfer takes seconds, not an instant.
    s.set_datagram_loss(Loss {
        packet_loss: 0.0,
        jitter: Duration::from_millis(100),
    });
    let seed = s.add_seed(Behaviour::Honest);
    let l = s.add_node(None, Behaviour::Honest);
    s.introduce(l);
    let t = s.torrent(l);
    assert!(s.run_until(Duration::from_secs(60), |s| {
        s.session(l).have(t).is_some_and(|h| h.count_ones() >= 2)
    }));
    assert!(!s.is_complete(l), "the transfer should still be running");
    assert_eq!(s.session(l).connections(t).len(), 1);
    // The seed vanishes: nothing it sent is answered any more, no FIN, no RESET.
    s.leave(seed);
    let left = s.now();
    assert!(s.run_until(Duration::from_secs(120), |s| {
        s.session(l).connections(t).is_empty() && s.session(l).utp_stats().streams == 0
    }));
    let gone = s.now() - left;
    // uTP's own time-out (20 s of silence with packets outstanding) ends it, well before
    // the session's 3-minute idle limit.
    assert!(gone <= Duration::from_secs(25), "took {gone:?}");
    let timed_out = s.events(l).any(|(_, e)| {
        matches!(
            e,
            Event::PeerDisconnected {
                reason: unchoke_core::session::PeerGone::ReadFailed(std::io::ErrorKind::TimedOut),
                ..
            }
        )
    });
    assert!(timed_out, "the peer's end was reported as a time-out");
    assert!(!s.is_complete(l));
}

#[test]
fn a_seed_that_disconnects_still_delivers_what_it_handed_out_before_its_fin() {
    // A seed stops at ratio 1 the moment it has handed out a whole copy: the blocks it
    // counted as uploaded must still reach the leecher, as a closed TCP socket still sends
    // its buffer. (Found by `cli/tests/daemon_seeding.rs` over uTP: the leecher was left
    // at 116 of 196 pieces.)
    let mut s = Swarm::new(make_content(3 * MIB, 13), 16 * KIB as u32, 4 * MIB);
    s.config = SessionConfig {
        seed_limits: unchoke_core::session::SeedLimits {
            ratio: unchoke_core::session::Limit::Own(1.0),
            ..unchoke_core::session::SeedLimits::default()
        },
        ..config(Transport::Utp)
    };
    let seed = s.add_seed(Behaviour::Honest);
    s.config = config(Transport::Utp);
    let l = s.add_node(None, Behaviour::Honest);
    s.introduce(l);
    assert!(
        s.run_until(Duration::from_secs(120), |s| s.is_complete(l)),
        "the leecher has {:?} pieces; the seed: {:?}",
        s.session(l).have(s.torrent(l)).map(|h| h.count_ones()),
        s.session(seed).utp_stats()
    );
    assert!(s.disk_matches(l));
}
