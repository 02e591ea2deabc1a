//! LL-HLS resources (docs/wire.md#ll-hls-resources, docs/architecture.md#low-latency-hls): the
//! media playlist of a LIVE fMP4 session with parts, preload hint and blocking reload
//! (RFC 8216bis §6.2.5.2), and `getMP4MediaPart.mp4`.
//!
//! The stored segments and their recent parts come from the shared LIVE segment list
//! (`serve::segment_list_cached`); the fragments still arriving come from this node's
//! [`super::ll::LiveParts`], after the newest stored one. A part is the same bytes either way:
//! `media::parts::cut` decides both.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use media::timeline::{DecodeTimes, TrackClock};
use media::TrackNumber;
use store::{CatalogChange, FragmentNumber, FragmentSummary, StreamEdge, StreamRecord};
use tokio::sync::broadcast::error::RecvError;

use super::limits::HlsResource;
use super::ll::{self, LowLatencyConfig, PartLookup, PendingFragment};
use super::playlist::{self, Container, PartTag, Segment};
use super::serve::{self, Configs, HlsQuery, SegmentList};
use super::session::{ContainerFormat, PlaybackMode, Protocol, Session};
use crate::wire::AwsQuery;
use crate::{ApiError, AppState};

/// Stored segments keep their parts listed while they are within this many target durations of
/// the end (RFC 8216bis §4.4.4.9: parts more than three target durations old should go).
const PARTS_KEPT_TARGET_DURATIONS: f64 = 3.0;
/// How long a blocking reload waits for what it asks, in target durations (RFC 8216bis §6.2.5.2).
const BLOCKING_RELOAD_TARGET_DURATIONS: f64 = 3.0;

/// The server's LL-HLS settings if they apply to `session`: LIVE and fMP4 only (docs/architecture.md#low-latency-hls).
pub(super) fn low_latency(state: &AppState, session: &Session) -> Option<LowLatencyConfig> {
    state.config.low_latency.filter(|_| {
        session.mode == PlaybackMode::Live && session.container == ContainerFormat::FragmentedMp4
    })
}

/// The parts of the newest stored segments, written into `segments` (the list of `fragments`).
pub(super) async fn list_stored_parts(
    state: &AppState,
    session: &Session,
    configs: &Configs,
    fragments: &[FragmentSummary],
    segments: &mut [Segment],
    track: TrackNumber,
    ll: &LowLatencyConfig,
) -> Result<(), ApiError> {
    let target = segments
        .iter()
        .map(|s| s.duration_s)
        .fold(1.0, f64::max)
        .ceil();
    let mut span = 0.0;
    for (segment, f) in segments.iter_mut().zip(fragments).rev() {
        if span > PARTS_KEPT_TARGET_DURATIONS * target {
            break;
        }
        span += segment.duration_s;
        let Some(full) = state.catalog.fragment_shared(f.stream, f.number).await? else {
            continue;
        };
        let Some(t) = serve::track_of(&full, track) else {
            continue;
        };
        // The window's configs: they hold every config its fragments use.
        let codec = configs.codec(t.codec_config)?;
        let Ok(timing) = serve::timing_with(session, &full, t, &codec, DecodeTimes::AtPresentation)
        else {
            continue;
        };
        let cut = media::parts::cut(&timing, ll.target_ticks(timing.timescale), true);
        segment.parts = tags(&cut, timing.timescale);
    }
    Ok(())
}

fn tags(parts: &[media::parts::Part], timescale: u32) -> Vec<PartTag> {
    parts
        .iter()
        .map(|p| PartTag {
            duration_s: p.duration as f64 / f64::from(timescale.max(1)),
            independent: p.independent,
        })
        .collect()
}

/// What one LL media playlist shows: the stored list and the fragments arriving after it.
struct View<'a> {
    list: &'a SegmentList,
    pending: &'a [PendingFragment],
}

impl View<'_> {
    /// The media sequence number of the first fragment still arriving.
    fn next_msn(&self) -> u64 {
        self.list.media_sequence + self.list.segments.len() as u64
    }

    /// Whether the playlist holds segment `msn` (`part`: that part of it) as RFC 8216bis
    /// §6.2.5.2 asks: a part past the last of a complete segment is part 0 of the next one.
    fn has(&self, msn: u64, part: Option<usize>) -> bool {
        let next = self.next_msn();
        if msn + 1 < next {
            return true;
        }
        if msn + 1 == next {
            let parts = self.list.segments.last().map_or(0, |s| s.parts.len());
            return match part {
                None => true,
                Some(p) => p < parts || self.has(msn + 1, Some(0)),
            };
        }
        let Some(f) = usize::try_from(msn - next)
            .ok()
            .and_then(|i| self.pending.get(i))
        else {
            return false;
        };
        match part {
            // The whole segment is listed once it is stored.
            None => false,
            Some(p) if p < f.parts.len() => true,
            Some(_) => f.complete && self.has(msn + 1, Some(0)),
        }
    }

    /// Beyond what a blocking reload may ask for: more than two segments past the last one
    /// listed (RFC 8216bis §6.2.5.2 answers 400).
    fn too_far(&self, msn: u64) -> bool {
        msn > self.next_msn() + self.pending.len() as u64 + 1
    }

    fn target_duration_s(&self) -> f64 {
        self.list
            .segments
            .iter()
            .map(|s| s.duration_s)
            .fold(1.0, f64::max)
            .ceil()
    }
}

/// `getHLSMediaPlaylist.m3u8` of a LIVE fMP4 session with LL-HLS. With `_HLS_msn` (and
/// `_HLS_part`) it is answered once the playlist holds that segment (part), woken by ingest or a
/// commit on any node; after three target durations without it, with what there is.
pub(super) async fn media_playlist(
    state: &AppState,
    q: &HlsQuery,
    session: &Session,
    stream: &StreamRecord,
    track: TrackNumber,
    ll: LowLatencyConfig,
) -> Result<Response, ApiError> {
    let wanted = q.blocking_reload()?;
    let token = q.token()?;
    // Subscribed before the first look, so nothing that lands in between is missed.
    let mut version = state.live_parts.watch(stream.id);
    let mut changes = state.catalog.changes();
    let mut changes_open = true;
    let mut deadline = None;
    loop {
        version.borrow_and_update();
        let list = serve::segment_list_cached(state, session, stream, track, Some(&ll)).await?;
        let pending = state.live_parts.pending(
            stream.id,
            list.last.as_ref().map(|(number, _)| *number),
            track,
        );
        let view = View {
            list: &list,
            pending: &pending,
        };
        if let Some((msn, part)) = wanted {
            if view.too_far(msn) {
                return Err(ApiError::InvalidArgument(format!(
                    "_HLS_msn {msn} is more than two segments past the end of the playlist."
                )));
            }
            if !view.has(msn, part) {
                let until = *deadline.get_or_insert_with(|| {
                    tokio::time::Instant::now()
                        + Duration::from_secs_f64(
                            BLOCKING_RELOAD_TARGET_DURATIONS * view.target_duration_s(),
                        )
                });
                let woken = tokio::select! {
                    changed = version.changed() => changed.is_ok(),
                    open = commit_to(&mut changes, stream.id), if changes_open => {
                        changes_open = open;
                        true
                    }
                    () = tokio::time::sleep_until(until) => false,
                    () = state.shutdown.cancelled() => false,
                };
                if woken {
                    continue;
                }
            }
        }
        let text = render(state, session, stream, &view, track, token, &ll).await?;
        // A node that only serves this stream keeps no entry for it once nobody waits.
        drop(version);
        state.live_parts.prune(stream.id);
        return Ok(serve::respond(
            serve::M3U8,
            http::HeaderValue::from_static("no-cache"),
            Body::from(text),
            None,
        ));
    }
}

/// Waits for a change of `stream` in the catalog's change feed (a commit on any node), skipping
/// other streams' so a reload blocked on a quiet stream of a busy node is not woken by every
/// camera. False once the feed is closed.
async fn commit_to(
    changes: &mut tokio::sync::broadcast::Receiver<CatalogChange>,
    stream: store::StreamId,
) -> bool {
    loop {
        match changes.recv().await {
            Ok(CatalogChange::Fragments(s) | CatalogChange::Stream(s)) if s != stream => continue,
            // This stream's, or notices may have been missed: look again.
            Ok(_) | Err(RecvError::Lagged(_)) => return true,
            Err(RecvError::Closed) => return false,
        }
    }
}

/// The stored list's text, then each fragment arriving: its tags, its parts, and a preload hint
/// for the next part of the last one.
async fn render(
    state: &AppState,
    session: &Session,
    stream: &StreamRecord,
    view: &View<'_>,
    track: TrackNumber,
    token: &str,
    ll: &LowLatencyConfig,
) -> Result<String, ApiError> {
    let list = view.list;
    let mut text = list
        .text(Container::Fmp4, track, false, Some(ll.playlist()))
        .with_token(token);
    if view.pending.is_empty() {
        return Ok(text);
    }
    let newest_config = view.pending.iter().map(|p| p.codec_config).max();
    let configs = Configs::load(state, stream, newest_config).await?;
    let flag = serve::live_flag(session);
    let mut edge = list.last.as_ref().map(|(_, edge)| edge.clone());
    let mut segments = Vec::with_capacity(view.pending.len());
    // A fragment with no part yet is announced by the preload hint only: its tags (a
    // discontinuity, a date) come with its first part, so a playlist never ends in tags that
    // apply to nothing listed.
    for p in view.pending.iter().filter(|p| !p.parts.is_empty()) {
        // The stored continuity rule (store::continuity), applied ahead of the commit.
        let flags = edge.as_ref().map_or(0, |e| {
            e.flags_for(&p.configs, p.producer_timestamp, p.server_timestamp)
        });
        let discontinuity = match flag {
            // ALWAYS: every segment begins one, as the stored ones do (`serve::window`).
            None => true,
            Some(bit) => flags & bit != 0 || (p.discontinuous && edge.is_some()),
        };
        // The next one is compared with this one's start: its end is not known yet.
        edge = Some(StreamEdge::ending_at(
            p.producer_timestamp,
            p.server_timestamp,
            p.configs.clone(),
        ));
        segments.push(Segment {
            fragment_number: p.number.to_string(),
            duration_s: 0.0,
            discontinuity,
            init_sequence: configs.row(p.codec_config)?.1,
            program_date_time_ms: session
                .display_timestamp
                .then(|| session.selected_timestamp(p).0),
            parts: tags(&p.parts, p.timescale),
            complete: false,
        });
    }
    let last_init = list.segments.last().map(|s| s.init_sequence);
    playlist::write_segments(
        &mut text,
        token,
        Container::Fmp4,
        track.0,
        &segments,
        last_init,
    );
    if let Some(last) = view.pending.last().filter(|p| !p.complete) {
        playlist::write_preload_hint(
            &mut text,
            token,
            &last.number.to_string(),
            last.parts.len(),
            track.0,
        );
    }
    Ok(text)
}

/// How long a part request waits for a part not cut yet (a preload hint's): the part is due
/// within one part target of the producer's frames; ten leave room for a slow network.
fn part_wait(ll: &LowLatencyConfig) -> Duration {
    ll.part_target * 10
}

/// `GET /hls/v1/getMP4MediaPart.mp4?FragmentNumber=F&PartNumber=K&TrackNumber=N`: one part of
/// a fragment, from memory while this node receives it, else cut from the stored fragment.
pub async fn media_part(
    State(state): State<AppState>,
    AwsQuery(q): AwsQuery<HlsQuery>,
) -> Result<Response, ApiError> {
    let (session, stream) =
        serve::open(&state, &q, HlsResource::MediaFragment, Protocol::Hls).await?;
    serve::fmp4_only(&session)?;
    let ll = low_latency(&state, &session).ok_or_else(|| {
        ApiError::InvalidArgument(
            "Parts are served in LIVE sessions of a server run with --ll-hls only.".into(),
        )
    })?;
    let track = q.track()?;
    let number = q.fragment()?;
    let index = q.part()?;
    let mut version = state.live_parts.watch(stream.id);
    let until = tokio::time::Instant::now() + part_wait(&ll);
    loop {
        version.borrow_and_update();
        match state.live_parts.part(stream.id, number, track, index) {
            PartLookup::Ready(source) => {
                return part_from_memory(&state, &session, &stream, number, track, *source).await
            }
            PartLookup::Unknown => break,
            PartLookup::NotYet => {
                let woken = tokio::select! {
                    changed = version.changed() => changed.is_ok(),
                    () = tokio::time::sleep_until(until) => false,
                    () = state.shutdown.cancelled() => false,
                };
                if !woken {
                    return Err(part_not_found(number, index));
                }
            }
        }
    }
    part_from_store(&state, &session, &stream, number, track, index, &ll).await
}

/// `mfhd` sequence_number of every part of the fragment with stream sequence `sequence`: the one
/// its whole segment carries (`serve::media_fragment_of`).
fn moof_sequence(sequence: u64) -> u32 {
    (sequence % u64::from(u32::MAX)) as u32 + 1
}

fn part_not_found(number: FragmentNumber, index: usize) -> ApiError {
    ApiError::ResourceNotFound(format!(
        "Part {index} of fragment {number} is not available in this streaming session."
    ))
}

async fn part_from_memory(
    state: &AppState,
    session: &Session,
    stream: &StreamRecord,
    number: FragmentNumber,
    track: TrackNumber,
    source: ll::PartSource,
) -> Result<Response, ApiError> {
    let configs = Configs::load(state, stream, Some(source.codec_config)).await?;
    let codec = configs.codec(source.codec_config)?;
    let timing = media::timeline::track_timing(
        serve::start_ns(session, &source),
        &source.samples,
        TrackClock::of(&codec),
        DecodeTimes::AtPresentation,
    )
    .map_err(|e| ApiError::Internal(format!("timing of a part in flight: {e}")))?;
    let part = ll::part_timing(&timing, &source.part);
    // The sequence number the fragment will have once stored, as its stored parts carry it: one
    // more than the newest stored fragment's, plus those arriving before it.
    let newest = state
        .catalog
        .latest_fragment_summaries(stream.id, 1)
        .await?;
    let (after, next) = newest
        .first()
        .map_or((None, 0), |f| (Some(f.number), f.sequence + 1));
    let ahead = state
        .live_parts
        .pending(stream.id, after, track)
        .iter()
        .position(|p| p.number == number)
        .unwrap_or(0) as u64;
    let head = media::fmp4::media_segment_header(moof_sequence(next + ahead), &part)
        .map_err(|e| ApiError::Internal(format!("moof of a part: {e}")))?;
    let len = head.len() as u64 + source.data.iter().map(|d| d.len() as u64).sum::<u64>();
    let pieces = std::iter::once(Bytes::from(head)).chain(source.data);
    let body = Body::from_stream(futures::stream::iter(
        pieces.map(Ok::<_, std::convert::Infallible>),
    ));
    Ok(serve::respond(
        serve::MP4,
        serve::cache_control(session, state.clock.timestamp(), false),
        body,
        Some(len),
    ))
}

async fn part_from_store(
    state: &AppState,
    session: &Session,
    stream: &StreamRecord,
    number: FragmentNumber,
    track: TrackNumber,
    index: usize,
    ll: &LowLatencyConfig,
) -> Result<Response, ApiError> {
    let fragment = serve::session_fragment(state, session, stream, number)
        .await
        .map_err(|_| part_not_found(number, index))?;
    let t = serve::track_of(&fragment, track).ok_or_else(|| part_not_found(number, index))?;
    let configs = Configs::load(state, stream, Some(t.codec_config)).await?;
    let codec = configs.codec(t.codec_config)?;
    let timing = serve::timing_with(session, &fragment, t, &codec, DecodeTimes::AtPresentation)?;
    let cut = media::parts::cut(&timing, ll.target_ticks(timing.timescale), true);
    let part = cut
        .get(index)
        .ok_or_else(|| part_not_found(number, index))?;
    let offset: u64 = t.samples[..part.samples.start]
        .iter()
        .map(|s| u64::from(s.size))
        .sum();
    let len: u64 = t.samples[part.samples.clone()]
        .iter()
        .map(|s| u64::from(s.size))
        .sum();
    let head = media::fmp4::media_segment_header(
        moof_sequence(fragment.sequence),
        &ll::part_timing(&timing, part),
    )
    .map_err(|e| ApiError::Internal(format!("moof of part {index} of {number}: {e}")))?;
    let start = t.data_offset + offset;
    let data = state
        .media
        .read(stream.id, fragment.media, start..start + len)
        .await
        .map_err(|e| serve::read_failed(stream, number, e))?;
    let total = head.len() as u64 + data.len() as u64;
    let body = Body::from_stream(futures::stream::iter([
        Ok::<_, std::convert::Infallible>(Bytes::from(head)),
        Ok(data),
    ]));
    Ok(serve::respond(
        serve::MP4,
        serve::cache_control(session, state.clock.timestamp(), false),
        body,
        Some(total),
    ))
}
