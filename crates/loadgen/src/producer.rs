//! One producer: a camera sending the fixture in a loop, frame by frame at its presentation time, on one long
//! PutMedia connection (reconnecting after a second if the connection fails).
//!
//! Persist latency, as `openkvs put-media` measures it ([`AckTracker`]): from the moment a fragment's last byte was
//! handed to the connection to the arrival of its PERSISTED ack. Our clusters have unknown sizes, as the producer
//! SDKs write them, so the server can only know a fragment is complete when the next Cluster's ID arrives (or the
//! body ends): the "last byte" of fragment K is therefore the next cluster's header, sent with that cluster's first
//! frame, and the time counted is the server's work (parse the end, fsync bytes and catalog row, ack), not the GOP.

use crate::control::Control;
use crate::fixture::{Fixture, TIMECODE_SCALE_NS};
use crate::stats::{Count, Sample, Stats};
use bytes::BytesMut;
use openkvs::put_media::acks::{parse_ack, AckTracker};
use openkvs::put_media::{
    format_producer_start_timestamp, lock, signed_put_media, BodyItem, BodyStream, StreamTarget,
    TimecodeType,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// How long a stopping producer waits for its last acks.
const FINAL_ACK_WAIT: Duration = Duration::from_secs(5);
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

pub struct Producer {
    pub stream: String,
    pub control: Arc<Control>,
    pub fixture: Arc<Fixture>,
    pub stats: Arc<Stats>,
    pub stop: Arc<AtomicBool>,
    /// Set once the first PERSISTED ack came (viewers of this stream wait for it).
    pub live: Arc<tokio::sync::Notify>,
}

impl Producer {
    pub async fn run(self, retention_hours: u32) {
        if let Err(error) = self
            .control
            .create_stream(&self.stream, retention_hours)
            .await
        {
            eprintln!("openkvs-load: CreateStream {}: {}", self.stream, error.0);
            self.stats.add(Count::ControlErrors, 1);
            return;
        }
        while !self.stop.load(Ordering::Relaxed) {
            if let Err(reason) = self.connection().await {
                eprintln!("openkvs-load: PutMedia {}: {reason}", self.stream);
                self.stats.add(Count::ProducerFailures, 1);
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        }
    }

    /// One PutMedia, until `stop` (Ok) or a failure.
    async fn connection(&self) -> Result<(), String> {
        let started_wall = SystemTime::now();
        let start_ms = started_wall
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let signed = signed_put_media(
            self.control.endpoint.as_str(),
            &StreamTarget::Name(self.stream.clone()),
            TimecodeType::Absolute,
            &format_producer_start_timestamp(started_wall),
            &self.control.credentials,
            &self.control.region,
            started_wall,
        )
        .map_err(|e| e.to_string())?;
        let tracker = Arc::new(Mutex::new(AckTracker::default()));
        let (sender, receiver) = mpsc::channel(2);
        let body = BodyStream::new(receiver, tracker.clone());
        let mut feeder = tokio::spawn(feed(
            self.fixture.clone(),
            sender,
            tracker.clone(),
            start_ms,
            self.stop.clone(),
        ));
        let mut request = self
            .control
            .client
            .post(&signed.url)
            .body(reqwest::Body::wrap_stream(body));
        for (name, value) in &signed.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let outcome = self.exchange(request, &tracker, &mut feeder).await;
        feeder.abort();
        let unsettled = lock(&tracker).unsettled() as u64;
        self.stats.add(Count::Unacknowledged, unsettled);
        outcome
    }

    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        tracker: &Mutex<AckTracker>,
        feeder: &mut tokio::task::JoinHandle<()>,
    ) -> Result<(), String> {
        let mut response = request
            .send()
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("HTTP {}", response.status()));
        }
        let mut pending = BytesMut::new();
        let mut body_ended: Option<Instant> = None;
        loop {
            if body_ended.is_some() && lock(tracker).all_settled() {
                return Ok(());
            }
            let give_up =
                body_ended.map(|ended| tokio::time::Instant::from_std(ended + FINAL_ACK_WAIT));
            tokio::select! {
                chunk = response.chunk() => match chunk {
                    Ok(Some(chunk)) => {
                        pending.extend_from_slice(&chunk);
                        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                            let line = pending.split_to(end + 1);
                            self.on_ack_line(&line, tracker);
                        }
                    }
                    Ok(None) if body_ended.is_some() => return Ok(()),
                    Ok(None) => return Err("the server ended the response while we were sending".into()),
                    Err(error) => return Err(format!("the response failed: {error}")),
                },
                _ = &mut *feeder, if body_ended.is_none() => body_ended = Some(Instant::now()),
                _ = tokio::time::sleep_until(give_up.unwrap_or_else(tokio::time::Instant::now)), if give_up.is_some() => {
                    return Ok(());
                }
            }
        }
    }

    fn on_ack_line(&self, line: &[u8], tracker: &Mutex<AckTracker>) {
        let arrived = Instant::now();
        let Some(ack) = parse_ack(&String::from_utf8_lossy(line)) else {
            return;
        };
        let latencies = {
            let mut tracker = lock(tracker);
            tracker.record(&ack, arrived);
            tracker.take_persist_latencies_ms()
        };
        match ack.event_type.as_str() {
            "PERSISTED" => {
                self.stats.add(Count::Persisted, 1);
                self.stats.samples(Sample::Persist, latencies);
                self.live.notify_waiters();
                self.live.notify_one();
            }
            "ERROR" => {
                eprintln!("openkvs-load: {}: ERROR ack {}", self.stream, ack.raw);
                self.stats.add(Count::ErrorAcks, 1);
            }
            _ => {}
        }
    }
}

/// Sends the header, then the fixture's frames lap after lap, each at its time; ends the body on `stop`.
async fn feed(
    fixture: Arc<Fixture>,
    sender: mpsc::Sender<BodyItem>,
    tracker: Arc<Mutex<AckTracker>>,
    start_ms: u64,
    stop: Arc<AtomicBool>,
) {
    let started = tokio::time::Instant::now();
    if sender.send(BodyItem::Data(fixture.header())).await.is_err() {
        return;
    }
    let mut open_cluster: Option<usize> = None;
    'laps: for lap in 0u64.. {
        for frame in &fixture.frames {
            let due = Duration::from_millis(lap * fixture.period_ms + frame.time_ms);
            tokio::time::sleep_until(started + due).await;
            // Stop between fragments, as a camera that is switched off ends its last GOP: a fragment cut short
            // could lack its video track (an ERROR ack of the tool's making, not the server's).
            if frame.starts_cluster && stop.load(Ordering::Relaxed) {
                break 'laps;
            }
            let (bytes, cluster_timecode) = fixture.frame_bytes(frame, lap, start_ms);
            let opened =
                cluster_timecode.map(|tc| lock(&tracker).cluster_started(tc, TIMECODE_SCALE_NS));
            if sender.send(BodyItem::Data(bytes)).await.is_err() {
                return;
            }
            // The new cluster's header is out: the server can now close the previous fragment.
            if let Some(previous) = opened.and_then(|index| open_cluster.replace(index)) {
                if sender
                    .send(BodyItem::ClusterComplete(previous))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    if let Some(last) = open_cluster {
        let _ = sender.send(BodyItem::ClusterComplete(last)).await;
    }
}
