//! `--upload-limit` and `--download-limit` on real processes over loopback: a seed limited
//! to 4 MiB/s serves a downloader, whose own `--json` progress lines (one a second, each
//! timestamped) must average within ±10 % of 4 MiB/s over 20 s; likewise a downloader
//! limited to 4 MiB/s by `--download-limit` from an unlimited seed. Each runs once per
//! `--runtime` (mio and smol, both processes on the runtime under test). A rate that
//! cannot be read is a usage error (exit 2) before anything starts.
//!
//! The file (160 MiB) cannot be done within the window at 4 MiB/s (40 s), so the rate
//! measured is the limit's, not a transfer running out of work; unlimited, loopback moves
//! it in a few seconds, so a limit that did not hold would show.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::process::JsonProcess;
use common::runtime::Runtime;
use common::{create_torrent, data, unchoke, unchoke_download, unchoke_seed, write};

const MIB: f64 = 1024.0 * 1024.0;
const LIMIT: f64 = 4.0 * MIB;
const FILE: usize = 160 << 20;
/// How long the rate is averaged over.
const WINDOW: Duration = Duration::from_secs(20);
/// Progress from which measuring starts: past the pipeline's opening ramp.
const START_AFTER: u64 = 4 << 20;
/// The most a wait may take (the file's check, the connection, the window).
const WAIT: Duration = Duration::from_secs(120);

/// Seconds since the Unix epoch of an RFC 3339 UTC time with milliseconds, as the JSON
/// lines' `"time"` (`2023-11-14T22:13:20.042Z`).
fn epoch_seconds(time: &str) -> f64 {
    let (date, clock) = time.trim_end_matches('Z').split_once('T').unwrap();
    let ymd: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (y, m, d) = (ymd[0], ymd[1], ymd[2]);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let hms: Vec<f64> = clock.split(':').map(|p| p.parse().unwrap()).collect();
    days as f64 * 86_400.0 + hms[0] * 3600.0 + hms[1] * 60.0 + hms[2]
}

/// The downloader's average rate (bytes per second) over at least `WINDOW`, from its
/// progress lines: from the first past `START_AFTER` to the first `WINDOW` later.
fn measured_rate(down: &mut JsonProcess) -> f64 {
    let deadline = Instant::now() + WAIT;
    let first = loop {
        assert!(Instant::now() < deadline, "no progress\n{}", down.dump());
        let p = down.wait_event("progress", WAIT);
        if p["downloaded"].as_u64().unwrap() >= START_AFTER {
            break p;
        }
    };
    let t0 = epoch_seconds(first["time"].as_str().unwrap());
    let d0 = first["downloaded"].as_u64().unwrap();
    loop {
        assert!(Instant::now() < deadline, "no progress\n{}", down.dump());
        let p = down.wait_event("progress", WAIT);
        let t = epoch_seconds(p["time"].as_str().unwrap());
        if t - t0 >= WINDOW.as_secs_f64() {
            assert!(
                !p["complete"].as_bool().unwrap(),
                "the download completed inside the window: no limit held\n{p}"
            );
            let d = p["downloaded"].as_u64().unwrap();
            return (d - d0) as f64 / (t - t0);
        }
    }
}

/// A 160 MiB file and its torrent under `dir`: (torrent, the seed's data directory).
fn content(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let seed_dir = dir.join("seed");
    let file = write(&seed_dir, "big.bin", &data(42, FILE));
    let torrent = dir.join("big.torrent");
    create_torrent(&file, &torrent);
    (torrent, seed_dir)
}

fn assert_within(rate: f64, what: &str, seed: &JsonProcess, down: &JsonProcess) {
    let err = (rate - LIMIT) / LIMIT;
    eprintln!(
        "{what}: {:.3} MiB/s over {}s against 4 MiB/s ({:+.2} %)",
        rate / MIB,
        WINDOW.as_secs(),
        err * 100.0
    );
    assert!(
        err.abs() <= 0.10,
        "{what}: {:.3} MiB/s against 4 MiB/s ({:+.2} %)\nseed:\n{}\ndownloader:\n{}",
        rate / MIB,
        err * 100.0,
        seed.dump(),
        down.dump()
    );
}

per_runtime!(
    a_seeds_upload_limit_holds_within_ten_percent,
    a_downloaders_download_limit_holds_within_ten_percent
);

fn a_seeds_upload_limit_holds_within_ten_percent(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let (torrent, seed_dir) = content(dir.path());
    let (mut seed, addr) = unchoke_seed(
        rt,
        &torrent,
        &seed_dir,
        &rt.ip(61),
        &["--upload-limit", "4MiB/s"],
    );
    let mut down = unchoke_download(
        rt,
        &torrent,
        &dir.path().join("down"),
        &rt.ip(62),
        &["--peer", &addr],
    );
    let rate = measured_rate(&mut down);
    assert_within(
        rate,
        &format!("seed --upload-limit 4MiB/s ({rt})"),
        &seed,
        &down,
    );
    down.signal("INT");
    down.wait_exit(WAIT);
    seed.signal("INT");
    seed.wait_exit(WAIT);
}

fn a_downloaders_download_limit_holds_within_ten_percent(rt: Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let (torrent, seed_dir) = content(dir.path());
    let (mut seed, addr) = unchoke_seed(rt, &torrent, &seed_dir, &rt.ip(63), &[]);
    let mut down = unchoke_download(
        rt,
        &torrent,
        &dir.path().join("down"),
        &rt.ip(64),
        &["--peer", &addr, "--download-limit", "4194304"],
    );
    let rate = measured_rate(&mut down);
    assert_within(
        rate,
        &format!("download --download-limit 4194304 ({rt})"),
        &seed,
        &down,
    );
    down.signal("INT");
    down.wait_exit(WAIT);
    seed.signal("INT");
    seed.wait_exit(WAIT);
}

#[test]
fn an_unreadable_rate_is_a_usage_error() {
    for (option, rate) in [("--upload-limit", "fast"), ("--download-limit", "4TiB/s")] {
        let out = unchoke()
            .args(["download", "x.torrent", option, rate])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{option} {rate}: {stderr}");
        assert!(
            stderr.contains(option) && stderr.contains("rate"),
            "{option} {rate}: {stderr}"
        );
    }
    let help =
        String::from_utf8_lossy(&unchoke().args(["seed", "--help"]).output().unwrap().stdout)
            .into_owned();
    assert!(help.contains("--upload-limit <RATE>"), "{help}");
    assert!(help.contains("--download-limit <RATE>"), "{help}");
}
