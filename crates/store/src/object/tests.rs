use super::*;
use crate::StoreErrorKind;
use object_store::memory::InMemory;

const S: StreamId = StreamId(1);

struct Fixture {
    bucket: Arc<InMemory>,
    ledger: Arc<MemoryLedger>,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            bucket: Arc::new(InMemory::new()),
            ledger: Arc::new(MemoryLedger::default()),
        }
    }

    /// A store instance over the fixture's bucket and ledger, as a (re)started node would open.
    fn open(&self, epoch: u32) -> ObjectMediaStore {
        ObjectMediaStore::new(self.bucket.clone(), "media", epoch, self.ledger.clone()).unwrap()
    }

    async fn exists(&self, stream: StreamId, segment: u64) -> bool {
        let key = object_key(&Path::from("media"), stream, segment);
        match self.bucket.head(&key).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => panic!("{e}"),
        }
    }

    /// Removes an object behind the store's back: a read that still works came from its cache.
    async fn remove(&self, stream: StreamId, segment: u64) {
        let key = object_key(&Path::from("media"), stream, segment);
        self.bucket.delete(&key).await.unwrap();
    }
}

fn bytes(seed: u8, len: usize) -> Bytes {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

async fn read_all(store: &ObjectMediaStore, loc: MediaLocation) -> Result<Bytes, StoreError> {
    store.read(S, loc, 0..loc.len).await
}

#[test]
fn keys_are_prefix_stream_and_16_hex_digits() {
    let seg = (7 << 32) | 1;
    let key = object_key(&Path::from("media/a"), StreamId(42), seg);
    assert_eq!(key.as_ref(), "media/a/42/0000000700000001");
    assert_eq!(
        object_key(&Path::from(""), StreamId(42), seg).as_ref(),
        "42/0000000700000001"
    );
    // Stream 1's directory is not a prefix of stream 10's objects.
    let dir = stream_dir(&Path::from("m"), StreamId(1));
    let other = object_key(&Path::from("m"), StreamId(10), 1);
    assert!(!other.prefix_matches(&dir));
}

#[tokio::test]
async fn segments_are_epoch_and_a_counter_from_one_until_it_runs_out() {
    let f = Fixture::new();
    let store = f.open(7);
    let a = store.append(S, vec![bytes(1, 10)]).await.unwrap();
    let b = store.append(S, vec![bytes(2, 10)]).await.unwrap();
    assert_eq!((a.segment, a.offset, a.len), ((7 << 32) | 1, 0, 10));
    assert_eq!(b.segment, (7 << 32) | 2);

    store
        .counter
        .store(u64::from(u32::MAX) - 1, Ordering::Relaxed);
    let last = store.append(S, vec![bytes(3, 1)]).await.unwrap();
    assert_eq!(last.segment, (7 << 32) | u64::from(u32::MAX));
    let e = store.append(S, vec![bytes(4, 1)]).await.unwrap_err();
    assert!(e.to_string().contains("new epoch"), "{e}");
    // Nothing was written or recorded for the refused append.
    assert_eq!(f.ledger.pending().len(), 3);

    // The largest epoch still fits a signed 64-bit column.
    let top = ObjectMediaStore::new(f.bucket.clone(), "", (1 << 31) - 1, f.ledger.clone()).unwrap();
    top.counter
        .store(u64::from(u32::MAX) - 1, Ordering::Relaxed);
    let seg = top.append(S, vec![]).await.unwrap().segment;
    assert!(i64::try_from(seg).is_ok());
    for epoch in [0, 1 << 31] {
        let e = ObjectMediaStore::new(f.bucket.clone(), "", epoch, f.ledger.clone())
            .err()
            .unwrap();
        assert_eq!(e.kind(), StoreErrorKind::Internal, "{e}");
    }
}

#[tokio::test]
async fn reads_slice_the_object_and_never_leave_it() {
    let f = Fixture::new();
    let store = f.open(1);
    // Three parts: a read inside one part is a slice of it, across parts a copy.
    let parts = vec![bytes(1, 100), Bytes::new(), bytes(2, 50), bytes(3, 7)];
    let whole = parts.concat();
    let loc = store.append(S, parts).await.unwrap();
    assert_eq!(loc.len, 157);
    for range in [0..157, 0..0, 10..20, 90..110, 99..151, 150..157, 157..157] {
        let got = store.read(S, loc, range.clone()).await.unwrap();
        assert_eq!(
            got,
            whole[range.start as usize..range.end as usize],
            "{range:?}"
        );
    }
    #[allow(clippy::reversed_empty_ranges)] // 5..4: a reversed range is refused too
    let outside = [0..158, 157..158, 5..4];
    for range in outside {
        let e = store.read(S, loc, range.clone()).await.unwrap_err();
        assert_eq!(e.kind(), StoreErrorKind::Corrupt, "{range:?}: {e}");
    }
    // Another node (no cache) reads the same bytes with a GET.
    let other = f.open(2);
    assert_eq!(read_all(&other, loc).await.unwrap(), whole);
    assert_eq!(other.read(S, loc, 99..151).await.unwrap(), whole[99..151]);
}

#[tokio::test]
async fn the_cache_keeps_recent_objects_within_its_byte_bound() {
    let f = Fixture::new();
    let bound = 1024 * 1024;
    let store = f.open(1).with_cache_bytes(bound);
    let mut locs = Vec::new();
    for i in 0..8 {
        locs.push(store.append(S, vec![bytes(i, 200 * 1024)]).await.unwrap());
        assert!(lock(&store.cache).weight() <= bound);
    }
    // Everything is removed behind the store's back: only cached objects still read.
    for loc in &locs {
        f.remove(S, loc.segment).await;
    }
    let newest = *locs.last().unwrap();
    assert_eq!(
        read_all(&store, newest).await.unwrap(),
        bytes(7, 200 * 1024)
    );
    let e = read_all(&store, locs[0]).await.unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Corrupt, "{e}");
    let key = object_key(&Path::from("media"), S, locs[0].segment);
    assert!(e.to_string().contains(key.as_ref()), "{e}");

    // A miss fills the cache: the second read needs no object.
    let g = Fixture::new();
    let writer = g.open(1).with_cache_bytes(0);
    let loc = writer.append(S, vec![bytes(9, 1000)]).await.unwrap();
    assert!(lock(&writer.cache).get(&(S, loc.segment)).is_none());
    let reader = g.open(2);
    assert_eq!(read_all(&reader, loc).await.unwrap(), bytes(9, 1000));
    g.remove(S, loc.segment).await;
    assert_eq!(read_all(&reader, loc).await.unwrap(), bytes(9, 1000));
    assert!(read_all(&writer, loc).await.is_err());
}

#[tokio::test]
async fn a_big_object_is_read_by_ranges_and_not_cached() {
    let f = Fixture::new();
    let len = WHOLE_OBJECT_MAX as usize + 1;
    let big = bytes(5, len);
    let loc = f.open(1).append(S, vec![big.clone()]).await.unwrap();
    let reader = f.open(2).with_cache_bytes(8 * WHOLE_OBJECT_MAX as usize);
    let range = 1_000_000..1_000_100u64;
    let got = reader.read(S, loc, range.clone()).await.unwrap();
    assert_eq!(got, big[1_000_000..1_000_100]);
    assert!(lock(&reader.cache).get(&(S, loc.segment)).is_none());
    let tail = reader.read(S, loc, loc.len - 3..loc.len).await.unwrap();
    assert_eq!(tail, big[len - 3..]);
}

#[tokio::test]
async fn settle_false_deletes_the_object_and_its_pending_entry() {
    let f = Fixture::new();
    let store = f.open(1);
    let loc = store.append(S, vec![bytes(1, 10)]).await.unwrap();
    assert_eq!(f.ledger.pending(), [(S, loc.segment)]);
    assert!(f.exists(S, loc.segment).await);
    store.settle(S, loc, false).await;
    assert!(!f.exists(S, loc.segment).await);
    assert!(f.ledger.pending().is_empty());
    assert_eq!(
        read_all(&store, loc).await.unwrap_err().kind(),
        StoreErrorKind::Corrupt
    );
}

#[tokio::test]
async fn orphans_of_a_crash_are_collected_and_committed_objects_kept() {
    let f = Fixture::new();
    let crashed = f.open(1);
    let orphan = crashed.append(S, vec![bytes(1, 10)]).await.unwrap();
    let committed = crashed.append(S, vec![bytes(2, 10)]).await.unwrap();
    // The catalog clears a fragment's entry in the transaction that commits its row.
    f.ledger
        .clear_pending_media(S, committed.segment)
        .await
        .unwrap();
    crashed.settle(S, committed, true).await;
    drop(crashed); // never settles `orphan`

    let node = f.open(2);
    let in_flight = node.append(S, vec![bytes(3, 10)]).await.unwrap();
    // Young entries are left alone.
    assert_eq!(
        node.collect_orphans(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert!(f.exists(S, orphan.segment).await);
    // Old ones go, except this node's own unsettled append.
    assert_eq!(node.collect_orphans(Duration::ZERO).await.unwrap(), 1);
    assert!(!f.exists(S, orphan.segment).await);
    assert!(f.exists(S, committed.segment).await);
    assert!(f.exists(S, in_flight.segment).await);
    assert_eq!(f.ledger.pending(), [(S, in_flight.segment)]);
    assert_eq!(read_all(&node, committed).await.unwrap(), bytes(2, 10));
}

#[tokio::test]
async fn deletes_take_the_listed_segments_or_the_whole_stream() {
    let f = Fixture::new();
    let store = f.open(1);
    let (s10, s2) = (StreamId(10), StreamId(2));
    let a = store.append(S, vec![bytes(1, 10)]).await.unwrap();
    let b = store.append(S, vec![bytes(2, 10)]).await.unwrap();
    let c = store.append(s10, vec![bytes(3, 10)]).await.unwrap();
    let d = store.append(s2, vec![bytes(4, 10)]).await.unwrap();
    store.begin_delete(S).await;
    store.delete_segments(S, &[a.segment, 12345]).await.unwrap();
    assert!(!f.exists(S, a.segment).await);
    assert!(read_all(&store, a).await.is_err(), "served from the cache");
    assert!(f.exists(S, b.segment).await);

    store.delete_stream(S).await.unwrap();
    assert!(!f.exists(S, b.segment).await);
    assert!(read_all(&store, b).await.is_err(), "served from the cache");
    assert!(f.exists(s10, c.segment).await);
    assert!(f.exists(s2, d.segment).await);
    store.delete_stream(StreamId(99)).await.unwrap();
}

#[test]
fn bad_s3_urls_fail_with_one_line() {
    for url in ["http://bucket/x", "s3://", "s3:///prefix", "bucket"] {
        let e = s3(url, None, "us-east-1", "k", "s").err().unwrap();
        let msg = e.to_string();
        assert!(msg.contains(url) && !msg.contains('\n'), "{msg}");
        assert_eq!(e.kind(), StoreErrorKind::Internal, "{msg}");
    }
    s3("s3://bucket", None, "us-east-1", "k", "s").unwrap();
    let store = s3(
        "s3://bucket/a/b/",
        Some("http://127.0.0.1:1"),
        "garage",
        "k",
        "s",
    )
    .unwrap();
    assert!(store.to_string().contains("a/b"), "{store}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let bucket = s3("s3://b", Some("http://127.0.0.1:1"), "garage", "k", "s").unwrap();
    let store = ObjectMediaStore::new(bucket, "", 1, Arc::new(MemoryLedger::default())).unwrap();
    let e = store.check_reachable().await.unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Unavailable, "{e}");
    assert!(!e.to_string().contains('\n'), "{e}");
    let e = store.append(S, vec![bytes(1, 1)]).await.unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Unavailable, "{e}");
}
