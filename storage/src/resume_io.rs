//! Resume files and the file states they record: taking each file's length and
//! modification time, and reading and atomically writing the resume file.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use unchoke_core::bitfield::Bitfield;
use unchoke_core::resume::{FileState, ResumeData, ResumeError};

use crate::error::io_err;
use crate::{FileStorage, StorageError, StorageOp};

impl FileStorage {
    /// Each file's length and modification time now, in torrent order: `None` for a missing
    /// file, a padding file, or a file whose metadata cannot be read (so it is never
    /// trusted). For [`ResumeData::files`]: take it after [`FileStorage::flush`], once the
    /// pieces to record are written.
    pub fn file_states(&self) -> Vec<Option<FileState>> {
        self.files
            .iter()
            .map(|slot| {
                if slot.padding {
                    return None;
                }
                fs::metadata(&slot.path).ok().map(|m| state_of(&m))
            })
            .collect()
    }

    /// [`FileStorage::file_states`], but an error other than "not found" is returned.
    pub(crate) fn current_states(&self) -> Result<Vec<Option<FileState>>, StorageError> {
        self.files
            .iter()
            .map(|slot| {
                if slot.padding {
                    return Ok(None);
                }
                match fs::metadata(&slot.path) {
                    Ok(m) => Ok(Some(state_of(&m))),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io_err(StorageOp::Stat, &slot.path)(e)),
                }
            })
            .collect()
    }

    /// Resume data for this torrent now: `have`, the pieces that may hold data
    /// (`written`, see [`ResumeData::written`]) and [`FileStorage::file_states`]. Call
    /// [`FileStorage::flush`] first.
    pub fn resume_data(
        &self,
        info_hash: unchoke_core::InfoHash,
        have: Bitfield,
        written: Option<Bitfield>,
    ) -> ResumeData {
        let data = ResumeData::new(info_hash, have, self.file_states());
        match written {
            Some(w) => data.with_written(w),
            None => data,
        }
    }

    /// Writes `data` to `path` atomically: to `<path>.tmp` first, synced, then renamed over
    /// `path` (and the directory synced, where the system allows), so a crash leaves either
    /// the old resume file or the new one, never a torn one. Creates the directory if needed.
    pub fn save_resume(path: &Path, data: &ResumeData) -> Result<(), StorageError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = dir {
            fs::create_dir_all(dir).map_err(io_err(StorageOp::CreateDir, dir))?;
        }
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&data.encode())?;
            f.sync_all()
        })();
        if let Err(e) = written {
            // Best effort: a leftover temporary file is harmless but untidy.
            let _ = fs::remove_file(&tmp);
            return Err(io_err(StorageOp::WriteResume, &tmp)(e));
        }
        if let Err(e) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(StorageOp::WriteResume, path)(e));
        }
        // Make the rename itself durable. Some file systems cannot sync a directory; the new
        // file is in place either way, so failing here would mislead.
        #[cfg(unix)]
        if let Some(dir) = dir {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// Reads a resume file: `Ok(None)` when there is none, [`StorageError::BadResume`] when
    /// it cannot be parsed. Whether it belongs to the torrent is for the caller to check
    /// ([`ResumeData::check_matches`]).
    pub fn load_resume(path: &Path) -> Result<Option<ResumeData>, StorageError> {
        /// Far above any real resume file (a bit per piece and ~60 bytes per file: 256 MiB
        /// is millions of files), so the read is bounded whatever lies at `path`.
        const LIMIT: u64 = 256 << 20;
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(StorageOp::ReadResume, path)(e)),
        };
        let mut bytes = Vec::new();
        file.take(LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err(StorageOp::ReadResume, path))?;
        let bad = |source| StorageError::BadResume {
            path: path.to_path_buf(),
            source,
        };
        if bytes.len() as u64 > LIMIT {
            return Err(bad(ResumeError::TooLarge {
                size: bytes.len() as u64,
                limit: LIMIT,
            }));
        }
        ResumeData::decode(&bytes).map(Some).map_err(bad)
    }
}

pub(crate) fn state_of(m: &fs::Metadata) -> FileState {
    let mtime_nanos = match m.modified() {
        Ok(t) => nanos_since_epoch(t),
        // No modification times on this platform: lengths alone then decide trust.
        Err(_) => 0,
    };
    FileState {
        length: m.len(),
        mtime_nanos,
    }
}

pub(crate) fn nanos_since_epoch(t: SystemTime) -> i128 {
    let clamp = |n: u128| i128::try_from(n).unwrap_or(i128::MAX);
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => clamp(d.as_nanos()),
        Err(before) => -clamp(before.duration().as_nanos()),
    }
}
