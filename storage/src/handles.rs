//! The bounded cache of open file handles (least recently used evicted), and how a
//! [`FileStorage`] gets a handle for a file: from the cache, or opened below the save
//! directory without following links.

use std::fs::File;
use std::io;
use std::sync::Arc;

use crate::open::{OpenMode, open_below};
use crate::{FileStorage, StorageError, lock};

/// A cached open file.
#[derive(Debug)]
pub(crate) struct Handle {
    file: Arc<File>,
    writable: bool,
    /// Tick of the last use, for least-recently-used eviction.
    used: u64,
}

/// The bounded set of open handles.
#[derive(Debug)]
pub(crate) struct HandleCache {
    /// By file index (so a lookup is O(1)).
    slots: Vec<Option<Handle>>,
    /// The indexes whose slot is `Some` (so eviction scans at most `max_open_files`).
    open: Vec<usize>,
    tick: u64,
}

impl HandleCache {
    /// An empty cache for a torrent of `files` files.
    pub(crate) fn new(files: usize) -> Self {
        HandleCache {
            slots: (0..files).map(|_| None).collect(),
            open: Vec::new(),
            tick: 0,
        }
    }

    /// Whether the cached handle of file `index` is writable (`None`: none cached).
    #[cfg(test)]
    pub(crate) fn writable(&self, index: usize) -> Option<bool> {
        self.slots.get(index)?.as_ref().map(|h| h.writable)
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The cached handle for `index` if it can serve (`write` needs a writable one).
    pub(crate) fn lookup(&mut self, index: usize, write: bool) -> Option<Arc<File>> {
        let tick = self.next_tick();
        let h = self.slots.get_mut(index)?.as_mut()?;
        if h.writable || !write {
            h.used = tick;
            return Some(h.file.clone());
        }
        None
    }

    /// Caches a freshly opened handle (or, if another thread cached one at least as capable
    /// meanwhile, returns that one). Evicted handles are pushed to `evicted` so the caller
    /// closes them after releasing the lock.
    pub(crate) fn insert(
        &mut self,
        index: usize,
        file: Arc<File>,
        writable: bool,
        max_open: usize,
        evicted: &mut Vec<Handle>,
    ) -> Arc<File> {
        let used = self.next_tick();
        let Some(slot) = self.slots.get_mut(index) else {
            return file;
        };
        match slot {
            Some(h) if h.writable || !writable => {
                h.used = used;
                return h.file.clone();
            }
            Some(h) => {
                // Upgrade a read-only handle; holders of the old one finish with it.
                let old = std::mem::replace(
                    h,
                    Handle {
                        file: file.clone(),
                        writable,
                        used,
                    },
                );
                evicted.push(old);
                return file;
            }
            None => {
                *slot = Some(Handle {
                    file: file.clone(),
                    writable,
                    used,
                });
                self.open.push(index);
            }
        }
        while self.open.len() > max_open {
            let victim = self
                .open
                .iter()
                .enumerate()
                .filter(|&(_, &i)| i != index)
                .min_by_key(|&(_, &i)| self.slots.get(i).and_then(|s| s.as_ref()).map(|h| h.used))
                .map(|(pos, _)| pos);
            let Some(pos) = victim else { break };
            let i = self.open.swap_remove(pos);
            if let Some(h) = self.slots.get_mut(i).and_then(Option::take) {
                evicted.push(h);
            }
        }
        file
    }
}

impl FileStorage {
    /// An open handle for file `index`, writable if `write`, from the cache or opened now.
    pub(crate) fn handle(&self, index: usize, write: bool) -> Result<Arc<File>, StorageError> {
        if let Some(f) = lock(&self.handles).lookup(index, write) {
            return Ok(f);
        }
        // Open without holding the lock: opening can be slow (network file systems).
        let slot = self.slot(index)?;
        let (file, writable) = if write {
            self.check_writable()?;
            // Created (with its directories, at full length) if missing: files are made
            // lazily, on the first write that touches them.
            (self.open_for_write(index)?, true)
        } else if !self.access.writable() {
            (
                open_below(&self.base, &slot.rel, OpenMode::ReadFollow)?,
                false,
            )
        } else {
            // Read-write if allowed, so the handle also serves later writes; else read-only.
            match open_below(&self.base, &slot.rel, OpenMode::Write { create: false }) {
                Ok(f) => (f, true),
                // Not writable (permissions, a program being run): serve it read-only.
                Err(e)
                    if e.io_error()
                        .is_some_and(|e| e.kind() != io::ErrorKind::NotFound) =>
                {
                    (
                        open_below(&self.base, &slot.rel, OpenMode::ReadNoFollow)?,
                        false,
                    )
                }
                Err(e) => return Err(e),
            }
        };
        let mut evicted = Vec::new();
        let file = lock(&self.handles).insert(
            index,
            Arc::new(file),
            writable,
            self.max_open,
            &mut evicted,
        );
        // Close evicted handles (if nobody else holds them) outside the lock.
        drop(evicted);
        Ok(file)
    }

    /// How many handles the cache holds (for tests).
    #[cfg(test)]
    pub(crate) fn open_handles(&self) -> usize {
        lock(&self.handles).open.len()
    }
}
