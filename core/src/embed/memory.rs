//! A torrent's content in memory: block reads and writes by the torrent's [`Layout`].
//!
//! What a driver's disk does, without a disk — for examples, tests and simulations. Files
//! are laid end to end as the torrent orders them, so a multi-file torrent is one buffer.
//! Every piece/offset/length is checked against the layout before touching the buffer: a
//! block request from a peer is outside data.

use bytes::Bytes;

use crate::bitfield::Bitfield;
use crate::create::BlockSource;
use crate::piece_hashes::PieceHashes;
use crate::storage::Layout;
use crate::vocab::{DiskError, DiskErrorKind};
use crate::wire::BlockRequest;

use super::verify::verify_piece;

/// Why a [`MemoryStorage`] refused an operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemoryStorageError {
    /// The torrent is larger than [`MemoryStorage::MAX_LEN`]: it is not held in memory.
    #[error(
        "{len} bytes is more than the {} an in-memory storage holds",
        MemoryStorage::MAX_LEN
    )]
    TooLarge {
        /// The torrent's length.
        len: u64,
    },
    /// The content given does not have the layout's length.
    #[error("content has {got} bytes, the layout {expected}")]
    LengthMismatch {
        /// The layout's total length.
        expected: u64,
        /// The content's length.
        got: u64,
    },
    /// The range does not lie inside the piece (or the piece does not exist).
    #[error("{len} bytes at offset {offset} of piece {piece} are outside the torrent")]
    OutOfRange {
        /// The piece.
        piece: u32,
        /// The offset in the piece.
        offset: u32,
        /// The length asked for.
        len: u64,
    },
    /// A read for a file index or file range the layout does not have.
    #[error("{len} bytes at offset {offset} of file #{file} are outside the torrent")]
    OutOfFile {
        /// The file index.
        file: usize,
        /// The offset in the file.
        offset: u64,
        /// The length asked for.
        len: usize,
    },
}

/// What a driver holding its content in memory tells the session
/// ([`crate::session::Session::disk_write_done`], [`crate::session::Session::disk_read_done`]):
/// a range outside the torrent is [`DiskErrorKind::OutOfRange`], a torrent that cannot be
/// held is [`DiskErrorKind::Refused`].
impl From<MemoryStorageError> for DiskError {
    fn from(e: MemoryStorageError) -> Self {
        let kind = match e {
            MemoryStorageError::OutOfRange { .. } | MemoryStorageError::OutOfFile { .. } => {
                DiskErrorKind::OutOfRange
            }
            MemoryStorageError::TooLarge { .. } | MemoryStorageError::LengthMismatch { .. } => {
                DiskErrorKind::Refused
            }
        };
        DiskError::new(kind, e.to_string())
    }
}

/// A torrent's whole content in one buffer, addressed by piece and offset. See the module
/// docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryStorage {
    layout: Layout,
    content: Vec<u8>,
}

impl MemoryStorage {
    /// Largest torrent held in memory (1 GiB): a layout comes from a metainfo, which is
    /// outside data, and must not make us allocate without bound.
    pub const MAX_LEN: u64 = 1 << 30;

    /// Zero-filled storage for `layout` (what a leecher starts from).
    pub fn new(layout: Layout) -> Result<Self, MemoryStorageError> {
        let len = Self::checked_len(&layout)?;
        Ok(MemoryStorage {
            layout,
            content: vec![0; len],
        })
    }

    /// Storage holding `content` (what a seeder starts from); its length must be the
    /// layout's.
    pub fn with_content(layout: Layout, content: Vec<u8>) -> Result<Self, MemoryStorageError> {
        Self::checked_len(&layout)?;
        let got = content.len() as u64;
        if got != layout.total_length() {
            return Err(MemoryStorageError::LengthMismatch {
                expected: layout.total_length(),
                got,
            });
        }
        Ok(MemoryStorage { layout, content })
    }

    fn checked_len(layout: &Layout) -> Result<usize, MemoryStorageError> {
        let len = layout.total_length();
        if len > Self::MAX_LEN {
            return Err(MemoryStorageError::TooLarge { len });
        }
        usize::try_from(len).map_err(|_| MemoryStorageError::TooLarge { len })
    }

    /// The geometry the storage was built for.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The content, files end to end.
    pub fn content(&self) -> &[u8] {
        &self.content
    }

    /// The byte range of `len` bytes at `offset` of `piece`, if it lies inside the piece.
    fn range(
        &self,
        piece: u32,
        offset: u32,
        len: u64,
    ) -> Result<std::ops::Range<usize>, MemoryStorageError> {
        let out = MemoryStorageError::OutOfRange { piece, offset, len };
        let len32 = u32::try_from(len).map_err(|_| out.clone())?;
        if !self.layout.range_in_piece(piece, offset, len32) {
            return Err(out);
        }
        // In range of the layout, whose total fits `usize` (checked at construction).
        let start = (self.layout.piece_offset(piece) + u64::from(offset)) as usize;
        Ok(start..start + len32 as usize)
    }

    /// The bytes of `piece` (`None` past the end).
    pub fn piece(&self, piece: u32) -> Option<&[u8]> {
        // `range` refuses a piece past the end, even with its zero length.
        let range = self
            .range(piece, 0, u64::from(self.layout.piece_len(piece)))
            .ok()?;
        Some(&self.content[range])
    }

    /// Reads a block a peer asked for (the answer to an
    /// [`crate::session::Action::ReadBlock`]); refuses a range outside its piece.
    pub fn read_block(&self, block: BlockRequest) -> Result<Bytes, MemoryStorageError> {
        let range = self.range(block.index, block.begin, u64::from(block.length))?;
        Ok(Bytes::copy_from_slice(&self.content[range]))
    }

    /// Writes a downloaded block (an [`crate::session::Action::WriteBlock`]); refuses a
    /// range outside its piece and then changes nothing.
    pub fn write_block(
        &mut self,
        piece: u32,
        offset: u32,
        data: &[u8],
    ) -> Result<(), MemoryStorageError> {
        let range = self.range(piece, offset, data.len() as u64)?;
        self.content[range].copy_from_slice(data);
        Ok(())
    }

    /// The pieces whose bytes match `hashes` ([`PieceHashes::from_metainfo`]): the `have`
    /// to give [`crate::session::Session::add_torrent`]. Pieces past the hashes' count
    /// match nothing.
    pub fn verified_pieces(&self, hashes: &PieceHashes) -> Bitfield {
        let count = self.layout.piece_count();
        let mut have = Bitfield::new(count);
        for piece in 0..count {
            if let (Some(expected), Some(data)) = (hashes.expected(piece), self.piece(piece)) {
                if verify_piece(&[data], &expected) {
                    have.set(piece);
                }
            }
        }
        have
    }
}

/// Lets [`crate::create::create`] hash a torrent straight from memory.
impl BlockSource for MemoryStorage {
    type Error = MemoryStorageError;

    fn read_at(&mut self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        let out = MemoryStorageError::OutOfFile {
            file,
            offset,
            len: buf.len(),
        };
        let (Some(start), Some(file_len)) =
            (self.layout.file_offset(file), self.layout.file_length(file))
        else {
            return Err(out);
        };
        let end_in_file = offset.checked_add(buf.len() as u64).ok_or(out.clone())?;
        if end_in_file > file_len {
            return Err(out);
        }
        // Inside the file, hence inside the content (whose length fits `usize`).
        let from = (start + offset) as usize;
        buf.copy_from_slice(&self.content[from..from + buf.len()]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::{Digest, Sha1};

    fn layout(piece: u32, files: &[u64]) -> Layout {
        Layout::new(piece, files.iter().copied()).expect("valid layout")
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 256) as u8).collect()
    }

    #[test]
    fn blocks_written_read_back_across_files() {
        let mut s = MemoryStorage::new(layout(32 * 1024, &[10_000, 50_000])).expect("fits");
        let block: Vec<u8> = data(16 * 1024);
        s.write_block(0, 0, &block).expect("in range");
        let read = s
            .read_block(BlockRequest {
                index: 0,
                begin: 0,
                length: 16 * 1024,
            })
            .expect("in range");
        assert_eq!(&read[..], &block[..]);
        // The block spans the end of file 0 and the start of file 1.
        let mut from_file1 = vec![0u8; 6_384];
        s.read_at(1, 0, &mut from_file1).expect("inside file 1");
        assert_eq!(&from_file1[..], &block[10_000..]);
    }

    #[test]
    fn out_of_range_is_refused_and_changes_nothing() {
        let mut s = MemoryStorage::new(layout(16 * 1024, &[20_000])).expect("fits");
        let before = s.clone();
        // Piece 1 is 3,616 bytes long.
        assert!(s.write_block(1, 0, &[1u8; 4000]).is_err());
        assert!(s.write_block(2, 0, &[1u8; 1]).is_err());
        assert!(s.write_block(0, u32::MAX, &[1u8; 2]).is_err());
        assert_eq!(s, before);
        let past_end = BlockRequest {
            index: 1,
            begin: 3_000,
            length: 1_000,
        };
        let refused = s.read_block(past_end);
        assert!(matches!(
            refused,
            Err(MemoryStorageError::OutOfRange { piece: 1, .. })
        ));
        // What the session is told: the kind to act on, the words to show.
        let told = DiskError::from(refused.expect_err("checked above"));
        assert_eq!(told.kind(), DiskErrorKind::OutOfRange);
        assert!(told.detail().contains("piece 1"), "{told}");
        let mut buf = [0u8; 8];
        assert!(s.read_at(0, 19_995, &mut buf).is_err());
        assert!(s.read_at(1, 0, &mut buf).is_err());
        assert!(s.read_at(0, u64::MAX, &mut buf).is_err());
    }

    #[test]
    fn sizes_are_checked_before_allocating() {
        let huge = layout(1 << 20, &[MemoryStorage::MAX_LEN + 1]);
        assert!(matches!(
            MemoryStorage::new(huge),
            Err(MemoryStorageError::TooLarge { .. })
        ));
        assert!(matches!(
            MemoryStorage::with_content(layout(16 * 1024, &[100]), vec![0; 99]),
            Err(MemoryStorageError::LengthMismatch {
                expected: 100,
                got: 99
            })
        ));
    }

    #[test]
    fn verified_pieces_are_those_whose_hash_matches() {
        let content = data(40_000);
        let hashes: Vec<[u8; 20]> = content
            .chunks(16 * 1024)
            .map(|c| Sha1::digest(c).into())
            .collect();
        let mut s = MemoryStorage::with_content(layout(16 * 1024, &[40_000]), content)
            .expect("right length");
        let all = PieceHashes::v1_only(hashes.clone(), 16 * 1024);
        assert!(s.verified_pieces(&all).is_full());
        s.write_block(1, 5, &[0xff]).expect("in range");
        let have = s.verified_pieces(&all);
        assert_eq!(have.ones().collect::<Vec<_>>(), vec![0, 2]);
        let first = PieceHashes::v1_only(hashes[..1].to_vec(), 16 * 1024);
        assert_eq!(s.verified_pieces(&first).count_ones(), 1);
    }
}
