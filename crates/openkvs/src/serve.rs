//! `openkvs serve`: settings from flags, OPENKVS_* environment variables and a TOML file
//! (precedence: flags > environment > config file > defaults), then `server::run`.
//!
//! Config file (`--config FILE`, every key optional; relative paths are relative to the working
//! directory):
//! ```toml
//! listen = "127.0.0.1:4567"
//! data_dir = "./openkvs-data"
//! public_url = "http://cams.example.net:4567"
//! region = "us-east-1"
//! account_id = "000000000000"
//! insecure_open = false
//! credentials_file = "/etc/openkvs/credentials.toml"
//! max_clock_skew_seconds = 900
//! shutdown_grace_seconds = 10
//! [[credentials]]            # inline, added to those of credentials_file
//! access_key_id = "AKID…"
//! secret_access_key = "…"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use server::{Config, Credentials};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:4567].
    #[arg(long, env = "OPENKVS_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Data directory (catalog and media) [default: ./openkvs-data].
    #[arg(long, env = "OPENKVS_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
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
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    public_url: Option<String>,
    region: Option<String>,
    account_id: Option<String>,
    insecure_open: Option<bool>,
    credentials_file: Option<PathBuf>,
    #[serde(default)]
    credentials: Vec<CredentialEntry>,
    max_clock_skew_seconds: Option<u64>,
    shutdown_grace_seconds: Option<u64>,
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

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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
    let listen = config.listen;
    let public_url = config.public_url.clone();
    let data_dir = config.data_dir.display().to_string();

    let state = match server::build(config).await {
        Ok(state) => state,
        Err(e) => {
            eprintln!("openkvs serve: {e}");
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
            public_url: None,
            credentials: None,
            insecure_open: false,
            region: None,
            account_id: None,
            config: None,
        })
        .unwrap();
        assert_eq!(s.config.listen.to_string(), "127.0.0.1:4567");
        assert_eq!(s.config.public_url, "http://127.0.0.1:4567");
        assert_eq!(s.config.region, "us-east-1");
        assert_eq!(s.config.account_id, "000000000000");
        assert!(s.config.credentials.is_empty());
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
    fn bad_config_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("openkvs.toml");
        std::fs::write(&conf, "lisen = \"x\"\n").unwrap();
        assert!(settings(parse(&["--config", conf.to_str().unwrap()])).is_err());
    }
}
