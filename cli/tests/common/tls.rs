//! TLS for the CLI's HTTPS tracker tests: throwaway certificate authorities and server
//! certificates made in the test (rcgen, no openssl CLI), and stunnel (Debian's `stunnel4`)
//! terminating TLS in front of a plain-HTTP tracker, as a child process killed on drop.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, SanType};

/// How long stunnel gets to start listening.
const START_WAIT: Duration = Duration::from_secs(10);

/// A throwaway certificate authority.
pub struct TestCa {
    cert: Certificate,
    key: KeyPair,
}

impl TestCa {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa { cert, key }
    }

    /// Writes the CA's certificate (PEM) to `path`, for `--ca-file`.
    pub fn write_pem(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.cert.pem()).expect("write the CA certificate");
        path.to_path_buf()
    }

    /// A server certificate signed by this CA for `dns` names and `ips`, written to
    /// `dir/NAME.crt` and its key to `dir/NAME.key`; returns both paths.
    pub fn server_cert(
        &self,
        dir: &Path,
        name: &str,
        dns: &[&str],
        ips: &[IpAddr],
    ) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = dns
            .iter()
            .map(|d| SanType::DnsName((*d).try_into().expect("DNS name")))
            .chain(ips.iter().map(|ip| SanType::IpAddress(*ip)))
            .collect();
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign the server certificate");
        let crt = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&crt, cert.pem()).expect("write certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (crt, key_path)
    }
}

/// `127.0.0.1`, the address the test certificates are issued for.
pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// stunnel accepting TLS on `127.0.0.1:port` and forwarding the plaintext to a backend,
/// killed (by its child handle) when dropped.
pub struct Stunnel {
    child: Child,
    /// The TLS port on 127.0.0.1.
    pub port: u16,
}

/// `stunnel4` or `stunnel`, whichever is installed; panics naming the package otherwise.
fn stunnel_program() -> &'static str {
    for program in ["stunnel4", "stunnel"] {
        // `-version` prints and exits non-zero on some builds: only whether it runs counts.
        if Command::new(program)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
        {
            return program;
        }
    }
    panic!("this test needs `stunnel4` (Debian package stunnel4); install it or run .ci/run")
}

impl Stunnel {
    /// Starts stunnel in the foreground with `cert`/`key`, accepting on 127.0.0.1 (a port
    /// it is told after probing one free) and connecting to `backend` (`ip:port`); waits
    /// until the port accepts connections. Its config and log go to `dir`.
    pub fn start(dir: &Path, cert: &Path, key: &Path, backend: &str) -> Stunnel {
        let program = stunnel_program();
        std::fs::create_dir_all(dir).expect("stunnel dir");
        let mut failures = Vec::new();
        // Another process may take the probed port first: try a few.
        for attempt in 0..3 {
            let port = {
                let probe = TcpListener::bind((LOCALHOST, 0)).expect("probe a port");
                probe.local_addr().expect("addr").port()
            };
            let conf = dir.join(format!("stunnel-{attempt}.conf"));
            // `pid =` empty: no pid file (we hold the child); `foreground = yes`: it stays
            // our child, and its log goes to stderr.
            let text = format!(
                "foreground = yes\npid =\ndebug = 5\n\n[tracker]\naccept = 127.0.0.1:{port}\n\
                 connect = {backend}\ncert = {}\nkey = {}\n",
                cert.display(),
                key.display()
            );
            std::fs::write(&conf, text).expect("write stunnel config");
            let mut child = Command::new(program)
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start stunnel");
            match wait_listening(&mut child, port) {
                Ok(()) => return Stunnel { child, port },
                Err(why) => {
                    let _ = child.kill();
                    let said = child
                        .wait_with_output()
                        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                        .unwrap_or_default();
                    failures.push(format!("port {port}: {why}; it said: {said}"));
                }
            }
        }
        panic!("stunnel did not start:\n{}", failures.join("\n"))
    }

    /// `https://127.0.0.1:PORT/announce`.
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}/announce", self.port)
    }

    /// What stunnel logged so far is in its stderr pipe; read only after it is killed.
    pub fn stop_and_log(mut self) -> String {
        let _ = self.child.kill();
        let mut log = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut log);
        }
        let _ = self.child.wait();
        log
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until 127.0.0.1:`port` accepts a TCP connection (stunnel listens), or stunnel
/// exits, or `START_WAIT` passes.
fn wait_listening(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_WAIT;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("exited with {status}"));
        }
        if TcpStream::connect_timeout(&(LOCALHOST, port).into(), Duration::from_secs(1)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("not listening after {START_WAIT:?}"))
}
