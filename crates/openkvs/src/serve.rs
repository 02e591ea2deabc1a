//! `openkvs serve`: settings from flags, OPENKVS_* environment variables and a TOML file
//! (precedence: flags > environment > config file > defaults), then `server::run`.
//!
//! Config file (`--config FILE`, every key optional; relative paths are relative to the working
//! directory):
//! ```toml
//! listen = "127.0.0.1:4567"
//! data_dir = "./openkvs-data"
//! catalog = "postgresql://openkvs@localhost/openkvs?host=/run/postgresql"  # default: SQLite in data_dir
//! media = "s3://bucket/prefix"      # default: files in data_dir
//! s3_endpoint = "http://127.0.0.1:3900"  # a non-AWS S3 store (Garage, MinIO); default: AWS S3
//! s3_region = "garage"              # default: the region below
//! s3_access_key_id = "GK…"          # or OPENKVS_S3_ACCESS_KEY_ID (never AWS_*)
//! s3_secret_access_key = "…"        # or OPENKVS_S3_SECRET_ACCESS_KEY
//! node_id = "node-a"                # default: <host name>:<port>
//! public_url = "http://cams.example.net:4567"
//! region = "us-east-1"
//! account_id = "000000000000"
//! insecure_open = false
//! credentials_file = "/etc/openkvs/credentials.toml"
//! max_clock_skew_seconds = 900
//! shutdown_grace_seconds = 10
//! header_read_timeout_seconds = 10  # to send a whole request head (README, Limits and timeouts)
//! idle_timeout_seconds = 60         # a kept-alive connection between requests
//! max_connections = 16384           # open connections, all peers (kept under the open-file limit)
//! max_connections_per_ip = 1024     # open connections from one address (a NAT'd camera fleet shares one)
//! session_key_file = "/etc/openkvs/session.keys"  # or inline: session_keys = ["<64 hex digits>"]
//! session_expires_min = 300       # bounds of GetHLSStreamingSessionURL Expires, seconds
//! session_expires_max = 43200
//! ll_hls = false                  # LL-HLS parts in LIVE fMP4 sessions (docs/architecture.md#low-latency-hls)
//! ll_hls_part_ms = 300            # its PART-TARGET
//! [hls_rate_limits]               # off unless asked for (docs/choices.md#hls-rate-limits)
//! mode = "aws"                    # "off" (the default) or "aws": AWS's quotas, below; values given here override
//! max_delay_seconds = 2           # a request over the rate waits up to this long for its turn before it is refused
//! master_playlist_tps = 5         # requests per second per session (0 = unlimited)
//! media_playlist_tps = 5
//! init_fragment_tps = 5
//! media_fragment_tps = 20         # GetMP4MediaFragment and GetTSFragment
//! session_url_tps_per_stream = 25
//! burst_seconds = 2
//! [[credentials]]            # inline, added to those of credentials_file
//! access_key_id = "AKID…"
//! secret_access_key = "…"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use server::config::{CatalogBackend, MediaBackend, S3Media};
use server::{Config, Credentials};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:4567].
    #[arg(long, env = "OPENKVS_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Data directory (catalog and media) [default: ./openkvs-data].
    #[arg(long, env = "OPENKVS_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The catalog: `postgresql://USER@HOST/DB?host=SOCKET_DIR&port=PORT` for a PostgreSQL
    /// catalog shared by several nodes [default: SQLite in the data dir].
    #[arg(long, env = "OPENKVS_CATALOG", value_name = "URL")]
    catalog: Option<String>,
    /// Fragment bytes: `s3://BUCKET/PREFIX` for an S3-compatible bucket shared by several nodes
    /// (credentials from OPENKVS_S3_ACCESS_KEY_ID / OPENKVS_S3_SECRET_ACCESS_KEY) [default: files
    /// in the data dir].
    #[arg(long, env = "OPENKVS_MEDIA", value_name = "URL")]
    media: Option<String>,
    /// Endpoint of a non-AWS S3-compatible store (Garage, MinIO) [default: AWS S3].
    #[arg(long, env = "OPENKVS_S3_ENDPOINT", value_name = "URL")]
    s3_endpoint: Option<String>,
    /// Region of the S3 bucket [default: --region].
    #[arg(long, env = "OPENKVS_S3_REGION", value_name = "REGION")]
    s3_region: Option<String>,
    /// This node's name in writer leases and logs [default: <host name>:<port>].
    #[arg(long, env = "OPENKVS_NODE_ID", value_name = "NAME")]
    node_id: Option<String>,
    /// Base URL GetDataEndpoint returns [default: http://<listen addr>].
    #[arg(long, env = "OPENKVS_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// TOML file of `[[credentials]]` (access_key_id, secret_access_key). Without credentials any
    /// well-formed signature is accepted.
    #[arg(long, env = "OPENKVS_CREDENTIALS", value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// Allow listening on a non-loopback address without credentials.
    #[arg(long, env = "OPENKVS_INSECURE_OPEN")]
    insecure_open: bool,
    /// Region used in ARNs [default: us-east-1].
    #[arg(long, env = "OPENKVS_REGION")]
    region: Option<String>,
    /// Account id used in ARNs [default: 000000000000].
    #[arg(long, env = "OPENKVS_ACCOUNT_ID")]
    account_id: Option<String>,
    /// TOML file with the same settings (lower precedence than flags and environment).
    #[arg(long, env = "OPENKVS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// File of HLS session keys, one per line (64 hex digits or base64 of 32 bytes): the first
    /// seals new session URLs, all open them (rotation). [default: <data dir>/session.key,
    /// generated owner-only on first start]
    #[arg(long, env = "OPENKVS_SESSION_KEY_FILE", value_name = "FILE")]
    session_key_file: Option<PathBuf>,
    /// HLS session keys, comma-separated, as in --session-key-file. Prefer the environment
    /// variable or the file: a command line is visible to other users of the machine.
    #[arg(
        long,
        env = "OPENKVS_SESSION_KEY",
        hide_env_values = true,
        value_name = "KEYS"
    )]
    session_key: Option<String>,
    /// Shortest Expires (seconds) GetHLSStreamingSessionURL accepts [default: 300, AWS's].
    #[arg(long, env = "OPENKVS_SESSION_EXPIRES_MIN", value_name = "SECONDS")]
    session_expires_min: Option<u32>,
    /// Longest Expires (seconds) GetHLSStreamingSessionURL accepts [default: 43200, AWS's].
    #[arg(long, env = "OPENKVS_SESSION_EXPIRES_MAX", value_name = "SECONDS")]
    session_expires_max: Option<u32>,
    /// Seconds a client has to send a whole request head, from connecting or from the first byte
    /// of a next request [default: 10].
    #[arg(long, env = "OPENKVS_HEADER_READ_TIMEOUT", value_name = "SECONDS")]
    header_read_timeout: Option<u64>,
    /// Seconds a kept-alive connection may stay quiet between requests (never applies while a
    /// request or response is streaming) [default: 60].
    #[arg(long, env = "OPENKVS_IDLE_TIMEOUT", value_name = "SECONDS")]
    idle_timeout: Option<u64>,
    /// Open connections at most, all peers together; kept under the open-file limit [default: 16384].
    #[arg(long, env = "OPENKVS_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,
    /// Open connections at most from one IP address; cameras behind one NAT share it [default: 1024].
    #[arg(long, env = "OPENKVS_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    max_connections_per_ip: Option<usize>,
    /// Low-latency HLS in LIVE fMP4 sessions: parts of the fragment being received, served before
    /// it is PERSISTED, with blocking playlist reload (docs/architecture.md#low-latency-hls).
    #[arg(long, env = "OPENKVS_LL_HLS")]
    ll_hls: bool,
    /// LL-HLS PART-TARGET in milliseconds [default: 300].
    #[arg(long, env = "OPENKVS_LL_HLS_PART_MS", value_name = "MS")]
    ll_hls_part_ms: Option<u64>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    catalog: Option<String>,
    media: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<String>,
    node_id: Option<String>,
    public_url: Option<String>,
    region: Option<String>,
    account_id: Option<String>,
    insecure_open: Option<bool>,
    credentials_file: Option<PathBuf>,
    #[serde(default)]
    credentials: Vec<CredentialEntry>,
    max_clock_skew_seconds: Option<u64>,
    shutdown_grace_seconds: Option<u64>,
    session_key_file: Option<PathBuf>,
    session_keys: Option<Vec<String>>,
    session_expires_min: Option<u32>,
    session_expires_max: Option<u32>,
    hls_rate_limits: Option<HlsRateLimitsFile>,
    header_read_timeout_seconds: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    ll_hls: Option<bool>,
    ll_hls_part_ms: Option<u64>,
}

/// `[hls_rate_limits]`: `mode` picks the starting point (no limits, or AWS's quotas); the rates
/// given (requests per second per session, 0 = unlimited) override it.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct HlsRateLimitsFile {
    mode: Option<HlsRateLimitMode>,
    max_delay_seconds: Option<f64>,
    master_playlist_tps: Option<f64>,
    media_playlist_tps: Option<f64>,
    init_fragment_tps: Option<f64>,
    media_fragment_tps: Option<f64>,
    session_url_tps_per_stream: Option<f64>,
    burst_seconds: Option<f64>,
}

#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum HlsRateLimitMode {
    Off,
    Aws,
}

/// HLS session keys: the first source given wins (flag/env keys, flag/env key file, config-file
/// keys, config-file key file); none → `server::build` uses `<data dir>/session.key`.
fn session_keys(
    args_keys: Option<String>,
    args_file: Option<PathBuf>,
    file_keys: Option<Vec<String>>,
    file_file: Option<PathBuf>,
) -> Result<Vec<server::hls::token::SessionKey>, String> {
    use server::hls::token::parse_keys;
    let keys = if let Some(text) = args_keys {
        parse_keys(&text).map_err(|e| format!("OPENKVS_SESSION_KEY / --session-key: {e}"))?
    } else if let Some(path) = args_file.or(if file_keys.is_none() { file_file } else { None }) {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the session key file {}: {e}", path.display()))?;
        parse_keys(&text).map_err(|e| format!("the session key file {}: {e}", path.display()))?
    } else if let Some(list) = file_keys {
        parse_keys(&list.join("\n")).map_err(|e| format!("config file session_keys: {e}"))?
    } else {
        return Ok(Vec::new());
    };
    if keys.is_empty() {
        return Err("the session keys given are empty".into());
    }
    Ok(keys)
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct CredentialEntry {
    access_key_id: String,
    secret_access_key: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    #[serde(default)]
    credentials: Vec<CredentialEntry>,
}

fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> Result<T, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("the {what} {} is not valid: {e}", path.display()))
}

fn add_credentials(
    into: &mut Credentials,
    entries: Vec<CredentialEntry>,
    origin: &str,
) -> Result<(), String> {
    for entry in entries {
        if entry.access_key_id.is_empty() || entry.secret_access_key.is_empty() {
            return Err(format!(
                "{origin}: access_key_id and secret_access_key must not be empty"
            ));
        }
        into.0.insert(entry.access_key_id, entry.secret_access_key);
    }
    Ok(())
}

/// `value`, refused when zero.
fn at_least_one<T: Copy + PartialEq + From<u8>>(
    name: &str,
    value: Option<T>,
) -> Result<Option<T>, String> {
    match value {
        Some(v) if v == T::from(0) => Err(format!("{name} must be at least 1")),
        v => Ok(v),
    }
}

/// The catalog flag: a PostgreSQL URL (`postgresql://` or `postgres://`, as libpq accepts), or
/// `sqlite` for the embedded default.
fn catalog_backend(url: Option<String>) -> Result<CatalogBackend, String> {
    match url.as_deref().map(str::trim) {
        None | Some("") | Some("sqlite") => Ok(CatalogBackend::Embedded),
        Some(u) if u.starts_with("postgresql://") || u.starts_with("postgres://") => {
            Ok(CatalogBackend::Postgres { url: u.to_owned() })
        }
        Some(u) => Err(format!(
            "--catalog must be a postgresql:// URL (got {:?})",
            server::config::redact_password(u)
        )),
    }
}

/// Where S3 media settings come from, merged (flags > environment > config file).
struct S3Settings {
    media: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
}

/// The media flag: `s3://BUCKET/PREFIX`, or `files` for the embedded default.
fn media_backend(s: S3Settings, default_region: &str) -> Result<MediaBackend, String> {
    let url = match s.media.as_deref().map(str::trim) {
        None | Some("") | Some("files") => {
            if s.endpoint.is_some() {
                return Err("--s3-endpoint needs --media s3://BUCKET/PREFIX".into());
            }
            return Ok(MediaBackend::Embedded);
        }
        Some(u) => u.to_owned(),
    };
    let bucket = url
        .strip_prefix("s3://")
        .map(|rest| rest.split('/').next().unwrap_or(""))
        .unwrap_or("");
    if bucket.is_empty() {
        return Err(format!("--media must be s3://BUCKET/PREFIX (got {url:?})"));
    }
    if let Some(e) = &s.endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(format!(
                "--s3-endpoint must start with http:// or https:// (got {e:?})"
            ));
        }
    }
    let (Some(access_key_id), Some(secret_access_key)) = (
        s.access_key_id.filter(|k| !k.is_empty()),
        s.secret_access_key.filter(|k| !k.is_empty()),
    ) else {
        return Err(
            "--media s3://… needs OPENKVS_S3_ACCESS_KEY_ID and OPENKVS_S3_SECRET_ACCESS_KEY \
             (or s3_access_key_id / s3_secret_access_key in the config file)"
                .into(),
        );
    };
    Ok(MediaBackend::S3(S3Media {
        url,
        endpoint: s.endpoint.map(|e| e.trim_end_matches('/').to_owned()),
        region: s.region.unwrap_or_else(|| default_region.to_owned()),
        access_key_id,
        secret_access_key,
    }))
}

/// Settings after merging; `insecure_open` is not part of the server config.
struct Settings {
    config: Config,
    insecure_open: bool,
}

fn settings(args: ServeArgs) -> Result<Settings, String> {
    let file: FileConfig = match &args.config {
        Some(path) => read_toml(path, "config file")?,
        None => FileConfig::default(),
    };
    let listen = match args.listen.or(file.listen) {
        Some(addr) => addr,
        None => server::config::DEFAULT_LISTEN
            .parse()
            .expect("default listen address parses"),
    };
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("./openkvs-data"));
    let mut config = Config::new(listen, data_dir);
    config.catalog = catalog_backend(args.catalog.or(file.catalog))?;
    if let Some(node_id) = args.node_id.or(file.node_id) {
        if node_id.is_empty() || node_id.len() > 128 || node_id.chars().any(char::is_control) {
            return Err(format!(
                "--node-id must be 1 to 128 printable characters (got {node_id:?})"
            ));
        }
        config.node_id = node_id;
    }
    if let Some(url) = args.public_url.or(file.public_url) {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "--public-url must start with http:// or https:// (got {url:?})"
            ));
        }
        config.public_url = url.trim_end_matches('/').to_owned();
    }
    if let Some(region) = args.region.or(file.region) {
        config.region = region;
    }
    config.media = media_backend(
        S3Settings {
            media: args.media.or(file.media),
            endpoint: args.s3_endpoint.or(file.s3_endpoint),
            region: args.s3_region.or(file.s3_region),
            access_key_id: std::env::var("OPENKVS_S3_ACCESS_KEY_ID")
                .ok()
                .or(file.s3_access_key_id),
            secret_access_key: std::env::var("OPENKVS_S3_SECRET_ACCESS_KEY")
                .ok()
                .or(file.s3_secret_access_key),
        },
        &config.region,
    )?;
    if let Some(account_id) = args.account_id.or(file.account_id) {
        if account_id.is_empty() || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("--account-id must be digits (got {account_id:?})"));
        }
        config.account_id = account_id;
    }
    if let Some(s) = file.max_clock_skew_seconds {
        config.max_clock_skew = Duration::from_secs(s);
    }
    if let Some(s) = file.shutdown_grace_seconds {
        config.shutdown_grace = Duration::from_secs(s);
    }
    config.session_keys = session_keys(
        args.session_key,
        args.session_key_file,
        file.session_keys,
        file.session_key_file,
    )?;
    if let Some(s) = args.session_expires_min.or(file.session_expires_min) {
        config.session_expires_min = s;
    }
    if let Some(s) = args.session_expires_max.or(file.session_expires_max) {
        config.session_expires_max = s;
    }
    if config.session_expires_min == 0 || config.session_expires_min > config.session_expires_max {
        return Err(format!(
            "session expiry bounds must satisfy 1 <= min <= max (got {}..{})",
            config.session_expires_min, config.session_expires_max
        ));
    }
    let c = &mut config.connections;
    let seconds = |name, flag: Option<u64>, file: Option<u64>| {
        at_least_one(name, flag.or(file)).map(|s| s.map(Duration::from_secs))
    };
    if let Some(d) = seconds(
        "the header read timeout (seconds)",
        args.header_read_timeout,
        file.header_read_timeout_seconds,
    )? {
        c.header_read_timeout = d;
    }
    if let Some(d) = seconds(
        "the idle timeout (seconds)",
        args.idle_timeout,
        file.idle_timeout_seconds,
    )? {
        c.idle_timeout = d;
    }
    if let Some(n) = at_least_one(
        "max connections",
        args.max_connections.or(file.max_connections),
    )? {
        c.max_connections = n;
    }
    if let Some(n) = at_least_one(
        "max connections per IP",
        args.max_connections_per_ip.or(file.max_connections_per_ip),
    )? {
        c.max_connections_per_ip = n;
    }
    if args.ll_hls || file.ll_hls.unwrap_or(false) {
        let mut ll = server::hls::ll::LowLatencyConfig::default();
        if let Some(ms) = at_least_one(
            "the LL-HLS part target (ms)",
            args.ll_hls_part_ms.or(file.ll_hls_part_ms),
        )? {
            ll.part_target = Duration::from_millis(ms);
        }
        config.low_latency = Some(ll);
    }
    if let Some(l) = file.hls_rate_limits {
        let limits = &mut config.hls_limits;
        *limits = match l.mode {
            Some(HlsRateLimitMode::Aws) => server::hls::limits::HlsLimits::aws(),
            Some(HlsRateLimitMode::Off) | None => server::hls::limits::HlsLimits::default(),
        };
        for (value, into) in [
            (l.master_playlist_tps, &mut limits.master_playlist_tps),
            (l.media_playlist_tps, &mut limits.media_playlist_tps),
            (l.init_fragment_tps, &mut limits.init_fragment_tps),
            (l.media_fragment_tps, &mut limits.media_fragment_tps),
            (
                l.session_url_tps_per_stream,
                &mut limits.session_url_tps_per_stream,
            ),
            (l.burst_seconds, &mut limits.burst_seconds),
            (l.max_delay_seconds, &mut limits.max_delay_seconds),
        ] {
            if let Some(v) = value {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!("hls_rate_limits values must be >= 0 (got {v})"));
                }
                *into = v;
            }
        }
    }
    // A credentials file named by flag/env replaces the config file's; inline entries always add.
    if let Some(path) = args.credentials.or(file.credentials_file) {
        let f: CredentialsFile = read_toml(&path, "credentials file")?;
        if f.credentials.is_empty() {
            return Err(format!(
                "the credentials file {} has no [[credentials]] entry",
                path.display()
            ));
        }
        add_credentials(
            &mut config.credentials,
            f.credentials,
            &path.display().to_string(),
        )?;
    }
    add_credentials(&mut config.credentials, file.credentials, "config file")?;
    let insecure_open = args.insecure_open || file.insecure_open.unwrap_or(false);
    Ok(Settings {
        config,
        insecure_open,
    })
}

/// `e` and the causes its message does not already say, on one line: a driver's "error
/// connecting to server" alone does not tell a missing socket from a refused password.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: a log file or journal gets no escape codes (and formatting
    // every request span's fields without them is measurably cheaper on the playlist hot path).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

pub async fn run(args: ServeArgs) -> ExitCode {
    init_logging();
    let Settings {
        config,
        insecure_open,
    } = match settings(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("openkvs serve: {e}");
            return ExitCode::from(2);
        }
    };
    if config.credentials.is_empty() {
        if !config.listen.ip().is_loopback() && !insecure_open {
            eprintln!(
                "openkvs serve: refusing to listen on {} without credentials: anyone could read and write \
                 your video. Give --credentials FILE, or listen on a loopback address, or pass --insecure-open.",
                config.listen
            );
            return ExitCode::from(2);
        }
        tracing::warn!(
            "NO CREDENTIALS CONFIGURED: any well-formed SigV4 signature is accepted, whatever its key. \
             Use --credentials FILE to require known keys."
        );
        if !config.listen.ip().is_loopback() {
            tracing::warn!(
                "--insecure-open: serving {} WITHOUT AUTHENTICATION to the network",
                config.listen
            );
        }
    } else {
        tracing::info!(access_keys = ?config.credentials, "SigV4 verification against configured credentials");
    }
    // Every client connection is a descriptor: allow as many as the hard limit does (`server::conn`
    // keeps its connection cap under what this leaves).
    let open_file_limit = server::conn::raise_nofile_limit();
    tracing::debug!(?open_file_limit, "open-file limit");
    let listen = config.listen;
    let public_url = config.public_url.clone();
    let data_dir = config.data_dir.display().to_string();

    let state = match server::build(config).await {
        Ok(state) => state,
        Err(e) => {
            eprintln!("openkvs serve: {}", with_causes(&e));
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("openkvs serve: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().unwrap_or(listen);
    tracing::info!(%bound, %public_url, data_dir = %data_dir, "openkvs listening");
    eprintln!(
        "openkvs listening on http://{bound} (data in {data_dir}; data endpoint {public_url})"
    );
    eprintln!(
        "console: {public_url}{}  (web console: streams, live and archive playback)",
        server::console::PATH
    );
    eprintln!(
        "try: aws --endpoint-url {public_url} kinesisvideo create-stream --stream-name cam1 --data-retention-in-hours 24"
    );
    match server::serve(state, listener, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("openkvs serve: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> ServeArgs {
        Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .unwrap()
            .serve
    }

    #[test]
    fn defaults() {
        let s = settings(ServeArgs {
            listen: None,
            data_dir: None,
            catalog: None,
            media: None,
            s3_endpoint: None,
            s3_region: None,
            node_id: None,
            public_url: None,
            credentials: None,
            insecure_open: false,
            region: None,
            account_id: None,
            config: None,
            session_key_file: None,
            session_key: None,
            session_expires_min: None,
            session_expires_max: None,
            header_read_timeout: None,
            idle_timeout: None,
            max_connections: None,
            max_connections_per_ip: None,
            ll_hls: false,
            ll_hls_part_ms: None,
        })
        .unwrap();
        assert_eq!(s.config.listen.to_string(), "127.0.0.1:4567");
        assert!(s.config.low_latency.is_none(), "LL-HLS is opt-in");
        assert_eq!(s.config.public_url, "http://127.0.0.1:4567");
        assert_eq!(s.config.region, "us-east-1");
        assert_eq!(s.config.account_id, "000000000000");
        assert!(s.config.credentials.is_empty());
        assert!(s.config.session_keys.is_empty());
        assert_eq!(s.config.session_expires_min, 300);
        assert_eq!(s.config.session_expires_max, 43200);
        assert_eq!(
            s.config.connections,
            server::conn::ConnectionLimits::default()
        );
        assert_eq!(
            s.config.hls_limits,
            server::hls::limits::HlsLimits::default(),
            "no HLS rate limit unless asked for"
        );
        assert_eq!(s.config.hls_limits.media_fragment_tps, 0.0);
    }

    #[test]
    fn scale_out_settings() {
        let s = settings(parse(&[])).unwrap();
        assert_eq!(s.config.catalog, CatalogBackend::Embedded);
        assert_eq!(s.config.media, MediaBackend::Embedded);
        assert!(s.config.node_id.ends_with(":4567"), "{}", s.config.node_id);

        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("openkvs.toml");
        std::fs::write(
            &conf,
            "media = \"s3://bucket/some/prefix\"\ns3_access_key_id = \"GK1\"\n\
             s3_secret_access_key = \"sec\"\nnode_id = \"from-file\"\n",
        )
        .unwrap();
        let url = "postgresql://openkvs@localhost/kvs?host=/tmp/sock&port=5433";
        let s = settings(parse(&[
            "--config",
            conf.to_str().unwrap(),
            "--catalog",
            url,
            "--s3-endpoint",
            "http://127.0.0.1:3900/",
            "--node-id",
            "node-a",
        ]))
        .unwrap();
        assert_eq!(
            s.config.catalog,
            CatalogBackend::Postgres { url: url.into() }
        );
        let MediaBackend::S3(m) = &s.config.media else {
            panic!("{:?}", s.config.media)
        };
        assert_eq!(
            (m.url.as_str(), m.endpoint.as_deref(), m.region.as_str()),
            (
                "s3://bucket/some/prefix",
                Some("http://127.0.0.1:3900"),
                "us-east-1"
            )
        );
        assert_eq!(
            (m.access_key_id.as_str(), m.secret_access_key.as_str()),
            ("GK1", "sec")
        );
        assert_eq!(s.config.node_id, "node-a", "the flag wins over the file");
        assert!(
            !format!("{:?}", s.config).contains("sec\""),
            "no secret in Debug"
        );

        for bad in [
            &["--catalog", "mysql://x"][..],
            &["--media", "s3://"],
            &["--media", "/var/media"],
            &["--s3-endpoint", "http://127.0.0.1:3900"],
            &["--node-id", ""],
        ] {
            assert!(settings(parse(bad)).is_err(), "{bad:?}");
        }
        // S3 without credentials: a clear refusal, not a request signed with nothing.
        let no_keys = dir.path().join("no-keys.toml");
        std::fs::write(&no_keys, "media = \"s3://bucket\"\n").unwrap();
        if std::env::var_os("OPENKVS_S3_ACCESS_KEY_ID").is_none() {
            let e = settings(parse(&["--config", no_keys.to_str().unwrap()]))
                .err()
                .unwrap();
            assert!(e.contains("OPENKVS_S3_ACCESS_KEY_ID"), "{e}");
        }
        assert_eq!(
            server::config::redact_password("postgresql://u:pw@h/db"),
            "postgresql://u:***@h/db"
        );
    }

    #[test]
    fn session_settings() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let a = "11".repeat(32);
        let b = "22".repeat(32);
        std::fs::write(&keys, format!("# newest first\n{a}\n{b}\n")).unwrap();
        let conf = dir.path().join("openkvs.toml");
        std::fs::write(
            &conf,
            "session_expires_max = 86400\n[hls_rate_limits]\nmode = \"aws\"\nmedia_fragment_tps = 0\n",
        )
        .unwrap();
        let s = settings(parse(&[
            "--config",
            conf.to_str().unwrap(),
            "--session-key-file",
            keys.to_str().unwrap(),
            "--session-expires-min",
            "1",
        ]))
        .unwrap();
        assert_eq!(s.config.session_keys, vec![[0x11; 32], [0x22; 32]]);
        assert_eq!(s.config.session_expires_min, 1);
        assert_eq!(s.config.session_expires_max, 86400);
        assert_eq!(s.config.hls_limits.media_fragment_tps, 0.0);
        assert_eq!(s.config.hls_limits.master_playlist_tps, 5.0, "mode = aws");
        // Inline keys win over the file.
        let s = settings(parse(&[
            "--session-key",
            &b,
            "--session-key-file",
            keys.to_str().unwrap(),
        ]))
        .unwrap();
        assert_eq!(s.config.session_keys, vec![[0x22; 32]]);
        assert!(settings(parse(&["--session-key", "short"])).is_err());
        assert!(settings(parse(&["--session-expires-min", "0"])).is_err());
        assert!(settings(parse(&[
            "--session-expires-min",
            "500",
            "--session-expires-max",
            "400"
        ]))
        .is_err());
    }

    #[test]
    fn flags_win_over_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds.toml");
        std::fs::write(
            &creds,
            "[[credentials]]\naccess_key_id = \"AK\"\nsecret_access_key = \"SK\"\n",
        )
        .unwrap();
        let conf = dir.path().join("openkvs.toml");
        std::fs::write(
            &conf,
            format!(
                "listen = \"127.0.0.1:9000\"\nregion = \"eu-west-1\"\npublic_url = \"http://x:1/\"\n\
                 credentials_file = {:?}\n",
                creds.display().to_string()
            ),
        )
        .unwrap();
        let s = settings(parse(&[
            "--config",
            conf.to_str().unwrap(),
            "--region",
            "ap-south-1",
        ]))
        .unwrap();
        assert_eq!(s.config.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(s.config.region, "ap-south-1");
        assert_eq!(s.config.public_url, "http://x:1");
        assert_eq!(
            s.config.credentials.0.get("AK").map(String::as_str),
            Some("SK")
        );
    }

    #[test]
    fn connection_limits_from_flags_and_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("openkvs.toml");
        std::fs::write(
            &conf,
            "header_read_timeout_seconds = 5\nidle_timeout_seconds = 30\nmax_connections = 100\n\
             max_connections_per_ip = 50\n",
        )
        .unwrap();
        let s = settings(parse(&[
            "--config",
            conf.to_str().unwrap(),
            "--max-connections-per-ip",
            "70",
        ]))
        .unwrap();
        let c = &s.config.connections;
        assert_eq!(c.header_read_timeout, Duration::from_secs(5));
        assert_eq!(c.idle_timeout, Duration::from_secs(30));
        assert_eq!(c.max_connections, 100);
        assert_eq!(c.max_connections_per_ip, 70, "the flag wins");
        assert!(settings(parse(&["--idle-timeout", "0"])).is_err());
        assert!(settings(parse(&["--max-connections", "0"])).is_err());
    }

    #[test]
    fn bad_config_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("openkvs.toml");
        std::fs::write(&conf, "lisen = \"x\"\n").unwrap();
        assert!(settings(parse(&["--config", conf.to_str().unwrap()])).is_err());
    }
}
