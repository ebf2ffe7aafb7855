//! Running one torrent on a client until it is done or interrupted: the client started
//! (with the port fallbacks), the torrent or magnet added, its events turned into progress
//! reports, and the ways a run ends (complete, seeding goal met, Ctrl-C, a storage error).

use super::*;

/// Runs `source` into `save_path` on a client built from `common` until `job`'s goal is
/// met or `interrupted` is set; the error is the message for the user (resume data is
/// saved either way).
pub(super) fn run(
    source: &Source,
    save_path: &Path,
    common: &CommonArgs,
    checked: Checked,
    interrupted: &Arc<AtomicBool>,
    job: Job,
) -> Result<(), String> {
    let Job {
        goal,
        access,
        require_complete,
    } = job;
    let what = source.describe();
    let metainfo = match source {
        Source::Torrent(_, metainfo) => Some((**metainfo).clone()),
        Source::Magnet(_) => None,
    };
    let peers = checked.peers;

    let mut config = ClientConfig {
        listen: Some(common.listen()),
        dht: common.dht_settings(save_path, checked.dht_bootstrap, checked.dht_routers)?,
        shape: common.shape_limits(),
        tracker_roots: checked.tracker_roots,
        ..ClientConfig::default()
    };
    // LSD unless switched off, and never for a private torrent (the core would not
    // announce it anyway; this also leaves the multicast group alone). A magnet's
    // privacy is known only once its metadata arrives: then the core keeps it off LSD.
    let private = metainfo.as_ref().is_some_and(|m| m.info.private);
    config.lsd = !common.no_lsd && !private;
    config.session.max_connect_failures = common.peer_retries;
    config.session.web_seeds = !common.no_web_seeds;
    config.session.encryption = common.encryption;
    config.session.transport = common.transport;
    config.session.crypto_level = common.crypto_level;
    // Rate limits are the core's: it holds back reads and requests itself (0: unlimited).
    config.session.upload_limit = common.upload_limit;
    config.session.download_limit = common.download_limit;
    let has_dht = config.dht.is_some();
    let (mut client, port_note) = start_client(common, config)?;
    let (mut report, id, mut complete) = match (source, metainfo) {
        (_, Some(metainfo)) => {
            let mut report = Reporter::new(common.json, common.quiet, &metainfo);
            let mut add = AddTorrent::new(metainfo.clone(), save_path);
            add.peers = peers;
            add.recheck = common.recheck;
            add.access = access;
            add.require_complete = require_complete;
            // Ctrl-C stops the check of existing data at once.
            add.cancel = interrupted.clone();
            add.trackers = Some(common.tracker_tiers(&metainfo));
            add.web_seeds = common.web_seeds.clone();
            let handle = {
                let checking = report.checking();
                client
                    .add_torrent(add, &|n| checking.set(n))
                    .map_err(|e| storage_error(save_path, &e))?
            };
            // Incomplete data under `require_complete` was refused by the driver above.
            report.checked(&handle.check);
            let complete = handle.check.pieces_have == handle.check.piece_count;
            (report, handle.id, complete)
        }
        (Source::Magnet(magnet), None) => {
            let mut link_peers = resolve_link_peers(&magnet.peers, &mut |w| {
                eprintln!("warning: {w}");
            });
            link_peers.extend(peers);
            let mut trackers: Vec<Vec<String>> = if common.no_trackers {
                Vec::new()
            } else {
                magnet.trackers.iter().map(|t| vec![t.clone()]).collect()
            };
            trackers.extend(common.trackers.iter().map(|t| vec![t.clone()]));
            let has_trackers = !trackers.is_empty();
            if link_peers.is_empty() && !has_trackers && !has_dht {
                let _ = client.shutdown();
                return Err(format!(
                    "{what}: no way to find peers: the link has no `x.pe` peers or `tr` \
                     trackers; give --peer, --tracker or --dht-bootstrap"
                ));
            }
            let display = magnet.display_name.clone();
            let report = Reporter::awaiting_metadata(
                common.json,
                common.quiet,
                magnet.info_hash,
                display.as_deref(),
            );
            let id = client
                .add_magnet(AddMagnet {
                    info_hash: magnet.info_hash,
                    save_path: save_path.to_path_buf(),
                    peers: link_peers,
                    trackers,
                    display_name: display,
                    recheck: common.recheck,
                    access,
                    cancel: interrupted.clone(),
                    // The link's `ws` are its url-list: `--no-web-seeds` leaves them out.
                    web_seeds: if common.no_web_seeds {
                        common.web_seeds.clone()
                    } else {
                        magnet
                            .web_seeds
                            .iter()
                            .chain(&common.web_seeds)
                            .cloned()
                            .collect()
                    },
                })
                .map_err(|e| format!("{what}: {e}"))?;
            (report, id, false)
        }
        (Source::Torrent(..), None) => return Err(format!("{what}: no metadata")),
    };
    if let Some(note) = port_note {
        report.warn(&note);
    }
    if let Some(addr) = client.local_addr() {
        report.listening(addr);
    }
    if let Some(addr) = client.dht_addr() {
        report.dht_listening(addr);
    }

    let started = Instant::now();
    // Each peer's failed dials, shown once each (every one with --verbose).
    let mut dials = DialFailures::default();
    let mut last_report = Instant::now() - Duration::from_secs(60);
    let mut failure: Option<String> = None;
    // Whether the DHT reported a failed join (the give-up message then says so).
    let mut dht_join_failed = false;
    if complete {
        if let Ok(Some(stats)) = client.stats(id) {
            report.complete(&stats, started.elapsed());
        }
    }
    while !(interrupted.load(Ordering::SeqCst) || complete && goal == Goal::Download) {
        match client.events().recv_timeout(Duration::from_millis(100)) {
            Ok(ClientEvent::Session(Event::TorrentComplete { torrent })) if torrent == id => {
                complete = true;
                if let Ok(Some(stats)) = client.stats(id) {
                    report.complete(&stats, started.elapsed());
                }
            }
            Ok(ClientEvent::MetadataReady {
                torrent,
                metainfo,
                check,
            }) if torrent == id => {
                report.metadata_received(&metainfo, started.elapsed());
                report.checked(&check);
                complete = check.pieces_have == check.piece_count;
                if complete {
                    if let Ok(Some(stats)) = client.stats(id) {
                        report.complete(&stats, started.elapsed());
                    }
                }
            }
            Ok(ClientEvent::MetadataStorageFailed { torrent, message }) if torrent == id => {
                failure = Some(format!("{}: {message}", save_path.display()));
                break;
            }
            Ok(ClientEvent::Session(Event::MetadataError { torrent, error })) if torrent == id => {
                failure = Some(format!(
                    "{what}: the metadata matches the info-hash but is not a usable torrent: \
                     {error}"
                ));
                break;
            }
            Ok(ClientEvent::Session(Event::MetadataHashFailed { torrent })) if torrent == id => {
                report.warn("metadata from peers did not match the info-hash; fetching it again");
            }
            Ok(ClientEvent::Session(Event::DhtLookupDone {
                torrent,
                peers,
                queries,
                announced,
            })) if torrent == id => report.dht_lookup(peers, queries, announced, common.verbose),
            Ok(ClientEvent::Session(Event::DhtJoinFailed {
                nodes_tried,
                routers,
            })) => {
                dht_join_failed = true;
                report.dht_join_failed(nodes_tried, &routers);
            }
            Ok(ClientEvent::Session(Event::PeerBanned { addr, .. })) => report.banned(addr),
            Ok(ClientEvent::Session(Event::WebSeedAdded { torrent, url, .. })) if torrent == id => {
                report.web_seed_added(&url, common.verbose);
            }
            Ok(ClientEvent::Session(Event::WebSeedUnsupported { torrent, url }))
                if torrent == id =>
            {
                report.warn(&format!(
                    "web seed {url}: not used (only http:// and https:// web seeds are supported)"
                ));
            }
            Ok(ClientEvent::Session(Event::WebSeedFailed {
                torrent,
                url,
                file,
                reason,
                retry_in,
                ..
            })) if torrent == id => {
                report.web_seed_failed(&url, file.as_deref(), &reason.to_string(), retry_in);
            }
            Ok(ClientEvent::Session(Event::WebSeedBanned { torrent, url, .. }))
                if torrent == id =>
            {
                report.web_seed_banned(&url);
            }
            Ok(ClientEvent::Lsd(status)) => report.lsd_status(&status, common.verbose),
            Ok(ClientEvent::Session(Event::LsdPeer { torrent, addr })) if torrent == id => {
                report.lsd_peer(addr, common.verbose);
            }
            Ok(ClientEvent::Session(Event::TrackerReply {
                url,
                peers,
                seeders,
                leechers,
                warning,
                ..
            })) => {
                report.tracker_reply(&url, peers, seeders, leechers, common.verbose);
                if let Some(w) = warning {
                    report.warn(&format!("tracker {url}: {w}"));
                }
            }
            Ok(ClientEvent::Session(Event::TrackerError { url, message, .. })) => {
                report.tracker_error(&url, &message);
            }
            Ok(ClientEvent::Session(Event::TrackerUnsupported { url, scheme, .. })) => {
                report.warn(&give_up::unsupported_tracker(&url, &scheme));
            }
            Ok(ClientEvent::Session(Event::GaveUp { torrent, reason }))
                if torrent == id && goal == Goal::Download =>
            {
                // The core found nothing left to download from (see `give_up_after`).
                let stats = client.stats(id).ok().flatten();
                failure = Some(give_up::message(
                    &what,
                    &reason,
                    &dials,
                    stats.as_ref(),
                    dht_join_failed,
                ));
                break;
            }
            Ok(ClientEvent::PeerConnected { addr, inbound }) if common.verbose => {
                report.peer(
                    "peer_connected",
                    addr,
                    if inbound { "inbound" } else { "outbound" },
                );
            }
            Ok(ClientEvent::ConnectFailed { addr, reason }) => {
                // A peer's first failure is always shown: an unreachable peer is what a
                // stalled download needs explained. Its retries only with --verbose.
                if dials.note(addr, &reason) || common.verbose {
                    report.peer("connect_failed", addr, &reason);
                }
            }
            Ok(ClientEvent::PeerDisconnected { addr, reason }) => {
                dials.note_disconnect(addr, &reason);
                if common.verbose {
                    report.peer("peer_disconnected", addr, &reason);
                }
            }
            Ok(ClientEvent::Session(Event::StorageError { piece, error, .. })) => {
                // The core re-downloads a piece whose write failed, but the disk will not
                // get better by itself: stop and keep what is verified.
                failure = Some(format!(
                    "{}: writing piece {piece} failed: {error}; verified pieces are kept \
                     and the next run resumes from them",
                    save_path.display()
                ));
                break;
            }
            Ok(ClientEvent::ResumeSaveFailed { message, .. }) => report.warn(&format!(
                "could not save resume data (a restart will recheck the files): {message}"
            )),
            Ok(_) | Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                failure = Some("the client stopped unexpectedly".into());
                break;
            }
        }
        if last_report.elapsed() >= report.interval() {
            last_report = Instant::now();
            match client.stats(id) {
                Ok(Some(stats)) => report.progress(&stats),
                Ok(None) => {}
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
    }
    let reports = client.shutdown().map_err(|e| e.to_string())?;
    let end = reports.into_iter().find(|r| r.torrent == id);
    if let Some(end) = &end {
        if let Some(stats) = &end.stats {
            report.stopped(stats);
            complete = stats.complete;
        }
        if let Err(e) = &end.saved {
            report.warn(&format!("could not save resume data: {e}"));
        }
    }
    if let Some(f) = failure {
        return Err(f);
    }
    if let Some(signal) = crate::signals::received() {
        // Say where the next run picks up (only if it was written: a magnet whose metadata
        // never came has none).
        let resume = source.resume_path(save_path);
        let saved = end.as_ref().is_some_and(|e| e.saved.is_ok()) && resume.is_file();
        let kept = if saved {
            format!("resume data saved in {}", resume.display())
        } else {
            "no resume data was saved".to_string()
        };
        return Err(match goal {
            Goal::Download if !complete => format!(
                "{what}: stopped by {} before the download completed; {kept}; run the same \
                 command again to resume",
                signal.name()
            ),
            _ => format!("stopped by {}; {kept}", signal.name()),
        });
    }
    match goal {
        Goal::Download if !complete => Err(format!(
            "{what}: stopped before the download completed; run the same command again to \
             resume"
        )),
        _ => Ok(()),
    }
}

/// The message for a torrent refused at start (`add_torrent`), in the user's terms.
fn storage_error(save_path: &Path, e: &unchoke_driver::ClientError) -> String {
    use unchoke_driver::ClientError;
    use unchoke_storage::StorageError;
    let dir = save_path.display();
    match e {
        ClientError::Storage(StorageError::TooLong { .. }) => format!(
            "{e}; refusing to cut it (its extra bytes are not the torrent's): move it away, \
             or give --force to cut it to the torrent's size"
        ),
        ClientError::Incomplete { have, count } => format!(
            "{dir}: the data is incomplete ({have} of {count} pieces verified); use --partial \
             to seed it anyway, or `unchoke download` to complete it"
        ),
        ClientError::Cancelled => format!(
            "stopped by {} during the check of existing data in {dir}; nothing was changed",
            crate::signals::received().map_or("a signal", |s| s.name()),
        ),
        // These name their paths already.
        ClientError::Storage(_)
        | ClientError::SaveDirIsFile { .. }
        | ClientError::NoDataDir { .. }
        | ClientError::DataMismatch { .. } => e.to_string(),
        e => format!("{dir}: {e}"),
    }
}

/// Starts the client on `--listen`. When that was not given: on the dual-stack default,
/// or IPv4 only where the host has no IPv6; and when the default port is taken (another
/// client runs), on any free port instead, with a note saying so.
fn start_client(
    common: &CommonArgs,
    config: ClientConfig,
) -> Result<(Client, Option<String>), String> {
    if common.listen.is_some() {
        return Client::new(common.runtime, config)
            .map(|c| (c, None))
            .map_err(|e| e.to_string());
    }
    let with_listen = |listen: SocketAddr, dht_ip: std::net::IpAddr| {
        let mut c = config.clone();
        c.listen = Some(listen);
        if let Some(d) = c.dht.as_mut() {
            d.bind.set_ip(dht_ip);
        }
        c
    };
    let mut ip = DEFAULT_LISTEN.ip();
    let first = match Client::new(common.runtime, config.clone()) {
        Err(ClientError::Listen { source, .. }) if no_ipv6(&source) => {
            ip = DEFAULT_LISTEN_V4.ip();
            Client::new(common.runtime, with_listen(DEFAULT_LISTEN_V4, ip))
        }
        other => other,
    };
    match first {
        Ok(client) => Ok((client, None)),
        Err(ClientError::Listen { source, .. })
            if source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            let client = Client::new(common.runtime, with_listen(SocketAddr::new(ip, 0), ip))
                .map_err(|e| e.to_string())?;
            let port = client.local_addr().map_or(0, |a| a.port());
            Ok((
                client,
                Some(format!(
                    "port {} is in use (another client?); listening on port {port} instead \
                     (--listen chooses)",
                    DEFAULT_LISTEN.port()
                )),
            ))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Whether binding failed because the host has no IPv6 (kernel without it, or disabled).
fn no_ipv6(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL) | Some(libc::EPROTONOSUPPORT)
    )
}

/// A magnet link's `x.pe` peers as addresses; a peer that does not resolve is skipped with
/// a warning (the link may still have others, trackers or the DHT).
fn resolve_link_peers(peers: &[String], warn: &mut dyn FnMut(String)) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for p in peers {
        match p.to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(addr)) => out.push(addr),
            Ok(None) => warn(format!("x.pe={p}: the name has no address; skipped")),
            Err(e) => warn(format!("x.pe={p}: {e}; skipped")),
        }
    }
    out
}
