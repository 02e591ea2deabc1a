//! The route table: every KVS operation path (docs/wire.md#requests: `POST /<operation>`, one listener
//! for all three services) and the unsigned resources.
//!
//! To add an operation: write `async fn op(State<AppState>, AwsJson<OpInput>) -> Result<AwsJson<OpOutput>, ApiError>`
//! in its module, add a `.route("/op", post(module::op))` line to [`signed_routes`], and remove the
//! path from [`NOT_SUPPORTED_YET`].

use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::wire::{self, not_supported};
use crate::{archived, auth, clip, control, dash, get_media, hls, images, ingest, AppState};

/// Known KVS operations (botocore models 2017-09-30, and PutMedia) that openkvs does not implement
/// yet. They answer `InvalidArgumentException` 400 "The operation X is not supported by openkvs yet."
/// (after authentication), so a client gets a clear message instead of `UnknownOperationException`.
pub const NOT_SUPPORTED_YET: &[(&str, &str)] = &[
    // kinesisvideo
    (
        "/describeImageGenerationConfiguration",
        "DescribeImageGenerationConfiguration",
    ),
    (
        "/updateImageGenerationConfiguration",
        "UpdateImageGenerationConfiguration",
    ),
    (
        "/describeNotificationConfiguration",
        "DescribeNotificationConfiguration",
    ),
    (
        "/updateNotificationConfiguration",
        "UpdateNotificationConfiguration",
    ),
    (
        "/describeStreamStorageConfiguration",
        "DescribeStreamStorageConfiguration",
    ),
    (
        "/updateStreamStorageConfiguration",
        "UpdateStreamStorageConfiguration",
    ),
    (
        "/startEdgeConfigurationUpdate",
        "StartEdgeConfigurationUpdate",
    ),
    ("/describeEdgeConfiguration", "DescribeEdgeConfiguration"),
    ("/deleteEdgeConfiguration", "DeleteEdgeConfiguration"),
    (
        "/listEdgeAgentConfigurations",
        "ListEdgeAgentConfigurations",
    ),
    (
        "/describeMappedResourceConfiguration",
        "DescribeMappedResourceConfiguration",
    ),
    (
        "/describeMediaStorageConfiguration",
        "DescribeMediaStorageConfiguration",
    ),
    (
        "/updateMediaStorageConfiguration",
        "UpdateMediaStorageConfiguration",
    ),
    ("/createSignalingChannel", "CreateSignalingChannel"),
    ("/describeSignalingChannel", "DescribeSignalingChannel"),
    ("/updateSignalingChannel", "UpdateSignalingChannel"),
    ("/deleteSignalingChannel", "DeleteSignalingChannel"),
    ("/listSignalingChannels", "ListSignalingChannels"),
    (
        "/getSignalingChannelEndpoint",
        "GetSignalingChannelEndpoint",
    ),
    // kinesis-video-archived-media
];

/// SigV4-signed `POST` operations.
fn signed_routes(state: &AppState) -> Router<AppState> {
    let mut router = Router::new()
        // kinesisvideo (control plane)
        .route("/createStream", post(control::create_stream))
        .route("/describeStream", post(control::describe_stream))
        .route("/listStreams", post(control::list_streams))
        .route("/deleteStream", post(control::delete_stream))
        .route("/updateStream", post(control::update_stream))
        .route("/updateDataRetention", post(control::update_data_retention))
        .route("/getDataEndpoint", post(control::get_data_endpoint))
        .route("/tagStream", post(control::tag_stream))
        .route("/untagStream", post(control::untag_stream))
        .route("/listTagsForStream", post(control::list_tags_for_stream))
        .route("/TagResource", post(control::tag_resource))
        .route("/UntagResource", post(control::untag_resource))
        .route(
            "/ListTagsForResource",
            post(control::list_tags_for_resource),
        )
        // kinesis-video-archived-media
        .route("/listFragments", post(archived::list_fragments))
        .route(
            "/getHLSStreamingSessionURL",
            post(hls::api::get_hls_streaming_session_url),
        )
        .route(
            "/getMediaForFragmentList",
            post(get_media::get_media_for_fragment_list),
        )
        .route(
            "/getDASHStreamingSessionURL",
            post(dash::api::get_dash_streaming_session_url),
        )
        .route("/getClip", post(clip::get_clip))
        .route("/getImages", post(images::get_images))
        // kinesis-video-media
        .route("/getMedia", post(get_media::get_media))
        .route("/putMedia", post(ingest::put_media));
    for &(path, op) in NOT_SUPPORTED_YET {
        router = router.route(path, post(move || async move { not_supported(op) }));
    }
    router
        .method_not_allowed_fallback(wire::unknown_operation)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::verify_layer,
        ))
}

/// Unsigned resources: health check, metrics, the web console, and the HLS and DASH GETs authorised by their
/// session token.
fn public_routes() -> Router<AppState> {
    use crate::hls::serve;
    // HLS resources are authorised by their SessionToken alone, like KVS (docs/wire.md#hls-resources).
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(crate::metrics::handler))
        // The web console: static files; it signs its API calls in the browser.
        .merge(crate::console::routes())
        .route(
            "/hls/v1/getHLSMasterPlaylist.m3u8",
            get(serve::master_playlist),
        )
        .route(
            "/hls/v1/getHLSMediaPlaylist.m3u8",
            get(serve::media_playlist),
        )
        .route("/hls/v1/getMP4InitFragment.mp4", get(serve::init_fragment))
        .route("/hls/v1/getTSFragment.ts", get(crate::hls::ts::ts_fragment))
        .route(
            "/hls/v1/getMP4MediaFragment.mp4",
            get(serve::media_fragment),
        )
        // LL-HLS parts (docs/wire.md#ll-hls-resources).
        .route(
            "/hls/v1/getMP4MediaPart.mp4",
            get(crate::hls::parts::media_part),
        )
        // DASH resources, authorised the same way (docs/wire.md#dash-resources).
        .route(
            "/dash/v1/getDASHManifest.mpd",
            get(crate::dash::serve::manifest),
        )
        .route(
            "/dash/v1/getMP4InitFragment.mp4",
            get(crate::dash::serve::init_fragment),
        )
        .route(
            "/dash/v1/getMP4MediaFragment.mp4",
            get(crate::dash::serve::media_fragment),
        )
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(signed_routes(&state))
        .merge(public_routes())
        .fallback(|| async { ApiError::UnknownOperation })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::layer,
        ))
        .layer(axum::middleware::from_fn(wire::cors_layer))
        .layer(axum::middleware::from_fn(wire::request_id_layer))
        .with_state(state)
}
