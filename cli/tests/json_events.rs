//! Every `--json` line every command prints matches docs/json-events.md: the event is
//! documented for that command, its required fields are there, no field is undocumented,
//! each value has a documented type (nested objects and arrays of objects included), and
//! `time` is RFC 3339 UTC with milliseconds, within the run.
//!
//! The commands run for real, over loopback: a seed and a download (from a .torrent and
//! from a magnet link) on both runtimes, failures (whose last line must be an `error`
//! event), a tiny `swarm`, `dht` and `tracker` until interrupted, `info` and a small
//! `simulate`. Adding an event or a field without documenting it fails here.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use common::process::JsonProcess;
use common::runtime::Runtime;
use common::{TRANSFER_WAIT, completes, data, run, run_ok, unchoke, write};

// ---------------------------------------------------------------------------------------
// The schema, read from the doc.

/// A JSON type a documented field may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Object,
    Null,
}

impl Kind {
    fn parse(word: &str) -> Option<Kind> {
        Some(match word {
            "string" => Kind::String,
            "integer" => Kind::Integer,
            "number" => Kind::Number,
            "boolean" => Kind::Boolean,
            "array" => Kind::Array,
            "object" => Kind::Object,
            "null" => Kind::Null,
            _ => return None,
        })
    }

    fn matches(self, v: &Value) -> bool {
        match self {
            Kind::String => v.is_string(),
            Kind::Integer => v.is_u64() || v.is_i64(),
            Kind::Number => v.is_number(),
            Kind::Boolean => v.is_boolean(),
            Kind::Array => v.is_array(),
            Kind::Object => v.is_object(),
            Kind::Null => v.is_null(),
        }
    }
}

/// One row of a field table.
#[derive(Clone, Debug)]
struct Field {
    kinds: Vec<Kind>,
    required: bool,
}

/// Fields by path: `name`, `list[].name` (in each object of the array `list`),
/// `obj.name` (in the object `obj`).
type Fields = BTreeMap<String, Field>;

/// What docs/json-events.md says.
#[derive(Debug, Default)]
struct Schema {
    /// The fields of every line (`time`, `event`).
    common: Fields,
    /// (command, event) → its fields; command `all` for events of every command.
    events: BTreeMap<(String, String), Fields>,
}

fn doc_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/json-events.md")
}

/// Parses the doc; panics (naming the line) on anything it does not understand, so the
/// doc cannot drift into a form this test silently skips.
fn parse_schema(text: &str) -> Schema {
    let mut schema = Schema::default();
    let mut section = String::new();
    let mut commands: Vec<String> = Vec::new();
    let mut event: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let at = |what: &str| format!("docs/json-events.md:{}: {what}: {line}", n + 1);
        if let Some(title) = line.strip_prefix("## ") {
            section = title.trim().to_owned();
            commands.clear();
            event = None;
        } else if let Some(list) = line.strip_prefix("Commands:") {
            commands = if list.trim() == "all" {
                vec!["all".to_owned()]
            } else {
                list.split(',')
                    .map(|c| c.trim().trim_matches('`').to_owned())
                    .collect()
            };
            assert!(
                commands.iter().all(|c| !c.is_empty()),
                "{}",
                at("empty command")
            );
        } else if let Some(title) = line.strip_prefix("### ") {
            let name = title.trim().trim_matches('`').to_owned();
            assert!(!commands.is_empty(), "{}", at("event before `Commands:`"));
            for c in &commands {
                let fresh = schema
                    .events
                    .insert((c.clone(), name.clone()), Fields::new())
                    .is_none();
                assert!(fresh, "{}", at("event documented twice for one command"));
            }
            event = Some(name);
        } else if line.starts_with("| `") {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 6, "{}", at("expected 4 columns"));
            let path = cells[1].trim_matches('`').to_owned();
            let kinds: Vec<Kind> = cells[2]
                .split(" or ")
                .map(|w| Kind::parse(w.trim()).unwrap_or_else(|| panic!("{}", at("bad type"))))
                .collect();
            let required = match cells[3] {
                "yes" => true,
                "no" => false,
                _ => panic!("{}", at("required must be yes or no")),
            };
            assert!(!cells[4].is_empty(), "{}", at("no meaning given"));
            let field = Field { kinds, required };
            let fresh = match &event {
                None if section == "Every line" => schema.common.insert(path, field).is_none(),
                None => panic!("{}", at("field outside an event")),
                Some(e) => commands.iter().all(|c| {
                    schema
                        .events
                        .get_mut(&(c.clone(), e.clone()))
                        .is_some_and(|f| f.insert(path.clone(), field.clone()).is_none())
                }),
            };
            assert!(fresh, "{}", at("field documented twice"));
        } else {
            assert!(
                !line.starts_with('|') || line.starts_with("| field") || line.starts_with("|---"),
                "{}",
                at("a table row whose field is not in backquotes")
            );
        }
    }
    // A nested field needs its parent, of the matching type.
    for ((c, e), fields) in &schema.events {
        for path in fields.keys() {
            if let Some((parent, kind)) = parent_of(path) {
                let ok = fields.get(parent).is_some_and(|f| f.kinds.contains(&kind));
                assert!(
                    ok,
                    "{c} {e}: {path} has no parent {parent} of type {kind:?}"
                );
            }
        }
    }
    schema
}

/// `list[].x` → (`list`, Array); `obj.x` → (`obj`, Object); a top-level field → None.
fn parent_of(path: &str) -> Option<(&str, Kind)> {
    let (head, _) = path.rsplit_once('.')?;
    Some(match head.strip_suffix("[]") {
        Some(list) => (list, Kind::Array),
        None => (head, Kind::Object),
    })
}

fn schema() -> Schema {
    let text = std::fs::read_to_string(doc_path()).expect("docs/json-events.md");
    parse_schema(&text)
}

// ---------------------------------------------------------------------------------------
// Checking lines against it.

/// The run a line came from: its command and when it ran (the `time` must fall inside).
struct Run<'a> {
    command: &'a str,
    from: SystemTime,
    to: SystemTime,
}

impl Schema {
    /// Checks one line printed by `run.command`.
    fn check(&self, run: &Run<'_>, line: &Value) -> Result<(), String> {
        let obj = line
            .as_object()
            .ok_or_else(|| format!("not a JSON object: {line}"))?;
        let event = obj
            .get("event")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("no string \"event\": {line}"))?;
        let own = self
            .events
            .get(&(run.command.to_owned(), event.to_owned()))
            .or_else(|| self.events.get(&("all".to_owned(), event.to_owned())))
            .ok_or_else(|| {
                format!(
                    "event {event:?} of `{}` is not in docs/json-events.md: {line}",
                    run.command
                )
            })?;
        let mut fields = self.common.clone();
        fields.extend(own.iter().map(|(k, f)| (k.clone(), f.clone())));
        check_object(obj, "", &fields).map_err(|e| format!("{event}: {e}: {line}"))?;
        let time = obj.get("time").and_then(Value::as_str).unwrap_or_default();
        let ms = parse_rfc3339_millis(time).ok_or_else(|| format!("bad time {time:?}"))?;
        let (from, to) = (millis(run.from) - 2000, millis(run.to) + 2000);
        if !(from..=to).contains(&ms) {
            return Err(format!("time {time} is outside the run: {line}"));
        }
        Ok(())
    }

    /// Checks every line; panics listing every problem.
    fn check_all(&self, run: &Run<'_>, lines: &[Value]) {
        assert!(!lines.is_empty(), "`{}` printed no JSON", run.command);
        let problems: Vec<String> = lines
            .iter()
            .filter_map(|l| self.check(run, l).err())
            .collect();
        assert!(
            problems.is_empty(),
            "`{}` --json does not match docs/json-events.md:\n  {}",
            run.command,
            problems.join("\n  ")
        );
    }
}

/// The fields of `obj` against the documented fields below `prefix` (`""`, `list[].`,
/// `obj.`), recursing into documented nested objects.
fn check_object(
    obj: &serde_json::Map<String, Value>,
    prefix: &str,
    fields: &Fields,
) -> Result<(), String> {
    let here: Vec<(&str, &Field)> = fields
        .iter()
        .filter_map(|(path, f)| {
            let rest = path.strip_prefix(prefix)?;
            (!rest.contains('.') && !rest.contains("[]")).then_some((rest, f))
        })
        .collect();
    for key in obj.keys() {
        if !here.iter().any(|(name, _)| name == key) {
            return Err(format!("undocumented field `{prefix}{key}`"));
        }
    }
    for (name, field) in here {
        let Some(value) = obj.get(name) else {
            if field.required {
                return Err(format!("required field `{prefix}{name}` missing"));
            }
            continue;
        };
        if !field.kinds.iter().any(|k| k.matches(value)) {
            return Err(format!(
                "`{prefix}{name}` is {value}, not {:?}",
                field.kinds
            ));
        }
        let items = format!("{prefix}{name}[].");
        let members = format!("{prefix}{name}.");
        if let Some(list) = value.as_array().filter(|_| has_children(fields, &items)) {
            for item in list {
                let o = item
                    .as_object()
                    .ok_or_else(|| format!("`{prefix}{name}` holds a non-object {item}"))?;
                check_object(o, &items, fields)?;
            }
        }
        if let Some(o) = value.as_object() {
            check_object(o, &members, fields)?;
        }
    }
    Ok(())
}

fn has_children(fields: &Fields, prefix: &str) -> bool {
    fields.keys().any(|k| k.starts_with(prefix))
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap())
        .unwrap()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (exactly that form) to milliseconds since 1970.
fn parse_rfc3339_millis(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    let shape = b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z';
    if !shape {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = t.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + s) * 1000) + ms)
}

/// Parses every stdout line of a finished command (a line that is not JSON becomes a
/// string, which the check rejects).
fn lines_of(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| Value::String(l.to_owned())))
        .collect()
}

/// Runs `unchoke ARGS` to the end; returns its output and the window it ran in.
fn timed(args: &[&str]) -> (Output, SystemTime, SystemTime) {
    let from = SystemTime::now();
    let out = run(args);
    (out, from, SystemTime::now())
}

fn events(lines: &[Value]) -> Vec<&str> {
    lines.iter().filter_map(|v| v["event"].as_str()).collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------
// The doc and the checker themselves.

#[test]
fn the_doc_parses_and_covers_every_json_command() {
    let schema = schema();
    for name in ["time", "event"] {
        assert!(
            schema.common.get(name).is_some_and(|f| f.required),
            "{name} is not a required field of every line"
        );
    }
    assert!(schema.events.contains_key(&("all".into(), "error".into())));
    for command in [
        "download", "seed", "swarm", "tracker", "dht", "info", "simulate",
    ] {
        assert!(
            schema.events.keys().any(|(c, _)| c == command),
            "no events documented for `{command}`"
        );
    }
    // A representative table was read whole.
    let checked = &schema.events[&("seed".into(), "checked".into())];
    assert_eq!(checked.len(), 7, "{checked:?}");
    assert_eq!(checked["resumed"].kinds, [Kind::Boolean]);
}

#[test]
fn the_check_refuses_what_the_doc_does_not_say() {
    let schema = parse_schema(
        "## Every line\n\nCommands: all\n\n\
         | field | type | required | meaning |\n|---|---|---|---|\n\
         | `time` | string | yes | t |\n| `event` | string | yes | e |\n\n\
         ## X\n\nCommands: `x`\n\n### `thing`\n\n\
         | field | type | required | meaning |\n|---|---|---|---|\n\
         | `n` | integer | yes | n |\n| `note` | string or null | no | n |\n\
         | `list` | array | yes | l |\n| `list[].a` | boolean | yes | a |\n",
    );
    let now = SystemTime::now();
    let run = Run {
        command: "x",
        from: now,
        to: now,
    };
    let time = common_time(now);
    let good = json!({"event": "thing", "time": time, "n": 3, "list": [{"a": true}]});
    assert_eq!(schema.check(&run, &good), Ok(()));
    let with = |key: &str, v: Value| {
        let mut line = good.clone();
        line[key] = v;
        line
    };
    let bad = [
        (with("event", json!("other")), "not in docs"),
        (with("extra", json!(1)), "undocumented field `extra`"),
        (with("n", json!(1.5)), "`n` is 1.5"),
        (with("note", json!(7)), "`note` is 7"),
        (with("list", json!([{"a": true, "b": 1}])), "`list[].b`"),
        (with("list", json!([1])), "non-object"),
        (with("time", json!("2026-12-05 15:03:00Z")), "bad time"),
        (
            with("time", json!("1999-01-01T00:00:00.000Z")),
            "outside the run",
        ),
        (
            json!({"event": "thing", "time": time, "list": []}),
            "`n` missing",
        ),
        (json!("a plain text line"), "not a JSON object"),
    ];
    for (line, why) in bad {
        let err = schema.check(&run, &line).expect_err(&line.to_string());
        assert!(err.contains(why), "{line}: {err}");
    }
    assert_eq!(
        parse_rfc3339_millis("2023-11-14T22:13:20.042Z"),
        Some(1_700_000_000_042)
    );
    assert_eq!(parse_rfc3339_millis("2023-13-14T22:13:20.042Z"), None);
}

/// `now` as the binary writes it (for the synthetic lines above).
fn common_time(now: SystemTime) -> String {
    let ms = millis(now);
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // civil_from_days, as in human.rs; checked against the parser just below.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let text = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    );
    assert_eq!(parse_rfc3339_millis(&text), Some(ms), "{text}");
    text
}

// ---------------------------------------------------------------------------------------
// Real commands.

/// A 300,000-byte single-file torrent of `payload.bin` in `dir/data`, pieces of 16 KiB.
fn payload(dir: &Path) -> (PathBuf, PathBuf) {
    let data_dir = dir.join("data");
    let file = write(&data_dir, "payload.bin", &data(15, 300_000));
    let torrent = dir.join("payload.torrent");
    run_ok(&[
        "create",
        s(&file),
        "-o",
        s(&torrent),
        "-q",
        "--piece-length",
        "16K",
    ]);
    (torrent, data_dir)
}

per_runtime!(seed_and_downloads);

/// A seed, a download from the .torrent and one from a magnet link (`--json --verbose`):
/// every line of all three matches the doc.
fn seed_and_downloads(rt: Runtime) {
    let schema = schema();
    let dir = tempfile::tempdir().unwrap();
    let (torrent, data_dir) = payload(dir.path());
    let ip = rt.ip(60);
    let from = SystemTime::now();
    let (mut seed, addr) = common::unchoke_seed(rt, &torrent, &data_dir, &ip, &[]);

    let mut plain = common::unchoke_download(
        rt,
        &torrent,
        &dir.path().join("out"),
        &ip,
        &["--peer", &addr],
    );
    completes(&mut plain);

    let hash = common::info_json(&torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = format!("magnet:?xt=urn:btih:{hash}&dn=payload.bin&x.pe={addr}");
    let mut magnet = common::unchoke_download(rt, &link, &dir.path().join("m"), &ip, &[]);
    completes(&mut magnet);

    seed.signal("INT");
    seed.wait_exit(TRANSFER_WAIT);
    let to = SystemTime::now();

    for (command, p) in [("seed", &seed), ("download", &plain), ("download", &magnet)] {
        schema.check_all(&Run { command, from, to }, &p.seen);
    }
    for (p, expected) in [
        (
            &plain,
            &["checked", "listening", "progress", "complete", "stopped"][..],
        ),
        (
            &magnet,
            &["fetching_metadata", "metadata", "checked", "complete"][..],
        ),
        (
            &seed,
            &["checked", "listening", "peer_connected", "stopped"][..],
        ),
    ] {
        let seen = events(&p.seen);
        for e in expected {
            assert!(seen.contains(e), "no {e} in {seen:?}");
        }
    }
}

#[test]
fn a_failure_ends_the_json_stream_with_an_error_line() {
    let schema = schema();
    let dir = tempfile::tempdir().unwrap();
    let not_torrent = write(dir.path(), "x.bin", b"not a torrent");
    let out_dir = dir.path().join("out");
    for (command, args) in [
        (
            "download",
            vec!["download", s(&not_torrent), "-o", s(&out_dir), "--json"],
        ),
        (
            "seed",
            vec![
                "seed",
                s(&dir.path().join("missing.torrent")),
                s(dir.path()),
                "--json",
            ],
        ),
        ("info", vec!["info", "--json", s(&not_torrent)]),
    ] {
        let (out, from, to) = timed(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let lines = lines_of(&out);
        schema.check_all(&Run { command, from, to }, &lines);
        let last = lines.last().unwrap();
        assert_eq!(last["event"], "error", "{args:?}: {lines:?}");
        let message = last["message"].as_str().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("unchoke: {message}")),
            "{args:?}: stderr {stderr:?} lacks the error line's {message:?}"
        );
    }
    // Without --json, stdout stays empty on failure.
    let out = run(&["info", s(&not_torrent)]);
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn swarm_json() {
    let schema = schema();
    let (out, from, to) = timed(&[
        "swarm",
        "--json",
        "--size",
        "96K",
        "--piece-length",
        "16K",
        "--leechers",
        "2",
        "--timeout",
        "90",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = lines_of(&out);
    schema.check_all(
        &Run {
            command: "swarm",
            from,
            to,
        },
        &lines,
    );
    let seen = events(&lines);
    assert_eq!(seen.first(), Some(&"setup"), "{seen:?}");
    assert_eq!(seen.last(), Some(&"summary"), "{seen:?}");
}

/// Runs a long-lived command until `ready`, interrupts it, and checks all it printed.
fn until_interrupted(
    schema: &Schema,
    command: &'static str,
    args: &[&str],
    ready: &str,
) -> Vec<Value> {
    let from = SystemTime::now();
    let mut cmd = unchoke();
    cmd.args(args);
    let mut p = JsonProcess::spawn(command, cmd);
    p.wait_event(ready, Duration::from_secs(30));
    p.signal("INT");
    p.wait_exit(Duration::from_secs(30));
    let to = SystemTime::now();
    schema.check_all(&Run { command, from, to }, &p.seen);
    p.seen.clone()
}

#[test]
fn dht_json() {
    let seen = until_interrupted(
        &schema(),
        "dht",
        &[
            "dht",
            "--json",
            "--listen",
            "127.0.0.1:0",
            "--report-every",
            "1",
        ],
        "status",
    );
    let seen = events(&seen);
    for e in ["listening", "status", "stopped"] {
        assert!(seen.contains(&e), "no {e} in {seen:?}");
    }
}

#[test]
fn tracker_json() {
    let seen = until_interrupted(
        &schema(),
        "tracker",
        &[
            "tracker",
            "--json",
            "--http",
            "127.0.0.1:0",
            "--udp",
            "127.0.0.1:0",
        ],
        "listening",
    );
    let seen = events(&seen);
    for e in ["listening", "stopped"] {
        assert!(seen.contains(&e), "no {e} in {seen:?}");
    }
}

#[test]
fn info_json() {
    let schema = schema();
    let dir = tempfile::tempdir().unwrap();
    let (torrent, _) = payload(dir.path());
    let link = "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=x&tr=udp%3A%2F%2Ft%3A1&x.pe=[::1]:7";
    // BEP 52: v2-only and hybrid torrents (libtorrent's) and links (v1 hash null, or both).
    common::require_libtorrent();
    let v2 = dir.path().join("v2.torrent");
    let hybrid = dir.path().join("hybrid.torrent");
    let content = write(dir.path(), "content.bin", &data(9, 50_000));
    common::lt_make_v2("v2", &content, &v2, 16_384);
    common::lt_make_v2("hybrid", &content, &hybrid, 16_384);
    let btmh = format!("urn:btmh:1220{}", "ab".repeat(32));
    let v2_link = format!("magnet:?xt={btmh}&dn=x");
    let hybrid_link = format!("{link}&xt={btmh}");
    for target in [
        s(&torrent),
        link,
        s(&v2),
        s(&hybrid),
        &v2_link,
        &hybrid_link,
    ] {
        let (out, from, to) = timed(&["info", "--json", target]);
        assert!(out.status.success());
        let lines = lines_of(&out);
        assert_eq!(lines.len(), 1, "{lines:?}");
        schema.check_all(
            &Run {
                command: "info",
                from,
                to,
            },
            &lines,
        );
    }
}

#[test]
fn simulate_json() {
    let schema = schema();
    let dir = tempfile::tempdir().unwrap();
    let (out, from, to) = timed(&[
        "simulate",
        "--json",
        "--out",
        s(dir.path()),
        "--file-size",
        "2MiB",
        "--piece-length",
        "64KiB",
        "--peers",
        "0,2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = lines_of(&out);
    schema.check_all(
        &Run {
            command: "simulate",
            from,
            to,
        },
        &lines,
    );
    assert_eq!(events(&lines), ["run", "run", "summary"]);
}
