//! Handling of the peer messages of an established connection: decoding the bytes read,
//! the availability messages (`have`, `bitfield`, BEP 6 `have all`/`have none`) with their
//! ordering rules, choke and interest state, and the BEP 10 extension handshake; requests,
//! blocks, PEX and metadata messages are handed to their own modules.
//!
//! Invariant: `bitfield`, `have all` and `have none` are accepted once, before any `have`;
//! anything else out of place ends the connection with a
//! [`DisconnectReason::Misbehaved`], never a panic.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};

use super::{Ctx, OUR_UT_METADATA_ID, OUR_UT_PEX_ID, Torrent};
use crate::bitfield::Bitfield;
use crate::time::Instant;
use crate::vocab::{ConnId, DisconnectReason, SessionConfig};
use crate::wire::{self, ExtensionHandshake, Message, UT_METADATA, UT_PEX};

impl Torrent {
    /// Decodes and handles every complete message in `buf` from `conn`.
    pub(crate) fn handle_bytes(
        &mut self,
        conn: ConnId,
        buf: &mut BytesMut,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        loop {
            let Some(peer) = self.peers.get_mut(&conn) else {
                return;
            };
            peer.last_received = now;
            match peer.decoder.decode(buf) {
                Ok(Some(message)) => self.handle_message(conn, message, ctx, now),
                Ok(None) => return,
                Err(e) => {
                    self.disconnect(conn, DisconnectReason::Protocol(e), ctx, now);
                    return;
                }
            }
        }
    }

    /// A `piece` message whose payload the driver read into a buffer of its own: checked
    /// as the decoder checks a framed one, then handled as one.
    pub(crate) fn handle_block(
        &mut self,
        conn: ConnId,
        (index, begin): (u32, u32),
        data: Bytes,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        peer.last_received = now;
        match peer.decoder.check_piece(index, begin, data.len()) {
            Ok(()) => self.handle_message(conn, Message::Piece { index, begin, data }, ctx, now),
            Err(e) => self.disconnect(conn, DisconnectReason::Protocol(e), ctx, now),
        }
    }

    pub(super) fn handle_message(
        &mut self,
        conn: ConnId,
        message: Message,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        match message {
            Message::Have { .. } | Message::Bitfield(_) | Message::HaveAll | Message::HaveNone => {
                let first = !peer.availability_known;
                peer.availability_known = true;
                if self.awaiting_metadata() {
                    self.keep_availability(conn, message, first, ctx, now);
                } else {
                    self.apply_availability(conn, message, first, ctx, now);
                }
            }
            Message::KeepAlive | Message::Port(_) => {}
            Message::SuggestPiece { index } => self.on_suggest(conn, index, ctx, now),
            Message::AllowedFast { index } => self.on_allowed_fast(conn, index, ctx, now),
            Message::Choke => {
                peer.peer_choking = true;
                if !peer.fast {
                    // Without BEP 6 a choke silently discards our requests.
                    self.drop_requests(conn, ctx, now);
                }
            }
            Message::Unchoke => {
                peer.peer_choking = false;
                peer.timed_out = false;
                self.fill_pipeline(conn, ctx, now);
            }
            Message::Interested => {
                peer.peer_interested = true;
                self.grant_allowed_fast(conn, ctx);
                self.refill_slots(ctx, now);
                self.note_interested(conn);
            }
            Message::NotInterested => {
                peer.peer_interested = false;
                // It may lack only the `have`s we hold for it (`SessionConfig::have_delay`):
                // they go now, and may make it interested again.
                ctx.out.release_conn(conn);
                self.refill_slots(ctx, now);
            }
            Message::Request(req) => self.on_request(conn, req, ctx, now),
            Message::Cancel(req) => self.on_cancel(conn, req, ctx),
            Message::RejectRequest(req) => {
                if !peer.fast {
                    return self.disconnect(
                        conn,
                        DisconnectReason::Misbehaved("reject without the fast extension"),
                        ctx,
                        now,
                    );
                }
                let choking = peer.peer_choking;
                if peer.take_outstanding(req.index, req.begin) {
                    if let Some(c) = self.phase.content_mut() {
                        c.picker.request_cancelled(req.index, req.begin, peer.key);
                    }
                    self.refund_download(u64::from(req.length), ctx, now);
                }
                if !choking {
                    self.fill_pipeline(conn, ctx, now);
                }
            }
            Message::Piece { index, begin, data } => {
                self.on_block(conn, index, begin, data, ctx, now)
            }
            Message::Extended { id, payload } => {
                // Extended messages from a peer that did not announce BEP 10 are ignored, as
                // are extensions we did not offer.
                if !peer.extensions {
                    return;
                }
                match id {
                    wire::EXTENDED_HANDSHAKE_ID => match ExtensionHandshake::decode(&payload) {
                        Ok(hs) => self.on_extension_handshake(conn, &hs, ctx, now),
                        Err(e) => self.disconnect(conn, DisconnectReason::Protocol(e), ctx, now),
                    },
                    OUR_UT_METADATA_ID => self.on_metadata_message(conn, &payload, ctx, now),
                    OUR_UT_PEX_ID => self.on_pex(conn, &payload, ctx, now),
                    _ => {}
                }
            }
            Message::HashRequest(request) => self.on_hash_request(conn, request, ctx, now),
            // Answers to the hash requests of a v2 magnet's layer fetch; ignored otherwise.
            Message::Hashes { request, hashes } => {
                self.on_layer_hashes(conn, request, &hashes, ctx, now)
            }
            Message::HashReject(request) => self.on_layer_reject(conn, request, ctx, now),
        }
    }

    /// A `have`, `bitfield`, `have all` or `have none` once the metadata is known (before,
    /// [`Self::keep_availability`] keeps them aside). `first` is whether it is the peer's
    /// first availability message: the last three may only come first.
    fn apply_availability(
        &mut self,
        conn: ConnId,
        message: Message,
        first: bool,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let (Some(c), Some(peer)) = (self.phase.content_mut(), self.peers.get_mut(&conn)) else {
            return;
        };
        let piece_count = c.geometry.piece_count();
        let refusal = match message {
            Message::Have { index } => {
                // The decoder, which knows the geometry, refused an index past the end.
                if !peer.has.set(index) {
                    return;
                }
                c.picker.peer_have(index);
                None
            }
            Message::Bitfield(_) if !first => {
                Some("bitfield after have, bitfield or have all/none")
            }
            Message::Bitfield(bits) => match Bitfield::from_bytes(&bits, piece_count) {
                Ok(has) => {
                    c.picker.peer_bitfield(&has);
                    peer.has = has;
                    None
                }
                Err(_) => Some("malformed bitfield"),
            },
            Message::HaveAll | Message::HaveNone if !peer.fast || !first => {
                Some("have all/none out of place")
            }
            Message::HaveAll => {
                let has = Bitfield::full(piece_count);
                c.picker.peer_bitfield(&has);
                peer.has = has;
                None
            }
            _ => return, // `have none` changes nothing; other messages are not ours
        };
        match refusal {
            Some(reason) => self.disconnect(conn, DisconnectReason::Misbehaved(reason), ctx, now),
            None => self.after_peer_gained(conn, ctx, now),
        }
    }

    /// The peer's extension handshake (the first, or a later one updating it: BEP 10 makes
    /// `m` additive, an id of 0 disabling an extension).
    pub(super) fn on_extension_handshake(
        &mut self,
        conn: ConnId,
        hs: &ExtensionHandshake,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        if let Some(reqq) = hs.reqq {
            // Bounded on our side too: a huge reqq must not make us queue without limit.
            peer.reqq = (reqq as usize).clamp(1, ctx.config.max_pipeline);
        }
        if let Some(&id) = hs.m.get(UT_METADATA) {
            peer.ext.ut_metadata = (id != 0).then_some(id);
        }
        if let Some(&id) = hs.m.get(UT_PEX) {
            peer.ext.ut_pex = (id != 0).then_some(id);
        }
        if hs.metadata_size.is_some() {
            peer.ext.metadata_size = hs.metadata_size;
        }
        if hs.p.is_some() {
            peer.ext.listen_port = hs.p;
        }
        if let Some(upload_only) = hs.upload_only {
            peer.ext.upload_only = upload_only;
            if upload_only && (self.is_complete() || self.upload_only) {
                return self.disconnect(conn, DisconnectReason::BothSeeds, ctx, now);
            }
        }
        if self.awaiting_metadata() {
            let limit = u64::from(ctx.config.max_metadata_size);
            if hs.metadata_size.is_some_and(|s| s > limit) {
                return self.disconnect(
                    conn,
                    DisconnectReason::Misbehaved("metadata_size above our limit"),
                    ctx,
                    now,
                );
            }
            self.request_metadata(ctx, now);
            self.request_layers(ctx, now);
        }
    }

    /// The extension handshake we send a peer at `addr`: the extensions we speak (disabled
    /// for a private torrent) and, once we have it, the metadata's size.
    pub(super) fn extension_handshake(
        &self,
        addr: SocketAddr,
        config: &SessionConfig,
    ) -> ExtensionHandshake {
        // A private torrent sends id 0 (disabled): `m` is additive, so a magnet torrent
        // that turned out private must switch off what its first handshake offered.
        let (metadata_id, pex_id) = if self.private {
            (0, 0)
        } else {
            (OUR_UT_METADATA_ID, OUR_UT_PEX_ID)
        };
        let m = BTreeMap::from([
            (UT_METADATA.to_owned(), metadata_id),
            (UT_PEX.to_owned(), pex_id),
        ]);
        ExtensionHandshake {
            m,
            v: Some(config.client_name.clone()),
            p: (config.listen_port != 0).then_some(config.listen_port),
            reqq: u32::try_from(config.max_queued_uploads).ok(),
            metadata_size: self.metadata.as_ref().map(|b| b.len() as u64),
            yourip: Some(addr.ip()),
            // Sent only when set, so a peer that never saw it set needs no clearing.
            upload_only: (self.is_complete() || self.upload_only).then_some(true),
        }
    }

    /// The peer announced new pieces: update interest, requests, and the seed-to-seed check.
    pub(super) fn after_peer_gained(&mut self, conn: ConnId, ctx: &mut Ctx<'_>, now: Instant) {
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        if self.awaiting_metadata() {
            return; // nothing to want or give before the metadata
        }
        // Neither side can give the other anything: a seed (or an upload-only torrent,
        // which takes nothing) and a peer that has every piece.
        if (self.is_complete() || self.upload_only) && (peer.has.is_full() || peer.ext.upload_only)
        {
            return self.disconnect(conn, DisconnectReason::BothSeeds, ctx, now);
        }
        self.update_interest(conn, ctx);
        self.fill_pipeline(conn, ctx, now);
    }

    /// Sends `interested` / `not interested` when our interest in the peer changed.
    pub(super) fn update_interest(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let (Some(c), Some(peer)) = (self.phase.content(), self.peers.get_mut(&conn)) else {
            return; // no interest before the metadata: there is nothing to want yet
        };
        let want = !self.upload_only && c.picker.is_interesting(&peer.has);
        if want != peer.am_interested {
            peer.am_interested = want;
            ctx.out.send(
                conn,
                if want {
                    &Message::Interested
                } else {
                    &Message::NotInterested
                },
            );
        }
    }
}
