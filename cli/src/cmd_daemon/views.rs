//! Conversions between the RPC's views and settings (`super::rpc`, Transmission's
//! shapes) and the core's types: files and peers as the RPC shows them, and a torrent's
//! or the session's settings as the core's priorities and limits. No decision is made
//! here: each function restates one shape in the other's terms.

use unchoke_core::bitfield::Bitfield;
use unchoke_core::metainfo::Metainfo;
use unchoke_core::picker::Priority;
use unchoke_core::session::{Limit, QueueLimits, RateLimits, SeedLimits};

use super::rpc::SessionSettings;
use super::rpc::{FilePriority, FileView, LimitMode, PeerView, TorrentSettings};

/// A torrent's files for the RPC, padding left out. With the torrent's verified pieces
/// (`pieces`, from its details) each file's bytes held are exact; without, `have` of
/// `total` bytes are spread over the files in proportion (exact when the torrent is empty
/// or complete), which a list refresh of many torrents makes do with.
pub(super) fn files_of(
    m: &Metainfo,
    have: u64,
    total: u64,
    pieces: Option<&Bitfield>,
) -> Vec<FileView> {
    let layout = pieces.map(|_| m.info.layout());
    m.info
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.padding)
        .map(|(index, f)| {
            let mut path = f.path.join("/");
            if m.info.multi_file {
                path = format!("{}/{path}", m.info.name);
            }
            let held = match (&layout, pieces) {
                (Some(layout), Some(pieces)) => file_bytes_held(layout, index, pieces),
                _ if total == 0 || have >= total => {
                    if total > 0 {
                        f.length
                    } else {
                        0
                    }
                }
                // u128: length * have overflows u64 for files past 4 GiB.
                _ => u64::try_from(u128::from(f.length) * u128::from(have) / u128::from(total))
                    .unwrap_or(f.length),
            };
            FileView {
                name: path,
                length: f.length,
                have: held,
            }
        })
        .collect()
}

/// Bytes of file `index` inside verified pieces.
fn file_bytes_held(layout: &unchoke_core::layout::Layout, index: usize, pieces: &Bitfield) -> u64 {
    let (Some(start), Some(len)) = (layout.file_offset(index), layout.file_length(index)) else {
        return 0;
    };
    let end = start + len;
    let piece_length = u64::from(layout.piece_length());
    layout
        .file_pieces(index)
        .filter(|&p| pieces.get(p))
        .map(|p| {
            let from = u64::from(p) * piece_length;
            let to = from + u64::from(layout.piece_len(p));
            to.min(end).saturating_sub(from.max(start))
        })
        .sum()
}

/// The core's priority for each of the metainfo's files (padding included, as the core
/// numbers them) from the RPC's settings, which number files without padding. Padding is
/// `Skip`: a piece takes the highest priority of its files, so padding never pulls one in.
pub(super) fn core_priorities(m: &Metainfo, settings: &TorrentSettings) -> Vec<Priority> {
    let mut rpc_index = 0;
    m.info
        .files
        .iter()
        .map(|f| {
            if f.padding {
                return Priority::Skip;
            }
            let i = rpc_index;
            rpc_index += 1;
            if !settings.is_wanted(i) {
                return Priority::Skip;
            }
            match settings.priority(i) {
                FilePriority::Low => Priority::Low,
                FilePriority::Normal => Priority::Normal,
                FilePriority::High => Priority::High,
            }
        })
        .collect()
}

/// A torrent's own speed limits for the core.
pub(super) fn core_limits(settings: &TorrentSettings) -> RateLimits {
    RateLimits {
        upload: settings.limits.upload_bytes(),
        download: settings.limits.download_bytes(),
    }
}

/// A torrent's own seeding limits for the core: Transmission's modes (session's, own,
/// none) for its ratio and idle limits; it has no seeding-time limit of its own.
pub(crate) fn torrent_seed_limits(settings: &TorrentSettings) -> SeedLimits {
    fn limit<T>(mode: LimitMode, own: T) -> Limit<T> {
        match mode {
            LimitMode::Global => Limit::Session,
            LimitMode::Own => Limit::Own(own),
            LimitMode::Unlimited => Limit::Unlimited,
        }
    }
    SeedLimits {
        ratio: limit(settings.ratio_mode, settings.ratio_limit),
        seeding_time: Limit::Session,
        idle: limit(
            settings.idle_mode,
            std::time::Duration::from_secs(settings.idle_limit_minutes.saturating_mul(60)),
        ),
    }
}

/// The session's seeding limits for the core (Transmission has no seeding-time limit).
pub(crate) fn session_seed_limits(settings: &SessionSettings) -> SeedLimits {
    let minutes = |m: u64| std::time::Duration::from_secs(m.saturating_mul(60));
    SeedLimits {
        ratio: if settings.seed_ratio_limited {
            Limit::Own(settings.seed_ratio_limit)
        } else {
            Limit::Unlimited
        },
        seeding_time: Limit::Unlimited,
        idle: if settings.idle_seeding_limited {
            Limit::Own(minutes(settings.idle_seeding_minutes))
        } else {
            Limit::Unlimited
        },
    }
}

/// The session's download and seed queues for the core.
pub(crate) fn queue_limits(settings: &SessionSettings) -> QueueLimits {
    let size = |on: bool, n: u64| on.then(|| usize::try_from(n).unwrap_or(usize::MAX));
    QueueLimits {
        max_downloading: size(
            settings.download_queue_enabled,
            settings.download_queue_size,
        ),
        max_seeding: size(settings.seed_queue_enabled, settings.seed_queue_size),
    }
}

/// A peer as the RPC shows it.
pub(super) fn peer_view(p: &unchoke_core::torrent::PeerInfo) -> PeerView {
    PeerView {
        addr: p.addr,
        client: p.client.clone().unwrap_or_default(),
        incoming: p.inbound,
        encrypted: p.encrypted,
        am_choking: p.am_choking,
        am_interested: p.am_interested,
        peer_choking: p.peer_choking,
        peer_interested: p.peer_interested,
        progress: p.progress,
        rate_down: p.download_rate,
        rate_up: p.upload_rate,
    }
}

/// The torrent's trackers by tier: `announce-list` when there is one (BEP 12 says it
/// replaces `announce`), else `announce`.
pub(super) fn trackers_of(m: &Metainfo) -> Vec<Vec<String>> {
    if !m.announce_list.is_empty() {
        return m.announce_list.clone();
    }
    m.announce.iter().map(|a| vec![a.clone()]).collect()
}
