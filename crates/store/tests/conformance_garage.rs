//! The conformance suite (`conformance/mod.rs`) on the object media store over a real Garage
//! (S3-compatible), paired with the SQLite catalog in a temporary directory; each test writes
//! under a key prefix of its own.
//!
//! The test binary starts one single-node Garage with `scripts/garage.sh start` in a temporary
//! directory and stops it when the process exits. Without the Garage binary the tests fail: run
//! `scripts/garage.sh build` (scripts/test.sh does).

mod conformance;
mod engines;
mod object_backend;

use conformance::fixtures::*;
use engines::garage::garage;
use object_backend::ObjectBackend;
use object_store::ObjectStore;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::object::{s3, MemoryLedger, ObjectMediaStore};
use store::{Archive, Catalog, MediaStore, SqliteCatalog, StoreErrorKind};

/// A key prefix no other test of this process uses.
fn fresh_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn backend() -> ObjectBackend {
    let bucket = tokio::task::spawn_blocking(|| garage().bucket(None))
        .await
        .unwrap();
    ObjectBackend::new(bucket, &fresh_prefix())
}

mod garage {
    crate::conformance_suite!(crate::backend().await);
}

fn media_store(bucket: Arc<dyn ObjectStore>, prefix: &str) -> ObjectMediaStore {
    ObjectMediaStore::new(bucket, prefix, 1, Arc::new(MemoryLedger::default())).unwrap()
}

/// A server's start-up check: passes with the right credentials, fails with one line (and a
/// retryable kind) with a wrong secret or a bucket that is not there.
#[tokio::test]
async fn check_reachable_tells_wrong_credentials_and_missing_buckets() {
    let g = tokio::task::spawn_blocking(garage).await.unwrap();
    media_store(g.bucket(None), &fresh_prefix())
        .check_reachable()
        .await
        .unwrap();
    let wrong_secret = media_store(g.bucket(Some(&"0".repeat(64))), "");
    let missing = s3(
        "s3://no-such-bucket",
        Some(g.var("ENDPOINT")),
        g.var("REGION"),
        g.var("ACCESS_KEY_ID"),
        g.var("SECRET_ACCESS_KEY"),
    )
    .unwrap();
    for store in [wrong_secret, media_store(missing, "")] {
        let e = store.check_reachable().await.unwrap_err();
        assert_eq!(e.kind(), StoreErrorKind::Unavailable, "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}

/// Not an assertion: what a fragment costs on Garage over loopback (docs/architecture.md#media-on-object-storage
/// has the figures). Run with `-- --nocapture` to see them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_of_put_and_commit_per_fragment() {
    const FRAGMENT: usize = 256 * 1024;
    const N: usize = 64;
    let g = tokio::task::spawn_blocking(garage).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let catalog: Arc<dyn Catalog> =
        Arc::new(SqliteCatalog::open(&dir.path().join("catalog.sqlite3")).unwrap());
    let prefix = fresh_prefix();
    let media: Arc<dyn MediaStore> = Arc::new(media_store(g.bucket(None), &prefix));
    let archive = Archive::new(catalog.clone(), media);
    let mut feed = Feed::new(&*catalog, "cost").await;
    let per = |t: Duration, n: usize| format!("{:.2} ms", t.as_secs_f64() * 1000.0 / n as f64);

    // One at a time: a PUT and a one-row commit per fragment (a single slow producer).
    let t = Instant::now();
    for i in 0..N as i64 {
        feed.put(&archive, T0 + i, T0 + i, payload(1, FRAGMENT))
            .await;
    }
    let sequential = t.elapsed();

    // N at once (many streams ingesting): one group commit, its PUTs concurrent.
    let t = Instant::now();
    let mut waiting = Vec::new();
    for i in 0..N as i64 {
        let f = feed.next(T0 + 1000 + i, T0 + 1000 + i, payload(2, FRAGMENT));
        waiting.push(archive.submit(f).await.unwrap());
    }
    for rx in waiting {
        rx.await.unwrap().unwrap();
    }
    let batched = t.elapsed();

    // The PUTs alone, one after another, then the alternative: one object per commit batch
    // (the same bytes in one PUT).
    let bucket = g.bucket(None);
    let put = |name: String, bytes: bytes::Bytes| {
        let (bucket, key) = (bucket.clone(), format!("{prefix}/raw/{name}"));
        async move {
            let key = object_store::path::Path::from(key);
            object_store::ObjectStoreExt::put(&*bucket, &key, bytes.into())
                .await
                .unwrap();
        }
    };
    let t = Instant::now();
    for i in 0..N {
        put(i.to_string(), payload(3, FRAGMENT)).await;
    }
    let puts_alone = t.elapsed();
    let one: bytes::Bytes = (0..N).flat_map(|_| payload(3, FRAGMENT)).collect();
    let t = Instant::now();
    put("batch".into(), one).await;
    let one_object = t.elapsed();

    eprintln!(
        "Garage on loopback, {N} fragments of {} KiB: one at a time {} per fragment (PUT + \
         commit); {N} at once {} per fragment (concurrent PUTs + one commit); PUTs alone, one \
         at a time {} per fragment; one object for the {N} (PUT only) {} per fragment",
        FRAGMENT / 1024,
        per(sequential, N),
        per(batched, N),
        per(puts_alone, N),
        per(one_object, N),
    );
}
