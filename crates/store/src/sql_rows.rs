//! What the SQL catalogs (`sqlite.rs`, `postgres.rs`) decide the same way, whatever the engine:
//! applying a [`StreamUpdate`], the version check, and what the next fragment row of a stream holds
//! (number check, sequence and continuity from the stored [`StreamEdge`], the JSON columns). One
//! copy, so the backends cannot drift.

use crate::{
    Continuity, FragmentNumber, NewFragment, StoreError, StreamEdge, StreamId, StreamRecord,
    StreamUpdate,
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
