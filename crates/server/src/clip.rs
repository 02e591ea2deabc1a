//! `POST /getClip` (kinesis-video-archived-media; docs/wire.md#getclip): a progressive MP4 of
//! a timestamp range, `moov` before `mdat`, generated from the catalog's sample tables
//! (`media::mp4`) and followed by the stored frame bytes, read one chunk at a time as the body
//! is sent.
//!
//! Order of checks, each with its error:
//! 1. The model (`StreamName` | `StreamARN`, `ClipFragmentSelector` with its type and both
//!    timestamps required): one `InvalidArgumentException` for all (`validate.rs`); then the
//!    range rules shared with HLS (`hls::api::check_range_end`): End later than Start, within
//!    24 h, and with SERVER_TIMESTAMP not in the future.
//! 2. The stream (`ResourceNotFoundException`); retention 0 → `NoDataRetentionException`.
//! 3. The fragments: HLS ON_DEMAND's selection and PRODUCER_TIMESTAMP de-duplication
//!    (`hls::serve::walk_range`), from Start on, at most [`MAX_CLIP_FRAGMENTS`] and
//!    [`MAX_CLIP_MEDIA_BYTES`] of stored media (AWS: "the first 100 MB or the first 200
//!    fragments"). None → `ResourceNotFoundException`.
//! 4. The first fragment's tracks: track 1 H.264 or H.265, optionally track 2 AAC, nothing else
//!    (AWS's GetClip requirement; audio-only is refused) → `UnsupportedStreamMediaTypeException`;
//!    then the codec private data as HLS judges it (`hls::api::check_tracks`):
//!    `MissingCodecPrivateDataException`, `InvalidCodecPrivateDataException`.
//! 5. Every later fragment must have the same tracks (`InvalidArgumentException`) with the same
//!    codec private data (`InvalidCodecPrivateDataException`), naming the fragment where it
//!    changes (docs/choices.md#getclip): a progressive MP4 has one sample description per track.
//! 6. Sample tables that cannot be timed → `InvalidMediaFrameException` naming the fragment.
//!
//! Only then does the response start: 200, `video/mp4`, `Content-Length` of the whole file.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderValue, StatusCode};
use media::codec::{Codec, CodecKind};
use media::mp4::{clip_header, ClipChunk, ClipTrack, Mp4Error};
use media::timeline::{self, DecodeTimes, TrackClock};
use media::TrackNumber;
use serde::Deserialize;
use store::{CodecConfig, CodecConfigId, FragmentNumber, FragmentRecord, MediaLocation};

use crate::archived::FragmentSelector;
use crate::control::{resolve_retained_stream, validate_stream_ref, Result};
use crate::error::ApiError;
use crate::hls::api::{check_range_end, check_tracks};
use crate::hls::serve::{sample_description, walk_range};
use crate::hls::session::ContainerFormat;
use crate::validate::Validator;
use crate::wire::{AwsJson, Input};
use crate::AppState;

/// "GetClip returns the first 200 fragments" (AWS's documented limit).
pub const MAX_CLIP_FRAGMENTS: usize = 200;
/// "… or the first 100 MB": counted on the stored media bytes of the fragments, 100 MiB
/// (docs/choices.md#getclip).
pub const MAX_CLIP_MEDIA_BYTES: u64 = 100 * 1024 * 1024;
/// Catalog rows read at once while loading the clip's sample tables.
const ROW_READS_IN_FLIGHT: usize = 8;
/// Stored chunks read ahead of the socket: bounded memory, yet the next read overlaps the send.
const CHUNK_READS_AHEAD: usize = 2;
const MP4: &str = "video/mp4";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetClipInput {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub clip_fragment_selector: Option<FragmentSelector>,
}

impl Input for GetClipInput {
    fn validate(&self, v: &mut Validator) {
        validate_stream_ref(v, &self.stream_name, &self.stream_arn);
        v.required("clipFragmentSelector", &self.clip_fragment_selector);
        if let Some(selector) = &self.clip_fragment_selector {
            selector.validate(v, "clipFragmentSelector");
        }
    }
}

/// `POST /getClip`.
pub async fn get_clip(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<GetClipInput>,
) -> Result<Response> {
    let now = state.clock.timestamp();
    let selector = input
        .clip_fragment_selector
        .as_ref()
        .ok_or_else(|| ApiError::InvalidArgument("ClipFragmentSelector is required.".into()))?;
    let (kind, start, end) = selector.resolve()?;
    check_range_end(start, end, kind, now)?;
    let stream = resolve_retained_stream(
        &state,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
        "GetClip",
    )
    .await?;

    let (selected, _) = walk_range(
        &state,
        (stream.id, kind),
        (start, end),
        MAX_CLIP_FRAGMENTS,
        |kept, next| {
            kept.count == 0
                || (kept.count < MAX_CLIP_FRAGMENTS
                    && kept.size_bytes.saturating_add(next.size_bytes) <= MAX_CLIP_MEDIA_BYTES)
        },
    )
    .await?;
    let fragments: Vec<Arc<FragmentRecord>> = futures::stream::iter(selected)
        .map(|f| {
            let state = &state;
            async move { state.catalog.fragment_shared(f.stream, f.number).await }
        })
        .buffered(ROW_READS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        // A fragment retention deleted since it was listed is left out.
        .filter_map(|row| row.transpose())
        .collect::<std::result::Result<_, _>>()?;
    let first = fragments.first().ok_or_else(|| {
        ApiError::ResourceNotFound(
            "No fragments found in the stream for the requested timestamp range.".into(),
        )
    })?;

    let configs = load_configs(&state, &fragments).await?;
    let tracks = clip_tracks(first, &configs)?;
    let plan = plan_chunks(&fragments, &tracks, &configs)?;
    let init_tracks: Vec<ClipTrack<'_>> = tracks
        .iter()
        .map(|t| {
            let (codec, timescale) =
                sample_description(&t.codec, &configs[&t.config].codec_private);
            ClipTrack { codec, timescale }
        })
        .collect();
    let header = clip_header(&init_tracks, &plan.chunks).map_err(|e| match e {
        Mp4Error::Codec { track, source } => ApiError::InvalidCodecPrivateData(format!(
            "Invalid codec private data in fragment for track {}: {source}.",
            tracks.get(track).map_or(0, |t| t.number.0)
        )),
        other => ApiError::InvalidMediaFrame(format!(
            "The frames of the requested range cannot be written as an MP4 file: {other}."
        )),
    })?;

    let file_len = header.file_len();
    let stream_id = stream.id;
    let stream_name = stream.name.clone();
    let media = state.media.clone();
    let reads = futures::stream::iter(plan.reads)
        .map(move |read| {
            let media = media.clone();
            let stream_name = stream_name.clone();
            async move {
                let bytes = media
                    .read(stream_id, read.location, read.range.clone())
                    .await
                    .map_err(|e| read_error(&stream_name, read.fragment, &e.to_string()))?;
                if bytes.len() as u64 != read.range.end - read.range.start {
                    return Err(read_error(
                        &stream_name,
                        read.fragment,
                        "the store returned a short read",
                    ));
                }
                Ok(bytes)
            }
        })
        .buffered(CHUNK_READS_AHEAD);
    let body = futures::stream::once(async move { Ok(Bytes::from(header.bytes)) }).chain(reads);
    let mut response = (StatusCode::OK, Body::from_stream(body)).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(MP4));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(file_len));
    Ok(response)
}

/// A read that failed after the response began: the status is sent, so the connection is cut
/// (the client sees fewer bytes than `Content-Length`) and the cause goes to the log.
fn read_error(stream: &str, fragment: FragmentNumber, detail: &str) -> std::io::Error {
    tracing::error!(%stream, %fragment, detail, "GetClip: reading stored media failed mid-response");
    std::io::Error::other(format!("reading fragment {fragment} failed"))
}

/// Every codec config the clip's fragments use, by id.
async fn load_configs(
    state: &AppState,
    fragments: &[Arc<FragmentRecord>],
) -> Result<BTreeMap<CodecConfigId, CodecConfig>> {
    let ids: BTreeSet<CodecConfigId> = fragments
        .iter()
        .flat_map(|f| f.tracks.iter().map(|t| t.codec_config))
        .collect();
    let mut configs = BTreeMap::new();
    for id in ids {
        let config = state
            .catalog
            .codec_config(id)
            .await?
            .ok_or_else(|| ApiError::Internal(format!("codec config {id:?} is missing")))?;
        configs.insert(id, config);
    }
    Ok(configs)
}

/// A track of the clip, as the first fragment has it.
struct TrackOfClip {
    number: TrackNumber,
    config: CodecConfigId,
    codec: Codec,
}

/// Steps 4 of the module doc: the first fragment's tracks, in track-number order.
fn clip_tracks(
    first: &FragmentRecord,
    configs: &BTreeMap<CodecConfigId, CodecConfig>,
) -> Result<Vec<TrackOfClip>> {
    let mut tracks: Vec<(TrackNumber, CodecConfigId)> = first
        .tracks
        .iter()
        .map(|t| (t.track, t.codec_config))
        .collect();
    tracks.sort_by_key(|t| t.0);
    let rows: Vec<CodecConfig> = tracks.iter().map(|(_, id)| configs[id].clone()).collect();
    let kinds: Vec<Option<CodecKind>> = rows
        .iter()
        .map(|c| CodecKind::from_codec_id(&c.codec_id))
        .collect();
    match kinds[..] {
        [Some(CodecKind::H264 | CodecKind::H265)]
        | [Some(CodecKind::H264 | CodecKind::H265), Some(CodecKind::Aac)] => {}
        _ => {
            let found = rows
                .iter()
                .map(|c| format!("track {} has codec ID {}", c.track, c.codec_id))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ApiError::UnsupportedStreamMediaType(format!(
                "The media of the stream is not supported for GetClip ({found}). The codec ID of \
                 track 1 should be V_MPEG/ISO/AVC (H.264) or V_MPEG/ISO/HEVC (H.265) and, \
                 optionally, the codec ID of track 2 should be A_AAC."
            )));
        }
    }
    let codecs = check_tracks(&rows, ContainerFormat::FragmentedMp4)?;
    Ok(tracks
        .into_iter()
        .zip(codecs)
        .map(|((number, config), codec)| TrackOfClip {
            number,
            config,
            codec,
        })
        .collect())
}

/// One stored range the body sends, in order.
struct ChunkRead {
    fragment: FragmentNumber,
    location: MediaLocation,
    range: std::ops::Range<u64>,
}

/// The clip's chunks (sample timing) and the reads that send their bytes, in the same order.
struct ChunkPlan {
    chunks: Vec<ClipChunk>,
    reads: Vec<ChunkRead>,
}

/// Steps 5 and 6 of the module doc: every fragment's tracks against the clip's, timed.
fn plan_chunks(
    fragments: &[Arc<FragmentRecord>],
    tracks: &[TrackOfClip],
    configs: &BTreeMap<CodecConfigId, CodecConfig>,
) -> Result<ChunkPlan> {
    let mut plan = ChunkPlan {
        chunks: Vec::new(),
        reads: Vec::new(),
    };
    let same_config = |a: CodecConfigId, b: CodecConfigId| {
        a == b || {
            let (a, b) = (&configs[&a], &configs[&b]);
            a.codec_id == b.codec_id && a.codec_private == b.codec_private
        }
    };
    for f in fragments {
        let mut numbers: Vec<TrackNumber> = f.tracks.iter().map(|t| t.track).collect();
        numbers.sort();
        if numbers.iter().ne(tracks.iter().map(|t| &t.number)) {
            return Err(ApiError::InvalidArgument(format!(
                "Fragment {} has other tracks than the first fragment of the requested range: a \
                 clip cannot change its tracks. End the range before fragment {} or start it there.",
                f.number, f.number
            )));
        }
        // The stored order of the fragment's tracks is the order of their bytes.
        let mut stored: Vec<&store::FragmentTrack> = f.tracks.iter().collect();
        stored.sort_by_key(|t| t.data_offset);
        for t in stored {
            let (index, track) = tracks
                .iter()
                .enumerate()
                .find(|(_, c)| c.number == t.track)
                .ok_or_else(|| ApiError::Internal(format!("track {} vanished", t.track)))?;
            if !same_config(track.config, t.codec_config) {
                return Err(ApiError::InvalidCodecPrivateData(format!(
                    "The codec private data of track {} changes at fragment {} inside the \
                     requested range: a clip has one codec configuration per track. End the \
                     range before fragment {} or start it there.",
                    t.track, f.number, f.number
                )));
            }
            // Frames are timed on the producer's clock, which spaces fragments as recorded.
            let start_ns = u64::try_from(f.producer_timestamp.millis())
                .unwrap_or(0)
                .saturating_mul(1_000_000);
            let timing = timeline::track_timing(
                start_ns,
                &t.samples,
                TrackClock::of(&track.codec),
                DecodeTimes::BeforePresentation,
            )
            .map_err(|e| {
                ApiError::InvalidMediaFrame(format!(
                    "The frames of track {} of fragment {} cannot be played: {e}.",
                    t.track, f.number
                ))
            })?;
            if timing.data_len() != t.data_len {
                return Err(ApiError::Internal(format!(
                    "fragment {} track {}: samples hold {} bytes, the store {}",
                    f.number,
                    t.track,
                    timing.data_len(),
                    t.data_len
                )));
            }
            plan.chunks.push(ClipChunk {
                track: index,
                timing,
            });
            plan.reads.push(ChunkRead {
                fragment: f.number,
                location: f.media,
                range: t.data_offset..t.data_offset + t.data_len,
            });
        }
    }
    Ok(plan)
}
