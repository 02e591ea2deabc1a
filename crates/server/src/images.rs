//! `POST /getImages` (kinesis-video-archived-media; docs/wire.md#getimages): one image per sample
//! time of a range, decoded from the stored frames by FFmpeg's libavcodec (the `imaging` crate;
//! docs/choices.md#getimages-decoder).
//!
//! Order of checks, each with its error:
//! 1. The model (types, enums, `WidthPixels` 1..3840, `HeightPixels` 1..2160, `MaxResults`
//!    1..100, `NextToken`): one `InvalidArgumentException` for all (`validate.rs`). Then the
//!    rules the model only writes in prose, also `InvalidArgumentException`: `SamplingInterval`
//!    given and ≥ 200 ms; End not before Start and at most 300 s after it; `JPEGQuality` an
//!    integer 1..100; a `NextToken` from the same range and interval.
//! 2. The stream (`ResourceNotFoundException`); retention 0 → `NoDataRetentionException`.
//! 3. The decoder: FFmpeg's libraries missing → `InvalidArgumentException` naming them (as an
//!    operation openkvs does not support, `ops::NOT_SUPPORTED_YET`).
//! 4. Decoding: at most [`DecodeLimits::wait`] (10 s) for one of the node's decode slots (one per
//!    core), else `ClientLimitExceededException` 400, AWS's throttling error.
//!
//! Per image, never an error of the whole request: `NO_MEDIA` when no fragment covers the time,
//! `MEDIA_ERROR` when its fragment's track 1 is not H.264 / H.265 or does not decode.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use base64::Engine;
use imaging::picture::{self, Format};
use imaging::{libav, VideoCodec};
use media::codec::{decode_track, Codec};
use media::TrackNumber;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::{FragmentQuery, FragmentRecord, FragmentSummary, Timestamp, TimestampKind};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::control::{resolve_retained_stream, validate_stream_ref, Result};
use crate::error::ApiError;
use crate::validate::{self as v, Validator};
use crate::wire::{epoch_seconds, AwsJson, Input};
use crate::AppState;

/// "The minimum value that can be provided is 200 ms" (the model doc of SamplingInterval).
pub const MIN_SAMPLING_INTERVAL_MS: i64 = 200;
/// "more than 300 seconds above StartTimestamp … IllegalArgumentException" (model doc).
pub const MAX_RANGE_MS: i64 = 300_000;
/// "The default limit is 25 images per API response. Providing a MaxResults greater than this
/// value will result in a page size of 25" (model doc): every page holds at most 25.
pub const PAGE_SIZE: usize = 25;
pub const MAX_RESULTS_MAX: i64 = 100;
pub const DEFAULT_JPEG_QUALITY: u8 = 80;
/// The model's `ImageContent` maximum (base64 characters); a larger image is a MEDIA_ERROR.
pub const MAX_IMAGE_CONTENT: usize = 6_291_456;
/// The widest image (the model's `WidthPixels` maximum), also for a computed width.
const MAX_WIDTH: u32 = 3840;
/// How far before a sample time a covering fragment may start: the longest fragment ingest
/// accepts (`ingest::fragment::FragmentLimits::max_fragment_duration_ms`, 20 s by default).
const LOOKBACK_MS: i64 = 20_000;
/// Fragment rows read for one page; a page spans at most 25 × 300 s / … of fragments, and one
/// with more fragments than this in its window answers NO_MEDIA for the times past them.
const MAX_PAGE_FRAGMENTS: usize = 2_000;
/// Frames one page may decode, all groups of pictures together: a page stops early (with a
/// NextToken) rather than decode more (docs/choices.md#getimages-decoder). 25 images from
/// 2-second groups at 30 fps need at most 1500.
pub const MAX_PAGE_DECODED_FRAMES: usize = 1_500;
/// How long a request waits for a decode slot before ClientLimitExceededException.
pub const DECODE_WAIT: Duration = Duration::from_secs(10);

/// How much decoding the node takes on (`Config::decode_limits`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Groups of pictures decoded at once, all requests together: each holds one slot, and
    /// decodes on one thread.
    pub slots: usize,
    /// How long a request waits for a slot before ClientLimitExceededException.
    pub wait: Duration,
}

impl Default for DecodeLimits {
    /// One slot per core, [`DECODE_WAIT`].
    fn default() -> Self {
        DecodeLimits {
            slots: std::thread::available_parallelism().map_or(1, |n| n.get()),
            wait: DECODE_WAIT,
        }
    }
}

/// The node's decode slots ([`DecodeLimits`]): so GetImages never takes more than the machine's
/// cores, whatever the number of requests.
pub struct DecodeSlots {
    slots: Arc<Semaphore>,
    wait: Duration,
}

impl DecodeSlots {
    pub fn new(limits: &DecodeLimits) -> Self {
        DecodeSlots {
            slots: Arc::new(Semaphore::new(limits.slots)),
            wait: limits.wait,
        }
    }

    /// A slot, waited for at most the configured time; else ClientLimitExceededException.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit> {
        tokio::time::timeout(self.wait, self.slots.clone().acquire_owned())
            .await
            .ok()
            .and_then(|p| p.ok())
            .ok_or_else(|| {
                ApiError::ClientLimitExceeded(
                    "Too many images are being decoded on this server; retry later.".into(),
                )
            })
    }
}

const SELECTOR_TYPES: &[&str] = &["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"];
const FORMATS: &[&str] = &["JPEG", "PNG"];
const FORMAT_CONFIG_KEYS: &[&str] = &["JPEGQuality"];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetImagesInput {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub image_selector_type: Option<String>,
    pub start_timestamp: Option<f64>,
    pub end_timestamp: Option<f64>,
    pub sampling_interval: Option<i64>,
    pub format: Option<String>,
    pub format_config: Option<BTreeMap<String, String>>,
    pub width_pixels: Option<i64>,
    pub height_pixels: Option<i64>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

impl Input for GetImagesInput {
    fn validate(&self, v: &mut Validator) {
        validate_stream_ref(v, &self.stream_name, &self.stream_arn);
        v.required("imageSelectorType", &self.image_selector_type);
        v.one_of(
            "imageSelectorType",
            self.image_selector_type.as_deref(),
            SELECTOR_TYPES,
        );
        v.required("startTimestamp", &self.start_timestamp);
        v.required("endTimestamp", &self.end_timestamp);
        v.required("format", &self.format);
        v.one_of("format", self.format.as_deref(), FORMATS);
        if let Some(config) = &self.format_config {
            let shown = v::JavaMap(config);
            v.count("formatConfig", &shown, config.len(), 1, 1);
            for key in config.keys() {
                v.one_of("formatConfig", Some(key), FORMAT_CONFIG_KEYS);
            }
        }
        v.range("widthPixels", self.width_pixels, Some(1), Some(3840));
        v.range("heightPixels", self.height_pixels, Some(1), Some(2160));
        v.range(
            "maxResults",
            self.max_results,
            Some(1),
            Some(MAX_RESULTS_MAX),
        );
        v.string(
            "nextToken",
            self.next_token.as_deref(),
            &v::ARCHIVED_NEXT_TOKEN_RULE,
        );
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Image {
    #[serde(with = "epoch_seconds")]
    pub time_stamp: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_content: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetImagesOutput {
    pub images: Vec<Image>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// The sample times of a request: `start`, `start + interval`, … up to and including `end`
/// (the model doc: StartTimestamp and the range are inclusive; a range shorter than the
/// interval still has the image at Start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Samples {
    pub kind: TimestampKind,
    pub start_ms: i64,
    pub end_ms: i64,
    pub interval_ms: i64,
}

impl Samples {
    pub fn count(&self) -> usize {
        // Validated: 0 ≤ end − start ≤ 300 000 and interval ≥ 200, so this is 1..=1501.
        ((self.end_ms - self.start_ms) / self.interval_ms + 1) as usize
    }

    pub fn time_ms(&self, index: usize) -> i64 {
        self.start_ms + index as i64 * self.interval_ms
    }

    /// What a NextToken is bound to: a token only resumes the range and interval it came from.
    fn digest(&self) -> String {
        let kind = match self.kind {
            TimestampKind::Producer => 'P',
            TimestampKind::Server => 'S',
        };
        let text = format!(
            "{kind}:{}:{}:{}",
            self.start_ms, self.end_ms, self.interval_ms
        );
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }

    /// NextToken: standard base64 of `v1:<next sample index>:<digest>` (docs/wire.md#getimages).
    pub fn token(&self, next: usize) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("v1:{next}:{}", self.digest()))
    }

    /// The sample index a NextToken resumes at.
    pub fn resume(&self, token: &str) -> Result<usize> {
        let invalid = || ApiError::InvalidArgument("The NextToken is invalid.".into());
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(token)
            .map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let parts: Vec<&str> = text.split(':').collect();
        let ["v1", next, digest] = parts[..] else {
            return Err(invalid());
        };
        let next: usize = next.parse().map_err(|_| invalid())?;
        if digest != self.digest() {
            return Err(ApiError::InvalidArgument(
                "The NextToken was issued for another ImageSelectorType, time range or \
                 SamplingInterval: pass the same values as the request that returned it."
                    .into(),
            ));
        }
        if next == 0 || next >= self.count() {
            return Err(invalid());
        }
        Ok(next)
    }
}

/// Step 1's prose rules: the sample times, the format and the size asked.
pub fn resolve(input: &GetImagesInput) -> Result<(Samples, Format, Option<u32>, Option<u32>)> {
    let bad = |m: &str| ApiError::InvalidArgument(m.into());
    let kind = match input.image_selector_type.as_deref() {
        Some("SERVER_TIMESTAMP") => TimestampKind::Server,
        _ => TimestampKind::Producer,
    };
    let ts = |t: Option<f64>| t.and_then(epoch_seconds::from_seconds);
    let start = ts(input.start_timestamp).ok_or_else(|| bad("The StartTimestamp is invalid."))?;
    let end = ts(input.end_timestamp).ok_or_else(|| bad("The EndTimestamp is invalid."))?;
    if end < start {
        return Err(bad(
            "The EndTimestamp must be later than or equal to the StartTimestamp.",
        ));
    }
    if end.millis().saturating_sub(start.millis()) > MAX_RANGE_MS {
        return Err(bad(
            "The EndTimestamp must be within 300 seconds of the StartTimestamp.",
        ));
    }
    let interval = input.sampling_interval.ok_or_else(|| {
        bad("SamplingInterval is required: the interval between images in milliseconds, at least 200.")
    })?;
    if interval < MIN_SAMPLING_INTERVAL_MS {
        return Err(bad(
            "The SamplingInterval must be at least 200 milliseconds.",
        ));
    }
    let format = match input.format.as_deref() {
        Some("PNG") => Format::Png,
        _ => {
            let quality = match input
                .format_config
                .as_ref()
                .and_then(|c| c.get("JPEGQuality"))
            {
                None => DEFAULT_JPEG_QUALITY,
                Some(q) => q
                    .parse::<u8>()
                    .ok()
                    .filter(|q| (1..=100).contains(q))
                    .ok_or_else(|| bad("The JPEGQuality must be an integer from 1 to 100."))?,
            };
            Format::Jpeg(quality)
        }
    };
    // Validated to 1..=3840 / 1..=2160 by the model rules.
    let width = input.width_pixels.map(|w| w as u32);
    let height = input.height_pixels.map(|h| h as u32);
    // One of the two given: the other keeps the source's aspect ratio, for either one
    // (docs/choices.md#getimages: the model's two docs disagree; users expect this).
    Ok((
        Samples {
            kind,
            start_ms: start.millis(),
            end_ms: end.millis(),
            interval_ms: interval,
        },
        format,
        width,
        height,
    ))
}

/// A fragment as coverage sees it: its selected start and length in ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start_ms: i64,
    pub duration_ms: i64,
}

/// For each time, the fragment that covers it (`start ≤ t < start + duration`), the one that
/// started last when several do (a re-sent PRODUCER_TIMESTAMP range: the newest wins), or
/// `None` (NO_MEDIA). `spans` are ascending by start.
pub fn cover(times: &[i64], spans: &[Span]) -> Vec<Option<usize>> {
    times
        .iter()
        .map(|&t| {
            let upto = spans.partition_point(|s| s.start_ms <= t);
            (0..upto).rev().find(|&i| {
                t < spans[i]
                    .start_ms
                    .saturating_add(spans[i].duration_ms.max(1))
            })
        })
        .collect()
}

/// How one group of pictures is decoded for its sample times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPlan {
    /// Samples fed to the decoder: decode-order indices `first..end`, `first` a key frame.
    pub first: usize,
    pub end: usize,
    /// Per sample time: the output rank of its frame among the fed samples.
    pub ranks: Vec<usize>,
}

/// The frame on screen at each offset (ns from the fragment start, ascending): the one with the
/// latest presentation time ≤ the offset, or the first presented when the offset precedes them
/// all; decoded from the last key frame at or before the earliest of them in decode order.
/// `None` when no key frame precedes it (MEDIA_ERROR).
pub fn plan_group(samples: &[(i64, bool)], offsets_ns: &[i64]) -> Option<GroupPlan> {
    if samples.is_empty() {
        return None;
    }
    let target = |offset: i64| -> usize {
        let key = |i: usize| (samples[i].0, i);
        let on_screen = (0..samples.len())
            .filter(|&i| samples[i].0 <= offset)
            .max_by_key(|&i| key(i));
        on_screen.unwrap_or_else(|| (0..samples.len()).min_by_key(|&i| key(i)).unwrap_or(0))
    };
    let targets: Vec<usize> = offsets_ns.iter().map(|&o| target(o)).collect();
    let lowest = *targets.iter().min()?;
    let first = (0..=lowest).rev().find(|&i| samples[i].1)?;
    let end = *targets.iter().max()? + 1;
    let ranks = targets
        .iter()
        .map(|&t| {
            (first..end)
                .filter(|&j| (samples[j].0, j) < (samples[t].0, t))
                .count()
        })
        .collect();
    Some(GroupPlan { first, end, ranks })
}

fn selected(kind: TimestampKind, f: &FragmentSummary) -> i64 {
    match kind {
        TimestampKind::Producer => f.producer_timestamp.millis(),
        TimestampKind::Server => f.server_timestamp.millis(),
    }
}

/// `POST /getImages`.
pub async fn get_images(
    State(state): State<AppState>,
    AwsJson(input): AwsJson<GetImagesInput>,
) -> Result<AwsJson<GetImagesOutput>> {
    let (samples, format, width, height) = resolve(&input)?;
    let first = match &input.next_token {
        Some(token) => samples.resume(token)?,
        None => 0,
    };
    let page_size = input
        .max_results
        .map_or(PAGE_SIZE, |m| (m.max(1) as usize).min(PAGE_SIZE));
    let stream = resolve_retained_stream(
        &state,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
        "GetImages",
    )
    .await?;
    if let Err(why) = libav::availability() {
        return Err(ApiError::InvalidArgument(format!(
            "The operation GetImages is not available on this openkvs server: {why}."
        )));
    }

    let last = (first + page_size).min(samples.count());
    let times: Vec<i64> = (first..last).map(|i| samples.time_ms(i)).collect();
    let (Some(&t0), Some(&t1)) = (times.first(), times.last()) else {
        return Err(ApiError::Internal("empty GetImages page".into()));
    };
    let rows = state
        .catalog
        .query_fragment_summaries(FragmentQuery {
            stream: stream.id,
            kind: samples.kind,
            start: Timestamp::from_millis(t0.saturating_sub(LOOKBACK_MS)),
            end: Timestamp::from_millis(t1),
            after: None,
            limit: MAX_PAGE_FRAGMENTS,
        })
        .await?;
    let spans: Vec<Span> = rows
        .iter()
        .map(|f| Span {
            start_ms: selected(samples.kind, f),
            duration_ms: i64::try_from(f.duration_ms).unwrap_or(i64::MAX),
        })
        .collect();
    let covering = cover(&times, &spans);

    // Group the page's times by fragment, in time order.
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, c) in covering.iter().enumerate() {
        if let Some(f) = *c {
            match groups.last_mut() {
                Some((g, members)) if *g == f => members.push(i),
                _ => groups.push((f, vec![i])),
            }
        }
    }

    let mut results: Vec<Option<std::result::Result<String, ()>>> = vec![None; times.len()];
    let mut decoded = 0usize;
    let mut page_end = times.len();
    for (fragment, members) in groups {
        let summary = &rows[fragment];
        let record = state
            .catalog
            .fragment_shared(stream.id, summary.number)
            .await?;
        let offsets: Vec<i64> = members
            .iter()
            .map(|&i| (times[i] - spans[fragment].start_ms).saturating_mul(1_000_000))
            .collect();
        let job = match record {
            Some(record) => prepare(&state, &record, &offsets).await,
            None => Err(()), // deleted by retention since it was listed
        };
        let job = match job {
            Ok(job) => job,
            Err(()) => {
                for &i in &members {
                    results[i] = Some(Err(()));
                }
                continue;
            }
        };
        // The page's decode budget: stop before a group that would pass it, unless nothing
        // was decoded yet (one group is always done, so every page makes progress).
        if decoded > 0 && decoded + job.packets.len() > MAX_PAGE_DECODED_FRAMES {
            page_end = members[0];
            break;
        }
        decoded += job.packets.len();
        let permit = state.decode_slots.acquire().await?;
        let images = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            run(job, format, width, height)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("GetImages decode task failed: {e}")))?
        .map_err(|why| {
            ApiError::InvalidArgument(format!(
                "The operation GetImages is not available on this openkvs server: {why}."
            ))
        })?;
        for (&i, image) in members.iter().zip(images) {
            results[i] = Some(image);
        }
    }

    let next = first + page_end;
    let images = times[..page_end]
        .iter()
        .zip(results)
        .map(|(&t, r)| {
            let (error, image_content) = match r {
                None => (Some("NO_MEDIA"), None),
                Some(Err(())) => (Some("MEDIA_ERROR"), None),
                Some(Ok(content)) => (None, Some(content)),
            };
            Image {
                time_stamp: Timestamp::from_millis(t),
                error,
                image_content,
            }
        })
        .collect();
    Ok(AwsJson(GetImagesOutput {
        images,
        next_token: (next < samples.count()).then(|| samples.token(next)),
    }))
}

/// One group of pictures, read and ready for the decoder.
struct DecodeJob {
    codec: VideoCodec,
    packets: Vec<Vec<u8>>,
    ranks: Vec<usize>,
    fragment: String,
}

/// Reads track 1 of `record` from the key frame the sample times need; `Err` = MEDIA_ERROR
/// (the cause is logged).
async fn prepare(
    state: &AppState,
    record: &FragmentRecord,
    offsets_ns: &[i64],
) -> std::result::Result<DecodeJob, ()> {
    let fail = |why: &str| {
        tracing::info!(fragment = %record.number, why, "GetImages: MEDIA_ERROR");
    };
    // "GetImages: video in track 1" (AWS's track requirement).
    let Some(track) = record.tracks.iter().find(|t| t.track == TrackNumber(1)) else {
        fail("no track 1");
        return Err(());
    };
    let config = match state.catalog.codec_config(track.codec_config).await {
        Ok(Some(c)) => c,
        _ => {
            fail("codec config unreadable");
            return Err(());
        }
    };
    let (codec, nal_length_size, sets): (VideoCodec, u8, Vec<bytes::Bytes>) =
        match decode_track(&config.codec_id, &config.codec_private) {
            Ok(Codec::Avc(c)) => (
                VideoCodec::H264,
                c.nal_length_size,
                c.sps.iter().chain(&c.pps).cloned().collect(),
            ),
            Ok(Codec::Hevc(c)) => (
                VideoCodec::H265,
                c.nal_length_size,
                c.vps.iter().chain(&c.sps).chain(&c.pps).cloned().collect(),
            ),
            _ => {
                fail("track 1 is not H.264 or H.265 with valid codec private data");
                return Err(());
            }
        };
    let timing: Vec<(i64, bool)> = track
        .samples
        .iter()
        .map(|s| (s.pts_offset_ns, s.keyframe))
        .collect();
    let Some(plan) = plan_group(&timing, offsets_ns) else {
        fail("no key frame before the frame on screen");
        return Err(());
    };
    let offset_of =
        |i: usize| -> u64 { track.samples[..i].iter().map(|s| u64::from(s.size)).sum() };
    let (from, to) = (offset_of(plan.first), offset_of(plan.end));
    if to > track.data_len {
        fail("sample sizes exceed the track's bytes");
        return Err(());
    }
    let range = track.data_offset + from..track.data_offset + to;
    let bytes = match state.media.read(record.stream, record.media, range).await {
        Ok(b) if b.len() as u64 == to - from => b,
        _ => {
            fail("stored media unreadable");
            return Err(());
        }
    };
    let mut packets = Vec::with_capacity(plan.end - plan.first);
    let mut pos = 0usize;
    for (n, s) in track.samples[plan.first..plan.end].iter().enumerate() {
        let size = s.size as usize;
        let mut packet = Vec::with_capacity(size + 64);
        if n == 0 {
            imaging::annexb::push_parameter_sets(&mut packet, sets.iter().map(|b| &b[..]));
        }
        let Some(sample) = bytes.get(pos..pos + size) else {
            fail("short read");
            return Err(());
        };
        if imaging::annexb::push_sample(&mut packet, sample, nal_length_size).is_err() {
            fail("a sample's NAL unit lengths are invalid");
            return Err(());
        }
        packets.push(packet);
        pos += size;
    }
    Ok(DecodeJob {
        codec,
        packets,
        ranks: plan.ranks,
        fragment: record.number.to_string(),
    })
}

/// Decodes a group and encodes one image per sample time (on a blocking thread). The outer
/// `Err` is a decoder that cannot be loaded; an inner `Err` a MEDIA_ERROR.
fn run(
    job: DecodeJob,
    format: Format,
    width: Option<u32>,
    height: Option<u32>,
) -> std::result::Result<Vec<std::result::Result<String, ()>>, String> {
    let wanted: BTreeSet<usize> = job.ranks.iter().copied().collect();
    let frames = match libav::decode_group(job.codec, &job.packets, &wanted) {
        Ok(frames) => frames,
        Err(libav::DecodeError::Unavailable(why)) => return Err(why),
        Err(libav::DecodeError::Media(why)) => {
            tracing::info!(fragment = %job.fragment, why, "GetImages: MEDIA_ERROR");
            return Ok(vec![Err(()); job.ranks.len()]);
        }
    };
    let mut encoded: BTreeMap<usize, std::result::Result<String, ()>> = BTreeMap::new();
    for (rank, frame) in frames {
        let image = frame
            .map_err(|e| e.to_string())
            .and_then(|rgb| {
                let size = picture::output_size((rgb.width, rgb.height), width, height, MAX_WIDTH);
                let scaled = picture::scale(rgb, size).map_err(|e| e.to_string())?;
                picture::encode(&scaled, format).map_err(|e| e.to_string())
            })
            .and_then(|file| {
                let content = base64::engine::general_purpose::STANDARD.encode(file);
                if content.len() > MAX_IMAGE_CONTENT {
                    return Err(format!(
                        "the image is {} base64 characters, over the model's {MAX_IMAGE_CONTENT}",
                        content.len()
                    ));
                }
                Ok(content)
            })
            .map_err(|why| {
                tracing::info!(fragment = %job.fragment, why, "GetImages: MEDIA_ERROR");
            });
        encoded.insert(rank, image);
    }
    Ok(job
        .ranks
        .iter()
        .map(|r| encoded.get(r).cloned().unwrap_or(Err(())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> GetImagesInput {
        serde_json::from_value(json).unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "StreamName": "s", "ImageSelectorType": "PRODUCER_TIMESTAMP",
            "StartTimestamp": 100.0, "EndTimestamp": 101.0, "SamplingInterval": 200,
            "Format": "JPEG"
        })
    }

    fn with(changes: serde_json::Value) -> GetImagesInput {
        let mut v = base();
        for (k, val) in changes.as_object().unwrap() {
            if val.is_null() {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = val.clone();
            }
        }
        input(v)
    }

    fn invalid(i: &GetImagesInput) -> String {
        let e = resolve(i).expect_err("an error");
        assert_eq!(e.aws_error_type(), "InvalidArgumentException");
        e.message()
    }

    #[test]
    fn sample_times_include_both_ends() {
        let (s, format, w, h) = resolve(&input(base())).unwrap();
        assert_eq!((format, w, h), (Format::Jpeg(80), None, None));
        assert_eq!(s.count(), 6); // 100.0, 100.2, …, 101.0
        assert_eq!(s.time_ms(5), 101_000);
        // A range shorter than the interval still has Start; End == Start too.
        let (s, ..) = resolve(&with(serde_json::json!({"SamplingInterval": 5000}))).unwrap();
        assert_eq!((s.count(), s.time_ms(0)), (1, 100_000));
        let (s, ..) = resolve(&with(serde_json::json!({"EndTimestamp": 100.0}))).unwrap();
        assert_eq!(s.count(), 1);
        // The widest range at the smallest interval.
        let (s, ..) = resolve(&with(serde_json::json!({"EndTimestamp": 400.0}))).unwrap();
        assert_eq!(s.count(), 1501);
        assert_eq!(s.time_ms(1500), 400_000);
        let (s, ..) = resolve(&with(serde_json::json!({"EndTimestamp": 100.999}))).unwrap();
        assert_eq!((s.count(), s.time_ms(4)), (5, 100_800));
    }

    #[test]
    fn prose_rules_are_invalid_argument() {
        assert!(invalid(&with(serde_json::json!({"EndTimestamp": 99.999}))).contains("later"));
        assert!(invalid(&with(serde_json::json!({"EndTimestamp": 400.001}))).contains("300"));
        assert!(invalid(&with(serde_json::json!({"SamplingInterval": 199}))).contains("200"));
        assert!(invalid(&with(serde_json::json!({"SamplingInterval": -5}))).contains("200"));
        assert!(invalid(&with(serde_json::json!({"SamplingInterval": null}))).contains("required"));
        for q in ["0", "101", "x", "", "80.5"] {
            let i = with(serde_json::json!({"FormatConfig": {"JPEGQuality": q}}));
            assert!(invalid(&i).contains("JPEGQuality"), "{q}");
        }
        let (_, f, ..) = resolve(&with(
            serde_json::json!({"FormatConfig": {"JPEGQuality": "100"}}),
        ))
        .unwrap();
        assert_eq!(f, Format::Jpeg(100));
        let (_, f, w, h) = resolve(&with(
            serde_json::json!({"Format": "PNG", "HeightPixels": 7}),
        ))
        .unwrap();
        assert_eq!((f, w, h), (Format::Png, None, Some(7)));
    }

    #[test]
    fn model_rules() {
        let check = |i: GetImagesInput| {
            let mut v = Validator::default();
            i.validate(&mut v);
            v.finish().err().map(|e| e.message())
        };
        assert_eq!(check(input(base())), None);
        for bad in [
            serde_json::json!({"Format": "GIF"}),
            serde_json::json!({"ImageSelectorType": "NOW"}),
            serde_json::json!({"WidthPixels": 3841, "HeightPixels": 10}),
            serde_json::json!({"HeightPixels": 0}),
            serde_json::json!({"MaxResults": 101}),
            serde_json::json!({"MaxResults": 0}),
            serde_json::json!({"FormatConfig": {"Quality": "5"}}),
            serde_json::json!({"FormatConfig": {}}),
            serde_json::json!({"NextToken": "not base64!"}),
            serde_json::json!({"Format": null}),
            serde_json::json!({"StartTimestamp": null}),
        ] {
            assert!(check(with(bad.clone())).is_some(), "{bad}");
        }
    }

    #[test]
    fn tokens_resume_only_their_request() {
        let (s, ..) = resolve(&with(serde_json::json!({"EndTimestamp": 200.0}))).unwrap();
        let token = s.token(25);
        assert!(v::ARCHIVED_NEXT_TOKEN.matches(&token), "{token}");
        assert_eq!(s.resume(&token).unwrap(), 25);
        let (other, ..) = resolve(&with(
            serde_json::json!({"EndTimestamp": 200.0, "SamplingInterval": 201}),
        ))
        .unwrap();
        assert!(other
            .resume(&token)
            .unwrap_err()
            .message()
            .contains("same values"));
        for bad in [
            s.token(0),
            s.token(s.count()),
            "djE6eDp5".into(),
            "!!".into(),
        ] {
            assert_eq!(
                s.resume(&bad).unwrap_err().aws_error_type(),
                "InvalidArgumentException"
            );
        }
    }

    #[test]
    fn coverage_picks_the_latest_covering_fragment() {
        let spans = [
            Span {
                start_ms: 0,
                duration_ms: 1000,
            },
            Span {
                start_ms: 1000,
                duration_ms: 1000,
            },
            Span {
                start_ms: 1500,
                duration_ms: 200,
            }, // overlaps the one before
            Span {
                start_ms: 5000,
                duration_ms: 1000,
            },
        ];
        let got = cover(
            &[-1, 0, 999, 1000, 1600, 1800, 2000, 4999, 5999, 6000],
            &spans,
        );
        assert_eq!(
            got,
            [
                None,
                Some(0),
                Some(0),
                Some(1),
                Some(2),
                Some(1),
                None,
                None,
                Some(3),
                None
            ]
        );
        assert_eq!(
            cover(
                &[0],
                &[Span {
                    start_ms: 0,
                    duration_ms: 0
                }]
            ),
            [Some(0)]
        );
    }

    #[test]
    fn frame_on_screen_and_its_rank() {
        // Decode order I0 P3 B1 B2 P6 B4 B5 (presentation times in frame units of 10 ns).
        let s = [
            (0, true),
            (30, false),
            (10, false),
            (20, false),
            (60, false),
            (40, false),
            (50, false),
        ];
        // t=25 → B2 (pts 20, decode index 3): feed I0 P3 B1 B2; ranks by pts: 0,10,20 → 2.
        assert_eq!(
            plan_group(&s, &[25]),
            Some(GroupPlan {
                first: 0,
                end: 4,
                ranks: vec![2]
            })
        );
        // One group for t=30 → P3 and t=65 → P6 (index 4): I0 P3 B1 B2 P6 are fed; they come
        // out as 0, 10, 20, 30, 60, so P3 is rank 3 and P6 rank 4.
        assert_eq!(
            plan_group(&s, &[30, 65]),
            Some(GroupPlan {
                first: 0,
                end: 5,
                ranks: vec![3, 4]
            })
        );
        // Before every frame: the first presented one.
        assert_eq!(plan_group(&s, &[-5]).unwrap().ranks, vec![0]);
        // A second key frame restarts decoding there.
        let k = [(0, true), (10, false), (20, true), (30, false)];
        assert_eq!(
            plan_group(&k, &[25, 35]),
            Some(GroupPlan {
                first: 2,
                end: 4,
                ranks: vec![0, 1]
            })
        );
        assert_eq!(plan_group(&[(0, false), (10, false)], &[5]), None);
        assert_eq!(plan_group(&[], &[5]), None);
    }
}
