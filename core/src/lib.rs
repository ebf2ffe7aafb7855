//! # unchoke-core
//!
//! The sans-IO heart of unchoke, a BitTorrent engine. Its state machines touch no socket,
//! clock, thread, file or global randomness: they parse and produce bytes, take time and
//! input as arguments, and answer with actions for a driver to carry out (the one clock read,
//! [`embed::StdClock::now`], is a helper the driver calls on its own side). This page is
//! the contract between a [`session::Session`] and the loop that drives it; the example
//! `core/examples/embed_std.rs` (`cargo run --example embed_std -p unchoke-core`) follows it
//! over real TCP sockets.
//!
//! ## Driving a `Session`
//!
//! A [`session::Session`] holds every torrent and peer connection of one client. Its methods
//! are of four kinds:
//!
//! - **Getters** (`&self`, no `now` unless a rate is computed): [`peer_id`], [`config`],
//!   [`stats`], [`have`], [`pieces_written`], [`torrent_by_hash`], [`connections`],
//!   [`trackers`], [`dht_nodes`], [`torrent_state`], [`is_drained`]… They never change
//!   anything.
//! - **Inputs**, facts the driver observed, each with `now`: a stream opened
//!   ([`connection_opened`], with [`Direction::Inbound`] for an accepted one) or a dial failed
//!   ([`handle_connect_error`] with the OS's reason; [`connect_failed`] without one); bytes
//!   read ([`handle_bytes`]: complete messages are consumed from the buffer, a partial one
//!   stays for the next call; or, at a message boundary, a `piece` message whose payload
//!   the driver read into a buffer of its own, [`handle_block`], no copy); bytes the socket
//!   accepted ([`handle_sent`]); a stream closed by
//!   itself ([`handle_closed`] with why, or [`connection_closed`]; idempotent); a datagram on
//!   the UDP socket ([`handle_datagram`]: the DHT's and UDP trackers'); a name resolved
//!   ([`handle_resolved`]);
//!   a disk job done ([`disk_write_done`], [`disk_read_done`], [`piece_hashed`]); a tracker
//!   answered ([`announce_done`]); the deadline passed ([`handle_timeout`]).
//! - **Commands**, what the user wants, also with `now`: [`add_torrent`], [`add_magnet`] and
//!   [`metadata_ready`], [`add_peers`], [`set_trackers`], [`set_upload_only`],
//!   [`set_file_priorities`], [`set_limits`] (upload and download rate limits, for the
//!   session or one torrent, changed live), [`note_pieces_written`], [`dht_bootstrap`],
//!   [`remove_torrent`], [`pause_torrent`] / [`resume_torrent`], and [`close`] when leaving.
//! - **Outputs**, pulled: [`poll_action`] gives the next [`Action`] (or `None`), and
//!   [`poll_timeout`] the instant at which [`handle_timeout`] is next due (`None`: nothing
//!   is scheduled, wait for input; today the session always has its one-second housekeeping
//!   tick, so it is `Some`).
//!
//! **The order.** After every input or command: drain [`poll_action`] until it returns `None`,
//! carrying out each action; then ask [`poll_timeout`] and wait for the next input or that
//! instant, whichever comes first; when it has come, call [`handle_timeout`] and drain again.
//! Drain to the end every time: small messages for a peer are coalesced and only handed out
//! when the queue runs dry. Actions for one connection must be carried out in the order
//! polled (a [`Action::Send`] before a later [`Action::SendBlock`] on the same stream).
//!
//! **Leaving.** Call [`close`], then keep driving exactly as before — carry out every action
//! (the `stopped` announces, the final [`Action::SaveResume`] of every torrent, the
//! `Disconnect`s), feed completions and tracker answers, call [`handle_timeout`] at
//! [`poll_timeout`] (it includes the close's deadlines) — until [`is_drained`] says `true`;
//! then drain the queue once more and stop. The close is bounded by
//! [`session::SessionConfig::close_timeout`] whatever does not answer; [`final_saves`] says
//! which final saves succeeded. A driver may stop reading sockets once closing: the
//! session asks nothing more of the peers.
//!
//! **Calls while draining.** Any input or command may be made between two [`poll_action`]
//! calls — a disk completion answered at once, [`connection_opened`] right after a
//! [`Action::Connect`] — and the actions it produces join the queue behind those already in
//! it. Actions are owned values: nothing borrows the session while one is being carried out.
//!
//! **Time.** `now` is the core's own [`time::Instant`], from a clock of the driver's choosing
//! ([`embed::StdClock`] measures from a fixed `std::time::Instant`; a simulator advances it by
//! hand). It must never go backwards from one call to the next (the arithmetic saturates
//! instead of panicking, but timers would fire late). Calling [`handle_timeout`] early, twice,
//! or with no deadline due is harmless; so is input for a connection already closed and a
//! completion nobody waits for.
//!
//! **Actions, in short.** [`Action::Send`] / [`Action::SendBlock`]: write the bytes (the
//! block's two buffers vectored, never concatenated). [`Action::Connect`]: dial, then
//! [`connection_opened`] with [`Direction::Outbound`] or [`handle_connect_error`]; the session
//! bounds the dial itself ([`session::SessionConfig::connect_timeout`]) and, when it gives
//! up first, emits [`Action::CancelConnect`]: drop the half-open socket and report nothing
//! more for it. [`Action::Disconnect`]: close the socket and drop
//! whatever the driver still holds for it — the session has already forgotten the connection,
//! so do not report it back (a [`connection_closed`] for it would be ignored).
//! [`Action::WriteBlock`] / [`Action::ReadBlock`]: store or load a block, then
//! [`disk_write_done`] / [`disk_read_done`]; a failure is a [`session::DiskError`] whose kind
//! the driver reads off its `io::Error` ([`session::DiskError::from_io`]).
//! [`Action::VerifyPiece`]: check the blocks against the piece's SHA-1 and/or v2 merkle
//! root ([`embed::verify_piece`]), then [`piece_hashed`]. [`Action::Announce`]: one HTTP tracker
//! exchange ([`tracker`] builds and parses the bytes), then [`announce_done`] (the session
//! times it out itself and ignores a late answer). [`Action::Resolve`]: resolve a UDP
//! tracker's name off the loop, then [`handle_resolved`]. [`Action::SendDatagram`]: send
//! from the one UDP socket (the DHT's and UDP trackers'; bind it to the listen IP and port,
//! as trackers register the source address). [`Action::SendLsd`] (only with
//! [`session::SessionConfig::lsd`]): multicast the local service discovery announce to
//! its group (IPv4 or IPv6, as [`session::SessionConfig::lsd_families`] says) from a
//! socket joined to that group ([`lsd`]), whose datagrams go to
//! [`session::Session::handle_lsd_datagram`]. [`Action::SaveResume`]: flush the
//! torrent's files and write its resume data, then [`resume_saved`] (the session's own timer
//! asks, one save at a time per torrent). [`Action::WebSeedRequest`]: fetch the byte
//! ranges of a web seed (BEP 19) over HTTP(S), then [`session::Session::web_seed_data`] or
//! [`session::Session::web_seed_failed`] (the session times it out itself; a driver that
//! cannot do HTTP reports every one failed). [`Action::Event`]: tell the
//! user; only [`session::Event::MetadataReceived`] asks for an answer ([`metadata_ready`]).
//!
//! **Backpressure.** Uploads are the session's: a driver that reports what
//! each socket accepted ([`handle_sent`], with [`session::SessionConfig::send_accounting`] on)
//! lets the session hold a peer's `ReadBlock`s while its unsent bytes exceed
//! [`session::SessionConfig::upload_read_ahead`] and drop a peer that stops reading
//! ([`session::SessionConfig::send_stall_timeout`], [`session::SessionConfig::max_unsent_bytes`]).
//! Downloads are too: while [`session::SessionConfig::max_unwritten_bytes`] of `WriteBlock`s
//! wait for `disk_write_done`, no torrent sends new requests (pipelines refill when half is
//! written), so a driver keeps reading every socket and never pauses for its disk.
//! Peer events ([`session::Event::PeerConnected`] and friends) are emitted with
//! [`session::SessionConfig::peer_events`] on.
//!
//! **Determinism.** One RNG, seeded by the caller of [`session::Session::new`], and ordered
//! maps only: the same seed and the same inputs at the same instants give the same actions,
//! byte for byte. Any byte sequence from a peer ends in a typed error and a `Disconnect`,
//! never a panic.
//!
//! The smallest loop: two sessions joined by in-memory byte pipes instead of sockets, with
//! their disks in memory, time advanced by hand.
//!
//! ```rust
//! use std::time::Duration;
//!
//! use unchoke_core::bytes::BytesMut;
//! use unchoke_core::create::{Content, CreateOptions, create};
//! use unchoke_core::embed::{MemoryStorage, verify_piece};
//! use unchoke_core::metainfo::Metainfo;
//! use unchoke_core::session::{Action, Direction, PieceHashes, Session, SessionConfig};
//! use unchoke_core::storage::Layout;
//! use unchoke_core::time::Instant;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//!
//! // 40,000 bytes in 16 KiB pieces; disk 0 holds them, disk 1 is empty.
//! let layout = Layout::new(16 << 10, [40_000])?;
//! let content: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
//! let mut disk = [
//!     MemoryStorage::with_content(layout.clone(), content)?,
//!     MemoryStorage::new(layout)?,
//! ];
//! let options = CreateOptions { piece_length: Some(16 << 10), ..CreateOptions::new("a.bin") };
//! let metainfo = Metainfo::from_bytes(&create(
//!     Content::SingleFile { length: 40_000 },
//!     &mut disk[0],
//!     &options,
//! )?)?;
//!
//! let mut now = Instant::ZERO;
//! let mut s = [
//!     Session::new(SessionConfig::default(), 1, now),
//!     Session::new(SessionConfig::default(), 2, now),
//! ];
//! let seeded = disk[0].verified_pieces(&PieceHashes::from_metainfo(&metainfo)?);
//! s[0].add_torrent(&metainfo, Some(seeded), now)?;
//! let t = s[1].add_torrent(&metainfo, None, now)?;
//! // Session 1 "dials" session 0; each end gets its connection id.
//! let c = [
//!     s[0].connection_opened("127.0.0.1:50000".parse()?, Direction::Inbound, now),
//!     s[1].connection_opened("127.0.0.1:6881".parse()?, Direction::Outbound(t), now),
//! ];
//! let mut inbox = [BytesMut::new(), BytesMut::new()]; // bytes "read" by each end
//!
//! while s[1].have(t).is_some_and(|have| !have.is_full()) {
//!     assert!(now < Instant::from_secs(60), "the transfer takes a fraction of that");
//!     for i in 0..2 {
//!         // Inputs first: the bytes that arrived, and the deadline if it passed …
//!         s[i].handle_bytes(c[i], &mut inbox[i], now);
//!         if s[i].poll_timeout().is_some_and(|deadline| deadline <= now) {
//!             s[i].handle_timeout(now);
//!         }
//!         // … then every action, until none is left.
//!         while let Some(action) = s[i].poll_action() {
//!             match action {
//!                 Action::Send { data, .. } => inbox[1 - i].extend_from_slice(&data),
//!                 Action::SendBlock { header, data, .. } => {
//!                     inbox[1 - i].extend_from_slice(&header);
//!                     inbox[1 - i].extend_from_slice(&data);
//!                 }
//!                 Action::WriteBlock { torrent, piece, offset, data } => {
//!                     let result = disk[i].write_block(piece, offset, &data);
//!                     s[i].disk_write_done(torrent, piece, result.map_err(Into::into), now);
//!                 }
//!                 Action::ReadBlock { conn, block, .. } => {
//!                     let result = disk[i].read_block(block).map_err(Into::into);
//!                     s[i].disk_read_done(conn, block, result, now);
//!                 }
//!                 Action::VerifyPiece { torrent, piece, expected, blocks } => {
//!                     s[i].piece_hashed(torrent, piece, verify_piece(&blocks, &expected), now);
//!                 }
//!                 // No trackers, no DHT, one connection that stays up: nothing else to do.
//!                 _ => {}
//!             }
//!         }
//!     }
//!     now += Duration::from_millis(10);
//! }
//! assert_eq!(disk[1].content(), disk[0].content());
//! # Ok(())
//! # }
//! ```
//!
//! [`peer_id`]: session::Session::peer_id
//! [`config`]: session::Session::config
//! [`stats`]: session::Session::stats
//! [`have`]: session::Session::have
//! [`pieces_written`]: session::Session::pieces_written
//! [`torrent_by_hash`]: session::Session::torrent_by_hash
//! [`connections`]: session::Session::connections
//! [`trackers`]: session::Session::trackers
//! [`dht_nodes`]: session::Session::dht_nodes
//! [`connection_opened`]: session::Session::connection_opened
//! [`connect_failed`]: session::Session::connect_failed
//! [`handle_connect_error`]: session::Session::handle_connect_error
//! [`handle_sent`]: session::Session::handle_sent
//! [`handle_closed`]: session::Session::handle_closed
//! [`handle_bytes`]: session::Session::handle_bytes
//! [`handle_block`]: session::Session::handle_block
//! [`connection_closed`]: session::Session::connection_closed
//! [`handle_datagram`]: session::Session::handle_datagram
//! [`disk_write_done`]: session::Session::disk_write_done
//! [`disk_read_done`]: session::Session::disk_read_done
//! [`piece_hashed`]: session::Session::piece_hashed
//! [`announce_done`]: session::Session::announce_done
//! [`handle_resolved`]: session::Session::handle_resolved
//! [`handle_timeout`]: session::Session::handle_timeout
//! [`add_torrent`]: session::Session::add_torrent
//! [`add_magnet`]: session::Session::add_magnet
//! [`metadata_ready`]: session::Session::metadata_ready
//! [`add_peers`]: session::Session::add_peers
//! [`set_trackers`]: session::Session::set_trackers
//! [`set_upload_only`]: session::Session::set_upload_only
//! [`set_file_priorities`]: session::Session::set_file_priorities
//! [`set_limits`]: session::Session::set_limits
//! [`torrent_state`]: session::Session::torrent_state
//! [`is_drained`]: session::Session::is_drained
//! [`final_saves`]: session::Session::final_saves
//! [`remove_torrent`]: session::Session::remove_torrent
//! [`pause_torrent`]: session::Session::pause_torrent
//! [`resume_torrent`]: session::Session::resume_torrent
//! [`close`]: session::Session::close
//! [`note_pieces_written`]: session::Session::note_pieces_written
//! [`dht_bootstrap`]: session::Session::dht_bootstrap
//! [`poll_action`]: session::Session::poll_action
//! [`poll_timeout`]: session::Session::poll_timeout
//! [`Action`]: session::Action
//! [`Action::Send`]: session::Action::Send
//! [`Action::SendBlock`]: session::Action::SendBlock
//! [`Action::Connect`]: session::Action::Connect
//! [`Action::CancelConnect`]: session::Action::CancelConnect
//! [`Action::Disconnect`]: session::Action::Disconnect
//! [`Action::WriteBlock`]: session::Action::WriteBlock
//! [`Action::ReadBlock`]: session::Action::ReadBlock
//! [`Action::VerifyPiece`]: session::Action::VerifyPiece
//! [`Action::Announce`]: session::Action::Announce
//! [`Action::SendDatagram`]: session::Action::SendDatagram
//! [`Action::SendLsd`]: session::Action::SendLsd
//! [`Action::Resolve`]: session::Action::Resolve
//! [`Action::Event`]: session::Action::Event
//! [`Action::SaveResume`]: session::Action::SaveResume
//! [`Action::WebSeedRequest`]: session::Action::WebSeedRequest
//! [`resume_saved`]: session::Session::resume_saved
//! [`Direction::Inbound`]: session::Direction::Inbound
//! [`Direction::Outbound`]: session::Direction::Outbound
//!
//! ## Modules
//!
//! - [`bencode`]: zero-copy decoder (byte offsets in every error, depth and length limits,
//!   strict canonical mode) and canonical encoder.
//! - [`info_hash`]: the v1 info-hash and its hex / base32 forms; the v2 (SHA-256) info-hash.
//! - [`metainfo`]: `.torrent` files — v1, v2 and hybrid (BEP 52: file tree, piece layers
//!   checked against their merkle roots with [`metainfo::merkle`]) — validated and with
//!   sanitised paths; [`magnet`]: magnet links (`btih` and `btmh`); [`create`]: torrent
//!   creation (pure): v1, and v2-only or hybrid ([`create::V2Plan`]).
//! - [`layout`]: piece ↔ file-span layout math (also reachable as `storage`, its former
//!   name). File IO lives in the `unchoke-storage` crate.
//! - [`resume`]: resume data (verified pieces and file states), encoded as bencode.
//! - [`wire`]: the peer wire protocol (BEP 3, 6, 10): handshake, messages, an incremental
//!   decoder that checks every limit before allocating.
//! - [`bitfield`], [`picker`] (rarest first, random first pieces, endgame, priorities),
//!   [`rate`] (rate meters), [`limits`] (upload and download rate limits as token buckets
//!   on the core's clock), [`choker`] (tit-for-tat: 4 regular slots every 10 s, one
//!   optimistic every 30 s, anti-snubbing).
//! - [`vocab`]: the shared vocabulary (ids, [`session::Action`], [`session::Event`],
//!   reasons, [`session::SessionConfig`]), a leaf that imports neither of the next two;
//!   [`torrent`] (one torrent's swarm state, split by job) builds on it, and [`session`]
//!   (many torrents, routing, handshakes; the API a driver calls) on both.
//! - [`tracker`]: trackers, sans-IO: the HTTP and UDP (BEP 15) announce exchanges and the
//!   tracker server (random peer subsets, expiry, HTTP and UDP fronts).
//! - [`dht`]: a sans-IO Mainline DHT node (BEP 5): KRPC codec, routing table, iterative
//!   `get_peers`/announce lookups, write tokens, peer store, per-IP rate limiting.
//! - [`utp`]: uTP (BEP 29), sans-IO: the packet codec and one connection's state machine
//!   (selective ACKs, RTO, LEDBAT). Not yet wired into the session.
//! - [`time`]: the injected monotonic [`time::Instant`].
//! - [`embed`]: helpers for drivers — [`embed::StdClock`] (std → core time),
//!   [`embed::verify_piece`], [`embed::MemoryStorage`] (a torrent in memory) — and
//!   [`bytes`], re-exported so a driver uses the very version the API speaks.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bencode;
pub mod bitfield;
pub mod choker;
pub mod create;
pub mod dht;
pub mod info_hash;
pub mod layout;
pub mod limits;
pub mod lsd;
pub mod magnet;
pub mod metainfo;
pub mod mse;
pub mod picker;
pub mod piece_hashes;
pub mod rate;
pub mod resume;
pub mod session;
/// The former name of [`layout`], kept so `unchoke_core::storage::Layout` paths still work.
pub use layout as storage;
pub mod time;
pub mod torrent;
pub mod tracker;
pub mod utp;
pub mod vocab;
pub mod wire;

pub use info_hash::{InfoHash, InfoHashV2};

// Helpers for embedders (the std clock adapter, piece verification, in-memory storage), and
// the `bytes` crate the API speaks in, so an embedder uses the very same version.
pub mod embed;
pub use bytes;
