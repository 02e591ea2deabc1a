//! `POST /getHLSStreamingSessionURL` (docs/wire.md#gethlsstreamingsessionurl).
//!
//! Order of checks, each with its error:
//! 1. The model's constraints and the request rules, all collected into one
//!    `InvalidArgumentException` for the model part (Coral style, `validate.rs`), then the rules
//!    one at a time: enums; `Expires` within the server's `session_expires_min..=max` (AWS's
//!    300..=43200 by default); `MaxMediaPlaylistFragmentResults` 1..=5000; TimestampRange not
//!    allowed for LIVE; ON_DEMAND and LIVE_REPLAY need FragmentSelectorType and TimestampRange;
//!    a range needs StartTimestamp; ON_DEMAND needs EndTimestamp; End later than Start and within
//!    24 h of it; with SERVER_TIMESTAMP, End not in the future.
//! 2. The stream (`ResourceNotFoundException` 404, "The requested stream is not found or not
//!    active."), then GetHLSStreamingSessionURL's 25 TPS per stream (`ClientLimitExceeded`).
//! 3. Retention 0 → `NoDataRetentionException`.
//! 4. The session's first fragment: ON_DEMAND and LIVE_REPLAY, the oldest fragment whose selected
//!    timestamp is in [Start, End] (no End: at or after Start); LIVE, the newest fragment, which
//!    must have been ingested (its end, server time) within the last 30 s. None →
//!    `ResourceNotFoundException`.
//! 5. Its tracks (in track-number order; "track N" is the Nth, which is KVS's track N: producers
//!    number them 1 and 2): track 1 H.264 (`V_MPEG4/ISO/AVC`, also the AWS doc's
//!    `V_MPEG/ISO/AVC`), H.265 (`V_MPEGH/ISO/HEVC`, also `V_MPEG/ISO/HEVC`) or AAC (`A_AAC`,
//!    audio only); track 2, if any, AAC after a video track 1; no third track. Otherwise
//!    `UnsupportedStreamMediaTypeException`. MPEG_TS with H.265 → the same error, naming the container.
//! 6. Codec private data of each track: empty → `MissingCodecPrivateDataException` "Missing codec
//!    private data in fragment for track N."; not parseable → `InvalidCodecPrivateDataException`.
//! 7. MPEG_TS with an AAC configuration ADTS headers cannot carry (e.g. 960-sample frames, a
//!    sampling rate outside the ADTS table) → `UnsupportedStreamMediaTypeException`, naming the
//!    container.
//!
//! Choices where the documentation is silent or ambiguous (docs/choices.md#hls):
//! - "If FragmentSelectorType is SERVER_TIMESTAMP, the StartTimestamp must be later than the
//!   stream head": the head is the oldest media the stream still holds. openkvs does not refuse
//!   an earlier Start: nothing older exists, so the session simply begins at the oldest retained
//!   fragment at or after Start, which is what a client asking for "the last hour" of a younger
//!   stream wants. The requirement is met in effect: no session ever starts before the head.
//! - LIVE_REPLAY whose Start is in the future (SERVER_TIMESTAMP): no fragment is at or after
//!   Start yet, so it is refused with `ResourceNotFoundException` like any empty range (the
//!   caller retries once the event has begun); with PRODUCER_TIMESTAMP a producer clock ahead of
//!   ours can make such fragments exist, and then the session is created.
//! - "End in the past": an End equal to the server's now is accepted; one later is refused.
//! - Missing StartTimestamp in a given range is a rule error with a plain message rather than a
//!   Coral "must not be null" (the model has both members optional).

use axum::extract::State;
use media::codec::{Codec, CodecKind, TrackCodecError};
use serde::{Deserialize, Serialize};
use store::{FragmentQuery, Timestamp, TimestampKind};

use super::limits::HlsResource;
use super::session::{ContainerFormat, DiscontinuityMode, PlaybackMode, Protocol, Session};
use super::token;
use crate::archived::TimestampRange;
use crate::config::Config;
use crate::control::{resolve_stream, validate_stream_ref, Result};
use crate::error::ApiError;
use crate::validate::Validator;
use crate::wire::{epoch_seconds, AwsJson, Input};
use crate::AppState;

/// MaxMediaPlaylistFragmentResults bounds (model).
pub const MAX_FRAGMENTS_MIN: i64 = 1;
pub const MAX_FRAGMENTS_MAX: i64 = 5000;
/// A TimestampRange may span at most this long (model doc: "within 24 hours").
pub const MAX_RANGE_MS: i64 = 24 * 3_600_000;
/// LIVE needs a fragment ingested within this long (model doc).
pub const LIVE_RECENT_MS: i64 = 30_000;

const SELECTOR_TYPES: &[&str] = &["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"];
const DISPLAY_FRAGMENT_TIMESTAMP: &[&str] = &["ALWAYS", "NEVER"];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HlsFragmentSelector {
    pub fragment_selector_type: Option<String>,
    pub timestamp_range: Option<TimestampRange>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetHlsStreamingSessionUrlInput {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub playback_mode: Option<String>,
    #[serde(rename = "HLSFragmentSelector")]
    pub hls_fragment_selector: Option<HlsFragmentSelector>,
    pub container_format: Option<String>,
    pub discontinuity_mode: Option<String>,
    pub display_fragment_timestamp: Option<String>,
    pub expires: Option<i64>,
    pub max_media_playlist_fragment_results: Option<i64>,
}

impl Input for GetHlsStreamingSessionUrlInput {
    /// Nothing here: `Expires`'s bounds are server settings, so every constraint is checked in
    /// [`GetHlsStreamingSessionUrlInput::resolve`], which has the config (one message for all).
    fn validate(&self, _v: &mut Validator) {}
}

#[derive(Serialize, Debug)]
pub struct GetHlsStreamingSessionUrlOutput {
    #[serde(rename = "HLSStreamingSessionURL")]
    pub hls_streaming_session_url: String,
}

/// A request that passed every check that needs no stream: the session minus its stream.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRequest {
    pub mode: PlaybackMode,
    pub selector: TimestampKind,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub container: ContainerFormat,
    pub discontinuity: DiscontinuityMode,
    pub display_timestamp: bool,
    /// DASH DisplayFragmentNumber=ALWAYS.
    pub display_fragment_number: bool,
    pub max_fragments: u32,
    pub expires_seconds: u32,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::InvalidArgument(message.into())
}

impl GetHlsStreamingSessionUrlInput {
    /// The members as GetHLSStreamingSessionURL names them.
    pub fn members(&self) -> SessionInput<'_> {
        SessionInput {
            protocol: Protocol::Hls,
            stream_name: &self.stream_name,
            stream_arn: &self.stream_arn,
            playback_mode: self.playback_mode.as_deref(),
            selector: self.hls_fragment_selector.as_ref(),
            container_format: self.container_format.as_deref(),
            discontinuity_mode: self.discontinuity_mode.as_deref(),
            display_fragment_timestamp: self.display_fragment_timestamp.as_deref(),
            display_fragment_number: None,
            expires: self.expires,
            max_fragments: self.max_media_playlist_fragment_results,
        }
    }

    /// Step 1 of the module doc (see [`SessionInput::resolve`]).
    pub fn resolve(&self, config: &Config, now: Timestamp) -> Result<SessionRequest> {
        self.members().resolve(config, now)
    }
}

/// The members GetHLSStreamingSessionURL and GetDASHStreamingSessionURL share (DASH has no
/// ContainerFormat or DiscontinuityMode, HLS no DisplayFragmentNumber), so both APIs check them
/// with one code path and the same errors (docs/wire.md#getdashstreamingsessionurl).
pub struct SessionInput<'a> {
    pub protocol: Protocol,
    pub stream_name: &'a Option<String>,
    pub stream_arn: &'a Option<String>,
    pub playback_mode: Option<&'a str>,
    /// `HLSFragmentSelector` / `DASHFragmentSelector` (the same shape).
    pub selector: Option<&'a HlsFragmentSelector>,
    pub container_format: Option<&'a str>,
    pub discontinuity_mode: Option<&'a str>,
    pub display_fragment_timestamp: Option<&'a str>,
    pub display_fragment_number: Option<&'a str>,
    pub expires: Option<i64>,
    /// `MaxMediaPlaylistFragmentResults` / `MaxManifestFragmentResults`.
    pub max_fragments: Option<i64>,
}

impl SessionInput<'_> {
    /// The API's spelling of the selector member (messages) and its Coral path (validation).
    fn selector_names(&self) -> (&'static str, &'static str, &'static str) {
        match self.protocol {
            Protocol::Hls => (
                "HLSFragmentSelector",
                "hLSFragmentSelector.fragmentSelectorType",
                "maxMediaPlaylistFragmentResults",
            ),
            Protocol::Dash => (
                "DASHFragmentSelector",
                "dASHFragmentSelector.fragmentSelectorType",
                "maxManifestFragmentResults",
            ),
        }
    }

    /// Step 1 of the module doc: the model constraints, then the rules, at server time `now`.
    pub fn resolve(&self, config: &Config, now: Timestamp) -> Result<SessionRequest> {
        let mut v = Validator::default();
        let (selector_member, selector_path, max_path) = self.selector_names();
        validate_stream_ref(&mut v, self.stream_name, self.stream_arn);
        v.one_of("playbackMode", self.playback_mode, PlaybackMode::WIRE);
        if let Some(selector) = self.selector {
            v.one_of(
                selector_path,
                selector.fragment_selector_type.as_deref(),
                SELECTOR_TYPES,
            );
        }
        v.one_of(
            "containerFormat",
            self.container_format,
            ContainerFormat::WIRE,
        );
        v.one_of(
            "discontinuityMode",
            self.discontinuity_mode,
            DiscontinuityMode::WIRE,
        );
        v.one_of(
            "displayFragmentTimestamp",
            self.display_fragment_timestamp,
            DISPLAY_FRAGMENT_TIMESTAMP,
        );
        v.one_of(
            "displayFragmentNumber",
            self.display_fragment_number,
            DISPLAY_FRAGMENT_TIMESTAMP,
        );
        v.range(
            "expires",
            self.expires,
            Some(config.session_expires_min as i64),
            Some(config.session_expires_max as i64),
        );
        v.range(
            max_path,
            self.max_fragments,
            Some(MAX_FRAGMENTS_MIN),
            Some(MAX_FRAGMENTS_MAX),
        );
        v.finish()?;

        // Enums are valid from here on.
        let mode = self
            .playback_mode
            .and_then(PlaybackMode::parse)
            .unwrap_or(PlaybackMode::Live);
        let selector_type = self
            .selector
            .and_then(|s| s.fragment_selector_type.as_deref());
        let selector = match selector_type {
            Some("PRODUCER_TIMESTAMP") => TimestampKind::Producer,
            _ => TimestampKind::Server,
        };
        let range = self.selector.and_then(|s| s.timestamp_range.as_ref());
        let (start, end) = match mode {
            PlaybackMode::Live => {
                if range.is_some() {
                    return Err(invalid(
                        "The TimestampRange must not be set when the PlaybackMode is LIVE.",
                    ));
                }
                (None, None)
            }
            PlaybackMode::OnDemand | PlaybackMode::LiveReplay => {
                let m = mode.as_str();
                if self.selector.is_none() {
                    return Err(invalid(format!(
                        "The {selector_member} (FragmentSelectorType and TimestampRange) is required when the PlaybackMode is {m}."
                    )));
                }
                if selector_type.is_none() {
                    return Err(invalid(format!(
                        "The FragmentSelectorType must be set when the PlaybackMode is {m}."
                    )));
                }
                let Some(range) = range else {
                    return Err(invalid(format!(
                        "The TimestampRange must be set when the PlaybackMode is {m}."
                    )));
                };
                resolve_range(range, mode, selector, now)?
            }
        };
        let max_fragments = self
            .max_fragments
            .map(|n| n as u32)
            .unwrap_or_else(|| mode.default_max_fragments());
        let expires_seconds = self.expires.map(|s| s as u32).unwrap_or(
            config
                .session_expires_min
                .max(300)
                .min(config.session_expires_max),
        );
        Ok(SessionRequest {
            mode,
            selector,
            start,
            end,
            container: self
                .container_format
                .and_then(ContainerFormat::parse)
                .unwrap_or(ContainerFormat::FragmentedMp4),
            discontinuity: match self.protocol {
                // DASH has no DiscontinuityMode: its media timeline is the producer's clock,
                // which is what ALWAYS lays fragments out by (docs/choices.md#dash-timeline).
                Protocol::Dash => DiscontinuityMode::Always,
                Protocol::Hls => self
                    .discontinuity_mode
                    .and_then(DiscontinuityMode::parse)
                    .unwrap_or_else(|| DiscontinuityMode::default_for(selector)),
            },
            display_timestamp: self.display_fragment_timestamp == Some("ALWAYS"),
            display_fragment_number: self.display_fragment_number == Some("ALWAYS"),
            max_fragments,
            expires_seconds,
        })
    }
}

/// The range rules of ON_DEMAND and LIVE_REPLAY.
fn resolve_range(
    range: &TimestampRange,
    mode: PlaybackMode,
    selector: TimestampKind,
    now: Timestamp,
) -> Result<(Option<Timestamp>, Option<Timestamp>)> {
    let start = match range.start_timestamp {
        None => {
            return Err(invalid(
                "The StartTimestamp is required when a TimestampRange is given.",
            ))
        }
        Some(s) => epoch_seconds::from_seconds(s)
            .ok_or_else(|| invalid("The StartTimestamp is not a valid timestamp."))?,
    };
    let end = match range.end_timestamp {
        None if mode == PlaybackMode::OnDemand => {
            return Err(invalid(
                "The EndTimestamp is required when the PlaybackMode is ON_DEMAND.",
            ))
        }
        None => None,
        Some(s) => Some(
            epoch_seconds::from_seconds(s)
                .ok_or_else(|| invalid("The EndTimestamp is not a valid timestamp."))?,
        ),
    };
    if let Some(end) = end {
        check_range_end(start, end, selector, now)?;
    }
    Ok((Some(start), end))
}

/// The EndTimestamp rules of every archived-media range with an end (HLS ON_DEMAND and
/// LIVE_REPLAY, GetClip; model doc): later than Start, within 24 h of it, and with
/// SERVER_TIMESTAMP not after the server's `now`.
pub(crate) fn check_range_end(
    start: Timestamp,
    end: Timestamp,
    selector: TimestampKind,
    now: Timestamp,
) -> Result<()> {
    if end <= start {
        return Err(invalid(
            "The EndTimestamp must be later than the StartTimestamp.",
        ));
    }
    if end.millis().saturating_sub(start.millis()) > MAX_RANGE_MS {
        return Err(invalid(
            "The EndTimestamp must be within 24 hours of the StartTimestamp.",
        ));
    }
    if selector == TimestampKind::Server && end > now {
        return Err(invalid(
            "The EndTimestamp must be in the past when the FragmentSelectorType is SERVER_TIMESTAMP.",
        ));
    }
    Ok(())
}

/// One message for every caller of [`check_tracks`] (HLS, DASH, GetClip): the media, not the API,
/// is what is unsupported.
fn unsupported(ids: &[&str]) -> ApiError {
    let found = ids
        .iter()
        .enumerate()
        .map(|(i, id)| format!("track {} has codec ID {id}", i + 1))
        .collect::<Vec<_>>()
        .join(", ");
    ApiError::UnsupportedStreamMediaType(format!(
        "The media of the stream is not supported for playback ({found}). The codec ID of track 1 \
         should be V_MPEG/ISO/AVC (H.264) or V_MPEG/ISO/HEVC (H.265) and, optionally, the codec \
         ID of track 2 should be A_AAC. For audio only streaming, the codec ID of track 1 should \
         be A_AAC."
    ))
}

/// Steps 5 and 6 of the module doc over the codec configs of a fragment's tracks, in track order.
pub fn check_tracks(
    configs: &[store::CodecConfig],
    container: ContainerFormat,
) -> Result<Vec<Codec>> {
    let ids: Vec<&str> = configs.iter().map(|c| c.codec_id.as_str()).collect();
    let kinds: Vec<Option<CodecKind>> = ids.iter().map(|id| CodecKind::from_codec_id(id)).collect();
    match kinds[..] {
        [Some(_)] | [Some(CodecKind::H264 | CodecKind::H265), Some(CodecKind::Aac)] => {}
        _ => return Err(unsupported(&ids)),
    }
    if container == ContainerFormat::MpegTs && kinds[0] == Some(CodecKind::H265) {
        return Err(ApiError::UnsupportedStreamMediaType(
            "H.265 video (track 1 codec ID V_MPEGH/ISO/HEVC) cannot be packaged in the MPEG_TS \
             container format; use ContainerFormat FRAGMENTED_MP4."
                .into(),
        ));
    }
    // Missing codec private data is reported before invalid data, whichever track has it.
    let decoded: Vec<_> = configs
        .iter()
        .map(|c| media::codec::decode_track(&c.codec_id, &c.codec_private))
        .collect();
    let first_error = decoded
        .iter()
        .zip(configs)
        .find(|(r, _)| matches!(r, Err(TrackCodecError::MissingCodecPrivate)))
        .or_else(|| decoded.iter().zip(configs).find(|(r, _)| r.is_err()));
    if let Some((Err(e), config)) = first_error {
        return Err(super::codec_error(config.track, e));
    }
    let codecs: Vec<Codec> = decoded.into_iter().flatten().collect();
    if container == ContainerFormat::MpegTs {
        // MPEG-TS carries AAC in ADTS headers, which cannot describe every AudioSpecificConfig.
        for (config, codec) in configs.iter().zip(&codecs) {
            if let Codec::Aac(aac) = codec {
                if let Err(detail) = media::ts::check_adts(aac) {
                    return Err(ApiError::UnsupportedStreamMediaType(format!(
                        "The AAC audio of track {} cannot be packaged in the MPEG_TS container \
                         format ({detail}); use ContainerFormat FRAGMENTED_MP4.",
                        config.track
                    )));
                }
            }
        }
    }
    Ok(codecs)
}

/// Step 4 of the module doc: the first fragment of the session.
async fn first_fragment(
    state: &AppState,
    stream: &store::StreamRecord,
    request: &SessionRequest,
    now: Timestamp,
) -> Result<store::FragmentRecord> {
    match (request.mode, request.start) {
        (PlaybackMode::Live, _) | (_, None) => {
            let newest = state.catalog.latest_fragments(stream.id, 1).await?.pop();
            match newest {
                Some(f)
                    if f.server_timestamp.millis() + f.duration_ms as i64
                        >= now.millis() - LIVE_RECENT_MS =>
                {
                    Ok(f)
                }
                _ => Err(ApiError::ResourceNotFound(
                    "No fragments have been ingested into the stream in the last 30 seconds."
                        .into(),
                )),
            }
        }
        (_, Some(start)) => state
            .catalog
            .query_fragments(FragmentQuery {
                stream: stream.id,
                kind: request.selector,
                start,
                end: request.end.unwrap_or(Timestamp(i64::MAX)),
                after: None,
                limit: 1,
            })
            .await?
            .pop()
            .ok_or_else(|| {
                ApiError::ResourceNotFound(
                    "No fragments found in the stream for the requested timestamp range.".into(),
                )
            }),
    }
}

/// The session timeline's zero (see [`Session::origin`]). ON_DEMAND / LIVE_REPLAY: the first
/// fragment's selected timestamp, less the decode delay its B-frames need (decode times precede
/// presentation times; tfdt cannot go below zero), so playback starts at ~0. LIVE: far enough
/// before the newest fragment that the whole initial window is after it.
fn timeline_origin(request: &SessionRequest, first: &store::FragmentRecord) -> Timestamp {
    // The same choice as `Session::timeline_timestamp`.
    let selected = match (request.selector, request.discontinuity) {
        (_, DiscontinuityMode::Always) | (store::TimestampKind::Producer, _) => {
            first.producer_timestamp
        }
        (store::TimestampKind::Server, _) => first.server_timestamp,
    };
    if request.mode == PlaybackMode::Live {
        let window_ms = (i64::from(request.max_fragments) + 1) * MAX_FRAGMENT_MS;
        return Timestamp(selected.0.saturating_sub(window_ms));
    }
    let lead_ns = first
        .tracks
        .iter()
        .map(|t| decode_lead_ns(&t.samples))
        .max()
        .unwrap_or(0);
    Timestamp(selected.0.saturating_sub((lead_ns + 999_999) / 1_000_000))
}

/// Longest fragment PutMedia accepts (docs/wire.md#putmedia-limits).
const MAX_FRAGMENT_MS: i64 = 20_000;

/// How far before the fragment start the earliest decode time of a track can fall: its earliest
/// presentation offset below zero, plus the B-frame reorder delay (sorted PTS minus PTS, at
/// most) that MPEG-TS decode times need (fMP4 puts decode times at presentation times and
/// merely starts that much later).
fn decode_lead_ns(samples: &[store::SampleEntry]) -> i64 {
    let mut sorted: Vec<i64> = samples.iter().map(|s| s.pts_offset_ns).collect();
    sorted.sort_unstable();
    let delay = sorted
        .iter()
        .zip(samples)
        .map(|(sorted_pts, s)| sorted_pts - s.pts_offset_ns)
        .max()
        .unwrap_or(0)
        .max(0);
    let earliest = sorted.first().copied().unwrap_or(0);
    (delay - earliest).max(0)
}

/// Steps 2 to 6 of the module doc for a request that passed step 1, then the sealed token of
/// the new session. GetHLSStreamingSessionURL and GetDASHStreamingSessionURL both create their
/// sessions here (docs/wire.md#getdashstreamingsessionurl).
pub(crate) async fn create_session(
    state: &AppState,
    input: &SessionInput<'_>,
    request: &SessionRequest,
    now: Timestamp,
) -> Result<String> {
    let stream = resolve_stream(
        state,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )
    .await?;
    state
        .hls_limits
        .admit(&stream.id.0.to_be_bytes(), HlsResource::SessionUrl, now)
        .await?;
    if stream.data_retention_hours == 0 {
        return Err(ApiError::NoDataRetention(format!(
            "The stream {} has no data retention (DataRetentionInHours 0); streaming sessions \
             play stored fragments. Give it a retention with UpdateDataRetention.",
            stream.name
        )));
    }
    let first = first_fragment(state, &stream, request, now).await?;
    let mut tracks = first.tracks.clone();
    tracks.sort_by_key(|t| t.track);
    let mut configs = Vec::with_capacity(tracks.len());
    for track in &tracks {
        let config = state
            .catalog
            .codec_config(track.codec_config)
            .await?
            .ok_or_else(|| {
                ApiError::Internal(format!(
                    "codec config {:?} of fragment {} is missing",
                    track.codec_config, first.number
                ))
            })?;
        configs.push(config);
    }
    check_tracks(&configs, request.container)?;
    let session = Session {
        stream_id: stream.id,
        stream_creation: stream.creation_time,
        stream_name: stream.name.clone(),
        mode: request.mode,
        selector: request.selector,
        start: request.start,
        end: request.end,
        container: request.container,
        discontinuity: request.discontinuity,
        display_timestamp: request.display_timestamp,
        max_fragments: request.max_fragments,
        created: now,
        expires: Timestamp(now.millis() + request.expires_seconds as i64 * 1000),
        origin: timeline_origin(request, &first),
        protocol: input.protocol,
        display_fragment_number: request.display_fragment_number,
        wall_offset_ms: match input.protocol {
            Protocol::Hls => 0,
            Protocol::Dash => first
                .server_timestamp
                .0
                .saturating_sub(first.producer_timestamp.0),
        },
    };
    let key = state
        .config
        .session_keys
        .first()
        .ok_or_else(|| ApiError::Internal("no session key configured".into()))?;
    Ok(token::seal(&session, key))
}

/// `POST /getHLSStreamingSessionURL`.
pub async fn get_hls_streaming_session_url(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<GetHlsStreamingSessionUrlInput>,
) -> Result<AwsJson<GetHlsStreamingSessionUrlOutput>> {
    let now = state.clock.timestamp();
    let request = input.resolve(&state.config, now)?;
    let token = create_session(&state, &input.members(), &request, now).await?;
    Ok(AwsJson(GetHlsStreamingSessionUrlOutput {
        hls_streaming_session_url: format!(
            "{}/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken={token}",
            state.config.data_endpoint()
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use media::TrackNumber;

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    fn config() -> Config {
        Config::new(
            "127.0.0.1:4567".parse().unwrap(),
            std::path::PathBuf::from("/nonexistent"),
        )
    }

    fn input(json: serde_json::Value) -> GetHlsStreamingSessionUrlInput {
        crate::wire::parse_input(json.to_string().as_bytes()).unwrap()
    }

    fn resolve(json: serde_json::Value) -> Result<SessionRequest> {
        input(json).resolve(&config(), NOW)
    }

    fn err(json: serde_json::Value) -> String {
        let e = resolve(json.clone()).unwrap_err();
        assert_eq!(e.aws_error_type(), "InvalidArgumentException", "{json}");
        e.message()
    }

    fn secs(t: Timestamp) -> f64 {
        t.as_epoch_seconds()
    }

    #[test]
    fn defaults() {
        let r = resolve(serde_json::json!({"StreamName": "s"})).unwrap();
        assert_eq!(
            r,
            SessionRequest {
                mode: PlaybackMode::Live,
                selector: TimestampKind::Server,
                start: None,
                end: None,
                container: ContainerFormat::FragmentedMp4,
                discontinuity: DiscontinuityMode::Always,
                display_timestamp: false,
                display_fragment_number: false,
                max_fragments: 5,
                expires_seconds: 300,
            }
        );
        let r = resolve(serde_json::json!({
            "StreamName": "s", "PlaybackMode": "ON_DEMAND",
            "HLSFragmentSelector": {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": 1_700_000_000, "EndTimestamp": 1_700_000_060.5}}
        }))
        .unwrap();
        assert_eq!(r.max_fragments, 1000);
        assert_eq!(r.discontinuity, DiscontinuityMode::Never);
        assert_eq!(r.start, Some(Timestamp(1_700_000_000_000)));
        assert_eq!(r.end, Some(Timestamp(1_700_000_060_500)));
        let r = resolve(serde_json::json!({
            "StreamName": "s", "PlaybackMode": "LIVE_REPLAY",
            "HLSFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": 1_700_000_000}},
            "DiscontinuityMode": "ON_DISCONTINUITY", "DisplayFragmentTimestamp": "ALWAYS",
            "Expires": 43200, "MaxMediaPlaylistFragmentResults": 5000, "ContainerFormat": "MPEG_TS"
        }))
        .unwrap();
        assert_eq!(r.max_fragments, 5000);
        assert_eq!(r.end, None);
        assert_eq!(r.expires_seconds, 43200);
        assert!(r.display_timestamp);
        assert_eq!(r.discontinuity, DiscontinuityMode::OnDiscontinuity);
        assert_eq!(r.container, ContainerFormat::MpegTs);
    }

    #[test]
    fn model_constraints() {
        let m = err(serde_json::json!({"StreamName": "s", "PlaybackMode": "ON-DEMAND"}));
        assert!(
            m.contains("Value 'ON-DEMAND' at 'playbackMode' failed to satisfy constraint: Member must satisfy enum value set: [LIVE, LIVE_REPLAY, ON_DEMAND]"),
            "{m}"
        );
        let m = err(serde_json::json!({"StreamName": "s", "Expires": 299}));
        assert!(m.contains("'expires'") && m.contains("300"), "{m}");
        let m = err(serde_json::json!({"StreamName": "s", "Expires": 43201}));
        assert!(m.contains("less than or equal to 43200"), "{m}");
        let m = err(serde_json::json!({"StreamName": "s", "MaxMediaPlaylistFragmentResults": 0}));
        assert!(m.contains("maxMediaPlaylistFragmentResults"), "{m}");
        let m =
            err(serde_json::json!({"StreamName": "s", "MaxMediaPlaylistFragmentResults": 5001}));
        assert!(m.contains("5000"), "{m}");
        for (member, value) in [
            ("ContainerFormat", "MP4"),
            ("DiscontinuityMode", "SOMETIMES"),
            ("DisplayFragmentTimestamp", "YES"),
        ] {
            let m = err(serde_json::json!({"StreamName": "s", member: value}));
            assert!(m.contains("enum value set"), "{m}");
        }
        let m = err(serde_json::json!({"StreamName": "s",
            "HLSFragmentSelector": {"FragmentSelectorType": "CLIENT_TIMESTAMP"}}));
        assert!(
            m.contains("hLSFragmentSelector.fragmentSelectorType"),
            "{m}"
        );
        let m = err(serde_json::json!({"StreamName": "bad name!"}));
        assert!(m.contains("streamName"), "{m}");
        // Several violations come in one message.
        let m = err(serde_json::json!({"StreamName": "s", "Expires": 1, "PlaybackMode": "x"}));
        assert!(m.starts_with("2 validation errors detected"), "{m}");
    }

    #[test]
    fn expires_bounds_are_settings() {
        let mut c = config();
        c.session_expires_min = 1;
        c.session_expires_max = 86_400;
        let r = input(serde_json::json!({"StreamName": "s", "Expires": 2}))
            .resolve(&c, NOW)
            .unwrap();
        assert_eq!(r.expires_seconds, 2);
        // The default stays AWS's 300 when the bounds allow it.
        let r = input(serde_json::json!({"StreamName": "s"}))
            .resolve(&c, NOW)
            .unwrap();
        assert_eq!(r.expires_seconds, 300);
        let r = input(serde_json::json!({"StreamName": "s", "Expires": 86_400}))
            .resolve(&c, NOW)
            .unwrap();
        assert_eq!(r.expires_seconds, 86_400);
        c.session_expires_max = 60;
        let r = input(serde_json::json!({"StreamName": "s"}))
            .resolve(&c, NOW)
            .unwrap();
        assert_eq!(r.expires_seconds, 60);
    }

    #[test]
    fn range_rules() {
        let start = Timestamp(NOW.0 - 3_600_000);
        let sel = |mode: &str, range: serde_json::Value| {
            serde_json::json!({"StreamName": "s", "PlaybackMode": mode,
                "HLSFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": range}})
        };
        // LIVE: a selector type is fine, a range is not.
        assert!(resolve(serde_json::json!({"StreamName": "s",
            "HLSFragmentSelector": {"FragmentSelectorType": "PRODUCER_TIMESTAMP"}}))
        .is_ok());
        assert!(err(sel(
            "LIVE",
            serde_json::json!({"StartTimestamp": secs(start)})
        ))
        .contains("must not be set"));
        // ON_DEMAND and LIVE_REPLAY need the whole selector.
        for mode in ["ON_DEMAND", "LIVE_REPLAY"] {
            let m = err(serde_json::json!({"StreamName": "s", "PlaybackMode": mode}));
            assert!(m.contains("HLSFragmentSelector") && m.contains(mode), "{m}");
            let m = err(serde_json::json!({"StreamName": "s", "PlaybackMode": mode,
                "HLSFragmentSelector": {"TimestampRange": {"StartTimestamp": secs(start)}}}));
            assert!(m.contains("FragmentSelectorType must be set"), "{m}");
            let m = err(serde_json::json!({"StreamName": "s", "PlaybackMode": mode,
                "HLSFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP"}}));
            assert!(m.contains("TimestampRange must be set"), "{m}");
            let m = err(sel(
                mode,
                serde_json::json!({"EndTimestamp": secs(NOW) - 1.0}),
            ));
            assert!(m.contains("StartTimestamp is required"), "{m}");
        }
        // End: required for ON_DEMAND only.
        assert!(err(sel(
            "ON_DEMAND",
            serde_json::json!({"StartTimestamp": secs(start)})
        ))
        .contains("EndTimestamp is required"));
        assert!(resolve(sel(
            "LIVE_REPLAY",
            serde_json::json!({"StartTimestamp": secs(start)})
        ))
        .is_ok());
        // End after Start, within 24 h, and (SERVER_TIMESTAMP) not in the future.
        for mode in ["ON_DEMAND", "LIVE_REPLAY"] {
            let range = |s: Timestamp, e: Timestamp| {
                sel(
                    mode,
                    serde_json::json!({"StartTimestamp": secs(s), "EndTimestamp": secs(e)}),
                )
            };
            assert!(err(range(start, start)).contains("later than the StartTimestamp"));
            assert!(err(range(start, Timestamp(start.0 - 1000))).contains("later than"));
            let early = Timestamp(NOW.0 - 2 * MAX_RANGE_MS);
            assert!(resolve(range(early, Timestamp(early.0 + MAX_RANGE_MS))).is_ok());
            assert!(err(range(early, Timestamp(early.0 + MAX_RANGE_MS + 1000)))
                .contains("within 24 hours"));
            assert!(resolve(range(start, NOW)).is_ok());
            assert!(err(range(start, Timestamp(NOW.0 + 1000))).contains("in the past"));
            // PRODUCER_TIMESTAMP may end in the future (producer clocks are theirs).
            let producer = serde_json::json!({"StreamName": "s", "PlaybackMode": mode,
                "HLSFragmentSelector": {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                    "TimestampRange": {"StartTimestamp": secs(start), "EndTimestamp": secs(NOW) + 60.0}}});
            assert!(resolve(producer).is_ok());
        }
    }

    /// [`check_tracks`] of configs numbered by their position (as a fragment's tracks are).
    fn check(configs: &[store::CodecConfig], container: ContainerFormat) -> Result<Vec<Codec>> {
        let mut configs = configs.to_vec();
        for (i, c) in configs.iter_mut().enumerate() {
            c.track = TrackNumber(i as u64 + 1);
        }
        check_tracks(&configs, container)
    }

    fn cpd(codec_id: &str, private: &[u8]) -> store::CodecConfig {
        store::CodecConfig {
            track: TrackNumber(1),
            track_type: 1,
            codec_id: codec_id.into(),
            codec_private: Bytes::copy_from_slice(private),
            track_name: None,
            pixel_width: None,
            pixel_height: None,
            sampling_frequency: None,
            channels: None,
        }
    }

    // Codec private data of tests/fixtures/h264_aac.mkv and h265.mkv (its SEI array dropped).
    fn hex(s: &str) -> &'static [u8] {
        Box::leak(hex::decode(s).unwrap().into_boxed_slice())
    }
    static AVCC: std::sync::LazyLock<&'static [u8]> = std::sync::LazyLock::new(|| {
        hex("0164000dffe100176764000dacb40a0fd80880000003008000001e078a155001000468ef0fcbfdf8f800")
    });
    static HVCC: std::sync::LazyLock<&'static [u8]> = std::sync::LazyLock::new(|| {
        hex(
            "0101600000009000000000003cf000fcfdf8f800000f03200001001840010c01ffff0160000003009000\
             0003000003003cba0240210001002842010101600000030090000003000003003ca00a080f165ba924ca\
             f0168080000003008000000f0422000100074401c172b46240",
        )
    });
    static ASC: std::sync::LazyLock<&'static [u8]> = std::sync::LazyLock::new(|| hex("119056e500"));

    #[test]
    fn track_rules() {
        use ContainerFormat::*;
        let ok = |c: &[store::CodecConfig], f| {
            check(c, f)
                .unwrap()
                .iter()
                .map(Codec::kind)
                .collect::<Vec<_>>()
        };
        let kind = |c: &[store::CodecConfig], f| check(c, f).unwrap_err().aws_error_type();
        assert_eq!(
            ok(&[cpd("V_MPEG4/ISO/AVC", *AVCC)], FragmentedMp4),
            [CodecKind::H264]
        );
        assert_eq!(
            ok(&[cpd("V_MPEG/ISO/AVC", *AVCC)], MpegTs),
            [CodecKind::H264]
        );
        assert_eq!(
            ok(
                &[cpd("V_MPEGH/ISO/HEVC", *HVCC), cpd("A_AAC", *ASC)],
                FragmentedMp4
            ),
            [CodecKind::H265, CodecKind::Aac]
        );
        assert_eq!(
            ok(&[cpd("V_MPEG/ISO/HEVC", *HVCC)], FragmentedMp4),
            [CodecKind::H265]
        );
        assert_eq!(ok(&[cpd("A_AAC", *ASC)], FragmentedMp4), [CodecKind::Aac]);
        let unsupported = "UnsupportedStreamMediaTypeException";
        for bad in [
            vec![cpd("V_VP8", b"x")],
            vec![cpd("V_MPEG4/ISO/AVC", *AVCC), cpd("A_OPUS", b"x")],
            vec![cpd("A_AAC", *ASC), cpd("A_AAC", *ASC)],
            vec![cpd("A_AAC", *ASC), cpd("V_MPEG4/ISO/AVC", *AVCC)],
            vec![
                cpd("V_MPEG4/ISO/AVC", *AVCC),
                cpd("A_AAC", *ASC),
                cpd("A_AAC", *ASC),
            ],
            vec![],
        ] {
            assert_eq!(kind(&bad, FragmentedMp4), unsupported, "{bad:?}");
        }
        let e = check(&[cpd("A_MS/ACM", b"x")], FragmentedMp4).unwrap_err();
        assert!(e.message().contains("track 1 has codec ID A_MS/ACM"), "{e}");
        assert!(e.message().contains("V_MPEG/ISO/AVC"), "{e}");
        // H.265 in MPEG-TS: unsupported, naming the container.
        let e = check(&[cpd("V_MPEGH/ISO/HEVC", *HVCC)], MpegTs).unwrap_err();
        assert_eq!(e.aws_error_type(), unsupported);
        assert!(e.message().contains("MPEG_TS"), "{e}");
        // AAC that ADTS cannot carry (LC 22050 Hz mono with 960-sample frames): fMP4 only.
        let asc_960 = [0x17, 0x80, 0x2b, 0x11, 0x0c];
        let tracks = [cpd("V_MPEG4/ISO/AVC", *AVCC), cpd("A_AAC", &asc_960)];
        ok(&tracks, FragmentedMp4);
        let e = check(&tracks, MpegTs).unwrap_err();
        assert_eq!(e.aws_error_type(), unsupported);
        assert!(
            e.message().contains("track 2") && e.message().contains("MPEG_TS"),
            "{e}"
        );
        ok(&[cpd("V_MPEG4/ISO/AVC", *AVCC), cpd("A_AAC", *ASC)], MpegTs);
        // Missing CPD names the track.
        let e = check(
            &[cpd("V_MPEG4/ISO/AVC", *AVCC), cpd("A_AAC", b"")],
            FragmentedMp4,
        )
        .unwrap_err();
        assert_eq!(
            e,
            ApiError::MissingCodecPrivateData(
                "Missing codec private data in fragment for track 2.".into()
            )
        );
        let e = check(&[cpd("V_MPEG4/ISO/AVC", b"")], FragmentedMp4).unwrap_err();
        assert_eq!(e.aws_error_type(), "MissingCodecPrivateDataException");
        // Unparseable CPD.
        for bad in [
            vec![cpd("V_MPEG4/ISO/AVC", b"\x00\x00\x00\x01\x67")],
            vec![cpd("V_MPEGH/ISO/HEVC", b"\x01\x01")],
            vec![cpd("V_MPEG4/ISO/AVC", *AVCC), cpd("A_AAC", b"\x12")],
        ] {
            assert_eq!(
                kind(&bad, FragmentedMp4),
                "InvalidCodecPrivateDataException",
                "{bad:?}"
            );
        }
    }
}
