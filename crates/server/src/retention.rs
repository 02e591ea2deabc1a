//! Retention: a background task deletes fragments older than their stream's retention
//! (`DataRetentionInHours`; docs/architecture.md#deletes-and-retention). Rows go first, then the segments no row references,
//! so a crash in between leaves only unreferenced files, never rows without bytes.

use std::time::Duration;

use store::Timestamp;

use crate::AppState;

/// With retention 0 KVS keeps fragments only in a short buffer (docs/choices.md#retention-0).
pub const ZERO_RETENTION_BUFFER: Duration = Duration::from_secs(300);
/// How often the task runs.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
pub use store::ORPHAN_AGE;

/// The oldest server timestamp a stream with `retention_hours` keeps at `now`.
pub fn cutoff(now: Timestamp, retention_hours: u32) -> Timestamp {
    let keep_ms = if retention_hours == 0 {
        ZERO_RETENTION_BUFFER.as_millis() as i64
    } else {
        i64::from(retention_hours) * 3_600_000
    };
    Timestamp(now.0.saturating_sub(keep_ms))
}

/// One pass over all streams. Returns how many streams had segments freed.
pub async fn run_once(state: &AppState) -> Result<usize, store::StoreError> {
    let now = state.clock.timestamp();
    let mut freed = 0;
    let listed = std::time::Instant::now();
    let streams = state.catalog.all_streams().await?;
    // Streams deleted on another node (or by a race with a request in flight) lose their series.
    let ids: std::collections::HashMap<&str, store::StreamId> =
        streams.iter().map(|s| (s.name.as_str(), s.id)).collect();
    state
        .metrics
        .retain_streams(listed, |name, id| ids.get(name) == Some(&id));
    for stream in streams {
        // The media store's protocol (store::MediaStore): begin, ask the catalog, then delete,
        // on every pass even when the catalog reports nothing, so deletions the media store had
        // to defer (a segment an uncommitted append was writing to) are retried.
        state.media.begin_delete(stream.id).await;
        let segments = state
            .catalog
            .delete_fragments_before(stream.id, cutoff(now, stream.data_retention_hours))
            .await?;
        state.media.delete_segments(stream.id, &segments).await?;
        if !segments.is_empty() {
            freed += 1;
        }
    }
    let orphans = state.media.collect_orphans(ORPHAN_AGE).await?;
    if orphans > 0 {
        tracing::info!(orphans, "deleted media a crash left without a catalog row");
    }
    Ok(freed)
}

/// Runs [`run_once`] every `interval` until shutdown.
pub fn spawn(state: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                _ = ticker.tick() => {
                    if let Err(e) = run_once(&state).await {
                        tracing::error!(error = %e, "retention pass failed");
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs() {
        let now = Timestamp(10 * 3_600_000);
        assert_eq!(cutoff(now, 1), Timestamp(9 * 3_600_000));
        assert_eq!(cutoff(now, 0), Timestamp(10 * 3_600_000 - 300_000));
        assert_eq!(cutoff(Timestamp(0), 87_600).0, -87_600 * 3_600_000);
    }
}
