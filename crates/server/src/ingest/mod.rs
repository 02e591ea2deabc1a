//! PutMedia ingest (docs/wire.md#putmedia-request to #putmedia-limits): chunked MKV in, acknowledgement events out.
//!
//! The request body is parsed as it arrives by [`media::mkv::MkvReader`]; each Cluster becomes one
//! fragment ([`fragment::FragmentBuilder`]) that is handed to the group-commit [`store::Archive`].
//! Acks go out on the same response: BUFFERING when a Cluster starts, RECEIVED when it ends,
//! PERSISTED once bytes and catalog row are durable, ERROR with the documented ids, IDLE while the
//! producer is quiet. Back-pressure: a connection stops reading its body while
//! `max_pending_fragments` of its fragments await commit, and while its ack channel is full.

pub mod ack;
pub mod fragment;
pub mod lease;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, StatusCode};
use media::mkv::{Event, MkvError, MkvReader, ReaderLimits, TagValue};
use store::{CodecConfig, FragmentNumber, StoreError, StreamId, StreamRecord, Timestamp};
use tokio::sync::{mpsc, oneshot};

use crate::{ApiError, AppState};
use ack::{Ack, AckError, EventType};
use fragment::{FragmentBuilder, FragmentHeader, IngestLimits, TrackInfo};

/// How long the producer may be quiet before each IDLE ack, and before the connection is closed
/// (docs/choices.md#idle-acks; AWS documents IDLE acks for up to 30 s after the last data, then closes).
const IDLE_ACK_INTERVAL: Duration = Duration::from_secs(3);
const IDLE_CLOSE_AFTER: Duration = Duration::from_secs(30);
/// How long the handler waits for the first body bytes before answering 200 anyway. Polling the
/// body makes hyper send `100 Continue` at once, which libcurl-based producers wait for (docs/choices.md#putmedia-response-start).
const FIRST_BYTES_WAIT: Duration = Duration::from_secs(2);
/// Ack lines buffered towards a slow reader before ingest waits for it.
const ACK_CHANNEL_DEPTH: usize = 64;

/// Per-server ingest state: limits and the one-connection-per-stream registry.
pub struct IngestState {
    limits: IngestLimits,
    active: Mutex<HashSet<StreamId>>,
    /// Notified whenever a claim is released.
    released: tokio::sync::Notify,
    /// The writer leases this node's PutMedia connections hold, renewed together.
    leases: lease::LeaseKeeper,
}

impl Default for IngestState {
    fn default() -> Self {
        Self::new()
    }
}

impl IngestState {
    pub fn new() -> Self {
        Self::with_limits(IngestLimits::default())
    }

    pub fn with_limits(limits: IngestLimits) -> Self {
        IngestState {
            limits,
            active: Mutex::new(HashSet::new()),
            released: tokio::sync::Notify::new(),
            leases: lease::LeaseKeeper::default(),
        }
    }

    /// Claims the stream for one PutMedia connection (docs/wire.md#putmedia-limits: 1 connection
    /// per stream), waiting up to `wait` for the connection holding it to end.
    async fn claim(self: &Arc<Self>, stream: StreamId, wait: Duration) -> Option<ConnectionClaim> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Created before the attempt, so a release in between still wakes it.
            let released = self.released.notified();
            if self.active.lock().ok()?.insert(stream) {
                return Some(ConnectionClaim {
                    state: self.clone(),
                    stream,
                });
            }
            tokio::time::timeout_at(deadline, released).await.ok()?;
        }
    }

    /// Number of PutMedia connections now streaming.
    pub fn active_connections(&self) -> usize {
        self.active.lock().map(|a| a.len()).unwrap_or(0)
    }
}

/// Releases the stream when the connection ends, however it ends.
struct ConnectionClaim {
    state: Arc<IngestState>,
    stream: StreamId,
}

impl Drop for ConnectionClaim {
    fn drop(&mut self) {
        if let Ok(mut active) = self.state.active.lock() {
            active.remove(&self.stream);
        }
        self.state.released.notify_waiters();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimecodeType {
    Absolute,
    Relative,
}

/// What the `x-amzn-*` request headers say.
struct PutMediaHeaders {
    stream_name: Option<String>,
    stream_arn: Option<String>,
    timecode_type: TimecodeType,
    producer_start_ms: Option<i64>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| ApiError::InvalidArgument(format!("Header {name} is not valid text."))),
    }
}

/// Parses decimal seconds as producers send them: `1795570809.39` (unpadded ms, docs/choices.md#producer-start-timestamp-fraction),
/// `0`, or a float from `Date.now()/1000`.
fn parse_epoch_seconds_ms(s: &str) -> Option<i64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    // `.39` is 390 ms: the fraction is a decimal fraction, whatever the producer meant by padding.
    let mut ms = 0i64;
    for (i, b) in frac.bytes().take(3).enumerate() {
        ms += i64::from(b - b'0') * 10i64.pow(2 - i as u32);
    }
    secs.checked_mul(1000)?.checked_add(ms)
}

fn parse_headers(headers: &HeaderMap) -> Result<PutMediaHeaders, ApiError> {
    let stream_name = header(headers, "x-amzn-stream-name")?.map(str::to_owned);
    let stream_arn = header(headers, "x-amzn-stream-arn")?.map(str::to_owned);
    if stream_name.is_none() && stream_arn.is_none() {
        return Err(ApiError::InvalidArgument(
            "You must specify either the StreamName or the StreamARN.".into(),
        ));
    }
    if let Some(name) = &stream_name {
        let ok = !name.is_empty()
            && name.len() <= 256
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok {
            return Err(ApiError::InvalidArgument(format!(
                "1 validation error detected: Value '{name}' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
            )));
        }
    }
    let producer_start_ms = match header(headers, "x-amzn-producer-start-timestamp")? {
        None => None,
        Some(s) => Some(parse_epoch_seconds_ms(s).ok_or_else(|| {
            ApiError::InvalidArgument(format!(
                "Invalid x-amzn-producer-start-timestamp '{s}': expected epoch seconds."
            ))
        })?),
    };
    // Default when the header is missing: RELATIVE if a start timestamp was given (docs/choices.md#timecode-type-default).
    let timecode_type = match header(headers, "x-amzn-fragment-timecode-type")? {
        Some("ABSOLUTE") => TimecodeType::Absolute,
        Some("RELATIVE") => TimecodeType::Relative,
        None if producer_start_ms.is_some() => TimecodeType::Relative,
        None => TimecodeType::Absolute,
        Some(other) => {
            return Err(ApiError::InvalidArgument(format!(
                "1 validation error detected: Value '{other}' at 'fragmentTimecodeType' failed to satisfy constraint: Member must satisfy enum value set: [ABSOLUTE, RELATIVE]"
            )))
        }
    };
    Ok(PutMediaHeaders {
        stream_name,
        stream_arn,
        timecode_type,
        producer_start_ms,
    })
}

async fn find_stream(state: &AppState, h: &PutMediaHeaders) -> Result<StreamRecord, ApiError> {
    let found = match (&h.stream_arn, &h.stream_name) {
        (Some(arn), _) => state.catalog.stream_by_arn(arn).await,
        (None, Some(name)) => state.catalog.stream_by_name(name).await,
        (None, None) => Ok(None),
    }
    .map_err(ApiError::from)?;
    let stream = found.ok_or_else(|| {
        ApiError::ResourceNotFound("The requested stream is not found or not active.".into())
    })?;
    if let (Some(name), Some(_)) = (&h.stream_name, &h.stream_arn) {
        if name != &stream.name {
            return Err(ApiError::InvalidArgument(
                "StreamName and StreamARN name different streams.".into(),
            ));
        }
    }
    Ok(stream)
}

/// How a track's samples are timed (for its fragments' length): AAC by its AudioSpecificConfig,
/// any video track by its frames; `None` for audio whose codec private data does not tell.
fn track_clock(config: &CodecConfig) -> Option<media::timeline::TrackClock> {
    match media::codec::decode_track(&config.codec_id, &config.codec_private) {
        Ok(codec) => Some(media::timeline::TrackClock::of(&codec)),
        Err(_) if config.track_type == 1 => Some(media::timeline::TrackClock::Video),
        Err(_) => None,
    }
}

/// `POST /putMedia` (SigV4 already checked by the auth layer).
pub async fn put_media(State(state): State<AppState>, request: Request) -> Response {
    match start(state, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn start(state: AppState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let headers = parse_headers(&parts.headers)?;
    let stream = find_stream(&state, &headers).await?;
    // One wait for both steps (docs/wire.md#putmedia-limits): the in-process claim settles
    // connections of this node at once, the catalog lease settles them across nodes
    // (docs/architecture.md#writer-lease). A connection whose producer is gone persists what it
    // received and lets go within milliseconds, and a dead node's lease lapses within the wait,
    // so a camera reconnecting gets in instead of a refusal and its SDK's back-off; a live
    // connection keeps the stream and the newcomer is refused.
    let deadline = tokio::time::Instant::now() + lease::ACQUIRE_WAIT;
    let refused = || {
        ApiError::ConnectionLimitExceeded(format!(
            "There is already a PutMedia connection for stream {}; only one is allowed at a time.",
            stream.name
        ))
    };
    let claim = state
        .ingest
        .claim(stream.id, lease::ACQUIRE_WAIT)
        .await
        .ok_or_else(refused)?;
    let lease = lease::acquire(
        &state.ingest.leases,
        state.catalog.clone(),
        stream.id,
        &state.config.node_id,
        deadline.saturating_duration_since(tokio::time::Instant::now()),
    )
    .await
    .map_err(|e| match e {
        lease::AcquireError::Held => refused(),
        lease::AcquireError::Store(e) => ApiError::from(e),
    })?;
    // Read under the lease: no other writer can commit past it now.
    let last_number = state
        .catalog
        .last_fragment_number(stream.id)
        .await
        .map_err(ApiError::from)?;

    let mut body = body.into_data_stream();
    let first = tokio::time::timeout(FIRST_BYTES_WAIT, body.next())
        .await
        .ok()
        .flatten();
    let (acks, ack_rx) = mpsc::channel::<Bytes>(ACK_CHANNEL_DEPTH);
    let connection = Connection {
        limits: state.ingest.limits,
        state,
        stream,
        timecode_type: headers.timecode_type,
        producer_start_ms: headers.producer_start_ms,
        reader: MkvReader::new(ReaderLimits {
            max_frame_bytes: IngestLimits::default().max_fragment_bytes as usize,
            ..ReaderLimits::default()
        }),
        tracks: None,
        current: None,
        skip_cluster: false,
        pending_tags: Vec::new(),
        last_cluster_ms: None,
        last_number,
        pending: VecDeque::new(),
        pending_bytes: 0,
        acks,
        started: tokio::time::Instant::now(),
        writer_epoch: lease.lease.epoch,
        lease_lost: lease.lost.clone(),
        begins_discontinuity: false,
    };
    tokio::spawn(async move {
        let _claim = claim;
        connection.run(first, body).await;
        lease.release().await;
    });
    // Every ack event is its own HTTP chunk holding exactly one JSON line (docs/wire.md#putmedia-acks):
    // AWS's C producer SDK parses each chunk as one ack buffer of at most 1,024 bytes and reads the
    // upload handle once per buffer, so two acks in one chunk lose the second (PIC AckParser.c).
    // hyper still writes the chunks that are ready together in one socket write.
    let stream = futures::stream::unfold(ack_rx, |mut rx| async move {
        let line = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(line), rx))
    });
    Ok((
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A submitted fragment awaiting durability.
struct InFlight {
    timecode_ms: i64,
    number: FragmentNumber,
    bytes: u64,
    /// When its last byte was received (its Cluster ended): the start of its PERSISTED latency.
    received: std::time::Instant,
    done: oneshot::Receiver<Result<FragmentNumber, StoreError>>,
}

type CommitResult = Result<Result<FragmentNumber, StoreError>, oneshot::error::RecvError>;

/// Resolves with the oldest in-flight fragment's commit result (never, if none). The caller must
/// then pop that fragment: a oneshot receiver must not be polled again once it has completed.
async fn oldest_done(pending: &mut VecDeque<InFlight>) -> CommitResult {
    match pending.front_mut() {
        Some(f) => (&mut f.done).await,
        None => std::future::pending().await,
    }
}

/// Why a connection stops reading.
enum Stop {
    /// The body ended normally.
    EndOfInput,
    /// A fatal error was acknowledged; nothing more is read.
    Fatal,
    /// The server is shutting down or the producer went quiet.
    Closed,
}

struct Connection {
    state: AppState,
    limits: IngestLimits,
    stream: StreamRecord,
    timecode_type: TimecodeType,
    producer_start_ms: Option<i64>,
    reader: MkvReader,
    /// The current Matroska segment's tracks and timecode scale.
    tracks: Option<(u64, Vec<TrackInfo>)>,
    current: Option<FragmentBuilder>,
    /// After a fragment-level error, the rest of that Cluster is dropped.
    skip_cluster: bool,
    pending_tags: Vec<(String, String)>,
    last_cluster_ms: Option<i64>,
    last_number: Option<FragmentNumber>,
    pending: VecDeque<InFlight>,
    pending_bytes: u64,
    acks: mpsc::Sender<Bytes>,
    started: tokio::time::Instant,
    /// Stamped on every fragment: the catalog refuses it once another writer took the stream over.
    writer_epoch: u64,
    /// Cancelled when the writer lease is lost (`lease::HeldLease::lost`).
    lease_lost: tokio_util::sync::CancellationToken,
    /// LL-HLS listed parts of a fragment that failed: the current one begins a discontinuity.
    begins_discontinuity: bool,
}

impl Connection {
    async fn run<S>(mut self, first: Option<Result<Bytes, axum::Error>>, mut body: S)
    where
        S: futures::Stream<Item = Result<Bytes, axum::Error>> + Unpin,
    {
        let mut stop = match first {
            Some(chunk) => self.on_chunk(Some(chunk)).await,
            None => None,
        };
        let shutdown = self.state.shutdown.clone();
        let lease_lost = self.lease_lost.clone();
        let mut idle_for = Duration::ZERO;
        while stop.is_none() {
            // Back-pressure: with too many fragments in flight, wait for the oldest first.
            if self.pending.len() >= self.limits.max_pending_fragments
                || self.pending_bytes >= self.limits.max_pending_bytes
            {
                if !self.ack_oldest().await {
                    stop = Some(Stop::Fatal);
                }
                continue;
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => stop = Some(Stop::Closed),
                // Another writer has the stream: what is in flight is refused by the catalog and
                // acknowledged as ERROR below; nothing more is read.
                () = lease_lost.cancelled() => stop = Some(Stop::Closed),
                result = oldest_done(&mut self.pending) => {
                    if !self.acknowledge_oldest(result).await {
                        stop = Some(Stop::Fatal);
                    }
                }
                chunk = tokio::time::timeout(IDLE_ACK_INTERVAL, body.next()) => match chunk {
                    Ok(chunk) => {
                        idle_for = Duration::ZERO;
                        stop = self.on_chunk(chunk).await;
                    }
                    Err(_) => {
                        idle_for += IDLE_ACK_INTERVAL;
                        self.send(Ack::idle()).await;
                        if idle_for >= IDLE_CLOSE_AFTER {
                            stop = Some(Stop::Closed);
                        }
                    }
                },
            }
        }
        if matches!(stop, Some(Stop::Closed)) {
            // Never half-written: a fragment still arriving is reported, not stored.
            if let Some(f) = self.current.take() {
                let h = *f.header();
                self.live_failed(h.number);
                self.send(Ack::error(
                    AckError::StreamRead,
                    Some(h.timecode_ms),
                    Some(h.number),
                ))
                .await;
            }
        }
        // Everything already received is persisted and acknowledged before the response ends.
        while !self.pending.is_empty() {
            if !self.ack_oldest().await {
                break;
            }
        }
        // What was handed over but never acknowledged (a fatal error above) is not coming.
        for f in std::mem::take(&mut self.pending) {
            self.live_failed(f.number);
        }
        self.state.live_parts.prune(self.stream.id);
    }

    async fn send(&self, ack: Ack) {
        // A producer that stopped reading acks only loses its acks, never its data.
        let _ = self.acks.send(ack.to_line()).await;
    }

    /// Waits for the oldest in-flight fragment and acknowledges it. False if ingest must stop.
    async fn ack_oldest(&mut self) -> bool {
        let result = match self.pending.front_mut() {
            Some(f) => (&mut f.done).await,
            None => return true,
        };
        self.acknowledge_oldest(result).await
    }

    /// Pops the oldest in-flight fragment, whose commit finished with `result`, and acknowledges it.
    async fn acknowledge_oldest(&mut self, result: CommitResult) -> bool {
        let Some(f) = self.pending.pop_front() else {
            return true;
        };
        self.pending_bytes -= f.bytes;
        if self.state.config.low_latency.is_some() {
            match &result {
                // Listed from the catalog from now on.
                Ok(Ok(number)) => self.state.live_parts.committed(self.stream.id, *number),
                _ => self.state.live_parts.failed(self.stream.id, f.number),
            }
        }
        match result {
            Ok(Ok(number)) => {
                // With retention 0 KVS keeps fragments only in a short buffer and sends no PERSISTED.
                self.state.metrics.fragment_persisted(
                    &self.stream.name,
                    self.stream.id,
                    f.bytes,
                    f.received.elapsed(),
                    self.state.clock.timestamp(),
                );
                if self.stream.data_retention_hours > 0 {
                    self.send(Ack::event(EventType::Persisted, f.timecode_ms, number))
                        .await;
                }
                true
            }
            Ok(Err(StoreError::StreamNotFound(_))) => {
                self.send(Ack::error(
                    AckError::StreamNotActive,
                    Some(f.timecode_ms),
                    Some(f.number),
                ))
                .await;
                false
            }
            Ok(Err(e)) => {
                tracing::error!(stream = %self.stream.name, fragment = %f.number, error = %e, "fragment not persisted");
                self.send(Ack::error(
                    AckError::Archival,
                    Some(f.timecode_ms),
                    Some(f.number),
                ))
                .await;
                false
            }
            Err(_) => {
                self.send(Ack::error(
                    AckError::Internal,
                    Some(f.timecode_ms),
                    Some(f.number),
                ))
                .await;
                false
            }
        }
    }

    async fn on_chunk(&mut self, chunk: Option<Result<Bytes, axum::Error>>) -> Option<Stop> {
        match chunk {
            Some(Ok(bytes)) => {
                self.reader.push(bytes);
                self.drain_events(false).await
            }
            Some(Err(e)) => {
                tracing::info!(stream = %self.stream.name, error = %e, "PutMedia body read failed");
                self.report_open_fragment(AckError::StreamRead).await;
                Some(Stop::Fatal)
            }
            None => match self.drain_events(true).await {
                Some(stop) => Some(stop),
                None => Some(Stop::EndOfInput),
            },
        }
    }

    async fn report_open_fragment(&mut self, error: AckError) {
        let (tc, number) = match self.current.take() {
            Some(f) => {
                self.live_failed(f.header().number);
                (Some(f.header().timecode_ms), Some(f.header().number))
            }
            None => (self.last_cluster_ms, None),
        };
        self.send(Ack::error(error, tc, number)).await;
    }

    async fn drain_events(&mut self, end_of_input: bool) -> Option<Stop> {
        loop {
            let next = if end_of_input {
                self.reader.finish()
            } else {
                self.reader.next_event()
            };
            match next {
                Ok(Some(event)) => {
                    if let Some(stop) = self.on_event(event).await {
                        return Some(stop);
                    }
                }
                Ok(None) => return None,
                Err(e) => {
                    let error = match e {
                        MkvError::Truncated { .. } => AckError::StreamRead,
                        MkvError::TooLarge { .. } if self.current.is_some() => {
                            AckError::MaxFragmentSize
                        }
                        _ => AckError::InvalidMkvData,
                    };
                    tracing::info!(stream = %self.stream.name, error = %e, "PutMedia input rejected");
                    self.report_open_fragment(error).await;
                    return Some(Stop::Fatal);
                }
            }
        }
    }

    async fn on_event(&mut self, event: Event) -> Option<Stop> {
        match event {
            Event::SegmentStart { .. } => {
                self.tracks = None;
                None
            }
            Event::Tracks(info) => self.on_tracks(info).await,
            Event::Tags(tags) => {
                for t in tags {
                    let value = match t.value {
                        TagValue::String(s) => s,
                        TagValue::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                    };
                    self.pending_tags.push((t.name, value));
                }
                None
            }
            Event::ClusterStart { timecode, .. } => self.on_cluster_start(timecode).await,
            Event::Frame(frame) => {
                if self.skip_cluster {
                    return None;
                }
                let Some(builder) = self.current.as_mut() else {
                    self.send(Ack::error(
                        AckError::InvalidMkvData,
                        self.last_cluster_ms,
                        None,
                    ))
                    .await;
                    return Some(Stop::Fatal);
                };
                let (track, data) = (frame.track, frame.data.clone());
                match builder.add_frame(frame) {
                    Ok(sample) => {
                        if let Some(ll) = &self.state.config.low_latency {
                            let number = builder.header().number;
                            self.state.live_parts.frame(
                                self.stream.id,
                                number,
                                track,
                                sample,
                                data,
                                ll,
                            );
                        }
                    }
                    Err(error) => {
                        self.report_open_fragment(error).await;
                        self.skip_cluster = true;
                    }
                }
                None
            }
            Event::ClusterEnd { .. } => self.on_cluster_end().await,
        }
    }

    async fn on_tracks(&mut self, info: media::mkv::SegmentInfo) -> Option<Stop> {
        if info.tracks.len() > self.limits.max_tracks {
            self.send(Ack::error(
                AckError::TooManyTracks,
                self.last_cluster_ms,
                None,
            ))
            .await;
            return Some(Stop::Fatal);
        }
        let mut tracks = Vec::with_capacity(info.tracks.len());
        for t in info.tracks {
            let config = CodecConfig {
                track: t.number,
                track_type: t.track_type,
                codec_id: t.codec_id.clone(),
                codec_private: t.codec_private.clone().unwrap_or_default(),
                track_name: t.name.clone(),
                pixel_width: t.pixel_width,
                pixel_height: t.pixel_height,
                sampling_frequency: t.sampling_frequency,
                channels: t.channels,
            };
            // KVS stores any codec private data as sent and validates it only at playback (docs/wire.md#putmedia-body).
            match self
                .state
                .catalog
                .codec_config_for(self.stream.id, &config)
                .await
            {
                Ok(id) => tracks.push(TrackInfo {
                    number: t.number,
                    is_video: t.track_type == 1,
                    config: id,
                    default_duration_ns: t.default_duration_ns,
                    clock: track_clock(&config),
                }),
                Err(e) => {
                    tracing::error!(stream = %self.stream.name, error = %e, "codec config not stored");
                    self.send(Ack::error(AckError::Internal, self.last_cluster_ms, None))
                        .await;
                    return Some(Stop::Fatal);
                }
            }
        }
        self.tracks = Some((info.timecode_scale_ns, tracks));
        None
    }

    async fn on_cluster_start(&mut self, timecode: u64) -> Option<Stop> {
        let Some((scale_ns, tracks)) = &self.tracks else {
            self.send(Ack::error(AckError::InvalidMkvData, None, None))
                .await;
            return Some(Stop::Fatal);
        };
        let scale_ns = *scale_ns;
        let timecode_ms = i64::try_from(u128::from(timecode) * u128::from(scale_ns) / 1_000_000)
            .unwrap_or(i64::MAX);
        let server_timestamp = self.state.clock.timestamp();
        let number = FragmentNumber::next(self.last_number, server_timestamp);
        self.last_number = Some(number);
        let tags = std::mem::take(&mut self.pending_tags);
        self.skip_cluster = false;

        // The connection has lived its time: the fragment starting now is refused and the
        // producer reconnects (docs/wire.md#putmedia-errors, ErrorId 4003).
        if self.started.elapsed() >= self.limits.max_connection_duration {
            self.send(Ack::error(
                AckError::MaxConnectionDuration,
                Some(timecode_ms),
                Some(number),
            ))
            .await;
            return Some(Stop::Fatal);
        }
        // Fragments of one PutMedia must move forward in time (docs/wire.md#putmedia-errors, ErrorId 4004).
        if self.last_cluster_ms.is_some_and(|last| timecode_ms <= last) {
            self.send(Ack::error(
                AckError::TimecodeLessThanPrevious,
                Some(timecode_ms),
                Some(number),
            ))
            .await;
            self.skip_cluster = true;
            return None;
        }
        self.last_cluster_ms = Some(timecode_ms);
        if tags.len() > self.limits.max_fragment_tags {
            self.send(Ack::error(
                AckError::FragmentMetadataLimit,
                Some(timecode_ms),
                Some(number),
            ))
            .await;
            self.skip_cluster = true;
            return None;
        }
        let producer_ms = match self.timecode_type {
            TimecodeType::Absolute => Some(timecode_ms),
            TimecodeType::Relative => self.producer_start_ms.unwrap_or(0).checked_add(timecode_ms),
        };
        let Some(producer_ms) = producer_ms else {
            self.send(Ack::error(
                AckError::InvalidProducerTimestamp,
                Some(timecode_ms),
                Some(number),
            ))
            .await;
            self.skip_cluster = true;
            return None;
        };
        let header = FragmentHeader {
            stream: self.stream.id,
            number,
            timecode_ms,
            producer_timestamp: Timestamp(producer_ms),
            server_timestamp,
            timecode_scale_ns: scale_ns,
        };
        if self.state.config.low_latency.is_some() {
            let plans: Vec<_> = tracks
                .iter()
                .map(|t| crate::hls::ll::TrackPlan {
                    track: t.number,
                    codec_config: t.config,
                    clock: t.clock,
                })
                .collect();
            self.begins_discontinuity = self.state.live_parts.begin(
                self.stream.id,
                number,
                (header.producer_timestamp, header.server_timestamp),
                &plans,
            );
        }
        self.current = Some(FragmentBuilder::new(header, tracks, tags, self.limits));
        self.send(Ack::event(EventType::Buffering, timecode_ms, number))
            .await;
        None
    }

    async fn on_cluster_end(&mut self) -> Option<Stop> {
        let received = std::time::Instant::now();
        let builder = self.current.take()?;
        if self.skip_cluster {
            self.live_failed(builder.header().number);
            return None;
        }
        let h = *builder.header();
        match builder.finish() {
            Ok(mut fragment) => {
                fragment.row.writer_epoch = Some(self.writer_epoch);
                fragment.row.begins_discontinuity = std::mem::take(&mut self.begins_discontinuity);
                self.send(Ack::event(EventType::Received, h.timecode_ms, h.number))
                    .await;
                let bytes = fragment.row.media.len;
                match self.state.archive.submit(fragment).await {
                    Ok(done) => {
                        if let Some(ll) = &self.state.config.low_latency {
                            self.state.live_parts.complete(self.stream.id, h.number, ll);
                        }
                        self.pending_bytes += bytes;
                        self.pending.push_back(InFlight {
                            timecode_ms: h.timecode_ms,
                            number: h.number,
                            bytes,
                            received,
                            done,
                        });
                    }
                    Err(e) => {
                        self.live_failed(h.number);
                        tracing::error!(stream = %self.stream.name, error = %e, "archive unavailable");
                        self.send(Ack::error(
                            AckError::Internal,
                            Some(h.timecode_ms),
                            Some(h.number),
                        ))
                        .await;
                        return Some(Stop::Fatal);
                    }
                }
            }
            Err(error) => {
                self.live_failed(h.number);
                self.send(Ack::error(error, Some(h.timecode_ms), Some(h.number)))
                    .await
            }
        }
        None
    }

    /// LL-HLS: fragment `number` will not be stored (`hls::ll`).
    fn live_failed(&self, number: FragmentNumber) {
        if self.state.config.low_latency.is_some() {
            self.state.live_parts.failed(self.stream.id, number);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_epoch_seconds_ms;

    #[test]
    fn producer_start_timestamps_as_producers_send_them() {
        assert_eq!(
            parse_epoch_seconds_ms("1795570809.39"),
            Some(1_795_570_809_390)
        );
        assert_eq!(
            parse_epoch_seconds_ms("1795570809.039"),
            Some(1_795_570_809_039)
        );
        assert_eq!(
            parse_epoch_seconds_ms("1795570809.1234"),
            Some(1_795_570_809_123)
        );
        assert_eq!(parse_epoch_seconds_ms("0"), Some(0));
        assert_eq!(parse_epoch_seconds_ms("12."), Some(12_000));
        assert_eq!(parse_epoch_seconds_ms("-1"), None);
        assert_eq!(parse_epoch_seconds_ms("abc"), None);
        assert_eq!(parse_epoch_seconds_ms(""), None);
        assert_eq!(parse_epoch_seconds_ms("99999999999999999999"), None);
    }
}
