//! The conformance suite (`conformance/mod.rs`) on the embedded backend, `store::embedded::open` on
//! a temporary directory, both bare and behind the server's read-through `CachingCatalog`.

mod conformance;

use async_trait::async_trait;
use std::sync::Arc;
use store::{embedded, CachingCatalog, Catalog, MediaStore};

struct Embedded {
    dir: tempfile::TempDir,
    cached: bool,
    catalog: Arc<dyn Catalog>,
    media: Arc<dyn MediaStore>,
}

impl Embedded {
    async fn new(cached: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (catalog, media) = Self::open(&dir, cached).await;
        Embedded {
            dir,
            cached,
            catalog,
            media,
        }
    }

    async fn open(
        dir: &tempfile::TempDir,
        cached: bool,
    ) -> (Arc<dyn Catalog>, Arc<dyn MediaStore>) {
        let (sqlite, media) = embedded::open(dir.path()).await.unwrap();
        let catalog: Arc<dyn Catalog> = if cached {
            Arc::new(CachingCatalog::new(sqlite))
        } else {
            sqlite
        };
        (catalog, media)
    }
}

#[async_trait]
impl conformance::Backend for Embedded {
    fn catalog(&self) -> Arc<dyn Catalog> {
        self.catalog.clone()
    }

    fn media(&self) -> Arc<dyn MediaStore> {
        self.media.clone()
    }

    async fn reopen(&mut self) -> bool {
        (self.catalog, self.media) = Self::open(&self.dir, self.cached).await;
        true
    }

    async fn forget_summaries(&mut self) -> bool {
        let path = self.dir.path().join("catalog.sqlite3");
        tokio::task::spawn_blocking(move || {
            let c = rusqlite::Connection::open(path).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            c.execute("UPDATE fragment SET summary = NULL", []).unwrap();
        })
        .await
        .unwrap();
        true
    }
}

mod sqlite {
    crate::conformance_suite!(crate::Embedded::new(false).await);
}

mod cached {
    crate::conformance_suite!(crate::Embedded::new(true).await);
}
