//! The session's read-only queries for drivers, tests and status displays: a torrent's
//! counters, its pieces, its name, its connections and what each peer is doing. None of
//! them changes state, so they may be called at any time (a status refresh between two
//! inputs changes nothing the core decides).

use super::{Session, TorrentId};
use crate::bitfield::Bitfield;
use crate::info_hash::InfoHash;
use crate::picker::Priority;
use crate::time::Instant;
use crate::torrent::{PeerInfo, TorrentStats};
use crate::vocab::ConnId;

impl Session {
    /// The name to show for `torrent`: a magnet link's `dn` until the metadata is ready.
    pub fn display_name(&self, torrent: TorrentId) -> Option<&str> {
        self.torrents
            .get(&torrent)
            .and_then(|t| t.display_name.as_deref())
    }

    /// PEX messages from peers of `torrent` that were ignored because they came too often
    /// (BEP 11 allows one a minute) or were malformed.
    pub fn pex_ignored(&self, torrent: TorrentId) -> u64 {
        self.torrents.get(&torrent).map_or(0, |t| t.pex_ignored())
    }

    /// The torrent with this info-hash, if present.
    pub fn torrent_by_hash(&self, info_hash: &InfoHash) -> Option<TorrentId> {
        self.by_hash.get(info_hash).copied()
    }

    /// A progress snapshot of `torrent`.
    pub fn stats(&self, torrent: TorrentId, now: Instant) -> Option<TorrentStats> {
        self.torrents.get(&torrent).map(|t| {
            let mut s = t.stats(now);
            s.utp_peers = t.conns().filter(|c| self.is_utp(*c)).count();
            s
        })
    }

    /// The pieces of `torrent` that are verified and stored (`None` for a magnet torrent
    /// before [`Session::metadata_ready`]).
    pub fn have(&self, torrent: TorrentId) -> Option<&Bitfield> {
        self.torrents.get(&torrent).and_then(|t| t.have())
    }

    /// The pieces of `torrent` that may hold data on disk: verified ones, those the
    /// start-up check found written but unverified ([`Session::note_pieces_written`]) and
    /// every piece a [`Action::WriteBlock`](crate::vocab::Action::WriteBlock) was emitted for. A driver saves it with resume
    /// data so a restart reads only these. `None` as for [`Session::have`].
    pub fn pieces_written(&self, torrent: TorrentId) -> Option<&Bitfield> {
        self.torrents.get(&torrent).and_then(|t| t.written())
    }

    /// The priority the picker gives `piece` of `torrent` (`None` for a magnet torrent
    /// before [`Session::metadata_ready`]: it has no pieces yet).
    pub fn piece_priority(&self, torrent: TorrentId, piece: u32) -> Option<Priority> {
        self.torrents
            .get(&torrent)
            .and_then(|t| t.piece_priority(piece))
    }

    /// Bytes handed out for `conn` in `Send`/`SendBlock` and not yet reported accepted by
    /// [`Session::handle_sent`] (0 without [`SessionConfig::send_accounting`](crate::vocab::SessionConfig::send_accounting)); `None` for
    /// a connection the session does not hold. For tests and status displays.
    pub fn unsent_bytes(&self, conn: ConnId) -> Option<usize> {
        self.admission.unsent(conn)
    }

    /// Connections established on `torrent` (for tests and status displays).
    pub fn connections(&self, torrent: TorrentId) -> Vec<ConnId> {
        self.torrents
            .get(&torrent)
            .map(|t| t.conns().collect())
            .unwrap_or_default()
    }

    /// What each peer connected for `torrent` is doing, in connection order (empty for an
    /// unknown torrent). Built on each call from the connections' records.
    pub fn peer_infos(&self, torrent: TorrentId, now: Instant) -> Vec<PeerInfo> {
        self.torrents
            .get(&torrent)
            .map(|t| t.peer_infos(now))
            .unwrap_or_default()
    }
}
