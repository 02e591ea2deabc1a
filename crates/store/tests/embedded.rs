//! Embedded-only behaviour: segment files on disk, a new segment after a restart, writev limits,
//! mappings of growing or damaged files, and the caching catalog's memory. What every backend must
//! do is the conformance suite's (`conformance/mod.rs`, run by `conformance_embedded.rs`).

#[allow(dead_code)]
#[path = "conformance/fixtures.rs"]
mod fixtures;

use bytes::Bytes;
use fixtures::*;
use std::sync::Arc;
use store::*;

/// docs/architecture.md#crash-safety, invariant 2: a process never appends to a segment file it
/// did not create, so bytes written but never committed (a crash between write and commit) stay
/// unreferenced at the tail of the old file; retention reports (then deletes) a segment once no
/// row references it.
#[tokio::test]
async fn after_a_reopen_appends_go_to_a_new_segment_and_retention_frees_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, media) = embedded::open(dir.path()).await.unwrap();
    let archive = Archive::new(catalog.clone(), media.clone());
    let mut feed = Feed::new(&*catalog, "s").await;
    let n1 = feed.put(&archive, T0, T0, payload(1, 100)).await;
    let n2 = feed
        .put(&archive, T0 + 1000, T0 + 1000, payload(2, 100))
        .await;
    let f2 = catalog.fragment(feed.stream, n2).await.unwrap().unwrap();
    let old = dir
        .path()
        .join("media")
        .join(feed.stream.0.to_string())
        .join(format!("{:016}.seg", f2.media.segment));
    assert_eq!(std::fs::metadata(&old).unwrap().len(), 200);
    // Written and synced, never committed: what a crash before the catalog commit leaves.
    let garbage = feed.next(T0 + 1500, T0 + 1500, payload(9, 50));
    media.append(feed.stream, garbage.parts).await.unwrap();
    media.sync().await.unwrap();
    drop((archive, catalog, media));

    let (catalog, media) = embedded::open(dir.path()).await.unwrap();
    assert_eq!(std::fs::metadata(&old).unwrap().len(), 250);
    let listed = catalog.latest_fragments(feed.stream, 10).await.unwrap();
    assert_eq!(numbers(&listed), [n1, n2]);
    let archive = Archive::new(catalog.clone(), media.clone());
    let n3 = feed
        .put(&archive, T0 + 2000, T0 + 2000, payload(3, 100))
        .await;
    let f3 = catalog.fragment(feed.stream, n3).await.unwrap().unwrap();
    assert!(f3.media.segment > f2.media.segment);
    assert_eq!(f3.media.offset, 0);

    let segments = catalog
        .delete_fragments_before(feed.stream, Timestamp(T0 + 1500))
        .await
        .unwrap();
    assert_eq!(segments, [f2.media.segment]);
    media.delete_segments(feed.stream, &segments).await.unwrap();
    assert!(!old.exists());
    assert!(catalog.fragment(feed.stream, n1).await.unwrap().is_none());
    assert_eq!(read_all(&*media, &f3).await, payload(3, 100));
}

/// docs/architecture.md#deletes-and-retention: a DeleteStream interrupted between the catalog
/// delete and the media removal is finished by the next open.
#[tokio::test]
async fn open_removes_the_media_of_streams_the_catalog_no_longer_has() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, media) = embedded::open(dir.path()).await.unwrap();
    let archive = Archive::new(catalog.clone(), media.clone());
    let mut gone = Feed::new(&*catalog, "gone").await;
    let mut kept = Feed::new(&*catalog, "kept").await;
    gone.put(&archive, T0, T0, payload(1, 10)).await;
    let k = kept.put(&archive, T0, T0, payload(2, 10)).await;
    catalog.delete_stream(gone.stream, None).await.unwrap();
    drop((archive, catalog, media));
    let media_dir = |s: StreamId| dir.path().join("media").join(s.0.to_string());
    assert!(media_dir(gone.stream).exists());

    let (catalog, media) = embedded::open(dir.path()).await.unwrap();
    assert!(!media_dir(gone.stream).exists());
    let f = catalog.fragment(kept.stream, k).await.unwrap().unwrap();
    assert_eq!(read_all(&*media, &f).await, payload(2, 10));
}

/// docs/architecture.md#deletes-and-retention: what a crash leaves unreferenced (a retention
/// pass interrupted between the row delete and the file delete, a segment holding only bytes
/// never committed) is removed by the next open; segments rows point at stay.
#[tokio::test]
async fn open_removes_segment_files_no_fragment_references() {
    let dir = tempfile::tempdir().unwrap();
    let seg_file = |s: StreamId, n: u64| {
        dir.path()
            .join("media")
            .join(s.0.to_string())
            .join(format!("{n:016}.seg"))
    };
    let (catalog, media) = embedded::open(dir.path()).await.unwrap();
    let archive = Archive::new(catalog.clone(), media.clone());
    let mut feed = Feed::new(&*catalog, "s").await;
    let n1 = feed.put(&archive, T0, T0, payload(1, 100)).await;
    let f1 = catalog.fragment(feed.stream, n1).await.unwrap().unwrap();
    drop((archive, catalog, media));

    let (catalog, media) = embedded::open(dir.path()).await.unwrap();
    let archive = Archive::new(catalog.clone(), media.clone());
    let n2 = feed.put(&archive, T0, T0 + 1000, payload(2, 100)).await;
    let f2 = catalog.fragment(feed.stream, n2).await.unwrap().unwrap();
    drop((archive, catalog, media));

    let (catalog, media) = embedded::open(dir.path()).await.unwrap();
    // Bytes never committed, alone in a new segment: a crash before the catalog commit.
    let garbage = feed.next(T0, T0 + 2000, payload(9, 50));
    let g = media.append(feed.stream, garbage.parts).await.unwrap();
    media.sync().await.unwrap();
    // Retention's row delete, then a crash before its file delete.
    assert_eq!(
        catalog
            .delete_fragments_before(feed.stream, Timestamp(T0 + 500))
            .await
            .unwrap(),
        [f1.media.segment]
    );
    drop((catalog, media));
    let segments = [f1.media.segment, f2.media.segment, g.segment];
    assert!(segments.iter().all(|n| seg_file(feed.stream, *n).exists()));
    assert!(f1.media.segment < f2.media.segment && f2.media.segment < g.segment);

    let (catalog, media) = embedded::open(dir.path()).await.unwrap();
    assert!(!seg_file(feed.stream, f1.media.segment).exists());
    assert!(!seg_file(feed.stream, g.segment).exists());
    assert_eq!(read_all(&*media, &f2).await, payload(2, 100));
    let archive = Archive::new(catalog.clone(), media.clone());
    let n3 = feed.put(&archive, T0, T0 + 3000, payload(3, 100)).await;
    let f3 = catalog.fragment(feed.stream, n3).await.unwrap().unwrap();
    assert!(f3.media.segment > f2.media.segment);
    assert_eq!(read_all(&*media, &f3).await, payload(3, 100));
    assert_eq!(read_all(&*media, &f2).await, payload(2, 100));
}

#[tokio::test]
async fn appends_of_many_parts_are_written_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let media = SegmentMediaStore::open(dir.path()).unwrap();
    // More parts than one writev takes (IOV_MAX is 1024 on Linux).
    let parts: Vec<Bytes> = (0..3000u32)
        .map(|i| Bytes::from(i.to_be_bytes().to_vec()))
        .collect();
    let expected: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    let loc = media.append(StreamId(1), parts).await.unwrap();
    media.sync().await.unwrap();
    assert_eq!(loc.len, 12_000);
    assert_eq!(
        &media.read(StreamId(1), loc, 0..loc.len).await.unwrap()[..],
        &expected[..]
    );
}

#[tokio::test]
async fn the_caching_catalog_never_serves_what_a_write_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, media) = embedded::open(dir.path()).await.unwrap();
    let catalog = Arc::new(CachingCatalog::new(sqlite.clone()));
    let s = catalog.create_stream(new_stream("cached")).await.unwrap();
    let c1 = catalog
        .codec_config_for(s.id, &video(1, b"a"))
        .await
        .unwrap();
    assert_eq!(
        catalog
            .codec_configs_shared(s.id, Some(c1))
            .await
            .unwrap()
            .len(),
        1
    );
    // A config written after the list was cached is found when asked for by id.
    let c2 = catalog
        .codec_config_for(s.id, &video(1, b"b"))
        .await
        .unwrap();
    assert_eq!(
        catalog
            .codec_configs_shared(s.id, Some(c2))
            .await
            .unwrap()
            .len(),
        2
    );

    let archive = Archive::new(catalog.clone(), media);
    let one = |number, ms, seed| {
        let bytes = payload(seed, 1);
        fragment(s.id, FragmentNumber(number), ms, ms, &[(1, c1, bytes)])
    };
    let n = archive.persist(one(5, 1000, 1)).await.unwrap();
    let f2 = one(6, 2000, 2);
    assert_eq!(catalog.latest_fragments(s.id, 5).await.unwrap().len(), 1);
    let n2 = archive.persist(f2).await.unwrap();
    let edge: Vec<_> = catalog
        .latest_fragments(s.id, 5)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.number)
        .collect();
    assert_eq!(edge, [n, n2], "a commit refreshes the cached live edge");
    let cached = catalog.fragment_shared(s.id, n).await.unwrap().unwrap();
    assert!(
        Arc::ptr_eq(
            &cached,
            &catalog.fragment_shared(s.id, n).await.unwrap().unwrap()
        ),
        "served from memory"
    );
    assert!(catalog.stream_by_id(s.id).await.unwrap().is_some());

    // Retention through the cache drops the cached row.
    catalog
        .delete_fragments_before(s.id, Timestamp(5000))
        .await
        .unwrap();
    assert!(catalog.fragment_shared(s.id, n).await.unwrap().is_none());
    // Deleting the stream drops its record at once (not after the TTL).
    catalog.delete_stream(s.id, None).await.unwrap();
    assert!(catalog.stream_by_id(s.id).await.unwrap().is_none());
}

#[tokio::test]
async fn reads_follow_a_segment_that_grew_after_it_was_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let media = SegmentMediaStore::open(dir.path()).unwrap();
    let a = media
        .append(StreamId(7), vec![Bytes::from_static(b"first")])
        .await
        .unwrap();
    media.sync().await.unwrap();
    assert_eq!(
        &media.read(StreamId(7), a, 0..5).await.unwrap()[..],
        b"first"
    );
    let b = media
        .append(StreamId(7), vec![Bytes::from_static(b"second")])
        .await
        .unwrap();
    media.sync().await.unwrap();
    assert_eq!(a.segment, b.segment);
    assert_eq!(
        &media.read(StreamId(7), b, 0..6).await.unwrap()[..],
        b"second"
    );
    assert_eq!(&media.read(StreamId(7), b, 2..4).await.unwrap()[..], b"co");
    media.delete_stream(StreamId(7)).await.unwrap();
    assert!(
        media.read(StreamId(7), b, 0..6).await.is_err(),
        "a deleted stream's media is gone"
    );
}

#[tokio::test]
async fn a_segment_cut_short_under_its_mapping_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let media = SegmentMediaStore::open(dir.path()).unwrap();
    let a = media
        .append(StreamId(3), vec![Bytes::from_static(b"kept")])
        .await
        .unwrap();
    let b = media
        .append(StreamId(3), vec![Bytes::from_static(b"lost")])
        .await
        .unwrap();
    media.sync().await.unwrap();
    // Mapped (and the mapping cached) by a first read of the second fragment.
    assert_eq!(
        &media.read(StreamId(3), b, 0..4).await.unwrap()[..],
        b"lost"
    );
    let path = dir.path().join("3").join(format!("{:016}.seg", b.segment));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(b.offset + 1)
        .unwrap();
    // Never the mapping's missing pages (a SIGBUS): an error that names the file.
    let e = media.read(StreamId(3), b, 0..4).await.unwrap_err();
    assert!(matches!(e, StoreError::MediaIo { .. }), "{e}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert_eq!(
        &media.read(StreamId(3), a, 0..4).await.unwrap()[..],
        b"kept"
    );
}

/// The segment files, with a count of appends and every [`MediaStore::settle`] held until the
/// test lets it pass: the archive settles an append in its catalog stage, right after the row's
/// fate is known, so a held settle holds that batch in the catalog stage.
struct HeldSettles {
    inner: Arc<dyn MediaStore>,
    appends: std::sync::atomic::AtomicUsize,
    settling: std::sync::atomic::AtomicUsize,
    pass: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl MediaStore for HeldSettles {
    async fn append(
        &self,
        stream: StreamId,
        parts: Vec<Bytes>,
    ) -> Result<MediaLocation, StoreError> {
        let location = self.inner.append(stream, parts).await;
        self.appends
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        location
    }
    async fn sync(&self) -> Result<(), StoreError> {
        self.inner.sync().await
    }
    async fn read(
        &self,
        stream: StreamId,
        location: MediaLocation,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, StoreError> {
        self.inner.read(stream, location, range).await
    }
    async fn settle(&self, stream: StreamId, location: MediaLocation, committed: bool) {
        self.settling
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.pass.acquire().await.unwrap().forget();
        self.inner.settle(stream, location, committed).await
    }
    async fn begin_delete(&self, stream: StreamId) {
        self.inner.begin_delete(stream).await
    }
    async fn delete_segments(&self, stream: StreamId, segments: &[u64]) -> Result<(), StoreError> {
        self.inner.delete_segments(stream, segments).await
    }
    async fn delete_stream(&self, stream: StreamId) -> Result<(), StoreError> {
        self.inner.delete_stream(stream).await
    }
}

/// The embedded archive in `dir`, its media behind [`HeldSettles`] letting one settle pass.
async fn held_settles(dir: &std::path::Path) -> (Arc<store::SqliteCatalog>, Arc<HeldSettles>) {
    let (catalog, segments) = embedded::open(dir).await.unwrap();
    let media = Arc::new(HeldSettles {
        inner: segments,
        appends: Default::default(),
        settling: Default::default(),
        pass: tokio::sync::Semaphore::new(1),
    });
    (catalog, media)
}

/// Waits (up to 10 s) until `count` reaches `n`.
async fn reaches(count: &std::sync::atomic::AtomicUsize, n: usize) {
    for _ in 0..1000 {
        if count.load(std::sync::atomic::Ordering::SeqCst) >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("stuck at {count:?}, waiting for {n}");
}

/// docs/architecture.md#group-commit: the next batch's media is appended and synced while a batch
/// is in the catalog stage, but its rows commit, and its callers hear, only after that batch is
/// done, even when the held batch failed for the same stream; the stream's next fragment then
/// commits after the last committed one, as when the batches ran one after the other.
#[tokio::test]
async fn the_next_batch_is_written_while_one_commits_and_commits_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, media) = held_settles(dir.path()).await;
    let archive = Archive::new(catalog.clone(), media.clone());
    let mut feed = Feed::new(&*catalog, "s").await;
    let mut other = Feed::new(&*catalog, "t").await;
    let n0 = feed.put(&archive, T0, T0, payload(0, 100)).await;

    // Batch N: a stale number of `s`, refused; held in the catalog stage at its settle.
    let mut stale = feed.next(T0 + 500, T0 + 500, payload(9, 10));
    stale.row.number = n0;
    feed.last = Some(n0);
    let stale = archive.submit(stale).await.unwrap();
    reaches(&media.settling, 2).await;

    // Batch N+1: written meanwhile, but neither committed nor answered.
    let mut next = archive
        .submit(feed.next(T0 + 1000, T0 + 1000, payload(1, 100)))
        .await
        .unwrap();
    let n1 = feed.last.unwrap();
    let mut beside = archive
        .submit(other.next(T0, T0, payload(2, 100)))
        .await
        .unwrap();
    reaches(&media.appends, 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(media.settling.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(next.try_recv().is_err() && beside.try_recv().is_err());
    assert_eq!(
        catalog.last_fragment_number(feed.stream).await.unwrap(),
        Some(n0)
    );
    assert_eq!(
        catalog.last_fragment_number(other.stream).await.unwrap(),
        None
    );

    media.pass.add_permits(100);
    assert_eq!(next.await.unwrap().unwrap(), n1);
    assert!(beside.await.unwrap().is_ok());
    let mut stale = stale;
    assert!(
        matches!(stale.try_recv(), Ok(Err(_))),
        "the earlier batch is answered first"
    );
    let stored = catalog.latest_fragments(feed.stream, 10).await.unwrap();
    assert_eq!(numbers(&stored), [n0, n1]);
    assert_eq!(
        (stored[1].sequence, stored[1].continuity),
        (1, Continuity::default())
    );
    assert_eq!(read_all(&*media, &stored[1]).await, payload(1, 100));
}

/// docs/architecture.md#pending-media-and-orphan-collection: a batch that waited longer than the
/// archive's commit deadline between writing its media and committing (a node paused, a catalog
/// stuck) is not committed, since its objects may be collected as orphans by then: its callers
/// hear an error, no row points at its bytes, and the stream goes on after it.
#[tokio::test]
async fn a_batch_past_the_commit_deadline_is_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, media) = held_settles(dir.path()).await;
    let deadline = std::time::Duration::from_millis(200);
    let archive = Archive::with_commit_deadline(catalog.clone(), media.clone(), deadline);
    let mut feed = Feed::new(&*catalog, "s").await;
    let n0 = feed.put(&archive, T0, T0, payload(0, 100)).await;

    // Batch N commits, then is held at its settle; batch N+1 is written meanwhile and waits.
    let first = archive
        .submit(feed.next(T0 + 1000, T0 + 1000, payload(1, 100)))
        .await
        .unwrap();
    let n1 = feed.last.unwrap();
    reaches(&media.settling, 2).await;
    let late = archive
        .submit(feed.next(T0 + 2000, T0 + 2000, payload(2, 100)))
        .await
        .unwrap();
    reaches(&media.appends, 3).await;
    tokio::time::sleep(deadline * 2).await;
    media.pass.add_permits(100);

    assert_eq!(first.await.unwrap().unwrap(), n1);
    let e = late.await.unwrap().unwrap_err();
    assert!(e.to_string().contains("longer than"), "{e}");
    let stored = catalog.latest_fragments(feed.stream, 10).await.unwrap();
    assert_eq!(numbers(&stored), [n0, n1]);

    // The next fragment of the stream commits after the refused one.
    let n3 = feed
        .put(&archive, T0 + 3000, T0 + 3000, payload(3, 100))
        .await;
    let stored = catalog.latest_fragments(feed.stream, 10).await.unwrap();
    assert_eq!(numbers(&stored), [n0, n1, n3]);
}
