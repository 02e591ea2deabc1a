//! `/metrics` in the Prometheus text exposition format (version 0.0.4): requests by resource and
//! status, body bytes sent (streamed bodies counted as they go out), request latency histograms, active PutMedia connections and fragments
//! ingested; and per stream (label `stream`, [`StreamSeries`]): fragments and bytes ingested, the
//! PERSISTED latency histogram, the time of the last PERSISTED fragment, HLS/DASH media requests and
//! viewers. Hand-written over atomics and short mutexes: a few hundred lines instead of a registry
//! crate, and nothing on the hot path allocates after a label set is first seen.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http_body::{Frame, SizeHint};

use store::{StreamId, Timestamp};

use crate::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum_seconds: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if s <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum_seconds += s;
        self.count += 1;
    }
}

#[derive(Default)]
struct PerResource {
    by_status: BTreeMap<u16, u64>,
    /// Body bytes sent; streamed bodies add to it as their frames go out.
    bytes: Arc<AtomicU64>,
    latency: Histogram,
}

/// A viewer is an HLS or DASH session (its token's nonce) that had a media resource served within
/// this window: players reload a live playlist every target duration (1–10 s) and fetch a segment
/// as often, so a session still playing is seen well within it.
pub const VIEWER_WINDOW: Duration = Duration::from_secs(30);
/// Sessions remembered per stream. Beyond it new sessions are not counted (the gauge then reads
/// this bound, a floor) until remembered ones go quiet: the memory per stream stays bounded
/// (about 40 B a session) whatever clients do.
pub const MAX_VIEWERS_TRACKED: usize = 4096;

/// The sessions of one stream seen within [`VIEWER_WINDOW`], by session id, with when last seen.
#[derive(Default)]
struct Viewers {
    seen: HashMap<[u8; 12], Instant>,
}

impl Viewers {
    fn saw(&mut self, session: [u8; 12], now: Instant) {
        if let Some(t) = self.seen.get_mut(&session) {
            *t = now;
            return;
        }
        if self.seen.len() >= MAX_VIEWERS_TRACKED {
            self.forget_quiet(now);
            if self.seen.len() >= MAX_VIEWERS_TRACKED {
                return;
            }
        }
        self.seen.insert(session, now);
    }

    fn forget_quiet(&mut self, now: Instant) {
        self.seen
            .retain(|_, t| now.saturating_duration_since(*t) < VIEWER_WINDOW);
    }

    fn count(&mut self, now: Instant) -> usize {
        self.forget_quiet(now);
        self.seen.len()
    }
}

/// The series of one stream. Made on the stream's first fragment or media request on this node,
/// removed when the stream is deleted ([`Metrics::remove_stream`], [`Metrics::retain_streams`]).
pub struct StreamSeries {
    id: StreamId,
    /// When the entry was made: a sweep against an older list of streams leaves it alone.
    made: Instant,
    fragments: AtomicU64,
    bytes: AtomicU64,
    /// Server time (epoch ms) of the last PERSISTED fragment; `i64::MIN` before the first.
    last_persisted_ms: AtomicI64,
    /// From a fragment's last byte received to its PERSISTED ack.
    persisted_latency: Mutex<Histogram>,
    media_requests: AtomicU64,
    viewers: Mutex<Viewers>,
}

impl StreamSeries {
    fn new(id: StreamId, made: Instant) -> Self {
        StreamSeries {
            id,
            made,
            fragments: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            last_persisted_ms: AtomicI64::new(i64::MIN),
            persisted_latency: Mutex::new(Histogram::default()),
            media_requests: AtomicU64::new(0),
            viewers: Mutex::new(Viewers::default()),
        }
    }
}

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    resources: Mutex<BTreeMap<String, PerResource>>,
    fragments_ingested: AtomicU64,
    bytes_ingested: AtomicU64,
    /// By stream name. Bounded by the streams that exist: entries are made only for a stream the
    /// caller found in the catalog, and removed when it is deleted.
    streams: RwLock<HashMap<Box<str>, Arc<StreamSeries>>>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// One fragment of stream `name` made durable by PutMedia, `latency` after its last byte was
    /// received, at server time `at`.
    pub fn fragment_persisted(
        &self,
        name: &str,
        id: StreamId,
        bytes: u64,
        latency: Duration,
        at: Timestamp,
    ) {
        self.fragments_ingested.fetch_add(1, Ordering::Relaxed);
        self.bytes_ingested.fetch_add(bytes, Ordering::Relaxed);
        self.with_stream(name, id, |s| {
            s.fragments.fetch_add(1, Ordering::Relaxed);
            s.bytes.fetch_add(bytes, Ordering::Relaxed);
            s.last_persisted_ms.fetch_max(at.0, Ordering::Relaxed);
            lock(&s.persisted_latency).observe(latency);
        });
    }

    /// One HLS or DASH media resource of stream `name` served to session `session` (its token's
    /// nonce, `hls::token::session_id`) at `now`.
    pub fn media_request(&self, name: &str, id: StreamId, session: [u8; 12], now: Instant) {
        self.with_stream(name, id, |s| {
            s.media_requests.fetch_add(1, Ordering::Relaxed);
            lock(&s.viewers).saw(session, now);
        });
    }

    /// Runs `f` on the stream's series, made first if missing or left by an older stream of the
    /// same name. Once made, a read lock and a lookup by `&str`: no allocation.
    fn with_stream(&self, name: &str, id: StreamId, f: impl FnOnce(&StreamSeries)) {
        {
            let streams = self.streams.read().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = streams.get(name).filter(|s| s.id == id) {
                return f(s);
            }
        }
        let made = {
            let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
            match streams.get(name).filter(|s| s.id == id) {
                Some(s) => s.clone(),
                None => {
                    let s = Arc::new(StreamSeries::new(id, Instant::now()));
                    streams.insert(name.into(), s.clone());
                    s
                }
            }
        };
        f(&made);
    }

    /// Forgets the series of a deleted stream.
    pub fn remove_stream(&self, name: &str) {
        let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
        streams.remove(name);
    }

    /// Forgets the series of every stream `exists(name, id)` denies that were made before `listed`
    /// (when the caller read its list of streams): streams deleted on another node, or by a race
    /// with a request in flight. A series made after the list was read is kept.
    pub fn retain_streams(&self, listed: Instant, exists: impl Fn(&str, StreamId) -> bool) {
        let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
        streams.retain(|name, s| s.made >= listed || exists(name, s.id));
    }

    /// Counts one request; returns the resource's byte counter, for the body bytes as they go out.
    fn record(&self, resource: &str, status: u16, latency: Duration) -> Arc<AtomicU64> {
        let mut map = self.resources.lock().unwrap_or_else(|e| e.into_inner());
        let entry = match map.get_mut(resource) {
            Some(e) => e,
            None => map.entry(resource.to_owned()).or_default(),
        };
        *entry.by_status.entry(status).or_default() += 1;
        entry.latency.observe(latency);
        entry.bytes.clone()
    }

    /// The text exposition; viewers are counted as of `now`.
    pub fn render(&self, active_put_media: usize, now: Instant) -> String {
        let mut out = String::with_capacity(4096);
        let map = match self.resources.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        out.push_str("# HELP openkvs_http_requests_total HTTP requests by resource and status.\n");
        out.push_str("# TYPE openkvs_http_requests_total counter\n");
        for (resource, r) in map.iter() {
            for (status, n) in &r.by_status {
                let _ = writeln!(out, "openkvs_http_requests_total{{resource=\"{resource}\",status=\"{status}\"}} {n}");
            }
        }
        out.push_str(
            "# HELP openkvs_http_response_bytes_total Response body bytes served, by resource.\n",
        );
        out.push_str("# TYPE openkvs_http_response_bytes_total counter\n");
        for (resource, r) in map.iter() {
            let _ = writeln!(
                out,
                "openkvs_http_response_bytes_total{{resource=\"{resource}\"}} {}",
                r.bytes.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP openkvs_http_request_duration_seconds Time to the response head, by resource.\n");
        out.push_str("# TYPE openkvs_http_request_duration_seconds histogram\n");
        for (resource, r) in map.iter() {
            let label = format!("resource=\"{}\"", escape_label(resource));
            write_histogram(
                &mut out,
                "openkvs_http_request_duration_seconds",
                &label,
                &r.latency,
            );
        }
        drop(map);
        out.push_str("# HELP openkvs_put_media_connections Active PutMedia connections.\n");
        out.push_str("# TYPE openkvs_put_media_connections gauge\n");
        let _ = writeln!(out, "openkvs_put_media_connections {active_put_media}");
        out.push_str(
            "# HELP openkvs_fragments_ingested_total Fragments made durable by PutMedia.\n",
        );
        out.push_str("# TYPE openkvs_fragments_ingested_total counter\n");
        let _ = writeln!(
            out,
            "openkvs_fragments_ingested_total {}",
            self.fragments_ingested.load(Ordering::Relaxed)
        );
        out.push_str("# HELP openkvs_ingested_bytes_total Media bytes made durable by PutMedia.\n");
        out.push_str("# TYPE openkvs_ingested_bytes_total counter\n");
        let _ = writeln!(
            out,
            "openkvs_ingested_bytes_total {}",
            self.bytes_ingested.load(Ordering::Relaxed)
        );
        self.render_streams(&mut out, now);
        out
    }

    /// The per-stream families, streams by name.
    fn render_streams(&self, out: &mut String, now: Instant) {
        let mut streams: Vec<(String, Arc<StreamSeries>)> = {
            let map = self.streams.read().unwrap_or_else(|e| e.into_inner());
            map.iter()
                .map(|(name, s)| (format!("stream=\"{}\"", escape_label(name)), s.clone()))
                .collect()
        };
        streams.sort_by(|a, b| a.0.cmp(&b.0));
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        let counter =
            |out: &mut String, name: &str, help: &str, value: fn(&StreamSeries) -> u64| {
                family(out, name, "counter", help);
                for (label, s) in &streams {
                    let _ = writeln!(out, "{name}{{{label}}} {}", value(s));
                }
            };
        counter(
            out,
            "openkvs_stream_fragments_ingested_total",
            "Fragments of the stream made durable by PutMedia on this node.",
            |s| s.fragments.load(Ordering::Relaxed),
        );
        counter(
            out,
            "openkvs_stream_ingested_bytes_total",
            "Media bytes of the stream made durable by PutMedia on this node.",
            |s| s.bytes.load(Ordering::Relaxed),
        );
        family(
            out,
            "openkvs_stream_last_persisted_timestamp_seconds",
            "gauge",
            "Server time of the stream's last PERSISTED fragment on this node (epoch seconds).",
        );
        for (label, s) in &streams {
            let ms = s.last_persisted_ms.load(Ordering::Relaxed);
            if ms != i64::MIN {
                let _ = writeln!(
                    out,
                    "openkvs_stream_last_persisted_timestamp_seconds{{{label}}} {}.{:03}",
                    ms.div_euclid(1000),
                    ms.rem_euclid(1000)
                );
            }
        }
        let name = "openkvs_stream_persisted_latency_seconds";
        family(
            out,
            name,
            "histogram",
            "Time from a fragment's last byte received to its PERSISTED ack, by stream.",
        );
        for (label, s) in &streams {
            let h = lock(&s.persisted_latency);
            write_histogram(out, name, label, &h);
        }
        counter(
            out,
            "openkvs_stream_media_requests_total",
            "HLS and DASH resources of the stream served (playlists, manifests, segments).",
            |s| s.media_requests.load(Ordering::Relaxed),
        );
        family(
            out,
            "openkvs_stream_viewers",
            "gauge",
            "HLS and DASH sessions of the stream served a resource in the last 30 s.",
        );
        for (label, s) in &streams {
            let n = lock(&s.viewers).count(now);
            let _ = writeln!(out, "openkvs_stream_viewers{{{label}}} {n}");
        }
    }
}

/// One histogram's samples: its buckets, `+Inf`, sum and count, with `label` (`key="value"`).
fn write_histogram(out: &mut String, name: &str, label: &str, h: &Histogram) {
    for (bound, n) in BUCKETS.iter().zip(h.counts) {
        let _ = writeln!(out, "{name}_bucket{{{label},le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{label},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{label}}} {}", h.sum_seconds);
    let _ = writeln!(out, "{name}_count{{{label}}} {}", h.count);
}

/// A label value as the text format wants it: backslash, double quote and line feed escaped.
pub fn escape_label(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.into()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records every request routed to a known resource (unknown paths count as `other`, so a
/// scanner cannot grow the label set).
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // MatchedPath is an Arc'd string: keeping it costs no allocation.
    let resource = request.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let response = next.run(request).await;
    let resource = resource.as_ref().map_or("other", MatchedPath::as_str);
    let bytes = state
        .metrics
        .record(resource, response.status().as_u16(), started.elapsed());
    match response.body().size_hint().exact() {
        // A body of known size (playlists, errors, JSON) is counted at once, with no wrapper.
        Some(n) => {
            bytes.fetch_add(n, Ordering::Relaxed);
            response
        }
        // A streamed body (media fragments, PutMedia acks) is counted as it is sent.
        None => response.map(|body| Body::new(Counted { inner: body, bytes })),
    }
}

/// A response body that adds the bytes of each data frame to a counter as it goes out.
struct Counted {
    inner: Body,
    bytes: Arc<AtomicU64>,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll {
            if let Some(data) = frame.data_ref() {
                self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `GET /metrics`
pub async fn handler(State(state): State<AppState>) -> Response {
    let text = state
        .metrics
        .render(state.ingest.active_connections(), Instant::now());
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let m = Metrics::new();
        m.record(
            "/hls/v1/getMP4MediaFragment.mp4",
            200,
            Duration::from_millis(3),
        )
        .fetch_add(1000, Ordering::Relaxed);
        m.record(
            "/hls/v1/getMP4MediaFragment.mp4",
            200,
            Duration::from_millis(30),
        )
        .fetch_add(500, Ordering::Relaxed);
        m.record(
            "/hls/v1/getMP4MediaFragment.mp4",
            403,
            Duration::from_micros(100),
        );
        m.fragment_persisted(
            "cam",
            StreamId(1),
            4096,
            Duration::from_millis(2),
            Timestamp(0),
        );
        let text = m.render(2, Instant::now());
        let r = "resource=\"/hls/v1/getMP4MediaFragment.mp4\"";
        assert!(text.contains(&format!(
            "openkvs_http_requests_total{{{r},status=\"200\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "openkvs_http_requests_total{{{r},status=\"403\"}} 1\n"
        )));
        assert!(text.contains(&format!("openkvs_http_response_bytes_total{{{r}}} 1500\n")));
        assert!(text.contains(&format!(
            "openkvs_http_request_duration_seconds_bucket{{{r},le=\"0.005\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "openkvs_http_request_duration_seconds_bucket{{{r},le=\"+Inf\"}} 3\n"
        )));
        assert!(text.contains("openkvs_put_media_connections 2\n"));
        assert!(text.contains("openkvs_fragments_ingested_total 1\n"));
        assert!(text.contains("openkvs_ingested_bytes_total 4096\n"));
    }

    /// The lines of `text` that start with `prefix`.
    fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn per_stream_series() {
        let m = Metrics::new();
        let t0 = Instant::now();
        // Names may hold `.`, `-` and `_`: valid in a label value as they are.
        let cam = "site-1.cam_door";
        let id = StreamId(7);
        for (ms, at) in [(3, 1_700_000_000_123), (30, 1_700_000_001_120)] {
            m.fragment_persisted(cam, id, 1000, Duration::from_millis(ms), Timestamp(at));
        }
        m.media_request("other", StreamId(8), [1; 12], t0);
        let text = m.render(0, t0);
        let l = "stream=\"site-1.cam_door\"";
        assert!(text.contains(&format!(
            "openkvs_stream_fragments_ingested_total{{{l}}} 2\n"
        )));
        assert!(text.contains(&format!(
            "openkvs_stream_ingested_bytes_total{{{l}}} 2000\n"
        )));
        assert!(text.contains(&format!(
            "openkvs_stream_last_persisted_timestamp_seconds{{{l}}} 1700000001.120\n"
        )));
        let h = "openkvs_stream_persisted_latency_seconds";
        assert!(text.contains(&format!("{h}_bucket{{{l},le=\"0.005\"}} 1\n")));
        assert!(text.contains(&format!("{h}_bucket{{{l},le=\"0.05\"}} 2\n")));
        assert!(text.contains(&format!("{h}_bucket{{{l},le=\"+Inf\"}} 2\n")));
        assert!(text.contains(&format!("{h}_count{{{l}}} 2\n")));
        assert!(text.contains(&format!("{h}_sum{{{l}}} 0.033\n")));
        // A stream only watched has zero ingest and no last-persisted sample.
        assert!(text.contains("openkvs_stream_fragments_ingested_total{stream=\"other\"} 0\n"));
        assert_eq!(
            lines(&text, "openkvs_stream_last_persisted_timestamp_seconds{").len(),
            1
        );
        assert!(text.contains("openkvs_stream_media_requests_total{stream=\"other\"} 1\n"));
        assert!(text.contains("openkvs_stream_viewers{stream=\"other\"} 1\n"));
        assert!(text.contains(&format!("openkvs_stream_viewers{{{l}}} 0\n")));
        // Each family is announced once and its samples follow it together (the text format's rule).
        for family in [
            "openkvs_stream_fragments_ingested_total",
            "openkvs_stream_persisted_latency_seconds",
            "openkvs_stream_viewers",
        ] {
            assert_eq!(lines(&text, &format!("# TYPE {family} ")).len(), 1);
            let at: Vec<usize> = text
                .lines()
                .enumerate()
                .filter(|(_, x)| x.starts_with(family))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(at.last().unwrap() - at[0] + 1, at.len(), "{family} split");
        }
    }

    #[test]
    fn viewers_are_sessions_seen_in_the_window() {
        let m = Metrics::new();
        let t0 = Instant::now();
        let id = StreamId(1);
        // One session asking for many resources is one viewer; two sessions are two.
        for _ in 0..10 {
            m.media_request("cam", id, [1; 12], t0);
        }
        m.media_request("cam", id, [2; 12], t0 + Duration::from_secs(20));
        let viewers = |now| {
            let text = m.render(0, now);
            lines(&text, "openkvs_stream_viewers{")[0].to_owned()
        };
        assert_eq!(
            viewers(t0 + Duration::from_secs(21)),
            "openkvs_stream_viewers{stream=\"cam\"} 2"
        );
        // Session 1 went quiet 30 s ago: gone; session 2 still counts.
        assert_eq!(
            viewers(t0 + Duration::from_secs(30)),
            "openkvs_stream_viewers{stream=\"cam\"} 1"
        );
        assert_eq!(
            viewers(t0 + Duration::from_secs(50)),
            "openkvs_stream_viewers{stream=\"cam\"} 0"
        );
        assert!(m
            .render(0, t0)
            .contains("openkvs_stream_media_requests_total{stream=\"cam\"} 11\n"));
    }

    #[test]
    fn viewers_tracked_are_bounded() {
        let mut v = Viewers::default();
        let t0 = Instant::now();
        let session = |i: usize| {
            let mut s = [0u8; 12];
            s[..8].copy_from_slice(&(i as u64).to_le_bytes());
            s
        };
        for i in 0..MAX_VIEWERS_TRACKED + 500 {
            v.saw(session(i), t0);
        }
        assert_eq!(v.count(t0), MAX_VIEWERS_TRACKED);
        // Once the first ones go quiet, new sessions are counted again.
        let later = t0 + VIEWER_WINDOW;
        v.saw(session(1_000_000), later);
        assert_eq!(v.count(later), 1);
    }

    #[test]
    fn a_deleted_stream_loses_its_series() {
        let m = Metrics::new();
        let t0 = Instant::now();
        let persisted = |name: &str, id| {
            m.fragment_persisted(name, StreamId(id), 10, Duration::ZERO, Timestamp(1));
        };
        persisted("a", 1);
        persisted("b", 2);
        persisted("c", 3);
        m.remove_stream("a");
        let text = m.render(0, t0);
        assert!(!text.contains("stream=\"a\""), "{text}");
        assert!(text.contains("stream=\"b\""));
        // A sweep against the catalog's list: b was deleted elsewhere, c exists.
        let listed = Instant::now();
        m.retain_streams(listed, |name, id| name == "c" && id == StreamId(3));
        let text = m.render(0, t0);
        assert!(!text.contains("stream=\"b\""), "{text}");
        assert!(text.contains("openkvs_stream_fragments_ingested_total{stream=\"c\"} 1\n"));
        // A series made after the list was read survives a sweep that does not know its stream.
        persisted("d", 4);
        m.retain_streams(listed, |name, _| name == "c");
        assert!(m.render(0, t0).contains("stream=\"d\""));
        // A stream deleted and made again under the same name starts from zero.
        persisted("c", 5);
        assert!(m
            .render(0, t0)
            .contains("openkvs_stream_fragments_ingested_total{stream=\"c\"} 1\n"));
        // The totals keep counting everything.
        assert!(m
            .render(0, t0)
            .contains("openkvs_fragments_ingested_total 5\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("cam-1.a_b"), "cam-1.a_b");
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        let m = Metrics::new();
        m.media_request("x\"y", StreamId(1), [0; 12], Instant::now());
        assert!(m
            .render(0, Instant::now())
            .contains("openkvs_stream_viewers{stream=\"x\\\"y\"} 1\n"));
    }

    /// Counts the allocations of the thread that set `COUNTING`.
    struct CountingAlloc;

    thread_local! {
        static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        static ALLOCATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
        unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
            if COUNTING.try_with(|c| c.get()).unwrap_or(false) {
                let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            }
            unsafe { std::alloc::System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
            unsafe { std::alloc::System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: CountingAlloc = CountingAlloc;

    /// Allocations made by `f` on this thread.
    fn allocations(f: impl FnOnce()) -> u64 {
        ALLOCATIONS.with(|n| n.set(0));
        COUNTING.with(|c| c.set(true));
        f();
        COUNTING.with(|c| c.set(false));
        ALLOCATIONS.with(|n| n.get())
    }

    #[test]
    fn the_hot_path_does_not_allocate_once_a_stream_is_known() {
        let m = Metrics::new();
        let t0 = Instant::now();
        let id = StreamId(3);
        let made = allocations(|| {
            m.fragment_persisted("cam", id, 10, Duration::ZERO, Timestamp(1));
            m.media_request("cam", id, [9; 12], t0);
        });
        assert!(made > 0, "the counter counts");
        let after = allocations(|| {
            for i in 0..100 {
                m.fragment_persisted("cam", id, 10, Duration::from_millis(i), Timestamp(2));
                m.media_request("cam", id, [9; 12], t0 + Duration::from_millis(i));
            }
        });
        assert_eq!(after, 0);
    }
}
