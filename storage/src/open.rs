//! Opening a torrent's files so that a write can never leave the save directory.
//!
//! The save directory itself is opened normally (it may be a symlink: that is the user's
//! choice). Below it, on Unix, every component is opened with `openat` + `O_NOFOLLOW`
//! relative to the directory handle opened before it, and missing directories are made with
//! `mkdirat`: a symlink planted between a check and the open cannot redirect a write,
//! because no path below the save directory is ever resolved twice. Elsewhere, each
//! component is checked with `symlink_metadata` before the open (racy, but the best the
//! standard library offers).
//!
//! Opens use `O_NONBLOCK` so that a FIFO where a file should be cannot hang the open; the
//! handle is then checked to be a regular file. Regular files ignore the flag.

use std::fs::{File, OpenOptions};
use std::io;
#[cfg(not(unix))]
use std::path::PathBuf;
use std::path::{Component, Path};

use crate::{FileKind, StorageError, StorageOp};

/// How to open a file below the save directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OpenMode {
    /// Read only, following symlinks (seeding: hash verification vouches for the content,
    /// and nothing is ever written).
    ReadFollow,
    /// Read and write, no symlink followed below the save directory; `create`: make the
    /// file and its missing directories.
    Write {
        /// Create what is missing.
        create: bool,
    },
    /// Read only, no symlink followed below the save directory (reads of a download).
    ReadNoFollow,
}

fn io_at(op: StorageOp, path: &Path, source: io::Error) -> StorageError {
    StorageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The kind of a file that is not a regular one, from its metadata.
pub(super) fn kind_of(ft: &std::fs::FileType) -> FileKind {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return FileKind::Fifo;
        }
        if ft.is_socket() {
            return FileKind::Socket;
        }
        if ft.is_block_device() || ft.is_char_device() {
            return FileKind::Device;
        }
    }
    if ft.is_dir() {
        FileKind::Directory
    } else if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_file() {
        FileKind::Regular
    } else {
        FileKind::Other
    }
}

/// The error for a non-regular file found at `path`.
fn not_regular(path: &Path, kind: FileKind) -> StorageError {
    if kind == FileKind::Symlink {
        StorageError::Symlink {
            path: path.to_path_buf(),
        }
    } else {
        StorageError::NotRegular {
            path: path.to_path_buf(),
            kind,
        }
    }
}

/// Checks that an opened handle is a regular file.
fn regular(file: File, path: &Path) -> Result<File, StorageError> {
    let meta = file
        .metadata()
        .map_err(|e| io_at(StorageOp::Stat, path, e))?;
    let kind = kind_of(&meta.file_type());
    if kind != FileKind::Regular {
        return Err(not_regular(path, kind));
    }
    Ok(file)
}

/// The components of `rel`, which must all be plain names (the metainfo parser already
/// refuses `..` and absolute paths; this is the storage layer's own guard).
fn names(base: &Path, rel: &Path) -> Result<Vec<std::ffi::OsString>, StorageError> {
    rel.components()
        .map(|c| match c {
            Component::Normal(n) => Ok(n.to_os_string()),
            _ => Err(StorageError::OutsideSaveDir {
                path: base.join(rel),
            }),
        })
        .collect()
}

/// Opens `base/rel` as `mode` says. See the module documentation.
pub(super) fn open_below(base: &Path, rel: &Path, mode: OpenMode) -> Result<File, StorageError> {
    let full = base.join(rel);
    let names = names(base, rel)?;
    if mode == OpenMode::ReadFollow {
        // Read-only may follow links, but must neither block on a FIFO nor open a device.
        let meta = std::fs::metadata(&full).map_err(|e| io_at(StorageOp::Open, &full, e))?;
        let kind = kind_of(&meta.file_type());
        if kind != FileKind::Regular {
            return Err(not_regular(&full, kind));
        }
        let mut o = OpenOptions::new();
        o.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
        }
        let f = o
            .open(&full)
            .map_err(|e| io_at(StorageOp::Open, &full, e))?;
        return regular(f, &full);
    }
    let (write, create) = match mode {
        OpenMode::Write { create } => (true, create),
        _ => (false, false),
    };
    #[cfg(unix)]
    {
        open_unix(base, &names, write, create, &full)
    }
    #[cfg(not(unix))]
    {
        open_portable(base, &names, write, create, &full)
    }
}

#[cfg(unix)]
fn open_unix(
    base: &Path,
    names: &[std::ffi::OsString],
    write: bool,
    create: bool,
    full: &Path,
) -> Result<File, StorageError> {
    use rustix::fs::{Mode, OFlags, mkdirat, openat};
    use rustix::io::Errno;

    let Some((last, dirs)) = names.split_last() else {
        return Err(StorageError::OutsideSaveDir {
            path: full.to_path_buf(),
        });
    };
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    // The save directory: followed if it is a link (the user chose it).
    let mut dir = openat(rustix::fs::CWD, base, dir_flags, Mode::empty())
        .map_err(|e| io_at(StorageOp::Open, base, e.into()))?;
    let mut at = base.to_path_buf();
    for name in dirs {
        at.push(name);
        let open = |d: &rustix::fd::OwnedFd| {
            openat(
                d,
                name.as_os_str(),
                dir_flags | OFlags::NOFOLLOW,
                Mode::empty(),
            )
        };
        let next = match open(&dir) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => {
                match mkdirat(&dir, name.as_os_str(), Mode::from_raw_mode(0o777)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(io_at(StorageOp::CreateDir, &at, e.into())),
                }
                open(&dir).map_err(|e| component_error(&at, e))?
            }
            Err(e) => return Err(component_error(&at, e)),
        };
        dir = next;
    }
    let mut flags = OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
    flags |= if write { OFlags::RDWR } else { OFlags::RDONLY };
    if create {
        flags |= OFlags::CREATE;
    }
    // "open" also when creating: the user's question is why the file could not be used.
    let op = StorageOp::Open;
    let fd = match openat(&dir, last.as_os_str(), flags, Mode::from_raw_mode(0o666)) {
        Ok(fd) => fd,
        Err(Errno::LOOP) | Err(Errno::MLINK) => {
            return Err(StorageError::Symlink {
                path: full.to_path_buf(),
            });
        }
        Err(Errno::ISDIR) => {
            return Err(StorageError::NotRegular {
                path: full.to_path_buf(),
                kind: FileKind::Directory,
            });
        }
        Err(e) => return Err(io_at(op, full, e.into())),
    };
    regular(File::from(fd), full)
}

/// The error for a directory component that could not be opened without following links.
#[cfg(unix)]
fn component_error(at: &Path, e: rustix::io::Errno) -> StorageError {
    use rustix::io::Errno;
    match e {
        Errno::LOOP | Errno::MLINK => StorageError::Symlink {
            path: at.to_path_buf(),
        },
        Errno::NOTDIR => {
            let kind = std::fs::symlink_metadata(at)
                .map(|m| kind_of(&m.file_type()))
                .unwrap_or(FileKind::Other);
            // NOTDIR with O_NOFOLLOW on a link to a directory on some systems.
            not_regular_dir(at, kind)
        }
        e => io_at(StorageOp::Open, at, e.into()),
    }
}

/// The error for something other than a directory where the torrent needs one.
fn not_regular_dir(at: &Path, kind: FileKind) -> StorageError {
    if kind == FileKind::Symlink {
        StorageError::Symlink {
            path: at.to_path_buf(),
        }
    } else {
        StorageError::NotADirectory {
            path: at.to_path_buf(),
            kind,
        }
    }
}

#[cfg(not(unix))]
fn open_portable(
    base: &Path,
    names: &[std::ffi::OsString],
    write: bool,
    create: bool,
    full: &Path,
) -> Result<File, StorageError> {
    let mut at: PathBuf = base.to_path_buf();
    let count = names.len();
    for (i, name) in names.iter().enumerate() {
        at.push(name);
        match std::fs::symlink_metadata(&at) {
            Ok(m) => {
                let kind = kind_of(&m.file_type());
                if kind == FileKind::Symlink {
                    return Err(StorageError::Symlink { path: at });
                }
                if i + 1 < count && kind != FileKind::Directory {
                    return Err(not_regular_dir(&at, kind));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create && i + 1 < count => {
                std::fs::create_dir(&at).or_else(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        Ok(())
                    } else {
                        Err(io_at(StorageOp::CreateDir, &at, e))
                    }
                })?;
            }
            Err(_) => {}
        }
    }
    let f = OpenOptions::new()
        .read(true)
        .write(write)
        .create(create)
        .truncate(false)
        .open(full)
        .map_err(|e| io_at(StorageOp::Open, full, e))?;
    regular(f, full)
}
