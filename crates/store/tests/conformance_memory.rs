//! The conformance suite (`conformance/mod.rs`) on a minimal in-memory backend: a reference model
//! of what the traits promise, written from their docs, so the suite is known to ask for the
//! contract and not for SQLite's or the segment files' habits. Test-only; it keeps nothing across
//! a restart, so the reopen test has nothing to check on it.

mod conformance;

use async_trait::async_trait;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use store::*;
use tokio::sync::broadcast;

/// One stream and everything the catalog keeps for it.
#[derive(Clone)]
struct StreamState {
    record: StreamRecord,
    configs: Vec<(CodecConfigId, CodecConfig)>,
    fragments: BTreeMap<FragmentNumber, FragmentRecord>,
    last: Option<FragmentNumber>,
    edge: StreamEdge,
    /// The last writer lease epoch granted (0: never) and when it expires (`None`: released).
    writer_epoch: u64,
    writer_expires: Option<Instant>,
}

#[derive(Clone, Default)]
struct CatalogState {
    streams: BTreeMap<StreamId, StreamState>,
    last_stream_id: i64,
    last_config_id: i64,
    last_media_epoch: u64,
    /// Pending media entries and when they were recorded (no tie to `streams`).
    pending: BTreeMap<(StreamId, u64), Instant>,
    session_key: Option<[u8; 32]>,
}

impl CatalogState {
    fn stream(&mut self, id: StreamId) -> Result<&mut StreamState, StoreError> {
        self.streams
            .get_mut(&id)
            .ok_or(StoreError::StreamNotFound(id))
    }

    /// The stream, if `expected` (when given) is its version.
    fn versioned(
        &mut self,
        id: StreamId,
        expected: Option<&str>,
    ) -> Result<&mut StreamState, StoreError> {
        let s = self.stream(id)?;
        match expected {
            Some(e) if e != s.record.version => Err(StoreError::VersionMismatch {
                stream: id,
                expected: e.into(),
                found: s.record.version.clone(),
            }),
            _ => Ok(s),
        }
    }

    fn find(&self, matches: impl Fn(&StreamRecord) -> bool) -> Option<StreamRecord> {
        let mut all = self.streams.values().map(|s| &s.record);
        all.find(|r| matches(r)).cloned()
    }
}

struct MemoryCatalog {
    state: Mutex<CatalogState>,
    changes: broadcast::Sender<CatalogChange>,
}

impl Default for MemoryCatalog {
    fn default() -> Self {
        MemoryCatalog {
            state: Mutex::default(),
            changes: broadcast::channel(CHANGE_FEED_CAPACITY).0,
        }
    }
}

impl MemoryCatalog {
    fn state(&self) -> MutexGuard<'_, CatalogState> {
        self.state.lock().unwrap()
    }

    /// Sent after the state changed (the lock released): nobody listening is fine.
    fn announce(&self, change: CatalogChange) {
        let _ = self.changes.send(change);
    }
}

#[async_trait]
impl Catalog for MemoryCatalog {
    async fn create_stream(&self, s: NewStream) -> Result<StreamRecord, StoreError> {
        let mut state = self.state();
        if state.find(|r| r.name == s.name).is_some() {
            return Err(StoreError::AlreadyExists(s.name));
        }
        state.last_stream_id += 1;
        let record = StreamRecord {
            id: StreamId(state.last_stream_id),
            name: s.name,
            arn: s.arn,
            device_name: s.device_name,
            media_type: s.media_type,
            kms_key_id: s.kms_key_id,
            version: s.version,
            status: StreamStatus::Active,
            creation_time: s.creation_time,
            data_retention_hours: s.data_retention_hours,
            storage_tier: s.storage_tier,
            tags: s.tags,
        };
        let stream = StreamState {
            record: record.clone(),
            configs: Vec::new(),
            fragments: BTreeMap::new(),
            last: None,
            edge: StreamEdge::default(),
            writer_epoch: 0,
            writer_expires: None,
        };
        state.streams.insert(record.id, stream);
        Ok(record)
    }

    async fn stream_by_name(&self, name: &str) -> Result<Option<StreamRecord>, StoreError> {
        Ok(self.state().find(|r| r.name == name))
    }

    async fn stream_by_arn(&self, arn: &str) -> Result<Option<StreamRecord>, StoreError> {
        Ok(self.state().find(|r| r.arn == arn))
    }

    async fn stream_by_id(&self, id: StreamId) -> Result<Option<StreamRecord>, StoreError> {
        Ok(self.state().find(|r| r.id == id))
    }

    async fn list_streams(
        &self,
        prefix: Option<&str>,
        after_name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        let state = self.state();
        let mut found: Vec<StreamRecord> = state
            .streams
            .values()
            .map(|s| s.record.clone())
            .filter(|r| r.name.starts_with(prefix.unwrap_or("")))
            .filter(|r| after_name.is_none_or(|a| r.name.as_str() > a))
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found.truncate(limit);
        Ok(found)
    }

    async fn update_stream(
        &self,
        id: StreamId,
        expected_version: Option<&str>,
        u: StreamUpdate,
    ) -> Result<StreamRecord, StoreError> {
        let mut state = self.state();
        let r = &mut state.versioned(id, expected_version)?.record;
        r.device_name = u.device_name.or(r.device_name.take());
        r.media_type = u.media_type.or(r.media_type.take());
        r.data_retention_hours = u.data_retention_hours.unwrap_or(r.data_retention_hours);
        if let Some(tier) = u.storage_tier {
            r.storage_tier = tier;
        }
        r.tags.extend(u.set_tags);
        for k in &u.remove_tags {
            r.tags.remove(k);
        }
        r.version = u.new_version;
        let updated = r.clone();
        drop(state);
        self.announce(CatalogChange::Stream(id));
        Ok(updated)
    }

    async fn delete_stream(
        &self,
        id: StreamId,
        expected_version: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        state.versioned(id, expected_version)?;
        state.streams.remove(&id);
        drop(state);
        self.announce(CatalogChange::Stream(id));
        Ok(())
    }

    async fn codec_config_for(
        &self,
        stream: StreamId,
        config: &CodecConfig,
    ) -> Result<CodecConfigId, StoreError> {
        let mut state = self.state();
        let next = CodecConfigId(state.last_config_id + 1);
        let configs = &mut state.stream(stream)?.configs;
        let latest = configs.iter().rev().find(|(_, c)| c.track == config.track);
        if let Some((id, _)) = latest.filter(|(_, c)| c == config) {
            return Ok(*id);
        }
        configs.push((next, config.clone()));
        state.last_config_id = next.0;
        Ok(next)
    }

    async fn codec_config(&self, id: CodecConfigId) -> Result<Option<CodecConfig>, StoreError> {
        let state = self.state();
        let mut all = state.streams.values().flat_map(|s| &s.configs);
        Ok(all.find(|(i, _)| *i == id).map(|(_, c)| c.clone()))
    }

    async fn codec_configs(
        &self,
        stream: StreamId,
    ) -> Result<Vec<(CodecConfigId, CodecConfig)>, StoreError> {
        let state = self.state();
        Ok(state
            .streams
            .get(&stream)
            .map(|s| s.configs.clone())
            .unwrap_or_default())
    }

    /// All or nothing: the batch is applied to a copy, which replaces the state only if every
    /// fragment was accepted.
    async fn insert_fragments(
        &self,
        fragments: Vec<NewFragment>,
    ) -> Result<Vec<FragmentNumber>, StoreError> {
        let mut state = self.state();
        let mut next = state.clone();
        let mut numbers = Vec::with_capacity(fragments.len());
        let mut streams = Vec::new();
        for f in fragments {
            let s = next.stream(f.stream)?;
            if f.writer_epoch.is_some_and(|e| e != s.writer_epoch) {
                return Err(StoreError::WriterLeaseLost {
                    stream: f.stream,
                    epoch: f.writer_epoch.unwrap_or_default(),
                });
            }
            if s.last.is_some_and(|l| l >= f.number) {
                return Err(StoreError::FragmentNumberNotIncreasing {
                    stream: f.stream,
                    number: f.number,
                });
            }
            let (sequence, continuity) = s.edge.advance(&f);
            s.last = Some(f.number);
            let record = FragmentRecord {
                stream: f.stream,
                number: f.number,
                sequence,
                continuity,
                producer_timestamp: f.producer_timestamp,
                server_timestamp: f.server_timestamp,
                duration_ms: f.duration_ms,
                cluster_timecode_ms: Some(f.cluster_timecode_ms),
                size_bytes: f.media.len,
                tracks: f.tracks,
                tags: f.tags,
                media: f.media,
            };
            s.fragments.insert(f.number, record);
            next.pending.remove(&(f.stream, f.media.segment));
            if !streams.contains(&f.stream) {
                streams.push(f.stream);
            }
            numbers.push(f.number);
        }
        *state = next;
        drop(state);
        for stream in streams {
            self.announce(CatalogChange::Fragments(stream));
        }
        Ok(numbers)
    }

    async fn last_fragment_number(
        &self,
        stream: StreamId,
    ) -> Result<Option<FragmentNumber>, StoreError> {
        Ok(self.state().stream(stream)?.last)
    }

    async fn fragment(
        &self,
        stream: StreamId,
        number: FragmentNumber,
    ) -> Result<Option<FragmentRecord>, StoreError> {
        let state = self.state();
        let s = state.streams.get(&stream);
        Ok(s.and_then(|s| s.fragments.get(&number)).cloned())
    }

    async fn query_fragments(&self, q: FragmentQuery) -> Result<Vec<FragmentRecord>, StoreError> {
        let state = self.state();
        let Some(s) = state.streams.get(&q.stream) else {
            return Ok(Vec::new());
        };
        let key = |f: &FragmentRecord| match q.kind {
            TimestampKind::Producer => (f.producer_timestamp, f.number),
            TimestampKind::Server => (f.server_timestamp, f.number),
        };
        let mut found: Vec<FragmentRecord> = s
            .fragments
            .values()
            .filter(|f| (q.start..=q.end).contains(&key(f).0))
            .filter(|f| q.after.is_none_or(|after| key(f) > after))
            .cloned()
            .collect();
        found.sort_by_key(key);
        found.truncate(q.limit);
        Ok(found)
    }

    async fn query_fragment_summaries(
        &self,
        q: FragmentQuery,
    ) -> Result<Vec<FragmentSummary>, StoreError> {
        let found = self.query_fragments(q).await?;
        Ok(found.iter().map(FragmentRecord::summary).collect())
    }

    async fn fragments_after(
        &self,
        stream: StreamId,
        after: Option<FragmentNumber>,
        limit: usize,
    ) -> Result<Vec<FragmentRecord>, StoreError> {
        let state = self.state();
        let Some(s) = state.streams.get(&stream) else {
            return Ok(Vec::new());
        };
        let from = match after {
            Some(n) => std::ops::Bound::Excluded(n),
            None => std::ops::Bound::Unbounded,
        };
        Ok(s.fragments
            .range((from, std::ops::Bound::Unbounded))
            .take(limit)
            .map(|(_, f)| f.clone())
            .collect())
    }

    async fn latest_fragments(
        &self,
        stream: StreamId,
        limit: usize,
    ) -> Result<Vec<FragmentRecord>, StoreError> {
        let state = self.state();
        let Some(s) = state.streams.get(&stream) else {
            return Ok(Vec::new());
        };
        let mut newest: Vec<FragmentRecord> =
            s.fragments.values().rev().take(limit).cloned().collect();
        newest.reverse();
        Ok(newest)
    }

    async fn delete_fragments_before(
        &self,
        stream: StreamId,
        cutoff: Timestamp,
    ) -> Result<Vec<u64>, StoreError> {
        let mut state = self.state();
        let fragments = &mut state.stream(stream)?.fragments;
        let before = fragments.len();
        let mut candidates = Vec::new();
        fragments.retain(|_, f| {
            let old = f.server_timestamp < cutoff;
            if old && !candidates.contains(&f.media.segment) {
                candidates.push(f.media.segment);
            }
            !old
        });
        candidates.retain(|seg| fragments.values().all(|f| f.media.segment != *seg));
        let deleted = fragments.len() < before;
        drop(state);
        if deleted {
            self.announce(CatalogChange::Stream(stream));
        }
        Ok(candidates)
    }

    async fn all_streams(&self) -> Result<Vec<StreamRecord>, StoreError> {
        let state = self.state();
        Ok(state.streams.values().map(|s| s.record.clone()).collect())
    }

    async fn has_writer(&self, stream: StreamId) -> Result<bool, StoreError> {
        let state = self.state();
        Ok(state
            .streams
            .get(&stream)
            .and_then(|s| s.writer_expires)
            .is_some_and(|e| e > Instant::now()))
    }

    async fn acquire_writer_lease(
        &self,
        stream: StreamId,
        _holder: &str,
        ttl: Duration,
    ) -> Result<Option<WriterLease>, StoreError> {
        let mut state = self.state();
        let s = state.stream(stream)?;
        let now = Instant::now();
        if s.writer_expires.is_some_and(|e| e > now) {
            return Ok(None);
        }
        s.writer_epoch += 1;
        s.writer_expires = Some(now + ttl);
        Ok(Some(WriterLease {
            stream,
            epoch: s.writer_epoch,
        }))
    }

    async fn renew_writer_leases(
        &self,
        leases: &[WriterLease],
        ttl: Duration,
    ) -> Result<Vec<LeaseRenewal>, StoreError> {
        let mut state = self.state();
        Ok(leases
            .iter()
            .map(|lease| match state.streams.get_mut(&lease.stream) {
                Some(s) if s.writer_epoch == lease.epoch => {
                    s.writer_expires = Some(Instant::now() + ttl);
                    LeaseRenewal::Renewed
                }
                _ => LeaseRenewal::Lost,
            })
            .collect())
    }

    async fn release_writer_lease(&self, lease: WriterLease) -> Result<(), StoreError> {
        let mut state = self.state();
        if let Some(s) = state.streams.get_mut(&lease.stream) {
            if s.writer_epoch == lease.epoch {
                s.writer_expires = None;
            }
        }
        Ok(())
    }

    async fn allocate_media_epoch(&self) -> Result<u64, StoreError> {
        let mut state = self.state();
        state.last_media_epoch += 1;
        Ok(state.last_media_epoch)
    }

    async fn record_pending_media(&self, stream: StreamId, segment: u64) -> Result<(), StoreError> {
        self.state()
            .pending
            .insert((stream, segment), Instant::now());
        Ok(())
    }

    async fn clear_pending_media(&self, stream: StreamId, segment: u64) -> Result<(), StoreError> {
        self.state().pending.remove(&(stream, segment));
        Ok(())
    }

    async fn stale_pending_media(
        &self,
        older_than: Duration,
        limit: usize,
    ) -> Result<Vec<(StreamId, u64)>, StoreError> {
        let state = self.state();
        let mut stale: Vec<(Instant, StreamId, u64)> = state
            .pending
            .iter()
            .filter(|(_, at)| at.elapsed() > older_than)
            .map(|((stream, segment), at)| (*at, *stream, *segment))
            .collect();
        stale.sort();
        Ok(stale
            .into_iter()
            .take(limit)
            .map(|(_, s, g)| (s, g))
            .collect())
    }

    async fn session_key_or_init(&self, candidate: [u8; 32]) -> Result<[u8; 32], StoreError> {
        Ok(*self.state().session_key.get_or_insert(candidate))
    }

    fn changes(&self) -> broadcast::Receiver<CatalogChange> {
        self.changes.subscribe()
    }
}

/// Bytes per segment before the next one starts: small, so retention has segments to free.
const SEGMENT_BYTES: usize = 64 * 1024;

#[derive(Default)]
struct StreamMedia {
    segments: BTreeMap<u64, Vec<u8>>,
    current: u64,
    /// Appends not yet settled, per segment.
    unsettled: BTreeMap<u64, usize>,
    /// Segments with an append settled as committed since `begin_delete`.
    committed_since_begin: BTreeSet<u64>,
    /// Deletions to retry.
    deferred: BTreeSet<u64>,
}

#[derive(Default)]
struct MemoryMedia(Mutex<BTreeMap<StreamId, StreamMedia>>);

#[async_trait]
impl MediaStore for MemoryMedia {
    async fn append(
        &self,
        stream: StreamId,
        parts: Vec<Bytes>,
    ) -> Result<MediaLocation, StoreError> {
        let mut streams = self.0.lock().unwrap();
        let m = streams.entry(stream).or_default();
        let full = m
            .segments
            .get(&m.current)
            .is_none_or(|s| s.len() >= SEGMENT_BYTES);
        if full {
            m.current += 1;
        }
        let segment = m.current;
        let bytes = m.segments.entry(segment).or_default();
        let offset = bytes.len() as u64;
        for p in &parts {
            bytes.extend_from_slice(p);
        }
        let len = bytes.len() as u64 - offset;
        *m.unsettled.entry(segment).or_default() += 1;
        Ok(MediaLocation {
            segment,
            offset,
            len,
        })
    }

    async fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn read(
        &self,
        stream: StreamId,
        location: MediaLocation,
        range: Range<u64>,
    ) -> Result<Bytes, StoreError> {
        let streams = self.0.lock().unwrap();
        let (start, end) = (location.offset + range.start, location.offset + range.end);
        let bytes = streams
            .get(&stream)
            .and_then(|m| m.segments.get(&location.segment))
            .filter(|_| range.start <= range.end && range.end <= location.len)
            .and_then(|s| s.get(start as usize..end as usize));
        bytes.map(Bytes::copy_from_slice).ok_or_else(|| {
            StoreError::media_io(
                stream,
                location,
                &range,
                std::io::ErrorKind::NotFound.into(),
            )
        })
    }

    async fn settle(&self, stream: StreamId, location: MediaLocation, committed: bool) {
        if let Some(m) = self.0.lock().unwrap().get_mut(&stream) {
            let seg = location.segment;
            if let Some(n) = m.unsettled.get_mut(&seg) {
                *n -= 1;
                if *n == 0 {
                    m.unsettled.remove(&seg);
                }
            }
            if committed {
                m.deferred.remove(&seg);
                m.committed_since_begin.insert(seg);
            }
        }
    }

    async fn begin_delete(&self, stream: StreamId) {
        if let Some(m) = self.0.lock().unwrap().get_mut(&stream) {
            m.committed_since_begin.clear();
        }
    }

    async fn delete_segments(&self, stream: StreamId, segments: &[u64]) -> Result<(), StoreError> {
        if let Some(m) = self.0.lock().unwrap().get_mut(&stream) {
            let asked: BTreeSet<u64> = segments.iter().chain(&m.deferred).copied().collect();
            m.deferred.clear();
            for seg in asked {
                if m.committed_since_begin.contains(&seg) {
                    continue;
                }
                if m.unsettled.contains_key(&seg) {
                    m.deferred.insert(seg);
                    continue;
                }
                m.segments.remove(&seg);
                // A segment number is never used again, as on disk.
                m.current = m.current.max(seg);
            }
        }
        Ok(())
    }

    async fn delete_stream(&self, stream: StreamId) -> Result<(), StoreError> {
        self.0.lock().unwrap().remove(&stream);
        Ok(())
    }
}

struct Memory {
    catalog: Arc<dyn Catalog>,
    media: Arc<dyn MediaStore>,
}

impl Memory {
    fn new() -> Self {
        Memory {
            catalog: Arc::new(MemoryCatalog::default()),
            media: Arc::new(MemoryMedia::default()),
        }
    }
}

#[async_trait]
impl conformance::Backend for Memory {
    fn catalog(&self) -> Arc<dyn Catalog> {
        self.catalog.clone()
    }

    fn media(&self) -> Arc<dyn MediaStore> {
        self.media.clone()
    }

    async fn reopen(&mut self) -> bool {
        false
    }
}

mod memory {
    crate::conformance_suite!(crate::Memory::new());
}
