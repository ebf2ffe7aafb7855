//! `unchoke daemon` as a test process (daemon.rs, daemon_move.rs, daemon_restart.rs,
//! daemon_ops.rs, webui.rs): started on loopback with its RPC address read from its start
//! line, stopped by signal, killed when dropped; raw HTTP requests to its RPC; and what those suites set up
//! around it (an `unchoke tracker`, a two-file torrent announcing to it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::JsonProcess;
use super::runtime::Runtime;
use super::{data, info_json, run_ok, unchoke, write};

/// How long the daemon may take to start, answer or stop.
const WAIT: Duration = Duration::from_secs(60);

/// A running `unchoke daemon`, killed (SIGKILL) and reaped when dropped.
pub struct Daemon {
    /// The process.
    pub child: Child,
    /// The RPC's `HOST:PORT`.
    pub rpc: String,
    /// What it printed on stdout.
    pub stdout: std::sync::Arc<std::sync::Mutex<String>>,
    /// What it printed on stderr, for failure messages.
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Daemon {
    /// `unchoke daemon --rpc IP:0 --listen IP:0 …`; waits for its start line and reads
    /// the RPC's address from it.
    pub fn start(rt: Runtime, ip: &str, session: &Path, downloads: &Path) -> Daemon {
        let mut cmd = unchoke();
        cmd.args(["daemon", "--no-lsd", "--no-dht"])
            .args(rt.args())
            .args(["--rpc", &format!("{ip}:0"), "--listen", &format!("{ip}:0")])
            .arg("--session-dir")
            .arg(session)
            .arg("--download-dir")
            .arg(downloads);
        Daemon::launch(cmd)
    }

    /// Starts `cmd` (an `unchoke daemon …` the caller set up: from a config file, with
    /// credentials); waits for its start line and reads the RPC's address from it. The
    /// address is the one bound, `0.0.0.0:PORT` for a wildcard bind: [`Daemon::rpc`] is
    /// then `127.0.0.1:PORT`, so that the traffic stays on loopback.
    pub fn launch(mut cmd: Command) -> Daemon {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start unchoke daemon");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let printed = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let lines = printed.clone();
        // Drains stdout for the daemon's life: a pipe closed early would fail its later
        // prints.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.lock().expect("lock").push_str(&line);
                lines.lock().expect("lock").push('\n');
                let _ = tx.send(line);
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let line = rx.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!(
                "the daemon printed no start line: {}",
                stderr.lock().expect("lock")
            )
        });
        // "unchoke daemon: RPC on http://IP:PORT/transmission/rpc, peers on …"
        let rpc = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no RPC address in {line:?}"))
            .replace("0.0.0.0:", "127.0.0.1:");
        Daemon {
            child,
            rpc,
            stdout: printed,
            stderr,
        }
    }

    /// Sends a signal (to the process we started) and waits for it to exit.
    pub fn stop(mut self, signal: &str) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{signal}");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit on {signal}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Driving it with the real `transmission-remote` (Debian `transmission-cli` 3.00).
impl Daemon {
    /// `transmission-remote RPC ARGS…`, bounded by `timeout(1)`: whether it succeeded and
    /// what it printed (stdout, then stderr). It exits 0 even when the RPC answered with an
    /// error, which it prints as `Error: …`: that counts as a failure here.
    pub fn try_remote(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("timeout")
            .args(["60", "transmission-remote", &self.rpc])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run transmission-remote");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success() && !text.contains("Error:"), text)
    }

    /// [`Daemon::try_remote`] that must succeed; what it printed.
    pub fn remote(&self, args: &[&str]) -> String {
        let (ok, text) = self.try_remote(args);
        assert!(
            ok,
            "transmission-remote {args:?}: {text}\ndaemon: {}",
            self.stderr.lock().expect("lock")
        );
        text
    }

    /// One RPC call with the session-id handshake done for it; the parsed answer, which
    /// must be a success.
    pub fn call(&self, request: serde_json::Value) -> serde_json::Value {
        let (_, id, _) = post(&self.rpc, None, "{}");
        let id = id.expect("409 carries the session id");
        let (status, _, body) = post(&self.rpc, Some(&id), &request.to_string());
        assert_eq!(status, 200, "{request}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON answer");
        assert_eq!(v["result"], "success", "{request}: {v}");
        v["arguments"].clone()
    }

    /// Polls `transmission-remote -l` until `ok` accepts its output (bounded by [`WAIT`]).
    pub fn list_until(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let list = self.remote(&["-l"]);
            if ok(&list) {
                return list;
            }
            assert!(
                Instant::now() < deadline,
                "never {what}; last list:\n{list}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The row of torrent `id` in a `-l` listing.
pub fn row(list: &str, id: u32) -> Option<&str> {
    list.lines()
        .find(|l| l.split_whitespace().next() == Some(&id.to_string()))
}

/// A raw HTTP/1.1 POST to the RPC; returns the status, the session-id header and the body.
pub fn post(rpc: &str, session_id: Option<&str>, body: &str) -> (u16, Option<String>, String) {
    let headers: Vec<(&str, &str)> = session_id
        .map(|id| ("X-Transmission-Session-Id", id))
        .into_iter()
        .collect();
    let r = request(rpc, "POST", "/transmission/rpc", &headers, body);
    let id = r.header("X-Transmission-Session-Id").map(str::to_owned);
    (r.status, id, r.body)
}

/// An HTTP response as [`request`] read it.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl HttpResponse {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A raw HTTP/1.1 request to `addr` (`Host: addr` unless `headers` name one), one
/// connection, bounded by [`WAIT`].
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).expect("connect to the RPC");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("Host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    write!(
        s,
        "{head}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// An `unchoke tracker` (HTTP) on `ip`: the process and its announce URL. How the daemon
/// meets seeds in these suites: both announce to it, the path a real torrent takes.
pub fn start_tracker(rt: Runtime, ip: &str) -> (JsonProcess, String) {
    let mut cmd = unchoke();
    cmd.args(["tracker", "--json", "--http", &format!("{ip}:0")])
        .args(rt.args());
    let mut tracker = JsonProcess::spawn(&format!("unchoke tracker ({rt})"), cmd);
    let http = tracker.wait_event("listening", WAIT)["http"]
        .as_str()
        .expect("http address")
        .to_owned();
    (tracker, format!("http://{http}/announce"))
}

/// A torrent of two files (2.5 MB and 700,001 bytes, contents from `seed`) in
/// `dir/content/album`, announcing to `tracker`: the content directory, the .torrent and
/// its info-hash.
pub fn album_torrent(dir: &Path, tracker: &str, seed: u64) -> (PathBuf, PathBuf, String) {
    let content = dir.join("content");
    write(&content, "album/one.bin", &data(seed, 2_500_000));
    write(&content, "album/sub/two.bin", &data(seed + 1, 700_001));
    let torrent = dir.join("album.torrent");
    run_ok(&[
        "create",
        content.join("album").to_str().expect("utf-8"),
        "-o",
        torrent.to_str().expect("utf-8"),
        "-t",
        tracker,
    ]);
    let hash = info_json(&torrent)["info_hash"]
        .as_str()
        .expect("info_hash")
        .to_owned();
    (content, torrent, hash)
}
