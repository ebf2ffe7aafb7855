//! `--watch-dir DIR`: .torrent files that appear in a folder are added (into the download
//! directory, started), then renamed `NAME.torrent.added`, as Transmission does; one that
//! is not a usable torrent is renamed `NAME.torrent.invalid`. Nothing there is deleted.
//!
//! Polled from the daemon's housekeeping (between RPC requests), at most every
//! [`POLL_EVERY`], with bounded work per poll so that a folder of thousands of files does
//! not stall the RPC. A file is taken only once its size and modification time were the
//! same at two polls in a row: a browser or `scp` still writing it would otherwise have it
//! read half-written and called invalid.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use unchoke_core::metainfo::Metainfo;

use super::rpc::{AddRequest, AddSource, Engine};

/// How often the folder is listed.
pub(crate) const POLL_EVERY: Duration = Duration::from_secs(2);
/// `.torrent` files looked at per poll (the rest wait for the next).
const MAX_ENTRIES: usize = 100;
/// Torrents added per poll: each may check existing data, and the RPC waits meanwhile.
const MAX_ADDS: usize = 10;
/// The largest .torrent file read (as the RPC's).
const MAX_TORRENT_BYTES: u64 = 16 << 20;
/// The suffix a file gets once added (or found already loaded).
const ADDED: &str = ".added";
/// The suffix a file gets when it is not a usable torrent.
const INVALID: &str = ".invalid";

/// What identifies one version of a file between polls.
type Stamp = (u64, Option<SystemTime>);

/// The watched folder and what the last poll saw.
pub(crate) struct WatchDir {
    dir: PathBuf,
    last_poll: Option<Instant>,
    /// `.torrent` files seen at the last poll, by name, with their size and mtime.
    seen: HashMap<OsString, Stamp>,
    /// Files handled but left in place (the add failed, the rename failed): not tried
    /// again until they change.
    handled: HashMap<OsString, Stamp>,
    /// The folder could not be listed at the last poll (said once, not every poll).
    failing: bool,
}

impl WatchDir {
    /// Watches `dir`, which must be a directory (not created: a typo should not make a new
    /// folder nobody drops files into).
    pub(crate) fn new(dir: &Path) -> Result<WatchDir, String> {
        let dir = dir
            .canonicalize()
            .map_err(|e| format!("watch directory {}: {e}", dir.display()))?;
        if !dir.is_dir() {
            return Err(format!(
                "watch directory {}: not a directory",
                dir.display()
            ));
        }
        Ok(WatchDir {
            dir,
            last_poll: None,
            seen: HashMap::new(),
            handled: HashMap::new(),
            failing: false,
        })
    }

    /// The folder watched (resolved).
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// Looks at the folder if [`POLL_EVERY`] passed since the last look, and adds what
    /// is ready.
    pub(crate) fn poll(&mut self, engine: &mut dyn Engine) {
        let now = Instant::now();
        if self
            .last_poll
            .is_some_and(|last| now.duration_since(last) < POLL_EVERY)
        {
            return;
        }
        self.last_poll = Some(now);
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                self.failing = false;
                entries
            }
            Err(e) => {
                if !self.failing {
                    log(&format!("cannot list {}: {e}", self.dir.display()));
                }
                self.failing = true;
                return;
            }
        };
        let mut now_seen = HashMap::new();
        let mut ready = Vec::new();
        // Names are cheap to list (no `stat`); the renamed `.added` files that pile up
        // there must not crowd new ones out of the bound.
        let torrents = entries
            .flatten()
            .filter(|e| is_torrent_name(&e.file_name()))
            .take(MAX_ENTRIES);
        for entry in torrents {
            let name = entry.file_name();
            // Not followed: a symlink (to anywhere) or anything but a plain file is left
            // alone.
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if !meta.file_type().is_file() {
                continue;
            }
            let stamp = (meta.len(), meta.modified().ok());
            if self.handled.get(&name) == Some(&stamp) {
                now_seen.insert(name, stamp);
                continue;
            }
            self.handled.remove(&name);
            if self.seen.get(&name) == Some(&stamp) && ready.len() < MAX_ADDS {
                ready.push((name.clone(), stamp));
            }
            now_seen.insert(name, stamp);
        }
        // Forget what vanished; what stays unchanged is ready at the next poll.
        self.seen = now_seen;
        self.handled.retain(|name, _| self.seen.contains_key(name));
        for (name, stamp) in ready {
            if !self.take(engine, &name) {
                self.handled.insert(name, stamp);
            }
        }
    }

    /// Adds one file and renames it; `false` when it stays in place.
    fn take(&mut self, engine: &mut dyn Engine, name: &OsStr) -> bool {
        let path = self.dir.join(name);
        let shown = path.display().to_string();
        let bytes = match read_plain_file(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                log(&format!("{shown}: cannot read it: {e}"));
                return false;
            }
        };
        // Parsed here to tell a bad file (renamed `.invalid`) from an add that failed for
        // the daemon's reasons (a full disk: the file stays to be tried again).
        if let Err(e) = Metainfo::from_bytes(&bytes) {
            log(&format!(
                "{shown}: not a usable .torrent file ({e}); renamed {INVALID}"
            ));
            return rename_aside(&path, INVALID);
        }
        let added = engine.add(AddRequest {
            source: AddSource::Metainfo(bytes),
            download_dir: None,
            paused: false,
        });
        match added {
            Ok(a) if a.duplicate => {
                log(&format!(
                    "{shown}: already loaded as torrent {} ({}); renamed {ADDED}",
                    a.id, a.name
                ));
                rename_aside(&path, ADDED)
            }
            Ok(a) => {
                log(&format!("added torrent {} ({}) from {shown}", a.id, a.name));
                rename_aside(&path, ADDED)
            }
            Err(e) => {
                log(&format!("{shown}: could not add it: {e}"));
                false
            }
        }
    }
}

/// `*.torrent`, any case.
fn is_torrent_name(name: &OsStr) -> bool {
    let bytes = name.as_encoded_bytes();
    bytes.len() > ".torrent".len()
        && bytes[bytes.len() - ".torrent".len()..].eq_ignore_ascii_case(b".torrent")
}

/// The file's bytes, bounded, refusing a symlink put there since it was listed.
fn read_plain_file(path: &Path) -> Result<Vec<u8>, String> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| e.to_string())?;
    if !file.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err("not a plain file".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_TORRENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_TORRENT_BYTES {
        return Err(format!("larger than {MAX_TORRENT_BYTES} bytes"));
    }
    Ok(bytes)
}

/// Renames `path` to `path` + `suffix` (`x.torrent.added`), or, that name being taken,
/// `x.torrent.2.added` and so on: an older file of the user's is never overwritten.
/// `false` (said) when it could not be renamed.
fn rename_aside(path: &Path, suffix: &str) -> bool {
    let mut base = path.as_os_str().to_os_string();
    for n in 1..100 {
        let mut target = base.clone();
        if n > 1 {
            target.push(format!(".{n}"));
        }
        target.push(suffix);
        let target = PathBuf::from(target);
        // A symlink counts as taken too (symlink_metadata does not follow it).
        if std::fs::symlink_metadata(&target).is_ok() {
            continue;
        }
        return match std::fs::rename(path, &target) {
            Ok(()) => true,
            Err(e) => {
                log(&format!(
                    "{}: cannot rename it to {}: {e}",
                    path.display(),
                    target.display()
                ));
                false
            }
        };
    }
    base.push(suffix);
    log(&format!(
        "{}: cannot rename it: {} and 98 numbered variants exist",
        path.display(),
        Path::new(&base).display()
    ));
    false
}

/// One line on stderr, as the daemon's other messages.
fn log(message: &str) {
    eprintln!(
        "unchoke daemon: watch-dir: {}",
        crate::output::printable(message)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torrent_names_in_any_case() {
        for ok in ["a.torrent", "A.TORRENT", "x y.Torrent"] {
            assert!(is_torrent_name(OsStr::new(ok)), "{ok}");
        }
        for bad in [".torrent", "a.torrent.added", "a.torrent.invalid", "a.txt"] {
            assert!(!is_torrent_name(OsStr::new(bad)), "{bad}");
        }
    }

    #[test]
    fn renames_never_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = dir.path().join("a.torrent");
        std::fs::write(&first, b"one").expect("write");
        assert!(rename_aside(&first, ADDED));
        std::fs::write(&first, b"two").expect("write");
        assert!(rename_aside(&first, ADDED));
        let read = |n: &str| std::fs::read(dir.path().join(n)).expect("read");
        assert_eq!(read("a.torrent.added"), b"one");
        assert_eq!(read("a.torrent.2.added"), b"two");
        assert!(!first.exists());
    }
}
