//! Torrents joining the session: from a metainfo ([`Session::add_torrent`]), from a
//! magnet link's info-hash ([`Session::add_magnet`]), and a magnet torrent becoming an
//! ordinary one once the driver has checked its storage ([`Session::metadata_ready`]);
//! and why each may refuse.

use std::net::SocketAddr;

use super::{GeometryError, PieceHashes, Session, TorrentId, metainfo_tiers};
use crate::bitfield::Bitfield;
use crate::choker::Choker;
use crate::info_hash::InfoHash;
use crate::metainfo::Metainfo;
use crate::time::Instant;
use crate::torrent::{Torrent, picker_for};
// Named only in doc links.
#[cfg(doc)]
use super::{Event, MAGNET_LEFT};

/// Why a torrent could not be added.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddTorrentError {
    /// The session already has a torrent with this info-hash.
    #[error("torrent {0} is already in the session")]
    Duplicate(InfoHash),
    /// The `have` bitfield does not match the torrent's piece count.
    #[error("resume bitfield has {got} pieces, the torrent has {expected}")]
    HaveMismatch {
        /// Pieces in the bitfield given.
        got: u32,
        /// Pieces in the torrent.
        expected: u32,
    },
    /// The torrent's geometry is unusable (no pieces, or too many).
    #[error("torrent geometry unusable: {0}")]
    Geometry(GeometryError),
    /// The torrent's pieces cannot be checked: a v2-only torrent (BEP 52) whose piece
    /// layers are not known (a bare info dictionary), or hashes that do not fit its pieces.
    #[error("torrent {0}: {1}")]
    PieceHashes(InfoHash, crate::piece_hashes::PieceHashesError),
}

/// What a magnet link gives besides its info-hash (see [`Session::add_magnet`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MagnetOptions {
    /// Tracker tiers to announce to (BEP 12 order). A magnet link's `tr` URLs are usually
    /// given one per tier, as libtorrent does.
    pub trackers: Vec<Vec<String>>,
    /// Peers to dial at once (the link's `x.pe`, resolved by the driver).
    pub peers: Vec<SocketAddr>,
    /// The link's `dn`: a name to show until the metadata gives the real one.
    pub display_name: Option<String>,
}

impl MagnetOptions {
    /// The options a parsed magnet link carries: each `tr` in its own tier, every `x.pe`
    /// that is a literal `address:port` (host names are the driver's to resolve and pass to
    /// [`Session::add_peers`]), and `dn`.
    pub fn from_magnet(magnet: &crate::magnet::Magnet) -> Self {
        MagnetOptions {
            trackers: magnet.trackers.iter().map(|t| vec![t.clone()]).collect(),
            peers: magnet
                .peers
                .iter()
                .filter_map(|p| p.parse::<SocketAddr>().ok())
                .collect(),
            display_name: magnet.display_name.clone(),
        }
    }
}

/// Why [`Session::metadata_ready`] refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataReadyError {
    /// No torrent with this id.
    #[error("no such torrent")]
    UnknownTorrent,
    /// The torrent is not waiting for `metadata_ready`: it was added with its metadata, it
    /// is still fetching it, or it is already ready.
    #[error("the torrent is not waiting for its storage check")]
    NotAwaiting,
    /// The `have` bitfield does not match the metadata's piece count.
    #[error("have bitfield has {got} pieces, the torrent has {expected}")]
    HaveMismatch {
        /// Pieces in the bitfield given.
        got: u32,
        /// Pieces in the torrent.
        expected: u32,
    },
    /// The metadata's geometry is unusable (no pieces, or too many).
    #[error("torrent geometry unusable: {0}")]
    Geometry(GeometryError),
}

impl Session {
    /// Adds a torrent. `have` lists pieces already verified on disk (from a resume file or a
    /// check); `None` means none. The torrent announces to the metainfo's trackers
    /// ([`metainfo_tiers`]) from the next [`Session::handle_timeout`]; call
    /// [`Session::set_trackers`] before that to announce elsewhere (or nowhere).
    pub fn add_torrent(
        &mut self,
        metainfo: &Metainfo,
        have: Option<Bitfield>,
        now: Instant,
    ) -> Result<TorrentId, AddTorrentError> {
        self.saw(now);
        let piece_hashes = PieceHashes::from_metainfo(metainfo)
            .map_err(|e| AddTorrentError::PieceHashes(metainfo.info_hash, e))?;
        if self.by_hash.contains_key(&metainfo.info_hash) {
            return Err(AddTorrentError::Duplicate(metainfo.info_hash));
        }
        let layout = metainfo.info.layout();
        let piece_count = layout.piece_count();
        if let Some(h) = &have {
            if h.len() != piece_count {
                return Err(AddTorrentError::HaveMismatch {
                    got: h.len(),
                    expected: piece_count,
                });
            }
        }
        let picker = picker_for(&layout, have).map_err(|e| AddTorrentError::Geometry(e.into()))?;
        let id = TorrentId(self.next_torrent);
        let torrent = Torrent::new(
            id,
            metainfo.info_hash,
            piece_hashes,
            layout,
            picker,
            Choker::new(self.config.choker.clone(), now),
        )
        .ok_or(AddTorrentError::Geometry(GeometryError::NoPieces))?;
        let mut torrent = torrent;
        torrent.seed_address_hashes(self.hash_seed ^ u64::from(id.0));
        torrent.set_info_bytes(metainfo.info_bytes.clone(), metainfo.info.private);
        torrent.set_web_files(metainfo);
        if let Some((have, written)) = torrent.have_and_written() {
            self.resumes.track(id, have, written);
        }
        self.next_torrent += 1;
        self.torrents.insert(id, torrent);
        self.by_hash.insert(metainfo.info_hash, id);
        self.served.insert(metainfo.info_hash.0);
        // A hybrid is one swarm under two names (BEP 52): a peer that knows it by its v2
        // hash handshakes with the truncated SHA-256, and is answered with it (the reply
        // echoes the peer's hash). Unless another torrent already goes by that name.
        if metainfo.is_hybrid() {
            if let Some(alias) = metainfo.v2.as_ref().map(|v2| v2.info_hash.truncated()) {
                if let std::collections::btree_map::Entry::Vacant(e) = self.by_hash.entry(alias) {
                    e.insert(id);
                    self.served.insert(alias.0);
                }
            }
        }
        self.install_trackers(id, metainfo_tiers(metainfo), now);
        self.dht_track(id, now);
        self.lsd_track(id, now);
        if self.config.web_seeds && !metainfo.url_list.is_empty() {
            self.add_web_seeds(id, &metainfo.url_list, now);
        }
        self.queue_added(id, now);
        Ok(id)
    }

    /// Adds a torrent known only by its info-hash (a magnet link). It dials `options.peers`
    /// and announces to `options.trackers` (with `left` = [`MAGNET_LEFT`]), fetches the
    /// metadata from peers that offer BEP 9 `ut_metadata`, and when it matches the
    /// info-hash (SHA-1, or for a v2-only link the truncated SHA-256, after which the piece
    /// layers are fetched from peers too) emits [`Event::MetadataReceived`]; the driver then calls [`Session::metadata_ready`]. See
    /// the module docs.
    pub fn add_magnet(
        &mut self,
        info_hash: InfoHash,
        options: MagnetOptions,
        now: Instant,
    ) -> Result<TorrentId, AddTorrentError> {
        self.saw(now);
        if self.by_hash.contains_key(&info_hash) {
            return Err(AddTorrentError::Duplicate(info_hash));
        }
        let id = TorrentId(self.next_torrent);
        let mut torrent =
            Torrent::new_magnet(id, info_hash, Choker::new(self.config.choker.clone(), now));
        torrent.seed_address_hashes(self.hash_seed ^ u64::from(id.0));
        torrent.display_name = options.display_name;
        self.next_torrent += 1;
        self.torrents.insert(id, torrent);
        self.by_hash.insert(info_hash, id);
        self.served.insert(info_hash.0);
        self.install_trackers(id, options.trackers, now);
        self.dht_track(id, now);
        self.lsd_track(id, now);
        // Queued or not before dialling: a queued magnet dials nobody.
        self.queue_added(id, now);
        self.add_peers(id, &options.peers, now);
        Ok(id)
    }

    /// The driver set up storage for a magnet torrent after [`Event::MetadataReceived`]:
    /// `have` lists the pieces already verified on disk (`None`: none). The torrent becomes
    /// an ordinary one: the peers connected during the fetch stay, their announced pieces
    /// are counted (a peer whose bitfield does not fit the metadata is dropped), and
    /// downloading starts. On an error nothing changes and the call may be repeated.
    pub fn metadata_ready(
        &mut self,
        torrent: TorrentId,
        have: Option<Bitfield>,
        now: Instant,
    ) -> Result<(), MetadataReadyError> {
        self.saw(now);
        let t = self
            .torrents
            .get_mut(&torrent)
            .ok_or(MetadataReadyError::UnknownTorrent)?;
        let metainfo = t
            .take_verified_metadata()
            .ok_or(MetadataReadyError::NotAwaiting)?;
        let layout = metainfo.info.layout();
        let expected = layout.piece_count();
        let checked = match &have {
            Some(h) if h.len() != expected => Err(MetadataReadyError::HaveMismatch {
                got: h.len(),
                expected,
            }),
            _ => picker_for(&layout, have).map_err(|e| MetadataReadyError::Geometry(e.into())),
        };
        let picker = match checked {
            Ok(p) => p,
            Err(e) => {
                t.restore_verified_metadata(metainfo);
                return Err(e);
            }
        };
        let result = self.with_torrent(torrent, |t, ctx| {
            let installed = t.install_metadata(&metainfo, picker, ctx, now);
            if installed.is_ok() {
                t.set_web_files(&metainfo);
                t.fill_web_seeds(ctx, now);
            }
            installed
        });
        match result {
            Some(Ok(())) => {
                if let Some((have, written)) = self
                    .torrents
                    .get(&torrent)
                    .and_then(|t| t.have_and_written())
                {
                    self.resumes.track(torrent, have, written);
                }
                // What was on disk may make it a seed.
                self.settle_queue(now);
                Ok(())
            }
            Some(Err(error)) => {
                if let Some(t) = self.torrents.get_mut(&torrent) {
                    t.restore_verified_metadata(metainfo);
                }
                Err(MetadataReadyError::Geometry(error))
            }
            None => Err(MetadataReadyError::UnknownTorrent),
        }
    }
}
