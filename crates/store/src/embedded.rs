//! The embedded default: `<data dir>/catalog.sqlite3` and `<data dir>/media/`.

use crate::{Catalog, MediaStore, SegmentMediaStore, SqliteCatalog, StoreError};
use std::path::Path;
use std::sync::Arc;

/// Opens the embedded archive in `data_dir`, creating it if needed, and finishes half-done work:
/// media directories of streams the catalog no longer has (a delete interrupted between the
/// catalog commit and the file removal) are removed.
pub async fn open(
    data_dir: &Path,
) -> Result<(Arc<SqliteCatalog>, Arc<SegmentMediaStore>), StoreError> {
    // Owner-only: the video and the catalog are nobody else's business (`private`).
    crate::private::create_dir(data_dir)?;
    let catalog = Arc::new(SqliteCatalog::open(&data_dir.join("catalog.sqlite3"))?);
    let media = Arc::new(SegmentMediaStore::open(&data_dir.join("media"))?);
    for id in media.stream_ids_on_disk()? {
        if catalog.stream_by_id(id).await?.is_none() {
            tracing::info!(stream = ?id, "removing media of a deleted stream");
            media.delete_stream(id).await?;
        }
    }
    Ok((catalog, media))
}
