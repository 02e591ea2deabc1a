//! PutMedia acknowledgements (docs/wire.md#putmedia-acks): counting them per `EventType`, matching PERSISTED / ERROR acks
//! to the clusters we sent, and the final JSON summary with persist latency.

use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

/// One ack line, as far as we need it. Unknown `EventType`s are kept but not counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    pub event_type: String,
    /// Echo of the cluster timecode as sent (ms with the default TimecodeScale); missing on IDLE.
    pub fragment_timecode: Option<u64>,
    /// The whole line, for the `Errors` list of the summary.
    pub raw: serde_json::Value,
}

/// Parses one newline-delimited ack. `None` for blank lines and lines that are not JSON objects.
pub fn parse_ack(line: &str) -> Option<Ack> {
    let raw: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    let event_type = raw.get("EventType")?.as_str()?.to_owned();
    let fragment_timecode = raw.get("FragmentTimecode").and_then(|v| {
        v.as_u64().or_else(|| {
            v.as_f64()
                .filter(|f| *f >= 0.0 && f.is_finite())
                .map(|f| f as u64)
        })
    });
    Some(Ack {
        event_type,
        fragment_timecode,
        raw,
    })
}

/// A cluster we sent (found by timecode through `by_timecode`): when its last byte was handed to the
/// connection, and whether its PERSISTED / ERROR ack came.
#[derive(Debug, Clone)]
struct SentCluster {
    finished_at: Option<Instant>,
    settled: bool,
}

/// Counts acks and measures persist latency: from the moment a cluster's last byte was handed to the
/// connection to the arrival of the PERSISTED ack whose FragmentTimecode equals that cluster's timecode.
#[derive(Debug, Default)]
pub struct AckTracker {
    clusters: Vec<SentCluster>,
    /// Timecode → indices in `clusters` (a timecode may repeat after a restart of RELATIVE timecodes).
    by_timecode: HashMap<u64, Vec<usize>>,
    buffering: u64,
    received: u64,
    persisted: u64,
    idle: u64,
    errors: Vec<serde_json::Value>,
    persist_latencies_ms: Vec<f64>,
}

impl AckTracker {
    /// A cluster's first byte is about to be sent; returns its index for [`Self::cluster_finished`].
    pub fn cluster_started(&mut self, timecode: u64, timecode_scale_ns: u64) -> usize {
        let timecode_ms =
            u64::try_from(u128::from(timecode) * u128::from(timecode_scale_ns) / 1_000_000)
                .unwrap_or(u64::MAX);
        let index = self.clusters.len();
        self.clusters.push(SentCluster {
            finished_at: None,
            settled: false,
        });
        self.by_timecode.entry(timecode).or_default().push(index);
        // Acks echo ms; with a non-default TimecodeScale accept the ms form too.
        if timecode_ms != timecode {
            self.by_timecode.entry(timecode_ms).or_default().push(index);
        }
        index
    }

    /// The last byte of cluster `index` was handed to the connection.
    pub fn cluster_finished(&mut self, index: usize, at: Instant) {
        if let Some(cluster) = self.clusters.get_mut(index) {
            cluster.finished_at.get_or_insert(at);
        }
    }

    /// Takes the persist latencies measured since the last call (for callers that aggregate many trackers).
    pub fn take_persist_latencies_ms(&mut self) -> Vec<f64> {
        std::mem::take(&mut self.persist_latencies_ms)
    }

    pub fn persisted(&self) -> u64 {
        self.persisted
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Sent clusters still without a PERSISTED or ERROR ack.
    pub fn unsettled(&self) -> usize {
        self.clusters
            .iter()
            .filter(|cluster| !cluster.settled)
            .count()
    }

    /// Every sent cluster has had its PERSISTED or ERROR ack.
    pub fn all_settled(&self) -> bool {
        self.clusters.iter().all(|cluster| cluster.settled)
    }

    pub fn record(&mut self, ack: &Ack, arrived_at: Instant) {
        match ack.event_type.as_str() {
            "BUFFERING" => self.buffering += 1,
            "RECEIVED" => self.received += 1,
            "IDLE" => self.idle += 1,
            "PERSISTED" => {
                self.persisted += 1;
                if let Some(cluster) = self.settle(ack.fragment_timecode) {
                    // An ack before we noted the last byte (a race at most) counts as zero latency.
                    let latency = cluster
                        .finished_at
                        .map(|finished| {
                            arrived_at.saturating_duration_since(finished).as_secs_f64() * 1000.0
                        })
                        .unwrap_or(0.0);
                    self.persist_latencies_ms.push(latency);
                }
            }
            "ERROR" => {
                self.errors.push(ack.raw.clone());
                self.settle(ack.fragment_timecode);
            }
            _ => {}
        }
    }

    /// Marks the oldest unsettled cluster with this timecode settled and returns it.
    fn settle(&mut self, fragment_timecode: Option<u64>) -> Option<SentCluster> {
        let indices = self.by_timecode.get(&fragment_timecode?)?;
        let index = *indices
            .iter()
            .find(|&&index| !self.clusters[index].settled)?;
        let cluster = &mut self.clusters[index];
        cluster.settled = true;
        Some(cluster.clone())
    }

    pub fn summary(&self, bytes_sent: u64, seconds: f64) -> Summary {
        Summary {
            bytes_sent,
            seconds: (seconds * 1000.0).round() / 1000.0,
            buffering: self.buffering,
            received: self.received,
            persisted: self.persisted,
            idle: self.idle,
            errors: self.errors.clone(),
            persist_latency_ms: LatencySummary::of(&self.persist_latencies_ms),
        }
    }
}

/// The JSON line printed at the end.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Summary {
    pub bytes_sent: u64,
    pub seconds: f64,
    pub buffering: u64,
    pub received: u64,
    pub persisted: u64,
    pub idle: u64,
    pub errors: Vec<serde_json::Value>,
    #[serde(rename = "PersistLatencyMs")]
    pub persist_latency_ms: LatencySummary,
}

/// Nearest-rank percentiles in ms (`null` when nothing was measured).
#[derive(Debug, Serialize, PartialEq)]
pub struct LatencySummary {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub count: usize,
}

impl LatencySummary {
    pub fn of(samples_ms: &[f64]) -> Self {
        let mut sorted = samples_ms.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rounded = |ms: f64| (ms * 10.0).round() / 10.0;
        let percentile = |q: f64| -> Option<f64> {
            if sorted.is_empty() {
                return None;
            }
            // Nearest rank: the smallest sample with at least q of the samples at or below it.
            let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
            sorted.get(rank.min(sorted.len()) - 1).copied().map(rounded)
        };
        LatencySummary {
            p50: percentile(0.50),
            p99: percentile(0.99),
            max: sorted.last().copied().map(rounded),
            count: sorted.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_real_ack_lines() {
        let ack = parse_ack(
            r#"{"EventType":"PERSISTED","FragmentTimecode":1663277247152,"FragmentNumber":"913"}"#,
        )
        .unwrap();
        assert_eq!(
            (ack.event_type.as_str(), ack.fragment_timecode),
            ("PERSISTED", Some(1_663_277_247_152))
        );
        let idle = parse_ack("{\"EventType\":\"IDLE\"}\r").unwrap();
        assert_eq!(idle.fragment_timecode, None);
        assert_eq!(parse_ack(""), None);
        assert_eq!(parse_ack("not json"), None);
        assert_eq!(parse_ack("[1]"), None);
    }

    #[test]
    fn latency_percentiles() {
        assert_eq!(
            LatencySummary::of(&[]),
            LatencySummary {
                p50: None,
                p99: None,
                max: None,
                count: 0
            }
        );
        let one = LatencySummary::of(&[12.34]);
        assert_eq!(
            (one.p50, one.p99, one.max, one.count),
            (Some(12.3), Some(12.3), Some(12.3), 1)
        );
        let hundred: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let summary = LatencySummary::of(&hundred);
        assert_eq!(
            (summary.p50, summary.p99, summary.max, summary.count),
            (Some(50.0), Some(99.0), Some(100.0), 100)
        );
    }

    #[test]
    fn matches_persisted_acks_to_clusters_and_measures_latency() {
        let t0 = Instant::now();
        let mut tracker = AckTracker::default();
        let first = tracker.cluster_started(0, 1_000_000);
        let second = tracker.cluster_started(2000, 1_000_000);
        tracker.cluster_finished(first, t0);
        tracker.cluster_finished(second, t0 + Duration::from_millis(2000));
        assert!(!tracker.all_settled());

        let line = |kind: &str, timecode: u64| {
            parse_ack(&format!(
                r#"{{"EventType":"{kind}","FragmentTimecode":{timecode},"FragmentNumber":"1"}}"#
            ))
            .unwrap()
        };
        tracker.record(&line("BUFFERING", 0), t0);
        tracker.record(&line("RECEIVED", 0), t0);
        tracker.record(&line("PERSISTED", 0), t0 + Duration::from_millis(40));
        tracker.record(&parse_ack(r#"{"EventType":"IDLE"}"#).unwrap(), t0);
        assert!(!tracker.all_settled());
        tracker.record(&line("PERSISTED", 2000), t0 + Duration::from_millis(2100));
        // A PERSISTED ack for a timecode we never sent counts but has no latency.
        tracker.record(&line("PERSISTED", 777), t0);
        assert!(tracker.all_settled());
        assert!(!tracker.has_errors());

        let summary = tracker.summary(1234, 2.5);
        assert_eq!(summary.persisted, 3);
        assert_eq!(
            summary.persist_latency_ms,
            LatencySummary {
                p50: Some(40.0),
                p99: Some(100.0),
                max: Some(100.0),
                count: 2
            }
        );
        let json = serde_json::to_string(&summary).unwrap();
        assert_eq!(
            json,
            r#"{"BytesSent":1234,"Seconds":2.5,"Buffering":1,"Received":1,"Persisted":3,"Idle":1,"Errors":[],"PersistLatencyMs":{"p50":40.0,"p99":100.0,"max":100.0,"count":2}}"#
        );
    }

    #[test]
    fn error_acks_settle_and_are_listed() {
        let mut tracker = AckTracker::default();
        tracker.cluster_started(5, 1_000_000);
        let error = parse_ack(
            r#"{"EventType":"ERROR","FragmentTimecode":5,"FragmentNumber":"9","ErrorCode":"MAX_FRAGMENT_DURATION_REACHED","ErrorId":4002}"#,
        )
        .unwrap();
        tracker.record(&error, Instant::now());
        assert!(tracker.all_settled() && tracker.has_errors());
        assert_eq!(tracker.summary(0, 0.0).errors[0]["ErrorId"], 4002);
    }

    #[test]
    fn non_default_timecode_scale_matches_either_form() {
        let mut tracker = AckTracker::default();
        tracker.cluster_started(100, 10_000_000); // 100 ticks of 10 ms = 1000 ms
        let ack = parse_ack(r#"{"EventType":"PERSISTED","FragmentTimecode":1000}"#).unwrap();
        tracker.record(&ack, Instant::now());
        assert!(tracker.all_settled());
    }
}
