//! HLS playback (docs/wire.md#gethlsstreamingsessionurl, docs/wire.md#hls-resources;
//! docs/architecture.md#playback-path).
//!
//! - [`api`]: `POST /getHLSStreamingSessionURL`, which checks everything once and seals a
//!   [`session::Session`] into the URL's `SessionToken` ([`token`]).
//! - [`authorize`]: what every HLS GET does first: open the token, apply the per-session rate
//!   limit ([`limits`]), and check the stream is still the one the session was made for.
//! - [`playlist`], [`serve`]: playlists and the GET endpoints; [`ts`]: `getTSFragment.ts`.

pub mod api;
pub mod limits;
pub mod playlist;
pub mod serve;
pub mod session;
pub mod token;
pub mod ts;

pub use limits::HlsResource;
pub use session::Session;

use crate::error::ApiError;
use crate::AppState;

/// AWS's message for an expired session (docs/choices.md#token-errors, seen on the wire).
pub const TOKEN_EXPIRED: &str = "Streaming session token is expired";
/// Malformed, tampered, or sealed with a key this server does not hold: one message for all.
pub const TOKEN_INVALID: &str = "Streaming session token is invalid";
/// The session's stream was deleted (and maybe recreated under the same name) since.
pub const STREAM_GONE: &str = "The stream of this streaming session no longer exists";

/// Checks an HLS GET's `SessionToken` for `resource`: opens it (expired, malformed, tampered or
/// unknown-key tokens: 403 `NotAuthorizedException`), applies the session's rate limit for
/// `resource` (`ClientLimitExceededException` 400), and looks the stream up by the session's
/// stream id, requiring the same creation time (a deleted or recreated stream: 403, so a deleted
/// stream's sessions serve no byte). Returns the session and the current stream record.
///
/// The rate limit is applied only to tokens that open, so junk tokens cannot fill the limiter.
pub async fn authorize(
    state: &AppState,
    query_token: &str,
    resource: HlsResource,
) -> Result<(Session, store::StreamRecord), ApiError> {
    let now = state.clock.timestamp();
    let session = token::open(query_token, &state.config.session_keys, now).map_err(|e| {
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
    let session_id = token::session_id(query_token)
        .ok_or_else(|| ApiError::InvalidSessionToken(TOKEN_INVALID.into()))?;
    state.hls_limits.admit(&session_id, resource, now).await?;
    match state.catalog.stream_by_id(session.stream_id).await? {
        Some(stream) if stream.creation_time == session.stream_creation => Ok((session, stream)),
        _ => Err(ApiError::InvalidSessionToken(STREAM_GONE.into())),
    }
}
