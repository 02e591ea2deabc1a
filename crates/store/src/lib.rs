//! The archive: a [`Catalog`] of streams, codec configs and fragments, and a [`MediaStore`] of
//! fragment bytes, with the embedded implementation (SQLite + append-only segment files).
//!
//! See docs/architecture.md#crash-safety for the row/file invariants and the order of durable steps.

mod continuity;
pub mod embedded;
mod error;
pub mod object;
pub mod postgres;
mod private;
mod sample_table;
mod segments;
mod sql_rows;
mod sqlite;
mod task;
mod types;
pub mod varint;

pub use continuity::{Continuity, StreamEdge};
pub use error::{BackendError, StoreError, StoreErrorKind};
pub use segments::SegmentMediaStore;
pub use sqlite::SqliteCatalog;
pub use types::*;

/// A fragment's sample tables as the SQL catalogs store them (the `tracks` column), for tools
/// that bulk-load a catalog without going through [`Catalog::insert_fragments`]
/// (crates/store/examples/bench_catalog.rs).
pub fn encode_sample_tables(tracks: &[FragmentTrack]) -> Vec<u8> {
    sample_table::encode(tracks)
}

/// The tracks' summaries as the SQL catalogs store them (the `summary` column), for the same
/// bulk-loading tools as [`encode_sample_tables`].
pub fn encode_track_summaries(tracks: &[FragmentTrack]) -> Vec<u8> {
    sample_table::encode_summaries(tracks)
}

use async_trait::async_trait;
use bytes::Bytes;
use std::ops::Range;

/// Changes applied by [`Catalog::update_stream`]; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct StreamUpdate {
    pub device_name: Option<String>,
    pub media_type: Option<String>,
    pub data_retention_hours: Option<u32>,
    pub set_tags: Vec<(String, String)>,
    pub remove_tags: Vec<String>,
    pub storage_tier: Option<String>,
    /// Version to store; callers pass a fresh one for every metadata change.
    pub new_version: String,
}

/// Stream records, codec configurations and the fragment index.
#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// Fails with [`StoreError::AlreadyExists`] when a stream of that name exists.
    async fn create_stream(&self, stream: NewStream) -> Result<StreamRecord, StoreError>;
    async fn stream_by_name(&self, name: &str) -> Result<Option<StreamRecord>, StoreError>;
    async fn stream_by_arn(&self, arn: &str) -> Result<Option<StreamRecord>, StoreError>;
    async fn stream_by_id(&self, id: StreamId) -> Result<Option<StreamRecord>, StoreError>;
    /// Streams in name order, names starting with `prefix`, strictly after `after_name`.
    async fn list_streams(
        &self,
        prefix: Option<&str>,
        after_name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StoreError>;
    /// Applies `update` if the stream's version equals `expected_version` (when given), else
    /// [`StoreError::VersionMismatch`]. Returns the updated record.
    async fn update_stream(
        &self,
        id: StreamId,
        expected_version: Option<&str>,
        update: StreamUpdate,
    ) -> Result<StreamRecord, StoreError>;
    /// Removes the stream, its codec configs and fragment rows. Media is deleted by the caller.
    async fn delete_stream(
        &self,
        id: StreamId,
        expected_version: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Returns the id of the track's latest config if it equals `config`, else stores a new row.
    async fn codec_config_for(
        &self,
        stream: StreamId,
        config: &CodecConfig,
    ) -> Result<CodecConfigId, StoreError>;
    async fn codec_config(&self, id: CodecConfigId) -> Result<Option<CodecConfig>, StoreError>;
    /// Every codec config of the stream, oldest first (a track's position in this list, counted
    /// per track, is the HLS init section's `SequenceNumber`).
    async fn codec_configs(
        &self,
        stream: StreamId,
    ) -> Result<Vec<(CodecConfigId, CodecConfig)>, StoreError>;
    /// [`Catalog::codec_configs`], shared; `needed` (if given) must be among them. Caching
    /// catalogs answer from memory while `needed` is known.
    async fn codec_configs_shared(
        &self,
        stream: StreamId,
        needed: Option<CodecConfigId>,
    ) -> Result<std::sync::Arc<Vec<(CodecConfigId, CodecConfig)>>, StoreError> {
        let _ = needed;
        Ok(std::sync::Arc::new(self.codec_configs(stream).await?))
    }

    /// Commits fragments in one transaction; each number must be above every earlier one of its
    /// stream ([`StoreError::FragmentNumberNotIncreasing`]). Durable when it returns.
    async fn insert_fragments(
        &self,
        fragments: Vec<NewFragment>,
    ) -> Result<Vec<FragmentNumber>, StoreError>;
    /// The highest fragment number ever committed to the stream (kept even after retention deletes).
    async fn last_fragment_number(
        &self,
        stream: StreamId,
    ) -> Result<Option<FragmentNumber>, StoreError>;
    async fn fragment(
        &self,
        stream: StreamId,
        number: FragmentNumber,
    ) -> Result<Option<FragmentRecord>, StoreError>;
    /// [`Catalog::fragment`], shared (no copy of its sample tables when cached).
    async fn fragment_shared(
        &self,
        stream: StreamId,
        number: FragmentNumber,
    ) -> Result<Option<std::sync::Arc<FragmentRecord>>, StoreError> {
        Ok(self
            .fragment(stream, number)
            .await?
            .map(std::sync::Arc::new))
    }
    /// Fragments whose start timestamp lies in the query's inclusive range, ascending.
    async fn query_fragments(
        &self,
        query: FragmentQuery,
    ) -> Result<Vec<FragmentRecord>, StoreError>;
    /// [`Catalog::query_fragments`] without the sample tables: the same fragments in the same
    /// order, as [`FragmentSummary`]s, which is all that playlists and ListFragments pages need.
    /// PostgreSQL answers it from a covering index alone (docs/architecture.md#catalog-at-scale).
    async fn query_fragment_summaries(
        &self,
        query: FragmentQuery,
    ) -> Result<Vec<FragmentSummary>, StoreError>;
    /// The newest `limit` fragments by ingest order (fragment number), returned ascending.
    async fn latest_fragments(
        &self,
        stream: StreamId,
        limit: usize,
    ) -> Result<Vec<FragmentRecord>, StoreError>;
    /// The oldest `limit` fragments whose number is above `after` (from the stream's first when
    /// `None`), ascending by number: ingest order, as GetMedia sends them
    /// (docs/wire.md#getmedia). A number that is not (or no longer) stored is a position all the
    /// same.
    async fn fragments_after(
        &self,
        stream: StreamId,
        after: Option<FragmentNumber>,
        limit: usize,
    ) -> Result<Vec<FragmentRecord>, StoreError>;
    /// [`Catalog::latest_fragments`] without the sample tables.
    async fn latest_fragment_summaries(
        &self,
        stream: StreamId,
        limit: usize,
    ) -> Result<Vec<FragmentSummary>, StoreError> {
        let records = self.latest_fragments(stream, limit).await?;
        Ok(records.iter().map(FragmentRecord::summary).collect())
    }
    /// Deletes fragment rows whose server timestamp is before `cutoff`; returns the media segments
    /// of `stream` that no remaining fragment references (safe to delete from the media store).
    async fn delete_fragments_before(
        &self,
        stream: StreamId,
        cutoff: Timestamp,
    ) -> Result<Vec<u64>, StoreError>;
    /// All streams (for the retention task).
    async fn all_streams(&self) -> Result<Vec<StreamRecord>, StoreError>;

    // ---- scale-out (issue #9): docs/architecture.md#writer-lease ----

    /// Grants `holder` the stream's writer lease for `ttl` if the stream has none or its lease
    /// expired (by the catalog's own clock, so nodes' clocks do not matter), else `Ok(None)`.
    /// Every grant's epoch is above every earlier epoch of the stream. Unknown stream →
    /// [`StoreError::StreamNotFound`].
    async fn acquire_writer_lease(
        &self,
        stream: StreamId,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<WriterLease>, StoreError>;
    /// Extends each lease to `ttl` from now iff its epoch is still its stream's current one (even
    /// if it expired meanwhile, as long as nobody took over); per lease, in order, what it found
    /// ([`LeaseRenewal`]). One catalog round trip for all of a node's leases
    /// (docs/architecture.md#writer-lease): a node with 200 cameras renews them in one statement,
    /// not 200 transactions. A row another transaction holds is skipped ([`LeaseRenewal::Busy`]),
    /// never waited for: the group commit locks the same stream rows.
    async fn renew_writer_leases(
        &self,
        leases: &[WriterLease],
        ttl: std::time::Duration,
    ) -> Result<Vec<LeaseRenewal>, StoreError>;
    /// Ends the lease now iff its epoch is still current (so another writer can acquire at
    /// once); a no-op otherwise.
    /// Whether some node holds an unexpired writer lease on the stream (a PutMedia is running
    /// on it): what a caught-up GetMedia waits on (docs/wire.md#getmedia). Unknown stream →
    /// `false`.
    async fn has_writer(&self, stream: StreamId) -> Result<bool, StoreError>;
    async fn release_writer_lease(&self, lease: WriterLease) -> Result<(), StoreError>;

    /// A number this catalog never returned before, in `1..2^31`: part of media object keys, so
    /// nodes and restarts never write the same key (docs/architecture.md#pending-media-and-orphan-collection).
    async fn allocate_media_epoch(&self) -> Result<u64, StoreError>;

    /// Records that an object for `(stream, segment)` is about to be written, before it is
    /// (docs/architecture.md#pending-media-and-orphan-collection). No reference to the stream:
    /// entries outlive a deleted stream so its objects are still collected. Segments < 2^63.
    async fn record_pending_media(&self, stream: StreamId, segment: u64) -> Result<(), StoreError>;
    /// Forgets a pending entry (its object was deleted, or committed some other way).
    /// [`Catalog::insert_fragments`] clears the entries of the rows it commits itself.
    async fn clear_pending_media(&self, stream: StreamId, segment: u64) -> Result<(), StoreError>;
    /// Pending entries recorded more than `older_than` ago (catalog clock), oldest first, at most `limit`.
    async fn stale_pending_media(
        &self,
        older_than: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<(StreamId, u64)>, StoreError>;

    /// The cluster's HLS session-token key: stores `candidate` if the catalog holds none yet and
    /// returns the stored one, the same for every node even when they start together.
    async fn session_key_or_init(&self, candidate: [u8; 32]) -> Result<[u8; 32], StoreError>;

    /// Changes committed from now on, by any node sharing this catalog (docs/architecture.md#playback-path).
    /// Best effort: a receiver that lags ([`tokio::sync::broadcast::error::RecvError::Lagged`])
    /// must treat it as [`CatalogChange::Unknown`]; readers keep a short TTL as a fallback.
    fn changes(&self) -> tokio::sync::broadcast::Receiver<CatalogChange>;
}

/// Media written this long ago without a committed row is a crash's leftover
/// ([`MediaStore::collect_orphans`]): far longer than any commit may take
/// ([`MAX_COMMIT_DELAY`] refuses later ones), so no append still in flight is collected
/// (docs/architecture.md#pending-media-and-orphan-collection).
pub const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Capacity of a catalog's change feed ([`Catalog::changes`]); a receiver further behind lags.
pub const CHANGE_FEED_CAPACITY: usize = 1024;

/// Fragment bytes. `append` writes, `sync` makes everything appended so far durable (group commit).
///
/// What a backend must guarantee (docs/architecture.md#deletes-and-retention): **no committed
/// fragment row ever points at deleted bytes.** A catalog row for an append is committed after
/// the append returned, and retention learns which segments no row references from a catalog
/// answer that may already be stale when [`MediaStore::delete_segments`] runs. So the store
/// tracks appends from [`MediaStore::append`] until [`MediaStore::settle`] and deletes a segment
/// only when no such append can still become a row pointing at it; whatever it cannot delete yet
/// it remembers and deletes on a later `delete_segments` call once it can. A backend whose
/// segments each take one append only (an object per fragment) meets this trivially, since a
/// segment the catalog reports was never the target of an unsettled append: its `settle` and
/// `begin_delete` may do nothing (or `settle` may delete the object of an append not committed).
#[async_trait]
pub trait MediaStore: Send + Sync + 'static {
    /// Appends the concatenation of `parts` for `stream`; not yet durable. Every successful append
    /// must later be [`settle`](MediaStore::settle)d exactly once (the [`Archive`] does); until
    /// then its segment is never deleted.
    async fn append(
        &self,
        stream: StreamId,
        parts: Vec<Bytes>,
    ) -> Result<MediaLocation, StoreError>;
    /// Appends several fragments (group commit); one result per item, in order.
    async fn append_many(
        &self,
        items: Vec<(StreamId, Vec<Bytes>)>,
    ) -> Vec<Result<MediaLocation, StoreError>> {
        let mut out = Vec::with_capacity(items.len());
        for (stream, parts) in items {
            out.push(self.append(stream, parts).await);
        }
        out
    }
    /// Makes every byte appended before this call durable (file data and directory entries).
    async fn sync(&self) -> Result<(), StoreError>;
    /// Reads `range` (relative to the location's start) of a stored fragment.
    async fn read(
        &self,
        stream: StreamId,
        location: MediaLocation,
        range: Range<u64>,
    ) -> Result<Bytes, StoreError>;
    /// Reports what became of a successful append at `location`: `committed` is true when a
    /// catalog row pointing at it was committed, or might have been (an error that does not say
    /// the row was refused), and false when no row will ever point at it (the sync or the commit
    /// failed). Ends the protection `append` gave the segment.
    async fn settle(&self, stream: StreamId, location: MediaLocation, committed: bool);
    /// Retention, step 1 of 3: called before [`Catalog::delete_fragments_before`] (step 2) is
    /// asked which of `stream`'s segments no row references. An append settled as committed after
    /// this call may be missing from that answer, so [`MediaStore::delete_segments`] keeps its
    /// segment.
    async fn begin_delete(&self, stream: StreamId);
    /// Retention, step 3 of 3: deletes the listed segments of a stream (step 2's answer) and the
    /// ones earlier calls deferred, as far as that is safe; called on every pass, even with an
    /// empty list, so deferred ones are retried. Calls for one stream do not overlap. A listed
    /// segment is
    /// - deleted when no append to it is unsettled and none was settled as committed since
    ///   `begin_delete` (the next append goes to a new segment);
    /// - kept and forgotten when an append to it was settled as committed since `begin_delete`
    ///   (or while its deletion was deferred): a row may point at it, and the catalog lists it
    ///   again once that row is deleted;
    /// - deferred otherwise (an append to it is unsettled), and deleted by a later call once
    ///   that append is settled as not committed.
    async fn delete_segments(&self, stream: StreamId, segments: &[u64]) -> Result<(), StoreError>;
    /// Deletes all media of a stream.
    async fn delete_stream(&self, stream: StreamId) -> Result<(), StoreError>;
    /// Deletes media a crash left behind without a catalog row, written more than `older_than`
    /// ago; returns how many pieces it deleted. Stores that sweep at open (the segment files,
    /// `embedded::open`) have nothing to do here; an object store collects its stale pending
    /// entries (docs/architecture.md#pending-media-and-orphan-collection).
    async fn collect_orphans(&self, older_than: std::time::Duration) -> Result<usize, StoreError> {
        let _ = older_than;
        Ok(0)
    }
}

mod archive;
mod cache;
pub use archive::{Archive, PendingFragment, MAX_COMMIT_DELAY};
pub use cache::CachingCatalog;
