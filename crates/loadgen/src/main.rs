//! `openkvs-load`: the capacity of one openkvs node, measured (docs/capacity.md).
//!
//! N producers, each a camera on its own stream (CreateStream, then one long real-time PutMedia looping a fixture
//! with fresh timestamps), and M viewers spread over those streams, each playing LIVE HLS the way hls.js does.
//! Starts are spread over `--ramp-seconds`; figures are taken over `--duration` seconds that begin
//! `--settle-seconds` after the ramp. Prints a table on stderr and one JSON line on stdout.
//!
//! A separate binary, not an `openkvs` subcommand, so the server binary carries none of it.

mod control;
mod fixture;
mod producer;
mod stats;
mod viewer;

use clap::Parser;
use control::Control;
use fixture::Fixture;
use openkvs::put_media::acks::LatencySummary;
use openkvs::put_media::config::DEFAULT_REGION;
use producer::Producer;
use stats::{Count, Report, Sample, Stats};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use viewer::Viewer;

#[derive(Parser, Debug)]
#[command(
    name = "openkvs-load",
    version,
    about = "Load one openkvs server with real-time producers and LIVE HLS viewers"
)]
struct Args {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:4567")]
    endpoint: String,
    /// Producers (one stream and one PutMedia connection each).
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Viewers, spread round-robin over the producers' streams.
    #[arg(long, default_value_t = 0)]
    viewers: usize,
    /// Length of the measurement window, seconds.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Producers and viewers start evenly over this many seconds.
    #[arg(long, default_value_t = 5.0)]
    ramp_seconds: f64,
    /// Pause between the end of the ramp and the measurement window (the last viewers find their session).
    #[arg(long, default_value_t = 4.0)]
    settle_seconds: f64,
    /// MKV looped by every producer.
    #[arg(long, default_value = "tests/fixtures/h264_aac.mkv")]
    fixture: String,
    /// Stream names are PREFIX-0 … PREFIX-(N-1) [default: load-<pid>].
    #[arg(long)]
    stream_prefix: Option<String>,
    /// DataRetentionInHours of the streams created.
    #[arg(long, default_value_t = 1)]
    retention_hours: u32,
    /// Signing region [default: $AWS_REGION, $AWS_DEFAULT_REGION, us-east-1].
    #[arg(long)]
    region: Option<String>,
    /// The server's process id, to report its CPU use over the window too.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Criterion: every PERSISTED ack under this many ms.
    #[arg(long, default_value_t = 100.0)]
    max_persist_ms: f64,
    /// Criterion: every playlist answer under this many ms.
    #[arg(long, default_value_t = 50.0)]
    max_playlist_ms: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("openkvs-load: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(report) => {
            eprint!("{}", table(&report));
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("openkvs-load: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<Report, String> {
    let bytes =
        std::fs::read(&args.fixture).map_err(|e| format!("cannot read {}: {e}", args.fixture))?;
    let fixture = Arc::new(Fixture::parse(&bytes).map_err(|e| format!("{}: {e}", args.fixture))?);
    let endpoint = reqwest::Url::parse(&args.endpoint)
        .map_err(|e| format!("--endpoint {}: {e}", args.endpoint))?;
    let (credentials, _) = openkvs::put_media::environment_credentials(None);
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let region = args
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"));
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
    let control = Arc::new(Control {
        client,
        endpoint,
        credentials,
        region: region.unwrap_or_else(|| DEFAULT_REGION.to_owned()),
    });
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let prefix = args
        .stream_prefix
        .clone()
        .unwrap_or_else(|| format!("load-{}", std::process::id()));
    let producers = args.producers.max(1);
    let lives: Vec<_> = (0..producers)
        .map(|_| Arc::new(tokio::sync::Notify::new()))
        .collect();
    let ramp = Duration::from_secs_f64(args.ramp_seconds.max(0.0));
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for (index, live) in lives.iter().enumerate() {
        let producer = Producer {
            stream: format!("{prefix}-{index}"),
            control: control.clone(),
            fixture: fixture.clone(),
            stats: stats.clone(),
            stop: stop.clone(),
            live: live.clone(),
        };
        let at = started + ramp.mul_f64(index as f64 / producers as f64);
        let retention = args.retention_hours;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            producer.run(retention).await;
        }));
    }
    for index in 0..args.viewers {
        let stream = index % producers;
        let viewer = Viewer {
            stream: format!("{prefix}-{stream}"),
            control: control.clone(),
            stats: stats.clone(),
            stop: stop.clone(),
            live: lives[stream].clone(),
        };
        let at = started + ramp.mul_f64(index as f64 / args.viewers as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            viewer.run().await;
        }));
    }

    tokio::time::sleep_until(
        started + ramp + Duration::from_secs_f64(args.settle_seconds.max(0.0)),
    )
    .await;
    let own_pid = std::process::id().to_string();
    let server_pid = args.server_pid.map(|pid| pid.to_string());
    let cpu_before = (
        stats::cpu_seconds(&own_pid),
        server_pid.as_deref().and_then(stats::cpu_seconds),
    );
    let window_start = Instant::now();
    stats.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.duration.max(0.1))).await;
    stats.measuring.store(false, Ordering::Relaxed);
    let window = window_start.elapsed().as_secs_f64();
    let cpu_after = (
        stats::cpu_seconds(&own_pid),
        server_pid.as_deref().and_then(stats::cpu_seconds),
    );
    let load_average = stats::load_average();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let percent = |before: Option<f64>, after: Option<f64>| {
        Some(((after? - before?) / window * 1000.0).round() / 10.0)
    };
    Ok(report(
        &args,
        &stats,
        window,
        percent(cpu_before.0, cpu_after.0),
        percent(cpu_before.1, cpu_after.1),
        load_average,
    ))
}

fn report(
    args: &Args,
    stats: &Stats,
    window: f64,
    client_cpu: Option<f64>,
    server_cpu: Option<f64>,
    load_average: Option<f64>,
) -> Report {
    let per_second = |n: u64| (n as f64 / window * 10.0).round() / 10.0;
    let persist = stats.summary(Sample::Persist);
    let playlist = stats.summary(Sample::Playlist);
    let errors = [
        Count::ErrorAcks,
        Count::Unacknowledged,
        Count::ProducerFailures,
        Count::ControlErrors,
        Count::Non200,
        Count::HttpErrors,
    ]
    .iter()
    .map(|&count| stats.get(count))
    .sum::<u64>();
    let under = |summary: &LatencySummary, limit: f64| {
        summary.count > 0 && summary.max.is_some_and(|max| max < limit)
    };
    let pass = errors == 0
        && under(&persist, args.max_persist_ms)
        && (args.viewers == 0 || under(&playlist, args.max_playlist_ms))
        && stats.get(Count::ViewersPlaying) == args.viewers as u64;
    Report {
        producers: args.producers,
        viewers: args.viewers,
        window_seconds: (window * 10.0).round() / 10.0,
        persist_ms: persist,
        playlist_ms: playlist,
        fragment_ms: stats.summary(Sample::Fragment),
        init_ms: stats.summary(Sample::Init),
        persisted: stats.get(Count::Persisted),
        error_acks: stats.get(Count::ErrorAcks),
        unacknowledged: stats.get(Count::Unacknowledged),
        producer_failures: stats.get(Count::ProducerFailures),
        control_errors: stats.get(Count::ControlErrors),
        non_200: stats.get(Count::Non200),
        http_errors: stats.get(Count::HttpErrors),
        viewers_playing: stats.get(Count::ViewersPlaying),
        fragments_per_second: per_second(stats.get(Count::Persisted)),
        viewer_requests_per_second: per_second(
            stats.get(Count::Playlists) + stats.get(Count::Fragments),
        ),
        fragment_megabytes_per_second: (stats.get(Count::FragmentBytes) as f64 / window / 1e4)
            .round()
            / 100.0,
        client_cpu_percent: client_cpu,
        server_cpu_percent: server_cpu,
        load_average_1m: load_average,
        max_persist_ms: args.max_persist_ms,
        max_playlist_ms: args.max_playlist_ms,
        passed: pass,
    }
}

fn table(report: &Report) -> String {
    let cell = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    let row = |name: &str, s: &LatencySummary| {
        format!(
            "{name:<18} {:>8} {:>8} {:>8} {:>8}\n",
            cell(s.p50),
            cell(s.p99),
            cell(s.max),
            s.count
        )
    };
    let mut out = format!(
        "openkvs-load: {} producers, {} viewers ({} playing), {:.1} s window\n{:<18} {:>8} {:>8} {:>8} {:>8}\n",
        report.producers, report.viewers, report.viewers_playing, report.window_seconds, "latency (ms)", "p50", "p99", "max", "count"
    );
    out += &row("PERSISTED ack", &report.persist_ms);
    out += &row("playlist", &report.playlist_ms);
    out += &row("media fragment", &report.fragment_ms);
    out += &row("init fragment", &report.init_ms);
    out += &format!(
        "fragments/s {:.1}, viewer requests/s {:.1}, fragment MB/s {:.2}\nerrors: {} ERROR acks, {} unacknowledged, {} PutMedia failures, {} control-plane, {} non-200, {} HTTP\nCPU: client {}%, server {}%, load average {}\n{}\n",
        report.fragments_per_second,
        report.viewer_requests_per_second,
        report.fragment_megabytes_per_second,
        report.error_acks,
        report.unacknowledged,
        report.producer_failures,
        report.control_errors,
        report.non_200,
        report.http_errors,
        cell(report.client_cpu_percent),
        cell(report.server_cpu_percent),
        cell(report.load_average_1m),
        if report.passed { "PASS" } else { "FAIL" }
    );
    out
}
