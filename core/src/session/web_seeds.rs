//! Web seeds (BEP 19): adding them to a torrent, and the driver's reports of what an
//! [`Action::WebSeedRequest`] brought back, its bytes or its failure.

use bytes::Bytes;

use super::{Session, TorrentId, WebSeedError, WebSeedId};
use crate::time::Instant;
// Named only in doc links.
#[cfg(doc)]
use super::{Action, Event, SessionConfig};

impl Session {
    /// Adds web seeds (BEP 19) to `torrent` by URL: `http://` and `https://` ones are
    /// asked for pieces from now on (see [`Action::WebSeedRequest`]); others are named in
    /// [`Event::WebSeedUnsupported`]; a URL the torrent has already is skipped. For a
    /// magnet torrent they are asked once its metadata is ready.
    pub fn add_web_seeds(&mut self, torrent: TorrentId, urls: &[String], now: Instant) {
        self.saw(now);
        let running = self.life.ticks(torrent);
        self.with_torrent(torrent, |t, ctx| {
            if !running {
                t.halt_web_seeds();
            }
            t.add_web_seeds(urls, ctx, now);
        });
    }

    /// A [`Action::WebSeedRequest`] was answered: `data` is its ranges' bytes,
    /// concatenated. They are cut into blocks, written and verified as a peer's would be.
    /// An answer the session no longer waits for (timed out, the torrent paused or the
    /// web seed banned meanwhile) is ignored.
    pub fn web_seed_data(
        &mut self,
        torrent: TorrentId,
        seed: WebSeedId,
        request: u64,
        data: Bytes,
        now: Instant,
    ) {
        self.saw(now);
        self.with_torrent(torrent, |t, ctx| {
            t.web_seed_data(seed, request, data, ctx, now);
        });
    }

    /// A [`Action::WebSeedRequest`] failed: its blocks go back to the picker, the web
    /// seed backs off ([`SessionConfig::web_seed_retry`]) and [`Event::WebSeedFailed`]
    /// says why. A failure for a request no longer waited for is ignored.
    pub fn web_seed_failed(
        &mut self,
        torrent: TorrentId,
        seed: WebSeedId,
        request: u64,
        error: WebSeedError,
        now: Instant,
    ) {
        self.saw(now);
        self.with_torrent(torrent, |t, ctx| {
            t.web_seed_failed(seed, request, error, ctx, now);
        });
    }
}
