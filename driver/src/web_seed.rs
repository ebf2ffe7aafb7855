//! The HTTP side of web seeds (BEP 19): the session's
//! [`unchoke_core::session::Action::WebSeedRequest`] becomes a [`WebSeedJob`] run off the
//! loop, which fetches each byte range with one `GET` and a `Range` header through a
//! shared [`WebSeedClient`] and yields a [`Completion::WebSeed`].
//!
//! Which pieces, how many requests, time-outs, retries and bans are the session's; here
//! only the transport: [`ureq`] (HTTP/1.1, keep-alive connections pooled per host, at most
//! [`MAX_REDIRECTS`] redirects) over rustls with `ring`, trusting the same authorities as
//! `https://` trackers (`--ca-file` or the system's). Each socket operation is bounded by
//! [`OP_TIMEOUT`], so a worker thread is never stuck for good. A hostile server cannot make
//! us buffer more than asked: a body is read up to the range's length and no further, and
//! an answer whose length or `Content-Range` is not the one asked for is refused.

use std::io::Read;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use unchoke_core::session::{TorrentId, WebSeedError, WebSeedFailure, WebSeedId, WebSeedRange};

use crate::disk::Completion;
use crate::tls::TrustRoots;

/// Most redirects followed for one range (BEP 19 servers are often mirrors behind one).
pub const MAX_REDIRECTS: u32 = 5;
/// Longest one socket step (resolve, connect, a write, a read) may take.
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle keep-alive connections kept per host.
const IDLE_PER_HOST: usize = 8;
/// The read buffer.
const READ_CHUNK: usize = 64 * 1024;

/// Fetches byte ranges over HTTP and HTTPS for every torrent's web seeds. `Send + Sync`:
/// one client (and its pool of keep-alive connections) serves every job's thread.
pub struct WebSeedClient {
    roots: TrustRoots,
    /// Built on first use: a client whose torrents have no web seed never reads the
    /// system's certificate store.
    agent: OnceLock<Result<ureq::Agent, String>>,
}

impl std::fmt::Debug for WebSeedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSeedClient").finish_non_exhaustive()
    }
}

impl WebSeedClient {
    /// A client checking `https://` web seeds against `roots`.
    pub fn new(roots: TrustRoots) -> Self {
        WebSeedClient {
            roots,
            agent: OnceLock::new(),
        }
    }

    fn agent(&self) -> Result<&ureq::Agent, WebSeedFailure> {
        self.agent
            .get_or_init(|| build_agent(&self.roots))
            .as_ref()
            .map_err(|why| WebSeedFailure::Tls(why.clone()))
    }

    /// Fetches `ranges` in order and returns their bytes concatenated, or the first
    /// failure with the index of its range. Blocks: run it off the event loop.
    pub fn fetch(&self, ranges: &[WebSeedRange]) -> Result<Bytes, WebSeedError> {
        let total: u64 = ranges.iter().map(|r| r.len).sum();
        let mut out = BytesMut::with_capacity(usize::try_from(total).unwrap_or(0));
        for (i, range) in ranges.iter().enumerate() {
            self.fetch_range(range, &mut out)
                .map_err(|failure| WebSeedError { range: i, failure })?;
        }
        Ok(out.freeze())
    }

    /// Appends one range's bytes to `out`.
    fn fetch_range(&self, range: &WebSeedRange, out: &mut BytesMut) -> Result<(), WebSeedFailure> {
        let scheme = range
            .url
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase())
            .unwrap_or_default();
        if scheme != "http" && scheme != "https" {
            return Err(WebSeedFailure::InvalidUrl(format!(
                "{:?} is not an http:// or https:// URL",
                range.url
            )));
        }
        if range.len == 0 {
            return Ok(());
        }
        let agent = if scheme == "https" {
            self.agent()?
        } else {
            // Plain HTTP needs no certificates: never fail it for a TLS set-up problem.
            self.agent().or_else(|_| plain_agent())?
        };
        let last = range.start.saturating_add(range.len - 1);
        let mut response = agent
            .get(&range.url)
            .header("Range", format!("bytes={}-{last}", range.start))
            .call()
            .map_err(|e| failure(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers();
        let length: Option<u64> = headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        match status {
            206 => {
                let content_range = headers
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !content_range_matches(content_range, range.start, last) {
                    return Err(WebSeedFailure::NoRanges);
                }
                if length.is_some_and(|l| l != range.len) {
                    return Err(WebSeedFailure::NoRanges);
                }
            }
            // The whole file: usable only when the range starts at 0 (read what we need,
            // then drop the connection with the rest unread).
            200 if range.start == 0 && length.is_none_or(|l| l >= range.len) => {}
            200 => return Err(WebSeedFailure::NoRanges),
            other => return Err(WebSeedFailure::Status(other)),
        }
        let mut reader = response.body_mut().as_reader();
        let mut got: u64 = 0;
        let mut buf = vec![0u8; READ_CHUNK];
        while got < range.len {
            let want =
                usize::try_from((range.len - got).min(READ_CHUNK as u64)).unwrap_or(READ_CHUNK);
            let Some(slot) = buf.get_mut(..want) else {
                break;
            };
            match reader.read(slot) {
                Ok(0) => break,
                Ok(n) => {
                    out.extend_from_slice(slot.get(..n).unwrap_or_default());
                    got += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if got < range.len {
            return Err(WebSeedFailure::Short {
                got,
                expected: range.len,
            });
        }
        Ok(())
    }
}

/// Whether a `Content-Range` header says `bytes first-last/…`.
fn content_range_matches(header: &str, first: u64, last: u64) -> bool {
    let Some(rest) = header.trim().strip_prefix("bytes") else {
        return false;
    };
    let Some((span, _size)) = rest.trim().split_once('/') else {
        return false;
    };
    let Some((a, b)) = span.split_once('-') else {
        return false;
    };
    a.trim().parse::<u64>().ok() == Some(first) && b.trim().parse::<u64>().ok() == Some(last)
}

/// The agent's settings: keep-alive, bounded redirects, per-step time-outs, HTTP errors as
/// statuses (the caller words them), no proxy from the environment (as the trackers).
fn config_builder() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(MAX_REDIRECTS)
        .max_idle_connections_per_host(IDLE_PER_HOST)
        .proxy(None)
        .user_agent(concat!("unchoke/", env!("CARGO_PKG_VERSION")))
        .timeout_resolve(Some(OP_TIMEOUT))
        .timeout_connect(Some(OP_TIMEOUT))
        .timeout_send_request(Some(OP_TIMEOUT))
        .timeout_recv_response(Some(OP_TIMEOUT))
        .timeout_per_read(Some(OP_TIMEOUT))
}

fn build_agent(roots: &TrustRoots) -> Result<ureq::Agent, String> {
    let certs = crate::tls::root_certificates(roots).map_err(|e| e.to_string())?;
    let certs: Vec<ureq::tls::Certificate<'static>> = certs
        .into_iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
        .build();
    Ok(config_builder().tls_config(tls).build().new_agent())
}

/// An agent for plain HTTP when no certificates could be loaded.
fn plain_agent() -> Result<&'static ureq::Agent, WebSeedFailure> {
    static PLAIN: OnceLock<ureq::Agent> = OnceLock::new();
    Ok(PLAIN.get_or_init(|| config_builder().build().new_agent()))
}

/// A transport error in the user's terms.
fn failure(e: &ureq::Error) -> WebSeedFailure {
    match e {
        ureq::Error::StatusCode(code) => WebSeedFailure::Status(*code),
        ureq::Error::TooManyRedirects => WebSeedFailure::TooManyRedirects,
        ureq::Error::BadUri(why) => WebSeedFailure::InvalidUrl(why.clone()),
        ureq::Error::HostNotFound => WebSeedFailure::Connect("host not found".into()),
        ureq::Error::ConnectionFailed => WebSeedFailure::Connect("connection failed".into()),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            WebSeedFailure::Connect("connection refused".into())
        }
        ureq::Error::Tls(why) => WebSeedFailure::Tls((*why).to_string()),
        ureq::Error::Rustls(why) => WebSeedFailure::Tls(why.to_string()),
        other => WebSeedFailure::Io(other.to_string()),
    }
}

/// One web seed request to carry out off the loop.
#[derive(Debug)]
pub struct WebSeedJob {
    /// The torrent.
    pub torrent: TorrentId,
    /// The web seed.
    pub seed: WebSeedId,
    /// The session's number for the request.
    pub request: u64,
    /// What to fetch.
    pub ranges: Vec<WebSeedRange>,
    client: Arc<WebSeedClient>,
}

impl WebSeedJob {
    pub(crate) fn new(
        client: Arc<WebSeedClient>,
        torrent: TorrentId,
        seed: WebSeedId,
        request: u64,
        ranges: Vec<WebSeedRange>,
    ) -> Self {
        WebSeedJob {
            torrent,
            seed,
            request,
            ranges,
            client,
        }
    }

    /// Runs the job (blocking) and reports it for [`crate::SessionHost::completion`].
    pub fn run(self) -> Completion {
        let result = self.client.fetch(&self.ranges);
        Completion::WebSeed {
            torrent: self.torrent,
            seed: self.seed,
            request: self.request,
            result,
        }
    }

    /// The completion to report if the job cannot even be started (no thread for it).
    pub fn failure(&self, why: &str) -> Completion {
        Completion::WebSeed {
            torrent: self.torrent,
            seed: self.seed,
            request: self.request,
            result: Err(WebSeedError {
                range: 0,
                failure: WebSeedFailure::Io(why.to_string()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_must_be_the_one_asked() {
        assert!(content_range_matches("bytes 0-99/1000", 0, 99));
        assert!(content_range_matches("bytes 100-199/*", 100, 199));
        assert!(!content_range_matches("bytes 0-199/1000", 0, 99));
        assert!(!content_range_matches("", 0, 99));
        assert!(!content_range_matches("items 0-99/1000", 0, 99));
    }
}
