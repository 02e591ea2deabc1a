//! The embedded catalog: one SQLite file in WAL mode with `synchronous=FULL`, so a committed
//! transaction is durable when `COMMIT` returns (docs/architecture.md#crash-safety; moonfire `server/db/db.rs`).
//!
//! One writer connection serialises writes; a small pool of reader connections serves queries
//! concurrently (WAL readers never block the writer). All calls run on tokio's blocking pool.

use crate::sample_table;
use crate::sql_rows::{
    announce, apply_update, batch_streams, check_version, check_writer_epoch, duration_ms,
    epoch_column, media_epoch, next_row, segment_column, session_key, tags_json, to_json,
    unsigned_column,
};
use crate::{
    Catalog, CatalogChange, CodecConfig, CodecConfigId, Continuity, FragmentNumber, FragmentQuery,
    FragmentRecord, FragmentSummary, FragmentTrack, LeaseRenewal, MediaLocation, NewFragment,
    NewStream, StoreError, StreamId, StreamRecord, StreamStatus, StreamUpdate, Timestamp,
    TimestampKind, WriterLease, CHANGE_FEED_CAPACITY,
};
use async_trait::async_trait;
use bytes::Bytes;
use media::TrackNumber;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS stream (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- AUTOINCREMENT: a recreated stream never reuses an id
    name TEXT NOT NULL UNIQUE,
    arn TEXT NOT NULL UNIQUE,
    device_name TEXT,
    media_type TEXT,
    kms_key_id TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    creation_time_ms INTEGER NOT NULL,
    retention_hours INTEGER NOT NULL,
    storage_tier TEXT NOT NULL,
    tags TEXT NOT NULL,                      -- JSON object
    last_fragment_number TEXT,               -- zero-padded; text order is numeric order
    ingest_state TEXT                        -- JSON IngestState: what the next fragment is compared with
);
CREATE TABLE IF NOT EXISTS codec_config (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id INTEGER NOT NULL REFERENCES stream(id) ON DELETE CASCADE,
    track INTEGER NOT NULL,
    track_type INTEGER NOT NULL,
    codec_id TEXT NOT NULL,
    codec_private BLOB NOT NULL,
    track_name TEXT,
    pixel_width INTEGER,
    pixel_height INTEGER,
    sampling_frequency REAL,
    channels INTEGER
);
CREATE INDEX IF NOT EXISTS codec_config_by_track ON codec_config(stream_id, track, id);
CREATE TABLE IF NOT EXISTS fragment (
    stream_id INTEGER NOT NULL REFERENCES stream(id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    producer_ms INTEGER NOT NULL,
    server_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    segment INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    len INTEGER NOT NULL,
    tracks BLOB NOT NULL,                    -- sample_table encoding
    tags TEXT,                               -- JSON array of [name, value], NULL when none
    sequence INTEGER NOT NULL,
    continuity_flags INTEGER NOT NULL,
    continuity_counts TEXT NOT NULL,         -- JSON [u64; 4]
    PRIMARY KEY (stream_id, number)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS fragment_by_producer ON fragment(stream_id, producer_ms, number);
CREATE INDEX IF NOT EXISTS fragment_by_server ON fragment(stream_id, server_ms, number);
-- docs/architecture.md#pending-media-and-orphan-collection: no reference to stream, so entries of
-- a deleted stream are still collected.
CREATE TABLE IF NOT EXISTS pending_media (
    stream_id INTEGER NOT NULL,
    segment INTEGER NOT NULL,
    recorded_ms INTEGER NOT NULL,            -- system clock, epoch milliseconds
    PRIMARY KEY (stream_id, segment)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pending_media_by_age ON pending_media(recorded_ms, stream_id, segment);
CREATE TABLE IF NOT EXISTS media_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),   -- one row: the last epoch handed out
    last INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS session_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),   -- one row: the first key stored wins
    key BLOB NOT NULL
);
"#;

/// Columns added to `stream` after its first release (docs/architecture.md#writer-lease), added
/// to older catalogs at open (`CREATE TABLE IF NOT EXISTS` does not).
const STREAM_COLUMNS_ADDED: &[(&str, &str)] = &[
    // The last writer lease epoch granted (0: never); only ever increases.
    ("writer_epoch", "INTEGER NOT NULL DEFAULT 0"),
    ("writer_holder", "TEXT"),
    // Epoch milliseconds; NULL: no lease, or released.
    ("writer_expires_ms", "INTEGER"),
];

/// Columns added to `fragment` after its first release, added to older catalogs at open.
const FRAGMENT_COLUMNS_ADDED: &[(&str, &str)] = &[
    // The tracks' summaries (sample_table::encode_summaries), what the listing queries read
    // instead of `tracks`; NULL in rows written before, which they then complete from `tracks`.
    ("summary", "BLOB"),
    // The Cluster Timecode as sent (ms), for GetMedia; NULL in rows written before.
    ("cluster_timecode_ms", "INTEGER"),
];

/// The system clock, epoch milliseconds: the embedded catalog's clock for leases and pending
/// entries (one process, one clock).
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, duration_ms)
}

/// Adds the columns of [`STREAM_COLUMNS_ADDED`] and [`FRAGMENT_COLUMNS_ADDED`] an older catalog
/// lacks.
fn add_columns(conn: &Connection) -> Result<(), Failure> {
    for (table, added) in [
        ("stream", STREAM_COLUMNS_ADDED),
        ("fragment", FRAGMENT_COLUMNS_ADDED),
    ] {
        let existing: Vec<String> = {
            let mut stmt =
                conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for (name, definition) in added {
            if !existing.iter().any(|c| c == name) {
                conn.execute_batch(&format!(
                    "ALTER TABLE {table} ADD COLUMN {name} {definition}"
                ))?;
            }
        }
    }
    Ok(())
}

const READERS: usize = 4;

/// This backend's failures (`sql_rows::Failure`).
type Failure = crate::sql_rows::Failure<rusqlite::Error>;

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Engine(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Store(e.into())
    }
}

impl crate::sql_rows::EngineError for rusqlite::Error {
    fn classify(self) -> StoreError {
        classify(self)
    }
}

/// `e`, unless it is a violated constraint that `meaning` (given SQLite's extended result code,
/// e.g. `SQLITE_CONSTRAINT_UNIQUE`) knows the meaning of at this call site.
fn constraint_means(
    e: rusqlite::Error,
    meaning: impl FnOnce(std::os::raw::c_int) -> Option<StoreError>,
) -> Failure {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == rusqlite::ErrorCode::ConstraintViolation {
            if let Some(known) = meaning(f.extended_code) {
                return Failure::Store(known);
            }
        }
    }
    Failure::Engine(e)
}

/// A SQLite error's kind, for errors no call site decided (docs/architecture.md#data-directory).
fn classify(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    let what = "catalog (SQLite)";
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            // Another connection (another process on the same file) held the lock for longer
            // than the busy timeout: it will let go.
            C::DatabaseBusy | C::DatabaseLocked => StoreError::unavailable(what, e),
            // A uniqueness or reference constraint that no caller-level check caught: the stored
            // state refuses the write (call sites map the ones they expect, e.g. AlreadyExists).
            C::ConstraintViolation => StoreError::Conflict {
                what: what.into(),
                source: e.into(),
            },
            // Resources and I/O that may pass: a full disk, memory, EIO, a file that could not be
            // opened or locked right now, the schema changed under a prepared statement.
            C::SystemIoFailure
            | C::DiskFull
            | C::OutOfMemory
            | C::CannotOpen
            | C::FileLockingProtocolFailed
            | C::SchemaChanged
            | C::OperationInterrupted
            | C::OperationAborted
            | C::ReadOnly
            | C::PermissionDenied => StoreError::unavailable(what, e),
            // The file is damaged or not this schema's, or a statement fails on what is stored
            // (SQLITE_ERROR, MISUSE, MISMATCH, RANGE, …): retrying would fail the same way, so
            // these must not be reported as retryable.
            _ => StoreError::Corrupt(format!("{what}: {e}")),
        },
        // A stored value that does not decode as this schema writes it (wrong type, out of
        // range, not UTF-8), or a statement this code should never have built: not retryable.
        _ => StoreError::Corrupt(format!("{what}: {e}")),
    }
}

/// SQLite implementation of [`Catalog`].
pub struct SqliteCatalog {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
    /// [`Catalog::changes`]: one process writes this file, so its own commits are all there is.
    changes: broadcast::Sender<CatalogChange>,
}

fn open_connection(path: &Path) -> Result<Connection, Failure> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: the WAL is fsynced at every commit, so PERSISTED never precedes durability.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

impl SqliteCatalog {
    /// Opens (creating if needed) the catalog at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self::open_inner(path)?)
    }

    /// The segments of the stream's oldest and newest fragment rows (by number), `None` without
    /// rows. A stream's segment numbers never decrease in commit order (one committer appends and
    /// commits in order; a restart continues past every segment on disk), so every segment a row
    /// references lies in this range. Two primary-key lookups, for the startup sweep.
    pub async fn referenced_segment_range(
        &self,
        stream: StreamId,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        self.read(move |c| {
            let end = |order: &str| {
                c.query_row(
                    &format!(
                        "SELECT segment FROM fragment WHERE stream_id = ?1 ORDER BY number {order} LIMIT 1"
                    ),
                    [stream.0],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
            };
            Ok(match (end("ASC")?, end("DESC")?) {
                (Some(first), Some(last)) => Some((first as u64, last as u64)),
                _ => None,
            })
        })
        .await
    }

    fn open_inner(path: &Path) -> Result<Self, Failure> {
        // Owner-only (`private`): SQLite gives its `-wal` and `-shm` the database file's mode, so
        // a new catalog is made 0600 before SQLite opens it; older files are tightened.
        match crate::private::file_options()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(file) => crate::private::created(&file)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.as_os_str().to_owned();
                    file.push(suffix);
                    match crate::private::tighten(Path::new(&file), crate::private::FILE_MODE) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                        _ => {}
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        let writer = open_connection(path)?;
        writer.execute_batch(SCHEMA)?;
        add_columns(&writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(open_connection(path)?);
        }
        Ok(SqliteCatalog {
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(Mutex::new(readers)),
            path: path.to_owned(),
            changes: broadcast::channel(CHANGE_FEED_CAPACITY).0,
        })
    }

    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Failure> + Send + 'static,
    {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer
                .lock()
                .map_err(|_| StoreError::Task("catalog writer poisoned".into()))?;
            Ok(f(&mut conn)?)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Failure> + Send + 'static,
    {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers
                .lock()
                .map_err(|_| StoreError::Task("catalog readers poisoned".into()))?
                .pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&path)?,
            };
            let result = f(&conn).map_err(StoreError::from);
            if let Ok(mut pool) = readers.lock() {
                if pool.len() < READERS {
                    pool.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

const STREAM_COLUMNS: &str =
    "id, name, arn, device_name, media_type, kms_key_id, version, status, creation_time_ms, \
     retention_hours, storage_tier, tags";

fn stream_from_row(row: &Row<'_>) -> rusqlite::Result<StreamRecord> {
    let status: String = row.get(7)?;
    let tags: String = row.get(11)?;
    Ok(StreamRecord {
        id: StreamId(row.get(0)?),
        name: row.get(1)?,
        arn: row.get(2)?,
        device_name: row.get(3)?,
        media_type: row.get(4)?,
        kms_key_id: row.get(5)?,
        version: row.get(6)?,
        status: StreamStatus::parse(&status).unwrap_or(StreamStatus::Active),
        creation_time: Timestamp(row.get(8)?),
        data_retention_hours: row.get(9)?,
        storage_tier: row.get(10)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
    })
}

fn stream_where(
    conn: &Connection,
    clause: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<Option<StreamRecord>, Failure> {
    let sql = format!("SELECT {STREAM_COLUMNS} FROM stream WHERE {clause}");
    Ok(conn.query_row(&sql, [value], stream_from_row).optional()?)
}

const FRAGMENT_COLUMNS: &str =
    "stream_id, number, producer_ms, server_ms, duration_ms, size_bytes, segment, offset, len, \
     tracks, tags, sequence, continuity_flags, continuity_counts, cluster_timecode_ms";

fn fragment_from_row(row: &Row<'_>) -> Result<FragmentRecord, Failure> {
    let number: String = row.get(1)?;
    let tracks: Vec<u8> = row.get(9)?;
    let tags: Option<String> = row.get(10)?;
    Ok(FragmentRecord {
        stream: StreamId(row.get(0)?),
        number: FragmentNumber::parse(&number)
            .ok_or_else(|| StoreError::Corrupt(format!("fragment number {number:?}")))?,
        producer_timestamp: Timestamp(row.get(2)?),
        server_timestamp: Timestamp(row.get(3)?),
        duration_ms: row.get::<_, i64>(4)? as u64,
        size_bytes: row.get::<_, i64>(5)? as u64,
        cluster_timecode_ms: row.get(14)?,
        media: MediaLocation {
            segment: row.get::<_, i64>(6)? as u64,
            offset: row.get::<_, i64>(7)? as u64,
            len: row.get::<_, i64>(8)? as u64,
        },
        tracks: sample_table::decode(&tracks)?,
        tags: match tags {
            Some(t) => serde_json::from_str(&t)
                .map_err(|e| StoreError::Corrupt(format!("fragment tags: {e}")))?,
            None => Vec::new(),
        },
        sequence: row.get::<_, i64>(11)? as u64,
        continuity: Continuity {
            flags: row.get::<_, i64>(12)? as u8,
            counts: serde_json::from_str(&row.get::<_, String>(13)?)
                .map_err(|e| StoreError::Corrupt(format!("continuity counts: {e}")))?,
        },
    })
}

/// What the listing queries read: the summary, and the sample tables only of a row that has none.
const SUMMARY_COLUMNS: &str =
    "stream_id, number, producer_ms, server_ms, duration_ms, size_bytes, sequence, continuity_flags, \
     continuity_counts, summary, CASE WHEN summary IS NULL THEN tracks END";

fn summary_from_row(row: &Row<'_>) -> Result<FragmentSummary, Failure> {
    let number: String = row.get(1)?;
    let summary: Option<Vec<u8>> = row.get(9)?;
    let tracks = match summary {
        Some(bytes) => sample_table::decode_summaries(&bytes)?,
        None => {
            let table: Vec<u8> = row.get(10)?;
            sample_table::decode(&table)?
                .iter()
                .map(FragmentTrack::summary)
                .collect()
        }
    };
    Ok(FragmentSummary {
        stream: StreamId(row.get(0)?),
        number: FragmentNumber::parse(&number)
            .ok_or_else(|| StoreError::Corrupt(format!("fragment number {number:?}")))?,
        producer_timestamp: Timestamp(row.get(2)?),
        server_timestamp: Timestamp(row.get(3)?),
        duration_ms: row.get::<_, i64>(4)? as u64,
        size_bytes: row.get::<_, i64>(5)? as u64,
        sequence: row.get::<_, i64>(6)? as u64,
        continuity: Continuity {
            flags: row.get::<_, i64>(7)? as u8,
            counts: serde_json::from_str(&row.get::<_, String>(8)?)
                .map_err(|e| StoreError::Corrupt(format!("continuity counts: {e}")))?,
        },
        tracks,
    })
}

fn collect_fragments(
    stmt: &mut rusqlite::Statement<'_>,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<FragmentRecord>, Failure> {
    collect(stmt, params, fragment_from_row)
}

/// Every row of `stmt` with `params`, as `map` reads it.
fn collect<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: &[&dyn rusqlite::ToSql],
    map: fn(&Row<'_>) -> Result<T, Failure>,
) -> Result<Vec<T>, Failure> {
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(map(row)?);
    }
    Ok(out)
}

/// `columns` of the fragments in `q`'s range, by `(timestamp, number)` from the keyset.
fn range_query<T>(
    c: &Connection,
    q: &FragmentQuery,
    columns: &str,
    map: fn(&Row<'_>) -> Result<T, Failure>,
) -> Result<Vec<T>, Failure> {
    let column = match q.kind {
        TimestampKind::Producer => "producer_ms",
        TimestampKind::Server => "server_ms",
    };
    let (after_ts, after_number) = match q.after {
        Some((ts, n)) => (ts.0, n.to_string()),
        None => (i64::MIN, String::new()),
    };
    let sql = format!(
        "SELECT {columns} FROM fragment WHERE stream_id = ?1 AND {column} >= ?2 AND {column} <= ?3 \
         AND ({column} > ?4 OR ({column} = ?4 AND number > ?5)) ORDER BY {column}, number LIMIT ?6"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let params: [&dyn rusqlite::ToSql; 6] = [
        &q.stream.0,
        &q.start.0,
        &q.end.0,
        &after_ts,
        &after_number,
        &(q.limit as i64),
    ];
    collect(&mut stmt, &params, map)
}

/// `columns` of the stream's newest `limit` fragments by number, returned ascending.
fn newest_query<T>(
    c: &Connection,
    stream: StreamId,
    limit: usize,
    columns: &str,
    map: fn(&Row<'_>) -> Result<T, Failure>,
) -> Result<Vec<T>, Failure> {
    let sql = format!(
        "SELECT {columns} FROM fragment WHERE stream_id = ?1 ORDER BY number DESC LIMIT ?2"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let mut out = collect(&mut stmt, &[&stream.0, &(limit as i64)], map)?;
    out.reverse();
    Ok(out)
}

#[async_trait]
impl Catalog for SqliteCatalog {
    async fn create_stream(&self, s: NewStream) -> Result<StreamRecord, StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let exists: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM stream WHERE name = ?1)", [&s.name], |r| r.get(0))?;
            if exists {
                return Err(StoreError::AlreadyExists(s.name).into());
            }
            tx.execute(
                "INSERT INTO stream (name, arn, device_name, media_type, kms_key_id, version, status, creation_time_ms, \
                 retention_hours, storage_tier, tags) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'ACTIVE', ?7, ?8, ?9, ?10)",
                params![
                    s.name,
                    s.arn,
                    s.device_name,
                    s.media_type,
                    s.kms_key_id,
                    s.version,
                    s.creation_time.0,
                    s.data_retention_hours,
                    s.storage_tier,
                    tags_json(&s.tags)
                ],
            )
            .map_err(|e| {
                // The name was checked above; the ARN (made from it) is unique as well.
                constraint_means(e, |c| {
                    (c == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
                        .then(|| StoreError::AlreadyExists(s.name.clone()))
                })
            })?;
            let id = tx.last_insert_rowid();
            let record = stream_where(&tx, "id = ?1", &id)?.ok_or(StoreError::StreamNotFound(StreamId(id)))?;
            tx.commit()?;
            Ok(record)
        })
        .await
    }

    async fn stream_by_name(&self, name: &str) -> Result<Option<StreamRecord>, StoreError> {
        let name = name.to_owned();
        self.read(move |c| stream_where(c, "name = ?1", &name))
            .await
    }

    async fn stream_by_arn(&self, arn: &str) -> Result<Option<StreamRecord>, StoreError> {
        let arn = arn.to_owned();
        self.read(move |c| stream_where(c, "arn = ?1", &arn)).await
    }

    async fn stream_by_id(&self, id: StreamId) -> Result<Option<StreamRecord>, StoreError> {
        self.read(move |c| stream_where(c, "id = ?1", &id.0)).await
    }

    async fn list_streams(
        &self,
        prefix: Option<&str>,
        after_name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        let prefix = prefix.unwrap_or("").to_owned();
        let after = after_name.unwrap_or("").to_owned();
        self.read(move |c| {
            // substr() instead of LIKE: stream names may contain '_' and '.', which LIKE treats specially.
            let sql = format!(
                "SELECT {STREAM_COLUMNS} FROM stream WHERE substr(name, 1, length(?1)) = ?1 AND name > ?2 \
                 ORDER BY name LIMIT ?3"
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(params![prefix, after, limit as i64], stream_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn update_stream(
        &self,
        id: StreamId,
        expected_version: Option<&str>,
        u: StreamUpdate,
    ) -> Result<StreamRecord, StoreError> {
        let expected = expected_version.map(str::to_owned);
        let updated = self.write(move |conn| {
            let tx = conn.transaction()?;
            let mut s = stream_where(&tx, "id = ?1", &id.0)?.ok_or(StoreError::StreamNotFound(id))?;
            check_version(id, expected, &s.version)?;
            apply_update(&mut s, u);
            tx.execute(
                "UPDATE stream SET device_name = ?2, media_type = ?3, retention_hours = ?4, storage_tier = ?5, tags = ?6, \
                 version = ?7 WHERE id = ?1",
                params![id.0, s.device_name, s.media_type, s.data_retention_hours, s.storage_tier, tags_json(&s.tags), s.version],
            )?;
            tx.commit()?;
            Ok(s)
        })
        .await?;
        announce(&self.changes, CatalogChange::Stream(id));
        Ok(updated)
    }

    async fn delete_stream(
        &self,
        id: StreamId,
        expected_version: Option<&str>,
    ) -> Result<(), StoreError> {
        let expected = expected_version.map(str::to_owned);
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let s = stream_where(&tx, "id = ?1", &id.0)?.ok_or(StoreError::StreamNotFound(id))?;
            check_version(id, expected, &s.version)?;
            tx.execute("DELETE FROM fragment WHERE stream_id = ?1", [id.0])?;
            tx.execute("DELETE FROM codec_config WHERE stream_id = ?1", [id.0])?;
            tx.execute("DELETE FROM stream WHERE id = ?1", [id.0])?;
            tx.commit()?;
            Ok(())
        })
        .await?;
        announce(&self.changes, CatalogChange::Stream(id));
        Ok(())
    }

    async fn codec_config_for(
        &self,
        stream: StreamId,
        config: &CodecConfig,
    ) -> Result<CodecConfigId, StoreError> {
        let config = config.clone();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let latest = tx
                .query_row(
                    "SELECT id, track_type, codec_id, codec_private, track_name, pixel_width, pixel_height, \
                     sampling_frequency, channels FROM codec_config WHERE stream_id = ?1 AND track = ?2 \
                     ORDER BY id DESC LIMIT 1",
                    params![stream.0, config.track.0 as i64],
                    |r| Ok((CodecConfigId(r.get(0)?), config_from_row(r, config.track, 1)?)),
                )
                .optional()?;
            if let Some((id, existing)) = latest {
                if existing == config {
                    return Ok(id);
                }
            }
            tx.execute(
                "INSERT INTO codec_config (stream_id, track, track_type, codec_id, codec_private, track_name, pixel_width, \
                 pixel_height, sampling_frequency, channels) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    stream.0,
                    config.track.0 as i64,
                    config.track_type,
                    config.codec_id,
                    &config.codec_private[..],
                    config.track_name,
                    config.pixel_width,
                    config.pixel_height,
                    config.sampling_frequency,
                    config.channels
                ],
            )
            .map_err(|e| {
                // The stream was deleted meanwhile.
                constraint_means(e, |c| {
                    (c == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
                        .then_some(StoreError::StreamNotFound(stream))
                })
            })?;
            let id = CodecConfigId(tx.last_insert_rowid());
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    async fn codec_configs(
        &self,
        stream: StreamId,
    ) -> Result<Vec<(CodecConfigId, CodecConfig)>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, track, track_type, codec_id, codec_private, track_name, pixel_width, pixel_height, \
                 sampling_frequency, channels FROM codec_config WHERE stream_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([stream.0], |r| {
                let track = TrackNumber(r.get::<_, i64>(1)? as u64);
                Ok((CodecConfigId(r.get(0)?), config_from_row(r, track, 2)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn codec_config(&self, id: CodecConfigId) -> Result<Option<CodecConfig>, StoreError> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT track, track_type, codec_id, codec_private, track_name, pixel_width, pixel_height, \
                 sampling_frequency, channels FROM codec_config WHERE id = ?1",
                [id.0],
                |r| {
                    let track = TrackNumber(r.get::<_, i64>(0)? as u64);
                    config_from_row(r, track, 1)
                },
            )
            .optional()?)
        })
        .await
    }

    async fn insert_fragments(
        &self,
        fragments: Vec<NewFragment>,
    ) -> Result<Vec<FragmentNumber>, StoreError> {
        let streams = batch_streams(&fragments);
        let numbers = self.write(move |conn| {
            let tx = conn.transaction()?;
            let mut numbers = Vec::with_capacity(fragments.len());
            {
                let mut state_stmt = tx.prepare_cached(
                    "SELECT last_fragment_number, ingest_state, writer_epoch FROM stream WHERE id = ?1",
                )?;
                // docs/architecture.md#pending-media-and-orphan-collection: the row and the end of
                // its object's pending entry are one commit.
                let mut clear_pending = tx.prepare_cached(
                    "DELETE FROM pending_media WHERE stream_id = ?1 AND segment = ?2",
                )?;
                let mut set_state = tx.prepare_cached(
                    "UPDATE stream SET last_fragment_number = ?2, ingest_state = ?3 WHERE id = ?1",
                )?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO fragment (stream_id, number, producer_ms, server_ms, duration_ms, size_bytes, segment, \
                     offset, len, tracks, tags, sequence, continuity_flags, continuity_counts, summary, \
                     cluster_timecode_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )?;
                for f in &fragments {
                    let row: Option<(Option<String>, Option<String>, i64)> = state_stmt
                        .query_row([f.stream.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()?;
                    let (last, state, epoch) = row.ok_or(StoreError::StreamNotFound(f.stream))?;
                    // The single writer connection serialises this with every lease change.
                    check_writer_epoch(f, epoch)?;
                    let next = next_row(last.as_deref(), state.as_deref(), f)?;
                    insert.execute(params![
                        f.stream.0,
                        next.number,
                        f.producer_timestamp.0,
                        f.server_timestamp.0,
                        f.duration_ms as i64,
                        f.media.len as i64,
                        f.media.segment as i64,
                        f.media.offset as i64,
                        f.media.len as i64,
                        sample_table::encode(&f.tracks),
                        next.tags,
                        next.sequence as i64,
                        i64::from(next.continuity.flags),
                        to_json(&next.continuity.counts),
                        sample_table::encode_summaries(&f.tracks),
                        f.cluster_timecode_ms,
                    ])
                    .map_err(|e| {
                        constraint_means(e, |c| match c {
                            rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                                Some(StoreError::FragmentNumberNotIncreasing { stream: f.stream, number: f.number })
                            }
                            rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Some(StoreError::StreamNotFound(f.stream)),
                            _ => None,
                        })
                    })?;
                    set_state.execute(params![f.stream.0, next.number, next.edge])?;
                    clear_pending.execute(params![f.stream.0, segment_column(f.media.segment)?])?;
                    numbers.push(f.number);
                }
            }
            tx.commit()?;
            Ok(numbers)
        })
        .await?;
        for stream in streams {
            announce(&self.changes, CatalogChange::Fragments(stream));
        }
        Ok(numbers)
    }

    async fn fragment(
        &self,
        stream: StreamId,
        number: FragmentNumber,
    ) -> Result<Option<FragmentRecord>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {FRAGMENT_COLUMNS} FROM fragment WHERE stream_id = ?1 AND number = ?2"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            Ok(
                collect_fragments(&mut stmt, &[&stream.0, &number.to_string()])?
                    .into_iter()
                    .next(),
            )
        })
        .await
    }

    async fn query_fragments(&self, q: FragmentQuery) -> Result<Vec<FragmentRecord>, StoreError> {
        self.read(move |c| range_query(c, &q, FRAGMENT_COLUMNS, fragment_from_row))
            .await
    }

    async fn query_fragment_summaries(
        &self,
        q: FragmentQuery,
    ) -> Result<Vec<FragmentSummary>, StoreError> {
        self.read(move |c| range_query(c, &q, SUMMARY_COLUMNS, summary_from_row))
            .await
    }

    async fn latest_fragment_summaries(
        &self,
        stream: StreamId,
        limit: usize,
    ) -> Result<Vec<FragmentSummary>, StoreError> {
        self.read(move |c| newest_query(c, stream, limit, SUMMARY_COLUMNS, summary_from_row))
            .await
    }

    async fn latest_fragments(
        &self,
        stream: StreamId,
        limit: usize,
    ) -> Result<Vec<FragmentRecord>, StoreError> {
        self.read(move |c| newest_query(c, stream, limit, FRAGMENT_COLUMNS, fragment_from_row))
            .await
    }

    async fn fragments_after(
        &self,
        stream: StreamId,
        after: Option<FragmentNumber>,
        limit: usize,
    ) -> Result<Vec<FragmentRecord>, StoreError> {
        // Zero-padded text: text order is numeric order, and "" is below every number.
        let after = after.map(|n| n.to_string()).unwrap_or_default();
        self.read(move |c| {
            let sql = format!(
                "SELECT {FRAGMENT_COLUMNS} FROM fragment WHERE stream_id = ?1 AND number > ?2 \
                 ORDER BY number LIMIT ?3"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            collect(
                &mut stmt,
                &[&stream.0, &after, &(limit as i64)],
                fragment_from_row,
            )
        })
        .await
    }

    async fn delete_fragments_before(
        &self,
        stream: StreamId,
        cutoff: Timestamp,
    ) -> Result<Vec<u64>, StoreError> {
        let (deleted, unreferenced) = self
            .write(move |conn| {
                let tx = conn.transaction()?;
                let candidates: Vec<i64> = {
                    let mut stmt = tx.prepare(
                    "SELECT DISTINCT segment FROM fragment WHERE stream_id = ?1 AND server_ms < ?2",
                )?;
                    let rows = stmt.query_map(params![stream.0, cutoff.0], |r| r.get(0))?;
                    rows.collect::<Result<_, _>>()?
                };
                let deleted = tx.execute(
                    "DELETE FROM fragment WHERE stream_id = ?1 AND server_ms < ?2",
                    params![stream.0, cutoff.0],
                )?;
                let mut unreferenced = Vec::new();
                for seg in candidates {
                    let used: bool = tx.query_row(
                    "SELECT EXISTS(SELECT 1 FROM fragment WHERE stream_id = ?1 AND segment = ?2)",
                    params![stream.0, seg],
                    |r| r.get(0),
                )?;
                    if !used {
                        unreferenced.push(seg as u64);
                    }
                }
                tx.commit()?;
                Ok((deleted, unreferenced))
            })
            .await?;
        if deleted > 0 {
            announce(&self.changes, CatalogChange::Stream(stream));
        }
        Ok(unreferenced)
    }

    async fn last_fragment_number(
        &self,
        stream: StreamId,
    ) -> Result<Option<FragmentNumber>, StoreError> {
        self.read(move |c| {
            let last: Option<Option<String>> = c
                .query_row(
                    "SELECT last_fragment_number FROM stream WHERE id = ?1",
                    [stream.0],
                    |r| r.get(0),
                )
                .optional()?;
            let last = last.ok_or(StoreError::StreamNotFound(stream))?;
            Ok(last.as_deref().and_then(FragmentNumber::parse))
        })
        .await
    }

    async fn all_streams(&self) -> Result<Vec<StreamRecord>, StoreError> {
        self.read(|c| {
            let sql = format!("SELECT {STREAM_COLUMNS} FROM stream ORDER BY id");
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map([], stream_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn has_writer(&self, stream: StreamId) -> Result<bool, StoreError> {
        self.read(move |c| {
            let held: Option<bool> = c
                .query_row(
                    "SELECT writer_expires_ms IS NOT NULL AND writer_expires_ms > ?2 FROM stream WHERE id = ?1",
                    params![stream.0, now_ms()],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(held.unwrap_or(false))
        })
        .await
    }

    async fn acquire_writer_lease(
        &self,
        stream: StreamId,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<WriterLease>, StoreError> {
        let holder = holder.to_owned();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let now = now_ms();
            let granted: Option<i64> = tx
                .query_row(
                    "UPDATE stream SET writer_epoch = writer_epoch + 1, writer_holder = ?2, \
                     writer_expires_ms = ?3 + ?4 \
                     WHERE id = ?1 AND (writer_expires_ms IS NULL OR writer_expires_ms <= ?3) \
                     RETURNING writer_epoch",
                    params![stream.0, holder, now, duration_ms(ttl)],
                    |r| r.get(0),
                )
                .optional()?;
            let lease = match granted {
                Some(epoch) => Some(WriterLease {
                    stream,
                    epoch: unsigned_column(epoch, "writer_epoch")?,
                }),
                None if stream_where(&tx, "id = ?1", &stream.0)?.is_none() => {
                    return Err(StoreError::StreamNotFound(stream).into())
                }
                None => None,
            };
            tx.commit()?;
            Ok(lease)
        })
        .await
    }

    async fn renew_writer_leases(
        &self,
        leases: &[WriterLease],
        ttl: Duration,
    ) -> Result<Vec<LeaseRenewal>, StoreError> {
        let leases = leases.to_vec();
        self.write(move |conn| {
            // A renewal is worth nothing after a crash (the process that held the lease is gone),
            // so it skips the fsync every other commit pays: with synchronous=NORMAL a WAL commit
            // is only written, and the next FULL commit syncs it along. Each running PutMedia
            // renews more often than it commits fragments, and the serial fsyncs of the group
            // commit are what bounds an embedded node (docs/capacity.md).
            conn.execute_batch("PRAGMA synchronous = NORMAL")?;
            let renewed = (|| {
                let tx = conn.unchecked_transaction()?;
                let expires = now_ms().saturating_add(duration_ms(ttl));
                let mut renewed = Vec::with_capacity(leases.len());
                {
                    let mut update = tx.prepare_cached(
                        "UPDATE stream SET writer_expires_ms = ?3 WHERE id = ?1 AND writer_epoch = ?2",
                    )?;
                    for lease in &leases {
                        let changed = update.execute(params![
                            lease.stream.0,
                            epoch_column(lease.epoch),
                            expires
                        ])?;
                        // One writer connection: no row is ever held by another transaction.
                        renewed.push(if changed == 1 {
                            LeaseRenewal::Renewed
                        } else {
                            LeaseRenewal::Lost
                        });
                    }
                }
                tx.commit()?;
                Ok::<_, rusqlite::Error>(renewed)
            })();
            conn.execute_batch("PRAGMA synchronous = FULL")?;
            Ok(renewed?)
        })
        .await
    }

    async fn release_writer_lease(&self, lease: WriterLease) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE stream SET writer_expires_ms = NULL WHERE id = ?1 AND writer_epoch = ?2",
                params![lease.stream.0, epoch_column(lease.epoch)],
            )?;
            Ok(())
        })
        .await
    }

    async fn allocate_media_epoch(&self) -> Result<u64, StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let last: i64 = tx.query_row(
                "INSERT INTO media_epoch (id, last) VALUES (1, 1) \
                 ON CONFLICT (id) DO UPDATE SET last = last + 1 RETURNING last",
                [],
                |r| r.get(0),
            )?;
            let epoch = media_epoch(last)?;
            tx.commit()?;
            Ok(epoch)
        })
        .await
    }

    async fn record_pending_media(&self, stream: StreamId, segment: u64) -> Result<(), StoreError> {
        let segment = segment_column(segment)?;
        self.write(move |conn| {
            // Recorded again (a retried write of the same object): it is young again.
            conn.execute(
                "INSERT INTO pending_media (stream_id, segment, recorded_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (stream_id, segment) DO UPDATE SET recorded_ms = excluded.recorded_ms",
                params![stream.0, segment, now_ms()],
            )?;
            Ok(())
        })
        .await
    }

    async fn clear_pending_media(&self, stream: StreamId, segment: u64) -> Result<(), StoreError> {
        let segment = segment_column(segment)?;
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM pending_media WHERE stream_id = ?1 AND segment = ?2",
                params![stream.0, segment],
            )?;
            Ok(())
        })
        .await
    }

    async fn stale_pending_media(
        &self,
        older_than: Duration,
        limit: usize,
    ) -> Result<Vec<(StreamId, u64)>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT stream_id, segment FROM pending_media WHERE recorded_ms < ?1 \
                 ORDER BY recorded_ms, stream_id, segment LIMIT ?2",
            )?;
            let cutoff = now_ms().saturating_sub(duration_ms(older_than));
            let rows = stmt.query_map(params![cutoff, limit as i64], |r| {
                Ok((StreamId(r.get(0)?), r.get::<_, i64>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (stream, segment) = row?;
                out.push((stream, unsigned_column(segment, "pending segment")?));
            }
            Ok(out)
        })
        .await
    }

    async fn session_key_or_init(&self, candidate: [u8; 32]) -> Result<[u8; 32], StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO session_key (id, key) VALUES (1, ?1) ON CONFLICT (id) DO NOTHING",
                [&candidate[..]],
            )?;
            let stored: Vec<u8> =
                tx.query_row("SELECT key FROM session_key WHERE id = 1", [], |r| r.get(0))?;
            tx.commit()?;
            Ok(session_key(&stored)?)
        })
        .await
    }

    fn changes(&self) -> broadcast::Receiver<CatalogChange> {
        self.changes.subscribe()
    }
}

/// Reads codec-config columns starting at `first` (track_type, codec_id, codec_private, ...).
fn config_from_row(r: &Row<'_>, track: TrackNumber, first: usize) -> rusqlite::Result<CodecConfig> {
    let cpd: Vec<u8> = r.get(first + 2)?;
    Ok(CodecConfig {
        track,
        track_type: r.get(first)?,
        codec_id: r.get(first + 1)?,
        codec_private: Bytes::from(cpd),
        track_name: r.get(first + 3)?,
        pixel_width: r.get(first + 4)?,
        pixel_height: r.get(first + 5)?,
        sampling_frequency: r.get(first + 6)?,
        channels: r.get(first + 7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreErrorKind as K;
    use rusqlite::ffi;

    fn failure(extended_code: std::os::raw::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(extended_code), None)
    }

    #[test]
    fn sqlite_errors_are_classified() {
        let cases = [
            (failure(ffi::SQLITE_BUSY), K::Unavailable),
            (failure(ffi::SQLITE_LOCKED), K::Unavailable),
            (failure(ffi::SQLITE_IOERR_FSYNC), K::Unavailable),
            (failure(ffi::SQLITE_FULL), K::Unavailable),
            (failure(ffi::SQLITE_CANTOPEN), K::Unavailable),
            (failure(ffi::SQLITE_CONSTRAINT_UNIQUE), K::Conflict),
            (failure(ffi::SQLITE_CONSTRAINT_FOREIGNKEY), K::Conflict),
            (failure(ffi::SQLITE_CORRUPT), K::Corrupt),
            (failure(ffi::SQLITE_NOTADB), K::Corrupt),
            (failure(ffi::SQLITE_ERROR), K::Corrupt),
            (
                rusqlite::Error::InvalidColumnType(0, "x".into(), rusqlite::types::Type::Text),
                K::Corrupt,
            ),
            (rusqlite::Error::IntegralValueOutOfRange(0, -1), K::Corrupt),
        ];
        for (e, kind) in cases {
            let shown = e.to_string();
            let e = StoreError::from(Failure::from(e));
            assert_eq!(e.kind(), kind, "{shown}");
            assert!(e.to_string().contains(&shown), "{e} lost {shown}");
        }
    }

    #[test]
    fn a_constraint_known_at_the_call_site_gets_its_meaning() {
        let name = || Some(StoreError::AlreadyExists("cam".into()));
        let known = constraint_means(failure(ffi::SQLITE_CONSTRAINT_UNIQUE), |c| {
            (c == ffi::SQLITE_CONSTRAINT_UNIQUE).then(name).flatten()
        });
        assert!(matches!(
            StoreError::from(known),
            StoreError::AlreadyExists(n) if n == "cam"
        ));
        // Another constraint, or not a constraint at all: left to `classify`.
        let other = constraint_means(failure(ffi::SQLITE_CONSTRAINT_CHECK), |c| {
            (c == ffi::SQLITE_CONSTRAINT_UNIQUE).then(name).flatten()
        });
        assert_eq!(StoreError::from(other).kind(), K::Conflict);
        let busy = constraint_means(failure(ffi::SQLITE_BUSY), |_| name());
        assert_eq!(StoreError::from(busy).kind(), K::Unavailable);
    }

    /// A codec config for a stream deleted meanwhile is refused by the foreign key: StreamNotFound.
    #[tokio::test]
    async fn a_foreign_key_violation_is_stream_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqliteCatalog::open(&dir.path().join("catalog.sqlite3")).unwrap();
        let config = CodecConfig {
            track: TrackNumber(1),
            track_type: 1,
            codec_id: "V_MPEG4/ISO/AVC".into(),
            codec_private: Bytes::from_static(b"x"),
            track_name: None,
            pixel_width: None,
            pixel_height: None,
            sampling_frequency: None,
            channels: None,
        };
        let e = catalog
            .codec_config_for(StreamId(42), &config)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::StreamNotFound(StreamId(42))), "{e}");
    }
}
