//! `GET /hls/v1/getTSFragment.ts?FragmentNumber=…&SessionToken=…` (docs/wire.md#hls-segments): one stored
//! fragment of an `MPEG_TS` session, all its tracks muxed by [`media::ts`] into one segment —
//! "both initialization and media data for all tracks".
//!
//! Timestamps are those of the fMP4 fragments (`serve::timing`: the session timeline, so PTS
//! run on across fragments as the discontinuity mode requires); SPS/PPS precede every key frame,
//! so a codec-private-data change needs nothing more than the `EXT-X-DISCONTINUITY` the media
//! playlist already writes there.

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use media::ts::{TsCodec, TsTrack};

use super::limits::HlsResource;
use super::serve::{
    cache_control, etag, not_modified, read_failed, respond_tagged, session_fragment, start_ns,
    timing, Codec, Configs, HlsQuery,
};
use super::session::ContainerFormat;
use crate::wire::AwsQuery;
use crate::{ApiError, AppState};

/// `Content-Type` of a transport stream segment (docs/choices.md#hls-response-headers).
const MP2T: &str = "video/mp2t";

/// `GET /hls/v1/getTSFragment.ts?FragmentNumber=F`
pub async fn ts_fragment(
    State(state): State<AppState>,
    request_headers: http::HeaderMap,
    AwsQuery(q): AwsQuery<HlsQuery>,
) -> Result<Response, ApiError> {
    let (session, stream) = super::authorize(
        &state,
        q.token()?,
        HlsResource::TsFragment,
        super::Protocol::Hls,
    )
    .await?;
    if session.container != ContainerFormat::MpegTs {
        return Err(ApiError::InvalidArgument(
            "This session's ContainerFormat is FRAGMENTED_MP4: its media is served by \
             getMP4InitFragment.mp4 and getMP4MediaFragment.mp4."
                .into(),
        ));
    }
    let number = q.fragment()?;
    let fragment = session_fragment(&state, &session, &stream, number).await?;
    let now = state.clock.timestamp();
    let cache = cache_control(&session, now, false);
    let tag = etag(&[
        b"ts",
        &media::ts::FORMAT_VERSION.to_be_bytes(),
        &stream.id.0.to_be_bytes(),
        number.to_string().as_bytes(),
        &start_ns(&session, &*fragment).to_be_bytes(),
    ]);
    if let Some(response) = not_modified(&request_headers, &tag, cache.clone()) {
        return Ok(response);
    }
    let mut tracks: Vec<_> = fragment.tracks.iter().collect();
    tracks.sort_by_key(|t| t.track);
    let newest_config = tracks.iter().map(|t| t.codec_config).max();
    let configs = Configs::load(&state, &stream, newest_config).await?;
    let mut parts = Vec::with_capacity(tracks.len());
    for t in &tracks {
        let codec = configs.codec(t.codec_config)?;
        if matches!(*codec, Codec::Hevc(_)) {
            return Err(ApiError::UnsupportedStreamMediaType(format!(
                "Fragment {number}: H.265 video cannot be packaged in the MPEG_TS container format."
            )));
        }
        let timing = timing(&session, &fragment, t, &codec)?;
        parts.push((codec, timing));
    }
    // The tracks' samples are contiguous runs of the fragment's stored bytes: read them at once.
    let start = tracks.iter().map(|t| t.data_offset).min().unwrap_or(0);
    let end = tracks
        .iter()
        .map(|t| t.data_offset + t.data_len)
        .max()
        .unwrap_or(0);
    let data = state
        .media
        .read(stream.id, fragment.media, start..end)
        .await
        .map_err(|e| read_failed(&stream, number, e))?;
    let mut inputs = Vec::with_capacity(tracks.len());
    for (t, (codec, timing)) in tracks.iter().zip(&parts) {
        let range = usize::try_from(t.data_offset - start)
            .ok()
            .zip(usize::try_from(t.data_offset + t.data_len - start).ok())
            .filter(|&(_, e)| e <= data.len())
            .ok_or_else(|| {
                ApiError::Internal(format!(
                    "fragment {number} track {}: stored bytes shorter than its index",
                    t.track
                ))
            })?;
        let codec = match &**codec {
            Codec::Avc(c) => TsCodec::Avc(c),
            Codec::Aac(c) => TsCodec::Aac(c),
            Codec::Hevc(_) => unreachable!("refused above"),
        };
        inputs.push(TsTrack {
            codec,
            timing,
            data: &data[range.0..range.1],
        });
    }
    let bytes = media::ts::mux_segment(&inputs).map_err(|e| match e {
        media::ts::TsError::Adts(_) | media::ts::TsError::Tracks(_) => {
            ApiError::UnsupportedStreamMediaType(format!(
                "Fragment {number} cannot be packaged in the MPEG_TS container format: {e}."
            ))
        }
        e => ApiError::Internal(format!("MPEG-TS of fragment {number}: {e}")),
    })?;
    let len = bytes.len() as u64;
    Ok(respond_tagged(
        MP2T,
        cache,
        tag,
        Body::from(bytes),
        Some(len),
    ))
}
