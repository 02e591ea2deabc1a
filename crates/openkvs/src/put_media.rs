//! `openkvs put-media`: stream an MKV file or standard input as one signed PutMedia (docs/wire.md#putmedia-request), printing
//! the acks' outcome as one JSON line.
//!
//! - Signing (docs/wire.md#sigv4): like the C producer SDK, the canonical payload hash is the SHA-256 of the empty
//!   string and no `x-amz-content-sha256` is sent; the streaming body cannot be hashed up front, and this is the
//!   variant every KVS-compatible server must accept for real cameras.
//! - Body: `transfer-encoding: chunked`, read in 64 KiB chunks and never held whole. By default clusters go out in
//!   real time (cluster timecode deltas); `--fast` sends as fast as the connection takes it.
//! - Acks are read while the body is still being sent (the server answers 200 right after header validation).
//! - Exit status: 0 = HTTP 200 and no ERROR ack; 1 = an ERROR ack; 254 = a service error response (as AWS CLI v2
//!   does); 255 = anything else (endpoint unreachable, input unreadable, response closed before the body was
//!   sent). Fragments left without PERSISTED/ERROR ack after the 30 s wait are reported on stderr only.

pub mod acks;
pub mod config;
mod planner;

use acks::{parse_ack, AckTracker};
use bytes::{Bytes, BytesMut};
use config::CredentialSource;
use futures::Stream;
use indicatif::{ProgressBar, ProgressStyle};
use planner::{BodyPlanner, BodyStep};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

/// Input is read (and sent) in pieces of at most this many bytes.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// With `--fast` nothing is paced, so read (and send) in larger pieces: fewer HTTP chunks mean
/// fewer wake-ups on both ends of the connection.
const FAST_READ_CHUNK_BYTES: usize = 1024 * 1024;
/// How long to wait for the remaining acks after the body is sent.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// Chunks queued between the reader and the connection (small: "handed to the connection" stays accurate).
const BODY_QUEUE_DEPTH: usize = 2;
const EXIT_ERROR_ACK: u8 = 1;
const EXIT_SERVICE_ERROR: u8 = 254;
const EXIT_CLIENT_ERROR: u8 = 255;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("stream").required(true).args(["stream_name", "stream_arn"])))]
pub struct PutMediaArgs {
    /// Stream to write to (sent as `x-amzn-stream-name`).
    #[arg(long)]
    stream_name: Option<String>,
    /// Stream to write to, by ARN (sent as `x-amzn-stream-arn`).
    #[arg(long)]
    stream_arn: Option<String>,
    /// Server base URL [default: $OPENKVS_ENDPOINT_URL, $AWS_ENDPOINT_URL, http://127.0.0.1:4567].
    #[arg(long)]
    endpoint_url: Option<String>,
    /// Signing region [default: $AWS_REGION, $AWS_DEFAULT_REGION, us-east-1].
    #[arg(long)]
    region: Option<String>,
    /// Profile in ~/.aws/credentials [default: $AWS_PROFILE, default].
    #[arg(long)]
    profile: Option<String>,
    /// Send as fast as possible instead of in real time.
    #[arg(long)]
    fast: bool,
    /// How the server reads cluster timecodes (`x-amzn-fragment-timecode-type`).
    #[arg(long, value_enum, ignore_case = true, default_value_t = TimecodeType::Relative)]
    timecode_type: TimecodeType,
    /// Producer start time in epoch seconds, e.g. 1704067200.5 [default: now].
    #[arg(long, value_parser = parse_producer_start_timestamp)]
    producer_start_timestamp: Option<String>,
    /// Write every raw ack line to this file.
    #[arg(long)]
    acks: Option<PathBuf>,
    /// MKV file to send, or `-` for standard input.
    input: String,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimecodeType {
    #[value(name = "ABSOLUTE")]
    Absolute,
    #[value(name = "RELATIVE")]
    Relative,
}

impl TimecodeType {
    pub fn header_value(self) -> &'static str {
        match self {
            TimecodeType::Absolute => "ABSOLUTE",
            TimecodeType::Relative => "RELATIVE",
        }
    }
}

/// Accepts decimal epoch seconds (int or fraction), as servers parse it (docs/wire.md#putmedia-request).
fn parse_producer_start_timestamp(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.bytes().filter(|&b| b == b'.').count() <= 1
        && text.bytes().any(|b| b.is_ascii_digit());
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "expected epoch seconds such as 1704067200.5, got '{text}'"
        ))
    }
}

/// `seconds.milliseconds`, zero-padded (`1795570809.039`), like the Java producer.
pub fn format_producer_start_timestamp(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!(
        "{}.{:03}",
        since_epoch.as_secs(),
        since_epoch.subsec_millis()
    )
}

/// Everything that can go wrong in `put-media` apart from what the server says.
#[derive(Debug, thiserror::Error)]
pub enum PutMediaError {
    #[error("invalid endpoint URL '{url}': {reason}")]
    BadEndpoint { url: String, reason: String },
    #[error("cannot read {path}: {source}")]
    Input {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write acks to {path}: {source}")]
    AckFile {
        path: String,
        source: std::io::Error,
    },
    #[error("could not connect to the endpoint URL \"{url}\": {source}")]
    Connect { url: String, source: reqwest::Error },
    #[error("cannot start the HTTP client: {0}")]
    Client(reqwest::Error),
}

/// The stream a PutMedia targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamTarget {
    Name(String),
    Arn(String),
}

/// A signed PutMedia request, before the body.
#[derive(Debug)]
pub struct SignedPutMedia {
    pub url: String,
    /// All headers to send, `host` and the SigV4 ones included.
    pub headers: Vec<(String, String)>,
}

/// Builds and signs `POST {endpoint}/putMedia` (docs/wire.md#putmedia-request headers; docs/wire.md#sigv4 signing, empty-body hash).
pub fn signed_put_media(
    endpoint_url: &str,
    stream: &StreamTarget,
    timecode_type: TimecodeType,
    producer_start_timestamp: &str,
    credentials: &sigv4::Credentials,
    region: &str,
    now: SystemTime,
) -> Result<SignedPutMedia, PutMediaError> {
    let bad_endpoint = |reason: String| PutMediaError::BadEndpoint {
        url: endpoint_url.to_owned(),
        reason,
    };
    let endpoint = reqwest::Url::parse(endpoint_url).map_err(|e| bad_endpoint(e.to_string()))?;
    if !matches!(endpoint.scheme(), "http" | "https") {
        return Err(bad_endpoint("the scheme must be http or https".to_owned()));
    }
    let host_name = endpoint
        .host_str()
        .ok_or_else(|| bad_endpoint("no host".to_owned()))?;
    // `port()` is None for the scheme's default port, exactly when HTTP clients leave it out of Host.
    let host = match endpoint.port() {
        Some(port) => format!("{host_name}:{port}"),
        None => host_name.to_owned(),
    };
    let path = format!("{}/putMedia", endpoint.path().trim_end_matches('/'));
    let mut url = endpoint.clone();
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);

    let (stream_header, stream_value) = match stream {
        StreamTarget::Name(name) => ("x-amzn-stream-name", name.as_str()),
        StreamTarget::Arn(arn) => ("x-amzn-stream-arn", arn.as_str()),
    };
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), host),
        (stream_header.into(), stream_value.into()),
        (
            "x-amzn-fragment-timecode-type".into(),
            timecode_type.header_value().into(),
        ),
        (
            "x-amzn-producer-start-timestamp".into(),
            producer_start_timestamp.into(),
        ),
        ("x-amzn-fragment-acknowledgment-required".into(), "1".into()),
        (
            "user-agent".into(),
            concat!("openkvs/", env!("CARGO_PKG_VERSION")).into(),
        ),
    ];
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let request = sigv4::Request {
        method: "POST",
        path: url.path(),
        query: "",
        headers: &header_refs,
    };
    let params = sigv4::SigningParams {
        credentials,
        region,
        service: sigv4::SERVICE,
        time: now,
    };
    let auth_headers = sigv4::sign(&request, sigv4::EMPTY_SHA256, &params);
    headers.extend(auth_headers);
    Ok(SignedPutMedia {
        url: url.to_string(),
        headers,
    })
}

pub async fn run(args: PutMediaArgs) -> ExitCode {
    match put_media(args).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("openkvs put-media: {error}");
            ExitCode::from(EXIT_CLIENT_ERROR)
        }
    }
}

pub fn lock(tracker: &Mutex<AckTracker>) -> MutexGuard<'_, AckTracker> {
    // A poisoned tracker only means another task panicked mid-update; the counts are still usable.
    tracker
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Credentials as `put-media` finds them: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (+ session token), else
/// the profile (`profile`, else `$AWS_PROFILE`, else `default`) in the AWS credentials file, else the placeholder.
pub fn environment_credentials(profile: Option<&str>) -> (sigv4::Credentials, CredentialSource) {
    let env = |name: &str| std::env::var(name).ok();
    let profile = config::profile(profile, &env);
    let credentials_text = crate::client::config::credentials_path(&env)
        .and_then(|path| std::fs::read_to_string(path).ok());
    config::credentials(&env, &profile, credentials_text.as_deref())
}

async fn put_media(args: PutMediaArgs) -> Result<ExitCode, PutMediaError> {
    let env = |name: &str| std::env::var(name).ok();
    let endpoint_url = config::endpoint_url(args.endpoint_url.as_deref(), &env);
    let region = config::region(args.region.as_deref(), &env);
    let (credentials, source) = environment_credentials(args.profile.as_deref());
    if source == CredentialSource::Placeholder {
        eprintln!("openkvs put-media: no AWS credentials found; signing with the placeholder key 'openkvs'");
    }
    let stream = match (args.stream_name, args.stream_arn) {
        (Some(name), _) => StreamTarget::Name(name),
        (None, Some(arn)) => StreamTarget::Arn(arn),
        (None, None) => unreachable!("clap requires --stream-name or --stream-arn"),
    };
    let started_wall = SystemTime::now();
    let producer_start = args
        .producer_start_timestamp
        .unwrap_or_else(|| format_producer_start_timestamp(started_wall));
    let signed = signed_put_media(
        &endpoint_url,
        &stream,
        args.timecode_type,
        &producer_start,
        &credentials,
        &region,
        started_wall,
    )?;

    let input: Pin<Box<dyn AsyncRead + Send>> = if args.input == "-" {
        Box::pin(tokio::io::stdin())
    } else {
        let file =
            tokio::fs::File::open(&args.input)
                .await
                .map_err(|source| PutMediaError::Input {
                    path: args.input.clone(),
                    source,
                })?;
        Box::pin(file)
    };
    let mut ack_file = match &args.acks {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|source| PutMediaError::AckFile {
                path: path.display().to_string(),
                source,
            })?,
        )),
        None => None,
    };

    let progress = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bytes} sent ({binary_bytes_per_sec}) · {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message("0 fragments persisted");
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    } else {
        ProgressBar::hidden()
    };

    let tracker = Arc::new(Mutex::new(AckTracker::default()));
    let bytes_sent = Arc::new(AtomicU64::new(0));
    let (body_sender, body_receiver) = mpsc::channel(BODY_QUEUE_DEPTH);
    let body = BodyStream {
        receiver: body_receiver,
        tracker: tracker.clone(),
        bytes_sent: bytes_sent.clone(),
        progress: progress.clone(),
    };
    let started = Instant::now();
    let input_name = args.input.clone();
    let mut body_task = tokio::spawn(feed_body(
        input,
        input_name,
        body_sender,
        tracker.clone(),
        args.fast,
    ));

    let client = reqwest::Client::builder()
        .build()
        .map_err(PutMediaError::Client)?;
    let mut request = client
        .post(&signed.url)
        .body(reqwest::Body::wrap_stream(body));
    for (name, value) in &signed.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(source) => {
            body_task.abort();
            progress.finish_and_clear();
            return Err(PutMediaError::Connect {
                url: signed.url,
                source,
            });
        }
    };
    if response.status() != reqwest::StatusCode::OK {
        body_task.abort();
        progress.finish_and_clear();
        let status = response.status();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or(v).to_owned())
            .unwrap_or_else(|| status.as_u16().to_string());
        let text = response.text().await.unwrap_or_default();
        eprintln!(
            "\nAn error occurred ({error_type}) when calling the PutMedia operation: {}",
            error_message(&text)
        );
        return Ok(ExitCode::from(EXIT_SERVICE_ERROR));
    }

    let mut line_buffer: Vec<u8> = Vec::new();
    let mut body_sent_at: Option<Instant> = None;
    let mut input_error: Option<PutMediaError> = None;
    let mut response_ended_early = false;
    let mut response_broke = false;
    loop {
        if body_sent_at.is_some() && lock(&tracker).all_settled() {
            break;
        }
        let ack_deadline = body_sent_at.map(|sent| tokio::time::Instant::from_std(sent + ACK_WAIT));
        tokio::select! {
            chunk = response.chunk() => match chunk {
                Ok(Some(chunk)) => {
                    line_buffer.extend_from_slice(&chunk);
                    while let Some(newline) = line_buffer.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = line_buffer.drain(..=newline).collect();
                        handle_ack_line(&line, &tracker, ack_file.as_mut(), &args.acks, &progress)?;
                    }
                }
                Ok(None) => {
                    response_ended_early = body_sent_at.is_none();
                    break;
                }
                Err(error) => {
                    progress.suspend(|| eprintln!("openkvs put-media: the response ended abnormally: {error}"));
                    response_ended_early = body_sent_at.is_none();
                    response_broke = true;
                    break;
                }
            },
            outcome = &mut body_task, if body_sent_at.is_none() => {
                body_sent_at = Some(Instant::now());
                match outcome {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => { input_error = Some(error); break; }
                    Err(join_error) => {
                        progress.suspend(|| eprintln!("openkvs put-media: the sender stopped: {join_error}"));
                        break;
                    }
                }
            }
            _ = tokio::time::sleep_until(ack_deadline.unwrap_or_else(tokio::time::Instant::now)), if ack_deadline.is_some() => {
                progress.suspend(|| eprintln!(
                    "openkvs put-media: gave up waiting for acks {} s after the last byte", ACK_WAIT.as_secs()
                ));
                break;
            }
        }
    }
    if !line_buffer.is_empty() {
        let rest = std::mem::take(&mut line_buffer);
        handle_ack_line(&rest, &tracker, ack_file.as_mut(), &args.acks, &progress)?;
    }
    body_task.abort();
    progress.finish_and_clear();
    if let Some(writer) = ack_file.as_mut() {
        writer.flush().map_err(|source| PutMediaError::AckFile {
            path: args
                .acks
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            source,
        })?;
    }
    if let Some(error) = input_error {
        return Err(error);
    }

    let tracker = lock(&tracker);
    let summary = tracker.summary(
        bytes_sent.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    );
    println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    let unacknowledged = tracker.unsettled();
    if unacknowledged > 0 {
        eprintln!("openkvs put-media: {unacknowledged} fragment(s) got neither a PERSISTED nor an ERROR ack");
    }
    if tracker.has_errors() {
        Ok(ExitCode::from(EXIT_ERROR_ACK))
    } else if response_broke {
        // A broken connection is not a success: the sender may already have handed the whole input over (it
        // stops quietly when the connection goes) before the response reports why. Fragments merely without
        // a PERSISTED ack are not: a stream with retention 0 gets none (docs/wire.md#putmedia-acks).
        Ok(ExitCode::from(EXIT_CLIENT_ERROR))
    } else if response_ended_early {
        // The upload did not complete: not a success even without an ERROR ack.
        eprintln!(
            "openkvs put-media: the server ended the response before the whole input was sent"
        );
        Ok(ExitCode::from(EXIT_CLIENT_ERROR))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// `Message` (service errors) or `message` (auth errors) of an AWS JSON error body (docs/wire.md#errors), else the
/// raw text.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|json| {
            json.get("Message")
                .or_else(|| json.get("message"))
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.trim().to_owned())
}

fn handle_ack_line(
    line: &[u8],
    tracker: &Mutex<AckTracker>,
    ack_file: Option<&mut std::io::BufWriter<std::fs::File>>,
    ack_path: &Option<PathBuf>,
    progress: &ProgressBar,
) -> Result<(), PutMediaError> {
    let arrived_at = Instant::now();
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\r', '\n']);
    if text.trim().is_empty() {
        return Ok(());
    }
    if let Some(writer) = ack_file {
        writeln!(writer, "{text}").map_err(|source| PutMediaError::AckFile {
            path: ack_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            source,
        })?;
    }
    let Some(ack) = parse_ack(text) else {
        progress.suspend(|| {
            eprintln!("openkvs put-media: ignoring a response line that is not an ack: {text}")
        });
        return Ok(());
    };
    let mut tracker = lock(tracker);
    tracker.record(&ack, arrived_at);
    if ack.event_type == "ERROR" {
        progress.suspend(|| eprintln!("openkvs put-media: ERROR ack: {text}"));
    }
    progress.set_message(format!("{} fragments persisted", tracker.persisted()));
    Ok(())
}

/// What goes down the body channel.
#[derive(Debug)]
pub enum BodyItem {
    Data(Bytes),
    /// Every byte of cluster `index` has been handed to the connection once this item is polled.
    ClusterComplete(usize),
}

/// The request body: yields data, notes cluster completion times and progress as the connection pulls.
pub struct BodyStream {
    receiver: mpsc::Receiver<BodyItem>,
    tracker: Arc<Mutex<AckTracker>>,
    bytes_sent: Arc<AtomicU64>,
    progress: ProgressBar,
}

impl BodyStream {
    /// A body fed by `receiver` that notes cluster completions in `tracker`, without progress display.
    pub fn new(receiver: mpsc::Receiver<BodyItem>, tracker: Arc<Mutex<AckTracker>>) -> Self {
        BodyStream {
            receiver,
            tracker,
            bytes_sent: Arc::new(AtomicU64::new(0)),
            progress: ProgressBar::hidden(),
        }
    }

    /// Bytes handed to the connection so far.
    pub fn bytes_sent(&self) -> Arc<AtomicU64> {
        self.bytes_sent.clone()
    }
}

impl Stream for BodyStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match self.receiver.poll_recv(cx) {
                Poll::Ready(Some(BodyItem::Data(bytes))) => {
                    let total = self
                        .bytes_sent
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed)
                        + bytes.len() as u64;
                    self.progress.set_position(total);
                    return Poll::Ready(Some(Ok(bytes)));
                }
                Poll::Ready(Some(BodyItem::ClusterComplete(index))) => {
                    lock(&self.tracker).cluster_finished(index, Instant::now());
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Reads the input, splits it at clusters and paces it (unless `fast`), feeding the body channel.
async fn feed_body(
    mut input: Pin<Box<dyn AsyncRead + Send>>,
    input_name: String,
    sender: mpsc::Sender<BodyItem>,
    tracker: Arc<Mutex<AckTracker>>,
    fast: bool,
) -> Result<(), PutMediaError> {
    let mut planner = BodyPlanner::default();
    let mut pacer = Pacer::default();
    let mut current_cluster: Option<usize> = None;
    let mut reported_parse_error = false;
    loop {
        let mut buffer = BytesMut::with_capacity(if fast {
            FAST_READ_CHUNK_BYTES
        } else {
            READ_CHUNK_BYTES
        });
        let read = input
            .read_buf(&mut buffer)
            .await
            .map_err(|source| PutMediaError::Input {
                path: input_name.clone(),
                source,
            })?;
        let steps = if read == 0 {
            planner.finish()
        } else {
            planner.push(buffer.freeze())
        };
        if !reported_parse_error {
            if let Some(error) = planner.parse_error() {
                eprintln!("openkvs put-media: the input does not parse as MKV ({error}); sending it unpaced anyway");
                reported_parse_error = true;
            }
        }
        for step in steps {
            let sent = match step {
                BodyStep::Bytes(bytes) => sender.send(BodyItem::Data(bytes)).await,
                BodyStep::ClusterStart {
                    timecode,
                    timecode_scale_ns,
                } => {
                    if let Some(previous) = current_cluster.take() {
                        if sender
                            .send(BodyItem::ClusterComplete(previous))
                            .await
                            .is_err()
                        {
                            return Ok(());
                        }
                    }
                    if !fast {
                        tokio::time::sleep_until(
                            pacer
                                .deadline(timecode, timecode_scale_ns, Instant::now())
                                .into(),
                        )
                        .await;
                    }
                    current_cluster =
                        Some(lock(&tracker).cluster_started(timecode, timecode_scale_ns));
                    Ok(())
                }
            };
            if sent.is_err() {
                // The connection is gone; the response side reports why.
                return Ok(());
            }
        }
        if read == 0 {
            if let Some(last) = current_cluster.take() {
                let _ = sender.send(BodyItem::ClusterComplete(last)).await;
            }
            return Ok(());
        }
    }
}

/// Real-time pacing: cluster N may start once `(timecode_N - timecode_first) * scale` has passed since the first
/// cluster started. Clusters with earlier timecodes than the first go at once.
#[derive(Debug, Default)]
struct Pacer {
    first: Option<(u64, Instant)>,
}

impl Pacer {
    fn deadline(&mut self, timecode: u64, timecode_scale_ns: u64, now: Instant) -> Instant {
        let (first_timecode, first_started) = *self.first.get_or_insert((timecode, now));
        let ticks = timecode.saturating_sub(first_timecode);
        let offset_ns = u128::from(ticks) * u128::from(timecode_scale_ns);
        let offset = Duration::from_nanos(u64::try_from(offset_ns).unwrap_or(u64::MAX));
        first_started.checked_add(offset).unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: PutMediaArgs,
    }

    fn parse(argv: &[&str]) -> Result<PutMediaArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("put-media").chain(argv.iter().copied()))
            .map(|cli| cli.args)
    }

    #[test]
    fn parses_arguments() {
        let args = parse(&["--stream-name", "cam", "in.mkv"]).unwrap();
        assert_eq!(args.stream_name.as_deref(), Some("cam"));
        assert_eq!(args.timecode_type, TimecodeType::Relative);
        assert!(!args.fast && args.acks.is_none() && args.producer_start_timestamp.is_none());
        assert_eq!(args.input, "in.mkv");

        let args = parse(&[
            "--stream-arn",
            "arn:aws:kinesisvideo:us-east-1:123:stream/cam/1",
            "--endpoint-url",
            "http://h:1",
            "--region",
            "eu-west-1",
            "--fast",
            "--timecode-type",
            "absolute",
            "--producer-start-timestamp",
            "1704067200.5",
            "--acks",
            "acks.jsonl",
            "-",
        ])
        .unwrap();
        assert_eq!(
            args.stream_arn.as_deref(),
            Some("arn:aws:kinesisvideo:us-east-1:123:stream/cam/1")
        );
        assert_eq!(args.timecode_type, TimecodeType::Absolute);
        assert!(args.fast);
        assert_eq!(
            args.producer_start_timestamp.as_deref(),
            Some("1704067200.5")
        );
        assert_eq!(args.acks, Some(PathBuf::from("acks.jsonl")));
        assert_eq!(args.input, "-");
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse(&["in.mkv"]).is_err(), "a stream is required");
        assert!(
            parse(&["--stream-name", "a", "--stream-arn", "b", "in.mkv"]).is_err(),
            "only one stream"
        );
        assert!(parse(&["--stream-name", "a"]).is_err(), "input is required");
        assert!(parse(&["--stream-name", "a", "--timecode-type", "SOMETIMES", "x"]).is_err());
        assert!(parse(&[
            "--stream-name",
            "a",
            "--producer-start-timestamp",
            "yesterday",
            "x"
        ])
        .is_err());
        assert!(parse(&[
            "--stream-name",
            "a",
            "--producer-start-timestamp",
            "1.2.3",
            "x"
        ])
        .is_err());
    }

    #[test]
    fn producer_start_timestamp_is_seconds_dot_millis() {
        let time = UNIX_EPOCH + Duration::from_millis(1_795_570_809_039);
        assert_eq!(format_producer_start_timestamp(time), "1795570809.039");
    }

    fn credentials() -> sigv4::Credentials {
        sigv4::Credentials {
            access_key_id: "AKIAPUTMEDIA".into(),
            secret_access_key: "put-media-secret".into(),
            session_token: Some("session".into()),
        }
    }

    fn verify(
        signed: &SignedPutMedia,
        path: &str,
        now: SystemTime,
    ) -> Result<sigv4::Verified, sigv4::AuthError> {
        // The server sees these headers plus whatever the HTTP client adds (transfer-encoding), which are unsigned.
        let mut received: Vec<(&str, &str)> = signed
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        received.push(("transfer-encoding", "chunked"));
        let request = sigv4::Request {
            method: "POST",
            path,
            query: "",
            headers: &received,
        };
        let keys = vec![("AKIAPUTMEDIA".to_owned(), "put-media-secret".to_owned())];
        sigv4::verify(
            &request,
            sigv4::EMPTY_SHA256,
            &keys,
            sigv4::Mode::RequireKnownKey,
            now,
            sigv4::DEFAULT_MAX_SKEW,
        )
    }

    #[test]
    fn put_media_request_is_signed_like_the_c_producer() {
        let now = UNIX_EPOCH + Duration::from_secs(1_704_067_200);
        let signed = signed_put_media(
            "http://127.0.0.1:4567",
            &StreamTarget::Name("cam".into()),
            TimecodeType::Relative,
            "1704067200.000",
            &credentials(),
            "eu-west-1",
            now,
        )
        .unwrap();
        assert_eq!(signed.url, "http://127.0.0.1:4567/putMedia");
        let header = |name: &str| {
            signed
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("host"), Some("127.0.0.1:4567"));
        assert_eq!(header("x-amzn-stream-name"), Some("cam"));
        assert_eq!(header("x-amzn-fragment-timecode-type"), Some("RELATIVE"));
        assert_eq!(
            header("x-amzn-producer-start-timestamp"),
            Some("1704067200.000")
        );
        assert_eq!(header("x-amzn-fragment-acknowledgment-required"), Some("1"));
        assert_eq!(header("x-amz-security-token"), Some("session"));
        assert_eq!(header("x-amz-content-sha256"), None);
        let verified = verify(&signed, "/putMedia", now).expect("the server accepts it");
        assert_eq!(verified.region, "eu-west-1");
        assert_eq!(verified.access_key_id, "AKIAPUTMEDIA");
    }

    #[test]
    fn endpoint_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(1_704_067_200);
        let sign = |endpoint: &str| {
            signed_put_media(
                endpoint,
                &StreamTarget::Arn("arn:x".into()),
                TimecodeType::Absolute,
                "0",
                &credentials(),
                "r",
                now,
            )
        };
        let signed = sign("https://kvs.example.com/prefix/").unwrap();
        assert_eq!(signed.url, "https://kvs.example.com/prefix/putMedia");
        assert!(signed
            .headers
            .contains(&("host".into(), "kvs.example.com".into())));
        assert!(signed
            .headers
            .contains(&("x-amzn-stream-arn".into(), "arn:x".into())));
        assert!(signed
            .headers
            .contains(&("x-amzn-fragment-timecode-type".into(), "ABSOLUTE".into())));
        verify(&signed, "/prefix/putMedia", now).expect("verifies");
        let default_port = sign("http://h:80").unwrap();
        assert!(default_port.headers.contains(&("host".into(), "h".into())));
        assert!(matches!(
            sign("not a url"),
            Err(PutMediaError::BadEndpoint { .. })
        ));
        assert!(matches!(
            sign("ftp://h/"),
            Err(PutMediaError::BadEndpoint { .. })
        ));
    }

    #[test]
    fn error_messages_from_either_key() {
        assert_eq!(
            error_message(r#"{"Message":"The requested stream is not found or not active."}"#),
            "The requested stream is not found or not active."
        );
        assert_eq!(
            error_message(r#"{"message":"Missing Authentication Token"}"#),
            "Missing Authentication Token"
        );
        assert_eq!(error_message("plain text\n"), "plain text");
    }

    #[test]
    fn pacing_follows_cluster_timecodes() {
        let mut pacer = Pacer::default();
        let t0 = Instant::now();
        assert_eq!(pacer.deadline(1000, 1_000_000, t0), t0);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(
            pacer.deadline(3000, 1_000_000, later),
            t0 + Duration::from_secs(2)
        );
        assert_eq!(
            pacer.deadline(500, 1_000_000, later),
            t0,
            "earlier timecodes go at once"
        );
        assert_eq!(
            pacer.deadline(1100, 10_000_000, later),
            t0 + Duration::from_secs(1)
        );
    }
}
