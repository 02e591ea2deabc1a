//! The node's lease keeper against the embedded catalog (real time: leases expire by the wall
//! clock the catalog reads).

use super::*;
use std::collections::BTreeMap;
use store::{NewStream, Timestamp};

async fn catalog_with_streams(
    dir: &std::path::Path,
    n: usize,
) -> (Arc<dyn Catalog>, Vec<StreamId>) {
    let (catalog, _media) = store::embedded::open(dir).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let s = catalog
            .create_stream(NewStream {
                name: format!("lease-{i}"),
                arn: format!("arn:aws:kinesisvideo:us-east-1:000000000000:stream/lease-{i}/1"),
                device_name: None,
                media_type: None,
                kms_key_id: String::new(),
                version: "1".into(),
                creation_time: Timestamp(1),
                data_retention_hours: 1,
                storage_tier: "STANDARD".into(),
                tags: BTreeMap::new(),
            })
            .await
            .unwrap();
        ids.push(s.id);
    }
    (catalog, ids)
}

/// `acquire` without waiting, which must succeed.
async fn take(
    keeper: &LeaseKeeper,
    catalog: &Arc<dyn Catalog>,
    id: StreamId,
    holder: &str,
) -> HeldLease {
    match acquire(keeper, catalog.clone(), id, holder, Duration::ZERO).await {
        Ok(held) => held,
        Err(AcquireError::Held) => panic!("stream {id:?} is held"),
        Err(AcquireError::Store(e)) => panic!("{e}"),
    }
}

#[tokio::test]
async fn leases_held_together_outlive_their_ttl_and_release_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, ids) = catalog_with_streams(dir.path(), 2).await;
    let keeper = LeaseKeeper::default();
    let a = take(&keeper, &catalog, ids[0], "node-a").await;
    let b = take(&keeper, &catalog, ids[1], "node-a").await;
    tokio::time::sleep(LEASE_TTL + Duration::from_millis(500)).await;
    // Both renewed by the keeper's rounds: another node is refused, nothing was lost.
    for id in &ids {
        assert!(matches!(
            acquire(&keeper, catalog.clone(), *id, "node-b", Duration::ZERO).await,
            Err(AcquireError::Held)
        ));
    }
    assert!(!a.lost.is_cancelled() && !b.lost.is_cancelled());
    // Released: no later round extends it again, so it is free well before a TTL.
    a.release().await;
    tokio::time::sleep(RENEW_EVERY * 2).await;
    let c = take(&keeper, &catalog, ids[0], "node-b").await;
    assert!(!c.lost.is_cancelled());
    assert_eq!(keeper.inner.held().len(), 2, "b and c are held, a is not");
}

#[tokio::test]
async fn a_lease_taken_over_is_reported_lost_and_the_others_stay() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, ids) = catalog_with_streams(dir.path(), 2).await;
    let keeper = LeaseKeeper::default();
    let a = take(&keeper, &catalog, ids[0], "node-a").await;
    let b = take(&keeper, &catalog, ids[1], "node-a").await;
    // Another node takes stream 0 over (its lease ended behind this node's back).
    catalog.release_writer_lease(a.lease).await.unwrap();
    let other = catalog
        .acquire_writer_lease(ids[0], "node-b", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("free");
    tokio::time::timeout(RENEW_EVERY * 4, a.lost.cancelled())
        .await
        .expect("the next round finds the lease taken over");
    assert!(!b.lost.is_cancelled());
    assert_eq!(keeper.inner.held().len(), 1);
    // The takeover stands: the lost lease is not renewed over it.
    tokio::time::sleep(RENEW_EVERY * 2).await;
    assert_eq!(
        catalog
            .renew_writer_leases(&[other, b.lease], Duration::from_secs(60))
            .await
            .unwrap(),
        vec![LeaseRenewal::Renewed, LeaseRenewal::Renewed]
    );
}

#[tokio::test]
async fn a_dropped_lease_is_no_longer_renewed() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, ids) = catalog_with_streams(dir.path(), 1).await;
    let keeper = LeaseKeeper::default();
    let a = take(&keeper, &catalog, ids[0], "node-a").await;
    drop(a);
    assert!(keeper.inner.held().is_empty());
    // It lapses by itself after its TTL: another holder gets it then.
    tokio::time::sleep(LEASE_TTL + RENEW_EVERY).await;
    assert!(
        acquire(&keeper, catalog.clone(), ids[0], "node-b", Duration::ZERO)
            .await
            .is_ok()
    );
}
