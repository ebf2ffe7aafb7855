//! A magnet torrent's availability while its metadata is missing, and its switch from
//! fetching to [`Phase::Ready`] once the driver has checked its storage
//! ([`Torrent::install_metadata`]).
//!
//! Before the switch, peers' `have`/`bitfield`/`have all` are kept aside per peer, bounded by
//! the largest torrent whose metadata we would accept; at the switch each peer's kept
//! availability is checked against the real piece count (a misfit is dropped), and every
//! peer is told what we have with `have` messages.

use super::phase::{Content, Phase};
use super::{Ctx, Torrent};
use crate::bitfield::Bitfield;
use crate::picker::Picker;
use crate::time::Instant;
use crate::vocab::{ConnId, DisconnectReason, GeometryError};
use crate::wire::Message;

impl Torrent {
    /// Keeps a `have`, `bitfield`, `have all` or `have none` received before the metadata,
    /// with the same ordering rules as later and a size bound: a torrent whose info
    /// dictionary fits `max_metadata_size` has at most one piece per 20 bytes of it (each
    /// piece's SHA-1 is in `pieces`), so nothing past that can be genuine.
    pub(super) fn keep_availability(
        &mut self,
        conn: ConnId,
        message: Message,
        first: bool,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let max_pieces = ctx.config.max_metadata_size / 20;
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let refusal = match message {
            Message::Have { index } if index >= max_pieces => {
                Some("have for a piece past any torrent we accept")
            }
            Message::Have { index } => {
                peer.pending.set(index);
                None
            }
            Message::Bitfield(_) if !first => {
                Some("bitfield after have, bitfield or have all/none")
            }
            Message::Bitfield(bits) if bits.len() > max_pieces.div_ceil(8) as usize => {
                Some("bitfield larger than any torrent we accept")
            }
            Message::Bitfield(bits) => {
                peer.pending.bits = bits.to_vec();
                peer.pending.bitfield_len = Some(bits.len());
                None
            }
            Message::HaveAll | Message::HaveNone if !peer.fast || !first => {
                Some("have all/none out of place")
            }
            Message::HaveAll => {
                peer.pending.all = true;
                None
            }
            _ => None,
        };
        if let Some(reason) = refusal {
            self.disconnect(conn, DisconnectReason::Misbehaved(reason), ctx, now);
        }
    }

    /// The metadata is verified and the driver's storage checked: the torrent's pieces
    /// come into existence ([`Phase::Ready`]), each connected peer's kept availability is
    /// applied (a peer whose bitfield or `have`s do not fit is dropped), peers are told
    /// what we have, and downloading starts. Peers stay connected throughout. On an error
    /// (no pieces, or a picker that does not fit them) nothing changes.
    pub(crate) fn install_metadata(
        &mut self,
        metainfo: &crate::metainfo::Metainfo,
        picker: Picker,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) -> Result<(), GeometryError> {
        let pieces = metainfo.info.layout().piece_count();
        if pieces == 0 {
            return Err(GeometryError::NoPieces);
        }
        let content = Content::from_metainfo(metainfo, picker)
            .ok_or(GeometryError::PickerMismatch { pieces })?;
        let geometry = content.geometry;
        let piece_count = geometry.piece_count();
        let have: Vec<u32> = content.picker.have().ones().collect();
        let mut content = Box::new(content);
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        let mut misfits = Vec::new();
        for &conn in &conns {
            let Some(peer) = self.peers.get_mut(&conn) else {
                continue;
            };
            peer.decoder.set_geometry(geometry);
            let pending = std::mem::take(&mut peer.pending);
            match pending.resolve(piece_count) {
                Ok(has) => {
                    content.picker.peer_bitfield(&has);
                    peer.has = has;
                }
                Err(reason) => {
                    // Sized for the picker so that leaving subtracts nothing.
                    peer.has = Bitfield::new(piece_count);
                    misfits.push((conn, reason));
                }
            }
        }
        self.phase = Phase::Ready(content);
        self.set_info_bytes(metainfo.info_bytes.clone(), metainfo.info.private);
        for (conn, reason) in misfits {
            self.disconnect(conn, DisconnectReason::Misbehaved(reason), ctx, now);
        }
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for &conn in &conns {
            // We said `have none` (or nothing) before: `have` messages are the only way to
            // tell what we have now. A repeated extension handshake (allowed by BEP 10)
            // gives the metadata's size, so peers can fetch it from us too.
            for &index in &have {
                ctx.out.send(conn, &Message::Have { index });
            }
            let extensions = self.peers.get(&conn).is_some_and(|p| p.extensions);
            if extensions {
                if let Some(addr) = self.peers.get(&conn).map(|p| p.addr) {
                    let hs = self.extension_handshake(addr, ctx.config);
                    ctx.out.send(conn, &hs.to_message());
                }
            }
        }
        for conn in conns {
            self.after_peer_gained(conn, ctx, now);
        }
        self.check_complete(ctx);
        Ok(())
    }
}
