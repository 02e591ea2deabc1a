//! Group commit. Fragments from every stream queue here; the committer takes what is waiting (up to
//! a batch), appends each fragment's bytes to the media store, syncs the media once for the whole
//! batch, then commits all catalog rows in one transaction. Only then does each caller learn its
//! fragment number and may acknowledge PERSISTED (docs/architecture.md#group-commit; invariants in
//! docs/architecture.md#crash-safety).

use crate::{Catalog, FragmentNumber, MediaStore, NewFragment, StoreError, StoreErrorKind};
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// How many fragments one commit may carry.
const MAX_BATCH: usize = 64;
/// Queue depth: callers wait (back-pressure) when this many fragments are waiting to commit.
const QUEUE_DEPTH: usize = 256;

/// A fully received fragment: its media bytes (each track's samples contiguous) and catalog row
/// (whose `media` location the archive fills in).
pub struct PendingFragment {
    pub parts: Vec<Bytes>,
    pub row: NewFragment,
}

struct Job {
    fragment: PendingFragment,
    reply: oneshot::Sender<Result<FragmentNumber, StoreError>>,
}

/// The write path of the archive, shared by all ingest connections.
pub struct Archive {
    queue: mpsc::Sender<Job>,
}

impl Archive {
    /// Starts the committer task on the current tokio runtime.
    pub fn new(catalog: Arc<dyn Catalog>, media: Arc<dyn MediaStore>) -> Arc<Self> {
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run_committer(catalog, media, rx));
        Arc::new(Archive { queue })
    }

    /// Queues a fragment; the returned receiver resolves with its number once bytes and row are
    /// durable. Waits only while the queue is full, so a caller can keep reading its next fragment
    /// while earlier ones commit.
    pub async fn submit(
        &self,
        fragment: PendingFragment,
    ) -> Result<oneshot::Receiver<Result<FragmentNumber, StoreError>>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.queue
            .send(Job { fragment, reply })
            .await
            .map_err(|_| StoreError::Task("archive committer stopped".into()))?;
        Ok(rx)
    }

    /// Submits and waits for durability.
    pub async fn persist(&self, fragment: PendingFragment) -> Result<FragmentNumber, StoreError> {
        self.submit(fragment)
            .await?
            .await
            .map_err(|_| StoreError::Task("archive committer dropped a fragment".into()))?
    }
}

async fn run_committer(
    catalog: Arc<dyn Catalog>,
    media: Arc<dyn MediaStore>,
    mut rx: mpsc::Receiver<Job>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit_batch(&*catalog, &*media, std::mem::take(&mut batch)).await;
    }
}

async fn commit_batch(catalog: &dyn Catalog, media: &dyn MediaStore, batch: Vec<Job>) {
    let mut rows = Vec::with_capacity(batch.len());
    let mut appends = Vec::with_capacity(batch.len());
    for Job { fragment, reply } in batch {
        appends.push((fragment.row.stream, fragment.parts));
        rows.push((fragment.row, reply));
    }
    let mut written = Vec::with_capacity(rows.len());
    for ((mut row, reply), result) in rows.into_iter().zip(media.append_many(appends).await) {
        match result {
            Ok(location) => {
                row.media = location;
                written.push((row, reply));
            }
            Err(e) => {
                tracing::error!(stream = ?row.stream, error = %e, "media append failed");
                let _ = reply.send(Err(e));
            }
        }
    }
    if written.is_empty() {
        return;
    }
    // Bytes first, then rows: a row never points at bytes that might not be on disk.
    if let Err(e) = media.sync().await {
        tracing::error!(error = %e, "media sync failed; failing the batch");
        let msg = e.to_string();
        for (row, reply) in written {
            media.settle(row.stream, row.media, false).await;
            let _ = reply.send(Err(StoreError::Task(format!("media sync failed: {msg}"))));
        }
        return;
    }
    // Every append is settled once its row's fate is known, before the caller hears of it, so
    // retention never deletes a segment a committed row points at (MediaStore's doc).
    let rows: Vec<NewFragment> = written.iter().map(|(r, _)| r.clone()).collect();
    match catalog.insert_fragments(rows).await {
        Ok(numbers) => {
            for ((row, reply), number) in written.into_iter().zip(numbers) {
                media.settle(row.stream, row.media, true).await;
                let _ = reply.send(Ok(number));
            }
        }
        Err(batch_error) => {
            // One bad row (say, its stream was deleted meanwhile) must not fail the others.
            tracing::warn!(error = %batch_error, "batch commit failed; committing fragments one by one");
            for (row, reply) in written {
                let (stream, location) = (row.stream, row.media);
                let result = catalog.insert_fragments(vec![row]).await.and_then(|n| {
                    n.into_iter()
                        .next()
                        .ok_or_else(|| StoreError::Task("no fragment number".into()))
                });
                media.settle(stream, location, !refused(&result)).await;
                let _ = reply.send(result);
            }
        }
    }
}

/// Whether a commit's error says the row was refused, so no row points at its bytes. Any other
/// error (the catalog unreachable mid-commit, say) might hide a commit and counts as one: at
/// worst retention keeps a segment it could have deleted (docs/architecture.md#deletes-and-retention).
fn refused<T>(result: &Result<T, StoreError>) -> bool {
    result.as_ref().err().is_some_and(|e| {
        matches!(
            e.kind(),
            StoreErrorKind::NotFound | StoreErrorKind::AlreadyExists | StoreErrorKind::Conflict
        )
    })
}
