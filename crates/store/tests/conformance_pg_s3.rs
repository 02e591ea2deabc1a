//! The conformance suite (`conformance/mod.rs`) on the scale-out pair as `openkvs serve` wires it:
//! the PostgreSQL catalog and the object media store on a real Garage, the catalog as the media
//! store's pending-media ledger and the giver of its writer epoch. Each test has a fresh database
//! and a key prefix of its own; a reopen is a node restarting (new connections, a new epoch).

mod conformance;
mod engines;

use async_trait::async_trait;
use engines::garage::garage;
use engines::postgres::cluster;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use store::object::{CatalogLedger, ObjectMediaStore};
use store::postgres::PgCatalog;
use store::{Catalog, MediaStore};

struct PgS3 {
    url: String,
    prefix: String,
    catalog: Arc<dyn Catalog>,
    media: Arc<dyn MediaStore>,
}

impl PgS3 {
    async fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!("pg-s3-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let url = tokio::task::spawn_blocking(|| cluster().new_database())
            .await
            .unwrap();
        let (catalog, media) = Self::open(&url, &prefix).await;
        PgS3 {
            url,
            prefix,
            catalog,
            media,
        }
    }

    async fn open(url: &str, prefix: &str) -> (Arc<dyn Catalog>, Arc<dyn MediaStore>) {
        let catalog: Arc<dyn Catalog> = Arc::new(PgCatalog::connect(url).await.unwrap());
        let bucket = tokio::task::spawn_blocking(|| garage().bucket(None))
            .await
            .unwrap();
        let epoch = catalog.allocate_media_epoch().await.unwrap();
        let media = ObjectMediaStore::new(
            bucket,
            prefix,
            u32::try_from(epoch).unwrap(),
            Arc::new(CatalogLedger(catalog.clone())),
        )
        .unwrap();
        (catalog, Arc::new(media))
    }
}

#[async_trait]
impl conformance::Backend for PgS3 {
    fn catalog(&self) -> Arc<dyn Catalog> {
        self.catalog.clone()
    }

    fn media(&self) -> Arc<dyn MediaStore> {
        self.media.clone()
    }

    async fn reopen(&mut self) -> bool {
        (self.catalog, self.media) = Self::open(&self.url, &self.prefix).await;
        true
    }
}

mod pg_s3 {
    crate::conformance_suite!(crate::PgS3::new().await);
}
