//! What the SQL catalogs (`sqlite.rs`, `postgres.rs`) decide the same way, whatever the engine:
//! applying a [`StreamUpdate`], the version check, and what the next fragment row of a stream holds
//! (number check, sequence and continuity from the stored [`StreamEdge`], the JSON columns). One
//! copy, so the backends cannot drift.

use crate::{
    Continuity, FragmentNumber, FragmentQuery, NewFragment, StoreError, StreamEdge, StreamId,
    StreamRecord, StreamUpdate,
};
use std::collections::BTreeMap;

/// What a SQL catalog's code fails with: a [`StoreError`] it decided itself, or an engine error
/// that the engine's [`EngineError::classify`] turns into one when it leaves the backend's module,
/// so no driver type reaches the public error.
#[derive(Debug)]
pub(crate) enum Failure<E> {
    Store(StoreError),
    Engine(E),
}

/// An engine's error, classified by meaning for the errors no call site decided.
pub(crate) trait EngineError {
    fn classify(self) -> StoreError;
}

impl<E> From<StoreError> for Failure<E> {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl<E: EngineError> From<Failure<E>> for StoreError {
    fn from(f: Failure<E>) -> Self {
        match f {
            Failure::Store(e) => e,
            Failure::Engine(e) => e.classify(),
        }
    }
}

/// Serialises small catalog values (plain numbers and strings; cannot fail).
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A stream's tags column (JSON object).
pub(crate) fn tags_json(tags: &BTreeMap<String, String>) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "{}".into())
}

/// [`StoreError::VersionMismatch`] unless `found` is the `expected` version (when given).
pub(crate) fn check_version(
    stream: StreamId,
    expected: Option<String>,
    found: &str,
) -> Result<(), StoreError> {
    match expected {
        Some(expected) if expected != found => Err(StoreError::VersionMismatch {
            stream,
            expected,
            found: found.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Applies `u` to the stream record `s`, including its new version.
pub(crate) fn apply_update(s: &mut StreamRecord, u: StreamUpdate) {
    if let Some(d) = u.device_name {
        s.device_name = Some(d);
    }
    if let Some(m) = u.media_type {
        s.media_type = Some(m);
    }
    if let Some(r) = u.data_retention_hours {
        s.data_retention_hours = r;
    }
    if let Some(t) = u.storage_tier {
        s.storage_tier = t;
    }
    for (k, v) in u.set_tags {
        s.tags.insert(k, v);
    }
    for k in u.remove_tags {
        s.tags.remove(&k);
    }
    s.version = u.new_version;
}

/// The computed columns of a stream's next fragment row, and the stream's new state.
pub(crate) struct NextRow {
    /// The fragment number as stored (zero-padded text).
    pub number: String,
    pub sequence: u64,
    pub continuity: Continuity,
    /// The fragment's tags column: a JSON array of [name, value], `None` when it has none.
    pub tags: Option<String>,
    /// The stream's new `ingest_state` (JSON [`StreamEdge`]).
    pub edge: String,
}

/// Takes `f` as the next fragment of a stream whose stored `last_fragment_number` and
/// `ingest_state` columns are `last` and `state`: refuses a number not above the last one
/// ([`StoreError::FragmentNumberNotIncreasing`]), else returns what to store.
pub(crate) fn next_row(
    last: Option<&str>,
    state: Option<&str>,
    f: &NewFragment,
) -> Result<NextRow, StoreError> {
    let last = last.and_then(FragmentNumber::parse);
    if last.is_some_and(|l| l >= f.number) {
        return Err(StoreError::FragmentNumberNotIncreasing {
            stream: f.stream,
            number: f.number,
        });
    }
    let mut edge: StreamEdge = match state {
        Some(json) => serde_json::from_str(json)
            .map_err(|e| StoreError::Corrupt(format!("ingest state of {:?}: {e}", f.stream)))?,
        None => StreamEdge::default(),
    };
    let (sequence, continuity) = edge.advance(f);
    let tags = if f.tags.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&f.tags).map_err(|e| StoreError::Corrupt(e.to_string()))?)
    };
    Ok(NextRow {
        number: f.number.to_string(),
        sequence,
        continuity,
        tags,
        edge: to_json(&edge),
    })
}

// ---- scale-out (docs/architecture.md#writer-lease) ----

/// Media epochs stay below this (they fit a signed 32-bit field of an object key).
pub(crate) const MEDIA_EPOCH_LIMIT: u64 = 1 << 31;

/// [`StoreError::WriterLeaseLost`] unless `f` carries no epoch or the stream's `current` one.
pub(crate) fn check_writer_epoch(f: &NewFragment, current: i64) -> Result<(), StoreError> {
    match f.writer_epoch {
        Some(epoch) if i64::try_from(epoch) != Ok(current) => Err(StoreError::WriterLeaseLost {
            stream: f.stream,
            epoch,
        }),
        _ => Ok(()),
    }
}

/// A lease epoch as stored (BIGINT); epochs only count up from 1, far below 2^63.
pub(crate) fn epoch_column(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}

/// A stored unsigned column (an epoch, a segment: non-negative by construction).
pub(crate) fn unsigned_column(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what}: {v} < 0")))
}

/// A segment number as stored (BIGINT): the media stores keep them below 2^63.
pub(crate) fn segment_column(segment: u64) -> Result<i64, StoreError> {
    i64::try_from(segment)
        .map_err(|_| StoreError::Corrupt(format!("segment {segment} does not fit a BIGINT")))
}

/// A duration as whole milliseconds (the SQLite catalog's clock unit), saturating.
pub(crate) fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The stored session key; anything but 32 bytes is not what this code writes.
pub(crate) fn session_key(stored: &[u8]) -> Result<[u8; 32], StoreError> {
    stored
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("session key of {} bytes", stored.len())))
}

/// A media epoch the catalog counted to, if still below [`MEDIA_EPOCH_LIMIT`].
pub(crate) fn media_epoch(v: i64) -> Result<u64, StoreError> {
    match u64::try_from(v) {
        Ok(e) if (1..MEDIA_EPOCH_LIMIT).contains(&e) => Ok(e),
        _ => Err(StoreError::Corrupt(format!(
            "media epoch {v} outside 1..2^31 (epochs exhausted?)"
        ))),
    }
}

/// Sends `change` to the catalog's subscribers, if any (none is fine: nobody is listening).
pub(crate) fn announce(
    feed: &tokio::sync::broadcast::Sender<crate::CatalogChange>,
    change: crate::CatalogChange,
) {
    let _ = feed.send(change);
}

/// The distinct streams of a committed batch, in first-seen order: one Fragments change each.
pub(crate) fn batch_streams(fragments: &[NewFragment]) -> Vec<StreamId> {
    let mut streams: Vec<StreamId> = Vec::new();
    for f in fragments {
        if !streams.contains(&f.stream) {
            streams.push(f.stream);
        }
    }
    streams
}

/// Where a range query's index scan starts: the one `(timestamp, number)` bound, and whether it
/// is inclusive. The PostgreSQL catalog queries its `(stream_id, timestamp, number)` indexes with a
/// single row comparison `(ts, number) >= / > (bound)` instead of `ts >= start AND (ts, number) >
/// (after)`: given both, PostgreSQL positioned its scan by the row comparison alone, so a first
/// page (`after` = the lowest position) read the stream's index from its beginning up to `start`
/// (930–2,780 pages for a page of 101 rows deep in a stream of 100,000 fragments, against 9), and
/// a query's cost grew with the stream's history (docs/architecture.md#catalog-at-scale).
/// Numbers are zero-padded text, so `""` is below every number.
pub(crate) fn range_start(q: &FragmentQuery) -> (i64, String, bool) {
    match q.after {
        // A keyset at or past `start` (every page after the first): strictly after it.
        Some((ts, n)) if ts >= q.start => (ts.0, n.to_string(), false),
        // The first page, or a keyset before `start`: from `start` on, inclusive.
        _ => (q.start.0, String::new(), true),
    }
}
