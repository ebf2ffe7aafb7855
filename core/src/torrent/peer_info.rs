//! What a status display shows of each connected peer ([`PeerInfo`]): read from the
//! torrent's peer records on demand, so nothing is kept per peer for it.

use std::net::SocketAddr;

use super::Torrent;
use crate::time::Instant;
use crate::vocab::ConnId;

/// One connected peer of a torrent, as [`crate::session::Session::peer_infos`] shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerInfo {
    /// The connection.
    pub conn: ConnId,
    /// The peer's address.
    pub addr: SocketAddr,
    /// Its client, from its peer id's Azureus-style tag (`None`: no known convention).
    pub client: Option<String>,
    /// It dialled us.
    pub inbound: bool,
    /// The connection is encrypted (MSE handshake).
    pub encrypted: bool,
    /// We choke it (it may not download from us).
    pub am_choking: bool,
    /// We want pieces it has.
    pub am_interested: bool,
    /// It chokes us.
    pub peer_choking: bool,
    /// It wants pieces we have.
    pub peer_interested: bool,
    /// Share of the torrent's pieces it has, 0.0 to 1.0 (0.0 before the metadata).
    pub progress: f64,
    /// Bytes per second of payload it sends us (20 s average).
    pub download_rate: u64,
    /// Bytes per second of payload we send it.
    pub upload_rate: u64,
    /// Payload bytes received from it over this connection.
    pub downloaded: u64,
    /// Payload bytes sent to it over this connection.
    pub uploaded: u64,
}

impl Torrent {
    /// Every connected peer, in connection order.
    pub(crate) fn peer_infos(&self, now: Instant) -> Vec<PeerInfo> {
        let pieces = self.phase.content().map_or(0, |c| c.geometry.piece_count());
        self.peers
            .iter()
            .map(|(&conn, p)| PeerInfo {
                conn,
                addr: p.addr,
                client: p.peer_id.client_name(),
                inbound: matches!(p.direction, crate::vocab::Direction::Inbound),
                encrypted: p.crypto.is_some(),
                am_choking: p.am_choking,
                am_interested: p.am_interested,
                peer_choking: p.peer_choking,
                peer_interested: p.peer_interested,
                progress: if pieces == 0 {
                    0.0
                } else {
                    f64::from(p.has.count_ones()) / f64::from(pieces)
                },
                download_rate: p.download.rate(now),
                upload_rate: p.upload.rate(now),
                downloaded: p.download.total(),
                uploaded: p.upload.total(),
            })
            .collect()
    }
}
