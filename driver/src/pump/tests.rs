//! The pump with a recording [`Io`] and no sockets: every action reaches the runtime once,
//! in order; a socket is reachable under its id before the session's first action for it;
//! what the runtime reports (failed dials, closed sockets) reaches the session and comes
//! out as the user's events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::Receiver;
use unchoke_core::session::{ConnId, Direction, PeerGone, TorrentId};

use super::{Io, Report, Work};
use crate::host::Command;
use crate::{AddTorrent, ClientConfig, ClientEvent, SessionHost, prepare_torrent};

/// What the runtime was asked to do, in order.
#[derive(Debug, PartialEq)]
enum Call {
    Attach(ConnId),
    Send(ConnId),
    Connect(TorrentId, SocketAddr),
    Disconnect(ConnId),
    Spawn,
}

#[derive(Default)]
struct Recorder {
    calls: Vec<Call>,
    /// Handed back by the next `flush`.
    reports: Vec<Report>,
}

impl Io for Recorder {
    fn send(&mut self, conn: ConnId, _first: Bytes, _second: Option<Bytes>) {
        self.calls.push(Call::Send(conn));
    }
    fn connect(&mut self, torrent: TorrentId, addr: SocketAddr) {
        self.calls.push(Call::Connect(torrent, addr));
    }
    fn cancel_connect(&mut self, _torrent: TorrentId, _addr: SocketAddr) {}
    fn disconnect(&mut self, conn: ConnId) {
        self.calls.push(Call::Disconnect(conn));
    }
    fn send_datagram(&mut self, _to: SocketAddr, _bytes: Bytes) {}
    fn send_lsd(&mut self, _to: SocketAddr, _bytes: Bytes) {}
    fn spawn(&mut self, _work: Work) {
        self.calls.push(Call::Spawn);
    }
    fn flush(&mut self) -> Vec<Report> {
        std::mem::take(&mut self.reports)
    }
}

/// A host with one empty single-file torrent (its storage in `dir`) that knows `peer`.
fn host_with_torrent(
    dir: &std::path::Path,
    peer: SocketAddr,
    io: &mut Recorder,
) -> (SessionHost, Receiver<ClientEvent>, TorrentId) {
    let b = b"d4:infod6:lengthi32768e4:name1:f12:piece lengthi16384e6:pieces40:aaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbee";
    let metainfo = unchoke_core::metainfo::Metainfo::from_bytes(b).expect("test torrent");
    let mut cfg = ClientConfig {
        listen: None,
        rng_seed: Some(7),
        ..ClientConfig::default()
    };
    // These tests follow TCP sockets (`Connect`, attach, close); the client's default
    // dials uTP first, over datagrams the recorder drops.
    cfg.session.transport = unchoke_core::session::Transport::Tcp;
    let prepared =
        prepare_torrent(&cfg, &AddTorrent::new(metainfo.clone(), dir), &|_| {}).expect("storage");
    let (events_tx, events) = crossbeam_channel::unbounded();
    let mut host = SessionHost::new(&cfg, None, None, events_tx);
    let (reply, id) = crossbeam_channel::bounded(1);
    let add = Command::AddTorrent {
        metainfo: Box::new(metainfo),
        storage: Arc::new(prepared.storage),
        have: prepared.have,
        written: prepared.written,
        resume_path: prepared.resume_path,
        peers: vec![peer],
        trackers: Some(Vec::new()),
        web_seeds: Vec::new(),
        reply,
    };
    assert!(!host.command(io, add), "not a shutdown");
    let id = id.recv().expect("reply").expect("accepted");
    (host, events, id)
}

/// Runs the host's timers until `io` was asked to dial (bounded: the session dials known
/// peers at its next tick).
fn until_dialled(host: &mut SessionHost, io: &mut Recorder) -> bool {
    for _ in 0..100 {
        if io.calls.iter().any(|c| matches!(c, Call::Connect(..))) {
            return true;
        }
        std::thread::sleep(host.timeout().min(Duration::from_millis(20)));
        host.timers(io);
    }
    false
}

#[test]
fn a_failed_dial_reported_by_the_runtime_reaches_the_user_as_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let peer: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let mut io = Recorder::default();
    let (mut host, events, torrent) = host_with_torrent(dir.path(), peer, &mut io);
    assert!(until_dialled(&mut host, &mut io), "dialled: {:?}", io.calls);
    assert!(io.calls.contains(&Call::Connect(torrent, peer)));
    // Reported from inside a round (a dial that could not even start), not as an input.
    io.reports.push(Report::ConnectFailed {
        torrent,
        addr: peer,
        error: std::io::ErrorKind::ConnectionRefused.into(),
    });
    host.timers(&mut io);
    let failed: Vec<String> = events
        .try_iter()
        .filter_map(|e| match e {
            ClientEvent::ConnectFailed { addr, reason } if addr == peer => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec!["connection refused".to_string()]);
}

#[test]
fn an_opened_socket_is_attached_before_its_first_send_and_a_reported_close_is_told() {
    let dir = tempfile::tempdir().expect("tempdir");
    let peer: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let mut io = Recorder::default();
    let (mut host, events, torrent) = host_with_torrent(dir.path(), peer, &mut io);
    assert!(until_dialled(&mut host, &mut io), "dialled: {:?}", io.calls);
    io.calls.clear();
    let mut attached = None;
    host.opened(&mut io, peer, Direction::Outbound(torrent), |io, id| {
        io.calls.push(Call::Attach(id));
        attached = Some(id);
    });
    let id = attached.expect("attach ran");
    assert_eq!(io.calls.first(), Some(&Call::Attach(id)), "{:?}", io.calls);
    assert!(
        io.calls.contains(&Call::Send(id)),
        "our handshake: {:?}",
        io.calls
    );
    // The writer failed during the next round: the session forgets the peer and says so.
    io.reports.push(Report::Closed(id, PeerGone::WriteFailed));
    host.timers(&mut io);
    let gone = events
        .try_iter()
        .any(|e| matches!(e, ClientEvent::PeerDisconnected { addr, .. } if addr == peer));
    assert!(gone, "PeerDisconnected for {peer}");
}

/// Sends `command` built around a fresh reply channel and returns the receiver.
fn ask<T>(
    host: &mut SessionHost,
    io: &mut Recorder,
    command: impl FnOnce(crossbeam_channel::Sender<T>) -> Command,
) -> Receiver<T> {
    let (reply, rx) = crossbeam_channel::bounded(1);
    assert!(!host.command(io, command(reply)), "not a shutdown");
    rx
}

#[test]
fn pause_resume_and_list_reach_the_session_and_remove_waits_for_the_disk() {
    use unchoke_core::session::{LifecycleError, TorrentState};
    let dir = tempfile::tempdir().expect("tempdir");
    let peer: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let mut io = Recorder::default();
    let (mut host, _events, torrent) = host_with_torrent(dir.path(), peer, &mut io);
    let state = |host: &mut SessionHost, io: &mut Recorder| {
        let list = ask(host, io, |reply| Command::Torrents { reply })
            .recv()
            .expect("reply");
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].id, torrent);
        list[0].state
    };
    assert_eq!(state(&mut host, &mut io), TorrentState::Downloading);
    let paused = ask(&mut host, &mut io, |reply| Command::Pause {
        torrent,
        reply,
    });
    assert_eq!(paused.recv().expect("reply"), Ok(()));
    assert_eq!(state(&mut host, &mut io), TorrentState::Paused);
    let resumed = ask(&mut host, &mut io, |reply| Command::Resume {
        torrent,
        reply,
    });
    assert_eq!(resumed.recv().expect("reply"), Ok(()));
    assert_eq!(state(&mut host, &mut io), TorrentState::Downloading);

    // A disk job still holds the storage: the remover is answered only once it let go.
    let held = host.storage(torrent).expect("storage");
    let removed = ask(&mut host, &mut io, |reply| Command::Remove {
        torrent,
        reply,
    });
    assert!(
        removed.try_recv().is_err(),
        "answered while a job holds the files"
    );
    drop(held);
    host.completion(
        &mut io,
        crate::disk::Completion::ResumeSaved {
            torrent,
            result: Ok(()),
        },
    );
    assert_eq!(removed.try_recv().expect("answered"), Ok(()));
    let list = ask(&mut host, &mut io, |reply| Command::Torrents { reply });
    assert!(list.recv().expect("reply").is_empty());
    // The id is refused from now on.
    let again = ask(&mut host, &mut io, |reply| Command::Pause {
        torrent,
        reply,
    });
    assert_eq!(
        again.recv().expect("reply"),
        Err(LifecycleError::UnknownTorrent)
    );
}

#[test]
fn queue_and_seed_limits_reach_the_session() {
    use unchoke_core::session::{Limit, QueueLimits, SeedLimits, SeedLimitsError, TorrentState};
    let dir = tempfile::tempdir().expect("tempdir");
    let peer: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let mut io = Recorder::default();
    let (mut host, _events, torrent) = host_with_torrent(dir.path(), peer, &mut io);
    let state = |host: &mut SessionHost, io: &mut Recorder| {
        let list = ask(host, io, |reply| Command::Torrents { reply })
            .recv()
            .expect("reply");
        list[0].state
    };
    // No download slot: the only torrent waits, and starts when the limit is lifted.
    let none = QueueLimits {
        max_downloading: Some(0),
        max_seeding: None,
    };
    let set = ask(&mut host, &mut io, |reply| Command::SetQueueLimits {
        limits: none,
        reply,
    });
    assert_eq!(set.recv().expect("reply"), ());
    assert_eq!(
        state(&mut host, &mut io),
        TorrentState::Queued { seed: false }
    );
    let set = ask(&mut host, &mut io, |reply| Command::SetQueueLimits {
        limits: QueueLimits::default(),
        reply,
    });
    assert_eq!(set.recv().expect("reply"), ());
    assert_eq!(state(&mut host, &mut io), TorrentState::Downloading);

    let limits = SeedLimits {
        ratio: Limit::Own(1.5),
        ..SeedLimits::default()
    };
    let set = ask(&mut host, &mut io, |reply| Command::SetSeedLimits {
        torrent: Some(torrent),
        limits,
        reply,
    });
    assert_eq!(set.recv().expect("reply"), Ok(()));
    let bad = SeedLimits {
        ratio: Limit::Own(-1.0),
        ..SeedLimits::default()
    };
    let set = ask(&mut host, &mut io, |reply| Command::SetSeedLimits {
        torrent: None,
        limits: bad,
        reply,
    });
    assert_eq!(
        set.recv().expect("reply"),
        Err(SeedLimitsError::InvalidRatio)
    );
}
