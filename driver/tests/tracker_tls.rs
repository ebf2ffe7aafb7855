//! `TrackerClient` announcing to `https://` trackers over real sockets on 127.0.0.1: a
//! small in-process TLS server (rustls, certificates made by rcgen for each test) answers
//! one announce, and each way a TLS exchange can fail reads as its own `TlsFailure`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use rcgen::{BasicConstraints, Certificate, CertificateParams, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use unchoke_core::InfoHash;
use unchoke_core::tracker::{AnnounceEvent, AnnounceRequest, TlsFailure, TrackerFailure};
use unchoke_core::wire::PeerId;
use unchoke_driver::tls::{TrustRoots, load_ca_file};
use unchoke_driver::tracker_client::TrackerClient;

const TIMEOUT: Duration = Duration::from_secs(5);
/// A reply listing one peer, 10.1.2.3:6881.
const REPLY: &[u8] = b"d8:intervali1800e5:peers6:\x0a\x01\x02\x03\x1a\xe1e";

fn request() -> AnnounceRequest {
    AnnounceRequest {
        info_hash: InfoHash([0x5a; 20]),
        peer_id: PeerId([7; 20]),
        port: 7001,
        uploaded: 0,
        downloaded: 0,
        left: 10,
        event: AnnounceEvent::Started,
        numwant: Some(50),
        key: 1,
        ip: None,
        ipv6: None,
        tracker_id: None,
    }
}

/// A throwaway certificate authority.
struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("ca cert");
        Ca { cert, key }
    }

    /// Writes the CA certificate as PEM to `dir/NAME` and loads it as the only root.
    fn roots(&self, dir: &Path, name: &str) -> TrustRoots {
        let path = dir.join(name);
        std::fs::write(&path, self.cert.pem()).expect("write ca");
        TrustRoots::Only(load_ca_file(&path).expect("load ca"))
    }

    /// A server certificate for `sans`, signed by this CA; `expired` puts its validity in
    /// the past.
    fn server_cert(&self, sans: Vec<SanType>, expired: bool) -> (Certificate, KeyPair) {
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = sans;
        if expired {
            params.not_before = rcgen::date_time_ymd(2001, 1, 1);
            params.not_after = rcgen::date_time_ymd(2002, 1, 1);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("sign");
        (cert, key)
    }
}

fn localhost_sans() -> Vec<SanType> {
    vec![
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::DnsName("tracker.test".try_into().expect("dns name")),
    ]
}

/// A one-connection TLS server on 127.0.0.1 presenting `cert`: reads the request head,
/// sends it back over the channel, answers `REPLY` and closes (with a close_notify).
/// `None` from the handle when the handshake failed on its side (as it should when the
/// client refuses the certificate).
fn tls_server(
    cert: &Certificate,
    key: &KeyPair,
) -> (SocketAddr, JoinHandle<()>, mpsc::Receiver<Vec<u8>>) {
    #[allow(deprecated)] // rustls' ring provider: see driver/src/tls.rs
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(TIMEOUT));
        let Ok(conn) = rustls::ServerConnection::new(config) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(conn, stream);
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tx.send(got);
        let mut reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            REPLY.len()
        )
        .into_bytes();
        reply.extend_from_slice(REPLY);
        let _ = tls.write_all(&reply);
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    (addr, thread, rx)
}

/// One announce to `https://HOST:PORT/announce` trusting `roots`.
fn announce(roots: TrustRoots, host: &str, port: u16) -> Result<usize, TrackerFailure> {
    let client = TrackerClient::with_roots(None, roots);
    client
        .announce(
            &format!("https://{host}:{port}/announce"),
            &request(),
            TIMEOUT,
        )
        .map(|r| r.peers.len())
}

#[test]
fn announces_through_tls_to_an_ip_literal_with_the_core_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    let (cert, key) = ca.server_cert(localhost_sans(), false);
    let (addr, server, heads) = tls_server(&cert, &key);
    let r = announce(ca.roots(dir.path(), "ca.pem"), "127.0.0.1", addr.port());
    assert_eq!(r, Ok(1));
    let head =
        String::from_utf8(heads.recv_timeout(TIMEOUT).expect("request seen")).expect("utf-8 head");
    assert!(head.starts_with("GET /announce?info_hash="), "{head}");
    assert!(
        head.contains(&format!("\r\nHost: 127.0.0.1:{}\r\n", addr.port())),
        "{head}"
    );
    server.join().expect("server");
}

#[test]
fn a_certificate_from_an_untrusted_authority_is_named_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    let other = Ca::new("another CA");
    let (cert, key) = ca.server_cert(localhost_sans(), false);
    let (addr, server, _heads) = tls_server(&cert, &key);
    let r = announce(
        other.roots(dir.path(), "other.pem"),
        "127.0.0.1",
        addr.port(),
    );
    assert_eq!(r, Err(TrackerFailure::Tls(TlsFailure::UnknownIssuer)));
    let text = r.expect_err("unknown issuer").to_string();
    assert!(
        text.contains("not signed by a trusted authority (give --ca-file"),
        "{text}"
    );
    server.join().expect("server");
}

#[test]
fn a_certificate_for_another_host_is_named_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    let sans = vec![SanType::DnsName("other.test".try_into().expect("dns"))];
    let (cert, key) = ca.server_cert(sans, false);
    let (addr, server, _heads) = tls_server(&cert, &key);
    let r = announce(ca.roots(dir.path(), "ca.pem"), "127.0.0.1", addr.port());
    assert!(
        matches!(&r, Err(TrackerFailure::Tls(TlsFailure::WrongHost { host, .. })) if host == "127.0.0.1"),
        "{r:?}"
    );
    let text = r.expect_err("wrong host").to_string();
    assert!(
        text.contains("the tracker's certificate is for another host (not 127.0.0.1")
            && text.contains("other.test"),
        "{text}"
    );
    server.join().expect("server");
}

#[test]
fn an_expired_certificate_is_named_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    let (cert, key) = ca.server_cert(localhost_sans(), true);
    let (addr, server, _heads) = tls_server(&cert, &key);
    let r = announce(ca.roots(dir.path(), "ca.pem"), "127.0.0.1", addr.port());
    assert_eq!(r, Err(TrackerFailure::Tls(TlsFailure::Expired)));
    server.join().expect("server");
}

#[test]
fn a_plain_http_server_on_the_port_is_not_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // What an HTTP server says to a ClientHello: a 400, then it closes.
    let server = std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.set_read_timeout(Some(TIMEOUT));
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let r = announce(ca.roots(dir.path(), "ca.pem"), "127.0.0.1", port);
    assert_eq!(r, Err(TrackerFailure::Tls(TlsFailure::NotTls)));
    assert!(
        r.expect_err("not tls")
            .to_string()
            .contains("is it a plain http:// tracker on this port?")
    );
    server.join().expect("server");
}

#[test]
fn a_server_closing_during_the_handshake_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("test CA");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.set_read_timeout(Some(TIMEOUT));
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
        }
    });
    let r = announce(ca.roots(dir.path(), "ca.pem"), "127.0.0.1", port);
    assert_eq!(
        r,
        Err(TrackerFailure::Tls(TlsFailure::ClosedDuringHandshake))
    );
    server.join().expect("server");
}
