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

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
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
}

impl std::fmt::Debug for Config {
    /// Like the derived form, but session keys show as a count: secrets never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
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
            .finish()
    }
}

impl Config {
    /// Defaults for a server on `listen` keeping its data in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Config {
            listen,
            data_dir,
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
