//! The conformance suite (`conformance/mod.rs`) on the PostgreSQL catalog (`store::postgres`)
//! paired with the segment-file media store in a temporary directory.
//!
//! The test binary starts its own PostgreSQL 15 cluster (initdb + pg_ctl, unix socket only, in a
//! temporary directory), gives every test a fresh database, and stops the cluster when the process
//! exits. PostgreSQL refuses to run as root, so as root the cluster runs as `nobody` (`runuser`).
//! Without the PostgreSQL binaries the tests fail: scripts/test.sh installs `postgresql-15`.

mod conformance;
mod engines;

use async_trait::async_trait;
use engines::postgres::cluster;
use std::path::Path;
use std::sync::Arc;
use store::postgres::PgCatalog;
use store::{Catalog, LeaseRenewal, MediaStore, SegmentMediaStore};

struct Postgres {
    url: String,
    media_dir: tempfile::TempDir,
    catalog: Arc<dyn Catalog>,
    media: Arc<dyn MediaStore>,
}

impl Postgres {
    async fn new() -> Self {
        let url = tokio::task::spawn_blocking(|| cluster().new_database())
            .await
            .unwrap();
        let media_dir = tempfile::tempdir().unwrap();
        let (catalog, media) = Self::open(&url, media_dir.path()).await;
        Postgres {
            url,
            media_dir,
            catalog,
            media,
        }
    }

    async fn open(url: &str, media_dir: &Path) -> (Arc<dyn Catalog>, Arc<dyn MediaStore>) {
        let catalog = PgCatalog::connect(url).await.unwrap();
        let media = SegmentMediaStore::open(media_dir).unwrap();
        (Arc::new(catalog), Arc::new(media))
    }
}

#[async_trait]
impl conformance::Backend for Postgres {
    fn catalog(&self) -> Arc<dyn Catalog> {
        self.catalog.clone()
    }

    fn media(&self) -> Arc<dyn MediaStore> {
        self.media.clone()
    }

    async fn reopen(&mut self) -> bool {
        (self.catalog, self.media) = Self::open(&self.url, self.media_dir.path()).await;
        true
    }

    async fn forget_summaries(&mut self) -> bool {
        admin(&self.url)
            .await
            .execute("UPDATE fragment SET summary = NULL", &[])
            .await
            .unwrap();
        true
    }
}

mod postgres {
    crate::conformance_suite!(crate::Postgres::new().await);
}

/// A second connect finds the schema applied and changes nothing.
#[tokio::test]
async fn migrations_apply_once() {
    let url = tokio::task::spawn_blocking(|| cluster().new_database())
        .await
        .unwrap();
    let first = PgCatalog::connect(&url).await.unwrap();
    let version = first.schema_version().await.unwrap();
    assert!(version >= 1);
    let second = PgCatalog::connect(&url).await.unwrap();
    assert_eq!(second.schema_version().await.unwrap(), version);
}

/// What the suite leaves open (it checks Ok / Err only): the refusals have their meaning, the
/// same ones the SQLite catalog gives.
#[tokio::test]
async fn refusals_have_their_meaning() {
    use conformance::fixtures::*;
    use store::{FragmentNumber, StoreError, StreamId, StreamUpdate};
    let b = Postgres::new().await;
    let catalog = b.catalog.clone();
    let s = catalog.create_stream(new_stream("cam")).await.unwrap();
    let e = catalog.create_stream(new_stream("cam")).await.unwrap_err();
    assert!(
        matches!(e, StoreError::AlreadyExists(ref n) if n == "cam"),
        "{e}"
    );

    let missing = StreamId(s.id.0 + 1000);
    let e = catalog
        .codec_config_for(missing, &video(1, b"sps"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::StreamNotFound(id) if id == missing),
        "{e}"
    );
    let e = catalog
        .update_stream(s.id, Some("nope"), StreamUpdate::default())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::VersionMismatch { .. }), "{e}");

    let config = catalog
        .codec_config_for(s.id, &video(1, b"sps"))
        .await
        .unwrap();
    let track = (1, config, payload(1, 100));
    let row = |stream, n| {
        fragment(
            stream,
            FragmentNumber(n),
            1_000,
            2_000,
            std::slice::from_ref(&track),
        )
        .row
    };
    catalog.insert_fragments(vec![row(s.id, 10)]).await.unwrap();
    let e = catalog
        .insert_fragments(vec![row(s.id, 10)])
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::FragmentNumberNotIncreasing { number, .. } if number == FragmentNumber(10)),
        "{e}"
    );
    let e = catalog
        .insert_fragments(vec![row(missing, 11)])
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::StreamNotFound(id) if id == missing),
        "{e}"
    );
}

/// A connection the server drops (a restart, a failover) gives a retryable error at worst, and
/// the pool replaces it: the next call works.
#[tokio::test]
async fn a_dropped_connection_is_unavailable_then_replaced() {
    use store::StoreErrorKind;
    let b = Postgres::new().await;
    let catalog = b.catalog.clone();
    catalog.all_streams().await.unwrap();
    let admin = admin(&b.url).await;
    terminate_others(&admin).await;
    // pg_terminate_backend only signals: wait until the catalog's backends are gone.
    for _ in 0..500 {
        if other_backends(&admin).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    match catalog.all_streams().await {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), StoreErrorKind::Unavailable, "{e}"),
    }
    catalog.all_streams().await.unwrap();
}

// ---- scale-out: several nodes on one catalog (docs/architecture.md#writer-lease) -------------

use conformance::announced;
use std::time::Duration;
use store::{CachingCatalog, CatalogChange};

/// What a node's change feed is given to hear of another node's commit.
const SECOND: Duration = Duration::from_secs(1);

/// Two nodes: two `PgCatalog`s connected to the same fresh database.
async fn two_nodes() -> (Postgres, Arc<PgCatalog>) {
    let a = Postgres::new().await;
    let b = Arc::new(PgCatalog::connect(&a.url).await.unwrap());
    (a, b)
}

/// Connections to the database other than `admin`'s own.
async fn other_backends(admin: &tokio_postgres::Client) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Has the server drop every other connection to the database (a restart, a failover).
async fn terminate_others(admin: &tokio_postgres::Client) {
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
}

/// A plain connection of the tests' own, beside the catalog's.
async fn admin(url: &str) -> tokio_postgres::Client {
    let (admin, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    admin
}

/// Node A's commit reaches node B's change feed within a second, and B's cache, which held the
/// live edge from before, shows the new fragment as soon as the notification is out.
#[tokio::test]
async fn a_commit_on_one_node_reaches_the_others_feed_and_cache() {
    use conformance::fixtures::*;
    let (a, node_b) = two_nodes().await;
    let node_a = a.catalog.clone();
    let cached_b = CachingCatalog::new(node_b.clone());
    let mut raw_b = node_b.changes();
    let mut feed_b = cached_b.changes();

    let mut feed = Feed::new(&*node_a, "shared").await;
    let archive = store::Archive::new(node_a.clone(), a.media.clone());
    let n1 = feed.put(&archive, T0, T0, payload(1, 100)).await;
    announced(&mut feed_b, CatalogChange::Fragments(feed.stream), SECOND).await;
    // B caches the live edge with n1.
    let edge = cached_b.latest_fragments(feed.stream, 10).await.unwrap();
    assert_eq!(numbers(&edge), [n1]);
    assert_eq!(
        cached_b.last_fragment_number(feed.stream).await.unwrap(),
        Some(n1)
    );

    let n2 = feed
        .put(&archive, T0 + 1000, T0 + 1000, payload(2, 100))
        .await;
    announced(&mut raw_b, CatalogChange::Fragments(feed.stream), SECOND).await;
    announced(&mut feed_b, CatalogChange::Fragments(feed.stream), SECOND).await;
    let edge = cached_b.latest_fragments(feed.stream, 10).await.unwrap();
    assert_eq!(
        numbers(&edge),
        [n1, n2],
        "B's cache after A's commit was announced"
    );
    assert_eq!(
        cached_b.last_fragment_number(feed.stream).await.unwrap(),
        Some(n2)
    );

    // A stream change (here a delete) on A drops B's cached record.
    assert!(cached_b.stream_by_id(feed.stream).await.unwrap().is_some());
    node_a.delete_stream(feed.stream, None).await.unwrap();
    announced(&mut feed_b, CatalogChange::Stream(feed.stream), SECOND).await;
    assert_eq!(cached_b.stream_by_id(feed.stream).await.unwrap(), None);
}

/// docs/architecture.md#writer-lease across nodes: racing acquirers get one grant, and the
/// node that lost the stream cannot commit to it any more.
#[tokio::test]
async fn one_node_at_a_time_writes_a_stream() {
    use conformance::fixtures::*;
    use store::StoreError;
    let (a, node_b) = two_nodes().await;
    let node_a = a.catalog.clone();
    let s = node_a.create_stream(new_stream("contended")).await.unwrap();
    let config = node_a
        .codec_config_for(s.id, &video(1, b"sps"))
        .await
        .unwrap();

    let mut racers = Vec::new();
    for i in 0..16 {
        let node: Arc<dyn Catalog> = if i % 2 == 0 {
            node_a.clone()
        } else {
            node_b.clone()
        };
        racers.push(tokio::spawn(async move {
            node.acquire_writer_lease(s.id, &format!("node-{i}"), Duration::from_millis(300))
                .await
                .unwrap()
        }));
    }
    let mut granted = Vec::new();
    for r in racers {
        granted.extend(r.await.unwrap());
    }
    assert_eq!(granted.len(), 1, "{granted:?}");
    let old = granted[0];

    // The holder pauses past its TTL; node B takes over.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let new = node_b
        .acquire_writer_lease(s.id, "node-b", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(new.epoch > old.epoch);
    let row = |n: u128, epoch: u64| {
        let mut f = fragment(
            s.id,
            store::FragmentNumber(n),
            T0,
            T0,
            &[(1, config, payload(1, 10))],
        );
        f.row.writer_epoch = Some(epoch);
        f.row
    };
    let e = node_a
        .insert_fragments(vec![row(10, old.epoch)])
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::WriterLeaseLost { stream, epoch } if stream == s.id && epoch == old.epoch),
        "{e}"
    );
    assert!(e.to_string().contains("writer lease lost"), "{e}");
    assert_eq!(node_a.last_fragment_number(s.id).await.unwrap(), None);
    node_b
        .insert_fragments(vec![row(11, new.epoch)])
        .await
        .unwrap();
}

/// Nodes starting together agree on one session key.
#[tokio::test]
async fn racing_nodes_agree_on_the_session_key() {
    let (a, node_b) = two_nodes().await;
    let node_a = a.catalog.clone();
    let (ka, kb) = tokio::join!(
        node_a.session_key_or_init([0xa; 32]),
        node_b.session_key_or_init([0xb; 32])
    );
    let (ka, kb) = (ka.unwrap(), kb.unwrap());
    assert_eq!(ka, kb);
    assert!(ka == [0xa; 32] || ka == [0xb; 32]);
}

/// The listening connection dropped by the server: the feed reports Unknown once it listens
/// again, and then delivers notifications as before.
#[tokio::test]
async fn a_lost_listener_reconnects_and_reports_unknown() {
    use conformance::fixtures::*;
    let b = Postgres::new().await;
    let catalog = b.catalog.clone();
    let s = catalog.create_stream(new_stream("relisten")).await.unwrap();
    let mut changes = catalog.changes();
    let admin = admin(&b.url).await;
    terminate_others(&admin).await;
    announced(
        &mut changes,
        CatalogChange::Unknown,
        Duration::from_secs(10),
    )
    .await;
    // The pool may hand out a terminated connection once (Unavailable); the next call works.
    let update = || {
        catalog.update_stream(
            s.id,
            None,
            store::StreamUpdate {
                new_version: "v2".into(),
                ..Default::default()
            },
        )
    };
    if update().await.is_err() {
        update().await.unwrap();
    }
    announced(
        &mut changes,
        CatalogChange::Stream(s.id),
        Duration::from_secs(2),
    )
    .await;
}

/// No task outlives its catalog: dropping every handle closes the listening connection too.
#[tokio::test]
async fn a_dropped_catalog_leaves_no_connection_behind() {
    let b = Postgres::new().await;
    let url = b.url.clone();
    let admin = admin(&url).await;
    assert!(
        other_backends(&admin).await >= 1,
        "the listener's connection"
    );
    drop(b);
    for _ in 0..500 {
        if other_backends(&admin).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("connections left: {}", other_backends(&admin).await);
}

/// A window of summaries is an index-only scan of the covering index on its timestamp, read in
/// its order (no sort), for both timestamps.
#[tokio::test]
async fn a_window_of_summaries_reads_only_the_covering_index() {
    use conformance::fixtures::*;
    let b = Postgres::new().await;
    let archive = store::Archive::new(b.catalog.clone(), b.media.clone());
    let mut feed = Feed::new(&*b.catalog, "window").await;
    for i in 0..50 {
        feed.put(&archive, T0 + 2000 * i, T0 + 2000 * i + 7, payload(1, 4))
            .await;
    }
    let admin = admin(&b.url).await;
    admin
        .batch_execute("VACUUM (ANALYZE) fragment")
        .await
        .unwrap();
    // Plans as on a table too large to read whole.
    admin
        .batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        .await
        .unwrap();
    for (column, index) in [
        ("server_ms", "fragment_window_by_server"),
        ("producer_ms", "fragment_window_by_producer"),
    ] {
        let sql = format!(
            "EXPLAIN SELECT stream_id, number, producer_ms, server_ms, duration_ms, size_bytes, \
             sequence, continuity_flags, continuity_counts, summary FROM fragment \
             WHERE stream_id = $1 AND {column} >= $2 AND {column} <= $3 \
             AND ({column}, number) > ($4, $5) ORDER BY stream_id, {column}, number LIMIT $6"
        );
        let rows = admin
            .query(
                &sql,
                &[
                    &feed.stream.0,
                    &0i64,
                    &i64::MAX,
                    &i64::MIN,
                    &String::new(),
                    &5000i64,
                ],
            )
            .await
            .unwrap();
        let plan: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let plan = plan.join("\n");
        assert!(
            plan.contains(&format!("Index Only Scan using {index}")),
            "{plan}"
        );
        assert!(!plan.contains("Sort"), "{plan}");
    }
}

/// A stream row another transaction holds (the group commit locks its batch's rows `FOR UPDATE`)
/// is skipped by a batch of renewals, not waited for: `Busy`, while the rest are renewed; once the
/// row is free it renews again. Waiting here deadlocked with the commits under load.
#[tokio::test]
async fn a_renewal_skips_a_stream_row_a_commit_holds() {
    let backend = Postgres::new().await;
    let catalog = backend.catalog.clone();
    let held = catalog
        .create_stream(conformance::fixtures::new_stream("busy-held"))
        .await
        .unwrap();
    let free = catalog
        .create_stream(conformance::fixtures::new_stream("busy-free"))
        .await
        .unwrap();
    let ttl = std::time::Duration::from_secs(60);
    let mut leases = Vec::new();
    for s in [&held, &free] {
        leases.push(
            catalog
                .acquire_writer_lease(s.id, "node-a", ttl)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let mut other = admin(&backend.url).await;
    let tx = other.transaction().await.unwrap();
    tx.execute(
        "SELECT id FROM stream WHERE id = $1 FOR UPDATE",
        &[&held.id.0],
    )
    .await
    .unwrap();
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        catalog.renew_writer_leases(&leases, ttl),
    )
    .await
    .expect("the renewal waited for the locked row")
    .unwrap();
    assert_eq!(answer, vec![LeaseRenewal::Busy, LeaseRenewal::Renewed]);
    tx.rollback().await.unwrap();
    assert_eq!(
        catalog.renew_writer_leases(&leases, ttl).await.unwrap(),
        vec![LeaseRenewal::Renewed, LeaseRenewal::Renewed]
    );
}
