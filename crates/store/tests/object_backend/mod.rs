//! The conformance suite's backend for the object media store, shared by conformance_object.rs
//! (object_store's in-memory store) and conformance_garage.rs (a real Garage): a SQLite catalog
//! in a temporary directory and an `ObjectMediaStore` under its own key prefix, with an in-memory
//! ledger.

use async_trait::async_trait;
use object_store::ObjectStore;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use store::object::{MemoryLedger, ObjectMediaStore};
use store::{Catalog, MediaStore, SqliteCatalog};

/// Writer epochs: every store instance of the process gets one no other had.
static EPOCH: AtomicU32 = AtomicU32::new(1);

pub struct ObjectBackend {
    dir: tempfile::TempDir,
    bucket: Arc<dyn ObjectStore>,
    prefix: String,
    ledger: Arc<MemoryLedger>,
    catalog: Arc<dyn Catalog>,
    media: Arc<ObjectMediaStore>,
}

impl ObjectBackend {
    pub fn new(bucket: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(MemoryLedger::default());
        let (catalog, media) = Self::open(&dir, &bucket, prefix, &ledger);
        ObjectBackend {
            dir,
            bucket,
            prefix: prefix.to_string(),
            ledger,
            catalog,
            media,
        }
    }

    /// A restart: the catalog opened again and a media store with a new epoch.
    fn open(
        dir: &tempfile::TempDir,
        bucket: &Arc<dyn ObjectStore>,
        prefix: &str,
        ledger: &Arc<MemoryLedger>,
    ) -> (Arc<dyn Catalog>, Arc<ObjectMediaStore>) {
        let catalog = SqliteCatalog::open(&dir.path().join("catalog.sqlite3")).unwrap();
        let epoch = EPOCH.fetch_add(1, Ordering::Relaxed);
        let media = ObjectMediaStore::new(bucket.clone(), prefix, epoch, ledger.clone()).unwrap();
        (Arc::new(catalog), Arc::new(media))
    }

    #[allow(dead_code)] // used by the Garage tests only
    pub fn object_media(&self) -> Arc<ObjectMediaStore> {
        self.media.clone()
    }
}

#[async_trait]
impl crate::conformance::Backend for ObjectBackend {
    fn catalog(&self) -> Arc<dyn Catalog> {
        self.catalog.clone()
    }

    fn media(&self) -> Arc<dyn MediaStore> {
        self.media.clone()
    }

    async fn reopen(&mut self) -> bool {
        (self.catalog, self.media) =
            Self::open(&self.dir, &self.bucket, &self.prefix, &self.ledger);
        true
    }
}
