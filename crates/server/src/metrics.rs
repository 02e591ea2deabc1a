//! `/metrics` in the Prometheus text exposition format (version 0.0.4): requests by resource and
//! status, body bytes sent (streamed bodies counted as they go out), request latency histograms, active PutMedia connections and fragments
//! ingested. Hand-written over atomics and one short mutex per request: a few dozen lines instead
//! of a registry crate, and nothing on the hot path allocates after a label set is first seen.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http_body::{Frame, SizeHint};

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

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    resources: Mutex<BTreeMap<String, PerResource>>,
    fragments_ingested: AtomicU64,
    bytes_ingested: AtomicU64,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// One fragment made durable by PutMedia.
    pub fn fragment_ingested(&self, bytes: u64) {
        self.fragments_ingested.fetch_add(1, Ordering::Relaxed);
        self.bytes_ingested.fetch_add(bytes, Ordering::Relaxed);
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

    /// The text exposition.
    pub fn render(&self, active_put_media: usize) -> String {
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
            let h = &r.latency;
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(out, "openkvs_http_request_duration_seconds_bucket{{resource=\"{resource}\",le=\"{bound}\"}} {n}");
            }
            let _ = writeln!(out, "openkvs_http_request_duration_seconds_bucket{{resource=\"{resource}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(
                out,
                "openkvs_http_request_duration_seconds_sum{{resource=\"{resource}\"}} {}",
                h.sum_seconds
            );
            let _ = writeln!(
                out,
                "openkvs_http_request_duration_seconds_count{{resource=\"{resource}\"}} {}",
                h.count
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
        out
    }
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
    let text = state.metrics.render(state.ingest.active_connections());
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
        m.fragment_ingested(4096);
        let text = m.render(2);
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
}
