//! HLS playback (docs/wire.md#gethlsstreamingsessionurl, docs/wire.md#hls-resources;
//! docs/architecture.md#playback-path).
//!
//! - [`api`]: `POST /getHLSStreamingSessionURL`, which checks everything once and seals a
//!   [`session::Session`] into the URL's `SessionToken` ([`token`]).
//! - [`authorize`]: what every HLS GET does first: open the token, apply the per-session rate
//!   limit ([`limits`]), and check the stream is still the one the session was made for.
//! - [`playlist`], [`serve`]: playlists and the GET endpoints; [`ts`]: `getTSFragment.ts`.
//! - [`ll`]: LL-HLS, the fragments being received and the signal that wakes blocked reloads.

pub mod api;
pub mod limits;
pub mod ll;
pub mod parts;
pub mod playlist;
pub mod serve;
pub mod session;
pub mod token;
pub mod ts;

pub use limits::HlsResource;
pub use session::{Protocol, Session};

use crate::error::ApiError;
use crate::AppState;

/// AWS's message for an expired session (docs/choices.md#token-errors, seen on the wire).
pub const TOKEN_EXPIRED: &str = "Streaming session token is expired";
/// Malformed, tampered, or sealed with a key this server does not hold: one message for all.
pub const TOKEN_INVALID: &str = "Streaming session token is invalid";
/// The session's stream was deleted (and maybe recreated under the same name) since.
pub const STREAM_GONE: &str = "The stream of this streaming session no longer exists";

/// The one mapping of a track's codec decision (`media::codec::decode_track`) into the errors
/// GetHLSStreamingSessionURL documents; every playback path reports a bad track with it.
pub fn codec_error(track: media::TrackNumber, e: &media::codec::TrackCodecError) -> ApiError {
    use media::codec::TrackCodecError::*;
    match e {
        UnsupportedCodecId(id) => ApiError::UnsupportedStreamMediaType(format!(
            "The codec ID {id} of track {track} is not supported: track 1 must be V_MPEG/ISO/AVC, \
             V_MPEG/ISO/HEVC or A_AAC and track 2 A_AAC."
        )),
        MissingCodecPrivate => ApiError::MissingCodecPrivateData(format!(
            "Missing codec private data in fragment for track {track}."
        )),
        InvalidCodecPrivate(detail) => ApiError::InvalidCodecPrivateData(format!(
            "Invalid codec private data in fragment for track {track}: {detail}."
        )),
    }
}

/// Checks an HLS or DASH GET's `SessionToken` for `resource` of `protocol`: opens it (expired,
/// malformed, tampered or unknown-key tokens, and a token of the other protocol's API: 403
/// `NotAuthorizedException`), applies the session's rate limit for
/// `resource` (`ClientLimitExceededException` 400), and looks the stream up by the session's
/// stream id, requiring the same creation time (a deleted or recreated stream: 403, so a deleted
/// stream's sessions serve no byte). Returns the session and the current stream record.
///
/// The rate limit is applied only to tokens that open, so junk tokens cannot fill the limiter.
pub async fn authorize(
    state: &AppState,
    query_token: &str,
    resource: HlsResource,
    protocol: Protocol,
) -> Result<(Session, store::StreamRecord), ApiError> {
    let now = state.clock.timestamp();
    let opened = state
        .opened_tokens
        .open(query_token, &state.config.session_keys, now)
        .map_err(|e| {
            // The reason goes to the log; the token itself never does.
            tracing::debug!(reason = %e, "session token refused");
            ApiError::InvalidSessionToken(
                match e {
                    token::TokenError::Expired => TOKEN_EXPIRED,
                    _ => TOKEN_INVALID,
                }
                .into(),
            )
        })?;
    if opened.session.protocol != protocol {
        // An HLS URL's token does not open DASH resources, nor the reverse: each API grants
        // its own resources only (docs/wire.md#dash-resources).
        tracing::debug!("session token of another protocol refused");
        return Err(ApiError::InvalidSessionToken(TOKEN_INVALID.into()));
    }
    state
        .hls_limits
        .admit(&opened.session_id, resource, now)
        .await?;
    let session = opened.session.clone();
    match state.catalog.stream_by_id(session.stream_id).await? {
        Some(stream) if stream.creation_time == session.stream_creation => {
            // Counted for the stream's viewers and media requests (`metrics::StreamSeries`).
            state.metrics.media_request(
                &stream.name,
                stream.id,
                opened.session_id,
                std::time::Instant::now(),
            );
            Ok((session, stream))
        }
        _ => Err(ApiError::InvalidSessionToken(STREAM_GONE.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::session::ContainerFormat;
    use super::{api, serve};
    use bytes::Bytes;
    use media::TrackNumber;

    fn config(codec_id: &str, codec_private: &'static [u8]) -> store::CodecConfig {
        store::CodecConfig {
            track: TrackNumber(1),
            track_type: 1,
            codec_id: codec_id.into(),
            codec_private: Bytes::from_static(codec_private),
            track_name: None,
            pixel_width: None,
            pixel_height: None,
            sampling_frequency: None,
            channels: None,
        }
    }

    /// GetHLSStreamingSessionURL and the GET resources (a config first seen mid-session) judge a
    /// track with the same decision and report it with the same error.
    #[test]
    fn one_decision_and_one_message_for_a_bad_track() {
        for bad in [
            config("V_MPEG4/ISO/AVC", b"\x01\x64\x00"),
            config("V_MPEG4/ISO/AVC", b""),
            config("V_MPEGH/ISO/HEVC", b"\x00\x00\x00\x01"),
            config("A_AAC", b"\x00"),
        ] {
            let at_session =
                api::check_tracks(std::slice::from_ref(&bad), ContainerFormat::FragmentedMp4)
                    .unwrap_err();
            let at_playback = serve::decode(&bad).unwrap_err();
            assert_eq!(at_session.aws_error_type(), at_playback.aws_error_type());
            assert_eq!(at_session.message(), at_playback.message());
            assert!(at_session.message().contains("track 1"), "{at_session}");
        }
    }
}
