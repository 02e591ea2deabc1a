//! Media on S3-compatible object storage (issue #9): [`ObjectMediaStore`], one immutable object
//! per fragment, for nodes that keep nothing on local disk (docs/architecture.md#media-on-object-storage).
//!
//! - **Keys** ([`object_key`]): `{prefix}/{stream id}/{segment as 16 hex digits}`, where
//!   `segment = (epoch << 32) | counter`. Every store instance gets an epoch no other instance
//!   ever had (the caller's duty, e.g. from a catalog sequence) and counts from 1, so a key is
//!   written once by one PUT: nothing is ever overwritten and no S3 precondition is needed.
//! - **Ledger** ([`MediaLedger`]): an append records its segment as pending *before* its PUT; the
//!   catalog commits the fragment row and clears the entry in one transaction. So a crash between
//!   PUT and commit leaves a pending entry, and [`ObjectMediaStore::collect_orphans`] deletes
//!   its object later. Invariant: no committed row points at a deleted object, and every object
//!   no row references is either pending or already collected.
//! - **Reads** go through a node-local cache of whole objects bounded by bytes; objects above
//!   [`WHOLE_OBJECT_MAX`] are read by ranged GETs instead.

use crate::cache::Generations;
use crate::{MediaLocation, MediaStore, StoreError, StreamId};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Default bound of the node-local object cache, in bytes.
pub const DEFAULT_CACHE_BYTES: usize = 256 * 1024 * 1024;
/// Objects up to this size are fetched whole (and cached) on a miss; larger ones by ranged GETs.
pub const WHOLE_OBJECT_MAX: u64 = 16 * 1024 * 1024;
/// PUTs in flight at once for one [`MediaStore::append_many`] (one group commit batch).
const CONCURRENT_PUTS: usize = 16;
/// Pending entries taken per round of [`ObjectMediaStore::collect_orphans`].
const COLLECT_BATCH: usize = 1000;
/// `what` of every error that may pass on retry.
const UNAVAILABLE: &str = "media (S3)";

/// Per-fragment durability ledger: which media objects were (or are being) written without a
/// committed catalog row yet. The catalog implements it (`Catalog` has the same three methods);
/// its `insert_fragments` clears a fragment's entry in the transaction that commits its row.
#[async_trait]
pub trait MediaLedger: Send + Sync + 'static {
    /// Records `segment` of `stream` as pending, with the time of recording; durable on return.
    async fn record_pending_media(&self, stream: StreamId, segment: u64) -> Result<(), StoreError>;
    /// Removes the entry (none there is fine).
    async fn clear_pending_media(&self, stream: StreamId, segment: u64) -> Result<(), StoreError>;
    /// Up to `limit` entries recorded more than `older_than` ago, oldest first.
    async fn stale_pending_media(
        &self,
        older_than: Duration,
        limit: usize,
    ) -> Result<Vec<(StreamId, u64)>, StoreError>;
}

/// The catalog as the ledger, as a server wires it: the catalog's `insert_fragments` clears an
/// entry in the transaction that commits its row (docs/architecture.md#pending-media-and-orphan-collection).
pub struct CatalogLedger(pub Arc<dyn crate::Catalog>);

#[async_trait]
impl MediaLedger for CatalogLedger {
    async fn record_pending_media(&self, stream: StreamId, segment: u64) -> Result<(), StoreError> {
        self.0.record_pending_media(stream, segment).await
    }

    async fn clear_pending_media(&self, stream: StreamId, segment: u64) -> Result<(), StoreError> {
        self.0.clear_pending_media(stream, segment).await
    }

    async fn stale_pending_media(
        &self,
        older_than: Duration,
        limit: usize,
    ) -> Result<Vec<(StreamId, u64)>, StoreError> {
        self.0.stale_pending_media(older_than, limit).await
    }
}

/// A [`MediaLedger`] in memory. It forgets everything at exit, so the orphans of a crash are
/// never collected: for tests, and for the catalog-less unit tests of [`ObjectMediaStore`].
#[derive(Default)]
pub struct MemoryLedger(Mutex<HashMap<(StreamId, u64), Instant>>);

impl MemoryLedger {
    /// The pending entries, in (stream, segment) order.
    pub fn pending(&self) -> Vec<(StreamId, u64)> {
        let mut all: Vec<_> = lock(&self.0).keys().copied().collect();
        all.sort();
        all
    }
}

#[async_trait]
impl MediaLedger for MemoryLedger {
    async fn record_pending_media(&self, stream: StreamId, segment: u64) -> Result<(), StoreError> {
        lock(&self.0).insert((stream, segment), Instant::now());
        Ok(())
    }

    async fn clear_pending_media(&self, stream: StreamId, segment: u64) -> Result<(), StoreError> {
        lock(&self.0).remove(&(stream, segment));
        Ok(())
    }

    async fn stale_pending_media(
        &self,
        older_than: Duration,
        limit: usize,
    ) -> Result<Vec<(StreamId, u64)>, StoreError> {
        let mut stale: Vec<_> = lock(&self.0)
            .iter()
            .filter(|(_, at)| at.elapsed() >= older_than)
            .map(|(k, at)| (*at, *k))
            .collect();
        stale.sort();
        Ok(stale.into_iter().take(limit).map(|(_, k)| k).collect())
    }
}

/// The key of a fragment's object: `{prefix}/{stream id}/{segment as 16 lowercase hex digits}`
/// (`{stream id}/{segment}` under an empty prefix). The one place keys are made; a stream's
/// objects are everything under [`stream_dir`].
pub fn object_key(prefix: &Path, stream: StreamId, segment: u64) -> Path {
    stream_dir(prefix, stream).join(format!("{segment:016x}"))
}

/// `{prefix}/{stream id}`: the "directory" holding every object of a stream.
pub fn stream_dir(prefix: &Path, stream: StreamId) -> Path {
    prefix.clone().join(stream.0.to_string())
}

/// A store of fragment bytes on an [`ObjectStore`] (S3, Garage, MinIO; local files or memory in
/// tests), one object per fragment. See the module doc.
pub struct ObjectMediaStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    ledger: Arc<dyn MediaLedger>,
    /// This instance's writer epoch: the high 32 bits of every segment it creates.
    epoch: u32,
    /// The last counter handed out (the low 32 bits of a segment).
    counter: AtomicU64,
    /// Whole objects by (stream, segment), weighed by bytes; also filled by `append`.
    cache: Mutex<Generations<(StreamId, u64), Cached>>,
    /// This instance's appends not settled yet: never collected as orphans.
    unsettled: Mutex<HashSet<(StreamId, u64)>>,
    /// Deletions that failed, per stream, retried by the next `delete_segments` of the stream.
    deferred: Mutex<HashMap<StreamId, BTreeSet<u64>>>,
}

/// A cached object: the parts it was written from (no copy at ingest) or the one GET body.
type Cached = Arc<[Bytes]>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ObjectMediaStore {
    /// A store writing under `prefix` (`""` for the store's root; `a/b` style) of `store`, with
    /// writer `epoch` (1 ≤ epoch < 2^31, never used by another instance before, so segments stay
    /// positive in a signed 64-bit column) and a [`DEFAULT_CACHE_BYTES`] cache.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        epoch: u32,
        ledger: Arc<dyn MediaLedger>,
    ) -> Result<Self, StoreError> {
        if !(1..1 << 31).contains(&epoch) {
            return Err(StoreError::Config(format!(
                "media writer epoch {epoch} is outside 1..2^31"
            )));
        }
        let prefix = Path::parse(prefix.trim_matches('/')).map_err(|e| {
            StoreError::Config(format!(
                "media key prefix {prefix:?} is not a valid path: {e}"
            ))
        })?;
        Ok(ObjectMediaStore {
            store,
            prefix,
            ledger,
            epoch,
            counter: AtomicU64::new(0),
            cache: Mutex::new(Generations::new(DEFAULT_CACHE_BYTES / 2)),
            unsettled: Mutex::new(HashSet::new()),
            deferred: Mutex::new(HashMap::new()),
        })
    }

    /// Bounds the node-local cache to `bytes` in all (0 turns it off).
    pub fn with_cache_bytes(self, bytes: usize) -> Self {
        ObjectMediaStore {
            cache: Mutex::new(Generations::new(bytes / 2)),
            ..self
        }
    }

    /// Fails with one clear line when the bucket cannot be reached or refuses the credentials:
    /// lists at most one page under the prefix (a HEAD could not tell a missing bucket from a
    /// missing key).
    pub async fn check_reachable(&self) -> Result<(), StoreError> {
        let mut listing = self.store.list(Some(&self.prefix));
        match listing.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(StoreError::unavailable(
                format!(
                    "media (S3) {} (prefix \"{}\") is unreachable or refuses the credentials",
                    self.store, self.prefix
                ),
                e,
            )),
        }
    }

    /// Deletes the objects of stale pending entries (appends whose row was never committed: a
    /// crash between PUT and commit, a failed `settle(false)`) and clears the entries; returns
    /// how many it collected. The object goes first and the entry after, so a failure in
    /// between leaves the entry for the next call.
    ///
    /// `older_than` must exceed the longest time an append can wait for its commit (the archive
    /// commits or fails a batch within seconds; an hour is ample): an entry younger than that may
    /// still become a row. This instance's own unsettled appends are never collected.
    pub async fn collect_orphans(&self, older_than: Duration) -> Result<usize, StoreError> {
        let mut collected = 0;
        loop {
            let stale = self
                .ledger
                .stale_pending_media(older_than, COLLECT_BATCH)
                .await?;
            let unsettled = lock(&self.unsettled).clone();
            let orphans: Vec<_> = stale
                .iter()
                .filter(|e| !unsettled.contains(e))
                .copied()
                .collect();
            for &(stream, segment) in &orphans {
                self.delete_objects(stream, &[segment]).await?;
                self.ledger.clear_pending_media(stream, segment).await?;
            }
            collected += orphans.len();
            if stale.len() < COLLECT_BATCH || orphans.is_empty() {
                return Ok(collected);
            }
        }
    }

    fn key(&self, stream: StreamId, segment: u64) -> Path {
        object_key(&self.prefix, stream, segment)
    }

    /// The next segment of this instance; an error once the 32-bit counter is used up.
    fn next_segment(&self) -> Result<u64, StoreError> {
        let counter = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        if counter > u64::from(u32::MAX) {
            return Err(StoreError::Task(format!(
                "media writer epoch {} has used all 2^32-1 segments: start the store with a new epoch",
                self.epoch
            )));
        }
        Ok(u64::from(self.epoch) << 32 | counter)
    }

    /// Deletes the objects of `segments` (a missing one is fine) and drops them from the cache.
    async fn delete_objects(&self, stream: StreamId, segments: &[u64]) -> Result<(), StoreError> {
        {
            let mut cache = lock(&self.cache);
            for &segment in segments {
                cache.remove(&(stream, segment));
            }
        }
        let keys: Vec<_> = segments.iter().map(|&s| Ok(self.key(stream, s))).collect();
        let results = self
            .store
            .delete_stream(futures::stream::iter(keys).boxed());
        delete_all(results).await
    }

    /// What becomes of an append no row will point at: its object is deleted, then its pending
    /// entry cleared. A failure is logged; the entry stays and `collect_orphans` retries.
    async fn discard(&self, stream: StreamId, segment: u64) {
        let result = match self.delete_objects(stream, &[segment]).await {
            Ok(()) => self.ledger.clear_pending_media(stream, segment).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(?stream, segment, error = %e,
                "discarding an uncommitted media object failed; orphan collection will retry");
        }
    }

    async fn fetch(&self, stream: StreamId, location: MediaLocation) -> Result<Cached, StoreError> {
        let key = self.key(stream, location.segment);
        let body = async { self.store.get(&key).await?.bytes().await }.await;
        let body = body.map_err(|e| read_error(stream, location, &(0..location.len), &key, e))?;
        let object: Cached = Arc::from([body]);
        lock(&self.cache).insert_weighted(
            (stream, location.segment),
            object.clone(),
            weight(&object),
        );
        Ok(object)
    }
}

fn weight(parts: &[Bytes]) -> usize {
    parts.iter().map(Bytes::len).sum()
}

/// `range` of the concatenation of `parts` (within it): a slice of the one part it lies in (no
/// copy), else a copy of just the range.
fn slice_parts(parts: &[Bytes], range: Range<usize>) -> Bytes {
    let mut start = 0;
    for part in parts {
        let end = start + part.len();
        if range.start >= start && range.end <= end {
            return part.slice(range.start - start..range.end - start);
        }
        start = end;
    }
    let mut out = BytesMut::with_capacity(range.len());
    let mut start = 0;
    for part in parts {
        let end = start + part.len();
        let (from, to) = (range.start.max(start), range.end.min(end));
        if from < to {
            out.extend_from_slice(&part[from - start..to - start]);
        }
        start = end;
    }
    out.freeze()
}

/// Runs a bulk delete to its end; a missing object counts as deleted.
async fn delete_all(
    results: futures::stream::BoxStream<'static, object_store::Result<Path>>,
) -> Result<(), StoreError> {
    let failures: Vec<_> = results
        .filter_map(|r| async move {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => Some(e),
            }
        })
        .collect()
        .await;
    match failures.into_iter().next() {
        None => Ok(()),
        Some(e) => Err(write_error("DELETE", e)),
    }
}

/// An object store error of a write or delete (or a list), by meaning.
fn write_error(op: &str, e: object_store::Error) -> StoreError {
    use object_store::Error as E;
    match e {
        E::AlreadyExists { .. } | E::Precondition { .. } => StoreError::Conflict {
            what: format!("media (S3) {op}"),
            source: e.into(),
        },
        E::JoinError { .. } => StoreError::Task(format!("media (S3) {op}: {e}")),
        E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::UnknownConfigurationKey { .. } => StoreError::Config(format!("media (S3) {op}: {e}")),
        // Network errors, timeouts and 5xx (after object_store's own retries), 4xx it has no
        // variant for, denied credentials (they may be rotated back): may pass later.
        _ => StoreError::unavailable(UNAVAILABLE, e),
    }
}

/// An error reading a fragment's object: a missing object means a row points at nothing
/// (corrupt, with the key); the rest as for writes.
fn read_error(
    stream: StreamId,
    location: MediaLocation,
    range: &Range<u64>,
    key: &Path,
    e: object_store::Error,
) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => {
            let what = format!("object {key} is missing: {e}");
            let source = std::io::Error::new(std::io::ErrorKind::NotFound, what);
            StoreError::media_io(stream, location, range, source)
        }
        e => write_error("GET", e),
    }
}

#[async_trait]
impl MediaStore for ObjectMediaStore {
    async fn collect_orphans(&self, older_than: Duration) -> Result<usize, StoreError> {
        ObjectMediaStore::collect_orphans(self, older_than).await
    }

    /// Records the segment as pending, PUTs the parts as one object (one payload of the same
    /// `Bytes`, no copy) and caches it for the live viewers that read it next.
    async fn append(
        &self,
        stream: StreamId,
        parts: Vec<Bytes>,
    ) -> Result<MediaLocation, StoreError> {
        let segment = self.next_segment()?;
        let key = self.key(stream, segment);
        lock(&self.unsettled).insert((stream, segment));
        if let Err(e) = self.ledger.record_pending_media(stream, segment).await {
            lock(&self.unsettled).remove(&(stream, segment));
            return Err(e);
        }
        let payload: PutPayload = parts.iter().cloned().collect();
        if let Err(e) = self.store.put(&key, payload).await {
            // The PUT may have stored the object all the same (a timeout after the write).
            lock(&self.unsettled).remove(&(stream, segment));
            self.discard(stream, segment).await;
            return Err(write_error("PUT", e));
        }
        let object: Cached = parts.into();
        let len = weight(&object);
        lock(&self.cache).insert_weighted((stream, segment), object, len);
        Ok(MediaLocation {
            segment,
            offset: 0,
            len: len as u64,
        })
    }

    /// The batch's PUTs run concurrently (one object each), answers in order.
    async fn append_many(
        &self,
        items: Vec<(StreamId, Vec<Bytes>)>,
    ) -> Vec<Result<MediaLocation, StoreError>> {
        futures::stream::iter(items)
            .map(|(stream, parts)| self.append(stream, parts))
            .buffered(CONCURRENT_PUTS)
            .collect()
            .await
    }

    /// Nothing to do: an object is durable once its PUT returned.
    async fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn read(
        &self,
        stream: StreamId,
        location: MediaLocation,
        range: Range<u64>,
    ) -> Result<Bytes, StoreError> {
        let key = self.key(stream, location.segment);
        let invalid = |what: String| {
            let source = std::io::Error::new(std::io::ErrorKind::InvalidData, what);
            StoreError::media_io(stream, location, &range, source)
        };
        if range.start > range.end || range.end > location.len {
            return Err(invalid("range outside fragment".into()));
        }
        let (start, end) = (location.offset + range.start, location.offset + range.end);
        let object_len = location.offset + location.len;
        let cached = lock(&self.cache).get(&(stream, location.segment));
        let object = match cached {
            Some(object) => object,
            None if object_len <= WHOLE_OBJECT_MAX => self.fetch(stream, location).await?,
            None => {
                let got = self.store.get_range(&key, start..end).await;
                let got = got.map_err(|e| read_error(stream, location, &range, &key, e))?;
                if got.len() as u64 != end - start {
                    return Err(invalid(format!(
                        "object {key} is shorter than its row says"
                    )));
                }
                return Ok(got);
            }
        };
        if weight(&object) as u64 != object_len {
            return Err(invalid(format!(
                "object {key} has {} bytes, its row says {object_len}",
                weight(&object)
            )));
        }
        Ok(slice_parts(&object, start as usize..end as usize))
    }

    /// Committed: nothing (the catalog cleared the pending entry with the row). Not committed:
    /// the object is deleted and the entry cleared.
    async fn settle(&self, stream: StreamId, location: MediaLocation, committed: bool) {
        lock(&self.unsettled).remove(&(stream, location.segment));
        if !committed {
            self.discard(stream, location.segment).await;
        }
    }

    /// Nothing: every segment is the object of exactly one append (a fresh key each time), so a
    /// segment the catalog reports as unreferenced had its one append committed and its row
    /// deleted since; no unsettled append can point at it and no later append ever will
    /// (the `MediaStore` trait doc's "an object per fragment" case).
    async fn begin_delete(&self, _stream: StreamId) {}

    /// Deletes the objects (missing ones are fine). Ones that fail are kept and retried by the
    /// next call for the stream (until then, and after a restart, they are leaked).
    async fn delete_segments(&self, stream: StreamId, segments: &[u64]) -> Result<(), StoreError> {
        let mut all = lock(&self.deferred).remove(&stream).unwrap_or_default();
        all.extend(segments.iter().copied());
        let all: Vec<u64> = all.into_iter().collect();
        let result = self.delete_objects(stream, &all).await;
        if result.is_err() {
            lock(&self.deferred)
                .entry(stream)
                .or_default()
                .extend(all.iter().copied());
        }
        result
    }

    /// Lists `{prefix}/{stream}/` and deletes all of it (one bulk delete stream).
    async fn delete_stream(&self, stream: StreamId) -> Result<(), StoreError> {
        lock(&self.cache).retain(|(s, _)| *s != stream);
        lock(&self.deferred).remove(&stream);
        let keys = self
            .store
            .list(Some(&stream_dir(&self.prefix, stream)))
            .map_ok(|meta| meta.location)
            .boxed();
        delete_all(self.store.delete_stream(keys)).await
    }
}

/// An S3-compatible store for `url` = `s3://bucket[/prefix]`: every key lives under `prefix`.
/// With an `endpoint` (Garage, MinIO, …) requests use path-style addressing, and plain
/// `http://` is allowed. Retries are bounded (15 s in all per request) so a store that cannot be
/// reached fails a commit, and a server's start, within seconds rather than minutes.
pub fn s3(
    url: &str,
    endpoint: Option<&str>,
    region: &str,
    access_key_id: &str,
    secret_access_key: &str,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    use object_store::aws::AmazonS3Builder;
    let bad = |why: &str| {
        StoreError::Config(format!(
            "media URL {url:?} {why}: expected s3://bucket or s3://bucket/prefix"
        ))
    };
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| bad("is not s3://"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("names no bucket"));
    }
    let prefix = Path::parse(prefix.trim_matches('/'))
        .map_err(|e| bad(&format!("has an invalid prefix ({e})")))?;
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region)
        .with_access_key_id(access_key_id)
        .with_secret_access_key(secret_access_key)
        .with_retry(object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
            ..Default::default()
        })
        // A store that accepts connections but never answers (stopped, overloaded) must fail a
        // request in seconds too, not after object_store's 30 s default per attempt.
        .with_client_options(
            object_store::ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(10)),
        );
    if let Some(endpoint) = endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    let store = builder
        .build()
        .map_err(|e| StoreError::Config(format!("media store {url:?}: {e}")))?;
    Ok(if prefix.as_ref().is_empty() {
        Arc::new(store)
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
    })
}

#[cfg(test)]
mod tests;
