//! A child process that prints one JSON object per line (`unchoke … --json`, the
//! libtorrent and Transmission helper scripts), read on a thread so a test can wait for a
//! given event with a deadline. The child is killed when the handle drops: a failed test
//! never leaves a peer running.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running child and the JSON lines it printed.
pub struct JsonProcess {
    name: String,
    child: Child,
    lines: Receiver<Value>,
    /// Every line seen so far (for the failure message and for later assertions).
    pub seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
    /// The thread copying stderr: it ends when the pipe closes, after the child exits.
    stderr_reader: std::thread::JoinHandle<()>,
}

impl JsonProcess {
    /// Spawns `cmd` with stdout and stderr captured.
    pub fn spawn(name: &str, mut cmd: Command) -> JsonProcess {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = channel();
        let label = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(_) => {
                        eprintln!("[{label} stdout] {line}");
                        // Kept (as a JSON string) so a test can tell that stdout held a
                        // line that is not JSON; `v["event"]` of it is null.
                        if tx.send(Value::String(line)).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("stderr lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        JsonProcess {
            name: name.to_owned(),
            child,
            lines,
            seen: Vec::new(),
            stderr,
            stderr_reader,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `timeout`) for a line whose `"event"` is `event`; panics with the
    /// process's output otherwise.
    pub fn wait_event(&mut self, event: &str, timeout: Duration) -> Value {
        match self.next_event(event, timeout) {
            Ok(v) => v,
            Err(None) => panic!(
                "{}: no {event:?} within {timeout:?}\n{}",
                self.name,
                self.dump()
            ),
            Err(Some(status)) => {
                self.settle_stderr(Instant::now() + Duration::from_secs(2));
                panic!(
                    "{}: exited ({status:?}) before {event:?}\n{}",
                    self.name,
                    self.dump()
                )
            }
        }
    }

    /// Waits (at most `timeout`) for a line whose `"event"` is `event`, like
    /// [`Self::wait_event`], but returns `None` (instead of panicking) on time-out or
    /// exit, so a test can gather its evidence before it fails.
    pub fn try_wait_event(&mut self, event: &str, timeout: Duration) -> Option<Value> {
        self.next_event(event, timeout).ok()
    }

    /// The next line whose `"event"` is `event` within `timeout`, every line read kept
    /// in `seen`; `Err(None)` on time-out, `Err(Some(status))` when the process ended
    /// first (its exit status, if it could be read).
    fn next_event(
        &mut self,
        event: &str,
        timeout: Duration,
    ) -> Result<Value, Option<Option<ExitStatus>>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if v["event"] == event {
                        return Ok(v);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return Err(None),
                Err(RecvTimeoutError::Disconnected) => return Err(Some(self.child.wait().ok())),
            }
        }
    }

    /// Moves every line printed so far into `seen`, without waiting.
    pub fn drain(&mut self) {
        while let Ok(v) = self.lines.try_recv() {
            self.seen.push(v);
        }
    }

    /// Waits (at most `timeout`) for the process to exit; panics if it does not. Lines it
    /// printed are kept in `seen`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Give the reader threads a moment to pass on the last lines (a test reads
                // stderr right after: an exit with its message not yet copied read as silence).
                let drain_until = Instant::now() + Duration::from_secs(2);
                while let Ok(v) = self
                    .lines
                    .recv_timeout(drain_until.saturating_duration_since(Instant::now()))
                {
                    self.seen.push(v);
                }
                self.settle_stderr(drain_until);
                return status;
            }
            while let Ok(v) = self.lines.try_recv() {
                self.seen.push(v);
            }
            assert!(
                Instant::now() < deadline,
                "{}: still running after {timeout:?}\n{}",
                self.name,
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// After the child exited: waits (until `until` at most) for the stderr thread to
    /// copy the rest of the pipe.
    fn settle_stderr(&self, until: Instant) {
        while !self.stderr_reader.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last line seen with this event, if any.
    pub fn last(&self, event: &str) -> Option<&Value> {
        self.seen.iter().rev().find(|v| v["event"] == event)
    }

    /// Sends a signal to the child (by its pid, which we started).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "{}: kill -{signal} failed", self.name);
    }

    /// What the process wrote to stderr so far (all of it once `wait_exit` returned).
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// Everything the process said, for failure messages.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for v in self
            .seen
            .iter()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            out.push_str(&format!("  {v}\n"));
        }
        out.push_str(&format!(
            "  stderr: {}",
            self.stderr.lock().expect("stderr lock")
        ));
        out
    }
}

impl Drop for JsonProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
