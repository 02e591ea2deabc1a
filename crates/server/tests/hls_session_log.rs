//! Session tokens never reach the log: HLS GETs with a valid, a tampered and an expired token,
//! with tracing at TRACE level. Its own test binary, so its subscriber is the process's only one
//! (tracing caches callsite interest per process).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use http::Request;
use server::hls;
use store::{NewStream, Timestamp, TimestampKind};
use tower::ServiceExt;

mod common;
use common::Captured;

struct ManualClock(Mutex<SystemTime>);

impl server::Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

#[tokio::test]
async fn tokens_never_reach_the_log() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = server::Config::new("127.0.0.1:4567".parse().unwrap(), dir.path().into());
    let clock = Arc::new(ManualClock(Mutex::new(SystemTime::now())));
    let state = server::build(config)
        .await
        .unwrap()
        .with_clock(clock.clone());
    let router = server::ops::router(state.clone());
    let now = state.clock.timestamp();
    let stream = state
        .catalog
        .create_stream(NewStream {
            name: "cam1".into(),
            arn: "arn:aws:kinesisvideo:us-east-1:000000000000:stream/cam1/1".into(),
            device_name: None,
            media_type: None,
            kms_key_id: "k".into(),
            version: "v".into(),
            creation_time: now,
            data_retention_hours: 24,
            storage_tier: "HOT".into(),
            tags: Default::default(),
        })
        .await
        .unwrap();
    let session = hls::Session {
        stream_id: stream.id,
        stream_creation: stream.creation_time,
        stream_name: stream.name.clone(),
        mode: hls::session::PlaybackMode::Live,
        selector: TimestampKind::Server,
        start: None,
        end: None,
        container: hls::session::ContainerFormat::FragmentedMp4,
        discontinuity: hls::session::DiscontinuityMode::Always,
        display_timestamp: false,
        max_fragments: 5,
        created: now,
        expires: Timestamp(now.millis() + 300_000),
        origin: now,
        protocol: hls::Protocol::Hls,
        display_fragment_number: false,
        wall_offset_ms: 0,
    };
    let token = hls::token::seal(&session, &state.config.session_keys[0]);
    let mut tampered = token.clone();
    let flip = if &token[10..11] == "A" { "B" } else { "A" };
    tampered.replace_range(10..11, flip);

    let get = |path: String| {
        let router = router.clone();
        async move {
            router
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap()
                .status()
        }
    };
    for path in [
        format!("/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken={token}"),
        format!("/hls/v1/getHLSMediaPlaylist.m3u8?SessionToken={token}&TrackNumber=1"),
        format!("/hls/v1/getMP4InitFragment.mp4?SessionToken={token}&TrackNumber=9"),
        format!(
            "/hls/v1/getMP4MediaFragment.mp4?FragmentNumber=1&SessionToken={token}&TrackNumber=1"
        ),
    ] {
        get(path).await;
    }
    let status = get(format!(
        "/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken={tampered}"
    ))
    .await;
    assert_eq!(status, 403);
    *clock.0.lock().unwrap() += Duration::from_secs(301);
    let status = get(format!(
        "/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken={token}"
    ))
    .await;
    assert_eq!(status, 403);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("/hls/v1/getHLSMasterPlaylist.m3u8"),
        "the requests were not logged:\n{log}"
    );
    for secret in [&token, &tampered] {
        let body = &secret[..secret.len() - 1];
        // Any 24-character piece of the token would be a leak.
        for piece in body.as_bytes().chunks(24).filter(|c| c.len() == 24) {
            let piece = std::str::from_utf8(piece).unwrap();
            assert!(
                !log.contains(piece),
                "a session token reached the log:\n{log}"
            );
        }
    }
    assert!(!log.contains("SessionToken="), "{log}");
}
