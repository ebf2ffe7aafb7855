//! Moving a torrent's files to another save directory ([`relocate`]) and the free space
//! under a directory ([`free_space`]).
//!
//! A move touches only the files it is given (a torrent's own, and its resume file), never
//! through a symlink on either side, and never loses data: a file is `rename`d when both
//! places are on one filesystem; otherwise it is copied, synced, its size compared, and
//! only then is the source removed, one file at a time, so an interruption leaves every
//! file whole in one place or the other. A failure moves the files already moved back.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{StorageError, StorageOp};

fn io_err(op: StorageOp, path: &Path, source: io::Error) -> StorageError {
    StorageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Whether any existing prefix of `root/rel` below `root` (down to `rel` itself) is a
/// symlink: such a path is never moved from or into (nor, in the daemon, deleted or
/// chosen as a download directory). A race with someone planting one afterwards is what
/// the `O_NOFOLLOW` opens of the block IO are for; this is the check before acting.
pub fn symlink_below(root: &Path, rel: &Path) -> bool {
    let mut p = root.to_path_buf();
    for c in rel.components() {
        p.push(c);
        match p.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// Moves the files `files` (paths relative to the save directory, plain names only) from
/// `from` to `to`; a file that is not there (never downloaded) or not a regular file, or
/// reached through a symlink, is left alone. A file already at its new place is an error
/// (nothing is overwritten). Directories left empty under `from` are removed. On an error
/// the files moved so far are moved back (as far as possible) and the error returned.
pub fn relocate(files: &[PathBuf], from: &Path, to: &Path) -> Result<(), StorageError> {
    relocate_with(files, from, to, true)
}

/// [`relocate`], with `rename` allowed or not (the tests force the copy path).
pub(crate) fn relocate_with(
    files: &[PathBuf],
    from: &Path,
    to: &Path,
    rename: bool,
) -> Result<(), StorageError> {
    let mut moved: Vec<&Path> = Vec::new();
    for rel in files {
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            continue;
        }
        if symlink_below(from, rel) {
            continue;
        }
        let src = from.join(rel);
        if !src.symlink_metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        let result = if symlink_below(to, rel) {
            Err(io_err(
                StorageOp::Create,
                &to.join(rel),
                io::Error::other("a symlink on the way (not followed)"),
            ))
        } else {
            move_file(&src, &to.join(rel), rename)
        };
        if let Err(e) = result {
            for back in moved.iter().rev() {
                let _ = move_file(&to.join(back), &from.join(back), rename);
            }
            return Err(e);
        }
        moved.push(rel);
    }
    remove_empty_dirs(files, from);
    Ok(())
}

/// Moves one regular file; `dst` must not exist.
fn move_file(src: &Path, dst: &Path, rename: bool) -> Result<(), StorageError> {
    if dst.symlink_metadata().is_ok() {
        return Err(io_err(
            StorageOp::Create,
            dst,
            io::Error::from(io::ErrorKind::AlreadyExists),
        ));
    }
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err(StorageOp::CreateDir, parent, e))?;
    }
    if rename {
        match std::fs::rename(src, dst) {
            Ok(()) => return Ok(()),
            // Another filesystem: copy instead. Any other failure is the answer.
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {}
            Err(e) => return Err(io_err(StorageOp::Create, dst, e)),
        }
    }
    copy_then_remove(src, dst)
}

/// The cross-filesystem move: the copy is complete and on the device before the source
/// goes; a failed copy is removed and the source kept.
fn copy_then_remove(src: &Path, dst: &Path) -> Result<(), StorageError> {
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    let mut input = OpenOptions::new()
        .read(true)
        .custom_flags(nofollow)
        .open(src)
        .map_err(|e| io_err(StorageOp::Open, src, e))?;
    let meta = input
        .metadata()
        .map_err(|e| io_err(StorageOp::Stat, src, e))?;
    let copied = (|| -> Result<(), StorageError> {
        let mut output: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nofollow)
            .open(dst)
            .map_err(|e| io_err(StorageOp::Create, dst, e))?;
        io::copy(&mut input, &mut output).map_err(|e| io_err(StorageOp::Write, dst, e))?;
        // The same time as the source: resume data trusts a file by its size and time, so
        // a moved torrent needs no new hash check.
        if let Ok(mtime) = meta.modified() {
            output
                .set_modified(mtime)
                .map_err(|e| io_err(StorageOp::Write, dst, e))?;
        }
        output
            .sync_all()
            .map_err(|e| io_err(StorageOp::Sync, dst, e))?;
        let len = output
            .metadata()
            .map_err(|e| io_err(StorageOp::Stat, dst, e))?
            .len();
        if len != meta.len() {
            return Err(io_err(
                StorageOp::Write,
                dst,
                io::Error::other(format!("copied {len} bytes of {}", meta.len())),
            ));
        }
        Ok(())
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(dst);
        return Err(e);
    }
    std::fs::remove_file(src).map_err(|e| io_err(StorageOp::Remove, src, e))
}

/// Deletes the files `files` (paths relative to `root`, plain names only) and then the
/// directories they lived in once empty — what removing a torrent "with its data" does.
/// Only regular files are deleted, never through a symlink (a path with one on the way is
/// left alone, so nothing outside `root` can be reached); a directory still holding
/// anything (another torrent's data, the user's files) stays. Files already gone are fine.
pub fn delete_files(files: &[PathBuf], root: &Path) -> Result<(), StorageError> {
    for rel in files {
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) || symlink_below(root, rel)
        {
            continue;
        }
        let path = root.join(rel);
        if path.symlink_metadata().is_ok_and(|m| m.is_file()) {
            std::fs::remove_file(&path).map_err(|e| io_err(StorageOp::Remove, &path, e))?;
        }
    }
    remove_empty_dirs(files, root);
    Ok(())
}

/// Removes the directories `files` lived in under `from` once empty, deepest first (a
/// directory still holding anything, another torrent's data or the user's, stays).
fn remove_empty_dirs(files: &[PathBuf], from: &Path) {
    let mut dirs = std::collections::BTreeSet::new();
    for rel in files {
        let mut parent = rel.parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_path_buf());
            parent = p.parent();
        }
    }
    let mut dirs: Vec<PathBuf> = dirs.into_iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        if !symlink_below(from, &d) {
            let _ = std::fs::remove_dir(from.join(d));
        }
    }
}

/// Bytes available to an unprivileged user on the filesystem holding `path`, and its
/// total size (`statvfs`).
pub fn free_space(path: &Path) -> io::Result<(u64, u64)> {
    let s = rustix::fs::statvfs(path)?;
    let block = s.f_frsize;
    Ok((
        s.f_bavail.saturating_mul(block),
        s.f_blocks.saturating_mul(block),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, data: &[u8]) {
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, data).expect("write");
    }

    #[test]
    fn moves_only_the_given_files_by_rename_or_copy_and_back_on_failure() {
        for rename in [true, false] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let (from, to) = (tmp.path().join("a"), tmp.path().join("b"));
            write(&from.join("t/x"), b"hello");
            write(&from.join("t/sub/y"), &vec![7u8; 100_000]);
            write(&from.join("t/other"), b"not ours");
            let files = vec![
                PathBuf::from("t/x"),
                PathBuf::from("t/sub/y"),
                PathBuf::from("t/missing"),
                PathBuf::from("../escape"),
            ];
            relocate_with(&files, &from, &to, rename).expect("moved");
            assert_eq!(std::fs::read(to.join("t/x")).expect("x"), b"hello");
            assert_eq!(std::fs::read(to.join("t/sub/y")).expect("y").len(), 100_000);
            assert!(!from.join("t/x").exists() && !from.join("t/sub").exists());
            assert!(from.join("t/other").exists(), "not ours: stays");
            assert!(!to.join("t/other").exists());

            // A file already at the target: refused, and what moved first goes back.
            write(&from.join("u/1"), b"one");
            write(&from.join("u/2"), b"two");
            write(&to.join("u/2"), b"someone else's");
            let files = vec![PathBuf::from("u/1"), PathBuf::from("u/2")];
            assert!(relocate_with(&files, &from, &to, rename).is_err());
            assert_eq!(std::fs::read(from.join("u/1")).expect("back"), b"one");
            assert_eq!(std::fs::read(from.join("u/2")).expect("kept"), b"two");
            assert_eq!(
                std::fs::read(to.join("u/2")).expect("kept"),
                b"someone else's"
            );
        }
    }

    #[test]
    fn never_moves_through_a_symlink() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (from, to, outside) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("outside"),
        );
        write(&outside.join("secret"), b"s");
        std::fs::create_dir_all(&from).expect("mkdir");
        std::os::unix::fs::symlink(&outside, from.join("t")).expect("symlink");
        relocate(&[PathBuf::from("t/secret")], &from, &to).expect("nothing to move");
        assert!(outside.join("secret").exists());
        assert!(!to.join("t/secret").exists());
        // A symlink planted on the target side is not written through.
        write(&from.join("v/f"), b"f");
        std::fs::create_dir_all(&to).expect("mkdir");
        std::os::unix::fs::symlink(&outside, to.join("v")).expect("symlink");
        assert!(relocate(&[PathBuf::from("v/f")], &from, &to).is_err());
        assert!(from.join("v/f").exists());
        assert!(!outside.join("f").exists());
    }

    #[test]
    fn free_space_is_plausible() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (free, total) = free_space(tmp.path()).expect("statvfs");
        assert!(total > 0 && free <= total);
    }

    #[test]
    fn deleting_a_torrents_files_keeps_the_users_and_never_follows_a_symlink() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("dl");
        let outside = tmp.path().join("outside");
        write(&root.join("album/one.bin"), b"1");
        write(&root.join("album/sub/two.bin"), b"2");
        write(&root.join("album/mine.txt"), b"the user's");
        write(&outside.join("three.bin"), b"not ours");
        // A directory of the torrent replaced by a symlink to elsewhere.
        std::os::unix::fs::symlink(&outside, root.join("album/planted")).expect("symlink");
        let files: Vec<PathBuf> = [
            "album/one.bin",
            "album/sub/two.bin",
            "album/planted/three.bin",
            "../outside/three.bin",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        delete_files(&files, &root).expect("delete");
        assert!(!root.join("album/one.bin").exists());
        assert!(
            !root.join("album/sub").exists(),
            "an emptied directory goes"
        );
        assert_eq!(
            std::fs::read(root.join("album/mine.txt")).expect("kept"),
            b"the user's"
        );
        assert_eq!(
            std::fs::read(outside.join("three.bin")).expect("kept"),
            b"not ours"
        );
        assert!(
            root.join("album").is_dir(),
            "a directory still holding the user's file stays"
        );
        // Again: files already gone are fine.
        delete_files(&files, &root).expect("idempotent");
    }
}
