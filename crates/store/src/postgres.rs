//! The catalog on PostgreSQL 15 (issue #9, item 2): the same semantics as the embedded SQLite
//! catalog (`sqlite.rs`), for several stateless nodes sharing one catalog.
//!
//! - **Pool:** `deadpool-postgres` over `tokio-postgres`: async all the way (no blocking pool), a
//!   small crate that only hands out connections, recycles them and caches prepared statements per
//!   connection. Its wait and create timeouts turn a catalog that is gone into an
//!   [`StoreError::Unavailable`] instead of a hung request.
//! - **Durability:** with PostgreSQL's default `synchronous_commit = on` a transaction is durable
//!   (WAL flushed) when `COMMIT` returns, as with SQLite's `synchronous=FULL`; a server configured
//!   otherwise gives that up.
//! - **Ordering across nodes:** every write that reads a stream's state first locks the stream
//!   row (`SELECT … FOR UPDATE`), so fragment numbers, the ingest edge ([`crate::StreamEdge`]),
//!   versions and codec-config reuse are decided by one transaction at a time per stream,
//!   whichever node runs it. What the row holds is decided in `sql_rows.rs`, shared with SQLite.
//! - **Schema:** migrations in [`MIGRATIONS`], applied at [`PgCatalog::connect`] under an
//!   advisory lock (nodes starting together apply each once), recorded in `schema_version`.
//! - **Queries:** keyset pagination only; the indexes `(stream_id, number)`,
//!   `(stream_id, producer_ms, number)` and `(stream_id, server_ms, number)` keep the live edge
//!   and time ranges one index range scan whatever the stream's size; `(stream_id, segment)`
//!   keeps retention's "is this segment still referenced" a lookup. Fragment numbers and stream
//!   names are `COLLATE "C"` text, so their order is byte order (numeric order for the
//!   zero-padded numbers) whatever the database's locale.

use crate::sample_table;
use crate::sql_rows::{apply_update, check_version, next_row, tags_json, to_json};
use crate::{
    Catalog, CodecConfig, CodecConfigId, Continuity, FragmentNumber, FragmentQuery, FragmentRecord,
    MediaLocation, NewFragment, NewStream, StoreError, StreamId, StreamRecord, StreamStatus,
    StreamUpdate, Timestamp, TimestampKind,
};
use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime,
};
use media::TrackNumber;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{NoTls, Row};

/// Schema migrations, in order; `schema_version` holds how many are applied. Never edit one that
/// shipped: add the next.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE stream (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- a recreated stream never reuses an id
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    arn TEXT NOT NULL UNIQUE,
    device_name TEXT,
    media_type TEXT,
    kms_key_id TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    creation_time_ms BIGINT NOT NULL,
    retention_hours BIGINT NOT NULL,
    storage_tier TEXT NOT NULL,
    tags TEXT NOT NULL,                          -- JSON object
    last_fragment_number TEXT COLLATE "C",       -- zero-padded; text order is numeric order
    ingest_state TEXT                            -- JSON StreamEdge: what the next fragment is compared with
);
CREATE TABLE codec_config (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id BIGINT NOT NULL REFERENCES stream(id) ON DELETE CASCADE,
    track BIGINT NOT NULL,
    track_type SMALLINT NOT NULL,
    codec_id TEXT NOT NULL,
    codec_private BYTEA NOT NULL,
    track_name TEXT,
    pixel_width BIGINT,
    pixel_height BIGINT,
    sampling_frequency DOUBLE PRECISION,
    channels BIGINT
);
CREATE INDEX codec_config_by_track ON codec_config (stream_id, track, id);
CREATE TABLE fragment (
    stream_id BIGINT NOT NULL REFERENCES stream(id) ON DELETE CASCADE,
    number TEXT COLLATE "C" NOT NULL,
    producer_ms BIGINT NOT NULL,
    server_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    size_bytes BIGINT NOT NULL,
    segment BIGINT NOT NULL,
    byte_offset BIGINT NOT NULL,
    len BIGINT NOT NULL,
    tracks BYTEA NOT NULL,                       -- sample_table encoding
    tags TEXT,                                   -- JSON array of [name, value], NULL when none
    sequence BIGINT NOT NULL,
    continuity_flags SMALLINT NOT NULL,
    continuity_counts TEXT NOT NULL,             -- JSON [u64; 4]
    PRIMARY KEY (stream_id, number)
);
CREATE INDEX fragment_by_producer ON fragment (stream_id, producer_ms, number);
CREATE INDEX fragment_by_server ON fragment (stream_id, server_ms, number);
-- Retention asks, per candidate segment, whether any row still references it.
CREATE INDEX fragment_by_segment ON fragment (stream_id, segment);
"#];

/// Any constant: the key of the advisory lock that serialises migrations between nodes.
const MIGRATION_LOCK: i64 = 0x6f70_656e_6b76_7301;

const POOL_SIZE: usize = 16;
const POOL_TIMEOUT: Duration = Duration::from_secs(10);

const WHAT: &str = "catalog (PostgreSQL)";

/// This backend's failures (`sql_rows::Failure`).
type Failure = crate::sql_rows::Failure<tokio_postgres::Error>;

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Engine(e)
    }
}

impl From<PoolError> for Failure {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => Failure::Engine(e),
            // Timed out waiting for or creating a connection, a closed pool, a failed hook:
            // the catalog cannot be reached now.
            other => Failure::Store(StoreError::unavailable(WHAT, other)),
        }
    }
}

impl crate::sql_rows::EngineError for tokio_postgres::Error {
    fn classify(self) -> StoreError {
        classify(self)
    }
}

/// `e`, unless the server refused it with a SQLSTATE that `meaning` knows the meaning of at this
/// call site (e.g. `UNIQUE_VIOLATION` → AlreadyExists).
fn constraint_means(
    e: tokio_postgres::Error,
    meaning: impl FnOnce(&SqlState) -> Option<StoreError>,
) -> Failure {
    if let Some(known) = e.code().and_then(meaning) {
        return Failure::Store(known);
    }
    Failure::Engine(e)
}

/// A driver error's kind, for errors no call site decided.
fn classify(e: tokio_postgres::Error) -> StoreError {
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection closed, an I/O error, a timeout. Decoding errors never get
        // here (`get` maps them to Corrupt), so what is left is the server being unreachable.
        return StoreError::unavailable(WHAT, e);
    };
    match code.code().get(..2).unwrap_or("") {
        // Integrity constraint violation that no call site expected: the stored state refuses the
        // write (a concurrent writer won).
        "23" => StoreError::Conflict {
            what: WHAT.into(),
            source: e.into(),
        },
        // Connection exception, transaction rollback (serialization failure, deadlock),
        // insufficient resources (disk full, too many connections), operator intervention
        // (shutdown, cannot connect now), system error (I/O), lock not available.
        "08" | "40" | "53" | "57" | "58" | "55" => StoreError::unavailable(WHAT, e),
        // Anything else (syntax, undefined table, data exceptions, …) fails the same way again:
        // a schema that is not this code's, or data it does not expect.
        _ => StoreError::Corrupt(format!("{WHAT}: {e}")),
    }
}

/// Column `i` of `row`; a value that does not decode as this schema writes it is corrupt.
fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("{WHAT}: column {i}: {e}")))
}

/// An unsigned column stored as BIGINT (non-negative by construction).
fn get_u64(row: &Row, i: usize) -> Result<u64, StoreError> {
    let v: i64 = get(row, i)?;
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{WHAT}: column {i}: {v} < 0")))
}

fn opt_u32(row: &Row, i: usize) -> Result<Option<u32>, StoreError> {
    let v: Option<i64> = get(row, i)?;
    v.map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{WHAT}: column {i}: {v}"))))
        .transpose()
}

fn to_i64(v: u64) -> i64 {
    // Values stored here (sizes, offsets, durations, segment numbers) are far below 2^63.
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// PostgreSQL implementation of [`Catalog`].
pub struct PgCatalog {
    pool: Pool,
}

impl PgCatalog {
    /// Connects to `url` (`postgresql://USER@HOST/DB?host=SOCKET_DIR&port=PORT`, or the
    /// `key=value` form) and applies pending schema migrations. Unreachable or refused →
    /// [`StoreError::Unavailable`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::unavailable(format!("{WHAT}: bad connection string"), e))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::unavailable(WHAT, e))?;
        let catalog = PgCatalog { pool };
        catalog.migrate().await?;
        Ok(catalog)
    }

    /// The schema version after migrating (the number of applied [`MIGRATIONS`]).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        let row = client
            .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
            .await
            .map_err(Failure::from)?;
        get(&row, 0)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        Ok(self.migrate_inner().await?)
    }

    async fn migrate_inner(&self) -> Result<(), Failure> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
        let row = tx
            .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
            .await?;
        let current: i64 = get(&row, 0)?;
        if current > MIGRATIONS.len() as i64 {
            return Err(StoreError::Corrupt(format!(
                "{WHAT}: schema version {current} is newer than this openkvs ({})",
                MIGRATIONS.len()
            ))
            .into());
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let version = i as i64 + 1;
            tracing::info!(version, "applying catalog migration");
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&version],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The segments of the stream's oldest and newest fragment rows (by number), `None` without
    /// rows (see `SqliteCatalog::referenced_segment_range`).
    pub async fn referenced_segment_range(
        &self,
        stream: StreamId,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        let mut ends = Vec::with_capacity(2);
        for order in ["ASC", "DESC"] {
            let sql = format!(
                "SELECT segment FROM fragment WHERE stream_id = $1 ORDER BY number {order} LIMIT 1"
            );
            let row = client
                .query_opt(&sql, &[&stream.0])
                .await
                .map_err(Failure::from)?;
            ends.push(row.map(|r| get_u64(&r, 0)).transpose()?);
        }
        Ok(match (ends[0], ends[1]) {
            (Some(first), Some(last)) => Some((first, last)),
            _ => None,
        })
    }
}

const STREAM_COLUMNS: &str =
    "id, name, arn, device_name, media_type, kms_key_id, version, status, creation_time_ms, \
     retention_hours, storage_tier, tags";

fn stream_from_row(row: &Row) -> Result<StreamRecord, StoreError> {
    let status: String = get(row, 7)?;
    let tags: String = get(row, 11)?;
    let retention: i64 = get(row, 9)?;
    Ok(StreamRecord {
        id: StreamId(get(row, 0)?),
        name: get(row, 1)?,
        arn: get(row, 2)?,
        device_name: get(row, 3)?,
        media_type: get(row, 4)?,
        kms_key_id: get(row, 5)?,
        version: get(row, 6)?,
        status: StreamStatus::parse(&status).unwrap_or(StreamStatus::Active),
        creation_time: Timestamp(get(row, 8)?),
        data_retention_hours: u32::try_from(retention)
            .map_err(|_| StoreError::Corrupt(format!("{WHAT}: retention {retention}")))?,
        storage_tier: get(row, 10)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
    })
}

async fn stream_where(
    c: &impl GenericClient,
    clause: &str,
    value: &(dyn ToSql + Sync),
) -> Result<Option<StreamRecord>, Failure> {
    let sql = format!("SELECT {STREAM_COLUMNS} FROM stream WHERE {clause}");
    let stmt = c.prepare_cached(&sql).await?;
    match c.query_opt(&stmt, &[value]).await? {
        Some(row) => Ok(Some(stream_from_row(&row)?)),
        None => Ok(None),
    }
}

const FRAGMENT_COLUMNS: &str =
    "stream_id, number, producer_ms, server_ms, duration_ms, size_bytes, segment, byte_offset, len, \
     tracks, tags, sequence, continuity_flags, continuity_counts";

fn fragment_from_row(row: &Row) -> Result<FragmentRecord, StoreError> {
    let number: String = get(row, 1)?;
    let tracks: Vec<u8> = get(row, 9)?;
    let tags: Option<String> = get(row, 10)?;
    let flags: i16 = get(row, 12)?;
    let counts: String = get(row, 13)?;
    Ok(FragmentRecord {
        stream: StreamId(get(row, 0)?),
        number: FragmentNumber::parse(&number)
            .ok_or_else(|| StoreError::Corrupt(format!("fragment number {number:?}")))?,
        producer_timestamp: Timestamp(get(row, 2)?),
        server_timestamp: Timestamp(get(row, 3)?),
        duration_ms: get_u64(row, 4)?,
        size_bytes: get_u64(row, 5)?,
        media: MediaLocation {
            segment: get_u64(row, 6)?,
            offset: get_u64(row, 7)?,
            len: get_u64(row, 8)?,
        },
        tracks: sample_table::decode(&tracks)?,
        tags: match tags {
            Some(t) => serde_json::from_str(&t)
                .map_err(|e| StoreError::Corrupt(format!("fragment tags: {e}")))?,
            None => Vec::new(),
        },
        sequence: get_u64(row, 11)?,
        continuity: Continuity {
            flags: u8::try_from(flags)
                .map_err(|_| StoreError::Corrupt(format!("continuity flags {flags}")))?,
            counts: serde_json::from_str(&counts)
                .map_err(|e| StoreError::Corrupt(format!("continuity counts: {e}")))?,
        },
    })
}

fn fragments_from_rows(rows: &[Row]) -> Result<Vec<FragmentRecord>, StoreError> {
    rows.iter().map(fragment_from_row).collect()
}

/// Reads codec-config columns starting at `first` (track_type, codec_id, codec_private, ...).
fn config_from_row(r: &Row, track: TrackNumber, first: usize) -> Result<CodecConfig, StoreError> {
    let track_type: i16 = get(r, first)?;
    let cpd: Vec<u8> = get(r, first + 2)?;
    Ok(CodecConfig {
        track,
        track_type: u8::try_from(track_type)
            .map_err(|_| StoreError::Corrupt(format!("track type {track_type}")))?,
        codec_id: get(r, first + 1)?,
        codec_private: Bytes::from(cpd),
        track_name: get(r, first + 3)?,
        pixel_width: opt_u32(r, first + 4)?,
        pixel_height: opt_u32(r, first + 5)?,
        sampling_frequency: get(r, first + 6)?,
        channels: opt_u32(r, first + 7)?,
    })
}

/// Locks the stream row for this transaction and returns its version, or StreamNotFound.
async fn lock_stream(tx: &impl GenericClient, id: StreamId) -> Result<StreamRecord, Failure> {
    stream_where(tx, "id = $1 FOR UPDATE", &id.0)
        .await?
        .ok_or(Failure::Store(StoreError::StreamNotFound(id)))
}

impl PgCatalog {
    async fn create_stream_inner(&self, s: NewStream) -> Result<StreamRecord, Failure> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "INSERT INTO stream (name, arn, device_name, media_type, kms_key_id, version, status, creation_time_ms, \
                 retention_hours, storage_tier, tags) VALUES ($1, $2, $3, $4, $5, $6, 'ACTIVE', $7, $8, $9, $10) \
                 RETURNING {STREAM_COLUMNS}"
            ))
            .await?;
        let row = client
            .query_one(
                &stmt,
                &[
                    &s.name,
                    &s.arn,
                    &s.device_name,
                    &s.media_type,
                    &s.kms_key_id,
                    &s.version,
                    &s.creation_time.0,
                    &i64::from(s.data_retention_hours),
                    &s.storage_tier,
                    &tags_json(&s.tags),
                ],
            )
            .await
            .map_err(|e| {
                // The name (and the ARN, made from it) is unique: one INSERT decides, whichever
                // node asked first.
                constraint_means(e, |c| {
                    (*c == SqlState::UNIQUE_VIOLATION)
                        .then(|| StoreError::AlreadyExists(s.name.clone()))
                })
            })?;
        Ok(stream_from_row(&row)?)
    }

    async fn stream_where_inner(
        &self,
        clause: &str,
        value: &(dyn ToSql + Sync),
    ) -> Result<Option<StreamRecord>, Failure> {
        let client = self.pool.get().await?;
        let sql = format!("SELECT {STREAM_COLUMNS} FROM stream WHERE {clause}");
        let stmt = client.prepare_cached(&sql).await?;
        match client.query_opt(&stmt, &[value]).await? {
            Some(row) => Ok(Some(stream_from_row(&row)?)),
            None => Ok(None),
        }
    }

    async fn list_streams_inner(
        &self,
        prefix: String,
        after: String,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, Failure> {
        let client = self.pool.get().await?;
        // starts_with, not LIKE: stream names may contain '_' and '.', which LIKE treats specially.
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {STREAM_COLUMNS} FROM stream WHERE starts_with(name, $1) AND name > $2 \
                 ORDER BY name LIMIT $3"
            ))
            .await?;
        let rows = client
            .query(&stmt, &[&prefix, &after, &to_i64(limit as u64)])
            .await?;
        Ok(rows.iter().map(stream_from_row).collect::<Result<_, _>>()?)
    }

    async fn update_stream_inner(
        &self,
        id: StreamId,
        expected: Option<String>,
        u: StreamUpdate,
    ) -> Result<StreamRecord, Failure> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut s = lock_stream(&tx, id).await?;
        check_version(id, expected, &s.version)?;
        apply_update(&mut s, u);
        tx.execute(
            "UPDATE stream SET device_name = $2, media_type = $3, retention_hours = $4, storage_tier = $5, \
             tags = $6, version = $7 WHERE id = $1",
            &[
                &id.0,
                &s.device_name,
                &s.media_type,
                &i64::from(s.data_retention_hours),
                &s.storage_tier,
                &tags_json(&s.tags),
                &s.version,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(s)
    }

    async fn delete_stream_inner(
        &self,
        id: StreamId,
        expected: Option<String>,
    ) -> Result<(), Failure> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let s = lock_stream(&tx, id).await?;
        check_version(id, expected, &s.version)?;
        tx.execute("DELETE FROM fragment WHERE stream_id = $1", &[&id.0])
            .await?;
        tx.execute("DELETE FROM codec_config WHERE stream_id = $1", &[&id.0])
            .await?;
        tx.execute("DELETE FROM stream WHERE id = $1", &[&id.0])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn codec_config_for_inner(
        &self,
        stream: StreamId,
        config: &CodecConfig,
    ) -> Result<CodecConfigId, Failure> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // The stream row lock makes "reuse the latest or insert" one decision per stream across
        // nodes; a stream deleted meanwhile is not found.
        lock_stream(&tx, stream).await?;
        let track = to_i64(config.track.0);
        let latest = tx
            .query_opt(
                "SELECT id, track_type, codec_id, codec_private, track_name, pixel_width, pixel_height, \
                 sampling_frequency, channels FROM codec_config WHERE stream_id = $1 AND track = $2 \
                 ORDER BY id DESC LIMIT 1",
                &[&stream.0, &track],
            )
            .await?;
        if let Some(row) = latest {
            let existing = config_from_row(&row, config.track, 1)?;
            if existing == *config {
                return Ok(CodecConfigId(get(&row, 0)?));
            }
        }
        let row = tx
            .query_one(
                "INSERT INTO codec_config (stream_id, track, track_type, codec_id, codec_private, track_name, \
                 pixel_width, pixel_height, sampling_frequency, channels) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                &[
                    &stream.0,
                    &track,
                    &i16::from(config.track_type),
                    &config.codec_id,
                    &&config.codec_private[..],
                    &config.track_name,
                    &config.pixel_width.map(i64::from),
                    &config.pixel_height.map(i64::from),
                    &config.sampling_frequency,
                    &config.channels.map(i64::from),
                ],
            )
            .await
            .map_err(|e| {
                constraint_means(e, |c| {
                    (*c == SqlState::FOREIGN_KEY_VIOLATION)
                        .then_some(StoreError::StreamNotFound(stream))
                })
            })?;
        let id = CodecConfigId(get(&row, 0)?);
        tx.commit().await?;
        Ok(id)
    }

    async fn codec_configs_inner(
        &self,
        stream: StreamId,
    ) -> Result<Vec<(CodecConfigId, CodecConfig)>, Failure> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, track, track_type, codec_id, codec_private, track_name, pixel_width, pixel_height, \
                 sampling_frequency, channels FROM codec_config WHERE stream_id = $1 ORDER BY id",
            )
            .await?;
        let rows = client.query(&stmt, &[&stream.0]).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let track = TrackNumber(get_u64(r, 1)?);
            out.push((CodecConfigId(get(r, 0)?), config_from_row(r, track, 2)?));
        }
        Ok(out)
    }

    async fn codec_config_inner(&self, id: CodecConfigId) -> Result<Option<CodecConfig>, Failure> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT track, track_type, codec_id, codec_private, track_name, pixel_width, pixel_height, \
                 sampling_frequency, channels FROM codec_config WHERE id = $1",
            )
            .await?;
        match client.query_opt(&stmt, &[&id.0]).await? {
            Some(r) => {
                let track = TrackNumber(get_u64(&r, 0)?);
                Ok(Some(config_from_row(&r, track, 1)?))
            }
            None => Ok(None),
        }
    }

    async fn insert_fragments_inner(
        &self,
        fragments: Vec<NewFragment>,
    ) -> Result<Vec<FragmentNumber>, Failure> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let state_stmt = tx
            .prepare_cached(
                "SELECT last_fragment_number, ingest_state FROM stream WHERE id = $1 FOR UPDATE",
            )
            .await?;
        let set_state = tx
            .prepare_cached(
                "UPDATE stream SET last_fragment_number = $2, ingest_state = $3 WHERE id = $1",
            )
            .await?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO fragment (stream_id, number, producer_ms, server_ms, duration_ms, size_bytes, segment, \
                 byte_offset, len, tracks, tags, sequence, continuity_flags, continuity_counts) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .await?;
        let mut numbers = Vec::with_capacity(fragments.len());
        for f in &fragments {
            let row = tx
                .query_opt(&state_stmt, &[&f.stream.0])
                .await?
                .ok_or(StoreError::StreamNotFound(f.stream))?;
            let last: Option<String> = get(&row, 0)?;
            let state: Option<String> = get(&row, 1)?;
            let next = next_row(last.as_deref(), state.as_deref(), f)?;
            tx.execute(
                &insert,
                &[
                    &f.stream.0,
                    &next.number,
                    &f.producer_timestamp.0,
                    &f.server_timestamp.0,
                    &to_i64(f.duration_ms),
                    &to_i64(f.media.len),
                    &to_i64(f.media.segment),
                    &to_i64(f.media.offset),
                    &to_i64(f.media.len),
                    &sample_table::encode(&f.tracks),
                    &next.tags,
                    &to_i64(next.sequence),
                    &i16::from(next.continuity.flags),
                    &to_json(&next.continuity.counts),
                ],
            )
            .await
            .map_err(|e| {
                constraint_means(e, |c| {
                    if *c == SqlState::UNIQUE_VIOLATION {
                        Some(StoreError::FragmentNumberNotIncreasing {
                            stream: f.stream,
                            number: f.number,
                        })
                    } else if *c == SqlState::FOREIGN_KEY_VIOLATION {
                        Some(StoreError::StreamNotFound(f.stream))
                    } else {
                        None
                    }
                })
            })?;
            tx.execute(&set_state, &[&f.stream.0, &next.number, &next.edge])
                .await?;
            numbers.push(f.number);
        }
        tx.commit().await?;
        Ok(numbers)
    }

    async fn fragment_inner(
        &self,
        stream: StreamId,
        number: FragmentNumber,
    ) -> Result<Option<FragmentRecord>, Failure> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {FRAGMENT_COLUMNS} FROM fragment WHERE stream_id = $1 AND number = $2"
            ))
            .await?;
        match client
            .query_opt(&stmt, &[&stream.0, &number.to_string()])
            .await?
        {
            Some(row) => Ok(Some(fragment_from_row(&row)?)),
            None => Ok(None),
        }
    }

    async fn query_fragments_inner(
        &self,
        q: FragmentQuery,
    ) -> Result<Vec<FragmentRecord>, Failure> {
        let column = match q.kind {
            TimestampKind::Producer => "producer_ms",
            TimestampKind::Server => "server_ms",
        };
        let (after_ts, after_number) = match q.after {
            Some((ts, n)) => (ts.0, n.to_string()),
            None => (i64::MIN, String::new()),
        };
        let client = self.pool.get().await?;
        // Row comparison: one index range scan on (stream_id, column, number) from the keyset.
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {FRAGMENT_COLUMNS} FROM fragment WHERE stream_id = $1 AND {column} >= $2 AND {column} <= $3 \
                 AND ({column}, number) > ($4, $5) ORDER BY {column}, number LIMIT $6"
            ))
            .await?;
        let rows = client
            .query(
                &stmt,
                &[
                    &q.stream.0,
                    &q.start.0,
                    &q.end.0,
                    &after_ts,
                    &after_number,
                    &to_i64(q.limit as u64),
                ],
            )
            .await?;
        Ok(fragments_from_rows(&rows)?)
    }

    async fn latest_fragments_inner(
        &self,
        stream: StreamId,
        limit: usize,
    ) -> Result<Vec<FragmentRecord>, Failure> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {FRAGMENT_COLUMNS} FROM fragment WHERE stream_id = $1 ORDER BY number DESC LIMIT $2"
            ))
            .await?;
        let rows = client
            .query(&stmt, &[&stream.0, &to_i64(limit as u64)])
            .await?;
        let mut out = fragments_from_rows(&rows)?;
        out.reverse();
        Ok(out)
    }

    async fn delete_fragments_before_inner(
        &self,
        stream: StreamId,
        cutoff: Timestamp,
    ) -> Result<Vec<u64>, Failure> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // The deleted rows' segments, then those of them no remaining row references.
        let rows = tx
            .query(
                "WITH gone AS (DELETE FROM fragment WHERE stream_id = $1 AND server_ms < $2 RETURNING segment) \
                 SELECT DISTINCT segment FROM gone ORDER BY segment",
                &[&stream.0, &cutoff.0],
            )
            .await?;
        let mut unreferenced = Vec::new();
        for r in &rows {
            let seg: i64 = get(r, 0)?;
            let used = tx
                .query_one(
                    "SELECT EXISTS(SELECT 1 FROM fragment WHERE stream_id = $1 AND segment = $2)",
                    &[&stream.0, &seg],
                )
                .await?;
            if !get::<bool>(&used, 0)? {
                unreferenced.push(get_u64(r, 0)?);
            }
        }
        tx.commit().await?;
        Ok(unreferenced)
    }

    async fn last_fragment_number_inner(
        &self,
        stream: StreamId,
    ) -> Result<Option<FragmentNumber>, Failure> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT last_fragment_number FROM stream WHERE id = $1")
            .await?;
        let row = client
            .query_opt(&stmt, &[&stream.0])
            .await?
            .ok_or(StoreError::StreamNotFound(stream))?;
        let last: Option<String> = get(&row, 0)?;
        Ok(last.as_deref().and_then(FragmentNumber::parse))
    }

    async fn all_streams_inner(&self) -> Result<Vec<StreamRecord>, Failure> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!("SELECT {STREAM_COLUMNS} FROM stream ORDER BY id"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(stream_from_row).collect::<Result<_, _>>()?)
    }
}

#[async_trait]
impl Catalog for PgCatalog {
    async fn create_stream(&self, stream: NewStream) -> Result<StreamRecord, StoreError> {
        Ok(self.create_stream_inner(stream).await?)
    }

    async fn stream_by_name(&self, name: &str) -> Result<Option<StreamRecord>, StoreError> {
        Ok(self.stream_where_inner("name = $1", &name).await?)
    }

    async fn stream_by_arn(&self, arn: &str) -> Result<Option<StreamRecord>, StoreError> {
        Ok(self.stream_where_inner("arn = $1", &arn).await?)
    }

    async fn stream_by_id(&self, id: StreamId) -> Result<Option<StreamRecord>, StoreError> {
        Ok(self.stream_where_inner("id = $1", &id.0).await?)
    }

    async fn list_streams(
        &self,
        prefix: Option<&str>,
        after_name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        let prefix = prefix.unwrap_or("").to_owned();
        let after = after_name.unwrap_or("").to_owned();
        Ok(self.list_streams_inner(prefix, after, limit).await?)
    }

    async fn update_stream(
        &self,
        id: StreamId,
        expected_version: Option<&str>,
        update: StreamUpdate,
    ) -> Result<StreamRecord, StoreError> {
        let expected = expected_version.map(str::to_owned);
        Ok(self.update_stream_inner(id, expected, update).await?)
    }

    async fn delete_stream(
        &self,
        id: StreamId,
        expected_version: Option<&str>,
    ) -> Result<(), StoreError> {
        let expected = expected_version.map(str::to_owned);
        Ok(self.delete_stream_inner(id, expected).await?)
    }

    async fn codec_config_for(
        &self,
        stream: StreamId,
        config: &CodecConfig,
    ) -> Result<CodecConfigId, StoreError> {
        Ok(self.codec_config_for_inner(stream, config).await?)
    }

    async fn codec_config(&self, id: CodecConfigId) -> Result<Option<CodecConfig>, StoreError> {
        Ok(self.codec_config_inner(id).await?)
    }

    async fn codec_configs(
        &self,
        stream: StreamId,
    ) -> Result<Vec<(CodecConfigId, CodecConfig)>, StoreError> {
        Ok(self.codec_configs_inner(stream).await?)
    }

    async fn insert_fragments(
        &self,
        fragments: Vec<NewFragment>,
    ) -> Result<Vec<FragmentNumber>, StoreError> {
        Ok(self.insert_fragments_inner(fragments).await?)
    }

    async fn last_fragment_number(
        &self,
        stream: StreamId,
    ) -> Result<Option<FragmentNumber>, StoreError> {
        Ok(self.last_fragment_number_inner(stream).await?)
    }

    async fn fragment(
        &self,
        stream: StreamId,
        number: FragmentNumber,
    ) -> Result<Option<FragmentRecord>, StoreError> {
        Ok(self.fragment_inner(stream, number).await?)
    }

    async fn query_fragments(
        &self,
        query: FragmentQuery,
    ) -> Result<Vec<FragmentRecord>, StoreError> {
        Ok(self.query_fragments_inner(query).await?)
    }

    async fn latest_fragments(
        &self,
        stream: StreamId,
        limit: usize,
    ) -> Result<Vec<FragmentRecord>, StoreError> {
        Ok(self.latest_fragments_inner(stream, limit).await?)
    }

    async fn delete_fragments_before(
        &self,
        stream: StreamId,
        cutoff: Timestamp,
    ) -> Result<Vec<u64>, StoreError> {
        Ok(self.delete_fragments_before_inner(stream, cutoff).await?)
    }

    async fn all_streams(&self) -> Result<Vec<StreamRecord>, StoreError> {
        Ok(self.all_streams_inner().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreErrorKind as K;

    #[tokio::test]
    async fn an_unreachable_catalog_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("host={} port=1 user=nobody dbname=x", dir.path().display());
        let e = PgCatalog::connect(&url)
            .await
            .err()
            .expect("no server there");
        assert_eq!(e.kind(), K::Unavailable, "{e}");
    }

    #[tokio::test]
    async fn a_bad_connection_string_fails_clearly() {
        let e = PgCatalog::connect("postgresql://[").await.err().unwrap();
        assert!(e.to_string().contains("bad connection string"), "{e}");
    }
}
