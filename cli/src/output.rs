//! Writing results to stdout without panicking when the reader goes away, and the one
//! shape of every `--json` line: an object with `"time"` (RFC 3339 UTC, milliseconds) and
//! `"event"`, the failure of a run included (docs/json-events.md is the schema).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use serde_json::Value;

/// Whether the running command was asked for `--json`: decides whether a failure also
/// goes to stdout as a final `error` event. Process-wide because the failure is reported
/// by `main`, far from the command's arguments.
static JSON_MODE: AtomicBool = AtomicBool::new(false);

/// Called by a command once it has parsed `--json`, so that [`report_failure`] knows.
pub(crate) fn set_json_mode(on: bool) {
    JSON_MODE.store(on, Ordering::Relaxed);
}

/// The run ended without doing its job: `unchoke: <message>` on stderr (escaped, one
/// line), and with `--json` also a last line on stdout, so a script that reads only stdout
/// learns why the stream ended: `{"event":"interrupted","signal":…}` when a signal stopped
/// it (`signal` names it), else `{"event":"error",…}`; both carry the `exit_status`.
pub(crate) fn report_failure(message: &str, exit_status: u8, signal: Option<&str>) {
    eprintln!("unchoke: {}", printable(message));
    if JSON_MODE.load(Ordering::Relaxed) {
        emit(match signal {
            Some(signal) => serde_json::json!({
                "event": "interrupted",
                "signal": signal,
                "message": message,
                "exit_status": exit_status,
            }),
            None => serde_json::json!({
                "event": "error",
                "message": message,
                "exit_status": exit_status,
            }),
        });
    }
}

/// `value` (an object with an `"event"`) stamped with the current `"time"`, as one line
/// ending in a newline.
pub(crate) fn json_line(value: Value) -> String {
    json_line_at(value, SystemTime::now())
}

/// [`json_line`] with the time given (for tests).
fn json_line_at(mut value: Value, at: SystemTime) -> String {
    debug_assert!(
        value.get("event").is_some(),
        "a JSON line without an event: {value}"
    );
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "time".into(),
            Value::String(crate::human::rfc3339_millis(at)),
        );
    }
    format!("{value}\n")
}

/// Prints `value` as one timestamped JSON line (see [`json_line`]). A stdout that cannot
/// be written (the reader went away) is not worth stopping a transfer or a swarm for, so
/// failures are ignored here; commands whose only job is the output use [`print`].
pub(crate) fn emit(value: Value) {
    let _ = print(&json_line(value));
}

/// Writes `text` to stdout. A closed pipe (`unchoke info x | head -1`) is not an error:
/// the reader has what it wanted. Any other failure is reported.
pub(crate) fn print(text: &str) -> Result<(), String> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("writing to stdout: {e}")),
    }
}

/// `text` with control characters (which a hostile torrent could use to drive the
/// terminal) shown as escapes; everything else unchanged.
pub(crate) fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain é"), "plain é");
        assert_eq!(printable("a\x1b[2Jb\n"), "a\\u{1b}[2Jb\\n");
    }

    #[test]
    fn json_lines_carry_the_time() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_042);
        let line = json_line_at(serde_json::json!({"event": "x", "n": 1}), at);
        assert!(
            line.ends_with('\n') && !line.trim_end().contains('\n'),
            "{line:?}"
        );
        let v: Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(v["time"], "2023-11-14T22:13:20.042Z");
        assert_eq!(v["event"], "x");
        assert_eq!(v["n"], 1);
    }
}
