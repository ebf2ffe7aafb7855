//! `unchoke simulate`: the distribution-time study on the deterministic simulator. Small
//! studies (a 2 MiB file, a handful of peers) complete, write a table, study.csv and
//! study.svg that agree with the JSON, never beat the P2P lower bound, repeat exactly with
//! the same seed, and bad arguments are refused clearly.

use std::fs::File;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The longest one `unchoke simulate` of these tests may take (a debug build).
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// What a finished `unchoke` printed.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `unchoke ARGS` to the end (killing it past [`RUN_LIMIT`]), its output in `dir`.
fn unchoke(dir: &Path, args: &[&str]) -> Run {
    let out_path = dir.join("stdout.txt");
    let err_path = dir.join("stderr.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_unchoke"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("start unchoke");
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for unchoke") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "unchoke {args:?} still running after {RUN_LIMIT:?}; stderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        status,
        stdout: std::fs::read_to_string(&out_path).expect("read stdout"),
        stderr: std::fs::read_to_string(&err_path).expect("read stderr"),
    }
}

/// The small study's arguments: a 2 MiB file in 64 KiB pieces (32 pieces, 128 blocks).
const SMALL: [&str; 4] = ["--file-size", "2MiB", "--piece-length", "64KiB"];

/// Runs a small study with `--json` into `out`; asserts success and returns the per-N
/// objects and the summary.
fn json_study(work: &Path, out: &Path, extra: &[&str]) -> (Vec<Value>, Value) {
    let out_str = out.to_str().expect("utf-8 path");
    let mut args = vec!["simulate", "--json", "--out", out_str];
    args.extend(SMALL);
    args.extend(extra);
    let run = unchoke(work, &args);
    assert!(
        run.status.success(),
        "unchoke {args:?} failed: {}\nstdout:\n{}\nstderr:\n{}",
        run.status,
        run.stdout,
        run.stderr
    );
    let objects: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let (summary, rows) = objects.split_last().expect("some output");
    assert_eq!(summary["event"], "summary", "{}", run.stdout);
    for r in rows {
        assert_eq!(r["event"], "run", "{r}");
    }
    (rows.to_vec(), summary.clone())
}

fn f64_of(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// study.csv as rows of fields, after checking its header.
fn read_csv(out: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(out.join("study.csv")).expect("study.csv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "peers,client_server_s,p2p_bound_s,measured_s,ratio,utilisation,server_uploaded,\
             peers_uploaded,wasted,blocks,events,wall_s,steady_from_s,steady_until_s,\
             steady_entropy,steady_min_copies,steady_max_copies,steady_utilisation,free_riders,\
             free_rider_share,free_rider_share_leeching,free_rider_median_s,contributor_median_s"
        )
    );
    lines
        .map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>())
        .inspect(|fields| assert_eq!(fields.len(), 23, "{fields:?}"))
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn small_study_writes_consistent_json_csv_and_svg() {
    let work = tempfile::tempdir().expect("tempdir");
    // A directory that does not exist yet: simulate creates it.
    let out = work.path().join("results/nested");
    let (rows, summary) = json_study(work.path(), &out, &["--peers", "4,0,1"]);

    // One object per N (they arrive as they finish; any order).
    let mut peers: Vec<u64> = rows
        .iter()
        .map(|r| r["peers"].as_u64().expect("peers"))
        .collect();
    peers.sort_unstable();
    assert_eq!(peers, [0, 1, 4]);
    for r in &rows {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["complete"], true, "{r}");
        let bound = f64_of(r, "p2p_bound_s");
        let measured = f64_of(r, "measured_s");
        assert!(
            measured >= bound,
            "measured {measured} < bound {bound}: {r}"
        );
        assert!(f64_of(r, "client_server_s") >= bound, "{r}");
        assert!(
            r["digest"].as_str().is_some_and(|d| d.len() == 16),
            "digest: {r}"
        );
        if r["peers"] != 0 {
            assert!(measured > 0.0, "{r}");
            assert!(r["blocks"].as_u64().expect("blocks") >= 128, "{r}");
            // F = 2 MiB at the default u_s = 10·F/h: the server alone needs 360 s.
            assert!(bound >= 360.0 - 1e-6, "{r}");
        }
    }
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["runs"], 3);
    assert_eq!(summary["file_size"], 2 * 1024 * 1024);
    assert_eq!(summary["piece_length"], 64 * 1024);
    assert!(f64_of(&summary, "one_upload_time_s") > 3599.0);
    assert!(f64_of(&summary, "blocks_per_wall_second") > 0.0);
    let max_ratio = f64_of(&summary, "max_ratio");
    assert!(max_ratio >= 1.0, "{summary}");

    // The CSV: three rows sorted by N, the same numbers as the JSON.
    let csv = read_csv(&out);
    assert_eq!(csv.len(), 3);
    for (line, n) in csv.iter().zip([0u64, 1, 4]) {
        assert_eq!(line[0], n.to_string());
        let r = rows.iter().find(|r| r["peers"] == n).expect("row for N");
        for (i, key) in [
            (1, "client_server_s"),
            (2, "p2p_bound_s"),
            (3, "measured_s"),
            (11, "wall_s"),
        ] {
            let v: f64 = line[i]
                .parse()
                .unwrap_or_else(|_| panic!("{key}: {line:?}"));
            assert!(close(v, f64_of(r, key)), "{key}: csv {v} vs json {r}");
        }
        for (i, key) in [
            (6, "server_uploaded"),
            (7, "peers_uploaded"),
            (8, "wasted"),
            (9, "blocks"),
            (10, "events"),
        ] {
            assert_eq!(line[i], r[key].to_string(), "{key}: {line:?} vs {r}");
        }
        if n > 0 {
            let ratio: f64 = line[4].parse().expect("ratio");
            assert!(close(ratio, f64_of(r, "ratio")) && ratio >= 1.0, "{line:?}");
            assert!(ratio <= max_ratio + 1e-12);
        }
    }
    // Someone uploaded the file to every peer of the largest swarm.
    let n4 = &csv[2];
    let uploaded: u64 =
        n4[6].parse::<u64>().expect("server") + n4[7].parse::<u64>().expect("peers");
    assert!(uploaded >= 4 * 2 * 1024 * 1024, "{n4:?}");

    let svg = std::fs::read_to_string(out.join("study.svg")).expect("study.svg");
    assert!(svg.contains("<svg"), "not an SVG");
    for legend in [
        "client-server D_cs",
        "P2P lower bound",
        "measured P2P (simulated unchoke)",
        "one peer&apos;s upload time",
    ] {
        assert!(
            svg.contains(legend) || svg.contains(&legend.replace("&apos;", "'")),
            "the chart lacks {legend:?}"
        );
    }
    assert!(svg.contains("N, peers"), "x axis label");
    assert!(svg.contains("distribution time, minutes"), "y axis label");
}

#[test]
fn same_seed_same_results_other_seed_other_results() {
    let work = tempfile::tempdir().expect("tempdir");
    let study = |name: &str, seed: &str| {
        let out = work.path().join(name);
        let (rows, _) = json_study(work.path(), &out, &["--peers", "3,5", "--seed", seed]);
        let csv: Vec<Vec<String>> = read_csv(&out)
            .into_iter()
            .map(|mut fields| {
                fields.remove(11); // wall_s: the only column measured on the real clock
                fields
            })
            .collect();
        let mut fingerprints: Vec<(u64, String, f64)> = rows
            .iter()
            .map(|r| {
                (
                    r["peers"].as_u64().expect("peers"),
                    r["digest"].as_str().expect("digest").to_owned(),
                    f64_of(r, "measured_s"),
                )
            })
            .collect();
        fingerprints.sort_by_key(|f| f.0);
        (csv, fingerprints)
    };
    let (csv_a, prints_a) = study("a", "7");
    let (csv_b, prints_b) = study("b", "7");
    assert_eq!(csv_a, csv_b, "same seed, different results");
    assert_eq!(prints_a, prints_b);
    let (_, prints_c) = study("c", "8");
    assert_ne!(
        prints_a, prints_c,
        "seeds 7 and 8 gave the same digests and times"
    );
}

#[test]
fn human_output_is_a_table_and_a_summary() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("out");
    let out_str = out.to_str().expect("utf-8 path");
    let mut args = vec![
        "simulate", "--peers", "0..=2", "--jobs", "1", "--out", out_str,
    ];
    args.extend(SMALL);
    let run = unchoke(work.path(), &args);
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    let header = run
        .stdout
        .lines()
        .position(|l| l.contains("client-server") && l.contains("P2P bound"))
        .unwrap_or_else(|| panic!("no table header:\n{}", run.stdout));
    let table: Vec<&str> = run.stdout.lines().skip(header + 1).take(3).collect();
    for (line, n) in table.iter().zip(["0", "1", "2"]) {
        assert_eq!(line.split_whitespace().next(), Some(n), "{line}");
    }
    // N = 1: the server's upload binds, F/u_s = 360 s for both bounds.
    assert!(table[1].contains("360 s"), "{}", table[1]);
    assert!(
        run.stdout
            .contains("every measured time stayed below F/u = 1h 00m: yes"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("block transfers simulated"),
        "{}",
        run.stdout
    );
    // Without a terminal, progress is plain lines on stderr, one per finished N.
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.contains(": measured "))
            .count(),
        3,
        "{}",
        run.stderr
    );

    // --quiet: the summary only.
    let quiet = unchoke(
        work.path(),
        &[
            "simulate", "--peers", "1", "--quiet", "--out", out_str, SMALL[0], SMALL[1], SMALL[2],
            SMALL[3],
        ],
    );
    assert!(quiet.status.success(), "{}", quiet.stderr);
    assert!(!quiet.stdout.contains("client-server"), "{}", quiet.stdout);
    assert!(quiet.stdout.contains("largest ratio"), "{}", quiet.stdout);
    assert_eq!(quiet.stderr, "");
}

#[test]
fn churn_still_completes() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("out");
    let (rows, summary) = json_study(
        work.path(),
        &out,
        &["--peers", "4", "--churn", "0.5:60", "--seed", "3"],
    );
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["churn"]["fraction"], 0.5);
    assert_eq!(summary["churn"]["away_s"], 60.0);
    let r = &rows[0];
    assert_eq!(r["complete"], true, "{r}");
    assert!(
        r["leaves"].as_u64().expect("leaves") >= 1,
        "nobody left: {r}"
    );
    assert!(f64_of(r, "measured_s") >= f64_of(r, "p2p_bound_s"), "{r}");
}

#[test]
fn free_riders_are_reported_and_the_swarm_completes() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("out");
    let (rows, summary) = json_study(
        work.path(),
        &out,
        &["--peers", "5", "--free-riders", "0.4", "--seed", "2"],
    );
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["free_riders"], 0.4);
    let r = &rows[0];
    assert_eq!(r["complete"], true, "{r}");
    let f = &r["free_riding"];
    assert_eq!(f["free_riders"], 2, "{r}");
    assert_eq!(f["uploaded"], 0, "{r}");
    let share = f["share"].as_f64().expect("share");
    assert!((0.0..=1.0).contains(&share), "{r}");
    let steady = &r["steady"];
    let entropy = steady["entropy"].as_f64().expect("entropy");
    assert!((0.0..=1.0).contains(&entropy), "{r}");
    let csv = std::fs::read_to_string(out.join("study.csv")).expect("csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let row: Vec<&str> = lines.next().expect("row").split(',').collect();
    assert_eq!(header.len(), row.len(), "{csv}");
    assert_eq!(header[11], "wall_s", "the old columns keep their order");
    let col = |name: &str| row[header.iter().position(|h| *h == name).expect(name)];
    assert_eq!(col("free_riders"), "2", "{csv}");
    assert!(!col("steady_entropy").is_empty(), "{csv}");
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("never");
    let out_str = out.to_str().expect("utf-8 path");
    for (args, expected) in [
        (&["--peers", "x"][..], "not a number of peers"),
        (&["--peers", "5..2"], "is empty"),
        (&["--peer-upload", "0"], "must be positive"),
        (&["--server-upload", "fast"], "is not a rate"),
        (&["--churn", "2"], "from 0 to 1"),
        (&["--free-riders", "1.5"], "from 0 to 1"),
        (&["--latency", "soon"], "is not a time"),
        (&["--piece-length", "100K"], "power of two"),
        (&["--file-size", "0"], "must not be empty"),
        (&["--jobs", "0"], "--jobs"),
    ] {
        let mut all = vec!["simulate", "--out", out_str];
        all.extend(args);
        let run = unchoke(work.path(), &all);
        assert!(!run.status.success(), "{args:?} accepted");
        assert!(
            run.stderr.contains(expected),
            "{args:?}: stderr lacks {expected:?}:\n{}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    assert!(!out.exists(), "a refused run created its output directory");
}

#[test]
fn links_too_slow_for_the_request_timeout_are_warned_about() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("out");
    let out_str = out.to_str().expect("utf-8 path");
    // F/u = 1 h on 2 MiB: 582 B/s per peer, 116 B/s per unchoke slot, 140 s per block.
    let mut args = vec!["simulate", "--peers", "1", "--out", out_str];
    args.extend(SMALL);
    let slow = unchoke(work.path(), &args);
    let both = format!("{}{}", slow.stdout, slow.stderr);
    assert!(
        both.contains("longer than the 30 s request time-out"),
        "no warning:\n{both}"
    );
    let mut args = vec![
        "simulate",
        "--peers",
        "1",
        "--peer-upload",
        "64KiB/s",
        "--out",
        out_str,
    ];
    args.extend(SMALL);
    let fast = unchoke(work.path(), &args);
    assert!(fast.status.success(), "{}\n{}", fast.stdout, fast.stderr);
    let both = format!("{}{}", fast.stdout, fast.stderr);
    assert!(
        !both.contains("request time-out"),
        "needless warning:\n{both}"
    );
}
