//! `unchoke daemon`'s web UI in a real headless Chromium (Debian `chromium` and
//! `chromium-driver`, driven through `python3-selenium` by `helpers/webui_drive.py`), on
//! loopback only: the page loads and talks to the RPC, shows an RPC error, applies the
//! session's settings (speed limits, a seed queue, a ratio limit), adds a .torrent through its file input, the row reaches 100 % from an
//! `unchoke seed`, the details list the files, the tracker and the peers, a file's priority
//! and the torrent's labels and ratio limit are set through the page, pause, resume, and removal
//! with the data; then the same torrent as a magnet link through the page's form, to 100 %
//! and removed keeping its data; the browser's console holds no error. A screenshot is kept under the
//! build directory (`CARGO_TARGET_TMPDIR/webui/webui.png`, its path printed).
//!
//! The daemon meets the seed as in daemon.rs: both announce to an `unchoke tracker` the
//! torrent names.

#[macro_use]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, album_torrent, post, start_tracker};
use common::runtime::Runtime;
use common::{PYTHON, helper, require_tool, unchoke_seed};

/// How long the tracker may take to start.
const WAIT: Duration = Duration::from_secs(60);
/// The whole browser session's bound (each step inside has its own 60 s); `timeout(1)`
/// sends SIGTERM, on which the script ends the browser, then SIGKILL 10 s later.
const BROWSER_WAIT_SECS: u32 = 240;

#[test]
fn the_web_ui_drives_the_daemon_in_headless_chromium() {
    require_tool("/usr/bin/chromium", &["--version"], "chromium");
    require_tool("/usr/bin/chromedriver", &["--version"], "chromium-driver");
    require_tool(PYTHON, &["-c", "import selenium"], "python3-selenium");
    let started = Instant::now();
    let rt = Runtime::Mio;
    let dir = tempfile::tempdir().expect("tempdir");
    let (_tracker, announce) = start_tracker(rt, &rt.ip(70));
    let (content, torrent, hash) = album_torrent(dir.path(), &announce, 41);
    let (_seed, _) = unchoke_seed(rt, &torrent, &content, &rt.ip(71), &[]);
    let downloads = dir.path().join("downloads");
    let daemon = Daemon::start(rt, &rt.ip(72), &dir.path().join("session"), &downloads);

    // The page needs no session id; a name other than an address or localhost is still
    // refused (DNS rebinding).
    let (status, _, page) = get(&daemon.rpc, "/", &daemon.rpc);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<script src=\"/app.js\""), "{page}");
    assert_eq!(get(&daemon.rpc, "/nope.js", &daemon.rpc).0, 404);
    assert_eq!(get(&daemon.rpc, "/", "evil.example").0, 421);

    // The screenshot outlives the test's temporary directory: it is the artifact.
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("webui");
    std::fs::create_dir_all(&out).expect("artifact directory");
    // Last run's files (chromedriver appends to its log).
    for old in ["webui.png", "webui-failure.png", "chromedriver.log"] {
        let _ = std::fs::remove_file(out.join(old));
    }
    let profile = dir.path().join("chromium-profile");
    std::fs::create_dir_all(&profile).expect("profile directory");
    let browsing = Instant::now();
    let run = Command::new("timeout")
        .args(["--kill-after=10", &BROWSER_WAIT_SECS.to_string(), PYTHON])
        .arg(helper("webui_drive.py"))
        .arg(format!("http://{}/", daemon.rpc))
        .arg(&torrent)
        .arg(&hash)
        .arg("album/sub/two.bin")
        .arg(&profile)
        .arg(&out)
        .arg(format!("magnet:?xt=urn:btih:{hash}&dn=album&tr={announce}"))
        .arg(downloads.join("album"))
        .stdin(Stdio::null())
        .output()
        .expect("run webui_drive.py");
    let took = browsing.elapsed();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let daemon_log = || daemon.stderr.lock().map(|s| s.clone()).unwrap_or_default();
    let report: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "webui_drive.py printed no report ({}):\nstdout: {stdout}\nstderr: {stderr}\ndaemon: {}",
                run.status,
                daemon_log()
            )
        });
    let pretty = serde_json::to_string_pretty(&report).unwrap_or_default();
    if let Some(shot) = report["screenshot"].as_str() {
        eprintln!("web UI screenshot: {shot}");
    }
    assert!(
        report["ok"] == true,
        "the web UI failed at step {}: {}\nreport: {pretty}\nstderr: {stderr}\ndaemon: {}",
        report["step"],
        report["error"],
        daemon_log()
    );
    assert_eq!(
        report["console_errors"],
        serde_json::json!([]),
        "the browser's console has errors: {pretty}"
    );
    assert!(run.status.success(), "{}: {pretty}\n{stderr}", run.status);

    // What the page showed is what the daemon has.
    let files = report["details_files"].as_str().unwrap_or_default();
    for f in ["album/one.bin", "album/sub/two.bin"] {
        assert!(files.contains(f), "details without {f}: {files}");
    }
    assert!(
        report["details_trackers"]
            .as_str()
            .is_some_and(|t| t.contains(&announce)),
        "{pretty}"
    );
    assert!(
        report["error_banner"]
            .as_str()
            .is_some_and(|e| e.contains("magnet")),
        "the bad magnet's error was not shown: {pretty}"
    );
    assert!(
        report["details_peers"]
            .as_str()
            .is_some_and(|p| p.contains("Client")),
        "no peers table: {pretty}"
    );
    assert_eq!(
        report["labels"],
        serde_json::json!(["web", "test"]),
        "{pretty}"
    );
    assert_eq!(report["ratio_shown"], "3.5", "{pretty}");
    assert_eq!(report["ratio_mode_shown"], "of its own:", "{pretty}");
    let shot = out.join("webui.png");
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{} is no PNG", shot.display());

    assert!(
        report["magnet_row_when_complete"]
            .as_str()
            .is_some_and(|r| r.contains("album")),
        "{pretty}"
    );
    let (_, id, _) = post(&daemon.rpc, None, "{}");
    // The limits the page applied are the session's, and the list is empty.
    let (_, _, body) = post(&daemon.rpc, id.as_deref(), r#"{"method":"session-get"}"#);
    let session: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(session["arguments"]["speed-limit-down"], 50000, "{session}");
    assert_eq!(session["arguments"]["speed-limit-down-enabled"], true);
    assert_eq!(session["arguments"]["speed-limit-up"], 40000);
    assert_eq!(session["arguments"]["seed-queue-enabled"], true);
    assert_eq!(session["arguments"]["seed-queue-size"], 7);
    assert_eq!(session["arguments"]["seedRatioLimited"], true);
    assert_eq!(session["arguments"]["seedRatioLimit"], 4.5);
    let (_, _, body) = post(&daemon.rpc, id.as_deref(), r#"{"method":"torrent-get"}"#);
    assert!(body.contains(r#""torrents":[]"#), "{body}");
    // The magnet's data, removed without "delete the data", is there and whole (the
    // first download's went with its removal: the magnet downloaded it again).
    for f in ["album/one.bin", "album/sub/two.bin"] {
        common::assert_same_file(&content.join(f), &downloads.join(f));
    }

    assert_eq!(daemon.stop("TERM").code(), Some(143));
    eprintln!(
        "web UI test took {:?} (the browser session {took:?}: {})",
        started.elapsed(),
        report["steps"]
    );
}

/// A raw HTTP/1.1 GET with the given `Host`; returns the status, headers and body.
fn get(addr: &str, path: &str, host: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
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
    (status, head.to_owned(), body.to_owned())
}
