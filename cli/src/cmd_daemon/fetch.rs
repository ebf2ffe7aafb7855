//! `torrent-add` with an `http://` or `https://` `filename`: the .torrent file fetched
//! over HTTP(S), bounded in size, time and redirects so that a slow or hostile server
//! cannot hold the daemon (requests are answered one at a time) or fill its memory.
//!
//! Over `ureq` with rustls (`ring`), as the web seeds: the system's trust roots when they
//! load, else the Mozilla roots compiled into ureq.

use std::io::Read;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The largest .torrent file fetched (as large as a `metainfo` in a request may be).
pub(crate) const MAX_TORRENT_BYTES: u64 = 16 << 20;
/// The whole fetch, connection to last byte: the RPC waits for it.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed before giving up.
const MAX_REDIRECTS: u32 = 5;

/// Fetches `url`'s body, a .torrent file, or says why not in the RPC client's words
/// ("could not fetch http://…: 404 Not Found").
pub(crate) fn torrent_file(url: &str) -> Result<Vec<u8>, String> {
    let fail = |why: String| format!("could not fetch {}: {why}", url.escape_debug());
    let mut response = agent().get(url).call().map_err(|e| fail(describe(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(
            format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_string(),
        ));
    }
    let mut bytes = Vec::new();
    // Read one byte past the limit to tell "exactly the limit" from "too large", whatever
    // Content-Length claimed.
    response
        .body_mut()
        .as_reader()
        .take(MAX_TORRENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_TORRENT_BYTES {
        return Err(fail(format!(
            "larger than {MAX_TORRENT_BYTES} bytes; not a .torrent file"
        )));
    }
    Ok(bytes)
}

/// One agent for the daemon's life: the trust roots are loaded once, connections may be
/// reused.
fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        let mut tls = ureq::tls::TlsConfig::builder().provider(ureq::tls::TlsProvider::Rustls);
        let native = rustls_native_certs::load_native_certs();
        if !native.certs.is_empty() {
            let certs: Vec<ureq::tls::Certificate<'static>> = native
                .certs
                .iter()
                .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
        }
        ureq::Agent::config_builder()
            // Statuses are worded here, with their reason.
            .http_status_as_error(false)
            .max_redirects(MAX_REDIRECTS)
            // A proxy from the environment would send the daemon's fetches elsewhere than
            // the user asked; the trackers and web seeds ignore it too.
            .proxy(None)
            .user_agent(concat!("unchoke/", env!("CARGO_PKG_VERSION")))
            .timeout_global(Some(TIMEOUT))
            .tls_config(tls.build())
            .build()
            .new_agent()
    })
}

/// A transport error in the user's terms.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::TooManyRedirects => format!("more than {MAX_REDIRECTS} redirects"),
        ureq::Error::Timeout(_) => format!("no complete answer within {}s", TIMEOUT.as_secs()),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".into()
        }
        other => other.to_string(),
    }
}
