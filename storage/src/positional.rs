//! Positional file IO primitives (`pread`/`pwrite`/`pwritev`), repeated after short
//! transfers and interrupts, so callers see all-or-error.

use std::fs::File;
use std::io;

/// Fills `buf` from `file` at `offset`; a file ending first is `UnexpectedEof`.
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    let read_at = |b: &mut [u8], o: u64| std::os::unix::fs::FileExt::read_at(file, b, o);
    // seek_read moves the handle's cursor, which nothing here relies on.
    #[cfg(windows)]
    let read_at = |b: &mut [u8], o: u64| std::os::windows::fs::FileExt::seek_read(file, b, o);
    read_full(buf, offset, read_at)
}

// Used by the vectored write where the platform has no `pwritev`, and by tests.
#[cfg(any(test, not(unix)))]
/// Writes all of `buf` to `file` at `offset`.
pub(crate) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    let write_at = |b: &[u8], o: u64| std::os::unix::fs::FileExt::write_at(file, b, o);
    #[cfg(windows)]
    let write_at = |b: &[u8], o: u64| std::os::windows::fs::FileExt::seek_write(file, b, o);
    write_full(buf, offset, write_at)
}

/// The bytes `lo..lo + len` of the concatenation of `blocks`, as slices of the blocks
/// themselves (no copy).
pub(crate) fn slices_of<B: AsRef<[u8]>>(blocks: &[B], lo: usize, len: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut at, end) = (0usize, lo + len);
    for b in blocks {
        let b = b.as_ref();
        let (b_lo, b_hi) = (at, at + b.len());
        at = b_hi;
        if b_hi <= lo || b_lo >= end {
            continue;
        }
        let from = lo.max(b_lo) - b_lo;
        let to = end.min(b_hi) - b_lo;
        out.push(&b[from..to]);
    }
    out
}

/// Writes every byte of `parts`, in order, at `offset`: `pwritev` where there is one,
/// repeated after short writes; one positional write per part elsewhere.
pub(crate) fn write_all_vectored_at(
    file: &File,
    parts: &[&[u8]],
    mut offset: u64,
) -> io::Result<()> {
    #[cfg(unix)]
    {
        let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
        let mut first = 0;
        while first < parts.len() {
            // The kernel takes at most IOV_MAX (1024) buffers per call.
            let batch: Vec<io::IoSlice<'_>> = parts[first..]
                .iter()
                .take(1024)
                .map(|p| io::IoSlice::new(p))
                .collect();
            let mut n = match rustix::io::pwritev(file, &batch, offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e == rustix::io::Errno::INTR => continue,
                Err(e) => return Err(e.into()),
            };
            offset += n as u64;
            while n > 0 && first < parts.len() {
                let p = parts[first];
                if p.len() <= n {
                    n -= p.len();
                    first += 1;
                } else {
                    parts[first] = &p[n..];
                    n = 0;
                }
            }
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        for p in parts {
            write_all_at(file, p, offset)?;
            offset += p.len() as u64;
        }
        Ok(())
    }
}

/// Repeats a positional read until `buf` is full (reads may be short), retrying on EINTR.
pub(crate) fn read_full(
    mut buf: &mut [u8],
    mut offset: u64,
    mut read_at: impl FnMut(&mut [u8], u64) -> io::Result<usize>,
) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the file ends at byte {offset}, before the data the torrent places there"
                    ),
                ));
            }
            Ok(n) => {
                let n = n.min(buf.len());
                buf = &mut std::mem::take(&mut buf)[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

// Used by the vectored write where the platform has no `pwritev`, and by tests.
#[cfg(any(test, not(unix)))]
/// Repeats a positional write until all of `buf` is written, retrying on EINTR.
pub(crate) fn write_full(
    mut buf: &[u8],
    mut offset: u64,
    mut write_at: impl FnMut(&[u8], u64) -> io::Result<usize>,
) -> io::Result<()> {
    while !buf.is_empty() {
        match write_at(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let n = n.min(buf.len());
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
