//! PutMedia ingest (CONTRACT.md A2, D): chunked MKV in, acknowledgement events out.
//! Owned by the ingest work; the router mounts [`put_media`] at `POST /putMedia` after SigV4 checks.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Per-server ingest state: the one-connection-per-stream registry and limits.
#[derive(Default)]
pub struct IngestState {}

impl IngestState {
    pub fn new() -> Self {
        IngestState {}
    }
}

/// `POST /putMedia`.
pub async fn put_media(State(_state): State<AppState>, _request: Request) -> Response {
    http::StatusCode::NOT_IMPLEMENTED.into_response()
}
