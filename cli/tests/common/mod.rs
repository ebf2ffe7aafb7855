//! Helpers shared by the CLI integration tests: run the built binary, make test data, find
//! the external tools (mktorrent, libtorrent's Python binding) the interop tests need,
//! run a transfer suite once per `--runtime` (`runtime`), run or query trackers
//! (`tracker`: opentracker, scrapes), and run `unchoke daemon` (`daemon`).
#![allow(dead_code, unreachable_pub)] // each test crate uses a different subset

pub mod daemon;
pub mod process;
#[macro_use]
pub mod runtime;
pub mod tls;
pub mod tracker;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `unchoke` binary cargo built for these tests, with no DHT router: a test that
/// listens on a wildcard address would otherwise join the public DHT (resolving its
/// routers' names off the machine). The test of the default routers removes it, inside a
/// namespace of its own (sealed.rs).
pub fn unchoke() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_unchoke"));
    cmd.env("UNCHOKE_DHT_ROUTERS", "none");
    // Credentials only where a test gives them.
    cmd.env_remove("UNCHOKE_RPC_AUTH");
    cmd
}

/// Runs `unchoke ARGS...` and returns its output.
pub fn run(args: &[&str]) -> Output {
    unchoke().args(args).output().expect("run unchoke")
}

/// Runs `unchoke ARGS...`, asserting success; returns stdout.
pub fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "unchoke {args:?} failed: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// `len` pseudo-random bytes (a fixed xorshift stream per seed): incompressible, and
/// different per file so a piece hashed from the wrong file would not match.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Writes `bytes` at `root/rel`, creating parent directories.
pub fn write(root: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, bytes).expect("write");
    path
}

/// A directory tree whose file boundaries fall inside pieces of any power-of-two length,
/// with an empty file, a hidden file and nested directories.
pub fn make_tree(root: &Path) {
    write(root, "a.bin", &data(1, 100_000));
    write(root, "sub/b.bin", &data(2, 70_001));
    write(root, "sub/deeper/c.bin", &data(3, 5));
    write(root, "sub/empty", &[]);
    write(root, ".hidden", &data(4, 40_000));
    write(root, "z.bin", &data(5, 33_333));
}

/// Parses `unchoke info --json FILE`.
pub fn info_json(torrent: &Path) -> serde_json::Value {
    let out = run_ok(&["info", "--json", torrent.to_str().expect("utf-8 path")]);
    serde_json::from_str(&out).expect("info --json prints JSON")
}

/// Panics with a clear message when an external tool the test needs is missing (CI
/// installs them; a silently skipped interop test would prove nothing).
pub fn require_tool(program: &str, probe: &[&str], package: &str) {
    let ok = Command::new(program)
        .args(probe)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs `{program}` (Debian package {package}); install it or run .ci/run"
    );
}

/// The Python interpreter that has libtorrent (the Debian package's, not a venv's).
pub const PYTHON: &str = "/usr/bin/python3";

/// Path of a script in `tests/helpers/` (`lt_peer.py`, `tr_peer.py`, `lt_check.py`).
pub fn helper(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/helpers")
        .join(name)
}

/// Path of the libtorrent check script.
pub fn lt_check_script() -> PathBuf {
    helper("lt_check.py")
}

/// A v1 torrent of `target` written to `out` by mktorrent (pieces of 2^log2_piece, no
/// tracker).
pub fn mktorrent(target: &Path, out: &Path, log2_piece: u32) {
    require_tool("mktorrent", &["-h"], "mktorrent");
    let st = Command::new("mktorrent")
        .args(["-l", &log2_piece.to_string(), "-o"])
        .arg(out)
        .arg(target)
        .output()
        .expect("run mktorrent");
    assert!(
        st.status.success(),
        "mktorrent failed: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}

/// `unchoke download SOURCE -o OUT --runtime RT --listen IP:0 --json --verbose EXTRA…`
/// (SOURCE: a .torrent path or a magnet link).
pub fn unchoke_download(
    rt: runtime::Runtime,
    source: impl AsRef<std::ffi::OsStr>,
    out: &Path,
    ip: &str,
    extra: &[&str],
) -> process::JsonProcess {
    let mut cmd = unchoke();
    cmd.args(["download", "--no-lsd"])
        .arg(source)
        .arg("-o")
        .arg(out)
        .args(rt.args())
        .args(["--listen", &format!("{ip}:0"), "--json", "--verbose"])
        .args(extra);
    process::JsonProcess::spawn(&format!("unchoke download ({rt}) {ip}"), cmd)
}

/// A v2-only (`kind` "v2") or hybrid ("hybrid") torrent of `content` written to `out` by
/// libtorrent (`tests/helpers/lt_make_v2.py`), and libtorrent's hashes of it: (v1 hex or
/// None, v2 hex).
pub fn lt_make_v2(
    kind: &str,
    content: &Path,
    out: &Path,
    piece_length: u32,
) -> (Option<String>, String) {
    let o = Command::new(PYTHON)
        .arg(helper("lt_make_v2.py"))
        .arg(kind)
        .arg(content)
        .arg(out)
        .arg(piece_length.to_string())
        .output()
        .expect("run lt_make_v2.py");
    assert!(
        o.status.success(),
        "lt_make_v2.py failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("lt_make_v2.py prints JSON");
    (
        v["v1"].as_str().map(str::to_owned),
        v["v2"].as_str().expect("a v2 hash").to_owned(),
    )
}

/// The content the BitTorrent v2 suites share: a tree (`root/multi`) with an empty file,
/// odd sizes, a file of several pieces and a nested directory, and a single file
/// (`root/single.bin`) of several pieces with a short tail. Returns both paths. In 64 KiB
/// pieces `sub/three` spans 3 pieces: its piece layer is padded with the root of an
/// all-zero piece (height 2), so libtorrent's `pieces root` checks that padding rule too.
pub fn v2_content(root: &Path) -> (PathBuf, PathBuf) {
    let multi = root.join("multi");
    write(&multi, "a.bin", &data(1, 100_000));
    write(&multi, "empty", &[]);
    write(&multi, "sub/odd", &data(2, 16_385));
    write(&multi, "sub/three", &data(6, 150_000));
    write(&multi, "sub/tiny", &data(3, 7));
    write(&multi, "z.bin", &data(4, 70_001));
    let single = write(root, "single.bin", &data(5, 123_457));
    (multi, single)
}

/// Panics with a clear message unless Debian's libtorrent binding is importable.
pub fn require_libtorrent() {
    require_tool(PYTHON, &["-c", "import libtorrent"], "python3-libtorrent");
}

/// Asserts the two files hold the same bytes.
pub fn assert_same_file(a: &Path, b: &Path) {
    let x = std::fs::read(a).unwrap_or_else(|e| panic!("{}: {e}", a.display()));
    let y = std::fs::read(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

/// Asserts `p` (an unchoke `--verbose --json` process) dialled `addr`.
pub fn assert_dialled(p: &process::JsonProcess, addr: &str) {
    assert!(
        p.seen.iter().any(|v| v["event"] == "peer_connected"
            && v["addr"] == addr
            && v["detail"] == "outbound"),
        "never connected to {addr}\n{}",
        p.dump()
    );
}

/// Sum of a per-peer counter over the peers at `ip` in lt_peer.py's "peers" event.
pub fn from_ip(peers: &serde_json::Value, ip: &str, key: &str) -> u64 {
    peers["peers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|p| p["ip"] == ip)
                .map(|p| p[key].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

/// How long the transfer suites wait for a process to reach a state.
pub const TRANSFER_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// `unchoke seed TORRENT DIR --runtime RT --listen IP:0 --json --verbose EXTRA…`, waited
/// for until it listens; returns it and its address.
pub fn unchoke_seed(
    rt: runtime::Runtime,
    torrent: &Path,
    dir: &Path,
    ip: &str,
    extra: &[&str],
) -> (process::JsonProcess, String) {
    let mut cmd = unchoke();
    cmd.args(["seed", "--no-lsd"])
        .arg(torrent)
        .arg(dir)
        .args(rt.args())
        .args(["--listen", &format!("{ip}:0"), "--json", "--verbose"])
        .args(extra);
    let mut p = process::JsonProcess::spawn(&format!("unchoke seed ({rt}) {ip}"), cmd);
    let addr = p.wait_event("listening", TRANSFER_WAIT)["addr"]
        .as_str()
        .expect("listening address")
        .to_owned();
    (p, addr)
}

/// Waits for a successful exit with every piece verified; returns the "complete" line.
pub fn completes(p: &mut process::JsonProcess) -> serde_json::Value {
    let done = p.wait_event("complete", TRANSFER_WAIT);
    assert!(p.wait_exit(TRANSFER_WAIT).success(), "{}", p.dump());
    assert_eq!(done["pieces_have"], done["piece_count"], "{done}");
    done
}

/// Runs `unchoke ARGS...` in `dir` and returns its output, killing it (and panicking) if it
/// has not exited within `timeout`: for commands expected to fail at once, so that one
/// which starts working instead cannot hang the suite.
pub fn run_bounded(args: &[&str], dir: &Path, timeout: std::time::Duration) -> Output {
    use std::io::Read;
    let mut child = unchoke()
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run unchoke");
    let readers = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .map(|pipe| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unchoke {args:?} still running after {timeout:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let [stdout, stderr] = readers.map(|r| r.join().expect("pipe reader"));
    Output {
        status,
        stdout,
        stderr,
    }
}

/// A port nobody listens on right now at `ip` (for tools that need one given).
pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .expect("bind a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// `lt_peer.py MODE TORRENT SAVE --listen IP --encryption POLICY --enc-level LEVEL ARGS…`
/// (libtorrent's protocol encryption settings: `forced`, `enabled` or `disabled`; `rc4`,
/// `plaintext` or `both`), with a 120 s time-out.
pub fn lt_peer_with_encryption(
    mode: &str,
    torrent: &Path,
    save: &Path,
    ip: &str,
    (policy, level): (&str, &str),
    args: &[&str],
) -> process::JsonProcess {
    require_libtorrent();
    let mut cmd = Command::new(PYTHON);
    cmd.arg(helper("lt_peer.py"))
        .arg(mode)
        .arg(torrent)
        .arg(save)
        .args(["--listen", ip, "--timeout", "120", "--encryption", policy])
        .args(["--enc-level", level])
        .args(args);
    process::JsonProcess::spawn(&format!("libtorrent {mode} {ip} ({policy}, {level})"), cmd)
}

/// `unchoke create FILE -o TORRENT --no-date -q`: a v1 torrent of `file`, made by us.
pub fn create_torrent(file: &Path, torrent: &Path) {
    run_ok(&[
        "create",
        file.to_str().expect("a UTF-8 path"),
        "-o",
        torrent.to_str().expect("a UTF-8 path"),
        "--no-date",
        "-q",
    ]);
}

/// The `unshare` arguments that make a network namespace of a test's own (only `lo`, to be
/// brought up inside): `--net` as root, else `--user --map-root-user --net`. Fails (does
/// not skip) where neither works, naming why.
pub fn seal() -> Vec<&'static str> {
    for args in [vec!["--net"], vec!["--user", "--map-root-user", "--net"]] {
        let ok = Command::new("unshare")
            .args(&args)
            .arg("true")
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return args;
        }
    }
    panic!(
        "cannot make a network namespace (`unshare --net` needs root, or user namespaces \
         for `unshare --user --map-root-user --net`)"
    );
}
