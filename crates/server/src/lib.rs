//! The HTTP server: AWS wire layer, SigV4 verification, control plane, PutMedia ingest, archived media.
//!
//! Layout: [`wire`] (rest-json basics, request ids, CORS), [`error`] (the one AWS error mapping),
//! [`validate`] (model constraints), [`auth`] (SigV4 middleware), [`ops`] (the route table),
//! [`control`] (kinesisvideo control plane), [`archived`] (kinesis-video-archived-media),
//! `ingest` (PutMedia), [`conn`] (the accept loop: connection caps and timeouts).

pub mod archived;
pub mod auth;
pub mod clip;
pub mod config;
pub mod conn;
pub mod console;
pub mod control;
pub mod dash;
pub mod error;
pub mod get_media;
pub mod hls;
pub mod images;
pub mod ingest;
pub mod metrics;
pub mod ops;
pub mod retention;
pub mod validate;
pub mod wire;

pub use config::{Config, Credentials};
pub use error::ApiError;

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

/// Where time comes from, so tests can pin it (docs/architecture.md#time).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> SystemTime;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

impl dyn Clock {
    /// Now as a store timestamp (epoch ms).
    pub fn timestamp(&self) -> store::Timestamp {
        let d = self
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        store::Timestamp::from_millis(d.as_millis() as i64)
    }
}

/// Shared state of every handler: a handle, cloned per request by axum's extractors and layers,
/// so it is one `Arc` (one atomic increment), not a struct of them.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What every handler shares (reached through [`AppState`]).
#[derive(Clone)]
pub struct Shared {
    pub catalog: Arc<dyn store::Catalog>,
    pub media: Arc<dyn store::MediaStore>,
    pub archive: Arc<store::Archive>,
    pub ingest: Arc<ingest::IngestState>,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    /// Per-session request-rate limits of the HLS resources (`hls::limits`).
    pub hls_limits: Arc<hls::limits::RateLimiter>,
    /// Cancelled when the server starts shutting down: long-lived work (PutMedia, live sessions)
    /// should finish promptly once `shutdown.cancelled()` resolves.
    pub shutdown: CancellationToken,
    /// Counters behind `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// LIVE media playlists' segment lists, shared between requests and sessions.
    pub playlists: Arc<hls::serve::PlaylistCache>,
    /// Session tokens recently opened (players ask for a resource every few seconds).
    pub opened_tokens: Arc<hls::token::OpenedTokens>,
    /// GetMedia responses in flight per stream (`get_media::MAX_READERS_PER_STREAM`).
    pub readers: Arc<get_media::Readers>,
    /// Fragments this node is receiving, for LL-HLS parts (fed only with `--ll-hls`).
    pub live_parts: Arc<hls::ll::LiveParts>,
    /// GetImages' decode slots (`Config::decode_limits`).
    pub decode_slots: Arc<images::DecodeSlots>,
}

impl AppState {
    pub fn new(
        mut config: Config,
        catalog: Arc<dyn store::Catalog>,
        media: Arc<dyn store::MediaStore>,
    ) -> Self {
        if config.session_keys.is_empty() {
            // `build` loads the data dir's key first; this is for states built by hand (tests).
            tracing::warn!(
                "no session key configured: HLS session URLs last until the server stops"
            );
            config.session_keys.push(hls::token::generate_key());
        }
        let hls_limits = Arc::new(hls::limits::RateLimiter::new(config.hls_limits.clone()));
        let archive = store::Archive::new(catalog.clone(), media.clone());
        let decode_slots = Arc::new(images::DecodeSlots::new(&config.decode_limits));
        AppState(Arc::new(Shared {
            catalog,
            media,
            archive,
            ingest: Arc::new(ingest::IngestState::new()),
            config: Arc::new(config),
            clock: Arc::new(SystemClock),
            hls_limits,
            shutdown: CancellationToken::new(),
            metrics: Arc::new(metrics::Metrics::new()),
            playlists: Arc::new(hls::serve::PlaylistCache::default()),
            opened_tokens: Arc::new(hls::token::OpenedTokens::default()),
            readers: Arc::new(get_media::Readers::default()),
            live_parts: Arc::new(hls::ll::LiveParts::default()),
            decode_slots,
        }))
    }

    /// Replaces the clock (tests); before the state is shared.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        Arc::make_mut(&mut self.0).clock = clock;
        self
    }

    /// Replaces the ingest limits (tests); before the state is shared.
    pub fn with_ingest(mut self, ingest: ingest::IngestState) -> Self {
        Arc::make_mut(&mut self.0).ingest = Arc::new(ingest);
        self
    }

    /// Starts shutting down: tells long-lived handlers to wrap up.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("opening the archive in {dir}: {source}")]
    Store {
        dir: String,
        source: store::StoreError,
    },
    #[error("opening the {what}: {source}")]
    Backend {
        what: &'static str,
        source: store::StoreError,
    },
    #[error("{0}")]
    Settings(String),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("session key file {path}: {source}")]
    SessionKey {
        path: String,
        source: std::io::Error,
    },
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// Opens the archive `config` names and builds the state. Without configured session keys, the
/// embedded default uses `<data_dir>/session.key` (created, owner-only, on first start), so session
/// URLs survive restarts; nodes on a shared catalog use the one key stored in it.
pub async fn build(mut config: Config) -> Result<AppState, ServeError> {
    let (catalog, media) = open_archive(&config).await?;
    if config.session_keys.is_empty() {
        let key = match config.catalog {
            // Every node must open every node's session URLs: the key lives in the shared catalog
            // (generated by the first node to start; docs/architecture.md#scale-out).
            config::CatalogBackend::Postgres { .. } => catalog
                .session_key_or_init(hls::token::generate_key())
                .await
                .map_err(|source| ServeError::Backend {
                    what: "session key in the catalog",
                    source,
                })?,
            config::CatalogBackend::Embedded => {
                let path = config.data_dir.join(hls::token::KEY_FILE);
                hls::token::load_or_create_key_file(&path).map_err(|source| {
                    ServeError::SessionKey {
                        path: path.display().to_string(),
                        source,
                    }
                })?
            }
        };
        config.session_keys.push(key);
    }
    // Playback reads the same few rows over and over: serve them from memory.
    let catalog = Arc::new(store::CachingCatalog::new(catalog));
    Ok(AppState::new(config, catalog, media))
}

/// The catalog and media store `config` names (docs/architecture.md#scale-out).
async fn open_archive(
    config: &Config,
) -> Result<(Arc<dyn store::Catalog>, Arc<dyn store::MediaStore>), ServeError> {
    use config::{CatalogBackend, MediaBackend};
    match (&config.catalog, &config.media) {
        (CatalogBackend::Embedded, MediaBackend::Embedded) => {
            let (catalog, media) =
                store::embedded::open(&config.data_dir)
                    .await
                    .map_err(|source| ServeError::Store {
                        dir: config.data_dir.display().to_string(),
                        source,
                    })?;
            Ok((catalog, media))
        }
        // Nodes that share a catalog must share the bytes its rows point at; a lone node on
        // PostgreSQL with local files would also lose the startup sweep that `embedded::open`
        // can only do when it is the one writer of its segment files.
        (CatalogBackend::Postgres { .. }, MediaBackend::Embedded) => Err(ServeError::Settings(
            "--catalog postgresql://… needs --media s3://…: nodes that share a catalog must share \
             the fragment bytes its rows point at"
                .into(),
        )),
        (catalog_backend, MediaBackend::S3(s3)) => {
            let catalog: Arc<dyn store::Catalog> = match catalog_backend {
                CatalogBackend::Postgres { url } => Arc::new(
                    store::postgres::PgCatalog::connect(url)
                        .await
                        .map_err(|source| ServeError::Backend {
                            what: "catalog (PostgreSQL)",
                            source,
                        })?,
                ),
                CatalogBackend::Embedded => {
                    let dir = &config.data_dir;
                    let open = || -> Result<_, store::StoreError> {
                        store::embedded::create_data_dir(dir)?;
                        store::SqliteCatalog::open(&dir.join("catalog.sqlite3"))
                    };
                    Arc::new(open().map_err(|source| ServeError::Store {
                        dir: dir.display().to_string(),
                        source,
                    })?)
                }
            };
            let media = open_object_media(s3, catalog.clone())
                .await
                .map_err(|source| ServeError::Backend {
                    what: "media store (S3)",
                    source,
                })?;
            Ok((catalog, media))
        }
    }
}

/// The bucket as this node's media store, with a writer epoch no node had before.
async fn open_object_media(
    s3: &config::S3Media,
    catalog: Arc<dyn store::Catalog>,
) -> Result<Arc<dyn store::MediaStore>, store::StoreError> {
    use store::object::{CatalogLedger, ObjectMediaStore};
    let bucket = store::object::s3(
        &s3.url,
        s3.endpoint.as_deref(),
        &s3.region,
        &s3.access_key_id,
        &s3.secret_access_key,
    )?;
    let epoch = catalog.allocate_media_epoch().await?;
    let epoch = u32::try_from(epoch).map_err(|_| {
        store::StoreError::Config(format!(
            "media epoch {epoch} from the catalog is out of range"
        ))
    })?;
    let media = ObjectMediaStore::new(bucket, "", epoch, Arc::new(CatalogLedger(catalog)))?;
    media.check_reachable().await?;
    Ok(Arc::new(media))
}

/// Serves `state` on `listener` until `shutdown_signal` resolves; then stops accepting, cancels
/// [`AppState::shutdown`] and waits for in-flight requests up to `config.shutdown_grace`.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown_signal: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let grace = state.config.shutdown_grace;
    let token = state.shutdown.clone();
    // Stops by itself when `state.shutdown` is cancelled.
    retention::spawn(state.clone(), retention::RETENTION_INTERVAL);
    let limits = state.config.connections.clone();
    let app = ops::router(state);
    // Stops accepting and drains connections by itself when `state.shutdown` is cancelled.
    let server = conn::serve(listener, app, limits, token.clone());
    let mut server = tokio::spawn(server);
    tokio::select! {
        result = &mut server => return flatten(result),
        () = shutdown_signal => {
            tracing::info!("shutting down: no new connections; waiting up to {grace:?} for requests in flight");
            token.cancel();
        }
    }
    match tokio::time::timeout(grace, &mut server).await {
        Ok(result) => flatten(result),
        Err(_) => {
            tracing::warn!("requests still in flight after {grace:?}; stopping anyway");
            server.abort();
            Ok(())
        }
    }
}

fn flatten(result: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<(), ServeError> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ServeError::Serve(e)),
        Err(e) => Err(ServeError::Serve(std::io::Error::other(e))),
    }
}

/// Opens the archive, binds `config.listen` and serves until `shutdown_signal`.
pub async fn run(
    config: Config,
    shutdown_signal: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = config.listen;
    let state = build(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    serve(state, listener, shutdown_signal).await
}
