//! The HTTP tracker exchange (BEP 3, BEP 23 compact peers, BEP 7 `peers6`, BEP 48 scrape),
//! sans-IO: [`announce_url`] and [`request_bytes`] build what to send, [`HttpResponseReader`]
//! frames the reply as bytes arrive, and [`parse_announce_response`] /
//! [`parse_scrape_response`] read its bencoded body.
//!
//! `http://` and `https://` URLs build the same request bytes and are read by the same
//! parser: for `https` ([`HttpScheme::Https`]) the driver runs TLS around the exchange (the
//! core carries no TLS library and does no IO), with the URL's host as the server name.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::bencode::{self, Dict, Value};
use crate::info_hash::InfoHash;

use super::{AnnounceEvent, AnnounceRequest, AnnounceResponse, ScrapeEntry};

/// The most bytes of status line plus headers we accept.
pub const MAX_HEAD_LEN: usize = 16 * 1024;
/// The most body bytes we accept (a 2 MiB announce reply is already absurd).
pub const MAX_BODY_LEN: usize = 2 * 1024 * 1024;
/// The longest chunk-size line (size, extensions and CRLF) we accept.
const MAX_CHUNK_LINE: usize = 1024;
/// How many response headers `httparse` may return.
const MAX_HEADERS: usize = 64;

/// Why an HTTP tracker exchange failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpTrackerError {
    /// The tracker URL is not a usable `http://` or `https://` URL.
    #[error("invalid tracker URL: {0}")]
    InvalidUrl(String),
    /// The status line and headers exceed [`MAX_HEAD_LEN`].
    #[error("tracker response headers exceed {MAX_HEAD_LEN} bytes")]
    HeadersTooLarge,
    /// The body exceeds [`MAX_BODY_LEN`].
    #[error("tracker response body exceeds {MAX_BODY_LEN} bytes")]
    BodyTooLarge,
    /// The response is not valid HTTP/1.x.
    #[error("malformed HTTP response from tracker: {0}")]
    MalformedResponse(String),
    /// The tracker answered with a status other than 200.
    #[error("tracker answered HTTP {status} {reason}")]
    Status {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
    /// The connection closed before the response was complete.
    #[error("connection closed before the tracker response was complete ({0})")]
    Truncated(&'static str),
    /// The reader was used after it returned a body or an error.
    #[error("the tracker response reader is already finished")]
    ReaderFinished,
    /// The body is not valid bencode.
    #[error("tracker response is not valid bencode: {0}")]
    Bencode(#[from] bencode::DecodeError),
    /// The body is valid bencode but not a dictionary.
    #[error("tracker response is a {0}, not a dictionary")]
    NotADict(&'static str),
    /// A required key is missing.
    #[error("tracker response lacks the `{0}` key")]
    MissingKey(&'static str),
    /// A key holds a value of the wrong type or range.
    #[error("tracker response key `{key}` is invalid: {reason}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The tracker refused the request (`failure reason`).
    #[error("tracker failure: {0}")]
    Failure(String),
    /// The scrape reply has no entry for the torrent asked about.
    #[error("scrape response has no entry for info-hash {0}")]
    NotInScrape(String),
}

fn bad(key: &'static str, reason: impl Into<String>) -> HttpTrackerError {
    HttpTrackerError::BadValue {
        key,
        reason: reason.into(),
    }
}

/// Appends `bytes` to `out` percent-encoded byte by byte; RFC 3986 unreserved characters
/// stay as they are (trackers compare the decoded bytes, so any other choice would also work,
/// but this is what every client sends).
pub fn percent_encode_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            // Writing into a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// How an HTTP tracker is reached: which of the two schemes its URL has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpScheme {
    /// `http://`: plain TCP, port 80 by default.
    Http,
    /// `https://`: the same request inside TLS, port 443 by default. The driver runs the
    /// TLS session and checks the certificate against the URL's host.
    Https,
}

impl HttpScheme {
    /// The scheme of `url` (any case), if it is `http://` or `https://`.
    pub fn of(url: &str) -> Option<HttpScheme> {
        let (scheme, _) = url.split_once("://")?;
        if scheme.eq_ignore_ascii_case("http") {
            Some(HttpScheme::Http)
        } else if scheme.eq_ignore_ascii_case("https") {
            Some(HttpScheme::Https)
        } else {
            None
        }
    }

    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            HttpScheme::Http => 80,
            HttpScheme::Https => 443,
        }
    }
}

/// The full announce URL for `req` on the tracker whose announce URL is `base`
/// (`http://` or `https://`).
///
/// `base` may already carry a query (private trackers put a passkey there); our parameters
/// are appended to it.
pub fn announce_url(base: &str, req: &AnnounceRequest) -> Result<String, HttpTrackerError> {
    if HttpScheme::of(base).is_none() {
        return Err(HttpTrackerError::InvalidUrl(format!(
            "{base:?} is not an http:// or https:// URL"
        )));
    }
    // A fragment is never sent; our query goes before it.
    let base = base.split('#').next().unwrap_or(base);
    let mut url = String::with_capacity(base.len() + 256);
    url.push_str(base);
    if !base.contains('?') {
        url.push('?');
    } else if !base.ends_with('?') && !base.ends_with('&') {
        url.push('&');
    }
    url.push_str("info_hash=");
    percent_encode_into(&mut url, &req.info_hash.0);
    url.push_str("&peer_id=");
    percent_encode_into(&mut url, req.peer_id.as_bytes());
    let _ = write!(
        url,
        "&port={}&uploaded={}&downloaded={}&left={}&compact=1",
        req.port, req.uploaded, req.downloaded, req.left
    );
    let event = match req.event {
        AnnounceEvent::None => None,
        AnnounceEvent::Started => Some("started"),
        AnnounceEvent::Completed => Some("completed"),
        AnnounceEvent::Stopped => Some("stopped"),
    };
    if let Some(event) = event {
        let _ = write!(url, "&event={event}");
    }
    if let Some(n) = req.numwant {
        let _ = write!(url, "&numwant={n}");
    }
    let _ = write!(url, "&key={:08x}", req.key);
    if let Some(ip) = req.ip {
        url.push_str("&ip=");
        percent_encode_into(&mut url, ip.to_string().as_bytes());
    }
    if let Some(v6) = req.ipv6 {
        url.push_str("&ipv6=");
        percent_encode_into(&mut url, v6.to_string().as_bytes());
    }
    if let Some(id) = &req.tracker_id {
        url.push_str("&trackerid=");
        percent_encode_into(&mut url, id.as_bytes());
    }
    Ok(url)
}

/// Where to connect: a host name or IP literal (IPv6 without brackets) and a port. The
/// driver resolves the name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or IP address text.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Parses an `http[s]://host[:port]/path?query` URL and builds the GET request for it. The
/// bytes are the same for both schemes (the `Host` header is the URL's authority as
/// written); whether to wrap them in TLS is [`HttpScheme::of`] the URL.
pub fn request_bytes(url: &str) -> Result<(HostPort, Vec<u8>), HttpTrackerError> {
    let invalid = |why: &str| HttpTrackerError::InvalidUrl(format!("{url:?}: {why}"));
    if let Some(b) = url
        .bytes()
        .find(|b| b.is_ascii_control() || *b == b' ' || !b.is_ascii())
    {
        return Err(invalid(&format!(
            "contains byte 0x{b:02x} that must be percent-encoded"
        )));
    }
    let scheme_end = url.find("://").ok_or_else(|| invalid("no scheme"))?;
    let scheme = HttpScheme::of(url)
        .ok_or_else(|| invalid("only http:// and https:// trackers are spoken over HTTP"))?;
    let rest = &url[scheme_end + 3..];
    let rest = rest.split('#').next().unwrap_or(rest);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut target = rest[authority_end..].to_string();
    if !target.starts_with('/') {
        target.insert(0, '/');
    }
    if authority.contains('@') {
        return Err(invalid(
            "user credentials in tracker URLs are not supported",
        ));
    }
    let (host, port_text) = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6.find(']').ok_or_else(|| invalid("unclosed '['"))?;
        let host = &v6[..close];
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(invalid("bad IPv6 literal"));
        }
        let after = &v6[close + 1..];
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(invalid("junk after IPv6 literal")),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    let port = match port_text {
        None | Some("") => scheme.default_port(),
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(invalid("bad port")),
            Ok(p) => p,
        },
    };
    let mut req = String::with_capacity(target.len() + authority.len() + 128);
    let _ = write!(
        req,
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: unchoke/{}\r\n\
         Accept-Encoding: identity\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    Ok((
        HostPort {
            host: host.to_string(),
            port,
        },
        req.into_bytes(),
    ))
}

/// How the body's end is found.
#[derive(Debug)]
enum Framing {
    /// `Content-Length`: this many bytes still to come.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked(Chunk),
    /// Neither: the body ends when the connection closes.
    UntilClose,
}

/// Where the chunked decoder is.
#[derive(Debug)]
enum Chunk {
    /// Reading a chunk-size line.
    Size(Vec<u8>),
    /// Inside a chunk's data: this many bytes left.
    Data(usize),
    /// After a chunk's data: expecting CRLF (`true` once the CR was seen).
    DataEnd(bool),
    /// After the last chunk: reading trailer lines (the current line, total trailer bytes).
    Trailer(Vec<u8>, usize),
}

#[derive(Debug)]
enum ReaderState {
    Head(Vec<u8>),
    Body { framing: Framing, body: Vec<u8> },
    Finished,
}

/// Frames an HTTP/1.x tracker response as its bytes arrive: status line and headers (via
/// `httparse`), then a `Content-Length`, chunked or read-until-close body.
///
/// Memory stays bounded by [`MAX_HEAD_LEN`] and [`MAX_BODY_LEN`] whatever the peer sends.
#[derive(Debug)]
pub struct HttpResponseReader {
    state: ReaderState,
}

impl Default for HttpResponseReader {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpResponseReader {
    /// A reader waiting for the status line.
    pub fn new() -> Self {
        HttpResponseReader {
            state: ReaderState::Head(Vec::new()),
        }
    }

    /// Feeds bytes read from the connection. Returns the body once it is complete (bytes
    /// after it are ignored: we asked for `Connection: close`). After a body or an error the
    /// reader is finished and further calls fail with [`HttpTrackerError::ReaderFinished`].
    pub fn push(&mut self, data: &[u8]) -> Result<Option<Vec<u8>>, HttpTrackerError> {
        let result = self.push_inner(data);
        if !matches!(result, Ok(None)) {
            self.state = ReaderState::Finished;
        }
        result
    }

    /// Tells the reader the connection closed. Returns the body when it ends at the close;
    /// an error when the response was cut short.
    pub fn finish(&mut self) -> Result<Vec<u8>, HttpTrackerError> {
        let state = std::mem::replace(&mut self.state, ReaderState::Finished);
        match state {
            ReaderState::Head(_) => Err(HttpTrackerError::Truncated("in the headers")),
            ReaderState::Body {
                framing: Framing::UntilClose,
                body,
            } => Ok(body),
            ReaderState::Body { .. } => Err(HttpTrackerError::Truncated("in the body")),
            ReaderState::Finished => Err(HttpTrackerError::ReaderFinished),
        }
    }

    fn push_inner(&mut self, data: &[u8]) -> Result<Option<Vec<u8>>, HttpTrackerError> {
        match &mut self.state {
            ReaderState::Finished => Err(HttpTrackerError::ReaderFinished),
            ReaderState::Head(buf) => {
                // Never buffer more than the header limit, whatever the chunk size.
                let take = data.len().min(MAX_HEAD_LEN - buf.len());
                buf.extend_from_slice(&data[..take]);
                let Some((head_len, framing)) = parse_head(buf)? else {
                    if buf.len() >= MAX_HEAD_LEN {
                        return Err(HttpTrackerError::HeadersTooLarge);
                    }
                    return Ok(None);
                };
                let early = buf.split_off(head_len);
                self.state = ReaderState::Body {
                    framing,
                    body: Vec::new(),
                };
                if let Some(body) = self.feed_body(&early)? {
                    return Ok(Some(body));
                }
                self.feed_body(&data[take..])
            }
            ReaderState::Body { .. } => self.feed_body(data),
        }
    }

    fn feed_body(&mut self, mut data: &[u8]) -> Result<Option<Vec<u8>>, HttpTrackerError> {
        let ReaderState::Body { framing, body } = &mut self.state else {
            return Err(HttpTrackerError::ReaderFinished);
        };
        match framing {
            Framing::Length(remaining) => {
                let n = data.len().min(*remaining);
                body.extend_from_slice(&data[..n]);
                *remaining -= n;
                if *remaining == 0 {
                    return Ok(Some(std::mem::take(body)));
                }
            }
            Framing::UntilClose => {
                if body.len() + data.len() > MAX_BODY_LEN {
                    return Err(HttpTrackerError::BodyTooLarge);
                }
                body.extend_from_slice(data);
            }
            Framing::Chunked(chunk) => {
                while !data.is_empty() {
                    match chunk {
                        Chunk::Size(line) => {
                            let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                                line.extend_from_slice(data);
                                if line.len() > MAX_CHUNK_LINE {
                                    return Err(chunk_err("chunk-size line too long"));
                                }
                                return Ok(None);
                            };
                            line.extend_from_slice(&data[..nl]);
                            data = &data[nl + 1..];
                            if line.len() > MAX_CHUNK_LINE {
                                return Err(chunk_err("chunk-size line too long"));
                            }
                            let size = parse_chunk_size(line)?;
                            if size == 0 {
                                *chunk = Chunk::Trailer(Vec::new(), 0);
                            } else {
                                if size > MAX_BODY_LEN - body.len() {
                                    return Err(HttpTrackerError::BodyTooLarge);
                                }
                                *chunk = Chunk::Data(size);
                            }
                        }
                        Chunk::Data(remaining) => {
                            let n = data.len().min(*remaining);
                            body.extend_from_slice(&data[..n]);
                            data = &data[n..];
                            *remaining -= n;
                            if *remaining == 0 {
                                *chunk = Chunk::DataEnd(false);
                            }
                        }
                        Chunk::DataEnd(seen_cr) => {
                            let b = data[0];
                            data = &data[1..];
                            match (b, *seen_cr) {
                                (b'\r', false) => *seen_cr = true,
                                // A bare LF is tolerated, as most HTTP parsers do.
                                (b'\n', _) => *chunk = Chunk::Size(Vec::new()),
                                _ => return Err(chunk_err("chunk data not followed by CRLF")),
                            }
                        }
                        Chunk::Trailer(line, total) => {
                            let nl = data.iter().position(|&b| b == b'\n');
                            let n = nl.map_or(data.len(), |i| i + 1);
                            *total += n;
                            if *total > MAX_HEAD_LEN {
                                return Err(HttpTrackerError::HeadersTooLarge);
                            }
                            line.extend_from_slice(&data[..nl.unwrap_or(data.len())]);
                            data = &data[n..];
                            if nl.is_some() {
                                if line.is_empty() || line == b"\r" {
                                    return Ok(Some(std::mem::take(body)));
                                }
                                line.clear();
                            }
                        }
                    }
                }
            }
        }
        Ok(None)
    }
}

fn chunk_err(why: &str) -> HttpTrackerError {
    HttpTrackerError::MalformedResponse(format!("bad chunked encoding: {why}"))
}

fn parse_chunk_size(line: &[u8]) -> Result<usize, HttpTrackerError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // Chunk extensions (`;name=value`) are allowed and meaningless to us.
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or(line)
        .trim_ascii();
    if digits.is_empty() {
        return Err(chunk_err("empty chunk size"));
    }
    let mut size: usize = 0;
    for &d in digits {
        let v = char::from(d)
            .to_digit(16)
            .ok_or_else(|| chunk_err("chunk size is not hexadecimal"))?;
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(v as usize))
            .ok_or(HttpTrackerError::BodyTooLarge)?;
    }
    Ok(size)
}

/// Parses the status line and headers if complete: the head's length and the body framing.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, Framing)>, HttpTrackerError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HttpTrackerError::MalformedResponse(e.to_string())),
    };
    let status = resp.code.unwrap_or(0);
    if status != 200 {
        return Err(HttpTrackerError::Status {
            status,
            reason: resp.reason.unwrap_or("").to_string(),
        });
    }
    let mut chunked = false;
    let mut length: Option<usize> = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            // Only the last coding decides the framing; we asked for `identity` content.
            chunked = v.split(',').next_back().map(str::trim) == Some("chunked");
            if !chunked && v.trim() != "identity" {
                return Err(HttpTrackerError::MalformedResponse(format!(
                    "unsupported transfer encoding {v:?}"
                )));
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    HttpTrackerError::MalformedResponse("bad Content-Length".to_string())
                })?;
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if length.is_some_and(|old| old != n) {
                return Err(HttpTrackerError::MalformedResponse(
                    "conflicting Content-Length headers".to_string(),
                ));
            }
            length = Some(n);
        }
    }
    let framing = if chunked {
        // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3).
        Framing::Chunked(Chunk::Size(Vec::new()))
    } else if let Some(n) = length {
        if n > MAX_BODY_LEN {
            return Err(HttpTrackerError::BodyTooLarge);
        }
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok(Some((head_len, framing)))
}

fn root_dict<'a>(value: &'a Value<'a>) -> Result<&'a Dict<'a>, HttpTrackerError> {
    value
        .as_dict()
        .ok_or(HttpTrackerError::NotADict(value.type_name()))
}

fn failure(dict: &Dict<'_>) -> Result<(), HttpTrackerError> {
    match dict.get(b"failure reason") {
        None => Ok(()),
        Some(v) => {
            let text = v
                .as_bytes()
                .ok_or_else(|| bad("failure reason", format!("is a {}", v.type_name())))?;
            Err(HttpTrackerError::Failure(
                String::from_utf8_lossy(text).into_owned(),
            ))
        }
    }
}

fn opt_u32(dict: &Dict<'_>, key: &'static str) -> Result<Option<u32>, HttpTrackerError> {
    match dict.get(key.as_bytes()) {
        None => Ok(None),
        Some(v) => {
            let i = v
                .as_int()
                .ok_or_else(|| bad(key, format!("is a {}, not an integer", v.type_name())))?;
            u32::try_from(i)
                .map(Some)
                .map_err(|_| bad(key, format!("{i} is out of range")))
        }
    }
}

fn opt_text(dict: &Dict<'_>, key: &'static str) -> Result<Option<String>, HttpTrackerError> {
    match dict.get(key.as_bytes()) {
        None => Ok(None),
        Some(v) => {
            let b = v
                .as_bytes()
                .ok_or_else(|| bad(key, format!("is a {}, not a string", v.type_name())))?;
            Ok(Some(String::from_utf8_lossy(b).into_owned()))
        }
    }
}

/// Adds `addr` to `peers` unless its port is 0 or it is already there.
pub(crate) fn push_peer(
    peers: &mut Vec<SocketAddr>,
    seen: &mut HashSet<SocketAddr>,
    addr: SocketAddr,
) {
    if addr.port() != 0 && seen.insert(addr) {
        peers.push(addr);
    }
}

/// Appends BEP 23 compact IPv4 peers (6 bytes each) or BEP 7 IPv6 peers (18 bytes each).
/// The caller has checked that `data` is a whole number of entries.
pub(crate) fn push_compact(
    peers: &mut Vec<SocketAddr>,
    seen: &mut HashSet<SocketAddr>,
    data: &[u8],
    ipv6: bool,
) {
    if ipv6 {
        for e in data.chunks_exact(18) {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&e[..16]);
            let port = u16::from_be_bytes([e[16], e[17]]);
            push_peer(
                peers,
                seen,
                SocketAddr::new(Ipv6Addr::from(ip).into(), port),
            );
        }
    } else {
        for e in data.chunks_exact(6) {
            let ip = Ipv4Addr::new(e[0], e[1], e[2], e[3]);
            let port = u16::from_be_bytes([e[4], e[5]]);
            push_peer(peers, seen, SocketAddr::new(ip.into(), port));
        }
    }
}

/// Parses a bencoded announce reply: intervals, counts, tracker id, warning and peers
/// (compact or dictionary `peers`, compact `peers6`; port-0 entries and duplicates dropped).
///
/// Dictionary peers whose `ip` is a host name rather than an address are skipped: resolving
/// names is the driver's job and no tracker in practice sends them.
pub fn parse_announce_response(body: &[u8]) -> Result<AnnounceResponse, HttpTrackerError> {
    let value = bencode::decode(body)?;
    let dict = root_dict(&value)?;
    failure(dict)?;
    let interval = opt_u32(dict, "interval")?.ok_or(HttpTrackerError::MissingKey("interval"))?;
    let mut resp = AnnounceResponse {
        interval,
        min_interval: opt_u32(dict, "min interval")?,
        tracker_id: opt_text(dict, "tracker id")?,
        complete: opt_u32(dict, "complete")?,
        incomplete: opt_u32(dict, "incomplete")?,
        peers: Vec::new(),
        warning: opt_text(dict, "warning message")?,
    };
    let mut seen = HashSet::new();
    match dict.get(b"peers") {
        None => {}
        Some(Value::Bytes(b)) => {
            if b.len() % 6 != 0 {
                return Err(bad(
                    "peers",
                    format!("compact length {} is not a multiple of 6", b.len()),
                ));
            }
            push_compact(&mut resp.peers, &mut seen, b, false);
        }
        Some(Value::List(list)) => {
            for item in list.items() {
                let d = item
                    .as_dict()
                    .ok_or_else(|| bad("peers", format!("entry is a {}", item.type_name())))?;
                let ip = d
                    .get(b"ip")
                    .and_then(Value::as_bytes)
                    .ok_or_else(|| bad("peers", "entry lacks a string `ip`"))?;
                let port = d
                    .get(b"port")
                    .and_then(Value::as_int)
                    .ok_or_else(|| bad("peers", "entry lacks an integer `port`"))?;
                let port = u16::try_from(port)
                    .map_err(|_| bad("peers", format!("port {port} is out of range")))?;
                if let Some(id) = d.get(b"peer id") {
                    if id.as_bytes().is_none_or(|b| b.len() != 20) {
                        return Err(bad("peers", "`peer id` is not a 20-byte string"));
                    }
                }
                let Some(ip) = std::str::from_utf8(ip)
                    .ok()
                    .and_then(|s| s.parse::<IpAddr>().ok())
                else {
                    continue;
                };
                push_peer(&mut resp.peers, &mut seen, SocketAddr::new(ip, port));
            }
        }
        Some(v) => return Err(bad("peers", format!("is a {}", v.type_name()))),
    }
    match dict.get(b"peers6") {
        None => {}
        Some(Value::Bytes(b)) => {
            if b.len() % 18 != 0 {
                return Err(bad(
                    "peers6",
                    format!("compact length {} is not a multiple of 18", b.len()),
                ));
            }
            push_compact(&mut resp.peers, &mut seen, b, true);
        }
        Some(v) => return Err(bad("peers6", format!("is a {}", v.type_name()))),
    }
    Ok(resp)
}

/// Parses a BEP 48 scrape reply and returns the counts for `info_hash`.
pub fn parse_scrape_response(
    body: &[u8],
    info_hash: &InfoHash,
) -> Result<ScrapeEntry, HttpTrackerError> {
    let value = bencode::decode(body)?;
    let dict = root_dict(&value)?;
    failure(dict)?;
    let files = dict
        .get(b"files")
        .ok_or(HttpTrackerError::MissingKey("files"))?;
    let files = files
        .as_dict()
        .ok_or_else(|| bad("files", format!("is a {}", files.type_name())))?;
    let entry = files
        .get(&info_hash.0)
        .ok_or_else(|| HttpTrackerError::NotInScrape(info_hash.to_hex()))?;
    let entry = entry
        .as_dict()
        .ok_or_else(|| bad("files", format!("entry is a {}", entry.type_name())))?;
    Ok(ScrapeEntry {
        complete: opt_u32(entry, "complete")?.unwrap_or(0),
        downloaded: opt_u32(entry, "downloaded")?.unwrap_or(0),
        incomplete: opt_u32(entry, "incomplete")?.unwrap_or(0),
    })
}

/// The BEP 48 scrape URL for an announce URL: the last path segment `announce…` becomes
/// `scrape…`; `None` when the tracker does not follow that convention (no scrape).
pub fn scrape_url(announce: &str) -> Option<String> {
    let (path_part, query) = match announce.find('?') {
        Some(q) => announce.split_at(q),
        None => (announce, ""),
    };
    let slash = path_part.rfind('/')?;
    let last = &path_part[slash + 1..];
    let rest = last.strip_prefix("announce")?;
    // `//host` would mean the slash belongs to the scheme, not the path.
    if path_part[..slash].ends_with('/') {
        return None;
    }
    Some(format!("{}/scrape{rest}{query}", &path_part[..slash]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PeerId;

    fn request() -> AnnounceRequest {
        AnnounceRequest {
            info_hash: InfoHash([0xab; 20]),
            peer_id: PeerId(*b"-UC0001-abcdefghijkl"),
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: AnnounceEvent::Started,
            numwant: Some(50),
            key: 0xdead_beef,
            ip: None,
            ipv6: None,
            tracker_id: None,
        }
    }

    fn percent_decode(s: &str) -> Vec<u8> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }

    #[test]
    fn percent_encoding_of_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let mut s = String::new();
        percent_encode_into(&mut s, &all);
        assert_eq!(percent_decode(&s), all);
        for b in 0..=255u8 {
            let mut one = String::new();
            percent_encode_into(&mut one, &[b]);
            let unreserved = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
            if unreserved {
                assert_eq!(one, char::from(b).to_string());
            } else {
                assert_eq!(one, format!("%{b:02X}"));
            }
        }
    }

    #[test]
    fn announce_url_has_every_parameter() {
        let mut req = request();
        req.ip = Some("10.0.0.1".parse().expect("ip"));
        req.ipv6 = Some("2001:db8::1".parse().expect("ipv6"));
        req.tracker_id = Some("a b".into());
        let url = announce_url("http://t.example:8080/announce", &req).expect("url");
        assert_eq!(
            url,
            "http://t.example:8080/announce?info_hash=%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB\
             %AB%AB%AB%AB%AB%AB%AB&peer_id=-UC0001-abcdefghijkl&port=6881&uploaded=1\
             &downloaded=2&left=3&compact=1&event=started&numwant=50&key=deadbeef\
             &ip=10.0.0.1&ipv6=2001%3Adb8%3A%3A1&trackerid=a%20b"
        );
        req.event = AnnounceEvent::None;
        req.numwant = None;
        let url = announce_url("http://t/announce?passkey=x", &req).expect("url");
        assert!(url.starts_with("http://t/announce?passkey=x&info_hash="));
        assert!(!url.contains("event=") && !url.contains("numwant="));
        let url = announce_url("http://t/a?", &req).expect("url");
        assert!(url.starts_with("http://t/a?info_hash="));
        // https:// trackers get the same query; only the driver's transport differs.
        let url = announce_url("HTTPS://t/a?passkey=x", &req).expect("https url");
        assert!(url.starts_with("HTTPS://t/a?passkey=x&info_hash="), "{url}");
        assert!(matches!(
            announce_url("wss://t/a", &req),
            Err(HttpTrackerError::InvalidUrl(_))
        ));
        assert!(matches!(
            announce_url("udp://t:1", &req),
            Err(HttpTrackerError::InvalidUrl(_))
        ));
    }

    #[test]
    fn request_bytes_builds_a_get() {
        let (hp, bytes) =
            request_bytes("http://Tracker.example:6969/announce?x=1#frag").expect("ok");
        assert_eq!(
            hp,
            HostPort {
                host: "Tracker.example".into(),
                port: 6969
            }
        );
        let text = String::from_utf8(bytes).expect("ascii");
        assert!(text.starts_with(
            "GET /announce?x=1 HTTP/1.1\r\nHost: Tracker.example:6969\r\nUser-Agent: unchoke/"
        ));
        assert!(text.ends_with("Accept-Encoding: identity\r\nConnection: close\r\n\r\n"));
        let (hp, bytes) = request_bytes("http://[::1]?a=b").expect("ok");
        assert_eq!(
            hp,
            HostPort {
                host: "::1".into(),
                port: 80
            }
        );
        assert!(bytes.starts_with(b"GET /?a=b HTTP/1.1\r\nHost: [::1]\r\n"));
        // https: port 443 unless given, and the Host header is the authority as written
        // (a default port is not spelled out, as browsers and curl do).
        let (hp, bytes) = request_bytes("https://tracker.example/announce?x=1").expect("https");
        assert_eq!(
            hp,
            HostPort {
                host: "tracker.example".into(),
                port: 443
            }
        );
        assert!(bytes.starts_with(b"GET /announce?x=1 HTTP/1.1\r\nHost: tracker.example\r\n"));
        let (hp, bytes) = request_bytes("https://127.0.0.1:8443/a").expect("https ip");
        assert_eq!(
            hp,
            HostPort {
                host: "127.0.0.1".into(),
                port: 8443
            }
        );
        assert!(bytes.starts_with(b"GET /a HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n"));
        let (hp, _) = request_bytes("https://[::1]/a").expect("https v6");
        assert_eq!(hp.port, 443);
        assert_eq!(HttpScheme::of("HtTpS://x"), Some(HttpScheme::Https));
        assert_eq!(HttpScheme::of("http://x"), Some(HttpScheme::Http));
        assert_eq!(HttpScheme::of("udp://x"), None);
        assert_eq!(HttpScheme::of("https:x"), None);
        for bad in [
            "ftp://t/",
            "wss://t/",
            "https://",
            "https://t:0/",
            "http://",
            "http://t:0/",
            "http://t:99999/",
            "http://t/a b",
            "http://u@t/",
            "t/announce",
            "http://t/\r\nX: y",
        ] {
            assert!(
                matches!(request_bytes(bad), Err(HttpTrackerError::InvalidUrl(_))),
                "{bad:?} accepted"
            );
        }
    }

    fn read_split(data: &[u8], at: usize) -> Result<Vec<u8>, HttpTrackerError> {
        let mut r = HttpResponseReader::new();
        if let Some(b) = r.push(&data[..at])? {
            return Ok(b);
        }
        if let Some(b) = r.push(&data[at..])? {
            return Ok(b);
        }
        r.finish()
    }

    #[test]
    fn content_length_body() {
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
        for at in 0..=resp.len() {
            assert_eq!(read_split(resp, at).expect("body"), b"hello", "split {at}");
        }
        let mut r = HttpResponseReader::new();
        assert_eq!(
            r.push(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel"),
            Ok(None)
        );
        assert_eq!(r.finish(), Err(HttpTrackerError::Truncated("in the body")));
    }

    #[test]
    fn chunked_body_split_everywhere() {
        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                     5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n";
        let want = b"helloabcdefghijklmnopqrstuvwxyz".to_vec();
        for at in 0..=resp.len() {
            assert_eq!(read_split(resp, at).expect("body"), want, "split {at}");
        }
        // Byte by byte, too.
        let mut r = HttpResponseReader::new();
        let mut got = None;
        for b in resp.iter() {
            if let Some(body) = r.push(std::slice::from_ref(b)).expect("ok") {
                got = Some(body);
            }
        }
        assert_eq!(got, Some(want));
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(matches!(
            read_split(bad, 10),
            Err(HttpTrackerError::MalformedResponse(_))
        ));
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX";
        assert!(matches!(
            read_split(bad, 10),
            Err(HttpTrackerError::MalformedResponse(_))
        ));
        let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n";
        assert_eq!(
            read_split(cut, 3),
            Err(HttpTrackerError::Truncated("in the body"))
        );
    }

    #[test]
    fn body_until_close() {
        let resp = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nd8:intervali60ee";
        for at in 0..=resp.len() {
            assert_eq!(read_split(resp, at).expect("body"), b"d8:intervali60ee");
        }
    }

    #[test]
    fn limits_hold() {
        let mut r = HttpResponseReader::new();
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        while head.len() <= MAX_HEAD_LEN {
            head.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        // Too many headers or too long: either way an error, never a body.
        assert!(r.push(&head).is_err());
        let mut r = HttpResponseReader::new();
        let long = vec![b'a'; MAX_HEAD_LEN + 10];
        let mut line = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
        line.extend_from_slice(&long);
        assert_eq!(r.push(&line), Err(HttpTrackerError::HeadersTooLarge));
        assert_eq!(r.push(b"x"), Err(HttpTrackerError::ReaderFinished));

        let big = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_LEN + 1
        );
        assert_eq!(
            HttpResponseReader::new().push(big.as_bytes()),
            Err(HttpTrackerError::BodyTooLarge)
        );
        let chunk = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            MAX_BODY_LEN + 1
        );
        assert_eq!(
            HttpResponseReader::new().push(chunk.as_bytes()),
            Err(HttpTrackerError::BodyTooLarge)
        );
        let huge =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\n";
        assert_eq!(
            HttpResponseReader::new().push(huge.as_bytes()),
            Err(HttpTrackerError::BodyTooLarge)
        );
        let mut r = HttpResponseReader::new();
        assert_eq!(r.push(b"HTTP/1.1 200 OK\r\n\r\n"), Ok(None));
        let block = vec![b'x'; 64 * 1024];
        let mut result = Ok(None);
        for _ in 0..=(MAX_BODY_LEN / block.len()) {
            result = r.push(&block);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(HttpTrackerError::BodyTooLarge));
    }

    #[test]
    fn non_200_is_an_error() {
        let e = HttpResponseReader::new()
            .push(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            .expect_err("404");
        assert_eq!(
            e,
            HttpTrackerError::Status {
                status: 404,
                reason: "Not Found".into()
            }
        );
        assert_eq!(e.to_string(), "tracker answered HTTP 404 Not Found");
        assert!(matches!(
            HttpResponseReader::new().push(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(HttpTrackerError::MalformedResponse(_))
        ));
        assert_eq!(
            HttpResponseReader::new().finish(),
            Err(HttpTrackerError::Truncated("in the headers"))
        );
    }

    #[test]
    fn compact_announce_response() {
        let mut body = b"d8:completei5e10:incompletei3e8:intervali1800e12:min intervali60e\
                          10:tracker id3:abc15:warning message4:hmm!5:peers18:"
            .to_vec();
        body.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]);
        body.extend_from_slice(&[127, 0, 0, 2, 0, 0]); // port 0: skipped
        body.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]); // duplicate
        body.extend_from_slice(b"6:peers636:");
        let mut v6 = [0u8; 18];
        v6[15] = 1;
        v6[16] = 0x1a;
        v6[17] = 0xe2;
        body.extend_from_slice(&v6);
        body.extend_from_slice(&v6);
        body.push(b'e');
        let r = parse_announce_response(&body).expect("valid");
        assert_eq!(
            r,
            AnnounceResponse {
                interval: 1800,
                min_interval: Some(60),
                tracker_id: Some("abc".into()),
                complete: Some(5),
                incomplete: Some(3),
                peers: vec![
                    "127.0.0.1:6881".parse().expect("addr"),
                    "[::1]:6882".parse().expect("addr")
                ],
                warning: Some("hmm!".into()),
            }
        );
    }

    #[test]
    fn dictionary_peers() {
        let body = b"d8:intervali60e5:peersld2:ip9:127.0.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti7000eed2:ip3:::14:porti7001eed2:ip11:example.org4:porti1eeee";
        let r = parse_announce_response(body).expect("valid");
        assert_eq!(
            r.peers,
            vec![
                "127.0.0.1:7000".parse::<SocketAddr>().expect("addr"),
                "[::1]:7001".parse().expect("addr")
            ]
        );
        let bad_port = b"d8:intervali60e5:peersld2:ip9:127.0.0.14:porti70000eeee";
        assert!(matches!(
            parse_announce_response(bad_port),
            Err(HttpTrackerError::BadValue { key: "peers", .. })
        ));
        let no_ip = b"d8:intervali60e5:peersld4:porti7eeee";
        assert!(matches!(
            parse_announce_response(no_ip),
            Err(HttpTrackerError::BadValue { key: "peers", .. })
        ));
    }

    #[test]
    fn failures_and_malformed_keys() {
        let r = parse_announce_response(b"d14:failure reason9:not founde");
        assert_eq!(r, Err(HttpTrackerError::Failure("not found".into())));
        assert_eq!(
            r.expect_err("failure").to_string(),
            "tracker failure: not found"
        );
        assert_eq!(
            parse_announce_response(b"d5:peers0:e"),
            Err(HttpTrackerError::MissingKey("interval"))
        );
        assert!(matches!(
            parse_announce_response(b"le"),
            Err(HttpTrackerError::NotADict("list"))
        ));
        assert!(matches!(
            parse_announce_response(b"d8:interval"),
            Err(HttpTrackerError::Bencode(_))
        ));
        assert!(matches!(
            parse_announce_response(b"d8:intervali-1ee"),
            Err(HttpTrackerError::BadValue {
                key: "interval",
                ..
            })
        ));
        assert!(matches!(
            parse_announce_response(b"d8:interval2:60e"),
            Err(HttpTrackerError::BadValue {
                key: "interval",
                ..
            })
        ));
        for n in [1usize, 5, 7, 13] {
            let mut body = format!("d8:intervali60e5:peers{n}:").into_bytes();
            body.extend(std::iter::repeat_n(1u8, n));
            body.push(b'e');
            let e = parse_announce_response(&body).expect_err("odd length");
            assert!(
                matches!(e, HttpTrackerError::BadValue { key: "peers", .. }),
                "{e}"
            );
        }
        let mut body = b"d8:intervali60e6:peers617:".to_vec();
        body.extend_from_slice(&[1; 17]);
        body.push(b'e');
        assert!(matches!(
            parse_announce_response(&body),
            Err(HttpTrackerError::BadValue { key: "peers6", .. })
        ));
        assert!(matches!(
            parse_announce_response(b"d8:intervali60e5:peersi3ee"),
            Err(HttpTrackerError::BadValue { key: "peers", .. })
        ));
    }

    #[test]
    fn scrape() {
        let hash = InfoHash([7; 20]);
        let mut body = b"d5:filesd20:".to_vec();
        body.extend_from_slice(&hash.0);
        body.extend_from_slice(b"d8:completei4e10:downloadedi9e10:incompletei2eeee");
        assert_eq!(
            parse_scrape_response(&body, &hash),
            Ok(ScrapeEntry {
                complete: 4,
                downloaded: 9,
                incomplete: 2
            })
        );
        assert!(matches!(
            parse_scrape_response(&body, &InfoHash([8; 20])),
            Err(HttpTrackerError::NotInScrape(_))
        ));
        assert_eq!(
            parse_scrape_response(b"de", &hash),
            Err(HttpTrackerError::MissingKey("files"))
        );
        assert_eq!(
            scrape_url("http://t/x/announce.php?k=1").as_deref(),
            Some("http://t/x/scrape.php?k=1")
        );
        assert_eq!(scrape_url("http://t/a"), None);
        assert_eq!(scrape_url("http://announce"), None);
    }
}
