//! Group commit, in two stages. Fragments from every stream queue here. The media stage takes
//! what is waiting (up to a batch), appends each fragment's bytes to the media store and syncs the
//! media once for the whole batch; the catalog stage then commits all the batch's catalog rows in
//! one transaction, settles the appends and answers the callers. Only then does each caller learn
//! its fragment number and may acknowledge PERSISTED (docs/architecture.md#group-commit; invariants
//! in docs/architecture.md#crash-safety).
//!
//! The stages overlap: batch N+1's bytes are appended and synced while batch N's rows commit. At
//! most two batches are in flight, one per stage, and the catalog stage takes them one at a time
//! in the order the media stage took them, so a batch's rows commit (or fail) and its callers are
//! answered only after every earlier batch's: a stream's fragments reach the catalog in the order
//! they were submitted, as they did when one batch finished before the next began.

use crate::{Catalog, FragmentNumber, MediaStore, NewFragment, StoreError, StoreErrorKind};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How many fragments one commit may carry.
const MAX_BATCH: usize = 64;
/// A batch whose media writing began longer ago than this is not committed: its objects' pending
/// entries may be collected as orphans once they are [`crate::ORPHAN_AGE`] old, so no commit may
/// come anywhere near that late (a node paused or a catalog stuck for minutes), or a committed row
/// could point at a collected object (docs/architecture.md#pending-media-and-orphan-collection).
pub const MAX_COMMIT_DELAY: Duration = Duration::from_secs(600);
const _: () = assert!(MAX_COMMIT_DELAY.as_secs() * 2 <= crate::ORPHAN_AGE.as_secs());
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
    reply: Reply,
}

type Reply = oneshot::Sender<Result<FragmentNumber, StoreError>>;

/// The write path of the archive, shared by all ingest connections.
pub struct Archive {
    queue: mpsc::Sender<Job>,
}

impl Archive {
    /// Starts the committer task on the current tokio runtime.
    pub fn new(catalog: Arc<dyn Catalog>, media: Arc<dyn MediaStore>) -> Arc<Self> {
        Self::with_commit_deadline(catalog, media, MAX_COMMIT_DELAY)
    }

    /// [`Archive::new`] refusing to commit a batch whose media writing began more than
    /// `max_delay` ago ([`MAX_COMMIT_DELAY`]; shorter in tests).
    pub fn with_commit_deadline(
        catalog: Arc<dyn Catalog>,
        media: Arc<dyn MediaStore>,
        max_delay: Duration,
    ) -> Arc<Self> {
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run_committer(catalog, media, rx, max_delay));
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
    max_delay: Duration,
) {
    // Depth 1, and the media stage reserves the slot before it takes a batch: while the catalog
    // stage commits batch N, the media stage writes N+1, then waits for the catalog stage to take
    // N+1 before it takes N+2 (fragments arriving meanwhile make N+2 larger).
    let (to_catalog, written) = mpsc::channel(1);
    let catalog_stage = tokio::spawn(run_catalog_stage(
        catalog,
        media.clone(),
        written,
        max_delay,
    ));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(slot) = to_catalog.reserve().await {
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        slot.send(write_media(&*media, std::mem::take(&mut batch)).await);
    }
    drop(to_catalog);
    // Batches already written still commit, in order, before the committer ends.
    let _ = catalog_stage.await;
}

async fn run_catalog_stage(
    catalog: Arc<dyn Catalog>,
    media: Arc<dyn MediaStore>,
    mut written: mpsc::Receiver<Written>,
    max_delay: Duration,
) {
    while let Some(batch) = written.recv().await {
        commit_batch(&*catalog, &*media, batch, max_delay).await;
    }
}

/// A batch after the media stage: what the catalog stage needs to finish it.
struct Written {
    /// Successful appends: each row with its media location filled in, and its caller.
    appended: Vec<(NewFragment, Reply)>,
    /// Failed appends (nothing to settle), answered by the catalog stage so that no caller hears
    /// of this batch before every earlier batch is answered.
    failed: Vec<(Reply, StoreError)>,
    /// The batch's media sync (`Ok` when nothing was appended); an error fails every append.
    synced: Result<(), StoreError>,
    /// Taken before the first append (so before any pending entry of the batch was recorded).
    started: Instant,
}

/// The media stage of one batch: append, then sync.
async fn write_media(media: &dyn MediaStore, batch: Vec<Job>) -> Written {
    let mut rows = Vec::with_capacity(batch.len());
    let mut appends = Vec::with_capacity(batch.len());
    for Job { fragment, reply } in batch {
        appends.push((fragment.row.stream, fragment.parts));
        rows.push((fragment.row, reply));
    }
    let mut written = Written {
        appended: Vec::with_capacity(rows.len()),
        failed: Vec::new(),
        synced: Ok(()),
        started: Instant::now(),
    };
    for ((mut row, reply), result) in rows.into_iter().zip(media.append_many(appends).await) {
        match result {
            Ok(location) => {
                row.media = location;
                written.appended.push((row, reply));
            }
            Err(e) => {
                tracing::error!(stream = ?row.stream, error = %e, "media append failed");
                written.failed.push((reply, e));
            }
        }
    }
    if !written.appended.is_empty() {
        // Bytes first, then rows: a row never points at bytes that might not be on disk.
        written.synced = media.sync().await;
    }
    written
}

/// The catalog stage of one batch: commit the rows, settle the appends, answer the callers.
async fn commit_batch(
    catalog: &dyn Catalog,
    media: &dyn MediaStore,
    batch: Written,
    max_delay: Duration,
) {
    let Written {
        appended,
        failed,
        mut synced,
        started,
    } = batch;
    if synced.is_ok() && started.elapsed() > max_delay {
        synced = Err(StoreError::Task(format!(
            "the batch waited {:?} to commit, longer than {max_delay:?}: its media may already \
             be collected as orphaned",
            started.elapsed()
        )));
    }
    for (reply, e) in failed {
        let _ = reply.send(Err(e));
    }
    if appended.is_empty() {
        return;
    }
    if let Err(e) = synced {
        tracing::error!(error = %e, "media not made durable in time; failing the batch");
        let msg = e.to_string();
        for (row, reply) in appended {
            media.settle(row.stream, row.media, false).await;
            let _ = reply.send(Err(StoreError::Task(format!("media not committed: {msg}"))));
        }
        return;
    }
    // Every append is settled once its row's fate is known, before the caller hears of it, so
    // retention never deletes a segment a committed row points at (MediaStore's doc).
    let rows: Vec<NewFragment> = appended.iter().map(|(r, _)| r.clone()).collect();
    match catalog.insert_fragments(rows).await {
        Ok(numbers) => {
            for ((row, reply), number) in appended.into_iter().zip(numbers) {
                media.settle(row.stream, row.media, true).await;
                let _ = reply.send(Ok(number));
            }
        }
        Err(batch_error) => {
            // One bad row (say, its stream was deleted meanwhile) must not fail the others.
            tracing::warn!(error = %batch_error, "batch commit failed; committing fragments one by one");
            for (row, reply) in appended {
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
