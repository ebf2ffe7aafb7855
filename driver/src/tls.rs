//! TLS for `https://` trackers: which authorities are trusted ([`TrustRoots`], the
//! `--ca-file` of the command line loaded by [`load_ca_file`]), the one `rustls` client
//! configuration a [`crate::tracker_client::TrackerClient`] builds from them, and the
//! sorting of `rustls`'s errors into the core's [`TlsFailure`], worded for the user.
//!
//! Why here and not in the core: TLS is a state machine over a socket, and the core owns no
//! socket; the HTTP request bytes and the response parsing stay the core's
//! (`unchoke_core::tracker::http`), only their transport is wrapped.
//!
//! Why `rustls` with `ring`: pure Rust plus `ring`'s C and assembly built by `cc`, so a
//! build needs no cmake or nasm (which `aws-lc-rs` would).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, Error as RustlsError, RootCertStore};
use unchoke_core::tracker::TlsFailure;

/// Which certificate authorities an `https://` tracker's certificate must lead to.
#[derive(Clone, Debug, Default)]
pub enum TrustRoots {
    /// The operating system's trust store (`/etc/ssl/certs` on Debian; `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` override it), loaded on the first `https://` announce.
    #[default]
    System,
    /// Only these authorities (`--ca-file`), instead of the system's: a private tracker's
    /// own CA is then trusted, and nothing else is.
    Only(CaCertificates),
}

/// Certificates of trusted authorities read from a PEM file, each already accepted as a
/// trust anchor (so a client built from them cannot fail on them later).
#[derive(Clone)]
pub struct CaCertificates {
    /// The file they came from, to name it in messages.
    path: PathBuf,
    /// The DER certificates, in file order.
    certs: Vec<CertificateDer<'static>>,
}

impl CaCertificates {
    /// The file the certificates were read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many certificates the file held.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Never true for a value from [`load_ca_file`] (an empty file is refused); here for
    /// completeness beside [`CaCertificates::len`].
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

impl fmt::Debug for CaCertificates {
    /// The path and the count: the DER bytes say nothing to a reader.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaCertificates")
            .field("path", &self.path)
            .field("certificates", &self.certs.len())
            .finish()
    }
}

/// Why a `--ca-file` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    /// The file could not be opened or read.
    #[error("cannot read the CA file {}: {source}", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's words.
        source: std::io::Error,
    },
    /// The file holds no `BEGIN CERTIFICATE` block.
    #[error("the CA file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", .path.display())]
    NoCertificates {
        /// The file.
        path: PathBuf,
    },
    /// A PEM block is malformed (bad base64, no end line).
    #[error("the CA file {} is not valid PEM: {message}", .path.display())]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        message: String,
    },
    /// A certificate parses as PEM but not as a usable X.509 trust anchor.
    #[error("the CA file {}: certificate {index} is not usable as an authority: {message}", .path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Its position in the file, from 1.
        index: usize,
        /// What the X.509 parser said.
        message: String,
    },
}

/// Reads a PEM file of one or more CA certificates (other PEM blocks, such as keys, are
/// skipped) and checks each is usable as a trust anchor. Blocking file IO: call it before
/// a client starts, so a bad file is a usage error and not a failing announce later.
pub fn load_ca_file(path: &Path) -> Result<CaCertificates, CaFileError> {
    let bytes = std::fs::read(path).map_err(|source| CaFileError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(&bytes) {
        match item {
            Ok(cert) => certs.push(cert),
            Err(pem::Error::NoItemsFound) => break,
            Err(e) => {
                return Err(CaFileError::BadPem {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                });
            }
        }
    }
    if certs.is_empty() {
        return Err(CaFileError::NoCertificates {
            path: path.to_path_buf(),
        });
    }
    let mut store = RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        store
            .add(cert.clone())
            .map_err(|e| CaFileError::BadCertificate {
                path: path.to_path_buf(),
                index: i + 1,
                message: e.to_string(),
            })?;
    }
    Ok(CaCertificates {
        path: path.to_path_buf(),
        certs,
    })
}

/// The `rustls` client configuration for tracker connections trusting `roots`. Built once
/// per tracker client: loading the system store parses a few hundred certificates.
pub(crate) fn client_config(roots: &TrustRoots) -> Result<Arc<ClientConfig>, TlsFailure> {
    let mut store = RootCertStore::empty();
    match roots {
        TrustRoots::Only(ca) => {
            // Checked by `load_ca_file`; a failure here would be a bug, not user input,
            // but it is still reported rather than trusted blindly.
            let (added, _ignored) = store.add_parsable_certificates(ca.certs.iter().cloned());
            if added == 0 {
                return Err(TlsFailure::NoTrustedRoots(format!(
                    "no usable certificate in {}",
                    ca.path.display()
                )));
            }
        }
        TrustRoots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found.errors.first().map_or_else(
                    || "the system's store is empty".to_string(),
                    |e| e.to_string(),
                );
                return Err(TlsFailure::NoTrustedRoots(format!(
                    "{why} (install the ca-certificates package or give --ca-file)"
                )));
            }
        }
    }
    // rustls 0.23.48 deprecates the `ring` provider for lacking post-quantum key exchange
    // (only `aws-lc-rs` has it). Kept on purpose: `aws-lc-rs` needs cmake and nasm to
    // build, and an announce (an info-hash and byte counts) is not a secret that must
    // outlive a future quantum computer.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFailure::Other(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The trusted authorities' certificates themselves (for web seeds' HTTP client, which
/// builds its own rustls configuration from them): `--ca-file`'s, or the system's.
pub(crate) fn root_certificates(
    roots: &TrustRoots,
) -> Result<Vec<CertificateDer<'static>>, TlsFailure> {
    match roots {
        TrustRoots::Only(ca) => Ok(ca.certs.clone()),
        TrustRoots::System => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let why = found.errors.first().map_or_else(
                    || "the system's store is empty".to_string(),
                    |e| e.to_string(),
                );
                return Err(TlsFailure::NoTrustedRoots(format!(
                    "{why} (install the ca-certificates package or give --ca-file)"
                )));
            }
            Ok(found.certs)
        }
    }
}

/// The name the tracker's certificate must carry: the URL's host, a DNS name or an IP
/// address (IPv6 without brackets, as the core's `HostPort` gives it).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host)
        .map(|n| n.to_owned())
        .map_err(|e| format!("{host:?} cannot be checked against a certificate: {e}"))
}

/// `rustls`'s error, in the user's terms. `host` is the URL's host, named when the
/// certificate is for another.
pub(crate) fn failure(error: &RustlsError, host: &str) -> TlsFailure {
    match error {
        RustlsError::InvalidCertificate(e) => certificate_failure(e, host),
        RustlsError::AlertReceived(alert) => TlsFailure::Alert(format!("{alert:?}")),
        // The first bytes back were not a TLS record: an HTTP server answers our
        // ClientHello with `HTTP/1.x 400`, whose `H` is no TLS content type.
        RustlsError::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
            | rustls::InvalidMessage::UnknownProtocolVersion
            | rustls::InvalidMessage::MessageTooLarge,
        ) => TlsFailure::NotTls,
        RustlsError::NoCertificatesPresented => {
            TlsFailure::BadCertificate("the tracker presented no certificate".into())
        }
        e => TlsFailure::Other(e.to_string()),
    }
}

/// A refused certificate, in the user's terms.
fn certificate_failure(error: &CertificateError, host: &str) -> TlsFailure {
    match error {
        CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
        CertificateError::NotValidForName => TlsFailure::WrongHost {
            host: host.to_string(),
            presented: Vec::new(),
        },
        CertificateError::NotValidForNameContext { presented, .. } => TlsFailure::WrongHost {
            host: host.to_string(),
            presented: presented.clone(),
        },
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => TlsFailure::Expired,
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            TlsFailure::NotYetValid
        }
        CertificateError::Revoked => TlsFailure::Revoked,
        e => TlsFailure::BadCertificate(format!("{e:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_read_in_the_users_terms() {
        let e = RustlsError::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(failure(&e, "t"), TlsFailure::UnknownIssuer);
        let e = RustlsError::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("127.0.0.1")
                .expect("ip name")
                .to_owned(),
            presented: vec!["DnsName(\"other.test\")".into()],
        });
        let text = failure(&e, "127.0.0.1").to_string();
        assert!(
            text.starts_with("the tracker's certificate is for another host (not 127.0.0.1"),
            "{text}"
        );
        let e = RustlsError::InvalidCertificate(CertificateError::Expired);
        assert_eq!(failure(&e, "t"), TlsFailure::Expired);
        let e = RustlsError::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert_eq!(failure(&e, "t"), TlsFailure::NotTls);
    }

    #[test]
    fn ip_literals_and_names_are_server_names() {
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("::1"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("tracker.test"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("bad host").is_err());
    }

    #[test]
    fn ca_files_without_certificates_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.pem");
        let e = load_ca_file(&missing).expect_err("missing");
        assert!(e.to_string().contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "just text\n").expect("write");
        let e = load_ca_file(&empty).expect_err("no certs");
        assert!(matches!(e, CaFileError::NoCertificates { .. }), "{e}");
        assert!(e.to_string().contains("empty.pem"), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = load_ca_file(&junk).expect_err("junk");
        assert!(e.to_string().contains("junk.pem"), "{e}");
    }

    #[test]
    fn a_generated_ca_loads_and_builds_a_config() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).expect("ca");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        // A key block beside the certificate is skipped, not an error.
        std::fs::write(&path, format!("{}{}", key.serialize_pem(), ca.pem())).expect("write");
        let loaded = load_ca_file(&path).expect("load");
        assert_eq!(loaded.len(), 1);
        assert!(client_config(&TrustRoots::Only(loaded)).is_ok());
    }
}
