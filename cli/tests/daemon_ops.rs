//! `unchoke daemon`'s operator features, each against real processes on loopback: basic
//! authentication (raw requests and the real `transmission-remote -n`), the refusal of a
//! non-loopback `--rpc` without credentials and a wildcard bind with them, `--config FILE`
//! with a flag over it and a typo in it, the watch folder (a file written in two steps, an
//! invalid one, a duplicate, a symlink that must not be followed), and `torrent-add` of a
//! URL served by a Python `http.server` (one that answers 404, a refused connection, and a
//! redirect).

#[macro_use]
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use common::daemon::{Daemon, album_torrent, request};
use common::{PYTHON, unchoke};

/// How long a step may take (the watch folder is looked at every 2 s, and a file is taken
/// at the second look that finds it unchanged).
const WAIT: Duration = Duration::from_secs(30);

/// A tracker nobody listens on: the torrents here need no peers.
const NO_TRACKER: &str = "http://127.0.0.1:9/announce";

/// `Basic base64(user:password)`.
fn basic(user_password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

/// One RPC call with the session-id handshake and, if given, an `Authorization` value;
/// returns the response's JSON.
fn call(d: &Daemon, auth: Option<&str>, body: &Value) -> Value {
    let body = body.to_string();
    let mut headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    let first = request(&d.rpc, "POST", "/transmission/rpc", &headers, &body);
    assert_eq!(first.status, 409, "{first:?}");
    let id = first
        .header("X-Transmission-Session-Id")
        .expect("a session id")
        .to_owned();
    headers.push(("X-Transmission-Session-Id", &id));
    let r = request(&d.rpc, "POST", "/transmission/rpc", &headers, &body);
    assert_eq!(r.status, 200, "{r:?}");
    serde_json::from_str(&r.body).expect("JSON")
}

/// `torrent-get` of every torrent's id, hash, name and status.
fn torrents(d: &Daemon) -> Vec<Value> {
    let r = call(
        d,
        None,
        &json!({"method": "torrent-get", "arguments": {"fields": ["id", "hashString", "name", "status"]}}),
    );
    assert_eq!(r["result"], "success", "{r}");
    r["arguments"]["torrents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits (bounded by [`WAIT`]) until `ok`, panicking with `what` and the daemon's stderr.
fn wait_until(d: &Daemon, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "never {what}; daemon stderr:\n{}",
            d.stderr.lock().expect("lock")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `unchoke daemon` on loopback with a fresh session and download directory under `dir`,
/// and `extra` arguments.
fn daemon_cmd(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = unchoke();
    cmd.args(["daemon", "--no-lsd", "--no-dht", "--listen", "127.0.0.1:0"])
        .arg("--session-dir")
        .arg(dir.join("session"))
        .arg("--download-dir")
        .arg(dir.join("downloads"))
        .args(extra);
    cmd
}

/// `transmission-remote RPC ARGS…`, bounded by `timeout(1)`.
fn remote(rpc: &str, args: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .args(["30", "transmission-remote", rpc])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run transmission-remote")
}

#[test]
fn basic_auth_guards_the_rpc_the_web_ui_and_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Daemon::launch(daemon_cmd(
        dir.path(),
        &["--rpc", "127.0.0.1:0", "--rpc-auth", "alice:s3cr:et"],
    ));
    let right = basic("alice:s3cr:et");
    let body = json!({"method": "session-get"}).to_string();

    // No credentials, wrong ones, another user: 401 with the challenge, on every path, and
    // before the session-id handshake (no session id is handed out).
    for auth in [
        None,
        Some(basic("alice:s3cr:eT")),
        Some(basic("bob:s3cr:et")),
        Some("Basic !!".into()),
    ] {
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        for (method, path) in [
            ("POST", "/transmission/rpc"),
            ("GET", "/"),
            ("GET", "/metrics"),
        ] {
            let r = request(&d.rpc, method, path, &headers, &body);
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}: {r:?}");
            assert_eq!(
                r.header("WWW-Authenticate")
                    .map(|v| v.starts_with("Basic realm=\"unchoke\"")),
                Some(true),
                "{r:?}"
            );
            assert!(r.header("X-Transmission-Session-Id").is_none(), "{r:?}");
        }
    }

    // The right ones: the handshake, then the answer; the web UI and /metrics too.
    let r = call(&d, Some(&right), &json!({"method": "session-get"}));
    assert_eq!(r["result"], "success", "{r}");
    let ok: Vec<(&str, &str)> = vec![("Authorization", &right)];
    assert_eq!(request(&d.rpc, "GET", "/", &ok, "").status, 200);
    assert_eq!(request(&d.rpc, "GET", "/metrics", &ok, "").status, 200);

    // The real client: with -n it works, without it is refused.
    common::require_tool("transmission-remote", &["--version"], "transmission-cli");
    let with = remote(&d.rpc, &["-n", "alice:s3cr:et", "-l"]);
    assert!(
        with.status.success() && String::from_utf8_lossy(&with.stdout).contains("Sum:"),
        "transmission-remote -n: {with:?}"
    );
    let without = remote(&d.rpc, &["-l"]);
    assert!(
        !without.status.success() || !String::from_utf8_lossy(&without.stdout).contains("Sum:"),
        "transmission-remote without -n got through: {without:?}"
    );
    let said = String::from_utf8_lossy(&without.stderr).to_string()
        + &String::from_utf8_lossy(&without.stdout);
    assert!(said.contains("401"), "transmission-remote said: {said}");
}

#[test]
fn a_non_loopback_rpc_needs_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Refused, with the reason, before anything starts.
    let out = daemon_cmd(dir.path(), &["--rpc", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .expect("run the daemon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("needs credentials"), "{stderr}");

    // With credentials from the environment (not the command line), it binds every
    // address; reached here on loopback only.
    let mut cmd = daemon_cmd(dir.path(), &["--rpc", "0.0.0.0:0"]);
    cmd.env("UNCHOKE_RPC_AUTH", "carol:pw");
    let d = Daemon::launch(cmd);
    assert!(d.rpc.starts_with("127.0.0.1:"), "{}", d.rpc);
    let r = call(
        &d,
        Some(&basic("carol:pw")),
        &json!({"method": "session-get"}),
    );
    assert_eq!(r["result"], "success", "{r}");
    let no = request(&d.rpc, "POST", "/transmission/rpc", &[], "{}");
    assert_eq!(no.status, 401, "{no:?}");
    // The Host check still holds: an IP address passes, a DNS name (a rebinding page's)
    // does not.
    let auth = basic("carol:pw");
    let by_ip = request(
        &d.rpc,
        "GET",
        "/",
        &[("Authorization", &auth), ("Host", "192.0.2.7:9091")],
        "",
    );
    assert_eq!(by_ip.status, 200, "{by_ip:?}");
    let by_name = request(
        &d.rpc,
        "GET",
        "/",
        &[("Authorization", &auth), ("Host", "rebind.example:9091")],
        "",
    );
    assert_eq!(by_name.status, 421, "{by_name:?}");
    wait_until(&d, "warned that the password goes in clear", || {
        d.stderr.lock().expect("lock").contains("in clear")
    });
}

#[test]
fn a_config_file_is_honoured_a_flag_overrides_it_and_a_typo_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical");
    std::fs::create_dir_all(root.join("watch")).expect("mkdir");
    let config = root.join("daemon.toml");
    // Relative paths are the file's directory's.
    std::fs::write(
        &config,
        "# unchoke daemon\nsession-dir = \"session\"\ndownload-dir = \"from-file\"\n\
         rpc = \"127.0.0.1:0\"\nlisten = \"127.0.0.1:0\"\nwatch-dir = \"watch\"\n\
         dht = false\nlsd = false\nrpc-username = \"dave\"\nrpc-password = \"pw\"\n",
    )
    .expect("write the config");
    let download_dir = |d: &Daemon| {
        let r = call(
            d,
            Some(&basic("dave:pw")),
            &json!({"method": "session-get"}),
        );
        r["arguments"]["download-dir"].as_str().map(PathBuf::from)
    };

    let mut cmd = unchoke();
    cmd.arg("daemon").arg("--config").arg(&config);
    let d = Daemon::launch(cmd);
    assert_eq!(download_dir(&d), Some(root.join("from-file")));
    wait_until(&d, "said it watches the folder", || {
        let printed = d.stdout.lock().expect("lock");
        printed.contains(&format!("watching {}", root.join("watch").display()))
    });
    drop(d);

    // A flag wins over the file.
    let mut cmd = unchoke();
    cmd.arg("daemon")
        .arg("--config")
        .arg(&config)
        .arg("--download-dir")
        .arg(root.join("from-flag"));
    let d = Daemon::launch(cmd);
    assert_eq!(download_dir(&d), Some(root.join("from-flag")));
    drop(d);

    // A typo: a usage error naming the file, the line and the key.
    std::fs::write(
        &config,
        "rpc = \"127.0.0.1:0\"\n\nwatch-folder = \"watch\"\n",
    )
    .expect("write");
    let out = unchoke()
        .arg("daemon")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .expect("run the daemon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for part in [config.to_str().expect("utf-8"), "line 3", "watch-folder"] {
        assert!(stderr.contains(part), "{part:?} not in {stderr}");
    }
    // A missing file is an error too.
    let out = unchoke()
        .arg("daemon")
        .arg("--config")
        .arg(root.join("nowhere.toml"))
        .stdin(Stdio::null())
        .output()
        .expect("run the daemon");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn the_watch_folder_adds_what_appears_and_renames_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let watch = root.join("watch");
    std::fs::create_dir_all(&watch).expect("mkdir");
    let (_, torrent, hash) = album_torrent(&root.join("one"), NO_TRACKER, 11);
    let (_, outside, outside_hash) = album_torrent(&root.join("two"), NO_TRACKER, 21);
    let d = Daemon::launch(daemon_cmd(
        root,
        &[
            "--rpc",
            "127.0.0.1:0",
            "--watch-dir",
            watch.to_str().expect("utf-8"),
        ],
    ));

    // Written in two steps, a second apart: the half-written file must not be taken
    // (the folder is looked at every 2 s; a file is taken once two looks agree).
    let bytes = std::fs::read(&torrent).expect("read");
    let dropped = watch.join("album.torrent");
    let (head, tail) = bytes.split_at(bytes.len() / 2);
    std::fs::write(&dropped, head).expect("write");
    std::thread::sleep(Duration::from_secs(1));
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&dropped)
            .expect("open");
        f.write_all(tail).expect("write");
    }
    // Beside it: not a torrent, and a symlink to a torrent outside the folder.
    std::fs::write(watch.join("junk.torrent"), b"this is no torrent").expect("write");
    std::os::unix::fs::symlink(&outside, watch.join("link.torrent")).expect("symlink");

    wait_until(&d, "renamed the torrent .added", || {
        watch.join("album.torrent.added").is_file() && !dropped.exists()
    });
    let list = torrents(&d);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["hashString"], hash.as_str());
    assert_ne!(list[0]["status"], 0, "added stopped: {list:?}");
    assert_eq!(
        std::fs::read(watch.join("album.torrent.added")).expect("read"),
        bytes
    );
    wait_until(&d, "renamed the junk .invalid", || {
        watch.join("junk.torrent.invalid").is_file()
    });
    assert!(
        d.stderr.lock().expect("lock").contains("junk.torrent"),
        "no line about the invalid file"
    );

    // The same torrent again: already loaded, renamed all the same, never over the first
    // `.added`.
    std::fs::write(watch.join("album.torrent"), &bytes).expect("write");
    wait_until(&d, "renamed the duplicate", || {
        watch.join("album.torrent.2.added").is_file()
    });
    assert!(d.stderr.lock().expect("lock").contains("already loaded"));
    assert_eq!(torrents(&d).len(), 1);

    // The symlink was never followed nor touched, its target neither.
    let link = std::fs::symlink_metadata(watch.join("link.torrent")).expect("the link stays");
    assert!(link.file_type().is_symlink());
    assert!(outside.is_file());
    assert!(
        torrents(&d)
            .iter()
            .all(|t| t["hashString"] != outside_hash.as_str())
    );
}

/// `python3 -m http.server` on 127.0.0.1, a free port, serving `dir`; killed (by its
/// pid, as we started it) and reaped when dropped.
struct FileServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    base: String,
}

impl FileServer {
    fn start(dir: &Path) -> FileServer {
        let mut child = Command::new(PYTHON)
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 -m http.server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // "Serving HTTP on 127.0.0.1 port 45678 (http://127.0.0.1:45678/) ..."
        let line = rx.recv_timeout(WAIT).expect("http.server's start line");
        let port = line
            .split(" port ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("no port in {line:?}"))
            .to_owned();
        FileServer {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn torrent_add_fetches_a_url_and_reports_a_404() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let served = root.join("served");
    std::fs::create_dir_all(&served).expect("mkdir");
    let (_, torrent, hash) = album_torrent(&root.join("one"), NO_TRACKER, 31);
    std::fs::copy(&torrent, served.join("album.torrent")).expect("copy");
    let web = FileServer::start(&served);
    let d = Daemon::launch(daemon_cmd(root, &["--rpc", "127.0.0.1:0"]));

    let add = |url: &str| {
        call(
            &d,
            None,
            &json!({"method": "torrent-add", "arguments": {"filename": url}}),
        )
    };
    let r = add(&format!("{}/album.torrent", web.base));
    assert_eq!(r["result"], "success", "{r}");
    assert_eq!(r["arguments"]["torrent-added"]["hashString"], hash.as_str());
    assert_eq!(torrents(&d).len(), 1);

    let missing = format!("{}/nothing.torrent", web.base);
    let r = add(&missing);
    let result = r["result"].as_str().unwrap_or_default();
    assert!(
        result.contains(&format!("could not fetch {missing}")) && result.contains("404"),
        "{r}"
    );
    // Nobody listens on port 9: refused, said so, and the daemon answers on.
    let r = add("http://127.0.0.1:9/x.torrent");
    assert!(
        r["result"]
            .as_str()
            .is_some_and(|s| s.starts_with("could not fetch")),
        "{r}"
    );
    assert_eq!(torrents(&d).len(), 1);

    // A redirect is followed: http.server answers `/moved` (a directory) with a 301 to
    // `/moved/`, whose index.html is here a second .torrent file.
    let (_, second, second_hash) = album_torrent(&root.join("two"), NO_TRACKER, 41);
    std::fs::create_dir_all(served.join("moved")).expect("mkdir");
    std::fs::copy(&second, served.join("moved/index.html")).expect("copy");
    let r = add(&format!("{}/moved", web.base));
    assert_eq!(r["result"], "success", "{r}");
    assert_eq!(
        r["arguments"]["torrent-added"]["hashString"],
        second_hash.as_str()
    );
    assert_eq!(torrents(&d).len(), 2);
}
