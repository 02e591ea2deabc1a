//! What the run measured: latency samples and counters, kept only inside the measurement window.

use openkvs::put_media::acks::LatencySummary;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// The kinds of latency sample.
#[derive(Debug, Clone, Copy)]
pub enum Sample {
    /// PutMedia: fragment complete on the wire → its PERSISTED ack.
    Persist,
    /// A master or media playlist: request sent → whole body.
    Playlist,
    /// `getMP4MediaFragment.mp4`.
    Fragment,
    /// `getMP4InitFragment.mp4`.
    Init,
}

#[derive(Debug, Clone, Copy)]
pub enum Count {
    Persisted,
    ErrorAcks,
    /// A PutMedia that could not connect, was refused, or whose response ended before we ended the body.
    ProducerFailures,
    /// Sent fragments that got neither PERSISTED nor ERROR before the connection ended.
    Unacknowledged,
    /// CreateStream / GetDataEndpoint / GetHLSStreamingSessionURL failures (other than "no fragment yet").
    ControlErrors,
    /// Viewer HTTP answers other than 200.
    Non200,
    /// Viewer requests that failed at the connection level.
    HttpErrors,
    Playlists,
    Fragments,
    FragmentBytes,
    ViewersPlaying,
}

const COUNTS: usize = 11;

#[derive(Default)]
pub struct Stats {
    pub measuring: AtomicBool,
    samples: [Mutex<Vec<f64>>; 4],
    counts: [AtomicU64; COUNTS],
}

impl Stats {
    pub fn sample(&self, kind: Sample, ms: f64) {
        if self.measuring.load(Ordering::Relaxed) {
            if let Ok(mut samples) = self.samples[kind as usize].lock() {
                samples.push(ms);
            }
        }
    }

    pub fn samples(&self, kind: Sample, many: Vec<f64>) {
        if self.measuring.load(Ordering::Relaxed) && !many.is_empty() {
            if let Ok(mut samples) = self.samples[kind as usize].lock() {
                samples.extend(many);
            }
        }
    }

    /// Adds `n` when measuring. Errors are counted always: a failure during ramp-up is a failure too.
    pub fn add(&self, count: Count, n: u64) {
        let always = matches!(
            count,
            Count::ErrorAcks
                | Count::ProducerFailures
                | Count::ControlErrors
                | Count::Non200
                | Count::HttpErrors
        );
        if always
            || self.measuring.load(Ordering::Relaxed)
            || matches!(count, Count::ViewersPlaying)
        {
            self.counts[count as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn get(&self, count: Count) -> u64 {
        self.counts[count as usize].load(Ordering::Relaxed)
    }

    pub fn summary(&self, kind: Sample) -> LatencySummary {
        let samples = self.samples[kind as usize]
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        LatencySummary::of(&samples)
    }
}

/// Process CPU time (user + system) in seconds, from `/proc/PID/stat` (ticks of 1/100 s, Linux's USER_HZ).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may hold spaces: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The one JSON line.
#[derive(Debug, Serialize)]
pub struct Report {
    pub producers: usize,
    pub viewers: usize,
    pub window_seconds: f64,
    pub persist_ms: LatencySummary,
    pub playlist_ms: LatencySummary,
    pub fragment_ms: LatencySummary,
    pub init_ms: LatencySummary,
    pub persisted: u64,
    pub error_acks: u64,
    pub unacknowledged: u64,
    pub producer_failures: u64,
    pub control_errors: u64,
    pub non_200: u64,
    pub http_errors: u64,
    pub viewers_playing: u64,
    pub fragments_per_second: f64,
    pub viewer_requests_per_second: f64,
    pub fragment_megabytes_per_second: f64,
    pub client_cpu_percent: Option<f64>,
    pub server_cpu_percent: Option<f64>,
    pub load_average_1m: Option<f64>,
    pub max_persist_ms: f64,
    pub max_playlist_ms: f64,
    /// Every PERSISTED ack under `max_persist_ms`, every playlist under `max_playlist_ms`, no error of any kind,
    /// every viewer playing.
    pub passed: bool,
}
