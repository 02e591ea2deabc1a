//! The embedded media store: append-only segment files, `<root>/<stream id>/<segment>.seg`.
//!
//! A process never appends to a segment file it did not create: after a restart each stream starts
//! a new segment, so bytes written but never committed (a crash between write and catalog commit)
//! stay unreferenced at the tail of an old file and can never be mistaken for a fragment.

use crate::{MediaLocation, MediaStore, StoreError, StreamId};
use async_trait::async_trait;
use bytes::Bytes;
use memmap2::Mmap;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A segment is closed and a new one started once it reaches this size...
pub const DEFAULT_SEGMENT_BYTES: u64 = 256 * 1024 * 1024;
/// ...or this age, so retention can free space of slow streams in steps of at most this much time.
pub const SEGMENT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

struct Writer {
    segment: u64,
    file: Arc<File>,
    len: u64,
    opened: std::time::Instant,
}

#[derive(Default)]
struct Pending {
    /// Files with appended bytes not yet fdatasync'ed.
    files: Vec<Arc<File>>,
    /// Directories whose entries changed (new stream dir or segment file) since the last sync.
    dirs: Vec<PathBuf>,
}

/// What keeps a stream's segments from being deleted (the [`MediaStore`] trait doc's guarantee).
#[derive(Default)]
struct Holds {
    /// Appends not yet settled, per segment: a row may still be committed pointing at them.
    unsettled: HashMap<u64, usize>,
    /// Segments with an append settled as committed since the last `begin_delete`: the catalog's
    /// answer to retention may predate that row.
    committed_since_begin: HashSet<u64>,
    /// Deletions asked for while an append to the segment was unsettled, retried on every
    /// `delete_segments`.
    deferred: BTreeSet<u64>,
}

impl Holds {
    fn is_empty(&self) -> bool {
        self.unsettled.is_empty()
            && self.committed_since_begin.is_empty()
            && self.deferred.is_empty()
    }
}

struct Inner {
    writers: HashMap<StreamId, Writer>,
    pending: Pending,
    holds: HashMap<StreamId, Holds>,
}

/// A byte range of a mapped segment, owned by the [`Bytes`] handed to the HTTP layer.
struct MappedRange {
    map: Arc<Mmap>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for MappedRange {
    fn as_ref(&self) -> &[u8] {
        &self.map[self.start..self.end]
    }
}

/// Segments mapped at once; past this the cache is emptied (mappings in use stay alive).
const MAPPED_SEGMENTS: usize = 512;

/// Segment-file implementation of [`MediaStore`].
pub struct SegmentMediaStore {
    /// Read-only mappings of segment files, for playback reads.
    maps: Mutex<HashMap<(StreamId, u64), Arc<Mmap>>>,
    root: PathBuf,
    segment_bytes: u64,
    inner: Arc<Mutex<Inner>>,
    /// Serialises `sync` calls so concurrent callers don't race on the pending set's meaning.
    sync_lock: tokio::sync::Mutex<()>,
}

fn stream_dir(root: &Path, stream: StreamId) -> PathBuf {
    root.join(stream.0.to_string())
}

fn segment_path(root: &Path, stream: StreamId, segment: u64) -> PathBuf {
    stream_dir(root, stream).join(format!("{segment:016}.seg"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_suffix(".seg")?.parse().ok()
}

/// Writes all parts with as few `writev` calls as the kernel allows (a fragment is dozens of frames).
fn write_all_vectored(mut file: &File, parts: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| std::io::IoSlice::new(p))
        .collect();
    let mut remaining = &mut slices[..];
    while !remaining.is_empty() {
        let n = file.write_vectored(remaining)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut remaining, n);
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Threads one [`MediaStore::sync`] flushes files (then directories) on at once.
const SYNC_THREADS: usize = 16;

/// Runs `op` on every item, on up to [`SYNC_THREADS`] scoped threads (the calling one alone for
/// a single item), and returns once every call has returned: the first error, if any failed.
/// Every item is tried even after a failure, so none is left half-done behind the caller's back.
fn in_parallel<T: Sync>(
    items: &[T],
    op: impl Fn(&T) -> std::io::Result<()> + Sync,
) -> std::io::Result<()> {
    let threads = items.len().min(SYNC_THREADS);
    if threads <= 1 {
        return items.iter().try_for_each(&op);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || -> std::io::Result<()> {
        let mut result = Ok(());
        while let Some(item) = items.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
            let done = op(item);
            if result.is_ok() {
                result = done;
            }
        }
        result
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut result = work();
        for helper in helpers {
            let done = helper
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("a sync thread panicked")));
            if result.is_ok() {
                result = done;
            }
        }
        result
    })
}

impl SegmentMediaStore {
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        Self::with_segment_bytes(root, DEFAULT_SEGMENT_BYTES)
    }

    pub fn with_segment_bytes(root: &Path, segment_bytes: u64) -> Result<Self, StoreError> {
        crate::private::create_dir(root)?;
        Ok(SegmentMediaStore {
            root: root.to_owned(),
            segment_bytes,
            maps: Mutex::new(HashMap::new()),
            inner: Arc::new(Mutex::new(Inner {
                writers: HashMap::new(),
                pending: Pending::default(),
                holds: HashMap::new(),
            })),
            sync_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// A mapping of the segment covering at least `end` bytes (re-mapped when the segment has
    /// grown past an older mapping).
    ///
    /// A file cut short under a mapping (by something outside openkvs: a bad disk repair, an
    /// operator's mistake) would fault when the missing pages are touched — SIGBUS in a copy,
    /// EFAULT in the socket write, a connection closed without a status. So a cached mapping is
    /// handed out only after a `stat` shows the file still reaches `end`; a shorter file is an
    /// error naming it, and its mapping is dropped.
    fn mapped(&self, stream: StreamId, segment: u64, end: u64) -> std::io::Result<Arc<Mmap>> {
        let path = segment_path(&self.root, stream, segment);
        let too_short = |len: u64| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "segment file {} is {len} bytes, shorter than the fragment's end at {end}: \
                     truncated outside openkvs",
                    path.display()
                ),
            )
        };
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = maps.get(&(stream, segment)) {
            if m.len() as u64 >= end {
                return match fs::metadata(&path) {
                    Ok(meta) if meta.len() < end => {
                        maps.remove(&(stream, segment));
                        Err(too_short(meta.len()))
                    }
                    // Unlinked (retention): the mapping keeps the pages it maps.
                    _ => Ok(m.clone()),
                };
            }
        }
        let file = File::open(&path)?;
        // SAFETY: segment files are append-only and never truncated or rewritten in place (see the
        // module doc); a delete unlinks the file, which leaves existing mappings valid. A process
        // outside openkvs truncating the file is caught by the length check above before any
        // later read (a truncation racing a read in flight is not).
        #[allow(unsafe_code)]
        let map = Arc::new(unsafe { Mmap::map(&file)? });
        if (map.len() as u64) < end {
            return Err(too_short(map.len() as u64));
        }
        if maps.len() >= MAPPED_SEGMENTS {
            maps.clear();
        }
        maps.insert((stream, segment), map.clone());
        Ok(map)
    }

    fn forget_mappings(&self, stream: StreamId, segments: Option<&[u64]>) {
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        maps.retain(|(s, seg), _| *s != stream || segments.is_some_and(|list| !list.contains(seg)));
    }

    /// Stream ids that have a media directory (for startup recovery of half-done deletes).
    pub fn stream_ids_on_disk(&self) -> Result<Vec<StreamId>, StoreError> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i64>().ok())
            {
                ids.push(StreamId(id));
            }
        }
        Ok(ids)
    }

    /// The segment numbers of the stream's files on disk (for the startup sweep).
    pub fn segments_on_disk(&self, stream: StreamId) -> Result<Vec<u64>, StoreError> {
        let mut segments = Vec::new();
        match fs::read_dir(stream_dir(&self.root, stream)) {
            Ok(entries) => {
                for e in entries {
                    if let Some(n) = e?.file_name().to_str().and_then(parse_segment_name) {
                        segments.push(n);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        segments.sort_unstable();
        Ok(segments)
    }

    fn next_segment_number(root: &Path, stream: StreamId) -> Result<u64, StoreError> {
        let dir = stream_dir(root, stream);
        let mut max = 0;
        match fs::read_dir(&dir) {
            Ok(entries) => {
                for e in entries {
                    if let Some(n) = e?.file_name().to_str().and_then(parse_segment_name) {
                        max = max.max(n);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(max + 1)
    }
}

/// One append, on the calling (blocking) thread.
fn append_blocking(
    root: &Path,
    inner: &Mutex<Inner>,
    segment_bytes: u64,
    stream: StreamId,
    parts: Vec<Bytes>,
) -> Result<MediaLocation, StoreError> {
    let root = root.to_owned();
    let mut guard = lock(inner)?;
    let inner = &mut *guard;
    let needs_new = match inner.writers.get(&stream) {
        Some(w) => w.len >= segment_bytes || w.opened.elapsed() >= SEGMENT_MAX_AGE,
        None => true,
    };
    if needs_new {
        let segment = match inner.writers.get(&stream) {
            Some(w) => w.segment + 1,
            None => SegmentMediaStore::next_segment_number(&root, stream)?,
        };
        let dir = stream_dir(&root, stream);
        if !dir.exists() {
            crate::private::create_dir(&dir)?;
            inner.pending.dirs.push(root.clone());
        }
        // create_new: a segment is never reopened for appending (see module doc).
        let file = crate::private::file_options()
            .create_new(true)
            .append(true)
            .open(segment_path(&root, stream, segment))?;
        crate::private::created(&file)?;
        inner.pending.dirs.push(dir);
        inner.writers.insert(
            stream,
            Writer {
                segment,
                file: Arc::new(file),
                len: 0,
                opened: std::time::Instant::now(),
            },
        );
    }
    let w = inner
        .writers
        .get_mut(&stream)
        .ok_or_else(|| StoreError::Task("writer vanished".into()))?;
    let offset = w.len;
    let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
    if let Err(source) = write_all_vectored(&w.file, &parts) {
        // The tail of this file is now unknown: start a new segment for the next append.
        let segment = w.segment;
        inner.writers.remove(&stream);
        return Err(StoreError::MediaIo {
            stream,
            segment,
            offset,
            len,
            source,
        });
    }
    w.len += len;
    let file = w.file.clone();
    let segment = w.segment;
    if !inner.pending.files.iter().any(|f| Arc::ptr_eq(f, &file)) {
        inner.pending.files.push(file);
    }
    // Held until settled: retention must not delete what a row may soon point at.
    let holds = inner.holds.entry(stream).or_default();
    *holds.unsettled.entry(segment).or_default() += 1;
    Ok(MediaLocation {
        segment,
        offset,
        len,
    })
}

fn lock(inner: &Mutex<Inner>) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
    inner
        .lock()
        .map_err(|_| StoreError::Task("media store lock poisoned".into()))
}

#[async_trait]
impl MediaStore for SegmentMediaStore {
    async fn append(
        &self,
        stream: StreamId,
        parts: Vec<Bytes>,
    ) -> Result<MediaLocation, StoreError> {
        let root = self.root.clone();
        let inner = self.inner.clone();
        let segment_bytes = self.segment_bytes;
        tokio::task::spawn_blocking(move || {
            append_blocking(&root, &inner, segment_bytes, stream, parts)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn append_many(
        &self,
        items: Vec<(StreamId, Vec<Bytes>)>,
    ) -> Vec<Result<MediaLocation, StoreError>> {
        let root = self.root.clone();
        let inner = self.inner.clone();
        let segment_bytes = self.segment_bytes;
        let n = items.len();
        // One trip to the blocking pool for the whole batch.
        match tokio::task::spawn_blocking(move || {
            items
                .into_iter()
                .map(|(stream, parts)| append_blocking(&root, &inner, segment_bytes, stream, parts))
                .collect::<Vec<_>>()
        })
        .await
        {
            Ok(results) => results,
            Err(e) => (0..n)
                .map(|_| Err(StoreError::Task(e.to_string())))
                .collect(),
        }
    }

    async fn sync(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.sync_lock.lock().await;
        let pending = std::mem::take(&mut lock(&self.inner)?.pending);
        if pending.files.is_empty() && pending.dirs.is_empty() {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || {
            // Files, then directories: each set concurrently (SYNC_THREADS), since the disk
            // completes concurrent flushes together where one-by-one they each wait their turn.
            in_parallel(&pending.files, |f| f.sync_data())?;
            let mut dirs = pending.dirs;
            dirs.sort();
            dirs.dedup();
            in_parallel(&dirs, |d| sync_dir(d))?;
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn read(
        &self,
        stream: StreamId,
        location: MediaLocation,
        range: Range<u64>,
    ) -> Result<Bytes, StoreError> {
        let io_err = |source| StoreError::media_io(stream, location, &range, source);
        if range.start > range.end || range.end > location.len {
            return Err(io_err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "range outside fragment",
            )));
        }
        let start = location.offset + range.start;
        let end = location.offset + range.end;
        let map = self.mapped(stream, location.segment, end).map_err(io_err)?;
        // The returned bytes are the mapped file pages themselves: no copy, no allocation.
        Ok(Bytes::from_owner(MappedRange {
            map,
            start: start as usize,
            end: end as usize,
        }))
    }

    async fn settle(&self, stream: StreamId, location: MediaLocation, committed: bool) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // No holds: the stream was deleted meanwhile.
        let Some(holds) = inner.holds.get_mut(&stream) else {
            return;
        };
        let segment = location.segment;
        if let Some(n) = holds.unsettled.get_mut(&segment) {
            *n -= 1;
            if *n == 0 {
                holds.unsettled.remove(&segment);
            }
        }
        if committed {
            // A row points at it now: the catalog lists it again once that row is deleted.
            holds.deferred.remove(&segment);
            holds.committed_since_begin.insert(segment);
        }
        if holds.is_empty() {
            inner.holds.remove(&stream);
        }
    }

    async fn begin_delete(&self, stream: StreamId) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(holds) = inner.holds.get_mut(&stream) {
            holds.committed_since_begin.clear();
            if holds.is_empty() {
                inner.holds.remove(&stream);
            }
        }
    }

    async fn delete_segments(&self, stream: StreamId, segments: &[u64]) -> Result<(), StoreError> {
        let doomed: Vec<u64> = {
            let mut guard = lock(&self.inner)?;
            let inner = &mut *guard;
            let holds = inner.holds.entry(stream).or_default();
            let asked: BTreeSet<u64> = segments
                .iter()
                .copied()
                .chain(holds.deferred.iter().copied())
                .collect();
            let mut doomed = Vec::new();
            for segment in asked {
                holds.deferred.remove(&segment);
                if holds.committed_since_begin.contains(&segment) {
                    continue;
                }
                if holds.unsettled.contains_key(&segment) {
                    holds.deferred.insert(segment);
                    continue;
                }
                doomed.push(segment);
            }
            if holds.is_empty() {
                inner.holds.remove(&stream);
            }
            if let Some(w) = inner.writers.get_mut(&stream) {
                if doomed.contains(&w.segment) {
                    // Keep the number: the next append continues with segment + 1.
                    w.len = u64::MAX;
                }
            }
            doomed
        };
        if doomed.is_empty() {
            return Ok(());
        }
        self.forget_mappings(stream, Some(&doomed));
        let root = self.root.clone();
        let retry = doomed.clone();
        let result = tokio::task::spawn_blocking(move || {
            for s in &doomed {
                match fs::remove_file(segment_path(&root, stream, *s)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let dir = stream_dir(&root, stream);
            if dir.exists() {
                sync_dir(&dir)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?;
        if result.is_err() {
            // Tried again on the next pass (a file already gone is no error then).
            let mut inner = lock(&self.inner)?;
            let holds = inner.holds.entry(stream).or_default();
            holds.deferred.extend(retry);
        }
        result
    }

    async fn delete_stream(&self, stream: StreamId) -> Result<(), StoreError> {
        self.forget_mappings(stream, None);
        {
            let mut inner = lock(&self.inner)?;
            inner.writers.remove(&stream);
            inner.holds.remove(&stream);
        }
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            match fs::remove_dir_all(stream_dir(&root, stream)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            sync_dir(&root)?;
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::in_parallel;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn in_parallel_tries_every_item_and_fails_if_any_failed() {
        for n in [0, 1, 2, 5, 40] {
            let tried = AtomicUsize::new(0);
            let all_ok = in_parallel(&(0..n).collect::<Vec<_>>(), |_| {
                tried.fetch_add(1, Ordering::Relaxed);
                Ok(())
            });
            assert!(all_ok.is_ok());
            assert_eq!(tried.load(Ordering::Relaxed), n);
        }
        for n in [1, 2, 40] {
            let tried = AtomicUsize::new(0);
            let one_fails = in_parallel(&(0..n).collect::<Vec<_>>(), |&i| {
                tried.fetch_add(1, Ordering::Relaxed);
                if i == n / 2 {
                    Err(std::io::Error::other(format!("item {i}")))
                } else {
                    Ok(())
                }
            });
            assert_eq!(
                one_fails.unwrap_err().to_string(),
                format!("item {}", n / 2)
            );
            assert_eq!(tried.load(Ordering::Relaxed), n, "every item is tried");
        }
    }
}
