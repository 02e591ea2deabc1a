use crate::{FragmentNumber, MediaLocation, StreamId};

/// A backend's own error (SQLite, I/O, later PostgreSQL or S3), kept whole for the log. The
/// public [`StoreError`] never names a backend type; each backend decides its errors' kind where
/// it converts them (the SQLite catalog in `sqlite.rs`, `classify`).
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the archive layer, by meaning: what a caller (the server's one mapping to AWS errors,
/// a retry loop) needs to decide, whichever backend failed. They name the stream, fragment and
/// offset involved; a backend's own error rides inside as a [`BackendError`] or a message.
/// [`StoreError::kind`] groups the variants.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // ---- Not found ----
    #[error("stream {0:?} not found")]
    StreamNotFound(StreamId),
    #[error("fragment {number} of stream {stream:?} not found")]
    FragmentNotFound {
        stream: StreamId,
        number: FragmentNumber,
    },

    // ---- Already exists ----
    /// A stream of that name exists.
    #[error("stream {0:?} already exists")]
    AlreadyExists(String),

    // ---- Conflict: the write lost against the stored state ----
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
    /// The fragment was committed under a writer lease epoch that is no longer the stream's:
    /// another writer took the stream over (docs/architecture.md#writer-lease). Nothing was
    /// stored; the old writer must stop.
    #[error("writer lease lost on stream {stream:?}: epoch {epoch} is no longer current")]
    WriterLeaseLost { stream: StreamId, epoch: u64 },
    /// Any other write the backend refused because of what is stored (a uniqueness or reference
    /// constraint that no caller-level check caught, e.g. a concurrent writer won).
    #[error("conflict: {what}: {source}")]
    Conflict { what: String, source: BackendError },

    // ---- Unavailable: retry later ----
    /// The backend cannot answer now but may later: a busy or locked database, I/O that may
    /// pass (a full disk, too many open files), a backend that cannot be reached.
    #[error("store unavailable: {what}: {source}")]
    Unavailable { what: String, source: BackendError },

    // ---- Corrupt: stored data is not what was written; retrying does not help ----
    #[error("catalog data corrupt: {0}")]
    Corrupt(String),
    /// Bytes the catalog points at could not be read (a segment file gone or cut short, or an
    /// I/O error reading it).
    #[error("media read of stream {stream:?} segment {segment} at {offset}+{len}: {source}")]
    MediaIo {
        stream: StreamId,
        segment: u64,
        offset: u64,
        len: u64,
        source: std::io::Error,
    },

    // ---- Internal ----
    /// The store cannot be set up as configured (a malformed object store URL, say); fixing the
    /// configuration is the only cure.
    #[error("store configuration: {0}")]
    Config(String),
    /// A store task failed or stopped (a panic, a poisoned lock, the committer gone at shutdown).
    #[error("store task failed: {0}")]
    Task(String),
}

/// What a [`StoreError`] means to a caller; see each variant for the members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreErrorKind {
    NotFound,
    AlreadyExists,
    Conflict,
    /// Retrying later may succeed.
    Unavailable,
    Corrupt,
    Internal,
}

impl StoreError {
    /// The error's kind. Exhaustive, so a new variant does not compile until it has one.
    pub fn kind(&self) -> StoreErrorKind {
        use StoreError as E;
        match self {
            E::StreamNotFound(_) | E::FragmentNotFound { .. } => StoreErrorKind::NotFound,
            E::AlreadyExists(_) => StoreErrorKind::AlreadyExists,
            E::VersionMismatch { .. }
            | E::FragmentNumberNotIncreasing { .. }
            | E::WriterLeaseLost { .. }
            | E::Conflict { .. } => StoreErrorKind::Conflict,
            E::Unavailable { .. } => StoreErrorKind::Unavailable,
            E::Corrupt(_) | E::MediaIo { .. } => StoreErrorKind::Corrupt,
            E::Config(_) | E::Task(_) => StoreErrorKind::Internal,
        }
    }

    /// [`StoreError::MediaIo`] for a read of `range` (relative to the fragment) at `location`.
    pub fn media_io(
        stream: StreamId,
        location: MediaLocation,
        range: &std::ops::Range<u64>,
        source: std::io::Error,
    ) -> Self {
        StoreError::MediaIo {
            stream,
            segment: location.segment,
            offset: location.offset + range.start,
            len: range.end.saturating_sub(range.start),
            source,
        }
    }

    /// [`StoreError::Unavailable`] with `what` was being done.
    pub fn unavailable(what: impl Into<String>, source: impl Into<BackendError>) -> Self {
        StoreError::Unavailable {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Local file I/O of the embedded store (data directory, segment files): unavailable, since
/// what fails there (a full disk, too many open files, EIO) may pass. Reads of stored fragment
/// bytes are [`StoreError::MediaIo`] instead, with the location.
impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::unavailable("media store I/O", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let io = || std::io::Error::other("x");
        let cases = [
            (
                StoreError::StreamNotFound(StreamId(1)),
                StoreErrorKind::NotFound,
            ),
            (
                StoreError::FragmentNotFound {
                    stream: StreamId(1),
                    number: FragmentNumber(2),
                },
                StoreErrorKind::NotFound,
            ),
            (
                StoreError::AlreadyExists("a".into()),
                StoreErrorKind::AlreadyExists,
            ),
            (
                StoreError::VersionMismatch {
                    stream: StreamId(1),
                    expected: "a".into(),
                    found: "b".into(),
                },
                StoreErrorKind::Conflict,
            ),
            (
                StoreError::FragmentNumberNotIncreasing {
                    stream: StreamId(1),
                    number: FragmentNumber(2),
                },
                StoreErrorKind::Conflict,
            ),
            (
                StoreError::WriterLeaseLost {
                    stream: StreamId(1),
                    epoch: 2,
                },
                StoreErrorKind::Conflict,
            ),
            (
                StoreError::Conflict {
                    what: "w".into(),
                    source: "s".into(),
                },
                StoreErrorKind::Conflict,
            ),
            (io().into(), StoreErrorKind::Unavailable),
            (StoreError::Corrupt("c".into()), StoreErrorKind::Corrupt),
            (
                StoreError::MediaIo {
                    stream: StreamId(1),
                    segment: 0,
                    offset: 0,
                    len: 1,
                    source: io(),
                },
                StoreErrorKind::Corrupt,
            ),
            (StoreError::Config("c".into()), StoreErrorKind::Internal),
            (StoreError::Task("t".into()), StoreErrorKind::Internal),
        ];
        for (e, kind) in cases {
            assert_eq!(e.kind(), kind, "{e}");
        }
    }

    #[test]
    fn unavailable_keeps_the_backend_error() {
        let e = StoreError::unavailable("catalog", std::io::Error::other("disk gone"));
        assert_eq!(e.to_string(), "store unavailable: catalog: disk gone");
        let source = std::error::Error::source(&e).unwrap();
        assert_eq!(source.to_string(), "disk gone");
    }
}
