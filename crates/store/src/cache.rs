//! A read-through cache in front of any [`Catalog`], for the playback hot path: every HLS
//! request needs its stream, the fragment row and the stream's codec configs, and the same few
//! fragments are asked for by every viewer. Fragment rows never change once committed and codec
//! configs are append-only, so caching them is safe; the cache sees every write that goes through
//! it (deletes, updates, retention) and drops what they touch. Writes of other nodes arrive
//! through the inner catalog's change feed ([`Catalog::changes`], docs/architecture.md#playback-path),
//! which a follower task applies; stream records are also refreshed after [`STREAM_TTL`] and live
//! edges after [`LIVE_EDGE_TTL`], in case a notification is lost.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::task::AbortOnDrop;
use crate::{
    Catalog, CatalogChange, CodecConfig, CodecConfigId, FragmentNumber, FragmentQuery,
    FragmentRecord, FragmentSummary, LeaseRenewal, NewFragment, NewStream, StoreError, StreamId,
    StreamRecord, StreamUpdate, Timestamp, WriterLease, CHANGE_FEED_CAPACITY,
};

/// How long a cached stream record is trusted without asking the catalog again.
pub const STREAM_TTL: Duration = Duration::from_secs(2);
/// Fragment rows kept (per generation; at most twice this many in memory).
const FRAGMENT_ENTRIES: usize = 8192;
/// The live edge kept per stream: every LIVE viewer asks for the same newest few fragments
/// (docs/architecture.md#playback-path). Requests for more go to the catalog.
const LIVE_EDGE: usize = 64;
/// How long a cached live edge is trusted: the change feed drops it at once on a commit, this
/// bounds the staleness when a notification is lost.
pub const LIVE_EDGE_TTL: Duration = Duration::from_secs(1);

/// Two generations: lookups hit either; when the young one is full it becomes the old one and
/// the old one is dropped. O(1), bounded, and recently used entries survive (they are promoted).
/// Bounded by weight: `capacity` per generation, each entry weighing what its inserter says (1
/// for the fragment rows here, the object's size in bytes in the object store's media cache), so
/// at most twice `capacity` is held. An entry heavier than `capacity` is not kept.
pub(crate) struct Generations<K, V> {
    young: HashMap<K, (V, usize)>,
    old: HashMap<K, (V, usize)>,
    young_weight: usize,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Generations<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Generations {
            young: HashMap::new(),
            old: HashMap::new(),
            young_weight: 0,
            capacity,
        }
    }

    pub(crate) fn get(&mut self, key: &K) -> Option<V> {
        if let Some((v, _)) = self.young.get(key) {
            return Some(v.clone());
        }
        let (v, weight) = self.old.remove(key)?;
        self.insert_weighted(key.clone(), v.clone(), weight);
        Some(v)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        self.insert_weighted(key, value, 1);
    }

    pub(crate) fn insert_weighted(&mut self, key: K, value: V, weight: usize) {
        if weight > self.capacity {
            self.remove(&key);
            return;
        }
        if self.young_weight + weight > self.capacity {
            self.old = std::mem::take(&mut self.young);
            self.young_weight = 0;
        }
        if let Some((_, replaced)) = self.young.insert(key, (value, weight)) {
            self.young_weight -= replaced;
        }
        self.young_weight += weight;
    }

    pub(crate) fn remove(&mut self, key: &K) {
        if let Some((_, weight)) = self.young.remove(key) {
            self.young_weight -= weight;
        }
        self.old.remove(key);
    }

    pub(crate) fn retain(&mut self, keep: impl Fn(&K) -> bool) {
        let mut dropped = 0;
        self.young.retain(|k, (_, weight)| {
            let kept = keep(k);
            if !kept {
                dropped += *weight;
            }
            kept
        });
        self.young_weight -= dropped;
        self.old.retain(|k, _| keep(k));
    }

    /// The weight held, both generations.
    #[cfg(test)]
    pub(crate) fn weight(&self) -> usize {
        self.young_weight + self.old.values().map(|(_, w)| w).sum::<usize>()
    }
}

type Configs = Arc<Vec<(CodecConfigId, CodecConfig)>>;
/// A stream's cached live edge and when it was read.
type LiveEdge = (Instant, Arc<Vec<FragmentRecord>>);

/// [`Catalog`] with a read-through cache of fragments, codec configs and stream records.
pub struct CachingCatalog {
    inner: Arc<dyn Catalog>,
    cache: Arc<Cache>,
    /// The inner catalog's changes, sent on once the cache has applied them (so a reader woken
    /// by one sees fresh data); `None` when built outside a runtime (no follower).
    changes: Option<broadcast::Sender<CatalogChange>>,
    _follower: Option<AbortOnDrop>,
}

/// What [`CachingCatalog`] keeps, shared with its follower task (which holds it weakly).
struct Cache {
    fragments: Mutex<Generations<(StreamId, FragmentNumber), Arc<FragmentRecord>>>,
    configs: Mutex<HashMap<StreamId, Configs>>,
    streams: Mutex<HashMap<StreamId, (Instant, StreamRecord)>>,
    /// Per stream, the newest [`LIVE_EDGE`] fragments, ascending, and when they were read;
    /// dropped on every commit (this node's, or another's through the change feed).
    live_edge: Mutex<HashMap<StreamId, LiveEdge>>,
    /// Bumped after every commit: a live edge read before a commit is not cached after it.
    commits: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl CachingCatalog {
    /// Subscribes to `inner`'s change feed at once (no change after this call is missed); the
    /// follower task that applies it needs a tokio runtime, without one the cache relies on its
    /// TTLs alone.
    pub fn new(inner: Arc<dyn Catalog>) -> Self {
        let cache = Arc::new(Cache {
            fragments: Mutex::new(Generations::new(FRAGMENT_ENTRIES)),
            configs: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            live_edge: Mutex::new(HashMap::new()),
            commits: AtomicU64::new(0),
        });
        let (changes, follower) = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let out = broadcast::channel(CHANGE_FEED_CAPACITY).0;
                let task =
                    runtime.spawn(follow(inner.changes(), Arc::downgrade(&cache), out.clone()));
                (Some(out), Some(AbortOnDrop(task)))
            }
            Err(_) => {
                tracing::warn!("CachingCatalog built outside a tokio runtime: no change feed");
                (None, None)
            }
        };
        CachingCatalog {
            inner,
            cache,
            changes,
            _follower: follower,
        }
    }

    /// The newest [`LIVE_EDGE`] fragments of `stream`, from memory when no commit happened since
    /// (and it is younger than [`LIVE_EDGE_TTL`]).
    async fn live_edge(&self, stream: StreamId) -> Result<Arc<Vec<FragmentRecord>>, StoreError> {
        if let Some((at, edge)) = lock(&self.cache.live_edge).get(&stream) {
            if at.elapsed() < LIVE_EDGE_TTL {
                return Ok(edge.clone());
            }
        }
        // A commit between this read and caching it would make it stale: then don't cache.
        let before = self.cache.commits.load(Ordering::SeqCst);
        let read_at = Instant::now();
        let fresh = Arc::new(self.inner.latest_fragments(stream, LIVE_EDGE).await?);
        let mut edges = lock(&self.cache.live_edge);
        if self.cache.commits.load(Ordering::SeqCst) == before {
            edges.insert(stream, (read_at, fresh.clone()));
        }
        Ok(fresh)
    }
}

impl Cache {
    fn forget_stream(&self, stream: StreamId) {
        lock(&self.streams).remove(&stream);
        lock(&self.configs).remove(&stream);
        lock(&self.fragments).retain(|(s, _)| *s != stream);
        lock(&self.live_edge).remove(&stream);
    }

    /// A change committed by any node. A stream change may be a retention delete or the stream
    /// gone, so everything of the stream goes, not only its record.
    fn apply(&self, change: CatalogChange) {
        self.commits.fetch_add(1, Ordering::SeqCst);
        match change {
            CatalogChange::Fragments(stream) => {
                lock(&self.live_edge).remove(&stream);
            }
            CatalogChange::Stream(stream) => self.forget_stream(stream),
            CatalogChange::Unknown => {
                lock(&self.streams).clear();
                lock(&self.configs).clear();
                lock(&self.fragments).retain(|_| false);
                lock(&self.live_edge).clear();
            }
        }
    }
}

/// The follower: applies each change of `feed` to the cache, then passes it on to `out`. Ends
/// when the cache or the feed is gone.
async fn follow(
    mut feed: broadcast::Receiver<CatalogChange>,
    cache: Weak<Cache>,
    out: broadcast::Sender<CatalogChange>,
) {
    loop {
        let change = match feed.recv().await {
            Ok(change) => change,
            // Missed changes: anything may have changed.
            Err(RecvError::Lagged(_)) => CatalogChange::Unknown,
            Err(RecvError::Closed) => return,
        };
        let Some(cache) = cache.upgrade() else {
            return;
        };
        cache.apply(change);
        drop(cache);
        let _ = out.send(change);
    }
}

#[async_trait]
impl Catalog for CachingCatalog {
    async fn create_stream(&self, stream: NewStream) -> Result<StreamRecord, StoreError> {
        self.inner.create_stream(stream).await
    }

    async fn stream_by_name(&self, name: &str) -> Result<Option<StreamRecord>, StoreError> {
        self.inner.stream_by_name(name).await
    }

    async fn stream_by_arn(&self, arn: &str) -> Result<Option<StreamRecord>, StoreError> {
        self.inner.stream_by_arn(arn).await
    }

    async fn stream_by_id(&self, id: StreamId) -> Result<Option<StreamRecord>, StoreError> {
        if let Some((at, s)) = lock(&self.cache.streams).get(&id) {
            if at.elapsed() < STREAM_TTL {
                return Ok(Some(s.clone()));
            }
        }
        let found = self.inner.stream_by_id(id).await?;
        let mut streams = lock(&self.cache.streams);
        match &found {
            Some(s) => {
                streams.insert(id, (Instant::now(), s.clone()));
            }
            None => {
                streams.remove(&id);
            }
        }
        Ok(found)
    }

    async fn list_streams(
        &self,
        prefix: Option<&str>,
        after_name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        self.inner.list_streams(prefix, after_name, limit).await
    }

    async fn update_stream(
        &self,
        id: StreamId,
        expected_version: Option<&str>,
        update: StreamUpdate,
    ) -> Result<StreamRecord, StoreError> {
        let result = self.inner.update_stream(id, expected_version, update).await;
        lock(&self.cache.streams).remove(&id);
        result
    }

    async fn delete_stream(
        &self,
        id: StreamId,
        expected_version: Option<&str>,
    ) -> Result<(), StoreError> {
        let result = self.inner.delete_stream(id, expected_version).await;
        self.cache.forget_stream(id);
        result
    }

    async fn codec_config_for(
        &self,
        stream: StreamId,
        config: &CodecConfig,
    ) -> Result<CodecConfigId, StoreError> {
        self.inner.codec_config_for(stream, config).await
    }

    async fn codec_config(&self, id: CodecConfigId) -> Result<Option<CodecConfig>, StoreError> {
        self.inner.codec_config(id).await
    }

    /// A new config row may have been written since they were cached: re-read when `needed` is missing.
    async fn codec_configs_shared(
        &self,
        stream: StreamId,
        needed: Option<CodecConfigId>,
    ) -> Result<Configs, StoreError> {
        if let Some(c) = lock(&self.cache.configs).get(&stream) {
            if needed.is_none_or(|id| c.iter().any(|(i, _)| *i == id)) {
                return Ok(c.clone());
            }
        }
        let fresh = Arc::new(self.inner.codec_configs(stream).await?);
        lock(&self.cache.configs).insert(stream, fresh.clone());
        Ok(fresh)
    }

    async fn fragment_shared(
        &self,
        stream: StreamId,
        number: FragmentNumber,
    ) -> Result<Option<Arc<FragmentRecord>>, StoreError> {
        if let Some(f) = lock(&self.cache.fragments).get(&(stream, number)) {
            return Ok(Some(f));
        }
        let Some(f) = self.inner.fragment(stream, number).await? else {
            return Ok(None);
        };
        let f = Arc::new(f);
        lock(&self.cache.fragments).insert((stream, number), f.clone());
        Ok(Some(f))
    }

    async fn codec_configs(
        &self,
        stream: StreamId,
    ) -> Result<Vec<(CodecConfigId, CodecConfig)>, StoreError> {
        let fresh = self.inner.codec_configs(stream).await?;
        lock(&self.cache.configs).insert(stream, Arc::new(fresh.clone()));
        Ok(fresh)
    }

    async fn insert_fragments(
        &self,
        fragments: Vec<NewFragment>,
    ) -> Result<Vec<FragmentNumber>, StoreError> {
        let streams: Vec<StreamId> = fragments.iter().map(|f| f.stream).collect();
        let result = self.inner.insert_fragments(fragments).await;
        self.cache.commits.fetch_add(1, Ordering::SeqCst);
        let mut edges = lock(&self.cache.live_edge);
        for stream in streams {
            edges.remove(&stream);
        }
        result
    }

    async fn last_fragment_number(
        &self,
        stream: StreamId,
    ) -> Result<Option<FragmentNumber>, StoreError> {
        // The live edge holds the newest fragment (it is refreshed on every commit); an empty
        // edge (nothing left after retention) asks the catalog, which remembers the last number.
        match self.live_edge(stream).await?.last() {
            Some(newest) => Ok(Some(newest.number)),
            None => self.inner.last_fragment_number(stream).await,
        }
    }

    async fn fragment(
        &self,
        stream: StreamId,
        number: FragmentNumber,
    ) -> Result<Option<FragmentRecord>, StoreError> {
        Ok(self
            .fragment_shared(stream, number)
            .await?
            .map(|f| (*f).clone()))
    }

    async fn query_fragments(
        &self,
        query: FragmentQuery,
    ) -> Result<Vec<FragmentRecord>, StoreError> {
        self.inner.query_fragments(query).await
    }

    async fn latest_fragments(
        &self,
        stream: StreamId,
        limit: usize,
    ) -> Result<Vec<FragmentRecord>, StoreError> {
        if limit > LIVE_EDGE {
            return self.inner.latest_fragments(stream, limit).await;
        }
        let edge = self.live_edge(stream).await?;
        Ok(edge[edge.len().saturating_sub(limit)..].to_vec())
    }

    async fn fragments_after(
        &self,
        stream: StreamId,
        after: Option<FragmentNumber>,
        limit: usize,
    ) -> Result<Vec<FragmentRecord>, StoreError> {
        // A live GetMedia asks for what follows the fragment it just sent: the live edge holds
        // all of that whenever it reaches back to that fragment.
        if let Some(after) = after {
            let edge = self.live_edge(stream).await?;
            if edge.first().is_some_and(|f| f.number <= after) {
                let start = edge.partition_point(|f| f.number <= after);
                return Ok(edge[start..].iter().take(limit).cloned().collect());
            }
        }
        self.inner.fragments_after(stream, after, limit).await
    }

    async fn query_fragment_summaries(
        &self,
        query: FragmentQuery,
    ) -> Result<Vec<FragmentSummary>, StoreError> {
        self.inner.query_fragment_summaries(query).await
    }

    async fn latest_fragment_summaries(
        &self,
        stream: StreamId,
        limit: usize,
    ) -> Result<Vec<FragmentSummary>, StoreError> {
        if limit > LIVE_EDGE {
            return self.inner.latest_fragment_summaries(stream, limit).await;
        }
        let edge = self.live_edge(stream).await?;
        let newest = &edge[edge.len().saturating_sub(limit)..];
        Ok(newest.iter().map(FragmentRecord::summary).collect())
    }

    async fn delete_fragments_before(
        &self,
        stream: StreamId,
        cutoff: Timestamp,
    ) -> Result<Vec<u64>, StoreError> {
        let result = self.inner.delete_fragments_before(stream, cutoff).await;
        lock(&self.cache.fragments).retain(|(s, _)| *s != stream);
        lock(&self.cache.live_edge).remove(&stream);
        result
    }

    async fn all_streams(&self) -> Result<Vec<StreamRecord>, StoreError> {
        self.inner.all_streams().await
    }

    async fn has_writer(&self, stream: StreamId) -> Result<bool, StoreError> {
        self.inner.has_writer(stream).await
    }

    async fn acquire_writer_lease(
        &self,
        stream: StreamId,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<WriterLease>, StoreError> {
        self.inner.acquire_writer_lease(stream, holder, ttl).await
    }

    async fn renew_writer_leases(
        &self,
        leases: &[WriterLease],
        ttl: Duration,
    ) -> Result<Vec<LeaseRenewal>, StoreError> {
        self.inner.renew_writer_leases(leases, ttl).await
    }

    async fn release_writer_lease(&self, lease: WriterLease) -> Result<(), StoreError> {
        self.inner.release_writer_lease(lease).await
    }

    async fn allocate_media_epoch(&self) -> Result<u64, StoreError> {
        self.inner.allocate_media_epoch().await
    }

    async fn record_pending_media(&self, stream: StreamId, segment: u64) -> Result<(), StoreError> {
        self.inner.record_pending_media(stream, segment).await
    }

    async fn clear_pending_media(&self, stream: StreamId, segment: u64) -> Result<(), StoreError> {
        self.inner.clear_pending_media(stream, segment).await
    }

    async fn stale_pending_media(
        &self,
        older_than: Duration,
        limit: usize,
    ) -> Result<Vec<(StreamId, u64)>, StoreError> {
        self.inner.stale_pending_media(older_than, limit).await
    }

    async fn session_key_or_init(&self, candidate: [u8; 32]) -> Result<[u8; 32], StoreError> {
        self.inner.session_key_or_init(candidate).await
    }

    /// The inner catalog's feed, each change sent on after this cache applied it.
    fn changes(&self) -> broadcast::Receiver<CatalogChange> {
        match &self.changes {
            Some(out) => out.subscribe(),
            None => self.inner.changes(),
        }
    }
}
