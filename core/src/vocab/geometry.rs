//! Why a torrent's pieces cannot be set up: the typed reason behind
//! [`crate::session::AddTorrentError::Geometry`] and
//! [`crate::session::MetadataReadyError::Geometry`].

use crate::picker::PickerError;

/// A torrent whose piece geometry the session cannot work with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    /// The metadata describes no piece at all (an empty torrent).
    #[error("the torrent has no pieces")]
    NoPieces,
    /// The piece picker could not be built (piece length zero, too many pieces, a `have`
    /// bitfield of the wrong size).
    #[error(transparent)]
    Picker(#[from] PickerError),
    /// The picker given does not have the metadata's piece count (a caller's bug rather
    /// than bad input; refused so that no index can fall outside the torrent).
    #[error("the piece picker does not match the metadata's {pieces} pieces")]
    PickerMismatch {
        /// Pieces in the metadata.
        pieces: u32,
    },
}
