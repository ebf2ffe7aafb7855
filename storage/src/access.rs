//! What a [`FileStorage`](crate::FileStorage) may do to the files under its save path ([`StorageAccess`])
//! and how it is set up ([`StorageOptions`]).

/// The default bound on cached open file handles.
pub const DEFAULT_MAX_OPEN_FILES: usize = 64;

/// What a [`FileStorage`](crate::FileStorage) may do to the files under its save path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageAccess {
    /// Downloading: missing files and directories are created and short files extended;
    /// existing bytes are kept. A file longer than the torrent says is an error
    /// ([`StorageError::TooLong`](crate::StorageError::TooLong)): its extra bytes are not ours to cut.
    #[default]
    ReadWrite,
    /// Like [`StorageAccess::ReadWrite`], but a longer file is cut to the torrent's length
    /// (the user asked for it).
    ReadWriteTruncate,
    /// Seeding: files are opened read-only (following symlinks); nothing is ever created,
    /// extended, truncated or written ([`StorageError::ReadOnly`](crate::StorageError::ReadOnly)).
    ReadOnly,
}

impl StorageAccess {
    /// Whether writes are allowed.
    pub fn writable(self) -> bool {
        self != StorageAccess::ReadOnly
    }
}

/// How a [`FileStorage`](crate::FileStorage) behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageOptions {
    /// Most file handles kept open at once (0 is taken as 1). Default
    /// [`DEFAULT_MAX_OPEN_FILES`].
    pub max_open_files: usize,
    /// What the storage may do to files. Default [`StorageAccess::ReadWrite`].
    pub access: StorageAccess,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            access: StorageAccess::default(),
        }
    }
}
