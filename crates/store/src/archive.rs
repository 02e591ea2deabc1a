//! Group commit: fragments from every stream are written to the media store, synced once per
//! batch, then their catalog rows are committed in one transaction; only then is each caller told
//! its fragment number (and PERSISTED may be acknowledged).

use crate::{Catalog, FragmentNumber, MediaStore, NewFragment, StoreError};
use bytes::Bytes;
use std::sync::Arc;

/// A fully received fragment: its media bytes (each track's samples contiguous) and catalog row
/// (whose `media` location is filled in by the archive).
pub struct PendingFragment {
    pub parts: Vec<Bytes>,
    pub row: NewFragment,
}

pub struct Archive {
    catalog: Arc<dyn Catalog>,
    media: Arc<dyn MediaStore>,
}

impl Archive {
    pub fn new(catalog: Arc<dyn Catalog>, media: Arc<dyn MediaStore>) -> Arc<Self> {
        Arc::new(Archive { catalog, media })
    }

    /// Makes a fragment durable; resolves with its fragment number once bytes and row are durable.
    pub async fn persist(&self, fragment: PendingFragment) -> Result<FragmentNumber, StoreError> {
        let mut row = fragment.row;
        row.media = self.media.append(row.stream, fragment.parts).await?;
        self.media.sync().await?;
        let numbers = self.catalog.insert_fragments(vec![row]).await?;
        numbers.into_iter().next().ok_or_else(|| StoreError::Task("no fragment number".into()))
    }
}
