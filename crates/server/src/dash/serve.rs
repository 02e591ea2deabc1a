//! The DASH GET resources under `/dash/v1/` (docs/wire.md#dash-resources): the MPD, and the
//! fMP4 init and media segments, which are the HLS ones (`hls::serve`), from the same writer.
//!
//! The MPD lists the same window of fragments an HLS media playlist would
//! (`hls::serve::playable_window`: ON_DEMAND the oldest N in range, LIVE_REPLAY revealed at
//! playback pace, LIVE the newest N). Its media URLs name a fragment by the time of its first
//! picture on the session timeline (ms since the session's origin, [`presentation_ms`]) and the
//! first fragment of its Period; [`locate`] maps that back with one indexed catalog query
//! (docs/choices.md#dash-segment-addressing).

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use media::codec::Codec;
use store::{
    FragmentNumber, FragmentQuery, FragmentSummary, StreamRecord, Timestamp, TimestampKind,
};

use super::mpd::{self, Fragment, Manifest, Presentation, TrackInfo, TrackMedia};
use crate::hls::limits::HlsResource;
use crate::hls::serve::{
    cache_control, estimate_frame_rate, extinf, in_session, init_fragment_of, live_shared,
    media_fragment_of, open, peak_bandwidth, picture_size, playable_window, respond, start_ns,
    track_of, HlsQuery,
};
use crate::hls::session::PlaybackMode;
use crate::hls::{Protocol, Session};
use crate::wire::AwsQuery;
use crate::{ApiError, AppState};

/// `Content-Type` of the MPD (ISO/IEC 23009-1 Annex C).
const DASH_XML: &str = "application/dash+xml";
/// How far a fragment's first picture may lie from its timestamp (the Cluster timecode) and
/// still be found from its segment URL: `$Time$` is the picture's time, the catalog is indexed
/// by the fragment's timestamp (docs/choices.md#dash-segment-addressing).
const MAX_FIRST_PICTURE_OFFSET_MS: i64 = 5_000;
/// Fragments looked at when mapping a segment URL back to its fragment: those within
/// [`MAX_FIRST_PICTURE_OFFSET_MS`] of its time (ten seconds of a stream, re-ingests included).
const LOCATE_CANDIDATES: usize = 256;
/// Nominal AAC bit rate per channel for `Representation@bandwidth` (the catalog keeps one size
/// per fragment, all tracks together; docs/choices.md#dash-manifest-details).
const AAC_BPS_PER_CHANNEL: u64 = 64_000;

/// `GET /dash/v1/getDASHManifest.mpd?SessionToken=…`
///
/// A LIVE session's manifest parts are shared by every reload of every LIVE session with the same
/// options until the stream's next commit, as HLS's LIVE segment lists are
/// (`hls::serve::live_shared`); the text is written per request (token, `publishTime`).
pub async fn manifest(
    State(state): State<AppState>,
    AwsQuery(q): AwsQuery<HlsQuery>,
) -> Result<Response, ApiError> {
    let (session, stream) = open(&state, &q, HlsResource::DashManifest, Protocol::Dash).await?;
    let parts = live_shared(&state, &session, &stream, None, false, || {
        manifest_parts(&state, &session, &stream)
    })
    .await?;
    let now = state.clock.timestamp();
    let presentation = match session.mode {
        PlaybackMode::OnDemand => Presentation::Static,
        PlaybackMode::Live => Presentation::Dynamic {
            // Media time 0 is the origin on the producer's clock; on the server's clock that is
            // the offset measured at the session's first fragment later.
            availability_start_ms: session.origin.0.saturating_add(session.wall_offset_ms),
            now_ms: now.0,
            ended: false,
        },
        // Revealed from the session's creation on, the first fragment at media time ~0.
        PlaybackMode::LiveReplay => Presentation::Dynamic {
            availability_start_ms: session.created.0,
            now_ms: now.0,
            ended: parts.ended,
        },
    };
    let text = mpd::render(&Manifest {
        token: q.token()?,
        presentation,
        fragments: &parts.fragments,
        tracks: &parts.tracks,
        display_timestamp: session.display_timestamp,
        display_fragment_number: session.display_fragment_number,
    });
    let changes = matches!(presentation, Presentation::Dynamic { ended: false, .. });
    Ok(respond(
        DASH_XML,
        cache_control(&session, now, changes),
        Body::from(text),
        None,
    ))
}

/// What a session's MPD lays out, before its token and clock are written in.
struct ManifestParts {
    fragments: Vec<Fragment>,
    tracks: Vec<TrackInfo>,
    /// No fragment will be added (LIVE_REPLAY past its End).
    ended: bool,
}

/// The session's window ([`playable_window`]) as the MPD writer takes it: each fragment's place
/// on the timeline and each codec config's description.
async fn manifest_parts(
    state: &AppState,
    session: &Session,
    stream: &StreamRecord,
) -> Result<ManifestParts, ApiError> {
    let (w, configs) = playable_window(state, session, stream).await?;
    if w.fragments.is_empty() {
        return Err(ApiError::ResourceNotFound(
            "No fragments are available in this streaming session.".into(),
        ));
    }
    let video_bandwidth = peak_bandwidth(&w.fragments);
    let mut fragments = Vec::with_capacity(w.fragments.len());
    let mut tracks: Vec<TrackInfo> = Vec::new();
    for f in &w.fragments {
        let Some(first_track) = f.tracks.first() else {
            continue;
        };
        let codec = configs.codec(first_track.codec_config)?;
        let duration_s = extinf(state, session, f, first_track, &codec).await?;
        let mut numbered = Vec::with_capacity(f.tracks.len());
        for t in &f.tracks {
            let sequence = configs.row(t.codec_config)?.1;
            numbered.push((t.track.0, sequence));
            if tracks
                .iter()
                .any(|i| i.track == t.track.0 && i.sequence == sequence)
            {
                continue;
            }
            // A codec config first seen here: describe it (the frame rate from this fragment).
            let codec = configs.codec(t.codec_config)?;
            let media = match (&*codec, picture_size(&codec)) {
                (Codec::Aac(aac), _) => TrackMedia::Audio {
                    sample_rate: aac.sample_rate,
                    channels: aac.channels,
                },
                (_, size) => {
                    let (width, height) = size.unwrap_or((0, 0));
                    let full = state.catalog.fragment_shared(stream.id, f.number).await?;
                    let frame_rate = full
                        .as_deref()
                        .and_then(|full| track_of(full, t.track))
                        .and_then(estimate_frame_rate);
                    TrackMedia::Video {
                        width,
                        height,
                        frame_rate,
                    }
                }
            };
            let bandwidth = match media {
                TrackMedia::Audio { channels, .. } => {
                    AAC_BPS_PER_CHANNEL.saturating_mul(u64::from(channels.max(1)))
                }
                TrackMedia::Video { .. } => video_bandwidth,
            };
            tracks.push(TrackInfo {
                track: t.track.0,
                sequence,
                codecs: codec.codec_string(),
                media,
                bandwidth,
            });
        }
        fragments.push(Fragment {
            number: f.number.to_string(),
            start_ms: presentation_ms(session, f),
            duration_ms: (duration_s * 1000.0).round().max(0.0) as u64,
            timestamp_ms: session.selected_timestamp(f).0,
            tracks: numbered,
        });
    }
    Ok(ManifestParts {
        fragments,
        tracks,
        ended: w.ended,
    })
}

/// `GET /dash/v1/getMP4InitFragment.mp4?SessionToken=…&TrackNumber=N&SequenceNumber=K`
pub async fn init_fragment(
    State(state): State<AppState>,
    request_headers: HeaderMap,
    AwsQuery(q): AwsQuery<HlsQuery>,
) -> Result<Response, ApiError> {
    init_fragment_of(&state, &request_headers, &q, Protocol::Dash).await
}

/// `GET /dash/v1/getMP4MediaFragment.mp4?SessionToken=…&TrackNumber=N&FirstFragmentNumber=F&Time=T`
pub async fn media_fragment(
    State(state): State<AppState>,
    request_headers: HeaderMap,
    AwsQuery(q): AwsQuery<HlsQuery>,
) -> Result<Response, ApiError> {
    let (session, stream) = open(&state, &q, HlsResource::MediaFragment, Protocol::Dash).await?;
    let track = q.track()?;
    let first = q.first_fragment()?;
    let time_ms = q.time_ms()?;
    let number = locate(&state, &session, &stream, first, time_ms).await?;
    media_fragment_of(&state, &request_headers, &session, &stream, number, track).await
}

/// Where a fragment's first picture (track 1's earliest presentation time; its first audio
/// frame for audio-only streams) lies on the session timeline, in ms: the MPD's `S@t` and the
/// `$Time$` of its segment URLs. Not the fragment's timestamp: a Cluster's timecode may precede
/// its first picture (B-frames), and timestamps then do not tile where pictures do.
fn presentation_ms(session: &Session, f: &FragmentSummary) -> u64 {
    let start_ns = start_ns(session, f);
    let offset_ns = f.tracks.first().map_or(0, |t| t.span.min_pts_offset_ns);
    let ns = i128::from(start_ns) + i128::from(offset_ns);
    u64::try_from(ns.max(0) / 1_000_000).unwrap_or(u64::MAX)
}

/// The fragment of the session whose first picture is `time_ms` after the session's origin, in the Period
/// that begins with fragment `first`: of the fragments whose producer timestamp (the DASH
/// timeline is the producer clock) is near enough and whose first picture is at that time, those
/// at or after `first` that the session shows; with
/// SERVER_TIMESTAMP the oldest (a Period is a run in ingest order, where an equal start would
/// have begun a new Period), with PRODUCER_TIMESTAMP the newest (the one its window keeps,
/// docs/choices.md#producer-timestamp-ordering).
async fn locate(
    state: &AppState,
    session: &Session,
    stream: &StreamRecord,
    first: FragmentNumber,
    time_ms: i64,
) -> Result<FragmentNumber, ApiError> {
    let producer = session.origin.0.saturating_add(time_ms);
    let candidates = state
        .catalog
        .query_fragment_summaries(FragmentQuery {
            stream: stream.id,
            kind: TimestampKind::Producer,
            start: Timestamp(producer.saturating_sub(MAX_FIRST_PICTURE_OFFSET_MS)),
            end: Timestamp(producer.saturating_add(MAX_FIRST_PICTURE_OFFSET_MS)),
            after: None,
            limit: LOCATE_CANDIDATES,
        })
        .await?;
    let time = u64::try_from(time_ms).unwrap_or(0);
    let fits = candidates
        .iter()
        .filter(|f| f.number >= first && in_session(session, *f))
        .filter(|f| presentation_ms(session, f) == time)
        .map(|f| f.number);
    let found = match session.selector {
        TimestampKind::Server => fits.min(),
        TimestampKind::Producer => fits.max(),
    };
    found.ok_or_else(|| {
        ApiError::ResourceNotFound(format!(
            "No fragment of this streaming session starts at {time_ms} ms in the period of \
             fragment {first}."
        ))
    })
}
