//! The exit status and the first line on stderr of every usage error (what clap rejects and
//! what each command checks itself: exit 2) and of every failure a user meets before any
//! work starts (exit 1), for every command; the `--help` promises (examples, the exit
//! status table); `completions` and `man`; and the listen-port fallback.
//!
//! Every case here fails before a runtime starts, so none opens a socket and none needs
//! `--runtime`; each run is bounded (`run_bounded`) in case one starts working instead.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::path::Path;
use std::time::Duration;

use common::process::JsonProcess;
use common::{data, run_bounded, run_ok, unchoke, write};

/// Longest a failing command may take.
const FAIL_FAST: Duration = Duration::from_secs(30);

/// The test files: `f.bin` and its torrent `f.torrent`, a non-torrent `x.bin`, a directory
/// `d`, and an existing file `afile`.
fn fixture(dir: &Path) {
    write(dir, "f.bin", &data(1, 100_000));
    run_ok(&[
        "create",
        dir.join("f.bin").to_str().unwrap(),
        "-o",
        dir.join("f.torrent").to_str().unwrap(),
        "-q",
        "--no-date",
    ]);
    write(dir, "x.bin", b"hello, not a torrent");
    write(dir, "d/inner.bin", &data(2, 10));
    write(dir, "afile", b"a file");
}

/// One case: the arguments (run in the fixture directory), the exit status, and a text
/// the first line of stderr must contain.
struct Case {
    args: &'static [&'static str],
    code: i32,
    first_line: &'static str,
}

const fn case(args: &'static [&'static str], code: i32, first_line: &'static str) -> Case {
    Case {
        args,
        code,
        first_line,
    }
}

/// Usage errors: exit 2. clap's start `error: `; a command's own checks `unchoke: `.
const USAGE: &[Case] = &[
    // No command: the help, on stderr.
    case(&[], 2, "unchoke: a BitTorrent engine"),
    case(&["frobnicate"], 2, "error: unrecognized subcommand"),
    // info
    case(&["info"], 2, "error: the following required arguments"),
    case(&["info", "a", "b"], 2, "error: unexpected argument"),
    // create
    case(
        &["create", "f.bin"],
        2,
        "error: the following required arguments",
    ),
    case(
        &[
            "create",
            "f.bin",
            "-o",
            "o.torrent",
            "--piece-length",
            "1000",
        ],
        2,
        "a piece length must be a power of two",
    ),
    case(
        &[
            "create",
            "f.bin",
            "-o",
            "o.torrent",
            "--piece-length",
            "lots",
        ],
        2,
        "error: invalid value 'lots'",
    ),
    case(
        &["create", "f.bin", "-o", "o.torrent", "-n", "a/b"],
        2,
        "name \"a/b\"",
    ),
    // download
    case(&["download"], 2, "error: the following required arguments"),
    case(
        &["download", "f.torrent", "--peer", "no-port-here"],
        2,
        "unchoke: --peer no-port-here:",
    ),
    case(
        &[
            "download",
            "f.torrent",
            "--tracker",
            "wss://t.example/announce",
        ],
        2,
        "unchoke: --tracker wss://t.example/announce: wss:// trackers are not supported",
    ),
    case(
        &["download", "f.torrent", "--tracker", "https://"],
        2,
        "unchoke: --tracker https://: the URL names no host",
    ),
    case(
        &["download", "f.torrent", "--ca-file", "nope.pem"],
        2,
        "unchoke: --ca-file: cannot read the CA file nope.pem",
    ),
    case(
        &["download", "f.torrent", "--ca-file", "x.bin"],
        2,
        "unchoke: --ca-file: the CA file x.bin holds no PEM certificate",
    ),
    case(
        &["download", "f.torrent", "--tracker", "ftp://t.example"],
        2,
        "unchoke: --tracker ftp://t.example: ftp:// trackers are not supported",
    ),
    case(
        &["download", "f.torrent", "--tracker", "t.example:80"],
        2,
        "unchoke: --tracker t.example:80: not a URL",
    ),
    case(
        &["download", "f.torrent", "--tracker", "udp://"],
        2,
        "unchoke: --tracker udp://: the URL names no host",
    ),
    case(
        &["download", "f.torrent", "--dht-bootstrap", "nowhere"],
        2,
        "unchoke: --dht-bootstrap nowhere:",
    ),
    case(
        &["download", "f.torrent", "--listen", "here"],
        2,
        "error: invalid value 'here' for '--listen",
    ),
    case(
        &["download", "f.torrent", "--peer-retries", "0"],
        2,
        "error: invalid value '0' for '--peer-retries",
    ),
    // A usage error wins over a failure found later (the torrent is not one).
    case(
        &["download", "x.bin", "--peer", "no-port-here"],
        2,
        "unchoke: --peer no-port-here:",
    ),
    // seed
    case(
        &["seed", "f.torrent"],
        2,
        "error: the following required arguments",
    ),
    case(
        &["seed", "f.torrent", "d", "--peer", "1.2.3.4"],
        2,
        "unchoke: --peer 1.2.3.4:",
    ),
    case(
        &["seed", "f.torrent", "d", "--tracker", "wss://t.example/a"],
        2,
        "wss:// trackers are not supported",
    ),
    case(
        &["seed", "f.torrent", "d", "--ca-file", "afile"],
        2,
        "unchoke: --ca-file: the CA file afile holds no PEM certificate",
    ),
    case(
        &["seed", "f.torrent", "d", "--json", "--quiet"],
        2,
        "error: the argument '--json' cannot be used with '--quiet'",
    ),
    // tracker
    case(
        &["tracker", "--interval", "1"],
        2,
        "error: invalid value '1' for '--interval",
    ),
    case(
        &["tracker", "--http", "nowhere"],
        2,
        "error: invalid value 'nowhere' for '--http",
    ),
    // dht
    case(
        &["dht", "--bootstrap", "nowhere"],
        2,
        "unchoke: --bootstrap nowhere:",
    ),
    case(
        &["dht", "--report-every", "0"],
        2,
        "error: invalid value '0' for '--report-every",
    ),
    // swarm
    case(
        &["swarm", "--piece-length", "1000"],
        2,
        "a piece length must be a power of two",
    ),
    case(
        &["swarm", "--size", "0"],
        2,
        "error: invalid value '0' for '--size",
    ),
    case(
        &["swarm", "--leechers", "0"],
        2,
        "error: invalid value '0' for '--leechers",
    ),
    // simulate
    case(
        &["simulate", "--peers", "5..5"],
        2,
        "the range 5..5 is empty",
    ),
    case(
        &["simulate", "--piece-length", "1000"],
        2,
        "a piece length must be a power of two",
    ),
    // completions, man
    case(&["completions", "tcsh"], 2, "error: invalid value 'tcsh'"),
    case(&["man", "extra"], 2, "error: unexpected argument"),
];

/// Failures: exit 1, `unchoke: <message in the user's terms>`.
const FAILURES: &[Case] = &[
    // info
    case(
        &["info", "nope.torrent"],
        1,
        "unchoke: `nope.torrent`: no such file",
    ),
    case(
        &["info", "x.bin"],
        1,
        "unchoke: `x.bin` is not a .torrent file",
    ),
    case(
        &["info", "d"],
        1,
        "unchoke: `d` is a directory, not a .torrent file",
    ),
    case(&["info", "magnet:?dn=x"], 1, "unchoke: "),
    // create
    case(
        &["create", "nope", "-o", "o.torrent"],
        1,
        "unchoke: nope: no such file or directory",
    ),
    case(
        &["create", "f.bin", "-o", "afile"],
        1,
        "unchoke: afile: already exists (use --force to overwrite)",
    ),
    // download
    case(
        &["download", "nope.torrent"],
        1,
        "unchoke: `nope.torrent`: no such file",
    ),
    case(
        &["download", "x.bin"],
        1,
        "unchoke: `x.bin` is not a .torrent file",
    ),
    case(
        &["download", "d"],
        1,
        "unchoke: `d` is a directory, not a .torrent file",
    ),
    case(
        &["download", "f.torrent", "-o", "afile"],
        1,
        "unchoke: `-o afile` is a file; give a directory",
    ),
    case(
        &["download", "f.torrent", "-o", "afile/sub"],
        1,
        "unchoke: `-o afile/sub`: `afile` is a file, not a directory",
    ),
    case(
        &["download", "magnet:?xt=urn:btih:12"],
        1,
        "unchoke: magnet:?xt=urn:btih:12: ",
    ),
    // seed
    case(
        &["seed", "nope.torrent", "d"],
        1,
        "unchoke: `nope.torrent`: no such file",
    ),
    case(
        &["seed", "x.bin", "d"],
        1,
        "unchoke: `x.bin` is not a .torrent file",
    ),
    case(
        &["seed", "d", "f.torrent"],
        1,
        "unchoke: `d` is a directory, not a .torrent file; did you mean \
         `unchoke seed f.torrent d`?",
    ),
    case(
        &["seed", "f.torrent", "afile"],
        1,
        "unchoke: `afile` is a file; give the directory that holds the torrent's data",
    ),
    // tracker
    case(
        &[
            "tracker",
            "--whitelist",
            "nope.txt",
            "--http",
            "127.0.0.1:0",
        ],
        1,
        "unchoke: --whitelist nope.txt: no such file",
    ),
];

fn check(dir: &Path, cases: &[Case]) {
    let mut wrong = Vec::new();
    for c in cases {
        let out = run_bounded(c.args, dir, FAIL_FAST);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("");
        if out.status.code() != Some(c.code) || !first.contains(c.first_line) {
            wrong.push(format!(
                "unchoke {:?}: want exit {} and {:?}; got {:?} and {:?}",
                c.args,
                c.code,
                c.first_line,
                out.status.code(),
                first
            ));
        }
        // No bare OS error: one with its number needs a sentence before it.
        if let Some(at) = stderr.find("(os error") {
            let before = &stderr[..at];
            assert!(
                before.contains(": ") && before.split_whitespace().count() >= 4,
                "unchoke {:?}: a bare OS error: {stderr}",
                c.args
            );
        }
        assert!(!stderr.contains("panicked"), "{:?}: {stderr}", c.args);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    check(dir.path(), USAGE);
    // Nothing was made by a refused command line.
    assert!(!dir.path().join("o.torrent").exists());
    assert!(!dir.path().join(".unchoke").exists());
}

#[test]
fn failures_exit_1_with_the_problem_in_the_users_terms() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    check(dir.path(), FAILURES);
    assert_eq!(std::fs::read(dir.path().join("afile")).unwrap(), b"a file");
    assert!(!dir.path().join("d/.unchoke").exists());
    assert!(!dir.path().join(".unchoke").exists());
}

#[test]
fn verbose_adds_the_parsers_detail() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let plain = run_bounded(&["info", "x.bin"], dir.path(), FAIL_FAST);
    let verbose = run_bounded(&["info", "--verbose", "x.bin"], dir.path(), FAIL_FAST);
    let plain = String::from_utf8_lossy(&plain.stderr);
    let verbose = String::from_utf8_lossy(&verbose.stderr);
    assert!(!plain.contains("byte"), "{plain}");
    assert!(
        verbose.starts_with("unchoke: `x.bin` is not a .torrent file (")
            && verbose.contains("byte 0"),
        "{verbose}"
    );
    let dl = run_bounded(&["download", "x.bin", "-v"], dir.path(), FAIL_FAST);
    assert_eq!(dl.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dl.stderr).contains("byte 0"));
}

#[test]
fn every_help_ends_with_examples_and_the_top_level_one_with_exit_codes() {
    let top = run_ok(&["--help"]);
    for line in [
        "0    done",
        "1    failure",
        "2    usage error",
        "130  stopped by SIGINT",
        "143  stopped by SIGTERM",
        "unchoke completions bash|zsh|fish",
        "unchoke man",
    ] {
        assert!(top.contains(line), "--help lacks {line:?}:\n{top}");
    }
    for cmd in [
        "info",
        "create",
        "download",
        "seed",
        "tracker",
        "dht",
        "swarm",
        "simulate",
        "daemon",
        "completions",
        "man",
    ] {
        let help = run_ok(&[cmd, "--help"]);
        let examples = help
            .find("Examples:")
            .unwrap_or_else(|| panic!("{cmd} --help has no examples:\n{help}"));
        // The help ends with them: every line after the heading is one.
        let lines: Vec<&str> = help[examples..]
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(
            (2..=3).contains(&lines.len())
                && lines
                    .iter()
                    .all(|l| l.trim_start().starts_with(&format!("unchoke {cmd}"))),
            "{cmd} --help does not end with 2 or 3 examples:\n{help}"
        );
    }
    for cmd in ["download", "seed"] {
        let help = run_ok(&[cmd, "--help"]);
        assert!(help.contains("130  stopped by SIGINT"), "{cmd}:\n{help}");
    }
}

#[test]
fn completions_and_man_page() {
    let bash = run_ok(&["completions", "bash"]);
    assert!(
        bash.contains("_unchoke()") && bash.contains("download"),
        "{bash}"
    );
    let zsh = run_ok(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef unchoke"), "{zsh}");
    let fish = run_ok(&["completions", "fish"]);
    assert!(fish.contains("complete -c unchoke"), "{fish}");
    assert!(fish.contains("-l peer"), "options are completed: {fish}");
    let man = run_ok(&["man"]);
    assert!(man.contains(".TH unchoke 1"), "{man}");
    for text in ["download", "seed", "Exit status", "130"] {
        assert!(man.contains(text), "the man page lacks {text:?}");
    }
}

/// With 6881 taken and no `--listen`, `seed` listens on another port and says which;
/// `--listen` given explicitly is kept to (and fails).
#[test]
fn taken_default_port_falls_back_unless_listen_was_given() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    // Taken by us, or already by someone else: either way taken.
    let _holder = std::net::TcpListener::bind("0.0.0.0:6881");
    let mut cmd = unchoke();
    cmd.current_dir(dir.path())
        .args(["seed", "f.torrent", ".", "--json", "--no-dht", "--no-lsd"]);
    let mut seed = JsonProcess::spawn("seed (default port)", cmd);
    let warning = seed.wait_event("warning", FAIL_FAST);
    let listening = seed.wait_event("listening", FAIL_FAST);
    let addr = listening["addr"].as_str().unwrap().to_owned();
    let port = addr.rsplit(':').next().unwrap();
    assert_ne!(port, "6881", "{}", seed.dump());
    let message = warning["message"].as_str().unwrap();
    assert!(
        message.contains("port 6881 is in use") && message.contains(&format!("port {port}")),
        "{message}"
    );
    seed.signal("INT");
    assert_eq!(
        seed.wait_exit(FAIL_FAST).code(),
        Some(130),
        "{}",
        seed.dump()
    );

    let out = run_bounded(
        &[
            "seed",
            "f.torrent",
            ".",
            "--listen",
            "0.0.0.0:6881",
            "-q",
            "--no-lsd",
        ],
        dir.path(),
        FAIL_FAST,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on 0.0.0.0:6881"), "{err}");
}
