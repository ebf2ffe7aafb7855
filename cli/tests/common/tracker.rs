//! Trackers for the CLI's tracker tests: Debian's opentracker as a child process, and the
//! client side of a scrape (a raw HTTP/1.0 GET and a bencode decode), so a test can ask
//! any tracker which peers it has registered.
//!
//! opentracker as packaged by Debian runs in whitelist mode only: it serves the
//! info-hashes listed in its whitelist file (40 hex digits a line) and answers any other
//! with "not authorized". Its `-w FILE` is resolved inside its `-d DIR`: started as root it
//! chroots to DIR and drops to user `nobody` (`-u root` is refused: "Still running with
//! root privileges"), started as any other user the chroot fails quietly and it reads
//! DIR/FILE all the same. So the whitelist goes into DIR, readable by everyone, and no
//! `-u` is passed: both cases then work.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use unchoke_core::bencode;

use super::process::JsonProcess;
use super::{PYTHON, helper, info_json, require_libtorrent, require_tool};

/// How long opentracker gets to bind and load its whitelist.
const START_WAIT: Duration = Duration::from_secs(10);
/// Socket time-outs of one HTTP exchange with a tracker.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a seed's start and on its announce being accepted.
const SEED_WAIT: Duration = Duration::from_secs(90);

/// A v1 torrent of `target` by mktorrent (256 KiB pieces), announcing to `announce` if
/// given; returns its v1 info-hash (hex) as `unchoke info` reads it.
pub fn mktorrent(target: &Path, out: &Path, announce: Option<&str>) -> String {
    require_tool("mktorrent", &["-h"], "mktorrent");
    let mut cmd = Command::new("mktorrent");
    cmd.args(["-l", "18", "-o"]).arg(out);
    if let Some(url) = announce {
        cmd.args(["-a", url]);
    }
    let st = cmd.arg(target).output().expect("run mktorrent");
    assert!(
        st.status.success(),
        "mktorrent failed: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    info_json(out)["info_hash"]
        .as_str()
        .expect("info --json has info_hash")
        .to_owned()
}

/// A libtorrent seed of `torrent` (data in `dir`) on `ip`, reporting its tracker
/// announces; waited for until it listens. Returns it and its `ip:port`.
pub fn lt_seed(torrent: &Path, dir: &Path, ip: &str) -> (JsonProcess, String) {
    lt_seed_with(torrent, dir, ip, &[])
}

/// [`lt_seed`] with more lt_peer.py options (e.g. `--upload-limit`).
pub fn lt_seed_with(torrent: &Path, dir: &Path, ip: &str, extra: &[&str]) -> (JsonProcess, String) {
    require_libtorrent();
    let mut cmd = Command::new(PYTHON);
    cmd.arg(helper("lt_peer.py"))
        .arg("seed")
        .arg(torrent)
        .arg(dir)
        .args(["--listen", ip, "--tracker-events", "--timeout", "300"])
        .args(extra);
    let mut p = JsonProcess::spawn(&format!("libtorrent seed {ip}"), cmd);
    let addr = p.wait_event("listening", SEED_WAIT)["addr"]
        .as_str()
        .expect("listening addr")
        .to_owned();
    (p, addr)
}

/// Waits until `p` (lt_peer.py or tr_peer.py with --tracker-events) reports an accepted
/// announce to `url` listing at least `min_peers` peers; returns that line.
pub fn announced(p: &mut JsonProcess, url: &str, min_peers: u64) -> serde_json::Value {
    wait_matching(p, "tracker_reply", SEED_WAIT, |v| {
        v["url"] == url && v["peers"].as_u64().unwrap_or(0) >= min_peers
    })
}

/// A port that is free right now for both TCP and UDP on `ip` (opentracker serves HTTP
/// and UDP on one port number). Another process may take it before ours binds it: callers
/// that can, retry.
pub fn free_tcp_udp_port(ip: &str) -> u16 {
    for _ in 0..50 {
        let tcp = TcpListener::bind((ip, 0)).expect("bind a TCP port to probe");
        let port = tcp.local_addr().expect("local addr").port();
        if UdpSocket::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP on {ip} after 50 tries")
}

/// `bytes` percent-encoded for a URL query (unreserved characters kept as they are).
pub fn url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The 20 bytes of a 40-hex-digit info-hash.
pub fn info_hash_bytes(hex: &str) -> Vec<u8> {
    assert_eq!(hex.len(), 40, "not a v1 info-hash: {hex}");
    (0..20)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex info-hash"))
        .collect()
}

/// `GET path_and_query` over HTTP/1.0 to `addr` (bounded by socket time-outs): the status
/// code and the body.
pub fn http_get(addr: &str, path_and_query: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let sock: SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
    let mut stream = TcpStream::connect_timeout(&sock, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    write!(
        stream,
        "GET {path_and_query} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of HTTP headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no HTTP status code"))?;
    Ok((status, raw[split + 4..].to_vec()))
}

/// What a tracker's scrape says about one torrent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scrape {
    /// Peers registered with the whole torrent (seeders).
    pub complete: i64,
    /// Peers registered that still download (leechers).
    pub incomplete: i64,
    /// `completed` announces counted.
    pub downloaded: i64,
}

/// `GET /scrape?info_hash=…` from the HTTP tracker at `addr` (`ip:port`): the torrent's
/// counts, or an error message (unreachable, not bencode, failure reason, torrent absent).
pub fn scrape(addr: &str, info_hash_hex: &str) -> Result<Scrape, String> {
    let hash = info_hash_bytes(info_hash_hex);
    let path = format!("/scrape?info_hash={}", url_encode(&hash));
    let (status, body) = http_get(addr, &path).map_err(|e| format!("GET {path}: {e}"))?;
    let text = String::from_utf8_lossy(&body).into_owned();
    if status != 200 {
        return Err(format!("GET {path}: HTTP {status}: {text}"));
    }
    let value = bencode::decode(&body).map_err(|e| format!("scrape reply {text:?}: {e}"))?;
    let root = value
        .as_dict()
        .ok_or_else(|| format!("scrape reply is not a dictionary: {text:?}"))?;
    if let Some(reason) = root.get(b"failure reason").and_then(|v| v.as_str()) {
        return Err(format!("scrape refused: {reason}"));
    }
    let entry = root
        .get(b"files")
        .and_then(|f| f.as_dict())
        .and_then(|f| f.get(&hash))
        .and_then(|e| e.as_dict())
        .ok_or_else(|| format!("scrape reply has no entry for {info_hash_hex}: {text:?}"))?;
    let int = |key: &[u8]| entry.get(key).and_then(|v| v.as_int()).unwrap_or(-1);
    Ok(Scrape {
        complete: int(b"complete"),
        incomplete: int(b"incomplete"),
        downloaded: int(b"downloaded"),
    })
}

/// Scrapes until `done` holds (at most `timeout`); panics with the last answer otherwise.
pub fn wait_scrape(
    addr: &str,
    info_hash_hex: &str,
    timeout: Duration,
    done: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = Instant::now() + timeout;
    loop {
        let last = scrape(addr, info_hash_hex);
        if let Ok(s) = &last {
            if done(s) {
                return *s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the tracker at {addr} never reported what was expected within {timeout:?}; \
             last scrape: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits (at most `timeout`) for a line with this `"event"` for which `want` holds,
/// looking first at the lines the process already printed (a test that waited for another
/// event may have read past it). Panics with the process's output otherwise.
pub fn wait_matching(
    p: &mut JsonProcess,
    event: &str,
    timeout: Duration,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    if let Some(v) = p.seen.iter().find(|v| v["event"] == event && want(v)) {
        return v.clone();
    }
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no matching {event:?} within {timeout:?}\n{}",
            p.dump()
        );
        let v = p.wait_event(event, left);
        if want(&v) {
            return v;
        }
    }
}

/// opentracker serving HTTP and UDP on `ip:port`, killed (by its pid) when dropped.
pub struct OpenTracker {
    child: Child,
    /// `ip:port` of both its HTTP and its UDP socket.
    pub addr: String,
}

impl OpenTracker {
    /// Starts `opentracker -i IP -p PORT -P PORT -d DIR -w whitelist.txt` with the given
    /// v1 info-hashes (hex) whitelisted, and waits until it answers an HTTP announce for
    /// the first of them (so its whitelist is loaded). `dir` must be an absolute path
    /// (it may become opentracker's root).
    pub fn start(ip: &str, dir: &Path, info_hashes: &[&str]) -> OpenTracker {
        require_tool("opentracker", &["-h"], "opentracker");
        assert!(dir.is_absolute(), "{} is not absolute", dir.display());
        assert!(!info_hashes.is_empty(), "whitelist at least one info-hash");
        std::fs::create_dir_all(dir).expect("opentracker dir");
        let mut list = String::new();
        for h in info_hashes {
            assert_eq!(h.len(), 40, "not a v1 info-hash: {h}");
            list.push_str(&h.to_ascii_lowercase());
            list.push('\n');
        }
        std::fs::write(dir.join("whitelist.txt"), list).expect("write the whitelist");
        // Another process may take the probed port first: try a few.
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = free_tcp_udp_port(ip);
            let mut child = Command::new("opentracker")
                .args(["-i", ip, "-p", &port.to_string(), "-P", &port.to_string()])
                .arg("-d")
                .arg(dir)
                .args(["-w", "whitelist.txt"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start opentracker");
            let addr = format!("{ip}:{port}");
            match wait_ready(&mut child, &addr, info_hashes[0]) {
                Ok(()) => return OpenTracker { child, addr },
                Err(why) => {
                    let _ = child.kill();
                    let out = child.wait_with_output().ok();
                    let said = out
                        .map(|o| {
                            format!(
                                "{}{}",
                                String::from_utf8_lossy(&o.stdout),
                                String::from_utf8_lossy(&o.stderr)
                            )
                        })
                        .unwrap_or_default();
                    failures.push(format!("{addr}: {why}; it said: {said}"));
                }
            }
        }
        panic!("opentracker did not start:\n{}", failures.join("\n"))
    }

    /// `http://ip:port/announce`.
    pub fn http_url(&self) -> String {
        format!("http://{}/announce", self.addr)
    }

    /// `udp://ip:port`.
    pub fn udp_url(&self) -> String {
        format!("udp://{}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for OpenTracker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until opentracker answers a `stopped` announce for `info_hash_hex` (registers
/// nobody) with a normal reply, not a failure: then it listens and has read its whitelist.
fn wait_ready(child: &mut Child, addr: &str, info_hash_hex: &str) -> Result<(), String> {
    let path = format!(
        "/announce?info_hash={}&peer_id=-TT0000-readinessprb&port=1&uploaded=0&downloaded=0\
         &left=0&event=stopped&numwant=0&compact=1",
        url_encode(&info_hash_bytes(info_hash_hex))
    );
    let deadline = Instant::now() + START_WAIT;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("exited with {status}"));
        }
        match http_get(addr, &path) {
            Ok((200, body)) if body.starts_with(b"d") && !contains(&body, b"failure reason") => {
                return Ok(());
            }
            Ok((status, body)) => {
                last = format!("HTTP {status}: {}", String::from_utf8_lossy(&body));
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("not ready after {START_WAIT:?}: {last}"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
