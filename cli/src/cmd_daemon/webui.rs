//! The web UI: three static files served at `/`, embedded in the binary, that talk to the
//! same `/transmission/rpc` as every other client, so the UI adds no server logic beyond
//! handing out these files.
//!
//! The session id: the files' responses carry the `X-Transmission-Session-Id` header, and
//! the page reads it with a `HEAD /` before its first RPC call. Without it that first call
//! would be the 409 handshake, which a browser logs as a console error ("Failed to load
//! resource: 409") on every page load. It protects as the 409 does: a page of another
//! origin cannot read a response header of ours (no CORS), and a rebinding name fails the
//! `Host` check before anything is answered. The page still does the 409 handshake when
//! the id changes (a restarted daemon).
//!
//! Built with hand-written HTML, CSS and vanilla JavaScript, no framework and no build
//! step: nothing to install or keep updated, no toolchain in the build, no dependency to
//! audit, and a page of a few tens of kB that loads instantly and fetches nothing from
//! outside the daemon (the Content-Security-Policy below makes the browser enforce that).

use tiny_http::{Header, Method, Response};

/// One embedded file.
struct Asset {
    /// Its path on the server.
    path: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// Its bytes.
    body: &'static str,
}

/// Every file of the UI. `/` is the page; the others are what it loads.
const ASSETS: [Asset; 3] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("webui/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("webui/app.js"),
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("webui/style.css"),
    },
];

/// The page's policy: only this origin's script, style and RPC; images only inline (the
/// page's icon is an empty `data:` one, so the browser asks for no /favicon.ico); no
/// framing by other pages (clickjacking a "remove and delete data" button).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src data:; form-action 'none'; \
                   base-uri 'none'; frame-ancestors 'none'";

/// Answers a request for anything but the RPC: a UI file, or 404 (405 for a method other
/// than GET or HEAD on a UI file). The caller has checked the `Host` header; no session id
/// is needed, as these files hold no data.
pub(crate) fn respond(
    method: &Method,
    path: &str,
    session_id: &str,
) -> Response<std::io::Cursor<Vec<u8>>> {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return Response::from_data(
            b"Not found: the web UI is at /, the RPC at /transmission/rpc".to_vec(),
        )
        .with_status_code(404);
    };
    if *method != Method::Get && *method != Method::Head {
        return Response::from_data(b"Method not allowed".to_vec()).with_status_code(405);
    }
    let mut r = Response::from_data(asset.body.as_bytes().to_vec());
    for (name, value) in [
        ("Content-Type", asset.content_type),
        // The files change with the binary; a browser must not keep an old app.js.
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy", CSP),
        ("Referrer-Policy", "no-referrer"),
        (super::http::SESSION_HEADER, session_id),
    ] {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            r.add_header(h);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(r: &Response<std::io::Cursor<Vec<u8>>>, name: &str) -> Option<String> {
        r.headers()
            .iter()
            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str().to_owned())
    }

    #[test]
    fn the_page_and_its_assets_are_served_with_their_types() {
        let r = respond(&Method::Get, "/", "ID");
        assert_eq!(r.status_code().0, 200);
        assert_eq!(
            header(&r, "X-Transmission-Session-Id").as_deref(),
            Some("ID")
        );
        assert_eq!(
            header(&r, "Content-Type").as_deref(),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(header(&r, "Cache-Control").as_deref(), Some("no-store"));
        assert!(header(&r, "Content-Security-Policy").is_some());
        assert!(
            ASSETS[0].body.contains("<script src=\"/app.js\""),
            "the page loads app.js"
        );
        for (path, ty) in [("/app.js", "text/javascript"), ("/style.css", "text/css")] {
            let r = respond(&Method::Get, path, "ID");
            assert_eq!(r.status_code().0, 200, "{path}");
            assert!(
                header(&r, "Content-Type").is_some_and(|t| t.starts_with(ty)),
                "{path}"
            );
        }
        assert_eq!(respond(&Method::Head, "/", "ID").status_code().0, 200);
    }

    #[test]
    fn anything_else_is_not_found() {
        for path in ["/nope.js", "/favicon.ico", "/app.js/", "/../Cargo.toml", ""] {
            assert_eq!(
                respond(&Method::Get, path, "ID").status_code().0,
                404,
                "{path}"
            );
        }
        assert_eq!(respond(&Method::Post, "/", "ID").status_code().0, 405);
        assert_eq!(
            respond(&Method::Delete, "/app.js", "ID").status_code().0,
            405
        );
    }

    #[test]
    fn the_page_fetches_nothing_from_elsewhere() {
        for a in &ASSETS {
            for needle in ["http://", "https://", "//cdn", "@import"] {
                assert!(!a.body.contains(needle), "{} holds {needle}", a.path);
            }
        }
    }
}
