//! Storage layout: where each piece's bytes live in the torrent's files.
//!
//! A torrent's content is its files concatenated in order; pieces cut that stream into
//! `piece_length` chunks (the last one shorter), and peers move pieces in 16 KiB blocks.
//! [`Layout`] holds the arithmetic between the three views — piece/offset, torrent offset and
//! file/offset — and nothing else: it never touches a file (the `unchoke-storage` crate's
//! `FileStorage` does the file IO, with this layout).
//!
//! Conventions:
//! - Zero-length files take no bytes: they never appear in a [`FileSpan`] and
//!   [`Layout::file_pieces`] is empty for them (a driver still creates them).
//! - Out-of-range input never panics. A piece index past the end has length 0 and no blocks;
//!   a byte range that does not lie entirely inside its piece yields **no spans at all**
//!   (use [`Layout::range_in_piece`] to tell an invalid request from an empty one); a file
//!   index past the end has no pieces.
//! - Finding the file that holds an offset is a binary search over the file offsets, so
//!   torrents with 100 000 files cost `O(log n)` per lookup.

use std::ops::Range;

/// The size of a block, the unit peers request: 16 KiB (the last block of a piece may be
/// shorter).
pub const BLOCK_SIZE: u32 = 16 * 1024;

/// Why a [`Layout`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A piece length of zero.
    #[error("piece length must not be zero")]
    ZeroPieceLength,
    /// The files' lengths add up to more than `u64::MAX` bytes.
    #[error("total length overflows 64 bits at file {file}")]
    TotalOverflow {
        /// Index of the file whose length made the sum overflow.
        file: usize,
    },
    /// More pieces than a `u32` can count.
    #[error("{pieces} pieces is more than the {} a piece index can hold", u32::MAX)]
    TooManyPieces {
        /// The number of pieces the lengths would need.
        pieces: u64,
    },
}

/// A contiguous run of bytes inside one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileSpan {
    /// Index of the file in the torrent's file list.
    pub file: usize,
    /// Offset of the run's first byte inside that file.
    pub file_offset: u64,
    /// Offset of the run's first byte in the torrent's concatenated content.
    pub torrent_offset: u64,
    /// Length of the run in bytes (never zero).
    pub len: u64,
}

/// Piece, block and file geometry of one torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    piece_length: u32,
    total_length: u64,
    piece_count: u32,
    /// Offset of each file's first byte in the concatenated content (non-decreasing).
    offsets: Vec<u64>,
    /// Length of each file.
    lengths: Vec<u64>,
}

impl Layout {
    /// A layout for files of the given lengths, in order, cut into `piece_length` pieces.
    ///
    /// Fails if `piece_length` is 0, if the lengths sum past `u64::MAX`, or if the content
    /// needs more than `u32::MAX` pieces.
    pub fn new(
        piece_length: u32,
        file_lengths: impl IntoIterator<Item = u64>,
    ) -> Result<Layout, LayoutError> {
        if piece_length == 0 {
            return Err(LayoutError::ZeroPieceLength);
        }
        let lengths: Vec<u64> = file_lengths.into_iter().collect();
        let mut offsets = Vec::with_capacity(lengths.len());
        let mut total: u64 = 0;
        for (file, &len) in lengths.iter().enumerate() {
            offsets.push(total);
            total = total
                .checked_add(len)
                .ok_or(LayoutError::TotalOverflow { file })?;
        }
        let pieces = total.div_ceil(u64::from(piece_length));
        let piece_count =
            u32::try_from(pieces).map_err(|_| LayoutError::TooManyPieces { pieces })?;
        Ok(Layout {
            piece_length,
            total_length: total,
            piece_count,
            offsets,
            lengths,
        })
    }

    /// A layout with no files and no pieces (used where a valid layout cannot exist).
    pub(crate) fn empty(piece_length: u32) -> Layout {
        Layout {
            piece_length: piece_length.max(1),
            total_length: 0,
            piece_count: 0,
            offsets: Vec::new(),
            lengths: Vec::new(),
        }
    }

    /// The nominal piece length (every piece but the last has exactly this length).
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// The content's total length in bytes.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// How many files (zero-length ones included).
    pub fn file_count(&self) -> usize {
        self.lengths.len()
    }

    /// How many pieces: `ceil(total_length / piece_length)`.
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }

    /// Offset of `piece`'s first byte in the concatenated content (past the end for a piece
    /// index past the end).
    pub fn piece_offset(&self, piece: u32) -> u64 {
        u64::from(piece) * u64::from(self.piece_length)
    }

    /// Length of `piece`: `piece_length`, except the last piece which may be shorter; 0 for a
    /// piece index past the end.
    pub fn piece_len(&self, piece: u32) -> u32 {
        if piece >= self.piece_count {
            return 0;
        }
        let rest = self.total_length - self.piece_offset(piece);
        // `rest` > 0 here and the minimum is at most `piece_length`, which fits a u32.
        rest.min(u64::from(self.piece_length)) as u32
    }

    /// How many 16 KiB blocks `piece` has (the last one may be short); 0 past the end.
    pub fn block_count(&self, piece: u32) -> u32 {
        self.piece_len(piece).div_ceil(BLOCK_SIZE)
    }

    /// Length of block `block` of `piece`: [`BLOCK_SIZE`], except the piece's last block which
    /// may be shorter; 0 when either index is past the end.
    pub fn block_len(&self, piece: u32, block: u32) -> u32 {
        let piece_len = self.piece_len(piece);
        let start = u64::from(block) * u64::from(BLOCK_SIZE);
        if start >= u64::from(piece_len) {
            return 0;
        }
        (u64::from(piece_len) - start).min(u64::from(BLOCK_SIZE)) as u32
    }

    /// Whether `len` bytes from `offset` lie inside `piece` (a zero `len` is valid at any
    /// offset up to the piece's length). Used to vet a peer's request before mapping it.
    pub fn range_in_piece(&self, piece: u32, offset: u32, len: u32) -> bool {
        piece < self.piece_count
            && u64::from(offset) + u64::from(len) <= u64::from(self.piece_len(piece))
    }

    /// The file runs holding `len` bytes from `offset` inside `piece`, in content order.
    /// Zero-length files are skipped. A range not lying entirely inside the piece (see
    /// [`Layout::range_in_piece`]) yields nothing.
    pub fn spans(&self, piece: u32, offset: u32, len: u32) -> Spans<'_> {
        if !self.range_in_piece(piece, offset, len) {
            return Spans::empty(self);
        }
        let start = self.piece_offset(piece) + u64::from(offset);
        self.torrent_spans(start, u64::from(len))
    }

    /// The file runs holding all of `piece`, in content order (nothing for a piece index
    /// past the end).
    pub fn piece_spans(&self, piece: u32) -> Spans<'_> {
        self.spans(piece, 0, self.piece_len(piece))
    }

    /// The file runs holding `len` bytes from torrent offset `start`; nothing if the range
    /// runs past the end of the content.
    pub fn torrent_spans(&self, start: u64, len: u64) -> Spans<'_> {
        match start.checked_add(len) {
            Some(end) if end <= self.total_length && len > 0 => Spans {
                layout: self,
                file: self.file_at(start),
                pos: start,
                end,
            },
            _ => Spans::empty(self),
        }
    }

    /// Index of the file holding torrent offset `pos` (the last file starting at or before
    /// `pos`, which is the non-empty one when zero-length files share its offset).
    fn file_at(&self, pos: u64) -> usize {
        self.offsets
            .partition_point(|&o| o <= pos)
            .saturating_sub(1)
    }

    /// Offset of `file`'s first byte in the concatenated content, or `None` past the end.
    pub fn file_offset(&self, file: usize) -> Option<u64> {
        self.offsets.get(file).copied()
    }

    /// Length of `file`, or `None` past the end.
    pub fn file_length(&self, file: usize) -> Option<u64> {
        self.lengths.get(file).copied()
    }

    /// The pieces holding at least one byte of `file`; empty for a zero-length file or a
    /// file index past the end.
    pub fn file_pieces(&self, file: usize) -> Range<u32> {
        let (Some(&offset), Some(&len)) = (self.offsets.get(file), self.lengths.get(file)) else {
            return 0..0;
        };
        if len == 0 {
            return 0..0;
        }
        let pl = u64::from(self.piece_length);
        // Both quotients are below `piece_count`, which fits a u32.
        let first = (offset / pl) as u32;
        let last = ((offset + len - 1) / pl) as u32;
        first..last + 1
    }
}

/// Iterator over the [`FileSpan`]s of a byte range, from [`Layout::spans`] and friends.
#[derive(Clone, Debug)]
pub struct Spans<'a> {
    layout: &'a Layout,
    /// Candidate file for the next span.
    file: usize,
    /// Next torrent offset to map.
    pos: u64,
    /// End (exclusive) of the range.
    end: u64,
}

impl<'a> Spans<'a> {
    fn empty(layout: &'a Layout) -> Self {
        Spans {
            layout,
            file: 0,
            pos: 0,
            end: 0,
        }
    }
}

impl Iterator for Spans<'_> {
    type Item = FileSpan;

    fn next(&mut self) -> Option<FileSpan> {
        while self.pos < self.end {
            let offset = *self.layout.offsets.get(self.file)?;
            let len = *self.layout.lengths.get(self.file)?;
            let file_end = offset + len;
            if file_end <= self.pos {
                // A zero-length file, or one wholly before `pos`.
                self.file += 1;
                continue;
            }
            let run_end = file_end.min(self.end);
            let span = FileSpan {
                file: self.file,
                file_offset: self.pos - offset,
                torrent_offset: self.pos,
                len: run_end - self.pos,
            };
            self.pos = run_end;
            self.file += 1;
            return Some(span);
        }
        None
    }
}

impl std::iter::FusedIterator for Spans<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(l: &Layout, piece: u32, offset: u32, len: u32) -> Vec<(usize, u64, u64, u64)> {
        l.spans(piece, offset, len)
            .map(|s| (s.file, s.file_offset, s.torrent_offset, s.len))
            .collect()
    }

    #[test]
    fn construction_errors() {
        assert_eq!(Layout::new(0, [10]), Err(LayoutError::ZeroPieceLength));
        assert_eq!(
            Layout::new(16, [u64::MAX, 0, 1]),
            Err(LayoutError::TotalOverflow { file: 2 })
        );
        assert_eq!(
            Layout::new(1, [u64::from(u32::MAX) + 1]),
            Err(LayoutError::TooManyPieces {
                pieces: u64::from(u32::MAX) + 1
            })
        );
        // Exactly u32::MAX pieces is fine.
        let l = Layout::new(1, [u64::from(u32::MAX)]).unwrap();
        assert_eq!(l.piece_count(), u32::MAX);
        assert_eq!(l.piece_len(u32::MAX - 1), 1);
        assert_eq!(
            LayoutError::TotalOverflow { file: 2 }.to_string(),
            "total length overflows 64 bits at file 2"
        );
    }

    #[test]
    fn files_spanning_pieces() {
        // Pieces of 10: [0,10) [10,20) [20,25); files a=7, b=13, c=5.
        let l = Layout::new(10, [7, 13, 5]).unwrap();
        assert_eq!(l.total_length(), 25);
        assert_eq!(l.piece_count(), 3);
        assert_eq!(l.file_count(), 3);
        assert_eq!(
            (l.piece_len(0), l.piece_len(1), l.piece_len(2)),
            (10, 10, 5)
        );
        assert_eq!(spans(&l, 0, 0, 10), vec![(0, 0, 0, 7), (1, 0, 7, 3)]);
        assert_eq!(spans(&l, 1, 0, 10), vec![(1, 3, 10, 10)]);
        assert_eq!(spans(&l, 2, 0, 5), vec![(2, 0, 20, 5)]);
        // A sub-range crossing the a/b boundary.
        assert_eq!(spans(&l, 0, 5, 4), vec![(0, 5, 5, 2), (1, 0, 7, 2)]);
        assert_eq!(spans(&l, 0, 7, 1), vec![(1, 0, 7, 1)]);
        assert_eq!(l.file_pieces(0), 0..1);
        assert_eq!(l.file_pieces(1), 0..2);
        assert_eq!(l.file_pieces(2), 2..3);
        assert_eq!(l.file_offset(2), Some(20));
        assert_eq!(l.file_length(1), Some(13));
        assert_eq!(l.file_offset(3), None);
    }

    #[test]
    fn many_small_files_in_one_piece() {
        let l = Layout::new(100, [1, 2, 3, 4, 5]).unwrap();
        assert_eq!(l.piece_count(), 1);
        assert_eq!(
            spans(&l, 0, 0, 15),
            vec![
                (0, 0, 0, 1),
                (1, 0, 1, 2),
                (2, 0, 3, 3),
                (3, 0, 6, 4),
                (4, 0, 10, 5)
            ]
        );
        for f in 0..5 {
            assert_eq!(l.file_pieces(f), 0..1);
        }
    }

    #[test]
    fn zero_length_files_anywhere() {
        // zero first, two zeros in the middle, zero last.
        let l = Layout::new(4, [0, 5, 0, 0, 3, 0]).unwrap();
        assert_eq!(l.total_length(), 8);
        assert_eq!(l.piece_count(), 2);
        assert_eq!(spans(&l, 0, 0, 4), vec![(1, 0, 0, 4)]);
        assert_eq!(spans(&l, 1, 0, 4), vec![(1, 4, 4, 1), (4, 0, 5, 3)]);
        // Starting exactly at the boundary where the zero files sit.
        assert_eq!(spans(&l, 1, 1, 3), vec![(4, 0, 5, 3)]);
        for f in [0, 2, 3, 5] {
            assert!(l.file_pieces(f).is_empty(), "file {f}");
        }
        assert_eq!(l.file_pieces(1), 0..2);
        assert_eq!(l.file_pieces(4), 1..2);
        // Only zero-length files: no pieces, nothing to map.
        let l = Layout::new(4, [0, 0]).unwrap();
        assert_eq!((l.total_length(), l.piece_count()), (0, 0));
        assert_eq!(l.piece_spans(0).count(), 0);
        // No files at all.
        let l = Layout::new(4, []).unwrap();
        assert_eq!((l.file_count(), l.piece_count()), (0, 0));
        assert_eq!(l.torrent_spans(0, 1).count(), 0);
    }

    #[test]
    fn last_short_piece_and_blocks() {
        let pl = 4 * BLOCK_SIZE;
        let total = u64::from(pl) * 2 + u64::from(BLOCK_SIZE) + 100;
        let l = Layout::new(pl, [total]).unwrap();
        assert_eq!(l.piece_count(), 3);
        assert_eq!(l.piece_len(2), BLOCK_SIZE + 100);
        assert_eq!(l.block_count(0), 4);
        assert_eq!(l.block_count(2), 2);
        assert_eq!(l.block_len(0, 3), BLOCK_SIZE);
        assert_eq!(l.block_len(2, 0), BLOCK_SIZE);
        assert_eq!(l.block_len(2, 1), 100);
        assert_eq!(l.block_len(2, 2), 0);
        assert_eq!(l.block_len(3, 0), 0);
        assert_eq!(l.block_count(3), 0);
        // A piece length that is not a multiple of the block size.
        let l = Layout::new(BLOCK_SIZE + 1, [u64::from(BLOCK_SIZE) + 1]).unwrap();
        assert_eq!(l.block_count(0), 2);
        assert_eq!(l.block_len(0, 1), 1);
        // Small pieces: one short block.
        let l = Layout::new(1000, [2500]).unwrap();
        assert_eq!((l.block_count(2), l.block_len(2, 0)), (1, 500));
    }

    #[test]
    fn piece_length_equal_to_total() {
        let l = Layout::new(30, [10, 20]).unwrap();
        assert_eq!(l.piece_count(), 1);
        assert_eq!(l.piece_len(0), 30);
        assert_eq!(spans(&l, 0, 0, 30), vec![(0, 0, 0, 10), (1, 0, 10, 20)]);
        // Piece length larger than the content: one short piece.
        let l = Layout::new(1 << 20, [10]).unwrap();
        assert_eq!((l.piece_count(), l.piece_len(0)), (1, 10));
    }

    #[test]
    fn single_byte_torrent() {
        let l = Layout::new(BLOCK_SIZE, [1]).unwrap();
        assert_eq!(l.piece_count(), 1);
        assert_eq!(l.piece_len(0), 1);
        assert_eq!((l.block_count(0), l.block_len(0, 0)), (1, 1));
        assert_eq!(spans(&l, 0, 0, 1), vec![(0, 0, 0, 1)]);
        assert_eq!(l.file_pieces(0), 0..1);
    }

    #[test]
    fn out_of_range_yields_nothing() {
        let l = Layout::new(10, [7, 13, 5]).unwrap();
        // Piece past the end.
        assert!(spans(&l, 3, 0, 1).is_empty());
        assert!(!l.range_in_piece(3, 0, 0));
        assert_eq!(l.piece_len(3), 0);
        assert_eq!(l.piece_len(u32::MAX), 0);
        // Range running past the piece's end (full pieces and the short last piece): the
        // whole request is refused, not clamped.
        assert!(spans(&l, 0, 5, 6).is_empty());
        assert!(!l.range_in_piece(0, 5, 6));
        assert!(spans(&l, 2, 0, 6).is_empty());
        assert!(spans(&l, 2, 5, 1).is_empty());
        assert!(spans(&l, 0, u32::MAX, u32::MAX).is_empty());
        // Zero length: valid, but no spans.
        assert!(l.range_in_piece(0, 10, 0));
        assert!(spans(&l, 0, 3, 0).is_empty());
        // Torrent-offset ranges past the end or overflowing.
        assert_eq!(l.torrent_spans(20, 6).count(), 0);
        assert_eq!(l.torrent_spans(u64::MAX, 2).count(), 0);
        assert_eq!(l.torrent_spans(20, 5).count(), 1);
        // File index past the end.
        assert!(l.file_pieces(3).is_empty());
        assert!(l.file_pieces(usize::MAX).is_empty());
    }

    #[test]
    fn large_offsets_use_64_bits() {
        // 3 files past 4 GiB each, 16 MiB pieces.
        let big = 5u64 << 30;
        let l = Layout::new(16 << 20, [big, big, 3]).unwrap();
        let last = l.piece_count() - 1;
        assert_eq!(l.piece_len(last), 3);
        // The piece straddling the first boundary: big is a multiple of 16 MiB, so piece 320
        // starts file 1 exactly.
        let p = (big / (16 << 20)) as u32;
        let s: Vec<_> = l.piece_spans(p).collect();
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].file, s[0].file_offset, s[0].torrent_offset),
            (1, 0, big)
        );
        assert_eq!(l.file_pieces(1), p..2 * p);
        assert_eq!(l.file_pieces(2), last..last + 1);
    }

    #[test]
    fn many_files_lookup() {
        // 100 000 one-byte files with 1 KiB pieces: every piece maps to 1024 files, found
        // by binary search.
        let l = Layout::new(1024, std::iter::repeat_n(1, 100_000)).unwrap();
        let s: Vec<_> = l.piece_spans(50).collect();
        assert_eq!(s.len(), 1024);
        assert_eq!(s[0].file, 50 * 1024);
        assert_eq!(s[1023].file, 50 * 1024 + 1023);
        assert_eq!(l.file_pieces(99_999), 97..98);
    }

    /// A naive model: the file holding each byte of the content, one entry per byte.
    fn naive_bytes(lengths: &[u64]) -> Vec<(usize, u64)> {
        let mut out = Vec::new();
        for (f, &len) in lengths.iter().enumerate() {
            for off in 0..len {
                out.push((f, off));
            }
        }
        out
    }

    #[test]
    fn brute_force_against_naive_model() {
        let mut rng = fastrand::Rng::with_seed(0x5eed_1a70);
        for case in 0..2000 {
            let n_files = rng.usize(1..8);
            let lengths: Vec<u64> = (0..n_files)
                .map(|_| if rng.u8(..4) == 0 { 0 } else { rng.u64(1..40) })
                .collect();
            let pl = rng.u32(1..50);
            let l = Layout::new(pl, lengths.iter().copied()).unwrap();
            let model = naive_bytes(&lengths);
            let total = model.len() as u64;
            assert_eq!(l.total_length(), total, "case {case}");
            assert_eq!(
                u64::from(l.piece_count()),
                total.div_ceil(u64::from(pl)),
                "case {case}"
            );
            // Every piece, mapped whole, byte by byte.
            let mut seen = 0u64;
            for piece in 0..l.piece_count() {
                let mut expect_pos = l.piece_offset(piece);
                let mut bytes_in_piece = 0u64;
                for s in l.piece_spans(piece) {
                    assert!(s.len > 0, "case {case}");
                    assert_eq!(s.torrent_offset, expect_pos, "case {case}: contiguous");
                    for k in 0..s.len {
                        let at = (s.torrent_offset + k) as usize;
                        assert_eq!(model[at], (s.file, s.file_offset + k), "case {case}");
                    }
                    expect_pos += s.len;
                    bytes_in_piece += s.len;
                }
                assert_eq!(bytes_in_piece, u64::from(l.piece_len(piece)), "case {case}");
                seen += bytes_in_piece;
                // A random sub-range maps to the same bytes.
                let plen = l.piece_len(piece);
                let off = rng.u32(0..=plen);
                let len = rng.u32(0..=plen - off);
                let mut pos = l.piece_offset(piece) + u64::from(off);
                for s in l.spans(piece, off, len) {
                    assert_eq!(s.torrent_offset, pos, "case {case}");
                    assert_eq!(model[pos as usize], (s.file, s.file_offset), "case {case}");
                    pos += s.len;
                }
                assert_eq!(pos, l.piece_offset(piece) + u64::from(off + len));
            }
            assert_eq!(seen, total, "case {case}");
            // file_pieces agrees with the model.
            for (f, &len) in lengths.iter().enumerate() {
                let expect: Vec<u32> = (0..l.piece_count())
                    .filter(|&p| {
                        let start = l.piece_offset(p);
                        let end = start + u64::from(l.piece_len(p));
                        model[start as usize..end as usize]
                            .iter()
                            .any(|&(mf, _)| mf == f)
                    })
                    .collect();
                let got: Vec<u32> = l.file_pieces(f).collect();
                assert_eq!(got, expect, "case {case} file {f} len {len}");
            }
            // Blocks tile each piece.
            for piece in 0..l.piece_count() {
                let sum: u64 = (0..l.block_count(piece))
                    .map(|b| u64::from(l.block_len(piece, b)))
                    .sum();
                assert_eq!(sum, u64::from(l.piece_len(piece)));
            }
        }
    }
}
