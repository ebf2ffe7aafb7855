//! The RPC's HTTP side: `POST /transmission/rpc` on the `--rpc` address, with basic
//! authentication when credentials are set ([`super::auth`]), Transmission's
//! `X-Transmission-Session-Id` handshake, a bounded body and a `Host` check; the JSON itself is [`super::rpc`]'s. Every other path is the web UI's
//! ([`super::webui`]), behind the same `Host` check.
//!
//! Built on `tiny_http`: a small, long-maintained synchronous HTTP/1.1 server with no async
//! runtime to bring in (the daemon already runs its own event loop in the driver) and no
//! TLS or framework we would not use. Requests are answered one at a time on the daemon's
//! thread, so the engine needs no lock; every answer is quick (a round trip to the
//! session's loop), except adding a large torrent, which checks existing data first.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tiny_http::{Header, Request, Response, Server};

use super::auth::Credentials;
use super::rpc::{self, Engine};

/// The RPC's path, as Transmission's clients expect it.
pub(crate) const RPC_PATH: &str = "/transmission/rpc";
/// The CSRF header's name.
pub(crate) const SESSION_HEADER: &str = "X-Transmission-Session-Id";
/// The largest request body taken: a `torrent-add` carries a whole .torrent file in
/// base64, and few are over a few MiB.
pub(crate) const MAX_BODY: u64 = 16 << 20;
/// How often the serving loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);

/// The RPC server.
pub(crate) struct RpcServer {
    server: Server,
    /// The token a client must send back (a fresh random one per daemon run).
    session_id: String,
    /// The user every request must authenticate as, if any.
    auth: Option<Credentials>,
}

impl RpcServer {
    /// Binds `addr`; with `auth`, every request must carry its user and password.
    pub(crate) fn bind(addr: SocketAddr, auth: Option<Credentials>) -> Result<RpcServer, String> {
        let server =
            Server::http(addr).map_err(|e| format!("cannot serve the RPC on {addr}: {e}"))?;
        Ok(RpcServer {
            server,
            session_id: new_session_id(),
            auth,
        })
    }

    /// The bound address (the port chosen when 0 was asked for).
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.server.server_addr().to_ip()
    }

    /// Answers requests until `stop` is raised; `between` runs after each request and
    /// whenever the server was idle for a while (the daemon's housekeeping).
    pub(crate) fn serve<E: Engine>(
        &self,
        engine: &mut E,
        stop: &Arc<AtomicBool>,
        mut between: impl FnMut(&mut E),
    ) {
        while !stop.load(Ordering::SeqCst) {
            match self.server.recv_timeout(POLL) {
                Ok(Some(request)) => self.answer(engine, request),
                Ok(None) => {}
                // The listener failed (it does not on its own): stop rather than spin.
                Err(_) => break,
            }
            between(engine);
        }
    }

    /// One request.
    fn answer(&self, engine: &mut dyn Engine, mut request: Request) {
        let response = self.respond(engine, &mut request);
        // A client that went away is nothing to report.
        let _ = request.respond(response);
    }

    fn respond(
        &self,
        engine: &mut dyn Engine,
        request: &mut Request,
    ) -> Response<std::io::Cursor<Vec<u8>>> {
        // Authentication first, as Transmission: before the `Host` check and the session
        // id, so that nothing, not even the session id, is told to a stranger.
        if let Some(auth) = &self.auth {
            if !auth.admit(header(request, "Authorization")) {
                let mut r = text(401, "<h1>401: Unauthorized</h1>");
                if let Ok(h) =
                    Header::from_bytes(&b"WWW-Authenticate"[..], Credentials::challenge())
                {
                    r.add_header(h);
                }
                return r;
            }
        }
        // DNS rebinding: a web page in a browser on this machine can reach a loopback port
        // under a name it controls; the browser then sends that name as `Host`. Only
        // addresses and `localhost` are ours. On a non-loopback address (which needs
        // credentials) the same rule holds: clients name the daemon by IP address; a DNS
        // name there is what a rebinding page would send.
        if let Some(host) = header(request, "Host") {
            if !host_is_local(host) {
                return text(421, "Misdirected request: use an IP address or localhost");
            }
        }
        let path = request.url().split('?').next().unwrap_or("");
        if path == "/metrics" {
            // For a scraper next to the daemon: no session id (scrapers do no CSRF
            // handshake), reachable only where the RPC is and past the authentication and
            // `Host` checks above, like the web UI's files.
            if *request.method() != tiny_http::Method::Get {
                return text(405, "Method not allowed: GET /metrics");
            }
            return match rpc::metrics(engine) {
                Ok(body) => {
                    let mut r = Response::from_data(body.into_bytes());
                    if let Ok(h) = Header::from_bytes(
                        &b"Content-Type"[..],
                        &b"text/plain; version=0.0.4; charset=utf-8"[..],
                    ) {
                        r.add_header(h);
                    }
                    r
                }
                Err(e) => text(503, &format!("metrics unavailable: {e}")),
            };
        }
        if path != RPC_PATH && path != "/transmission/rpc/" {
            // The web UI's static files (or 404): no session id, they hold no data.
            return super::webui::respond(request.method(), path, &self.session_id);
        }
        if header(request, SESSION_HEADER) != Some(self.session_id.as_str()) {
            // Transmission's CSRF handshake: the client repeats the request with this id.
            let mut r = text(
                409,
                &format!(
                    "<h1>409: Conflict</h1><p>Your request had an invalid session-id header.</p>\
                     <p><code>{SESSION_HEADER}: {}</code></p>",
                    self.session_id
                ),
            );
            if let Ok(h) = Header::from_bytes(SESSION_HEADER.as_bytes(), self.session_id.as_bytes())
            {
                r.add_header(h);
            }
            return r;
        }
        if *request.method() != tiny_http::Method::Post {
            return text(405, "Method not allowed: POST a JSON request");
        }
        if request.body_length().is_some_and(|n| n as u64 > MAX_BODY) {
            return text(413, "Request too large");
        }
        let mut body = Vec::new();
        // Bounded whatever the headers said (a chunked body has no length up front).
        if request
            .as_reader()
            .take(MAX_BODY + 1)
            .read_to_end(&mut body)
            .is_err()
        {
            return text(400, "Bad request: the body could not be read");
        }
        if body.len() as u64 > MAX_BODY {
            return text(413, "Request too large");
        }
        let answer = rpc::handle(engine, &body);
        let mut r = Response::from_data(answer.to_string().into_bytes());
        if let Ok(h) = Header::from_bytes(
            &b"Content-Type"[..],
            &b"application/json; charset=UTF-8"[..],
        ) {
            r.add_header(h);
        }
        r
    }
}

/// The value of the first header named `name`.
fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Whether a `Host` header names this machine by address or as `localhost`.
fn host_is_local(host: &str) -> bool {
    // Strip the port: `[::1]:9091`, `127.0.0.1:9091`, `localhost:9091`.
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// A plain text (or HTML) response with a status.
fn text(status: u16, body: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_data(body.as_bytes().to_vec()).with_status_code(status)
}

/// 48 random characters from the OS's generator, Transmission's length.
fn new_session_id() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 48];
    // /dev/urandom is there on every system the daemon runs on; should it not be, the
    // fallback is fastrand's generator, seeded from the OS's randomness and the time.
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if from_os.is_err() {
        fastrand::fill(&mut bytes);
    }
    bytes
        .iter()
        .map(|b| char::from(CHARS[usize::from(*b) % CHARS.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_by_address_or_localhost_are_ours() {
        for ok in [
            "127.0.0.1:9091",
            "localhost:9091",
            "[::1]:9091",
            "localhost",
            "127.0.0.1",
        ] {
            assert!(host_is_local(ok), "{ok}");
        }
        for bad in [
            "evil.example:9091",
            "evil.example",
            "localhost.evil.example:80",
        ] {
            assert!(!host_is_local(bad), "{bad}");
        }
    }

    #[test]
    fn session_ids_are_long_and_fresh() {
        let a = new_session_id();
        assert_eq!(a.len(), 48);
        assert_ne!(a, new_session_id());
    }
}
