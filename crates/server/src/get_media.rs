//! GetMedia and GetMediaForFragmentList (docs/wire.md#getmedia): stored fragments sent back as
//! Matroska, one self-contained document per fragment (`media::mkv::document`), the frames the
//! bytes that were ingested, sliced out of one read of the fragment, never copied when large.
//!
//! GetMedia reads in ingest order from its start selector, then tails the stream: a fragment
//! committed on any node wakes it through the catalog's change feed (a short poll is the
//! fallback), so a live reader gets each fragment milliseconds after its PERSISTED ack. The
//! response ends when the reader is caught up and no PutMedia has held the stream for
//! [`IDLE_END`] (docs/choices.md#getmedia-end).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use media::mkv::document::{self, DocumentTrack, FragmentDocument, Piece};
use media::mkv::{SimpleTag, TagValue, Track};
use serde::Deserialize;
use store::{CatalogChange, FragmentNumber, FragmentRecord, StreamId, StreamRecord, Timestamp};
use tokio::sync::broadcast::error::RecvError;

use crate::control::{resolve_stream, validate_stream_ref, Result};
use crate::error::ApiError;
use crate::validate::{Validator, CONTINUATION_TOKEN_RULE, FRAGMENT_NUMBER_RULE};
use crate::wire::{epoch_seconds, AwsJson, Input};
use crate::AppState;

/// Concurrent GetMedia responses per stream on one node (AWS: 3 per stream; the 4th gets
/// `ConnectionLimitExceededException`). Counted per node, like the rate limits
/// (docs/wire.md#getmedia).
pub const MAX_READERS_PER_STREAM: usize = 3;
/// A caught-up GetMedia ends once no PutMedia has held the stream for this long: long enough
/// for a producer to reconnect (its lease is free at once, docs/architecture.md#writer-lease),
/// short enough that a reader of a finished stream is not left waiting.
pub const IDLE_END: Duration = Duration::from_secs(3);
/// How often a caught-up reader looks again without a wake-up (the change feed's fallback).
const POLL: Duration = Duration::from_millis(500);
/// Catalog rows read ahead per query.
const READ_AHEAD: usize = 8;
/// Pieces of a document up to this size are gathered into one buffer (fewer, larger HTTP
/// chunks); larger stored frames go out as slices of what was read.
const GATHER_BELOW: usize = 16 * 1024;
/// GetMediaForFragmentList: fragment numbers per request (model: 1..1000).
const MAX_LISTED_FRAGMENTS: usize = 1000;

const START_SELECTOR_TYPES: &[&str] = &[
    "FRAGMENT_NUMBER",
    "SERVER_TIMESTAMP",
    "PRODUCER_TIMESTAMP",
    "NOW",
    "EARLIEST",
    "CONTINUATION_TOKEN",
];

// ---- inputs ----------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartSelector {
    pub start_selector_type: Option<String>,
    pub after_fragment_number: Option<String>,
    pub start_timestamp: Option<f64>,
    pub continuation_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetMediaInput {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub start_selector: Option<StartSelector>,
}

impl Input for GetMediaInput {
    fn validate(&self, v: &mut Validator) {
        validate_stream_ref(v, &self.stream_name, &self.stream_arn);
        v.required("startSelector", &self.start_selector);
        if let Some(s) = &self.start_selector {
            v.required("startSelector.startSelectorType", &s.start_selector_type);
            v.one_of(
                "startSelector.startSelectorType",
                s.start_selector_type.as_deref(),
                START_SELECTOR_TYPES,
            );
            v.string(
                "startSelector.afterFragmentNumber",
                s.after_fragment_number.as_deref(),
                &FRAGMENT_NUMBER_RULE,
            );
            v.string(
                "startSelector.continuationToken",
                s.continuation_token.as_deref(),
                &CONTINUATION_TOKEN_RULE,
            );
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetMediaForFragmentListInput {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub fragments: Option<Vec<String>>,
}

/// A list as Coral prints it in a validation message: `[a, b]`.
struct JavaList<'a>(&'a [String]);

impl fmt::Display for JavaList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.0.join(", "))
    }
}

impl Input for GetMediaForFragmentListInput {
    fn validate(&self, v: &mut Validator) {
        validate_stream_ref(v, &self.stream_name, &self.stream_arn);
        v.required("fragments", &self.fragments);
        if let Some(list) = &self.fragments {
            v.count(
                "fragments",
                &JavaList(list),
                list.len(),
                1,
                MAX_LISTED_FRAGMENTS,
            );
            for (i, n) in list.iter().enumerate() {
                v.string(
                    &format!("fragments.{}.member", i + 1),
                    Some(n),
                    &FRAGMENT_NUMBER_RULE,
                );
            }
        }
    }
}

// ---- per-node reader count -------------------------------------------------------------------

/// GetMedia responses in flight per stream on this node.
#[derive(Default)]
pub struct Readers {
    per_stream: Mutex<HashMap<StreamId, usize>>,
}

/// One counted GetMedia response; uncounted when dropped (the response ended or its client
/// went away).
pub struct ReaderSlot {
    readers: Arc<Readers>,
    stream: StreamId,
}

impl Readers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, usize>> {
        self.per_stream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn enter(self: &Arc<Self>, stream: StreamId) -> Option<ReaderSlot> {
        let mut map = self.lock();
        let count = map.entry(stream).or_insert(0);
        if *count >= MAX_READERS_PER_STREAM {
            return None;
        }
        *count += 1;
        Some(ReaderSlot {
            readers: self.clone(),
            stream,
        })
    }
}

impl Drop for ReaderSlot {
    fn drop(&mut self) {
        let mut map = self.readers.lock();
        if let Some(count) = map.get_mut(&self.stream) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.stream);
            }
        }
    }
}

// ---- where a GetMedia starts -----------------------------------------------------------------

/// The first fragment a GetMedia sends, then everything after it in ingest order.
#[derive(Debug)]
enum Start {
    /// The fragments after this number (all of them with `None`).
    After(Option<FragmentNumber>),
    /// This fragment, then the ones after it.
    At(Box<FragmentRecord>),
}

/// The longest fragment ingest accepts (docs/wire.md#putmedia-limits): a fragment containing a
/// time starts at most this long before it.
const LONGEST_FRAGMENT_MS: i64 = 20_000;

async fn start_of(state: &AppState, stream: &StreamRecord, s: &StartSelector) -> Result<Start> {
    let kind = s.start_selector_type.as_deref().unwrap_or_default();
    let missing = |member: &str| {
        ApiError::InvalidArgument(format!(
            "StartSelectorType {kind} requires the {member} parameter."
        ))
    };
    let number = |text: &str, member: &str| {
        FragmentNumber::parse(text)
            .ok_or_else(|| ApiError::InvalidArgument(format!("The {member} is invalid.")))
    };
    Ok(match kind {
        "EARLIEST" => Start::After(None),
        // The next fragment to be committed: what a live reader wants (AWS: "the latest chunk",
        // i.e. the one being ingested now; docs/choices.md#getmedia-now).
        "NOW" => Start::After(state.catalog.last_fragment_number(stream.id).await?),
        "FRAGMENT_NUMBER" => {
            let text = s
                .after_fragment_number
                .as_deref()
                .ok_or_else(|| missing("AfterFragmentNumber"))?;
            Start::After(Some(number(text, "AfterFragmentNumber")?))
        }
        "CONTINUATION_TOKEN" => {
            let text = s
                .continuation_token
                .as_deref()
                .ok_or_else(|| missing("ContinuationToken"))?;
            Start::After(Some(number(text, "ContinuationToken")?))
        }
        "SERVER_TIMESTAMP" | "PRODUCER_TIMESTAMP" => {
            let at = s
                .start_timestamp
                .ok_or_else(|| missing("StartTimestamp"))
                .and_then(|t| {
                    epoch_seconds::from_seconds(t).ok_or_else(|| {
                        ApiError::InvalidArgument("The StartTimestamp is invalid.".into())
                    })
                })?;
            let kind = if kind == "SERVER_TIMESTAMP" {
                store::TimestampKind::Server
            } else {
                store::TimestampKind::Producer
            };
            match containing_or_next(state, stream.id, kind, at).await? {
                Some(f) => Start::At(Box::new(f)),
                // Nothing stored at or after that time: whatever is committed next.
                None => Start::After(state.catalog.last_fragment_number(stream.id).await?),
            }
        }
        _ => {
            return Err(ApiError::InvalidArgument(
                "The StartSelector is invalid.".into(),
            ))
        }
    })
}

/// The fragment being recorded at `at`: the last one to start at or before it, if it lasts past
/// `at`; else the first that starts after it. (With overlapping spans, as a producer sending
/// faster than real time makes on the server clock, the latest start wins.)
async fn containing_or_next(
    state: &AppState,
    stream: StreamId,
    kind: store::TimestampKind,
    at: Timestamp,
) -> Result<Option<FragmentRecord>> {
    let mut query = store::FragmentQuery {
        stream,
        kind,
        start: Timestamp::from_millis(at.millis().saturating_sub(LONGEST_FRAGMENT_MS)),
        end: Timestamp::from_millis(i64::MAX),
        after: None,
        limit: SEEK_PAGE,
    };
    let mut current: Option<FragmentRecord> = None;
    loop {
        let page = state.catalog.query_fragments(query.clone()).await?;
        let Some(last) = page.last() else {
            return Ok(current.filter(|f| ends_after(f, kind, at)));
        };
        query.after = Some((key_of(last, kind), last.number));
        for f in page {
            if key_of(&f, kind) > at {
                return Ok(match current {
                    Some(c) if ends_after(&c, kind, at) => Some(c),
                    _ => Some(f),
                });
            }
            current = Some(f);
        }
    }
}

/// Rows read per query while looking for a start time.
const SEEK_PAGE: usize = 64;

fn ends_after(f: &FragmentRecord, kind: store::TimestampKind, at: Timestamp) -> bool {
    key_of(f, kind)
        .millis()
        .saturating_add(f.duration_ms as i64)
        > at.millis()
}

fn key_of(f: &FragmentRecord, kind: store::TimestampKind) -> Timestamp {
    match kind {
        store::TimestampKind::Server => f.server_timestamp,
        store::TimestampKind::Producer => f.producer_timestamp,
    }
}

// ---- the handlers ----------------------------------------------------------------------------

/// `POST /getMedia`.
pub async fn get_media(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<GetMediaInput>,
) -> Result<Response> {
    let stream = resolve_stream(
        &state,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )
    .await?;
    let selector = input
        .start_selector
        .as_ref()
        .ok_or_else(|| ApiError::InvalidArgument("The StartSelector is required.".into()))?;
    let slot = state.readers.enter(stream.id).ok_or_else(|| {
        ApiError::ConnectionLimitExceeded(format!(
            "There are already {MAX_READERS_PER_STREAM} GetMedia connections for stream {}; \
             no more are allowed at a time.",
            stream.name
        ))
    })?;
    // Subscribed before the first query, so no commit between them goes unnoticed.
    let changes = state.catalog.changes();
    let start = start_of(&state, &stream, selector).await?;
    tracing::debug!(stream = %stream.name, ?start, "GetMedia starts");
    let waits_for_first = selector.start_selector_type.as_deref() == Some("NOW");
    let (after, queue) = match start {
        Start::After(after) => (after, VecDeque::new()),
        Start::At(f) => (Some(f.number), VecDeque::from([*f])),
    };
    let kind = Kind::GetMedia {
        after,
        changes,
        waits_for_first,
        _slot: slot,
    };
    Ok(respond(state, stream, kind, queue))
}

/// `POST /getMediaForFragmentList`.
pub async fn get_media_for_fragment_list(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<GetMediaForFragmentListInput>,
) -> Result<Response> {
    let stream = resolve_stream(
        &state,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )
    .await?;
    let asked = input.fragments.unwrap_or_default();
    let mut numbers = Vec::with_capacity(asked.len());
    let mut unknown = Vec::new();
    for text in &asked {
        match FragmentNumber::parse(text) {
            Some(n) if state.catalog.fragment_shared(stream.id, n).await?.is_some() => {
                numbers.push(n)
            }
            _ => unknown.push(text.as_str()),
        }
    }
    if !unknown.is_empty() {
        // The text AWS answers with (seen in AWS's parser library's issue #50), then the numbers.
        return Err(ApiError::InvalidArgument(format!(
            "Fragment numbers are invalid : {}",
            unknown.join(", ")
        )));
    }
    let kind = Kind::List {
        numbers: numbers.into(),
    };
    Ok(respond(state, stream, kind, VecDeque::new()))
}

/// The streaming response: `queue`, then what `kind` finds.
fn respond(
    state: AppState,
    stream: StreamRecord,
    kind: Kind,
    queue: VecDeque<FragmentRecord>,
) -> Response {
    let reader = Reader {
        state,
        stream,
        kind,
        queue,
        out: VecDeque::new(),
        sent: 0,
        done: false,
    };
    let body = Body::from_stream(futures::stream::unfold(reader, |mut r| async move {
        r.next_piece()
            .await
            .map(|piece| (Ok::<_, std::convert::Infallible>(piece), r))
    }));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("video/webm"))],
        body,
    )
        .into_response()
}

// ---- the response body -----------------------------------------------------------------------

enum Kind {
    GetMedia {
        /// The last fragment queued (the next read starts after it).
        after: Option<FragmentNumber>,
        changes: tokio::sync::broadcast::Receiver<CatalogChange>,
        /// NOW: wait for a producer however long it takes, until the first fragment is sent.
        waits_for_first: bool,
        _slot: ReaderSlot,
    },
    List {
        numbers: VecDeque<FragmentNumber>,
    },
}

/// A response body being produced: fragments to send, and the pieces of the current one.
struct Reader {
    state: AppState,
    stream: StreamRecord,
    kind: Kind,
    queue: VecDeque<FragmentRecord>,
    out: VecDeque<Bytes>,
    sent: u64,
    done: bool,
}

/// What ended a response early, sent as an error document (docs/wire.md#getmedia).
struct Failure {
    /// GetMedia's `AWS_KINESISVIDEO_ERROR_ID` (4000 fragment not found, 5000 internal).
    id: u32,
    code: &'static str,
    message: String,
    fragment: Option<FragmentNumber>,
}

impl Reader {
    async fn next_piece(&mut self) -> Option<Bytes> {
        loop {
            if let Some(piece) = self.out.pop_front() {
                return Some(piece);
            }
            if self.done {
                return None;
            }
            match self.next_fragment().await {
                Ok(Some(f)) => {
                    if let Err(failure) = self.write(&f).await {
                        self.fail(failure);
                    }
                }
                Ok(None) => self.done = true,
                Err(failure) => self.fail(failure),
            }
        }
    }

    async fn next_fragment(&mut self) -> std::result::Result<Option<FragmentRecord>, Failure> {
        let internal = |e: store::StoreError| Failure {
            id: 5000,
            code: "INTERNAL_ERROR",
            message: e.to_string(),
            fragment: None,
        };
        loop {
            if let Some(f) = self.queue.pop_front() {
                return Ok(Some(f));
            }
            match &mut self.kind {
                Kind::List { numbers } => {
                    let Some(n) = numbers.pop_front() else {
                        return Ok(None);
                    };
                    let f = self
                        .state
                        .catalog
                        .fragment(self.stream.id, n)
                        .await
                        .map_err(internal)?;
                    return match f {
                        Some(f) => Ok(Some(f)),
                        // Deleted by retention since the request was checked.
                        None => Err(Failure {
                            id: 4000,
                            code: "FRAGMENT_NOT_FOUND",
                            message: format!("Fragment {n} is not found."),
                            fragment: Some(n),
                        }),
                    };
                }
                Kind::GetMedia { after, .. } => {
                    let batch = self
                        .state
                        .catalog
                        .fragments_after(self.stream.id, *after, READ_AHEAD)
                        .await
                        .map_err(internal)?;
                    if let Some(last) = batch.last() {
                        *after = Some(last.number);
                        self.queue.extend(batch);
                        continue;
                    }
                }
            }
            if !self.wait_for_more().await.map_err(internal)? {
                return Ok(None);
            }
        }
    }

    /// Caught up: waits for a commit to the stream. False when the response should end: no
    /// PutMedia has held the stream for [`IDLE_END`], the stream is gone, or the server stops.
    async fn wait_for_more(&mut self) -> std::result::Result<bool, store::StoreError> {
        let Kind::GetMedia {
            changes,
            waits_for_first,
            after,
            ..
        } = &mut self.kind
        else {
            return Ok(false);
        };
        let after = *after;
        let patient = *waits_for_first && self.sent == 0;
        let mut idle_since = tokio::time::Instant::now();
        // One poll clock for the whole wait: commits to other streams wake the loop too, and a
        // sleep started afresh on each of them would never fire on a busy node, so a reader
        // would never look again nor end (IDLE_END).
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await; // the first tick is immediate
        loop {
            let woken = tokio::select! {
                change = changes.recv() => match change {
                    Ok(CatalogChange::Fragments(s)) => s == self.stream.id,
                    Ok(CatalogChange::Stream(s)) if s == self.stream.id => {
                        let now = self.state.catalog.stream_by_id(s).await?;
                        if now.is_none() {
                            return Ok(false);
                        }
                        true
                    }
                    Ok(_) => false,
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => {
                        tokio::time::sleep(POLL).await;
                        true
                    }
                },
                _ = poll.tick() => true,
                () = self.state.shutdown.cancelled() => return Ok(false),
            };
            if !woken {
                continue;
            }
            let has_more = self
                .state
                .catalog
                .fragments_after(self.stream.id, after, 1)
                .await?;
            if !has_more.is_empty() {
                return Ok(true);
            }
            if patient || self.state.catalog.has_writer(self.stream.id).await? {
                idle_since = tokio::time::Instant::now();
            } else if idle_since.elapsed() >= IDLE_END {
                return Ok(false);
            }
        }
    }

    /// Queues the pieces of `f`'s document.
    async fn write(&mut self, f: &FragmentRecord) -> std::result::Result<(), Failure> {
        let failure = |id, code, message: String| Failure {
            id,
            code,
            message,
            fragment: Some(f.number),
        };
        let configs = self
            .state
            .catalog
            .codec_configs_shared(self.stream.id, f.tracks.first().map(|t| t.codec_config))
            .await
            .map_err(|e| failure(5000, "INTERNAL_ERROR", e.to_string()))?;
        let mut entries = Vec::with_capacity(f.tracks.len());
        for t in &f.tracks {
            let config = configs
                .iter()
                .find(|(id, _)| *id == t.codec_config)
                .map(|(_, c)| c)
                .ok_or_else(|| {
                    failure(
                        5000,
                        "INTERNAL_ERROR",
                        format!("no codec configuration for track {}", t.track),
                    )
                })?;
            entries.push(track_entry(config));
        }
        let data = self
            .state
            .media
            .read(self.stream.id, f.media, 0..f.media.len)
            .await
            .map_err(|e| {
                if e.kind() == store::StoreErrorKind::NotFound {
                    failure(4000, "FRAGMENT_NOT_FOUND", e.to_string())
                } else {
                    failure(5000, "INTERNAL_ERROR", e.to_string())
                }
            })?;
        let tracks: Vec<DocumentTrack<'_>> = f
            .tracks
            .iter()
            .zip(&entries)
            .map(|(t, entry)| DocumentTrack {
                entry,
                samples: &t.samples,
                data_len: t.data_len,
            })
            .collect();
        let (before, after) = self.tags(f);
        let producer: Vec<[SimpleTag; 1]> = f
            .tags
            .iter()
            .map(|(name, value)| [string_tag(name, value.clone())])
            .collect();
        let mut trailing: Vec<&[SimpleTag]> = producer.iter().map(|t| &t[..]).collect();
        if !after.is_empty() {
            trailing.push(&after);
        }
        let doc = document::fragment_document(&FragmentDocument {
            // As the producer sent it (a RELATIVE producer's offset from its start); rows stored
            // before it was kept: the producer timestamp, which is the same instant.
            cluster_timecode_ms: f
                .cluster_timecode_ms
                .unwrap_or(f.producer_timestamp.millis()),
            tracks: &tracks,
            tags_before_cluster: &before,
            tags_after_cluster: &trailing,
        })
        .map_err(|e| failure(5000, "INTERNAL_ERROR", e.to_string()))?;
        let head = Bytes::from(doc.head);
        let mut gathered = BytesMut::new();
        for piece in doc.pieces {
            let bytes = match piece {
                Piece::Written(r) => head.slice(r),
                Piece::Stored { track, range } => {
                    let base = f.tracks[track].data_offset;
                    let (start, end) = (base + range.start, base + range.end);
                    if end > data.len() as u64 {
                        return Err(failure(
                            5000,
                            "INTERNAL_ERROR",
                            format!("stored media of {} is shorter than its row", f.number),
                        ));
                    }
                    data.slice(start as usize..end as usize)
                }
            };
            if bytes.len() < GATHER_BELOW {
                gathered.extend_from_slice(&bytes);
            } else {
                if !gathered.is_empty() {
                    self.out.push_back(gathered.split().freeze());
                }
                self.out.push_back(bytes);
            }
        }
        if !gathered.is_empty() {
            self.out.push_back(gathered.freeze());
        }
        self.sent += 1;
        Ok(())
    }

    /// The tags before and after the Cluster (docs/wire.md#getmedia).
    fn tags(&self, f: &FragmentRecord) -> (Vec<SimpleTag>, Vec<SimpleTag>) {
        let number = f.number.to_string();
        let server = seconds(f.server_timestamp);
        let producer = seconds(f.producer_timestamp);
        match self.kind {
            Kind::GetMedia { .. } => {
                let behind = self
                    .state
                    .clock
                    .timestamp()
                    .millis()
                    .saturating_sub(f.server_timestamp.millis())
                    .max(0);
                (
                    vec![
                        string_tag("AWS_KINESISVIDEO_FRAGMENT_NUMBER", number.clone()),
                        string_tag("AWS_KINESISVIDEO_SERVER_TIMESTAMP", server),
                        string_tag("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", producer),
                    ],
                    vec![
                        string_tag("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", behind.to_string()),
                        string_tag("AWS_KINESISVIDEO_CONTINUATION_TOKEN", number),
                    ],
                )
            }
            // GetMedia's names, which consumers parse, and the model's names for this operation
            // (docs/choices.md#getmediaforfragmentlist-tags).
            Kind::List { .. } => (
                vec![
                    string_tag("AWS_KINESISVIDEO_FRAGMENT_NUMBER", number),
                    string_tag("AWS_KINESISVIDEO_SERVER_TIMESTAMP", server.clone()),
                    string_tag("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", producer.clone()),
                    string_tag("AWS_KINESISVIDEO_SERVER_SIDE_TIMESTAMP", server),
                    string_tag("AWS_KINESISVIDEO_PRODUCER_SIDE_TIMESTAMP", producer),
                ],
                Vec::new(),
            ),
        }
    }

    /// Ends the response with an error document.
    fn fail(&mut self, failure: Failure) {
        tracing::warn!(
            stream = %self.stream.name,
            id = failure.id,
            "media response ended early: {}",
            failure.message
        );
        let mut tags = Vec::new();
        if let Some(n) = failure.fragment {
            tags.push(string_tag(
                "AWS_KINESISVIDEO_FRAGMENT_NUMBER",
                n.to_string(),
            ));
        }
        match self.kind {
            Kind::GetMedia { .. } => {
                tags.push(string_tag(
                    "AWS_KINESISVIDEO_ERROR_CODE",
                    failure.code.into(),
                ));
                tags.push(string_tag(
                    "AWS_KINESISVIDEO_ERROR_ID",
                    failure.id.to_string(),
                ));
            }
            Kind::List { .. } => {
                tags.push(string_tag(
                    "AWS_KINESISVIDEO_EXCEPTION_ERROR_CODE",
                    failure.id.to_string(),
                ));
                tags.push(string_tag(
                    "AWS_KINESISVIDEO_EXCEPTION_MESSAGE",
                    failure.message,
                ));
            }
        }
        self.out
            .push_back(Bytes::from(document::error_document(&tags)));
        self.done = true;
    }
}

fn string_tag(name: &str, value: String) -> SimpleTag {
    SimpleTag {
        name: name.to_owned(),
        value: TagValue::String(value),
    }
}

/// Seconds with three decimals, as AWS writes its timestamp tags ("1511852109.126").
fn seconds(t: Timestamp) -> String {
    let ms = t.millis();
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// The `TrackEntry` of a stored codec configuration: what the producer declared.
fn track_entry(c: &store::CodecConfig) -> Track {
    Track {
        number: c.track,
        uid: Some(c.track.0),
        track_type: c.track_type,
        codec_id: c.codec_id.clone(),
        codec_private: (!c.codec_private.is_empty()).then(|| c.codec_private.clone()),
        name: c.track_name.clone(),
        default_duration_ns: None,
        pixel_width: c.pixel_width,
        pixel_height: c.pixel_height,
        sampling_frequency: c.sampling_frequency,
        channels: c.channels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_seconds_with_three_decimals() {
        assert_eq!(
            seconds(Timestamp::from_millis(1_511_852_109_126)),
            "1511852109.126"
        );
        assert_eq!(seconds(Timestamp::from_millis(5)), "0.005");
        assert_eq!(seconds(Timestamp::from_millis(0)), "0.000");
    }

    #[test]
    fn a_fourth_reader_of_a_stream_is_refused_until_one_leaves() {
        let readers = Arc::new(Readers::default());
        let s = StreamId(1);
        let slots: Vec<ReaderSlot> = (0..MAX_READERS_PER_STREAM)
            .map(|_| readers.enter(s).expect("under the limit"))
            .collect();
        assert!(readers.enter(s).is_none());
        assert!(readers.enter(StreamId(2)).is_some(), "per stream");
        drop(slots);
        let again = readers.enter(s).expect("a place came free");
        assert_eq!(readers.lock().get(&s), Some(&1));
        drop(again);
        assert_eq!(
            readers.lock().get(&s),
            None,
            "no entry left for a stream nobody reads"
        );
    }
}
