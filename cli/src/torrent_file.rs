//! Loading a .torrent file named on the command line (`info`, `download`, `seed`), with
//! errors in the user's terms: which file, and what is wrong with it as a torrent. The
//! parser's internals (a byte offset in the bencode) are kept for `--verbose`.

use std::io::{ErrorKind, Read};
use std::path::Path;

use unchoke_core::metainfo::{Metainfo, MetainfoError, ShapeLimits};

use crate::error::CliError;
use crate::human;

/// Torrent files larger than this are refused before reading them whole: the largest real
/// ones (millions of pieces) are a few hundred MiB at worst.
const MAX_TORRENT_FILE: u64 = 256 << 20;

/// Reads and parses the .torrent file at `path`.
pub(crate) fn load(path: &Path) -> Result<Metainfo, CliError> {
    let bytes = read(path)?;
    parse(path, &bytes)
}

/// Reads and parses the .torrent file at `path`, refusing a torrent whose shape is beyond
/// `limits` (`download`, `seed`). The file count is checked on the raw bytes first, so a
/// torrent listing a million files is refused without decoding it (which would hold
/// hundreds of MB); the path lengths once it is parsed.
pub(crate) fn load_within(path: &Path, limits: &ShapeLimits) -> Result<Metainfo, CliError> {
    let shown = path.display();
    let bytes = read(path)?;
    limits
        .precheck_torrent(&bytes)
        .map_err(|e| CliError::failure(format!("`{shown}`: {e}")))?;
    let metainfo = parse(path, &bytes)?;
    metainfo
        .info
        .check_shape(limits)
        .map_err(|e| CliError::failure(format!("`{shown}`: {e}")))?;
    Ok(metainfo)
}

/// The bytes of the file at `path`, refusing what cannot be a torrent file (a directory,
/// something huge).
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => CliError::failure(format!("`{shown}`: no such file")),
        ErrorKind::PermissionDenied => {
            CliError::failure(format!("`{shown}`: permission denied: cannot read it"))
        }
        _ => CliError::failure(format!("`{shown}`: cannot open it: {e}")),
    })?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(CliError::failure(format!(
            "`{shown}` is a directory, not a .torrent file"
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_TORRENT_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::failure(format!("`{shown}`: cannot read it: {e}")))?;
    if bytes.len() as u64 > MAX_TORRENT_FILE {
        return Err(CliError::failure(format!(
            "`{shown}` is not a .torrent file (larger than {})",
            human::size(MAX_TORRENT_FILE)
        )));
    }
    Ok(bytes)
}

/// Parses `bytes`, read from `path`. Bytes that are not a bencoded dictionary with an
/// `info` key are "not a .torrent file"; a torrent whose contents break a rule is a
/// damaged one, and the rule is named.
pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Metainfo, CliError> {
    Metainfo::from_bytes(bytes).map_err(|e| {
        let shown = path.display();
        let not_a_torrent = match &e {
            MetainfoError::Bencode(_) | MetainfoError::NotADictionary { .. } => true,
            MetainfoError::MissingKey { key } => key == "info",
            _ => false,
        };
        if not_a_torrent {
            CliError::failure(format!("`{shown}` is not a .torrent file"))
                .with_detail(e.to_string())
        } else {
            CliError::failure(format!("`{shown}` is a damaged .torrent file: {e}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn garbage_is_not_a_torrent_with_the_detail_kept_for_verbose() {
        let e = parse(Path::new("x.bin"), b"\x00\xffhello").unwrap_err();
        assert_eq!(e.kind, Kind::Failure);
        assert_eq!(e.message, "`x.bin` is not a .torrent file");
        assert!(e.detail.is_some(), "{e:?}");
        let e = parse(Path::new("l.torrent"), b"li1ee").unwrap_err();
        assert_eq!(e.message, "`l.torrent` is not a .torrent file");
    }

    #[test]
    fn missing_and_directory_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("x.torrent");
        let e = load(&missing).unwrap_err();
        assert!(e.message.ends_with("x.torrent`: no such file"), "{e:?}");
        let e = load(dir.path()).unwrap_err();
        assert!(
            e.message.ends_with("` is a directory, not a .torrent file"),
            "{e:?}"
        );
    }
}
