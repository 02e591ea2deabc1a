use crate::{FragmentNumber, StreamId};

/// Errors of the archive layer. They name the stream, fragment and offset involved; the server maps
/// them to AWS errors in one place.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stream {0:?} already exists")]
    AlreadyExists(String),
    #[error("stream {0:?} not found")]
    StreamNotFound(StreamId),
    #[error("version mismatch on stream {stream:?}: expected {expected}, found {found}")]
    VersionMismatch {
        stream: StreamId,
        expected: String,
        found: String,
    },
    #[error("fragment number {number} of stream {stream:?} is not above the stream's last one")]
    FragmentNumberNotIncreasing {
        stream: StreamId,
        number: FragmentNumber,
    },
    #[error("fragment {number} of stream {stream:?} not found")]
    FragmentNotFound {
        stream: StreamId,
        number: FragmentNumber,
    },
    #[error("media read of stream {stream:?} segment {segment} at {offset}+{len}: {source}")]
    MediaIo {
        stream: StreamId,
        segment: u64,
        offset: u64,
        len: u64,
        source: std::io::Error,
    },
    #[error("media store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("catalog: {0}")]
    Catalog(#[from] rusqlite::Error),
    #[error("catalog data corrupt: {0}")]
    Corrupt(String),
    #[error("store task failed: {0}")]
    Task(String),
}
