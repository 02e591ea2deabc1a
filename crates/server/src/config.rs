//! Server settings. `openkvs serve` fills them from flags, OPENKVS_* variables and a TOML file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default region of ARNs and KMS key ids.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Default account id in ARNs: twelve zeros, as LocalStack and other AWS emulators use, so it can
/// never be mistaken for a real account.
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4567";
/// AWS's bounds of GetHLSStreamingSessionURL `Expires` (seconds), the defaults of
/// [`Config::session_expires_min`] / [`Config::session_expires_max`].
pub const SESSION_EXPIRES_MIN: u32 = 300;
pub const SESSION_EXPIRES_MAX: u32 = 43_200;

/// Access key id → secret access key. Empty: no credentials configured, any well-formed signature
/// is accepted (docs/choices.md#unsigned-mode).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials(pub BTreeMap<String, String>);

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Credentials {
    /// Lists access key ids only: secrets never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl sigv4::SecretLookup for Credentials {
    fn secret_for(&self, access_key_id: &str) -> Option<String> {
        self.0.get(access_key_id).cloned()
    }
}

/// Where the catalog lives (docs/architecture.md#scale-out).
#[derive(Clone, Default, PartialEq, Eq)]
pub enum CatalogBackend {
    /// SQLite in the data dir: one node.
    #[default]
    Embedded,
    /// PostgreSQL 15+, shared by every node: `postgresql://USER@HOST/DB?host=SOCKET_DIR&port=PORT`.
    Postgres { url: String },
}

impl std::fmt::Debug for CatalogBackend {
    /// A password in the URL never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatalogBackend::Embedded => f.write_str("Embedded"),
            CatalogBackend::Postgres { url } => f
                .debug_struct("Postgres")
                .field("url", &redact_password(url))
                .finish(),
        }
    }
}

/// `scheme://user:secret@host…` → `scheme://user:***@host…`.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Where fragment bytes live (docs/architecture.md#scale-out).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum MediaBackend {
    /// Segment files in the data dir: one node.
    #[default]
    Embedded,
    /// An S3-compatible bucket, shared by every node.
    S3(S3Media),
}

/// An S3-compatible bucket for fragment objects.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Media {
    /// `s3://BUCKET/PREFIX` (the prefix may be empty).
    pub url: String,
    /// Endpoint of a non-AWS store (Garage, MinIO, …): path-style requests go there. `None`: AWS S3.
    pub endpoint: Option<String>,
    pub region: String,
    /// From OPENKVS_S3_ACCESS_KEY_ID / OPENKVS_S3_SECRET_ACCESS_KEY or the config file, never from
    /// the AWS_* variables the KVS clients on the same machine use.
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Media {
    /// The secret never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Media")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub catalog: CatalogBackend,
    pub media: MediaBackend,
    /// This node's name in writer leases and logs (docs/architecture.md#writer-lease).
    pub node_id: String,
    /// Base URL GetDataEndpoint returns (scheme, host, port; no trailing slash).
    pub public_url: String,
    pub region: String,
    pub account_id: String,
    pub credentials: Credentials,
    /// Allowed difference between a request's `X-Amz-Date` and the server clock (AWS: 15 min).
    pub max_clock_skew: Duration,
    /// Largest JSON request body.
    pub json_body_limit: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Keys of HLS session tokens: the first seals, all open (rotation). Empty: `build` loads or
    /// generates `<data_dir>/session.key` (see `hls::token`).
    pub session_keys: Vec<crate::hls::token::SessionKey>,
    /// Bounds of GetHLSStreamingSessionURL's `Expires`, in seconds (AWS: 300..=43200).
    pub session_expires_min: u32,
    pub session_expires_max: u32,
    /// Request-rate limits of the HLS resources (AWS's quotas by default).
    pub hls_limits: crate::hls::limits::HlsLimits,
    /// Caps on open connections and the header-read / keep-alive idle timeouts (`conn`).
    pub connections: crate::conn::ConnectionLimits,
    /// `--ll-hls`: LL-HLS parts in LIVE fMP4 sessions (docs/architecture.md#low-latency-hls).
    pub low_latency: Option<crate::hls::ll::LowLatencyConfig>,
    /// GetImages' decode slots and how long a request waits for one.
    pub decode_limits: crate::images::DecodeLimits,
}

impl std::fmt::Debug for Config {
    /// Like the derived form, but session keys show as a count: secrets never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("catalog", &self.catalog)
            .field("media", &self.media)
            .field("node_id", &self.node_id)
            .field("public_url", &self.public_url)
            .field("region", &self.region)
            .field("account_id", &self.account_id)
            .field("credentials", &self.credentials)
            .field("max_clock_skew", &self.max_clock_skew)
            .field("json_body_limit", &self.json_body_limit)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("session_keys", &self.session_keys.len())
            .field("session_expires_min", &self.session_expires_min)
            .field("session_expires_max", &self.session_expires_max)
            .field("hls_limits", &self.hls_limits)
            .field("connections", &self.connections)
            .field("low_latency", &self.low_latency)
            .field("decode_limits", &self.decode_limits)
            .finish()
    }
}

impl Config {
    /// Defaults for a server on `listen` keeping its data in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Config {
            listen,
            data_dir,
            catalog: CatalogBackend::Embedded,
            media: MediaBackend::Embedded,
            node_id: default_node_id(listen),
            public_url: format!("http://{listen}"),
            region: DEFAULT_REGION.into(),
            account_id: DEFAULT_ACCOUNT_ID.into(),
            credentials: Credentials::default(),
            max_clock_skew: sigv4::DEFAULT_MAX_SKEW,
            json_body_limit: crate::wire::JSON_BODY_LIMIT,
            shutdown_grace: Duration::from_secs(10),
            session_keys: Vec::new(),
            session_expires_min: SESSION_EXPIRES_MIN,
            session_expires_max: SESSION_EXPIRES_MAX,
            hls_limits: Default::default(),
            connections: Default::default(),
            low_latency: None,
            decode_limits: Default::default(),
        }
    }

    /// The public URL without a trailing slash (docs/wire.md#control-plane: producers append `/putMedia`).
    pub fn data_endpoint(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    /// KmsKeyId reported when CreateStream names none: the AWS managed key alias (docs/choices.md#default-kms-key).
    pub fn default_kms_key_id(&self) -> String {
        format!(
            "arn:aws:kms:{}:{}:alias/aws/kinesisvideo",
            self.region, self.account_id
        )
    }
}

/// `<host name>:<port>`: unique among nodes on different machines, and among nodes on one machine.
pub fn default_node_id(listen: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "openkvs".into());
    format!("{host}:{}", listen.port())
}
