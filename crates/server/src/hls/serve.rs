//! The HLS GET endpoints (docs/wire.md#hls-resources): master and media playlists, fMP4 init and media
//! fragments, all authorised by the session token alone.
//!
//! Which fragments a session shows (its "window") is derived from the sealed session and the
//! catalog on every request, so any node with the key serves any session:
//! - ON_DEMAND: the oldest `max_fragments` fragments with a selected timestamp in [Start, End].
//! - LIVE_REPLAY: the same list from Start on, revealed as wall-clock time since the session began
//!   passes each fragment's duration; a sliding window of `max_fragments`.
//! - LIVE: the newest `max_fragments` by ingest order; MEDIA-SEQUENCE is the fragments' gapless
//!   ingest index and DISCONTINUITY-SEQUENCE their stored continuity counters, so both are the
//!   same on every reload (docs/choices.md#live-playlist-sequence-stability).
//!
//! The session timeline is the selected timestamp (server or producer) of each fragment: tfdt of
//! a track = that timestamp plus the track's own offsets, so audio and video stay aligned and
//! EXTINF equals the span written in the fragment's boxes (both come from `media::timeline`).

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
pub(super) use media::codec::Codec;
use media::timeline::{self, DecodeTimes, TrackClock, TrackTiming, VIDEO_TIMESCALE};
use media::TrackNumber;
use serde::Deserialize;
use store::{
    CodecConfig, CodecConfigId, Continuity, FragmentNumber, FragmentQuery, FragmentRecord,
    FragmentSummary, FragmentTimes, FragmentTrack, StreamRecord, Timestamp, TimestampKind,
    TrackSummary,
};

use super::limits::HlsResource;
use super::playlist::{self, Container, MasterPlaylist, MediaPlaylist, Segment};
use super::session::{ContainerFormat, DiscontinuityMode, PlaybackMode, Protocol, Session};
use crate::wire::AwsQuery;
use crate::{ApiError, AppState};

/// ON_DISCONTINUITY: a gap or overlap above this marks a discontinuity (docs/wire.md#hls-playlists).
const GAP_MS: i64 = Continuity::GAP_MS;
/// "For each streaming session, only 500 CPD changes are allowed" (docs/wire.md#hls-playlists).
const MAX_CODEC_CHANGES: usize = 500;
/// A LIVE session serves fragments ingested from this long before its creation on.
const LIVE_LOOKBACK_MS: i64 = 60_000;
/// Pages read from the catalog while building a window.
const PAGE: usize = 1000;

/// Query parameters of every HLS resource (names as KVS writes them, docs/wire.md#hls-resources).
#[derive(Debug, Default, Deserialize)]
pub struct HlsQuery {
    #[serde(rename = "SessionToken")]
    session_token: Option<String>,
    #[serde(rename = "TrackNumber")]
    track_number: Option<String>,
    #[serde(rename = "SequenceNumber")]
    sequence_number: Option<String>,
    #[serde(rename = "FragmentNumber")]
    fragment_number: Option<String>,
    /// DASH media segments: the first fragment of the segment's Period and the segment's start
    /// on the session timeline in ms (`$Time$`), docs/wire.md#dash-resources.
    #[serde(rename = "FirstFragmentNumber")]
    first_fragment_number: Option<String>,
    #[serde(rename = "Time")]
    time: Option<String>,
    /// LL-HLS (docs/wire.md#ll-hls-resources): `getMP4MediaPart.mp4`'s part index, and a
    /// blocking playlist reload's media sequence number and part (RFC 8216bis §6.2.5.2).
    #[serde(rename = "PartNumber")]
    part_number: Option<String>,
    #[serde(rename = "_HLS_msn")]
    hls_msn: Option<String>,
    #[serde(rename = "_HLS_part")]
    hls_part: Option<String>,
}

impl HlsQuery {
    pub(crate) fn token(&self) -> Result<&str, ApiError> {
        self.session_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::InvalidArgument("SessionToken is required.".into()))
    }

    /// DASH media segments: `FirstFragmentNumber`.
    pub(crate) fn first_fragment(&self) -> Result<FragmentNumber, ApiError> {
        fragment_number(self.first_fragment_number.as_deref(), "FirstFragmentNumber")
    }

    /// `Time`: ms on the session timeline, at most `i64::MAX`.
    pub(crate) fn time_ms(&self) -> Result<i64, ApiError> {
        let raw = self
            .time
            .as_deref()
            .ok_or_else(|| ApiError::InvalidArgument("Time is required.".into()))?;
        raw.parse::<u64>()
            .ok()
            .and_then(|t| i64::try_from(t).ok())
            .ok_or_else(|| ApiError::InvalidArgument(format!("Time '{raw}' is not valid.")))
    }

    pub(crate) fn track(&self) -> Result<TrackNumber, ApiError> {
        match self.track_number.as_deref() {
            None => Ok(TrackNumber(1)),
            Some(t) => t
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=3).contains(n))
                .map(TrackNumber)
                .ok_or_else(|| {
                    ApiError::InvalidArgument(format!(
                        "TrackNumber '{t}' is not a track of this session."
                    ))
                }),
        }
    }

    fn sequence(&self) -> Result<usize, ApiError> {
        match self.sequence_number.as_deref() {
            None => Ok(0),
            Some(s) => s.parse::<usize>().map_err(|_| {
                ApiError::InvalidArgument(format!("SequenceNumber '{s}' is not valid."))
            }),
        }
    }

    pub(super) fn fragment(&self) -> Result<FragmentNumber, ApiError> {
        fragment_number(self.fragment_number.as_deref(), "FragmentNumber")
    }

    /// `PartNumber` of `getMP4MediaPart.mp4`.
    pub(super) fn part(&self) -> Result<usize, ApiError> {
        let raw = self
            .part_number
            .as_deref()
            .ok_or_else(|| ApiError::InvalidArgument("PartNumber is required.".into()))?;
        raw.parse::<usize>()
            .map_err(|_| ApiError::InvalidArgument(format!("PartNumber '{raw}' is not valid.")))
    }

    /// A blocking reload's `_HLS_msn` and `_HLS_part` (RFC 8216bis §6.2.5.2: `_HLS_part`
    /// without `_HLS_msn` is a 400).
    pub(super) fn blocking_reload(&self) -> Result<Option<(u64, Option<usize>)>, ApiError> {
        let number = |raw: &str, name: &str| {
            raw.parse::<u64>()
                .map_err(|_| ApiError::InvalidArgument(format!("{name} '{raw}' is not valid.")))
        };
        match (self.hls_msn.as_deref(), self.hls_part.as_deref()) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(ApiError::InvalidArgument(
                "_HLS_part requires _HLS_msn.".into(),
            )),
            (Some(msn), part) => Ok(Some((
                number(msn, "_HLS_msn")?,
                part.map(|p| number(p, "_HLS_part").map(|p| p as usize))
                    .transpose()?,
            ))),
        }
    }
}

/// A fragment number query parameter `name`: required, a decimal fragment number.
fn fragment_number(raw: Option<&str>, name: &str) -> Result<FragmentNumber, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::InvalidArgument(format!("{name} is required.")))?;
    FragmentNumber::parse(raw)
        .ok_or_else(|| ApiError::InvalidArgument(format!("{name} '{raw}' is not valid.")))
}

/// Decodes a stored codec config (the one codec decision, `media::codec::decode_track`, with the
/// one error mapping, [`super::codec_error`]).
pub(super) fn decode(config: &CodecConfig) -> Result<Codec, ApiError> {
    media::codec::decode_track(&config.codec_id, &config.codec_private)
        .map_err(|e| super::codec_error(config.track, &e))
}

/// A stream's codec configs, each decoded once, with each one's init `SequenceNumber`. Built
/// once per change of the stream's config list and shared by every request ([`PlaylistCache`]),
/// so fragment requests neither copy the rows nor re-parse SPS / AudioSpecificConfig.
pub(crate) struct Configs {
    rows: HashMap<CodecConfigId, (CodecConfig, u32)>,
    per_track: HashMap<TrackNumber, Vec<CodecConfigId>>,
    decoded: HashMap<CodecConfigId, Result<Arc<Codec>, ApiError>>,
}

impl Configs {
    /// The stream's configs, from the catalog's cache while it holds `needed` (config ids grow, so
    /// a list holding the newest id a request needs holds every older one too).
    pub(crate) async fn load(
        state: &AppState,
        stream: &StreamRecord,
        needed: Option<CodecConfigId>,
    ) -> Result<Arc<Self>, ApiError> {
        let shared = state
            .catalog
            .codec_configs_shared(stream.id, needed)
            .await?;
        // The list is append-only: its length and newest id identify it.
        let version = (shared.len(), shared.last().map(|(id, _)| *id));
        if let Some(hit) = state.playlists.configs(stream.id, version) {
            return Ok(hit);
        }
        let configs = Arc::new(Self::from_rows(shared.iter().cloned()));
        state
            .playlists
            .insert_configs(stream.id, version, configs.clone());
        Ok(configs)
    }

    /// Re-reads the stream's configs from the catalog itself.
    async fn load_fresh(state: &AppState, stream: &StreamRecord) -> Result<Arc<Self>, ApiError> {
        Ok(Arc::new(Self::from_rows(
            state.catalog.codec_configs(stream.id).await?.into_iter(),
        )))
    }

    fn from_rows(all: impl Iterator<Item = (CodecConfigId, CodecConfig)>) -> Self {
        let mut rows = HashMap::new();
        let mut per_track: HashMap<TrackNumber, Vec<CodecConfigId>> = HashMap::new();
        let mut decoded = HashMap::new();
        for (id, config) in all {
            let list = per_track.entry(config.track).or_default();
            let sequence = u32::try_from(list.len()).unwrap_or(u32::MAX);
            list.push(id);
            decoded.insert(id, decode(&config).map(Arc::new));
            rows.insert(id, (config, sequence));
        }
        Configs {
            rows,
            per_track,
            decoded,
        }
    }

    pub(crate) fn row(&self, id: CodecConfigId) -> Result<&(CodecConfig, u32), ApiError> {
        self.rows
            .get(&id)
            .ok_or_else(|| ApiError::Internal(format!("codec config {id:?} missing")))
    }

    pub(crate) fn codec(&self, id: CodecConfigId) -> Result<Arc<Codec>, ApiError> {
        self.decoded
            .get(&id)
            .cloned()
            .unwrap_or_else(|| Err(ApiError::Internal(format!("codec config {id:?} missing"))))
    }

    fn codec_id(&self, id: CodecConfigId) -> Option<&str> {
        self.rows.get(&id).map(|(c, _)| c.codec_id.as_str())
    }
}

pub(crate) fn track_of(f: &FragmentRecord, track: TrackNumber) -> Option<&FragmentTrack> {
    f.tracks.iter().find(|t| t.track == track)
}

/// The fragment's start on the session timeline (ns since the session's origin). A fragment
/// before the origin (a producer clock that went back in a LIVE session) is pinned to zero.
pub(crate) fn start_ns(session: &Session, f: &impl FragmentTimes) -> u64 {
    let ms = session
        .timeline_timestamp(f)
        .0
        .saturating_sub(session.origin.0);
    u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
}

/// A track's sample timing with decode times never after presentation times (MPEG-TS; also
/// what EXTINF is computed from: the span is the same either way).
pub(super) fn timing(
    session: &Session,
    f: &FragmentRecord,
    track: &FragmentTrack,
    codec: &Codec,
) -> Result<TrackTiming, ApiError> {
    timing_with(session, f, track, codec, DecodeTimes::BeforePresentation)
}

pub(super) fn timing_with(
    session: &Session,
    f: &FragmentRecord,
    track: &FragmentTrack,
    codec: &Codec,
    decode_times: DecodeTimes,
) -> Result<TrackTiming, ApiError> {
    let start = start_ns(session, f);
    let result = timeline::track_timing(start, &track.samples, TrackClock::of(codec), decode_times);
    result.map_err(|e| {
        ApiError::Internal(format!(
            "timing of fragment {} track {}: {e}",
            f.number, track.track
        ))
    })
}

fn summary_track(f: &FragmentSummary, track: TrackNumber) -> Option<&TrackSummary> {
    f.tracks.iter().find(|t| t.track == track)
}

/// A track's `EXTINF` in seconds: from its stored span ([`timeline::TrackSpan::duration`]), or,
/// where the span cannot tell (a start near the session's zero, or a timing that fails), from its
/// samples, read with the full fragment as [`timing`] would.
pub(crate) async fn extinf(
    state: &AppState,
    session: &Session,
    f: &FragmentSummary,
    t: &TrackSummary,
    codec: &Codec,
) -> Result<f64, ApiError> {
    let clock = TrackClock::of(codec);
    let (duration, timescale) = match t.span.duration(start_ns(session, f), clock) {
        Some(d) => d,
        None => {
            let full = state
                .catalog
                .fragment_shared(f.stream, f.number)
                .await?
                .ok_or_else(|| {
                    ApiError::Internal(format!("fragment {} vanished from the catalog", f.number))
                })?;
            let track = track_of(&full, t.track).ok_or_else(|| {
                ApiError::Internal(format!("fragment {} lost track {}", f.number, t.track))
            })?;
            let timing = timing(session, &full, track, codec)?;
            (timing.duration, timing.timescale)
        }
    };
    Ok(duration as f64 / f64::from(timescale))
}

/// The fragments a session shows now, with what the media playlist needs around them.
pub(crate) struct Window {
    pub(crate) fragments: Vec<FragmentSummary>,
    /// `EXT-X-DISCONTINUITY` before each fragment.
    discontinuity: Vec<bool>,
    media_sequence: u64,
    discontinuity_sequence: u64,
    pub(crate) ended: bool,
}

/// What [`walk_range`] has kept so far.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WalkTotals {
    /// Fragments kept.
    pub(crate) count: usize,
    /// Their summed `duration_ms`.
    pub(crate) duration_ms: i64,
    /// Their summed stored size.
    pub(crate) size_bytes: u64,
}

impl WalkTotals {
    fn keep(&mut self, f: &FragmentSummary) {
        self.count += 1;
        self.duration_ms += f.duration_ms as i64;
        self.size_bytes = self.size_bytes.saturating_add(f.size_bytes);
    }

    fn drop(&mut self, f: &FragmentSummary) {
        self.count = self.count.saturating_sub(1);
        self.duration_ms -= f.duration_ms as i64;
        self.size_bytes = self.size_bytes.saturating_sub(f.size_bytes);
    }
}

/// Walks `stream`'s fragments with a `selector` timestamp in [start, end] in order, keeping only
/// the newest of fragments with equal producer timestamps (docs/choices.md#producer-timestamp-ordering),
/// while `admit(kept, next)` accepts the next one (it sees the totals of those kept and the
/// candidate), keeping at most `cap`. Returns the kept fragments and whether the range was read
/// to its end. HLS ON_DEMAND / LIVE_REPLAY windows and GetClip select with it.
pub(crate) async fn walk_range(
    state: &AppState,
    (stream, selector): (store::StreamId, TimestampKind),
    (start, end): (Timestamp, Timestamp),
    cap: usize,
    mut admit: impl FnMut(&WalkTotals, &FragmentSummary) -> bool,
) -> Result<(Vec<FragmentSummary>, bool), ApiError> {
    let mut out: Vec<FragmentSummary> = Vec::new();
    let mut totals = WalkTotals::default();
    let mut after = None;
    let selected = |f: &FragmentSummary| match selector {
        TimestampKind::Server => f.server_timestamp,
        TimestampKind::Producer => f.producer_timestamp,
    };
    loop {
        let limit = PAGE.min(cap.saturating_sub(out.len()).saturating_add(1));
        let page = state
            .catalog
            .query_fragment_summaries(FragmentQuery {
                stream,
                kind: selector,
                start,
                end,
                after,
                // No more rows than can still be kept, and one past them (the row that ends the
                // walk, or replaces the last one): a full window of 5,000 reads 5,001 rows, not 6,000.
                limit,
            })
            .await?;
        let full = page.len() == limit;
        for f in page {
            after = Some((selected(&f), f.number));
            let duplicate = selector == TimestampKind::Producer
                && out
                    .last()
                    .is_some_and(|l| l.producer_timestamp == f.producer_timestamp);
            if duplicate {
                // Same start: the larger fragment number (ordered within a timestamp) replaces it.
                if let Some(old) = out.pop() {
                    totals.drop(&old);
                }
            } else if !admit(&totals, &f) {
                return Ok((out, false));
            }
            totals.keep(&f);
            out.push(f);
        }
        if !full {
            return Ok((out, true));
        }
    }
}

fn codec_change(prev: &FragmentSummary, next: &FragmentSummary) -> bool {
    prev.tracks.len() != next.tracks.len()
        || prev
            .tracks
            .iter()
            .zip(&next.tracks)
            .any(|(a, b)| a.track != b.track || a.codec_config != b.codec_config)
}

/// Discontinuity before `next` in a list built on the fly (ON_DEMAND, LIVE_REPLAY).
fn discontinuity_between(
    session: &Session,
    prev: Option<&FragmentSummary>,
    next: &FragmentSummary,
) -> bool {
    let Some(prev) = prev else {
        // KVS marks the first segment too in ALWAYS mode (docs/wire.md#hls-playlists).
        return session.discontinuity == DiscontinuityMode::Always;
    };
    if codec_change(prev, next) {
        return true; // a new init section always starts a new timeline
    }
    match session.discontinuity {
        DiscontinuityMode::Always => true,
        DiscontinuityMode::Never => false,
        DiscontinuityMode::OnDiscontinuity => {
            let end = session.selected_timestamp(prev).0 + prev.duration_ms as i64;
            (session.selected_timestamp(next).0 - end).abs() > GAP_MS
        }
    }
}

/// Which stored continuity bit marks a discontinuity in a LIVE session.
pub(super) fn live_flag(session: &Session) -> Option<u8> {
    match (session.discontinuity, session.selector) {
        (DiscontinuityMode::Always, _) => None,
        // A LIVE session outlives producer pauses: playback goes on after a discontinuity.
        (DiscontinuityMode::Never, _) => Some(Continuity::PAUSE),
        (DiscontinuityMode::OnDiscontinuity, TimestampKind::Producer) => {
            Some(Continuity::PRODUCER_GAP)
        }
        (DiscontinuityMode::OnDiscontinuity, TimestampKind::Server) => Some(Continuity::SERVER_GAP),
    }
}

pub(crate) async fn window(state: &AppState, session: &Session) -> Result<Window, ApiError> {
    let max = session.max_fragments as usize;
    match session.mode {
        PlaybackMode::OnDemand => {
            let start = session.start.unwrap_or(Timestamp(i64::MIN));
            let end = session.end.unwrap_or(Timestamp(i64::MAX));
            let (fragments, _) = walk_range(
                state,
                (session.stream_id, session.selector),
                (start, end),
                max,
                |kept, _| kept.count < max,
            )
            .await?;
            let discontinuity = on_the_fly_discontinuities(session, &fragments);
            Ok(Window {
                fragments,
                discontinuity,
                media_sequence: 0,
                discontinuity_sequence: 0,
                ended: true,
            })
        }
        PlaybackMode::LiveReplay => {
            let start = session.start.unwrap_or(Timestamp(i64::MIN));
            let end = session.end.unwrap_or(Timestamp(i64::MAX));
            let elapsed_ms = (state.clock.timestamp().0 - session.created.0).max(0);
            // Reveal fragments as the previous ones' durations elapse (the first at once).
            let (mut visible, complete) = walk_range(
                state,
                (session.stream_id, session.selector),
                (start, end),
                usize::MAX,
                |kept, _| kept.duration_ms <= elapsed_ms,
            )
            .await?;
            let discontinuity = on_the_fly_discontinuities(session, &visible);
            let skip = visible.len().saturating_sub(max);
            let discontinuity_sequence =
                discontinuity[..skip].iter().filter(|d| **d).count() as u64;
            let ended = complete && session.end.is_some();
            Ok(Window {
                fragments: visible.split_off(skip),
                discontinuity: discontinuity[skip..].to_vec(),
                media_sequence: skip as u64,
                discontinuity_sequence,
                ended,
            })
        }
        PlaybackMode::Live => {
            let fragments = state
                .catalog
                .latest_fragment_summaries(session.stream_id, max)
                .await?;
            let flag = live_flag(session);
            let discontinuity: Vec<bool> = fragments
                .iter()
                .map(|f| match flag {
                    None => true,
                    Some(bit) => f.continuity.has(bit),
                })
                .collect();
            let (media_sequence, discontinuity_sequence) = match fragments.first() {
                None => (0, 0),
                Some(first) => {
                    // Tags up to and including the first segment, minus its own (RFC 8216 §4.3.3.3).
                    let through_first = match flag {
                        None => first.sequence + 1,
                        Some(bit) => first.continuity.count(bit),
                    };
                    (first.sequence, through_first - u64::from(discontinuity[0]))
                }
            };
            Ok(Window {
                fragments,
                discontinuity,
                media_sequence,
                discontinuity_sequence,
                ended: false,
            })
        }
    }
}

fn on_the_fly_discontinuities(session: &Session, fragments: &[FragmentSummary]) -> Vec<bool> {
    let mut prev = None;
    fragments
        .iter()
        .map(|f| {
            let d = discontinuity_between(session, prev, f);
            prev = Some(f);
            d
        })
        .collect()
}

/// Cuts the window before the first fragment whose track set or codecs differ from the first
/// one's ("a change of track count or codec is an error when reached") or past 500 codec changes.
pub(crate) fn compatible_prefix(configs: &Configs, w: &mut Window) {
    let Some(first) = w.fragments.first() else {
        return;
    };
    let shape: Vec<(TrackNumber, Option<String>)> = first
        .tracks
        .iter()
        .map(|t| (t.track, configs.codec_id(t.codec_config).map(str::to_owned)))
        .collect();
    let mut changes = 0;
    let mut keep = w.fragments.len();
    for (i, f) in w.fragments.iter().enumerate() {
        let this: Vec<(TrackNumber, Option<String>)> = f
            .tracks
            .iter()
            .map(|t| (t.track, configs.codec_id(t.codec_config).map(str::to_owned)))
            .collect();
        if this != shape {
            keep = i;
            break;
        }
        if i > 0 && codec_change(&w.fragments[i - 1], f) {
            changes += 1;
            if changes > MAX_CODEC_CHANGES {
                keep = i;
                break;
            }
        }
    }
    if keep < w.fragments.len() {
        w.fragments.truncate(keep);
        w.discontinuity.truncate(keep);
    }
}

pub(crate) fn in_session(session: &Session, f: &impl FragmentTimes) -> bool {
    let ts = session.selected_timestamp(f);
    match session.mode {
        PlaybackMode::OnDemand | PlaybackMode::LiveReplay => {
            session.start.is_none_or(|s| ts >= s) && session.end.is_none_or(|e| ts <= e)
        }
        PlaybackMode::Live => {
            let horizon =
                session.created.0 - LIVE_LOOKBACK_MS - session.max_fragments as i64 * 20_000;
            f.server_timestamp().0 >= horizon
        }
    }
}

/// Frames per second from a fragment's presentation times: (n − 1) frames over the PTS span,
/// snapped to a common rate when within 0.5 % (Matroska's millisecond timecodes jitter).
pub(crate) fn estimate_frame_rate(track: &FragmentTrack) -> Option<f64> {
    const COMMON: [f64; 12] = [
        10.0,
        12.5,
        15.0,
        20.0,
        24_000.0 / 1001.0,
        24.0,
        25.0,
        30_000.0 / 1001.0,
        30.0,
        50.0,
        60_000.0 / 1001.0,
        60.0,
    ];
    let (min, max) = track
        .samples
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), s| {
            (lo.min(s.pts_offset_ns), hi.max(s.pts_offset_ns))
        });
    if track.samples.len() < 2 || max <= min {
        return None;
    }
    let fps = (track.samples.len() - 1) as f64 * 1e9 / (max - min) as f64;
    let nearest = COMMON
        .iter()
        .copied()
        .min_by(|a, b| (fps - a).abs().total_cmp(&(fps - b).abs()));
    let snapped = nearest
        .filter(|c| (fps - c).abs() / c < 0.005)
        .unwrap_or(fps);
    Some((snapped * 1000.0).round() / 1000.0)
}

/// Cache lifetime: playlists of live sessions change every fragment; everything else is fixed
/// for the session's life (and private: the URL is a credential).
pub(crate) fn cache_control(session: &Session, now: Timestamp, changes: bool) -> HeaderValue {
    if changes {
        return HeaderValue::from_static("no-cache");
    }
    let seconds = ((session.expires.0 - now.0) / 1000).max(0);
    HeaderValue::from_str(&format!("private, max-age={seconds}"))
        .unwrap_or(HeaderValue::from_static("no-cache"))
}

pub(crate) fn respond(
    content_type: &'static str,
    cache: HeaderValue,
    body: Body,
    len: Option<u64>,
) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, cache);
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    response
}

/// A strong entity tag for an immutable resource (init, media and TS fragments;
/// docs/wire.md#hls-segments): a digest of everything its bytes are made from (the packager's
/// format version, the stream, the fragment or codec config, the track, and where the session's
/// timeline puts it). Playlists change and carry none.
pub(super) fn etag(parts: &[&[u8]]) -> HeaderValue {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for part in parts {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part);
    }
    let digest = digest.finalize();
    HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12])))
        .unwrap_or(HeaderValue::from_static("\"\""))
}

/// `304 Not Modified` when the request's `If-None-Match` names `etag` (or `*`), RFC 9110 §13.1.2
/// (weak comparison: a `W/` prefix is ignored). Then the resource is neither read nor packaged.
pub(super) fn not_modified(
    request: &HeaderMap,
    etag: &HeaderValue,
    cache: HeaderValue,
) -> Option<Response> {
    let matches = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t.as_bytes() == etag.as_bytes());
    matches.then(|| {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        let h = response.headers_mut();
        h.insert(header::ETAG, etag.clone());
        h.insert(header::CACHE_CONTROL, cache);
        response
    })
}

/// [`respond`] with the resource's entity tag.
pub(super) fn respond_tagged(
    content_type: &'static str,
    cache: HeaderValue,
    etag: HeaderValue,
    body: Body,
    len: Option<u64>,
) -> Response {
    let mut response = respond(content_type, cache, body, len);
    response.headers_mut().insert(header::ETAG, etag);
    response
}

/// A stored fragment's bytes could not be read: a segment file gone or cut short is 500
/// `InternalFailure`, a read that may pass on retry 503 (docs/wire.md#errors); logged with the
/// stream and fragment, and the store's error names the file.
pub(super) fn read_failed(
    stream: &StreamRecord,
    number: FragmentNumber,
    e: store::StoreError,
) -> ApiError {
    let detail = format!("reading fragment {number} of stream {}: {e}", stream.name);
    match e.kind() {
        // A read that may pass on retry (I/O trouble, an object store away) stays retryable.
        store::StoreErrorKind::Unavailable => ApiError::StoreUnavailable(detail),
        _ => ApiError::Internal(detail),
    }
}

pub(super) const M3U8: &str = "application/vnd.apple.mpegurl";
pub(super) const MP4: &str = "video/mp4";

pub(crate) async fn open(
    state: &AppState,
    q: &HlsQuery,
    resource: HlsResource,
    protocol: Protocol,
) -> Result<(Session, StreamRecord), ApiError> {
    super::authorize(state, q.token()?, resource, protocol).await
}

pub(super) fn fmp4_only(session: &Session) -> Result<(), ApiError> {
    match session.container {
        ContainerFormat::FragmentedMp4 => Ok(()),
        ContainerFormat::MpegTs => Err(ApiError::InvalidArgument(
            "This session's ContainerFormat is MPEG_TS: its media is served by getTSFragment.ts."
                .into(),
        )),
    }
}

/// The session's window ([`window`]) cut to what one set of tracks can play
/// ([`compatible_prefix`]), with the stream's decoded codec configs: what every playlist and
/// manifest (HLS master and media playlists, the DASH MPD) lists.
pub(crate) async fn playable_window(
    state: &AppState,
    session: &Session,
    stream: &StreamRecord,
) -> Result<(Window, Arc<Configs>), ApiError> {
    let mut w = window(state, session).await?;
    let newest_config = w
        .fragments
        .iter()
        .flat_map(|f| f.tracks.iter().map(|t| t.codec_config))
        .max();
    let configs = Configs::load(state, stream, newest_config).await?;
    compatible_prefix(&configs, &mut w);
    Ok((w, configs))
}

/// Peak bits per second over the fragments: size × 8 / duration (`BANDWIDTH`, DASH
/// `Representation@bandwidth`; docs/choices.md#master-playlist-estimates).
pub(crate) fn peak_bandwidth(fragments: &[FragmentSummary]) -> u64 {
    fragments
        .iter()
        .map(|f| f.size_bytes.saturating_mul(8 * 1000) / f.duration_ms.max(1))
        .max()
        .unwrap_or(0)
}

/// A video codec's picture size from its SPS; `None` for audio.
pub(crate) fn picture_size(codec: &Codec) -> Option<(u32, u32)> {
    match codec {
        Codec::Avc(c) => Some((c.width, c.height)),
        Codec::Hevc(c) => Some((c.width, c.height)),
        Codec::Aac(_) => None,
    }
}

/// `GET /hls/v1/getHLSMasterPlaylist.m3u8`
pub async fn master_playlist(
    State(state): State<AppState>,
    AwsQuery(q): AwsQuery<HlsQuery>,
) -> Result<Response, ApiError> {
    let (session, stream) = open(&state, &q, HlsResource::MasterPlaylist, Protocol::Hls).await?;
    let (w, configs) = playable_window(&state, &session, &stream).await?;
    let first = w.fragments.first().ok_or_else(|| {
        ApiError::ResourceNotFound("No fragments are available in this streaming session.".into())
    })?;
    let mut codecs = Vec::new();
    let mut resolution = None;
    let mut frame_rate = None;
    // The window holds summaries; the frame rate needs the first fragment's samples.
    let mut first_full: Option<Arc<FragmentRecord>> = None;
    for t in &first.tracks {
        let codec = configs.codec(t.codec_config)?;
        codecs.push(codec.codec_string());
        resolution = resolution.or(picture_size(&codec));
        if codec.is_video() && frame_rate.is_none() {
            if first_full.is_none() {
                first_full = state
                    .catalog
                    .fragment_shared(stream.id, first.number)
                    .await?;
            }
            frame_rate = first_full
                .as_deref()
                .and_then(|full| track_of(full, t.track))
                .and_then(estimate_frame_rate);
        }
    }
    let bandwidth = peak_bandwidth(&w.fragments);
    let container = match session.container {
        ContainerFormat::FragmentedMp4 => Container::Fmp4,
        ContainerFormat::MpegTs => Container::MpegTs,
    };
    let text = playlist::render_master(&MasterPlaylist {
        token: q.token()?,
        codecs,
        resolution,
        frame_rate,
        bandwidth,
        audio_rendition: first.tracks.len() > 1,
        container,
    });
    let now = state.clock.timestamp();
    let changes = session.mode != PlaybackMode::OnDemand;
    Ok(respond(
        M3U8,
        cache_control(&session, now, changes),
        Body::from(text),
        None,
    ))
}

/// `GET /hls/v1/getHLSMediaPlaylist.m3u8?TrackNumber=N`
pub async fn media_playlist(
    State(state): State<AppState>,
    AwsQuery(q): AwsQuery<HlsQuery>,
) -> Result<Response, ApiError> {
    let (session, stream) = open(&state, &q, HlsResource::MediaPlaylist, Protocol::Hls).await?;
    let (track, container) = match session.container {
        ContainerFormat::FragmentedMp4 => (q.track()?, Container::Fmp4),
        // One muxed playlist (no TrackNumber); EXTINF from track 1: the video, or the only audio.
        ContainerFormat::MpegTs => (TrackNumber(1), Container::MpegTs),
    };
    if let Some(ll) = super::parts::low_latency(&state, &session) {
        return super::parts::media_playlist(&state, &q, &session, &stream, track, ll).await;
    }
    let list = segment_list_cached(&state, &session, &stream, track, None).await?;
    let vod = session.mode == PlaybackMode::OnDemand;
    let text = list
        .text(container, track, vod, None)
        .with_token(q.token()?);
    let now = state.clock.timestamp();
    let changes = !list.ended;
    Ok(respond(
        M3U8,
        cache_control(&session, now, changes),
        Body::from(text),
        None,
    ))
}

/// A media playlist's segment list, shared between LIVE requests by [`live_shared`] (the list,
/// not the text: that carries each session's token).
pub(super) async fn segment_list_cached(
    state: &AppState,
    session: &Session,
    stream: &StreamRecord,
    track: TrackNumber,
    low_latency: Option<&super::ll::LowLatencyConfig>,
) -> Result<Arc<SegmentList>, ApiError> {
    live_shared(
        state,
        session,
        stream,
        Some(track),
        low_latency.is_some(),
        || segment_list(state, session, stream, track, low_latency),
    )
    .await
}

/// What a media playlist lists for one track of a session, before the token is written in.
#[derive(Debug)]
pub struct SegmentList {
    pub(super) segments: Vec<Segment>,
    pub(super) media_sequence: u64,
    discontinuity_sequence: u64,
    pub(super) ended: bool,
    /// The newest fragment listed, and where the stream stood after it (LL-HLS lists the
    /// fragments arriving after it; `hls::parts`).
    pub(super) last: Option<(FragmentNumber, store::StreamEdge)>,
    /// The playlist text around the session tokens, rendered once per list: a LIVE list is
    /// shared by every reload of every session with the same options until the next commit, and
    /// only the token differs between them.
    text: std::sync::OnceLock<PlaylistText>,
}

impl SegmentList {
    /// The playlist text of this list (rendered on first use, then shared).
    pub(super) fn text(
        &self,
        container: Container,
        track: TrackNumber,
        vod: bool,
        low_latency: Option<playlist::LowLatency>,
    ) -> &PlaylistText {
        self.text
            .get_or_init(|| PlaylistText::new(container, track.0, vod, self, low_latency))
    }
}

/// A media playlist's text cut at every place the session token goes.
#[derive(Debug)]
pub(super) struct PlaylistText {
    pieces: Vec<Box<str>>,
}

impl PlaylistText {
    /// The text with no token in it, for `playlist::render_media` to write one where it writes the
    /// token: a character no playlist otherwise contains.
    const SLOT: &'static str = "\u{0}";

    fn new(
        container: Container,
        track: u64,
        vod: bool,
        list: &SegmentList,
        low_latency: Option<playlist::LowLatency>,
    ) -> Self {
        let text = playlist::render_media(&MediaPlaylist {
            token: Self::SLOT,
            container,
            track,
            vod,
            media_sequence: list.media_sequence,
            discontinuity_sequence: list.discontinuity_sequence,
            min_target_duration: 1,
            segments: &list.segments,
            ended: list.ended,
            low_latency,
        });
        PlaylistText {
            pieces: text.split(Self::SLOT).map(Box::from).collect(),
        }
    }

    /// The playlist of the session whose token is `token`.
    pub(super) fn with_token(&self, token: &str) -> String {
        let len = self.pieces.iter().map(|p| p.len()).sum::<usize>()
            + token.len() * self.pieces.len().saturating_sub(1);
        let mut out = String::with_capacity(len);
        for (i, piece) in self.pieces.iter().enumerate() {
            if i > 0 {
                out.push_str(token);
            }
            out.push_str(piece);
        }
        out
    }
}

async fn segment_list(
    state: &AppState,
    session: &Session,
    stream: &StreamRecord,
    track: TrackNumber,
    low_latency: Option<&super::ll::LowLatencyConfig>,
) -> Result<SegmentList, ApiError> {
    let (w, configs) = playable_window(state, session, stream).await?;
    if w.fragments
        .first()
        .is_some_and(|f| summary_track(f, track).is_none())
    {
        return Err(ApiError::InvalidArgument(format!(
            "TrackNumber {track} is not a track of this session."
        )));
    }
    let mut segments = Vec::with_capacity(w.fragments.len());
    for (f, discontinuity) in w.fragments.iter().zip(&w.discontinuity) {
        let Some(t) = summary_track(f, track) else {
            break;
        };
        let codec = configs.codec(t.codec_config)?;
        let duration_s = extinf(state, session, f, t, &codec).await?;
        segments.push(Segment {
            fragment_number: f.number.to_string(),
            duration_s,
            discontinuity: *discontinuity,
            init_sequence: configs.row(t.codec_config)?.1,
            program_date_time_ms: session
                .display_timestamp
                .then(|| session.selected_timestamp(f).0),
            parts: Vec::new(),
            complete: true,
        });
    }
    if let Some(ll) = low_latency {
        super::parts::list_stored_parts(
            state,
            session,
            &configs,
            &w.fragments,
            &mut segments,
            track,
            ll,
        )
        .await?;
    }
    let last = w.fragments[..segments.len()].last().map(|f| {
        let end = |t: Timestamp| Timestamp(t.0.saturating_add(f.duration_ms as i64));
        let configs = f
            .tracks
            .iter()
            .map(|t| (t.track.0, t.codec_config.0))
            .collect();
        (
            f.number,
            store::StreamEdge::ending_at(
                end(f.producer_timestamp),
                end(f.server_timestamp),
                configs,
            ),
        )
    });
    Ok(SegmentList {
        segments,
        media_sequence: w.media_sequence,
        discontinuity_sequence: w.discontinuity_sequence,
        ended: w.ended,
        last,
        text: std::sync::OnceLock::new(),
    })
}

/// What `build` makes of a session's window, shared when the session is LIVE: LIVE playlists
/// and manifests are asked for again and again while the stream's newest fragment stays the
/// same, so what was built for the session's options ([`LiveKey`]) serves every request of
/// every such session until the next commit. Other modes build each time (a LIVE_REPLAY window
/// moves with its own session's clock). What is shared must not carry the session's token:
/// that is written in per request.
pub(crate) async fn live_shared<T, F, Fut>(
    state: &AppState,
    session: &Session,
    stream: &StreamRecord,
    track: Option<TrackNumber>,
    low_latency: bool,
    build: F,
) -> Result<Arc<T>, ApiError>
where
    T: Any + Send + Sync,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let key = match session.mode {
        PlaybackMode::Live => Some(LiveKey::new(
            session,
            track,
            state.catalog.last_fragment_number(stream.id).await?,
            low_latency,
        )),
        _ => None,
    };
    if let Some(hit) = key.as_ref().and_then(|k| state.playlists.get::<T>(k)) {
        return Ok(hit);
    }
    let built = Arc::new(build().await?);
    if let Some(key) = key {
        state.playlists.insert(key, built.clone());
    }
    Ok(built)
}

/// Everything a LIVE segment list (HLS, per track) or manifest (DASH, every track) depends on:
/// the protocol, the session's options and the stream's newest fragment (every commit changes
/// it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LiveKey {
    dash: bool,
    stream: store::StreamId,
    stream_creation: i64,
    /// `None`: every track (the DASH manifest).
    track: Option<u64>,
    container: bool,
    selector: bool,
    discontinuity: u8,
    display_timestamp: bool,
    max_fragments: u32,
    origin: i64,
    newest: Option<FragmentNumber>,
    /// The list carries LL-HLS parts of its newest segments.
    low_latency: bool,
}

impl LiveKey {
    fn new(
        session: &Session,
        track: Option<TrackNumber>,
        newest: Option<FragmentNumber>,
        low_latency: bool,
    ) -> Self {
        LiveKey {
            dash: session.protocol == Protocol::Dash,
            stream: session.stream_id,
            stream_creation: session.stream_creation.0,
            track: track.map(|t| t.0),
            container: session.container == ContainerFormat::MpegTs,
            selector: session.selector == TimestampKind::Producer,
            discontinuity: session.discontinuity as u8,
            display_timestamp: session.display_timestamp,
            max_fragments: session.max_fragments,
            origin: session.origin.0,
            newest,
            low_latency,
        }
    }
}

/// Recently built LIVE segment lists and manifests ([`live_shared`]), shared by every session
/// with the same options.
#[derive(Default)]
pub struct PlaylistCache {
    /// An HLS [`SegmentList`] or a DASH manifest's parts, by the key's protocol.
    live: std::sync::Mutex<HashMap<LiveKey, Arc<dyn Any + Send + Sync>>>,
    /// Per stream: its decoded codec configs and the (length, newest id) of the list they came from.
    configs: std::sync::Mutex<HashMap<store::StreamId, (ConfigsVersion, Arc<Configs>)>>,
}

type ConfigsVersion = (usize, Option<CodecConfigId>);

/// Entries kept; past this the cache starts again empty (entries are cheap to rebuild).
const PLAYLIST_CACHE_ENTRIES: usize = 4096;

impl PlaylistCache {
    fn configs(&self, stream: store::StreamId, version: ConfigsVersion) -> Option<Arc<Configs>> {
        let configs = self.configs.lock().ok()?;
        configs
            .get(&stream)
            .filter(|(v, _)| *v == version)
            .map(|(_, c)| c.clone())
    }

    fn insert_configs(
        &self,
        stream: store::StreamId,
        version: ConfigsVersion,
        configs: Arc<Configs>,
    ) {
        if let Ok(mut all) = self.configs.lock() {
            if all.len() >= PLAYLIST_CACHE_ENTRIES {
                all.clear();
            }
            all.insert(stream, (version, configs));
        }
    }

    fn get<T: Any + Send + Sync>(&self, key: &LiveKey) -> Option<Arc<T>> {
        let entry = self.live.lock().ok()?.get(key).cloned()?;
        entry.downcast::<T>().ok()
    }

    fn insert<T: Any + Send + Sync>(&self, key: LiveKey, value: Arc<T>) {
        if let Ok(mut live) = self.live.lock() {
            if live.len() >= PLAYLIST_CACHE_ENTRIES {
                live.clear();
            }
            live.insert(key, value);
        }
    }
}

/// `GET /hls/v1/getMP4InitFragment.mp4?TrackNumber=N&SequenceNumber=K`
pub async fn init_fragment(
    State(state): State<AppState>,
    request_headers: HeaderMap,
    AwsQuery(q): AwsQuery<HlsQuery>,
) -> Result<Response, ApiError> {
    init_fragment_of(&state, &request_headers, &q, Protocol::Hls).await
}

/// `getMP4InitFragment.mp4` of an HLS (`/hls/v1/`) or DASH (`/dash/v1/`) session: the same init
/// section, from the same writer, under either path (docs/wire.md#dash-resources).
pub(crate) async fn init_fragment_of(
    state: &AppState,
    request_headers: &HeaderMap,
    q: &HlsQuery,
    protocol: Protocol,
) -> Result<Response, ApiError> {
    let (session, stream) = open(state, q, HlsResource::InitFragment, protocol).await?;
    fmp4_only(&session)?;
    let track = q.track()?;
    let sequence = q.sequence()?;
    let mut configs = Configs::load(state, &stream, None).await?;
    if configs
        .per_track
        .get(&track)
        .is_none_or(|ids| ids.len() <= sequence)
    {
        // A codec change newer than the cached list.
        configs = Configs::load_fresh(state, &stream).await?;
    }
    let id = configs
        .per_track
        .get(&track)
        .and_then(|ids| ids.get(sequence).copied())
        .ok_or_else(|| {
            ApiError::InvalidArgument(format!(
                "SequenceNumber {sequence} of track {track} is not in this session."
            ))
        })?;
    let now = state.clock.timestamp();
    let cache = cache_control(&session, now, false);
    let tag = etag(&[
        b"fmp4-init",
        &media::fmp4::FORMAT_VERSION.to_be_bytes(),
        &stream.id.0.to_be_bytes(),
        &id.0.to_be_bytes(),
        &track.0.to_be_bytes(),
    ]);
    if let Some(response) = not_modified(request_headers, &tag, cache.clone()) {
        return Ok(response);
    }
    let codec = configs.codec(id)?;
    let (init_track, timescale) = sample_description(&codec, &configs.row(id)?.0.codec_private);
    let bytes = media::fmp4::init_segment(&init_track, timescale).map_err(|e| {
        ApiError::InvalidCodecPrivateData(format!(
            "Cannot build the init fragment of track {track}: {e}"
        ))
    })?;
    let len = bytes.len() as u64;
    Ok(respond_tagged(
        MP4,
        cache,
        tag,
        Body::from(bytes),
        Some(len),
    ))
}

/// A track's MP4 sample description (`avc1`/`hvc1`/`mp4a`, as fMP4 init segments and GetClip
/// files write it) and its media timescale, from the decoded codec and its CodecPrivate bytes.
pub(crate) fn sample_description<'a>(
    codec: &Codec,
    codec_private: &'a [u8],
) -> (media::fmp4::InitTrack<'a>, u32) {
    match codec {
        Codec::Avc(c) => (
            media::fmp4::InitTrack::Avc {
                avcc: codec_private,
                width: c.width,
                height: c.height,
            },
            VIDEO_TIMESCALE,
        ),
        Codec::Hevc(c) => (
            media::fmp4::InitTrack::Hevc {
                hvcc: codec_private,
                width: c.width,
                height: c.height,
            },
            VIDEO_TIMESCALE,
        ),
        Codec::Aac(c) => (
            media::fmp4::InitTrack::Aac {
                asc: codec_private,
                sample_rate: c.sample_rate,
                channels: c.channels,
            },
            c.sample_rate,
        ),
    }
}

/// The stored fragment `number` when the session shows it; `ResourceNotFoundException` otherwise.
pub(super) async fn session_fragment(
    state: &AppState,
    session: &Session,
    stream: &StreamRecord,
    number: FragmentNumber,
) -> Result<Arc<FragmentRecord>, ApiError> {
    state
        .catalog
        .fragment_shared(stream.id, number)
        .await?
        .filter(|f| in_session(session, &**f))
        .ok_or_else(|| {
            ApiError::ResourceNotFound(format!(
                "Fragment {number} is not part of this streaming session."
            ))
        })
}

/// `GET /hls/v1/getMP4MediaFragment.mp4?FragmentNumber=F&TrackNumber=N`: a generated `moof` and
/// `mdat` header, then the fragment's stored bytes for that track, as ingested.
pub async fn media_fragment(
    State(state): State<AppState>,
    request_headers: HeaderMap,
    AwsQuery(q): AwsQuery<HlsQuery>,
) -> Result<Response, ApiError> {
    let (session, stream) = open(&state, &q, HlsResource::MediaFragment, Protocol::Hls).await?;
    fmp4_only(&session)?;
    let track = q.track()?;
    let number = q.fragment()?;
    media_fragment_of(&state, &request_headers, &session, &stream, number, track).await
}

/// The `moof` + `mdat` of one track of one fragment of an fMP4 session, HLS or DASH (the DASH
/// handler names the fragment by its place on the session timeline, docs/wire.md#dash-resources).
pub(crate) async fn media_fragment_of(
    state: &AppState,
    request_headers: &HeaderMap,
    session: &Session,
    stream: &StreamRecord,
    number: FragmentNumber,
    track: TrackNumber,
) -> Result<Response, ApiError> {
    let fragment = session_fragment(state, session, stream, number).await?;
    let t = track_of(&fragment, track).ok_or_else(|| {
        ApiError::InvalidArgument(format!("Fragment {number} has no track {track}."))
    })?;
    let sequence_number = (fragment.sequence % u64::from(u32::MAX)) as u32 + 1;
    let now = state.clock.timestamp();
    let cache = cache_control(session, now, false);
    let tag = etag(&[
        b"fmp4-media",
        &media::fmp4::FORMAT_VERSION.to_be_bytes(),
        &stream.id.0.to_be_bytes(),
        number.to_string().as_bytes(),
        &track.0.to_be_bytes(),
        &start_ns(session, &*fragment).to_be_bytes(),
        &sequence_number.to_be_bytes(),
    ]);
    if let Some(response) = not_modified(request_headers, &tag, cache.clone()) {
        return Ok(response);
    }
    let configs = Configs::load(state, stream, Some(t.codec_config)).await?;
    let codec = configs.codec(t.codec_config)?;
    // Decode times at presentation times (negative composition offsets in a version 1 trun):
    // hls.js aligns a discontinuous fragment by its first decode time (see media::timeline).
    let timing = timing_with(session, &fragment, t, &codec, DecodeTimes::AtPresentation)?;
    let head = media::fmp4::media_segment_header(sequence_number, &timing)
        .map_err(|e| ApiError::Internal(format!("moof of fragment {number}: {e}")))?;
    let data = state
        .media
        .read(
            stream.id,
            fragment.media,
            t.data_offset..t.data_offset + t.data_len,
        )
        .await
        .map_err(|e| read_failed(stream, number, e))?;
    let len = head.len() as u64 + data.len() as u64;
    let body = Body::from_stream(futures::stream::iter([
        Ok::<_, std::convert::Infallible>(Bytes::from(head)),
        Ok(data),
    ]));
    Ok(respond_tagged(MP4, cache, tag, body, Some(len)))
}
