//! The embedded default: `<data dir>/catalog.sqlite3` and `<data dir>/media/`.

use crate::{Catalog, MediaStore, SegmentMediaStore, SqliteCatalog, StoreError};
use std::path::Path;
use std::sync::Arc;

/// Creates the data directory owner-only (as `open` does), for a node that keeps only its
/// SQLite catalog there.
pub fn create_data_dir(data_dir: &Path) -> Result<(), StoreError> {
    Ok(crate::private::create_dir(data_dir)?)
}

/// Opens the embedded archive in `data_dir`, creating it if needed, and finishes half-done work:
/// media directories of streams the catalog no longer has (a delete interrupted between the
/// catalog commit and the file removal) are removed, and so are a stream's segment files older
/// than its oldest row's segment or newer than its newest row's (a retention pass interrupted
/// between the row delete and the file delete, a deletion deferred and then lost with the
/// process, bytes a crash left uncommitted in a segment no row ever pointed at). No append is in
/// flight yet, and every append of this process goes to a new segment, so none of them can
/// become referenced (docs/architecture.md#deletes-and-retention).
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
            continue;
        }
        let referenced = catalog.referenced_segment_range(id).await?;
        let unreferenced: Vec<u64> = media
            .segments_on_disk(id)?
            .into_iter()
            .filter(|s| referenced.is_none_or(|(first, last)| *s < first || *s > last))
            .collect();
        if !unreferenced.is_empty() {
            tracing::info!(stream = ?id, segments = ?unreferenced, "removing segment files no fragment references");
            media.delete_segments(id, &unreferenced).await?;
        }
    }
    Ok((catalog, media))
}
