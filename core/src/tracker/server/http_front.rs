//! The HTTP front of the tracker server: one `GET /announce` or `GET /scrape` request in,
//! one complete HTTP/1.1 response out (BEP 3, compact peers per BEP 23, `peers6` per
//! BEP 7/48's conventions for IPv6).
//!
//! The request head is parsed by hand (no HTTP crate in the core): request line
//! `GET target HTTP/1.x`, header lines up to the blank line, 8 KiB at most. A client error
//! inside a well-formed request (missing or bad parameter) is answered `200 OK` with a
//! bencoded `failure reason`, because that is what BitTorrent clients show their users;
//! an unparseable request gets `400`, an unknown path `404`.

use std::net::{IpAddr, SocketAddr};

use crate::bencode::{Dict, List, Value, encode};
use crate::info_hash::InfoHash;
use crate::time::Instant;
use crate::tracker::{AnnounceEvent, AnnounceRequest};
use crate::wire::PeerId;

use super::{AnnounceReply, TrackerServer};

/// The largest request head accepted; a longer one is answered `431`-style with `400`.
pub const MAX_HTTP_REQUEST: usize = 8 * 1024;

/// The most `info_hash` parameters one HTTP scrape may name (keeps the reply small).
const MAX_SCRAPE_HASHES: usize = 128;

/// One percent-decoded query parameter: name and value.
type Param = (Vec<u8>, Vec<u8>);

/// What to do with the bytes received so far on an HTTP connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpOutcome {
    /// The request head is not complete yet: read more (the head is still under
    /// [`MAX_HTTP_REQUEST`]).
    NeedMore,
    /// Send these bytes (a whole response with `Connection: close`), then close.
    Respond(Vec<u8>),
}

impl TrackerServer {
    /// Handles the bytes of one HTTP request received from `source` so far.
    ///
    /// Never panics; any input yields either [`HttpOutcome::NeedMore`] (only while the
    /// head is incomplete and shorter than [`MAX_HTTP_REQUEST`]) or a full response.
    pub fn handle_http_request(
        &mut self,
        request_bytes: &[u8],
        source: SocketAddr,
        now: Instant,
    ) -> HttpOutcome {
        let Some(head_len) = find_head_end(request_bytes) else {
            if request_bytes.len() >= MAX_HTTP_REQUEST {
                return HttpOutcome::Respond(plain(400, "Bad Request", "request too long"));
            }
            return HttpOutcome::NeedMore;
        };
        if head_len > MAX_HTTP_REQUEST {
            return HttpOutcome::Respond(plain(400, "Bad Request", "request too long"));
        }
        let head = &request_bytes[..head_len];
        let target = match parse_head(head) {
            Ok(t) => t,
            Err(why) => return HttpOutcome::Respond(plain(400, "Bad Request", why)),
        };
        let (path, query) = match target.iter().position(|&b| b == b'?') {
            Some(q) => (&target[..q], &target[q + 1..]),
            None => (target, &b""[..]),
        };
        let params = match parse_query(query) {
            Ok(p) => p,
            Err(why) => return HttpOutcome::Respond(failure(&why)),
        };
        let body = match path {
            b"/announce" => self.http_announce(&params, source, now),
            b"/scrape" => self.http_scrape(&params),
            _ => return HttpOutcome::Respond(plain(404, "Not Found", "unknown path")),
        };
        HttpOutcome::Respond(ok_response(&body))
    }

    fn http_announce(&mut self, params: &[Param], source: SocketAddr, now: Instant) -> Vec<u8> {
        let req = match announce_request(params) {
            Ok(r) => r,
            Err(why) => return failure_body(&why),
        };
        let compact = param(params, b"compact").is_none_or(|v| v != b"0");
        let no_peer_id = param(params, b"no_peer_id").is_some_and(|v| v == b"1");
        match self.announce(&req, source, now) {
            Ok(reply) => announce_body(&reply, compact, no_peer_id),
            Err(e) => failure_body(&e.to_string()),
        }
    }

    fn http_scrape(&self, params: &[Param]) -> Vec<u8> {
        let mut hashes = Vec::new();
        for (k, v) in params {
            if k != b"info_hash" {
                continue;
            }
            let Ok(bytes) = <[u8; 20]>::try_from(v.as_slice()) else {
                return failure_body("info_hash must be 20 bytes");
            };
            if hashes.len() == MAX_SCRAPE_HASHES {
                return failure_body("too many info_hash parameters");
            }
            hashes.push(InfoHash(bytes));
        }
        if hashes.is_empty() {
            // A full scrape of every swarm would be large and leaks the torrent list.
            return failure_body("scrape needs at least one info_hash");
        }
        let entries = self.scrape(&hashes);
        let files: Vec<(&[u8], Value<'_>)> = entries
            .iter()
            .map(|(hash, e)| {
                let stats = Dict::new(vec![
                    (&b"complete"[..], Value::Int(i64::from(e.complete))),
                    (&b"downloaded"[..], Value::Int(i64::from(e.downloaded))),
                    (&b"incomplete"[..], Value::Int(i64::from(e.incomplete))),
                ]);
                (&hash.0[..], Value::Dict(stats))
            })
            .collect();
        encode(&Value::Dict(Dict::new(vec![(
            &b"files"[..],
            Value::Dict(Dict::new(files)),
        )])))
    }
}

/// The index just past the blank line ending the head, if there is one (CRLFCRLF, or a
/// bare LFLF from sloppy clients).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let limit = buf.len().min(MAX_HTTP_REQUEST + 4);
    let buf = &buf[..limit];
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Checks the request line and headers; returns the request target.
fn parse_head(head: &[u8]) -> Result<&[u8], &'static str> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let line = lines.next().ok_or("empty request")?;
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if method != b"GET" {
        return Err("only GET is supported");
    }
    if !version.starts_with(b"HTTP/1.") || version.len() != 8 {
        return Err("unsupported HTTP version");
    }
    if !target.starts_with(b"/") || target.iter().any(|b| !b.is_ascii_graphic()) {
        return Err("malformed request target");
    }
    for header in lines {
        if header.is_empty() {
            continue;
        }
        let colon = header
            .iter()
            .position(|&b| b == b':')
            .ok_or("malformed header line")?;
        if colon == 0 || header[..colon].iter().any(|b| !b.is_ascii_graphic()) {
            return Err("malformed header name");
        }
    }
    Ok(target)
}

/// Splits `a=b&c=d` into percent-decoded pairs (`+` is a space, as in HTML forms).
fn parse_query(query: &[u8]) -> Result<Vec<Param>, String> {
    let mut out = Vec::new();
    for part in query.split(|&b| b == b'&') {
        if part.is_empty() {
            continue;
        }
        let (k, v) = match part.iter().position(|&b| b == b'=') {
            Some(eq) => (&part[..eq], &part[eq + 1..]),
            None => (part, &b""[..]),
        };
        let key = percent_decode(k).ok_or("invalid percent-encoding in a parameter name")?;
        let value = percent_decode(v).ok_or_else(|| {
            format!(
                "invalid percent-encoding in {}",
                String::from_utf8_lossy(&key)
            )
        })?;
        out.push((key, value));
    }
    Ok(out)
}

fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let hi = hex_digit(*s.get(i + 1)?)?;
                let lo = hex_digit(*s.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The first value of `key`.
fn param<'p>(params: &'p [Param], key: &[u8]) -> Option<&'p [u8]> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_slice())
}

fn required<'p>(params: &'p [Param], key: &str) -> Result<&'p [u8], String> {
    param(params, key.as_bytes()).ok_or_else(|| format!("missing {key}"))
}

fn number<T: std::str::FromStr>(text: &[u8], key: &str) -> Result<T, String> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("invalid {key}"))
}

fn id20(params: &[Param], key: &str) -> Result<[u8; 20], String> {
    <[u8; 20]>::try_from(required(params, key)?).map_err(|_| format!("{key} must be 20 bytes"))
}

/// The announce parameters as an [`AnnounceRequest`], or what is wrong with them.
fn announce_request(params: &[Param]) -> Result<AnnounceRequest, String> {
    let info_hash = InfoHash(id20(params, "info_hash")?);
    let peer_id = PeerId(id20(params, "peer_id")?);
    let port: u16 = number(required(params, "port")?, "port")?;
    // Some clients omit the transfer counters on a first announce; they only inform
    // statistics, so treat them as zero. `left` decides seeder or leecher: required.
    let counter = |key: &str| -> Result<u64, String> {
        param(params, key.as_bytes()).map_or(Ok(0), |v| number(v, key))
    };
    let uploaded = counter("uploaded")?;
    let downloaded = counter("downloaded")?;
    let left = number(required(params, "left")?, "left")?;
    let event = match param(params, b"event") {
        None | Some(b"") | Some(b"empty") => AnnounceEvent::None,
        Some(b"started") => AnnounceEvent::Started,
        Some(b"completed") => AnnounceEvent::Completed,
        Some(b"stopped") => AnnounceEvent::Stopped,
        Some(_) => return Err("invalid event".into()),
    };
    let numwant = match param(params, b"numwant") {
        None => None,
        // A negative numwant is a common way of saying "the default".
        Some(v) => match number::<i64>(v, "numwant")? {
            n if n < 0 => None,
            n => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        },
    };
    // BEP 3 also allows a DNS name here; the core resolves nothing, so anything that is
    // not a literal address is ignored and the source address used instead.
    let ip = param(params, b"ip")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.parse::<IpAddr>().ok());
    let key = match param(params, b"key") {
        None => 0,
        // Clients send the key as hex (libtorrent) or decimal; hash any text into a u32
        // so both compare consistently across announces.
        Some(v) => v.iter().fold(0x811c_9dc5u32, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        }),
    };
    let tracker_id = param(params, b"trackerid").map(|v| String::from_utf8_lossy(v).into_owned());
    // BEP 7: a plain address or `[address]:port`. Read, so the request is whole, but this
    // tracker lists a peer under the address it announced from only (one address a peer).
    let ipv6 = param(params, b"ipv6")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| {
            s.parse::<std::net::Ipv6Addr>()
                .ok()
                .or_else(|| s.parse::<std::net::SocketAddrV6>().ok().map(|a| *a.ip()))
        });
    Ok(AnnounceRequest {
        info_hash,
        peer_id,
        port,
        uploaded,
        downloaded,
        left,
        event,
        numwant,
        key,
        ip,
        ipv6,
        tracker_id,
    })
}

/// The bencoded body of a successful announce.
fn announce_body(reply: &AnnounceReply, compact: bool, no_peer_id: bool) -> Vec<u8> {
    let mut peers4 = Vec::new();
    let mut peers6 = Vec::new();
    let mut dicts = Vec::new();
    // The dictionary form names addresses as text; the compact one needs none (a reply
    // of 50 peers made 50 strings for nothing).
    let texts: Vec<String> = if compact {
        vec![String::new(); reply.peers.len()]
    } else {
        reply
            .peers
            .iter()
            .map(|p| p.addr.ip().to_string())
            .collect()
    };
    for (p, text) in reply.peers.iter().zip(&texts) {
        if compact {
            match p.addr {
                SocketAddr::V4(a) => {
                    peers4.extend_from_slice(&a.ip().octets());
                    peers4.extend_from_slice(&a.port().to_be_bytes());
                }
                SocketAddr::V6(a) => {
                    peers6.extend_from_slice(&a.ip().octets());
                    peers6.extend_from_slice(&a.port().to_be_bytes());
                }
            }
        } else {
            let mut d = vec![
                (&b"ip"[..], Value::Bytes(text.as_bytes())),
                (&b"port"[..], Value::Int(i64::from(p.addr.port()))),
            ];
            if !no_peer_id {
                d.push((&b"peer id"[..], Value::Bytes(&p.peer_id.0[..])));
            }
            dicts.push(Value::Dict(Dict::new(d)));
        }
    }
    let mut entries = vec![
        (&b"complete"[..], Value::Int(i64::from(reply.complete))),
        (&b"incomplete"[..], Value::Int(i64::from(reply.incomplete))),
        (&b"interval"[..], Value::Int(i64::from(reply.interval))),
        (
            &b"min interval"[..],
            Value::Int(i64::from(reply.min_interval)),
        ),
    ];
    if compact {
        entries.push((&b"peers"[..], Value::Bytes(&peers4)));
        if !peers6.is_empty() {
            entries.push((&b"peers6"[..], Value::Bytes(&peers6)));
        }
    } else {
        entries.push((&b"peers"[..], Value::List(List::new(dicts))));
    }
    encode(&Value::Dict(Dict::new(entries)))
}

fn failure_body(why: &str) -> Vec<u8> {
    encode(&Value::Dict(Dict::new(vec![(
        &b"failure reason"[..],
        Value::Bytes(why.as_bytes()),
    )])))
}

/// A `200 OK` carrying a bencoded failure.
fn failure(why: &str) -> Vec<u8> {
    ok_response(&failure_body(why))
}

fn ok_response(body: &[u8]) -> Vec<u8> {
    response(200, "OK", body)
}

fn plain(status: u16, reason: &str, text: &str) -> Vec<u8> {
    response(status, reason, text.as_bytes())
}

fn response(status: u16, reason: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}
