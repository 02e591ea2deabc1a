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
//!   keeps retention's "is this segment still referenced" a lookup. The two timestamp indexes
//!   cover every column of [`FragmentSummary`] (`INCLUDE`), so a window of summaries
//!   ([`Catalog::query_fragment_summaries`], what playlists and ListFragments read) is an
//!   index-only scan: a stream's fragments are scattered over the heap (streams record
//!   together), adjacent in the index (docs/architecture.md#catalog-at-scale). Fragment numbers and stream
//!   names are `COLLATE "C"` text, so their order is byte order (numeric order for the
//!   zero-padded numbers) whatever the database's locale.
//! - **Scale-out** (docs/architecture.md#writer-lease): writer leases live on the stream row and
//!   use the server's clock (`clock_timestamp()`), so nodes' clocks never decide who writes;
//!   `insert_fragments` checks a fragment's lease epoch under the same row lock. Media epochs are
//!   a sequence, the session key a one-row table.
//! - **Change feed:** every write that changes what a cache holds runs `pg_notify` on
//!   [`CHANGE_CHANNEL`] inside its transaction (delivered at commit, to every node); each
//!   `PgCatalog` keeps one extra connection that `LISTEN`s and forwards to [`Catalog::changes`],
//!   reconnecting with backoff and reporting [`CatalogChange::Unknown`] for what it may have missed.

use crate::sample_table;
use crate::sql_rows::{
    announce, apply_update, batch_streams, check_version, check_writer_epoch, epoch_column,
    media_epoch, next_row, segment_column, session_key, tags_json, to_json, unsigned_column,
};
use crate::task::AbortOnDrop;
use crate::{
    BackendError, Catalog, CatalogChange, CodecConfig, CodecConfigId, Continuity, FragmentNumber,
    FragmentQuery, FragmentRecord, FragmentSummary, FragmentTrack, LeaseRenewal, MediaLocation,
    NewFragment, NewStream, StoreError, StreamId, StreamRecord, StreamStatus, StreamUpdate,
    Timestamp, TimestampKind, WriterLease, CHANGE_FEED_CAPACITY,
};
use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime,
};
use futures::StreamExt;
use media::TrackNumber;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{AsyncMessage, NoTls, Row, Socket};

/// Schema migrations, in order; `schema_version` holds how many are applied. Never edit one that
/// shipped: add the next.
const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    r#"
-- docs/architecture.md#writer-lease: the last epoch granted (0: never; only increases), its
-- holder, and when it expires by this server's clock (NULL: none, or released).
ALTER TABLE stream
    ADD COLUMN writer_epoch BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN writer_holder TEXT,
    ADD COLUMN writer_expires TIMESTAMPTZ;
-- docs/architecture.md#pending-media-and-orphan-collection: no reference to stream, so entries of
-- a deleted stream are still collected.
CREATE TABLE pending_media (
    stream_id BIGINT NOT NULL,
    segment BIGINT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (stream_id, segment)
);
CREATE INDEX pending_media_by_age ON pending_media (recorded_at, stream_id, segment);
-- Never hands out a number twice, rolled back or not; fails rather than wrap.
CREATE SEQUENCE media_epoch AS BIGINT MINVALUE 1 MAXVALUE 2147483647 NO CYCLE;
CREATE TABLE session_key (
    id SMALLINT PRIMARY KEY CHECK (id = 1),   -- one row: the first key stored wins
    key BYTEA NOT NULL
);
"#,
    r#"
-- docs/architecture.md#catalog-at-scale: what playlists and ListFragments pages read of a window
-- of fragments, answered by an index-only scan. `summary` holds the tracks' summaries
-- (sample_table::encode_summaries); NULL in rows written before this migration, which the
-- listing queries then complete from `tracks`. The covering indexes replace the plain ones on
-- the same keys (retention's range delete uses fragment_window_by_server).
-- IF NOT EXISTS: on a large catalog an operator may add the column and build the indexes
-- beforehand (CREATE INDEX CONCURRENTLY, same names and definitions) instead of blocking writes
-- for the build here.
ALTER TABLE fragment ADD COLUMN IF NOT EXISTS summary BYTEA;
CREATE INDEX IF NOT EXISTS fragment_window_by_server ON fragment (stream_id, server_ms, number)
    INCLUDE (producer_ms, duration_ms, size_bytes, sequence, continuity_flags, continuity_counts, summary);
CREATE INDEX IF NOT EXISTS fragment_window_by_producer ON fragment (stream_id, producer_ms, number)
    INCLUDE (server_ms, duration_ms, size_bytes, sequence, continuity_flags, continuity_counts, summary);
DROP INDEX IF EXISTS fragment_by_server;
DROP INDEX IF EXISTS fragment_by_producer;
-- An index-only scan skips the heap only for pages the visibility map marks all-visible, which
-- VACUUM does. The table is insert-mostly: vacuum it every 10,000 inserted rows rather than
-- PostgreSQL's default of 20 % of the table (2M rows at 10M), and after 1 % deleted by retention.
ALTER TABLE fragment SET (
    autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_scale_factor = 0.01
);
"#,
    r#"
-- docs/wire.md#getmedia: the Cluster Timecode as the producer sent it (ms), which GetMedia writes
-- back; NULL in rows written before (GetMedia then writes the producer timestamp). A nullable
-- column without a default: adding it rewrites nothing.
ALTER TABLE fragment ADD COLUMN IF NOT EXISTS cluster_timecode_ms BIGINT;
"#,
];

/// The `LISTEN`/`NOTIFY` channel of the change feed; payloads are `fragments:<stream id>` and
/// `stream:<stream id>`.
pub const CHANGE_CHANNEL: &str = "openkvs_changes";
/// The listener's reconnect backoff: from the first to the second, doubling.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

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
    changes: broadcast::Sender<CatalogChange>,
    /// Forwards notifications into `changes`; ends with the catalog (no task left retrying
    /// against a server nobody uses).
    _listener: AbortOnDrop,
}

type ListenConnection = tokio_postgres::Connection<Socket, NoTlsStream>;

/// A new connection that listens on [`CHANGE_CHANNEL`]; the client must be kept for as long as
/// the connection is used (dropping it closes the connection).
async fn listen(
    config: &tokio_postgres::Config,
) -> Result<(tokio_postgres::Client, ListenConnection), BackendError> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let sql = format!("LISTEN {CHANGE_CHANNEL}");
    {
        let listening = client.batch_execute(&sql);
        tokio::pin!(listening);
        // The connection must be polled for the LISTEN to go out and its answer to come back.
        loop {
            tokio::select! {
                done = &mut listening => {
                    done?;
                    break;
                }
                message = futures::future::poll_fn(|cx| connection.poll_message(cx)) => match message {
                    Some(Ok(_)) => {} // a notice; no notification can come before LISTEN
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err("connection closed during LISTEN".into()),
                },
            }
        }
    }
    Ok((client, connection))
}

/// A notification's payload as a change; anything unexpected counts as "everything changed".
fn parse_change(payload: &str) -> CatalogChange {
    let parsed = payload.split_once(':').and_then(|(kind, id)| {
        let id = StreamId(id.parse().ok()?);
        match kind {
            "fragments" => Some(CatalogChange::Fragments(id)),
            "stream" => Some(CatalogChange::Stream(id)),
            _ => None,
        }
    });
    parsed.unwrap_or(CatalogChange::Unknown)
}

fn change_payload(change: CatalogChange) -> String {
    match change {
        CatalogChange::Fragments(id) => format!("fragments:{}", id.0),
        CatalogChange::Stream(id) => format!("stream:{}", id.0),
        CatalogChange::Unknown => "unknown".into(),
    }
}

/// Queues `change` for every node's listener; delivered when (if) `tx` commits.
async fn notify(tx: &impl GenericClient, change: CatalogChange) -> Result<(), Failure> {
    let stmt = tx.prepare_cached("SELECT pg_notify($1, $2)").await?;
    tx.execute(&stmt, &[&CHANGE_CHANNEL, &change_payload(change)])
        .await?;
    Ok(())
}

/// Forwards the notifications of `connection` into `feed`; when the connection ends, listens
/// again (backoff [`RECONNECT_MIN`] doubling to [`RECONNECT_MAX`]) and reports
/// [`CatalogChange::Unknown`], since notifications sent meanwhile are lost.
async fn forward_changes(
    config: tokio_postgres::Config,
    feed: broadcast::Sender<CatalogChange>,
    mut client: tokio_postgres::Client,
    mut connection: ListenConnection,
) {
    let mut backoff = RECONNECT_MIN;
    loop {
        let since = Instant::now();
        {
            let mut messages = futures::stream::poll_fn(|cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => announce(&feed, parse_change(n.payload())),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "catalog change feed connection failed");
                        break;
                    }
                }
            }
        }
        drop(client);
        // A connection that lasted starts the backoff over; one that keeps dropping at once does not.
        if since.elapsed() >= RECONNECT_MAX {
            backoff = RECONNECT_MIN;
        }
        loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RECONNECT_MAX);
            match listen(&config).await {
                Ok((c, k)) => {
                    (client, connection) = (c, k);
                    tracing::info!("catalog change feed listening again");
                    announce(&feed, CatalogChange::Unknown);
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "catalog change feed: cannot listen yet"),
            }
        }
    }
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
            config.clone(),
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
        let changes = broadcast::channel(CHANGE_FEED_CAPACITY).0;
        // Listening before connect returns: every change committed after it is reported.
        let (client, connection) = listen(&config)
            .await
            .map_err(|e| StoreError::unavailable(format!("{WHAT}: change feed"), e))?;
        let task = tokio::spawn(forward_changes(config, changes.clone(), client, connection));
        let catalog = PgCatalog {
            pool,
            changes,
            _listener: AbortOnDrop(task),
        };
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
     tracks, tags, sequence, continuity_flags, continuity_counts, cluster_timecode_ms";

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
        cluster_timecode_ms: get(row, 14)?,
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

/// What [`Catalog::query_fragment_summaries`] reads: only columns of the covering indexes.
const SUMMARY_COLUMNS: &str =
    "stream_id, number, producer_ms, server_ms, duration_ms, size_bytes, sequence, continuity_flags, \
     continuity_counts, summary";

/// A [`SUMMARY_COLUMNS`] row; `tracks` is empty when its `summary` is NULL (a row written before
/// the column existed), for [`summaries_from_rows`] to fill.
fn summary_from_row(row: &Row) -> Result<FragmentSummary, StoreError> {
    let number: String = get(row, 1)?;
    let flags: i16 = get(row, 7)?;
    let counts: String = get(row, 8)?;
    let summary: Option<&[u8]> = get(row, 9)?;
    Ok(FragmentSummary {
        stream: StreamId(get(row, 0)?),
        number: FragmentNumber::parse(&number)
            .ok_or_else(|| StoreError::Corrupt(format!("fragment number {number:?}")))?,
        producer_timestamp: Timestamp(get(row, 2)?),
        server_timestamp: Timestamp(get(row, 3)?),
        duration_ms: get_u64(row, 4)?,
        size_bytes: get_u64(row, 5)?,
        sequence: get_u64(row, 6)?,
        continuity: Continuity {
            flags: u8::try_from(flags)
                .map_err(|_| StoreError::Corrupt(format!("continuity flags {flags}")))?,
            counts: serde_json::from_str(&counts)
                .map_err(|e| StoreError::Corrupt(format!("continuity counts: {e}")))?,
        },
        tracks: match summary {
            Some(bytes) => sample_table::decode_summaries(bytes)?,
            None => Vec::new(),
        },
    })
}

/// Summaries of `rows` (of `stream`), the tracks of rows without a `summary` computed from their
/// sample tables (one more query, only while such rows are left).
async fn summaries_from_rows(
    client: &impl GenericClient,
    stream: StreamId,
    rows: &[Row],
) -> Result<Vec<FragmentSummary>, Failure> {
    let mut out = rows
        .iter()
        .map(summary_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let missing: Vec<String> = rows
        .iter()
        .zip(&out)
        .filter(|(row, _)| matches!(row.try_get::<_, Option<&[u8]>>(9), Ok(None)))
        .map(|(_, f)| f.number.to_string())
        .collect();
    if missing.is_empty() {
        return Ok(out);
    }
    let stmt = client
        .prepare_cached(
            "SELECT number, tracks FROM fragment WHERE stream_id = $1 AND number = ANY($2)",
        )
        .await?;
    let found = client.query(&stmt, &[&stream.0, &missing]).await?;
    let mut tracks = std::collections::HashMap::with_capacity(found.len());
    for r in &found {
        let number: String = get(r, 0)?;
        let table: Vec<u8> = get(r, 1)?;
        let summaries = sample_table::decode(&table)?
            .iter()
            .map(FragmentTrack::summary)
            .collect::<Vec<_>>();
        tracks.insert(number, summaries);
    }
    for f in &mut out {
        if f.tracks.is_empty() {
            // Deleted since the first query: it keeps no tracks, as a fragment that has none.
            if let Some(t) = tracks.remove(&f.number.to_string()) {
                f.tracks = t;
            }
        }
    }
    Ok(out)
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
        notify(&tx, CatalogChange::Stream(id)).await?;
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
        notify(&tx, CatalogChange::Stream(id)).await?;
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
                "SELECT last_fragment_number, ingest_state, writer_epoch FROM stream WHERE id = $1 FOR UPDATE",
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
                 byte_offset, len, tracks, tags, sequence, continuity_flags, continuity_counts, summary, \
                 cluster_timecode_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .await?;
        // docs/architecture.md#pending-media-and-orphan-collection: the row and the end of its
        // object's pending entry are one commit.
        let clear_pending = tx
            .prepare_cached("DELETE FROM pending_media WHERE stream_id = $1 AND segment = $2")
            .await?;
        let mut numbers = Vec::with_capacity(fragments.len());
        for f in &fragments {
            let row = tx
                .query_opt(&state_stmt, &[&f.stream.0])
                .await?
                .ok_or(StoreError::StreamNotFound(f.stream))?;
            let last: Option<String> = get(&row, 0)?;
            let state: Option<String> = get(&row, 1)?;
            // Under the row lock that every lease change also takes: a takeover either committed
            // before (refused here) or waits for this commit.
            check_writer_epoch(f, get(&row, 2)?)?;
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
                    &sample_table::encode_summaries(&f.tracks),
                    &f.cluster_timecode_ms,
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
            tx.execute(
                &clear_pending,
                &[&f.stream.0, &segment_column(f.media.segment)?],
            )
            .await?;
            numbers.push(f.number);
        }
        for stream in batch_streams(&fragments) {
            notify(&tx, CatalogChange::Fragments(stream)).await?;
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

    /// `columns` of the fragments in `q`'s range, by an index range scan of
    /// `(stream_id, column, number)` from the keyset, read in the index's order (ORDER BY its
    /// key exactly: never a sort, whatever the LIMIT).
    async fn range_rows(
        client: &impl GenericClient,
        q: &FragmentQuery,
        columns: &str,
    ) -> Result<Vec<Row>, Failure> {
        let column = match q.kind {
            TimestampKind::Producer => "producer_ms",
            TimestampKind::Server => "server_ms",
        };
        // One row comparison starts the scan (`sql_rows::range_start` says why).
        let (from_ts, from_number, inclusive) = crate::sql_rows::range_start(q);
        let op = if inclusive { ">=" } else { ">" };
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {columns} FROM fragment WHERE stream_id = $1 AND ({column}, number) {op} ($2, $3) \
                 AND {column} <= $4 ORDER BY stream_id, {column}, number LIMIT $5"
            ))
            .await?;
        let params: [&(dyn ToSql + Sync); 5] = [
            &q.stream.0,
            &from_ts,
            &from_number,
            &q.end.0,
            &to_i64(q.limit as u64),
        ];
        Ok(client.query(&stmt, &params).await?)
    }

    /// `columns` of the stream's newest `limit` fragments by number, newest first.
    async fn newest_rows(
        client: &impl GenericClient,
        stream: StreamId,
        limit: usize,
        columns: &str,
    ) -> Result<Vec<Row>, Failure> {
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {columns} FROM fragment WHERE stream_id = $1 ORDER BY number DESC LIMIT $2"
            ))
            .await?;
        Ok(client
            .query(&stmt, &[&stream.0, &to_i64(limit as u64)])
            .await?)
    }

    async fn query_fragments_inner(
        &self,
        q: FragmentQuery,
    ) -> Result<Vec<FragmentRecord>, Failure> {
        let client = self.pool.get().await?;
        let rows = Self::range_rows(&client, &q, FRAGMENT_COLUMNS).await?;
        Ok(fragments_from_rows(&rows)?)
    }

    /// Only columns of the covering indexes `fragment_window_by_*`: an index-only scan.
    async fn query_fragment_summaries_inner(
        &self,
        q: FragmentQuery,
    ) -> Result<Vec<FragmentSummary>, Failure> {
        let client = self.pool.get().await?;
        let rows = Self::range_rows(&client, &q, SUMMARY_COLUMNS).await?;
        summaries_from_rows(&client, q.stream, &rows).await
    }

    async fn latest_fragment_summaries_inner(
        &self,
        stream: StreamId,
        limit: usize,
    ) -> Result<Vec<FragmentSummary>, Failure> {
        let client = self.pool.get().await?;
        let rows = Self::newest_rows(&client, stream, limit, SUMMARY_COLUMNS).await?;
        let mut out = summaries_from_rows(&client, stream, &rows).await?;
        out.reverse();
        Ok(out)
    }

    async fn latest_fragments_inner(
        &self,
        stream: StreamId,
        limit: usize,
    ) -> Result<Vec<FragmentRecord>, Failure> {
        let client = self.pool.get().await?;
        let rows = Self::newest_rows(&client, stream, limit, FRAGMENT_COLUMNS).await?;
        let mut out = fragments_from_rows(&rows)?;
        out.reverse();
        Ok(out)
    }

    async fn fragments_after_inner(
        &self,
        stream: StreamId,
        after: Option<FragmentNumber>,
        limit: usize,
    ) -> Result<Vec<FragmentRecord>, Failure> {
        let client = self.pool.get().await?;
        // Zero-padded text: text order is numeric order, and "" is below every number.
        let after = after.map(|n| n.to_string()).unwrap_or_default();
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {FRAGMENT_COLUMNS} FROM fragment WHERE stream_id = $1 AND number > $2 \
                 ORDER BY number LIMIT $3"
            ))
            .await?;
        let rows = client
            .query(&stmt, &[&stream.0, &after, &to_i64(limit as u64)])
            .await?;
        Ok(fragments_from_rows(&rows)?)
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
        if !rows.is_empty() {
            notify(&tx, CatalogChange::Stream(stream)).await?;
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

impl PgCatalog {
    async fn has_writer_inner(&self, stream: StreamId) -> Result<bool, Failure> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT writer_expires IS NOT NULL AND writer_expires > clock_timestamp() \
                 FROM stream WHERE id = $1",
            )
            .await?;
        let row = client.query_opt(&stmt, &[&stream.0]).await?;
        Ok(match row {
            Some(row) => get(&row, 0)?,
            None => false,
        })
    }

    async fn acquire_writer_lease_inner(
        &self,
        stream: StreamId,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<WriterLease>, Failure> {
        let client = self.pool.get().await?;
        // One statement: concurrent acquirers queue on the row lock, and the later one re-checks
        // the expiry against the earlier one's grant (READ COMMITTED re-evaluates the WHERE).
        let stmt = client
            .prepare_cached(
                "UPDATE stream SET writer_epoch = writer_epoch + 1, writer_holder = $2, \
                 writer_expires = clock_timestamp() + make_interval(secs => $3) \
                 WHERE id = $1 AND (writer_expires IS NULL OR writer_expires <= clock_timestamp()) \
                 RETURNING writer_epoch",
            )
            .await?;
        let granted = client
            .query_opt(&stmt, &[&stream.0, &holder, &ttl.as_secs_f64()])
            .await?;
        match granted {
            Some(row) => Ok(Some(WriterLease {
                stream,
                epoch: unsigned_column(get(&row, 0)?, "writer_epoch")?,
            })),
            None => {
                let exists = client
                    .query_opt("SELECT 1 FROM stream WHERE id = $1", &[&stream.0])
                    .await?;
                match exists {
                    Some(_) => Ok(None),
                    None => Err(StoreError::StreamNotFound(stream).into()),
                }
            }
        }
    }

    /// All of a node's renewals in one statement over arrays of (stream, epoch), without the WAL
    /// flush (see [`Self::lease_update`]). Rows are locked in id order and rows another
    /// transaction holds are skipped (`SKIP LOCKED`): the group commit holds the stream rows of
    /// its batch `FOR UPDATE`, and a statement that waited for them while holding the others
    /// deadlocked with it (docs/architecture.md#writer-lease). What was skipped is then read
    /// without a lock: still this epoch → [`LeaseRenewal::Busy`], else lost.
    async fn renew_writer_leases_inner(
        &self,
        leases: &[WriterLease],
        ttl: Duration,
    ) -> Result<Vec<LeaseRenewal>, Failure> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = leases.iter().map(|l| l.stream.0).collect();
        let epochs: Vec<i64> = leases.iter().map(|l| epoch_column(l.epoch)).collect();
        let mut client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "WITH lease(id, epoch) AS (SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[])), \
                      current AS (SELECT stream.id FROM stream JOIN lease \
                                    ON stream.id = lease.id AND stream.writer_epoch = lease.epoch \
                                  ORDER BY stream.id FOR UPDATE OF stream SKIP LOCKED) \
                 UPDATE stream SET writer_expires = clock_timestamp() + make_interval(secs => $3) \
                   FROM current WHERE stream.id = current.id \
              RETURNING stream.id, stream.writer_epoch",
            )
            .await?;
        let tx = client.transaction().await?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await?;
        let rows = tx
            .query(&stmt, &[&ids, &epochs, &ttl.as_secs_f64()])
            .await?;
        tx.commit().await?;
        let mut renewed = std::collections::HashSet::with_capacity(rows.len());
        for row in &rows {
            renewed.insert((get::<i64>(row, 0)?, get::<i64>(row, 1)?));
        }
        let mut current = std::collections::HashSet::new();
        if renewed.len() < leases.len() {
            let rows = client
                .query(
                    "SELECT id, writer_epoch FROM stream WHERE id = ANY($1)",
                    &[&ids],
                )
                .await?;
            for row in &rows {
                current.insert((get::<i64>(row, 0)?, get::<i64>(row, 1)?));
            }
        }
        Ok(ids
            .iter()
            .zip(&epochs)
            .map(|(id, epoch)| {
                let lease = (*id, *epoch);
                if renewed.contains(&lease) {
                    LeaseRenewal::Renewed
                } else if current.contains(&lease) {
                    LeaseRenewal::Busy
                } else {
                    LeaseRenewal::Lost
                }
            })
            .collect())
    }

    /// Runs `sql` (parameters: stream id, epoch, then `extra`) and returns the rows it changed.
    async fn lease_update(
        &self,
        sql: &str,
        lease: WriterLease,
        extra: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Failure> {
        let mut client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql).await?;
        let epoch = epoch_column(lease.epoch);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&lease.stream.0, &epoch];
        params.extend_from_slice(extra);
        // Renewals and releases only move an expiry: one lost in a crash of PostgreSQL makes the
        // lease lapse sooner, which fencing makes safe (the epoch, granted durably, never goes
        // back). So they skip the WAL flush every other commit waits for; every running PutMedia
        // renews more often than it commits fragments.
        let tx = client.transaction().await?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await?;
        let changed = tx.execute(&stmt, &params).await?;
        tx.commit().await?;
        Ok(changed)
    }

    async fn allocate_media_epoch_inner(&self) -> Result<u64, Failure> {
        let client = self.pool.get().await?;
        let row = client
            .query_one("SELECT nextval('media_epoch')", &[])
            .await?;
        Ok(media_epoch(get(&row, 0)?)?)
    }

    /// Runs `sql` on a pending entry (parameters: stream id, segment).
    async fn pending_update(
        &self,
        sql: &str,
        stream: StreamId,
        segment: u64,
    ) -> Result<(), Failure> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql).await?;
        client
            .execute(&stmt, &[&stream.0, &segment_column(segment)?])
            .await?;
        Ok(())
    }

    async fn stale_pending_media_inner(
        &self,
        older_than: Duration,
        limit: usize,
    ) -> Result<Vec<(StreamId, u64)>, Failure> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT stream_id, segment FROM pending_media \
                 WHERE recorded_at < clock_timestamp() - make_interval(secs => $1) \
                 ORDER BY recorded_at, stream_id, segment LIMIT $2",
            )
            .await?;
        let rows = client
            .query(&stmt, &[&older_than.as_secs_f64(), &to_i64(limit as u64)])
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push((StreamId(get(r, 0)?), get_u64(r, 1)?));
        }
        Ok(out)
    }

    async fn session_key_or_init_inner(&self, candidate: [u8; 32]) -> Result<[u8; 32], Failure> {
        let client = self.pool.get().await?;
        // Nodes racing at start: the second INSERT waits for the first to commit, then does
        // nothing, and its SELECT (a new snapshot) sees the first one's key.
        client
            .execute(
                "INSERT INTO session_key (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                &[&&candidate[..]],
            )
            .await?;
        let row = client
            .query_one("SELECT key FROM session_key WHERE id = 1", &[])
            .await?;
        let stored: Vec<u8> = get(&row, 0)?;
        Ok(session_key(&stored)?)
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

    async fn fragments_after(
        &self,
        stream: StreamId,
        after: Option<FragmentNumber>,
        limit: usize,
    ) -> Result<Vec<FragmentRecord>, StoreError> {
        Ok(self.fragments_after_inner(stream, after, limit).await?)
    }

    async fn query_fragment_summaries(
        &self,
        query: FragmentQuery,
    ) -> Result<Vec<FragmentSummary>, StoreError> {
        Ok(self.query_fragment_summaries_inner(query).await?)
    }

    async fn latest_fragment_summaries(
        &self,
        stream: StreamId,
        limit: usize,
    ) -> Result<Vec<FragmentSummary>, StoreError> {
        Ok(self.latest_fragment_summaries_inner(stream, limit).await?)
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

    async fn acquire_writer_lease(
        &self,
        stream: StreamId,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<WriterLease>, StoreError> {
        Ok(self.acquire_writer_lease_inner(stream, holder, ttl).await?)
    }

    async fn renew_writer_leases(
        &self,
        leases: &[WriterLease],
        ttl: Duration,
    ) -> Result<Vec<LeaseRenewal>, StoreError> {
        Ok(self.renew_writer_leases_inner(leases, ttl).await?)
    }

    async fn has_writer(&self, stream: StreamId) -> Result<bool, StoreError> {
        Ok(self.has_writer_inner(stream).await?)
    }

    async fn release_writer_lease(&self, lease: WriterLease) -> Result<(), StoreError> {
        let sql = "UPDATE stream SET writer_expires = NULL WHERE id = $1 AND writer_epoch = $2";
        self.lease_update(sql, lease, &[]).await?;
        Ok(())
    }

    async fn allocate_media_epoch(&self) -> Result<u64, StoreError> {
        Ok(self.allocate_media_epoch_inner().await?)
    }

    async fn record_pending_media(&self, stream: StreamId, segment: u64) -> Result<(), StoreError> {
        // Recorded again (a retried write of the same object): it is young again.
        let sql = "INSERT INTO pending_media (stream_id, segment, recorded_at) \
                   VALUES ($1, $2, clock_timestamp()) \
                   ON CONFLICT (stream_id, segment) DO UPDATE SET recorded_at = excluded.recorded_at";
        Ok(self.pending_update(sql, stream, segment).await?)
    }

    async fn clear_pending_media(&self, stream: StreamId, segment: u64) -> Result<(), StoreError> {
        let sql = "DELETE FROM pending_media WHERE stream_id = $1 AND segment = $2";
        Ok(self.pending_update(sql, stream, segment).await?)
    }

    async fn stale_pending_media(
        &self,
        older_than: Duration,
        limit: usize,
    ) -> Result<Vec<(StreamId, u64)>, StoreError> {
        Ok(self.stale_pending_media_inner(older_than, limit).await?)
    }

    async fn session_key_or_init(&self, candidate: [u8; 32]) -> Result<[u8; 32], StoreError> {
        Ok(self.session_key_or_init_inner(candidate).await?)
    }

    fn changes(&self) -> broadcast::Receiver<CatalogChange> {
        self.changes.subscribe()
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
