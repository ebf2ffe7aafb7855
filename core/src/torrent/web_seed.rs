//! Web seeds (BEP 19, `url-list`): HTTP servers holding the torrent's files, used as
//! sources of pieces under the same rules as peers.
//!
//! A web seed is a source that has every piece (less the files it answered 404 or 410
//! for) and never chokes. Its blocks come from the same [`crate::picker::Picker`] under a
//! [`PeerKey`] of its own, so rarest first, started pieces first, endgame and the
//! one-peer rule after a hash failure apply to it as to a peer. Each request is one run of
//! consecutive blocks inside one piece (a whole piece when the picker opens a new one),
//! mapped through the layout to one HTTP range per file it touches
//! ([`Action::WebSeedRequest`]). The bytes that come back are cut into blocks and go
//! through the same write and verification path as a peer's, each block's sender recorded
//! as [`Sender::WebSeed`], so a hash failure counts against the web seed under the trust
//! rules of `trust.rs`: a web seed proven to have sent wrong bytes, or whose whole pieces
//! failed `max_strikes` times, is banned for the torrent's life
//! ([`Event::WebSeedBanned`]).
//!
//! Invariants:
//! - At most [`crate::vocab::SessionConfig::web_seed_requests`] requests are out to one
//!   web seed; each holds its blocks as requested by the web seed's key in the picker, and
//!   a request leaves the table (and its blocks the picker) when answered, failed, timed
//!   out (the session's [`crate::vocab::SessionConfig::web_seed_timeout`], on its clock),
//!   or when the web seed is banned or the torrent stops. A late answer is ignored.
//! - Nothing is asked while the torrent lacks its metadata, is upload-only or complete,
//!   is paused or closing (`halted`), or while the session's write budget is full.
//! - A failure backs the web seed off (`web_seed_retry`, doubled per failure in a row, at
//!   most `web_seed_max_retry`); a success clears the count. Failures never remove a web
//!   seed: only wrong data does. A 404 or 410 takes that file's pieces off its `has` and
//!   backs nothing off: the web seed goes on with its other files at once.
//! - BEP 47 padding files are never requested: their bytes are zeros, filled in here.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::smart_ban::Sender;
use super::trust::MAX_TRUST;
use super::{Ctx, Torrent};
use crate::bitfield::Bitfield;
use crate::metainfo::Metainfo;
use crate::picker::{BlockRequest, PeerKey};
use crate::rate::RateMeter;
use crate::time::Instant;
use crate::vocab::{
    Action, Event, WebSeedError, WebSeedFailure, WebSeedId, WebSeedRange, WebSeedStats,
};

/// The rate window of a web seed's download rate (as a peer's choking window).
const RATE_WINDOW: Duration = Duration::from_secs(20);

/// The files of a torrent as a web seed serves them.
#[derive(Debug, Clone)]
pub(crate) struct WebFiles {
    multi: bool,
    files: Vec<WebFile>,
}

#[derive(Debug, Clone)]
struct WebFile {
    /// The file's path below the web seed's URL, each component percent-escaped: the
    /// name for a single-file torrent, `name/dir/file` for a multi-file one.
    rel: String,
    /// The file's path inside the torrent for messages (`dir/file`, or the name).
    display: String,
    /// A BEP 47 padding file: zeros, never requested.
    padding: bool,
}

impl WebFiles {
    /// The files of `metainfo`.
    pub(crate) fn new(metainfo: &Metainfo) -> Self {
        let info = &metainfo.info;
        let files = info
            .files
            .iter()
            .map(|f| {
                let (rel, display) = if info.multi_file {
                    let mut rel = escape(&info.name);
                    for c in &f.path {
                        rel.push('/');
                        rel.push_str(&escape(c));
                    }
                    (rel, f.path.join("/"))
                } else {
                    (escape(&info.name), info.name.clone())
                };
                WebFile {
                    rel,
                    display,
                    padding: f.padding,
                }
            })
            .collect();
        WebFiles {
            multi: info.multi_file,
            files,
        }
    }

    /// The URL of file `file` on the web seed at `base` (BEP 19): for a multi-file
    /// torrent `base` is a directory holding the torrent's top directory (a `/` is added
    /// when `base` lacks one); for a single-file torrent `base` is the file itself, unless
    /// it ends with `/`, when the torrent's name is appended.
    fn url(&self, base: &str, file: usize) -> Option<String> {
        let f = self.files.get(file)?;
        Some(if self.multi {
            if base.ends_with('/') {
                format!("{base}{}", f.rel)
            } else {
                format!("{base}/{}", f.rel)
            }
        } else if base.ends_with('/') {
            format!("{base}{}", f.rel)
        } else {
            base.to_string()
        })
    }
}

/// The URL of one file of `metainfo` on the web seed at `base`, as BEP 19 maps it (see
/// the module docs); `None` for a file index past the end.
pub fn file_url(metainfo: &Metainfo, base: &str, file: usize) -> Option<String> {
    WebFiles::new(metainfo).url(base, file)
}

/// Percent-escapes one path component: every byte but the unreserved characters of RFC
/// 3986 (`A-Z a-z 0-9 - . _ ~`).
fn escape(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    for b in component.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One web seed of a torrent.
#[derive(Debug)]
struct WebSeed {
    url: String,
    key: PeerKey,
    /// The pieces it may be asked for (every piece, less those of files it said it lacks);
    /// `None` before the metadata.
    has: Option<Bitfield>,
    requests: Vec<WebRequest>,
    /// Failures since the last success: the back-off's exponent.
    failures_in_row: u32,
    failures: u64,
    /// Not asked before this instant (after a failure).
    retry_at: Option<Instant>,
    banned: bool,
    downloaded: u64,
    rate: RateMeter,
    /// Trust in half-strikes, as an IP's in `trust.rs`.
    trust: i32,
}

/// A request out to a web seed: one run of blocks of one piece.
#[derive(Debug)]
struct WebRequest {
    id: u64,
    piece: u32,
    offset: u32,
    len: u32,
    blocks: Vec<BlockRequest>,
    /// The file of each range asked for, in order (for messages and 404s).
    files: Vec<usize>,
    sent_at: Instant,
}

/// A torrent's web seeds.
#[derive(Debug, Default)]
pub(crate) struct WebSeeds {
    seeds: Vec<WebSeed>,
    files: Option<WebFiles>,
    next_request: u64,
    /// Paused or closing: nothing is asked.
    halted: bool,
}

impl Torrent {
    /// Adds web seeds by URL (duplicates of one already known are skipped); a URL that is
    /// neither `http://` nor `https://` is named in [`Event::WebSeedUnsupported`] and left
    /// out. Asks the new ones at once if the torrent can download.
    pub(crate) fn add_web_seeds(&mut self, urls: &[String], ctx: &mut Ctx<'_>, now: Instant) {
        let piece_count = self.phase.content().map(|c| c.geometry.piece_count());
        for url in urls {
            let url = url.trim();
            if url.is_empty() || self.web.seeds.iter().any(|s| s.url == url) {
                continue;
            }
            let scheme = url
                .split_once("://")
                .map(|(s, _)| s.to_ascii_lowercase())
                .unwrap_or_default();
            if scheme != "http" && scheme != "https" {
                ctx.out.push(Action::Event(Event::WebSeedUnsupported {
                    torrent: self.id,
                    url: url.to_string(),
                }));
                continue;
            }
            let key = self.next_key;
            self.next_key = self.next_key.wrapping_add(1);
            let id = WebSeedId(self.web.seeds.len() as u32);
            self.web.seeds.push(WebSeed {
                url: url.to_string(),
                key,
                has: piece_count.map(Bitfield::full),
                requests: Vec::new(),
                failures_in_row: 0,
                failures: 0,
                retry_at: None,
                banned: false,
                downloaded: 0,
                rate: RateMeter::new(RATE_WINDOW, now),
                trust: 0,
            });
            ctx.out.push(Action::Event(Event::WebSeedAdded {
                torrent: self.id,
                seed: id,
                url: url.to_string(),
            }));
        }
        self.fill_web_seeds(ctx, now);
    }

    /// The metadata is known: the web seeds learn the files (and have every piece).
    pub(crate) fn set_web_files(&mut self, metainfo: &Metainfo) {
        self.web.files = Some(WebFiles::new(metainfo));
        let pieces = metainfo.info.layout().piece_count();
        for s in &mut self.web.seeds {
            s.has = Some(Bitfield::full(pieces));
        }
    }

    /// Whether a web seed remains that is not banned and may have a wanted piece (a
    /// source for the give-up rule; one that answered 404 for every file is none).
    pub(crate) fn has_web_seeds(&self) -> bool {
        self.web
            .seeds
            .iter()
            .any(|s| !s.banned && s.has.as_ref().is_none_or(|h| h.count_ones() > 0))
    }

    /// What each web seed has done.
    pub(crate) fn web_seed_stats(&self) -> Vec<WebSeedStats> {
        self.web
            .seeds
            .iter()
            .enumerate()
            .map(|(i, s)| WebSeedStats {
                id: WebSeedId(i as u32),
                url: s.url.clone(),
                downloaded: s.downloaded,
                failures: s.failures,
                in_flight: s.requests.len(),
                banned: s.banned,
            })
            .collect()
    }

    /// Bytes per second received from web seeds.
    pub(super) fn web_seed_rate(&self, now: Instant) -> u64 {
        self.web.seeds.iter().map(|s| s.rate.rate(now)).sum()
    }

    /// Stops asking web seeds (pause, close): requests out are forgotten (their blocks go
    /// back to the picker; late answers are ignored).
    pub(crate) fn halt_web_seeds(&mut self) {
        self.web.halted = true;
        self.forget_web_requests();
    }

    /// Forgets every request out to every web seed (late answers are ignored).
    pub(super) fn forget_web_requests(&mut self) {
        for i in 0..self.web.seeds.len() {
            self.drop_web_requests(i);
        }
    }

    /// Asks web seeds again after [`Self::halt_web_seeds`] (resume).
    pub(crate) fn restart_web_seeds(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        self.web.halted = false;
        self.fill_web_seeds(ctx, now);
    }

    /// Forgets every request out to web seed `index`, giving its blocks back.
    fn drop_web_requests(&mut self, index: usize) {
        let Some(seed) = self.web.seeds.get_mut(index) else {
            return;
        };
        let requests = std::mem::take(&mut seed.requests);
        let key = seed.key;
        if let Some(c) = self.phase.content_mut() {
            for r in requests {
                for b in r.blocks {
                    c.picker.request_cancelled(b.piece, b.offset, key);
                }
            }
        }
    }

    /// Tops up every web seed's requests to the bound.
    pub(crate) fn fill_web_seeds(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        if self.web.halted || self.upload_only || self.web.seeds.is_empty() {
            return;
        }
        let Some(files) = self.web.files.clone() else {
            return;
        };
        // Runs lying wholly in padding files: nothing to fetch, their zeros are stored now.
        let mut immediate: Vec<(usize, u64)> = Vec::new();
        for index in 0..self.web.seeds.len() {
            loop {
                let Some(c) = self.phase.content_mut() else {
                    return;
                };
                let Some(seed) = self.web.seeds.get_mut(index) else {
                    break;
                };
                if seed.banned
                    || seed.retry_at.is_some_and(|t| now < t)
                    || seed.requests.len() >= ctx.config.web_seed_requests
                    || c.picker.is_complete()
                    || !ctx.writes.allows_requests()
                {
                    break;
                }
                let Some(has) = &seed.has else {
                    break;
                };
                // One piece's worth of blocks at most per request.
                let budget = c.picker.blocks_in_piece(0).unwrap_or(1).max(1) as usize;
                let mut picked = Vec::new();
                c.picker
                    .pick_blocks(seed.key, has, budget, ctx.rng, &mut picked);
                if picked.is_empty() {
                    break;
                }
                let mut sent = 0;
                for run in runs(&picked) {
                    if seed.requests.len() >= ctx.config.web_seed_requests {
                        for b in run {
                            c.picker.request_cancelled(b.piece, b.offset, seed.key);
                        }
                        continue;
                    }
                    sent += 1;
                    let (Some(first), Some(last)) = (run.first(), run.last()) else {
                        continue;
                    };
                    let piece = first.piece;
                    let offset = first.offset;
                    let len = last.offset + last.len - first.offset;
                    let mut ranges = Vec::new();
                    let mut req_files = Vec::new();
                    for span in c.layout.spans(piece, offset, len) {
                        let Some(f) = files.files.get(span.file) else {
                            continue;
                        };
                        if f.padding {
                            continue;
                        }
                        let Some(url) = files.url(&seed.url, span.file) else {
                            continue;
                        };
                        ranges.push(WebSeedRange {
                            url,
                            start: span.file_offset,
                            len: span.len,
                        });
                        req_files.push(span.file);
                    }
                    let id = self.web.next_request;
                    self.web.next_request += 1;
                    seed.requests.push(WebRequest {
                        id,
                        piece,
                        offset,
                        len,
                        blocks: run.to_vec(),
                        files: req_files,
                        sent_at: now,
                    });
                    if ranges.is_empty() {
                        immediate.push((index, id));
                    } else {
                        ctx.out.push(Action::WebSeedRequest {
                            torrent: self.id,
                            seed: WebSeedId(index as u32),
                            request: id,
                            ranges,
                        });
                    }
                }
                if sent == 0 {
                    break;
                }
            }
        }
        for (index, id) in immediate {
            self.web_seed_data(WebSeedId(index as u32), id, Bytes::new(), ctx, now);
        }
    }

    /// A web seed answered request `request` with `data`, the ranges' bytes concatenated.
    pub(crate) fn web_seed_data(
        &mut self,
        seed: WebSeedId,
        request: u64,
        data: Bytes,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let index = seed.0 as usize;
        let Some(r) = self.take_web_request(index, request) else {
            return; // late, or the web seed was banned or stopped meanwhile
        };
        let Some(files) = self.web.files.clone() else {
            return;
        };
        let Some(c) = self.phase.content() else {
            return;
        };
        // The run's bytes: the data with the padding files' zeros put back.
        let mut spans: Vec<(u64, bool)> = Vec::new();
        for span in c.layout.spans(r.piece, r.offset, r.len) {
            let padding = files.files.get(span.file).is_some_and(|f| f.padding);
            spans.push((span.len, padding));
        }
        let remote: u64 = spans.iter().filter(|(_, p)| !p).map(|(l, _)| l).sum();
        if data.len() as u64 != remote {
            // Our driver never hands over a wrong length; another might.
            let failure = WebSeedFailure::Short {
                got: data.len() as u64,
                expected: remote,
            };
            self.put_back_web_request(index, r);
            return self.web_seed_failed(
                seed,
                request,
                WebSeedError { range: 0, failure },
                ctx,
                now,
            );
        }
        let run = if spans.iter().any(|(_, p)| *p) {
            let mut buf = BytesMut::with_capacity(r.len as usize);
            let mut at = 0usize;
            for (len, padding) in spans {
                let len = len as usize;
                if padding {
                    buf.resize(buf.len() + len, 0);
                } else {
                    buf.extend_from_slice(data.get(at..at + len).unwrap_or_default());
                    at += len;
                }
            }
            buf.freeze()
        } else {
            data
        };
        let Some(s) = self.web.seeds.get_mut(index) else {
            return;
        };
        let n = run.len() as u64;
        s.downloaded += n;
        s.rate.record(now, n);
        s.failures_in_row = 0;
        s.retry_at = None;
        let key = s.key;
        self.downloaded += n;
        for b in &r.blocks {
            let start = (b.offset - r.offset) as usize;
            let Some(block) = run.get(start..start + b.len as usize) else {
                continue;
            };
            let block = run.slice_ref(block);
            // Our own requests, cut to the picker's blocks: never of a wrong size or place.
            let _ = self.store_block(
                key,
                Sender::WebSeed(seed),
                b.piece,
                b.offset,
                block,
                true,
                ctx,
            );
        }
        self.fill_web_seeds(ctx, now);
    }

    /// A web seed request failed (the driver's report, or the session's time-out).
    pub(crate) fn web_seed_failed(
        &mut self,
        seed: WebSeedId,
        request: u64,
        error: WebSeedError,
        ctx: &mut Ctx<'_>,
        now: Instant,
    ) {
        let index = seed.0 as usize;
        let Some(r) = self.take_web_request(index, request) else {
            return;
        };
        let file = r.files.get(error.range).copied();
        let Some(s) = self.web.seeds.get_mut(index) else {
            return;
        };
        let mut file_missing = false;
        if let Some(c) = self.phase.content_mut() {
            for b in &r.blocks {
                c.picker.request_cancelled(b.piece, b.offset, s.key);
            }
            if let (WebSeedFailure::Status(404 | 410), Some(f), Some(has)) =
                (&error.failure, file, s.has.as_mut())
            {
                // It does not have that file: ask it for none of its pieces again.
                for p in c.layout.file_pieces(f) {
                    has.clear(p);
                }
                file_missing = true;
            }
        }
        s.failures += 1;
        // A missing file is an answer, not a sick server: its other files are asked for at
        // once (backing off here let a peer take the whole download while the server that
        // has the rest waited). Anything else backs the web seed off.
        let retry_in = if file_missing {
            Duration::ZERO
        } else {
            s.failures_in_row = s.failures_in_row.saturating_add(1);
            let factor = 1u32 << (s.failures_in_row - 1).min(16);
            ctx.config
                .web_seed_retry
                .saturating_mul(factor)
                .min(ctx.config.web_seed_max_retry)
        };
        if !file_missing {
            s.retry_at = Some(now + retry_in);
        }
        let display = file.and_then(|f| {
            self.web
                .files
                .as_ref()
                .and_then(|w| w.files.get(f))
                .map(|f| f.display.clone())
        });
        ctx.out.push(Action::Event(Event::WebSeedFailed {
            torrent: self.id,
            seed,
            url: s.url.clone(),
            file: display,
            reason: error.failure,
            retry_in,
        }));
        // Its blocks are free again: peers may take them now.
        let conns: Vec<_> = self.peers.keys().copied().collect();
        for conn in conns {
            self.fill_pipeline(conn, ctx, now);
        }
        self.fill_web_seeds(ctx, now);
    }

    /// Fails every web seed request out for longer than `web_seed_timeout`; asks web
    /// seeds whose back-off ended. From the torrent's tick.
    pub(super) fn web_seed_tick(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let timeout = ctx.config.web_seed_timeout;
        let late: Vec<(WebSeedId, u64)> = self
            .web
            .seeds
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.requests
                    .iter()
                    .filter(|r| now - r.sent_at >= timeout)
                    .map(move |r| (WebSeedId(i as u32), r.id))
            })
            .collect();
        for (seed, request) in late {
            let error = WebSeedError {
                range: 0,
                failure: WebSeedFailure::TimedOut(timeout),
            };
            self.web_seed_failed(seed, request, error, ctx, now);
        }
        self.fill_web_seeds(ctx, now);
    }

    /// Removes request `request` from web seed `index`'s table.
    fn take_web_request(&mut self, index: usize, request: u64) -> Option<WebRequest> {
        let seed = self.web.seeds.get_mut(index)?;
        if seed.banned {
            return None;
        }
        let at = seed.requests.iter().position(|r| r.id == request)?;
        Some(seed.requests.remove(at))
    }

    /// Puts a request taken by [`Self::take_web_request`] back (to fail it properly).
    fn put_back_web_request(&mut self, index: usize, r: WebRequest) {
        if let Some(seed) = self.web.seeds.get_mut(index) {
            seed.requests.push(r);
        }
    }

    /// The web seed with picker key `key`, if one is.
    pub(super) fn web_seed_by_key(&self, key: PeerKey) -> Option<WebSeedId> {
        self.web
            .seeds
            .iter()
            .position(|s| s.key == key)
            .map(|i| WebSeedId(i as u32))
    }

    /// Adds `delta` half-strikes to a web seed's trust (as `trust.rs` does for an IP);
    /// bans it at −2 × `max_strikes`.
    pub(super) fn adjust_web_seed_trust(&mut self, seed: WebSeedId, delta: i32, ctx: &mut Ctx<'_>) {
        let Some(s) = self.web.seeds.get_mut(seed.0 as usize) else {
            return;
        };
        s.trust = s.trust.saturating_add(delta).min(MAX_TRUST);
        let limit = -2 * i32::try_from(ctx.config.max_strikes).unwrap_or(i32::MAX / 4);
        if delta < 0 && s.trust <= limit {
            self.ban_web_seed(seed, ctx);
        }
    }

    /// Bans a web seed for wrong data: its requests are forgotten, it is never asked again.
    pub(super) fn ban_web_seed(&mut self, seed: WebSeedId, ctx: &mut Ctx<'_>) {
        let index = seed.0 as usize;
        let Some(s) = self.web.seeds.get(index) else {
            return;
        };
        if s.banned {
            return;
        }
        let url = s.url.clone();
        self.drop_web_requests(index);
        if let Some(s) = self.web.seeds.get_mut(index) {
            s.banned = true;
        }
        ctx.out.push(Action::Event(Event::WebSeedBanned {
            torrent: self.id,
            seed,
            url,
        }));
    }
}

/// `blocks` cut into runs of consecutive blocks of one piece, in order.
fn runs(blocks: &[BlockRequest]) -> Vec<&[BlockRequest]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=blocks.len() {
        let split = match (blocks.get(i - 1), blocks.get(i)) {
            (Some(a), Some(b)) => b.piece != a.piece || b.offset != a.offset + a.len,
            _ => true,
        };
        if split {
            if let Some(run) = blocks.get(start..i) {
                out.push(run);
            }
            start = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(piece: u32, index: u32) -> BlockRequest {
        BlockRequest {
            piece,
            offset: index * 16384,
            len: 16384,
        }
    }

    #[test]
    fn runs_split_at_gaps_and_pieces() {
        let blocks = [
            block(0, 2),
            block(0, 3),
            block(1, 0),
            block(1, 1),
            block(1, 3),
        ];
        let r = runs(&blocks);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0], &blocks[0..2]);
        assert_eq!(r[1], &blocks[2..4]);
        assert_eq!(r[2], &blocks[4..5]);
        assert!(runs(&[]).is_empty());
    }

    #[test]
    fn components_are_escaped() {
        assert_eq!(escape("a b/ü%.bin"), "a%20b%2F%C3%BC%25.bin");
        assert_eq!(escape("Safe-name_1.~"), "Safe-name_1.~");
    }
}
