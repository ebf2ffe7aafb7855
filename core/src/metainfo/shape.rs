//! Limits on a torrent's *shape* — how many files it lists and how long their paths are —
//! checked after parsing and before anything is created on disk or allocated per file.
//!
//! Why: parsing already refuses what is unsafe (`..`, absolute paths, components longer
//! than [`MAX_COMPONENT_LEN`]), but a well-formed torrent listing a million files would
//! make a download create a million files and hold per-file state for each before a single
//! peer is seen. A user-visible, configurable bound turns that into a clear refusal. The
//! check is pure and allocation-free so every entry point (a `.torrent` file, metadata
//! fetched for a magnet link, `unchoke info`) can run it cheaply.

use super::{Info, MAX_COMPONENT_LEN};

/// The bounds a torrent's shape must fit in; `Default` gives the documented values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapeLimits {
    /// Most files (padding files not counted: they are never created) a torrent may list
    /// (default 100,000).
    pub max_files: usize,
    /// Longest relative path of one file, in bytes of `name/dir/file` joined with `/`
    /// (default 4,096, Linux's `PATH_MAX`).
    pub max_path_len: usize,
    /// Longest single path component (the torrent's name included), in bytes (default and
    /// upper bound [`MAX_COMPONENT_LEN`], which parsing already enforces).
    pub max_component_len: usize,
}

/// Default for [`ShapeLimits::max_files`].
pub const DEFAULT_MAX_FILES: usize = 100_000;

/// Default for [`ShapeLimits::max_path_len`].
pub const DEFAULT_MAX_PATH_LEN: usize = 4_096;

impl Default for ShapeLimits {
    fn default() -> Self {
        ShapeLimits {
            max_files: DEFAULT_MAX_FILES,
            max_path_len: DEFAULT_MAX_PATH_LEN,
            max_component_len: MAX_COMPONENT_LEN,
        }
    }
}

/// Why a torrent's shape is refused (see [`Info::check_shape`]); the messages speak to the
/// user and name the option that changes the limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// More files than [`ShapeLimits::max_files`].
    #[error(
        "the torrent lists {} files; unchoke accepts at most {} (--max-files to change)",
        Thousands(*files as u64),
        Thousands(*max as u64)
    )]
    TooManyFiles {
        /// Files listed (padding files not counted).
        files: usize,
        /// The limit.
        max: usize,
    },
    /// A file's relative path is longer than [`ShapeLimits::max_path_len`].
    #[error(
        "file {index} of the torrent has a path of {} bytes; unchoke accepts at most {}",
        Thousands(*len as u64),
        Thousands(*max as u64)
    )]
    PathTooLong {
        /// Index of the file in `info.files`.
        index: usize,
        /// Its path's length in bytes, components joined with `/`.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A path component is longer than [`ShapeLimits::max_component_len`].
    #[error(
        "file {index} of the torrent has a name part of {len} bytes; unchoke accepts at most {max}"
    )]
    ComponentTooLong {
        /// Index of the file in `info.files`.
        index: usize,
        /// The component's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl Info {
    /// How many files would be created: the entries of `files` that are not padding.
    pub fn real_file_count(&self) -> usize {
        self.files.iter().filter(|f| !f.padding).count()
    }

    /// Checks this torrent against `limits` without allocating: the file count first (so a
    /// huge torrent is refused before its paths are walked), then each file's path length
    /// and component lengths, in torrent order. Padding files are skipped: they are never
    /// created.
    pub fn check_shape(&self, limits: &ShapeLimits) -> Result<(), ShapeError> {
        let files = self.real_file_count();
        if files > limits.max_files {
            return Err(ShapeError::TooManyFiles {
                files,
                max: limits.max_files,
            });
        }
        let component_max = limits.max_component_len;
        if self.name.len() > component_max {
            return Err(ShapeError::ComponentTooLong {
                index: 0,
                len: self.name.len(),
                max: component_max,
            });
        }
        for (index, file) in self.files.iter().enumerate() {
            if file.padding {
                continue;
            }
            let mut len = self.name.len();
            if self.multi_file {
                for c in &file.path {
                    if c.len() > component_max {
                        return Err(ShapeError::ComponentTooLong {
                            index,
                            len: c.len(),
                            max: component_max,
                        });
                    }
                    // One byte for the `/` before each component.
                    len = len.saturating_add(1).saturating_add(c.len());
                }
            }
            if len > limits.max_path_len {
                return Err(ShapeError::PathTooLong {
                    index,
                    len,
                    max: limits.max_path_len,
                });
            }
        }
        Ok(())
    }
}

/// Displays a count with `,` between thousands (`1,000,000`), as the messages are read by
/// people.
struct Thousands(u64);

impl std::fmt::Display for Thousands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.0.to_string();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                f.write_str(",")?;
            }
            write!(f, "{ch}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::FileEntry;

    fn info(paths: &[&[&str]]) -> Info {
        let mut offset = 0;
        let files = paths
            .iter()
            .map(|p| {
                let f = FileEntry {
                    path: p.iter().map(|s| s.to_string()).collect(),
                    length: 10,
                    offset,
                    padding: false,
                    executable: false,
                    hidden: false,
                };
                offset += 10;
                f
            })
            .collect::<Vec<_>>();
        Info {
            name: "top".into(),
            piece_length: 16384,
            piece_hashes: vec![[0; 20]],
            private: false,
            multi_file: true,
            total_length: offset,
            files,
        }
    }

    fn limits(max_files: usize, max_path_len: usize, max_component_len: usize) -> ShapeLimits {
        ShapeLimits {
            max_files,
            max_path_len,
            max_component_len,
        }
    }

    #[test]
    fn file_count_limit_is_inclusive_and_names_the_option() {
        let names: Vec<String> = (0..1001).map(|i| format!("f{i}")).collect();
        let paths: Vec<Vec<&str>> = names.iter().map(|n| vec![n.as_str()]).collect();
        let refs: Vec<&[&str]> = paths.iter().map(|p| p.as_slice()).collect();
        let big = info(&refs);
        assert_eq!(big.check_shape(&limits(1001, 4096, 255)), Ok(()));
        let e = big
            .check_shape(&limits(1000, 4096, 255))
            .expect_err("1,001 > 1,000");
        assert_eq!(
            e,
            ShapeError::TooManyFiles {
                files: 1001,
                max: 1000
            }
        );
        assert_eq!(
            e.to_string(),
            "the torrent lists 1,001 files; unchoke accepts at most 1,000 (--max-files to change)"
        );
    }

    #[test]
    fn padding_files_do_not_count() {
        let mut t = info(&[&["a"], &[".pad", "1"], &["b"]]);
        t.files[1].padding = true;
        assert_eq!(t.real_file_count(), 2);
        assert_eq!(t.check_shape(&limits(2, 4096, 255)), Ok(()));
        assert!(t.check_shape(&limits(1, 4096, 255)).is_err());
    }

    #[test]
    fn path_length_counts_name_components_and_separators() {
        // "top/abc/defg" is 3 + 1 + 3 + 1 + 4 = 12 bytes.
        let t = info(&[&["x"], &["abc", "defg"]]);
        assert_eq!(t.check_shape(&limits(10, 12, 255)), Ok(()));
        assert_eq!(
            t.check_shape(&limits(10, 11, 255)),
            Err(ShapeError::PathTooLong {
                index: 1,
                len: 12,
                max: 11
            })
        );
    }

    #[test]
    fn component_length_is_checked_for_name_and_path() {
        let t = info(&[&["abcd"]]);
        assert_eq!(t.check_shape(&limits(10, 4096, 4)), Ok(()));
        assert_eq!(
            t.check_shape(&limits(10, 4096, 3)),
            Err(ShapeError::ComponentTooLong {
                index: 0,
                len: 4,
                max: 3
            })
        );
        let mut single = info(&[&["ignored-for-single-file"]]);
        single.multi_file = false;
        single.name = "longname".into();
        assert!(matches!(
            single.check_shape(&limits(10, 4096, 5)),
            Err(ShapeError::ComponentTooLong { len: 8, .. })
        ));
        // A single-file torrent's path is its name alone.
        assert_eq!(single.check_shape(&limits(10, 8, 255)), Ok(()));
        assert!(single.check_shape(&limits(10, 7, 255)).is_err());
    }

    #[test]
    fn defaults_are_the_documented_values() {
        let d = ShapeLimits::default();
        assert_eq!(d.max_files, 100_000);
        assert_eq!(d.max_path_len, 4096);
        assert_eq!(d.max_component_len, MAX_COMPONENT_LEN);
        assert_eq!(Thousands(1_000_000).to_string(), "1,000,000");
        assert_eq!(Thousands(999).to_string(), "999");
        assert_eq!(Thousands(0).to_string(), "0");
    }
}
