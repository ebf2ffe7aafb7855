//! Stopping on signals at every moment of a download or a seed: during the start-up check
//! of a large torrent, during a magnet link's metadata fetch, during the transfer; SIGINT
//! exits 130 and SIGTERM 143 after a clean stop that says where the resume data is; a
//! second SIGINT exits at once.
//!
//! Every test runs once per `--runtime` (`per_runtime!`), on loopback addresses of its own
//! (`Runtime::ip(n)`, one `n` per test).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use common::process::JsonProcess;
use common::runtime::Runtime;
use common::{data, run_ok, unchoke, unchoke_seed, write};

/// How long a clean stop may take once signalled.
const STOP: Duration = Duration::from_secs(1);
/// How long a process may take to reach a state.
const LONG: Duration = Duration::from_secs(60);

/// Size of the sparse file whose check must take many seconds uninterrupted.
const BIG: u64 = 16 << 30;
/// Its piece length: 1024 pieces.
const BIG_PIECE: u64 = 16 << 20;

/// Writes `dir/big.torrent` for a sparse `dir/big.bin` of [`BIG`] bytes, and makes that
/// file (full length, all holes). The piece hashes are arbitrary: the check reads and
/// hashes every piece either way, which is what takes the time.
fn big_sparse_torrent(dir: &Path) -> std::path::PathBuf {
    File::create(dir.join("big.bin"))
        .unwrap()
        .set_len(BIG)
        .unwrap();
    let pieces = data(7, (BIG / BIG_PIECE) as usize * 20);
    let mut t = Vec::new();
    write!(
        t,
        "d4:infod6:lengthi{BIG}e4:name7:big.bin12:piece lengthi{BIG_PIECE}e6:pieces{}:",
        pieces.len()
    )
    .unwrap();
    t.extend_from_slice(&pieces);
    t.extend_from_slice(b"ee");
    write(dir, "big.torrent", &t)
}

/// `unchoke download big.torrent -o DIR` on `rt`, with nothing to find peers through.
fn start_big_check(rt: Runtime, dir: &Path, ip: &str) -> JsonProcess {
    let torrent = big_sparse_torrent(dir);
    let mut cmd = unchoke();
    cmd.args(["download", "--no-lsd"])
        .arg(&torrent)
        .arg("-o")
        .arg(dir)
        .args(rt.args())
        .args(["--listen", &format!("{ip}:0"), "--json", "--no-dht"]);
    let p = JsonProcess::spawn(&format!("download big ({rt})"), cmd);
    // Well into the check (which takes many seconds), well before its end.
    std::thread::sleep(Duration::from_millis(1500));
    p
}

/// Waits for the exit, asserting it came within `within` of `since`; returns the status code.
fn exit_within(p: &mut JsonProcess, since: Instant, within: Duration) -> Option<i32> {
    let status = p.wait_exit(LONG);
    let took = since.elapsed();
    assert!(
        took <= within + Duration::from_millis(300),
        "took {took:?} to stop (at most {within:?})\n{}",
        p.dump()
    );
    status.code()
}

fn sigint_during_the_check_stops_at_once(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let mut p = start_big_check(rt, dir.path(), &rt.ip(1));
    let sent = Instant::now();
    p.signal("INT");
    let code = exit_within(&mut p, sent, STOP);
    assert!(
        p.last("checked").is_none(),
        "the check ended before the signal: the test proves nothing\n{}",
        p.dump()
    );
    assert_eq!(code, Some(130), "{}", p.dump());
    // It says why it stopped (in either wording the check's cancellation has had).
    let said = p.dump();
    assert!(
        said.contains("stopped by SIGINT") || said.contains("interrupted during the check"),
        "{said}"
    );
    // The sparse file is as it was.
    assert_eq!(
        std::fs::metadata(dir.path().join("big.bin")).unwrap().len(),
        BIG
    );
}

fn a_second_sigint_exits_at_once(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let mut p = start_big_check(rt, dir.path(), &rt.ip(2));
    p.signal("INT");
    std::thread::sleep(Duration::from_millis(100));
    let sent = Instant::now();
    p.signal("INT");
    assert_eq!(exit_within(&mut p, sent, STOP), Some(130), "{}", p.dump());
}

fn sigint_during_the_metadata_fetch(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    // A peer that accepts and never says a word: the fetch would wait a long time.
    let ip = rt.ip(3);
    let silent = TcpListener::bind(format!("{ip}:0")).unwrap();
    let peer = silent.local_addr().unwrap().to_string();
    let magnet = format!("magnet:?xt=urn:btih:{}", "ab".repeat(20));
    let mut cmd = unchoke();
    cmd.args(["download", "--no-lsd"])
        .arg(&magnet)
        .arg("-o")
        .arg(dir.path())
        .args(rt.args())
        .args(["--listen", &format!("{ip}:0"), "--json", "--no-dht"])
        .args(["--peer", &peer]);
    let mut p = JsonProcess::spawn(&format!("download magnet ({rt})"), cmd);
    p.wait_event("listening", LONG);
    // Let it dial the silent peer.
    let (_conn, _) = silent.accept().unwrap();
    let sent = Instant::now();
    p.signal("INT");
    assert_eq!(exit_within(&mut p, sent, STOP), Some(130), "{}", p.dump());
    assert!(
        p.dump()
            .contains("stopped by SIGINT before the download completed"),
        "{}",
        p.dump()
    );
}

/// A seed missing half the pieces (`--partial`), and a download from it (into the current
/// directory: `-o` defaults to it) that can never complete: SIGINT stops it with 130 and
/// names the resume file it saved.
fn sigint_during_the_download_saves_resume_data(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let file = write(&src, "p.bin", &data(5, 1 << 20));
    let torrent = dir.path().join("p.torrent");
    run_ok(&[
        "create",
        file.to_str().unwrap(),
        "-o",
        torrent.to_str().unwrap(),
        "-q",
        "--piece-length",
        "16K",
    ]);
    // Damage every other piece of the seed's copy: it has half.
    let mut bytes = std::fs::read(&file).unwrap();
    for piece in (1..64).step_by(2) {
        bytes[piece * 16 * 1024] ^= 0xff;
    }
    std::fs::write(&file, &bytes).unwrap();
    let (mut seed, seed_addr) = unchoke_seed(rt, &torrent, &src, &rt.ip(4), &["--partial"]);

    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut cmd = unchoke();
    cmd.current_dir(&out)
        .args(["download", "--no-lsd"])
        .arg(&torrent)
        .args(rt.args())
        .args([
            "--listen",
            &format!("{}:0", rt.ip(5)),
            "--json",
            "--verbose",
        ])
        .args(["--peer", &seed_addr, "--no-dht"]);
    let mut dl = JsonProcess::spawn(&format!("download partial ({rt})"), cmd);
    dl.wait_event("peer_connected", LONG);
    // Some pieces arrive; the rest never can.
    let deadline = Instant::now() + LONG;
    while !out.join(".unchoke").is_dir() || !out.join("p.bin").is_file() {
        assert!(Instant::now() < deadline, "{}", dl.dump());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    let sent = Instant::now();
    dl.signal("INT");
    assert_eq!(
        exit_within(&mut dl, sent, Duration::from_secs(5)),
        Some(130),
        "{}",
        dl.dump()
    );
    let hash = common::info_json(&torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let said = format!("resume data saved in ./.unchoke/{hash}.resume");
    assert!(dl.dump().contains(&said), "want {said:?}\n{}", dl.dump());
    assert!(
        out.join(".unchoke")
            .join(format!("{hash}.resume"))
            .is_file()
    );

    // SIGTERM: 143, and the seed says where its resume data is too.
    let sent = Instant::now();
    seed.signal("TERM");
    assert_eq!(
        exit_within(&mut seed, sent, Duration::from_secs(5)),
        Some(143),
        "{}",
        seed.dump()
    );
    assert!(
        seed.dump().contains("stopped by SIGTERM"),
        "{}",
        seed.dump()
    );
    // With --json, the stream ends with the `interrupted` event, not an `error`.
    let last = seed.seen.last().cloned().unwrap_or_default();
    assert_eq!(last["event"], "interrupted", "{}", seed.dump());
    assert_eq!(last["signal"], "SIGTERM", "{last}");
    assert_eq!(last["exit_status"], 143, "{last}");
}

per_runtime!(
    sigint_during_the_check_stops_at_once,
    a_second_sigint_exits_at_once,
    sigint_during_the_metadata_fetch,
    sigint_during_the_download_saves_resume_data,
);
