//! What a look at the disk finds where the torrent's files go ([`FileKind`],
//! [`FileStatus`], [`FileReport`]), worded for users ([`thousands`]).

use std::path::PathBuf;

/// What kind of thing sits where the torrent expects a file or a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A block or character device.
    Device,
    /// Anything else.
    Other,
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::Regular => "a regular file",
            FileKind::Directory => "a directory",
            FileKind::Symlink => "a symbolic link",
            FileKind::Fifo => "a named pipe (FIFO)",
            FileKind::Socket => "a socket",
            FileKind::Device => "a device",
            FileKind::Other => "not a regular file",
        })
    }
}

/// `n` with thousands separators (`3,000,000`), how sizes are shown to users.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What [`FileStorage::inspect`](crate::FileStorage::inspect) found for one file of the torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileStatus {
    /// A regular file of exactly the torrent's size.
    Ok,
    /// Nothing there.
    Missing,
    /// A regular file of another size.
    WrongSize {
        /// Its size now.
        actual: u64,
    },
    /// Something other than a regular file at `at` (the file itself or a directory on its
    /// way).
    NotRegular {
        /// Where.
        at: PathBuf,
        /// What is there.
        kind: FileKind,
    },
    /// A symbolic link at `at` (the file or a directory on its way), which a writable
    /// storage does not follow.
    Symlink {
        /// Where.
        at: PathBuf,
    },
}

/// One file's entry in [`FileStorage::inspect`](crate::FileStorage::inspect)'s report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    /// The file's index in the torrent.
    pub index: usize,
    /// Its path on disk.
    pub path: PathBuf,
    /// Its size in the torrent.
    pub expected: u64,
    /// What is there.
    pub status: FileStatus,
}

impl std::fmt::Display for FileReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.path.display();
        match &self.status {
            FileStatus::Ok => write!(f, "{p} is present ({} bytes)", thousands(self.expected)),
            FileStatus::Missing => write!(f, "{p} is missing"),
            FileStatus::WrongSize { actual } => write!(
                f,
                "{p} is {} bytes; the torrent says {}",
                thousands(*actual),
                thousands(self.expected)
            ),
            FileStatus::NotRegular { at, kind } => {
                write!(f, "{} is {kind}, not a regular file", at.display())
            }
            FileStatus::Symlink { at } => write!(
                f,
                "{} is a symbolic link; unchoke does not write through links",
                at.display()
            ),
        }
    }
}
