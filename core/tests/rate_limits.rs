//! Upload and download rate limits (`unchoke_core::limits`), measured on real sessions in
//! virtual time over the lab's network (`unchoke_sim::lab`): a limited seed serving several
//! peers, a limited downloader fed by several seeds, per-torrent and session-wide limits,
//! limits changed live, and unlimited sessions left as they were.
//!
//! Every measurement is over 60 s of virtual time, from 5 s in (after the swarm connected
//! and the bucket's opening burst), and must land within ±5 % of the limit. Links carry
//! 2 MiB/s each way, far above the limits, so only the limits can hold the rates there;
//! files are large enough that no host completes inside the window (a rate falling because
//! the work ran out would prove nothing).

use std::time::Duration;

use unchoke_core::session::{RateLimits, SessionConfig};
use unchoke_core::wire::Message;
use unchoke_sim::lab::{Behaviour, Swarm, make_content};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const LINK: usize = 2 << 20;
const PIECE: u32 = 256 * 1024;
/// When measuring starts, and for how long.
const WARM_UP: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(60);

/// A swarm over a file of `file` bytes: host 0 a seed with `seed_config`, then `leechers`
/// empty hosts with `leech_config`, every host introduced to every other.
fn swarm(
    file: u64,
    seed_config: SessionConfig,
    leechers: usize,
    leech_config: SessionConfig,
) -> Swarm {
    let mut s = Swarm::new(make_content(file as usize, 24), PIECE, LINK);
    s.config = seed_config;
    s.add_seed(Behaviour::Honest);
    s.config = leech_config;
    for _ in 0..leechers {
        s.add_node(None, Behaviour::Honest);
    }
    for i in 0..s.node_count() {
        s.introduce(i);
    }
    s
}

fn with_limits(upload: Option<u64>, download: Option<u64>) -> SessionConfig {
    SessionConfig {
        upload_limit: upload,
        download_limit: download,
        ..Swarm::node_config()
    }
}

/// Host `i`'s payload bytes (uploaded, downloaded) so far.
fn moved(s: &Swarm, i: usize) -> (u64, u64) {
    let stats = s
        .session(i)
        .stats(s.torrent(i), s.now())
        .expect("the host has its torrent");
    (stats.uploaded, stats.downloaded)
}

/// Runs `d` of virtual time.
fn run(s: &mut Swarm, d: Duration) {
    s.run_until(d, |_| false);
}

/// Host `i`'s upload and download rates (bytes per second) over `WINDOW`, from now.
fn measure(s: &mut Swarm, i: usize) -> (f64, f64) {
    let (up0, down0) = moved(s, i);
    run(s, WINDOW);
    let (up1, down1) = moved(s, i);
    let secs = WINDOW.as_secs_f64();
    ((up1 - up0) as f64 / secs, (down1 - down0) as f64 / secs)
}

#[track_caller]
fn assert_near(rate: f64, limit: u64, tolerance: f64, what: &str) {
    let err = (rate - limit as f64) / limit as f64;
    assert!(
        err.abs() <= tolerance,
        "{what}: {:.1} KiB/s against a limit of {:.1} KiB/s ({:+.2} %)",
        rate / KIB as f64,
        limit as f64 / KIB as f64,
        err * 100.0
    );
    eprintln!(
        "{what}: {:.1} KiB/s against {:.1} KiB/s ({:+.2} %)",
        rate / KIB as f64,
        limit as f64 / KIB as f64,
        err * 100.0
    );
}

#[test]
fn a_seeds_upload_limit_holds_within_five_percent_with_three_peers_and_none_starves() {
    let limit = 256 * KIB;
    let mut s = swarm(
        24 * MIB,
        with_limits(Some(limit), None),
        3,
        Swarm::node_config(),
    );
    run(&mut s, WARM_UP);
    s.sniff();
    let (up, _) = measure(&mut s, 0);
    assert_near(up, limit, 0.05, "seed upload, 3 peers");
    for i in 1..=3 {
        assert!(
            !s.is_complete(i),
            "peer {i} completed: the seed ran out of work"
        );
    }
    // Fair between peers: each of the three got a fair part of the seed's blocks (a third
    // each, give or take what the choker and the peers' pipelines do), none starved.
    let blocks_to = |to: usize| {
        s.sniffed()
            .iter()
            .filter(|m| {
                m.from == 0 && m.to == to && matches!(m.message, Some(Message::Piece { .. }))
            })
            .count()
    };
    let per_peer: Vec<usize> = (1..=3).map(blocks_to).collect();
    let total: usize = per_peer.iter().sum();
    eprintln!("seed blocks per peer over the window: {per_peer:?}");
    for (i, &n) in per_peer.iter().enumerate() {
        let share = n as f64 / total as f64;
        assert!(
            (0.2..=0.47).contains(&share),
            "peer {} got {:.0} % of the seed's blocks: {per_peer:?}",
            i + 1,
            share * 100.0
        );
    }
}

#[test]
fn a_torrent_limit_holds_and_the_lower_of_the_torrent_and_session_limits_wins() {
    // The torrent's own limit, below the session's.
    let (torrent_limit, session_limit) = (192 * KIB, MIB);
    let mut s = swarm(
        24 * MIB,
        with_limits(Some(session_limit), None),
        3,
        Swarm::node_config(),
    );
    let (t, now) = (s.torrent(0), s.now());
    let limits = RateLimits {
        upload: Some(torrent_limit),
        download: None,
    };
    s.session_mut(0)
        .set_limits(Some(t), limits, now)
        .expect("the torrent exists");
    assert_eq!(s.session(0).limits(Some(t)), Some(limits));
    run(&mut s, WARM_UP);
    let (up, _) = measure(&mut s, 0);
    assert_near(
        up,
        torrent_limit,
        0.05,
        "seed upload, torrent limit under the session's",
    );

    // The session's limit, below the torrent's.
    let mut s = swarm(
        24 * MIB,
        with_limits(Some(torrent_limit), None),
        3,
        Swarm::node_config(),
    );
    let (t, now) = (s.torrent(0), s.now());
    let generous = RateLimits {
        upload: Some(session_limit),
        download: None,
    };
    s.session_mut(0)
        .set_limits(Some(t), generous, now)
        .expect("the torrent exists");
    run(&mut s, WARM_UP);
    let (up, _) = measure(&mut s, 0);
    assert_near(
        up,
        torrent_limit,
        0.05,
        "seed upload, session limit under the torrent's",
    );
}

#[test]
fn a_download_limit_holds_within_five_percent_from_several_seeds() {
    let limit = 256 * KIB;
    // Hosts 0 and 1 are unlimited seeds; host 2 downloads under the session's limit, host
    // 3 under its torrent's own.
    let mut s = Swarm::new(make_content(24 * MIB as usize, 25), PIECE, LINK);
    s.add_seed(Behaviour::Honest);
    s.add_seed(Behaviour::Honest);
    s.config = with_limits(None, Some(limit));
    let global = s.add_node(None, Behaviour::Honest);
    s.config = Swarm::node_config();
    let own = s.add_node(None, Behaviour::Honest);
    let (t, now) = (s.torrent(own), s.now());
    s.session_mut(own)
        .set_limits(
            Some(t),
            RateLimits {
                upload: None,
                download: Some(limit),
            },
            now,
        )
        .expect("the torrent exists");
    for i in 0..s.node_count() {
        s.introduce(i);
    }
    run(&mut s, WARM_UP);
    let (down_global0, down_own0) = (moved(&s, global).1, moved(&s, own).1);
    run(&mut s, WINDOW);
    let secs = WINDOW.as_secs_f64();
    let rate_global = (moved(&s, global).1 - down_global0) as f64 / secs;
    let rate_own = (moved(&s, own).1 - down_own0) as f64 / secs;
    assert_near(
        rate_global,
        limit,
        0.05,
        "download, session limit, 3 sources",
    );
    assert_near(rate_own, limit, 0.05, "download, torrent limit, 3 sources");
    assert!(!s.is_complete(global) && !s.is_complete(own));
}

#[test]
fn a_limit_changed_live_takes_hold_and_lifting_it_frees_the_rate() {
    let mut s = swarm(
        48 * MIB,
        with_limits(Some(256 * KIB), None),
        3,
        Swarm::node_config(),
    );
    run(&mut s, WARM_UP);
    let (up, _) = measure(&mut s, 0);
    assert_near(up, 256 * KIB, 0.05, "seed upload before the change");
    let now = s.now();
    let raised = RateLimits {
        upload: Some(512 * KIB),
        download: None,
    };
    s.session_mut(0)
        .set_limits(None, raised, now)
        .expect("the session's limits");
    run(&mut s, Duration::from_secs(2));
    let (up, _) = measure(&mut s, 0);
    assert_near(up, 512 * KIB, 0.05, "seed upload after raising the limit");
    // Lifted (0 reads as unlimited): the seed is held only by its three links now.
    let now = s.now();
    let lifted = RateLimits {
        upload: Some(0),
        download: None,
    };
    s.session_mut(0)
        .set_limits(None, lifted, now)
        .expect("the session's limits");
    assert_eq!(s.session(0).limits(None), Some(RateLimits::UNLIMITED));
    let (before, _) = moved(&s, 0);
    run(&mut s, Duration::from_secs(5));
    let (after, _) = moved(&s, 0);
    let rate = (after - before) as f64 / 5.0;
    assert!(
        rate > 2.0 * 512.0 * KIB as f64,
        "unlimited, the seed sends {:.0} KiB/s",
        rate / KIB as f64
    );
}

#[test]
fn unlimited_sessions_are_unchanged_and_limited_ones_deterministic() {
    // An explicit "no limit" changes nothing, byte for byte, from never setting one.
    let fingerprint = |set: bool, limit: Option<u64>| {
        let mut s = swarm(4 * MIB, with_limits(limit, None), 3, Swarm::node_config());
        if set {
            let now = s.now();
            for i in 0..s.node_count() {
                let t = s.torrent(i);
                let session = s.session_mut(i);
                session
                    .set_limits(None, RateLimits::UNLIMITED, now)
                    .expect("the session's limits");
                session
                    .set_limits(Some(t), RateLimits::UNLIMITED, now)
                    .expect("the torrent exists");
            }
        }
        let done = s.run_until(Duration::from_secs(120), |s| {
            (1..=3).all(|i| s.is_complete(i))
        });
        assert!(done, "the swarm completes");
        (s.fingerprint(), s.now())
    };
    let (plain, at) = fingerprint(false, None);
    assert_eq!(fingerprint(true, None), (plain, at));
    // Unlimited, 4 MiB over 2 MiB/s links to three peers takes seconds, not the 16 s the
    // limit below would take for the seed's single copy.
    assert!(at.as_micros() < 8_000_000, "unlimited took {at:?}");
    // Same inputs and seed with a limit: the same run again.
    let limited = fingerprint(false, Some(256 * KIB));
    assert_eq!(fingerprint(false, Some(256 * KIB)), limited);
    assert_ne!(limited.0, plain);
    assert!(
        limited.1.as_micros() >= 15_000_000,
        "limited took {:?}",
        limited.1
    );
}

#[test]
fn set_limits_refuses_an_unknown_torrent() {
    let mut s = swarm(MIB, Swarm::node_config(), 0, Swarm::node_config());
    let now = s.now();
    let unknown = unchoke_core::session::TorrentId(99);
    assert!(
        s.session_mut(0)
            .set_limits(Some(unknown), RateLimits::UNLIMITED, now)
            .is_err()
    );
    assert_eq!(s.session(0).limits(Some(unknown)), None);
}

/// Hand-driven: one session seeding two torrents to four peers of ours (two each), which
/// keep 16 requests each queued and ask for another as each block goes out. Reads are
/// answered at once; time jumps from deadline to deadline (`poll_timeout`). Only limited
/// runs fit this loop: with no limit and no link to take time, it would never advance. What each peer
/// got and how many bytes were read are counted over `[1 s, 61 s)`.
mod two_torrents {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    use bytes::{Bytes, BytesMut};
    use unchoke_core::session::{
        Action, ConnId, Direction, RateLimits, Session, SessionConfig, TorrentId,
    };
    use unchoke_core::time::Instant;
    use unchoke_core::wire::{BlockRequest, Handshake, Message, PeerId, Reserved};
    use unchoke_sim::lab::{Swarm, make_content, make_metainfo};

    const BLOCK: u32 = 16 * 1024;
    const PIECE: u32 = 256 * 1024;
    const FILE: usize = 4 << 20;
    const DEPTH: usize = 16;

    struct Peer {
        torrent: usize,
        next: u32,
        sent: u64,
    }

    pub(super) struct Outcome {
        /// Payload bytes each peer received in the window, by torrent (0, 1) and peer.
        pub(super) per_peer: Vec<(usize, u64)>,
        /// Bytes the session asked to read in the window.
        pub(super) read: u64,
    }

    fn request(p: &mut Peer) -> Message {
        let blocks = (FILE as u32) / BLOCK;
        let b = p.next % blocks;
        p.next += 1;
        Message::Request(BlockRequest {
            index: b * BLOCK / PIECE,
            begin: b * BLOCK % PIECE,
            length: BLOCK,
        })
    }

    /// Runs the session with `global` limits and `per_torrent[i]` for torrent `i`.
    pub(super) fn run(global: RateLimits, per_torrent: [RateLimits; 2]) -> Outcome {
        let contents = [make_content(FILE, 31), make_content(FILE, 32)];
        let metas = [
            make_metainfo(&contents[0], PIECE),
            make_metainfo(&contents[1], PIECE),
        ];
        let config = SessionConfig {
            upload_limit: global.upload,
            download_limit: global.download,
            ..Swarm::node_config()
        };
        let mut now = Instant::from_millis(1);
        let mut s = Session::new(config, 5, now);
        let mut torrents: Vec<TorrentId> = Vec::new();
        for (m, limits) in metas.iter().zip(per_torrent) {
            let pieces = m.info.piece_count();
            let have = unchoke_core::bitfield::Bitfield::full(pieces);
            let t = s.add_torrent(m, Some(have), now).expect("add");
            s.set_trackers(t, Vec::new(), now);
            s.set_limits(Some(t), limits, now).expect("the torrent");
            torrents.push(t);
        }
        let mut peers: BTreeMap<ConnId, Peer> = BTreeMap::new();
        for i in 0..4u8 {
            let torrent = usize::from(i % 2);
            let addr: SocketAddr = format!("10.0.0.{}:6881", i + 1).parse().expect("addr");
            let conn = s.connection_opened(addr, Direction::Inbound, now);
            let mut buf = BytesMut::new();
            Handshake {
                reserved: Reserved::NONE,
                info_hash: metas[torrent].info_hash,
                peer_id: PeerId([i + 1; 20]),
            }
            .encode(&mut buf);
            Message::Interested.encode(&mut buf);
            let mut peer = Peer {
                torrent,
                next: u32::from(i) * 64,
                sent: 0,
            };
            for _ in 0..DEPTH {
                request(&mut peer).encode(&mut buf);
            }
            s.handle_bytes(conn, &mut buf, now);
            peers.insert(conn, peer);
        }
        let (start, end) = (Instant::from_secs(1), Instant::from_secs(61));
        let mut read = 0u64;
        loop {
            // Carry out everything queued; reads are answered at once.
            while let Some(action) = s.poll_action() {
                match action {
                    Action::ReadBlock { conn, block, .. } => {
                        if now >= start {
                            read += u64::from(block.length);
                        }
                        let torrent = peers.get(&conn).map_or(0, |p| p.torrent);
                        let from = block.index as usize * PIECE as usize + block.begin as usize;
                        let data =
                            Bytes::copy_from_slice(&contents[torrent][from..from + BLOCK as usize]);
                        s.disk_read_done(conn, block, Ok(data), now);
                    }
                    Action::SendBlock { conn, data, .. } => {
                        let Some(p) = peers.get_mut(&conn) else {
                            continue;
                        };
                        if now >= start {
                            p.sent += data.len() as u64;
                        }
                        let mut buf = BytesMut::new();
                        request(p).encode(&mut buf);
                        s.handle_bytes(conn, &mut buf, now);
                    }
                    Action::Disconnect { conn, reason } => {
                        panic!("{conn:?} dropped: {reason:?}")
                    }
                    _ => {}
                }
            }
            if now >= end {
                break;
            }
            let next = s.poll_timeout().expect("a running torrent has a deadline");
            now = now.max(next).min(end);
            s.handle_timeout(now);
        }
        Outcome {
            per_peer: peers.values().map(|p| (p.torrent, p.sent)).collect(),
            read,
        }
    }
}

fn upload(limit: u64) -> RateLimits {
    RateLimits {
        upload: Some(limit),
        download: None,
    }
}

#[test]
fn a_session_limit_holds_over_two_torrents_shared_fairly_and_nothing_is_read_ahead() {
    let limit = MIB;
    let out = two_torrents::run(upload(limit), [RateLimits::UNLIMITED; 2]);
    let total: u64 = out.per_peer.iter().map(|(_, b)| b).sum();
    assert_near(
        total as f64 / 60.0,
        limit,
        0.05,
        "session upload, 2 torrents × 2 peers",
    );
    // Round-robin over every waiting peer: a quarter each, give or take a block a turn.
    for &(torrent, bytes) in &out.per_peer {
        let share = bytes as f64 / total as f64;
        assert!(
            (0.24..=0.26).contains(&share),
            "a peer of torrent {torrent} got {:.1} %: {:?}",
            share * 100.0,
            out.per_peer
        );
    }
    // Reads wait for tokens: no more is read than is sent (plus one burst), although the
    // peers keep 64 requests queued.
    assert!(
        out.read <= total + unchoke_core::limits::burst_for(limit),
        "read {} for {} sent",
        out.read,
        total
    );
}

#[test]
fn a_torrent_limit_under_the_session_limit_leaves_the_rest_to_the_other_torrent() {
    let (limit, slow) = (MIB, 200 * KIB);
    let out = two_torrents::run(upload(limit), [upload(slow), RateLimits::UNLIMITED]);
    let of = |t: usize| -> u64 {
        out.per_peer
            .iter()
            .filter(|(torrent, _)| *torrent == t)
            .map(|(_, b)| b)
            .sum()
    };
    assert_near(
        of(0) as f64 / 60.0,
        slow,
        0.05,
        "torrent 0 under its own limit",
    );
    assert_near(
        of(1) as f64 / 60.0,
        limit - slow,
        0.05,
        "torrent 1, the rest of the session's",
    );
    let total = of(0) + of(1);
    assert!(
        out.read <= total + unchoke_core::limits::burst_for(limit),
        "read {} for {total} sent",
        out.read
    );
}
