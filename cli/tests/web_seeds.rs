//! Web seeds (BEP 19) with real servers on loopback: nginx (Debian `nginx-light`, started
//! here with a config in a temp dir, no daemon, killed at the end) serving the torrent's
//! files with byte ranges; a tiny HTTP server thread that closes mid-range; libtorrent as a
//! peer (helpers/lt_peer.py). These tests fail, not skip, when a tool is missing: `.ci/run`
//! installs them.
//!
//! Addresses: each test gets its own 127.0.4.n/127.0.5.n (mio/smol) range through
//! `Runtime::ip`-like numbering below, apart from the other test files' ranges.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::process::JsonProcess;
use common::runtime::Runtime;
use common::{assert_same_file, completes, helper, require_libtorrent, run_ok, unchoke};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(120);
const MIB: usize = 1024 * 1024;

/// This file's loopback addresses: 127.0.{4 for mio, 5 for smol}.n.
fn ip(rt: Runtime, n: u8) -> String {
    let subnet = match rt {
        Runtime::Mio => 4,
        Runtime::Smol => 5,
    };
    format!("127.0.{subnet}.{n}")
}

fn random_file(path: &Path, len: usize, seed: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut buf = vec![0u8; len];
    for chunk in buf.chunks_mut(8) {
        let x = rng.u64(..).to_le_bytes();
        chunk.copy_from_slice(&x[..chunk.len()]);
    }
    std::fs::write(path, buf).unwrap();
}

/// `unchoke create` for `target` with `--web-seed` URLs and a piece length.
fn create(target: &Path, out: &Path, piece: &str, web_seeds: &[&str]) {
    create_with(target, out, piece, web_seeds, &[]);
}

/// [`create`] with more options (`--v2`, `--hybrid`).
fn create_with(target: &Path, out: &Path, piece: &str, web_seeds: &[&str], extra: &[&str]) {
    let mut args = vec![
        "create".to_string(),
        target.to_str().unwrap().to_string(),
        "-o".into(),
        out.to_str().unwrap().to_string(),
        "--piece-length".into(),
        piece.into(),
    ];
    for w in web_seeds {
        args.push("--web-seed".into());
        args.push((*w).to_string());
    }
    args.extend(extra.iter().map(|e| (*e).to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&args);
}

/// nginx serving `root` on `ip:port`, with an optional per-connection rate limit (bytes
/// per second); its config, pid file and logs in `dir`. Killed by pid when dropped.
struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    fn start(dir: &Path, root: &Path, ip: &str, limit_rate: Option<usize>) -> Nginx {
        let program = ["/usr/sbin/nginx", "nginx"]
            .into_iter()
            .find(|p| Command::new(p).arg("-v").output().is_ok())
            .expect(
                "this test needs nginx (Debian package nginx-light); install it or run .ci/run",
            );
        std::fs::create_dir_all(dir).unwrap();
        for attempt in 0..3 {
            let port = common::free_port(ip);
            let user = if running_as_root() {
                "user root;\n"
            } else {
                ""
            };
            let limit = limit_rate.map_or(String::new(), |r| format!("limit_rate {r};"));
            let conf = format!(
                "{user}worker_processes 1;\nmaster_process off;\nerror_log {d}/error.log info;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
                 proxy_temp_path {d}/proxy;\n  keepalive_requests 100000;\n  \
                 server {{\n    listen {ip}:{port};\n    root {root};\n    {limit}\n  }}\n}}\n",
                d = dir.display(),
                root = root.display(),
            );
            let path = dir.join(format!("nginx-{attempt}.conf"));
            std::fs::write(&path, conf).unwrap();
            let mut child = Command::new(program)
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&path)
                .arg("-g")
                .arg(format!("daemon off; pid {}/nginx.pid;", dir.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start nginx");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if TcpStream::connect((ip, port)).is_ok() {
                    return Nginx {
                        child,
                        port,
                        dir: dir.to_path_buf(),
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.wait();
        }
        panic!(
            "nginx did not start; its log: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
    }

    fn url(&self, ip: &str, path: &str) -> String {
        format!("http://{ip}:{}/{path}", self.port)
    }

    /// Requests nginx logged with status `code`.
    fn logged(&self, code: u16) -> usize {
        let log = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains(&format!("\" {code} ")))
            .count()
    }
}

/// Whether we run as root (nginx then needs `user root;` to read the temp dirs).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `unchoke download TORRENT -o OUT --runtime RT --listen IP:0 --json --verbose --no-lsd
/// --no-dht EXTRA… --peer P…`.
fn download(rt: Runtime, torrent: &Path, out: &Path, ip: &str, extra: &[&str]) -> JsonProcess {
    let mut cmd = unchoke();
    cmd.args(["download", "--no-lsd", "--no-dht"])
        .arg(torrent)
        .arg("-o")
        .arg(out)
        .args(rt.args())
        .args(["--listen", &format!("{ip}:0"), "--json", "--verbose"])
        .args(extra);
    JsonProcess::spawn(&format!("unchoke download ({rt}) {ip}"), cmd)
}

/// A libtorrent seed of `torrent` from `dir` on `ip`, uploading at most `limit` bytes per
/// second (on loopback it would otherwise finish before a web seed answers once).
fn lt_seed(torrent: &Path, dir: &Path, ip: &str, limit: usize) -> (JsonProcess, String) {
    require_libtorrent();
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(helper("lt_peer.py"))
        .arg("seed")
        .arg(torrent)
        .arg(dir)
        .args(["--listen", ip, "--timeout", "300"])
        .args(["--upload-limit", &limit.to_string()]);
    let mut p = JsonProcess::spawn(&format!("libtorrent seed {ip}"), cmd);
    let addr = p.wait_event("listening", LONG)["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    (p, addr)
}

fn web_bytes(done: &Value) -> u64 {
    done["web_seeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["downloaded"].as_u64().unwrap())
        .sum()
}

/// A single-file torrent whose only source is nginx (its URL names the file).
fn only_source_single_file(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    random_file(&www.join("disk.img"), 6 * MIB + 12_345, 1);
    let ip = ip(rt, 1);
    let nginx = Nginx::start(&dir.path().join("nginx"), &www, &ip, None);
    let torrent = dir.path().join("disk.torrent");
    create(
        &www.join("disk.img"),
        &torrent,
        "256K",
        &[&nginx.url(&ip, "disk.img")],
    );
    let out = dir.path().join("out");
    let mut dl = download(rt, &torrent, &out, &ip, &[]);
    let done = completes(&mut dl);
    assert_same_file(&www.join("disk.img"), &out.join("disk.img"));
    assert_eq!(web_bytes(&done), 6 * MIB as u64 + 12_345, "{done}");
    assert_eq!(done["downloaded_from_peers"], 0);
    assert!(nginx.logged(206) >= 25, "range requests, one per piece");
}

/// A multi-file torrent whose only source is nginx serving the directory above the
/// torrent's top directory (the URL ends with `/`; a file name with a space is escaped).
fn only_source_multi_file(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    let tree = www.join("album");
    random_file(&tree.join("a.bin"), 3 * MIB + 17, 2);
    random_file(&tree.join("disc 2/b.bin"), 2 * MIB + 999, 3);
    random_file(&tree.join("disc 2/c.bin"), 5, 4);
    random_file(&tree.join("notes.txt"), 3000, 5);
    let ip = ip(rt, 2);
    let nginx = Nginx::start(&dir.path().join("nginx"), &www, &ip, None);
    let torrent = dir.path().join("album.torrent");
    create(&tree, &torrent, "64K", &[&nginx.url(&ip, "")]);
    let out = dir.path().join("out");
    let mut dl = download(rt, &torrent, &out, &ip, &[]);
    completes(&mut dl);
    for f in ["a.bin", "disc 2/b.bin", "disc 2/c.bin", "notes.txt"] {
        assert_same_file(&tree.join(f), &out.join("album").join(f));
    }
}

per_runtime!(only_source_single_file, only_source_multi_file);

/// v2-only and hybrid torrents (BEP 52: each file starts a piece, padding between) whose
/// only source is nginx: the padding is never asked of the server, the pieces are checked
/// by their merkle roots (and SHA-1 too for the hybrid), the files come out whole.
#[test]
fn v2_and_hybrid_torrents_come_whole_from_a_web_seed_alone() {
    let rt = Runtime::Mio;
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    let tree = www.join("set");
    random_file(&tree.join("a.bin"), MIB + 17, 12);
    random_file(&tree.join("sub/b.bin"), 300_001, 13);
    random_file(&tree.join("sub/c.bin"), 5, 14);
    std::fs::write(tree.join("empty"), b"").unwrap();
    let ip = ip(rt, 9);
    let nginx = Nginx::start(&dir.path().join("nginx"), &www, &ip, None);
    for kind in ["--v2", "--hybrid"] {
        let torrent = dir.path().join(format!("set{kind}.torrent"));
        create_with(&tree, &torrent, "64K", &[&nginx.url(&ip, "")], &[kind]);
        let out = dir.path().join(format!("out{kind}"));
        let mut dl = download(rt, &torrent, &out, &ip, &[]);
        let done = completes(&mut dl);
        assert_eq!(done["hash_failures"], 0, "{kind}: {done}");
        for f in ["a.bin", "sub/b.bin", "sub/c.bin", "empty"] {
            assert_same_file(&tree.join(f), &out.join("set").join(f));
        }
        assert!(
            !out.join("set/.pad").exists(),
            "{kind}: padding is never written"
        );
    }
    assert_eq!(nginx.logged(404), 0, "no request for a padding file");
}

/// The web seed limited to 512 KiB/s per connection (2 MiB/s with its 4 requests) alone,
/// then beside a libtorrent seed limited to 2 MiB/s: the pair is faster, and the summary
/// says how many bytes came from each.
#[test]
fn web_seed_plus_a_peer_is_faster_than_the_web_seed_alone() {
    let rt = Runtime::Mio;
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    random_file(&www.join("big.bin"), 12 * MIB, 6);
    let ip_n = ip(rt, 3);
    let nginx = Nginx::start(&dir.path().join("nginx"), &www, &ip_n, Some(MIB / 2));
    let torrent = dir.path().join("big.torrent");
    create(
        &www.join("big.bin"),
        &torrent,
        "256K",
        &[&nginx.url(&ip_n, "big.bin")],
    );

    let alone_out = dir.path().join("alone");
    let mut alone = download(rt, &torrent, &alone_out, &ip_n, &[]);
    let alone_done = completes(&mut alone);
    assert_same_file(&www.join("big.bin"), &alone_out.join("big.bin"));
    let alone_secs = alone_done["seconds"].as_f64().unwrap();

    let (_seed, addr) = lt_seed(&torrent, &www, &ip(rt, 4), 2 * MIB);
    let both_out = dir.path().join("both");
    let mut both = download(rt, &torrent, &both_out, &ip(rt, 5), &["--peer", &addr]);
    let both_done = completes(&mut both);
    assert_same_file(&www.join("big.bin"), &both_out.join("big.bin"));
    let both_secs = both_done["seconds"].as_f64().unwrap();
    let web = web_bytes(&both_done);
    let peers = both_done["downloaded_from_peers"].as_u64().unwrap();
    println!(
        "web seed alone: {alone_secs:.2} s; with a peer: {both_secs:.2} s \
         ({web} bytes from the web seed, {peers} from peers)"
    );
    assert!(web > 0 && peers > 0, "both sources sent data: {both_done}");
    assert!(web + peers >= 12 * MIB as u64);
    assert!(
        both_secs < alone_secs,
        "a peer beside the web seed makes it faster: {both_secs} s vs {alone_secs} s"
    );
}

/// nginx serves a copy where one file is corrupted; a libtorrent seed has the right data.
/// The web seed is banned and the download completes with the right bytes.
#[test]
fn a_web_seed_with_a_corrupt_file_is_banned_and_peers_complete() {
    let rt = Runtime::Smol;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    let tree = good.join("set");
    random_file(&tree.join("a.bin"), MIB, 7);
    random_file(&tree.join("b.bin"), 6 * MIB, 8);
    let torrent = dir.path().join("set.torrent");
    let www = dir.path().join("www");
    let ip_n = ip(rt, 6);
    let nginx_dir = dir.path().join("nginx");
    // The port is known once nginx runs: start it on the (still empty) www, then fill it.
    std::fs::create_dir_all(www.join("set")).unwrap();
    let nginx = Nginx::start(&nginx_dir, &www, &ip_n, None);
    create(&tree, &torrent, "64K", &[&nginx.url(&ip_n, "")]);
    std::fs::copy(tree.join("a.bin"), www.join("set/a.bin")).unwrap();
    let mut bad = std::fs::read(tree.join("b.bin")).unwrap();
    for i in (0..bad.len()).step_by(1000) {
        bad[i] ^= 0x5a;
    }
    std::fs::write(www.join("set/b.bin"), bad).unwrap();

    let (_seed, addr) = lt_seed(&torrent, &good, &ip(rt, 7), MIB);
    let out = dir.path().join("out");
    let mut dl = download(rt, &torrent, &out, &ip(rt, 8), &["--peer", &addr]);
    let done = completes(&mut dl);
    assert_same_file(&tree.join("a.bin"), &out.join("set/a.bin"));
    assert_same_file(&tree.join("b.bin"), &out.join("set/b.bin"));
    let banned = dl
        .seen
        .iter()
        .find(|v| v["event"] == "web_seed_banned")
        .unwrap_or_else(|| panic!("the web seed was not banned\n{}", dl.dump()));
    assert_eq!(banned["url"], nginx.url(&ip_n, ""));
    assert_eq!(done["web_seeds"][0]["banned"], true, "{done}");
    assert!(done["hash_failures"].as_u64().unwrap() >= 1);
}

/// nginx lacks one file of the torrent (404); a libtorrent seed has it. The 404 is
/// reported with the file's name, the web seed still serves the other file, and the
/// download completes.
#[test]
fn a_404_is_survived() {
    let rt = Runtime::Mio;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    let tree = good.join("pair");
    random_file(&tree.join("here.bin"), 2 * MIB, 9);
    random_file(&tree.join("gone.bin"), 2 * MIB, 10);
    let www = dir.path().join("www");
    std::fs::create_dir_all(www.join("pair")).unwrap();
    std::fs::copy(tree.join("here.bin"), www.join("pair/here.bin")).unwrap();
    let ip_n = ip(rt, 9);
    let nginx = Nginx::start(&dir.path().join("nginx"), &www, &ip_n, None);
    let torrent = dir.path().join("pair.torrent");
    create(&tree, &torrent, "64K", &[&nginx.url(&ip_n, "")]);
    let (_seed, addr) = lt_seed(&torrent, &good, &ip(rt, 10), 2 * MIB);
    let out = dir.path().join("out");
    let mut dl = download(rt, &torrent, &out, &ip(rt, 11), &["--peer", &addr]);
    let done = completes(&mut dl);
    assert_same_file(&tree.join("here.bin"), &out.join("pair/here.bin"));
    assert_same_file(&tree.join("gone.bin"), &out.join("pair/gone.bin"));
    let failed: Vec<&Value> = dl
        .seen
        .iter()
        .filter(|v| v["event"] == "web_seed_failed")
        .collect();
    assert!(
        failed
            .iter()
            .any(|v| v["reason"] == "HTTP 404" && v["file"] == "gone.bin"),
        "the 404 is named with its file\n{}",
        dl.dump()
    );
    assert!(
        web_bytes(&done) > 0,
        "the web seed served the other file: {done}"
    );
    assert_eq!(done["web_seeds"][0]["banned"], false);
    assert!(nginx.logged(404) >= 1);
}

/// A tiny HTTP/1.1 server serving one file with byte ranges and keep-alive; its first
/// `cut` answers send half the range and close the connection.
fn cutting_server(ip: &str, data: Arc<Vec<u8>>, cut: usize) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let data = data.clone();
            let count = count.clone();
            std::thread::spawn(move || serve(stream, &data, &count, cut));
        }
    });
    (port, served)
}

fn serve(stream: TcpStream, data: &[u8], count: &AtomicUsize, cut: usize) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut range = None;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                let (a, b) = v.split_once('-').unwrap();
                range = Some((a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()));
            }
        }
        let (a, b) = range.unwrap_or((0, data.len() - 1));
        let body = &data[a..=b];
        let head = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\n\
             Content-Range: bytes {a}-{b}/{}\r\nConnection: keep-alive\r\n\r\n",
            body.len(),
            data.len()
        );
        let n = count.fetch_add(1, Ordering::SeqCst);
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        if n < cut {
            let _ = stream.write_all(&body[..body.len() / 2]);
            let _ = stream.flush();
            return; // closed mid-range
        }
        if stream.write_all(body).is_err() {
            return;
        }
    }
}

/// The only source closes its first three answers halfway through the range: each is
/// reported, backed off and retried, and the download completes with the right bytes.
#[test]
fn a_server_closing_mid_range_is_survived() {
    let rt = Runtime::Smol;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    random_file(&src.join("file.bin"), 2 * MIB + 77, 11);
    let data = Arc::new(std::fs::read(src.join("file.bin")).unwrap());
    let ip_n = ip(rt, 12);
    let (port, served) = cutting_server(&ip_n, data, 3);
    let torrent = dir.path().join("file.torrent");
    create(
        &src.join("file.bin"),
        &torrent,
        "256K",
        &[&format!("http://{ip_n}:{port}/file.bin")],
    );
    let out = dir.path().join("out");
    let mut dl = download(rt, &torrent, &out, &ip_n, &[]);
    completes(&mut dl);
    assert_same_file(&src.join("file.bin"), &out.join("file.bin"));
    let cuts = dl
        .seen
        .iter()
        .filter(|v| {
            v["event"] == "web_seed_failed"
                && v["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("the server closed the connection after"))
        })
        .count();
    assert_eq!(cuts, 3, "each cut answer is reported\n{}", dl.dump());
    assert!(
        served.load(Ordering::SeqCst) >= 3 + 9,
        "all 9 pieces served after the cuts"
    );
}

/// An `https://` web seed (nginx behind stunnel with a certificate from a test CA, trusted
/// through `--ca-file`), given on the command line with `--web-seed`.
#[test]
fn an_https_web_seed_given_with_web_seed() {
    let rt = Runtime::Mio;
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    random_file(&www.join("tls.bin"), 3 * MIB + 5, 12);
    let ip_n = "127.0.0.1";
    let nginx = Nginx::start(&dir.path().join("nginx"), &www, ip_n, None);
    let ca = common::tls::TestCa::new("unchoke web seed test CA");
    let ca_file = ca.write_pem(&dir.path().join("ca.pem"));
    let (crt, key) = ca.server_cert(dir.path(), "server", &[], &[common::tls::LOCALHOST]);
    let tunnel = common::tls::Stunnel::start(
        &dir.path().join("stunnel"),
        &crt,
        &key,
        &format!("{ip_n}:{}", nginx.port),
    );
    let torrent = dir.path().join("tls.torrent");
    create(&www.join("tls.bin"), &torrent, "256K", &[]);
    let out = dir.path().join("out");
    let url = format!("https://127.0.0.1:{}/tls.bin", tunnel.port);
    let mut dl = download(
        rt,
        &torrent,
        &out,
        &ip(rt, 13),
        &["--web-seed", &url, "--ca-file", ca_file.to_str().unwrap()],
    );
    let done = completes(&mut dl);
    assert_same_file(&www.join("tls.bin"), &out.join("tls.bin"));
    assert_eq!(web_bytes(&done), 3 * MIB as u64 + 5);
}

/// `--no-web-seeds` leaves the torrent's url-list alone: with no other source the
/// download gives up instead of fetching from nginx.
#[test]
fn no_web_seeds_turns_the_url_list_off() {
    let rt = Runtime::Mio;
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    random_file(&www.join("x.bin"), MIB, 13);
    let ip_n = ip(rt, 14);
    let nginx = Nginx::start(&dir.path().join("nginx"), &www, &ip_n, None);
    let torrent = dir.path().join("x.torrent");
    create(
        &www.join("x.bin"),
        &torrent,
        "64K",
        &[&nginx.url(&ip_n, "x.bin")],
    );
    let out = dir.path().join("out");
    let mut dl = download(rt, &torrent, &out, &ip_n, &["--no-web-seeds"]);
    let status = dl.wait_exit(LONG);
    assert!(!status.success(), "nothing to download from\n{}", dl.dump());
    assert_eq!(nginx.logged(206), 0, "nginx was never asked");
}

/// A magnet link's `ws` web seed: the link names a libtorrent seed (`x.pe`, 1 MiB/s) and
/// nginx (`ws`, 2 MiB/s). The metadata can only come from the peer; once it has, the web
/// seed is asked for pieces too, and both send bytes.
#[test]
fn a_magnet_links_web_seed_serves_pieces_once_a_peer_gave_the_metadata() {
    let rt = Runtime::Smol;
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    random_file(&www.join("m.bin"), 8 * MIB, 12);
    let ip_n = ip(rt, 20);
    let nginx = Nginx::start(&dir.path().join("nginx"), &www, &ip_n, Some(MIB / 2));
    let torrent = dir.path().join("m.torrent");
    create(&www.join("m.bin"), &torrent, "256K", &[]);
    let (_seed, addr) = lt_seed(&torrent, &www, &ip(rt, 21), MIB);
    let metainfo =
        unchoke_core::metainfo::Metainfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
    let mut magnet = unchoke_core::magnet::Magnet::from_metainfo(&metainfo);
    magnet.peers = vec![addr];
    magnet.web_seeds = vec![nginx.url(&ip_n, "m.bin")];
    let out = dir.path().join("out");
    let mut dl = download(rt, Path::new(&magnet.to_uri()), &out, &ip(rt, 22), &[]);
    let done = completes(&mut dl);
    assert_same_file(&www.join("m.bin"), &out.join("m.bin"));
    let web = web_bytes(&done);
    let peers = done["downloaded_from_peers"].as_u64().unwrap();
    assert!(web > 0 && peers > 0, "both sources sent data: {done}");
    assert!(nginx.logged(206) >= 1);
}
