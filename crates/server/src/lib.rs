//! The HTTP server: AWS wire layer, SigV4 verification, control plane, PutMedia ingest, archived media.

pub mod ingest;

use std::sync::Arc;

/// Shared state of every handler. (Placeholder: the wire-layer work fills in config and the rest.)
#[derive(Clone)]
pub struct AppState {
    pub catalog: Arc<dyn store::Catalog>,
    pub media: Arc<dyn store::MediaStore>,
    pub archive: Arc<store::Archive>,
    pub ingest: Arc<ingest::IngestState>,
}
